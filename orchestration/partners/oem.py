"""The OEM maintenance network's connector: service orders, pulled incrementally over its REST API.

Plain functions; the Dagster asset in assets.py runs ``sync()``.

For each page: fetch it (httpx; tenacity retries 429 honoring ``Retry-After``, 5xx, timeouts,
transport errors and truncated bodies with exponential backoff, a bounded number of times), land
the raw body atomically under ``landing/partners/oem/dt=…/<sync_id>-<page>.json`` BEFORE parsing,
validate each record against the contract, then in one DuckDB transaction insert good records into
``partner_oem_service_orders`` (key (order_id, version); ``insert or ignore`` so replays are
harmless) and bad ones into ``partner_quarantine`` (key (partner, sha256 of the raw record)). Only
after that commit is ``partners/oem/state.json`` rewritten atomically with the pagination cursor,
so a run killed anywhere resumes at the first page not durably loaded: no gaps, and replays of a
page add nothing. When the last page is loaded the state keeps the high-water mark
(updated_at, order_id); the next sync asks for ``updated_since`` = that mark minus ``overlap``.

Configured by ``PITWALL_PARTNER_OEM_URL`` and ``PITWALL_PARTNER_OEM_API_KEY``; without the URL
``sync()`` logs one line and does nothing.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Callable

import httpx
import pyarrow as pa
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential
from tenacity.wait import wait_base

from pitwall import paths
from pitwall.duck import connect

log = logging.getLogger(__name__)

PARTNER = "oem"
ENDPOINT = "/v1/service-orders"
URL_ENV = "PITWALL_PARTNER_OEM_URL"
KEY_ENV = "PITWALL_PARTNER_OEM_API_KEY"
TABLE = "partner_oem_service_orders"
QUARANTINE_TABLE = "partner_quarantine"
STATUSES = frozenset({"open", "scheduled", "in_progress", "completed", "invoiced", "cancelled"})
REQUIRED = ("order_id", "vin", "status", "amount", "currency", "created_at", "updated_at", "version")
VIN = re.compile(r"^[A-HJ-NPR-Z0-9]{17}$")
AMOUNT = re.compile(r"^-?\d{1,14}(\.\d{1,4})?$")
CURRENCY = re.compile(r"^[A-Z]{3}$")
MAX_RETRY_AFTER = 60.0

DDL = f"""
create table if not exists {TABLE} (
    order_id varchar not null,
    version integer not null,
    vin varchar not null,
    status varchar not null,
    amount decimal(18, 4) not null,
    currency varchar not null,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    landing_file varchar not null,   -- relative to the data root
    line_no integer not null,        -- 1-based position of the record in the page's "data" array
    sync_id varchar not null,
    loaded_at timestamptz not null,
    primary key (order_id, version)
);
create table if not exists {QUARANTINE_TABLE} (
    partner varchar not null,
    record_sha256 varchar not null,
    raw_record varchar not null,     -- the record as JSON
    rule varchar not null,           -- e.g. missing:amount, type:version, enum:status
    detail varchar,
    order_id varchar,
    version varchar,
    landing_file varchar not null,
    line_no integer not null,
    sync_id varchar not null,
    quarantined_at timestamptz not null,
    primary key (partner, record_sha256)
);
"""


# -- results and errors ------------------------------------------------------------------------------

@dataclass
class SyncResult:
    partner: str = PARTNER
    configured: bool = True
    sync_id: str | None = None
    resumed: bool = False
    complete: bool = False          # reached the last page (False when stopped by max_pages)
    pages: int = 0
    requests: int = 0
    records_received: int = 0
    records_loaded: int = 0
    duplicates_skipped: int = 0
    quarantined: int = 0
    quarantined_by_rule: Counter = field(default_factory=Counter)
    # retries by kind: rate_limited, server_error, timeout, truncated, transport
    retries: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    high_water: dict | None = None
    message: str = ""


class PartnerSyncError(RuntimeError):
    """A page could not be fetched (attempts exhausted, or a non-retryable answer such as 401)."""


class RetryableStatus(Exception):
    def __init__(self, response: httpx.Response):
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


class TruncatedBody(Exception):
    pass


def _retry_kind(exc: BaseException) -> str:
    if isinstance(exc, RetryableStatus):
        return "rate_limited" if exc.response.status_code == 429 else "server_error"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, TruncatedBody):
        return "truncated"
    return "transport"


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


class wait_retry_after(wait_base):
    """Exponential backoff, but never less than the server's ``Retry-After`` on a 429."""

    def __init__(self, fallback: wait_base):
        self.fallback = fallback

    def __call__(self, retry_state) -> float:
        backoff = self.fallback(retry_state)
        exc = retry_state.outcome.exception() if retry_state.outcome else None
        if isinstance(exc, RetryableStatus) and exc.response.status_code == 429:
            seconds = retry_after_seconds(exc.response)
            if seconds is not None:
                return max(seconds, backoff)
        return backoff


