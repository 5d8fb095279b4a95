-- Crash groups (Sentry issues), one row per app × group. Releases are ranked per app by when their
-- first session started (the order users got them). A group is new in the latest release when that
-- release is the first it was seen in; it regressed when it came back in a newer release after being
-- absent for at least two releases in a row (Crashlytics' "regressed": a closed issue seen again).

with

crashes as (

    select
        group_id,
        split_part(release, '@', 1) as app_namespace,
        release,
        exception_type,
        exception_value,
        crash_frame,
        user_id,
        occurred_at
    from {{ ref('stg_crashes') }}
    where release is not null

),

release_rank as (

    select
        app_namespace,
        release,
        dense_rank() over (partition by app_namespace order by min(started_at), release) as release_rank
    from {{ ref('fct_sessions') }}
    where release is not null
    group by app_namespace, release

),

latest_release as (

    select app_namespace, max(release_rank) as latest_rank
    from release_rank
    group by app_namespace

),

group_releases as (

    select
        crashes.app_namespace,
        crashes.group_id,
        release_rank.release_rank,
        -- releases in between this one and the previous release the group was seen in
        release_rank.release_rank
            - lag(release_rank.release_rank) over (
                partition by crashes.app_namespace, crashes.group_id order by release_rank.release_rank
            ) - 1 as releases_absent_before
    from (select distinct app_namespace, group_id, release from crashes) as crashes
    inner join release_rank
        on release_rank.app_namespace = crashes.app_namespace
        and release_rank.release = crashes.release

),

group_history as (

    select
        app_namespace,
        group_id,
        min(release_rank) as first_release_rank,
        coalesce(max(releases_absent_before) >= 2, false) as regressed
    from group_releases
    group by all

),

groups as (

    select
        app_namespace,
        group_id,
        arg_max(exception_type, occurred_at) as exception_type,
        arg_max(exception_value, occurred_at) as exception_value,
        arg_max(crash_frame, occurred_at) as crash_frame,
        min(occurred_at) as first_seen_at,
        max(occurred_at) as last_seen_at,
        arg_min(release, occurred_at) as first_release,
        arg_max(release, occurred_at) as last_release,
        cast(count(*) as bigint) as events,
        cast(count(distinct user_id) as bigint) as users_affected,
        cast(count(distinct release) as bigint) as releases_affected
    from crashes
    group by all

)

select
    groups.*,
    group_history.first_release_rank = latest_release.latest_rank as new_in_latest_release,
    group_history.regressed
from groups
inner join group_history using (app_namespace, group_id)
inner join latest_release using (app_namespace)
