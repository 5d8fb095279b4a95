{#- The two-sided 95 % normal quantile, scipy.stats.norm.ppf(0.975) (tests/test_recommendation_efficacy.py checks it). -#}
{%- set z_95 = 1.959963984540054 -%}

-- Off-policy estimates of each action's acceptance (accepted within 7 days of being shown) from the exploration
-- share: the exposures logged with policy = 'explore' and a propensity_logged in (0, 1]. Exposures without a
-- logged propensity (older app versions) and those chosen by the model or the rules are left out: the
-- estimate answers "what share would accept if we showed this action to the people exploration reaches".
-- Grain: action × period, period = 'week' (ISO week, Monday UTC, of the exposure; period_start is its Monday)
-- or 'all' (every exposure; period_start is the first exposure day); period_end is the period's last day with an
-- exploration exposure (never a day still to come).
--
-- With n exploration exposures i in the period, w_i = 1[action_i = a] / propensity_logged_i and y_i = accepted_i:
--   IPS   = Σ w_i y_i / n                 se² = sample variance of (w_i y_i) over the n exposures / n
--   SNIPS = Σ w_i y_i / Σ w_i             se² = Σ w_i² (y_i − SNIPS)² / (Σ w_i)²   (delta method, ratio estimator)
-- and 95 % intervals estimate ± z·se (normal approximation), clipped to [0, 1] for SNIPS and to ≥ 0 for IPS.
-- With uniform propensities SNIPS is the plain acceptance rate and its se the binomial √(p(1 − p)/shown).
-- Sums of w, w·y, w², w²·y are enough (y is 0 or 1, so y² = y), and are kept so periods can be recombined.
-- Like the counts, the latest week can still gain acceptances (label_incomplete exposures are in the estimate).

with

exploration as (

    select
        action_id,
        cast({{ dbt.date_trunc('week', 'as_of_date') }} as date) as week_start,
        as_of_date,
        case when accepted then 1.0 else 0.0 end as y,
        1.0 / propensity_logged as w,
        label_complete
    from {{ ref('int_recommendation_exposures') }}
    where policy = 'explore' and propensity_logged > 0 and propensity_logged <= 1

),

periods as (

    -- every period with its exploration exposures (n counts every action)
    select 'week' as period, week_start as period_start, max(as_of_date) as period_end,
           count(*) as exploration_exposures
    from exploration
    group by week_start
    union all
    select 'all' as period, min(as_of_date) as period_start, max(as_of_date) as period_end,
           count(*) as exploration_exposures
    from exploration
    having count(*) > 0

),

tagged as (

    -- each exploration exposure once per period it belongs to (its week and 'all')
    select 'week' as period, week_start as period_start, action_id, y, w, label_complete from exploration
    union all
    select 'all' as period, (select min(as_of_date) from exploration) as period_start, action_id, y, w, label_complete
    from exploration

),

action_sums as (

    select
        period,
        period_start,
        action_id,
        count(*) as shown,
        count(*) filter (where y = 1) as accepted,
        count(*) filter (where not label_complete) as label_incomplete,
        sum(w) as sum_w,
        sum(w * y) as sum_wy,
        sum(w * w) as sum_w2,
        sum(w * w * y) as sum_w2y
    from tagged
    group by all

),

left_out as (

    select action_id, cast({{ dbt.date_trunc('week', 'as_of_date') }} as date) as week_start
    from {{ ref('int_recommendation_exposures') }}
    where not coalesce(policy = 'explore' and propensity_logged > 0 and propensity_logged <= 1, false)

),

excluded as (

    -- exposures of the action in the period (the week of the exposure, or any) that the estimate leaves out
    select 'week' as period, week_start as period_start, action_id, count(*) as excluded_exposures
    from left_out
    group by all
    union all
    select 'all' as period, (select min(as_of_date) from exploration) as period_start, action_id,
           count(*) as excluded_exposures
    from left_out
    group by all

),

grid as (

    -- every action seen in exploration × every period, so an action never shown in a week has an estimate of 0
    select periods.*, actions.action_id
    from periods
    cross join (select distinct action_id from exploration) as actions

),

estimated as (

    select
        grid.action_id,
        grid.period,
        grid.period_start,
        grid.period_end,
        grid.exploration_exposures,
        coalesce(action_sums.shown, 0) as shown,
        coalesce(action_sums.accepted, 0) as accepted,
        coalesce(action_sums.label_incomplete, 0) as label_incomplete,
        coalesce(action_sums.sum_w, 0) as sum_w,
        coalesce(action_sums.sum_wy, 0) as sum_wy,
        coalesce(action_sums.sum_w2, 0) as sum_w2,
        coalesce(action_sums.sum_w2y, 0) as sum_w2y
    from grid
    left join action_sums
        on action_sums.period = grid.period
        and action_sums.period_start = grid.period_start
        and action_sums.action_id = grid.action_id

),

with_ips as (

    select
        *,
        sum_wy / exploration_exposures as ips_acceptance,
        case when exploration_exposures > 1 then sqrt(greatest(
            (sum_w2y - sum_wy * sum_wy / exploration_exposures) / (exploration_exposures - 1), 0
        ) / exploration_exposures) end as ips_se,
        case when sum_w > 0 then sum_wy / sum_w end as snips_acceptance
    from estimated

),

with_snips as (

    select
        *,
        case when sum_w > 0 then sqrt(greatest(
            ((1 - 2 * snips_acceptance) * sum_w2y + snips_acceptance * snips_acceptance * sum_w2) / (sum_w * sum_w), 0
        )) end as snips_se
    from with_ips

)

select
    with_snips.action_id,
    with_snips.period,
    with_snips.period_start,
    with_snips.period_end,
    cast(with_snips.exploration_exposures as bigint) as exploration_exposures,
    cast(with_snips.shown as bigint) as shown,
    cast(with_snips.accepted as bigint) as accepted,
    cast(with_snips.label_incomplete as bigint) as label_incomplete,
    cast(coalesce(excluded.excluded_exposures, 0) as bigint) as excluded_exposures,
    cast(with_snips.sum_w as double) as sum_w,
    cast(with_snips.sum_wy as double) as sum_wy,
    cast(with_snips.sum_w2 as double) as sum_w2,
    cast(with_snips.sum_w2y as double) as sum_w2y,
    cast(case when with_snips.sum_w2 > 0 then with_snips.sum_w * with_snips.sum_w / with_snips.sum_w2 end as double)
        as effective_sample_size,
    cast(with_snips.ips_acceptance as double) as ips_acceptance,
    cast(with_snips.ips_se as double) as ips_se,
    cast(case when with_snips.ips_se is not null
        then greatest(with_snips.ips_acceptance - {{ z_95 }} * with_snips.ips_se, 0) end as double) as ips_ci_low,
    cast(with_snips.ips_acceptance + {{ z_95 }} * with_snips.ips_se as double) as ips_ci_high,
    cast(with_snips.snips_acceptance as double) as snips_acceptance,
    cast(with_snips.snips_se as double) as snips_se,
    cast(case when with_snips.snips_se is not null
        then greatest(with_snips.snips_acceptance - {{ z_95 }} * with_snips.snips_se, 0) end as double) as snips_ci_low,
    cast(case when with_snips.snips_se is not null
        then least(with_snips.snips_acceptance + {{ z_95 }} * with_snips.snips_se, 1) end as double) as snips_ci_high
from with_snips
left join excluded
    on excluded.period = with_snips.period
    and excluded.period_start = with_snips.period_start
    and excluded.action_id = with_snips.action_id
