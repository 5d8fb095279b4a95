"""Exactly-once ingestion of landing files into the Parquet raw layer.

For each landing file that is new or changed since the ledger last saw it:
  1. read it (JSON lines: decompressed and split in C/numpy a bounded batch of lines at a time;
     Parquet: DuckDB),
  2. normalize and validate it in one set-based DuckDB query (the format's SQL), in one pass,
  3. stream good records to ``raw/<source>/dt=…/<file>.parquet`` and, if there are any, rejected
     ones to ``quarantine/<source>/dt=…/<file>.parquet``, each under a temporary name renamed into place,
  4. write the file's ledger entry last (the commit point).
A JSON-lines file is never held whole: the query consumes its lines batch by batch and its result is
split into good and rejected rows batch by batch, so memory stays bounded by the batch, not the file.
Re-ingesting a file rewrites exactly its own outputs, so re-runs and runs after a kill converge on
the rows of one clean run. Nothing here depends on the wall clock but ``ingested_at``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from filelock import FileLock

from pitwall import paths
from pitwall.duck import connect

from . import ledger
from .formats.common import MAX_PAYLOAD_BYTES, QUARANTINE_TEXT_CHARS, RAW_TEXT_PATH
from .formats.extracts import ExtractTable, extract_sql
from .lines import LINE_SCHEMA, LineStream
from .sources import SOURCES, Source

log = logging.getLogger(__name__)

DT_DIR = re.compile(r"^dt=(\d{4}-\d{2}-\d{2})$")
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
SCHEMA_DT = "1970-01-01"  # partition of the zero-row schema file; holds no data
RESULT_BATCH_ROWS = 1 << 16  # rows per result batch (and Parquet row group) of a streamed JSON-lines file
REASON_COLUMNS = ["_reason_code", "_reason", "_raw_text"]
# What a rejected record whose text comes later keeps meanwhile (the quarantine's inputs): a few small columns
PENDING_COLUMNS = ["_landing_path", "_line_no", "_record_index", "_reason_code", "_reason", "_raw_text", "_raw_bytes",
                   "_ingested_at", RAW_TEXT_PATH]
QUARANTINE_COLUMNS = """
    $source::VARCHAR as source,
    $dt::VARCHAR as dt,
    _landing_path as landing_path,
    _line_no as line_no,
    {record_index} as record_index,
    _reason_code as reason_code,
    _reason as reason,
    _raw_text as raw_text,
    {raw_bytes} as raw_bytes,
    _ingested_at as ingested_at,
    $run_id::VARCHAR as run_id
