-- Customer satisfaction with jobs per day × job type × technician: CSAT surveys (1-5) about a job, with
-- the job's service and technician from the backend's jobs. csat_rate is the share of satisfied answers
-- (4 or 5), the usual CSAT %; mean_score the average score. A response about a job the backend extract
-- does not hold (yet) is kept with a null job type and technician.

with

responses as (

    select * from {{ ref('int_survey_responses') }}
    where survey_type = 'csat' and is_valid_score

),

jobs as (

    select job_id, technician_id, service_id from {{ ref('stg_jobs') }}

),

services as (

    select service_id, service_name from {{ ref('stg_service_catalog') }}

),

counted as (

    select
        cast(responses.occurred_at as date) as day,
        jobs.service_id as job_type,
        services.service_name as job_type_name,
        jobs.technician_id,
        count(*) as responses,
        count(*) filter (where responses.score >= 4) as satisfied,
        sum(responses.score) as score_sum
    from responses
    left join jobs
        on jobs.job_id = responses.job_id
    left join services
        on services.service_id = jobs.service_id
    group by all

)

select
    day,
    job_type,
    job_type_name,
    technician_id,
    cast(responses as bigint) as responses,
    cast(satisfied as bigint) as satisfied,
    cast(score_sum as bigint) as score_sum,
    score_sum / responses as mean_score,
    satisfied / responses as csat_rate
from counted
