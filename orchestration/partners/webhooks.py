"""Webhook-lines connector: the JSONL files our webhook receiver appends (roadside dispatch events).

Each line of ``landing/partners/<partner>/dt=…/<contract file glob>`` is an envelope
``{"received_at": ISO, "signature": "sha256=<hex>", "body": "<the partner's JSON text>"}``. A line is checked in
this order, and quarantined with the first rule it breaks: the line is JSON (``format:json``), it is an envelope
(``format:envelope``), the signature is HMAC-SHA256 of ``body`` with the secret from the contract's
``secretEnv`` (``signature:invalid``), the body is JSON (``format:json``); then the event plus the envelope's
``received_at`` goes through the contract enforcement of every load (``loading.load_batch``).

Deliveries are at least once: a redelivered event (same event, later received_at) is a duplicate, the first
delivery is kept (by the primary key, event_id). ``partner_file_ledger`` records per file the bytes and lines
loaded and the sha256 of that prefix, in the transaction that loads them: a file appended to later loads only
its new lines; a loaded prefix that changed is an error (``PartnerFileChanged``). Only complete lines load (the
receiver may be writing the last one). The new lines of many files load as one batch (``BATCH_LINES``).

No line blocks the lines or files after it: whatever a line does (a signature that is not ASCII, a body with a
lone surrogate, JSON nested 100,000 deep, an absurd number) it is quarantined with a reason, an unexpected
error as ``error:<exception type>``. Should a whole batch still fail to load, each file's new lines are loaded
alone, and those that fail again are quarantined as one item (line 0) without advancing the file's ledger
entry, so the next run tries them again; the other files load.

Without the secret env var set, ``load_dataset`` logs one line and does nothing (like an unset API URL).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pitwall import paths
from pitwall.duck import connect

from . import contracts, loading

log = logging.getLogger(__name__)

SIGNATURE_PREFIX = "sha256="
ENVELOPE_FIELDS = ("received_at", "signature", "body")
RECEIVED_AT = "received_at"  # the envelope's field the contract's received_at column comes from


def landing_root(dataset: contracts.Dataset) -> Path:
    return paths.landing_dir() / "partners" / dataset.partner


def webhook_files(dataset: contracts.Dataset) -> list[Path]:
    return sorted(landing_root(dataset).glob(f"dt=*/{dataset.file['glob']}"))


def signature(secret: str, body: str) -> str:
    """What a partner puts in the envelope's ``signature`` for ``body``."""
    return _signature(secret, body.encode())


def _signature(secret: str, body: bytes) -> str:
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class _LineRefused(Exception):
    def __init__(self, rule: str, detail: str):
        super().__init__(detail)
        self.rule, self.detail = rule, detail


def read_envelope(raw_line: bytes, secret: str) -> Any:
    """One line's wire record (the event plus the envelope's received_at); raises _LineRefused with the first
    rule the line breaks."""
    try:
        envelope = loading.parse_json(raw_line)
    except (ValueError, RecursionError) as exc:  # bad UTF-8, bad JSON, nested past the recursion limit
        raise _LineRefused("format:json", loading.error_detail(exc, "the line is not JSON")) from None
    if not isinstance(envelope, dict) or not all(isinstance(envelope.get(f), str) for f in ENVELOPE_FIELDS):
        raise _LineRefused("format:envelope", f"expected an object with string fields {list(ENVELOPE_FIELDS)}")
    body, claimed = envelope["body"], envelope["signature"]
    try:
        body_bytes = body.encode()
    except UnicodeEncodeError:  # a "\\ud800" escape: no UTF-8 text, so not what the partner signed
        raise _LineRefused("format:envelope", "the body has a lone surrogate: it is not UTF-8 text") from None
    # compare_digest refuses str with non-ASCII characters (TypeError): a signature is ASCII or it is wrong
    if not claimed.isascii() or not hmac.compare_digest(_signature(secret, body_bytes).encode(), claimed.encode()):
        raise _LineRefused("signature:invalid", "HMAC-SHA256 of body does not match the signature")
    try:
        event = loading.parse_json(body)
    except (ValueError, RecursionError) as exc:
        raise _LineRefused("format:json", loading.error_detail(exc, "the body is not JSON")) from None
    return {**event, RECEIVED_AT: envelope[RECEIVED_AT]} if isinstance(event, dict) else event


