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


def replace_rows(name: str, frame: pl.DataFrame, key: str) -> None:
    """Append the frame's rows to a table (created from the frame the first time), first deleting the rows with
    the same ``key`` values, in one transaction: a run that records its row twice (a retry) keeps one."""
    con = connect(paths.warehouse_path())
    try:
        con.register("frame", frame.to_arrow())
        con.execute("begin transaction")
        con.execute(f'create table if not exists "{name}" as select * from frame limit 0')
        con.execute(f'delete from "{name}" where "{key}" in (select "{key}" from frame)')
        con.execute(f'insert into "{name}" by name select * from frame')
        con.execute("commit")
        con.unregister("frame")
    finally:
        con.close()
