"""The project's own generic dbt tests, run by dbt on a small warehouse and checked against a recount in DuckDB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from conftest import ROOT, subprocess_env

DBT_PROJECT = ROOT / "dbt_project"


def not_null_columns_of(model: str) -> list[str]:
    """The columns the model's YAML declares never null (its not_null_columns test)."""
    for path in (DBT_PROJECT / "models").rglob("*.yml"):
        for node in yaml.safe_load(path.read_text()).get("models") or []:
            if node["name"] != model:
                continue
            for test in node.get("data_tests") or []:
                if isinstance(test, dict) and "not_null_columns" in test:
                    return test["not_null_columns"]["arguments"]["column_names"]
    raise AssertionError(f"{model} has no not_null_columns test")


@pytest.mark.slow  # two dbt invocations, each parsing the project for a new data root
def test_not_null_columns_counts_each_null_cell_and_names_its_column(tmp_path, dbt_manifest):
    """A stg_spans whose undeclared columns are null throughout passes; with nulls planted in two declared
    columns, dbt's test fails with one failure per planted cell (recounted in DuckDB), and the stored
    failures name the columns."""
    declared = not_null_columns_of("stg_spans")
    assert len(declared) >= 5 and "parent_span_id" not in declared
    manifest = json.loads(dbt_manifest.read_text())
    columns = manifest["nodes"]["model.pitwall.stg_spans"]["columns"]
    warehouse = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(warehouse))
    # every documented column, typed as documented; 20 rows with every declared column set
    con.execute("create table stg_spans (" + ", ".join(
        f'"{name}" {column["data_type"]}' for name, column in columns.items()) + ")")
    values = {"varchar": "'x' || range", "boolean": "false", "date": "date '2026-11-01'",
              "timestamp with time zone": "timestamptz '2026-11-01 00:00:00+00'"}
    select = ", ".join(values.get(columns[name]["data_type"], "1") if name in declared else "null"
                       for name in columns)
    con.execute(f"insert into stg_spans select {select} from range(20)")
    con.close()

    def failures() -> tuple[int, list[tuple]]:
        target = tmp_path / "target"
        run = subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), "--no-use-colors", "--quiet", "test", "--store-failures",
             "--select", "stg_spans,test_name:not_null_columns", "--project-dir", ".", "--profiles-dir", ".",
             "--target-path", str(target)],
            cwd=DBT_PROJECT, env={**subprocess_env(), "PITWALL_DATA_DIR": str(tmp_path)},
            capture_output=True, text=True)
        results = [result for result in json.loads((target / "run_results.json").read_text())["results"]
                   if result["unique_id"].startswith("test.")]  # not the project's on-run-start hook
        assert len(results) == 1, run.stdout[-2000:]
        with duckdb.connect(str(warehouse), read_only=True) as db:
            stored = db.execute(f"select null_column, count(*) from main_dbt_test__audit.{results[0]['relation_name'].split('.')[-1]} "
                                "group by all order by all").fetchall() if results[0]["failures"] else []
        return results[0]["failures"], stored

    assert failures() == (0, [])
    con = duckdb.connect(str(warehouse))
    first, other = declared[0], declared[-1]
    con.execute(f'update stg_spans set "{first}" = null where rowid < 3')
    con.execute(f'update stg_spans set "{other}" = null where rowid between 2 and 6')
    recount = con.execute("select " + ", ".join(f'count(*) filter (where "{c}" is null)' for c in declared)
                          + " from stg_spans").fetchall()[0]
    con.close()
    expected = sorted((column, nulls) for column, nulls in zip(declared, recount, strict=True) if nulls)
    assert expected == sorted([(first, 3), (other, 5)])
    assert failures() == (8, expected)
