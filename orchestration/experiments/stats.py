"""Frequentist A/B results from summary statistics, with the definitions of GrowthBook's gbstats 0.8.0.

Inputs are sums over users, one value per user in the post-exposure window (the warehouse computes them):
`users` n, `sum` Σy, `sum_squares` Σy²; ratio metrics add the denominator's Σd, Σd² and `sum_products`
Σy·d; CUPED adds the same metric in the pre-exposure window, Σx, Σx² and `post_pre_sum_products` Σy·x.

Per arm (gbstats `models/statistics.py`):
- mean metric (`SampleMeanStatistic`): mean ȳ = Σy/n; per-user variance s² = (Σy² − (Σy)²/n)/(n − 1).
- ratio metric (`RatioStatistic`): R = Σy/Σd; per-user delta-method variance
  s² = var(y)/d̄² − 2·cov(y, d)·ȳ/d̄³ + ȳ²·var(d)/d̄⁴, with ȳ = Σy/n, d̄ = Σd/n and the sample
  (n − 1) variances and covariance from the sums.
- CUPED (`RegressionAdjustedStatistic`, `compute_theta`): θ = cov(y, x)/var(x) computed ONCE on both arms
  pooled (their sums added, one sample of n_c + n_t users, not within-arm); the adjusted mean is ȳ − θ·x̄
  and s² = var(y) + θ²·var(x) − 2θ·cov(y, x) per arm. When the pooled var(x) or var(y) is 0, θ = 0 and
  the plain estimate is used (gbstats reverts the same way).
- the variance of an arm's mean (reported as `*_variance`) is s²/n.

Comparison of treatment (t) with control (c) (gbstats `frequentist/tests.py`, `TwoSidedTTest`):
- absolute lift Δ = m_t − m_c (adjusted means under CUPED), variance V = s²_t/n_t + s²_c/n_c;
- relative lift Δ/ȳ_c, i.e. treatment/control − 1 without CUPED; under CUPED the numerator is the
  adjusted difference and the denominator the UNadjusted control mean, as in gbstats. Its variance is
  gbstats' delta method s²_t/(ȳ_c²·n_t) + s²_c·ȳ_t²/(ȳ_c⁴·n_c), with the unadjusted means ȳ (R for ratio
  metrics) and the (adjusted) per-user variances s²; it ignores the covariance of numerator and
  denominator, as gbstats does;
- degrees of freedom: Welch–Satterthwaite, (s²_t/n_t + s²_c/n_c)² / Σ (s²/n)²/(n − 1), the same for both;
- two-sided (1 − alpha) interval: estimate ± t.ppf(1 − alpha/2, dof)·√variance;
  p-value 2·t.sf(|estimate|/√variance, dof).
Quantile metrics (gbstats `QuantileClusteredStatistic`, GrowthBook's "event" quantiles; `compare_quantile`):
the ν-quantile of all the events (e.g. API requests) of an arm's users, the users being clusters of events.
- estimate q̂: the interpolated sample quantile of the n events (PERCENTILE_CONT / DuckDB `quantile_cont` /
  numpy's default "linear" method, as GrowthBook's SQL on exact engines);
- GrowthBook's SQL also returns the quantiles at the levels ν ± z·√(ν(1−ν)/n*) (z = Φ⁻¹(0.975), always,
  whatever the test's alpha; clipped to [1e-8, 1 − 1e-8]): the normal approximation of the binomial
  count of events below the true quantile, i.e. the order statistics of ranks ≈ n·(ν ± z·√(ν(1−ν)/n*))
  that bound a 95 % interval. n* is the largest of 100·2^k (k = 0…19) below n (100 when n ≤ 100): a
  grid, because SQL computes the bounds for every n* and the reader picks one (`quantile_interval_levels`);
- i.i.d. per-event variance s²_iid = (n*/n)·(n − 1)·((q_upper − q_lower)/(2z))² (the interval's width
  as a standard error, rescaled to one event);
- clustered: s² = s²_iid · V_c / (ν(1−ν)/n), with V_c the delta-method variance of the share of events
  ≤ q̂ as a ratio metric over users: per user s_i = events ≤ q̂, n_i = events, V_c =
  (var(s) − 2·(s̄/n̄)·cov(s, n) + (s̄/n̄)²·var(n))/(n_c·n̄²) over the n_c users of the arm (GrowthBook's
  `users`: every exposed user, those without events included; they only enter through n_c/(n_c − 1));
  s² = 0 when n ≤ 1, n_c ≤ 1 or Σn_i ≤ 0; without cluster sums the i.i.d. one (`QuantileStatistic`);
- the variance used is s² for n < 100 events, max(s², 1e-5) from 100 on; the arm is uninformative (gbstats'
  `_has_zero_variance`) when n ≤ z²·ν/(1 − ν) or n ≤ z²·(1 − ν)/ν (a p95 needs 73 events), or s² ≤ 0
  with n < 1000;
- then the same two-sided test as above with n = EVENTS: V = s²_t/n_t + s²_c/n_c, Welch–Satterthwaite
  degrees of freedom over events, relative lift (q̂_t − q̂_c)/q̂_c with the same delta method.
Sample ratio mismatch: Pearson's χ² of the users per variation against the expected split, k − 1 degrees
of freedom (gbstats `utils.check_srm`), via `scipy.stats.chisquare`; flagged at p < 0.001.

Deliberate differences from gbstats 0.8.0 (tests/test_experiment_stats.py checks everything else against
it to 1e-6, and checks these relations):
- `p_value` and `significant` are those of the ABSOLUTE test, i.e. Welch's t-test (equal to
  `scipy.stats.ttest_ind(equal_var=False)` on the per-user values). gbstats reports the p-value of its
  configured difference type, "relative" by default: that one is `relative_p_value`. The relative
  variance is not a rescaling of the absolute one, so the two can differ noticeably with small or unequal
  arms (0.057 against 0.027 in one of the tests' ratio cases).
- p-values use `t.sf` where gbstats computes 1 − t.cdf: equal up to ~1e-16 absolute, but gbstats rounds
  p-values below ~1e-16 to 0.
- Where gbstats returns its "uninformative" default (lift 0, CI [0, 0], p 1 and an error message), we
  return NaN (null in `results_frame`) with the reason in `error`: when either arm has n < 2, a
  per-user variance ≤ 0 (`zero_variance_arm` names the arm: gbstats' `_has_zero_variance`) or (ratio) a
  denominator sum of 0. A control mean ≤ 0 only makes the RELATIVE quantities NaN: divided by a negative
  mean the relative lift has the wrong sign, and gbstats' `process_single_metric` reports no estimate
  there either (its TwoSidedTTest blanks everything for a mean of exactly 0, but computes the sign-flipped
  lift for a negative one); an adjusted control mean of 0 is no problem here (gbstats blanks the result).
- Binary metrics are mean metrics with sum_squares = sum: s² = p(1 − p)·n/(n − 1), gbstats'
  `SampleMeanStatistic`; gbstats' `ProportionStatistic` ("binomial") uses p(1 − p), n/(n − 1) smaller.
- CUPED for ratio metrics: gbstats 0.8.0 has none (regression adjustment exists for "mean_ra" only), so
  `compare(ratio=True, cuped=True)` raises and `results_frame` leaves the ratio rows' `cuped_*` null.
- quantile metrics: uninformative arms give NaN and an `error` as above; a control quantile of 0 only
  blanks the relative lift (gbstats blanks everything). `control_users`/`treatment_users` of a quantile
  comparison are the arms' users (clusters, the exposures as for every other metric) and
  `control_events`/`treatment_events` the n the test runs on.
- `srm_check` refuses weights ≤ 0 (gbstats skips such arms in χ² but still counts them in the degrees
  of freedom).
Not implemented: gbstats' Bayesian engine, sequential testing, one-sided tests, "scaled" differences,
unit-level quantiles ("quantile_unit": `compare_quantile` without cluster sums is its statistic, but
nothing here computes per-user values' quantiles).
Numerics: variances come from sums (Σy² − (Σy)²/n), which lose digits when the mean is huge compared with
the spread; that is the warehouse contract, and gbstats computes the same way.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import polars as pl
from scipy import stats as sps

SRM_P_THRESHOLD = 0.001

_NAN = float("nan")


@dataclass(frozen=True)
class VariationStats:
    """Summary statistics of one variation for one metric, over its exposed users (one value per user)."""

    users: int
    sum: float
    sum_squares: float
    # ratio metrics: the denominator, and Σ numerator·denominator per user
    denominator_sum: float | None = None
    denominator_sum_squares: float | None = None
    sum_products: float | None = None
    # CUPED: the same metric per user in the pre-exposure window, and Σ post·pre per user
    pre_sum: float | None = None
    pre_sum_squares: float | None = None
    post_pre_sum_products: float | None = None


@dataclass(frozen=True)
class Comparison:
    """Treatment against control for one metric.

    `*_mean` are the estimates compared (CUPED-adjusted when `cuped`), `*_unadjusted_mean` the plain ones;
    `*_variance` is the variance of that mean (per-user variance / users). NaN marks what cannot be
    computed, with the reason in `error`.
    """

    control_users: int
    treatment_users: int
    control_mean: float
    treatment_mean: float
    control_unadjusted_mean: float
    treatment_unadjusted_mean: float
    control_variance: float
    treatment_variance: float
    dof: float
    absolute_lift: float
    absolute_ci_low: float
    absolute_ci_high: float
    relative_lift: float
    relative_ci_low: float
    relative_ci_high: float
    p_value: float
    relative_p_value: float
    significant: bool
    cuped: bool
    theta: float
    alpha: float
    error: str | None = None
    # quantile metrics: the events each arm's quantile is over (None for mean and ratio metrics)
    control_events: int | None = None
    treatment_events: int | None = None
    # "control", "treatment" or "both": the arm(s) whose per-user (quantile: per-event) variance is ≤ 0, so that
    # nothing can be tested (gbstats' `_has_zero_variance`); e.g. a metric that dropped to 0 for every user
    zero_variance_arm: str | None = None


@dataclass(frozen=True)
class QuantileStats:
    """Summary statistics of one variation for a quantile metric (GrowthBook's query row for an event
    quantile: quantile_n, quantile_nstar, quantile, quantile_lower, quantile_upper, users and the cluster
    sums main_sum, main_sum_squares, denominator_sum, denominator_sum_squares, main_denominator_sum_product).

    The cluster sums are over users: s_i = the user's events ≤ `quantile`, n_i = the user's events; leave
    them None for i.i.d. events (gbstats' unclustered `QuantileStatistic`)."""

    level: float  # ν, e.g. 0.95
    events: int  # n, events of the arm
    n_star: int  # the grid n* the bounds were computed for (`quantile_n_star`)
    quantile: float  # q̂ (NaN or None when there are no events)
    quantile_lower: float  # quantile at level ν − z·√(ν(1−ν)/n*)
    quantile_upper: float  # quantile at level ν + z·√(ν(1−ν)/n*)
    users: int  # clusters n_c: the arm's users (GrowthBook counts every exposed user)
    sum: float | None = None  # Σ s_i
    sum_squares: float | None = None  # Σ s_i²
    denominator_sum: float | None = None  # Σ n_i (= events)
    denominator_sum_squares: float | None = None  # Σ n_i²
    sum_products: float | None = None  # Σ s_i·n_i


@dataclass(frozen=True)
class _Arm:
    n: int
    mean: float  # the estimate compared (adjusted under CUPED)
    unadjusted_mean: float
    variance: float  # per user


def _variance(n: int, total: float, total_squares: float) -> float:
    return 0.0 if n <= 1 else (total_squares - total * total / n) / (n - 1)


def _covariance(n: int, sum_x: float, sum_y: float, sum_xy: float) -> float:
    return 0.0 if n <= 1 else (sum_xy - sum_x * sum_y / n) / (n - 1)


def _require(stats: VariationStats, names: tuple[str, ...], what: str) -> None:
    missing = [name for name in names if getattr(stats, name) is None]
    if missing:
        raise ValueError(f"{what} needs {', '.join(missing)}")


_RATIO_FIELDS = ("denominator_sum", "denominator_sum_squares", "sum_products")
_PRE_FIELDS = ("pre_sum", "pre_sum_squares", "post_pre_sum_products")


def _mean_arm(s: VariationStats) -> _Arm:
    mean = s.sum / s.users if s.users > 0 else _NAN
    return _Arm(s.users, mean, mean, _variance(s.users, s.sum, s.sum_squares))


def _ratio_arm(s: VariationStats) -> _Arm:
    n = s.users
    if n <= 0 or s.denominator_sum == 0:
        return _Arm(n, _NAN, _NAN, 0.0)
    ratio = s.sum / s.denominator_sum
    if n <= 1:
        return _Arm(n, ratio, ratio, 0.0)
    m_mean, d_mean = s.sum / n, s.denominator_sum / n
    var_m = _variance(n, s.sum, s.sum_squares)
    var_d = _variance(n, s.denominator_sum, s.denominator_sum_squares)
    cov = _covariance(n, s.sum, s.denominator_sum, s.sum_products)
    variance = var_m / d_mean**2 - 2 * cov * m_mean / d_mean**3 + m_mean**2 * var_d / d_mean**4
    return _Arm(n, ratio, ratio, variance)


def cuped_theta(control: VariationStats, treatment: VariationStats) -> float:
    """gbstats' `compute_theta`: the regression slope of post on pre over both arms pooled; 0 when the
    pooled pre or post variance is 0 (no adjustment)."""
    for s in (control, treatment):
        _require(s, _PRE_FIELDS, "CUPED")
    n = control.users + treatment.users
    var_post = _variance(n, control.sum + treatment.sum, control.sum_squares + treatment.sum_squares)
    var_pre = _variance(n, control.pre_sum + treatment.pre_sum, control.pre_sum_squares + treatment.pre_sum_squares)
    if var_pre == 0 or var_post == 0:
        return 0.0
    cov = _covariance(
        n,
        control.sum + treatment.sum,
        control.pre_sum + treatment.pre_sum,
        control.post_pre_sum_products + treatment.post_pre_sum_products,
    )
    return cov / var_pre


def _cuped_arm(s: VariationStats, theta: float) -> _Arm:
    n = s.users
    post_mean = s.sum / n if n > 0 else _NAN
    pre_mean = s.pre_sum / n if n > 0 else _NAN
    variance = (
        0.0
        if n <= 1
        else _variance(n, s.sum, s.sum_squares)
        + theta**2 * _variance(n, s.pre_sum, s.pre_sum_squares)
        - 2 * theta * _covariance(n, s.sum, s.pre_sum, s.post_pre_sum_products)
    )
    return _Arm(n, post_mean - theta * pre_mean, post_mean, variance)


_BLANK = dict(
    dof=_NAN, absolute_lift=_NAN, absolute_ci_low=_NAN, absolute_ci_high=_NAN, relative_lift=_NAN,
    relative_ci_low=_NAN, relative_ci_high=_NAN, p_value=_NAN, relative_p_value=_NAN, significant=False,
)


def _two_sided(estimate: float, variance: float, dof: float, alpha: float) -> tuple[float, float, float]:
    """(CI low, CI high, p-value) of a two-sided t-test of estimate = 0."""
    se = math.sqrt(variance)
    width = float(sps.t.ppf(1 - alpha / 2, dof)) * se
    p_value = float(2 * sps.t.sf(abs(estimate) / se, dof))
    return estimate - width, estimate + width, p_value


def compare(
    control: VariationStats,
    treatment: VariationStats,
    *,
    ratio: bool,
    cuped: bool,
    alpha: float = 0.05,
) -> Comparison:
    """Treatment against control as gbstats' `TwoSidedTTest` (see the module docstring)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if ratio and cuped:
        raise ValueError(
            "CUPED of ratio metrics is not supported (gbstats 0.8.0 has no regression adjustment for them)"
        )
    if ratio:
        for s in (control, treatment):
            _require(s, _RATIO_FIELDS, "a ratio metric")
        a, b, theta = _ratio_arm(control), _ratio_arm(treatment), 0.0
    elif cuped:
        theta = cuped_theta(control, treatment)
        a, b = _cuped_arm(control, theta), _cuped_arm(treatment, theta)
    else:
        a, b, theta = _mean_arm(control), _mean_arm(treatment), 0.0

    base = dict(
        control_users=a.n,
        treatment_users=b.n,
        control_mean=a.mean,
        treatment_mean=b.mean,
        control_unadjusted_mean=a.unadjusted_mean,
        treatment_unadjusted_mean=b.unadjusted_mean,
        control_variance=a.variance / a.n if a.n > 0 else _NAN,
        treatment_variance=b.variance / b.n if b.n > 0 else _NAN,
        cuped=theta != 0.0,
        theta=theta,
        alpha=alpha,
    )
    blank = _BLANK
    if a.n < 2 or b.n < 2:
        return Comparison(**base, **blank, error="fewer than 2 users in an arm")
    if math.isnan(a.mean) or math.isnan(b.mean):
        return Comparison(**base, **blank, error="zero denominator in an arm")
    if not (a.variance > 0 and b.variance > 0):
        return Comparison(**base, **blank, error=ZERO_VARIANCE_ERROR,
                          zero_variance_arm=_zero_variance_arm(a.variance <= 0, b.variance <= 0))

    return Comparison(**base, **_test(a, b, alpha))


ZERO_VARIANCE_ERROR = "zero or negative variance in an arm"  # mean, ratio and quantile metrics alike


def _zero_variance_arm(control: bool, treatment: bool) -> str | None:
    return "both" if control and treatment else "control" if control else "treatment" if treatment else None


def _test(a: _Arm, b: _Arm, alpha: float) -> dict:
    """The two-sided tests of b against a (informative arms: n ≥ 2, variances > 0), as Comparison fields."""
    se2_a, se2_b = a.variance / a.n, b.variance / b.n
    dof = (se2_a + se2_b) ** 2 / (se2_b**2 / (b.n - 1) + se2_a**2 / (a.n - 1))
    lift = b.mean - a.mean
    abs_low, abs_high, p_value = _two_sided(lift, se2_a + se2_b, dof, alpha)

    error = None
    if a.unadjusted_mean <= 0:
        # gbstats gives no relative estimate either (process_single_metric reports 0 and TwoSidedTTest the
        # default): divided by a negative mean, the lift has the wrong sign; by 0, none.
        rel, rel_low, rel_high, rel_p = _NAN, _NAN, _NAN, _NAN
        error = f"control mean is {'0' if a.unadjusted_mean == 0 else 'negative'}: no relative lift"
    else:
        mean_a, mean_b = a.unadjusted_mean, b.unadjusted_mean
        rel = lift / mean_a
        rel_variance = b.variance / (mean_a**2 * b.n) + a.variance * mean_b**2 / (mean_a**4 * a.n)
        rel_low, rel_high, rel_p = _two_sided(rel, rel_variance, dof, alpha)
    return dict(
        dof=dof,
        absolute_lift=lift,
        absolute_ci_low=abs_low,
        absolute_ci_high=abs_high,
        relative_lift=rel,
        relative_ci_low=rel_low,
        relative_ci_high=rel_high,
        p_value=p_value,
        relative_p_value=rel_p,
        significant=p_value < alpha,
        error=error,
    )


# ------------------------------------------------------------------------------------------------- quantiles

# GrowthBook computes the quantile interval's bounds for each of these n* and keeps the largest below n
# (back-end N_STAR_VALUES); the interval is always a 95 % one (alpha 0.05 in its SQL and in gbstats).
N_STAR_GRID = tuple(100 * 2**k for k in range(20))
_QUANTILE_ALPHA = 0.05
_Z = float(sps.norm.ppf(1 - _QUANTILE_ALPHA / 2))  # 1.959963984540054
_VARIANCE_FLOOR = 1e-5


def quantile_n_star(events: int) -> int:
    """GrowthBook's n*: the largest grid value (100·2^k) below the number of events, 100 when there is none."""
    below = [n for n in N_STAR_GRID if n < events]
    return below[-1] if below else N_STAR_GRID[0]


def quantile_interval_levels(level: float, events: int) -> tuple[int, float, float]:
    """(n*, lower level, upper level): the levels at which GrowthBook evaluates the quantile for its interval,
    ν ∓ z·√(ν(1−ν)/n*) with z = Φ⁻¹(0.975), clipped to [1e-8, 1 − 1e-8]."""
    if not 0 < level < 1:
        raise ValueError(f"quantile level must lie in (0, 1), got {level}")
    n_star = quantile_n_star(events)
    half_width = _Z * math.sqrt(level * (1 - level) / n_star)
    return n_star, max(level - half_width, 1e-8), min(level + half_width, 0.99999999)


def _quantile_variance_init(q: QuantileStats) -> float:
    """gbstats' `variance_init` of QuantileStatistic / QuantileClusteredStatistic (per event)."""
    n = q.events
    if n <= 1:
        return 0.0
    iid = (q.n_star / n) * (n - 1) * ((q.quantile_upper - q.quantile_lower) / (2 * _Z)) ** 2
    if q.sum is None:
        return iid
    n_c = q.users
    if n_c <= 1 or q.denominator_sum <= 0:
        return 0.0
    s_mean, d_mean = q.sum / n_c, q.denominator_sum / n_c
    var_s = _variance(n_c, q.sum, q.sum_squares)
    var_d = _variance(n_c, q.denominator_sum, q.denominator_sum_squares)
    cov = _covariance(n_c, q.sum, q.denominator_sum, q.sum_products)
    cluster = (var_s - 2 * s_mean * cov / d_mean + s_mean**2 * var_d / d_mean**2) / (n_c * d_mean**2)
    return iid * cluster / (q.level * (1 - q.level) / n)


def _quantile_arm(q: QuantileStats) -> tuple[_Arm, str | None]:
    """The arm (n = events, per-event variance as gbstats uses it) and why it is uninformative, if it is."""
    if not 0 < q.level < 1:
        raise ValueError(f"quantile level must lie in (0, 1), got {q.level}")
    n = q.events
    estimate = _NAN if q.quantile is None else float(q.quantile)
    if n <= 0 or math.isnan(estimate):
        return _Arm(max(n, 0), _NAN, _NAN, 0.0), "no events in an arm"
    variance_init = _quantile_variance_init(q)
    variance = variance_init if n < 100 else max(variance_init, _VARIANCE_FLOOR)
    arm = _Arm(n, estimate, estimate, variance)
    too_few = _Z**2 * q.level / (1 - q.level), _Z**2 * (1 - q.level) / q.level
    if n <= max(too_few):
        return arm, f"too few events for the quantile's interval (n ≤ {max(too_few):.1f})"
    if variance_init <= 0 and n < 1000:
        return arm, ZERO_VARIANCE_ERROR
    return arm, None


def compare_quantile(control: QuantileStats, treatment: QuantileStats, alpha: float = 0.05) -> Comparison:
    """Treatment against control for a quantile metric, as gbstats' `TwoSidedTTest` on
    `QuantileClusteredStatistic` (or `QuantileStatistic` without cluster sums); see the module docstring.
    `*_mean` are the quantiles, `*_variance` the variances of the quantile estimates (per-event variance /
    events)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    if control.level != treatment.level:
        raise ValueError(f"control and treatment quantile levels differ: {control.level} vs {treatment.level}")
    a, error_a = _quantile_arm(control)
    b, error_b = _quantile_arm(treatment)
    base = dict(
        control_users=control.users,
        treatment_users=treatment.users,
        control_mean=a.mean,
        treatment_mean=b.mean,
        control_unadjusted_mean=a.mean,
        treatment_unadjusted_mean=b.mean,
        control_variance=a.variance / a.n if a.n > 0 else _NAN,
        treatment_variance=b.variance / b.n if b.n > 0 else _NAN,
        cuped=False,
        theta=0.0,
        alpha=alpha,
        control_events=control.events,
        treatment_events=treatment.events,
    )
    if error_a or error_b:
        zero = _zero_variance_arm(error_a == ZERO_VARIANCE_ERROR, error_b == ZERO_VARIANCE_ERROR)
        return Comparison(**base, **_BLANK, error=error_a or error_b, zero_variance_arm=zero)
    return Comparison(**base, **_test(a, b, alpha))


def variance_reduction(plain: Comparison, cuped: Comparison) -> float | None:
    """1 − Var(CUPED lift) / Var(plain lift): the share of the absolute lift's variance CUPED removed (0 when
    θ = 0, i.e. when the pre-period covariate carries nothing); None when either variance is unavailable."""
    before = plain.control_variance + plain.treatment_variance
    after = cuped.control_variance + cuped.treatment_variance
    if plain.zero_variance_arm or not (math.isfinite(before) and math.isfinite(after)) or before <= 0:
        return None
    return 1.0 - after / before


def srm_check(users: list[int], weights: list[float]) -> tuple[float, float]:
    """(χ², p-value) of the users per variation against the expected split `weights` (any positive scale),
    k − 1 degrees of freedom, as gbstats' `check_srm`. No users at all: (0, 1)."""
    if len(users) != len(weights) or len(users) < 2:
        raise ValueError("srm_check needs one weight per variation and at least 2 variations")
    if any(w <= 0 for w in weights):
        raise ValueError(f"SRM weights must be positive, got {weights}")
    total = sum(users)
    if total == 0:
        return 0.0, 1.0
    total_weight = sum(weights)
    expected = [w / total_weight * total for w in weights]
    result = sps.chisquare(users, f_exp=expected)
    return float(result.statistic), float(result.pvalue)


