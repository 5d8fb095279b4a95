"""Crash alerting, near real time: the rules of rules.yaml on hand-made raw crashes, on a simulated world fed day by
day, and end to end under the real Dagster daemon with a real webhook receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from webhook_receiver import WebhookReceiver

from conftest import ROOT
from orchestration.alerts import alert_store
from orchestration.alerts.crashes import evaluate_crash_rules, new_landing_files, rule_params, run_crash_alerting
from pitwall import paths
from pitwall.duck import connect

T0 = datetime(2026, 11, 2, 0, 0, tzinfo=UTC)
OLD, NEW = "com.acme.tech@3.4.0+340", "com.acme.tech@3.4.1+341"
CHECKLIST, JOBS, PARTS = ("IndexError|tech_app.checklist.view.render", "KeyError|tech_app.jobs.repository.load",
                          "ValueError|tech_app.parts.order.order")


# ---------------------------------------------------------------- hand-made raw crashes

class RawLayer:
    """Writes raw crash and event Parquet files as ingestion writes them (the columns the rules read)."""

    def __init__(self) -> None:
        self.files = 0
        self.events = 0

    def crashes(self, rows: list[tuple[str, str, datetime]] | list[tuple[str, str, datetime, str]]) -> None:
        """(release, "Type|module.function", received time[, session id]) per crash."""
        values = []
        for n, row in enumerate(rows):
            release, group, at = row[:3]
            session = row[3] if len(row) > 3 else f"s-{self.files}-{n}"
            exception_type, frame = group.split("|")
            values.append((f"e{self.files}-{n}", at - timedelta(seconds=30), at, release,
                           json.dumps({"session_id": session}), exception_type, frame, n))
        self._write("crashes", """
            select v[1]::VARCHAR as event_id, v[2]::TIMESTAMPTZ as occurred_at, v[3]::TIMESTAMPTZ as received_at,
                   v[4]::VARCHAR as release, v[5]::VARCHAR as tags, v[6]::VARCHAR as exception_type,
                   'boom'::VARCHAR as exception_value, v[7]::VARCHAR as crash_frame, null::VARCHAR as message,
                   null::VARCHAR[] as fingerprint, 'landing/test'::VARCHAR as _landing_path, v[8]::BIGINT as _line_no
            from (select unnest($rows) as v)""", values)

    def sessions(self, release: str, ids: list[str], at: datetime) -> None:
        namespace, rest = release.split("@")
        version, build = rest.split("+")
        values = [(s, namespace, version, build, at + timedelta(seconds=i)) for i, s in enumerate(ids)]
        self._write("events", """
            select v[1]::VARCHAR as context_session_id, v[2]::VARCHAR as context_app_namespace,
                   v[3]::VARCHAR as context_app_version, v[4]::VARCHAR as context_app_build,
                   v[5]::TIMESTAMPTZ as received_at
            from (select unnest($rows) as v)""", values)

    def _write(self, source: str, select: str, values: list[tuple]) -> None:
        self.files += 1
        target = paths.raw_dir() / source / "dt=2026-11-02" / f"test-{self.files:04d}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        con = connect()
        try:
            rows = [[str(v) for v in row] for row in values]
            con.execute(f"copy ({select}) to '{target}' (format parquet)", {"rows": rows})
        finally:
            con.close()


@pytest.fixture
def raw(data_root) -> RawLayer:
    return RawLayer()


def alerts(rule: str | None = None) -> list[dict]:
    with alert_store() as con:
        cur = con.execute("select * from alerts where rule = coalesce(?, rule) order by first_fired_at, subject", [rule])
        return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]


def messages(kind: str | None = None) -> list[dict]:
    with alert_store() as con:
        rows = con.execute("select payload from alert_deliveries where kind = coalesce(?, kind) "
                           "order by created_at, delivery_id", [kind]).fetchall()
    return [json.loads(p)["pitwall"] for (p,) in rows]


def steady(release: str, group: str, start: datetime, hours: float, every_minutes: float) -> list[tuple]:
    n = int(hours * 60 // every_minutes)
    return [(release, group, start + timedelta(minutes=i * every_minutes)) for i in range(n)]


def burst(release: str, group: str, at: datetime, n: int, seconds: int = 60) -> list[tuple]:
    return [(release, group, at + timedelta(seconds=i * seconds)) for i in range(n)]


def test_crash_spike_fires_on_a_burst_over_the_baseline_and_resolves(raw):
    spec = rule_params("crash_spike")
    # a day of one crash an hour: 0.25 expected in 15 minutes
    raw.crashes(steady(NEW, JOBS, T0, 24, 60))
    assert evaluate_crash_rules(rules=("crash_spike",)).findings == 0
    burst_at = T0 + timedelta(hours=24, minutes=5)
    raw.crashes(burst(NEW, CHECKLIST, burst_at, spec["min_count"]))
    raw.crashes(burst(OLD, CHECKLIST, burst_at, spec["min_count"] - 1))  # under the minimum count
    result = evaluate_crash_rules(rules=("crash_spike",))
    (alert,) = alerts("crash_spike")
    assert (alert["subject"], alert["release"], alert["group_key"], alert["status"]) == (NEW, NEW, CHECKLIST, "firing")
    assert alert["value"] == spec["min_count"] and alert["threshold"] == spec["min_count"]
    assert len(result.raised) == 1 and [m["rule"] for m in messages("fire")] == ["crash_spike"]
    # time moves on (a later crash): the window no longer holds the burst, the alert resolves with a message
    raw.crashes([(OLD, JOBS, burst_at + timedelta(minutes=40))])
    evaluate_crash_rules(rules=("crash_spike",))
    (alert,) = alerts("crash_spike")
    assert alert["status"] == "resolved" and alert["resolved_at"] <= burst_at + timedelta(minutes=25)
    assert [m["kind"] for m in messages()] == ["fire", "resolve"]
    # the same spike again within the cooldown after the resolve: reopened quietly, no new message
    again = burst_at + timedelta(minutes=45)
    raw.crashes(burst(NEW, CHECKLIST, again, spec["min_count"]))
    assert evaluate_crash_rules(rules=("crash_spike",)).raised == []
    assert [a["status"] for a in alerts("crash_spike")] == ["firing"] and len(messages()) == 2


def test_crash_spike_needs_the_factor_over_a_busy_baseline(raw):
    spec = rule_params("crash_spike")
    # a busy release: two crashes a minute all day, 30 expected in 15 minutes; a burst adding the minimum count
    # on top is far from the factor
    raw.crashes(steady(NEW, JOBS, T0, 24, 0.5))
    raw.crashes(burst(NEW, CHECKLIST, T0 + timedelta(hours=23, minutes=50), spec["min_count"] * 2, seconds=20))
    evaluate_crash_rules(rules=("crash_spike",))
    assert alerts() == []


def test_new_crash_group_in_the_newest_release_only(raw):
    spec = rule_params("new_crash_group")
    watched = timedelta(hours=spec["min_history_hours"] + 1)
    raw.crashes(steady(OLD, JOBS, T0, watched.total_seconds() / 3600, 120))
    ship = T0 + watched
    raw.crashes([(NEW, JOBS, ship), (OLD, PARTS, ship + timedelta(minutes=5)),  # a new group, but not in the newest
                 (NEW, CHECKLIST, ship + timedelta(minutes=10))])
    evaluate_crash_rules(rules=("new_crash_group",))
    (alert,) = alerts()
    assert (alert["rule"], alert["release"], alert["group_key"], alert["status"]) == (
        "new_crash_group", NEW, CHECKLIST, "firing")
    # no longer new after hold_hours: resolved when later crashes move time on
    raw.crashes([(NEW, JOBS, ship + timedelta(hours=spec["hold_hours"], minutes=30))])
    evaluate_crash_rules(rules=("new_crash_group",))
    assert [a["status"] for a in alerts()] == ["resolved"]


def test_no_group_is_new_before_the_app_was_watched_long_enough(raw):
    raw.crashes([(OLD, JOBS, T0), (NEW, CHECKLIST, T0 + timedelta(hours=2))])
    evaluate_crash_rules(rules=("new_crash_group",))
    assert alerts() == []


def test_crash_group_regression_after_days_of_absence(raw):
    spec = rule_params("crash_group_regression")
    absent = timedelta(days=spec["absent_days"])
    raw.crashes([(OLD, CHECKLIST, T0), (OLD, PARTS, T0 + timedelta(hours=1))])
    raw.crashes(steady(OLD, JOBS, T0, absent.total_seconds() / 3600 + 12, 240))  # time keeps moving
    raw.crashes([(NEW, PARTS, T0 + absent - timedelta(hours=1)),                  # back too soon: not regressed
                 (NEW, CHECKLIST, T0 + absent + timedelta(hours=2))])
    evaluate_crash_rules(rules=("crash_group_regression",))
    (alert,) = alerts()
    assert (alert["rule"], alert["subject"], alert["release"], alert["status"]) == (
        "crash_group_regression", CHECKLIST, NEW, "firing")
    assert alert["value"] >= spec["absent_days"]
    raw.crashes([(OLD, JOBS, T0 + absent + timedelta(hours=2 + spec["hold_hours"] + 1))])
    evaluate_crash_rules(rules=("crash_group_regression",))
    assert [a["status"] for a in alerts()] == ["resolved"]


def test_crash_free_sessions_under_the_threshold_with_enough_sessions(raw):
    spec = rule_params("crash_free_sessions")
    n = spec["min_sessions"] + 20
    crashed = int(n * (1 - spec["threshold"])) + 3        # just under the threshold
    at = T0 + timedelta(hours=1)
    raw.sessions(NEW, [f"new-{i}" for i in range(n)], at)
    raw.sessions(OLD, [f"old-{i}" for i in range(n)], at)
    raw.sessions(NEW.replace("tech", "customer"), [f"few-{i}" for i in range(spec["min_sessions"] - 1)], at)
    raw.crashes([(NEW, CHECKLIST, at + timedelta(minutes=10 + i), f"new-{i}") for i in range(crashed)]
                + [(OLD, CHECKLIST, at + timedelta(minutes=10 + i), f"old-{i}") for i in range(2)]
                + [(NEW.replace("tech", "customer"), CHECKLIST, at + timedelta(minutes=10 + i), f"few-{i}")
                   for i in range(crashed)])
    evaluate_crash_rules(rules=("crash_free_sessions",))
    (alert,) = alerts()
    assert (alert["rule"], alert["subject"]) == ("crash_free_sessions", NEW)
    assert alert["value"] == pytest.approx(1 - crashed / n) and alert["value"] < spec["threshold"]
    # a day later the window holds none of those sessions: resolved
    raw.crashes([(OLD, JOBS, at + timedelta(hours=spec["window_hours"] + 1))])
    evaluate_crash_rules(rules=("crash_free_sessions",))
    assert [a["status"] for a in alerts()] == ["resolved"]


def test_an_evaluation_without_new_crashes_changes_nothing(raw):
    assert evaluate_crash_rules().message == "crash rules: no crashes yet"
    raw.crashes(steady(NEW, JOBS, T0, 2, 30))
    first = evaluate_crash_rules()
    again = evaluate_crash_rules()
    assert first.ticks > 0 and again.ticks == 0 and alerts() == []


# ---------------------------------------------------------------- a simulated world, day by day

@pytest.fixture(scope="module")
def simulated_landing(tmp_path_factory) -> tuple[Path, dict]:
    from simulator.generate import generate

    landing = tmp_path_factory.mktemp("crash_world") / "landing"
    generate(landing, customers=300, technicians=40, days=14, seed=7, progress=False)
    return landing, json.loads((landing / "truth.json").read_text())


def feed_day(landing: Path, day: str, sources=("crashes", "events")) -> None:
    for source in sources:
        shutil.copytree(landing / source / f"dt={day}", paths.landing_dir() / source / f"dt={day}")


@pytest.mark.slow  # fourteen days ingested and evaluated one by one; the rules' logic is tested above on small data
def test_the_planted_spike_alerts_once_and_a_normal_day_never(data_root, simulated_landing):
    landing, truth = simulated_landing
    spike = truth["crashes"]["spike"]
    burst_start = datetime.fromisoformat(spike["burst"]["start"].replace("Z", "+00:00"))
    burst_end = datetime.fromisoformat(spike["burst"]["end"].replace("Z", "+00:00"))
    days = sorted(p.name.removeprefix("dt=") for p in (landing / "crashes").iterdir())
    fired_on: dict[str, list[tuple]] = {}
    for day in days:
        feed_day(landing, day)
        assert new_landing_files("crashes")
        outcome = run_crash_alerting(deliver=False)
        assert not new_landing_files("crashes")
        with alert_store() as con:
            fired_on[day] = con.execute(
                "select rule, subject, release, group_key, first_fired_at from alerts "
                "where cast(first_fired_at as date) = ?::DATE order by first_fired_at", [day]).fetchall()
        assert outcome.evaluation.now.date().isoformat() == day
    assert {day: rows for day, rows in fired_on.items() if rows and day != spike["day"]} == {}, "a normal day alerted"
    spikes = [r for r in fired_on[spike["day"]] if r[0] == "crash_spike"]
    assert len(spikes) == 1
    _, subject, release, group_key, first_fired_at = spikes[0]
    assert (subject, release, group_key) == (spike["release"], spike["release"], spike["group_key"])
    assert burst_start < first_fired_at <= burst_end
    (alert,) = alerts("crash_spike")
    assert alert["status"] == "resolved" and alert["resolved_at"] <= burst_end + timedelta(minutes=30)
    assert [m["kind"] for m in messages() if m["rule"] == "crash_spike"] == ["fire", "resolve"]


# ---------------------------------------------------------------- end to end under the Dagster daemon

def _stop(process: subprocess.Popen) -> None:
    """Stop the daemon and the run workers it started (its own process group, started by this test)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.mark.slow
