"""What a model fit depends on, and when a fit is reused instead of made again.

Both models (the next-best-action model and the parts model) tag each MLflow run with:

- ``training_fingerprint``: its training rows and its settings, as one hash. Equal rows and settings give an equal
  model, so a run over unchanged data (a re-run, a retry) reuses what that run made instead of fitting, logging and
  registering the same model again.
- ``settings_fingerprint``: the settings and the training columns alone (features, parameters, XGBoost's version),
  and ``trained_through``: the last day of its training rows.

The refit cadence (``PITWALL_REFIT_EVERY_DAYS``, default 7): a fit with the same settings trained through a day
fewer than that many days before the newest training day is reused too. The models are refit weekly and score
every day, as most teams run them: a day's new labels move a model trained on weeks of rows very little, and the
two refits were a sixth of a day's run at 5M events (docs/benchmarks.md). A change of features or parameters, or
training data that ends before the kept fit's, refits at once; ``PITWALL_REFIT_EVERY_DAYS=0`` refits whenever
the rows change.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl
import xgboost as xgb

TAG = "training_fingerprint"  # the MLflow run tag that carries the rows' and settings' hash
SETTINGS_TAG = "settings_fingerprint"  # … the settings' and columns' hash alone
THROUGH_TAG = "trained_through"  # … the last day of the training rows (YYYY-MM-DD)
REFIT_EVERY_ENV = "PITWALL_REFIT_EVERY_DAYS"
DEFAULT_REFIT_EVERY_DAYS = 7


def _header(training: pl.DataFrame, settings: Mapping[str, object]) -> dict:
    columns = sorted(training.columns)
    return {"settings": settings, "columns": [[c, str(training.schema[c])] for c in columns],
            "xgboost": xgb.__version__}


def settings_fingerprint(training: pl.DataFrame, settings: Mapping[str, object]) -> str:
    """``settings`` (features, parameters: anything JSON can write, else its ``str``), the training columns and
    their types, and the XGBoost version: what a fit depends on besides its rows."""
    return hashlib.sha256(json.dumps(_header(training, settings), sort_keys=True, default=str).encode()).hexdigest()


def training_fingerprint(training: pl.DataFrame, settings: Mapping[str, object]) -> str:
    """The training rows as a multiset (the order they were read in does not count) with what
    ``settings_fingerprint`` covers. Equal fingerprints, equal fits."""
    rows = np.sort(training.select(sorted(training.columns)).hash_rows(seed=0).to_numpy())
    digest = hashlib.sha256()
    digest.update(json.dumps({**_header(training, settings), "rows": len(training)},
                             sort_keys=True, default=str).encode())
    digest.update(rows.tobytes())
    return digest.hexdigest()


def refit_every_days() -> int:
    """The refit cadence in days of data (``PITWALL_REFIT_EVERY_DAYS``); 0 refits whenever the rows change."""
    raw = os.environ.get(REFIT_EVERY_ENV, "").strip()
    if not raw:
        return DEFAULT_REFIT_EVERY_DAYS
    try:
        days = int(raw)
    except ValueError:
        days = -1
    if days < 0:
        raise ValueError(f"{REFIT_EVERY_ENV}={raw!r}: expected a whole number of days, 0 or more")
    return days


@dataclass(frozen=True)
class FitKey:
    """A fit's identity, as tagged on its MLflow run (``tags()``)."""
    training: str  # training_fingerprint
    settings: str  # settings_fingerprint
    through: dt.date  # the last day of the training rows

    @classmethod
    def of(cls, training: pl.DataFrame, settings: Mapping[str, object], day_column: str = "as_of_date") -> FitKey:
        return cls(training_fingerprint(training, settings), settings_fingerprint(training, settings),
                   training.get_column(day_column).max())

    def tags(self) -> dict[str, str]:
        return {TAG: self.training, SETTINGS_TAG: self.settings, THROUGH_TAG: str(self.through)}


@dataclass(frozen=True)
class Reuse:
    run: object  # the MLflow Run whose fit is reused
    why: str     # for logs and nba_model_runs


def fit_to_reuse(client, experiment_id: str, key: FitKey, every_days: int | None = None) -> Reuse | None:
    """The finished MLflow run whose fit stands for a fit of ``key``: the latest one trained on the same rows and
    settings, else (under a cadence of ``every_days``, default ``refit_every_days()``) the latest with the same
    settings, trained through a day at most ``every_days - 1`` days before ``key.through``. None: fit."""
    every_days = refit_every_days() if every_days is None else every_days
    if every_days < 0:
        raise ValueError(f"refit every {every_days} days: expected a whole number of days, 0 or more")
    if (same := _latest_finished(client, experiment_id, TAG, key.training)) is not None:
        return Reuse(same, f"training data unchanged since MLflow run {same.info.run_id}")
    if every_days == 0 or (last := _latest_finished(client, experiment_id, SETTINGS_TAG, key.settings)) is None:
        return None
    try:
        through = dt.date.fromisoformat(last.data.tags.get(THROUGH_TAG, ""))
    except ValueError:
        return None
    if not 0 <= (key.through - through).days < every_days:
        return None
    due = through + dt.timedelta(days=every_days)
    return Reuse(last, f"refit every {every_days} days of data: MLflow run {last.info.run_id} trained "
                       f"through {through}; the next fit comes with data through {due} "
                       f"({REFIT_EVERY_ENV}=0 refits whenever the rows change)")


def _latest_finished(client, experiment_id: str, tag: str, value: str):
    """The latest finished MLflow run of the experiment whose ``tag`` is ``value``, or None."""
    runs = client.search_runs([experiment_id], filter_string=f"tags.{tag} = '{value}' "
                              "and attributes.status = 'FINISHED'", max_results=1,
                              order_by=["attributes.start_time DESC"])
    return runs[0] if runs else None
