"""The Trace Explorer: the critical path on hand-made span trees (against a brute-force computation of the
same definition), trace lookups by id, session, device and user with bound parameters (hostile input finds
nothing and raises nothing), and the page itself on the simulated world (AppTest)."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from dashboards import queries
from dashboards.queries import Filters
from dashboards.traces import Segment, Span, critical_path, critical_time, find_root, waterfall_order

# --- the critical path ---------------------------------------------------------------------------

def _chain_key(chain):
    return tuple((s.end, -s.start) for s in chain)


def brute_force_critical_path(spans: list[Span]) -> list[Segment]:
    """The same definition computed another way: for each parent, try every set of its (clipped) children
    that run one after another and keep the set whose end times, latest first, are greatest (the last
    thing the parent waited for, then the last thing before that, ...); then, instant by instant, blame
    the deepest span whose chosen child does not cover that instant."""
    ids = {s.span_id for s in spans}
    root = next(s for s in spans if not s.parent_span_id or s.parent_span_id not in ids)
    children = {s.span_id: [c for c in spans if c.parent_span_id == s.span_id] for s in spans}

    def chosen_children(span_id: str, start: float, end: float) -> list[Span]:
        clipped = [Span(c.span_id, c.parent_span_id, max(c.start, start), min(c.end, end)) for c in children[span_id]]
        clipped = [c for c in clipped if c.end > c.start]
        best: tuple = ()
        best_key: tuple = ()
        for size in range(1, len(clipped) + 1):
            for combo in itertools.combinations(clipped, size):
                chain = sorted(combo, key=lambda s: -s.end)
                if all(later.end <= earlier.start for earlier, later in zip(chain, chain[1:])):
                    if _chain_key(chain) > best_key:
                        best, best_key = tuple(chain), _chain_key(chain)
        return list(best)

    def owner(t: float) -> str:
        span_id, start, end = root.span_id, root.start, root.end
        while True:
            inside = [c for c in chosen_children(span_id, start, end) if c.start < t < c.end]
            if not inside:
                return span_id
            span_id, start, end = inside[0].span_id, inside[0].start, inside[0].end

    bounds = sorted({root.start, root.end} | {x for s in spans for x in (s.start, s.end)
                                              if root.start < x < root.end})
    segments: list[Segment] = []
    for a, b in zip(bounds, bounds[1:]):
        who = owner((a + b) / 2)
        if segments and segments[-1].span_id == who:
            segments[-1] = Segment(who, segments[-1].start, b)
        else:
            segments.append(Segment(who, a, b))
    return segments


def tree(*rows) -> list[Span]:
    return [Span(span_id, parent, start, end) for span_id, parent, start, end in rows]


def path(spans):
    return [(s.span_id, s.start, s.end) for s in critical_path(spans)]


def test_sequential_children_are_all_on_the_path_with_the_parents_time_between():
    spans = tree(("root", None, 0, 100), ("a", "root", 10, 40), ("b", "root", 40, 70), ("c", "root", 75, 95))
    assert path(spans) == [("root", 0, 10), ("a", 10, 40), ("b", 40, 70), ("root", 70, 75), ("c", 75, 95),
                           ("root", 95, 100)]


def test_of_parallel_children_only_the_one_that_ends_last_is_critical():
    spans = tree(("root", None, 0, 100), ("fast", "root", 10, 50), ("slow", "root", 10, 90),
                 ("early", "root", 2, 8))
    assert path(spans) == [("root", 0, 2), ("early", 2, 8), ("root", 8, 10), ("slow", 10, 90), ("root", 90, 100)]


def test_a_child_overlapping_the_critical_child_is_skipped_for_one_that_ended_before_it_started():
    spans = tree(("root", None, 0, 100), ("last", "root", 50, 100), ("overlapping", "root", 30, 60),
                 ("before", "root", 10, 45))
    assert path(spans) == [("root", 0, 10), ("before", 10, 45), ("root", 45, 50), ("last", 50, 100)]


def test_nested_spans_the_path_descends_into_the_critical_child():
    spans = tree(("client", None, 0, 500), ("server", "client", 20, 480), ("auth", "server", 25, 30),
                 ("select", "server", 40, 200), ("update", "server", 210, 470), ("index", "update", 300, 460))
    assert path(spans) == [("client", 0, 20), ("server", 20, 25), ("auth", 25, 30), ("server", 30, 40),
                           ("select", 40, 200), ("server", 200, 210), ("update", 210, 300), ("index", 300, 460),
                           ("update", 460, 470), ("server", 470, 480), ("client", 480, 500)]
    assert critical_time(critical_path(spans)) == {"client": 40, "server": 35, "auth": 5, "select": 160,
                                                   "update": 100, "index": 160}


def test_a_gap_between_children_is_the_parents_own_time():
    spans = tree(("root", None, 0, 1000), ("a", "root", 0, 100), ("b", "root", 600, 1000))
    assert path(spans) == [("a", 0, 100), ("root", 100, 600), ("b", 600, 1000)]


def test_children_outside_their_parent_are_clipped_to_it():
    """A phone's clock and a server's disagree: the server span may seem to start before the request."""
    spans = tree(("client", None, 100, 200), ("server", "client", 90, 190), ("db", "server", 250, 300))
    assert path(spans) == [("server", 100, 190), ("client", 190, 200)]


def test_the_root_is_the_parentless_span_or_else_the_longest_orphan():
    assert find_root(tree(("a", "missing", 0, 10), ("b", "missing", 0, 50), ("c", "b", 5, 6))).span_id == "b"
    assert find_root(tree(("a", None, 0, 10), ("b", "missing", 0, 50))).span_id == "a"
    assert find_root([]) is None
    assert critical_path([]) == []


def test_the_path_tiles_the_root_and_agrees_with_the_brute_force_on_random_trees():
    rng = random.Random(7)
    for _ in range(300):
        spans = [Span("s0", None, 0.0, float(rng.randint(50, 400)))]
        for i in range(1, rng.randint(2, 9)):
            parent = rng.choice(spans)
            # children may stick out of their parent (clock skew) now and then
            start = rng.uniform(parent.start - 10, parent.end)
            spans.append(Span(f"s{i}", parent.span_id, start, start + rng.uniform(0.5, parent.end - parent.start + 10)))
        expected = brute_force_critical_path(spans)
        got = critical_path(spans)
        assert [(s.span_id, round(s.start, 9), round(s.end, 9)) for s in got] == \
               [(s.span_id, round(s.start, 9), round(s.end, 9)) for s in expected], spans
        assert got[0].start == 0.0 and got[-1].end == spans[0].end
        assert all(a.end == b.start for a, b in zip(got, got[1:]))


def test_waterfall_order_is_depth_first_by_start_with_orphans_after():
    spans = tree(("root", None, 0, 100), ("b", "root", 50, 60), ("a", "root", 10, 20), ("a1", "a", 11, 12),
                 ("orphan", "gone", 5, 6))
    assert [(s.span_id, depth) for s, depth in waterfall_order(spans)] == \
           [("root", 0), ("a", 1), ("a1", 2), ("b", 1), ("orphan", 0)]


# --- lookups with bound parameters ---------------------------------------------------------------

T0 = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
TRACE_A, TRACE_B, TRACE_C = "a" * 32, "b" * 32, "c" * 32
HOSTILE = ["' or 1=1 --", f"{TRACE_A}' or '1'='1", "'; drop table stg_spans; --", "%", "_", "*", "s1\0",
           'x" or "1"="1', "ü" * 5000, "s1 union select * from stg_spans", ")", "$value"]


@pytest.fixture(scope="module")
def spans_con():
    """A tiny warehouse: stg_spans with the columns the queries read, and the sessions that own them."""
    con = duckdb.connect()
    con.execute("""
        create table stg_spans (trace_id varchar, span_id varchar, parent_span_id varchar, service_name varchar,
            span_name varchar, kind varchar, started_at timestamptz, ended_at timestamptz, duration_ms double,
            is_error boolean, status_code varchar, status_message varchar, http_method varchar, http_route varchar,
            http_status_code integer, server_address varchar, db_system varchar, db_operation varchar,
            app_version varchar, platform varchar, session_id varchar, device_id varchar)
    """)
    rows = [
        # trace A: session s1 of user u1 on device d1; the server's database call failed
        (TRACE_A, "a1", None, "tech-app-ios", "POST /v1/jobs/{id}/complete", "client", 0, 500, "3.5.0", "ios", "s1", "d1", None, False),
        (TRACE_A, "a2", "a1", "mobile-api", "POST /v1/jobs/{id}/complete", "server", 20, 480, None, None, None, None, None, False),
        (TRACE_A, "a3", "a2", "mobile-api", "UPDATE service.jobs", "client", 40, 470, None, None, None, None, "postgresql", True),
        # trace B: another session of u1, same device, the next day
        (TRACE_B, "b1", None, "tech-app-ios", "GET /v1/jobs", "client", 86_400_000, 86_400_300, "3.5.0", "ios", "s2", "d1", None, False),
        # trace C: someone else
        (TRACE_C, "c1", None, "customer-app-android", "GET /v1/jobs", "client", 0, 200, "3.4.1", "android", "s3", "d2", None, False),
        (TRACE_C, "c2", "c1", "mobile-api", "GET /v1/jobs", "server", 10, 190, None, None, None, None, None, False),
        (TRACE_C, "c3", "c2", "mobile-api", "POST partner", "client", 20, 150, None, None, None, None, None, False),
    ]
    for trace, span, parent, service, name, kind, start, end, version, platform, session, device, db, error in rows:
        con.execute("insert into stg_spans values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'unset', null, null, ?, null, "
                    "null, ?, null, ?, ?, ?, ?)",
                    [trace, span, parent, service, name, kind, T0 + timedelta(milliseconds=start),
                     T0 + timedelta(milliseconds=end), end - start, error,
                     name.split(" ", 1)[1] if kind == "client" and version else None, db, version, platform, session,
                     device])
    con.execute("create table fct_sessions as select * from (values ('s1', 'u1'), ('s2', 'u1'), ('s3', 'u2')) "
                "as t(session_id, user_id)")
    yield con
    con.close()


WINDOW = Filters(start=date(2026, 3, 10), end=date(2026, 3, 11))


def test_a_trace_is_found_by_its_id_pasted_in_any_case_with_its_span_kinds(spans_con):
    spans = queries.trace_spans(spans_con, None, f"  {TRACE_A.upper()} ")
    assert spans["span_id"].to_list() == ["a1", "a2", "a3"]
    assert spans["category"].to_list() == ["app", "server", "database"]
    assert spans["is_error"].to_list() == [False, False, True]
    assert queries.trace_spans(spans_con, None, TRACE_C)["category"].to_list() == ["app", "server", "partner call"]


@pytest.mark.parametrize("by, value, expected", [
    ("session_id", "s1", [TRACE_A]),
    ("device_id", "d1", [TRACE_B, TRACE_A]),  # newest first
    ("user_id", "u1", [TRACE_B, TRACE_A]),
    ("user_id", "u2", [TRACE_C]),
    ("session_id", "nobody", []),
])
def test_traces_of_a_session_device_or_user(spans_con, by, value, expected):
    found = queries.traces_lookup(spans_con, WINDOW, by, value)
    assert found["trace_id"].to_list() == expected
    if expected:
        first = found.row(len(expected) - 1, named=True)  # trace A when listed
        if first["trace_id"] == TRACE_A:
            assert (first["spans"], first["errors"], first["duration_ms"]) == (3, 1, 500)
            assert first["route"] == "/v1/jobs/{id}/complete"


def test_the_date_range_limits_session_device_and_user_lookups(spans_con):
    one_day = Filters(start=date(2026, 3, 11), end=date(2026, 3, 11))
    assert queries.traces_lookup(spans_con, one_day, "user_id", "u1")["trace_id"].to_list() == [TRACE_B]


@pytest.mark.parametrize("value", HOSTILE)
def test_quotes_and_sql_in_lookups_find_nothing_and_raise_nothing(spans_con, value):
    for by in queries.TRACE_LOOKUPS:
        assert queries.traces_lookup(spans_con, WINDOW, by, value).is_empty()
    assert queries.trace_spans(spans_con, None, value).is_empty()
    assert spans_con.execute("select count(*) from stg_spans").fetchall()[0][0] == 7


def test_a_lookup_kind_that_is_not_offered_is_refused(spans_con):
    with pytest.raises(KeyError):
        queries.traces_lookup(spans_con, WINDOW, "1=1 or session_id", "s1")


# --- the page on the simulated world -------------------------------------------------------------

@pytest.mark.slow
def test_the_explorer_opens_the_trace_in_the_url_and_its_numbers_match_the_spans(world, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from conftest import ROOT
    from dashboards.formatting import milliseconds
    from pitwall.duck import connect

    root = world[0]
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    con = connect(root / "published" / "pitwall.duckdb", read_only=True)
    try:
        # an independent pick: the slowest failing request's trace, and its spans counted here
        trace_id, = con.execute("""
            select trace_id from stg_spans where kind = 'client' and app_version is not null and is_error
            order by duration_ms desc, trace_id limit 1""").fetchall()[0]
        spans, errors, millis = con.execute("""
            select count(*), count_if(is_error), date_diff('microsecond', min(started_at), max(ended_at)) / 1000
            from stg_spans where trace_id = ?""", [trace_id]).fetchall()[0]
        user_id, = con.execute("""
            select f.user_id from fct_sessions f join stg_spans s using (session_id)
            where s.trace_id = ? limit 1""", [trace_id]).fetchall()[0]
    finally:
        con.close()

    at = AppTest.from_file(str(ROOT / "dashboards" / "app.py"), default_timeout=60)
    at.run()  # the entrypoint first, as a browser does; then the link with its query parameter
    at.query_params["trace_id"] = trace_id
    at.switch_page("views/trace_explorer.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Spans"] == f"{spans:,}"
    assert metrics["Errors"] == f"{errors:,}" and errors >= 1
    assert metrics["Duration"] == milliseconds(millis)
    assert len(at.get("vega_lite_chart")) == 1  # the waterfall
    assert trace_id in at.caption[0].value and user_id in at.caption[0].value

    # the same user's traces: a list, and the newest one drawn
    at.selectbox(key="trace_lookup_by").set_value("user_id").run()
    at.text_input(key="trace_lookup_value").set_value(user_id).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.query_params["user_id"] in (user_id, [user_id])  # the URL now says what is shown
    assert int(next(m.value for m in at.metric if m.label == "Traces").replace(",", "")) >= 1
