"""Concurrency pool slots that outlive their runs, and steps that wait on them.

Every step that writes ``warehouse.duckdb`` claims the one slot of the ``warehouse`` pool (dagster.yaml). Dagster
frees a step's slot when the step ends, in the run's own process. A run whose process is killed (SIGKILL, the
OOM killer, a time limit, a deploy) never frees it: the run stays STARTED, or is marked FAILURE later by
whoever notices, and its claim stays in the instance's ``concurrency_slots``. Every later run then waits on the
pool for ever, with nothing but DEBUG lines ("Step blocked by limit for pool warehouse").

Two remedies, both through Dagster's own API (no SQL against its storage):

* ``release_slots_of_ended_runs`` frees the slots (claimed or queued) of runs that are no longer in progress:
  runs that ended (any finished status) or no longer exist, and in-progress runs whose worker process is gone,
  which it first marks failed (so the failed-run alert fires and the UI tells the truth). A worker is found by
  the pid its executor logs when it starts ("Executing steps in process (pid: …)"); it is alive when a process
  of that pid exists and started no later than the run (a reused pid is a stranger). Runs of this project's
  instance run on one host (the warehouse is one embedded DuckDB file), so a pid is meaningful here.
* ``waiting_steps`` lists steps queued on a pool for longer than a threshold, with who holds the slots.

Both run at the start of every pipeline run and while it runs (``executor.pool_guarded_in_process_executor``),
and from the command line before ``make demo`` (``python -m orchestration.instance.slots``). Where the Dagster
daemon runs, Dagster's run monitoring (dagster.yaml ``run_monitoring``) also frees the slots of ended runs and
fails runs that exceed their maximum runtime. docs/recovery.md says what each interrupted stage leaves behind.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg
import psutil
from dagster._core.storage.dagster_run import FINISHED_STATUSES

log = logging.getLogger(__name__)

STUCK_RULE = "pool_wait_stuck"  # orchestration/alerts/rules.yaml: its threshold and severity
# A worker whose process started up to this long after the run did is still the run's own (the run record's
# start time is written by the worker a moment after it starts).
PID_START_SLACK_SECONDS = 5.0
LIVE_STATUSES = {dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING}


@dataclass(frozen=True)
class Hold:
    """A step's place in a pool: holding a slot (``claimed``), or queued for one."""

    pool: str
    run_id: str
    step_key: str
    claimed: bool
    enqueued_at: datetime | None = None


@dataclass(frozen=True)
class Release:
    """The slots and queue places of one run that were freed, and why."""

    run_id: str
    job_name: str | None
    status: str
    reason: str
    holds: tuple[Hold, ...]

    def describe(self) -> str:
        held = ", ".join(f"{'slot' if h.claimed else 'queue place'} of pool {h.pool!r} (step {h.step_key!r})"
                         for h in self.holds)
        return (f"Freed the {held} held by run {self.run_id} ({self.job_name or 'unknown job'}, {self.status}): "
                f"{self.reason}.")


@dataclass(frozen=True)
class WaitingStep:
    """A step queued on a pool, how long it has waited and who holds the pool's slots."""

    pool: str
    run_id: str
    step_key: str
    waited: timedelta
    holders: tuple[Hold, ...]
    holder_runs: dict[str, str] = field(default_factory=dict)  # run id -> "job, STATUS"

    def describe(self) -> str:
        if self.holders:
            held = "; ".join(f"run {h.run_id} ({self.holder_runs.get(h.run_id, 'unknown run')}) step {h.step_key!r}"
                             for h in self.holders)
        else:
            held = "no run (the pool's limit may be 0)"
        seconds = self.waited.total_seconds()
        waited = f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
        return (f"Step {self.step_key!r} of run {self.run_id} has waited {waited} for a slot of pool "
                f"{self.pool!r}, held by {held}.")