"""


@dataclass(frozen=True)
class LandingFile:
    source: Source
    path: Path
    dt: str

    @property
    def relative(self) -> str:
        return self.path.relative_to(paths.landing_dir()).as_posix()

    def output(self, root: Path) -> Path:
        return root / self.source.name / f"dt={self.dt}" / f"{self.path.name}.parquet"


@dataclass
class SourceSummary:
    source: str
    files_seen: int = 0
    files_ingested: int = 0
    files_unchanged: int = 0
    files_failed: int = 0
    records_loaded: int = 0
    records_quarantined: int = 0
    quarantined_by_reason: Counter = field(default_factory=Counter)
    files_retired: int = 0
    file_errors: list[str] = field(default_factory=list)  # files failed or quarantined whole, with the reason
    failed_files: list[str] = field(default_factory=list)  # not ingested (no ledger entry): the next run retries
    reprocess_from: str | None = None  # the earliest older day this run changed (see ``note_reprocess_from``)

    def describe(self) -> str:
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.quarantined_by_reason.items())) or "none"
        failed = f", {self.files_failed} FAILED (left for the next run)" if self.files_failed else ""
        retired = f", {self.files_retired} retired (moved to another name)" if self.files_retired else ""
        return (
            f"{self.source}: {self.files_ingested} file(s) ingested, {self.files_unchanged} unchanged{failed}"
            f"{retired}; {self.records_loaded} records loaded, {self.records_quarantined} quarantined ({reasons})"
        )


def discover(source: Source) -> list[LandingFile]:
    """Landing files of a source, in ``landing/<source>/dt=YYYY-MM-DD/`` folders, oldest first."""
    root = paths.landing_dir() / source.landing
    found: dict[Path, LandingFile] = {}
    if root.is_dir():
        for part in sorted(root.iterdir()):
            match = DT_DIR.match(part.name)
            if not (match and part.is_dir()):
                continue
            for pattern in source.patterns:
                for path in part.glob(pattern):
                    if path.is_file() and not path.name.startswith("."):
                        found[path] = LandingFile(source, path, match.group(1))
    return sorted(found.values(), key=lambda f: (f.dt, f.path.name))


def default_workers() -> int:
    """Files ingested at a time: ``PITWALL_INGEST_WORKERS``, else one per core (see ``ingest_source``)."""
    return int(os.environ.get("PITWALL_INGEST_WORKERS") or os.cpu_count() or 2)


def ingest_source(source_name: str, *, run_id: str | None = None, workers: int | None = None) -> SourceSummary:
    """Ingest every new or changed landing file of one source.

    Files are independent, so ``workers`` threads take them in parallel, each with its own DuckDB
    connection: decompression and line splitting release the GIL, so one file's Python-side work
    overlaps another's SQL.
    """
    source = SOURCES[source_name]
    run_id = run_id or uuid.uuid4().hex
    # One worker per core: each file's query runs on one DuckDB thread. One more worker than cores was
    # 8% faster on an idle machine (5M events on 2 cores: 3 workers 34 s, 2 workers 37 s), but on a busy
    # one it only adds contention and memory (1M events, load average ~7, two rounds: 2 workers 22.5 s
    # and 500 MB, 3 workers 24.3-24.8 s and 620 MB, 4 workers 25.3-27.7 s and 750 MB; same CPU seconds).
    workers = workers or default_workers()
    summary = SourceSummary(source.name)
    known = {row["landing_path"]: row for row in ledger.read_ledger(source.name)}
    newest_day = max((row["dt"] for row in known.values()), default=None)
    with connect() as con:
        write_schema_file(con, source)
    todo: list[tuple[LandingFile, str, os.stat_result]] = []
    landing_files = discover(source)
    for landing_file in landing_files:
        summary.files_seen += 1
        stat = landing_file.path.stat()
        previous = known.get(landing_file.relative)
        if previous and (previous["size_bytes"], previous["mtime_ns"]) == (stat.st_size, stat.st_mtime_ns):
            summary.files_unchanged += 1
            continue
        digest = ledger.sha256_of(landing_file.path)
        if previous and previous["sha256"] == digest and previous["size_bytes"] == stat.st_size:
            # Touched but not changed: record the new mtime, keep the rows.
            ledger.write_entry(_refreshed(previous, stat.st_mtime_ns))
            summary.files_unchanged += 1
            continue
        todo.append((landing_file, digest, stat))

    local = threading.local()
    connections: list[duckdb.DuckDBPyConnection] = []
    lock = threading.Lock()

    def work(item: tuple[LandingFile, str, os.stat_result]) -> ledger.LedgerEntry | str:
        if not hasattr(local, "con"):
            # A file's query streams from one source of batches, so it runs on one thread; files run in
            # parallel across the workers.
            local.con = connect(threads=1)
            with lock:
                connections.append(local.con)
        landing_file, digest, stat = item
        try:
            return ingest_file(local.con, landing_file, run_id=run_id, sha256=digest, stat=stat)
        except Exception as exc:  # one file must not stop the others
            log.exception("could not ingest %s", landing_file.relative)
            return f"{landing_file.relative}: ingestion failed ({type(exc).__name__}: {exc})"

    ingested_days: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ingest-{source.name}") as pool:
            for entry in pool.map(work, todo):
                if isinstance(entry, str):
                    # Not in the ledger, so the next run retries it and the ledger check flags it meanwhile.
                    summary.files_failed += 1
                    summary.file_errors.append(entry)
                    summary.failed_files.append(entry)
                    continue
                known[entry.landing_path] = entry.to_row()
                ingested_days.append(entry.dt)
                summary.files_ingested += 1
                summary.records_loaded += entry.records_loaded
                summary.records_quarantined += entry.records_quarantined
                summary.quarantined_by_reason.update(entry.reason_counts)
                if entry.file_error:
                    summary.file_errors.append(f"{entry.landing_path}: {entry.file_error}")
    finally:
        for con in connections:
            con.close()
    retired = retire_moved_files(known, {f.relative for f in landing_files})
    summary.files_retired = len(retired)
    # Incremental models rebuild from the newest day they hold: a change to an older day is theirs to
    # rebuild only if the next dbt build is told where it starts.
    changed_days = [day for day in [*ingested_days, *(row["dt"] for row in retired)]
                    if newest_day is not None and day < newest_day]
    if changed_days:
        summary.reprocess_from = min(changed_days)
        note_reprocess_from(summary.reprocess_from)
    log.info(summary.describe())
    return summary


def retire_moved_files(known: dict[str, dict], present: set[str]) -> list[dict]:
    """Retire the ledger entries of landing files that were moved: the file is gone from its path and a file
    with the same bytes was ingested under another. Its raw and quarantine files are removed, then its entry
    (last: a run killed in between retires it again). The rows are not lost: they are the other file's.

    A landing file gone without a copy keeps its rows (landing retention is not a deletion request); the
    ledger check lists those as retained."""
    by_content: dict[tuple[str, int], list[str]] = {}
    for path, row in known.items():
        if path in present:
            by_content.setdefault((row["sha256"], row["size_bytes"]), []).append(path)
    retired = []
    for path, row in sorted(known.items()):
        if path in present or (row["sha256"], row["size_bytes"]) not in by_content:
            continue
        landing_file = LandingFile(SOURCES[row["source"]], paths.landing_dir() / path, row["dt"])
        (paths.data_dir() / row["raw_path"]).unlink(missing_ok=True)
        landing_file.output(paths.quarantine_dir()).unlink(missing_ok=True)
        ledger.entry_path(row["source"], row["dt"], Path(path).name).unlink(missing_ok=True)
        log.warning("%s: moved to %s; its entry and outputs are retired", path,
                    ", ".join(by_content[(row["sha256"], row["size_bytes"])]))
        retired.append(row)
    for row in retired:
        del known[row["landing_path"]]
    return retired


def reprocess_marker() -> Path:
    """Where ingestion leaves, for the next dbt build, the earliest older day whose raw files changed."""
    return paths.ledger_dir() / "_reprocess_from.json"


def note_reprocess_from(day: str) -> None:
    """Record that the warehouse must rebuild from ``day`` (the earliest of all noted, until a build clears it)."""
    marker = reprocess_marker()
    marker.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(marker) + ".lock"):
        noted = read_reprocess_from()
        if noted is None or day < noted:
            tmp = marker.with_name(f".{marker.name}.tmp-{os.getpid()}")
            tmp.write_text(json.dumps({"reprocess_from": day}))
            os.replace(tmp, marker)


def read_reprocess_from() -> str | None:
    try:
        day = json.loads(reprocess_marker().read_text())["reprocess_from"]
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:  # a damaged marker must not hide a change: rebuild it all
        log.warning("reprocess marker unreadable (%s): the next build reprocesses every day", exc)
        return SCHEMA_DT
    return day if isinstance(day, str) and DAY.match(day) else SCHEMA_DT


def clear_reprocess_from(day: str) -> None:
    """After a whole build from ``day``: remove the marker, unless a later ingestion noted an earlier day."""
    marker = reprocess_marker()
    with FileLock(str(marker) + ".lock"):
        if read_reprocess_from() == day:
            marker.unlink(missing_ok=True)


def _refreshed(previous: dict, mtime_ns: int) -> ledger.LedgerEntry:
    row = dict(previous)
    row["mtime_ns"] = mtime_ns
    return ledger.LedgerEntry(**{k: row[k] for k in ledger.LEDGER_SCHEMA.names})


@dataclass(frozen=True)
class Records:
    """A Parquet extract made ready for SQL: the SELECT of its records (typed columns plus ``_reason_code``,
    ``_reason``, ``_raw_text``), its parameters, and how many records it holds (one per row)."""

    sql: str
    params: dict
    lines_read: int
    expected: int
    file_error: str | None = None
    extra_columns: str | None = None


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    landing_file: LandingFile,
    *,
    run_id: str,
    sha256: str | None = None,
    stat: os.stat_result | None = None,
) -> ledger.LedgerEntry:
    source = landing_file.source
    stat = stat or landing_file.path.stat()
    sha256 = sha256 or ledger.sha256_of(landing_file.path)
    ingested_at = datetime.now(UTC)
    params = {"landing_path": landing_file.relative, "ingested_at": ingested_at, "dt": landing_file.dt}
    raw_target = landing_file.output(paths.raw_dir())
    quarantine_target = landing_file.output(paths.quarantine_dir())
    if source.extract is None:
        lines_read, loaded, counts, file_error = _stream_json_lines(
            con, landing_file, params, raw_target, quarantine_target, run_id)
        return _commit(landing_file, stat, sha256, ingested_at, run_id, raw_target, lines_read=lines_read,
                       loaded=loaded, counts=counts, file_error=file_error, extra_columns=None)
    records = _extract_records(con, landing_file, params)
    try:
        sql = records.sql
        # Good records stream straight into the raw file: no copy of the whole file is kept.
        _copy_atomically(
            con, f"select * exclude (_reason_code, _reason, _raw_text) from ({sql}) where _reason_code is null",
            raw_target, records.params,
        )
        loaded = pq.ParquetFile(raw_target).metadata.num_rows
        counts: dict[str, int] = {}
        if loaded < records.expected:
            # Rejected records are rare: only files that have some pay for this second pass.
            _execute(con, f"create or replace temp table rejected as select * from ({sql}) "
                          "where _reason_code is not null", records.params)
            counts = dict(con.execute("select _reason_code, count(*) from rejected group by all").fetchall())
        if counts:
            _copy_atomically(con, _quarantine_select(con), quarantine_target,
                             {"source": source.name, "dt": landing_file.dt, "run_id": run_id})
        elif quarantine_target.exists():
            quarantine_target.unlink()  # the file changed and its bad records are gone
    finally:
        con.execute("drop table if exists rejected")
    if loaded + sum(counts.values()) != records.expected:
        raise RuntimeError(f"{landing_file.relative}: {records.expected} records read but {loaded} loaded "
                           f"and {sum(counts.values())} quarantined")
    return _commit(landing_file, stat, sha256, ingested_at, run_id, raw_target, lines_read=records.lines_read,
                   loaded=loaded, counts=counts, file_error=records.file_error,
                   extra_columns=records.extra_columns)


def _commit(landing_file: LandingFile, stat: os.stat_result, sha256: str, ingested_at: datetime, run_id: str,
            raw_target: Path, *, lines_read: int, loaded: int, counts: dict[str, int], file_error: str | None,
            extra_columns: str | None) -> ledger.LedgerEntry:
    """Write the file's ledger entry: its outputs are in place, so this is the commit point."""
    quarantined = sum(counts.values())
    entry = ledger.LedgerEntry(
        source=landing_file.source.name,
        dt=landing_file.dt,
        landing_path=landing_file.relative,
        size_bytes=stat.st_size,
        mtime_ns=stat.st_mtime_ns,
        sha256=sha256,
        lines_read=lines_read,
        records_read=loaded + quarantined,
        records_loaded=loaded,
        records_quarantined=quarantined,
        quarantined_by_reason=ledger.reason_counts_json(counts),
        raw_path=raw_target.relative_to(paths.data_dir()).as_posix(),
        file_error=file_error,
        extra_columns=extra_columns,
        ingested_at=ingested_at,
        run_id=run_id,
        reason_counts=counts,
    )
    ledger.write_entry(entry)
    return entry


