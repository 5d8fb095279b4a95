"""orchestration.experiments.stats gives what GrowthBook's gbstats 0.8.0 gives on the same summary statistics
(run in its own virtualenv, `make gbstats-venv`), and agrees with scipy's Welch t-test on the raw data;
SRM and CUPED behave as documented; results_frame assembles the same numbers per experiment × metric."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from orchestration.experiments.stats import (
    SRM_P_THRESHOLD,
    Comparison,
    VariationStats,
    compare,
    results_frame,
    srm_check,
    srm_flag,
)

ROOT = Path(__file__).resolve().parent.parent
GBSTATS_PYTHON = ROOT / ".venv-gbstats" / "bin" / "python"
GBSTATS_SCRIPT = ROOT / "tests" / "gbstats" / "run_gbstats.py"
REL_TOL = 1e-6
ABS_TOL = 1e-12  # only matters next to 0 (gbstats' 1 − t.cdf is exact to ~1e-16 absolute)


# ------------------------------------------------------------------------------------------------ data

def summarize(y: np.ndarray, *, pre: np.ndarray | None = None, denominator: np.ndarray | None = None) -> dict:
    """The warehouse's sums over users of one arm."""
    y = np.asarray(y, dtype=float)
    arm = {"users": int(y.size), "sum": float(y.sum()), "sum_squares": float((y * y).sum())}
    if denominator is not None:
        d = np.asarray(denominator, dtype=float)
        arm.update(denominator_sum=float(d.sum()), denominator_sum_squares=float((d * d).sum()),
                   sum_products=float((y * d).sum()))
    if pre is not None:
        x = np.asarray(pre, dtype=float)
        arm.update(pre_sum=float(x.sum()), pre_sum_squares=float((x * x).sum()),
                   post_pre_sum_products=float((y * x).sum()))
    return arm


def _revenue(rng, n, scale):
    return rng.gamma(shape=0.8, scale=scale, size=n) * (rng.random(n) < 0.6)


def _acceptance(rng, n, p):
    shown = rng.poisson(4.0, size=n) + 1
    return rng.binomial(shown, p).astype(float), shown.astype(float)


def _cuped_pair(rng, n, lift, rho_noise=1.0):
    pre = rng.gamma(shape=2.0, scale=5.0, size=n)
    post = 0.9 * pre + rng.normal(lift, rho_noise * 3.0, size=n) + 2.0
    return post, pre


def make_cases() -> dict[str, dict]:
    """id → {spec for gbstats, raw per-user data}. Fixed seeds."""
    cases: dict[str, dict] = {}

    def add(case_id, metric_type, cuped, control, treatment, *, alpha=0.05, weights=(0.5, 0.5), raw=None):
        cases[case_id] = {
            "spec": {"id": case_id, "metric_type": metric_type, "cuped": cuped, "alpha": alpha,
                     "weights": list(weights), "control": control, "treatment": treatment},
            "raw": raw,
        }

    rng = np.random.default_rng(101)
    c, t = _revenue(rng, 4000, 30.0), _revenue(rng, 4000, 33.0)
    add("mean_lift", "mean", False, summarize(c), summarize(t), raw=(c, t))

    rng = np.random.default_rng(102)
    c, t = rng.normal(50.0, 12.0, 5000), rng.normal(50.0, 12.0, 5000)
    add("no_effect", "mean", False, summarize(c), summarize(t), raw=(c, t))

    rng = np.random.default_rng(103)
    c, t = rng.normal(5.0, 2.0, 8), rng.normal(6.5, 3.0, 11)
    add("small_n", "mean", False, summarize(c), summarize(t), alpha=0.1, raw=(c, t))

    rng = np.random.default_rng(104)
    c, t = rng.normal(20.0, 4.0, 600), rng.normal(21.0, 9.0, 3400)
    add("unequal_arms", "mean", False, summarize(c), summarize(t), weights=(0.15, 0.85), raw=(c, t))

    rng = np.random.default_rng(105)
    c, t = (rng.random(3000) < 0.12).astype(float), (rng.random(3100) < 0.14).astype(float)
    add("binary_conversion", "mean", False, summarize(c), summarize(t), raw=(c, t))

    rng = np.random.default_rng(106)
    (ac, sc), (at, st) = _acceptance(rng, 3000, 0.30), _acceptance(rng, 3200, 0.33)
    add("ratio", "ratio", False, summarize(ac, denominator=sc), summarize(at, denominator=st))

    rng = np.random.default_rng(107)
    (ac, sc), (at, st) = _acceptance(rng, 40, 0.3), _acceptance(rng, 400, 0.3)
    add("ratio_small_unequal", "ratio", False, summarize(ac, denominator=sc), summarize(at, denominator=st),
        weights=(0.1, 0.9))

    rng = np.random.default_rng(108)
    (yc, xc), (yt, xt) = _cuped_pair(rng, 2000, 0.0), _cuped_pair(rng, 2300, 0.6)
    add("cuped", "mean", True, summarize(yc, pre=xc), summarize(yt, pre=xt), raw=(yc, yt))

    rng = np.random.default_rng(109)
    (yc, xc), (yt, xt) = _cuped_pair(rng, 30, 0.0, 0.5), _cuped_pair(rng, 45, 0.0, 0.5)
    add("cuped_small_no_effect", "mean", True, summarize(yc, pre=xc), summarize(yt, pre=xt), raw=(yc, yt))

    rng = np.random.default_rng(110)  # new users: no pre-period activity, so theta = 0 and no adjustment
    yc, yt = rng.normal(10.0, 3.0, 500), rng.normal(10.5, 3.0, 500)
    add("cuped_no_pre_variance", "mean", True, summarize(yc, pre=np.zeros(500)),
        summarize(yt, pre=np.zeros(500)), raw=(yc, yt))
    return cases


