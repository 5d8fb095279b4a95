"""End to end on a simulated world, through the same command `make demo` runs: the planted truths in
truth.json that the raw layer and staging can show are recovered."""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from datetime import datetime

import duckdb
import pytest
from mlflow import MlflowClient

from conftest import ROOT, subprocess_env

pytestmark = pytest.mark.slow


# Landing folders of the simulator → raw source names of the ingestion.
SOURCE_OF_FOLDER = {"events": "events", "crashes": "crashes", "traces": "spans", "telemetry": "telemetry"}


def source_name(folder: str) -> str:
    return SOURCE_OF_FOLDER.get(folder, folder.removeprefix("ops/"))


def test_every_planted_bad_record_is_quarantined_with_its_reason(world, con):
    _, truth = world
    planted = sorted((p["path"], p["line_no"], p["record_index"], p["reason_code"]) for p in truth["malformed"]["planted"])
    got = sorted(con.execute("select landing_path, line_no, record_index, reason_code from quarantine").fetchall())
    assert got == planted
    ledger = {s: (read, loaded, quarantined) for s, read, loaded, quarantined in con.execute(
        "select source, sum(records_read), sum(records_loaded), sum(records_quarantined) from ingestion_ledger group by all"
    ).fetchall()}
    for folder, rec in truth["records"].items():
        assert ledger[source_name(folder)] == (rec["records_total"], rec["records_good"], rec["records_bad"]), folder
    reasons = Counter(dict(((s, r), n) for s, r, n in con.execute(
        "select source, reason_code, count(*) from quarantine group by all").fetchall()))
    expected = Counter({(source_name(f), r): n for f, rec in truth["records"].items() for r, n in rec["bad_by_reason"].items()})
    assert reasons == expected
    assert con.execute("select count(*) from quarantine where reason is null or reason = ''").fetchall()[0] == (0,)


def test_duplicates_are_removed_and_late_events_kept(world, con):
    _, truth = world
    events = truth["events"]
    assert con.execute("select sum(records_loaded) from ingestion_ledger where source = 'events'").fetchall()[0] == (
        events["lines_clean"],)
    assert con.execute("select count(*), count(distinct message_id) from stg_events").fetchall()[0] == (
        events["distinct_message_ids"], events["distinct_message_ids"])
    by_event = dict(con.execute("select event_name, count(*) from stg_events where event_type = 'track' group by all").fetchall())
    assert by_event == events["by_event"]
    (later,) = con.execute("select count(*) from stg_events where dt > cast(occurred_at as date)").fetchall()[0]
    assert later >= truth["late_events"]["landing_in_later_dt"]


def test_clock_skew_is_corrected(world, con):
    _, truth = world
    sample = {s["messageId"]: s for s in truth["clock_skew"]["sample"]}
    assert sample, "the simulator planted no skewed devices"
    rows = con.execute(
        "select message_id, occurred_at, device_timestamp from stg_events where message_id in (select unnest(?))",
        [list(sample)]).fetchall()
    assert len(rows) == len(sample)
    for message_id, occurred_at, device_timestamp in rows:
        true_time = datetime.fromisoformat(sample[message_id]["true_time"].replace("Z", "+00:00"))
        assert abs((occurred_at - true_time).total_seconds()) < 1, message_id
        offset_h = (device_timestamp - true_time).total_seconds() / 3600
        assert offset_h == pytest.approx(sample[message_id]["offset_hours"], abs=0.01)


def test_crash_spike_group_release_and_day_are_recovered(world, con):
    _, truth = world
    spike = truth["crashes"]["spike"]
    top = con.execute("""
        select exception_type || '|' || crash_frame, release, cast(occurred_at as date)::VARCHAR, count(*) as n
        from stg_crashes group by all order by n desc limit 2""").fetchall()
    assert top[0][:3] == (spike["group_key"], spike["release"], spike["day"])
    assert top[0][3] == spike["count_on_day"]
    other_days = [n for (n,) in con.execute(
        "select count(*) from stg_crashes where exception_type || '|' || crash_frame = ? and release = ? "
        "and cast(occurred_at as date)::VARCHAR <> ? group by cast(occurred_at as date)",
        [spike["group_key"], spike["release"], spike["day"]]).fetchall()]
    assert top[0][3] > 3 * sum(other_days) / max(len(other_days), 1)
    by_group = {(g, r): n for g, r, n in con.execute(
        "select exception_type || '|' || crash_frame, release, count(*) from stg_crashes group by all").fetchall()}
    expected = {(g, r): n for g, rel in truth["crashes"]["counts_by_group_release"].items() for r, n in rel.items()}
    assert by_group == expected
    (groups,) = con.execute("select count(distinct group_id) from stg_crashes").fetchall()[0]
    assert groups == len(truth["crashes"]["counts_by_group_release"])


