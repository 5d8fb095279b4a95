with

source as (

    select * from {{ source('ops', 'technicians') }}

),

renamed as (

    select
        ----------  ids
        technician_id,

        ----------  attributes
        full_name,
        region,

        ----------  numerics
        skill_level,

        ----------  timestamps
        hired_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('technician_id') }}

)

select * from latest