def _stream_json_lines(
    con: duckdb.DuckDBPyConnection, landing_file: LandingFile, params: dict, raw_target: Path,
    quarantine_target: Path, run_id: str,
) -> tuple[int, int, dict[str, int], str | None]:
    """One pass over a JSON-lines file: its lines stream into the format's query batch by batch, and
    each result batch is split into good rows (to the raw file) and rejected rows (to the quarantine
    file). Rejected records that are part of a line (OTLP spans) get their text afterwards from the
    source's ``rejected_sql``, over the lines holding them only. Returns (lines read, records loaded,
    quarantined records by reason, the file's error)."""
    source = landing_file.source
    stream = _line_stream(landing_file)
    raw = _ParquetOutput(raw_target)
    quarantine = _ParquetOutput(quarantine_target)
    counts: Counter = Counter()
    loaded = 0
    pending: list[pa.RecordBatch] = []  # rejected rows whose raw text rejected_sql gives
    reader: pa.RecordBatchReader | None = None
    con.register("lines", stream.reader())
    try:
        sql = source.sql
        result = con.sql(sql, params={k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)})
        reader = result.to_arrow_reader(RESULT_BATCH_ROWS)
        raw_names = [n for n in reader.schema.names if n not in REASON_COLUMNS and n != RAW_TEXT_PATH]
        raw.open(pa.schema([reader.schema.field(n) for n in raw_names]))
        for batch in reader:
            codes = batch.column("_reason_code")
            if codes.null_count == len(batch):  # the usual batch: nothing rejected
                raw.write(batch.select(raw_names))
                loaded += len(batch)
                continue
            good = pc.is_null(codes)
            raw.write(batch.filter(good).select(raw_names))
            loaded += codes.null_count
            rejected = batch.filter(pc.invert(good))
            by_reason = pc.value_counts(rejected.column("_reason_code"))
            counts.update(dict(zip(by_reason.field("values").to_pylist(), by_reason.field("counts").to_pylist())))
            if RAW_TEXT_PATH in rejected.schema.names:
                later = pc.is_valid(rejected.column(RAW_TEXT_PATH))
                pending.append(rejected.filter(later).select(
                    [n for n in PENDING_COLUMNS if n in rejected.schema.names]))
                rejected = rejected.filter(pc.invert(later))
            if len(rejected):
                if quarantine.writer is None:
                    quarantine.open(QUARANTINE_SCHEMA)
                quarantine.write(_quarantine_batch(rejected, source.name, landing_file.dt, run_id))
        reader.close()  # the query is done: free its buffers before the next step
        reader = None
        con.unregister("lines")
        if any(len(b) for b in pending):
            _quarantine_parts_of_lines(con, landing_file, pending, quarantine, run_id)
        if quarantine.writer is not None:
            quarantine.commit()
        elif quarantine_target.exists():
            quarantine_target.unlink()  # the file changed and its bad records are gone
        raw.commit()
    finally:
        if reader is not None:
            reader.close()
        raw.abandon()
        quarantine.abandon()
        con.unregister("lines")
    if not stream.done:
        raise RuntimeError(f"{landing_file.relative}: the query stopped before the end of the file")
    records = loaded + sum(counts.values())
    if source.one_record_per_line and records != stream.records:
        raise RuntimeError(f"{landing_file.relative}: {stream.records} records read but {loaded} loaded "
                           f"and {sum(counts.values())} quarantined")
    return stream.lines_read, loaded, dict(counts), stream.error


