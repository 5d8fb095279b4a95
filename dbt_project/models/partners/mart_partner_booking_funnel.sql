-- The partner booking funnel by day, partner_id and follow-up or not: widget sessions opened → slot
-- chosen → booking created → confirmed by the partner → visit completed. An entry is a booking (with the
-- widget session it was booked in) or a widget session that booked nothing (from the app's events only,
-- never a follow-up: only a booking says it follows a job). Its day is the day the widget was opened;
-- when no opening was logged, the booking's day or the session's first widget event. tire_depot has no
-- data feed: its funnel ends at booking created.

with

bookings as (

    select * from {{ ref('fct_partner_bookings') }}

),

widget_events as (

    select * from {{ ref('int_partner_widget_events') }}
    where session_id is not null and partner_id is not null

),

widget_sessions as (

    select
        session_id,
        partner_id,
        min(case when event_name = 'partner_widget_opened' then occurred_at end) as widget_opened_at,
        min(case when event_name = 'partner_slot_chosen' then occurred_at end) as slot_chosen_at,
        min(occurred_at) as first_event_at
    from widget_events
    group by session_id, partner_id

),

booked_entries as (

    select
        bookings.partner_id,
        bookings.session_id,
        bookings.booking_id,
        bookings.is_follow_up,
        bookings.widget_opened_at,
        bookings.slot_chosen_at,
        bookings.booking_created_at,
        bookings.confirmed_by_partner_at,
        bookings.visit_completed_at,
        coalesce(bookings.widget_opened_at, bookings.booking_created_at) as entered_at
    from bookings

),

unbooked_entries as (

    select
        widget_sessions.partner_id,
        widget_sessions.session_id,
        cast(null as varchar) as booking_id,
        false as is_follow_up,
        widget_sessions.widget_opened_at,
        widget_sessions.slot_chosen_at,
        cast(null as timestamptz) as booking_created_at,
        cast(null as timestamptz) as confirmed_by_partner_at,
        cast(null as timestamptz) as visit_completed_at,
        -- a session whose opening was not logged (an app that lost the event) enters at its first widget event
        coalesce(widget_sessions.widget_opened_at, widget_sessions.first_event_at) as entered_at
    from widget_sessions
    where not exists (
        select 1 from bookings
        where bookings.session_id = widget_sessions.session_id
          and bookings.partner_id = widget_sessions.partner_id
    )

),

entries as (

    select * from booked_entries
    union all
    select * from unbooked_entries

),

final as (

    select
        cast(entered_at as date) as day,
        partner_id,
        is_follow_up,
        count(distinct case when widget_opened_at is not null then session_id end) as widget_sessions_opened,
        count(distinct case when slot_chosen_at is not null then session_id end) as slots_chosen,
        count(booking_id) as bookings_created,
        count(confirmed_by_partner_at) as confirmed_by_partner,
        count(visit_completed_at) as visits_completed
    from entries
    group by 1, 2, 3

)

select * from final