def srm_flag(p_value: float) -> bool:
    """Sample ratio mismatch: the split is implausible under the configured weights."""
    return p_value < SRM_P_THRESHOLD


# ---------------------------------------------------------------------------------------------------- frames

_KEYS = ("experiment_key", "metric", "variation_id")
_REQUIRED = (*_KEYS, "is_control", "metric_type", "users", "sum", "sum_squares", "weight")
_QUANTILE_COLUMNS = (
    "quantile_level", "quantile_n", "quantile_nstar", "quantile", "quantile_lower", "quantile_upper",
    "denominator_sum", "denominator_sum_squares", "sum_products",
)
_RESULT_FLOATS = (
    "control_mean", "control_variance", "treatment_mean", "treatment_variance",
    "absolute_lift", "absolute_ci_low", "absolute_ci_high",
    "relative_lift", "relative_ci_low", "relative_ci_high", "p_value", "relative_p_value",
)
_CUPED_EXTRA = ("theta",)


def _result_schema(prefix: str, cuped: bool) -> dict[str, pl.DataType]:
    schema: dict[str, pl.DataType] = {f"{prefix}control_users": pl.Int64, f"{prefix}treatment_users": pl.Int64}
    schema.update({f"{prefix}{name}": pl.Float64 for name in _RESULT_FLOATS})
    schema[f"{prefix}significant"] = pl.Boolean
    if cuped:
        schema[f"{prefix}theta"] = pl.Float64
    schema[f"{prefix}error"] = pl.String
    return schema


