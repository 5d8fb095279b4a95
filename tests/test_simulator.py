"""The simulator writes what it claims: deterministic bytes, spec-shaped records, and a truth.json
that an independent reading of the files confirms.

Everything here re-derives numbers from the landing files with its own small readers (nothing from
simulator.truth), on a tiny world so the module runs in a few seconds.
"""
from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import json
import zlib
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from simulator import generate

TINY = dict(customers=60, technicians=8, days=4, seed=11, events_per_file=400)
ONE_MIB = 1_048_576
KNOWN_TYPES = {"track", "screen", "page", "identify", "group", "alias"}


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("landing")
    generate(out, progress=False, **TINY)
    return out


@pytest.fixture(scope="module")
def clean_landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("clean")
    generate(out, progress=False, malformed=False, **TINY)
    return out


@pytest.fixture(scope="module")
def truth(landing) -> dict:
    return json.loads((landing / "truth.json").read_text())


# --- independent readers -------------------------------------------------------------------------

def parse_time(value) -> dt.datetime:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if not isinstance(value, str):
        raise ValueError(value)
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(value)
    return parsed


def read_lines(path: Path) -> tuple[list[bytes], bool]:
    """Lines of a gzip'd JSONL file; for a truncated stream, the complete lines plus the cut
    line, and True."""
    raw = path.read_bytes()
    d = zlib.decompressobj(wbits=31)
    data = d.decompress(raw)
    truncated = not d.eof
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines, truncated


