-- The customer app's partner widget events, one row per event: widget opened, slot chosen, booking
-- created, with the properties they carry (partner_id; booking_id on a booking and on a slot that became
-- one). The one place these properties are read.

with

events as (

    select * from {{ ref('stg_events') }}
    where event_name in ('partner_widget_opened', 'partner_slot_chosen', 'booking_created')

),

final as (

    select
        message_id,
        event_name,
        session_id,
        user_id,
        anonymous_id,
        {{ json_str('properties', 'partner_id') }} as partner_id,
        {{ json_str('properties', 'booking_id') }} as booking_id,
        occurred_at
    from events

)

select * from final
