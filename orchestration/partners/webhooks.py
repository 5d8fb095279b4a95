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

Without the secret env var set, ``load_dataset`` logs one line and does nothing (like an unset API URL).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
from pathlib import Path

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
    return SIGNATURE_PREFIX + hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()


def read_lines(text_lines: list[bytes], first_line_no: int, landing_file: str, secret: str
               ) -> tuple[list[loading.Incoming], list[loading.Rejected]]:
    """Envelope lines as wire records (event + received_at) and the lines refused before parsing."""
    records, rejected = [], []
    for line_no, raw_line in enumerate(text_lines, start=first_line_no):
        if not raw_line.strip():
            continue

        def refuse(rule: str, detail: str) -> None:
            rejected.append(loading.Rejected(raw_line.decode("utf-8", "replace"), landing_file, line_no, rule, detail))

        try:
            envelope = json.loads(raw_line)
        except ValueError as exc:  # bad UTF-8 or bad JSON
            refuse("format:json", f"the line is not JSON: {exc}")
            continue
        if not isinstance(envelope, dict) or not all(isinstance(envelope.get(f), str) for f in ENVELOPE_FIELDS):
            refuse("format:envelope", f"expected an object with string fields {list(ENVELOPE_FIELDS)}")
            continue
        if not hmac.compare_digest(signature(secret, envelope["body"]), envelope["signature"]):
            refuse("signature:invalid", "HMAC-SHA256 of body does not match the signature")
            continue
        try:
            event = json.loads(envelope["body"])
        except ValueError as exc:
            refuse("format:json", f"the body is not JSON: {exc}")
            continue
        record = {**event, RECEIVED_AT: envelope[RECEIVED_AT]} if isinstance(event, dict) else event
        records.append(loading.Incoming(record, landing_file, line_no))
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
            landing_file = path.relative_to(paths.data_dir()).as_posix()
            data = path.read_bytes()
            complete = data[: data.rfind(b"\n") + 1]  # the receiver may be mid-way through the last line
            known = ledger.get(landing_file) or loading.LedgerEntry(hashlib.sha256(b"").hexdigest(), 0, 0)
            if (len(complete) < known.bytes
                    or hashlib.sha256(complete[: known.bytes]).hexdigest() != known.sha256):
                log.error("%s: %s changed after it was loaded (its first %d bytes differ); not reloaded",
                          name, landing_file, known.bytes)
                result.changed_files.append(landing_file)
                continue
            if len(complete) == known.bytes:
                result.files_unchanged += 1
                continue
            new_lines = complete[known.bytes:].split(b"\n")[:-1]  # complete ends with a newline
            records, rejected = read_lines(new_lines, known.rows + 1, landing_file, secret)
            entry = loading.LedgerEntry(hashlib.sha256(complete).hexdigest(), len(complete),
                                        known.rows + len(new_lines))
            pending.add(landing_file, entry, records, rejected, len(new_lines))
            if pending.lines >= BATCH_LINES:
                pending.load(con, dataset, result)
        pending.load(con, dataset, result)
    finally:
        con.close()
    return result.finish("file(s) with new lines", "a receiver only appends")


# New lines of many files are enforced and loaded as one batch, in one transaction with their files' ledger
# entries: the contract's suite costs a fixed ~0.2 s per batch, and a receiver writes a file per hour.
BATCH_LINES = 50_000


class _Pending:
    """The new lines of files read but not yet loaded."""

    def __init__(self):
        self.clear()

    def clear(self) -> None:
        self.entries: dict[str, loading.LedgerEntry] = {}
        self.records: list[loading.Incoming] = []
        self.rejected: list[loading.Rejected] = []
        self.lines = 0

    def add(self, landing_file: str, entry: loading.LedgerEntry, records, rejected, lines: int) -> None:
        self.entries[landing_file] = entry
        self.records += records
        self.rejected += rejected
        self.lines += lines

    def load(self, con, dataset: contracts.Dataset, result: loading.FileLoadResult) -> None:
        if not self.entries:
            return
        self.records.sort(key=_received)  # of redeliveries in one batch, the first received is kept

        def write_ledger(c) -> None:
            for landing_file, entry in self.entries.items():
                loading.write_ledger_entry(c, dataset, landing_file, entry)

        batch = loading.load_batch(con, dataset, self.records, sync_id=result.sync_id, rejected=self.rejected,
                                   identity_ignores=(RECEIVED_AT,), before_commit=write_ledger)
        result.batch.add(batch)
        result.files_loaded += len(self.entries)
        self.clear()
