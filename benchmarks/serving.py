"""Serving-table lookup benchmark: how long the mobile backend waits for one user's recommendations.

Builds a `recommendations` table of N users × 3 placements × 3 ranks with the pipeline's own writer
(sorted by user) and publishes it with the pipeline's own publish step (Parquet copy included), then times
single-user lookups from random users three ways a backend would read: the published Parquet file through
DuckDB, the same file through pyarrow with a filter, and the published DuckDB table. The floor is DuckDB's
round trip for a query that reads nothing (`select 1`), measured on the same connection; the unsorted
control is the same rows written in random order. Part of ``make bench``; appends to docs/benchmarks.md.

    .venv/bin/python -m benchmarks.serving --users 1000000
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow.parquet as pq

from .common import append_section, commit, machine

PLACEMENTS = ("home_card", "post_job", "service_history")
ACTIONS = ("battery_replacement", "tire_rotation", "brake_service", "wiper_blades", "cabin_filter", "oil_change")


def synthetic_recommendations(users: int, seed: int = 5) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = users * len(PLACEMENTS) * 3
    user = np.repeat(np.arange(users), len(PLACEMENTS) * 3)
    return pl.DataFrame({
        "user_id": pl.Series([f"cust_{u:07d}" for u in range(users)]).gather(user),
        "placement": np.tile(np.repeat(PLACEMENTS, 3), users),
        "rank": np.tile([1, 2, 3], users * len(PLACEMENTS)),
        "action_id": np.asarray(ACTIONS)[rng.integers(0, len(ACTIONS), n)],
        "score": rng.random(n), "expected_value": rng.random(n) * 100,
        "reason_codes": pl.Series([["oil life 8%", "vehicle 9 years old"]] * 1).gather(np.zeros(n, dtype=np.int64)),
        "model_version": "7", "policy": "model", "propensity_logged": 0.95,
    }).sample(fraction=1.0, shuffle=True, seed=seed)  # arrive unordered, as the scorer's chunks do


def _lookup_ms(fn, keys: list[str]) -> list[float]:
    out = []
    for key in keys:
        t = time.perf_counter()
        rows = fn(key)
        out.append((time.perf_counter() - t) * 1000)
        assert rows == 9, (key, rows)  # 3 placements × 3 ranks: every lookup finds the whole user
    return out


def run(users: int, lookups: int = 300) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="pitwall_serving_"))
    os.environ["PITWALL_DATA_DIR"] = str(workdir)
    from orchestration.publish.publish import publish_warehouse
    from pitwall import paths
    from pitwall.warehouse import write_table

    out: dict[str, float] = {"users": float(users)}
    frame = synthetic_recommendations(users)
    out["rows"] = float(len(frame))
    t = time.perf_counter()
    write_table("recommendations", frame, order_by=("user_id", "placement", "rank"))
    write_table("recommendations_unsorted", frame)
    out["write_s"] = time.perf_counter() - t
    t = time.perf_counter()
    publish_warehouse(["recommendations", "recommendations_unsorted"])
    out["publish_s"] = time.perf_counter() - t
    serving = paths.published_path().parent / "serving"
    sorted_file, unsorted_file = serving / "recommendations.parquet", serving / "recommendations_unsorted.parquet"
    out["parquet_mb"] = sorted_file.stat().st_size / 1e6
    out["row_groups"] = float(pq.ParquetFile(sorted_file).num_row_groups)
    keys = [f"cust_{u:07d}" for u in np.random.default_rng(9).integers(0, users, lookups)]

    con = duckdb.connect()
    floor = _times(lambda: con.execute("select 1").fetchall(), lookups)
    duck_parquet = _lookup_ms(lambda k: len(con.execute(
        f"select * from read_parquet('{sorted_file}') where user_id = ?", [k]).fetchall()), keys)
    duck_unsorted = _lookup_ms(lambda k: len(con.execute(
        f"select * from read_parquet('{unsorted_file}') where user_id = ?", [k]).fetchall()), keys)
    arrow = _lookup_ms(lambda k: pq.read_table(sorted_file, filters=[("user_id", "=", k)]).num_rows, keys)
    db = duckdb.connect(str(paths.published_path()), read_only=True)
    duck_table = _lookup_ms(lambda k: len(db.execute("select * from recommendations where user_id = ?", [k]).fetchall()), keys)
    for name, ms in (("floor_select_1", floor), ("parquet_duckdb", duck_parquet), ("parquet_duckdb_unsorted", duck_unsorted),
                     ("parquet_pyarrow", arrow), ("duckdb_table", duck_table)):
        out[f"{name}_p50_ms"] = statistics.median(ms)
        out[f"{name}_p95_ms"] = float(np.percentile(ms, 95))
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _times(fn, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--lookups", type=int, default=300)
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args()
    r = run(args.users, args.lookups)
    for key, value in r.items():
        print(f"{key:36s} {value:12.2f}")
    if args.no_record:
        return
    floor = r["floor_select_1_p50_ms"]
    lines = [
        f"\n## Serving lookups — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}",
        f"\n{machine()}. `recommendations` of {r['users']:,.0f} users ({r['rows']:,.0f} rows, sorted by user_id, "
        f"{r['parquet_mb']:.0f} MB of Parquet in {r['row_groups']:.0f} row groups), written and published by the "
        f"pipeline's own code in {r['write_s']:.1f} s + {r['publish_s']:.1f} s. One random user per lookup, "
        f"{args.lookups} lookups; floor = DuckDB `select 1` on the same connection ({floor:.2f} ms p50).\n",
        "| read path | p50 ms | p95 ms | p50 / floor |", "|---|---:|---:|---:|",
    ]
    for name, label in (("parquet_duckdb", "Parquet via DuckDB `read_parquet … where user_id = ?`"),
                        ("parquet_pyarrow", "Parquet via `pyarrow.parquet.read_table(filters=…)`"),
                        ("duckdb_table", "published DuckDB table"),
                        ("parquet_duckdb_unsorted", "control: same Parquet rows unsorted, via DuckDB")):
        lines.append(f"| {label} | {r[name + '_p50_ms']:.2f} | {r[name + '_p95_ms']:.2f} | "
                     f"{r[name + '_p50_ms'] / floor:.0f}× |")
    lines.append(f"\nPeak RSS of the benchmark process: {r['peak_rss_mib']:,.0f} MiB.")
    append_section(lines)


if __name__ == "__main__":
    main()
