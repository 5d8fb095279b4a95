-- One row per internal partner booking (stg_partner_bookings) with its funnel moments: the widget opened
-- and slot chosen in the app session it was booked in, the booking created, confirmed by the partner (the
-- partner's record: the OEM order created, the roadside dispatch assigned) and the visit completed (the
-- partner's status first completed or invoiced). The partner record is the one the reconciliation matched
-- to the booking (exact or fallback). A booking is a follow-up when it was booked from a completed job's
-- post-job screen (follow_up_of_job_id set by the backend).

with

bookings as (

    select * from {{ ref('stg_partner_bookings') }}

),

partners as (

    select distinct partner, partner_id
    from {{ source('partners', 'partner_contract_datasets') }}

),

widget_events as (

    select * from {{ ref('int_partner_widget_events') }}

),

booking_created as (

    select booking_id, partner_id, session_id, occurred_at
    from widget_events
    where event_name = 'booking_created' and booking_id is not null
    qualify row_number() over (partition by booking_id order by occurred_at, message_id) = 1

),

widget_opened as (

    -- the last opening of the partner's widget in the session at or before the booking
    select booking_created.booking_id, max(widget_events.occurred_at) as widget_opened_at
    from booking_created
    inner join widget_events
        on widget_events.event_name = 'partner_widget_opened'
        and widget_events.session_id = booking_created.session_id
        and widget_events.partner_id = booking_created.partner_id
        and widget_events.occurred_at <= booking_created.occurred_at
    group by booking_created.booking_id

),

slot_chosen as (

    -- the slot that became the booking (by booking_id), else the last one chosen in the session before it
    select
        booking_created.booking_id,
        coalesce(
            max(case when widget_events.booking_id = booking_created.booking_id then widget_events.occurred_at end),
            max(case when widget_events.booking_id is null then widget_events.occurred_at end)
        ) as slot_chosen_at
    from booking_created
    inner join widget_events
        on widget_events.event_name = 'partner_slot_chosen'
        and widget_events.session_id = booking_created.session_id
        and widget_events.partner_id = booking_created.partner_id
        and widget_events.occurred_at <= booking_created.occurred_at
    group by booking_created.booking_id

),

partner_records as (

    select
        matches.partner,
        matches.internal_id as booking_id,
        matches.partner_txn_id,
        matches.match_method,
        transactions.confirmed_at,
        transactions.completed_at
    from {{ ref('int_reconciliation_matches') }} as matches
    inner join {{ ref('int_partner_transactions') }} as transactions
        on matches.partner = transactions.partner and matches.partner_txn_id = transactions.partner_txn_id
    where matches.partner in ('oem', 'roadside')

),

final as (

    select
        ----------  ids
        bookings.booking_id,
        bookings.partner_id,
        partners.partner,
        bookings.customer_id,
        bookings.vin,
        bookings.service_id,
        booking_created.session_id,
        partner_records.partner_txn_id,
        partner_records.match_method,
        bookings.follow_up_of_job_id,

        ----------  attributes
        bookings.status,
        bookings.currency,
        bookings.follow_up_of_job_id is not null as is_follow_up,
        partners.partner is not null as is_partner_connected,

        ----------  numerics
        bookings.amount,

        ----------  funnel moments
        widget_opened.widget_opened_at,
        slot_chosen.slot_chosen_at,
        coalesce(booking_created.occurred_at, bookings.created_at) as booking_created_at,
        partner_records.confirmed_at as confirmed_by_partner_at,
        partner_records.completed_at as visit_completed_at,

        ----------  our backend's timestamps
        bookings.slot_start,
        bookings.created_at,
        bookings.confirmed_at,
        bookings.completed_at,
        bookings.cancelled_at

    from bookings
    left join partners on bookings.partner_id = partners.partner_id
    left join booking_created on bookings.booking_id = booking_created.booking_id
    left join widget_opened on bookings.booking_id = widget_opened.booking_id
    left join slot_chosen on bookings.booking_id = slot_chosen.booking_id
    left join partner_records on bookings.booking_id = partner_records.booking_id

)

select * from final
