"""File-drop connector: a partner's daily CSV files in the landing zone (warranty claims).

Files are ``landing/partners/<partner>/dt=YYYY-MM-DD/<contract file glob>`` (UTF-8, header row, RFC 4180
quoting). Each file loads once, in one transaction with its ``partner_file_ledger`` entry (path, sha256, bytes,
rows): re-running is a no-op, and a file whose bytes changed after it was loaded is an error (the other files
still load; then ``PartnerFileChanged`` names the changed ones) — a partner corrects data with a new file, and
a silent reload would hide that the old one was rewritten. Rows get ``delivery_date`` = the ``dt=`` day (the
contract's volume date) and go through the same contract enforcement as every load (``loading.load_batch``).

What cannot be read is quarantined, never raised, and never holds up the files after it:

- a row: with more or fewer fields than the header, or that the csv module cannot read (a cell past its field
  limit), is ``format:csv``; a row with bytes that are not UTF-8 is ``format:encoding`` (the file is decoded
  with ``surrogateescape``, so its other rows load); absurd numbers are type errors (``loading.parse_value``);
- a file: in a folder that is not ``dt=YYYY-MM-DD`` is quarantined whole as ``path:dt_folder`` and recorded in
  the ledger (it is handled; moved to a good folder it is a new file); one that fails for any other reason
  (unreadable, an unexpected error) is quarantined whole as ``error:<exception type>`` and left out of the
  ledger, so the next run tries it again (its quarantine row is not repeated).
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import re
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


class FileRefused(Exception):
    """A drop file that cannot be loaded at all: quarantined whole, with ``rule``."""

    def __init__(self, rule: str, detail: str):
        super().__init__(detail)
        self.rule, self.detail = rule, detail


_DT_FOLDER = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")


def delivery_day(path: Path) -> date:
    folder = path.parent.name
    if match := _DT_FOLDER.match(folder):
        try:
            return date.fromisoformat(match.group(1))
        except ValueError:  # dt=2026-13-45
            pass
    raise FileRefused("path:dt_folder", f"the folder {loading.safe_text(folder)!r} is not dt=YYYY-MM-DD "
                                        f"(a real date): the file has no delivery date")


def _is_utf8(cell: str) -> bool:
    """False when the cell held a byte that is not UTF-8 (``surrogateescape`` made it U+DC80..U+DCFF)."""
    return cell.isascii() or not any("\udc80" <= ch <= "\udcff" for ch in cell)


def _as_bytes_text(cell: str) -> str:
    """A cell decoded with surrogateescape, its undecodable bytes shown as \\xNN."""
    return cell.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def read_rows(dataset: contracts.Dataset, text: str, landing_file: str, day: date
              ) -> tuple[list[loading.Incoming], list[loading.Rejected]]:
    """A CSV file's data rows as wire records (dicts of strings by the header) and the rows that are not.
    ``text`` is decoded with ``surrogateescape``: a row holding bytes that are not UTF-8 is refused alone."""
    lines = io.StringIO(text, newline="").readlines()  # kept: the raw text of a row the csv module cannot read
    reader = csv.reader(lines)
    try:
        header = next(reader, None) or []
    except csv.Error as exc:
        raise FileRefused("format:csv", f"the header row cannot be read: {exc}") from None
    records, rejected = [], []
    row_no = 0
    while True:
        first_line = reader.line_num
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:  # e.g. a cell past csv.field_size_limit(); the reader goes on at the next line
            row_no += 1
            rejected.append(loading.Rejected("".join(lines[first_line:reader.line_num]), landing_file, row_no,
                                             "format:csv", f"unreadable CSV (lines {first_line + 1}-"
                                                           f"{reader.line_num}): {exc}"))
            continue
        row_no += 1
        if not row:  # a blank line is not a record
            continue
        if not all(_is_utf8(cell) for cell in row):
            bad = [f"{_as_bytes_text(name)}={_as_bytes_text(cell)[:80]!r}" for name, cell in zip(header, row)
                   if not _is_utf8(cell)]
            rejected.append(loading.Rejected(loading.canonical_json([_as_bytes_text(c) for c in row]), landing_file,
                                             row_no, "format:encoding",
                                             f"bytes that are not UTF-8: {', '.join(bad) or 'past the header'}"))
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
            # safe_text: a file name that is not UTF-8 still gets a storable (and stable) ledger key
            landing_file = loading.safe_text(path.relative_to(paths.data_dir()).as_posix())
            try:
                _load_file(con, dataset, path, landing_file, ledger, result)
            except loading.BreachAlertFailed:
                raise
            except Exception as exc:  # noqa: BLE001 - one file, whatever breaks it, never holds up the next
                log.error("%s.%s: %s could not be loaded (%s); quarantined whole, tried again next run",
                          dataset.partner, dataset.name, landing_file, loading.error_detail(exc))
                _refuse_file(con, dataset, result, landing_file, loading.error_rule(exc),
                             loading.error_detail(exc), {"file": landing_file, "error": type(exc).__name__})
    finally:
        con.close()
    return result.finish("new file(s)", "partners send corrections as new files")


def _load_file(con, dataset: contracts.Dataset, path: Path, landing_file: str, ledger: dict,
               result: loading.FileLoadResult) -> None:
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
        return
    try:
        day = delivery_day(path)
        records, rejected = read_rows(dataset, data.decode("utf-8-sig", "surrogateescape"), landing_file, day)
    except FileRefused as refused:
        log.warning("%s.%s: %s refused whole (%s: %s)", dataset.partner, dataset.name, landing_file, refused.rule,
                    refused.detail)
        _refuse_file(con, dataset, result, landing_file, refused.rule, refused.detail,
                     {"file": landing_file, "bytes": len(data), "sha256": digest},
                     ledger_entry=loading.LedgerEntry(digest, len(data), 0))
        return
    entry = loading.LedgerEntry(digest, len(data), len(records) + len(rejected))
    batch = loading.load_batch(
        con, dataset, records, sync_id=result.sync_id, text_wire=True, rejected=rejected,
        before_commit=lambda c: loading.write_ledger_entry(c, dataset, landing_file, entry))
    result.batch.add(batch)
    result.files_loaded += 1


def _refuse_file(con, dataset: contracts.Dataset, result: loading.FileLoadResult, landing_file: str, rule: str,
                 detail: str, identity: dict, ledger_entry: loading.LedgerEntry | None = None) -> None:
    """Quarantine a whole file as one item (line_no 0) keyed by ``identity``; with ``ledger_entry`` the file is
    recorded as handled in the same transaction, without it the next run tries the file again."""
    item = loading.Rejected(loading.canonical_json(identity), landing_file, 0, rule, detail)
    batch = loading.load_batch(
        con, dataset, [], sync_id=result.sync_id, rejected=[item],
        before_commit=(lambda c: loading.write_ledger_entry(c, dataset, landing_file, ledger_entry))
        if ledger_entry else None)
    result.batch.add(batch)
    result.files_quarantined += 1
