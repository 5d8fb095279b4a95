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
  per-user variance ≤ 0 or (ratio) a denominator sum of 0. A control mean of 0 only makes the RELATIVE
  quantities NaN (gbstats also blanks the absolute ones); an adjusted control mean of 0 is no problem
  here (gbstats blanks the result).
- Binary metrics are mean metrics with sum_squares = sum: s² = p(1 − p)·n/(n − 1), gbstats'
  `SampleMeanStatistic`; gbstats' `ProportionStatistic` ("binomial") uses p(1 − p), n/(n − 1) smaller.
- CUPED for ratio metrics: gbstats 0.8.0 has none (regression adjustment exists for "mean_ra" only), so
  `compare(ratio=True, cuped=True)` raises and `results_frame` leaves the ratio rows' `cuped_*` null.
- `srm_check` refuses weights ≤ 0 (gbstats skips such arms in χ² but still counts them in the degrees
  of freedom).
Not implemented: gbstats' Bayesian engine, sequential testing, one-sided tests, "scaled" differences.
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
    blank = dict(
        dof=_NAN, absolute_lift=_NAN, absolute_ci_low=_NAN, absolute_ci_high=_NAN, relative_lift=_NAN,
        relative_ci_low=_NAN, relative_ci_high=_NAN, p_value=_NAN, relative_p_value=_NAN, significant=False,
    )
    if a.n < 2 or b.n < 2:
        return Comparison(**base, **blank, error="fewer than 2 users in an arm")
    if math.isnan(a.mean) or math.isnan(b.mean):
        return Comparison(**base, **blank, error="zero denominator in an arm")
    if not (a.variance > 0 and b.variance > 0):
        return Comparison(**base, **blank, error="zero or negative variance in an arm")

    se2_a, se2_b = a.variance / a.n, b.variance / b.n
    dof = (se2_a + se2_b) ** 2 / (se2_b**2 / (b.n - 1) + se2_a**2 / (a.n - 1))
    lift = b.mean - a.mean
    abs_low, abs_high, p_value = _two_sided(lift, se2_a + se2_b, dof, alpha)

    error = None
    if a.unadjusted_mean == 0:
        rel, rel_low, rel_high, rel_p = _NAN, _NAN, _NAN, _NAN
        error = "control mean is 0: no relative lift"
    else:
        mean_a, mean_b = a.unadjusted_mean, b.unadjusted_mean
        rel = lift / mean_a
        rel_variance = b.variance / (mean_a**2 * b.n) + a.variance * mean_b**2 / (mean_a**4 * a.n)
        rel_low, rel_high, rel_p = _two_sided(rel, rel_variance, dof, alpha)
    return Comparison(
        **base,
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


def results_frame(stats: pl.DataFrame, *, alpha: float = 0.05) -> pl.DataFrame:
    """One row per (experiment_key, metric, non-control variation_id) of `stats`, which has one row per
    (experiment_key, metric, variation_id) with `is_control`, `metric_type` ('mean' | 'ratio'), `weight`
    (the variation's planned share, any positive scale), `users`, `sum`, `sum_squares`, for ratio metrics
    `denominator_sum`, `denominator_sum_squares`, `sum_products`, and optionally `pre_sum`,
    `pre_sum_squares`, `post_pre_sum_products`.

    Columns: the keys, `metric_type`, `control_variation_id`; `control_users`, `control_mean`,
    `control_variance` and the same for `treatment_`; `absolute_lift`, `absolute_ci_low/high`,
    `relative_lift`, `relative_ci_low/high`, `p_value` (Welch), `relative_p_value` (gbstats' default),
    `significant` (p_value < alpha), `error`; when the pre-period columns are present, the same set prefixed
    `cuped_` plus `cuped_theta` (null for ratio metrics and rows without pre-period sums); per experiment
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
    bad_types = set(stats["metric_type"].unique().to_list()) - {"mean", "ratio"}
    if bad_types:
        raise ValueError(f"results_frame: metric_type must be 'mean' or 'ratio', got {sorted(map(str, bad_types))}")

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
    }
    if has_pre:
        schema.update(_result_schema("cuped_", True))
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
        control_stats = _stats_of(control, columns)
        for record in records:
            if record["is_control"]:
                continue
            treatment_stats = _stats_of(record, columns)
            row = {
                "experiment_key": experiment,
                "metric": metric,
                "metric_type": control["metric_type"],
                "control_variation_id": control["variation_id"],
                "variation_id": record["variation_id"],
            }
            plain = compare(control_stats, treatment_stats, ratio=ratio, cuped=False, alpha=alpha)
            row.update(_result_values("", plain, False))
            if has_pre:
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
            chi2, p_value, flag = srm[experiment]
            row.update(srm_chi2=chi2, srm_p_value=p_value, srm_flag=flag)
            rows.append(row)
    return pl.DataFrame(rows, schema=schema, orient="row") if rows else pl.DataFrame(schema=schema)
