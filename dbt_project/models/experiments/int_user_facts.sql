-- What each user did, as timestamped facts: the building blocks of experiment metrics (seed
-- experiment_metrics names a numerator fact and, for ratios, a denominator fact). Grain: one row per
-- (user, time, fact). Each fact reuses the warehouse's one definition of the thing it counts.
--   recs_shown, recs_accepted, rec_revenue   int_recommendation_exposures (an acceptance within 7 days of
--                                            the exposure, at the exposure's time; revenue = action value)
--   jobs_scheduled, jobs_completed           stg_jobs, at the slot, for the customer and the technician
--   sessions, crash_free_sessions            fct_sessions
--   api_request_duration_ms                  fct_api_requests of the user's sessions: one per request, its duration
--   nps_responses, nps_points                int_survey_responses (valid NPS answers; +100 / 0 / −100)
--   job_ratings, job_rating_points           int_survey_responses (valid CSAT answers about a job: 1 to 5)
-- Only what happened by the end of the data (the latest event): a job booked for next week is no outcome yet.

with

data_end as (

    select {{ data_end_at() }} as last_event_at

),

exposures as (

    select exposures.user_id, exposures.shown_at as occurred_at, exposures.accepted, actions.action_value
    from {{ ref('int_recommendation_exposures') }} as exposures
    left join {{ ref('dim_actions') }} as actions on actions.action_id = exposures.action_id

),

jobs as (

    select customer_id as user_id, scheduled_for as occurred_at, completed_at is not null as completed
    from {{ ref('stg_jobs') }}
    where scheduled_for <= (select last_event_at from data_end) and customer_id is not null
    union all
    select technician_id as user_id, scheduled_for as occurred_at, completed_at is not null as completed
    from {{ ref('stg_jobs') }}
    where scheduled_for <= (select last_event_at from data_end) and technician_id is not null

),

sessions as (

    select user_id, started_at as occurred_at, crashed
    from {{ ref('fct_sessions') }}
    where user_id is not null

),

requests as (

    select sessions.user_id, requests.started_at as occurred_at, requests.duration_ms
    from {{ ref('fct_api_requests') }} as requests
    inner join {{ ref('fct_sessions') }} as sessions on sessions.session_id = requests.session_id
    where sessions.user_id is not null

),

nps as (

    select user_id, occurred_at,
           case when score >= 9 then 100.0 when score <= 6 then -100.0 else 0.0 end as points
    from {{ ref('int_survey_responses') }}
    where survey_type = 'nps' and is_valid_score and user_id is not null

),

ratings as (

    select user_id, occurred_at, cast(score as double) as score
    from {{ ref('int_survey_responses') }}
    where survey_type = 'csat' and is_valid_score and user_id is not null

)

select user_id, occurred_at, 'recs_shown' as fact, 1.0 as value from exposures
union all
select user_id, occurred_at, 'recs_accepted', 1.0 from exposures where accepted
union all
select user_id, occurred_at, 'rec_revenue', cast(coalesce(action_value, 0) as double) from exposures where accepted
union all
select user_id, occurred_at, 'jobs_scheduled', 1.0 from jobs
union all
select user_id, occurred_at, 'jobs_completed', 1.0 from jobs where completed
union all
select user_id, occurred_at, 'sessions', 1.0 from sessions
union all
select user_id, occurred_at, 'crash_free_sessions', 1.0 from sessions where not crashed
union all
select user_id, occurred_at, 'api_request_duration_ms', cast(duration_ms as double) from requests where duration_ms is not null
union all
select user_id, occurred_at, 'nps_responses', 1.0 from nps
union all
select user_id, occurred_at, 'nps_points', points from nps
union all
select user_id, occurred_at, 'job_ratings', 1.0 from ratings
union all
select user_id, occurred_at, 'job_rating_points', score from ratings