def test_client_latency_by_route_and_version_matches_the_spans_written(world, con):
    _, truth = world
    rows = con.execute("""
        select http_route, app_version, count(*), quantile_cont(duration_ms, 0.5), quantile_cont(duration_ms, 0.95)
        from stg_spans where kind = 'client' and http_route is not null group by all""").fetchall()
    got = {(r, v): (n, p50, p95) for r, v, n, p50, p95 in rows}
    want = {(r, v): (s["n"], s["p50_ms"], s["p95_ms"])
            for r, by_v in truth["latency"]["client_ms_by_route_version"].items() for v, s in by_v.items()}
    assert got.keys() == want.keys()
    for key, (n, p50, p95) in want.items():
        assert got[key][0] == n, key
        assert got[key][1] == pytest.approx(p50, abs=1e-3) and got[key][2] == pytest.approx(p95, abs=1e-3), key
    reg = truth["latency"]["regression"]
    route, version = reg["route"], reg["release"].split("@")[1].split("+")[0]
    before = max(s["p95_ms"] for v, s in truth["latency"]["client_ms_by_route_version"][route].items() if v != version and s["n"] >= 20)
    assert got[(route, version)][2] > 1.5 * before


def test_sessions_per_release_and_crashed_sessions(world, con):
    _, truth = world
    opened = dict(con.execute("select release, count(*) from fct_sessions where app_opens > 0 group by all").fetchall())
    assert opened == truth["events"]["sessions_with_app_opened_by_release"]
    event_sessions = {s for (s,) in con.execute("select distinct session_id from stg_events").fetchall()}
    crash_sessions = {s for (s,) in con.execute("select distinct session_id from stg_crashes").fetchall()}
    crashed = {s for (s,) in con.execute("select session_id from fct_sessions where crashed").fetchall()}
    assert crashed == event_sessions & crash_sessions and crashed
    assert con.execute("select count(*), count(distinct session_id) from fct_sessions").fetchall()[0] == (
        len(event_sessions), len(event_sessions))


def test_release_health_shows_the_crash_spike_release_least_crash_free(world, con):
    _, truth = world
    spike = truth["crashes"]["spike"]
    by_release = con.execute("""
        select release, 1 - sum(crashed_sessions) / sum(sessions) as crash_free
        from mart_release_health where day = cast(? as date) group by all order by crash_free""",
        [spike["day"]]).fetchall()
    assert by_release[0][0] == spike["release"] and by_release[0][1] < by_release[1][1]
    # Every session and every crashed session is counted once, in its release and day.
    assert con.execute("select sum(sessions), sum(crashed_sessions) from mart_release_health").fetchall()[0] == \
        con.execute("select count(*), count_if(crashed) from fct_sessions").fetchall()[0]
    # Every user of an app that day runs some release (shares add up to at least 1; more when a user
    # upgraded during the day), and a release that all of them ran has adoption 1.
    short = con.execute("""select day, app_namespace, platform, sum(adoption_rate) from mart_release_health
                           group by all having sum(adoption_rate) < 1 - 1e-9""").fetchall()
    assert short == []
    users = dict(((d, a, p), n) for d, a, p, n in con.execute("""
        select cast(started_at as date), app_namespace, platform, count(distinct coalesce(user_id, anonymous_id, device_id))
        from fct_sessions group by all""").fetchall())
    for d, a, p, r, n, rate in con.execute(
            "select day, app_namespace, platform, release, users, adoption_rate from mart_release_health").fetchall():
        assert rate == pytest.approx(n / users[(d, a, p)]), (d, r)


def test_api_latency_mart_shows_the_regressed_route_and_matches_numpy(world, con):
    import numpy as np

    _, truth = world
    reg = truth["latency"]["regression"]
    daily = con.execute("""
        select app_version, median(p95_ms) from mart_api_latency_daily
        where route = ? and method = ? and requests >= 5 group by all""", [reg["route"], reg["method"]]).fetchall()
    p95 = dict(daily)
    others = [v for k, v in p95.items() if k != reg["app_version"]]
    assert others and p95[reg["app_version"]] > 1.5 * max(others)

    # The busiest group, recomputed from the spans with numpy's (linear) percentiles.
    day, route, method, version, platform, n, p50, p90, p95_, p99, errors = con.execute("""
        select day, route, method, app_version, platform, requests, p50_ms, p90_ms, p95_ms, p99_ms, errors
        from mart_api_latency_daily order by requests desc, route limit 1""").fetchall()[0]
    rows = con.execute("""
        select duration_ms, is_error from stg_spans
        where kind = 'client' and cast(started_at as date) = ? and http_route = ? and http_method = ?
          and app_version = ? and platform = ?""", [day, route, method, version, platform]).fetchall()
    durations = np.array([d for d, _ in rows])
    assert len(rows) == n and sum(e for _, e in rows) == errors
    assert [p50, p90, p95_, p99] == pytest.approx(list(np.percentile(durations, [50, 90, 95, 99])), abs=1e-9)
    # Server time never exceeds the client's: the server span sits inside the client span.
    assert con.execute("select count(*) from mart_api_latency_daily where mean_overhead_ms < 0").fetchall()[0] == (0,)


