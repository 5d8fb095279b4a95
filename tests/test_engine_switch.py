"""PITWALL_ENGINE switches the engine by configuration alone: the Dagster code location and the dbt target
follow it, and Spark's set of dbt models is dbt's own `portable` selector (docs/scale-out.md)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, subprocess_env

LIST_ASSETS = """
import json
from orchestration.definitions import defs
from orchestration.dbt.assets import build_command, dbt_resource
graph = defs.resolve_asset_graph()
print(json.dumps({
    "assets": sorted(k.to_user_string() for k in graph.get_all_asset_keys() if graph.get(k).is_materializable),
    "target": dbt_resource().target,
    "command": build_command(),
}))
"""


def code_location(engine: str | None, dbt_manifest) -> dict:
    env = {k: v for k, v in subprocess_env().items() if k not in ("PITWALL_ENGINE", "PITWALL_DBT_TARGET")}
    if engine is not None:
        env["PITWALL_ENGINE"] = engine
    run = subprocess.run([sys.executable, "-c", LIST_ASSETS], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def dbt_ls(target: Path, *args: str) -> set[str]:
    """``dbt ls`` with its own target folder: the project's target/ holds the manifest other tests read."""
    run = subprocess.run([str(Path(sys.executable).parent / "dbt"), "--quiet", "ls", "--resource-type", "model",
                          "--resource-type", "seed", "--output", "name", *args, "--project-dir", ".",
                          "--profiles-dir", ".", "--target-path", str(target)], cwd=ROOT / "dbt_project",
                         env=subprocess_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    return set(run.stdout.split())


def test_the_switch_sets_the_dbt_target_selector_and_unit_tests(monkeypatch):
    """The switch's own logic, in process; the code locations it produces are listed below (slow tier)."""
    from orchestration.dbt.assets import build_command
    from pitwall import engine

    monkeypatch.delenv("PITWALL_ENGINE", raising=False)
    monkeypatch.delenv("PITWALL_DBT_TARGET", raising=False)
    assert (engine.engine(), engine.dbt_target(), engine.dbt_selector(), build_command()) == (
        "duckdb", "duckdb", None, ["build"])
    monkeypatch.setenv("PITWALL_ENGINE", " Spark ")
    assert (engine.engine(), engine.dbt_target(), engine.dbt_selector()) == ("spark", "spark", engine.PORTABLE_SELECTOR)
    assert build_command() == ["build", "--exclude-resource-type", "unit_test"]
    assert build_command(unit_tests=True) == ["build"]
    monkeypatch.setenv("PITWALL_DBT_TARGET", "spark_cluster")
    assert engine.dbt_target() == "spark_cluster"
    monkeypatch.setenv("PITWALL_ENGINE", "snowflake")
    with pytest.raises(engine.UnknownEngine, match="PITWALL_ENGINE='snowflake'"):
        engine.engine()


def dbt_models() -> set[str]:
    """Every model and seed of the project by name (as `dbt ls --output name` lists them), from the manifest."""
    from orchestration.dbt.project import dbt_project

    nodes = json.loads(dbt_project.manifest_path.read_text())["nodes"].values()
    return {n["name"] for n in nodes if n["resource_type"] in ("model", "seed")}


@pytest.fixture(scope="module")
def locations(dbt_manifest):
    # no engine set and "duckdb" are the same by the switch's own test above
    return {engine: code_location(engine, dbt_manifest) for engine in (None, "spark")}


@pytest.mark.slow
def test_duckdb_is_the_default_and_builds_every_model(locations):
    assert locations[None]["target"] == "duckdb"
    assert locations[None]["command"] == ["build"]
    assert dbt_models() <= set(locations[None]["assets"])


@pytest.mark.slow
def test_spark_builds_the_portable_selector_and_the_ingestion_it_reads(locations, tmp_path):
    spark = locations["spark"]
    assert spark["target"] == "spark"
    assert "unit_test" in spark["command"]  # DuckDB-dialect fixtures stay on DuckDB
    portable = dbt_ls(tmp_path / "target", "--selector", "portable")
    assert {"stg_events", "stg_spans", "stg_crashes", "fct_sessions", "mart_funnel_daily", "mart_release_health",
            "mart_api_latency_daily", "mart_recommendation_efficacy"} <= portable
    dbt_assets = set(spark["assets"]) & dbt_models()
    assert dbt_assets == portable
    # the domains that read warehouse.duckdb are not in the Spark location
    duckdb_only = set(locations[None]["assets"]) - set(spark["assets"])
    assert {"fct_nba_features", "mart_experiment_results", "recommendations"} <= duckdb_only
    assert "raw/events" in spark["assets"]


@pytest.mark.slow
def test_an_unknown_engine_is_refused_with_its_name(dbt_manifest):
    env = {**subprocess_env(), "PITWALL_ENGINE": "snowflake"}
    run = subprocess.run([sys.executable, "-c", "import orchestration.definitions"], cwd=ROOT, env=env,
                         capture_output=True, text=True)
    assert run.returncode != 0
    assert "PITWALL_ENGINE='snowflake'" in run.stderr and "duckdb, spark" in run.stderr


def test_the_dbt_resource_runs_dbt_without_loading_dbts_adapter_in_dagsters_process(dbt_manifest, tmp_path,
                                                                                      monkeypatch):
    """dagster-dbt would load dbt's profile, project and adapter in this process before every command (for row
    counts and column metadata Pitwall does not fetch); the resource runs the command without them."""
    from dbt.adapters.factory import FACTORY

    from orchestration.dbt.assets import dbt_resource

    monkeypatch.delenv("PITWALL_ENGINE", raising=False)
    monkeypatch.delenv("PITWALL_DBT_TARGET", raising=False)
    FACTORY.reset_adapters()
    # the session's parse, for the session's data root (`dbt ls` opens no warehouse): dbt re-parses nothing
    target = tmp_path / "dbt_target"
    target.mkdir()
    shutil.copy2(dbt_manifest.parent / "partial_parse.msgpack", target)
    invocation = dbt_resource().cli(["ls", "--resource-type", "seed", "--output", "name", "--target-path",
                                     str(target)], manifest=dbt_manifest)
    listed = {event.raw_event["info"]["msg"] for event in invocation.stream_raw_events()}
    assert invocation.is_successful() and invocation.adapter is None
    assert not FACTORY.adapters  # dbt's adapter was never registered here: only the subprocess had one
    assert {p.stem for p in (ROOT / "dbt_project" / "seeds").glob("*.csv")} <= listed


def test_the_dev_clis_reparse_dbt_only_when_a_project_file_is_newer_than_the_manifest(dbt_manifest, tmp_path):
    """`dg launch` (as `make demo` runs it) sets Dagster's dev flag, under which dagster-dbt ran `dbt parse` on
    every load; the project re-parses only when the manifest is missing or behind a file dbt parses."""
    from dagster_dbt import DbtProject

    from orchestration.dbt.project import manifest_is_stale

    # the real project, loaded as `dg launch` loads it, right after the session's parse: the manifest stays
    before = dbt_manifest.stat().st_mtime_ns
    run = subprocess.run([sys.executable, "-c", "import orchestration.dbt.project"], cwd=ROOT,
                         env={**subprocess_env(), "DAGSTER_IS_DEV_CLI": "1"}, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    assert dbt_manifest.stat().st_mtime_ns == before

    # a copy of the project: no manifest, then a manifest, then a model, a macro or dbt_project.yml edited after it
    project_dir = tmp_path / "dbt_project"
    for name in ("models", "macros", "tests", "seeds"):
        (project_dir / name).mkdir(parents=True)
    model, macro, settings = project_dir / "models" / "m.sql", project_dir / "macros" / "x.sql", project_dir / "dbt_project.yml"
    model.write_text("select 1 as one\n")
    macro.write_text("{% macro x() %}1{% endmacro %}\n")
    settings.write_text("name: copy\nprofile: pitwall\n")
    project = DbtProject(project_dir=project_dir, target_path=project_dir / "target")
    assert manifest_is_stale(project)
    manifest = Path(project.manifest_path)
    manifest.parent.mkdir()
    manifest.write_text("{}")
    written = manifest.stat().st_mtime
    assert not manifest_is_stale(project)
    for edited in (model, macro, settings):
        os.utime(edited, (written + 5, written + 5))
        assert manifest_is_stale(project), edited
        os.utime(edited, (written - 5, written - 5))
    assert not manifest_is_stale(project)
    (project_dir / "target" / "run_results.json").write_text("{}")  # dbt's own output is not parsed
    os.utime(project_dir / "target" / "run_results.json", (written + 5, written + 5))
    assert not manifest_is_stale(project)