def pool_holds(instance: dg.DagsterInstance) -> list[Hold]:
    """Every claimed slot and queued step of every pool."""
    storage = instance.event_log_storage
    if not storage.supports_global_concurrency_limits:
        return []
    holds: list[Hold] = []
    for pool in sorted(storage.get_concurrency_keys()):
        info = storage.get_concurrency_info(pool)
        holds += [Hold(pool, s.run_id, s.step_key, claimed=True) for s in info.claimed_slots]
        holds += [Hold(pool, p.run_id, p.step_key, claimed=False, enqueued_at=p.enqueued_timestamp)
                  for p in info.pending_steps if p.assigned_timestamp is None]
    return holds


def run_worker_pid(instance: dg.DagsterInstance, run_id: str) -> int | None:
    """The pid the run's executor logged when it started (in-process and multiprocess executors both do)."""
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data if entry.dagster_event else None
        pid = data.metadata.get("pid") if data and data.metadata else None
        if pid is not None and str(pid.value).isdigit():
            return int(pid.value)
    return None


def worker_alive(pid: int, run_started_at: float) -> bool:
    """A process of this pid exists, is not a zombie, and is not younger than the run (a reused pid)."""
    try:
        process = psutil.Process(pid)
        return (process.status() != psutil.STATUS_ZOMBIE
                and process.create_time() <= run_started_at + PID_START_SLACK_SECONDS)
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return False
    except psutil.AccessDenied:  # it exists and is not ours to inspect: never judged dead
        return True


def release_slots_of_ended_runs(instance: dg.DagsterInstance) -> list[Release]:
    """Free the pool slots and queue places of every run that is no longer in progress (see the module's
    docstring); a live run's are never touched. Returns what was freed."""
    by_run: dict[str, list[Hold]] = {}
    for hold in pool_holds(instance):
        by_run.setdefault(hold.run_id, []).append(hold)
    released: list[Release] = []
    for run_id, holds in by_run.items():
        record = instance.get_run_record_by_id(run_id)
        if record is None:
            job_name, status, reason = None, "DELETED", "the run no longer exists"
        else:
            run = record.dagster_run
            job_name, status = run.job_name, run.status.value
            if run.status in FINISHED_STATUSES:
                reason = "the run has ended"
            elif run.status in LIVE_STATUSES:
                pid = run_worker_pid(instance, run_id)
                started = record.start_time or record.create_timestamp.timestamp()
                if pid is None or worker_alive(pid, started):
                    continue  # alive, or not started far enough to have logged its worker: not ours to judge
                reason = f"its worker process (pid {pid}) is gone, so it was marked failed"
                instance.report_run_failed(run, f"Run worker process {pid} is gone (killed or crashed): Pitwall "
                                                "marked the run failed to free the pool slots it held.")
                status = dg.DagsterRunStatus.FAILURE.value
            else:
                continue  # QUEUED / NOT_STARTED hold nothing; leave anything odd to Dagster
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        released.append(Release(run_id, job_name, status, reason, tuple(holds)))
    return released


def waiting_steps(instance: dg.DagsterInstance, *, longer_than: timedelta, run_id: str | None = None,
                  now: datetime | None = None) -> list[WaitingStep]:
    """Steps (of ``run_id``, or of any run) queued on a pool for longer than ``longer_than``."""
    now = now or datetime.now(UTC)
    holds = pool_holds(instance)
    waiting: list[WaitingStep] = []
    for hold in holds:
        if hold.claimed or hold.enqueued_at is None or (run_id and hold.run_id != run_id):
            continue
        waited = now - hold.enqueued_at
        if waited > longer_than:
            holders = tuple(h for h in holds if h.claimed and h.pool == hold.pool)
            waiting.append(WaitingStep(hold.pool, hold.run_id, hold.step_key, waited, holders,
                                       _describe_runs(instance, {h.run_id for h in holders})))
    return waiting


