"""The NBA model in a real MLflow store: registration, the promotion gate, champion-only scoring, reasons."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx
import numpy as np
import polars as pl
import pytest
from mlflow import MlflowClient

from conftest import ROOT
from models_ml.nba.gate import GateConfig
from models_ml.nba.pipeline import train_evaluate_register
from models_ml.nba.scoring import Champion, ChampionUnavailable, explain, load_champion, score
from models_ml.nba.synthetic import SPEC, TEMPLATES, synthetic_candidates
from models_ml.nba.tracking import MODEL_NAME, tracking_uri
from models_ml.nba.train import TrainConfig

PLANTED = {"oil_life_pct", "km_since_last_service_of_kind", "battery_voltage_trend_7d", "dtc_family_battery",
           "visits_365d", "declined_same_action_90d", "accepted_same_kind_90d", "region"}
NO_EFFECT = {"spend_365d", "days_since_last_visit", "platform", "placement"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A fresh sqlite MLflow store and data root for this module; the environment is restored after."""
    root = tmp_path_factory.mktemp("nba_data")
    saved = {k: os.environ.get(k) for k in ("PITWALL_DATA_DIR", "MLFLOW_TRACKING_URI")}
    os.environ["PITWALL_DATA_DIR"] = str(root)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return synthetic_candidates(n_users=1500, n_days=56, seed=11)


@pytest.fixture(scope="module")
def client(store):
    return MlflowClient(tracking_uri=tracking_uri(), registry_uri=tracking_uri())


@pytest.fixture(scope="module")
def no_champion_yet(store):
    return load_champion()


@pytest.fixture(scope="module")
def first(store, frame, no_champion_yet):
    return train_evaluate_register(frame, SPEC, TrainConfig(seed=1), run_name="good")


@pytest.fixture(scope="module")
def worse(first, frame):
    shuffled = frame.with_columns(
        pl.Series("label", np.random.default_rng(5).permutation(frame.get_column("label").to_numpy())))
    return train_evaluate_register(shuffled, SPEC, TrainConfig(seed=1), run_name="shuffled labels")


def test_the_store_lives_under_the_data_root(store, first):
    assert tracking_uri() == f"sqlite:///{store / 'mlflow' / 'mlflow.db'}"
    assert (store / "mlflow" / "artifacts").is_dir()


def test_no_champion_yet_signals_the_rules_fallback(no_champion_yet):
    assert isinstance(no_champion_yet, ChampionUnavailable)
    assert no_champion_yet.policy == "rules_fallback"
    assert "champion" in no_champion_yet.reason


def test_first_model_beating_the_baselines_becomes_champion(client, first):
    d = first.decision
    assert d.promoted and d.alias == "champion" and d.previous_champion_version is None
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == first.version
    tags = client.get_model_version(MODEL_NAME, first.version).tags
    assert tags["gate.decision"] == "champion"
    run = client.get_run(first.run_id)
    assert run.data.tags["gate.decision"] == "champion" and run.data.tags["gate.reasons"] == "; ".join(d.reasons)
    for key in ("model_auc", "model_ndcg_at_3", "popularity_ndcg_at_3", "rules_ndcg_at_3", "model_ece",
                "model_brier", "model_log_loss", "model_precision_at_3"):
        assert key in run.data.metrics
    assert run.data.metrics["model_ndcg_at_3"] > run.data.metrics["popularity_ndcg_at_3"]
    artifacts = {a.path for a in client.list_artifacts(first.run_id)} | \
        {a.path for a in client.list_artifacts(first.run_id, "plots")}
    assert {"encoding.json", "feature_list.json", "gate_decision.json", "plots/roc.png", "plots/precision_recall.png",
            "plots/calibration.png", "plots/gain.png", "plots/feature_importance.png"} <= artifacts
    model = client.get_model_version(MODEL_NAME, first.version)
    assert model.run_id == first.run_id
    # the registered model says what it reads (the encoded features, in order) and shows an example of it
    import mlflow

    from models_ml.nba.features import Encoding
    info = mlflow.models.get_model_info(f"models:/{MODEL_NAME}@champion")
    encoding = Encoding.from_json(mlflow.artifacts.load_text(f"runs:/{first.run_id}/encoding.json"))
    assert [c.name for c in info.signature.inputs.inputs] == list(encoding.names)
    assert info.saved_input_example_info is not None


