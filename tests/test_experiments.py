"""Experiments on the simulated world: assignment as the GrowthBook SDK does it, and the analysis recovers
what the simulator planted (simulator/experiments.py, truth.json `experiments`):

- nba-reasons-text: the treatment raises the acceptance probability by exactly 30 %: the 95 % interval
  of the acceptance rate's relative lift contains 0.30;
- home-layout-v2: no effect: the primary metric's null is not rejected;
- booking-flow-v2: the treatment's exposures are lost on Android: the sample-ratio check flags it, and
  only it, and none of its metrics gets a verdict;
- every experiment of experiments/flags.yaml (nba-home-card, nba-post-job-placement and personalized-home
  decide serving) logs exposures and has results for every metric its plan names;
- CUPED: the home-screen experiments start two weeks into the data, so their users have a pre-period; the
  reported variance reduction equals a recount from the users' facts before and after their exposure.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import yaml
from scipy import stats as scipy_stats

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(con) -> pl.DataFrame:
    return con.sql("select * from mart_experiment_results").pl()


def row(results: pl.DataFrame, experiment: str, metric: str) -> dict:
    rows = results.filter((pl.col("experiment_key") == experiment) & (pl.col("metric") == metric))
    assert rows.height == 1, rows
    return rows.row(0, named=True)


def test_the_planted_lift_is_inside_the_interval(results, world):
    planted = world[1]["experiments"]["nba-reasons-text"]["planted_relative_lift"]["rec_acceptance_rate"]
    r = row(results, "nba-reasons-text", "rec_acceptance_rate")
    assert r["relative_ci_low"] <= planted <= r["relative_ci_high"], r
    assert r["is_primary"] and r["control_users"] > 100 and r["treatment_users"] > 100


def test_no_effect_is_not_rejected(results):
    r = row(results, "home-layout-v2", "rec_acceptance_rate")
    assert r["p_value"] >= 0.05 and r["relative_ci_low"] <= 0 <= r["relative_ci_high"], r
    assert not r["significantly_better"] and not r["significantly_worse"]


def test_the_sample_ratio_mismatch_is_flagged_and_only_there(results, world):
    truth = world[1]["experiments"]
    flagged = results.group_by("experiment_key").agg(pl.col("srm_flag").first(), pl.col("srm_p_value").first())
    expected = {key for key, t in truth.items() if isinstance(t, dict) and t.get("srm_planted")}
    assert set(flagged.filter(pl.col("srm_flag"))["experiment_key"]) == expected == {"booking-flow-v2"}
    assert flagged.filter(pl.col("experiment_key") == "booking-flow-v2")["srm_p_value"][0] < 0.001


def test_logged_variations_agree_with_the_growthbook_sdk(con):
    """Every exposed user's logged variation is the one GrowthBook's own SDK gives that user."""
    from growthbook import GrowthBook

    from pitwall.flags import load_flags

    logging.getLogger("growthbook").setLevel(logging.CRITICAL)
    flags = load_flags()
    features = flags.growthbook_features()
    experiments = flags.experiments()
    exposures = con.sql("""
        select e.experiment_key, e.user_id, e.variation_id, u.role, u.region, u.platform, u.app_version
        from int_experiment_exposures e join dim_users u using (user_id)""").pl()
    assert exposures.height > 500
    for r in exposures.iter_rows(named=True):
        attributes = {k: r[k] for k in ("role", "region", "platform", "app_version") if r[k] is not None}
        gb = GrowthBook(attributes={"id": r["user_id"], **attributes}, features=features)
        result = gb.eval_feature(experiments[r["experiment_key"]]["feature_key"])
        gb.destroy()
        meta = experiments[r["experiment_key"]]["meta"]
        assert result.experiment is not None and result.experiment.key == r["experiment_key"], r
        assert meta[result.experimentResult.variationId]["key"] == r["variation_id"], r


def test_results_equal_an_independent_recount(con, results):
    """Per-user values recounted from the exposures and events, then Welch's t-test by scipy on them."""
    exposures = con.sql("""
        select experiment_key, user_id, variation_id, first_exposed_at from int_experiment_exposures
        where not multiple_variations and experiment_key = 'nba-reasons-text'""").pl()
    shown = con.sql("""
        select e.user_id, e.shown_at, e.accepted, a.action_value::double as value
        from int_recommendation_exposures e join dim_actions a using (action_id)""").pl()
    per_user = (exposures.join(shown, on="user_id", how="left")
                .with_columns(after=pl.col("shown_at") >= pl.col("first_exposed_at"))
                .group_by("user_id", "variation_id")
                .agg(shown=pl.col("after").fill_null(False).sum(),
                     accepted=(pl.col("after") & pl.col("accepted")).fill_null(False).sum(),
                     revenue=pl.when(pl.col("after") & pl.col("accepted")).then(pl.col("value")).otherwise(0.0).sum()))
    control = per_user.filter(pl.col("variation_id") == "control")
    treatment = per_user.filter(pl.col("variation_id") == "treatment")
    acceptance = row(results, "nba-reasons-text", "rec_acceptance_rate")
    assert acceptance["control_users"] == control.height and acceptance["treatment_users"] == treatment.height
    assert acceptance["control_mean"] == pytest.approx(control["accepted"].sum() / control["shown"].sum(), rel=1e-12)
    assert acceptance["treatment_mean"] == pytest.approx(treatment["accepted"].sum() / treatment["shown"].sum(), rel=1e-12)
    revenue = row(results, "nba-reasons-text", "rec_revenue_per_user")
    welch = scipy_stats.ttest_ind(treatment["revenue"].to_numpy(), control["revenue"].to_numpy(), equal_var=False)
    assert revenue["absolute_lift"] == pytest.approx(treatment["revenue"].mean() - control["revenue"].mean(), rel=1e-9)
    assert revenue["p_value"] == pytest.approx(welch.pvalue, rel=1e-6)
    ci = welch.confidence_interval(0.95)
    assert (revenue["absolute_ci_low"], revenue["absolute_ci_high"]) == pytest.approx((ci.low, ci.high), rel=1e-6)


