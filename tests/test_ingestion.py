"""Ingestion into the raw layer: real SDK payloads, exactly-once re-runs, kills, and every bad-input class."""

from __future__ import annotations

import gzip
import json
import os
import signal
import subprocess
import sys
import time
import zlib
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from conftest import ROOT, SDK_LANDING
from orchestration.ingestion.__main__ import main as ingestion_cli
from orchestration.ingestion.checks import entries_without_landing_file, quarantine_shares, verify_ledger
from orchestration.ingestion.formats.common import RAW_TEXT_PATH
from orchestration.ingestion.ingest import clear_reprocess_from, ingest_source, read_reprocess_from
from orchestration.ingestion.ledger import read_ledger
from orchestration.ingestion.sources import SOURCES

MANIFEST = json.loads((SDK_LANDING.parent / "manifest.json").read_text())


def ingest_all() -> dict:
    return {name: ingest_source(name) for name in SOURCES}


def raw_rows(root: Path, source: str, columns: str = "*", group_by: bool = False) -> list[tuple]:
    glob = str(root / "raw" / source / "*" / "*.parquet")
    return duckdb.sql(
        f"select {columns} from read_parquet('{glob}', hive_partitioning = true, union_by_name = true) "
        f"{'group by all' if group_by else ''} order by all"
    ).fetchall()


def quarantine_rows(root: Path, source: str | None = None) -> list[dict]:
    files = [p for p in (root / "quarantine").glob("*/dt=*/*.parquet")]
    rows = [r for p in files for r in pq.read_table(p).to_pylist()]
    return [r for r in rows if source is None or r["source"] == source]


def sdk_lines(pattern: str) -> list[bytes]:
    return [line for f in sorted(SDK_LANDING.glob(pattern)) for line in gzip.decompress(f.read_bytes()).splitlines()]