def _line_stream(landing_file: LandingFile) -> LineStream:
    """A file's lines; one over the size limit is only ever rejected, so only what its rejection keeps is held."""
    return LineStream(landing_file.path, long_line_bytes=MAX_PAYLOAD_BYTES, keep_chars=QUARANTINE_TEXT_CHARS)


def _quarantine_parts_of_lines(
    con: duckdb.DuckDBPyConnection, landing_file: LandingFile, pending: list[pa.RecordBatch],
    quarantine: _ParquetOutput, run_id: str,
) -> None:
    """Rejected records that are parts of lines (``RAW_TEXT_PATH`` set) into the quarantine, with their
    own text cut from their line by the source's ``rejected_sql``. Only files with such records pay for
    this second read, and only the lines holding them are given to the query, a batch of lines at a time."""
    source = landing_file.source
    assert source.rejected_sql is not None, f"{source.name}: a record without raw text needs rejected_sql"
    rejected = pa.Table.from_batches([b for b in pending if len(b)])
    wanted = pc.unique(rejected.column("_line_no"))
    written = 0
    con.register("rejected", rejected)
    try:
        for batch in _line_stream(landing_file):
            lines = batch.filter(pc.is_in(batch.column("line_no"), value_set=wanted))
            if not len(lines):
                continue
            con.register("lines", pa.Table.from_batches([lines]))
            try:
                reader = con.sql(source.rejected_sql).to_arrow_reader(RESULT_BATCH_ROWS)
                try:
                    for out in reader:
                        if quarantine.writer is None:
                            quarantine.open(QUARANTINE_SCHEMA)
                        quarantine.write(_quarantine_batch(out, source.name, landing_file.dt, run_id))
                        written += len(out)
                finally:
                    reader.close()
            finally:
                con.unregister("lines")
    finally:
        con.unregister("rejected")
    if written != rejected.num_rows:
        raise RuntimeError(f"{landing_file.relative}: {rejected.num_rows} rejected records to quarantine "
                           f"but {written} found in their lines")


