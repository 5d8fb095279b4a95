with

source as (

    select * from {{ source('ops', 'job_parts') }}

),

renamed as (

    select
        ----------  ids
        job_part_id,
        job_id,
        part_id,

        ----------  numerics
        quantity,

        ----------  timestamps
        used_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('job_part_id') }}

)

select * from latest
