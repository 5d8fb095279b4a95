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
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

from orchestration.alerts.store import ALERT_TABLES, waiting_for_lock
from pitwall import paths
from pitwall.duck import connect

SERVING_TAG = "serving"  # dbt tag of the models the mobile backend reads (models/serving/)


@dataclass(frozen=True)
class Published:
    path: Path
    tables: dict[str, int]  # relation -> rows
    serving_files: tuple[Path, ...] = ()


def staged_path() -> Path:
    return paths.published_dir() / ".pitwall.duckdb.staged"


def serving_dir() -> Path:
    return paths.published_dir() / "serving"


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


@functools.lru_cache(maxsize=4)
def _manifest_nodes(manifest_path: Path) -> tuple[dict, ...]:
    return tuple(json.loads(Path(manifest_path).read_text())["nodes"].values())


def models_in(manifest_path: Path, *, folders: tuple[str, ...] = (), tag: str | None = None) -> list[str]:
    """Names of the dbt models under the given top-level model folders, or with the given tag."""
    nodes = _manifest_nodes(Path(manifest_path))
    return sorted(
        n["name"] for n in nodes
        if n["resource_type"] == "model"
        and ((len(n["fqn"]) > 2 and n["fqn"][1] in folders) or (tag is not None and tag in n["config"].get("tags", [])))
    )


def stage_publication() -> Published:
    """Copy every relation of the warehouse into the staged file (replacing an earlier one)."""
    staged = staged_path()
    staged.parent.mkdir(parents=True, exist_ok=True)
    tmp = staged.parent / f".pitwall.duckdb.tmp-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    con = connect()
    try:
        source = "warehouse_snapshot"
        con.execute(f"attach '{_quote(paths.warehouse_path())}' as {source} (read_only)")
        relations = [name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = ? and table_schema = 'main' "
            "order by 1", [source]).fetchall()]
        con.execute(f"attach '{_quote(tmp)}' as published")
        tables = {}
        for name in relations:
            con.execute(f'create table published.main."{name}" as select * from "{source}".main."{name}"')
            tables[name] = con.execute(f'select count(*) from published.main."{name}"').fetchall()[0][0]
        con.execute(f"detach {source}")
        tables.update(_copy_alerts(con))
        con.execute("detach published")
    finally:
        con.close()
    os.replace(tmp, staged)
    return Published(staged, tables)


def _copy_alerts(con) -> dict[str, int]:
    """Alerts live in a file of their own (orchestration/alerts/store.py): copy its tables beside the warehouse's
    so dashboards see them. Its writers hold it for milliseconds; a copy that finds it busy waits briefly."""
    if not paths.alerts_path().exists():
        return {}
    waiting_for_lock(lambda: con.execute(f"attach '{_quote(paths.alerts_path())}' as alerts_snapshot (read_only)"))
    try:
        present = {name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_catalog = 'alerts_snapshot'").fetchall()}
        copied = {}
        for name in ALERT_TABLES:
            if name in present:
                con.execute(f'create or replace table published.main."{name}" as select * from alerts_snapshot.main."{name}"')
                copied[name] = con.execute(f'select count(*) from published.main."{name}"').fetchall()[0][0]
        return copied
    finally:
        con.execute("detach alerts_snapshot")


def promote_publication(serving_tables: list[str] = ()) -> Published:
    """Write the serving tables of the staged file as Parquet, then rename the staged file into place.

    Each Parquet file is written under a temporary name and renamed, like the database file, so the
    backend never reads a half-written file."""
    staged, target = staged_path(), paths.published_path()
    if not staged.exists():
        raise FileNotFoundError(f"nothing staged to publish at {staged}: run the staged publication first")
    out = serving_dir()
    out.mkdir(parents=True, exist_ok=True)
    con = connect(staged, read_only=True)
    try:
        tables = dict(con.execute(
            "select table_name, estimated_size from duckdb_tables() where schema_name = 'main' order by 1").fetchall())
        missing = sorted(set(serving_tables) - set(tables))
        if missing:
            raise LookupError(f"serving tables missing from the staged publication: {missing}")
        written = []
        for name in serving_tables:
            tmp = out / f".{name}.parquet.tmp-{os.getpid()}"
            con.execute(f"copy \"{name}\" to '{_quote(tmp)}' (format parquet, compression zstd)")
            written.append((tmp, out / f"{name}.parquet"))
        tables = {name: con.execute(f'select count(*) from "{name}"').fetchall()[0][0] for name in tables}
    finally:
        con.close()
    for tmp, final in written:
        os.replace(tmp, final)
    os.replace(staged, target)
    return Published(target, tables, tuple(final for _, final in written))


def publish_warehouse(serving_tables: list[str] = ()) -> Published:
    """Stage and promote in one go, without the audit (the Dagster assets put the checks in between)."""
    stage_publication()
    return promote_publication(serving_tables)
