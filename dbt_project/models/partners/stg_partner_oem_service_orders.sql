with

source as (

    select * from {{ source('partners', 'partner_oem_service_orders') }}

),

renamed as (

    select
        ----------  ids
        cast(order_id as varchar) as order_id,
        cast(version as integer) as version,
        cast(booking_ref as varchar) as booking_ref,
        cast(vin as varchar) as vin,

        ----------  attributes
        cast(status as varchar) as status,
        cast(currency as varchar) as currency,

        ----------  numerics
        cast(amount as decimal(18, 4)) as amount,

        ----------  dates and timestamps
        cast(service_date as date) as service_date,
        cast(created_at as timestamptz) as created_at,
        cast(updated_at as timestamptz) as updated_at,

        ----------  load metadata
        {{ partner_load_metadata_columns() }}

    from source

),

latest as (

    select * from renamed
    {{ keep_latest_partner_version('order_id', 'version') }}

)

select * from latest
