"""The instance's event log (orchestration/instance/event_log.py) stores and serves what Dagster's own SQLite
event log does, through a real instance loaded from the project's dagster.yaml."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from conftest import ROOT
from orchestration.instance.event_log import KEPT_ENGINES, PooledSqliteEventLogStorage


@dg.asset
def thing() -> int:
    return 1


@dg.asset_check(asset=thing)
def thing_is_positive() -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=True)


JOB = dg.Definitions(assets=[thing], asset_checks=[thing_is_positive],
                     jobs=[dg.define_asset_job("one_thing")]).resolve_job_def("one_thing")


@pytest.fixture
def instance(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "orchestration" / "instance" / "dagster.yaml", home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    with dg.DagsterInstance.get() as instance:
        yield instance


def test_the_projects_instance_stores_events_where_dagster_keeps_them_and_reads_them_back(instance):
    storage = instance.event_log_storage
    assert isinstance(storage, PooledSqliteEventLogStorage)
    assert storage._base_dir == str(Path(instance.root_directory) / "history" / "runs")  # Dagster's default place
    runs = [JOB.execute_in_process(instance=instance) for _ in range(KEPT_ENGINES + 3)]
    assert all(r.success for r in runs)
    assert len(storage._engines) <= KEPT_ENGINES  # older runs' engines were closed ...

    for run in runs:  # ... and every run's events are still there, from its own shard
        types = {e.dagster_event_type for e in instance.all_logs(run.run_id) if e.is_dagster_event}
        assert {dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.ASSET_MATERIALIZATION,
                dg.DagsterEventType.ASSET_CHECK_EVALUATION} <= types
    # the cross-run index (the asset catalog) sees the latest materialization and check evaluation
    latest = instance.get_latest_materialization_event(dg.AssetKey("thing"))
    assert latest is not None and latest.run_id == runs[-1].run_id
    record = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("thing"), "thing_is_positive")])
    assert next(iter(record.values())).run_id == runs[-1].run_id


def test_commits_sync_at_wal_checkpoints_and_every_event_is_in_the_runs_shard(instance):
    storage = instance.event_log_storage
    run = JOB.execute_in_process(instance=instance)
    with storage._connect(run.run_id) as conn:
        assert conn.exec_driver_sql("pragma journal_mode").scalar() == "wal"  # Dagster's own setting
        assert conn.exec_driver_sql("pragma synchronous").scalar() == 1  # NORMAL, not FULL (2)
    with sqlite3.connect(storage.path_for_shard(run.run_id)) as con:  # another reader sees every event
        (count,) = con.execute("select count(*) from event_logs").fetchall()[0]
    assert count == len(instance.all_logs(run.run_id)) > 0


def test_wipe_closes_the_pooled_connections_before_deleting_the_shards(instance):
    storage = instance.event_log_storage
    run = JOB.execute_in_process(instance=instance)
    assert run.run_id in storage._engines
    storage.wipe()
    assert set(storage._engines) <= {"index"}  # the wipe itself empties the index through a new engine
    assert not Path(storage.path_for_shard(run.run_id)).exists()
    assert JOB.execute_in_process(instance=instance).success  # a fresh shard after the wipe


def test_a_schema_answer_is_remembered_once_it_is_yes_and_asked_again_while_it_is_no(instance, monkeypatch):
    storage = instance.event_log_storage
    asked: list[str] = []
    dagsters_own = SqliteEventLogStorage.has_table
    monkeypatch.setattr(SqliteEventLogStorage, "has_table", lambda self, name: asked.append(name) or dagsters_own(self, name))
    assert JOB.execute_in_process(instance=instance).success  # an asset check's events ask for its table
    assert JOB.execute_in_process(instance=instance).success
    assert asked.count("asset_check_executions") == 1 and storage.supports_asset_checks
    assert not storage.has_table("pitwall_later") and not storage.has_table("pitwall_later")
    with sqlite3.connect(storage.path_for_shard("index")) as con:  # a table that appears later is found
        con.execute("create table pitwall_later (x int)")
    assert storage.has_table("pitwall_later")
    assert asked.count("pitwall_later") == 3
    storage.wipe()  # a wipe forgets what it knew
    assert storage.has_table("asset_check_executions") and asked.count("asset_check_executions") == 2
