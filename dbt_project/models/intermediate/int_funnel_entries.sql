-- Funnel entries, PostHog style: an entity enters a funnel at a step-1 event, at most once per UTC day
-- (the day's first step-1 event by occurred_at, the event time, never the arrival time; ties broken
-- by message_id). The entry's breakdowns (platform, app_version, role) are those of that event.
-- Incremental by entry day (macros/engine/incremental.sql): a run rebuilds the days of the step-1 events
-- that arrived since the previous run; an entry day depends on that day's events only.

{{ config(**incremental_by_day('entry_day', 'entry_arrival_dt')) }}

with
{% if is_incremental() %}
rebuild as (

    select min(cast(occurred_at as date)) as from_day
    from {{ ref('int_funnel_events') }}
    where step_order = 1
        and dt >= {{ incremental_floor('entry_arrival_dt') }}

),
{% endif %}
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
    {%- if is_incremental() %}
        and occurred_at >= (select from_day from rebuild)
    {%- endif %}
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
