"""Which engine builds the warehouse: the one switch between embedded and distributed (docs/scale-out.md).

``PITWALL_ENGINE=duckdb`` (default): DuckDB in process builds every dbt model into ``warehouse.duckdb``.
``PITWALL_ENGINE=spark``: Apache Spark builds the portable models (dbt selector ``portable``) from the same
raw Parquet layer, with the same model files. The dbt target follows the engine (``duckdb`` or ``spark``,
a local Spark in process) unless ``PITWALL_DBT_TARGET`` names another (``spark_cluster``: a real cluster).
Read the environment inside functions (never at import time) so tests can switch it.
"""

from __future__ import annotations

import os
from typing import Literal

Engine = Literal["duckdb", "spark"]
ENGINES: tuple[Engine, ...] = ("duckdb", "spark")

# The dbt selector (dbt_project/selectors.yml) of the models that build on every engine.
PORTABLE_SELECTOR = "portable"


class UnknownEngine(ValueError):
    pass


def engine() -> Engine:
    value = os.environ.get("PITWALL_ENGINE", "duckdb").strip().lower() or "duckdb"
    if value not in ENGINES:
        raise UnknownEngine(f"PITWALL_ENGINE={value!r}: expected one of {', '.join(ENGINES)}")
    return value  # type: ignore[return-value]


def dbt_target() -> str:
    """The dbt target (dbt_project/profiles.yml) the engine builds with; the profile reads the same env vars."""
    return os.environ.get("PITWALL_DBT_TARGET") or engine()


def dbt_selector() -> str | None:
    """The dbt selector the engine builds: every model on DuckDB, the portable ones on Spark."""
    return None if engine() == "duckdb" else PORTABLE_SELECTOR