def write_gz(path: Path, lines: list[bytes]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n", mtime=0))
    return path


# --- real SDK payloads ------------------------------------------------------------------------


def test_real_sdk_payloads_load_with_nothing_quarantined(sdk_data_root):
    summaries = ingest_all()
    assert {n: s.records_quarantined for n, s in summaries.items() if s.records_quarantined} == {}
    assert summaries["events"].records_loaded == MANIFEST["events"]["lines"]
    assert summaries["crashes"].records_loaded == MANIFEST["crashes"]["events"]
    assert summaries["spans"].records_loaded == MANIFEST["traces"]["spans"]
    assert quarantine_rows(sdk_data_root) == []

    # Values survive typed: every messageId of the files, each message's corrected time present.
    expected_ids = sorted(json.loads(line)["messageId"] for line in sdk_lines("events/*/*.gz"))
    assert sorted(r[0] for r in raw_rows(sdk_data_root, "events", "message_id")) == expected_ids
    assert raw_rows(sdk_data_root, "events", "count(*) filter (where occurred_at is null)") == [(0,)]
    # Crash groups by the exception type and the crashing (last in-app) frame, as the manifest counts them.
    groups = raw_rows(sdk_data_root, "crashes", "exception_type || '|' || crash_frame, release, count(*)",
                      group_by=True)
    expected = [(g, rel, n) for g, by_rel in MANIFEST["crashes"]["groups_by_exception_type_and_top_in_app_frame"].items()
                for rel, n in by_rel.items()]
    assert sorted(groups) == sorted(expected)
    (traces,) = raw_rows(sdk_data_root, "spans", "count(distinct trace_id)")[0]
    assert traces == MANIFEST["traces"]["traces"]
    (errors,) = raw_rows(sdk_data_root, "spans", "count(*) filter (where status_code = 2)")[0]
    assert errors == MANIFEST["traces"]["error_spans"]


def test_empty_landing_zone_gives_typed_empty_raw_tables(data_root):
    summaries = ingest_all()
    assert all(s.files_seen == 0 for s in summaries.values())
    for name in SOURCES:
        schema = duckdb.sql(
            f"describe select * from read_parquet('{data_root}/raw/{name}/*/*.parquet', hive_partitioning = true)"
        ).fetchall()
        assert len(schema) > 4, name
        assert raw_rows(data_root, name, "count(*)") == [(0,)]


# --- exactly once -----------------------------------------------------------------------------


def test_rerun_adds_nothing_and_changed_file_replaces_its_rows(sdk_data_root):
    ingest_all()
    before = raw_rows(sdk_data_root, "events", "message_id, _landing_path, _line_no")
    second = ingest_all()
    assert all(s.files_ingested == 0 for s in second.values())
    assert raw_rows(sdk_data_root, "events", "message_id, _landing_path, _line_no") == before

    # Touching a file without changing it re-hashes it but re-ingests nothing.
    target = next((sdk_data_root / "landing" / "events").glob("*/segment-s3-0000.jsonl.gz"))
    os.utime(target, ns=(time.time_ns(), time.time_ns()))
    assert ingest_source("events").files_ingested == 0

    # Rewriting the file in place with its first 10 lines: exactly its rows are replaced.
    kept = gzip.decompress(target.read_bytes()).splitlines()[:10]
    write_gz(target, kept)
    summary = ingest_source("events")
    assert summary.files_ingested == 1 and summary.records_loaded == 10
    after = raw_rows(sdk_data_root, "events", "message_id, _landing_path, _line_no")
    rel = target.relative_to(sdk_data_root / "landing").as_posix()
    assert [r for r in after if r[1] == rel] == sorted((json.loads(l)["messageId"], rel, i + 1) for i, l in enumerate(kept))
    assert [r for r in after if r[1] != rel] == [r for r in before if r[1] != rel]
    assert verify_ledger()[1] == []


def _big_landing(root: Path, files: int, copies: int) -> None:
    """Many event files made of the real SDK lines with fresh messageIds, plus one bad line each."""
    blob = b"\n".join(sdk_lines("events/*/*.gz"))
    for k in range(files):
        parts = [blob.replace(b'"messageId": "', f'"messageId": "f{k}c{c}-'.encode()) for c in range(copies)]
        write_gz(root / "landing" / "events" / f"dt=2026-11-{10 + k % 5:02d}" / f"part-{k:04d}.jsonl.gz",
                 [*b"\n".join(parts).splitlines(), b"{not json"])


def _snapshot(root: Path) -> dict:
    return {
        "raw": raw_rows(root, "events", "message_id, _landing_path, _line_no"),
        "quarantine": sorted((r["landing_path"], r["line_no"], r["reason_code"]) for r in quarantine_rows(root)),
        "ledger": sorted((r["landing_path"], r["records_loaded"], r["records_quarantined"]) for r in read_ledger()),
    }


@pytest.mark.slow
def test_killed_ingestion_then_rerun_equals_one_clean_run(tmp_path, monkeypatch):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    for root in (clean, killed):
        _big_landing(root, files=12, copies=60)  # ~375k events

    monkeypatch.setenv("PITWALL_DATA_DIR", str(clean))
    subprocess.run([sys.executable, "-m", "orchestration.ingestion", "events"], cwd=ROOT, check=True,
                   env={**os.environ}, capture_output=True)
    expected = _snapshot(clean)
    assert len(expected["raw"]) == 12 * 60 * MANIFEST["events"]["lines"]

    monkeypatch.setenv("PITWALL_DATA_DIR", str(killed))
    ledger_dir = killed / "raw" / "_ledger" / "events"
    # Kill at three different points of progress; each re-run resumes from the ledger.
    for committed_files in (1, 4, 8):
        proc = subprocess.Popen([sys.executable, "-m", "orchestration.ingestion", "events"], cwd=ROOT,
                                env={**os.environ}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while len(list(ledger_dir.glob("*/*.parquet"))) < committed_files and time.time() < deadline:
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        done = len(list(ledger_dir.glob("*/*.parquet")))
        assert done < 12, "the run finished before it could be killed; make the landing zone bigger"
    subprocess.run([sys.executable, "-m", "orchestration.ingestion", "events"], cwd=ROOT, check=True,
                   env={**os.environ}, capture_output=True)
    assert _snapshot(killed) == expected
    assert verify_ledger()[1] == []
    assert not list(killed.glob("**/.*.tmp-*"))


# --- bad input ------------------------------------------------------------------------------


def _event(**overrides) -> dict:
    event = json.loads(sdk_lines("events/*/segment-s3-0000.jsonl.gz")[2])  # a track call
    event.update(overrides)
    return {k: v for k, v in event.items() if v is not None}


def _line(obj) -> bytes:
    return json.dumps(obj).encode()


BAD_EVENT_LINES = {
    "invalid_json": [b'{"messageId": "cut', b"[1, 2, 3]", b""],
    "invalid_utf8": [b'{"messageId": "\xff\xfe", "type": "track"}'],
    "oversized_payload": [_line(_event(messageId="big-1", properties={"blob": "x" * (1 << 20)}))],
    "missing_field": [
        _line({k: v for k, v in _event(messageId="m-1").items() if k != "messageId"}),
        _line({k: v for k, v in _event(messageId="m-2").items() if k != "event"}),
        _line({k: v for k, v in _event(messageId="m-3").items() if k not in ("userId", "anonymousId")}),
    ],
    "wrong_type": [_line(_event(messageId=12345)), _line(_event(messageId="w-2", properties="not an object"))],
    "invalid_timestamp": [_line(_event(messageId="t-1", timestamp="yesterday at noon"))],
    "future_timestamp": [_line(_event(messageId="f-1", timestamp="2099-01-01T00:00:00Z"))],
    "unknown_event_type": [_line(_event(messageId="u-1", type="bogus"))],
}


def test_every_bad_event_class_is_quarantined_with_its_reason(data_root):
    good = [_line(_event(messageId=f"good-{i}")) for i in range(5)]
    bad = [(code, line) for code, lines in BAD_EVENT_LINES.items() for line in lines]
    lines = [good[0], *[line for _, line in bad], *good[1:]]
    write_gz(data_root / "landing" / "events" / "dt=2026-11-24" / "mixed.jsonl.gz", lines)

    summary = ingest_source("events")
    assert summary.records_loaded == len(good)
    quarantined = sorted((r["line_no"], r["reason_code"]) for r in quarantine_rows(data_root, "events"))
    assert quarantined == [(i + 2, code) for i, (code, _) in enumerate(bad)]
    rows = {r["line_no"]: r for r in quarantine_rows(data_root, "events")}
    oversized = next(r for r in rows.values() if r["reason_code"] == "oversized_payload")
    assert oversized["raw_bytes"] > 1 << 20 and len(oversized["raw_text"]) == 1 << 16
    assert next(r for r in rows.values() if r["reason_code"] == "invalid_utf8")["raw_text"] is None
    assert all(r["reason"] and r["landing_path"] == "events/dt=2026-11-24/mixed.jsonl.gz" for r in rows.values())
    (entry,) = read_ledger("events")
    assert entry["lines_read"] == entry["records_read"] == len(lines)
    assert json.loads(entry["quarantined_by_reason"]) == {c: len(v) for c, v in BAD_EVENT_LINES.items()}
    assert verify_ledger() == (1, [])
    share = quarantine_shares(max_share=0.01)["events"]
    assert (share["records_read"], share["quarantined"]) == (len(lines), len(bad)) and share["above_limit"]


def test_truncated_gzip_keeps_complete_lines_and_quarantines_the_cut(data_root):
    lines = [_line(_event(messageId=f"t-{i}")) for i in range(400)]
    whole = gzip.compress(b"\n".join(lines) + b"\n", mtime=0)
    cut = whole[: len(whole) * 6 // 10]
    path = data_root / "landing" / "events" / "dt=2026-11-24" / "cut.jsonl.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(cut)
    recovered = zlib.decompressobj(wbits=31).decompress(cut)  # what any gzip reader can still get
    complete = recovered.count(b"\n")

    summary = ingest_source("events")
    assert summary.records_loaded == complete
    assert [(r["line_no"], r["reason_code"]) for r in quarantine_rows(data_root)] == [(complete + 1, "truncated_file")]
    assert summary.file_errors and "truncated" in summary.file_errors[0]
    assert verify_ledger()[1] == []


def test_bad_crashes_spans_and_extracts_are_quarantined(data_root):
    landing = data_root / "landing"
    crashes = sdk_lines("crashes/*/*.gz")[:3]
    epoch = json.loads(crashes[1])
    epoch["timestamp"] = 1795537445.25  # the Sentry spec allows epoch seconds
    epoch["tags"] = [["session_id", "s-1"], ["platform", "ios"]]  # and tags as a list of pairs
    no_id = json.loads(crashes[2])
    del no_id["event_id"]
    write_gz(landing / "crashes" / "dt=2026-11-24" / "c.jsonl.gz", [crashes[0], _line(epoch), _line(no_id), b"{oops"])

    request = json.loads(sdk_lines("traces/*/*.gz")[0])
    spans = request["resourceSpans"][0]["scopeSpans"][0]["spans"]
    del spans[1]["traceId"]
    n_spans = sum(len(s["spans"]) for r in request["resourceSpans"] for s in r["scopeSpans"])
    write_gz(landing / "traces" / "dt=2026-11-24" / "t.jsonl.gz", [_line(request), b"not json"])

    jobs = landing / "ops" / "jobs" / "dt=2026-11-24"
    jobs.mkdir(parents=True)
    (jobs / "garbage.parquet").write_bytes(b"PAR1 this is not parquet")
    pq.write_table(pa.table({"job_id": ["j1", None, "j3"], "status": ["assigned", "started", "done"],
                             "updated_at": pa.array([1, 2, 3], pa.timestamp("s", tz="UTC")),
                             "surprise": [1, 2, 3]}), jobs / "jobs.parquet")

    assert ingest_source("crashes").records_loaded == 2
    assert sorted(r["reason_code"] for r in quarantine_rows(data_root, "crashes")) == ["invalid_json", "missing_field"]
    loaded = raw_rows(data_root, "crashes", "occurred_at, tags")
    assert any('"session_id":"s-1"' in tags for _, tags in loaded)

    assert ingest_source("spans").records_loaded == n_spans - 1
    assert sorted((r["line_no"], r["record_index"], r["reason_code"]) for r in quarantine_rows(data_root, "spans")) == [
        (1, 1, "missing_field"), (2, None, "invalid_json")]

    summary = ingest_source("jobs")
    assert summary.records_loaded == 2
    assert sorted(r["reason_code"] for r in quarantine_rows(data_root, "jobs")) == ["missing_field", "unreadable_file"]
    assert {e["landing_path"].rsplit("/", 1)[-1]: e["extra_columns"] for e in read_ledger("jobs")}["jobs.parquet"] == "surprise"
    assert verify_ledger()[1] == []


def test_a_file_that_fails_does_not_stop_the_others_and_is_flagged(sdk_data_root, monkeypatch, capsys):
    from orchestration.ingestion import ingest

    real = ingest.ingest_file

    def failing_for_one(con, landing_file, **kwargs):
        if landing_file.path.name == "segment-s3-0001.jsonl.gz":
            raise RuntimeError("simulated internal error")
        return real(con, landing_file, **kwargs)

    monkeypatch.setattr(ingest, "ingest_file", failing_for_one)
    summary = ingest_source("events")
    assert (summary.files_ingested, summary.files_failed) == (1, 1)
    assert "simulated internal error" in summary.file_errors[0]
    _, problems = verify_ledger("events")
    assert [p.problem for p in problems] == ["landing file not ingested (no ledger entry)"]
    # the command line says which file and exits non-zero, every run until it is in
    assert ingestion_cli(["events"]) == 1
    assert "segment-s3-0001.jsonl.gz: ingestion failed (RuntimeError: simulated internal error)" in capsys.readouterr().err

    monkeypatch.setattr(ingest, "ingest_file", real)
    assert ingest_source("events").files_ingested == 1  # the next run picks it up
    assert verify_ledger("events")[1] == []
    assert ingestion_cli(["events"]) == 0


# --- landing files moved or gone -----------------------------------------------------------------

def _events_in_two_days(root: Path) -> tuple[Path, Path]:
    """The SDK's two event files on 2026-11-24, and a third file (other bytes) on 2026-11-25."""
    day1 = root / "landing" / "events" / "dt=2026-11-24"
    later = write_gz(root / "landing" / "events" / "dt=2026-11-25" / "segment-s3-0002.jsonl.gz",
                     sdk_lines("events/*/segment-s3-0001.jsonl.gz")[:3])
    return day1 / "segment-s3-0000.jsonl.gz", later


def test_a_moved_landing_file_is_counted_once_and_its_day_rebuilt(sdk_data_root):
    moved, _ = _events_in_two_days(sdk_data_root)
    ingest_source("events")
    columns = "message_id, _line_no"
    before = raw_rows(sdk_data_root, "events", columns)
    assert read_reprocess_from() is None  # new files on the newest day or later: nothing older changed

    renamed = moved.with_name("segment-s3-0000-resent.jsonl.gz")
    moved.rename(renamed)
    summary = ingest_source("events")
    assert (summary.files_ingested, summary.files_retired) == (1, 1)
    assert raw_rows(sdk_data_root, "events", columns) == before  # the same rows, once, under the new name
    paths_now = {r["landing_path"] for r in read_ledger("events")}
    assert paths_now == {f.relative_to(sdk_data_root / "landing").as_posix()
                         for f in (sdk_data_root / "landing" / "events").glob("dt=*/*.jsonl.gz")}
    assert not (sdk_data_root / "raw" / "events" / "dt=2026-11-24" / f"{moved.name}.parquet").exists()
    assert verify_ledger("events")[1] == [] and entries_without_landing_file("events") == []
    assert read_reprocess_from() == "2026-11-24"  # an older day changed: the warehouse rebuilds from it

    again = ingest_source("events")
    assert (again.files_ingested, again.files_retired) == (0, 0)
    assert raw_rows(sdk_data_root, "events", columns) == before


def test_the_ledger_check_flags_a_moved_file_counted_twice_until_ingestion_retires_it(sdk_data_root, monkeypatch):
    moved, _ = _events_in_two_days(sdk_data_root)
    ingest_source("events")
    copy = moved.parent.parent / "dt=2026-11-25" / moved.name
    moved.rename(copy)
    # the move as a run killed after ingesting the new name and before retiring the old one leaves it
    from orchestration.ingestion import ingest

    with monkeypatch.context() as patched:
        patched.setattr(ingest, "retire_moved_files", lambda known, present: [])
        ingest_source("events")
    problems = verify_ledger("events")[1]
    assert [(p.landing_path, "count twice" in p.problem) for p in problems] == [
        (moved.relative_to(sdk_data_root / "landing").as_posix(), True)]
    assert ingest_source("events").files_retired == 1  # the next run finishes the move
    assert verify_ledger("events")[1] == []
    assert read_reprocess_from() == "2026-11-24"


def test_a_landing_file_gone_without_a_copy_keeps_its_rows_and_is_listed(sdk_data_root):
    gone, _ = _events_in_two_days(sdk_data_root)
    ingest_source("events")
    before = raw_rows(sdk_data_root, "events", "message_id")
    gone.unlink()  # landing retention
    assert ingest_source("events").files_retired == 0
    assert raw_rows(sdk_data_root, "events", "message_id") == before
    assert verify_ledger("events")[1] == []
    assert entries_without_landing_file("events") == [gone.relative_to(sdk_data_root / "landing").as_posix()]
    assert read_reprocess_from() is None


def test_a_file_changed_on_an_older_day_notes_the_earliest_such_day(sdk_data_root):
    first, later = _events_in_two_days(sdk_data_root)
    ingest_source("events")
    write_gz(later, sdk_lines("events/*/segment-s3-0001.jsonl.gz")[:2])  # the newest day: no older day changed
    ingest_source("events")
    assert read_reprocess_from() is None
    write_gz(first, sdk_lines("events/*/segment-s3-0000.jsonl.gz")[:2])
    ingest_source("events")
    assert read_reprocess_from() == "2026-11-24"
    clear_reprocess_from("2026-11-23")  # a build that started from another day does not clear it
    assert read_reprocess_from() == "2026-11-24"
    clear_reprocess_from("2026-11-24")
    assert read_reprocess_from() is None


# --- OTLP spans ------------------------------------------------------------------------------

SPAN_KINDS = {"SPAN_KIND_UNSPECIFIED": 0, "SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3,
              "SPAN_KIND_PRODUCER": 4, "SPAN_KIND_CONSUMER": 5}
STATUS_CODES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}


def _any_value(value: dict):
    """An OTLP/JSON AnyValue as the raw layer's attribute objects hold it: scalars as plain JSON values
    (int64 as a number whether the JSON had a string or a number), other kinds as the value object."""
    for kind, convert in (("stringValue", str), ("intValue", int), ("doubleValue", float), ("boolValue", bool)):
        if kind in value:
            return convert(value[kind])
    for kind in ("arrayValue", "kvlistValue", "bytesValue"):
        if kind in value:
            return {kind: value[kind]}
    return {}


def _attributes(pairs: list | None) -> dict | None:
    return None if pairs is None else {a["key"]: _any_value(a["value"]) for a in pairs}


def _enum(value, names: dict[str, int]) -> int | None:
    return names.get(value) if isinstance(value, str) else value


def expected_spans(lines: list[bytes]) -> list[tuple]:
    """The raw span rows of OTLP/JSON request lines, computed from the JSON in Python (by the spec), in the
    columns ``SPAN_COLUMNS`` selects."""
    rows = []
    for line_no, line in enumerate(lines, 1):
        request = json.loads(line)
        index = 0
        for resource in request["resourceSpans"]:
            resource_attributes = _attributes(resource.get("resource", {}).get("attributes"))
            for scope_spans in resource["scopeSpans"]:
                scope = scope_spans.get("scope", {})
                for span in scope_spans["spans"]:
                    start, end = int(span["startTimeUnixNano"]), int(span["endTimeUnixNano"])
                    rows.append((
                        line_no, index, span["traceId"].lower(), span["spanId"].lower(),
                        (span.get("parentSpanId") or "").lower() or None, span.get("name"),
                        _enum(span.get("kind"), SPAN_KINDS), start, end, (end - start) / 1e6,
                        _enum(span.get("status", {}).get("code", 0), STATUS_CODES), span.get("status", {}).get("message"),
                        _attributes(span.get("attributes")), resource_attributes, scope.get("name"),
                        scope.get("version"), float(len(span.get("events", []))), len(line),
                    ))
                    index += 1
    return sorted(rows, key=lambda r: (r[0], r[1]))


SPAN_COLUMNS = ("_line_no, _record_index, trace_id, span_id, parent_span_id, span_name, kind, start_time_unix_nano,"
                " end_time_unix_nano, duration_ms, status_code, status_message, attributes, resource_attributes,"
                " scope_name, scope_version, event_count, _raw_bytes")


def loaded_spans(root: Path) -> list[tuple]:
    rows = raw_rows(root, "spans", SPAN_COLUMNS + ", started_at")
    out = []
    for row in rows:
        *values, started_at = row
        values[12] = json.loads(values[12]) if values[12] is not None else None  # attributes
        values[13] = json.loads(values[13]) if values[13] is not None else None  # resource attributes
        # started_at is the start time in microseconds
        assert started_at == datetime.fromtimestamp(values[7] // 1000 / 1e6, UTC), row
        out.append(tuple(values))
    return sorted(out, key=lambda r: (r[0], r[1]))


def spans_of(request: dict) -> list[dict]:
    """A request's spans in the order of their record_index."""
    return [s for r in request["resourceSpans"] for sc in r["scopeSpans"] for s in sc["spans"]]


def test_sdk_spans_load_as_the_otlp_json_spec_reads_them(sdk_data_root):
    lines = sdk_lines("traces/*/*.gz")
    assert ingest_source("spans").records_quarantined == 0
    assert loaded_spans(sdk_data_root) == expected_spans(lines)


def test_otlp_json_value_encodings_by_the_spec(data_root):
    """int64 as strings or numbers, enums as integers or names, hex ids in either case, every AnyValue kind,
    span events, unknown fields ignored."""
    request = json.loads(sdk_lines("traces/*/*.gz")[0])
    span = spans_of(request)[0]
    span.update({
        "traceId": span["traceId"].upper(), "startTimeUnixNano": int(span["startTimeUnixNano"]), "kind": "SPAN_KIND_CLIENT",
        "status": {"code": "STATUS_CODE_ERROR", "message": "boom"}, "droppedAttributesCount": 3,
        "events": [{"name": "retry", "timeUnixNano": span["startTimeUnixNano"]}, {"name": "exception"}],
        "attributes": [*span["attributes"], {"key": "n", "value": {"intValue": 7}}, {"key": "d", "value": {"doubleValue": 1.5}},
                       {"key": "b", "value": {"boolValue": True}}, {"key": "s", "value": {"stringValue": "é\"x"}},
                       {"key": "a", "value": {"arrayValue": {"values": [{"intValue": "1"}]}}},
                       {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "k", "value": {"stringValue": "v"}}]}}}],
    })
    spans_of(request)[1]["status"] = {"code": 1}
    request["unknownTopLevelField"] = {"ignored": True}
    lines = [_line(request)]
    write_gz(data_root / "landing" / "traces" / "dt=2026-11-24" / "t.jsonl.gz", lines)
    assert ingest_source("spans").records_quarantined == 0
    assert loaded_spans(data_root) == expected_spans(lines)


