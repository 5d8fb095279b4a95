"""Train → evaluate → log to MLflow → register → gate, in one call (what the Dagster asset runs).

    outcome = train_evaluate_register(frame, spec)
    outcome.decision.promoted, outcome.decision.reasons, outcome.version, outcome.run_id

The gate re-scores the current champion (``models:/pitwall-nba@champion``) on this run's holdout rows, so
candidate, champion and baselines are compared on the same data.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import mlflow
import mlflow.xgboost
import polars as pl
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models_ml.nba.evaluate import HoldoutEvaluation, evaluate_holdout, score_metrics
from models_ml.nba.features import Feature, encode
from models_ml.nba.gate import Check, GateConfig, PromotionDecision, comparison_checks, gain_shares, sanity_checks
from models_ml.nba.plots import holdout_figures
from models_ml.nba.scoring import customer_reasons, reason_shares
from models_ml.nba.tracking import MODEL_NAME, configure, log_booster, log_json
from models_ml.nba.train import Split, TrainConfig, TrainedModel, encoding_of, predict, time_split, train_model

CHAMPION, CHALLENGER = "champion", "challenger"
TAG_LIMIT = 4000  # model-version tag values are limited to 5000 characters
REASON_SAMPLE_ROWS = 2_000  # holdout rows whose customer reasons the run measures (exact TreeSHAP: ~1.5 ms a row)


@dataclass
class TrainingOutcome:
    run_id: str
    version: str
    decision: PromotionDecision
    evaluation: HoldoutEvaluation
    model: TrainedModel
    split: Split


def champion_version(client: MlflowClient, name: str = MODEL_NAME):
    """The ModelVersion holding the ``champion`` alias, or None."""
    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def _rescore_champion(client: MlflowClient, name: str, split: Split, k: int) -> tuple[object, dict | None, str | None]:
    current = champion_version(client, name)
    if current is None:
        return None, None, None
    try:
        booster = mlflow.xgboost.load_model(f"models:/{name}@{CHAMPION}")
        scores = predict(booster, encoding_of(booster), split.holdout)
    except Exception as exc:  # noqa: BLE001 - any failure means it cannot be compared
        return current, None, f"{type(exc).__name__}: {exc}"
    metrics, _ = score_metrics(split.holdout, scores, probabilistic=True, k=k)
    return current, metrics, None


def holdout_reason_shares(trained: TrainedModel, holdout: pl.DataFrame, rows: int = REASON_SAMPLE_ROWS,
                          seed: int = 0) -> dict[str, float]:
    """How the customer reasons (models_ml.nba.scoring.customer_reasons) explain a seeded sample of the holdout
    rows: the share with an actionable reason, with context only, with none, and whose largest push is shown.
    Empty when the spec's reason features are not this model's (a synthetic spec)."""
    if not len(holdout) or "action_id" not in trained.encoding.names:
        return {}
    sample = holdout.sample(n=min(rows, len(holdout)), seed=seed) if len(holdout) > rows else holdout
    explained = customer_reasons(trained, sample)
    return reason_shares(trained, explained)


def decide(client: MlflowClient, trained: TrainedModel, evaluation: HoldoutEvaluation, split: Split,
           version: str, run_id: str, config: GateConfig, name: str = MODEL_NAME) -> PromotionDecision:
    """Run the gate for a registered ``version`` (does not move aliases; see :func:`apply_decision`)."""
    current, champ_metrics, champ_error = _rescore_champion(client, name, split, evaluation.k)
    cand = evaluation.metrics["model"]
    checks = sanity_checks(cand, evaluation.n_rows, evaluation.n_positives, trained.booster,
                           [(f.name, f.kind) for f in trained.encoding.features], trained.cardinality,
                           trained.n_fit_rows + trained.n_valid_rows, config)
    label = f"champion v{current.version}" if current is not None else "champion"
    checks += comparison_checks(cand, {"popularity": evaluation.metrics["popularity"],
                                       "rules": evaluation.metrics["rules"]},
                                champ_metrics, label, evaluation.k, config)
    if current is not None and champ_error is not None:
        checks.append(Check("champion_scorable", config.promote_if_champion_unscorable,
                            f"current {label} could not be scored on this holdout ({champ_error})"))
    promoted = all(c.passed for c in checks)
    return PromotionDecision(model_name=name, version=str(version), run_id=run_id, promoted=promoted,
                             alias=CHAMPION if promoted else CHALLENGER,
                             previous_champion_version=None if current is None else str(current.version),
                             checks=checks, champion_metrics=champ_metrics)


def apply_decision(client: MlflowClient, decision: PromotionDecision) -> None:
    """Move the alias and write the decision as model-version tags."""
    client.set_registered_model_alias(decision.model_name, decision.alias, decision.version)
    tags = {
        "gate.decision": decision.alias,
        "gate.promoted": str(decision.promoted).lower(),
        "gate.previous_champion": decision.previous_champion_version or "",
        "gate.reasons": "; ".join(decision.reasons)[:TAG_LIMIT],
    }
    for key, value in tags.items():
        client.set_model_version_tag(decision.model_name, decision.version, key, value)


def train_evaluate_register(frame: pl.DataFrame, spec: Sequence[Feature | tuple[str, str]],
                            train_config: TrainConfig | None = None, gate_config: GateConfig | None = None,
                            k: int = 3, name: str = MODEL_NAME, run_name: str | None = None,
                            extra_params: Mapping[str, object] | None = None,
                            tags: Mapping[str, str] | None = None) -> TrainingOutcome:
    """Split by time, train, evaluate against the baselines, log and register, then gate the new version.
    ``tags`` go on the MLflow run from its start."""
    train_config = train_config or TrainConfig()
    gate_config = gate_config or GateConfig()
    split = time_split(frame, holdout_days=train_config.holdout_days)
    trained = train_model(split.train, spec, train_config)
    t0 = time.perf_counter()
    holdout_scores = trained.predict(split.holdout)
    evaluation = evaluate_holdout(holdout_scores, split.train, split.holdout, k=k)
    eval_seconds = time.perf_counter() - t0
    reasons = holdout_reason_shares(trained, split.holdout)

    client, exp_id = configure()
    with mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=dict(tags or {})) as run:
        run_id = run.info.run_id
        mlflow.log_params({**{f"train.{k_}": v for k_, v in train_config.as_params().items()},
                           **{f"gate.{k_}": str(v) for k_, v in gate_config.as_dict().items()},
                           **{k_: str(v) for k_, v in (extra_params or {}).items()},
                           "n_features": len(trained.encoding.features),
                           "best_iteration": trained.best_iteration,
                           "holdout_start": str(split.holdout_start), "holdout_end": str(split.holdout_end),
                           "fit_start": str(trained.fit_start), "valid_start": str(trained.valid_start),
                           "ranking_k": k})
        mlflow.log_metrics({**evaluation.flat(), "train_rows": float(len(split.train)),
                            "fit_rows": float(trained.n_fit_rows), "valid_rows": float(trained.n_valid_rows),
                            "holdout_rows": float(evaluation.n_rows),
                            "holdout_positives": float(evaluation.n_positives),
                            "train_seconds": trained.train_seconds, "evaluate_seconds": eval_seconds,
                            **reasons})
        mlflow.log_text(trained.encoding.to_json(), "encoding.json")
        log_json([[f.name, f.kind] for f in trained.encoding.features], "feature_list.json")
        log_json({"metrics": evaluation.metrics, "calibration": evaluation.calibration,
                  "ranking_groups": "user_id x as_of_date over holdout rows; groups with >= 2 candidates "
                                    "and >= 1 acceptance"}, "holdout_metrics.json")
        shares = gain_shares(trained.booster)
        log_json(shares, "feature_gain_share.json")
        for path, fig in holdout_figures(evaluation, shares).items():
            mlflow.log_figure(fig, path)
        sample = encode(split.holdout.head(20) if len(split.holdout) else split.train.head(20), trained.encoding)
        info = log_booster(trained.booster, sample, trained.encoding.names, registered_model_name=name)
        version = str(info.registered_model_version)

        decision = decide(client, trained, evaluation, split, version, run_id, gate_config, name)
        if decision.champion_metrics:
            mlflow.log_metrics({f"champion_{k_}": v for k_, v in decision.champion_metrics.items() if v == v})
        mlflow.set_tags({"gate.decision": decision.alias, "gate.promoted": str(decision.promoted).lower(),
                         "model_version": version, "gate.previous_champion": decision.previous_champion_version or "",
                         "gate.reasons": "; ".join(decision.reasons)[:TAG_LIMIT]})
        log_json({"promoted": decision.promoted, "alias": decision.alias, "version": version,
                  "previous_champion_version": decision.previous_champion_version,
                  "reasons": decision.reasons,
                  "checks": [c.__dict__ for c in decision.checks],
                  "champion_metrics": decision.champion_metrics}, "gate_decision.json")
        apply_decision(client, decision)
    return TrainingOutcome(run_id=run_id, version=version, decision=decision, evaluation=evaluation,
                           model=trained, split=split)