def _describe_runs(instance: dg.DagsterInstance, run_ids: Iterable[str]) -> dict[str, str]:
    described = {}
    for run_id in run_ids:
        run = instance.get_run_by_id(run_id)
        described[run_id] = f"{run.job_name}, {run.status.value}" if run else "deleted run"
    return described


def stuck_threshold() -> timedelta:
    from orchestration.alerts.store import config

    return timedelta(minutes=float(config()["rules"][STUCK_RULE]["threshold_minutes"]))


class PoolWatch:
    """While a run runs, every ``poll_seconds``: free the slots of runs that ended or died meanwhile, and when one
    of this run's steps has waited on a pool longer than ``threshold``, log a WARNING naming the holders and raise
    the ``pool_wait_stuck`` alert (resolved once the step gets its slot). Never raises into the run."""

    def __init__(self, instance: dg.DagsterInstance, run_id: str, *, warn, threshold: timedelta,
                 poll_seconds: float):
        self.instance, self.run_id, self.warn = instance, run_id, warn
        self.threshold, self.poll_seconds = threshold, poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"pool-watch-{run_id[:8]}", daemon=True)
        self._alerted: dict[tuple[str, str], str] = {}  # (pool, step) -> alert subject

    def __enter__(self) -> PoolWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=self.poll_seconds + 5)
        self._resolve(still_waiting=set())

    def _loop(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.tick()
            except Exception as exc:  # the watch must never stop the run it watches
                log.warning("pool watch of run %s failed this round: %r", self.run_id, exc)

    def tick(self) -> None:
        for release in release_slots_of_ended_runs(self.instance):
            self.warn(release.describe())
        waiting = waiting_steps(self.instance, longer_than=self.threshold, run_id=self.run_id)
        for step in waiting:
            key = (step.pool, step.step_key)
            if key in self._alerted:
                continue
            message = step.describe()
            self.warn(message)
            subject = f"pool {step.pool}: run {step.run_id[:8]} step {step.step_key}"
            self._alerted[key] = subject
            _raise_stuck_alert(subject, message, step, self.threshold)
        self._resolve(still_waiting={(s.pool, s.step_key) for s in waiting})

    def _resolve(self, still_waiting: set[tuple[str, str]]) -> None:
        from orchestration.alerts.store import resolve_alert

        for key in [k for k in self._alerted if k not in still_waiting]:
            try:
                resolve_alert(rule=STUCK_RULE, subject=self._alerted.pop(key),
                              summary=f"Step {key[1]!r} of run {self.run_id} got its slot of pool {key[0]!r}, or ended.")
            except Exception as exc:
                log.warning("could not resolve the %s alert of %s: %r", STUCK_RULE, key, exc)


def _raise_stuck_alert(subject: str, message: str, step: WaitingStep, threshold: timedelta) -> None:
    from orchestration.alerts.store import raise_alert

    try:
        raise_alert(rule=STUCK_RULE, subject=subject, summary=message, value=step.waited.total_seconds(),
                    threshold=threshold.total_seconds(),
                    details={"pool": step.pool, "run_id": step.run_id, "step": step.step_key,
                             "holders": [{"run_id": h.run_id, "step": h.step_key,
                                          "run": step.holder_runs.get(h.run_id)} for h in step.holders]})
    except Exception as exc:  # the WARNING is logged already; the alerts file may be held for long
        log.warning("could not raise the %s alert for %s: %r", STUCK_RULE, subject, exc)


def main() -> int:
    """``python -m orchestration.instance.slots``: free the slots of runs no longer in progress, and say so."""
    with dg.DagsterInstance.get() as instance:
        released = release_slots_of_ended_runs(instance)
        for release in released:
            print(release.describe())
        held = [h for h in pool_holds(instance) if h.claimed]
    if not released:
        print("Pool slots: none held by ended or dead runs.")
    for hold in held:
        print(f"Pool {hold.pool!r}: slot held by live run {hold.run_id} (step {hold.step_key!r}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
