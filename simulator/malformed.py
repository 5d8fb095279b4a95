"""Bad input, one kind per planted record, for every reason code of docs/raw-layer.md.

Each bad record has exactly one defect, so its reason is unambiguous under the ingestion's order
of checks (invalid_utf8, oversized_payload, invalid_json, missing_field / wrong_type /
invalid_timestamp, unknown_event_type, future_timestamp). Bad lines carry fresh messageIds (or
none), so they never duplicate a good one. Records of a truncated gzip file are real events: the
complete lines before the cut load, the cut line is the one truncated_file record, and the rest is
lost, as when an upload is cut off.
"""
from __future__ import annotations

import datetime as dt
import gzip
import json
import zlib
from dataclasses import dataclass, field

from . import ids
from .world import DAY_US, US, World

ONE_MIB = 1_048_576
HOUR = 3_600 * US


@dataclass
class Planted:
    """One planted bad record (line_no is 1-based; record_index is the 0-based span index in a traces line)."""
    source: str
    path: str
    reason_code: str
    line_no: int | None
    record_index: int | None = None
    note: str = ""


@dataclass
class MalformedPlan:
    """Which arrival days get which bad input (spread over the run; with one day, all on it)."""
    enabled: bool
    days: int
    events_mixed_days: tuple[int, ...] = ()
    events_bad_file_day: int = -1
    events_truncated_day: int = -1
    crashes_day: int = -1
    traces_day: int = -1
    ops_unreadable_day: int = -1
    ops_null_key_day: int = -1
    telemetry_null_key_day: int = -1
    planted: list[Planted] = field(default_factory=list)
    truncated_files: list[dict] = field(default_factory=list)

    @classmethod
    def make(cls, days: int, enabled: bool) -> MalformedPlan:
        if not enabled:
            return cls(False, days)
        at = lambda f: min(days - 1, int(days * f))  # noqa: E731
        return cls(
            True, days,
            events_mixed_days=tuple(sorted({at(0.25), at(0.5), at(0.75)})),
            events_bad_file_day=at(0.35), events_truncated_day=at(0.6),
            crashes_day=at(0.5), traces_day=at(0.45),
            ops_unreadable_day=at(0.5), ops_null_key_day=at(0.3), telemetry_null_key_day=at(0.55),
        )

    def add(self, source: str, path: str, reason: str, line_no: int | None, record_index: int | None = None, note: str = "") -> None:
        self.planted.append(Planted(source, path, reason, line_no, record_index, note))

    def counts(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for p in self.planted:
            by = out.setdefault(p.source, {})
            by[p.reason_code] = by.get(p.reason_code, 0) + 1
        return out


def _iso(us: int, suffix: str = "+00:00") -> str:
    return dt.datetime.fromtimestamp(us / US, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + suffix


class BadEvents:
    """Segment events with one defect each, for a given arrival day."""

    def __init__(self, world: World, day: int, salt: int):
        self.w = world
        self.rng = ids.rng_for(world.seed, ids.MALFORMED, day, salt)
        self.day0 = world.day_start(day)

    def _event(self, event: str = "app_opened", properties: dict | None = None) -> dict:
        w, rng = self.w, self.rng
        user = int(rng.integers(0, len(w.user_id)))
        dev = int(w.user_first_device[user])
        recv = self.day0 + int(rng.integers(HOUR, DAY_US - HOUR))
        sent = recv - int(rng.integers(50_000, 800_000))
        ts = sent - int(rng.integers(1 * US, 20 * US))
        device_id = w.device_id[dev].decode()
        return {
            "integrations": {}, "anonymousId": device_id, "properties": properties or {}, "timestamp": _iso(ts),
            "context": {"app": {"name": "Pitwall", "version": "3.4.0", "build": "340", "namespace": "com.acme.customer"},
                        "device": {"id": device_id}, "library": {"name": "analytics-python", "version": "2.4.0"}},
            "userId": w.user_id[user], "type": "track", "event": event,
            "messageId": ids.uuid_ids(rng, 1)[0].decode(), "sentAt": _iso(sent), "receivedAt": _iso(recv, "Z"),
        }

    def lines(self, reasons: list[str]) -> list[tuple[bytes, str, str]]:
        """(line, reason_code, note) for each requested reason."""
        return [self.make(r) for r in reasons]

    def make(self, reason: str) -> tuple[bytes, str, str]:
        e = self._event()
        if reason == "invalid_json":
            variant = int(self.rng.integers(0, 3))
            if variant == 0:
                text = json.dumps(e)
                return text[: len(text) // 2].encode(), reason, "JSON cut in the middle"
            if variant == 1:
                return b'[{"type": "track", "event": "app_opened"}]', reason, "a JSON array, not an object"
            return b"POST /v1/batch HTTP/1.1", reason, "not JSON at all"
        if reason == "missing_field:messageId":
            del e["messageId"]
            return json.dumps(e).encode(), "missing_field", "no messageId"
        if reason == "missing_field:event":
            del e["event"]
            return json.dumps(e).encode(), "missing_field", "track without event"
        if reason == "missing_field:receivedAt":
            del e["receivedAt"]
            return json.dumps(e).encode(), "missing_field", "no receivedAt"
        if reason == "missing_field:userId":
            del e["userId"], e["anonymousId"]
            return json.dumps(e).encode(), "missing_field", "neither userId nor anonymousId"
        if reason == "wrong_type":
            e["messageId"] = int(self.rng.integers(10**8, 10**9))
            return json.dumps(e).encode(), reason, "messageId is a number"
        if reason == "invalid_timestamp":
            e["timestamp"] = "32/13/2026 25:61"
            return json.dumps(e).encode(), reason, "timestamp does not parse"
        if reason == "unknown_event_type":
            e["type"] = "bogus"
            del e["event"]
            return json.dumps(e).encode(), reason, 'type "bogus"'
        if reason == "future_timestamp":
            e["timestamp"] = "2099-01-01T00:00:00.000000+00:00"
            return json.dumps(e).encode(), reason, "device time in 2099 with a correct sentAt"
        if reason == "oversized_payload":
            blob = "A" * (ONE_MIB + 4096)
            e["event"] = "feature_request_submitted"
            e["properties"] = {"text": "see attachment", "attachment_base64": blob}
            return json.dumps(e).encode(), reason, "valid JSON over 1 MiB"
        if reason == "invalid_utf8":
            e["event"] = "feature_request_submitted"
            e["properties"] = {"text": "Rechnung als PDF @@BAD@@"}
            return json.dumps(e).encode().replace(b"@@BAD@@", b"\xff\xfe\xc3("), reason, "bytes that are not UTF-8"
        raise ValueError(reason)


EVENTS_MIXED = ["invalid_json", "missing_field:messageId", "missing_field:event", "wrong_type", "invalid_timestamp",
                "unknown_event_type", "future_timestamp", "invalid_utf8"]
EVENTS_BAD_FILE = ["invalid_json", "invalid_json", "invalid_json", "oversized_payload", "oversized_payload",
                   "missing_field:receivedAt", "missing_field:userId", "wrong_type", "invalid_timestamp",
                   "unknown_event_type", "future_timestamp", "invalid_utf8"]


def bad_crash_lines(world: World, day: int) -> list[tuple[bytes, str, str]]:
    rng = ids.rng_for(world.seed, ids.MALFORMED, day, 20)
    t = _iso(world.day_start(day) + int(rng.integers(HOUR, DAY_US - HOUR)), "Z")
    base = {"level": "fatal", "exception": {"values": [{"type": "RuntimeError", "value": "boom", "stacktrace": {"frames": []}}]},
            "event_id": ids.hex_ids(rng, 1, 16)[0].decode(), "timestamp": t, "release": "com.acme.tech@3.4.0+340",
            "platform": "python"}
    no_id = dict(base)
    del no_id["event_id"]
    bad_ts = dict(base, event_id=ids.hex_ids(rng, 1, 16)[0].decode(), timestamp="yesterday, around noon")
    text = json.dumps(base)
    return [
        (text[: len(text) // 3].encode(), "invalid_json", "JSON cut in the middle"),
        (b"\x00\x00garbage", "invalid_json", "not JSON"),
        (json.dumps(no_id).encode(), "missing_field", "no event_id"),
        (json.dumps(bad_ts).encode(), "invalid_timestamp", "timestamp does not parse"),
    ]


def bad_trace_span(world: World, day: int) -> str:
    """A server span without traceId (inserted as the first span of a line)."""
    rng = ids.rng_for(world.seed, ids.MALFORMED, day, 30)
    start = (world.day_start(day) + int(rng.integers(HOUR, DAY_US - HOUR))) * 1000
    return ('{"spanId": "' + ids.hex_ids(rng, 1, 8)[0].decode() + '", "name": "GET /v1/jobs", "kind": 2, '
            f'"startTimeUnixNano": "{start}", "endTimeUnixNano": "{start + 80_000_000}", "attributes": [], "status": {{}}, "flags": 256}}')


BAD_TRACE_LINES = [
    (b'{"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "mobile-api"}}]}, "scopeSpans": [{"sc', "invalid_json", "JSON cut in the middle"),
]

UNREADABLE_PARQUET = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message>'
                      b"<RequestId>4442587FB7D0A2F9</RequestId></Error>\n")


def truncate_gzip(lines: list[bytes], level: int) -> tuple[bytes, int, int]:
    """A valid gzip of the lines with its tail cut off, so the stream ends inside a line.
    Returns (bytes, complete lines before the cut, decodable uncompressed bytes)."""
    data = b"".join(line + b"\n" for line in lines)
    full = gzip.compress(data, compresslevel=level, mtime=0)
    cut = int(len(full) * 0.6)
    while cut > 20:
        prefix = zlib.decompressobj(wbits=31).decompress(full[:cut])
        if prefix and not prefix.endswith(b"\n") and prefix.count(b"\n") >= 1:
            return full[:cut], prefix.count(b"\n"), len(prefix)
        cut -= 7
    raise RuntimeError("could not cut the gzip stream inside a line")