def test_worse_model_is_not_promoted_and_the_champion_stays(client, first, worse):
    d = worse.decision
    assert not d.promoted and d.alias == "challenger"
    assert d.previous_champion_version == first.version
    assert d.champion_metrics is not None  # the champion was re-scored on the new holdout
    assert any("does not beat popularity" in r for r in d.reasons)
    assert any(f"champion v{first.version}" in r for r in d.reasons)
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == first.version
    assert str(client.get_model_version_by_alias(MODEL_NAME, "challenger").version) == worse.version
    tags = client.get_model_version(MODEL_NAME, worse.version).tags
    assert tags["gate.decision"] == "challenger" and "does not beat" in tags["gate.reasons"]


def test_a_model_dominated_by_an_id_like_column_is_not_promoted(client, first, worse, frame):
    # a ticket number that leaks the label: great metrics, but the gate refuses it
    rng = np.random.default_rng(3)
    leak = frame.with_columns((pl.col("label").cast(pl.Int64) * 10_000_000
                               + pl.Series(rng.permutation(len(frame)))).alias("ticket_id"))
    out = train_evaluate_register(leak, [*SPEC, ("ticket_id", "numeric")], TrainConfig(seed=1),
                                  GateConfig(), run_name="id leak")
    assert out.evaluation.metrics["model"]["auc"] > first.evaluation.metrics["model"]["auc"]
    assert not out.decision.promoted
    assert any("ticket_id" in r and "dominates" in r for r in out.decision.reasons)
    assert str(client.get_model_version_by_alias(MODEL_NAME, "champion").version) == first.version


def test_scoring_uses_the_champion_alias_not_the_latest_version(first, worse):
    champ = load_champion()
    assert isinstance(champ, Champion)
    assert champ.version == first.version != worse.version
    assert champ.run_id == first.run_id
    candidates = synthetic_candidates(n_users=300, n_days=1, session_rate=1.0, actions_per_session=8,
                                      with_labels=False, seed=21)
    scored = score(champ, candidates)
    assert scored.get_column("model_version").unique().to_list() == [first.version]
    assert scored.get_column("mlflow_run_id").unique().to_list() == [first.run_id]
    np.testing.assert_allclose(scored.get_column("propensity").to_numpy(), first.model.predict(candidates))
    assert not np.allclose(scored.get_column("propensity").to_numpy(), worse.model.predict(candidates))
    np.testing.assert_allclose(scored.get_column("expected_value").to_numpy(),
                               scored.get_column("propensity").to_numpy() * candidates.get_column("action_value").to_numpy(),
                               rtol=1e-6)


def test_a_champion_that_cannot_load_signals_the_fallback(client, store, first):
    name = "pitwall-nba-broken"
    client.create_registered_model(name)
    mv = client.create_model_version(name, source=(store / "nowhere").as_uri(), run_id=None)
    client.set_registered_model_alias(name, "champion", mv.version)
    out = load_champion(name)
    assert isinstance(out, ChampionUnavailable) and "could not be loaded" in out.reason