# -- state ---------------------------------------------------------------------------------------------

def state_path() -> Path:
    return paths.data_dir() / "partners" / PARTNER / "state.json"


def landing_root() -> Path:
    return paths.landing_dir() / "partners" / PARTNER


def load_state() -> dict:
    path = state_path()
    if not path.exists():
        return {"high_water": None, "in_progress": None}
    return json.loads(path.read_text())


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def save_state(state: dict) -> None:
    _write_atomically(state_path(), json.dumps(state, indent=2, sort_keys=True).encode())


# -- validation ------------------------------------------------------------------------------------------

def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else None


def validate(record: Any) -> tuple[str, str] | None:
    """The first contract rule a record breaks, as (rule, detail), or None if it is good."""
    if not isinstance(record, dict):
        return "type:record", f"expected an object, got {type(record).__name__}"
    for name in REQUIRED:
        if name not in record or record[name] is None:
            extra = sorted(set(record) - set(REQUIRED))
            return f"missing:{name}", f"unexpected fields: {extra}" if extra else "absent"
    checks: list[tuple[str, bool, str]] = [
        ("type:order_id", isinstance(record["order_id"], str) and bool(record["order_id"]), "a non-empty string"),
        ("type:vin", isinstance(record["vin"], str), "a string"),
        ("format:vin", isinstance(record["vin"], str) and bool(VIN.match(record["vin"])), "17 VIN characters"),
        ("enum:status", record["status"] in STATUSES if isinstance(record["status"], str) else False,
         f"one of {sorted(STATUSES)}"),
        ("type:amount", isinstance(record["amount"], str), "a decimal as a string"),
        ("format:amount", isinstance(record["amount"], str) and bool(AMOUNT.match(record["amount"])),
         "a decimal string with at most 4 decimals"),
        ("format:currency", isinstance(record["currency"], str) and bool(CURRENCY.match(record["currency"])),
         "an ISO 4217 code"),
        ("type:version", isinstance(record["version"], int) and not isinstance(record["version"], bool),
         "an integer"),
        ("range:version", isinstance(record["version"], int) and record["version"] >= 1, ">= 1"),
        ("format:created_at", _parse_ts(record["created_at"]) is not None, "an ISO timestamp with a zone"),
        ("format:updated_at", _parse_ts(record["updated_at"]) is not None, "an ISO timestamp with a zone"),
    ]
    for rule, ok, expected in checks:
        if not ok:
            name = rule.split(":")[1]
            return rule, f"expected {expected}, got {json.dumps(record[name])[:80]}"
    return None


# -- fetching --------------------------------------------------------------------------------------------

@dataclass
class _Fetcher:
    client: httpx.Client
    max_attempts: int
    backoff_initial: float
    backoff_max: float
    result: SyncResult

    def fetch(self, params: dict, landing_file: Path) -> dict:
        """One page: request, land the raw body, parse it. Retried; raises PartnerSyncError when it gives up."""
        attempt_no = 0

        def attempt() -> dict:
            nonlocal attempt_no
            attempt_no += 1
            self.result.requests += 1
            response = self.client.get(ENDPOINT, params=params)
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryableStatus(response)
            if response.status_code != 200:
                hint = f"check {KEY_ENV}" if response.status_code in (401, 403) else response.text[:200]
                raise PartnerSyncError(f"OEM API answered HTTP {response.status_code} ({hint}); not retried")
            body = response.content
            _write_atomically(landing_file, body)  # land before parsing
            try:
                payload = json.loads(body)
                if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
                    raise ValueError("no data array")
            except ValueError as exc:  # JSONDecodeError is a ValueError
                os.replace(landing_file, landing_file.with_name(f"{landing_file.stem}.bad-{attempt_no}.json.rejected"))
                raise TruncatedBody(f"page body is not a complete JSON page ({len(body)} bytes): {exc}") from exc
            return payload

        def before_sleep(retry_state) -> None:
            exc = retry_state.outcome.exception()
            kind = _retry_kind(exc)
            self.result.retries[kind] += 1
            log.info("oem: %s on attempt %d (%s); retrying in %.2fs", kind, retry_state.attempt_number, exc,
                     retry_state.next_action.sleep if retry_state.next_action else 0)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=wait_retry_after(wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)),
            retry=retry_if_exception_type((RetryableStatus, TruncatedBody, httpx.TimeoutException,
                                           httpx.TransportError)),
            before_sleep=before_sleep,
            reraise=False,
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            raise PartnerSyncError(f"OEM page {params} failed after {self.max_attempts} attempts; "
                                   f"last error: {_retry_kind(last)}: {last}") from last


