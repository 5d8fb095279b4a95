"""Generic REST connector: a contract dataset with an ``endpoint`` pulled incrementally, page by page.

Used for oem service_orders, oem recall_campaigns and warranty claim_status; everything dataset-specific
(endpoint, id fields = primary key minus version, updated field, env vars) comes from the contract.

For each page: fetch it (httpx, the body streamed and capped at ``max_page_bytes``, an ``Idempotency-Key``
per page; tenacity retries 429 honoring ``Retry-After``, 5xx, timeouts, transport errors and unparsable
bodies with exponential backoff, a bounded number of times), land the raw body atomically under
``landing/partners/<partner>/<dataset>/dt=…/<sync_id>-<page>.json`` BEFORE parsing (an unparsable body is
set aside as ``….rejected``), then enforce the contract and load the page in one DuckDB
transaction (``loading.load_batch``: good records upserted by the contract key, bad ones quarantined with
the rule they broke). Every HTTP attempt is logged to ``partner_api_calls`` in the same transaction as the
page it fetched (the SLA marts compute availability and latency from it). Only after that commit is
``partners/<partner>/<dataset>/state.json`` rewritten atomically with the pagination cursor, so a run killed
anywhere resumes at the first page not durably loaded: no gaps, and replays of a page add nothing. When the
last page is loaded the state keeps the high-water mark (updated_at, *id fields); the next sync asks for
``updated_since`` = that mark minus ``overlap`` (late writes with a slightly older timestamp are not missed).

A hostile page never fails the sync nor loops it; each is one quarantined item (line_no 0, a schema breach
and its alert like any rule):

- a body that is still not a JSON page (``{"data": [...], "next_cursor": string or null}``: an HTML error
  page, truncated JSON, JSON nested past the recursion limit) after ``max_unparsable_attempts`` is
  ``format:page``; a body past ``max_page_bytes`` (declared or streamed; its first bytes are landed) is
  ``size:page``, not retried. Neither says where the next page is: the sync stops there, its cursor saved
  (the next sync asks for that page again), and returns with ``stopped`` saying why;
- a page that parses but fails to load for an unexpected reason is ``error:<exception type>``, and the sync
  goes on with its next cursor;
- a ``next_cursor`` already followed in this sync is ``pagination:repeated_cursor``: the page's records load,
  the sync ends there with the high-water mark of what it saw (the next one asks from that mark);
- at most ``max_pages`` pages per call: past them the sync pauses, its cursor saved.

Configured by the contract's ``urlEnv`` and ``apiKeyEnv``; without the URL ``sync()`` logs one line and
does nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyarrow as pa
from tenacity import RetryError, Retrying, retry_if_exception_type, wait_exponential

from pitwall import paths
from pitwall.duck import connect
from pitwall.http import ResponseTooLarge, RetryableStatus, is_retryable, read_capped, read_head, wait_retry_after

from . import contracts, loading

log = logging.getLogger(__name__)

MAX_CLOCK_AHEAD = timedelta(days=1)  # a partner's updated_at further ahead than this never moves the cursor
DEFAULT_PAGE_SIZE = 100           # records per page when the contract names no pageSize
MAX_PAGES_PER_SYNC = 1000          # a partner paging forever is stopped here (the next sync continues)
MAX_PAGE_BYTES = 16 * 1024 * 1024  # a page of 500 records is well under 1 MB
MAX_UNPARSABLE_ATTEMPTS = 3        # a truncated body heals on a retry; a page that never parses will not
MAX_CURSOR_CHARS = 2048            # it goes into a URL
IDEMPOTENCY_HEADER = "Idempotency-Key"


# -- results and errors ------------------------------------------------------------------------------

@dataclass
class SyncResult:
    partner: str
    dataset: str
    configured: bool = True
    sync_id: str | None = None
    resumed: bool = False
    complete: bool = False          # reached the last page (False when paused by max_pages, or stopped)
    stopped: str = ""               # why the sync ended before the last page (a refused page, a repeated cursor)
    pages: int = 0
    requests: int = 0
    records_received: int = 0
    records_loaded: int = 0
    duplicates_skipped: int = 0
    quarantined: int = 0
    quarantined_by_rule: Counter = field(default_factory=Counter)
    new_breaches: list[str] = field(default_factory=list)
    # retries by kind: rate_limited, server_error, timeout, unparsable, transport
    retries: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    high_water: dict | None = None
    message: str = ""


class PartnerSyncError(RuntimeError):
    """A page could not be fetched (attempts exhausted, or a non-retryable answer such as 401)."""


class PageRefused(Exception):
    """A page answered 200 but cannot be loaded: quarantined whole with ``rule``; ``landing_file`` holds what
    came (set aside as ``….rejected``) and ``identity`` keys the quarantine row."""

    rule = "format:page"

    def __init__(self, detail: str, landing_file: Path, identity: dict):
        super().__init__(detail)
        self.detail, self.landing_file, self.identity = detail, landing_file, identity


class UnparsablePage(PageRefused):
    """Not a JSON page (an HTML error page, truncated JSON, nested too deep); retried a few times."""

    rule = "format:page"


class PageTooLarge(PageRefused):
    """A body past ``max_page_bytes``; not retried."""

    rule = "size:page"


def _retry_kind(exc: BaseException) -> str:
    if isinstance(exc, RetryableStatus):
        return "rate_limited" if exc.response.status_code == 429 else "server_error"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, UnparsablePage):
        return "unparsable"
    return "transport"


# -- state ---------------------------------------------------------------------------------------------

def state_path(dataset: contracts.Dataset) -> Path:
    return paths.data_dir() / "partners" / dataset.partner / dataset.name / "state.json"


def landing_root(dataset: contracts.Dataset) -> Path:
    return paths.landing_dir() / "partners" / dataset.partner / dataset.name


def load_state(dataset: contracts.Dataset) -> dict:
    path = state_path(dataset)
    if not path.exists():
        return {"high_water": None, "in_progress": None}
    return json.loads(path.read_text())


def write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    with tmp.open("wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


def save_state(dataset: contracts.Dataset, state: dict) -> None:
    write_atomically(state_path(dataset), json.dumps(state, indent=2, sort_keys=True).encode())


def _parse_ts(value) -> datetime | None:
    """An ISO timestamp with a zone, in UTC (None otherwise, or beyond datetime's range in UTC)."""
    return loading.parse_timestamp(value) if isinstance(value, str) else None


def _mark(position: tuple | None) -> dict | None:
    if position is None:
        return None
    ts, *ids = position
    return {"updated_at": ts.astimezone(UTC).isoformat().replace("+00:00", "Z"), "ids": ids}


def _unmark(mark: dict | None) -> tuple | None:
    return None if mark is None else (_parse_ts(mark["updated_at"]), *mark["ids"])


def page_high_water(dataset: contracts.Dataset, records: list, now: datetime | None = None) -> tuple | None:
    """The page's greatest (updated_at, *ids) over records that carry them, broken or not: a drifted record
    was still served, so the cursor must move past it. A time later than now plus MAX_CLOCK_AHEAD is a wrong
    clock, not a position: as the high-water mark it would hide every update made before it from later syncs
    (the record itself loads or is quarantined by its contract)."""
    horizon = (now or datetime.now(UTC)) + MAX_CLOCK_AHEAD
    positions = [
        (ts, *(str(r[f]) for f in dataset.id_fields)) for r in records
        if isinstance(r, dict) and (ts := _parse_ts(r.get(dataset.updated_field))) is not None and ts <= horizon
        and all(r.get(f) is not None for f in dataset.id_fields)
    ]
    return max(positions, default=None)


# -- the API call log ------------------------------------------------------------------------------------

_CALL_SCHEMA = pa.schema([
    ("partner", pa.string()), ("dataset", pa.string()), ("endpoint", pa.string()), ("sync_id", pa.string()),
    ("requested_at", pa.timestamp("us", tz="UTC")), ("status_code", pa.int32()), ("outcome", pa.string()),
    ("latency_ms", pa.float64()), ("bytes", pa.int64()),
])


@dataclass
class ApiCallLog:
    """HTTP attempts not yet written; written with the page they fetched (or at the end of a failed sync)."""

    dataset: contracts.Dataset
    sync_id: str
    rows: list[dict] = field(default_factory=list)

    def record(self, requested_at: datetime, status_code: int | None, outcome: str, latency_ms: float,
               size: int | None) -> None:
        self.rows.append({"partner": self.dataset.partner, "dataset": self.dataset.name,
                          "endpoint": self.dataset.endpoint, "sync_id": self.sync_id, "requested_at": requested_at,
                          "status_code": status_code, "outcome": outcome, "latency_ms": latency_ms, "bytes": size})

    def flush(self, con) -> None:
        if not self.rows:
            return
        con.register("partner_call_rows", pa.Table.from_pylist(self.rows, schema=_CALL_SCHEMA))
        try:
            con.execute(f"insert into {loading.API_CALLS_TABLE} by name select * from partner_call_rows")
        finally:
            con.unregister("partner_call_rows")
        self.rows.clear()


# -- fetching --------------------------------------------------------------------------------------------

def read_page(body: bytes) -> dict:
    """A page body as ``{"data": [...], "next_cursor": str | None}``; raises otherwise (ValueError,
    RecursionError)."""
    payload = loading.parse_json(body)
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise ValueError("no data array")
    cursor = payload.get("next_cursor")
    if cursor is not None and not (isinstance(cursor, str) and len(cursor) <= MAX_CURSOR_CHARS):
        raise ValueError(f"next_cursor is neither null nor a string of at most {MAX_CURSOR_CHARS} characters")
    return payload


@dataclass
class _Fetcher:
    client: httpx.Client
    dataset: contracts.Dataset
    calls: ApiCallLog
    max_attempts: int
    max_unparsable_attempts: int
    max_page_bytes: int
    backoff_initial: float
    backoff_max: float
    result: SyncResult

    def _get(self, params: dict, headers: dict) -> tuple[httpx.Response, bytes]:
        """One HTTP attempt, logged whatever happens; the body streamed, at most ``max_page_bytes`` of it (an
        error answer: its start)."""
        requested_at, started = datetime.now(UTC), time.monotonic()
        self.result.requests += 1

        def log_call(status_code: int | None, outcome: str, size: int | None) -> None:
            self.calls.record(requested_at, status_code, outcome, (time.monotonic() - started) * 1000, size)

        code = None
        try:
            with self.client.stream("GET", self.dataset.endpoint, params=params, headers=headers) as response:
                code = response.status_code
                body = read_capped(response, self.max_page_bytes) if code == 200 else read_head(response)
        except httpx.TimeoutException:
            log_call(None, "timeout", None)
            raise
        except httpx.TransportError:
            log_call(None, "transport", None)
            raise
        except ResponseTooLarge as exc:
            log_call(code, "too_large", exc.received)
            raise
        outcome = ("rate_limited" if code == 429 else "server_error" if code >= 500
                   else "client_error" if code != 200 else "ok")
        log_call(code, outcome, len(body))
        return response, body

    def fetch(self, params: dict, landing_file: Path, idempotency_key: str) -> dict:
        """One page: request, land the raw body, parse it. Retried; raises PageRefused (a page that is not one,
        or too large) or PartnerSyncError (attempts exhausted, a non-retryable answer)."""
        attempt_no = unparsable = 0
        name = f"{self.dataset.partner}.{self.dataset.name}"

        def attempt() -> dict:
            nonlocal attempt_no, unparsable
            attempt_no += 1
            try:
                response, body = self._get(params, {IDEMPOTENCY_HEADER: idempotency_key})
            except ResponseTooLarge as exc:
                head_file = landing_file.with_name(f"{landing_file.stem}.too-large-{attempt_no}.head.rejected")
                write_atomically(head_file, exc.head)
                raise PageTooLarge(f"{exc} (max_page_bytes); its first {len(exc.head)} bytes are in {head_file.name}",
                                   head_file, {"request": params, "over_bytes": self.max_page_bytes,
                                               "head_sha256": hashlib.sha256(exc.head).hexdigest()}) from None
            if is_retryable(response):
                raise RetryableStatus(response)
            if response.status_code != 200:
                contract = contracts.contract(self.dataset.partner)
                hint = (f"check {contract.api_key_env}" if response.status_code in (401, 403)
                        else body[:200].decode("utf-8", "replace"))
                raise PartnerSyncError(f"{name}: {self.dataset.endpoint} answered HTTP {response.status_code} "
                                       f"({hint}); not retried")
            write_atomically(landing_file, body)  # land before parsing
            try:
                return read_page(body)
            except Exception as exc:  # noqa: BLE001 - JSONDecodeError, UnicodeDecodeError, RecursionError, ...
                unparsable += 1
                self.calls.rows[-1]["outcome"] = "unparsable"
                rejected = landing_file.with_name(f"{landing_file.stem}.bad-{attempt_no}.json.rejected")
                os.replace(landing_file, rejected)
                content_type = response.headers.get("Content-Type", "")
                raise UnparsablePage(
                    f"not a JSON page ({len(body)} bytes, Content-Type {content_type!r}): "
                    f"{loading.error_detail(exc)}", rejected,
                    {"request": params, "bytes": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                     "content_type": content_type, "head": body[:200].decode("utf-8", "replace")}) from exc

        def before_sleep(retry_state) -> None:
            exc = retry_state.outcome.exception()
            kind = _retry_kind(exc)
            self.result.retries[kind] += 1
            log.info("%s: %s on attempt %d (%s); retrying in %.2fs", name, kind, retry_state.attempt_number, exc,
                     retry_state.next_action.sleep if retry_state.next_action else 0)

        def stop(retry_state) -> bool:
            if isinstance(retry_state.outcome.exception(), UnparsablePage):
                return unparsable >= self.max_unparsable_attempts or retry_state.attempt_number >= self.max_attempts
            return retry_state.attempt_number >= self.max_attempts

        retrying = Retrying(
            stop=stop,
            wait=wait_retry_after(wait_exponential(multiplier=self.backoff_initial, max=self.backoff_max)),
            retry=retry_if_exception_type((RetryableStatus, UnparsablePage, httpx.TimeoutException,
                                           httpx.TransportError)),
            before_sleep=before_sleep,
            reraise=False,
        )
        try:
            return retrying(attempt)
        except RetryError as exc:
            last = exc.last_attempt.exception()
            if isinstance(last, UnparsablePage):
                raise last from None
            raise PartnerSyncError(f"{name}: page {params} failed after {self.max_attempts} attempts; "
                                   f"last error: {_retry_kind(last)}: {last}") from last


# -- the sync ----------------------------------------------------------------------------------------------

def configured_url(dataset: contracts.Dataset) -> str:
    return os.environ.get(contracts.contract(dataset.partner).url_env or "", "").strip()


def sync(partner: str, dataset_name: str, **options) -> SyncResult:
    """``sync_dataset`` of a contract dataset by name (e.g. ``sync("oem", "service_orders")``)."""
    return sync_dataset(contracts.dataset(partner, dataset_name), **options)


def sync_dataset(dataset: contracts.Dataset, *, page_size: int | None = None, timeout: float = 10.0,
                 max_attempts: int = 8, backoff_initial: float = 0.2, backoff_max: float = 10.0,
                 overlap: timedelta = timedelta(minutes=10), max_pages: int | None = None,
                 max_page_bytes: int = MAX_PAGE_BYTES, max_unparsable_attempts: int = MAX_UNPARSABLE_ATTEMPTS,
                 on_page_loaded: Callable[[int], None] | None = None) -> SyncResult:
    """Pull new and changed records of a REST dataset. Resumes an interrupted sync from its saved cursor.

    ``page_size`` (default the contract's pageSize, else DEFAULT_PAGE_SIZE) is the ``limit`` each page asks for.
    ``max_pages`` (default MAX_PAGES_PER_SYNC) stops after that many pages in this call (the cursor stays
    saved; the next call continues). ``on_page_loaded(page_no)`` runs after each page is committed and the
    state saved.
    """
    max_pages = MAX_PAGES_PER_SYNC if max_pages is None else max_pages
    page_size = page_size or dataset.page_size or DEFAULT_PAGE_SIZE
    if not dataset.endpoint:
        raise ValueError(f"{dataset.partner}.{dataset.name} has no endpoint in its contract")
    started = time.monotonic()
    contract = contracts.contract(dataset.partner)
    name = f"{dataset.partner}.{dataset.name}"
    base_url = configured_url(dataset)
    if not base_url:
        log.info("partner %s: not configured (%s is not set); skipping", name, contract.url_env)
        return SyncResult(dataset.partner, dataset.name, configured=False,
                          message=f"not configured: {contract.url_env} is not set")
    api_key = os.environ.get(contract.api_key_env or "", "")

    state = load_state(dataset)
    result = SyncResult(dataset.partner, dataset.name)
    progress = state.get("in_progress")
    if progress:
        result.resumed = True
        log.info("%s: resuming sync %s at page %d", name, progress["sync_id"], progress["next_page"])
    else:
        high = _unmark(state.get("high_water"))
        now = datetime.now(UTC)
        progress = {"sync_id": loading.new_sync_id(), "dt": f"{now:%Y-%m-%d}",
                    "updated_since": None if high is None else _mark((high[0] - overlap,))["updated_at"],
                    "cursor": None, "next_page": 0, "max_seen": state.get("high_water")}
    result.sync_id = progress["sync_id"]
    landing_dir = landing_root(dataset) / f"dt={progress['dt']}"
    headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
    calls = ApiCallLog(dataset, progress["sync_id"])
    followed = {progress["cursor"]} if progress["cursor"] else set()  # the cursors this call asked with

    def account(batch: loading.BatchResult) -> None:
        result.records_received += batch.received
        result.records_loaded += batch.loaded
        result.duplicates_skipped += batch.duplicates
        result.quarantined += batch.quarantined
        result.quarantined_by_rule += batch.quarantined_by_rule
        result.new_breaches += batch.new_breaches

    def refuse_page(landing_rel: str, rule: str, detail: str, identity: dict) -> None:
        """The page as one quarantined item (line 0), with the log of its HTTP attempts."""
        item = loading.Rejected(loading.canonical_json(identity), landing_rel, 0, rule, detail)
        account(loading.load_batch(con, dataset, [], sync_id=progress["sync_id"], rejected=[item],
                                   before_commit=calls.flush))

    paths.warehouse_path().parent.mkdir(parents=True, exist_ok=True)
    con = connect(paths.warehouse_path())
    try:
        loading.ensure_tables(con, [dataset])
        with httpx.Client(base_url=base_url, headers=headers, timeout=timeout) as client:
            fetcher = _Fetcher(client, dataset, calls, max_attempts, max_unparsable_attempts, max_page_bytes,
                               backoff_initial, backoff_max, result)
            pages_this_call = 0
            while pages_this_call < max_pages:
                page_no = progress["next_page"]
                params = {"limit": page_size}
                if progress["updated_since"]:
                    params["updated_since"] = progress["updated_since"]
                if progress["cursor"]:
                    params["cursor"] = progress["cursor"]
                landing_file = landing_dir / f"{progress['sync_id']}-{page_no:05d}.json"
                landing_rel = landing_file.relative_to(paths.data_dir()).as_posix()
                try:
                    payload = fetcher.fetch(params, landing_file, f"{progress['sync_id']}-{page_no:05d}")
                except PageRefused as refused:  # no cursor came with it: stop here, asked again next sync
                    refuse_page(refused.landing_file.relative_to(paths.data_dir()).as_posix(), refused.rule,
                                refused.detail, refused.identity)
                    result.stopped = (f"page {page_no} refused ({refused.rule}: {refused.detail}); the next sync "
                                      f"asks for it again")
                    log.warning("%s: %s", name, result.stopped)
                    break
                records = payload["data"]
                next_cursor = payload.get("next_cursor") or None
                repeated = next_cursor is not None and next_cursor in followed
                links = [loading.Rejected(
                    loading.canonical_json({"request": params, "next_cursor": next_cursor}), landing_rel, 0,
                    "pagination:repeated_cursor",
                    f"page {page_no} points back to a cursor this sync already followed; its records are loaded, "
                    f"the sync ends at this page")] if repeated else []
                try:
                    batch = loading.load_batch(
                        con, dataset, [loading.Incoming(r, landing_rel, i) for i, r in enumerate(records, start=1)],
                        sync_id=progress["sync_id"], rejected=links, before_commit=calls.flush)
                except loading.BreachAlertFailed:
                    raise
                except Exception as exc:  # noqa: BLE001 - one page, whatever breaks it, never stops the next
                    log.error("%s: page %d could not be loaded (%s); quarantined whole, going on", name, page_no,
                              loading.error_detail(exc))
                    refuse_page(landing_rel, loading.error_rule(exc), loading.error_detail(exc, "the page"),
                                {"request": params, "page_file": landing_rel, "error": type(exc).__name__})
                else:
                    account(batch)
                page_max, seen = page_high_water(dataset, records), _unmark(progress["max_seen"])
                if page_max is not None and (seen is None or page_max > seen):
                    progress["max_seen"] = _mark(page_max)
                result.pages += 1
                pages_this_call += 1
                if repeated:
                    result.stopped = f"page {page_no}'s next_cursor repeats one already followed (a pagination loop)"
                    log.warning("%s: %s; the sync ends at the high-water mark of what it saw", name, result.stopped)
                    next_cursor = None
                if next_cursor:
                    followed.add(next_cursor)
                    progress.update(cursor=next_cursor, next_page=page_no + 1)
                    state = {"high_water": state.get("high_water"), "in_progress": progress}
                else:
                    state = {"high_water": progress["max_seen"], "in_progress": None,
                             "last_sync": {"sync_id": progress["sync_id"], "pages": page_no + 1,
                                           "finished_at": datetime.now(UTC).isoformat(),
                                           "stopped": result.stopped or None}}
                save_state(dataset, state)  # after the page's commit: the cursor never runs ahead of the data
                if on_page_loaded:
                    on_page_loaded(page_no)
                if not next_cursor:
                    result.complete = not repeated
                    break
            else:
                log.warning("%s: paused after %d page(s) (max_pages); the next sync continues from the saved cursor",
                            name, max_pages)
    finally:
        try:
            calls.flush(con)  # the attempts of a page that never loaded still count toward availability
        finally:
            con.close()
    result.high_water = state.get("high_water") if not state.get("in_progress") else progress.get("max_seen")
    result.seconds = time.monotonic() - started
    status = ("complete" if result.complete else f"stopped: {result.stopped}" if result.stopped
              else "paused (cursor saved)")
    result.message = (f"{name}: {result.pages} page(s), {result.records_loaded} loaded, {result.duplicates_skipped} "
                      f"duplicates skipped, {result.quarantined} quarantined, retries {dict(result.retries)}, "
                      f"{status} in {result.seconds:.1f}s")
    log.info(result.message)
    return result
