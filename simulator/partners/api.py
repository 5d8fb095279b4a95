"""A partner's REST JSON API, simulated: a real HTTP server on 127.0.0.1 serving one or more endpoints.

Each endpoint serves a *store*: any object with

- ``id_fields: tuple[str, ...]`` — a record's identity (the contract's primary key minus its version);
- ``current() -> list[dict]`` — each record's current version as wire JSON, sorted by (updated_at, *id_fields);
- optionally ``version_field`` (default ``"version"``; None when records have no version), ``amount_field``
  (default ``"amount"``; the field the amount drifts act on, never null; None: no amount drifts) and ``truth() -> set[tuple]`` (every
  (*ids, version) ever published, for tests).

``GET <path>?updated_since=<ISO>&cursor=<opaque>&limit=<n>`` answers ``{"data": [...], "next_cursor": ... | null}``
in (updated_at, *id_fields) order; the cursor encodes the page's last (updated_at, *ids), so it stays valid
while records change. A bearer key is required (401 otherwise); an unknown path is 404.

``Faults`` injects, per request and seeded: 429 with ``Retry-After``, bursts of consecutive 503s, timeouts (the
server sleeps past the client's timeout), a 200 whose body is cut short, duplicated records (within a page, or
the previous page's last record again), and schema drift. Drift is a property of a record's key (a hash of the
seed and (*ids, version)), not of a request, so every replay of a drifted record is drifted the same way:
``server.drifted()`` maps those keys to their kind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

DEFAULT_API_KEY = "partner-sim-key"
DRIFT_KINDS = ("rename_amount", "amount_number", "version_string")
MAX_LIMIT = 500


class Store(Protocol):
    id_fields: tuple[str, ...]

    def current(self) -> list[dict]: ...


def iso(ts: datetime) -> str:
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


def encode_cursor(updated_at: str, *ids: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, *ids]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple:
    padded = cursor + "=" * (-len(cursor) % 4)
    updated_at, *ids = json.loads(base64.urlsafe_b64decode(padded))
    return (parse_iso(updated_at), *ids)


@dataclass
class Faults:
    """Per-request fault probabilities (seeded). ``script`` forces the first requests' faults in order
    (``"429"``, ``"503"``, ``"timeout"``, ``"truncate"``, ``"duplicate"`` or ``"ok"``)."""

    seed: int = 0
    rate_limit: float = 0.0
    retry_after: tuple[int, ...] = (0, 1)
    server_error_burst: float = 0.0
    burst_length: int = 3
    timeout: float = 0.0
    timeout_sleep: float = 1.0
    truncate: float = 0.0
    duplicate: float = 0.0
    drift_share: float = 0.0
    drift_kinds: tuple[str, ...] = DRIFT_KINDS
    script: tuple[str, ...] = ()

    def drift_kind(self, *key: Any) -> str | None:
        """The drift of the record version with this key ((*ids, version)), or None."""
        if self.drift_share <= 0:
            return None
        digest = hashlib.sha256(f"{self.seed}:{':'.join(str(k) for k in key)}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.drift_share:
            return None
        return self.drift_kinds[digest[8] % len(self.drift_kinds)]


@dataclass
class ServerStats:
    requests: int = 0  # authorized requests to an endpoint
    unauthorized: int = 0
    by_endpoint: Counter = field(default_factory=Counter)
    faults: Counter = field(default_factory=Counter)
    log: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), outcome)

    @property
    def faulted(self) -> int:
        return sum(self.faults.values())


def drift(record: dict, kind: str, *, amount_field: str = "amount", version_field: str | None = "version") -> dict:
    """The record as a drifted partner would send it (a kind that does not apply leaves it as it is)."""
    record = dict(record)
    if kind == "rename_amount" and amount_field in record:
        record[f"total_{amount_field}"] = record.pop(amount_field)
    elif kind == "amount_number" and record.get(amount_field) is not None:
        record[amount_field] = float(record[amount_field])
    elif kind == "version_string" and version_field and record.get(version_field) is not None:
        record[version_field] = str(record[version_field])
    return record


def _version_field(store) -> str | None:
    return getattr(store, "version_field", "version")


def record_key(store, record: dict) -> tuple:
    """A record version's key: (*ids, version), or (*ids, updated_at) for records without versions."""
    version_field = _version_field(store)
    return (*(record[f] for f in store.id_fields), record[version_field] if version_field else record["updated_at"])


