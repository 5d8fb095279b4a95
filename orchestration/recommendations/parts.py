"""Build the `parts_suggestions` serving table: for each job in the next 7 days, the parts it most likely
needs, so the technician can order ahead. Plain functions over the warehouse, called by the Dagster asset
next door (and by tests without Dagster)."""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from dataclasses import dataclass

import mlflow
import polars as pl

from models_ml import fingerprint as fingerprints
from models_ml.nba import explain
from models_ml.nba.features import Encoding, encode
from models_ml.nba.gate import gain_shares
from models_ml.nba.plots import importance_figure, model_figures
from models_ml.nba.tracking import configure, log_booster, log_json
from models_ml.parts.model import (
    FALLBACK_REASON,
    FEATURES,
    NOT_REASONS,
    REASON_TEMPLATES,
    REASON_WHEN_POSITIVE,
    PartsConfig,
    PartsModel,
    fit,
    fit_key,
    predict,
)
from pitwall.flags import Flags
from pitwall.warehouse import read

from .placements import placement_flags

log = logging.getLogger(__name__)
PLACEMENT = "pre_job_parts"
EXPERIMENT = "pitwall-parts"
PARTS_SCHEMA = {
    "user_id": pl.String, "job_id": pl.String, "scheduled_for": pl.Datetime("us", "UTC"), "vin": pl.String,
    "service_id": pl.String, "rank": pl.Int64, "part_id": pl.String, "part_name": pl.String,
    "part_category": pl.String, "probability": pl.Float64, "typical_quantity": pl.Int64,
    "reason_codes": pl.List(pl.String), "placement": pl.String, "experiment_key": pl.String,
    "variation_id": pl.String, "mlflow_run_id": pl.String, "scoring_run_id": pl.String,
    "generated_at": pl.Datetime("us", "UTC"), "valid_until": pl.Datetime("us", "UTC"),
}


@dataclass(frozen=True)
class PartsPolicy:
    min_probability: float = 0.2   # a part less likely than this is not worth carrying
    max_parts: int = 5             # per job


@dataclass
class PartsSuggestions:
    table: pl.DataFrame
    summary: dict


def build_parts_suggestions(policy: PartsPolicy | None = None, config: PartsConfig | None = None,
                            now: dt.datetime | None = None, flags: Flags | None = None,
                            reuse: bool = True, refit_every_days: int | None = None) -> PartsSuggestions:
    """Fit the parts model on past jobs (or reuse the fit of the same training rows, or one within the refit cadence
    ``refit_every_days``: models_ml/fingerprint.py), score the upcoming ones,
    keep each job's likeliest parts for the technicians whose `pre_job_parts` placement is on
    (experiments/flags.yaml), with reasons."""
    policy, config = policy or PartsPolicy(), config or PartsConfig()
    rows = read("select * from int_job_part_candidates")
    training = rows.filter(pl.col("purpose") == "training")
    upcoming = rows.filter(pl.col("purpose") == "scoring")
    now = now or dt.datetime.now(dt.UTC)
    if not len(training) or not len(upcoming):
        why = "no past jobs with parts to learn from" if not len(training) else "no open job in the next 7 days"
        return PartsSuggestions(pl.DataFrame(schema=PARTS_SCHEMA), {"rows": 0, "why_empty": why})

    model, run_id, trained = fitted(training, config, reuse=reuse, refit_every_days=refit_every_days)
    log.info("parts model: %s", trained)
    typical = (training.filter(pl.col("used")).group_by("part_id")
               .agg(typical_quantity=pl.col("quantity").median().round().cast(pl.Int64)))
    scored = upcoming.with_columns(probability=pl.Series(predict(model, upcoming), dtype=pl.Float64))
    switches = placement_flags(scored.get_column("technician_id").drop_nulls().unique(maintain_order=True),
                               [PLACEMENT], flags).rename({"user_id": "technician_id"})
    scored = scored.join(switches, on="technician_id", how="left", maintain_order="left")
    switched_off = scored.filter(pl.col("placement_on").not_()).get_column("job_id").n_unique()
    kept = (scored.filter(pl.col("placement_on").fill_null(True) & (pl.col("probability") >= policy.min_probability))
            .sort(["job_id", "probability", "part_id"], descending=[False, True, False])
            .with_columns(rank=pl.int_range(1, pl.len() + 1).over("job_id"))
            .filter(pl.col("rank") <= policy.max_parts))
    if len(kept):
        kept = explain(model, kept, REASON_TEMPLATES, exclude=NOT_REASONS, only_when_positive=REASON_WHEN_POSITIVE,
                       fallback=FALLBACK_REASON)
    else:
        kept = kept.with_columns(reason_codes=pl.lit([], pl.List(pl.String)))
    table = kept.join(typical, on="part_id", how="left").with_columns(
        user_id=pl.col("technician_id"),
        typical_quantity=pl.col("typical_quantity").fill_null(1),
        placement=pl.lit(PLACEMENT),
        mlflow_run_id=pl.lit(run_id, pl.String),
        scoring_run_id=pl.lit(str(uuid.uuid4())),
        generated_at=pl.lit(now),
        valid_until=pl.col("as_of_date").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1),
    ).select(list(PARTS_SCHEMA)).sort("user_id", "scheduled_for", "job_id", "rank")
    summary = {"rows": len(table), "jobs": table.get_column("job_id").n_unique(),
               "upcoming_jobs": upcoming.get_column("job_id").n_unique(), "jobs_placement_off": switched_off,
               "mlflow_run_id": run_id, "model": trained,
               **{k: round(v, 4) if isinstance(v, float) else v for k, v in model.metrics.items()}}
    return PartsSuggestions(table, summary)