SRM_CASES = [
    {"id": "52_48", "users": [5200, 4800], "weights": [0.5, 0.5]},
    {"id": "50.3_49.7", "users": [5030, 4970], "weights": [0.5, 0.5]},
    {"id": "three_way", "users": [4090, 2950, 2960], "weights": [0.4, 0.3, 0.3]},
    {"id": "unnormalized", "users": [2010, 990, 1000], "weights": [2.0, 1.0, 1.0]},
]


def _arm(d: dict) -> VariationStats:
    return VariationStats(**d)


def ours(spec: dict) -> Comparison:
    return compare(_arm(spec["control"]), _arm(spec["treatment"]),
                   ratio=spec["metric_type"] == "ratio", cuped=spec["cuped"], alpha=spec["alpha"])


def close(a, b) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOL, abs_tol=ABS_TOL)


# ------------------------------------------------------------------------------------------------ gbstats

@pytest.fixture(scope="module")
def cases() -> dict[str, dict]:
    return make_cases()


@pytest.fixture(scope="module")
def gbstats_results(cases, tmp_path_factory) -> dict:
    if not GBSTATS_PYTHON.exists():
        pytest.fail(f"{GBSTATS_PYTHON} is missing: run `make gbstats-venv` (gbstats 0.8.0 in its own virtualenv)")
    folder = tmp_path_factory.mktemp("gbstats")
    cases_path, results_path = folder / "cases.json", folder / "results.json"
    cases_path.write_text(json.dumps({"cases": [c["spec"] for c in cases.values()], "srm": SRM_CASES}))
    done = subprocess.run([str(GBSTATS_PYTHON), str(GBSTATS_SCRIPT), str(cases_path), str(results_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"run_gbstats.py failed:\n{done.stderr}"
    return json.loads(results_path.read_text())


CASE_IDS = list(make_cases())


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_matches_gbstats_two_sided_ttest(case_id, cases, gbstats_results):
    spec = cases[case_id]["spec"]
    mine = ours(spec)
    gb = gbstats_results["cases"][case_id]["test"]
    assert mine.error is None and gb["absolute"]["error_message"] is None

    absolute, relative = gb["absolute"], gb["relative"]
    for arm in ("control", "treatment"):
        g = absolute[arm]
        assert close(getattr(mine, f"{arm}_mean"), g["mean"]), arm
        assert close(getattr(mine, f"{arm}_unadjusted_mean"), g["unadjusted_mean"]), arm
        assert close(getattr(mine, f"{arm}_variance"), g["variance"] / g["n"]), arm
        assert getattr(mine, f"{arm}_users") == g["n"]
    assert close(mine.theta, absolute["control"]["theta"])
    assert mine.cuped == (absolute["control"]["type"] == "RegressionAdjustedStatistic")
    assert close(mine.dof, absolute["dof"])

    assert close(mine.absolute_lift, absolute["expected"])
    assert close(mine.absolute_ci_low, absolute["ci"][0]) and close(mine.absolute_ci_high, absolute["ci"][1])
    assert close(mine.p_value, absolute["p_value"])
    assert close(mine.control_variance + mine.treatment_variance, absolute["variance"])

    assert close(mine.relative_lift, relative["expected"])
    assert close(mine.relative_ci_low, relative["ci"][0]) and close(mine.relative_ci_high, relative["ci"][1])
    # gbstats' p-value by default (difference type "relative") is our relative_p_value; p_value is Welch's.
    assert close(mine.relative_p_value, relative["p_value"])
    assert mine.significant == (absolute["p_value"] < spec["alpha"])


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_matches_gbstats_engine_end_to_end(case_id, cases, gbstats_results):
    """GrowthBook's own path (process_single_metric on SQL-shaped rows) gives the same numbers."""
    spec = cases[case_id]["spec"]
    mine = ours(spec)
    engine = gbstats_results["cases"][case_id]["engine"]
    for difference_type, (lift, low, high, p) in {
        "absolute": (mine.absolute_lift, mine.absolute_ci_low, mine.absolute_ci_high, mine.p_value),
        "relative": (mine.relative_lift, mine.relative_ci_low, mine.relative_ci_high, mine.relative_p_value),
    }.items():
        e = engine[difference_type]
        assert e["error_message"] is None
        assert close(mine.control_unadjusted_mean, e["control_mean"])
        assert close(mine.treatment_unadjusted_mean, e["treatment_mean"])
        assert close(lift, e["expected"]) and close(low, e["ci"][0]) and close(high, e["ci"][1])
        assert close(p, e["p_value"])
    users = [spec["control"]["users"], spec["treatment"]["users"]]
    assert close(srm_check(users, spec["weights"])[1], engine["absolute"]["srm_p_value"])


@pytest.mark.parametrize("srm_case", SRM_CASES, ids=[c["id"] for c in SRM_CASES])
def test_srm_matches_gbstats_check_srm(srm_case, gbstats_results):
    _, p_value = srm_check(srm_case["users"], srm_case["weights"])
    assert close(p_value, gbstats_results["srm"][srm_case["id"]])


# ------------------------------------------------------------------------------------------------ independent

RAW_CASE_IDS = [i for i, c in make_cases().items() if c["raw"] is not None and not c["spec"]["cuped"]]


@pytest.mark.parametrize("case_id", RAW_CASE_IDS)
def test_absolute_lift_is_welch_ttest_on_raw_data(case_id, cases):
    spec, (control, treatment) = cases[case_id]["spec"], cases[case_id]["raw"]
    mine = ours(spec)
    welch = sps.ttest_ind(treatment, control, equal_var=False)
    ci = welch.confidence_interval(confidence_level=1 - spec["alpha"])
    assert close(mine.p_value, float(welch.pvalue))
    assert close(mine.dof, float(welch.df))
    assert close(mine.absolute_ci_low, float(ci.low)) and close(mine.absolute_ci_high, float(ci.high))
    assert close(mine.absolute_lift, float(treatment.mean() - control.mean()))
    assert close(mine.control_variance, float(control.var(ddof=1) / control.size))
    assert close(mine.relative_lift, float(treatment.mean() / control.mean() - 1))
    assert mine.significant == (welch.pvalue < spec["alpha"])


def test_srm_flag_fires_for_52_48_not_50_3_49_7():
    chi2, p = srm_check([5200, 4800], [0.5, 0.5])
    assert chi2 == pytest.approx(16.0) and p < SRM_P_THRESHOLD and srm_flag(p)
    chi2, p = srm_check([5030, 4970], [0.5, 0.5])
    assert chi2 == pytest.approx(0.36) and not srm_flag(p)
    assert srm_check([0, 0], [0.5, 0.5]) == (0.0, 1.0)
    with pytest.raises(ValueError):
        srm_check([10, 10], [1.0, 0.0])


def test_cuped_reduces_variance_when_pre_and_post_correlate(cases):
    spec = cases["cuped"]["spec"]
    adjusted = ours(spec)
    plain = compare(_arm(spec["control"]), _arm(spec["treatment"]), ratio=False, cuped=False, alpha=spec["alpha"])
    assert adjusted.cuped and adjusted.theta > 0.5
    assert adjusted.control_variance < 0.5 * plain.control_variance
    assert adjusted.treatment_variance < 0.5 * plain.treatment_variance
    assert adjusted.absolute_ci_high - adjusted.absolute_ci_low < plain.absolute_ci_high - plain.absolute_ci_low
    assert adjusted.control_unadjusted_mean == plain.control_mean
    # With no pre-period variance there is nothing to adjust by: the plain comparison, as in gbstats.
    spec = cases["cuped_no_pre_variance"]["spec"]
    none = ours(spec)
    plain = compare(_arm(spec["control"]), _arm(spec["treatment"]), ratio=False, cuped=False)
    assert not none.cuped and none.theta == 0.0 and none.p_value == plain.p_value


def test_ratio_cuped_is_refused():
    arm = VariationStats(users=10, sum=5, sum_squares=5, denominator_sum=20, denominator_sum_squares=50,
                         sum_products=12, pre_sum=4, pre_sum_squares=4, post_pre_sum_products=3)
    with pytest.raises(ValueError, match="ratio"):
        compare(arm, arm, ratio=True, cuped=True)
    with pytest.raises(ValueError, match="denominator_sum"):
        compare(VariationStats(users=10, sum=5, sum_squares=5), arm, ratio=True, cuped=False)


def test_degenerate_inputs_are_nan_with_a_reason_where_gbstats_gives_its_default():
    rng = np.random.default_rng(111)
    flat = summarize(np.full(100, 3.0))
    noisy = summarize(rng.normal(3.0, 1.0, 100))
    result = compare(_arm(flat), _arm(noisy), ratio=False, cuped=False)
    assert "variance" in result.error and math.isnan(result.p_value) and not result.significant
    assert result.control_mean == 3.0
    # A control mean of 0: the absolute comparison stands (it is Welch's), the relative one does not.
    half = rng.integers(-5, 6, 200).astype(float)
    c = np.concatenate([half, -half])  # integers: the sum is exactly 0
    t = rng.normal(0.3, 1.0, 300)
    result = compare(_arm(summarize(c)), _arm(summarize(t)), ratio=False, cuped=False)
    assert result.control_unadjusted_mean == 0
    assert math.isnan(result.relative_lift) and "control mean" in result.error
    assert close(result.p_value, float(sps.ttest_ind(t, c, equal_var=False).pvalue))
    assert compare(_arm(summarize(np.ones(1))), _arm(noisy), ratio=False, cuped=False).error is not None


# ------------------------------------------------------------------------------------------------ frames

def _frame_rows(experiment, metric, metric_type, arms, weights, control_index=0):
    rows = []
    for i, (arm, weight) in enumerate(zip(arms, weights)):
        rows.append({"experiment_key": experiment, "metric": metric, "variation_id": i,
                     "is_control": i == control_index, "metric_type": metric_type, "weight": weight, **arm})
    return rows


def _stats_frame(cases) -> pl.DataFrame:
    rng = np.random.default_rng(112)
    rows = []
    # experiment A: 3 arms, a CUPED-able mean metric and a ratio metric on the same users
    n = [3000, 2950, 3080]
    post_pre = [_cuped_pair(rng, k, lift) for k, lift in zip(n, (0.0, 0.5, -0.2))]
    rows += _frame_rows("A", "revenue", "mean", [summarize(y, pre=x) for y, x in post_pre], [1, 1, 1])
    acceptance = [_acceptance(rng, k, p) for k, p in zip(n, (0.3, 0.31, 0.35))]
    ratio_arms = [summarize(a, denominator=s) for a, s in acceptance]
    rows += _frame_rows("A", "acceptance_rate", "ratio", ratio_arms, [1, 1, 1])
    # experiment B: 2 arms, 52/48 split of an intended 50/50, control listed second
    spec = cases["mean_lift"]["spec"]
    b = [dict(spec["treatment"], users=4800), dict(spec["control"], users=5200)]
    rows += _frame_rows("B", "revenue", "mean", b, [0.5, 0.5], control_index=1)
    columns = ["users", "sum", "sum_squares", "denominator_sum", "denominator_sum_squares", "sum_products",
               "pre_sum", "pre_sum_squares", "post_pre_sum_products"]
    schema = {"experiment_key": pl.String, "metric": pl.String, "variation_id": pl.Int64, "is_control": pl.Boolean,
              "metric_type": pl.String, "weight": pl.Float64, **{c: pl.Float64 for c in columns}}
    schema["users"] = pl.Int64
    return pl.DataFrame([{k: r.get(k) for k in schema} for r in rows], schema=schema)


def test_results_frame(cases):
    stats = _stats_frame(cases)
    out = results_frame(stats)
    assert out.height == 2 + 2 + 1
    assert out.select("experiment_key", "metric", "variation_id").is_unique().all()
    expected_columns = {"control_users", "control_mean", "control_variance", "treatment_users", "treatment_mean",
                        "treatment_variance", "absolute_lift", "absolute_ci_low", "absolute_ci_high",
                        "relative_lift", "relative_ci_low", "relative_ci_high", "p_value", "significant",
                        "srm_chi2", "srm_p_value", "srm_flag"}
    assert expected_columns <= set(out.columns)
    assert {f"cuped_{c}" for c in expected_columns if not c.startswith("srm")} <= set(out.columns)

    records = {(r["experiment_key"], r["metric"], r["variation_id"]): r for r in out.to_dicts()}
    by_key = {(r["experiment_key"], r["metric"], r["variation_id"]): r for r in stats.to_dicts()}
    for (experiment, metric, variation), row in records.items():
        control = by_key[(experiment, metric, row["control_variation_id"])]
        treatment = by_key[(experiment, metric, variation)]
        ratio = row["metric_type"] == "ratio"
        fields = [f for f in VariationStats.__dataclass_fields__]
        cs, ts = (VariationStats(**{f: r[f] for f in fields}) for r in (control, treatment))
        plain = compare(cs, ts, ratio=ratio, cuped=False)
        assert row["p_value"] == plain.p_value and row["relative_ci_high"] == plain.relative_ci_high
        assert row["control_users"] == control["users"] and row["treatment_mean"] == plain.treatment_mean
        if ratio:
            assert row["cuped_p_value"] is None and "ratio" in row["cuped_error"]
        else:
            adjusted = compare(cs, ts, ratio=False, cuped=experiment == "A")
            if experiment == "A":
                assert row["cuped_absolute_lift"] == adjusted.absolute_lift and row["cuped_theta"] > 0
                assert row["cuped_treatment_variance"] < row["treatment_variance"]
            else:  # no pre-period sums for B
                assert row["cuped_p_value"] is None and row["cuped_error"] == "no pre-period statistics"

    b = records[("B", "revenue", 0)]
    assert b["control_variation_id"] == 1 and b["srm_flag"] and b["srm_p_value"] < SRM_P_THRESHOLD
    a = records[("A", "revenue", 1)]
    assert not a["srm_flag"] and a["srm_p_value"] == pytest.approx(srm_check([3000, 2950, 3080], [1, 1, 1])[1])

    # without the pre-period columns there are no cuped_ columns
    plain_out = results_frame(stats.drop("pre_sum", "pre_sum_squares", "post_pre_sum_products"))
    assert not any(c.startswith("cuped_") for c in plain_out.columns) and plain_out.height == out.height


def test_results_frame_refuses_inconsistent_input(cases):
    stats = _stats_frame(cases)
    two_controls = stats.with_columns(is_control=pl.col("is_control") | (pl.col("experiment_key") == "B"))
    with pytest.raises(ValueError, match="control"):
        results_frame(two_controls)
    one_row = (pl.col("metric") == "revenue") & (pl.col("experiment_key") == "A") & (pl.col("variation_id") == 1)
    users_differ = stats.with_columns(
        users=pl.when(one_row)
        .then(pl.col("users") + 1)
        .otherwise(pl.col("users"))
    )
    with pytest.raises(ValueError, match="differ across metrics"):
        results_frame(users_differ)
    assert results_frame(stats.head(0)).height == 0
