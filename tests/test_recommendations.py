"""The recommendations serving table, end to end through Dagster.

The demo world (five weeks, `make demo`) trains, gates and promotes the model, and the table comes from the
champion: its AUC on the holdout reaches 0.75 against labels drawn from the simulator's hidden propensity,
it beats both baselines on NDCG@3, and every row carries a reason and the model version. With too little
history (the world's first week) training is skipped with its reason and the rules-only ordering serves; on
unchanged training rows it is skipped too, naming the run that trained on them.
The policy's switches (placements, caps) hold and identical inputs give identical tables.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pytest
import yaml

from conftest import relocate_sqlite_paths

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


def test_too_little_history_gives_rules_fallback_recommendations(world, tmp_path, monkeypatch):
    """The demo world trains a champion; its first week alone is too little to train on. On a copy of its warehouse
    holding one week of labelled exposures and no MLflow store, training is skipped with the reason, and the serving
    table is ranked by the rules fallback (and explore), with every row's reason, and the reminders still come."""
    shutil.copy(world[0] / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("delete from fct_nba_training where as_of_date >= (select min(as_of_date) + 7 from fct_nba_training)")
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path))
    from orchestration.recommendations.build import TrainingSkipped, build_serving, train

    skipped = train()
    assert isinstance(skipped, TrainingSkipped) and "need" in skipped.reason
    tables = build_serving()
    rows = tables.recommendations
    assert rows.height > 100 and tables.summary["policy"] == "rules_fallback"
    assert set(rows["policy"]) <= {"rules_fallback", "explore"} and "rules_fallback" in set(rows["policy"])
    assert rows["model_version"].null_count() == rows.height
    assert rows.group_by("user_id", "placement", "rank").len()["len"].max() == 1
    assert (rows["rank"].min(), rows["rank"].max()) == (1, 3)
    assert rows.filter(pl.col("reason_codes").list.len() == 0).is_empty()
    assert tables.maintenance_reminders.height > 0


def test_training_again_registers_nothing_for_unchanged_rows_or_within_the_refit_cadence(world, tmp_path,
                                                                                       monkeypatch):
    """The demo's pipeline trained pitwall-nba on the world's labelled exposures. On a copy of its warehouse and
    MLflow store, training again (another process, as a re-run of the pipeline would) is skipped, naming that
    run, and registers no version; with one label flipped, it is skipped within the refit cadence, and trains
    and registers one without it."""
    root = world[0]
    shutil.copy(root / "warehouse.duckdb", tmp_path / "warehouse.duckdb")
    shutil.copytree(root / "mlflow", tmp_path / "mlflow")
    for store in (tmp_path / "mlflow").glob("*.db"):
        relocate_sqlite_paths(store, str(root), str(tmp_path))
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path))
    from models_ml.nba import MODEL_NAME, configure
    from orchestration.recommendations.build import TrainingOutcome, TrainingSkipped, train

    client, _ = configure()

    def versions() -> int:
        return len(client.search_model_versions(f"name = '{MODEL_NAME}'"))

    before = versions()
    trained_run = client.get_model_version_by_alias(MODEL_NAME, "champion").run_id
    skipped = train()
    assert isinstance(skipped, TrainingSkipped), skipped
    assert "unchanged" in skipped.reason and trained_run in skipped.reason, skipped.reason
    assert versions() == before
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("update fct_nba_training set label = 1 - label "
                    "where exposure_id = (select min(exposure_id) from fct_nba_training)")
    # changed rows through the same day: within the weekly refit cadence, the champion keeps serving
    monkeypatch.delenv("PITWALL_REFIT_EVERY_DAYS", raising=False)
    within = train()
    assert isinstance(within, TrainingSkipped) and "refit every 7 days" in within.reason, within
    assert within.trained_run_id == trained_run and versions() == before
    monkeypatch.setenv("PITWALL_REFIT_EVERY_DAYS", "0")  # refit whenever the rows change
    assert isinstance(train(), TrainingOutcome)
    assert versions() == before + 1


def champion_metrics(root: Path, monkeypatch) -> dict:
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from mlflow import MlflowClient

    from models_ml.nba import MODEL_NAME, configure

    configure()
    client = MlflowClient()
    version = client.get_model_version_by_alias(MODEL_NAME, "champion")
    return {"version": version.version, **client.get_run(version.run_id).data.metrics}


