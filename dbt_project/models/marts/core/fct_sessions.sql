-- One row per app session. The session is the SDK's (context.sessionId); events that carry none are
-- cut into sessions by 30 minutes of inactivity per actor, device and app, as Firebase and Amplitude
-- do. A session crashed when a Sentry event names it (tags.session_id).

{% set inactivity_seconds = 1800 %}

with

events as (

    select
        session_id,
        coalesce(user_id, anonymous_id) as actor_id,
        user_id,
        anonymous_id,
        device_id,
        app_namespace,
        app_version,
        app_build,
        platform,
        event_name,
        occurred_at
    from {{ ref('stg_events') }}

),

without_sdk_session as (

    select
        *,
        case
            when lag(occurred_at) over actor_stream is null then 1
            when {{ epoch_seconds_between('lag(occurred_at) over actor_stream', 'occurred_at') }} > {{ inactivity_seconds }} then 1
            else 0
        end as starts_session
    from events
    where session_id is null
    window actor_stream as (partition by actor_id, device_id, app_namespace order by occurred_at)

),

inferred as (

    select
        * exclude (starts_session),
        sum(starts_session) over (
            partition by actor_id, device_id, app_namespace order by occurred_at
            rows between unbounded preceding and current row
        ) as session_number
    from without_sdk_session

),

sessionized as (

    select *, 'sdk' as session_source from events where session_id is not null
    union all by name
    select
        * exclude (session_id, session_number),
        -- a stable id for an inferred session: its actor, device, app and ordinal
        'inferred-' || {{ dbt.hash("concat_ws('|', actor_id, coalesce(device_id, ''), coalesce(app_namespace, ''), cast(session_number as varchar))") }} as session_id,
        'inactivity' as session_source
    from inferred

),

sessions as (

    select
        session_id,
        any_value(session_source) as session_source,
        -- a session may start anonymous and end identified: keep the identified user
        max(user_id) as user_id,
        min(anonymous_id) as anonymous_id,
        arg_min(device_id, occurred_at) as device_id,
        arg_min(app_namespace, occurred_at) as app_namespace,
        arg_min(app_version, occurred_at) as app_version,
        arg_min(app_build, occurred_at) as app_build,
        arg_min(platform, occurred_at) as platform,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        cast(count_if(event_name = 'app_opened') as bigint) as app_opens
    from sessionized
    group by session_id

),

crashes as (

    select session_id, count(*) as crashes, min(occurred_at) as first_crash_at
    from {{ ref('stg_crashes') }}
    where session_id is not null
    group by session_id

),

final as (

    select
        sessions.session_id,
        sessions.session_source,
        -- the one key engagement and release health count users by
        coalesce(sessions.user_id, sessions.anonymous_id, sessions.device_id) as user_key,
        sessions.user_id,
        sessions.anonymous_id,
        sessions.device_id,
        sessions.app_namespace,
        coalesce(apps.role, 'unknown') as role,
        sessions.app_version,
        sessions.app_build,
        -- the Sentry release naming, so sessions and crashes join on release
        sessions.app_namespace || '@' || sessions.app_version || '+' || sessions.app_build as release,
        sessions.platform,
        sessions.started_at,
        sessions.ended_at,
        {{ epoch_seconds_between('sessions.started_at', 'sessions.ended_at') }} as duration_seconds,
        sessions.events,
        sessions.app_opens,
        coalesce(crashes.crashes, 0) as crashes,
        crashes.session_id is not null as crashed,
        crashes.first_crash_at
    from sessions
    left join crashes on crashes.session_id = sessions.session_id
    left join {{ ref('apps') }} as apps on apps.app_namespace = sessions.app_namespace

)

select * from final