class PartnerApiServer:
    """The endpoints on 127.0.0.1 in a background thread; use as a context manager (``.base_url``, ``.stats``)."""

    def __init__(self, endpoints: dict[str, Store], faults: Faults | None = None, port: int = 0,
                 api_key: str = DEFAULT_API_KEY):
        self.endpoints = dict(endpoints)
        self.faults = faults or Faults()
        self.api_key = api_key
        self.stats = ServerStats()
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self._burst_left = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def truth(self, path: str | None = None) -> set[tuple]:
        """Every key published by the stores that know it (one path, or all)."""
        out: set[tuple] = set()
        for p, store in self.endpoints.items():
            if path in (None, p) and hasattr(store, "truth"):
                out |= store.truth()
        return out

    def drifted(self, path: str | None = None) -> dict[tuple, str]:
        """Keys of the truth served drifted, and how."""
        out = {}
        for p, store in self.endpoints.items():
            if path in (None, p) and hasattr(store, "truth"):
                for key in store.truth():
                    if kind := self._drift_kind(store, key):
                        out[key] = kind
        return out

    def _drift_kind(self, store, key: tuple) -> str | None:
        """The record's drift, if the store has the field it acts on (a store without amounts has no amount drift)."""
        kind = self.faults.drift_kind(*key)
        if kind in ("rename_amount", "amount_number") and not getattr(store, "amount_field", "amount"):
            return None
        if kind == "version_string" and not _version_field(store):
            return None
        return kind

    def start(self) -> PartnerApiServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="partner-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> PartnerApiServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------------------

    def _decide(self, path: str) -> str:
        """The fault for one authorized request (drawn under a lock, in request order)."""
        f = self.faults
        with self._lock:
            n = self.stats.requests
            self.stats.requests += 1
            self.stats.by_endpoint[path] += 1
            if n < len(f.script):
                outcome = f.script[n]
            elif self._burst_left > 0:
                self._burst_left -= 1
                outcome = "503"
            else:
                r = self._rng.random()
                outcome = "ok"
                for kind, p in (("429", f.rate_limit), ("503", f.server_error_burst), ("timeout", f.timeout),
                                ("truncate", f.truncate), ("duplicate", f.duplicate)):
                    if r < p:
                        outcome = kind
                        break
                    r -= p
                if outcome == "503":
                    self._burst_left = max(0, f.burst_length - 1)
            if outcome != "ok":
                self.stats.faults[outcome] += 1
            self.stats.log.append((time.monotonic(), outcome))
            extra = self._rng.random()  # drawn every time so later decisions don't depend on outcome
            return outcome if outcome != "429" else f"429:{f.retry_after[int(extra * len(f.retry_after))]}"

    def _served(self, store, record: dict) -> dict:
        kind = self._drift_kind(store, record_key(store, record))
        if not kind:
            return record
        return drift(record, kind, amount_field=getattr(store, "amount_field", "amount"),
                     version_field=_version_field(store))

    def _page(self, store, query: dict[str, list[str]], outcome: str) -> dict:
        updated_since = query.get("updated_since", [None])[0]
        cursor = query.get("cursor", [None])[0]
        limit = min(MAX_LIMIT, max(1, int(query.get("limit", ["100"])[0])))
        records = store.current()

        def position(record: dict) -> tuple:
            return (parse_iso(record["updated_at"]), *(record[f] for f in store.id_fields))

        rows = records
        if updated_since:
            since = parse_iso(updated_since)
            rows = [r for r in rows if parse_iso(r["updated_at"]) >= since]
        previous = None
        if cursor:
            after = decode_cursor(cursor)
            previous = next((r for r in records if position(r) == after), None)
            rows = [r for r in rows if position(r) > after]
        page = rows[:limit]
        more = len(rows) > limit
        next_cursor = (encode_cursor(page[-1]["updated_at"], *(page[-1][f] for f in store.id_fields))
                       if page and more else None)
        data = [self._served(store, r) for r in page]
        if outcome == "duplicate" and data:
            with self._lock:
                pick = self._rng.random()
            if previous is not None and pick < 0.5:  # the previous page's last record, again
                data.insert(0, self._served(store, previous))
            else:
                i = int(pick * len(data))
                data.insert(i, data[i])
        return {"data": data, "next_cursor": next_cursor}

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout fault)

            def do_GET(self) -> None:
                url = urlsplit(self.path)
                store = server.endpoints.get(url.path)
                if store is None:
                    return self._send(404, b'{"error": "not found"}')
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    with server._lock:
                        server.stats.unauthorized += 1
                    return self._send(401, b'{"error": "unauthorized"}', {"WWW-Authenticate": "Bearer"})
                outcome = server._decide(url.path)
                if outcome.startswith("429"):
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": outcome.split(":")[1]})
                if outcome == "503":
                    return self._send(503, b'{"error": "unavailable"}')
                try:
                    payload = server._page(store, parse_qs(url.query), outcome)
                except (ValueError, TypeError, KeyError) as exc:
                    return self._send(400, json.dumps({"error": str(exc)}).encode())
                body = json.dumps(payload).encode()
                if outcome == "timeout":
                    time.sleep(server.faults.timeout_sleep)
                elif outcome == "truncate":
                    body = body[: max(1, len(body) * 2 // 3)]
                self._send(200, body)

        return Handler
