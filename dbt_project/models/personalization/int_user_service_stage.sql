-- Where each user is in a service visit at the end of the data (the moment ui_layouts is built for), one
-- row per dim_users row. First matching stage wins:
--   customer    awaiting_approval  an estimate sent for an open job of theirs (slot in the last 7 days or
--                                  later) and not approved yet
--               in_service         a job of theirs started in the last day and not completed
--               booked             a job of theirs scheduled from now on
--               post_job           a job of theirs completed in the last 7 days
--               none               otherwise
--   technician  on_site            a job of theirs started in the last day and not completed
--               assigned           a job of theirs scheduled in the next 24 hours
--               off_shift          otherwise

with

as_of as (

    select {{ data_end_at() }} as now

),

jobs as (

    select jobs.*, as_of.now
    from {{ ref('stg_jobs') }} as jobs
    cross join as_of
    where jobs.cancelled_at is null or jobs.cancelled_at > as_of.now

),

estimates as (

    select
        {{ json_str('properties', 'job_id') }} as job_id,
        bool_or(event_name = 'estimate_sent') as sent,
        bool_or(event_name = 'estimate_approved') as approved
    from {{ ref('stg_events') }}
    where event_name in ('estimate_sent', 'estimate_approved')
    group by 1

),

customer_stage as (

    select
        jobs.customer_id as user_id,
        case
            when bool_or(estimates.sent and not coalesce(estimates.approved, false)
                         and jobs.scheduled_for > jobs.now - interval 7 day
                         and (jobs.completed_at is null or jobs.completed_at > jobs.now)) then 'awaiting_approval'
            when bool_or(jobs.started_at <= jobs.now and jobs.started_at > jobs.now - interval 1 day
                         and (jobs.completed_at is null or jobs.completed_at > jobs.now)) then 'in_service'
            when bool_or(jobs.scheduled_for >= jobs.now and jobs.started_at is null) then 'booked'
            when bool_or(jobs.completed_at <= jobs.now and jobs.completed_at > jobs.now - interval 7 day) then 'post_job'
        end as service_stage
    from jobs
    left join estimates on estimates.job_id = jobs.job_id
    group by jobs.customer_id

),

technician_stage as (

    select
        technician_id as user_id,
        case
            when bool_or(started_at <= now and (completed_at is null or completed_at > now)
                         and started_at > now - interval 1 day) then 'on_site'
            when bool_or(scheduled_for >= now and scheduled_for < now + interval 1 day) then 'assigned'
        end as service_stage
    from jobs
    group by technician_id

)

select
    users.user_id,
    users.role,
    users.region,
    coalesce(
        case when users.role = 'customer' then customer_stage.service_stage else technician_stage.service_stage end,
        case when users.role = 'customer' then 'none' else 'off_shift' end
    ) as service_stage,
    (select now from as_of) as as_of
from {{ ref('dim_users') }} as users
left join customer_stage on customer_stage.user_id = users.user_id and users.role = 'customer'
left join technician_stage on technician_stage.user_id = users.user_id and users.role = 'technician'
