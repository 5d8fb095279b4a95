-- Summary statistics per experiment × variation × metric over the exposed users: what the stats engine
-- (orchestration/experiments/stats.py, gbstats' definitions) needs, and nothing per user. Every variation
-- of the experiment's definition has a row, with zero users if nobody saw it (the sample-ratio check
-- needs it). Pre-period sums (CUPED) for mean metrics only: gbstats has no regression adjustment for ratios.

with

stats as (

    select
        experiment_key,
        variation_id,
        metric,
        any_value(metric_type) as metric_type,
        count(*) as users,
        sum(numerator) as sum,
        sum(numerator * numerator) as sum_squares,
        sum(denominator) as denominator_sum,
        sum(denominator * denominator) as denominator_sum_squares,
        sum(numerator * denominator) as sum_products,
        sum(pre_numerator) as pre_sum,
        sum(pre_numerator * pre_numerator) as pre_sum_squares,
        sum(numerator * pre_numerator) as post_pre_sum_products
    from {{ ref('fct_experiment_user_metrics') }}
    group by experiment_key, variation_id, metric

)

select
    definitions.experiment_key,
    definitions.variation_id,
    definitions.variation_index,
    definitions.is_control,
    definitions.weight,
    metrics.metric,
    metrics.metric_type,
    coalesce(stats.users, 0) as users,
    coalesce(stats.sum, 0) as sum,
    coalesce(stats.sum_squares, 0) as sum_squares,
    case when metrics.metric_type = 'ratio' then coalesce(stats.denominator_sum, 0) end as denominator_sum,
    case when metrics.metric_type = 'ratio' then coalesce(stats.denominator_sum_squares, 0) end as denominator_sum_squares,
    case when metrics.metric_type = 'ratio' then coalesce(stats.sum_products, 0) end as sum_products,
    case when metrics.metric_type = 'mean' then coalesce(stats.pre_sum, 0) end as pre_sum,
    case when metrics.metric_type = 'mean' then coalesce(stats.pre_sum_squares, 0) end as pre_sum_squares,
    case when metrics.metric_type = 'mean' then coalesce(stats.post_pre_sum_products, 0) end as post_pre_sum_products
from {{ source('experiments', 'experiment_definitions') }} as definitions
cross join (select * from {{ ref('experiment_metrics') }} where metric_type in ('mean', 'ratio')) as metrics
left join stats
    on stats.experiment_key = definitions.experiment_key
    and stats.variation_id = definitions.variation_id
    and stats.metric = metrics.metric
