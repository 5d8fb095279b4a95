-- Net Promoter Score per ISO week (Monday) × app × role × region × app version. Every valid response
-- counts (promoters 9-10, passives 7-8, detractors 0-6); NPS = 100 × (promoters − detractors) / responses,
-- so groups add up by summing the counts, never by averaging NPS. Responses with an invalid score are
-- counted apart (invalid_responses) and stay out of NPS.

with

responses as (

    select * from {{ ref('int_survey_responses') }}
    where survey_type = 'nps'

),

regions as (

    select customer_id as user_id, region from {{ ref('stg_customers') }}
    union all
    select technician_id as user_id, region from {{ ref('stg_technicians') }}

),

counted as (

    select
        cast(date_trunc('week', responses.occurred_at) as date) as week_start,
        responses.app_namespace,
        responses.role,
        regions.region,
        responses.app_version,
        count(*) filter (where responses.is_valid_score) as responses,
        count(*) filter (where responses.is_valid_score and responses.score >= 9) as promoters,
        count(*) filter (where responses.is_valid_score and responses.score between 7 and 8) as passives,
        count(*) filter (where responses.is_valid_score and responses.score <= 6) as detractors,
        count(*) filter (where not responses.is_valid_score) as invalid_responses
    from responses
    left join regions
        on regions.user_id = responses.user_id
    group by all

)

select
    week_start,
    app_namespace,
    role,
    region,
    app_version,
    cast(responses as bigint) as responses,
    cast(promoters as bigint) as promoters,
    cast(passives as bigint) as passives,
    cast(detractors as bigint) as detractors,
    cast(invalid_responses as bigint) as invalid_responses,
    case when responses > 0 then 100.0 * (promoters - detractors) / responses end as nps
from counted