def read_lines(text_lines: list[bytes], first_line_no: int, landing_file: str, secret: str
               ) -> tuple[list[loading.Incoming], list[loading.Rejected]]:
    """Envelope lines as wire records (event + received_at) and the lines refused before parsing."""
    records, rejected = [], []
    for line_no, raw_line in enumerate(text_lines, start=first_line_no):
        if not raw_line.strip():
            continue
        try:
            records.append(loading.Incoming(read_envelope(raw_line, secret), landing_file, line_no))
        except Exception as exc:  # noqa: BLE001 - one line, whatever it holds, never stops the lines after it
            rule, detail = ((exc.rule, exc.detail) if isinstance(exc, _LineRefused)
                            else (loading.error_rule(exc), loading.error_detail(exc, "the line could not be read")))
            rejected.append(loading.Rejected(raw_line.decode("utf-8", "replace"), landing_file, line_no, rule, detail))
    return records, rejected


def _received(incoming: loading.Incoming) -> str:
    raw = incoming.raw if isinstance(incoming.raw, dict) else {}
    ts = loading.parse_timestamp(raw.get(RECEIVED_AT)) if isinstance(raw.get(RECEIVED_AT), str) else None
    return ts.isoformat() if ts else "~"  # unreadable times last; they are quarantined anyway


def load(partner: str, dataset_name: str) -> loading.FileLoadResult:
    """``load_dataset`` of a contract dataset by name (e.g. ``load("roadside", "dispatch_events")``)."""
    return load_dataset(contracts.dataset(partner, dataset_name))


def load_dataset(dataset: contracts.Dataset) -> loading.FileLoadResult:
    """Load the new lines of the dataset's webhook files; raises PartnerFileChanged (after loading the others)
    when a loaded part of a file changed."""
    if dataset.connector != "webhook":
        raise ValueError(f"{dataset.partner}.{dataset.name} is not webhook lines in its contract")
    secret_env = contracts.contract(dataset.partner).secret_env
    secret = os.environ.get(secret_env, "")
    name = f"{dataset.partner}.{dataset.name}"
    if not secret:
        log.info("partner %s: not configured (%s is not set); skipping", name, secret_env)
        return loading.FileLoadResult(dataset.partner, dataset.name, configured=False,
                                      message=f"not configured: {secret_env} is not set")
    result = loading.FileLoadResult(dataset.partner, dataset.name, sync_id=loading.new_sync_id())
    paths.warehouse_path().parent.mkdir(parents=True, exist_ok=True)
    con = connect(paths.warehouse_path())
    try:
        loading.ensure_tables(con, [dataset])
        ledger = loading.read_ledger(con, dataset)
        pending = _Pending()
        for path in webhook_files(dataset):
            result.files_seen += 1
            landing_file = loading.safe_text(path.relative_to(paths.data_dir()).as_posix())
            try:
                part = _new_lines(path, landing_file, ledger, secret, name, result)
            except Exception as exc:  # noqa: BLE001 - an unreadable file never holds up the files after it
                log.error("%s: %s could not be read (%s); quarantined, tried again next run", name, landing_file,
                          loading.error_detail(exc))
                item = _file_item(landing_file, exc, "the file could not be read")
                part = _FilePart(landing_file, None, rejected=[item])
            if part is not None:
                pending.parts.append(part)
            if pending.lines >= BATCH_LINES:
                pending.load(con, dataset, result)
        pending.load(con, dataset, result)
    finally:
        con.close()
    return result.finish("file(s) with new lines", "a receiver only appends")


