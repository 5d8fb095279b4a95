"""The OEM maintenance network's REST JSON API, simulated: a real HTTP server on 127.0.0.1.

``GET /v1/service-orders?updated_since=<ISO>&cursor=<opaque>&limit=<n>`` answers
``{"data": [...], "next_cursor": "..." | null}``, ordered by (updated_at, order_id); the cursor encodes
the last (updated_at, order_id) of the page, so it stays valid while records change. A bearer key is
required (401 otherwise).

``OemWorld`` is deterministic for a seed: ``n_orders`` orders, then batches of late updates (a new
version with a later ``updated_at``, plus a few new orders) applied one per ``world.advance()``.
``world.truth()`` is every (order_id, version) ever published. The API serves only each order's
current version, so a connector sees every version only if it syncs between advances.

``Faults`` injects, per request and seeded: 429 with ``Retry-After``, bursts of consecutive 503s,
timeouts (the server sleeps past the client's timeout), a 200 whose body is cut short, duplicated
records (within a page, or the previous page's last record again), and schema drift. Drift is a
property of a record version (a hash of the seed and the key), not of a request, so every replay
of a drifted record is drifted the same way: ``server.drifted()`` maps those keys to their kind.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

STATUSES = ("open", "scheduled", "in_progress", "completed", "invoiced", "cancelled")
CURRENCIES = ("EUR", "USD", "GBP")
VIN_ALPHABET = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"  # no I, O, Q
DEFAULT_API_KEY = "oem-sim-key"
DRIFT_KINDS = ("rename_amount", "amount_number", "version_string")
MAX_LIMIT = 500


def iso(ts: datetime) -> str:
    return ts.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_iso(value: str) -> datetime:
    ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return ts if ts.tzinfo else ts.replace(tzinfo=timezone.utc)


def encode_cursor(updated_at: str, order_id: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([updated_at, order_id]).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    padded = cursor + "=" * (-len(cursor) % 4)
    updated_at, order_id = json.loads(base64.urlsafe_b64decode(padded))
    return parse_iso(updated_at), order_id


class OemWorld:
    """Deterministic service orders and their late updates."""

    def __init__(self, seed: int = 1, n_orders: int = 200, start: datetime | None = None, *,
                 update_batches: int = 3, update_share: float = 0.15, new_per_batch: int = 5):
        self.seed = seed
        self.start = start or datetime(2026, 1, 1, tzinfo=timezone.utc)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._orders: dict[str, dict] = {}
        self._truth: set[tuple[str, int]] = set()
        self._next_id = 1
        self._clock = self.start
        self.batches_applied = 0
        self._update_batches = update_batches
        self._update_share = update_share
        self._new_per_batch = new_per_batch
        span = timedelta(days=30)
        for _ in range(n_orders):
            created = self.start + timedelta(seconds=self._rng.randrange(int(span.total_seconds())))
            self._publish(self._new_order(created))
        self._clock = self.start + span

    def _new_order(self, created: datetime) -> dict:
        order_id = f"SO-{self.seed:03d}-{self._next_id:06d}"
        self._next_id += 1
        return {
            "order_id": order_id,
            "vin": "".join(self._rng.choice(VIN_ALPHABET) for _ in range(17)),
            "status": self._rng.choice(STATUSES[:3]),
            "amount": str(Decimal(self._rng.randrange(1500, 250000)) / 100),
            "currency": self._rng.choice(CURRENCIES),
            "created_at": iso(created),
            "updated_at": iso(created + timedelta(seconds=self._rng.randrange(0, 3600))),
            "version": 1,
        }

    def _publish(self, order: dict) -> None:
        self._orders[order["order_id"]] = order
        self._truth.add((order["order_id"], order["version"]))

    def advance(self) -> int:
        """Apply the next batch of late updates (and a few new orders); returns how many versions it added."""
        with self._lock:
            if self.batches_applied >= self._update_batches:
                return 0
            self.batches_applied += 1
            batch_start = self._clock + timedelta(hours=1)
            self._clock = batch_start + timedelta(days=1)
            ids = sorted(self._orders)
            chosen = self._rng.sample(ids, max(1, int(len(ids) * self._update_share)))
            for order_id in chosen:
                old = self._orders[order_id]
                new = dict(old, version=old["version"] + 1,
                           updated_at=iso(batch_start + timedelta(seconds=self._rng.randrange(86400))))
                new["status"] = self._rng.choice(STATUSES[2:])
                if self._rng.random() < 0.5:
                    new["amount"] = str(Decimal(self._rng.randrange(1500, 250000)) / 100)
                self._publish(new)
            for _ in range(self._new_per_batch):
                self._publish(self._new_order(batch_start + timedelta(seconds=self._rng.randrange(86400))))
            return len(chosen) + self._new_per_batch

    def truth(self) -> set[tuple[str, int]]:
        with self._lock:
            return set(self._truth)

    def current(self) -> list[dict]:
        """Each order's current version, ordered by (updated_at, order_id)."""
        with self._lock:
            orders = [dict(o) for o in self._orders.values()]
        return sorted(orders, key=lambda o: (parse_iso(o["updated_at"]), o["order_id"]))


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

    def drift_kind(self, order_id: str, version: int) -> str | None:
        if self.drift_share <= 0:
            return None
        digest = hashlib.sha256(f"{self.seed}:{order_id}:{version}".encode()).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= self.drift_share:
            return None
        return self.drift_kinds[digest[8] % len(self.drift_kinds)]


