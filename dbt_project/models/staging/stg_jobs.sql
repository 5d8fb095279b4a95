with

source as (

    select * from {{ source('ops', 'jobs') }}

),

renamed as (

    select
        ----------  ids
        job_id,
        customer_id,
        vin,
        technician_id,
        service_id,

        ----------  attributes
        status,

        ----------  timestamps
        scheduled_for,
        assigned_at,
        started_at,
        completed_at,
        cancelled_at,
        created_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('job_id') }}

)

select * from latest