# beside the logged model: what its inputs need (the encoding) and the fit's metrics
ENCODING_ARTIFACT, METRICS_ARTIFACT = "encoding.json", "metrics.json"


def fitted(training: pl.DataFrame, config: PartsConfig, reuse: bool = True,
           refit_every_days: int | None = None) -> tuple[PartsModel, str, str]:
    """The parts model for these training rows: the kept fit of an earlier run trained on the same rows, or within
    the refit cadence (models_ml/fingerprint.py; unless ``reuse`` is off), else a new fit (logged with its
    booster). Returns (model, its MLflow run id, how it came: ``reused model trained on …`` or ``refit on …``)."""
    key = fit_key(training, config)
    if reuse and (kept := _kept_fit(key, refit_every_days)):
        return kept
    model = fit(training, config)
    run_id = _log_run(model, config, key, training)
    return model, run_id, f"refit on {len(training)} rows through {key.through}"


def _kept_fit(key: fingerprints.FitKey, refit_every_days: int | None) -> tuple[PartsModel, str, str] | None:
    """The fit to reuse for ``key`` (models_ml/fingerprint.py), if its model and encoding are readable."""
    client, experiment_id = configure(EXPERIMENT)
    kept = fingerprints.fit_to_reuse(client, experiment_id, key, refit_every_days)
    if kept is None:
        return None
    run = kept.run
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # a pipeline's logs are not a terminal
    artifacts = f"runs:/{run.info.run_id}"
    try:
        model = PartsModel(booster=mlflow.xgboost.load_model(f"{artifacts}/model"),
                           encoding=Encoding.from_json(mlflow.artifacts.load_text(f"{artifacts}/{ENCODING_ARTIFACT}")),
                           metrics=mlflow.artifacts.load_dict(f"{artifacts}/{METRICS_ARTIFACT}"))
    except (OSError, ValueError, KeyError, mlflow.exceptions.MlflowException):
        return None  # its artifacts are gone, unreadable or of an older layout: fit again
    started = dt.datetime.fromtimestamp(run.info.start_time / 1000, dt.UTC)
    return model, run.info.run_id, (
        f"reused model trained on {run.data.tags.get('training_rows')} rows through "
        f"{run.data.tags.get(fingerprints.THROUGH_TAG)} (MLflow run {run.info.run_id}, {started:%Y-%m-%d %H:%M} UTC): "
        f"{kept.why}")


def _log_run(model: PartsModel, config: PartsConfig, key: fingerprints.FitKey, training: pl.DataFrame) -> str:
    """The fit as a well-kept MLflow run: parameters, holdout metrics of the model and of the parts-list
    baseline, the plots (ROC, precision-recall, calibration, gain, feature importance), and the booster as an
    MLflow model with its signature and an input example, beside the encoding its inputs need; tagged with the
    fingerprint of its training rows (and of its settings, with the last day of its rows) so that a later run can
    reuse it."""
    _, experiment_id = configure(EXPERIMENT)
    with mlflow.start_run(experiment_id=experiment_id, run_name="parts-suggestions") as run:
        mlflow.set_tags({**key.tags(), "training_rows": str(len(training))})
        mlflow.log_params({k: v for k, v in config.__dict__.items()})
        metrics = model.metrics
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and v == v})
        log_json([name for name, _ in FEATURES], "features.json")
        mlflow.log_text(model.encoding.to_json(), ENCODING_ARTIFACT)
        log_json(metrics, METRICS_ARTIFACT)
        shares = gain_shares(model.booster)
        log_json(shares, "feature_gain_share.json")
        if model.holdout is not None:
            scores = {who: model.holdout[who] for who in ("model", "parts_list")}
            figures = model_figures(model.holdout["labels"], scores, scores, shares,
                                    holdout=f"the last {config.holdout_days} days of jobs")
        else:
            figures = {"plots/feature_importance.png": importance_figure(shares)}
        for path, figure in figures.items():
            mlflow.log_figure(figure, path)
        log_booster(model.booster, encode(training.head(20), model.encoding), model.encoding.names,
                    registered_model_name=None)
    return run.info.run_id
