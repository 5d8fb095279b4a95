-- Daily funnels: for each entry day × funnel × step × entry breakdown (platform, app_version, role of
-- the step-1 event), how many entries reached the step, the step-to-step and overall conversion, and
-- how long reaching the step took from the entry (exact median and p90). Every step of a funnel has a
-- row for each breakdown that had entries that day, with entered = 0 when none got that far.

{{ config(**incremental_by_day('day', 'last_arrival_dt')) }}

-- Incremental by entry day (macros/engine/incremental.sql): a run re-counts the entry days that entries
-- or steps arrived since the previous run belong to.

with
{% if is_incremental() %}
rebuild as (

    select min(entry_day) as from_day
    from (
        select entry_day from {{ ref('int_funnel_entries') }}
        where entry_arrival_dt >= {{ incremental_floor('last_arrival_dt') }}
        union all
        select entry_day from {{ ref('int_funnel_entry_steps') }}
        where arrival_dt >= {{ incremental_floor('last_arrival_dt') }}
    ) as arrived

),
{% endif %}
entries as (

    select funnel, entity_id, entry_day, platform, app_version, role, entry_arrival_dt
    from {{ ref('int_funnel_entries') }}
    {%- if is_incremental() %}
    where entry_day >= (select from_day from rebuild)
    {%- endif %}

),

entry_steps as (

    -- every entry × every step of its funnel, with the time to the step when it was reached
    select
        entries.entry_day,
        entries.funnel,
        steps.step_order,
        steps.event_name,
        entries.platform,
        entries.app_version,
        entries.role,
        reached.seconds_from_entry,
        coalesce(reached.arrival_dt, entries.entry_arrival_dt) as arrival_dt,
        entries.entry_arrival_dt
    from entries
    inner join {{ ref('funnel_steps') }} as steps
        on steps.funnel = entries.funnel
    left join {{ ref('int_funnel_entry_steps') }} as reached
        on reached.funnel = entries.funnel
        and reached.entity_id = entries.entity_id
        and reached.entry_day = entries.entry_day
        and reached.step_order = steps.step_order

),

counted as (

    select
        entry_day as day,
        funnel,
        step_order,
        event_name as step_event,
        platform,
        app_version,
        role,
        count(seconds_from_entry) as entered,
        {{ percentile('seconds_from_entry', 0.5) }} as median_seconds_from_entry,
        {{ percentile('seconds_from_entry', 0.9) }} as p90_seconds_from_entry,
        -- every row of a day's funnel counts toward that day's watermark: the entries' and steps' arrivals
        max(case when arrival_dt > entry_arrival_dt then arrival_dt else entry_arrival_dt end) as last_arrival_dt
    from entry_steps
    group by entry_day, funnel, step_order, event_name, platform, app_version, role

),

rated as (

    select
        *,
        lag(entered) over (
            partition by day, funnel, platform, app_version, role order by step_order
        ) as entered_previous,
        first_value(entered) over (
            partition by day, funnel, platform, app_version, role order by step_order
        ) as entered_first
    from counted

)

select
    day,
    funnel,
    step_order,
    step_event,
    platform,
    app_version,
    role,
    entered,
    case
        when step_order = 1 then 1.0
        when entered_previous > 0 then cast(entered as double) / entered_previous
    end as converted_from_previous,
    cast(entered as double) / entered_first as converted_from_first,
    median_seconds_from_entry,
    p90_seconds_from_entry,
    last_arrival_dt
from rated