QUARANTINE_SCHEMA = pa.schema([
    ("source", pa.string()), ("dt", pa.string()), ("landing_path", pa.string()), ("line_no", pa.int64()),
    ("record_index", pa.int64()), ("reason_code", pa.string()), ("reason", pa.string()),
    ("raw_text", pa.string()), ("raw_bytes", pa.int64()), ("ingested_at", pa.timestamp("us", tz="UTC")),
    ("run_id", pa.string()),
])


def _quarantine_batch(rejected: pa.RecordBatch, source: str, dt: str, run_id: str) -> pa.RecordBatch:
    """Rejected rows in the quarantine's columns (as ``QUARANTINE_COLUMNS`` selects them)."""
    n = len(rejected)
    names = rejected.schema.names

    def column(name: str, type_: pa.DataType) -> pa.Array:
        return rejected.column(name).cast(type_) if name in names else pa.nulls(n, type_)

    return pa.record_batch([
        pa.array([source] * n, pa.string()), pa.array([dt] * n, pa.string()),
        column("_landing_path", pa.string()), column("_line_no", pa.int64()), column("_record_index", pa.int64()),
        column("_reason_code", pa.string()), column("_reason", pa.string()), column("_raw_text", pa.string()),
        column("_raw_bytes", pa.int64()), column("_ingested_at", pa.timestamp("us", tz="UTC")),
        pa.array([run_id] * n, pa.string()),
    ], schema=QUARANTINE_SCHEMA)


