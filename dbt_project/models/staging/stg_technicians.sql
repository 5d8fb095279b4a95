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
        dt,
        _landing_path as landing_path,
        _line_no as line_no,
        _ingested_at as ingested_at

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('technician_id') }}

)

select * from latest
