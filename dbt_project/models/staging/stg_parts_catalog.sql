with

source as (

    select * from {{ source('ops', 'parts_catalog') }}

),

renamed as (

    select
        ----------  ids
        part_id,
        service_id,

        ----------  attributes
        name as part_name,
        category,

        ----------  numerics
        unit_cost,
        unit_price,

        ----------  timestamps
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('part_id') }}

)

select * from latest
