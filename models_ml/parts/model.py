"""Which parts an upcoming job will need: a small XGBoost classifier over (job, candidate part) rows.

Rows come from the dbt model `int_job_part_candidates` (past jobs labelled with whether they used the
part; upcoming jobs to score). The classifier learns what the service's parts list alone cannot say: a
failing battery needs a battery whatever job was booked, old vehicles need brake pads at inspections.
It is refit when its training rows change (``training_fingerprint``: the rows, the features and the
fit's parameters), at most once per refit cadence of days of data (models_ml/fingerprint.py), and logged to
MLflow as an MLflow model (signature, input example) with its encoding, holdout metrics and plots; a run whose
training rows are the same as an earlier fit's, or that comes within the cadence, reuses that fit
(orchestration/recommendations/parts.py), so suggestions for the new day's jobs cost a scoring, not a
training. Unlike the next-best-action model it serves no one directly, so it has no
registry gate: its holdout metrics against the parts-list baseline (how often the service's past jobs
used the part) are logged and reported.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import timedelta

import numpy as np
import polars as pl
import xgboost as xgb
from sklearn.metrics import log_loss, roc_auc_score

from models_ml import fingerprint
from models_ml.nba.features import Encoding, encode, fit_encoding

# Bump when the fit changes in a way the fingerprint's inputs do not show (a kept model is then refit).
FIT_VERSION = 1

FEATURES: tuple[tuple[str, str], ...] = (
    ("service_id", "categorical"), ("part_id", "categorical"), ("part_category", "categorical"),
    ("part_service_id", "categorical"), ("part_in_service_catalog", "numeric"),
    ("fuel_type", "categorical"), ("vehicle_age_years", "numeric"), ("odometer_km", "numeric"),
    ("oil_life_pct", "numeric"), ("battery_voltage", "numeric"), ("battery_voltage_trend_7d", "numeric"),
    ("min_tire_pressure_kpa", "numeric"), ("dtc_battery_7d", "numeric"), ("dtc_brakes_7d", "numeric"),
)
# How a feature that pushed a part up reads to a technician (reasons of parts_suggestions).
REASON_TEMPLATES: dict[str, str] = {
    "part_in_service_catalog": "on the parts list of this service",
    "battery_voltage": "battery at {value:.2f} V",
    "battery_voltage_trend_7d": "battery voltage trend {value:+.2f} V this week",
    "dtc_battery_7d": "battery trouble code this week",
    "dtc_brakes_7d": "brake trouble code this week",
    "vehicle_age_years": "vehicle {value:.0f} years old",
    "odometer_km": "{value:,.0f} km on the odometer",
    "oil_life_pct": "oil life {value:.0f}%",
    "min_tire_pressure_kpa": "a tire at {value:.0f} kPa",
    "fuel_type": "{value} vehicle",
}
NOT_REASONS = ("service_id", "part_id", "part_category", "part_service_id")
REASON_WHEN_POSITIVE = ("part_in_service_catalog", "dtc_battery_7d", "dtc_brakes_7d")
FALLBACK_REASON = "often used on this kind of job"


@dataclass(frozen=True)
class PartsConfig:
    seed: int = 42
    nthread: int = 2
    holdout_days: int = 3          # the latest days of past jobs, for the reported metrics
    rounds: int = 200
    max_depth: int = 4
    learning_rate: float = 0.1
    min_child_weight: float = 2.0

    def xgb_params(self) -> dict:
        return {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
                "max_depth": self.max_depth, "eta": self.learning_rate, "min_child_weight": self.min_child_weight,
                "max_cat_to_onehot": 1, "seed": self.seed, "nthread": self.nthread}


@dataclass
class PartsModel:
    booster: xgb.Booster
    encoding: Encoding
    metrics: dict = field(default_factory=dict)
    # the holdout fit's labels and scores, for the run's plots ({"labels", "model", "parts_list"}); not kept
    holdout: dict[str, np.ndarray] | None = None


def _fit(rows: pl.DataFrame, config: PartsConfig) -> tuple[xgb.Booster, Encoding]:
    encoding = fit_encoding(rows, FEATURES)
    matrix = xgb.DMatrix(encode(rows, encoding), label=rows.get_column("used").cast(pl.Float32).to_numpy(),
                         feature_names=encoding.names, feature_types=encoding.xgb_types, enable_categorical=True)
    return xgb.train(config.xgb_params(), matrix, num_boost_round=config.rounds), encoding


def predict(model: PartsModel | tuple[xgb.Booster, Encoding], rows: pl.DataFrame) -> np.ndarray:
    booster, encoding = (model.booster, model.encoding) if isinstance(model, PartsModel) else model
    if not len(rows):
        return np.zeros(0, dtype=np.float32)
    matrix = xgb.DMatrix(encode(rows, encoding), feature_names=encoding.names, feature_types=encoding.xgb_types,
                         enable_categorical=True)
    return booster.predict(matrix)


def parts_list_baseline(train: pl.DataFrame, rows: pl.DataFrame) -> np.ndarray:
    """How often the service's earlier jobs used the part (0 when never seen)."""
    rates = train.group_by("service_id", "part_id").agg(rate=pl.col("used").cast(pl.Float64).mean())
    return rows.join(rates, on=["service_id", "part_id"], how="left", maintain_order="left") \
        .get_column("rate").fill_null(0.0).to_numpy()


