{{ config(materialized="view") }}

-- Every deduplicated event (stg_events keeps one row per messageId) that is a step of some funnel,
-- keyed by the funnel's entity: the user, or the job of properties.job_id. Events without an entity
-- id cannot enter or advance a funnel and are left out.

with

funnels as (

    select funnel, entity from {{ ref('funnels') }}

),

steps as (

    select funnel, step_order, event_name from {{ ref('funnel_steps') }}

),

events as (

    select
        message_id,
        event_name,
        user_id,
        {{ json_str('properties', 'job_id') }} as job_id,
        occurred_at,
        received_at,
        dt,
        platform,
        app_version,
        app_namespace
    from {{ ref('stg_events') }}
    where event_name in (select event_name from steps)

),

joined as (

    select
        steps.funnel,
        steps.step_order,
        events.event_name,
        case funnels.entity
            when 'user' then events.user_id
            when 'job' then events.job_id
        end as entity_id,
        events.message_id,
        events.occurred_at,
        events.received_at,
        events.dt,
        events.platform,
        events.app_version,
        coalesce(apps.role, 'unknown') as role
    from events
    inner join steps on steps.event_name = events.event_name
    inner join funnels on funnels.funnel = steps.funnel
    left join {{ ref('apps') }} as apps on apps.app_namespace = events.app_namespace

)

select * from joined
where entity_id is not null
