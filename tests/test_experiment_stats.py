"""orchestration.experiments.stats gives what GrowthBook's gbstats 0.8.0 gives on the same summary statistics
(run in its own virtualenv, `make gbstats-venv`), and agrees with scipy's Welch t-test on the raw data;
SRM and CUPED behave as documented; results_frame assembles the same numbers per experiment × metric."""

from __future__ import annotations

import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from scipy import stats as sps

from orchestration.experiments.stats import (
    N_STAR_GRID,
    SRM_P_THRESHOLD,
    Comparison,
    QuantileStats,
    VariationStats,
    compare,
    compare_quantile,
    quantile_interval_levels,
    quantile_n_star,
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


def quantile_arm(per_user: list[np.ndarray], level: float, *, clustered: bool = True, idle_users: int = 0) -> dict:
    """What the warehouse returns for an event quantile over the users' events (int_experiment_quantile_stats):
    the interpolated quantile (numpy "linear" = PERCENTILE_CONT = DuckDB quantile_cont), the bounds at
    GrowthBook's levels, and the per-user cluster sums; `idle_users` exposed users without events."""
    events = np.concatenate(per_user)
    n_star, low, high = quantile_interval_levels(level, events.size)
    q, q_low, q_high = np.quantile(events, [level, low, high])
    arm = {"level": level, "events": int(events.size), "n_star": n_star, "quantile": float(q),
           "quantile_lower": float(q_low), "quantile_upper": float(q_high), "users": len(per_user) + idle_users}
    if clustered:
        below = np.array([(u <= q).sum() for u in per_user], dtype=float)
        count = np.array([u.size for u in per_user], dtype=float)
        arm.update(sum=float(below.sum()), sum_squares=float((below * below).sum()),
                   denominator_sum=float(count.sum()), denominator_sum_squares=float((count * count).sum()),
                   sum_products=float((below * count).sum()))
    return arm


def _latencies(rng, users: int, *, shift: float = 0.0, requests: float = 8.0, user_sd: float = 0.35) -> list[np.ndarray]:
    """Per-user API request durations (ms): lognormal, a per-user slowness (the clustering), a planted
    multiplicative shift exp(shift) of every request; every user makes at least one request."""
    effects = rng.normal(0.0, user_sd, users)
    counts = rng.poisson(requests, users) + 1
    return [np.exp(rng.normal(5.5 + e + shift, 0.6, k)) for e, k in zip(effects, counts)]


def make_quantile_cases() -> dict[str, dict]:
    """id → {spec for gbstats, raw per-user durations}. Fixed seeds."""
    cases: dict[str, dict] = {}

    def add(case_id, control, treatment, raw, *, alpha=0.05, weights=(0.5, 0.5)):
        cases[case_id] = {
            "spec": {"id": case_id, "metric_type": "quantile", "cuped": False, "alpha": alpha,
                     "weights": list(weights), "control": control, "treatment": treatment},
            "raw": raw,
        }

    rng = np.random.default_rng(201)  # p95 latency 10 % slower in treatment (exp(0.095))
    c, t = _latencies(rng, 1500), _latencies(rng, 1500, shift=0.095)
    add("p95_planted_shift", quantile_arm(c, 0.95), quantile_arm(t, 0.95), (c, t))

    rng = np.random.default_rng(202)
    c, t = _latencies(rng, 700), _latencies(rng, 720)
    add("p95_no_effect", quantile_arm(c, 0.95, idle_users=40), quantile_arm(t, 0.95, idle_users=35), (c, t))

    rng = np.random.default_rng(203)  # unequal arms, strong clustering, p90
    c, t = _latencies(rng, 300, user_sd=0.8), _latencies(rng, 1200, shift=0.05, user_sd=0.8)
    add("p90_unequal_clustered", quantile_arm(c, 0.9), quantile_arm(t, 0.9), (c, t), weights=(0.2, 0.8))

    rng = np.random.default_rng(204)  # median, few events: n < 200 (n* = 100), alpha 0.1
    c, t = _latencies(rng, 30, requests=3.0), _latencies(rng, 35, requests=3.0, shift=0.3)
    add("p50_small", quantile_arm(c, 0.5), quantile_arm(t, 0.5), (c, t), alpha=0.1)

    rng = np.random.default_rng(205)  # i.i.d. events, no cluster sums: gbstats' QuantileStatistic
    c, t = _latencies(rng, 900, user_sd=0.0), _latencies(rng, 900, shift=0.08, user_sd=0.0)
    add("p99_iid", quantile_arm(c, 0.99, clustered=False), quantile_arm(t, 0.99, clustered=False), (c, t))
    return cases


QUANTILE_CASES = make_quantile_cases()
QUANTILE_CASE_IDS = list(QUANTILE_CASES)


def _too_few_events_case() -> dict:
    """60 events: below the 73 gbstats needs for a p95 interval; gbstats returns its uninformative default."""
    rng = np.random.default_rng(206)
    c, t = _latencies(rng, 12, requests=4.0), _latencies(rng, 12, requests=4.0)
    return {"id": "p95_too_few_events", "metric_type": "quantile", "cuped": False, "alpha": 0.05,
            "weights": [0.5, 0.5], "control": quantile_arm(c, 0.95), "treatment": quantile_arm(t, 0.95)}


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
        reason = f"{GBSTATS_PYTHON} is missing: run `make gbstats-venv` (gbstats 0.8.0 in its own virtualenv)"
        # `make test` (CI) builds the venv and sets this, so there the comparison can never be skipped quietly.
        if os.environ.get("PITWALL_REQUIRE_GBSTATS") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    folder = tmp_path_factory.mktemp("gbstats")
    cases_path, results_path = folder / "cases.json", folder / "results.json"
    specs = ([c["spec"] for c in (*cases.values(), *QUANTILE_CASES.values())] + [_too_few_events_case()]
             + list(EDGE_CASES.values()))
    cases_path.write_text(json.dumps({"cases": specs, "srm": SRM_CASES}))
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


def _quantile(spec: dict) -> Comparison:
    return compare_quantile(QuantileStats(**spec["control"]), QuantileStats(**spec["treatment"]), alpha=spec["alpha"])


@pytest.mark.parametrize("case_id", QUANTILE_CASE_IDS)
def test_quantile_matches_gbstats_two_sided_ttest(case_id, gbstats_results):
    """compare_quantile = TwoSidedTTest on QuantileClusteredStatistic (QuantileStatistic without cluster sums)."""
    spec = QUANTILE_CASES[case_id]["spec"]
    mine = _quantile(spec)
    gb = gbstats_results["cases"][case_id]["test"]
    absolute, relative = gb["absolute"], gb["relative"]
    assert mine.error is None and absolute["error_message"] is None and relative["error_message"] is None
    clustered = spec["control"].get("sum") is not None
    for arm in ("control", "treatment"):
        g = absolute[arm]
        assert g["type"] == ("QuantileClusteredStatistic" if clustered else "QuantileStatistic")
        assert getattr(mine, f"{arm}_events") == g["n"] == spec[arm]["events"]
        assert getattr(mine, f"{arm}_users") == spec[arm]["users"]
        assert close(getattr(mine, f"{arm}_mean"), g["mean"]), arm
        assert close(getattr(mine, f"{arm}_variance"), g["variance"] / g["n"]), arm
    assert close(mine.dof, absolute["dof"])
    assert close(mine.control_variance + mine.treatment_variance, absolute["variance"])
    assert close(mine.absolute_lift, absolute["expected"])
    assert close(mine.absolute_ci_low, absolute["ci"][0]) and close(mine.absolute_ci_high, absolute["ci"][1])
    assert close(mine.p_value, absolute["p_value"])
    assert close(mine.relative_lift, relative["expected"])
    assert close(mine.relative_ci_low, relative["ci"][0]) and close(mine.relative_ci_high, relative["ci"][1])
    assert close(mine.relative_p_value, relative["p_value"])


@pytest.mark.parametrize("case_id", [i for i in QUANTILE_CASE_IDS if QUANTILE_CASES[i]["spec"]["control"].get("sum")])
def test_quantile_matches_gbstats_engine_end_to_end(case_id, gbstats_results):
    """GrowthBook's path for an event quantile: process_single_metric on quantile_event query rows."""
    spec = QUANTILE_CASES[case_id]["spec"]
    mine = _quantile(spec)
    engine = gbstats_results["cases"][case_id]["engine"]
    for difference_type, (lift, low, high, p) in {
        "absolute": (mine.absolute_lift, mine.absolute_ci_low, mine.absolute_ci_high, mine.p_value),
        "relative": (mine.relative_lift, mine.relative_ci_low, mine.relative_ci_high, mine.relative_p_value),
    }.items():
        e = engine[difference_type]
        assert e["error_message"] is None
        assert close(mine.control_mean, e["control_mean"]) and close(mine.treatment_mean, e["treatment_mean"])
        assert e["control_count"] == spec["control"]["events"]  # gbstats reports quantile_n as the count
        assert close(lift, e["expected"]) and close(low, e["ci"][0]) and close(high, e["ci"][1])
        assert close(p, e["p_value"])
    users = [spec["control"]["users"], spec["treatment"]["users"]]
    assert close(srm_check(users, spec["weights"])[1], engine["absolute"]["srm_p_value"])


def test_quantile_too_few_events_is_nan_where_gbstats_gives_its_default(gbstats_results):
    spec = _too_few_events_case()
    mine = _quantile(spec)
    gb = gbstats_results["cases"][spec["id"]]["test"]["absolute"]
    assert gb["error_message"] is not None and gb["control"]["zero_variance"] and gb["p_value"] == 1
    assert spec["control"]["events"] <= 73 and "too few events" in mine.error
    assert math.isnan(mine.p_value) and not mine.significant and mine.control_mean == spec["control"]["quantile"]


# ------------------------------------------------------------------------------------------------ verdicts

def _edge_cases() -> dict[str, dict]:
    """Arms gbstats gives no estimate for: a metric that fell to 0 for every treated user (zero variance), and
    a control mean below 0 (the treatment's mean is higher: better, but (t − c)/c is negative)."""
    rng = np.random.default_rng(113)
    crash_free = (rng.random(800) < 0.97).astype(float)
    zero = {"id": "zero_variance_treatment", "metric_type": "mean", "cuped": False, "alpha": 0.05,
            "weights": [0.5, 0.5], "control": summarize(crash_free), "treatment": summarize(np.zeros(780))}
    c, t = rng.normal(-2.0, 1.0, 2000), rng.normal(-1.0, 1.0, 2000)
    negative = {"id": "negative_control_mean", "metric_type": "mean", "cuped": False, "alpha": 0.05,
                "weights": [0.5, 0.5], "control": summarize(c), "treatment": summarize(t)}
    return {case["id"]: case for case in (zero, negative)}


EDGE_CASES = _edge_cases()


def _verdict_rows(stats_rows: list[dict], *, higher_is_better=True, guardrail=False) -> pl.DataFrame:
    """results_frame + with_verdicts, as mart_experiment_results computes them (analysis.experiment_results)."""
    from orchestration.experiments.verdict import with_verdicts

    frame = results_frame(pl.DataFrame(stats_rows))
    return with_verdicts(frame.with_columns(higher_is_better=pl.lit(higher_is_better), is_guardrail=pl.lit(guardrail)))


def _two_arms(spec: dict, experiment="E", metric="m", weights=None) -> list[dict]:
    weights = weights or spec["weights"]
    return [{"experiment_key": experiment, "metric": metric, "variation_id": name, "is_control": name == "control",
             "metric_type": spec["metric_type"], "weight": w, **spec[name]}
            for name, w in zip(("control", "treatment"), weights)]


def test_a_sample_ratio_mismatch_gets_no_verdict(cases):
    """A clear effect (CUPED p < 1e-6) on 2,000 against 2,300 users of a planned 50/50: nothing reads significant or
    regressed."""
    spec = cases["cuped"]["spec"]
    worse = _verdict_rows(_two_arms(spec), higher_is_better=False, guardrail=True).row(0, named=True)
    assert worse["srm_flag"] and worse["cuped_p_value"] < 1e-6 and worse["decision_ci_low"] > 0
    assert worse["verdict"] == "invalid: sample ratio mismatch"
    assert not (worse["significant"] or worse["cuped_significant"] or worse["significantly_better"]
                or worse["significantly_worse"] or worse["guardrail_regressed"])
    # the same numbers where 2,000 : 2,300 was the plan: a regressed guardrail
    fine = _verdict_rows(_two_arms(spec, weights=(2000, 2300)), higher_is_better=False, guardrail=True).row(0, named=True)
    assert not fine["srm_flag"] and fine["verdict"] == "significantly worse" and fine["guardrail_regressed"]


def test_a_zero_variance_arm_is_flagged_as_gbstats_refuses_it(gbstats_results):
    """Every treated user's crash-free share fell to 0: gbstats returns its uninformative default with the
    zero-variance message; here the row is flagged, and as a guardrail it has regressed."""
    spec = EDGE_CASES["zero_variance_treatment"]
    gb = gbstats_results["cases"][spec["id"]]["test"]["absolute"]
    assert gb["treatment"]["zero_variance"] and not gb["control"]["zero_variance"] and gb["error_message"]
    mine = ours(spec)
    assert mine.zero_variance_arm == "treatment" and math.isnan(mine.absolute_lift)
    assert mine.treatment_mean == 0 and mine.control_mean == pytest.approx(gb["control"]["mean"], rel=1e-12)
    guardrail = _verdict_rows(_two_arms(spec), guardrail=True).row(0, named=True)
    assert guardrail["zero_variance_arm"] == "treatment" and guardrail["zero_variance_flag"]
    assert guardrail["verdict"] == "flagged: zero variance in the treatment" and guardrail["guardrail_regressed"]
    # the same drop where lower is better (e.g. crashes per session fell to 0): flagged, not a regression
    lower = _verdict_rows(_two_arms(spec), higher_is_better=False, guardrail=True).row(0, named=True)
    assert lower["zero_variance_flag"] and not lower["guardrail_regressed"] and not lower["significant"]


def test_a_negative_control_mean_has_no_relative_lift_as_in_gbstats(gbstats_results):
    """Control mean −2, treatment −1 (higher is better: the treatment is better). (t − c)/c = −0.5 has the
    wrong sign; gbstats' engine reports no estimate (0) for a control mean ≤ 0, and so do we (null), while the
    absolute comparison stands and decides."""
    spec = EDGE_CASES["negative_control_mean"]
    gb = gbstats_results["cases"][spec["id"]]
    mine = ours(spec)
    assert mine.control_mean < 0 < mine.absolute_lift
    assert gb["test"]["relative"]["expected"] < 0  # the raw test's sign-flipped relative lift
    assert gb["engine"]["relative"]["expected"] == 0  # what GrowthBook shows: no estimate
    assert math.isnan(mine.relative_lift) and math.isnan(mine.relative_ci_low) and "negative" in mine.error
    absolute = gb["test"]["absolute"]
    assert close(mine.absolute_lift, absolute["expected"]) and close(mine.p_value, absolute["p_value"])
    assert close(mine.absolute_ci_low, absolute["ci"][0]) and close(mine.absolute_ci_high, absolute["ci"][1])
    row = _verdict_rows(_two_arms(spec)).row(0, named=True)
    assert row["relative_lift"] is None and row["decision_basis"] == "absolute"
    assert row["verdict"] == "significantly better" and row["decision_ci_low"] > 0
    assert row["decision_lift"] == pytest.approx(mine.absolute_lift, rel=1e-12)


@pytest.mark.parametrize("case_id", CASE_IDS)
@pytest.mark.parametrize("higher_is_better", [True, False])
def test_the_verdict_never_contradicts_the_interval_it_comes_with(case_id, cases, higher_is_better):
    """The verdict is read off the decision interval (CUPED relative, else relative, else absolute), and that
    test's p-value is below alpha exactly when the interval excludes 0. ratio_small_unequal is the case the
    old verdict got wrong: Welch's absolute p = 0.057 said inconclusive beside a relative 95 % interval that
    excludes 0 (relative p = 0.027)."""
    spec = cases[case_id]["spec"]
    arms = _two_arms(spec, weights=(spec["control"]["users"], spec["treatment"]["users"]))  # no SRM here
    row = _verdict_rows(arms, higher_is_better=higher_is_better).row(0, named=True)
    expected_basis = "CUPED relative" if spec["cuped"] and row["cuped_theta"] else "relative"
    if case_id == "cuped_no_pre_variance":
        assert row["cuped_theta"] == 0 and expected_basis == "relative"
    assert row["decision_basis"] == expected_basis
    prefix = "cuped_" if expected_basis.startswith("CUPED") else ""
    low, high = row[f"{prefix}relative_ci_low"], row[f"{prefix}relative_ci_high"]
    assert (row["decision_ci_low"], row["decision_ci_high"]) == (low, high)
    assert row["decision_p_value"] == row[f"{prefix}relative_p_value"]
    excludes_zero = low > 0 or high < 0
    assert (row["decision_p_value"] < spec["alpha"]) == excludes_zero
    good = (low > 0) if higher_is_better else (high < 0)
    bad = (high < 0) if higher_is_better else (low > 0)
    assert row["verdict"] == ("significantly better" if good else "significantly worse" if bad else "inconclusive")
    assert row["significant"] == excludes_zero
    if case_id == "ratio_small_unequal":
        assert row["p_value"] > spec["alpha"] and excludes_zero  # the old verdict said inconclusive here


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


# ------------------------------------------------------------------------------------------------ quantiles, independent

def test_quantile_estimate_and_bounds_are_interpolated_order_statistics():
    """The arm's quantile is numpy's default (linear) quantile of the raw events, which is the order statistic
    at rank (n − 1)·ν interpolated (PERCENTILE_CONT); its bounds are the same at GrowthBook's levels."""
    c, _ = QUANTILE_CASES["p95_planted_shift"]["raw"]
    events = np.sort(np.concatenate(c))
    arm = QUANTILE_CASES["p95_planted_shift"]["spec"]["control"]

    def order_statistic(p):
        h = (events.size - 1) * p
        lo = math.floor(h)
        return events[lo] + (h - lo) * (events[min(lo + 1, events.size - 1)] - events[lo])

    n_star, low, high = quantile_interval_levels(0.95, events.size)
    assert arm["quantile"] == pytest.approx(order_statistic(0.95), rel=1e-12)
    assert arm["quantile_lower"] == pytest.approx(order_statistic(low), rel=1e-12)
    assert arm["quantile_upper"] == pytest.approx(order_statistic(high), rel=1e-12)
    assert arm["quantile"] == pytest.approx(float(np.percentile(events, 95)), rel=1e-12)
    # ranks from the normal approximation of the binomial count of events below the quantile
    half = float(sps.norm.ppf(0.975)) * math.sqrt(0.95 * 0.05 / n_star)
    assert (low, high) == pytest.approx((0.95 - half, 0.95 + half), rel=1e-15)


def test_quantile_n_star_is_growthbooks_grid_choice():
    """The largest of 100·2^k below n (GrowthBook reads the bounds of that n* from its grid), 100 below 101."""
    assert N_STAR_GRID[0] == 100 and N_STAR_GRID[-1] == 52_428_800 and len(N_STAR_GRID) == 20
    for n, expected in [(0, 100), (50, 100), (100, 100), (101, 100), (200, 100), (201, 200), (12_000, 6400),
                        (10**9, 52_428_800)]:
        assert quantile_n_star(n) == expected, n
    assert quantile_interval_levels(0.5, 10)[1:] == pytest.approx((0.5 - 1.959963984540054 * 0.05, 0.5 + 1.959963984540054 * 0.05))
    assert quantile_interval_levels(0.9999, 10)[2] == 0.99999999  # clipped


def test_quantile_variance_matches_the_spread_of_the_estimate_over_replications():
    """Over 300 simulated arms with clustered requests, the clustered variance estimate matches the actual
    variance of the p95 estimate; the i.i.d. one (ignoring that a user's requests are alike) is too small."""
    rng = np.random.default_rng(301)
    estimates, clustered, iid = [], [], []
    for _ in range(300):
        users = _latencies(rng, 250, user_sd=0.6)
        arm = QuantileStats(**quantile_arm(users, 0.95))
        plain = QuantileStats(**quantile_arm(users, 0.95, clustered=False))
        estimates.append(arm.quantile)
        clustered.append(compare_quantile(arm, arm).control_variance)
        iid.append(compare_quantile(plain, plain).control_variance)
    actual = float(np.var(estimates, ddof=1))
    assert 0.75 < float(np.mean(clustered)) / actual < 1.33
    assert float(np.mean(iid)) / actual < 0.75


def test_quantile_aa_false_positive_rate_is_near_alpha():
    """A/A comparisons of the p95: about 5 % significant at alpha 0.05 (the interval's coverage)."""
    rng = np.random.default_rng(302)
    significant = 0
    for _ in range(300):
        c, t = (QuantileStats(**quantile_arm(_latencies(rng, 200, user_sd=0.5), 0.95)) for _ in range(2))
        significant += compare_quantile(c, t).significant
    assert 3 <= significant <= 30  # 15 expected; 3–30 has probability > 0.999 under 5 %


def test_results_frame_handles_quantile_rows(cases):
    spec = QUANTILE_CASES["p95_planted_shift"]["spec"]
    rng = np.random.default_rng(113)
    users = [spec["control"]["users"], spec["treatment"]["users"]]
    revenue = [summarize(_revenue(rng, n, 30.0), pre=_revenue(rng, n, 30.0)) for n in users]
    rows = _frame_rows("Q", "revenue", "mean", revenue, [1, 1])
    quantile_rows = []
    for i, arm in enumerate((spec["control"], spec["treatment"])):
        quantile_rows.append({
            "experiment_key": "Q", "metric": "api_latency_p95", "variation_id": i, "is_control": i == 0,
            "metric_type": "quantile", "weight": 1, "users": arm["users"], "sum": arm["sum"],
            "sum_squares": arm["sum_squares"], "denominator_sum": arm["denominator_sum"],
            "denominator_sum_squares": arm["denominator_sum_squares"], "sum_products": arm["sum_products"],
            "quantile_level": arm["level"], "quantile_n": arm["events"], "quantile_nstar": arm["n_star"],
            "quantile": arm["quantile"], "quantile_lower": arm["quantile_lower"],
            "quantile_upper": arm["quantile_upper"],
        })
    frame = pl.DataFrame(rows + quantile_rows, infer_schema_length=None)
    out = results_frame(frame)
    assert out.height == 2
    q = out.filter(pl.col("metric") == "api_latency_p95").row(0, named=True)
    expected = _quantile(spec)
    assert q["metric_type"] == "quantile" and q["control_users"] == users[0]
    assert q["control_events"] == spec["control"]["events"] and q["treatment_events"] == spec["treatment"]["events"]
    assert q["p_value"] == expected.p_value and q["relative_ci_low"] == expected.relative_ci_low
    assert q["treatment_mean"] == spec["treatment"]["quantile"] and q["significant"]
    assert q["cuped_p_value"] is None and "quantile" in q["cuped_error"]
    mean_row = out.filter(pl.col("metric") == "revenue").row(0, named=True)
    assert mean_row["control_events"] is None and mean_row["cuped_p_value"] is not None
    with pytest.raises(ValueError, match="quantile rows need"):
        results_frame(frame.drop("quantile_nstar"))