def _metrics(label: np.ndarray, p: np.ndarray) -> dict:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    both = len(np.unique(label)) == 2
    return {"auc": float(roc_auc_score(label, p)) if both else float("nan"),
            "log_loss": float(log_loss(label, p, labels=[0, 1])), "brier": float(np.mean((p - label) ** 2))}


def fit(training: pl.DataFrame, config: PartsConfig | None = None) -> PartsModel:
    """Holdout metrics from a fit on all but the latest `holdout_days`, then the final fit on every row."""
    config = config or PartsConfig()
    if not len(training):
        raise ValueError("no past jobs to learn parts from")
    end = training.get_column("as_of_date").max()
    older = training.filter(pl.col("as_of_date") <= end - timedelta(days=config.holdout_days))
    holdout = training.filter(pl.col("as_of_date") > end - timedelta(days=config.holdout_days))
    metrics: dict = {"training_rows": len(training), "training_jobs": training.get_column("job_id").n_unique(),
                     "holdout_rows": len(holdout)}
    scored = None
    if len(older) and len(holdout):
        label = holdout.get_column("used").cast(pl.Int8).to_numpy()
        booster, encoding = _fit(older, config)
        scored = {"labels": label, "model": predict((booster, encoding), holdout),
                  "parts_list": parts_list_baseline(older, holdout)}
        metrics.update({f"holdout_{k}": v for k, v in _metrics(label, scored["model"]).items()})
        metrics.update({f"baseline_{k}": v for k, v in _metrics(label, scored["parts_list"]).items()})
    booster, encoding = _fit(training, config)
    return PartsModel(booster=booster, encoding=encoding, metrics=metrics, holdout=scored)


def _settings(config: PartsConfig | None) -> dict:
    return {"fit_version": FIT_VERSION, "features": FEATURES, "config": asdict(config or PartsConfig())}


def training_fingerprint(training: pl.DataFrame, config: PartsConfig | None = None) -> str:
    """What a fit depends on (models_ml/fingerprint.py): the training rows, the features, the fit's parameters."""
    return fingerprint.training_fingerprint(training, _settings(config))


def fit_key(training: pl.DataFrame, config: PartsConfig | None = None) -> fingerprint.FitKey:
    """The fit's identity as its MLflow run is tagged: the fingerprint above, that of the settings alone, and the
    last day of the training rows (for the refit cadence)."""
    return fingerprint.FitKey.of(training, _settings(config))