def test_rejected_spans_are_quarantined_with_their_own_json_text_and_their_neighbours_load(data_root):
    requests = [json.loads(line) for line in sdk_lines("traces/*/*.gz")[:3]]
    first = spans_of(requests[0])
    first[1]["traceId"] = "not-hex"  # a bad id inside the first resource
    first[-1]["spanId"] = 12345  # the last span of the last resource: a number, not hex
    del first[3]["endTimeUnixNano"]
    for span in spans_of(requests[2]):  # a broken producer: every span of a request rejected
        span["spanId"] = span["spanId"][:8]
    lines = [_line(r) for r in requests]
    write_gz(data_root / "landing" / "traces" / "dt=2026-11-24" / "t.jsonl.gz", lines)

    expected_bad = {
        (1, 1): "wrong_type", (1, len(first) - 1): "wrong_type", (1, 3): "missing_field",
        **{(3, i): "wrong_type" for i in range(len(spans_of(requests[2])))},
    }
    summary = ingest_source("spans")
    total = sum(len(spans_of(r)) for r in requests)
    assert (summary.records_loaded, summary.records_quarantined) == (total - len(expected_bad), len(expected_bad))
    rows = quarantine_rows(data_root, "spans")
    assert {(r["line_no"], r["record_index"]): r["reason_code"] for r in rows} == expected_bad
    for r in rows:
        # the span's own JSON text, not its line's
        assert json.loads(r["raw_text"]) == spans_of(requests[r["line_no"] - 1])[r["record_index"]]
        assert r["raw_bytes"] == len(lines[r["line_no"] - 1]) and r["reason"]
    good_keys = {(line_no, i) for line_no, request in enumerate(requests, 1) for i in range(len(spans_of(request)))}
    good_keys -= set(expected_bad)
    assert {(r[0], r[1]) for r in raw_rows(data_root, "spans", "_line_no, _record_index")} == good_keys
    # the helper column that locates a rejected span stays out of both layers
    for layer in ("raw", "quarantine"):
        names = {n for p in (data_root / layer).glob("**/*.parquet") for n in pq.read_schema(p).names}
        assert RAW_TEXT_PATH not in names, layer
    assert verify_ledger()[1] == []


