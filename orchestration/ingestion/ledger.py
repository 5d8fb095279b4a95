"""The ledger of landing files: one small Parquet file per ingested landing file.

An entry is written last, after the file's raw and quarantine outputs are in place, so it is the
commit point: a run killed before it leaves the file "not ingested" and the next run redoes it,
replacing the same output paths (no loss, no duplicates). Entries sit beside the raw layer so the
warehouse can read them as a source.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pitwall import paths
from pitwall.duck import connect


@dataclass
class LedgerEntry:
    source: str
    dt: str
    landing_path: str  # relative to landing/
    size_bytes: int
    mtime_ns: int
    sha256: str
    lines_read: int
    records_read: int
    records_loaded: int
    records_quarantined: int
    quarantined_by_reason: str  # JSON object {reason_code: count}
    raw_path: str  # relative to the data root
    file_error: str | None
    extra_columns: str | None  # columns a Parquet extract had beyond the declared ones
    ingested_at: datetime
    run_id: str
    reason_counts: dict = field(default_factory=dict, repr=False, compare=False)

    def to_row(self) -> dict:
        row = asdict(self)
        row.pop("reason_counts")
        return row


LEDGER_SCHEMA = pa.schema(
    [
        ("source", pa.string()), ("dt", pa.string()), ("landing_path", pa.string()),
        ("size_bytes", pa.int64()), ("mtime_ns", pa.int64()), ("sha256", pa.string()),
        ("lines_read", pa.int64()), ("records_read", pa.int64()), ("records_loaded", pa.int64()),
        ("records_quarantined", pa.int64()), ("quarantined_by_reason", pa.string()),
        ("raw_path", pa.string()), ("file_error", pa.string()), ("extra_columns", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")), ("run_id", pa.string()),
    ]
)
assert [f.name for f in fields(LedgerEntry) if f.name != "reason_counts"] == LEDGER_SCHEMA.names


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def entry_path(source: str, dt: str, file_name: str) -> Path:
    return paths.ledger_dir() / source / f"dt={dt}" / f"{file_name}.parquet"


def write_atomically(table: pa.Table, target: Path) -> None:
    """Write a Parquet file under a temporary name in the same folder, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, target)


def write_entry(entry: LedgerEntry) -> None:
    table = pa.Table.from_pylist([entry.to_row()], schema=LEDGER_SCHEMA)
    write_atomically(table, entry_path(entry.source, entry.dt, Path(entry.landing_path).name))


def ensure_schema_file() -> Path:
    """A zero-row ledger file so the ledger reads as an empty table before anything was ingested."""
    target = paths.ledger_dir() / "_schema.parquet"
    if not target.exists():
        write_atomically(LEDGER_SCHEMA.empty_table(), target)
    return target


def read_ledger(source: str | None = None) -> list[dict]:
    """Current ledger rows (all sources, or one)."""
    root = paths.ledger_dir() / source if source else paths.ledger_dir()
    if not any(root.glob("**/dt=*/*.parquet")):
        return []
    con = connect()
    try:
        cur = con.execute(
            "select * from read_parquet($glob, union_by_name = true, hive_partitioning = false)",
            {"glob": str(root / "**" / "dt=*" / "*.parquet")},
        )
        columns = [d[0] for d in cur.description]
        return [dict(zip(columns, row)) for row in cur.fetchall()]
    finally:
        con.close()


def reason_counts_json(counts: dict[str, int]) -> str:
    return json.dumps(dict(sorted(counts.items())))
