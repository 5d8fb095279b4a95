"""One way to open DuckDB: bounded memory and threads, UTC, and no extension downloads at run time."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb

# Each process's DuckDB budget (it spills to disk beyond it). Steps run one at a time, so a pipeline's tree
# holds at most two: its own process and dbt's (profiles.yml has the same default). 1 GB each keeps the whole
# tree under 3 GB at 5M events (docs/benchmarks.md); PITWALL_DUCKDB_MEMORY raises it on a bigger machine.
MEMORY_LIMIT = "1GB"


def connect(
    path: str | Path = ":memory:", *, read_only: bool = False, threads: int | None = None
) -> duckdb.DuckDBPyConnection:
    config = {
        # json, parquet and icu are built in; anything else would try a download and hang offline.
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "threads": threads or int(os.environ.get("PITWALL_DUCKDB_THREADS", os.cpu_count() or 2)),
        "memory_limit": os.environ.get("PITWALL_DUCKDB_MEMORY", MEMORY_LIMIT),
    }
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    con.execute("set TimeZone = 'UTC'")
    con.execute("set enable_progress_bar = false")  # a pipeline's logs are not a terminal
    return con
