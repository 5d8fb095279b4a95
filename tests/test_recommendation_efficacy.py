"""Recommendation efficacy on a simulated world: mart_recommendation_efficacy equals a recount from stg_events
(last-touch crediting redone in polars), and mart_recommendation_efficacy_ips recovers each action's true
expected acceptance (the simulator's mean hidden propensity under its uniform logging policy) within its
interval, and equals an independent numpy computation of IPS, SNIPS and their intervals."""

from __future__ import annotations

import json
from datetime import timedelta

import numpy as np
import polars as pl
import pytest
from scipy.stats import norm

pytestmark = pytest.mark.slow

KEYS = ["week_start", "placement", "action_id", "model_version", "policy", "experiment_key", "variation_id"]
Z95 = norm.ppf(0.975)


def _events(con, names: tuple[str, ...]) -> pl.DataFrame:
    rows = con.execute(
        "select message_id, event_name, user_id, occurred_at, properties from stg_events "
        "where event_name in (select unnest(?)) and user_id is not null", [list(names)]).fetchall()
    out = []
    for mid, name, user, at, props in rows:
        p = json.loads(props)
        out.append({"message_id": mid, "event_name": name, "user_id": user, "at": at,
                    **{k: None if p.get(k) is None else str(p[k]) for k in KEYS[1:]}})
    return pl.DataFrame(out).with_columns(pl.col("at").dt.convert_time_zone("UTC"))


def test_counts_equal_a_recount_from_stg_events(con):
    shown = _events(con, ("recommendation_shown",)).sort("at")
    outcomes = _events(con, ("recommendation_clicked", "recommendation_accepted")).sort("at")
    # each click / acceptance goes to the latest exposure of the same action to the same user in the 7 days before
    credited = outcomes.select("event_name", "user_id", "action_id", "at").join_asof(
        shown.select("message_id", "user_id", "action_id", pl.col("at").alias("shown_at")),
        left_on="at", right_on="shown_at", by=["user_id", "action_id"], strategy="backward",
        tolerance=timedelta(days=7), check_sortedness=False).drop_nulls("message_id")
    flags = credited.group_by("message_id").agg(
        clicked=(pl.col("event_name") == "recommendation_clicked").any(),
        accepted=(pl.col("event_name") == "recommendation_accepted").any())
    recount = (shown.join(flags, on="message_id", how="left")
               .with_columns(week_start=pl.col("at").dt.date().dt.truncate("1w"))
               .group_by(KEYS).agg(shown=pl.len(), clicked=pl.col("clicked").fill_null(False).sum(),
                                   accepted=pl.col("accepted").fill_null(False).sum()))
    mart = con.sql(f"select {', '.join(KEYS)}, shown, clicked, accepted from mart_recommendation_efficacy").pl()
    assert recount["shown"].sum() > 1000 and recount["accepted"].sum() > 50
    assert sorted(map(tuple, recount.select(mart.columns).rows())) == sorted(map(tuple, mart.rows()))
    # what the simulator logs: every exposure is exploration with propensity 1 / 6
    assert set(shown["policy"]) == {"explore"}
    derived = con.execute("""
        select max(abs(acceptance_rate - accepted / shown)), max(abs(revenue - accepted * action_value)),
               max(abs(revenue_per_impression - accepted * action_value / shown)), min(shown_with_propensity = shown)
        from mart_recommendation_efficacy""").fetchall()[0]
    assert max(derived[:3]) < 1e-9 and derived[3]


