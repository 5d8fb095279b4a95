"""An interrupted run never wedges the pipeline (orchestration/instance/slots.py, executor.py).

Real Dagster instances on disk and real `dagster asset materialize` subprocesses, killed with real signals: a
small code location whose one asset holds a pool slot until the test lets go (tests/pool_location.py), and the
project's own code location on the real SDK payloads (slow tier), whose rerun after a kill must equal a clean
run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from unittest.mock import patch

import dagster as dg
import duckdb
import psutil
import pytest

from conftest import ROOT, SDK_LANDING, subprocess_env
from orchestration.instance.slots import (
    release_slots_of_ended_runs,
    run_worker_pid,
    waiting_steps,
    worker_alive,
)

DAGSTER = str(Path(sys.executable).parent / "dagster")
LOCATION = Path(__file__).with_name("pool_location.py")
POOL = "warehouse"  # the pool the project's warehouse writers share (orchestration.dbt.assets.WAREHOUSE_POOL)
WAIT_SECONDS = 120


def wait_for(condition: Callable[[], object], what: str, timeout: float = WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Instance:
    """A DAGSTER_HOME on disk with the project's dagster.yaml, and materializations started in it."""

    def __init__(self, root: Path):
        self.home = root / "dagster_home"
        self.home.mkdir(parents=True)
        shutil.copy(ROOT / "orchestration" / "instance" / "dagster.yaml", self.home / "dagster.yaml")
        self.marks = root / "marks"
        self.marks.mkdir()
        self.data = root / "data"
        (self.data / "landing").mkdir(parents=True)
        self.env = {**subprocess_env(), "DAGSTER_HOME": str(self.home), "PITWALL_DATA_DIR": str(self.data),
                    "POOL_TEST_DIR": str(self.marks), "POOL_TEST_POOL": POOL,
                    "PYTHONPATH": os.pathsep.join([str(ROOT), str(LOCATION.parent)])}
        # Create the instance's sqlite storages now, before any run: a test polling a fresh home while the run's
        # process creates them too stamps alembic_version twice ("more than one head present"), seen in CI.
        with self.open():
            pass

    @contextmanager
    def open(self) -> Iterator[dg.DagsterInstance]:
        # the project's event log storage finds its folder under $DAGSTER_HOME, as Dagster's default does
        with patch.dict(os.environ, {"DAGSTER_HOME": str(self.home)}), dg.DagsterInstance.get() as instance:
            yield instance

    def materialize(self, select: str, *, location: list[str], config: str | None = None) -> subprocess.Popen:
        command = [DAGSTER, "asset", "materialize", "--select", select, *location]
        if config:
            command += ["--config-json", config]
        # A session of its own, as a scheduler's or a shell's job: killed as a whole, like a time limit does.
        # SIGINT at its default, as in a terminal or under systemd: Dagster answers SIGTERM with SIGINT's
        # handler, so a CLI started with SIGINT ignored (a background job of a script) ignores SIGTERM too.
        return subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))

    def hold(self, config: str | None = None) -> subprocess.Popen:
        return self.materialize("holds_the_pool", location=["-f", str(LOCATION)], config=config)

    def started_runs(self) -> set[str]:
        return {p.name.removeprefix("started-") for p in self.marks.glob("started-*")}

    def claims(self) -> list[tuple[str, str]]:
        with self.open() as instance:
            info = instance.event_log_storage.get_concurrency_info(POOL)
            return [(slot.run_id, slot.step_key) for slot in info.claimed_slots]

    def status(self, run_id: str) -> dg.DagsterRunStatus:
        with self.open() as instance:
            return instance.get_run_by_id(run_id).status


def finish(process: subprocess.Popen, timeout: float = WAIT_SECONDS) -> tuple[int, str]:
    out, _ = process.communicate(timeout=timeout)
    return process.returncode, out


def kill_tree(process: subprocess.Popen, sig: signal.Signals) -> None:
    os.killpg(process.pid, sig)
    process.communicate(timeout=WAIT_SECONDS)


@pytest.fixture
def instance(tmp_path) -> Instance:
    return Instance(tmp_path)


def test_a_run_killed_while_it_holds_a_slot_no_longer_blocks_the_next_run(instance):
    first = instance.hold()
    (killed,) = wait_for(instance.started_runs, "the first run's step to hold the slot")
    kill_tree(first, signal.SIGKILL)
    # what Dagster leaves on its own: the run still STARTED, its slot claimed for ever
    assert instance.status(killed) == dg.DagsterRunStatus.STARTED
    assert instance.claims() == [(killed, "holds_the_pool")]

    (instance.marks / "release").touch()
    code, out = finish(instance.hold())
    assert code == 0, out[-3000:]
    assert instance.started_runs() - {killed}, "the next run's step never ran"
    assert f"Freed the slot of pool '{POOL}' (step 'holds_the_pool') held by run {killed}" in out
    assert "worker process" in out and "is gone" in out
    assert instance.status(killed) == dg.DagsterRunStatus.FAILURE  # marked failed: the failed-run alert fires
    assert instance.claims() == []


