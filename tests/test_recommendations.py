"""The recommendations serving table, end to end through Dagster.

On the demo world (two weeks: too short to train) the pipeline still publishes recommendations, by the
rules-only ordering, and says why. On a five-week world the model is trained, gated and promoted, and the
table comes from the champion: its AUC on the holdout reaches 0.75 against labels drawn from the
simulator's hidden propensity, it beats both baselines on NDCG@3, and every row carries a reason and the
model version. The policy's switches (placements, caps) hold and identical inputs give identical tables.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml

from conftest import ROOT, cached_world, session_copy, subprocess_env

pytestmark = pytest.mark.slow


def published_rows(root: Path, sql: str):
    con = duckdb.connect(str(root / "published" / "pitwall.duckdb"), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def check_table_invariants(root: Path) -> None:
    # one row per user × placement × rank, ranks 1..3, only candidates that passed eligibility and suppression
    assert published_rows(root, """
        select count(*) from (select user_id, placement, rank, count(*) n from recommendations group by all) where n > 1
    """) == [(0,)]
    assert published_rows(root, "select min(rank), max(rank) <= 3 from recommendations") == [(1, True)]
    assert published_rows(root, """
        select count(*) from recommendations r left join int_nba_candidates c
          on c.user_id = r.user_id and c.action_id = r.action_id and c.placement = r.placement
        where c.user_id is null or c.ineligible_reason is not null""") == [(0,)]
    # every row has a reason; the Parquet copy has every row
    assert published_rows(root, "select count(*) from recommendations where len(reason_codes) = 0 or reason_codes is null") == [(0,)]
    for table in ("recommendations", "maintenance_reminders"):
        parquet = root / "published" / "serving" / f"{table}.parquet"
        assert published_rows(root, f"select count(*) from read_parquet('{parquet}')") == \
            published_rows(root, f"select count(*) from {table}")
    # reminders: vehicles with a service due by its rule, each once, ranked 1..n, each with its reason
    assert published_rows(root, """
        select count(*) from maintenance_reminders m join int_nba_candidates c using (user_id, vin, action_id)
        where not coalesce(c.due_by_rule, false)""") == [(0,)]
    assert published_rows(root, """
        select count(*) = count(distinct (vin, action_id)) and count(*) = max(rank) and count(due_reason) = count(*)
        from maintenance_reminders""") == [(True,)]


def test_too_little_history_gives_rules_fallback_recommendations(world):
    root = world[0]
    assert published_rows(root, "select count(*) > 100 from recommendations") == [(True,)]
    assert published_rows(root, "select distinct policy from recommendations where policy <> 'explore'") == [("rules_fallback",)]
    assert published_rows(root, "select count(*) from recommendations where model_version is not null") == [(0,)]
    assert published_rows(root, "select count(*) > 0 from maintenance_reminders") == [(True,)]
    check_table_invariants(root)


TRAINED_WORLD_DAYS = 35


def trained_world_args() -> list[str]:
    start = dt.date.today() - dt.timedelta(days=TRAINED_WORLD_DAYS)
    return ["--customers", "2000", "--technicians", "60", "--days", str(TRAINED_WORLD_DAYS), "--seed", "3",
            "--start-date", start.isoformat(), "--no-progress"]


def build_trained_world(root: Path) -> None:
    env = {**subprocess_env(), "PITWALL_DATA_DIR": str(root)}
    subprocess.run([sys.executable, "-m", "simulator", "--out", str(root / "landing"), *trained_world_args()],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    run = subprocess.run([str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "--select", "*",
                          "-m", "orchestration.definitions"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]


@pytest.fixture(scope="module")
def trained_world(tmp_path_factory, dbt_manifest):
    """Five weeks ending yesterday, 2,000 customers: enough logged exposures (about 30,000) to train on."""
    root = session_copy(cached_world("trained", build_trained_world, *trained_world_args()), tmp_path_factory,
                        "nba_world")
    return root, json.loads((root / "landing" / "truth.json").read_text())


def champion_metrics(root: Path, monkeypatch) -> dict:
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from mlflow import MlflowClient

    from models_ml.nba import MODEL_NAME, configure

    configure()
    client = MlflowClient()
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    return {"version": version.version, **client.get_run(version.run_id).data.metrics}


def test_the_champion_beats_the_baselines_and_recovers_the_hidden_propensity(trained_world, monkeypatch):
    root, truth = trained_world
    metrics = champion_metrics(root, monkeypatch)
    assert Path(root / "mlflow" / "mlflow.db").exists()  # the run's own store, under its data root
    assert metrics["model_auc"] >= 0.75, metrics
    assert metrics["model_auc"] <= truth["recommendations"]["auc_of_hidden_propensity"] + 0.05
    assert metrics["model_ndcg_at_3"] > metrics["popularity_ndcg_at_3"]
    assert metrics["model_ndcg_at_3"] > metrics["rules_ndcg_at_3"]
    rows = published_rows(root, "select distinct policy, model_version, model_alias from recommendations")
    assert {p for p, _, _ in rows} <= {"model", "explore"} and "model" in {p for p, _, _ in rows}
    assert {(v, a) for _, v, a in rows} == {(str(metrics["version"]), "champion")}
    check_table_invariants(root)
    # the training's own record (what the Recommendations page reads) agrees with the MLflow registry
    ((version, alias, auc, ndcg),) = published_rows(root, """
        select version, alias, model_auc, model_ndcg_at_3 from nba_model_runs where trained""")
    assert (version, alias) == (str(metrics["version"]), "champion")
    assert (auc, ndcg) == pytest.approx((metrics["model_auc"], metrics["model_ndcg_at_3"]))


def test_policy_switches_and_determinism(trained_world, monkeypatch):
    root, _ = trained_world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from models_ml.nba.policy import PolicyConfig
    from orchestration.recommendations.build import build_recommendations
    from pitwall.flags import flags_path, parse_flags

    first, _ = build_recommendations(PolicyConfig())
    again, _ = build_recommendations(PolicyConfig())
    stable = [c for c in first.columns if c not in ("scoring_run_id", "generated_at")]
    assert first.select(stable).equals(again.select(stable))
    assert first.filter(first["policy"] == "explore").height > 0
    # scoring in chunks of users changes nothing but peak memory
    from orchestration.recommendations.build import build_serving
    chunked = build_serving(PolicyConfig(), chunk_users=500)
    assert chunked.summary["chunks"] > 1
    assert chunked.recommendations.select(stable).equals(first.select(stable))

    # placements follow their flags (experiments/flags.yaml); switched off by a force rule: no rows
    definitions = yaml.safe_load(flags_path().read_text())
    for feature in definitions["features"]:
        if feature["key"] == "rec-placement-post_job":
            feature["rules"] = [{"id": "post-job-off", "force": False}]
    off, summary = build_recommendations(PolicyConfig(), flags=parse_flags(definitions))
    assert "post_job" not in set(off["placement"]) and summary["placement_switched_off"] > 0
    assert off.height == first.filter(first["placement"] != "post_job").height

    capped, summary = build_recommendations(PolicyConfig(weekly_cap=1))
    heavy = set(first["user_id"]) - set(capped["user_id"])
    assert heavy and summary["weekly_cap"] > 0  # users shown a recommendation in the last week get none

    one_upsell, _ = build_recommendations(PolicyConfig(max_per_kind={"upsell": 1, "maintenance_reminder": 1}))
    per_kind = one_upsell.group_by("user_id", "placement", "action_kind").len()
    assert per_kind["len"].max() == 1


def test_rows_carry_the_flag_variation_that_produced_them(world, monkeypatch):
    """Each placement's flag, evaluated per user as the GrowthBook SDK does: users in an experiment's
    control (placement off) get no rows there; every row names the experiment and variation behind it."""
    root, _ = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from orchestration.recommendations.placements import placement_flag_key
    from pitwall.flags import evaluate, load_flags

    flags = load_flags()
    table = pl.read_parquet(root / "published" / "serving" / "recommendations.parquet")
    con = duckdb.connect(str(root / "published" / "pitwall.duckdb"), read_only=True)
    users = con.sql("select user_id as id, role, region, platform, app_version from dim_users").pl()
    eligible = con.sql("select distinct user_id, placement from int_nba_candidates where ineligible_reason is null").pl()
    con.close()
    assert table["user_id"].is_sorted()
    for placement in ("home_card", "post_job", "service_history"):
        expected = evaluate(flags, placement_flag_key(placement), users).rename({"id": "user_id"})
        rows = table.filter(pl.col("placement") == placement).unique("user_id").join(expected, on="user_id", how="left")
        assert rows.height > 0 and rows["value"].all(), placement          # rows only where the flag is on
        in_experiment = rows.filter(pl.col("source") == "experiment")
        assert (in_experiment["experiment_key"] == in_experiment["experiment_key_right"]).all()
        assert rows.filter(pl.col("source") != "experiment")["experiment_key"].null_count() == rows.filter(pl.col("source") != "experiment").height
        switched_off = expected.filter(~pl.col("value")).join(eligible.filter(pl.col("placement") == placement),
                                                              on="user_id", how="semi")
        assert switched_off.join(rows, on="user_id", how="semi").is_empty()
    home = table.filter(pl.col("placement") == "home_card")
    assert set(home["experiment_key"]) == {"nba-home-card"} and set(home["variation_id"]) == {"treatment"}