# -- loading ---------------------------------------------------------------------------------------------

def ensure_tables(con) -> None:
    con.execute(DDL)


def _load_page(con, records: list, landing_rel: str, sync_id: str, result: SyncResult) -> tuple | None:
    """Validate and load one page in one transaction; returns the page's max (updated_at, order_id)."""
    now = datetime.now(timezone.utc)
    good: dict[tuple[str, int], dict] = {}
    bad: dict[str, dict] = {}
    page_max = None
    for line_no, record in enumerate(records, start=1):
        result.records_received += 1
        if isinstance(record, dict):
            ts = _parse_ts(record.get("updated_at"))
            if ts is not None and isinstance(record.get("order_id"), str):
                page_max = max(page_max or (ts, record["order_id"]), (ts, record["order_id"]))
        broken = validate(record)
        if broken is None:
            key = (record["order_id"], record["version"])
            if key in good:
                result.duplicates_skipped += 1
                continue
            good[key] = {
                "order_id": record["order_id"], "version": record["version"], "vin": record["vin"],
                "status": record["status"], "amount": str(Decimal(record["amount"])), "currency": record["currency"],
                "created_at": _parse_ts(record["created_at"]), "updated_at": _parse_ts(record["updated_at"]),
                "landing_file": landing_rel, "line_no": line_no, "sync_id": sync_id, "loaded_at": now,
            }
        else:
            raw = json.dumps(record, sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256(raw.encode()).hexdigest()
            if digest in bad:
                result.duplicates_skipped += 1
                continue
            rec = record if isinstance(record, dict) else {}
            bad[digest] = {
                "partner": PARTNER, "record_sha256": digest, "raw_record": raw, "rule": broken[0],
                "detail": broken[1], "order_id": None if rec.get("order_id") is None else str(rec.get("order_id")),
                "version": None if rec.get("version") is None else str(rec.get("version")),
                "landing_file": landing_rel, "line_no": line_no, "sync_id": sync_id, "quarantined_at": now,
            }
    con.execute("begin transaction")
    try:
        if good:
            page = pa.Table.from_pylist(list(good.values()))
            con.register("oem_page", page)
            before = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0]
            con.execute(f"""insert or ignore into {TABLE}
                select order_id, version, vin, status, amount::decimal(18, 4), currency, created_at, updated_at,
                       landing_file, line_no, sync_id, loaded_at from oem_page""")
            inserted = con.execute(f"select count(*) from {TABLE}").fetchall()[0][0] - before
            con.unregister("oem_page")
            result.records_loaded += inserted
            result.duplicates_skipped += len(good) - inserted
        if bad:
            con.register("oem_bad", pa.Table.from_pylist(list(bad.values())))
            known = {d for (d,) in con.execute(
                f"select record_sha256 from {QUARANTINE_TABLE} where partner = ? and record_sha256 in "
                f"(select record_sha256 from oem_bad)", [PARTNER]).fetchall()}
            con.execute(f"""insert or ignore into {QUARANTINE_TABLE}
                select partner, record_sha256, raw_record, rule, detail, order_id, version, landing_file, line_no,
                       sync_id, quarantined_at from oem_bad""")
            con.unregister("oem_bad")
            for digest, row in bad.items():
                if digest in known:
                    result.duplicates_skipped += 1
                else:
                    result.quarantined += 1
                    result.quarantined_by_rule[row["rule"]] += 1
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    return page_max


