-- The steps each funnel entry reached, one row per entry × reached step (step 1 is the entry itself).
-- Ordered funnel (other events may come between steps): step k is the first event of step k that
-- occurs strictly after the time step k − 1 was reached and no later than the entry time plus the
-- funnel's conversion window (inclusive edge). A step-k event before step k − 1 does not count; a
-- repeated step counts once, at its first occurrence after the previous step.
-- Set-based: a recursive CTE adds one step per iteration for all entries at once, so a funnel may have
-- any number of steps (funnel_steps numbers them 1..n without gaps).

with recursive

events as (

    select funnel, step_order, entity_id, occurred_at
    from {{ ref('int_funnel_events') }}
    where step_order > 1

),

chain as (

    select
        funnel,
        entity_id,
        entry_day,
        entered_at,
        conversion_window_seconds,
        1 as step_order,
        entered_at as reached_at
    from {{ ref('int_funnel_entries') }}

    union all

    select
        chain.funnel,
        chain.entity_id,
        chain.entry_day,
        chain.entered_at,
        chain.conversion_window_seconds,
        chain.step_order + 1 as step_order,
        min(events.occurred_at) as reached_at
    from chain
    inner join events
        on events.funnel = chain.funnel
        and events.entity_id = chain.entity_id
        and events.step_order = chain.step_order + 1
        and events.occurred_at > chain.reached_at
    where {{ epoch_seconds_between('chain.entered_at', 'events.occurred_at') }} <= chain.conversion_window_seconds
    group by chain.funnel, chain.entity_id, chain.entry_day, chain.entered_at, chain.conversion_window_seconds, chain.step_order

)

select
    chain.funnel,
    chain.entity_id,
    chain.entry_day,
    chain.entered_at,
    chain.step_order,
    steps.event_name,
    chain.reached_at,
    {{ epoch_seconds_between('chain.entered_at', 'chain.reached_at') }} as seconds_from_entry
from chain
inner join {{ ref('funnel_steps') }} as steps
    on steps.funnel = chain.funnel
    and steps.step_order = chain.step_order
