-- Who may be asked for an app-store review now: a serving table the mobile backend reads (it shows the
-- native prompt only to rows with is_eligible). One row per customer-app user with a session; a user is
-- eligible when all of these hold at evaluated_at:
--   1. a job of theirs was completed in the last 7 days,
--   2. and they rated one of those jobs 4 or 5 (their latest CSAT answer about that job),
--   3. none of their last 3 sessions in the app crashed,
--   4. they were not prompted in the last 90 days,
--   5. and were prompted fewer than 3 times in the last 365 days (the iOS limit, applied everywhere).
-- ineligible_reason names the first rule that fails. "Now" is the var `as_of` when given, else the
-- latest receipt of an event: the moment the data describes, so a rebuild of the same data gives the
-- same table.

with

as_of as (

    {% if var('as_of', none) %}
    select cast('{{ var("as_of") }}' as timestamptz) as evaluated_at
    {% else %}
    select max(received_at) as evaluated_at from {{ ref('stg_events') }}
    {% endif %}

),

customer_app as (

    select app_namespace from {{ ref('apps') }} where role = 'customer'

),

sessions as (

    select s.user_id, s.app_namespace, s.platform, s.started_at, s.crashed
    from {{ ref('fct_sessions') }} as s
    cross join as_of
    where s.user_id is not null
        and s.app_namespace in (select app_namespace from customer_app)
        and s.started_at <= as_of.evaluated_at

),

users as (

    select
        user_id,
        app_namespace,
        arg_max(platform, started_at) as platform,
        -- no crash in the last 3 sessions
        bool_or(crashed) filter (where recency <= 3) as crashed_recently
    from (
        select *, row_number() over (partition by user_id, app_namespace order by started_at desc) as recency
        from sessions
    )
    group by all

),

recent_jobs as (

    select jobs.customer_id as user_id, jobs.job_id, jobs.completed_at
    from {{ ref('stg_jobs') }} as jobs
    cross join as_of
    where jobs.completed_at <= as_of.evaluated_at
        and jobs.completed_at > as_of.evaluated_at - interval 7 day

),

latest_rating as (

    select responses.user_id, responses.job_id, responses.score, responses.occurred_at
    from {{ ref('int_survey_responses') }} as responses
    cross join as_of
    where responses.survey_type = 'csat'
        and responses.is_valid_score
        and responses.occurred_at <= as_of.evaluated_at
    qualify row_number() over (partition by responses.user_id, responses.job_id order by responses.occurred_at desc, responses.message_id desc) = 1

),

job_history as (

    select
        recent_jobs.user_id,
        max(recent_jobs.completed_at) as last_job_completed_at,
        arg_max(latest_rating.score, latest_rating.occurred_at) as last_csat_score,
        coalesce(bool_or(latest_rating.score >= 4), false) as rated_4_or_more
    from recent_jobs
    left join latest_rating
        on latest_rating.user_id = recent_jobs.user_id
        and latest_rating.job_id = recent_jobs.job_id
    group by recent_jobs.user_id

),

prompts as (

    select
        events.user_id,
        events.app_namespace,
        max(events.occurred_at) as last_prompted_at,
        count(*) filter (where events.occurred_at > as_of.evaluated_at - interval 365 day) as prompts_last_365d
    from {{ ref('stg_events') }} as events
    cross join as_of
    where events.event_name = 'review_prompt_shown'
        and events.user_id is not null
        and events.occurred_at <= as_of.evaluated_at
    group by all

),

rules as (

    select
        users.user_id,
        users.app_namespace,
        users.platform,
        job_history.last_job_completed_at,
        job_history.last_csat_score,
        coalesce(users.crashed_recently, false) as crashed_recently,
        prompts.last_prompted_at,
        coalesce(prompts.prompts_last_365d, 0) as prompts_last_365d,
        as_of.evaluated_at,
        case
            when job_history.user_id is null then 'no_job_completed_in_last_7_days'
            when not job_history.rated_4_or_more then 'no_csat_of_4_or_more'
            when coalesce(users.crashed_recently, false) then 'crash_in_last_3_sessions'
            when prompts.last_prompted_at > as_of.evaluated_at - interval 90 day then 'prompted_in_last_90_days'
            when coalesce(prompts.prompts_last_365d, 0) >= 3 then 'yearly_prompt_limit_reached'
        end as ineligible_reason
    from users
    cross join as_of
    left join job_history
        on job_history.user_id = users.user_id
    left join prompts
        on prompts.user_id = users.user_id
        and prompts.app_namespace = users.app_namespace

)

select
    user_id,
    app_namespace,
    platform,
    ineligible_reason is null as is_eligible,
    ineligible_reason,
    last_job_completed_at,
    cast(last_csat_score as integer) as last_csat_score,
    crashed_recently,
    last_prompted_at,
    cast(prompts_last_365d as bigint) as prompts_last_365d,
    evaluated_at
from rules