def test_end_to_end_a_landing_crash_file_reaches_the_webhook_within_two_minutes(
        data_root, simulated_landing, dbt_manifest, tmp_path, record_property):
    landing, truth = simulated_landing
    spike = truth["crashes"]["spike"]
    # the days before the spike are already in and evaluated, as on a running system
    for day in sorted(p.name.removeprefix("dt=") for p in (landing / "crashes").iterdir()):
        if day >= spike["day"]:
            break
        feed_day(landing, day)
    run_crash_alerting(deliver=False)
    assert alerts("crash_spike") == []

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "orchestration" / "instance" / "dagster.yaml", home / "dagster.yaml")
    _create_the_instance_storage(home)
    with WebhookReceiver() as hook:
        env = {**os.environ, "DAGSTER_HOME": str(home), "PITWALL_DATA_DIR": str(data_root),
               "PITWALL_ALERT_WEBHOOK_URL": hook.url}
        log = (tmp_path / "daemon.log").open("w")
        daemon = subprocess.Popen([str(Path(sys.executable).parent / "dagster-daemon"), "run",
                                   "-m", "orchestration.definitions"],
                                  cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            _wait_for_the_sensor_daemon(home, daemon)
            # the spike day's crash file lands the way a collector writes one: a hidden name, then a rename
            target = paths.landing_dir() / "crashes" / f"dt={spike['day']}"
            target.mkdir(parents=True)
            for source in sorted((landing / "crashes" / f"dt={spike['day']}").iterdir()):
                shutil.copy(source, target / f".{source.name}.tmp")
            landed = time.time()
            for tmp in sorted(target.iterdir()):
                os.replace(tmp, target / tmp.name.removeprefix(".").removesuffix(".tmp"))
            deadline = landed + 180
            while time.time() < deadline and not any(b["pitwall"]["rule"] == "crash_spike" for b in hook.received):
                assert daemon.poll() is None, (tmp_path / "daemon.log").read_text()[-3000:]
                time.sleep(0.2)
            arrivals = [(b, t) for b, t in zip(hook.received, hook.arrivals) if b["pitwall"]["rule"] == "crash_spike"]
            _wait_for_runs_to_finish(home)  # stopping the daemon under a run would fail it
        finally:
            _stop(daemon)
            log.close()
    assert arrivals, (tmp_path / "daemon.log").read_text()[-5000:]
    body, arrived = arrivals[0]
    latency = arrived - landed
    print(f"\ncrash file landed -> webhook received the crash_spike alert: {latency:.1f} s")
    record_property("crash_alert_latency_seconds", round(latency, 1))
    assert latency < 120
    assert body["pitwall"]["kind"] == "fire" and body["pitwall"]["release"] == spike["release"]
    assert body["pitwall"]["group_key"] == spike["group_key"] and spike["release"] in body["text"]
    assert len([b for b in hook.received if b["pitwall"]["rule"] == "crash_spike" and b["pitwall"]["kind"] == "fire"]) == 1


def _create_the_instance_storage(home: Path) -> None:
    """Create the instance's sqlite storage before any process starts: the daemon and its code server opening a
    fresh DAGSTER_HOME at once both stamp its schema version (alembic then finds two heads and fails)."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        instance.get_runs(limit=1)
        instance.get_daemon_heartbeats()


def _wait_for_runs_to_finish(home: Path, timeout: float = 60) -> None:
    import dagster as dg

    from orchestration.alerts.definitions import IN_FLIGHT

    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.time() + timeout
        while time.time() < deadline and instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT), limit=1):
            time.sleep(0.5)
        runs = instance.get_runs(filters=dg.RunsFilter(job_name="crash_alerting"))
        assert runs and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs), [r.status for r in runs]


def _wait_for_the_sensor_daemon(home: Path, daemon: subprocess.Popen, timeout: float = 90) -> None:
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert daemon.poll() is None, "dagster-daemon exited"
            if "SENSOR" in instance.get_daemon_heartbeats():
                return
            time.sleep(0.5)
    raise TimeoutError("the sensor daemon did not start")


def test_publishing_copies_the_alerts_beside_the_warehouse(raw):
    from orchestration.publish.publish import stage_publication

    warehouse = connect(paths.warehouse_path())
    warehouse.execute("create table mart_example as select 1 as x")
    warehouse.close()
    raw.crashes(steady(NEW, JOBS, T0, 3, 60) + burst(NEW, CHECKLIST, T0 + timedelta(hours=3), 5))
    evaluate_crash_rules(rules=("crash_spike",))
    published = stage_publication()
    assert published.tables["alerts"] == 1 and published.tables["alert_deliveries"] == 1
    assert published.tables["mart_example"] == 1
    con = connect(published.path, read_only=True)
    try:
        assert con.execute("select rule, release, group_key from alerts").fetchall() == [("crash_spike", NEW, CHECKLIST)]
    finally:
        con.close()