class _ParquetOutput:
    """A Parquet file written batch by batch under a temporary dot-name, renamed into place on commit."""

    def __init__(self, target: Path):
        self.target = target
        self.tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
        self.writer: pq.ParquetWriter | None = None

    def open(self, schema: pa.Schema) -> None:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.writer = pq.ParquetWriter(self.tmp, schema, compression="zstd", compression_level=1)

    def write(self, batch: pa.RecordBatch) -> None:
        if len(batch):
            self.writer.write_batch(batch)

    def commit(self) -> None:
        self.writer.close()
        self.writer = None
        os.replace(self.tmp, self.target)

    def abandon(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
            self.tmp.unlink(missing_ok=True)


def _extract_records(con: duckdb.DuckDBPyConnection, landing_file: LandingFile, params: dict) -> Records:
    """Parquet extracts: the file as the view ``extract_rows``, or one rejected record if unreadable."""
    table = landing_file.source.extract
    assert table is not None
    try:
        # Reading the footer is where a damaged or non-Parquet file shows itself.
        con.execute("select * from read_parquet(?) limit 0", [str(landing_file.path)])
    except duckdb.Error as exc:
        error = f"unreadable Parquet file: {str(exc).splitlines()[0]}"
        sql = f"""
            select {_null_columns(table)},
                   $landing_path::VARCHAR as _landing_path, null::BIGINT as _line_no,
                   $ingested_at::TIMESTAMPTZ as _ingested_at,
                   'unreadable_file' as _reason_code, $error as _reason, null::VARCHAR as _raw_text"""
        return Records(sql=sql, params={**params, "error": error}, lines_read=0, expected=1, file_error=error)
    con.execute(
        "create or replace temp view extract_rows as "
        f"select * from read_parquet('{_sql_path(landing_file.path)}', file_row_number = true, hive_partitioning = false)"
    )
    present = {row[0] for row in con.execute("describe extract_rows").fetchall()}
    (rows,) = con.execute("select count(*) from extract_rows").fetchall()[0]
    extra = sorted(present - set(table.column_names) - {"file_row_number"})
    return Records(sql=extract_sql(table, present), params=params, lines_read=rows, expected=rows,
                   extra_columns=", ".join(extra) or None)


def _null_columns(table: ExtractTable) -> str:
    return ", ".join(f'null::{c.type} as "{c.name}"' for c in table.columns)


def _quarantine_select(con: duckdb.DuckDBPyConnection) -> str:
    columns = {row[0] for row in con.execute("describe rejected").fetchall()}
    select = QUARANTINE_COLUMNS.format(
        record_index="_record_index" if "_record_index" in columns else "null::BIGINT",
        raw_bytes="_raw_bytes" if "_raw_bytes" in columns else "null::BIGINT",
    )
    return f"select {select} from rejected"


def _copy_atomically(
    con: duckdb.DuckDBPyConnection, select_sql: str, target: Path, params: dict | None = None
) -> None:
    """COPY a query to Parquet under a temporary dot-name in the target folder, then rename it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{threading.get_ident()}"
    _execute(con, f"copy ({select_sql}) to '{_sql_path(tmp)}' (format parquet, compression zstd, compression_level 1)",
             params or {})
    os.replace(tmp, target)


def _execute(con: duckdb.DuckDBPyConnection, sql: str, params: dict) -> None:
    """Execute with the named parameters the SQL uses (DuckDB rejects unused ones)."""
    con.execute(sql, {k: v for k, v in params.items() if re.search(rf"\${k}\b", sql)})


def _sql_path(path: Path) -> str:
    return str(path).replace("'", "''")


def write_schema_file(con: duckdb.DuckDBPyConnection, source: Source) -> Path:
    """Zero-row Parquet files with the exact raw and quarantine schemas, in a partition of no data.

    A source with no landing files yet then reads as an empty table with the right columns.
    """
    target = paths.raw_dir() / source.name / f"dt={SCHEMA_DT}" / "_schema.parquet"
    params = {"landing_path": "", "ingested_at": datetime(1970, 1, 1, tzinfo=UTC), "dt": SCHEMA_DT}
    if source.extract is not None:
        con.execute(
            f"create or replace temp view extract_rows as select {_null_columns(source.extract)}, "
            "0::BIGINT as file_row_number limit 0"
        )
        _execute(con, "create or replace temp table rejected as "
                 + extract_sql(source.extract, set(source.extract.column_names)), params)
    else:
        con.register("lines", LINE_SCHEMA.empty_table())
        _execute(con, f"create or replace temp table rejected as {source.sql}", params)
        con.unregister("lines")
    helpers = {row[0] for row in con.execute("describe rejected").fetchall()} & {RAW_TEXT_PATH}
    _copy_atomically(con, f"select * exclude (_reason_code, _reason, _raw_text{''.join(', ' + h for h in helpers)}) "
                          "from rejected", target)
    _copy_atomically(con, _quarantine_select(con), paths.quarantine_dir() / "_schema.parquet",
                     params={"source": source.name, "dt": SCHEMA_DT, "run_id": ""})
    ledger.ensure_schema_file()
    con.execute("drop table if exists rejected")
    return target


def clean_stale_temporaries() -> int:
    """Remove temporary files a killed run left behind (they were never renamed into place)."""
    removed = 0
    for root in (paths.raw_dir(), paths.quarantine_dir()):
        if root.exists():
            for tmp in root.glob("**/.*.tmp-*"):
                tmp.unlink(missing_ok=True)
                removed += 1
    return removed
