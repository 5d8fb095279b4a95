"""File-drop connector: a partner's daily CSV files in the landing zone (warranty claims).

Files are ``landing/partners/<partner>/dt=YYYY-MM-DD/<contract file glob>`` (UTF-8, header row, RFC 4180
quoting). Each file loads once, in one transaction with its ``partner_file_ledger`` entry (path, sha256, bytes,
rows): re-running is a no-op, and a file whose bytes changed after it was loaded is an error (the other files
still load; then ``PartnerFileChanged`` names the changed ones) — a partner corrects data with a new file, and
a silent reload would hide that the old one was rewritten. Rows get ``delivery_date`` = the ``dt=`` day (the
contract's volume date) and go through the same contract enforcement as every load (``loading.load_batch``);
a row with more or fewer fields than the header is quarantined as ``format:csv``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from datetime import date
from pathlib import Path

from pitwall import paths
from pitwall.duck import connect

from . import contracts, loading

log = logging.getLogger(__name__)


def landing_root(dataset: contracts.Dataset) -> Path:
    return paths.landing_dir() / "partners" / dataset.partner


def drop_files(dataset: contracts.Dataset) -> list[Path]:
    return sorted(landing_root(dataset).glob(f"dt=*/{dataset.file['glob']}"))


def delivery_day(path: Path) -> date:
    folder = path.parent.name
    try:
        return date.fromisoformat(folder.removeprefix("dt="))
    except ValueError:
        raise ValueError(f"{path}: the folder {folder!r} is not dt=YYYY-MM-DD") from None


def read_rows(dataset: contracts.Dataset, text: str, landing_file: str, day: date
              ) -> tuple[list[loading.Incoming], list[loading.Rejected]]:
    """A CSV file's data rows as wire records (dicts of strings by the header) and the rows that are not."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None) or []
    records, rejected = [], []
    for row_no, row in enumerate(reader, start=1):
        if not row:  # a blank line is not a record
            continue
        if len(row) != len(header):
            raw = loading.canonical_json(row)
            rejected.append(loading.Rejected(raw, landing_file, row_no, "format:csv",
                                             f"{len(row)} fields where the header has {len(header)}"))
            continue
        records.append(loading.Incoming(dict(zip(header, row)), landing_file, row_no,
                                        {dataset.delivery_date_column: day} if dataset.delivery_date_column else {}))
    return records, rejected


def load(partner: str, dataset_name: str) -> loading.FileLoadResult:
    """``load_dataset`` of a contract dataset by name (e.g. ``load("warranty", "claims")``)."""
    return load_dataset(contracts.dataset(partner, dataset_name))


def load_dataset(dataset: contracts.Dataset) -> loading.FileLoadResult:
    """Load the dataset's new drop files; raises PartnerFileChanged (after loading the others) when a loaded
    file was rewritten."""
    if dataset.connector != "file":
        raise ValueError(f"{dataset.partner}.{dataset.name} is not a file drop in its contract")
    result = loading.FileLoadResult(dataset.partner, dataset.name, sync_id=loading.new_sync_id())
    paths.warehouse_path().parent.mkdir(parents=True, exist_ok=True)
    con = connect(paths.warehouse_path())
    try:
        loading.ensure_tables(con, [dataset])
        ledger = loading.read_ledger(con, dataset)
        for path in drop_files(dataset):
            result.files_seen += 1
            landing_file = path.relative_to(paths.data_dir()).as_posix()
            data = path.read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            known = ledger.get(landing_file)
            if known is not None:
                if known.sha256 == digest:
                    result.files_unchanged += 1
                else:
                    log.error("%s.%s: %s changed after it was loaded (sha256 %s, now %s); not reloaded",
                              dataset.partner, dataset.name, landing_file, known.sha256[:12], digest[:12])
                    result.changed_files.append(landing_file)
                continue
            records, rejected = read_rows(dataset, data.decode("utf-8-sig"), landing_file, delivery_day(path))
            entry = loading.LedgerEntry(digest, len(data), len(records) + len(rejected))
            batch = loading.load_batch(
                con, dataset, records, sync_id=result.sync_id, text_wire=True, rejected=rejected,
                before_commit=lambda c, f=landing_file, e=entry: loading.write_ledger_entry(c, dataset, f, e))
            result.batch.add(batch)
            result.files_loaded += 1
    finally:
        con.close()
    return result.finish("new file(s)", "partners send corrections as new files")