def test_cuped_and_the_daily_series(con, results):
    revenue = row(results, "nba-reasons-text", "rec_revenue_per_user")
    assert revenue["cuped_relative_lift"] is not None and np.isfinite(revenue["cuped_p_value"])
    daily = con.sql("""select * from mart_experiment_daily where experiment_key = 'nba-reasons-text'
                       order by day""").pl()
    assert daily.height >= 5 and daily["day"].is_sorted()
    assert (daily["treatment_users"].diff().drop_nulls() >= 0).all()  # cumulative: users only join
    primary = row(results, "nba-reasons-text", "rec_acceptance_rate")
    last = daily.row(-1, named=True)
    # the last day's cumulative figures are the experiment's whole result
    assert last["treatment_users"] == primary["treatment_users"]
    assert last["relative_lift"] == pytest.approx(primary["relative_lift"], rel=1e-9)


def test_p95_latency_guardrail_equals_a_recount_and_flags_no_regression(con, results):
    """The event-level p95 of API request durations (api_latency_p95): each arm's quantile is numpy's (linear
    interpolation, = DuckDB quantile_cont) over the requests its exposed users made after their first exposure
    to the end date, recounted from the warehouse tables; the test on the recounted cluster sums gives the
    mart's numbers; the simulator plants no latency change, so no regression is flagged."""
    from orchestration.experiments.stats import QuantileStats, compare_quantile, quantile_interval_levels

    requests_sql = """
        select e.user_id, e.variation_id, r.duration_ms
        from int_experiment_exposures e
        join (select distinct experiment_key, end_date from experiment_definitions) d using (experiment_key)
        join fct_sessions s on s.user_id = e.user_id
        join fct_api_requests r on r.session_id = s.session_id
        where e.experiment_key = 'nba-reasons-text' and not e.multiple_variations
          and r.started_at >= e.first_exposed_at
          and r.started_at < cast(d.end_date as timestamptz) + interval 1 day"""
    requests = con.sql(requests_sql).pl()
    exposed = con.sql("""select variation_id, count(*) as users from int_experiment_exposures
                         where experiment_key = 'nba-reasons-text' and not multiple_variations group by all""").pl()
    r = row(results, "nba-reasons-text", "api_latency_p95")
    assert r["metric_type"] == "quantile" and r["higher_is_better"] is False
    arms = {}
    for variation in ("control", "treatment"):
        arm = requests.filter(pl.col("variation_id") == variation)
        durations = arm["duration_ms"].to_numpy()
        assert durations.size > 500
        assert r[f"{variation}_events"] == durations.size
        assert r[f"{variation}_users"] == exposed.filter(pl.col("variation_id") == variation)["users"][0]
        quantile = float(np.quantile(durations, 0.95))
        assert r[f"{variation}_mean"] == pytest.approx(quantile, rel=1e-12)
        cont = con.sql(f"select quantile_cont(duration_ms, 0.95) from ({requests_sql}) "
                       f"where variation_id = '{variation}'").fetchall()[0][0]
        assert r[f"{variation}_mean"] == pytest.approx(cont, rel=1e-12)
        n_star, low, high = quantile_interval_levels(0.95, durations.size)
        per_user = arm.group_by("user_id").agg(
            below=(pl.col("duration_ms") <= quantile).sum().cast(pl.Float64), n=pl.len().cast(pl.Float64))
        below, n = per_user["below"].to_numpy(), per_user["n"].to_numpy()
        q_low, q_high = np.quantile(durations, [low, high])
        arms[variation] = QuantileStats(
            level=0.95, events=durations.size, n_star=n_star, quantile=quantile, quantile_lower=float(q_low),
            quantile_upper=float(q_high), users=r[f"{variation}_users"], sum=float(below.sum()),
            sum_squares=float((below**2).sum()), denominator_sum=float(n.sum()),
            denominator_sum_squares=float((n**2).sum()), sum_products=float((below * n).sum()))
    recount = compare_quantile(arms["control"], arms["treatment"])
    assert r["p_value"] == pytest.approx(recount.p_value, rel=1e-6)
    assert (r["relative_ci_low"], r["relative_ci_high"]) == pytest.approx(
        (recount.relative_ci_low, recount.relative_ci_high), rel=1e-6)
    assert r["error"] is None and np.isfinite(r["p_value"])
    assert not r["significantly_worse"] and not r["guardrail_regressed"]


