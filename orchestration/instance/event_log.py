"""Dagster's SQLite event log, less its cost per event.

Dagster's ``SqliteEventLogStorage`` creates a SQLAlchemy engine, opens a connection, commits and closes it
for every event it stores, twice for an asset event (the run's shard and the index shard). A dbt build
reports each of its ~500 nodes as an event and each data test's plan and evaluation as two more, so a
pipeline run stores ~1,800 events: at ~8 ms of CPU each (engine set-up, fsync on commit, close), the event log
cost more CPU than a day's ingestion (docs/benchmarks.md).

This subclass keeps one engine per shard for the life of the storage (a small connection pool instead of
a new engine and connection per event), remembers the schema questions Dagster asks again before each event
(whether a table, an index migration or a column exists: ~3 ms each through a new engine, ~2 CPU-s of a dbt
build's events) once the answer is yes, and sets ``PRAGMA synchronous = NORMAL`` on its connections: Dagster
already journals its shards in WAL mode, where NORMAL, SQLite's recommended setting for WAL, syncs at
checkpoints instead of at every commit. A killed process loses nothing that was committed; a power loss can
lose the last events written, never corrupt a shard. A deployment with several busy writers uses Postgres
storage instead, which this does not replace.

Configured in ``orchestration/instance/dagster.yaml``; the tables, shards and files are Dagster's own.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

from dagster import Field, StringSource
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Connection, Engine

SQLITE_BUSY_TIMEOUT_SECONDS = 30  # as Dagster's own: another process may hold the shard's write lock
KEPT_ENGINES = 8  # the index shard and the runs being written or watched; the least recently used is closed


def _sync_at_checkpoints(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("pragma synchronous = normal")
    cursor.close()


class PooledSqliteEventLogStorage(SqliteEventLogStorage):
    """``SqliteEventLogStorage`` with one pooled engine per shard (the most recently used few), syncing at
    WAL checkpoints."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        # Schema facts found true (a table, a completed index migration, a column): the schema only grows, so
        # a yes stays a yes until a wipe; a no is asked again (a migration may run meanwhile).
        self._schema_has: set[tuple[str, str]] = set()
        super().__init__(base_dir, inst_data)

    def _remembered_yes(self, kind: str, name: str, ask) -> bool:
        if (kind, name) in self._schema_has:
            return True
        found = bool(ask(name))
        if found:
            self._schema_has.add((kind, name))
        return found

    def has_table(self, table_name: str) -> bool:
        return self._remembered_yes("table", table_name, super().has_table)

    def has_secondary_index(self, name: str) -> bool:
        return self._remembered_yes("secondary index", name, super().has_secondary_index)

    def has_asset_key_col(self, column_name: str) -> bool:
        return self._remembered_yes("asset key column", column_name, super().has_asset_key_col)

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False,
                                  description="default: $DAGSTER_HOME/history/runs, where Dagster's default keeps it")}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledSqliteEventLogStorage:
        base_dir = config_value.get("base_dir") or os.path.join(os.environ["DAGSTER_HOME"], "history", "runs")
        return cls(base_dir, inst_data=inst_data)

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.get(shard)
        if engine is None:
            engine = create_engine(self.conn_string_for_shard(shard), pool_size=1, max_overflow=1,
                                   connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False})
            event.listen(engine, "connect", _sync_at_checkpoints)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            self._engines[shard] = engine
            while len(self._engines) > KEPT_ENGINES:
                self._engines.popitem(last=False)[1].dispose()
        self._engines.move_to_end(shard)
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:  # as Dagster's: one statement at a time per storage, across threads
            with self._engine(shard).connect() as conn, conn.begin():
                yield conn

    def _dispose_engines(self) -> None:
        with self._db_lock:
            for engine in self._engines.values():
                engine.dispose()
            self._engines.clear()

    def wipe(self) -> None:
        self._schema_has.clear()
        self._dispose_engines()  # the run shards' files are deleted: no pooled connection may outlive them
        super().wipe()

    def dispose(self) -> None:
        self._dispose_engines()
        super().dispose()
