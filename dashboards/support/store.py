"""Where the support console writes, and how it opens those files.

The published snapshot is read-only for every dashboard; the console is the one reader that also writes, and it
writes only to files of its own under ``PITWALL_DATA_DIR/console/`` (see docs/ARCHITECTURE's data flow):

- ``outbox.duckdb``   table ``support_actions``: remote-logout requests the mobile backend consumes and
                      acknowledges. Shared with the backend, so it holds nothing but those requests.
- ``console.duckdb``  table ``audit_log`` (hash-chained) and ``impersonation_sessions``. Only the console writes
                      here, so the backend's write access to the outbox gives it no way to touch the audit trail.
- ``console.audit-witness.jsonl``  the audit log's head after every append, outside the database (audit.py);
                      ``PITWALL_SUPPORT_AUDIT_WITNESS`` puts it elsewhere (append-only storage, a log shipper's file).

DuckDB lets one process write a file at a time. Every operation here opens the file, does its work in one
transaction and closes it, so the console and the backend take turns; a writer that finds the file locked
retries for a few seconds before giving up.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from pitwall import paths
from pitwall.duck import connect

Clock = Callable[[], datetime]
Monotonic = Callable[[], float]
WITNESS_ENV = "PITWALL_SUPPORT_AUDIT_WITNESS"
LOCK_RETRY_SECONDS = 5.0
# Threads of one server share one DuckDB instance per file, where two overlapping transactions conflict (on
# "create table if not exists", on the same primary key) instead of waiting: the console's own threads take turns
# here. Other processes (the backend acknowledging) are kept out by DuckDB's file lock.
_turn = threading.RLock()


def utc_now() -> datetime:
    return datetime.now(UTC)


def console_dir() -> Path:
    return paths.data_dir() / "console"


def outbox_path() -> Path:
    return console_dir() / "outbox.duckdb"


def console_path() -> Path:
    return console_dir() / "console.duckdb"


def witness_path(log_path: Path) -> Path:
    """Where the audit log at ``log_path`` witnesses its head: ``PITWALL_SUPPORT_AUDIT_WITNESS`` when set, else a
    file beside the log named after it (so a log given by path, as in tests and ``--db``, has its own)."""
    configured = os.environ.get(WITNESS_ENV)
    return Path(configured) if configured else log_path.with_name(f"{log_path.stem}.audit-witness.jsonl")


def open_writable(path: Path, schema: str | None) -> duckdb.DuckDBPyConnection:
    """A read-write connection to one of the console's files, its tables created if missing (``schema`` None:
    nothing created, for a caller that must first see what is there)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    while True:
        try:
            con = connect(path)
            break
        except duckdb.IOException as error:  # another process holds the write lock
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    if schema is not None:
        con.execute(schema)
    return con


def read_only(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection (the verify command, the console reading its own log), waiting out a writer."""
    deadline = time.monotonic() + LOCK_RETRY_SECONDS
    while True:
        try:
            return connect(path, read_only=True)
        except duckdb.IOException as error:
            if "lock" not in str(error).lower() or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def opened(path: Path, schema: str | None, *, writable: bool | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """One turn at a console file: this process's only connection to it while the block runs, closed after.
    ``schema`` None opens it read-only (nothing created), unless ``writable`` says otherwise."""
    writable = schema is not None if writable is None else writable
    with _turn:
        con = open_writable(path, schema) if writable else read_only(path)
        try:
            yield con
        finally:
            con.close()
