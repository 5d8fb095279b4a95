-- The primary metric's summary statistics as the experiment went on: for each day, over the users exposed
-- by the end of that day and their facts up to it. Feeds the cumulative-lift chart. Grain: experiment ×
-- variation × day (from the first exposure to the end date or the end of the data).

with

exposures as (

    select exposures.*, experiments.end_date, experiments.primary_metric
    from {{ ref('int_experiment_exposures') }} as exposures
    inner join (select distinct experiment_key, end_date, primary_metric
                from {{ source('experiments', 'experiment_definitions') }}) as experiments
        on experiments.experiment_key = exposures.experiment_key
    where not exposures.multiple_variations

),

data_end as (

    select cast({{ data_end_at() }} as date) as last_day

),

user_days as (

    select exposures.experiment_key, exposures.user_id, exposures.variation_id, exposures.primary_metric,
           cast(days.day as date) as day
    from exposures
    cross join data_end
    cross join unnest(generate_series(cast(exposures.first_exposed_at as date),
                                      least(exposures.end_date, data_end.last_day), interval 1 day)) as days(day)

),

daily as (

    select
        exposures.experiment_key,
        exposures.user_id,
        cast(facts.occurred_at as date) as day,
        sum(facts.value) filter (where facts.fact = metrics.numerator_fact) as numerator,
        sum(facts.value) filter (where facts.fact = metrics.denominator_fact) as denominator
    from exposures
    inner join {{ ref('experiment_metrics') }} as metrics on metrics.metric = exposures.primary_metric
    inner join {{ ref('int_user_facts') }} as facts
        on facts.user_id = exposures.user_id
        and facts.occurred_at >= exposures.first_exposed_at
        and facts.fact in (metrics.numerator_fact, metrics.denominator_fact)
    group by all

),

cumulative as (

    select
        user_days.*,
        sum(coalesce(daily.numerator, 0)) over running as numerator,
        sum(coalesce(daily.denominator, 0)) over running as denominator
    from user_days
    left join daily
        on daily.experiment_key = user_days.experiment_key and daily.user_id = user_days.user_id
        and daily.day = user_days.day
    window running as (partition by user_days.experiment_key, user_days.user_id order by user_days.day)

)

select
    cumulative.experiment_key,
    cumulative.variation_id,
    any_value(definitions.variation_index) as variation_index,
    any_value(definitions.is_control) as is_control,
    any_value(definitions.weight) as weight,
    cumulative.day,
    cumulative.primary_metric as metric,
    any_value(metrics.metric_type) as metric_type,
    count(*) as users,
    sum(cumulative.numerator) as sum,
    sum(cumulative.numerator * cumulative.numerator) as sum_squares,
    case when any_value(metrics.metric_type) = 'ratio' then sum(cumulative.denominator) end as denominator_sum,
    case when any_value(metrics.metric_type) = 'ratio' then sum(cumulative.denominator * cumulative.denominator) end
        as denominator_sum_squares,
    case when any_value(metrics.metric_type) = 'ratio' then sum(cumulative.numerator * cumulative.denominator) end
        as sum_products
from cumulative
inner join {{ ref('experiment_metrics') }} as metrics on metrics.metric = cumulative.primary_metric
inner join {{ source('experiments', 'experiment_definitions') }} as definitions
    on definitions.experiment_key = cumulative.experiment_key and definitions.variation_id = cumulative.variation_id
group by cumulative.experiment_key, cumulative.variation_id, cumulative.day, cumulative.primary_metric