def test_a_sample_ratio_mismatch_gets_no_verdict(results):
    """booking-flow-v2 (SRM planted): every row says so instead of a verdict; nothing is significant or regressed."""
    booking = results.filter(pl.col("experiment_key") == "booking-flow-v2")
    assert booking.height >= 5 and booking["srm_flag"].all()
    assert set(booking["verdict"]) == {"invalid: sample ratio mismatch"}
    for column in ("significant", "significantly_better", "significantly_worse", "guardrail_regressed",
                   "cuped_significant"):
        assert not booking[column].fill_null(False).any(), column
    others = results.filter(pl.col("experiment_key") != "booking-flow-v2")
    assert not (others["verdict"] == "invalid: sample ratio mismatch").any()


def test_every_experiment_logs_exposures_and_has_every_planned_metric(con, results, world):
    """An experiment that assigns users (and so decides what they are served) is analysed: it has exposures,
    and a result for its primary metric and each guardrail; the exposures per variation are the users the
    simulated apps' GrowthBook SDK put in it (truth.json, recounted from the assignment), less the users the
    apps never brought to the feature."""
    from pitwall.flags import load_flags

    experiments = load_flags().experiments()
    assert {"nba-home-card", "nba-post-job-placement", "personalized-home"} <= set(experiments)
    truth = world[1]["experiments"]
    exposed = con.sql("""select experiment_key, variation_id, count(*) as users from int_experiment_exposures
                         where not multiple_variations group by all""").pl()
    for key, experiment in experiments.items():
        rows = results.filter(pl.col("experiment_key") == key)
        planned = {experiment["primary_metric"], *experiment["guardrail_metrics"]}
        assert planned <= set(rows["metric"]), (key, planned - set(rows["metric"]))
        assert rows.filter(pl.col("is_primary"))["metric"].to_list() == [experiment["primary_metric"]]
        assert set(rows.filter(pl.col("is_guardrail"))["metric"]) == set(experiment["guardrail_metrics"])
        for variation, assigned in truth[key]["assigned_by_variation"].items():
            users = exposed.filter((pl.col("experiment_key") == key) & (pl.col("variation_id") == variation))["users"]
            assert users.len() == 1 and 0 < users[0] <= assigned, (key, variation, users, assigned)
    planned_metrics = con.sql("""select p.experiment_key, p.metric from int_experiment_planned_metrics p
                                 anti join experiment_metrics m using (metric)""").fetchall()
    assert planned_metrics == []


def _per_user(con, experiment: str, metric: str) -> pl.DataFrame:
    """Each exposed user's metric value after, and in the 14 days before, their first exposure, recounted from
    int_user_facts and the exposures (not from fct_experiment_user_metrics)."""
    fact = con.execute("select numerator_fact from experiment_metrics where metric = ?", [metric]).fetchall()[0][0]
    return con.sql("""
        select e.user_id, e.variation_id,
               coalesce(sum(f.value) filter (where f.occurred_at >= e.first_exposed_at
                        and f.occurred_at < cast(d.end_date as timestamptz) + interval 1 day), 0) as post,
               coalesce(sum(f.value) filter (where f.occurred_at < e.first_exposed_at
                        and f.occurred_at >= e.first_exposed_at - interval 14 day), 0) as pre
        from int_experiment_exposures e
        join (select distinct experiment_key, end_date from experiment_definitions) d using (experiment_key)
        left join int_user_facts f on f.user_id = e.user_id and f.fact = ?
        where e.experiment_key = ? and not e.multiple_variations
        group by all""", params=[fact, experiment]).pl()