def test_a_failed_run_that_kept_its_slot_is_freed_by_the_command_make_demo_runs_first(instance):
    first = instance.hold()
    (killed,) = wait_for(instance.started_runs, "the first run's step to hold the slot")
    kill_tree(first, signal.SIGKILL)
    with instance.open() as dagster_instance:  # as the UI's "mark as failed" or the daemon's max runtime do
        dagster_instance.report_run_failed(dagster_instance.get_run_by_id(killed), "ended by a time limit")
    assert instance.claims() == [(killed, "holds_the_pool")]  # ended, and still holding: the wedge of issue #19

    cleanup = subprocess.run([sys.executable, "-m", "orchestration.instance.slots"], cwd=ROOT, env=instance.env,
                             capture_output=True, text=True, timeout=WAIT_SECONDS)
    assert cleanup.returncode == 0, cleanup.stderr
    assert f"held by run {killed} (__ASSET_JOB, FAILURE): the run has ended." in cleanup.stdout
    assert instance.claims() == []
    again = subprocess.run([sys.executable, "-m", "orchestration.instance.slots"], cwd=ROOT, env=instance.env,
                           capture_output=True, text=True, timeout=WAIT_SECONDS)
    assert "none held by ended or dead runs" in again.stdout


def test_a_live_runs_slot_is_never_taken_and_a_step_waiting_past_the_threshold_raises_an_alert(instance):
    holder = instance.hold()
    (holding,) = wait_for(instance.started_runs, "the holder's step to hold the slot")
    waiter = instance.hold(config='{"execution": {"config": {"pool_watch": '
                                  '{"stuck_after_seconds": 2, "poll_seconds": 0.5}}}}')
    alerts_file = instance.data / "alerts.duckdb"

    def stuck_alert():
        if not alerts_file.exists():
            return None
        try:
            with duckdb.connect(str(alerts_file), read_only=True) as con:
                return con.execute("select subject, status, summary, details from alerts "
                                   "where rule = 'pool_wait_stuck'").fetchall()
        except duckdb.Error:  # the watch holds the file for a moment
            return None

    ((subject, status, summary, details),) = wait_for(stuck_alert, "the pool_wait_stuck alert")
    assert status == "firing"
    assert f"held by run {holding} (__ASSET_JOB, STARTED) step 'holds_the_pool'" in summary
    assert holding in details and "holds_the_pool" in details
    # the waiter's own checks saw a live holder: the slot is still the holder's, the waiter has not started
    assert instance.claims() == [(holding, "holds_the_pool")]
    assert instance.started_runs() == {holding}
    with instance.open() as dagster_instance:
        (waiting,) = waiting_steps(dagster_instance, longer_than=timedelta(seconds=2))
        assert waiting.holders[0].run_id == holding
        assert release_slots_of_ended_runs(dagster_instance) == []  # the holder is alive: nothing to free

    (instance.marks / "release").touch()
    (holder_code, holder_out), (waiter_code, waiter_out) = finish(holder), finish(waiter)
    assert holder_code == 0 and waiter_code == 0, holder_out[-2000:] + waiter_out[-2000:]
    assert "WARNING" in waiter_out and f"held by run {holding}" in waiter_out
    (waited,) = instance.started_runs() - {holding}
    # the waiter ran after the holder finished: it got the slot from the holder, not by taking it
    assert (instance.marks / f"started-{waited}").stat().st_mtime >= \
        float((instance.marks / f"done-{holding}").read_text()) - 0.5
    with duckdb.connect(str(alerts_file), read_only=True) as con:
        assert con.execute("select status from alerts where rule = 'pool_wait_stuck'").fetchall() == [("resolved",)]
        assert sorted(con.execute("select kind from alert_deliveries").fetchall()) == [("fire",), ("resolve",)]


def test_a_worker_is_alive_only_while_its_process_runs_and_is_not_a_younger_stranger():
    me = psutil.Process()
    assert worker_alive(me.pid, run_started_at=time.time())
    # the same pid seen for a run that started long before this process: the pid was reused, the worker is gone
    assert not worker_alive(me.pid, run_started_at=me.create_time() - 3600)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert not worker_alive(ended.pid, run_started_at=time.time())