def _result_values(prefix: str, comparison: Comparison | None, cuped: bool, error: str | None = None) -> dict:
    schema = _result_schema(prefix, cuped)
    if comparison is None:
        values = {name: None for name in schema}
        values[f"{prefix}error"] = error
        return values
    data = asdict(comparison)
    values = {}
    for name in schema:
        value = data[name[len(prefix):]]
        values[name] = None if isinstance(value, float) and math.isnan(value) else value
    return values


def _stats_of(row: dict, columns: set[str]) -> VariationStats:
    kwargs = {f.name: row.get(f.name) if f.name in columns else None for f in fields(VariationStats)}
    return VariationStats(**kwargs)


def _quantile_stats_of(row: dict) -> QuantileStats:
    """A quantile row: the cluster sums are `sum`, `sum_squares` (s_i), `denominator_sum`,
    `denominator_sum_squares` (n_i) and `sum_products`; the clusters are `users`."""
    events = int(row["quantile_n"] or 0)
    return QuantileStats(
        level=row["quantile_level"], events=events,
        n_star=int(row["quantile_nstar"]) if row["quantile_nstar"] is not None else quantile_n_star(events),
        quantile=_NAN if row["quantile"] is None else row["quantile"],
        quantile_lower=_NAN if row["quantile_lower"] is None else row["quantile_lower"],
        quantile_upper=_NAN if row["quantile_upper"] is None else row["quantile_upper"],
        users=int(row["users"]), sum=row["sum"] or 0.0, sum_squares=row["sum_squares"] or 0.0,
        denominator_sum=row["denominator_sum"] or 0.0, denominator_sum_squares=row["denominator_sum_squares"] or 0.0,
        sum_products=row["sum_products"] or 0.0,
    )


