"""Reading frames from the warehouse and writing tables back (serving tables, Python-built marts)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from pitwall import paths
from pitwall.duck import connect


def read(sql: str, database: Path | None = None) -> pl.DataFrame:
    con = connect(database or paths.warehouse_path(), read_only=True)
    try:
        return con.sql(sql).pl()
    finally:
        con.close()


def write_table(name: str, frame: pl.DataFrame, order_by: tuple[str, ...] = ()) -> None:
    """Replace a table of the warehouse with the frame, in one statement, its rows in `order_by` order (the
    serving tables are sorted by user, so the published Parquet's row-group statistics let a reader skip to
    one user)."""
    con = connect(paths.warehouse_path())
    try:
        con.register("frame", frame.to_arrow())
        order = f" order by {', '.join(order_by)}" if order_by else ""
        con.execute(f'create or replace table "{name}" as select * from frame{order}')
        con.unregister("frame")
    finally:
        con.close()