@dataclass
class ServerStats:
    requests: int = 0  # authorized requests to the endpoint
    unauthorized: int = 0
    faults: Counter = field(default_factory=Counter)
    log: list[tuple[float, str]] = field(default_factory=list)  # (time.monotonic(), outcome)

    @property
    def faulted(self) -> int:
        return sum(self.faults.values())


def drift(record: dict, kind: str) -> dict:
    record = dict(record)
    if kind == "rename_amount":
        record["total_amount"] = record.pop("amount")
    elif kind == "amount_number":
        record["amount"] = float(record["amount"])
    elif kind == "version_string":
        record["version"] = str(record["version"])
    return record


class OemApiServer:
    """The API on 127.0.0.1 in a background thread; use as a context manager (``.base_url``, ``.stats``)."""

    def __init__(self, world: OemWorld, faults: Faults | None = None, port: int = 0,
                 api_key: str = DEFAULT_API_KEY):
        self.world = world
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

    def truth(self) -> set[tuple[str, int]]:
        return self.world.truth()

    def drifted(self) -> dict[tuple[str, int], str]:
        """Keys of the truth served drifted, and how."""
        out = {}
        for key in self.world.truth():
            kind = self.faults.drift_kind(*key)
            if kind:
                out[key] = kind
        return out

    def start(self) -> "OemApiServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="oem-api", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "OemApiServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- request handling -------------------------------------------------------------------------

    def _decide(self) -> str:
        """The fault for one authorized request (drawn under a lock, in request order)."""
        f = self.faults
        with self._lock:
            n = self.stats.requests
            self.stats.requests += 1
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

    def _page(self, query: dict[str, list[str]], outcome: str) -> dict:
        updated_since = query.get("updated_since", [None])[0]
        cursor = query.get("cursor", [None])[0]
        limit = min(MAX_LIMIT, max(1, int(query.get("limit", ["100"])[0])))
        orders = self.world.current()
        rows = orders
        if updated_since:
            since = parse_iso(updated_since)
            rows = [o for o in rows if parse_iso(o["updated_at"]) >= since]
        previous = None
        if cursor:
            after = decode_cursor(cursor)
            previous = next((o for o in orders if (parse_iso(o["updated_at"]), o["order_id"]) == after), None)
            rows = [o for o in rows if (parse_iso(o["updated_at"]), o["order_id"]) > after]
        page = rows[:limit]
        more = len(rows) > limit
        next_cursor = encode_cursor(page[-1]["updated_at"], page[-1]["order_id"]) if page and more else None
        data = [drift(o, k) if (k := self.faults.drift_kind(o["order_id"], o["version"])) else o for o in page]
        if outcome == "duplicate" and data:
            with self._lock:
                pick = self._rng.random()
            if previous is not None and pick < 0.5:  # the previous page's last record, again
                k = self.faults.drift_kind(previous["order_id"], previous["version"])
                data.insert(0, drift(previous, k) if k else previous)
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
                if url.path != "/v1/service-orders":
                    return self._send(404, b'{"error": "not found"}')
                if self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    with server._lock:
                        server.stats.unauthorized += 1
                    return self._send(401, b'{"error": "unauthorized"}', {"WWW-Authenticate": "Bearer"})
                outcome = server._decide()
                if outcome.startswith("429"):
                    return self._send(429, b'{"error": "rate limited"}', {"Retry-After": outcome.split(":")[1]})
                if outcome == "503":
                    return self._send(503, b'{"error": "unavailable"}')
                try:
                    payload = server._page(parse_qs(url.query), outcome)
                except (ValueError, TypeError) as exc:
                    return self._send(400, json.dumps({"error": str(exc)}).encode())
                body = json.dumps(payload).encode()
                if outcome == "timeout":
                    time.sleep(server.faults.timeout_sleep)
                elif outcome == "truncate":
                    body = body[: max(1, len(body) * 2 // 3)]
                self._send(200, body)

        return Handler


@contextmanager
def serve(world: OemWorld, faults: Faults | None = None, port: int = 0,
          api_key: str = DEFAULT_API_KEY) -> Iterator[str]:
    """Run the API for the block; yields its base URL. Use ``OemApiServer`` to also see its stats."""
    with OemApiServer(world, faults, port, api_key) as server:
        yield server.base_url