def classify_event(raw: bytes) -> str | None:
    """The raw layer's checks for a Segment line, in its order; None when the line is good."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    if len(raw) > ONE_MIB:
        return "oversized_payload"
    try:
        e = json.loads(text)
    except ValueError:
        return "invalid_json"
    if not isinstance(e, dict):
        return "invalid_json"
    for name in ("messageId", "type", "receivedAt"):
        if e.get(name) is None:
            return "missing_field"
    if not isinstance(e["messageId"], str) or not isinstance(e["type"], str):
        return "wrong_type"
    device_ts = e.get("originalTimestamp", e.get("timestamp"))
    if device_ts is None or (e.get("userId") is None and e.get("anonymousId") is None):
        return "missing_field"
    if e["type"] == "track":
        if e.get("event") is None:
            return "missing_field"
        if not isinstance(e["event"], str):
            return "wrong_type"
    try:
        ts, received = parse_time(device_ts), parse_time(e["receivedAt"])
        sent = parse_time(e["sentAt"]) if e.get("sentAt") is not None else None
    except (ValueError, TypeError):
        return "invalid_timestamp"
    if e["type"] not in KNOWN_TYPES:
        return "unknown_event_type"
    occurred = received - (sent - ts) if sent else ts
    if occurred - received > dt.timedelta(hours=24):
        return "future_timestamp"
    return None


def classify_crash(raw: bytes) -> str | None:
    try:
        e = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "invalid_json"
    if not isinstance(e, dict):
        return "invalid_json"
    if e.get("event_id") is None or e.get("timestamp") is None:
        return "missing_field"
    if not isinstance(e["event_id"], str):
        return "wrong_type"
    try:
        parse_time(e["timestamp"])
    except (ValueError, TypeError):
        return "invalid_timestamp"
    return None


def spans_of(request: dict):
    for rs in request["resourceSpans"]:
        attrs = {a["key"]: next(iter(a["value"].values())) for a in rs["resource"]["attributes"]}
        for ss in rs["scopeSpans"]:
            for span in ss["spans"]:
                yield attrs, span


def read_source(root: Path, source: str, classify):
    """(good parsed records with their file, bad (path, line_no, reason)) for events or crashes."""
    good, bad = [], []
    for path in sorted((root / source).rglob("*.jsonl.gz")):
        rel = path.relative_to(root).as_posix()
        lines, truncated = read_lines(path)
        for i, raw in enumerate(lines, start=1):
            if truncated and i == len(lines):
                bad.append((rel, i, "truncated_file"))
                continue
            reason = classify(raw)
            if reason:
                bad.append((rel, i, reason))
            else:
                good.append((rel, json.loads(raw)))
    return good, bad


def read_traces(root: Path):
    good, bad = [], []
    for path in sorted((root / "traces").rglob("*.jsonl.gz")):
        rel = path.relative_to(root).as_posix()
        for i, raw in enumerate(read_lines(path)[0], start=1):
            try:
                request = json.loads(raw)
            except ValueError:
                bad.append((rel, i, None, "invalid_json"))
                continue
            for k, (attrs, span) in enumerate(spans_of(request)):
                if all(isinstance(span.get(f), str) for f in ("traceId", "spanId", "startTimeUnixNano", "endTimeUnixNano")):
                    good.append((attrs, span))
                else:
                    bad.append((rel, i, k, "missing_field"))
    return good, bad


@pytest.fixture(scope="module")
def events(landing):
    return read_source(landing, "events", classify_event)


# --- tests ----------------------------------------------------------------------------------------

def digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(landing, tmp_path):
    again = tmp_path / "again"
    generate(again, progress=False, **TINY)
    assert digest(again) == digest(landing)
    other = tmp_path / "other"
    generate(other, progress=False, **{**TINY, "seed": TINY["seed"] + 1})
    assert digest(other) != digest(landing)


def test_clean_lines_follow_the_specs(events, landing):
    good, _bad = events
    libraries = Counter()
    for _path, e in good:
        ctx = e["context"]
        assert {"app", "device", "os", "locale", "timezone", "network", "sessionId", "library"} <= set(ctx)
        assert {"name", "version", "build", "namespace"} <= set(ctx["app"])
        assert {"id", "model", "manufacturer", "type"} <= set(ctx["device"])
        assert e["receivedAt"].endswith("Z") and e["userId"] and e["anonymousId"] == ctx["device"]["id"]
        libraries[ctx["library"]["version"]] += 1
        if e["type"] == "track":
            assert isinstance(e["event"], str) and isinstance(e["properties"], dict)
        elif e["type"] == "screen":
            assert isinstance(e["name"], str)
        else:
            assert e["type"] == "identify"
            traits = e.get("traits") or ctx.get("traits")
            assert traits["role"] in ("customer", "technician")
            assert ("traits" in e) == (ctx["library"]["version"] == "2.4.0")  # Segment top-level, RudderStack in context
    assert set(libraries) == {"2.4.0", "2.1.9"}

    crashes, _ = read_source(landing, "crashes", classify_crash)
    assert crashes
    epoch = 0
    for _path, c in crashes:
        assert len(c["event_id"]) == 32 and int(c["event_id"], 16) >= 0
        frames = c["exception"]["values"][0]["stacktrace"]["frames"]
        assert frames[0]["in_app"] and any(f["in_app"] for f in frames)
        app, version, build = c["contexts"]["app"]["app_identifier"], c["contexts"]["app"]["app_version"], c["contexts"]["app"]["app_build"]
        assert c["release"] == f"{app}@{version}+{build}"
        assert c["tags"]["platform"] in ("ios", "android") and c["tags"]["session_id"]
        epoch += isinstance(c["timestamp"], float)
    assert epoch < len(crashes)  # mostly RFC 3339 strings; ~10% epoch seconds (seldom any in a tiny run)

    spans, _ = read_traces(landing)
    kinds = Counter(span["kind"] for _a, span in spans)
    assert set(kinds) == {1, 2, 3}  # internal, server, client
    for attrs, span in spans:
        assert len(span["traceId"]) == 32 and len(span["spanId"]) == 16
        assert int(span["endTimeUnixNano"]) >= int(span["startTimeUnixNano"])
        if attrs["service.name"] != "mobile-api":
            assert span["kind"] == 3 and {"device.id", "session.id", "service.version", "os.name"} <= set(attrs)
            keys = {a["key"] for a in span["attributes"]}
            assert {"http.request.method", "url.full", "http.route", "server.address", "http.response.status_code"} <= keys


def test_malformed_records_are_exactly_the_planted_ones(truth, events, landing):
    _good, bad = events
    planted = {(p["path"], p["line_no"], p["reason_code"]) for p in truth["malformed"]["planted"] if p["source"] == "events"}
    assert set(bad) == planted and len(bad) == len(planted)
    reasons = Counter(r for *_x, r in bad)
    assert set(reasons) == {"invalid_utf8", "oversized_payload", "invalid_json", "missing_field", "wrong_type",
                            "invalid_timestamp", "unknown_event_type", "future_timestamp", "truncated_file"}
    assert dict(reasons) == truth["records"]["events"]["bad_by_reason"]
    assert len(events[0]) == truth["records"]["events"]["records_good"]

    crashes, crash_bad = read_source(landing, "crashes", classify_crash)
    assert len(crashes) == truth["records"]["crashes"]["records_good"]
    assert dict(Counter(r for *_x, r in crash_bad)) == truth["records"]["crashes"]["bad_by_reason"]

    spans, span_bad = read_traces(landing)
    assert len(spans) == truth["records"]["traces"]["records_good"]
    assert dict(Counter(r for *_x, r in span_bad)) == truth["records"]["traces"]["bad_by_reason"]

    for source in [s for s in truth["records"] if s.startswith("ops/") or s == "telemetry"]:
        folder = landing / source
        key = {"telemetry": "vin"}.get(source) or pq.read_schema(next(p for p in folder.rglob("*.parquet")
                                                                     if p.read_bytes()[:4] == b"PAR1")).names[0]
        good = unreadable = null_keys = 0
        for path in sorted(folder.rglob("*.parquet")):
            try:
                table = pq.read_table(path)
            except Exception:
                unreadable += 1
                continue
            nulls = table.column(key).null_count
            null_keys += nulls
            good += table.num_rows - nulls
            for name in ("updated_at", "observed_at"):
                if name in table.schema.names:
                    assert str(table.schema.field(name).type) == "timestamp[us, tz=UTC]"
        expected = truth["records"][source]
        assert good == expected["records_good"], source
        assert unreadable == expected["bad_by_reason"].get("unreadable_file", 0), source
        assert null_keys == expected["bad_by_reason"].get("missing_field", 0), source


def test_clean_run_has_nothing_to_quarantine(clean_landing):
    truth = json.loads((clean_landing / "truth.json").read_text())
    good, bad = read_source(clean_landing, "events", classify_event)
    assert bad == [] and truth["malformed"]["planted"] == []
    assert len(good) == truth["events"]["lines_clean"]
    assert read_source(clean_landing, "crashes", classify_crash)[1] == [] and read_traces(clean_landing)[1] == []
    assert all(r["records_bad"] == 0 for r in truth["records"].values())
    for path in clean_landing.rglob("*.parquet"):
        pq.read_table(path)


def test_truth_counts_match_the_files(truth, events, landing):
    good = [e for _p, e in events[0]]
    by_mid = {}
    for e in good:
        by_mid.setdefault(e["messageId"], e)
    ev = truth["events"]
    assert len(good) == ev["lines_clean"]
    assert len(by_mid) == ev["distinct_message_ids"]
    assert len(good) - len(by_mid) == ev["duplicate_lines"] == sum(truth["duplicates"].values())
    duplicated = Counter(json.dumps(e, sort_keys=True) for e in good)
    assert sum(n - 1 for n in duplicated.values()) == ev["duplicate_lines"]  # copies are byte-for-byte the same event
    names = Counter(e["event"] for e in by_mid.values() if e["type"] == "track")
    assert {k: v for k, v in names.items()} == {k: v for k, v in ev["by_event"].items() if v}

    # Funnels: login per user-day (the day's first session, by its app_opened), the others per job.
    sessions = defaultdict(set)
    first_open: dict[tuple, tuple] = {}
    platform_of_user = {}
    for e in by_mid.values():
        key = e.get("event") if e["type"] == "track" else None
        if not key:
            continue
        sid = e["context"]["sessionId"]
        sessions[(e["userId"], sid)].add(key)
        platform_of_user[e["userId"]] = e["context"]["device"]["type"]
        if key == "app_opened":  # true time: receivedAt - (sentAt - timestamp), as the skew note says
            at = parse_time(e["receivedAt"]) - (parse_time(e["sentAt"]) - parse_time(e["timestamp"]))
            slot = (e["userId"], at.date())
            first_open[slot] = min(first_open.get(slot, (at, sid)), (at, sid))
    steps = ["app_opened", "login_started", "login_succeeded"]
    login = {p: [0, 0, 0] for p in ("ios", "android")}
    for (user, _day), (_at, sid) in first_open.items():
        for k in range(3):
            login[platform_of_user[user]][k] += all(s in sessions[(user, sid)] for s in steps[: k + 1])
    assert login == truth["funnels"]["login"]["realized"]

    for funnel, id_key in (("job_completion", "job_id"), ("estimate_approval", "job_id")):
        steps = truth["funnels"][funnel]["steps"]
        seen = defaultdict(set)
        platform = {}
        for e in by_mid.values():
            if e["type"] == "track" and e["event"] in steps:
                seen[e["properties"][id_key]].add(e["event"])
                platform[e["properties"][id_key]] = e["context"]["device"]["type"]
        realized = {p: [sum(1 for j, s in seen.items() if platform[j] == p and all(x in s for x in steps[: k + 1]))
                        for k in range(len(steps))] for p in ("ios", "android")}
        assert realized == truth["funnels"][funnel]["realized"], funnel

    # Late events: queued offline for an hour or more.
    late = sum(1 for e in by_mid.values() if parse_time(e["sentAt"]) - parse_time(e["timestamp"]) >= dt.timedelta(hours=1))
    assert late == truth["late_events"]["count"] > 0

    # Crashes: per group (type | last in-app frame) and release; each crash ends a session seen in events.
    crashes = [c for _p, c in read_source(landing, "crashes", classify_crash)[0]]
    counts = defaultdict(Counter)
    session_ids = {e["context"]["sessionId"] for e in by_mid.values()}
    for c in crashes:
        exc = c["exception"]["values"][0]
        top = [f for f in exc["stacktrace"]["frames"] if f["in_app"]][-1]
        counts[f"{exc['type']}|{top['module']}.{top['function']}"][c["release"]] += 1
        assert c["tags"]["session_id"] in session_ids
    assert {k: dict(v) for k, v in counts.items()} == truth["crashes"]["counts_by_group_release"]

    # Latency: p50/p95 of clean client spans per route and app version.
    durations = defaultdict(list)
    for attrs, span in read_traces(landing)[0]:
        if attrs["service.name"] != "mobile-api":
            route = next(a["value"]["stringValue"] for a in span["attributes"] if a["key"] == "http.route")
            durations[(route, attrs["service.version"])].append((int(span["endTimeUnixNano"]) - int(span["startTimeUnixNano"])) / 1e6)
    table = truth["latency"]["client_ms_by_route_version"]
    assert sum(len(v) for v in table.values()) == len(durations)
    for (route, version), values in durations.items():
        p50, p95 = np.percentile(values, [50, 95])
        cell = table[route][version]
        assert cell["n"] == len(values) and cell["p50_ms"] == pytest.approx(p50) and cell["p95_ms"] == pytest.approx(p95)


def test_skew_correction_recovers_true_time(truth, events):
    by_mid = {e["messageId"]: e for _p, e in events[0]}
    sample = truth["clock_skew"]["sample"]
    assert sample and truth["clock_skew"]["events_skewed"] >= len(sample)
    for s in sample:
        e = by_mid[s["messageId"]]
        corrected = parse_time(e["receivedAt"]) - (parse_time(e["sentAt"]) - parse_time(e["timestamp"]))
        assert abs((corrected - parse_time(s["true_time"])).total_seconds()) < 1.0
        skew = parse_time(e["timestamp"]) - parse_time(s["true_time"])
        assert abs(skew.total_seconds() - s["offset_hours"] * 3600) < 1.0


def test_truncated_file_keeps_its_complete_lines(truth, landing):
    (info,) = truth["malformed"]["truncated_files"]
    raw = (landing / info["path"]).read_bytes()
    with pytest.raises(EOFError):
        gzip.decompress(raw)
    lines, truncated = read_lines(landing / info["path"])
    assert truncated and len(lines) == info["complete_lines"] + 1


def test_heavy_viewers_reopen_their_action_in_the_last_week(truth, events):
    """The planted heavy recommendation viewers (truth recommendations.heavy_viewers; the tiny world's four days
    are all in its last week): in every session that shows them a recommendation they see their action's card
    extra_cards_per_session_shown more times; any other customer sees one card a session."""
    heavy = truth["recommendations"]["heavy_viewers"]
    assert heavy["customers"] and heavy["days"] == list(range(TINY["days"]))
    by_mid = {e["messageId"]: e for _p, e in events[0]}
    cards = defaultdict(list)
    for e in by_mid.values():
        if e["type"] == "track" and e["event"] == "recommendation_shown":
            cards[(e["userId"], e["context"]["sessionId"])].append(e["properties"]["action_id"])
    heavy_sessions = {k: v for k, v in cards.items() if k[0] in heavy["customers"]}
    assert heavy_sessions and all(len(v) == 1 for k, v in cards.items() if k not in heavy_sessions)
    for (user, _session), actions in heavy_sessions.items():
        assert len(actions) == 1 + heavy["extra_cards_per_session_shown"]
        assert Counter(actions)[heavy["action"][user]] >= heavy["extra_cards_per_session_shown"]


@pytest.mark.parametrize("start", [dt.date(2026, 10, 1), dt.date(2026, 11, 5), dt.date(2026, 11, 20)],
                         ids=["before-the-experiments", "as-they-start", "all-running"])
def test_target_events_sizes_the_world_whatever_experiments_its_days_cover(tmp_path, start):
    """`--target-events` (what make bench sizes its 1M and 5M worlds by) lands within 3% of the target on any
    dates: exposures are sent only while an experiment runs, so the events per customer-day depend on them
    (the estimate that ignored the dates gave 71% of the target from 2026-10-01, 92% from 2026-11-05)."""
    from simulator.generate import size_for_events

    target, days = 60_000, 21
    customers, technicians = size_for_events(target, days, start)
    summary = generate(tmp_path / "landing", customers=customers, technicians=technicians, days=days,
                       seed=3, start=start, malformed=False, progress=False)
    assert abs(summary.event_lines / target - 1) < 0.03, summary.event_lines
