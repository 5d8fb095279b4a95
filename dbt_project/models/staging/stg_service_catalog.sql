with

source as (

    select * from {{ source('ops', 'service_catalog') }}

),

renamed as (

    select
        ----------  ids
        service_id,

        ----------  attributes
        name as service_name,
        kind as service_kind,

        ----------  numerics
        price,
        margin,
        duration_min,

        ----------  timestamps
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('service_id') }}

)

select * from latest
