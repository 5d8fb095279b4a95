-- Summary statistics of the QUANTILE metrics (seed experiment_metrics, metric_type = 'quantile') per
-- experiment × variation × metric: exactly what gbstats' QuantileClusteredStatistic needs for an event-level
-- quantile with users as clusters (GrowthBook's "event" quantile metrics), as GrowthBook's SQL returns it.
-- Every variation of the experiment's definition has a row (zero events if nobody saw it).
--
-- Events: the metric's event-level fact (numerator_fact) of the exposed users (int_experiment_exposures,
-- one variation only) from their first exposure to the experiment's end date (inclusive), as
-- fct_experiment_user_metrics counts facts; the events are int_user_facts rows of that fact (for the p95
-- latency: api_request_duration_ms, one row per API request with its duration).
--
-- Definitions (GrowthBook back-end, experiment-fact-metric-statistics-cte, quantile-grid-columns,
-- quantile-bound-values, quantile-bounds-from-query-response; gbstats models/statistics.py):
--   quantile_n       n, the arm's events
--   quantile         q̂ = the ν-quantile of the n events, interpolated: PERCENTILE_CONT (GrowthBook's exact
--                    engines), i.e. DuckDB quantile_cont / Spark percentile / numpy's "linear": with the
--                    events sorted x_1 ≤ … ≤ x_n and h = (n − 1)·p, x_(⌊h⌋+1) + (h − ⌊h⌋)·(x_(⌊h⌋+2) − x_(⌊h⌋+1)).
--                    quantile_cont only takes a constant level and the bounds' levels depend on each arm's
--                    n, so this model interpolates between the order statistics itself (the same numbers).
--   quantile_nstar   n*: the largest of 100·2^k (k = 0…19) below n, 100 when n ≤ 100 (GrowthBook computes
--                    the bounds for every n* of that grid and keeps this one)
--   quantile_lower   the quantile at level p_lower = max(ν − z·√(ν(1 − ν)/n*), 1e-8) and quantile_upper at
--   quantile_upper   p_upper = min(ν + z·√(ν(1 − ν)/n*), 1 − 1e-8), z = Φ⁻¹(0.975) = 1.959963984540054 (always a
--                    95 % interval): the number of events below the true quantile is Binomial(n, ν), ≈ normal,
--                    so the order statistics of ranks ≈ n·p_lower and n·p_upper bound a 95 % interval for it.
--   users            the arm's exposed users (as int_experiment_metric_stats.users): gbstats' n_clusters,
--                    GrowthBook's `users` (it counts every exposed user, those without events included)
--   sum, sum_squares                     Σ s_i, Σ s_i²: s_i = the user's events ≤ q̂ (main_sum, main_sum_squares)
--   denominator_sum, _sum_squares        Σ n_i, Σ n_i²: n_i = the user's events (denominator_*; Σ n_i = n)
--   sum_products                         Σ s_i·n_i (main_denominator_sum_product)
-- orchestration/experiments/stats.py (compare_quantile) turns these into the test.

{% set z = 1.959963984540054 %}

with

metrics as (

    select metric, metric_type, numerator_fact, quantile_level
    from {{ ref('experiment_metrics') }}
    where metric_type = 'quantile' and quantile_level > 0 and quantile_level < 1

),

exposures as (

    select exposures.experiment_key, exposures.user_id, exposures.variation_id, exposures.first_exposed_at,
           experiments.end_date
    from {{ ref('int_experiment_exposures') }} as exposures
    inner join (select distinct experiment_key, end_date
                from {{ source('experiments', 'experiment_definitions') }}) as experiments
        on experiments.experiment_key = exposures.experiment_key
    where not exposures.multiple_variations

),

event_facts as (

    select user_id, occurred_at, fact, value
    from {{ ref('int_user_facts') }}
    where fact in (select numerator_fact from metrics) and value is not null

),

events as (

    select exposures.experiment_key, exposures.variation_id, metrics.metric, metrics.quantile_level,
           exposures.user_id, event_facts.value
    from exposures
    inner join event_facts
        on event_facts.user_id = exposures.user_id
        and event_facts.occurred_at >= exposures.first_exposed_at
        and event_facts.occurred_at < cast(exposures.end_date as timestamptz) + interval 1 day
    inner join metrics on metrics.numerator_fact = event_facts.fact

),

ranked as (

    select
        events.*,
        row_number() over (partition by experiment_key, variation_id, metric order by value) as event_rank,
        count(*) over (partition by experiment_key, variation_id, metric) as n
    from events

),

n_star_grid as (

    {% for k in range(20) -%}
    select {{ 100 * 2 ** k }} as n_star {% if not loop.last %}union all {% endif %}
    {% endfor %}

),

arm_sizes as (

    select distinct experiment_key, variation_id, metric, quantile_level, n
    from ranked

),

