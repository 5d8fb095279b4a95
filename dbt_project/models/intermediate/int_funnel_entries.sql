-- Funnel entries, PostHog style: an entity enters a funnel at a step-1 event, at most once per UTC day
-- (the day's first step-1 event by occurred_at, the event time, never the arrival time; ties broken
-- by message_id). The entry's breakdowns (platform, app_version, role) are those of that event.

with

entries as (

    select
        funnel,
        entity_id,
        cast(occurred_at as date) as entry_day,
        occurred_at as entered_at,
        message_id as entry_message_id,
        dt as entry_arrival_dt,
        platform,
        app_version,
        role
    from {{ ref('int_funnel_events') }}
    where step_order = 1
    qualify row_number() over (
        partition by funnel, entity_id, cast(occurred_at as date)
        order by occurred_at, message_id
    ) = 1

)

select
    entries.*,
    funnels.conversion_window_seconds
from entries
inner join {{ ref('funnels') }} as funnels on funnels.funnel = entries.funnel
