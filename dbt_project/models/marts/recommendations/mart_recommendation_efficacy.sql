-- Recommendation efficacy: what was shown and what it earned. Grain: ISO week (Monday, UTC) of the exposure
-- × placement × action × model version × policy × experiment × variation, over every logged exposure
-- (int_recommendation_exposures), whether or not its app logged a policy and propensity (null policy = an
-- app version that does not log it). clicked and accepted count exposures credited with a click / an
-- acceptance within 7 days (last touch); a week whose exposures' 7 days are not over can still gain
-- acceptances (shown_label_incomplete says how many exposures are still open). The revenue of an acceptance is
-- the action's value today (dim_actions.action_value = price × margin of its service); null while the service
-- catalog does not hold it. Groups add up by summing counts and revenue, never by averaging rates.
-- The IPS / SNIPS estimates of each action's acceptance are in mart_recommendation_efficacy_ips.

with

exposures as (

    select * from {{ ref('int_recommendation_exposures') }}

),

actions as (

    select action_id, action_value from {{ ref('dim_actions') }}

),

counted as (

    select
        cast({{ dbt.date_trunc('week', 'as_of_date') }} as date) as week_start,
        placement,
        action_id,
        model_version,
        policy,
        experiment_key,
        variation_id,
        count(*) as shown,
        count(clicked_at) as clicked,
        count(*) filter (where accepted) as accepted,
        count(*) filter (where propensity_logged is not null) as shown_with_propensity,
        count(*) filter (where not label_complete) as shown_label_incomplete
    from exposures
    group by all

)

select
    counted.week_start,
    counted.placement,
    counted.action_id,
    counted.model_version,
    counted.policy,
    counted.experiment_key,
    counted.variation_id,
    cast(counted.shown as bigint) as shown,
    cast(counted.clicked as bigint) as clicked,
    cast(counted.accepted as bigint) as accepted,
    cast(counted.shown_with_propensity as bigint) as shown_with_propensity,
    cast(counted.shown_label_incomplete as bigint) as shown_label_incomplete,
    counted.clicked / counted.shown as click_rate,
    counted.accepted / counted.shown as acceptance_rate,
    cast(actions.action_value as double) as action_value,
    cast(counted.accepted * actions.action_value as double) as revenue,
    -- in double: a DECIMAL quotient keeps 6 decimals on Spark and more on DuckDB
    counted.accepted * cast(actions.action_value as double) / counted.shown as revenue_per_impression
from counted
left join actions
    on actions.action_id = counted.action_id