def test_the_champion_beats_the_baselines_and_recovers_the_hidden_propensity(world, monkeypatch):
    root, truth = world
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


def test_policy_switches_and_determinism(world, monkeypatch):
    root, _ = world
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
    chunked = build_serving(PolicyConfig(), chunk_users=20)
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


def test_explored_rows_log_the_probability_recounted_from_the_candidates(world, con, monkeypatch):
    """propensity_logged of every explored rank 1 is ε / n + (1 − ε)·[the greedy choice], with n the slot's
    eligible actions recounted from int_nba_candidates (before arbitration) and the greedy choice the best
    expected value under the champion: in the published table, and with half the slots explored (enough
    slots where arbitration cuts an action that the old draw, over the actions arbitration kept, differed)."""
    root, _ = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from models_ml.nba.policy import POLICY_EXPLORE, PolicyConfig
    from models_ml.nba.scoring import load_champion, score
    from orchestration.recommendations.build import FEATURE_SELECT, build_recommendations

    slot = ["user_id", "placement"]
    candidates = con.sql(f"select {FEATURE_SELECT} from int_nba_candidates where ineligible_reason is null").pl()
    eligible = candidates.group_by(slot).len("n_eligible")
    greedy = (score(load_champion(), candidates)
              .sort([*slot, "expected_value", "action_id"], descending=[False, False, True, False], nulls_last=True)
              .group_by(slot, maintain_order=True).first().select(*slot, greedy_action="action_id"))
    published = pl.read_parquet(root / "published" / "serving" / "recommendations.parquet")
    half, _ = build_recommendations(PolicyConfig(explore_share=0.5))
    for share, table in ((PolicyConfig().explore_share, published), (0.5, half)):
        explored = (table.filter(pl.col("policy") == POLICY_EXPLORE).join(eligible, on=slot, how="left")
                    .join(greedy, on=slot, how="left"))
        assert explored.height > 0 and explored["n_eligible"].null_count() == 0
        assert (explored["rank"] == 1).all()
        expected = (share / explored["n_eligible"]
                    + pl.Series(np.where(explored["action_id"] == explored["greedy_action"], 1 - share, 0.0)))
        np.testing.assert_allclose(explored["propensity_logged"].to_numpy(), expected.to_numpy(), atol=1e-12)
    # at ε = 0.5 some explored slots show an action arbitration would have cut (no support before)
    cut = candidates.select(*slot, "action_id").join(published.select(*slot, "action_id"), on=[*slot, "action_id"],
                                                     how="anti")
    assert half.filter(pl.col("policy") == POLICY_EXPLORE).join(cut, on=[*slot, "action_id"], how="semi").height > 0


def test_the_weekly_cap_binds_in_the_demo_world(world, con, monkeypatch):
    """The simulator plants heavy recommendation viewers (truth.json recommendations.heavy_viewers): shown more
    than the weekly cap in the world's last week, so the cap decides for them. Their shown_last_7d is recounted
    from the exposures; they have eligible candidates, no published row, and rows when the cap is lifted."""
    root, truth = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from models_ml.nba.policy import PolicyConfig
    from orchestration.recommendations.build import build_recommendations

    cap = PolicyConfig().weekly_cap
    shown = dict(con.execute("""
        select user_id, count(*) from int_recommendation_exposures
        where shown_at >= cast((select max(as_of_date) from int_nba_spine where purpose = 'scoring') as timestamptz)
                           - interval 7 day
        group by user_id""").fetchall())
    candidates = dict(con.execute("""select user_id, any_value(shown_last_7d) from int_nba_candidates
                                     where ineligible_reason is null group by user_id""").fetchall())
    assert all(shown.get(user, 0) == n for user, n in candidates.items())
    capped = {user for user, n in candidates.items() if n >= cap}
    assert len(capped) >= 3, sorted(candidates.values())[-5:]
    assert capped <= set(truth["recommendations"]["heavy_viewers"]["customers"])
    published = set(published_rows(root, "select distinct user_id from recommendations"))
    assert not {(user,) for user in capped} & published
    rebuilt, summary = build_recommendations(PolicyConfig())
    assert not capped & set(rebuilt["user_id"]) and summary["weekly_cap"] > 0
    lifted, summary = build_recommendations(PolicyConfig(weekly_cap=10**6))
    assert capped <= set(lifted["user_id"]) and summary["weekly_cap"] == 0


