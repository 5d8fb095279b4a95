"""The same dbt models on Spark and on DuckDB, from the same raw Parquet layer, give the same tables
(docs/scale-out.md), and day-by-day incremental runs give what a full rebuild gives.

A tiny simulated world lands its first days; both engines build the portable models (Spark as Dagster runs
it on PITWALL_ENGINE=spark); the last days land and both engines run again, incrementally (Spark with one data
test of each kind). A full DuckDB rebuild of everything is the reference: the incremental DuckDB build must
equal it row for row, and so must Spark's, except Spark's approximate percentiles, held to their rank
tolerance.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import duckdb
import pytest
from dbt_session import DbtSession

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


def target_path(root: Path, engine: str) -> Path:
    """Each data root and engine keeps its own dbt target folder: the project's target/ holds the manifest that
    other tests read, and a shared folder would re-parse on every switch of engine."""
    return root / f"dbt_target_{engine}"


def dbt(root: Path, engine: str, *args: str) -> str:
    """A dbt command on the portable selector's nodes; its output."""
    run = subprocess.run([DBT, *args, "--selector", "portable", "--project-dir", ".", "--profiles-dir", ".",
                          "--target-path", str(target_path(root, engine))],
                         cwd=ROOT / "dbt_project", capture_output=True, text=True,
                         env={**subprocess_env(), "PITWALL_DATA_DIR": str(root), "PITWALL_ENGINE": engine})
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run.stdout


def spark_manifest(root: Path) -> tuple[dict, set[str]]:
    """The manifest of the Spark build in ``root`` and the unique ids of the nodes that build ran."""
    target = target_path(root, "spark")
    results = json.loads((target / "run_results.json").read_text())["results"]
    return json.loads((target / "manifest.json").read_text()), {r["unique_id"] for r in results}


def one_test_of_each_kind(manifest: dict, built: set[str]) -> list[str]:
    """Among the data tests on the built nodes (the portable selector is closed under its tests: each of them
    reads only selected nodes), the first (by name) of each generic test macro, and each singular test."""
    tests = [node for node in manifest["nodes"].values() if node["resource_type"] == "test"
             and node["depends_on"]["nodes"] and set(node["depends_on"]["nodes"]) <= built]
    by_kind: dict[str, str] = {}
    for test in sorted(tests, key=lambda t: t["name"]):
        kind = (test.get("test_metadata") or {}).get("name") or f"singular:{test['name']}"
        by_kind.setdefault(kind, test["name"])
    assert {"not_null_columns", "unique", "accepted_values", "relationships"} <= set(by_kind), by_kind
    return sorted(by_kind.values())


def land_raw(source: Path, target: Path, before: str | None) -> None:
    """Copy the raw layer's partitions (all, or those with dt < ``before``) from ``source`` to ``target``."""
    for partition in sorted(source.glob("raw/*/dt=*")):
        if before is None or partition.name.removeprefix("dt=") < before:
            destination = target / partition.relative_to(source)
            if not destination.exists():
                shutil.copytree(partition, destination)


class Builds(NamedTuple):
    full: Path  # every day at once, on DuckDB
    daily: Path  # the first days, then the rest, on both engines
    first_days_events: int


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    base = tmp_path_factory.mktemp("engines")
    full, daily = base / "full", base / "daily"
    env = {"PITWALL_DATA_DIR": str(full)}
    run_python("-m", "simulator", "--out", str(full / "landing"), "--customers", "40", "--technicians", "6",
               "--days", str(DAYS), "--seed", "3", "--no-progress", env=env)
    run_python("-m", "orchestration.ingestion", env=env)
    # The reference: every day at once. (The data and unit tests run in the pipeline's build of every
    # simulated world.)
    dbt(full, "duckdb", "build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test")

    days = sorted({p.name.removeprefix("dt=") for p in full.glob("raw/events/dt=*")} - {"1970-01-01"})
    assert len(days) >= DAYS
    cut = days[FIRST_DAYS]
    land_raw(full, daily, before=cut)
    dbt(daily, "duckdb", "build", "--exclude-resource-type", "test", "--exclude-resource-type", "unit_test")
    # Spark as orchestration.dbt.assets runs it: dbt build without the DuckDB-dialect unit tests. The data
    # tests all run on DuckDB in every simulated world's build; on Spark, one of each kind (below) is compiled
    # and run: all ~250 would cost a Spark job each (minutes) and check nothing the table-by-table comparison
    # with DuckDB does not check more strictly. Both Spark commands run in one dbt process (one JVM, warm for
    # the second: tests/dbt_session.py); Dagster starts one per run.
    with DbtSession(daily, "spark", target_path(daily, "spark")) as spark:
        first = spark.invoke("build", "--selector", "portable",
                             "--exclude-resource-type", "unit_test", "--exclude-resource-type", "test")
        assert first.success, (first.error, spark.output())
        manifest, built = spark_manifest(daily)
        with duckdb.connect(str(daily / "warehouse.duckdb"), read_only=True) as con:
            first_days_events = con.execute("select count(*) from stg_events").fetchall()[0][0]

        land_raw(full, daily, before=None)
        dbt(daily, "duckdb", "run")
        # Spark's run of the new days and the sampled tests in one dbt command
        models = sorted(manifest["nodes"][uid]["name"] for uid in built if uid.startswith("model."))
        sample = one_test_of_each_kind(manifest, built)
        then = spark.invoke("build", "--exclude-resource-type", "unit_test", "--indirect-selection", "empty",
                            "--select", *models, *sample)
        assert then.success, (then.error, spark.output())
    # (a test's name may also select a same-named test of another node)
    passed = [uid for uid, status in then.statuses.items() if status in ("success", "pass")]
    assert len(passed) == len(then.statuses) >= len(models) + len(sample), then.statuses
    return Builds(full, daily, first_days_events)


def test_the_incremental_run_had_new_days_to_add(builds):
    with duckdb.connect(str(builds.full / "warehouse.duckdb"), read_only=True) as con:
        all_events = con.execute("select count(*) from stg_events").fetchall()[0][0]
    assert 0 < builds.first_days_events < all_events


def test_spark_builds_the_same_tables_as_duckdb(builds):
    comparisons = compare_engines(builds.full / "warehouse.duckdb", builds.daily / "spark" / "warehouse")
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
    warehouse = builds.daily / "spark" / "warehouse"
    for table, column in [("stg_events", "dt"), ("stg_spans", "dt"), ("fct_sessions", "started_on"),
                          ("fct_api_requests", "dt"), ("int_funnel_entries", "entry_day"),
                          ("int_funnel_entry_steps", "entry_day"), ("mart_api_latency_daily", "day"),
                          ("mart_release_health", "day"), ("mart_funnel_daily", "day")]:
        partitions = sorted(p.name for p in spark_table_dir(warehouse, table).glob(f"{column}=*"))
        assert len(partitions) >= DAYS, (table, partitions)


def test_duckdb_incremental_runs_equal_a_full_rebuild(builds):
    for comparison in compare_warehouses(builds.daily / "warehouse.duckdb", builds.full / "warehouse.duckdb"):
        assert comparison.equal, comparison.describe()


def test_the_comparison_sees_a_changed_row_and_an_out_of_tolerance_percentile(builds, tmp_path):
    """The checks above can fail: a copy with one event gone and one p95 moved past its rank window differs."""
    full = builds.full
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
