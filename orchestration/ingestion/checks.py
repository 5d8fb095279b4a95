"""The ledger invariant, checked against the files themselves (not against the ledger's own sums).

Every landing file has a ledger entry for its current size. For every ledger entry: records_read =
records_loaded + records_quarantined, the raw Parquet file holds exactly records_loaded rows, and the
quarantine file exactly records_quarantined rows; where a line is a record, every line is counted
(plus one for the lost tail of a truncated file). An entry whose landing file is gone while a file with
the same bytes is in the ledger under another name counts its records twice: a problem until ingestion
retires it. One gone without a copy keeps its rows (landing retention): listed, not a problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.parquet as pq

from pitwall import paths

from .ingest import LandingFile, discover
from .ledger import read_ledger
from .sources import SOURCES


@dataclass(frozen=True)
class LedgerProblem:
    landing_path: str
    problem: str


def _rows(path) -> int:
    return pq.ParquetFile(path).metadata.num_rows if path.exists() else 0


def verify_ledger(source: str | None = None) -> tuple[int, list[LedgerProblem]]:
    """Return (entries checked, problems). Every landing file must also have its entry."""
    problems: list[LedgerProblem] = []
    entries = read_ledger(source)
    recorded = {(e["landing_path"], e["size_bytes"]) for e in entries}
    present = _present_landing_paths(source)
    for relative, size in present.items():
        if (relative, size) not in recorded:
            problems.append(LedgerProblem(relative, "landing file not ingested (no ledger entry)"))
    copies: dict[tuple[str, str, int], list[str]] = {}
    for e in entries:
        if e["landing_path"] in present:
            copies.setdefault((e["source"], e["sha256"], e["size_bytes"]), []).append(e["landing_path"])
    for e in entries:
        where = e["landing_path"]
        moved_to = copies.get((e["source"], e["sha256"], e["size_bytes"])) if where not in present else None
        if moved_to:
            problems.append(LedgerProblem(where, f"landing file gone and its bytes ingested again as "
                                                 f"{', '.join(moved_to)}: its records count twice"))
        if e["records_read"] != e["records_loaded"] + e["records_quarantined"]:
            problems.append(LedgerProblem(where, "records_read != records_loaded + records_quarantined"))
        raw_rows = _rows(paths.data_dir() / e["raw_path"])
        if raw_rows != e["records_loaded"]:
            problems.append(LedgerProblem(where, f"raw file has {raw_rows} rows, ledger says {e['records_loaded']}"))
        landing_file = LandingFile(SOURCES[e["source"]], paths.landing_dir() / where, e["dt"])
        q_rows = _rows(landing_file.output(paths.quarantine_dir()))
        if q_rows != e["records_quarantined"]:
            problems.append(
                LedgerProblem(where, f"quarantine file has {q_rows} rows, ledger says {e['records_quarantined']}")
            )
        if landing_file.source.one_record_per_line and e["records_read"] not in (e["lines_read"], e["lines_read"] + 1):
            problems.append(LedgerProblem(where, f"{e['lines_read']} lines read but {e['records_read']} records"))
    return len(entries), problems


def _present_landing_paths(source: str | None = None) -> dict[str, int]:
    """Landing files now in the landing zone: relative path → size."""
    return {f.relative: f.path.stat().st_size
            for name in ([source] if source else SOURCES) for f in discover(SOURCES[name])}


def entries_without_landing_file(source: str | None = None) -> list[str]:
    """Ledger entries whose landing file is gone: their rows stay (retention), listed for the operator."""
    present = _present_landing_paths(source)
    return sorted(e["landing_path"] for e in read_ledger(source) if e["landing_path"] not in present)


def quarantine_shares(max_share: float) -> dict[str, dict]:
    """Per source: records read, quarantined, their share, and whether the share is above ``max_share``."""
    totals: dict[str, list[int]] = {}
    for e in read_ledger():
        read, quarantined = totals.setdefault(e["source"], [0, 0])
        totals[e["source"]] = [read + e["records_read"], quarantined + e["records_quarantined"]]
    return {
        source: {"records_read": read, "quarantined": q, "share": round(q / read, 6) if read else 0.0,
                 "above_limit": read > 0 and q / read > max_share}
        for source, (read, q) in sorted(totals.items())
    }
