-- One row per app session. The session is the SDK's (context.sessionId); events that carry none are
-- cut into sessions by 30 minutes of inactivity per actor, device and app, as Firebase and Amplitude
-- do. A session crashed when a Sentry event names it (tags.session_id).

{{ config(**incremental_by_day('started_on', 'last_arrival_dt')) }}

-- Incremental by session start day (macros/engine/incremental.sql): a run rebuilds the start days of the
-- events that arrived since the previous run, reading one more day before them so a session that ran
-- over midnight is seen whole. (A session that started earlier and got events late keeps its first cut.)

{% set inactivity_seconds = 1800 %}

with
{% if is_incremental() %}
rebuild as (

    -- the first event day among the events that arrived since the latest arrival day already in
    -- the model (that day included: it may have received more since)
    select min(cast(occurred_at as date)) as from_day
    from {{ ref('stg_events') }}
    where dt >= {{ incremental_floor('last_arrival_dt') }}

),
{% endif %}
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
        occurred_at,
        dt
    from {{ ref('stg_events') }}
    {%- if is_incremental() %}
    where occurred_at >= (select {{ dbt.dateadd('day', -1, 'from_day') }} from rebuild)
    {%- endif %}

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
        actor_id,
        user_id,
        anonymous_id,
        device_id,
        app_namespace,
        app_version,
        app_build,
        platform,
        event_name,
        occurred_at,
        dt,
        -- the session's first event: the latest event so far that started a session
        max(case when starts_session = 1 then occurred_at end) over (
            partition by actor_id, device_id, app_namespace order by occurred_at
            rows between unbounded preceding and current row
        ) as session_started_at
    from without_sdk_session

),

sessionized as (

    select
        session_id, actor_id, user_id, anonymous_id, device_id, app_namespace, app_version, app_build,
        platform, event_name, occurred_at, dt,
        'sdk' as session_source
    from events
    where session_id is not null

    union all

    select
        -- a stable id for an inferred session: its actor, device, app and first event time (the same
        -- whichever run cuts it)
        'inferred-' || {{ dbt.hash("concat_ws('|', actor_id, coalesce(device_id, ''), coalesce(app_namespace, ''), cast(" ~ epoch_micros('session_started_at') ~ " as " ~ dbt.type_string() ~ "))") }} as session_id,
        actor_id, user_id, anonymous_id, device_id, app_namespace, app_version, app_build,
        platform, event_name, occurred_at, dt,
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
        min_by(device_id, occurred_at) as device_id,
        min_by(app_namespace, occurred_at) as app_namespace,
        min_by(app_version, occurred_at) as app_version,
        min_by(app_build, occurred_at) as app_build,
        min_by(platform, occurred_at) as platform,
        min(occurred_at) as started_at,
        max(occurred_at) as ended_at,
        count(*) as events,
        cast(count_if(event_name = 'app_opened') as bigint) as app_opens,
        max(dt) as last_arrival_dt
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
        crashes.first_crash_at,
        sessions.last_arrival_dt,
        cast(sessions.started_at as date) as started_on
    from sessions
    left join crashes on crashes.session_id = sessions.session_id
    left join {{ ref('apps') }} as apps on apps.app_namespace = sessions.app_namespace

)

select * from final
{%- if is_incremental() %}
where started_on >= (select from_day from rebuild)
    -- a session already kept on an earlier day (one that ran for more than a day) keeps that row
    and not exists (
        select 1 from {{ this }} as kept
        where kept.session_id = final.session_id
            and kept.started_on < (select from_day from rebuild)
    )
{%- endif %}
