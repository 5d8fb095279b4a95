"""Publish the warehouse for readers: write, audit, then move into place in one rename.

Readers (dashboards, the mobile backend, analysts) never open ``warehouse.duckdb``: DuckDB lets one
process write a file or several read it, not both, and a reader would see half-built tables during a
run. They open ``published/pitwall.duckdb`` read-only instead, and the backend reads the serving tables
as Parquet under ``published/serving/``.

Publishing is write-audit-publish: ``stage_publication`` copies the warehouse into a staged file beside
the published one, the data-quality checks (``expectations.py``) read the staged file, and only then
``promote_publication`` writes the serving Parquet files and renames the staged file over the published
one. A reader sees the previous run or the new one, never a mix, and an open reader keeps its snapshot
while the new file takes the name. Views are published as tables: a reader gets a self-contained
snapshot (dbt's views name the warehouse's catalog, and the quarantine and ledger views read Parquet
files that later runs replace).

Only what changed is copied. Each publication records in itself (table ``_publication``) a fingerprint of
every relation: its columns and, per part, the row count and the sum of the rows' hashes, where a part is
the whole table or, for the dbt models incremental by day, one day. The next staged file starts as a copy of
the published one (a file copy, done by the kernel); unchanged relations stay as they are, the changed
days of a day-partitioned table are deleted and inserted again, other changed relations are copied whole.
The staged file still holds exactly what a copy from scratch would, and still takes the published name in
one rename. Serving Parquet files carry their table's fingerprint in their key-value metadata and are
rewritten only when it changed.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import psutil

from orchestration.alerts.store import ALERT_TABLES, waiting_for_lock
from pitwall import paths
from pitwall.duck import connect

SERVING_TAG = "serving"  # dbt tag of the models the mobile backend reads (models/serving/)
# The publication's record of itself: each relation's fingerprint, per day for the tables partitioned by day.
PUBLICATION_TABLE = "_publication"
SERVING_FINGERPRINT_KEY = "pitwall_fingerprint"  # Parquet key-value metadata of a serving file


@dataclass(frozen=True)
class Published:
    path: Path
    tables: dict[str, int]  # relation -> rows
    serving_files: tuple[Path, ...] = ()        # serving files written by this publication
    serving_unchanged: tuple[Path, ...] = ()    # serving files left as they were (their table did not change)


def staged_path() -> Path:
    return paths.published_dir() / ".pitwall.duckdb.staged"


def serving_dir() -> Path:
    return paths.published_dir() / "serving"


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


@functools.lru_cache(maxsize=4)
def _manifest_nodes(manifest_path: Path) -> tuple[dict, ...]:
    return tuple(json.loads(Path(manifest_path).read_text())["nodes"].values())


def models_in(manifest_path: Path, *, prefix: str | None = None, tag: str | None = None) -> list[str]:
    """Names of the dbt models whose name starts with ``prefix`` (dbt's layer prefixes: ``mart_``, ...), or
    that carry ``tag``. By name, not folder: a mart lives in its domain's folder (models/partners/...)."""
    nodes = _manifest_nodes(Path(manifest_path))
    return sorted(
        n["name"] for n in nodes
        if n["resource_type"] == "model"
        and ((prefix is not None and n["name"].startswith(prefix))
             or (tag is not None and tag in n["config"].get("tags", [])))
    )


def publication_relations(path: Path) -> list[str]:
    """The relations a (staged) publication holds for its readers: every table but its own fingerprints."""
    con = connect(path, read_only=True)
    try:
        return [n for (n,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main' order by 1").fetchall()
            if n != PUBLICATION_TABLE]
    finally:
        con.close()


def partitioned_models(manifest_path: Path | None = None) -> dict[str, str]:
    """The dbt models the publication replaces day by day instead of whole, each with its day column: those
    incremental by day (macros/engine/incremental.sql: a run replaces whole days of them), and tables rebuilt
    whole whose older days a new day leaves as they were (point-in-time features, daily activity, staging by
    extract day), named by their ``meta: {publish_partition_by: <day column>}``. Either way only the days whose
    fingerprint changed are replaced, so a day that did change is never missed."""
    manifest_path = Path(manifest_path or paths.DBT_PROJECT_DIR / "target" / "manifest.json")
    if not manifest_path.exists():
        return {}
    out = {}
    for n in _manifest_nodes(manifest_path):
        config = n.get("config") or {}
        partition_by = config.get("partition_by")
        if n["resource_type"] != "model":
            continue
        if config.get("materialized") == "incremental" and isinstance(partition_by, list) and len(partition_by) == 1:
            out[n.get("alias") or n["name"]] = partition_by[0]
        elif by_day := (config.get("meta") or {}).get("publish_partition_by"):
            out[n.get("alias") or n["name"]] = by_day
    return out


@dataclass(frozen=True)
class Fingerprint:
    """What a relation holds, cheaply compared: its columns and, per part (the whole table, or each day of a
    table partitioned by day), the row count and the sum of the rows' hashes (order-independent)."""
    columns: str                             # JSON [[name, type], ...]
    partition_column: str | None
    parts: tuple[tuple[str, int, str], ...]  # (part, rows, hash sum), sorted by part

    @property
    def rows(self) -> int:
        return sum(rows for _, rows, _ in self.parts)

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps([self.columns, self.partition_column, self.parts]).encode()).hexdigest()


WHOLE = "*"           # the part of a table not partitioned by day
NULL_PART = "<null>"  # the part of the rows whose day is null


def _part_expr(column: str | None) -> str:
    return f"coalesce(cast(\"{column}\" as varchar), '{NULL_PART}')" if column else f"'{WHOLE}'"


def fingerprint(con, catalog: str, name: str, partition_column: str | None = None) -> Fingerprint:
    columns = con.execute(
        "select column_name, data_type from information_schema.columns where table_catalog = ? "
        "and table_schema = 'main' and table_name = ? order by ordinal_position", [catalog, name]).fetchall()
    if partition_column not in {c for c, _ in columns}:
        partition_column = None
    parts = con.execute(
        f"select {_part_expr(partition_column)} as part, count(*), cast(coalesce(sum(hash(t)), 0) as varchar) "
        f'from "{catalog}".main."{name}" as t group by all order by 1').fetchall()
    return Fingerprint(json.dumps([list(c) for c in columns]), partition_column,
                       tuple((part, rows, h) for part, rows, h in parts))


def _recorded(con, catalog: str) -> dict[str, Fingerprint]:
    """The fingerprints a publication recorded of itself (empty for one written before they were kept)."""
    if not con.execute("select count(*) from information_schema.tables where table_catalog = ? and table_schema = "
                       "'main' and table_name = ?", [catalog, PUBLICATION_TABLE]).fetchall()[0][0]:
        return {}
    rows = con.execute(f'select relation, columns, partition_column, part, rows, hash_sum from "{catalog}".main.'
                       f'"{PUBLICATION_TABLE}" order by relation, part').fetchall()
    grouped: dict[str, list] = {}
    for relation, columns, partition_column, part, n, h in rows:
        grouped.setdefault(relation, []).append((columns, partition_column, part, n, h))
    return {relation: Fingerprint(parts[0][0], parts[0][1], tuple((p, n, h) for _, _, p, n, h in parts))
            for relation, parts in grouped.items()}


def _record(con, fingerprints: dict[str, Fingerprint]) -> None:
    con.execute(f'create or replace table published.main."{PUBLICATION_TABLE}" (relation varchar, columns varchar, '
                "partition_column varchar, part varchar, rows bigint, hash_sum varchar, published_at timestamptz)")
    now = dt.datetime.now(dt.UTC)
    con.executemany(f'insert into published.main."{PUBLICATION_TABLE}" values (?, ?, ?, ?, ?, ?, ?)', [
        (name, f.columns, f.partition_column, part, rows, h, now)
        for name, f in sorted(fingerprints.items()) for part, rows, h in f.parts])


@dataclass(frozen=True)
class Staged(Published):
    copied: tuple[str, ...] = ()     # relations copied whole
    replaced_parts: dict = field(default_factory=dict)  # relation -> days replaced
    carried: tuple[str, ...] = ()    # relations carried over unchanged from the previous publication


def stage_publication(partitioned: dict[str, str] | None = None) -> Staged:
    """Stage the next publication: every relation of the warehouse (and the alerts file's tables) as a table.

    The staged file starts as a copy of the published one when that recorded its fingerprints: a relation
    whose fingerprint has not changed is carried over as it is, a table partitioned by day (``partitioned``:
    relation -> day column; default the dbt models incremental by day) has only its changed days replaced,
    any other changed relation is copied whole. The result holds the same rows as a copy from scratch."""
    partitioned = partitioned_models() if partitioned is None else partitioned
    staged = staged_path()
    staged.parent.mkdir(parents=True, exist_ok=True)
    tmp = staged.parent / f".pitwall.duckdb.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    for left in staged.parent.glob(".pitwall.duckdb.tmp-*"):  # a killed run's half-written stage (a copy: GBs)
        pid = left.name.rsplit("-", 1)[-1]
        if not (pid.isdigit() and psutil.pid_exists(int(pid))):
            left.unlink(missing_ok=True)
    if paths.published_path().exists():
        # A kernel-side copy of the previous publication (never written in place: readers may have it open).
        shutil.copyfile(paths.published_path(), tmp)
    con = connect()
    try:
        sources = {"warehouse_snapshot": paths.warehouse_path()}
        con.execute(f"attach '{_quote(paths.warehouse_path())}' as warehouse_snapshot (read_only)")
        if paths.alerts_path().exists():
            waiting_for_lock(lambda: con.execute(
                f"attach '{_quote(paths.alerts_path())}' as alerts_snapshot (read_only)"))
            sources["alerts_snapshot"] = paths.alerts_path()
        wanted: dict[str, str] = {}  # relation -> the catalog it comes from
        for (name,) in con.execute("select table_name from information_schema.tables where table_catalog = "
                                   "'warehouse_snapshot' and table_schema = 'main' order by 1").fetchall():
            wanted[name] = "warehouse_snapshot"
        if "alerts_snapshot" in sources:
            present = {n for (n,) in con.execute("select table_name from information_schema.tables "
                                                 "where table_catalog = 'alerts_snapshot'").fetchall()}
            wanted.update({name: "alerts_snapshot" for name in ALERT_TABLES if name in present})
        current = {name: fingerprint(con, catalog, name, partitioned.get(name)) for name, catalog in wanted.items()}

        con.execute(f"attach '{_quote(tmp)}' as published")
        kept = _recorded(con, "published")
        if not kept and tmp.exists():  # a publication without fingerprints: start from scratch
            con.execute("detach published")
            tmp.unlink()
            con.execute(f"attach '{_quote(tmp)}' as published")
        for (name,) in con.execute("select table_name from information_schema.tables where table_catalog = "
                                   "'published' and table_schema = 'main'").fetchall():
            if name not in wanted and name != PUBLICATION_TABLE:
                con.execute(f'drop table published.main."{name}"')
        copied, carried, replaced = [], [], {}
        for name, catalog in wanted.items():
            now, before = current[name], kept.get(name)
            if before == now:
                carried.append(name)
            elif (before and now.partition_column and before.partition_column == now.partition_column
                  and before.columns == now.columns):
                replaced[name] = _replace_parts(con, catalog, name, before, now)
            else:
                con.execute(f'create or replace table published.main."{name}" as select * from "{catalog}".main."{name}"')
                copied.append(name)
        _record(con, current)
        for catalog in sources:
            con.execute(f"detach {catalog}")
        con.execute("detach published")
    finally:
        con.close()
    os.replace(tmp, staged)
    return Staged(staged, {name: f.rows for name, f in current.items()}, copied=tuple(copied),
                  replaced_parts=replaced, carried=tuple(carried))


def _replace_parts(con, catalog: str, name: str, before: Fingerprint, now: Fingerprint) -> list[str]:
    """Replace in the published copy the days of ``name`` whose fingerprint changed (or that are gone)."""
    old = {part: (rows, h) for part, rows, h in before.parts}
    new = {part: (rows, h) for part, rows, h in now.parts}
    changed = sorted(p for p in old.keys() | new.keys() if old.get(p) != new.get(p))
    if changed:
        expr = _part_expr(now.partition_column)
        con.execute("create or replace temp table changed_parts (part varchar)")
        con.executemany("insert into changed_parts values (?)", [(p,) for p in changed])
        con.execute(f'delete from published.main."{name}" where {expr} in (select part from changed_parts)')
        con.execute(f'insert into published.main."{name}" select * from "{catalog}".main."{name}" '
                    f"where {expr} in (select part from changed_parts)")
    return changed


def promote_publication(serving_tables: list[str] = ()) -> Published:
    """Write the serving tables of the staged file as Parquet, then rename the staged file into place.

    Each Parquet file is written under a temporary name and renamed, like the database file, so the
    backend never reads a half-written file. A serving file whose recorded fingerprint (in its Parquet
    key-value metadata) equals the table's is left as it is."""
    staged, target = staged_path(), paths.published_path()
    if not staged.exists():
        raise FileNotFoundError(f"nothing staged to publish at {staged}: run the staged publication first")
    out = serving_dir()
    out.mkdir(parents=True, exist_ok=True)
    con = connect(staged, read_only=True)
    try:
        catalog = con.execute("select current_database()").fetchall()[0][0]
        recorded = _recorded(con, catalog)
        names = [n for (n,) in con.execute(
            "select table_name from duckdb_tables() where schema_name = 'main' order by 1").fetchall()]
        missing = sorted(set(serving_tables) - set(names))
        if missing:
            raise LookupError(f"serving tables missing from the staged publication: {missing}")
        written, kept = [], []
        for name in serving_tables:
            final = out / f"{name}.parquet"
            digest = recorded[name].digest if name in recorded else None
            if digest and _parquet_fingerprint(con, final) == digest:
                kept.append(final)
                continue
            tmp = out / f".{name}.parquet.tmp-{os.getpid()}"
            metadata = f", kv_metadata {{{SERVING_FINGERPRINT_KEY}: '{digest}'}}" if digest else ""
            con.execute(f"copy \"{name}\" to '{_quote(tmp)}' (format parquet, compression zstd{metadata})")
            written.append((tmp, final))
        tables = {name: recorded[name].rows if name in recorded
                  else con.execute(f'select count(*) from "{name}"').fetchall()[0][0]
                  for name in names if name != PUBLICATION_TABLE}
    finally:
        con.close()
    for tmp, final in written:
        os.replace(tmp, final)
    os.replace(staged, target)
    return Published(target, tables, tuple(final for _, final in written), tuple(kept))


def _parquet_fingerprint(con, path: Path) -> str | None:
    if not path.exists():
        return None
    try:
        rows = con.execute(f"select value from parquet_kv_metadata('{_quote(path)}') where key = ?",
                           [SERVING_FINGERPRINT_KEY.encode()]).fetchall()
    except duckdb.Error:
        return None
    return rows[0][0].decode() if rows else None


def publish_warehouse(serving_tables: list[str] = ()) -> Published:
    """Stage and promote in one go, without the audit (the Dagster assets put the checks in between)."""
    stage_publication()
    return promote_publication(serving_tables)