def _new_lines(path: Path, landing_file: str, ledger: dict, secret: str, name: str,
               result: loading.FileLoadResult) -> _FilePart | None:
    """The file's complete lines not loaded yet, read; None when there are none (or the file changed)."""
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]  # the receiver may be mid-way through the last line
    known = ledger.get(landing_file) or loading.LedgerEntry(hashlib.sha256(b"").hexdigest(), 0, 0)
    if len(complete) < known.bytes or hashlib.sha256(complete[: known.bytes]).hexdigest() != known.sha256:
        log.error("%s: %s changed after it was loaded (its first %d bytes differ); not reloaded",
                  name, landing_file, known.bytes)
        result.changed_files.append(landing_file)
        return None
    if len(complete) == known.bytes:
        result.files_unchanged += 1
        return None
    new_lines = complete[known.bytes:].split(b"\n")[:-1]  # complete ends with a newline
    records, rejected = read_lines(new_lines, known.rows + 1, landing_file, secret)
    entry = loading.LedgerEntry(hashlib.sha256(complete).hexdigest(), len(complete), known.rows + len(new_lines))
    return _FilePart(landing_file, entry, records, rejected, len(new_lines), first_line_no=known.rows + 1)


def _file_item(landing_file: str, exc: BaseException, context: str, lines: str = "") -> loading.Rejected:
    """A file (or the new lines of one) quarantined as one item, keyed by the file, its lines and the error."""
    identity = loading.canonical_json({"file": landing_file, "lines": lines, "error": type(exc).__name__})
    return loading.Rejected(identity, landing_file, 0, loading.error_rule(exc), loading.error_detail(exc, context))


# New lines of many files are enforced and loaded as one batch, in one transaction with their files' ledger
# entries: the contract's suite costs a fixed ~0.2 s per batch, and a receiver writes a file per hour.
BATCH_LINES = 50_000


@dataclass
class _FilePart:
    """A file's new lines, read; ``entry`` is the ledger entry to write when they load (None: do not advance)."""

    landing_file: str
    entry: loading.LedgerEntry | None
    records: list[loading.Incoming] = field(default_factory=list)
    rejected: list[loading.Rejected] = field(default_factory=list)
    lines: int = 0
    first_line_no: int = 0


@dataclass
class _Pending:
    """The new lines of files read but not yet loaded."""

    parts: list[_FilePart] = field(default_factory=list)

    @property
    def lines(self) -> int:
        return sum(p.lines for p in self.parts)

    def load(self, con, dataset: contracts.Dataset, result: loading.FileLoadResult) -> None:
        parts, self.parts = self.parts, []
        if not parts:
            return
        try:
            self._load(con, dataset, result, parts)
        except loading.BreachAlertFailed:
            raise
        except Exception as exc:  # noqa: BLE001 - the batch failed as a whole: find the file, load the others
            log.error("%s.%s: a batch of %d file(s) failed to load (%s); loading them one by one", dataset.partner,
                      dataset.name, len(parts), loading.error_detail(exc))
            for part in parts:
                try:
                    self._load(con, dataset, result, [part])
                except loading.BreachAlertFailed:
                    raise
                except Exception as part_exc:  # noqa: BLE001
                    lines = f"{part.first_line_no}-{part.first_line_no + part.lines - 1}"
                    log.error("%s.%s: %s lines %s failed to load (%s); quarantined, tried again next run",
                              dataset.partner, dataset.name, part.landing_file, lines,
                              loading.error_detail(part_exc))
                    item = _file_item(part.landing_file, part_exc, f"lines {lines} could not be loaded", lines)
                    self._load(con, dataset, result, [_FilePart(part.landing_file, None, rejected=[item])])

    @staticmethod
    def _load(con, dataset: contracts.Dataset, result: loading.FileLoadResult, parts: list[_FilePart]) -> None:
        records = sorted((r for p in parts for r in p.records), key=_received)  # of redeliveries, the first kept
        entries = {p.landing_file: p.entry for p in parts if p.entry is not None}

        def write_ledger(c) -> None:
            for landing_file, entry in entries.items():
                loading.write_ledger_entry(c, dataset, landing_file, entry)

        batch = loading.load_batch(con, dataset, records, sync_id=result.sync_id,
                                   rejected=[r for p in parts for r in p.rejected],
                                   identity_ignores=(RECEIVED_AT,), before_commit=write_ledger)
        result.batch.add(batch)
        result.files_loaded += len(entries)
        result.files_quarantined += sum(1 for p in parts if p.entry is None)
