-- Each exposed user's value of each metric, after and before their first exposure: the unit of
-- experiment analysis. Grain: one row per (experiment, user, metric) for every user in
-- int_experiment_exposures with a single variation (zeros where the user did nothing).
--   post: facts from the first exposure to the experiment's end date (inclusive) or the end of the data;
--   pre:  the same facts in the {{ var('experiment_pre_days', 14) }} days before the first exposure (CUPED's covariate).
-- Metrics: seed experiment_metrics (numerator and, for ratio metrics, denominator facts of int_user_facts).

{% set pre_days = var('experiment_pre_days', 14) %}

with

exposures as (

    select exposures.*, experiments.end_date
    from {{ ref('int_experiment_exposures') }} as exposures
    inner join (select distinct experiment_key, end_date
                from {{ source('experiments', 'experiment_definitions') }}) as experiments
        on experiments.experiment_key = exposures.experiment_key
    where not exposures.multiple_variations

),

per_fact as (

    select
        exposures.experiment_key,
        exposures.user_id,
        facts.fact,
        sum(facts.value) filter (
            where facts.occurred_at >= exposures.first_exposed_at
            and facts.occurred_at < cast(exposures.end_date as timestamptz) + interval 1 day) as post,
        sum(facts.value) filter (where facts.occurred_at < exposures.first_exposed_at) as pre
    from exposures
    inner join {{ ref('int_user_facts') }} as facts
        on facts.user_id = exposures.user_id
        and facts.occurred_at >= exposures.first_exposed_at - interval {{ pre_days }} day
    group by all

)

select
    exposures.experiment_key,
    exposures.user_id,
    exposures.variation_id,
    exposures.first_exposed_at,
    metrics.metric,
    metrics.metric_type,
    coalesce(numerator.post, 0) as numerator,
    case when metrics.metric_type = 'ratio' then coalesce(denominator.post, 0) end as denominator,
    coalesce(numerator.pre, 0) as pre_numerator,
    case when metrics.metric_type = 'ratio' then coalesce(denominator.pre, 0) end as pre_denominator
from exposures
cross join (select * from {{ ref('experiment_metrics') }} where metric_type in ('mean', 'ratio')) as metrics
left join per_fact as numerator
    on numerator.experiment_key = exposures.experiment_key and numerator.user_id = exposures.user_id
    and numerator.fact = metrics.numerator_fact
left join per_fact as denominator
    on denominator.experiment_key = exposures.experiment_key and denominator.user_id = exposures.user_id
    and denominator.fact = metrics.denominator_fact
