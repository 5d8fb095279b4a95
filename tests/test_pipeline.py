"""The whole pipeline through Dagster: ingestion assets → dbt staging, with checks, on real SDK payloads."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from conftest import ROOT, SDK_LANDING

MANIFEST = json.loads((SDK_LANDING.parent / "manifest.json").read_text())


def materialize_everything() -> dg.ExecuteInProcessResult:
    from orchestration.definitions import defs

    job = defs.resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=dg.DagsterInstance.ephemeral())


def warehouse(root: Path) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)


@pytest.fixture
def built_sdk_world(sdk_data_root, dbt_manifest) -> tuple[Path, dg.ExecuteInProcessResult]:
    return sdk_data_root, materialize_everything()


def test_definitions_wire_ingestion_to_dbt_sources(dbt_manifest):
    from orchestration.definitions import defs
    from orchestration.ingestion.assets import SOURCE_KEYS

    graph = defs.resolve_asset_graph()
    for key in SOURCE_KEYS:
        assert graph.has(key), key
    stg_events = dg.AssetKey(["stg_events"])
    assert dg.AssetKey(["raw", "events"]) in graph.get(stg_events).parent_keys
    assert defs.resolve_job_def("pitwall_pipeline") is not None
    assert defs.resolve_schedule_def("daily_pipeline").cron_schedule == "0 3 * * *"


def test_every_asset_is_in_a_named_group_and_dbt_models_in_their_folders(dbt_manifest):
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert not [key for key, group in groups.items() if group in (None, "default")]
    manifest = json.loads(dbt_manifest.read_text())
    for node in manifest["nodes"].values():
        if node["resource_type"] == "model":
            folder = node["original_file_path"].split("/")[1]  # models/<folder>/...
            assert groups[dg.AssetKey([node["name"]])] == folder, node["name"]


@pytest.mark.slow
def test_dagster_validates_the_code_location(dbt_manifest):
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "orchestration.definitions"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.slow
def test_real_sdk_payloads_reach_staging_with_duplicates_removed(built_sdk_world):
    root, result = built_sdk_world
    assert result.success
    checks = {(e.asset_key.to_user_string(), e.check_name): e.passed
              for e in result.get_asset_check_evaluations()}
    assert checks[("ingestion/ledger", "ledger_invariant")]
    assert checks and all(checks.values()), [k for k, ok in checks.items() if not ok]

    con = warehouse(root)
    events = MANIFEST["events"]
    assert con.execute("select count(*), count(distinct message_id) from stg_events").fetchall()[0] == (
        events["distinct_message_ids"], events["distinct_message_ids"])
    # Per type and event name, the staging counts equal the distinct messages in the files.
    lines = [json.loads(l) for f in sorted(SDK_LANDING.glob("events/*/*.gz")) for l in gzip.decompress(f.read_bytes()).splitlines()]
    distinct = {e["messageId"]: e for e in lines}.values()
    expected: dict[tuple, int] = {}
    for e in distinct:
        name = e.get("event") or e.get("name") or e["type"]
        expected[(e["type"], name)] = expected.get((e["type"], name), 0) + 1
    got = dict(((t, n), c) for t, n, c in con.execute("select event_type, event_name, count(*) from stg_events group by all").fetchall())
    assert got == expected
    assert con.execute("select count(*) from stg_events where occurred_at is null or session_id is null").fetchall()[0] == (0,)

    crashes = MANIFEST["crashes"]
    assert con.execute("select count(*), count(distinct group_id) from stg_crashes").fetchall()[0] == (
        crashes["events"], len(crashes["groups_by_exception_type_and_top_in_app_frame"]))
    by_group = con.execute("select exception_type || '|' || crash_frame, release, count(*) from stg_crashes group by all").fetchall()
    assert sorted(by_group) == sorted((g, r, n) for g, rel in crashes["groups_by_exception_type_and_top_in_app_frame"].items()
                                      for r, n in rel.items())

    traces = MANIFEST["traces"]
    assert con.execute("select count(*), count(distinct trace_id), count(*) filter (where status_code = 'error') from stg_spans").fetchall()[0] == (
        traces["spans"], traces["traces"], traces["error_spans"])
    routes = con.execute("""
        select http_route, count(*), quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95)
        from stg_spans where kind = 'client' and http_route is not null group by all""").fetchall()
    assert {r: n for r, n, *_ in routes} == traces["client_http_spans_by_route"]
    for route, _, p50, p95 in routes:
        want50, want95 = traces["client_duration_ms_p50_p95_by_route"][route]
        assert p50 == pytest.approx(want50, abs=1e-3) and p95 == pytest.approx(want95, abs=1e-3), route
    assert con.execute("select count(*) from quarantine").fetchall()[0] == (0,)
    ledger = con.execute("select sum(records_read), sum(records_loaded), sum(records_quarantined) from ingestion_ledger").fetchall()[0]
    assert ledger == (events["lines"] + crashes["events"] + traces["spans"],) * 2 + (0,)


@pytest.mark.slow
def test_pipeline_on_an_empty_landing_zone_builds_empty_tables(data_root, dbt_manifest):
    result = materialize_everything()
    assert result.success
    con = warehouse(data_root)
    for table in ("stg_events", "stg_crashes", "stg_spans", "stg_customers", "stg_jobs", "stg_telemetry", "quarantine"):
        assert con.execute(f"select count(*) from {table}").fetchall()[0] == (0,), table
    columns = {r[0] for r in con.execute("describe stg_spans").fetchall()}
    assert {"trace_id", "span_id", "http_route", "duration_ms", "session_id", "platform"} <= columns