def test_the_worker_pid_is_the_one_the_runs_executor_logged(instance):
    (instance.marks / "release").touch()
    process = instance.hold()
    code, out = finish(process)
    assert code == 0, out[-2000:]
    (run_id,) = instance.started_runs()
    with instance.open() as dagster_instance:
        assert run_worker_pid(dagster_instance, run_id) == process.pid  # the CLI runs the steps itself


# --- the project's pipeline, killed while dbt holds the warehouse slot ------------------------------------

SELECTION = "+stg_events,+stg_spans"  # ingestion, then dbt in the warehouse pool: ~30 s a run
COMPARED = ("stg_events", "stg_spans")


def pipeline(instance: Instance) -> subprocess.Popen:
    return instance.materialize(SELECTION, location=["-m", "orchestration.definitions"])


def session_processes(session_id: int) -> list[str]:
    """The command lines of the live processes of a session (a run started by ``Instance.materialize``)."""
    alive = []
    for process in psutil.process_iter():
        try:
            if os.getsid(process.pid) == session_id and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(process.cmdline()))
        except (OSError, psutil.Error):  # gone meanwhile
            pass
    return alive


def table_rows(data: Path) -> dict[str, list[str]]:
    """Each compared table's rows (less the load time) and the ingestion ledger's counts, as sorted JSON."""
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as con:
        rows = {table: [r for (r,) in con.execute(
            f"select to_json(t)::varchar from (select * exclude (ingested_at) from {table}) t order by 1").fetchall()]
            for table in COMPARED}
        rows["ledger"] = [r for (r,) in con.execute(
            "select to_json(t)::varchar from (select source, landing_path, sha256, records_read, records_loaded, "
            "records_quarantined, file_error from read_parquet(?, union_by_name => true)) t order by 1",
            [str(data / "raw" / "_ledger" / "**" / "*.parquet")]).fetchall()]
    return rows


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, dbt_manifest) -> dict[str, set]:
    clean = Instance(tmp_path_factory.mktemp("clean"))
    shutil.copytree(SDK_LANDING, clean.data / "landing", dirs_exist_ok=True)
    code, out = finish(pipeline(clean), timeout=600)
    assert code == 0, out[-3000:]
    return table_rows(clean.data)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_the_pipeline_interrupted_while_dbt_holds_the_warehouse_reruns_to_a_clean_runs_outputs(
        instance, clean_run, sig):
    shutil.copytree(SDK_LANDING, instance.data / "landing", dirs_exist_ok=True)
    first = pipeline(instance)
    ((interrupted, step),) = wait_for(instance.claims, "dbt to hold the warehouse slot", timeout=300)
    assert step == "pitwall_dbt_models"
    wait_for(lambda: [c for c in session_processes(first.pid) if "dbt" in c], "dbt to start building")
    time.sleep(1.0)
    if sig == signal.SIGKILL:
        os.killpg(first.pid, sig)  # the whole tree, dbt with it, as a time limit or a container stop does
    else:
        first.send_signal(sig)  # the CLI's process only, as `timeout` or `kill` does; it stops dbt itself
    out, _ = first.communicate(timeout=WAIT_SECONDS)
    assert first.returncode != 0, out[-3000:]
    # no process of the interrupted run (dbt) lives on to hold the warehouse file (a moment to exit is fine)
    wait_for(lambda: not session_processes(first.pid), "the interrupted run's processes to exit", timeout=30)

    code, out = finish(pipeline(instance), timeout=600)
    assert code == 0, out[-3000:]
    assert instance.status(interrupted) == dg.DagsterRunStatus.FAILURE
    assert instance.claims() == []
    assert table_rows(instance.data) == clean_run


def test_a_publish_killed_mid_stage_leaves_no_half_written_copy_behind_the_next_one(tmp_path, monkeypatch):
    """A publish stages a copy of the warehouse (gigabytes at scale) under a name of its pid; a killed one's copy is
    removed by the next publish, a live one's (another process staging now) is left alone."""
    from orchestration.publish.publish import promote_publication, stage_publication, staged_path

    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path))
    with duckdb.connect(str(tmp_path / "warehouse.duckdb")) as con:
        con.execute("create table fct_thing as select range as k from range(10)")
    staged_path().parent.mkdir(parents=True)
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    killed = staged_path().parent / f".pitwall.duckdb.tmp-{ended.pid}"
    live = staged_path().parent / f".pitwall.duckdb.tmp-{os.getppid()}"
    for left in (killed, live):
        left.write_bytes(b"half a copy")
    stage_publication({})
    promote_publication([])
    assert not killed.exists() and live.exists()
    with duckdb.connect(str(tmp_path / "published" / "pitwall.duckdb"), read_only=True) as con:
        assert con.execute("select count(*) from fct_thing").fetchall() == [(10,)]