# -- the sync ----------------------------------------------------------------------------------------------

def _mark(ts_order: tuple | None) -> dict | None:
    if ts_order is None:
        return None
    ts, order_id = ts_order
    return {"updated_at": ts.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"), "order_id": order_id}


def _unmark(mark: dict | None) -> tuple | None:
    return None if mark is None else (_parse_ts(mark["updated_at"]), mark["order_id"])


def sync(*, page_size: int = 100, timeout: float = 10.0, max_attempts: int = 8, backoff_initial: float = 0.2,
         backoff_max: float = 10.0, overlap: timedelta = timedelta(minutes=10), max_pages: int | None = None,
         on_page_loaded: Callable[[int], None] | None = None) -> SyncResult:
    """Pull new and changed service orders. Resumes an interrupted sync from its saved cursor.

    ``max_pages`` stops after that many pages in this call (the cursor stays saved; the next call
    continues). ``on_page_loaded(page_no)`` runs after each page is committed and the state saved.
    """
    started = time.monotonic()
    base_url = os.environ.get(URL_ENV, "").strip()
    if not base_url:
        log.info("partner oem: not configured (%s is not set); skipping", URL_ENV)
        return SyncResult(configured=False, message=f"not configured: {URL_ENV} is not set")
    api_key = os.environ.get(KEY_ENV, "")

    state = load_state()
    result = SyncResult()
    progress = state.get("in_progress")
    if progress:
        result.resumed = True
        log.info("oem: resuming sync %s at page %d", progress["sync_id"], progress["next_page"])
    else:
        high = _unmark(state.get("high_water"))
        since = None if high is None else _mark((high[0] - overlap, ""))["updated_at"]
        progress = {"sync_id": f"{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}",
                    "dt": f"{datetime.now(timezone.utc):%Y-%m-%d}", "updated_since": since, "cursor": None,
                    "next_page": 0, "max_seen": state.get("high_water")}
    result.sync_id = progress["sync_id"]
    landing_dir = landing_root() / f"dt={progress['dt']}"
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}

    paths.warehouse_path().parent.mkdir(parents=True, exist_ok=True)
    con = connect(paths.warehouse_path())
    try:
        ensure_tables(con)
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
            fetcher = _Fetcher(client, max_attempts, backoff_initial, backoff_max, result)
            pages_this_call = 0
            while True:
                if max_pages is not None and pages_this_call >= max_pages:
                    break
                page_no = progress["next_page"]
                params = {"limit": page_size}
                if progress["updated_since"]:
                    params["updated_since"] = progress["updated_since"]
                if progress["cursor"]:
                    params["cursor"] = progress["cursor"]
                landing_file = landing_dir / f"{progress['sync_id']}-{page_no:05d}.json"
                payload = fetcher.fetch(params, landing_file)
                landing_rel = landing_file.relative_to(paths.data_dir()).as_posix()
                page_max = _load_page(con, payload["data"], landing_rel, progress["sync_id"], result)
                seen = _unmark(progress["max_seen"])
                if page_max is not None and (seen is None or page_max > seen):
                    progress["max_seen"] = _mark(page_max)
                result.pages += 1
                pages_this_call += 1
                next_cursor = payload.get("next_cursor")
                if next_cursor:
                    progress.update(cursor=next_cursor, next_page=page_no + 1)
                    state = {"high_water": state.get("high_water"), "in_progress": progress}
                else:
                    state = {"high_water": progress["max_seen"], "in_progress": None,
                             "last_sync": {"sync_id": progress["sync_id"], "pages": page_no + 1,
                                           "finished_at": datetime.now(timezone.utc).isoformat()}}
                save_state(state)  # after the page's commit: the cursor never runs ahead of the data
                if on_page_loaded:
                    on_page_loaded(page_no)
                if not next_cursor:
                    result.complete = True
                    break
    finally:
        con.close()
    result.high_water = state.get("high_water") if result.complete else progress.get("max_seen")
    result.seconds = time.monotonic() - started
    result.message = (f"oem: {result.pages} page(s), {result.records_loaded} loaded, {result.duplicates_skipped} "
                      f"duplicates skipped, {result.quarantined} quarantined, retries {dict(result.retries)}, "
                      f"{'complete' if result.complete else 'paused (cursor saved)'} in {result.seconds:.1f}s")
    log.info(result.message)
    return result