def _independent_estimates(con) -> pl.DataFrame:
    """IPS, SNIPS, their standard errors and intervals in numpy, from the exposures."""
    ex = con.sql("""select action_id, as_of_date, accepted, policy, propensity_logged
                    from int_recommendation_exposures""").pl()
    ex = ex.filter((pl.col("policy") == "explore") & (pl.col("propensity_logged") > 0)
                   & (pl.col("propensity_logged") <= 1))
    ex = ex.with_columns(week=pl.col("as_of_date").dt.truncate("1w"))
    periods = [("all", ex["as_of_date"].min(), ex)] + [
        ("week", week, ex.filter(pl.col("week") == week)) for week in ex["week"].unique().sort()]
    rows = []
    for period, start, part in periods:
        n = len(part)
        y = part["accepted"].cast(pl.Float64).to_numpy()
        for action in ex["action_id"].unique().sort():
            w = np.where(part["action_id"].to_numpy() == action, 1 / part["propensity_logged"].to_numpy(), 0.0)
            z = w * y
            ips, ips_se = z.mean(), np.sqrt(z.var(ddof=1) / n)
            snips = z.sum() / w.sum()
            snips_se = np.sqrt(np.sum((w * (y - snips)) ** 2)) / w.sum()
            rows.append({"action_id": action, "period": period, "period_start": start,
                         "ips_acceptance": ips, "ips_se": ips_se,
                         "ips_ci_low": max(ips - Z95 * ips_se, 0), "ips_ci_high": ips + Z95 * ips_se,
                         "snips_acceptance": snips, "snips_se": snips_se,
                         "snips_ci_low": max(snips - Z95 * snips_se, 0), "snips_ci_high": min(snips + Z95 * snips_se, 1)})
    return pl.DataFrame(rows)


def test_ips_and_snips_equal_an_independent_computation(con):
    mine = _independent_estimates(con).sort("action_id", "period", "period_start")
    mart = con.sql(f"select {', '.join(mine.columns)} from mart_recommendation_efficacy_ips").pl().sort(
        "action_id", "period", "period_start")
    assert mart.select("action_id", "period", "period_start").rows() == mine.select(
        "action_id", "period", "period_start").rows()
    for column in mine.columns[3:]:
        assert np.allclose(mart[column].to_numpy(), mine[column].to_numpy(), rtol=0, atol=1e-9), column


def test_snips_recovers_the_true_acceptance_of_each_action(con, world):
    truth = world[1]["recommendations"]["mean_hidden_propensity_by_action"]
    rows = con.execute("""select action_id, snips_acceptance, snips_se, snips_ci_low, snips_ci_high
                          from mart_recommendation_efficacy_ips where period = 'all'""").fetchall()
    assert {r[0] for r in rows} == set(truth)
    # Six 95 % intervals: even if every one is right, all six cover their truth only 0.95^6 ≈ 74 % of the time.
    # So: at least 5 of 6 inside their 95 % interval (≈ 97 % for correct intervals), and all six inside
    # Bonferroni-widened intervals (family-wise 95 %: z = Φ⁻¹(1 − 0.05 / 12)).
    inside = [lo <= truth[a] <= hi for a, _, _, lo, hi in rows]
    assert sum(inside) >= 5, rows
    z_family = norm.ppf(1 - 0.05 / (2 * len(rows)))
    assert all(abs(est - truth[a]) <= z_family * se for a, est, se, _, _ in rows), rows
    # the interval's half-width is the normal quantile times the delta-method se (unclipped here)
    assert all(np.isclose(hi - est, Z95 * se, rtol=1e-12) for _, est, se, _, hi in rows)


def test_ips_and_snips_agree_under_uniform_propensities(con):
    rows = con.execute("""select exploration_exposures, shown, sum_w, ips_acceptance, ips_se, snips_acceptance,
                                 effective_sample_size
                          from mart_recommendation_efficacy_ips where period = 'all'""").fetchall()
    for n, shown, sum_w, ips, ips_se, snips, ess in rows:
        assert ess == pytest.approx(shown, rel=1e-12)  # equal weights: every exposure counts fully
        assert sum_w == pytest.approx(6 * shown, rel=1e-12)
        # IPS = SNIPS × Σw / n: they differ only by the action's share of exploration, 1/6 in expectation
        assert ips == pytest.approx(snips * sum_w / n, rel=1e-12)
        assert abs(ips - snips) < ips_se


def test_both_marts_are_published(world):
    import duckdb

    published = duckdb.connect(str(world[0] / "published" / "pitwall.duckdb"), read_only=True)
    try:
        counts = published.execute("""select (select count(*) from mart_recommendation_efficacy),
                                             (select count(*) from mart_recommendation_efficacy_ips)""").fetchall()
    finally:
        published.close()
    assert counts[0][0] > 0 and counts[0][1] > 0