def results_frame(stats: pl.DataFrame, *, alpha: float = 0.05) -> pl.DataFrame:
    """One row per (experiment_key, metric, non-control variation_id) of `stats`, which has one row per
    (experiment_key, metric, variation_id) with `is_control`, `metric_type` ('mean' | 'ratio' | 'quantile'), `weight`
    (the variation's planned share, any positive scale), `users`, `sum`, `sum_squares`, for ratio metrics
    `denominator_sum`, `denominator_sum_squares`, `sum_products`, and optionally `pre_sum`,
    `pre_sum_squares`, `post_pre_sum_products`. Quantile rows (event-level quantiles, `compare_quantile`) need
    `quantile_level`, `quantile_n` (events), `quantile_nstar`, `quantile`, `quantile_lower`, `quantile_upper`,
    and the per-user cluster sums in `sum`, `sum_squares` (events ≤ the quantile), `denominator_sum`,
    `denominator_sum_squares` (events) and `sum_products`; their `users` are the exposed users (clusters).

    Columns: the keys, `metric_type`, `control_variation_id`; `control_users`, `control_mean`,
    `control_variance` and the same for `treatment_`; `absolute_lift`, `absolute_ci_low/high`,
    `relative_lift`, `relative_ci_low/high`, `p_value` (Welch), `relative_p_value` (gbstats' default),
    `significant` (p_value < alpha), `error`, `control_events` and `treatment_events` (quantile rows: the
    events the quantiles are over; null otherwise), `zero_variance_arm` (control, treatment or both when an
    arm's variance is ≤ 0); when the pre-period columns are present, the same set prefixed `cuped_` plus
    `cuped_theta` and `cuped_variance_reduction` (1 − the CUPED lift's variance / the plain one's; null for
    ratio and quantile metrics and rows without pre-period sums); per experiment
    `srm_chi2`, `srm_p_value`, `srm_flag` (p < 0.001). Exactly one control per experiment × metric, and
    `users` and `weight` of a variation must be the same for every metric of its experiment (they are
    exposures, not metric values).
    """
    missing = [c for c in _REQUIRED if c not in stats.columns]
    if missing:
        raise ValueError(f"results_frame: missing columns {missing}")
    columns = set(stats.columns)
    has_pre = all(c in columns for c in _PRE_FIELDS)
    if stats.select(pl.struct(_KEYS).is_duplicated().any()).item():
        raise ValueError("results_frame: more than one row for an (experiment_key, metric, variation_id)")
    bad_types = set(stats["metric_type"].unique().to_list()) - {"mean", "ratio", "quantile"}
    if bad_types:
        raise ValueError(
            f"results_frame: metric_type must be 'mean', 'ratio' or 'quantile', got {sorted(map(str, bad_types))}"
        )
    if (stats["metric_type"] == "quantile").any():
        missing = [c for c in _QUANTILE_COLUMNS if c not in columns]
        if missing:
            raise ValueError(f"results_frame: quantile rows need the columns {missing}")

    # SRM per experiment, from the exposures of each variation (the same for every metric).
    srm: dict = {}
    for (experiment,), group in stats.group_by(["experiment_key"], maintain_order=True):
        per_variation = group.group_by("variation_id").agg(
            pl.col("users").n_unique().alias("n_users"), pl.col("weight").n_unique().alias("n_weights"),
            pl.col("users").first(), pl.col("weight").first(),
        ).sort("variation_id")
        if per_variation.filter((pl.col("n_users") > 1) | (pl.col("n_weights") > 1)).height:
            raise ValueError(
                f"results_frame: experiment {experiment!r} has a variation whose users or weight differ across metrics"
            )
        chi2, p_value = srm_check(per_variation["users"].to_list(), per_variation["weight"].to_list())
        srm[experiment] = (chi2, p_value, srm_flag(p_value))

    schema: dict[str, pl.DataType] = {
        "experiment_key": stats.schema["experiment_key"],
        "metric": stats.schema["metric"],
        "metric_type": pl.String,
        "control_variation_id": stats.schema["variation_id"],
        "variation_id": stats.schema["variation_id"],
        **_result_schema("", False),
        "control_events": pl.Int64,
        "treatment_events": pl.Int64,
        "zero_variance_arm": pl.String,
    }
    if has_pre:
        schema.update(_result_schema("cuped_", True))
        schema["cuped_variance_reduction"] = pl.Float64
    schema.update({"srm_chi2": pl.Float64, "srm_p_value": pl.Float64, "srm_flag": pl.Boolean})

    rows = []
    for (experiment, metric), group in stats.group_by(["experiment_key", "metric"], maintain_order=True):
        records = group.sort("variation_id").to_dicts()
        controls = [r for r in records if r["is_control"]]
        if len(controls) != 1:
            raise ValueError(f"results_frame: {experiment!r} / {metric!r} has {len(controls)} control rows, needs 1")
        control = controls[0]
        metric_types = {r["metric_type"] for r in records}
        if len(metric_types) != 1:
            raise ValueError(f"results_frame: {experiment!r} / {metric!r} mixes metric types {sorted(metric_types)}")
        ratio = control["metric_type"] == "ratio"
        quantile = control["metric_type"] == "quantile"
        control_stats = _quantile_stats_of(control) if quantile else _stats_of(control, columns)
        for record in records:
            if record["is_control"]:
                continue
            treatment_stats = _quantile_stats_of(record) if quantile else _stats_of(record, columns)
            row = {
                "experiment_key": experiment,
                "metric": metric,
                "metric_type": control["metric_type"],
                "control_variation_id": control["variation_id"],
                "variation_id": record["variation_id"],
            }
            if quantile:
                plain = compare_quantile(control_stats, treatment_stats, alpha=alpha)
            else:
                plain = compare(control_stats, treatment_stats, ratio=ratio, cuped=False, alpha=alpha)
            row.update(_result_values("", plain, False))
            row.update(control_events=plain.control_events, treatment_events=plain.treatment_events,
                       zero_variance_arm=plain.zero_variance_arm)
            if has_pre:
                row["cuped_variance_reduction"] = None
            if has_pre and quantile:
                row.update(_result_values("cuped_", None, True, "no CUPED for quantile metrics (as in gbstats 0.8.0)"))
            elif has_pre:
                pre_present = all(
                    getattr(s, f) is not None for s in (control_stats, treatment_stats) for f in _PRE_FIELDS
                )
                if ratio:
                    row.update(_result_values("cuped_", None, True, "no CUPED for ratio metrics (as in gbstats 0.8.0)"))
                elif not pre_present:
                    row.update(_result_values("cuped_", None, True, "no pre-period statistics"))
                else:
                    cuped = compare(control_stats, treatment_stats, ratio=False, cuped=True, alpha=alpha)
                    row.update(_result_values("cuped_", cuped, True))
                    row["cuped_variance_reduction"] = variance_reduction(plain, cuped)
            chi2, p_value, flag = srm[experiment]
            row.update(srm_chi2=chi2, srm_p_value=p_value, srm_flag=flag)
            rows.append(row)
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
