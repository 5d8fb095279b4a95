-- The steps each funnel entry reached, one row per entry × reached step (step 1 is the entry itself).
-- Ordered funnel (other events may come between steps): step k is the first event of step k that
-- occurs strictly after the time step k − 1 was reached and no later than the entry time plus the
-- funnel's conversion window (inclusive edge). A step-k event before step k − 1 does not count; a
-- repeated step counts once, at its first occurrence after the previous step.
-- Set-based: one CTE per step follows all entries at once, up to var funnel_max_steps (the seed's
-- tests hold every funnel to it); a recursive CTE would need an aggregate over the recursive reference,
-- which Spark does not allow.

-- Incremental by entry day (macros/engine/incremental.sql): a run rebuilds the entry days that the
-- events arrived since the previous run can reach (their day back to the longest conversion window).

-- depends_on: {{ ref('funnels') }}
{{ config(**incremental_by_day('entry_day', 'arrival_dt')) }}

{%- set max_steps = var('funnel_max_steps') | int %}

with
{% if is_incremental() %}
rebuild as (

    select {{ dbt.dateadd('day', '-cast(ceil(max(funnels.conversion_window_seconds) / 86400.0) as integer)', 'min(cast(arrived.occurred_at as date))') }} as from_day
    from {{ ref('int_funnel_events') }} as arrived
    cross join {{ ref('funnels') }} as funnels
    where arrived.dt >= {{ incremental_floor('arrival_dt') }}

),
{% endif %}
events as (

    select funnel, step_order, entity_id, occurred_at, dt
    from {{ ref('int_funnel_events') }}
    where step_order > 1
    {%- if is_incremental() %}
        and occurred_at >= (select from_day from rebuild)
    {%- endif %}

),

step_1 as (

    select
        funnel,
        entity_id,
        entry_day,
        entered_at,
        conversion_window_seconds,
        1 as step_order,
        entered_at as reached_at,
        entry_arrival_dt as arrival_dt
    from {{ ref('int_funnel_entries') }}
    {%- if is_incremental() %}
    where entry_day >= (select from_day from rebuild)
    {%- endif %}

),
{% for k in range(2, max_steps + 1) %}
step_{{ k }} as (

    select
        previous.funnel,
        previous.entity_id,
        previous.entry_day,
        previous.entered_at,
        previous.conversion_window_seconds,
        {{ k }} as step_order,
        min(events.occurred_at) as reached_at,
        min_by(events.dt, events.occurred_at) as arrival_dt
    from step_{{ k - 1 }} as previous
    inner join events
        on events.funnel = previous.funnel
        and events.entity_id = previous.entity_id
        and events.step_order = {{ k }}
        and events.occurred_at > previous.reached_at
    where {{ epoch_seconds_between('previous.entered_at', 'events.occurred_at') }} <= previous.conversion_window_seconds
    group by previous.funnel, previous.entity_id, previous.entry_day, previous.entered_at, previous.conversion_window_seconds

),
{% endfor %}
chain as (
{% for k in range(1, max_steps + 1) %}
    select * from step_{{ k }}
    {%- if not loop.last %}
    union all
    {%- endif %}
{%- endfor %}

)

select
    chain.funnel,
    chain.entity_id,
    chain.entry_day,
    chain.entered_at,
    chain.step_order,
    steps.event_name,
    chain.reached_at,
    {{ epoch_seconds_between('chain.entered_at', 'chain.reached_at') }} as seconds_from_entry,
    chain.arrival_dt
from chain
inner join {{ ref('funnel_steps') }} as steps
    on steps.funnel = chain.funnel
    and steps.step_order = chain.step_order
