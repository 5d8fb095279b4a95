-- Everyone the apps serve, with the attributes feature flags and experiments target (experiments/flags.yaml):
-- role and region from the service backend, platform and app version of the user's latest session.
-- The one place these attributes are defined: recommendation placements and experiment assignment read it.

with

people as (

    select customer_id as user_id, 'customer' as role, region, created_at from {{ ref('stg_customers') }}
    union all
    select technician_id as user_id, 'technician' as role, region, hired_at as created_at from {{ ref('stg_technicians') }}

),

latest_session as (

    select
        user_id,
        max_by(platform, started_at) as platform,
        max_by(app_version, started_at) as app_version,
        min(started_at) as first_seen_at,
        max(started_at) as last_seen_at,
        count(*) as sessions
    from {{ ref('fct_sessions') }}
    where user_id is not null
    group by user_id

)

select
    people.user_id,
    people.role,
    people.region,
    latest_session.platform,
    latest_session.app_version,
    people.created_at,
    latest_session.first_seen_at,
    latest_session.last_seen_at,
    coalesce(latest_session.sessions, 0) as sessions
from people
left join latest_session on latest_session.user_id = people.user_id
