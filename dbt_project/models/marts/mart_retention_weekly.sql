-- Weekly retention cohorts per app × role: users grouped by the week they were first seen (weeks
-- start on Monday, UTC); week N retention = share of the cohort active in the cohort's week + N.

with

activity as (

    select user_key, app_namespace, role, {{ dbt.date_trunc('week', 'day') }} as week
    from {{ ref('int_user_activity_daily') }}

),

first_seen as (

    select user_key, app_namespace, role, min(week) as cohort_week
    from activity
    group by all

),

cohort_sizes as (

    select app_namespace, role, cohort_week, count(*) as cohort_users
    from first_seen
    group by all

),

retained as (

    select
        first_seen.app_namespace,
        first_seen.role,
        first_seen.cohort_week,
        cast({{ epoch_seconds_between('first_seen.cohort_week', 'activity.week') }} / (7 * 86400) as integer) as week_number,
        count(distinct activity.user_key) as active_users
    from first_seen
    inner join activity
        on activity.user_key = first_seen.user_key
        and activity.app_namespace = first_seen.app_namespace
        and activity.role = first_seen.role
    group by all

)

select
    cast(retained.cohort_week as date) as cohort_week,
    retained.app_namespace,
    retained.role,
    retained.week_number,
    cast(cohort_sizes.cohort_users as bigint) as cohort_users,
    cast(retained.active_users as bigint) as active_users,
    retained.active_users / cohort_sizes.cohort_users as retention
from retained
inner join cohort_sizes
    on cohort_sizes.app_namespace = retained.app_namespace
    and cohort_sizes.role = retained.role
    and cohort_sizes.cohort_week = retained.cohort_week
