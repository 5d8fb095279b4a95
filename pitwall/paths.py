"""The one data root. Everything Pitwall reads or writes lives under ``PITWALL_DATA_DIR``.

Read the environment inside functions (never at import time) so tests can point it elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"


def data_dir() -> Path:
    return Path(os.environ.get("PITWALL_DATA_DIR", PROJECT_ROOT / "data")).resolve()


def landing_dir() -> Path:
    return data_dir() / "landing"


def raw_dir() -> Path:
    return data_dir() / "raw"


def ledger_dir() -> Path:
    return raw_dir() / "_ledger"


def quarantine_dir() -> Path:
    return data_dir() / "quarantine"


def warehouse_path() -> Path:
    return data_dir() / "warehouse.duckdb"


def alerts_path() -> Path:
    """Alerts and their delivery outbox: a file of their own, so the near-real-time crash rules never wait for
    the warehouse's single-writer lock while a daily dbt build holds it."""
    return data_dir() / "alerts.duckdb"


def published_dir() -> Path:
    return data_dir() / "published"


def mlflow_dir() -> Path:
    return data_dir() / "mlflow"


def published_path() -> Path:
    """The published snapshot readers open read-only (dashboards, the mobile backend)."""
    return published_dir() / "pitwall.duckdb"