# --- long lines -------------------------------------------------------------------------------


def _kept_text(con: duckdb.DuckDBPyConnection, raw: bytes, keep: int) -> str | None:
    """What the queries keep of a rejected line's text (None when it is not UTF-8)."""
    return con.execute("select left(rtrim(try(decode($raw::BLOB)), chr(10) || chr(13)), $keep)",
                       {"raw": raw, "keep": keep}).fetchall()[0][0]


@pytest.mark.parametrize("gzipped", [False, True])
def test_a_line_over_the_limit_is_never_held_whole_and_keeps_what_its_rejection_needs(tmp_path, gzipped):
    import tracemalloc

    from orchestration.ingestion.lines import READ_CHUNK, LineStream

    limit, keep, batch = 1 << 16, 1000, 1 << 18
    huge = b'{"blob": "' + "é".encode() * (20 << 20) + b'"}'  # 40 MB in one line
    tricky = {
        "ascii": b"a" * (3 * limit),
        "carriage returns after the kept text": b"b" * (2 * keep) + b"\r" * (2 * limit),
        "carriage returns from inside the kept text": b"c" * (keep // 2) + b"\r" * (2 * limit),
        "text after carriage returns": b"d" * keep + b"\r" * (2 * limit) + b"e",
        "not UTF-8 far in": b"f" * (2 * limit) + b"\xff" + b"g" * 10,
        "a character cut at the line end": b"h" * (2 * limit) + "é".encode()[:1],
        "a character across pieces": "€".encode() * limit,
    }
    lines = [b'{"n": 1}', huge, b'{"n": 2}', *tricky.values(), b'{"n": 3}']
    data = b"\n".join(lines)  # the last line has no newline: it still counts
    path = tmp_path / ("f.jsonl.gz" if gzipped else "f.jsonl")
    path.write_bytes(gzip.compress(data, compresslevel=1) if gzipped else data)
    del data

    warm_up = tmp_path / "warm-up.jsonl"  # imports that Arrow makes on first use are not the stream's memory
    warm_up.write_bytes(b"{}\n")
    list(LineStream(warm_up))
    stream = LineStream(path, batch_bytes=batch, long_line_bytes=limit, keep_chars=keep)
    tracemalloc.start()
    batches = list(stream)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    # bounded by the pieces (and the compressed chunk read), not by the line
    assert peak < READ_CHUNK * gzipped + 8 * batch + 8 * limit + 16 * keep, f"held {peak} bytes for a {len(huge)}-byte line"
    got = pa.Table.from_batches(batches).to_pylist()
    assert [r["line_no"] for r in got] == list(range(1, len(lines) + 1))
    assert stream.lines_read == stream.records == len(lines) and stream.done
    con = duckdb.connect()
    for row, line in zip(got, lines):
        assert row["raw_bytes"] == len(line)
        if len(line) <= limit or row["raw"].rstrip(b"\n") == line:  # a long line within one piece comes whole
            assert row["raw"].rstrip(b"\n") == line
        else:  # held whole it would not be: a stand-in that keeps what the queries read of it
            assert len(row["raw"]) <= 4 * keep + 4
            assert _kept_text(con, row["raw"], keep) == _kept_text(con, line, keep), line[:20]
    assert len(got[1]["raw"]) < keep * 4 + 4


def test_an_oversized_line_among_good_ones_is_quarantined_with_its_length_and_head(data_root):
    from orchestration.ingestion.formats.common import MAX_PAYLOAD_BYTES, QUARANTINE_TEXT_CHARS

    good = [_line(_event(messageId=f"g-{i}")) for i in range(4)]
    huge = _line(_event(messageId="huge", properties={"blob": "x" * (8 * MAX_PAYLOAD_BYTES)}))
    lines = [good[0], good[1], huge, good[2], good[3]]
    write_gz(data_root / "landing" / "events" / "dt=2026-11-24" / "big.jsonl.gz", lines)
    summary = ingest_source("events")
    assert (summary.records_loaded, summary.records_quarantined) == (len(good), 1)
    (row,) = quarantine_rows(data_root, "events")
    assert (row["line_no"], row["reason_code"], row["raw_bytes"]) == (3, "oversized_payload", len(huge))
    assert row["raw_text"] == huge.decode()[:QUARANTINE_TEXT_CHARS]
    assert [r[0] for r in raw_rows(data_root, "events", "_line_no")] == [1, 2, 4, 5]
    (entry,) = read_ledger("events")
    assert entry["lines_read"] == entry["records_read"] == len(lines)


def test_a_big_otlp_request_loads_every_span(data_root):
    """One line holding a request of thousands of spans (under the size limit) streams like any other."""
    from orchestration.ingestion.formats.common import MAX_PAYLOAD_BYTES

    request = json.loads(sdk_lines("traces/*/*.gz")[0])
    template = request["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    n = int(MAX_PAYLOAD_BYTES * 0.9 / len(json.dumps(template)))
    spans = [dict(template, spanId=f"{i + 1:016x}") for i in range(n)]
    request["resourceSpans"][0]["scopeSpans"][0]["spans"] = spans
    lines = [sdk_lines("traces/*/*.gz")[1], _line(request), sdk_lines("traces/*/*.gz")[2]]
    assert len(lines[1]) <= MAX_PAYLOAD_BYTES
    write_gz(data_root / "landing" / "traces" / "dt=2026-11-24" / "big.jsonl.gz", lines)
    assert ingest_source("spans").records_quarantined == 0
    assert loaded_spans(data_root) == expected_spans(lines)


def test_a_file_cut_inside_a_long_line_quarantines_the_cut_line(data_root):
    from orchestration.ingestion.formats.common import QUARANTINE_TEXT_CHARS

    good = _line(_event(messageId="g-1"))
    huge = _line(_event(messageId="huge", properties={"blob": "y" * (6 << 20)}))
    whole = gzip.compress(good + b"\n" + huge + b"\n", mtime=0)
    path = data_root / "landing" / "events" / "dt=2026-11-24" / "cut.jsonl.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(whole[: len(whole) * 7 // 10])
    recovered = zlib.decompressobj(wbits=31).decompress(path.read_bytes()).split(b"\n")[1]

    summary = ingest_source("events")
    assert (summary.records_loaded, summary.records_quarantined) == (1, 1)
    (row,) = quarantine_rows(data_root, "events")
    assert (row["line_no"], row["reason_code"], row["raw_bytes"]) == (2, "truncated_file", len(recovered))
    assert row["raw_text"] == recovered.decode()[:QUARANTINE_TEXT_CHARS]
    assert verify_ledger()[1] == []