with_n_star as (

    select arm_sizes.*,
           coalesce(max(case when n_star_grid.n_star < arm_sizes.n then n_star_grid.n_star end), 100) as n_star
    from arm_sizes
    cross join n_star_grid
    group by all

),

levels as (

    -- h = (n − 1)·p for the estimate and the two bounds: the 0-based fractional rank of each
    select
        *,
        greatest(quantile_level - {{ z }} * sqrt(quantile_level * (1 - quantile_level) / n_star), 1e-8) as lower_level,
        least(quantile_level + {{ z }} * sqrt(quantile_level * (1 - quantile_level) / n_star), 0.99999999) as upper_level
    from with_n_star

),

ranks as (

    select *, (n - 1) * quantile_level as h_q, (n - 1) * lower_level as h_lower, (n - 1) * upper_level as h_upper
    from levels

),

quantiles as (

    -- interpolation between the order statistics of ranks ⌊h⌋ + 1 and ⌊h⌋ + 2 (1-based)
    select
        ranks.experiment_key, ranks.variation_id, ranks.metric,
        any_value(ranks.quantile_level) as quantile_level, any_value(ranks.n) as n,
        any_value(ranks.n_star) as n_star,
        any_value(ranks.lower_level) as lower_level, any_value(ranks.upper_level) as upper_level,
        {% for name in ['q', 'lower', 'upper'] -%}
        max(case when ranked.event_rank = floor(ranks.h_{{ name }}) + 1 then ranked.value end)
            + (any_value(ranks.h_{{ name }}) - floor(any_value(ranks.h_{{ name }})))
            * (coalesce(max(case when ranked.event_rank = floor(ranks.h_{{ name }}) + 2 then ranked.value end),
                        max(case when ranked.event_rank = floor(ranks.h_{{ name }}) + 1 then ranked.value end))
               - max(case when ranked.event_rank = floor(ranks.h_{{ name }}) + 1 then ranked.value end))
            as quantile_{{ name }}{% if not loop.last %},{% endif %}
        {% endfor %}
    from ranks
    inner join ranked
        on ranked.experiment_key = ranks.experiment_key and ranked.variation_id = ranks.variation_id
        and ranked.metric = ranks.metric
        and ranked.event_rank between floor(least(ranks.h_q, ranks.h_lower)) + 1
                                  and floor(greatest(ranks.h_q, ranks.h_upper)) + 2
    group by ranks.experiment_key, ranks.variation_id, ranks.metric

),

per_user as (

    -- the clusters: each user's events, and those at or below the arm's quantile
    select events.experiment_key, events.variation_id, events.metric, events.user_id,
           cast(sum(case when events.value <= quantiles.quantile_q then 1 else 0 end) as double) as below,
           cast(count(*) as double) as n_events
    from events
    inner join quantiles
        on quantiles.experiment_key = events.experiment_key and quantiles.variation_id = events.variation_id
        and quantiles.metric = events.metric
    group by all

),

clusters as (

    select experiment_key, variation_id, metric,
           count(*) as users_with_events,
           sum(below) as sum,
           sum(below * below) as sum_squares,
           sum(n_events) as denominator_sum,
           sum(n_events * n_events) as denominator_sum_squares,
           sum(below * n_events) as sum_products
    from per_user
    group by all

),

exposed as (

    select experiment_key, variation_id, count(*) as users
    from exposures
    group by all

)

select
    definitions.experiment_key,
    definitions.variation_id,
    definitions.variation_index,
    definitions.is_control,
    definitions.weight,
    metrics.metric,
    metrics.metric_type,
    metrics.quantile_level,
    coalesce(exposed.users, 0) as users,
    coalesce(clusters.users_with_events, 0) as users_with_events,
    coalesce(quantiles.n, 0) as quantile_n,
    coalesce(quantiles.n_star, 100) as quantile_nstar,
    quantiles.quantile_q as quantile,
    quantiles.lower_level as quantile_lower_level,
    quantiles.quantile_lower,
    quantiles.upper_level as quantile_upper_level,
    quantiles.quantile_upper,
    coalesce(clusters.sum, 0) as sum,
    coalesce(clusters.sum_squares, 0) as sum_squares,
    coalesce(clusters.denominator_sum, 0) as denominator_sum,
    coalesce(clusters.denominator_sum_squares, 0) as denominator_sum_squares,
    coalesce(clusters.sum_products, 0) as sum_products
from {{ source('experiments', 'experiment_definitions') }} as definitions
cross join metrics
left join exposed
    on exposed.experiment_key = definitions.experiment_key and exposed.variation_id = definitions.variation_id
left join quantiles
    on quantiles.experiment_key = definitions.experiment_key and quantiles.variation_id = definitions.variation_id
    and quantiles.metric = metrics.metric
left join clusters
    on clusters.experiment_key = definitions.experiment_key and clusters.variation_id = definitions.variation_id
    and clusters.metric = metrics.metric
