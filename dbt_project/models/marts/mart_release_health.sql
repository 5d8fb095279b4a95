-- Release health per app × release × platform × day, as Sentry release health and Crashlytics show it:
-- crash-free sessions (sessions not ending crashed), crash-free users (users none of whose sessions
-- crashed that day) and adoption (the release's share of the app's users on that platform that day).

{{ config(**incremental_by_day('day', 'last_arrival_dt')) }}

-- Incremental by day (macros/engine/incremental.sql): a run re-aggregates the start days of the sessions
-- that took in data since the previous run.

with
{% if is_incremental() %}
rebuild as (

    select min(started_on) as from_day
    from {{ ref('fct_sessions') }}
    where last_arrival_dt >= {{ incremental_floor('last_arrival_dt') }}

),
{% endif %}
sessions as (

    select
        app_namespace,
        release,
        app_version,
        platform,
        cast(started_at as date) as day,
        user_key,
        crashed,
        last_arrival_dt
    from {{ ref('fct_sessions') }}
    where release is not null
    {%- if is_incremental() %}
        and started_on >= (select from_day from rebuild)
    {%- endif %}

),

by_release as (

    select
        day,
        app_namespace,
        release,
        app_version,
        platform,
        count(*) as sessions,
        count_if(crashed) as crashed_sessions,
        count(distinct user_key) as users,
        count(distinct case when crashed then user_key end) as crashed_users,
        max(last_arrival_dt) as last_arrival_dt
    from sessions
    group by all

),

app_users as (

    select day, app_namespace, platform, count(distinct user_key) as app_users
    from sessions
    group by all

)

select
    by_release.day,
    by_release.app_namespace,
    by_release.release,
    by_release.app_version,
    by_release.platform,
    cast(by_release.sessions as bigint) as sessions,
    cast(by_release.crashed_sessions as bigint) as crashed_sessions,
    1 - by_release.crashed_sessions / by_release.sessions as crash_free_sessions_rate,
    cast(by_release.users as bigint) as users,
    cast(by_release.crashed_users as bigint) as crashed_users,
    1 - by_release.crashed_users / by_release.users as crash_free_users_rate,
    by_release.users / app_users.app_users as adoption_rate,
    by_release.last_arrival_dt
from by_release
inner join app_users
    on app_users.day = by_release.day
    and app_users.app_namespace = by_release.app_namespace
    and app_users.platform is not distinct from by_release.platform
