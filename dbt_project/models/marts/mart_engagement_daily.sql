-- Daily, weekly and monthly active users per app × platform × role, on every day with activity:
-- DAU counts the day, WAU the 7 days ending on it, MAU the 30 days ending on it (rolling windows, as
-- Amplitude and Firebase count them); stickiness is DAU / MAU.

with

activity as (

    select * from {{ ref('int_user_activity_daily') }}

),

days as (

    select distinct app_namespace, platform, role, day from activity

),

windows as (

    select
        days.day,
        days.app_namespace,
        days.platform,
        days.role,
        count(distinct case when activity.day = days.day then activity.user_key end) as dau,
        count(distinct case when activity.day > {{ dbt.dateadd('day', -7, 'days.day') }} then activity.user_key end) as wau,
        count(distinct activity.user_key) as mau
    from days
    inner join activity
        on activity.app_namespace = days.app_namespace
        and activity.platform is not distinct from days.platform
        and activity.role = days.role
        and activity.day <= days.day
        and activity.day > {{ dbt.dateadd('day', -30, 'days.day') }}
    group by all

)

select
    cast(day as date) as day,
    app_namespace,
    platform,
    role,
    cast(dau as bigint) as dau,
    cast(wau as bigint) as wau,
    cast(mau as bigint) as mau,
    dau / mau as stickiness
from windows
