with

source as (

    select * from {{ source('ops', 'partner_bookings') }}

),

renamed as (

    select
        ----------  ids
        booking_id,
        partner_id,
        customer_id,
        vin,
        service_id,
        partner_ref,
        follow_up_of_job_id,

        ----------  attributes
        currency,
        status,

        ----------  numerics
        amount,

        ----------  timestamps
        slot_start,
        created_at,
        confirmed_at,
        completed_at,
        cancelled_at,
        updated_at,

        ----------  load metadata
        {{ load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_version('booking_id') }}

)

select * from latest