def test_open_recalls_suppress_upsells_the_policy_would_show(world, con, monkeypatch):
    """The demo world ends with OEM recalls still open (simulator/partners/world.py): the recalled vehicles'
    upsells are ruled out by the recall (int_nba_candidates), none is published, and without the rule the
    policy would show some of them (they rank among the kept rows when put back among the candidates)."""
    root, _ = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from models_ml.nba.policy import PolicyConfig, rank
    from models_ml.nba.scoring import load_champion, score
    from orchestration.recommendations.build import FEATURE_SELECT

    recalled = con.sql(f"""select {FEATURE_SELECT} from int_nba_candidates
                            where ineligible_reason = 'open_recall_handled_by_oem'""").pl()
    assert recalled.height > 0
    # the rules after the recall in int_nba_candidates' order, that would still rule some of them out
    recalled = recalled.filter((pl.col("accepted_same_action_90d") == 0) & (pl.col("declined_same_action_30d") < 2))
    published = pl.read_parquet(root / "published" / "serving" / "recommendations.parquet")
    assert published.join(recalled, on=["user_id", "vin", "action_id"], how="semi").is_empty()
    eligible = con.sql(f"select {FEATURE_SELECT} from int_nba_candidates where ineligible_reason is null").pl()
    together = pl.concat([eligible, recalled], how="vertical_relaxed").with_columns(placement_on=pl.lit(True))
    kept, _ = rank(score(load_champion(), together), PolicyConfig(), by_model=True)
    assert kept.join(recalled, on=["user_id", "placement", "action_id"], how="semi").height > 0


def test_customer_reasons_lead_with_actionable_facts(world, con, monkeypatch):
    """On the demo world's champion: the reasons a customer is shown are facts about the vehicle or its history;
    context (region, segment, fuel type) only where none pushed the row up; the training run logs the share."""
    root, _ = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    from models_ml.nba.policy import PolicyConfig, rank
    from models_ml.nba.scoring import customer_reasons, explain, load_champion, score
    from models_ml.nba.spec import CONTEXT_REASONS, NOT_REASONS, REASON_TEMPLATES, REASON_WHEN_POSITIVE
    from orchestration.recommendations.build import FEATURE_SELECT

    champion = load_champion()
    candidates = con.sql(f"select {FEATURE_SELECT} from int_nba_candidates where ineligible_reason is null").pl()
    kept, _ = rank(score(champion, candidates.with_columns(placement_on=pl.lit(True))), PolicyConfig(), by_model=True)
    new = customer_reasons(champion, kept)["reason_features"].to_list()
    old = explain(champion, kept, REASON_TEMPLATES, exclude=NOT_REASONS, only_when_positive=REASON_WHEN_POSITIVE,
                  fallback="x")["reason_features"].to_list()
    context = set(CONTEXT_REASONS)
    assert any(f and f[0] in context and set(f) - context for f in old)  # what changed: context led them
    actionable = [bool(set(f) - context) for f in new]
    for feats, has in zip(new, actionable):
        assert not (has and set(feats) & context), feats
        assert not set(feats) & set(NOT_REASONS)
    assert sum(actionable) / len(new) > 0.9
    metrics = champion_metrics(root, monkeypatch)
    assert metrics["reasons_actionable_share"] > 0.9
    # what customers are served: the published rows follow the same rule (the serving asset calls customer_reasons)
    context_text = re.compile("|".join(
        "^" + re.escape(REASON_TEMPLATES[name]).replace(re.escape("{value}"), ".+") + "$" for name in CONTEXT_REASONS))
    served = con.sql("select reason_codes from recommendations where policy = 'model'").fetchall()
    assert served
    mixed = [codes for (codes,) in served
             if any(context_text.match(c) for c in codes) and not all(context_text.match(c) for c in codes)]
    assert mixed == []
