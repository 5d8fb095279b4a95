"""The same dbt models on Spark and on DuckDB, from the same raw Parquet layer, give the same tables
(docs/scale-out.md), and day-by-day incremental runs give what a full rebuild gives.

A tiny simulated world lands its first days; both engines build the portable models (Spark as Dagster runs
it on PITWALL_ENGINE=spark, with one data test of each kind); the last days land and both engines run again,
incrementally. A full DuckDB rebuild of everything is the reference: the incremental DuckDB build must equal it
row for row, and so must Spark's, except Spark's approximate percentiles, held to their rank tolerance.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import ROOT, run_python, subprocess_env
from orchestration.scale_out import (
    PERCENTILES,
    TABLES,
    compare_engines,
    compare_table,
    compare_warehouses,
    spark_table_dir,
)

pytestmark = pytest.mark.slow

DAYS = 5
FIRST_DAYS = 3  # land first; the other days arrive before the incremental run
DBT = str(Path(sys.executable).parent / "dbt")


def dbt(root: Path, engine: str, *args: str, select: list[str] | None = None) -> str:
    """A dbt command on the portable selector's nodes (or on ``select``); its output."""
    selection = ["--select", *select] if select else ["--selector", "portable"]
    # Each data root and engine keeps its own target folder: the project's target/ holds the manifest that
    # other tests read, and a shared folder would re-parse on every switch of engine.
    target = root / f"dbt_target_{engine}"
    run = subprocess.run([DBT, *args, *selection, "--project-dir", ".", "--profiles-dir", ".",
                          "--target-path", str(target)],
                         cwd=ROOT / "dbt_project", capture_output=True, text=True,
                         env={**subprocess_env(), "PITWALL_DATA_DIR": str(root), "PITWALL_ENGINE": engine})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run.stdout


def spark_build(root: Path) -> None:
    """What orchestration.dbt.assets runs on Spark (dbt build without the DuckDB-dialect unit tests), with one
    data test of each kind: every generic test macro and every singular test is compiled and run on Spark
    once. All ~250 of them would cost a Spark job each (minutes), and would check nothing the table-by-table
    comparison with DuckDB, where they all run, does not check more strictly."""
    dbt(root, "spark", "build", "--exclude-resource-type", "unit_test", "--exclude-resource-type", "test")
    sample = one_test_of_each_kind()
    done = re.search(r"PASS=(\d+) WARN=0 ERROR=0", dbt(root, "spark", "test", select=sample))
    assert done and int(done.group(1)) >= len(sample)  # a name may select a same-named test of another node too


def one_test_of_each_kind() -> list[str]:
    """Among the portable selector's data tests, the first (by name) of each generic test macro, and each
    singular test."""
    listed = subprocess.run([DBT, "--quiet", "ls", "--selector", "portable", "--resource-type", "test", "--output",
                             "json", "--output-keys", "name", "test_metadata", "--project-dir", ".",
                             "--profiles-dir", "."], cwd=ROOT / "dbt_project", capture_output=True, text=True,
                            env={**subprocess_env(), "PITWALL_ENGINE": "spark"}, check=True).stdout
    by_kind: dict[str, str] = {}
    for test in sorted((json.loads(line) for line in listed.splitlines() if line.startswith("{")),
                       key=lambda t: t["name"]):
        kind = (test.get("test_metadata") or {}).get("name") or f"singular:{test['name']}"
        by_kind.setdefault(kind, test["name"])
    assert {"not_null", "unique", "accepted_values", "relationships"} <= set(by_kind), by_kind
    return sorted(by_kind.values())


def land_raw(source: Path, target: Path, before: str | None) -> None:
    """Copy the raw layer's partitions (all, or those with dt < ``before``) from ``source`` to ``target``."""
    for partition in sorted(source.glob("raw/*/dt=*")):
        if before is None or partition.name.removeprefix("dt=") < before:
            destination = target / partition.relative_to(source)
            if not destination.exists():
                shutil.copytree(partition, destination)


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    base = tmp_path_factory.mktemp("engines")
    full, daily = base / "full", base / "daily"
    env = {"PITWALL_DATA_DIR": str(full)}
    run_python("-m", "simulator", "--out", str(full / "landing"), "--customers", "40", "--technicians", "6",
               "--days", str(DAYS), "--seed", "3", "--no-progress", env=env)
    run_python("-m", "orchestration.ingestion", env=env)
    # The reference: every day at once. (The data tests run on DuckDB in every simulated world's build.)
    dbt(full, "duckdb", "build", "--exclude-resource-type", "test")

    days = sorted({p.name.removeprefix("dt=") for p in full.glob("raw/events/dt=*")} - {"1970-01-01"})
    assert len(days) >= DAYS
    cut = days[FIRST_DAYS]
    land_raw(full, daily, before=cut)
    dbt(daily, "duckdb", "build", "--exclude-resource-type", "test")
    spark_build(daily)
    first_days_events = duckdb.connect(str(daily / "warehouse.duckdb"), read_only=True).execute(
        "select count(*) from stg_events").fetchall()[0][0]
    land_raw(full, daily, before=None)
    dbt(daily, "duckdb", "run")
    dbt(daily, "spark", "run")
    return full, daily, first_days_events