def test_reasons_are_computed_for_kept_rows_and_name_the_features_that_matter(first):
    champ = load_champion()
    candidates = synthetic_candidates(n_users=400, n_days=1, session_rate=1.0, actions_per_session=8,
                                      with_labels=False, seed=22)
    scored = score(champ, candidates)
    kept = (scored.sort(["user_id", "expected_value"], descending=[False, True])
            .group_by("user_id", maintain_order=True).head(3))
    explained = explain(champ, kept, TEMPLATES, top_n=3, min_contribution=0.05,
                        exclude=("action_id", "action_kind"), fallback="recommended for your vehicle")
    assert len(explained) == len(kept) == 3 * 400
    assert explained.get_column("reason_codes").list.len().min() >= 1
    generic = explained.filter(pl.col("reason_features").list.len() == 0)
    assert len(generic) < 0.05 * len(explained)
    assert generic.get_column("reason_codes").to_list() == [["recommended for your vehicle"]] * len(generic)
    assert explained.get_column("reason_codes").list.len().max() <= 3
    assert (explained.get_column("reason_method") == "exact").all()
    feats = explained.get_column("reason_features").explode().drop_nulls()
    first_feats = explained.get_column("reason_features").list.first()
    assert first_feats.is_in(list(PLANTED)).mean() > 0.95
    assert feats.is_in(list(PLANTED)).mean() > 0.9
    assert not feats.is_in(["action_id", "action_kind"]).any()
    # a low-oil oil-change offer is explained by its oil life, with the row's own value in the text
    oil = explained.filter((pl.col("action_id") == "oil_change") & (pl.col("oil_life_pct") < 10))
    assert len(oil)
    first_reason = oil.select(pl.col("reason_features").list.first()).to_series()
    assert (first_reason == "oil_life_pct").mean() > 0.9
    row = oil.row(0, named=True)
    assert f"oil life {row['oil_life_pct']:.0f}%" in row["reason_codes"]


def test_context_reasons_show_only_when_no_actionable_reason_does(client, first):
    """Context (here region and platform: true of the customer, nothing to act on) is given as a reason only on
    rows where no other feature pushed the score up; it used to lead or sit beside actionable reasons. The
    training run logs how its holdout rows are explained."""
    champ = load_champion()
    candidates = synthetic_candidates(n_users=400, n_days=1, session_rate=1.0, actions_per_session=8,
                                      with_labels=False, seed=23)
    kept = (score(champ, candidates).sort(["user_id", "expected_value"], descending=[False, True])
            .group_by("user_id", maintain_order=True).head(3))
    context = ("region", "platform")
    kwargs = dict(exclude=("action_id", "action_kind", "placement"), fallback="recommended for your vehicle")
    before = explain(champ, kept, TEMPLATES, **kwargs)
    after = explain(champ, kept, TEMPLATES, context=context, **kwargs)

    def has_context(feats):
        return any(f in context for f in feats)

    def has_actionable(feats):
        return any(f not in context for f in feats)

    mixed = [f for f in before["reason_features"].to_list() if has_context(f) and has_actionable(f)]
    assert len(mixed) > 20  # what the rule is for: context beside (or ahead of) actionable reasons
    for old, new in zip(before["reason_features"].to_list(), after["reason_features"].to_list()):
        if has_actionable(old):
            assert new and not has_context(new), (old, new)
            assert [f for f in old if f not in context] == new[:len([f for f in old if f not in context])]
        else:
            assert new == old  # context only, or nothing: unchanged
    metrics = client.get_run(first.run_id).data.metrics
    assert 0 < metrics["reasons_actionable_share"] <= 1
    assert metrics["reasons_actionable_share"] + metrics["reasons_context_only_share"] \
        + metrics["reasons_fallback_share"] == pytest.approx(1)
    assert 0 < metrics["reasons_top_feature_shown_share"] <= 1


@pytest.mark.slow  # a server's start-up (~10–25 s): the command path, not the registry's logic
def test_make_mlflow_serves_the_projects_store_with_the_champion(store, first):
    """`make mlflow` is MLflow's own server on the data root's store: its REST API (what the UI reads) shows the
    registered model with its @champion, and the run's logged plots."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(["make", "--no-print-directory", "-o", "venv", "mlflow", f"MLFLOW_PORT={port}",
                               f"PITWALL_DATA_DIR={store}"], cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}/api/2.0/mlflow"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read()[-3000:]
            try:
                answer = httpx.get(f"{base}/registered-models/get", params={"name": MODEL_NAME}, timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mlflow server did not answer in 120 s"
                time.sleep(0.5)
        assert answer.status_code == 200, answer.text
        aliases = {a["alias"]: a["version"] for a in answer.json()["registered_model"].get("aliases", [])}
        assert aliases["champion"] == first.version
        plots = httpx.get(f"{base}/artifacts/list", params={"run_id": first.run_id, "path": "plots"}, timeout=5)
        assert {"plots/roc.png", "plots/calibration.png"} <= {f["path"] for f in plots.json()["files"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