def test_cuped_has_a_pre_period_and_reports_its_variance_reduction(con, results):
    """The home-screen experiments start two weeks into the data: their users did something before their
    first exposure, θ is not 0, and the variance reduction the mart reports is the recount's."""
    reductions = {}
    for experiment in ("home-layout-v2", "booking-flow-v2", "nba-reasons-text", "nba-home-card"):
        users = _per_user(con, experiment, "rec_revenue_per_user")
        r = row(results, experiment, "rec_revenue_per_user")
        x, y = users["pre"].to_numpy(), users["post"].to_numpy()
        if experiment in ("home-layout-v2", "booking-flow-v2"):
            assert (x != 0).mean() > 0.3, experiment  # was: every user's pre-period 0, so θ = 0
        theta = np.cov(y, x, ddof=1)[0, 1] / np.var(x, ddof=1) if np.var(x) > 0 else 0.0
        assert r["cuped_theta"] == pytest.approx(theta, rel=1e-9, abs=1e-12), experiment
        plain = adjusted = 0.0
        for variation in ("control", "treatment"):
            arm = users.filter(pl.col("variation_id") == variation)
            ya, xa = arm["post"].to_numpy(), arm["pre"].to_numpy()
            plain += np.var(ya, ddof=1) / ya.size
            adjusted += np.var(ya - theta * xa, ddof=1) / ya.size
        assert r["cuped_variance_reduction"] == pytest.approx(1 - adjusted / plain, rel=1e-6, abs=1e-12), experiment
        reductions[experiment] = r["cuped_variance_reduction"]
    ratio_rows = results.filter(pl.col("metric_type") != "mean")
    assert ratio_rows["cuped_variance_reduction"].is_null().all()
    print("CUPED variance reduction of rec_revenue_per_user:", reductions)


def _build_planned_metrics(root: Path, flags_data: dict) -> subprocess.CompletedProcess:
    """experiment_definitions of ``flags_data`` (loaded without the metric check) into ``root``'s warehouse, then
    dbt builds the seed experiment_metrics and int_experiment_planned_metrics with its tests there."""
    from conftest import ROOT, subprocess_env
    from orchestration.experiments.analysis import definitions_frame
    from pitwall.flags import parse_flags

    root.mkdir(parents=True, exist_ok=True)
    frame = definitions_frame(parse_flags(flags_data))
    with duckdb.connect(str(root / "warehouse.duckdb")) as warehouse:
        warehouse.register("frame", frame.to_arrow())
        warehouse.execute("create or replace table experiment_definitions as select * from frame")
    # one target folder per data root: dbt's partial parse is keyed by the profile (the warehouse path), so a
    # second build in the same root parses only what changed, and a parse made for another root is no use
    target = root / "dbt_target"
    return subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "build", "--select", "experiment_metrics",
         "int_experiment_planned_metrics", "--project-dir", ".", "--profiles-dir", ".", "--target-path", str(target)],
        cwd=ROOT / "dbt_project", capture_output=True, text=True,
        env={**subprocess_env(), "PITWALL_DATA_DIR": str(root), "PITWALL_ENGINE": "duckdb"})


def test_the_dbt_build_refuses_a_planned_metric_nobody_defined(tmp_path):
    """The relationships test of int_experiment_planned_metrics: the project's own plans build; the same plans
    with a guardrail experiment_metrics does not define (one the old flags.yaml named) fail the build,
    naming the test, where the metric used to vanish in an inner join."""
    from pitwall.flags import flags_path

    data = yaml.safe_load(flags_path().read_text())
    good = _build_planned_metrics(tmp_path, data)
    assert good.returncode == 0, good.stdout[-3000:]
    for feature in data["features"]:
        for rule in feature.get("rules", []):
            if rule.get("key") == "nba-home-card":
                rule["guardrail_metrics"] = [*rule["guardrail_metrics"], "app_uninstall_rate"]
    bad = _build_planned_metrics(tmp_path, data)  # the same warehouse, its definitions replaced
    assert bad.returncode != 0
    assert "relationships_int_experiment_planned_metrics_metric" in bad.stdout, bad.stdout[-3000:]
    assert "Got 1 result" in bad.stdout, bad.stdout[-3000:]