def test_the_incremental_run_had_new_days_to_add(builds):
    full, daily, first_days_events = builds
    with duckdb.connect(str(full / "warehouse.duckdb"), read_only=True) as con:
        all_events = con.execute("select count(*) from stg_events").fetchall()[0][0]
    assert 0 < first_days_events < all_events


def test_spark_builds_the_same_tables_as_duckdb(builds):
    full, daily, _ = builds
    comparisons = compare_engines(full / "warehouse.duckdb", daily / "spark" / "warehouse")
    assert {c.table for c in comparisons} >= {"stg_events", "stg_crashes", "stg_spans", "fct_sessions",
                                              "mart_release_health", "mart_api_latency_daily",
                                              "mart_funnel_daily", "mart_recommendation_efficacy"}
    for comparison in comparisons:
        assert comparison.duckdb_rows > 0, comparison.describe()
        assert comparison.spark_rows == comparison.duckdb_rows, comparison.describe()
        assert comparison.type_mismatches == [], comparison.describe()
        assert (comparison.only_duckdb, comparison.only_spark) == (0, 0), comparison.describe()
    checked = {c.table: c for c in comparisons if c.table in PERCENTILES}
    for table, comparison in checked.items():
        assert comparison.percentile_checks > 0, table
        assert comparison.percentile_violations == 0, comparison.describe()


def test_spark_partitions_the_incremental_facts_by_day(builds):
    _, daily, _ = builds
    warehouse = daily / "spark" / "warehouse"
    for table, column in [("stg_events", "dt"), ("stg_spans", "dt"), ("fct_sessions", "started_on"),
                          ("fct_api_requests", "dt"), ("int_funnel_entries", "entry_day"),
                          ("int_funnel_entry_steps", "entry_day"), ("mart_api_latency_daily", "day"),
                          ("mart_release_health", "day"), ("mart_funnel_daily", "day")]:
        partitions = sorted(p.name for p in spark_table_dir(warehouse, table).glob(f"{column}=*"))
        assert len(partitions) >= DAYS, (table, partitions)


def test_duckdb_incremental_runs_equal_a_full_rebuild(builds):
    full, daily, _ = builds
    for comparison in compare_warehouses(daily / "warehouse.duckdb", full / "warehouse.duckdb"):
        assert comparison.equal, comparison.describe()


def test_the_comparison_sees_a_changed_row_and_an_out_of_tolerance_percentile(builds, tmp_path):
    """The checks above can fail: a copy with one event gone and one p95 moved past its rank window differs."""
    full, _, _ = builds
    changed = tmp_path / "changed.duckdb"
    shutil.copy(full / "warehouse.duckdb", changed)
    with duckdb.connect(str(changed)) as con:
        con.execute("delete from stg_events where message_id = (select min(message_id) from stg_events)")
        con.execute("""
            update mart_api_latency_daily set p95_ms = p95_ms + 10 * (p99_ms - p50_ms) + 1000
            where rowid = (select rowid from mart_api_latency_daily order by requests desc, p95_ms limit 1)""")
    by_table = {c.table: c for c in compare_warehouses(changed, full / "warehouse.duckdb",
                                                        tables=("stg_events", "fct_sessions"))}
    assert (by_table["stg_events"].only_duckdb, by_table["stg_events"].only_spark) == (0, 1)
    assert by_table["fct_sessions"].equal  # a table not built from the copy is untouched

    with duckdb.connect() as con:
        con.execute(f"attach '{full / 'warehouse.duckdb'}' as duck (read_only)")
        con.execute(f"attach '{changed}' as other (read_only)")
        moved = compare_table(con, "mart_api_latency_daily", "duck.main", "other.main", 1e-9,
                              approximate_percentiles=True)
    assert moved.percentile_checks > 0
    assert moved.percentile_violations == 1


def test_no_spark_files_outside_the_data_root(builds):
    for stray in ("spark-warehouse", "metastore_db", "derby.log"):
        assert not (ROOT / stray).exists() and not (ROOT / "dbt_project" / stray).exists(), stray


assert set(PERCENTILES) <= set(TABLES)
