"""What a model fit depends on, as one hash: its training rows and its settings.

Both models (the next-best-action model and the parts model) skip a fit whose fingerprint an earlier finished
MLflow run already carries: equal rows and settings give an equal model, so a run over unchanged data reuses
what that run made instead of fitting, logging and registering the same model again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import polars as pl
import xgboost as xgb

TAG = "training_fingerprint"  # the MLflow run tag that carries it


def training_fingerprint(training: pl.DataFrame, settings: Mapping[str, object]) -> str:
    """The training rows as a multiset (the order they were read in does not count) with their columns and
    types, ``settings`` (features, parameters: anything JSON can write, else its ``str``) and the XGBoost
    version. Equal fingerprints, equal fits."""
    columns = sorted(training.columns)
    rows = np.sort(training.select(columns).hash_rows(seed=0).to_numpy())
    digest = hashlib.sha256()
    digest.update(json.dumps({"settings": settings, "columns": [[c, str(training.schema[c])] for c in columns],
                              "xgboost": xgb.__version__, "rows": len(training)},
                             sort_keys=True, default=str).encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()


def latest_run_with(client, experiment_id: str, fingerprint: str):
    """The latest finished MLflow run of the experiment tagged with this fingerprint, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.{TAG} = '{fingerprint}' "
                              "and attributes.status = 'FINISHED'", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None
