"""Where MLflow lives and how a training run is logged and registered.

Tracking URI: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<PITWALL_DATA_DIR>/mlflow/mlflow.db``; the
registry uses the same store. Artifacts of the experiment go under ``<PITWALL_DATA_DIR>/mlflow/artifacts``
when the store is local (sqlite or file), so nothing lands in the working directory.
"""

from __future__ import annotations

import json
import os

import mlflow
import numpy as np
import polars as pl
import sklearn
import xgboost as xgb
from mlflow import MlflowClient
from mlflow.models import infer_signature

from pitwall.paths import mlflow_dir

MODEL_NAME = "pitwall-nba"
EXPERIMENT_NAME = "pitwall-nba"


def tracking_uri() -> str:
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    root = mlflow_dir()
    root.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_location() -> str | None:
    uri = tracking_uri()
    if uri.startswith(("sqlite:", "file:")) or "://" not in uri:
        path = mlflow_dir() / "artifacts"
        path.mkdir(parents=True, exist_ok=True)
        return path.as_uri()
    return None  # a tracking server decides


def configure(experiment: str = EXPERIMENT_NAME) -> tuple[MlflowClient, str]:
    """Point MLflow at Pitwall's store; create the experiment if needed. Returns (client, experiment_id)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_experiment_by_name(experiment)
    exp_id = found.experiment_id if found else client.create_experiment(experiment, artifact_location=artifact_location())
    return client, exp_id


def pip_requirements() -> list[str]:
    """What loading and scoring the model needs (given, so MLflow skips its slow inference)."""
    return [f"xgboost=={xgb.__version__}", f"numpy=={np.__version__}", f"polars=={pl.__version__}",
            f"scikit-learn=={sklearn.__version__}", f"mlflow=={mlflow.__version__}"]


def log_json(obj, artifact_file: str) -> None:
    mlflow.log_text(json.dumps(obj, indent=2, sort_keys=True, default=str), artifact_file)


def log_booster(booster: xgb.Booster, sample: np.ndarray, feature_names: list[str],
                registered_model_name: str | None = MODEL_NAME):
    """Log the booster in the active run with a signature and an input example (``registered_model_name``:
    register it, None: do not). Returns MLflow's ModelInfo.

    The signature describes what the booster itself reads: the encoded matrix (float columns named after
    the features; categoricals as codes into ``encoding.json``). Score with ``mlflow.xgboost.load_model``
    and the model's own scoring (``models_ml.nba.scoring.score``, ``models_ml.parts.model.predict``), which
    encodes the feature mart's columns first.
    """
    import pandas as pd

    example = pd.DataFrame(sample[:20], columns=feature_names)
    signature = infer_signature(example, booster.inplace_predict(sample[:20]))
    return mlflow.xgboost.log_model(booster, name="model", signature=signature, input_example=example.head(5),
                                    pip_requirements=pip_requirements(),
                                    registered_model_name=registered_model_name)

