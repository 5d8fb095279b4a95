"""The release gate on the simulated world: it halts (or rolls back) the release with the planted latency
regression, naming the planted route, and lets the other rollouts proceed; its evidence agrees with numbers
computed here from the spans and sessions; it is published for the backend; the Release Health page shows
the same decisions and links to the slow traces behind them.

The decision logic itself, edge by edge, is the dbt unit test in models/serving/release_gate.yml."""

from __future__ import annotations

import duckdb
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gate(con) -> list[dict]:
    cursor = con.execute("select * from release_gate order by app_namespace, platform")
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row)) for row in cursor.fetchall()]


def test_every_app_and_platform_has_its_newest_release_gated(con, gate, world):
    newest = con.execute("""
        select app_namespace, platform, arg_max(release, first_at) from (
            select app_namespace, platform, release, min(started_at) as first_at from fct_sessions
            where release is not null group by all)
        group by all order by all""").fetchall()
    assert [(g["app_namespace"], g["platform"], g["release"]) for g in gate] == [tuple(r) for r in newest]
    shipped = world[1]["run"]["release_ship_dates"]
    assert {g["app_version"] for g in gate} == {max(shipped, key=shipped.get)}


def test_the_planted_latency_regression_is_halted_with_its_route_as_evidence(gate, world):
    planted = world[1]["latency"]["regression"]
    bad = [g for g in gate if g["release"] == planted["release"]]
    assert {g["platform"] for g in bad} == {"ios", "android"}
    for row in bad:
        assert row["decision"] in ("halt", "rollback"), row
        assert row["latency_check"] in ("halt", "rollback")
        assert row["worst_route"] == f"{planted['method']} {planted['route']}"
        assert planted["route"] in row["reasons"]
        assert row["worst_route_p95_regression"] > row["p95_regression_halt_above"]
        # the planted 2.5× slower client calls show as a p95 between 1.5× and 3.5× the previous release's
        assert 1.5 < row["worst_route_p95_ms"] / row["worst_route_baseline_p95_ms"] < 3.5
        assert min(row["worst_route_requests"], row["worst_route_baseline_requests"]) >= row["min_requests"]


def test_the_other_rollouts_proceed(gate, world):
    planted = world[1]["latency"]["regression"]["release"]
    others = [g for g in gate if g["release"] != planted]
    assert others and all(g["decision"] == "proceed" and g["reasons"] is None for g in others), others
    assert all(g["crash_check"] == "pass" and g["latency_check"] == "pass" for g in others)


def test_the_evidence_agrees_with_the_spans_and_the_sessions(con, gate):
    for row in gate:
        sessions, crashed = con.execute("""
            select sum(sessions), sum(crashed_sessions) from mart_release_health
            where release = ? and platform = ?""", [row["release"], row["platform"]]).fetchall()[0]
        assert (row["sessions"], row["crashed_sessions"]) == (sessions, crashed)
        assert row["crash_free_sessions_rate"] == pytest.approx(1 - crashed / sessions)
        if not row["worst_route"]:
            continue
        method, route = row["worst_route"].split(" ", 1)
        # straight from the app's client spans, through the session that made each request
        for release, count, p95 in ((row["release"], row["worst_route_requests"], row["worst_route_p95_ms"]),
                                    (row["previous_release"], row["worst_route_baseline_requests"],
                                     row["worst_route_baseline_p95_ms"])):
            n, q = con.execute("""
                select count(*), quantile_cont(s.duration_ms, 0.95)
                from stg_spans s join fct_sessions f using (session_id)
                where s.kind = 'client' and s.http_route = ? and s.http_method = ? and f.release = ?
                  and f.platform = ?""", [route, method, release, row["platform"]]).fetchall()[0]
            assert (count, p95) == (n, pytest.approx(q))


def test_thresholds_come_from_the_seed(con, gate):
    rules = {(app, check, method, route): (halt, rollback, least) for app, check, method, route, halt, rollback, least
             in con.execute("select app_namespace, check_name, method, route, halt_threshold, rollback_threshold, "
                            "min_samples from release_gate_rules").fetchall()}
    for row in gate:
        assert (row["crash_free_halt_below"], row["crash_free_rollback_below"], row["min_sessions"]) == \
               rules[(row["app_namespace"], "crash_free_sessions", None, None)]
        method, route = row["worst_route"].split(" ", 1)
        assert (row["p95_regression_halt_above"], row["p95_regression_rollback_above"], row["min_requests"]) == \
               rules[(row["app_namespace"], "key_route_p95", method, route)]
        assert row["key_routes"] == sum(1 for key in rules if key[0] == row["app_namespace"]
                                        and key[1] == "key_route_p95")


def test_the_gate_is_published_as_parquet_for_the_backend(world, gate):
    parquet = world[0] / "published" / "serving" / "release_gate.parquet"
    rows = duckdb.sql(f"select app_namespace, platform, decision from read_parquet('{parquet}') "
                      "order by all").fetchall()
    assert rows == [(g["app_namespace"], g["platform"], g["decision"]) for g in gate]


def test_release_health_shows_the_gate_as_the_table_says_and_links_its_slow_traces(world, gate, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from pitwall.duck import connect

    monkeypatch.setenv("PITWALL_DATA_DIR", str(world[0]))
    at = AppTest.from_file(str(ROOT / "dashboards" / "app.py"), default_timeout=60)
    at.run()
    at.switch_page("views/release_health.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = {m.label: m.value for m in at.metric}
    for row in gate:
        assert shown[f"{row['app_namespace']} {row['platform']} {row['app_version']}"] == row["decision"]

    # every link goes to the Trace Explorer with a trace of the halted release's worst route
    links = [link.proto for link in at.get("page_link")]
    assert links and all(link.page == "traces" for link in links)
    trace_ids = [link.query_string.removeprefix("trace_id=") for link in links]
    stopped = {(g["release"], g["platform"], g["worst_route"]) for g in gate if g["decision"] in ("halt", "rollback")}
    con = connect(world[0] / "published" / "pitwall.duckdb", read_only=True)
    try:
        found = set(con.execute("""
            select f.release, f.platform, r.method || ' ' || r.route from fct_api_requests r
            join fct_sessions f using (session_id) where list_contains(?, r.trace_id)""", [trace_ids]).fetchall())
    finally:
        con.close()
    assert found == stopped
