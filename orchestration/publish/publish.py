"""Publish the warehouse for readers: a complete copy, moved into place in one rename.

Readers (dashboards, the mobile backend, analysts) never open ``warehouse.duckdb``: DuckDB lets one
process write a file or several read it, not both, and a reader would see half-built tables during a
run. They open ``published/pitwall.duckdb`` read-only instead. Each publish copies the warehouse into a
new file beside it and renames it over the old one, so a reader sees the previous run or the new one,
never a mix, and an open reader keeps its snapshot while the new file takes the name. Views are
published as tables: a reader gets a self-contained snapshot (dbt's views name the warehouse's
catalog, and the quarantine and ledger views read Parquet files that later runs replace).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pitwall import paths
from pitwall.duck import connect


@dataclass(frozen=True)
class Published:
    path: Path
    tables: dict[str, int]  # relation -> rows


def published_path() -> Path:
    return paths.published_dir() / "pitwall.duckdb"


def _quote(path: Path) -> str:
    return str(path).replace("'", "''")


def publish_warehouse() -> Published:
    target = published_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
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
            tables[name] = con.execute(f'select count(*) from published.main."{name}"').fetchone()[0]
        con.execute("detach published")
        con.execute(f"detach {source}")
    finally:
        con.close()
    os.replace(tmp, target)
    return Published(target, tables)