def test_crash_groups_mart_counts_events_and_releases_per_group(world, con):
    _, truth = world
    got = {(t + "|" + f): (n, r) for t, f, n, r in con.execute(
        "select exception_type, crash_frame, events, releases_affected from mart_crash_groups").fetchall()}
    want = {g: (sum(by_release.values()), len(by_release)) for g, by_release in truth["crashes"]["counts_by_group_release"].items()}
    assert got == want
    # The simulator plants no group that is new in the latest release or came back after two releases away.
    assert con.execute("select count_if(new_in_latest_release), count_if(regressed) from mart_crash_groups").fetchall()[0] == (0, 0)


def test_engagement_and_retention_match_a_recount_from_sessions(world, con):
    from collections import defaultdict
    from datetime import timedelta

    active = defaultdict(set)  # (app, platform, role, day) -> users
    for user, app, platform, role, day in con.execute("""
            select coalesce(user_id, anonymous_id, device_id), app_namespace, platform, role, cast(started_at as date)
            from fct_sessions""").fetchall():
        active[(app, platform, role, day)].add(user)
    rows = con.execute("select app_namespace, platform, role, day, dau, wau, mau from mart_engagement_daily").fetchall()
    assert len(rows) == len(active)
    for app, platform, role, day, dau, wau, mau in rows:
        def users(days: int) -> set:
            return set().union(*(active.get((app, platform, role, day - timedelta(d)), set()) for d in range(days)))
        assert (dau, wau, mau) == (len(users(1)), len(users(7)), len(users(30))), (app, platform, role, day)

    first_week = {}
    weeks = defaultdict(set)
    for (app, platform, role, day), users in active.items():
        monday = day - timedelta(days=day.weekday())
        for u in users:
            key = (app, role, u)
            first_week[key] = min(first_week.get(key, monday), monday)
            weeks[key].add(monday)
    cohorts = defaultdict(lambda: defaultdict(int))
    for key, first in first_week.items():
        for w in weeks[key]:
            cohorts[(key[0], key[1], first)][(w - first).days // 7] += 1
    got = {(a, r, c, n): (size, k) for c, a, r, n, size, k in con.execute(
        "select cohort_week, app_namespace, role, week_number, cohort_users, active_users from mart_retention_weekly").fetchall()}
    want = {(a, r, c, n): (by_n[0], k) for (a, r, c), by_n in cohorts.items() for n, k in by_n.items()}
    assert got == want


def test_make_demo_ends_with_a_short_report_of_what_it_built(world, con):
    """The world is built by `make demo` itself; its last step, the report, says in one screen what was loaded
    (planted bad records marked as planted), the model or why the rules fallback serves, the serving tables,
    and where to look next; every figure agrees with the data."""
    root, truth = world
    report = (root / "demo-report.txt").read_text()
    files = con.execute("select count(distinct landing_path) from ingestion_ledger").fetchall()[0][0]
    assert files > 0 and f"Ledger: {files} landing files, invariant holds" in report
    (quarantined,) = con.execute("select count(*) from quarantine").fetchall()[0]
    planted = truth["malformed"]["planted"]
    # every planted record is quarantined (test_ingestion checks each one), and nothing else is
    assert f"Quarantined: {quarantined:,} records, of which {len(planted):,} were planted by the simulator" in report
    # five weeks train a champion: the one the MLflow registry holds, and the serving table is ranked by it
    store = f"sqlite:///{root / 'mlflow' / 'mlflow.db'}"  # and its registry, not one another test set
    champion = MlflowClient(tracking_uri=store, registry_uri=store).get_model_version_by_alias("pitwall-nba", "champion")
    assert f"pitwall-nba version {champion.version} → @champion" in report
    assert "Recommendations by policy: model" in report
    with duckdb.connect() as parquet:
        for file in sorted((root / "published" / "serving").glob("*.parquet")):
            (rows,) = parquet.execute("select count(*) from read_parquet(?)", [str(file)]).fetchall()[0]
            assert re.search(rf"\b{file.stem} +{rows:,} rows", report), file.stem
    for command in ("make dashboards", "make dagster", "make mlflow"):
        assert command in report
    assert "Warehouse relations" not in report and len(report.splitlines()) < 70  # the full list is behind a flag

    listed = subprocess.run([sys.executable, "-m", "orchestration.report", "--relations"], cwd=ROOT,
                            env={**subprocess_env(), "PITWALL_DATA_DIR": str(root)}, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr[-2000:]
    (events,) = con.execute("select count(*) from stg_events").fetchall()[0]
    assert re.search(rf"main\.stg_events +{events:,}\n", listed.stdout)
