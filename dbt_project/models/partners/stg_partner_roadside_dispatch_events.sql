with

source as (

    select * from {{ source('partners', 'partner_roadside_dispatch_events') }}

),

renamed as (

    select
        ----------  ids
        cast(event_id as varchar) as event_id,
        cast(dispatch_id as varchar) as dispatch_id,
        cast(request_ref as varchar) as request_ref,
        cast(vin as varchar) as vin,

        ----------  attributes
        cast(status as varchar) as status,
        cast(currency as varchar) as currency,

        ----------  numerics
        cast(fee_amount as decimal(18, 4)) as fee_amount,
        cast(eta_minutes as integer) as eta_minutes,

        ----------  timestamps
        cast(occurred_at as timestamptz) as occurred_at,
        cast(received_at as timestamptz) as received_at,

        ----------  load metadata
        {{ partner_load_metadata_columns() }}

    from source

),

first_delivery as (

    -- Webhooks are at-least-once: an event delivered twice keeps its first delivery (events have no
    -- versions; a redelivery carries the same body).
    select * from renamed
    qualify row_number() over (
        partition by event_id
        order by received_at, loaded_at, landing_file, line_no
    ) = 1

)

select * from first_delivery
