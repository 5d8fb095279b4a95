"""The same models on two engines, compared table by table (docs/scale-out.md).

``compare_engines`` reads the tables Spark wrote (Parquet under its warehouse folder) and the same tables in
``warehouse.duckdb`` with DuckDB, and reports for each: the column names and types, the row counts, and the
rows that differ, as multisets. Doubles match within a relative 1e-9 (sums and averages add up in another
order on another engine). Percentile columns that Spark approximates are left out of the row match and
checked on their own by rank (``check_percentile_ranks``): Spark's percentile_approx promises a value whose
rank is within n / accuracy of p × n.

``python -m orchestration.scale_out`` prints the comparison for the data root (``make spark-demo``).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from pitwall import paths

# The portable marts' percentile columns, where Spark approximates: the mart, the relation of the values each
# percentile is taken over (with the mart's grain), and the columns with their p. Checked by rank.
PERCENTILE_ACCURACY = 10_000  # dbt var percentile_accuracy (Spark's default)


@dataclass(frozen=True)
class Percentiles:
    source_sql: str
    grain: tuple[str, ...]
    value: str
    columns: dict[str, float]


PERCENTILES: dict[str, Percentiles] = {
    "mart_api_latency_daily": Percentiles(
        source_sql="select day, route, method, app_version, platform, duration_ms from {db}.fct_api_requests",
        grain=("day", "route", "method", "app_version", "platform"),
        value="duration_ms",
        columns={"p50_ms": 0.5, "p90_ms": 0.9, "p95_ms": 0.95, "p99_ms": 0.99},
    ),
    "mart_funnel_daily": Percentiles(
        source_sql=(
            "select entries.entry_day as day, entries.funnel, steps.step_order, entries.platform,"
            " entries.app_version, entries.role, steps.seconds_from_entry"
            " from {db}.int_funnel_entries as entries"
            " join {db}.int_funnel_entry_steps as steps using (funnel, entity_id, entry_day)"
        ),
        grain=("day", "funnel", "step_order", "platform", "app_version", "role"),
        value="seconds_from_entry",
        columns={"median_seconds_from_entry": 0.5, "p90_seconds_from_entry": 0.9},
    ),
}

# The tables compared by default: staging of the three big sources, and the marts built on both engines.
TABLES = (
    "stg_events", "stg_crashes", "stg_spans", "stg_jobs",
    "fct_sessions", "int_funnel_entries", "int_funnel_entry_steps", "fct_api_requests",
    "mart_release_health", "mart_api_latency_daily", "mart_funnel_daily",
    "int_recommendation_exposures", "mart_recommendation_efficacy",
)


@dataclass
class TableComparison:
    """One table on two builds: "duckdb" is the reference side, "spark" the other (Spark, or another build)."""

    table: str
    duckdb_rows: int
    spark_rows: int
    type_mismatches: list[tuple[str, str, str | None]] = field(default_factory=list)
    only_duckdb: int = 0
    only_spark: int = 0
    percentile_checks: int = 0
    percentile_violations: int = 0

    @property
    def equal(self) -> bool:
        return (self.duckdb_rows == self.spark_rows and not self.type_mismatches and self.only_duckdb == 0
                and self.only_spark == 0 and self.percentile_violations == 0)

    def describe(self) -> str:
        status = "equal" if self.equal else "DIFFERENT"
        extra = f", percentiles in tolerance {self.percentile_checks - self.percentile_violations}/{self.percentile_checks}" \
            if self.percentile_checks else ""
        diff = "" if self.equal else (f" (only duckdb {self.only_duckdb}, only spark {self.only_spark},"
                                      f" types {self.type_mismatches})")
        return f"{self.table:30s} {self.duckdb_rows:>9,d} rows  {status}{extra}{diff}"


def spark_table_dir(spark_warehouse: Path, table: str, schema: str = "pitwall") -> Path:
    return spark_warehouse / f"{schema}.db" / table


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def compare_engines(warehouse: Path, spark_warehouse: Path, tables: tuple[str, ...] = TABLES,
                    rel_tol: float = 1e-9) -> list[TableComparison]:
    """Spark's tables (Parquet under ``spark_warehouse``) against DuckDB's (``warehouse``)."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"attach '{warehouse}' as duck (read_only)")
    con.execute("create schema spark")
    for table in tables:
        location = spark_table_dir(spark_warehouse, table)
        con.execute(f"create view spark.{table} as select * from read_parquet('{location}/**/*.parquet', "
                    "hive_partitioning = true)")
    try:
        return [compare_table(con, table, "duck.main", "spark", rel_tol, approximate_percentiles=True)
                for table in tables]
    finally:
        con.close()


def compare_warehouses(left: Path, right: Path, tables: tuple[str, ...] = TABLES,
                       rel_tol: float = 1e-9) -> list[TableComparison]:
    """Two DuckDB warehouses (e.g. a day-by-day incremental build against a full rebuild)."""
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(f"attach '{left}' as duck (read_only)")
    con.execute(f"attach '{right}' as other (read_only)")
    try:
        return [compare_table(con, table, "duck.main", "other.main", rel_tol, approximate_percentiles=False)
                for table in tables]
    finally:
        con.close()


def compare_table(con: duckdb.DuckDBPyConnection, table: str, left: str, right: str, rel_tol: float,
                  approximate_percentiles: bool) -> TableComparison:
    """``left.table`` (a DuckDB catalog's schema) against ``right.table``; when ``approximate_percentiles``,
    the right side's percentile columns (PERCENTILES) are checked by rank instead of by value."""
    catalog, _, schema = left.partition(".")
    left_columns = con.execute(
        "select column_name, data_type from information_schema.columns"
        " where table_catalog = ? and table_schema = ? and table_name = ? order by ordinal_position",
        [catalog, schema, table]).fetchall()
    right_columns = dict(con.execute(f"select column_name, column_type from (describe {right}.{table})").fetchall())
    result = TableComparison(
        table=table,
        duckdb_rows=con.execute(f"select count(*) from {left}.{table}").fetchall()[0][0],
        spark_rows=con.execute(f"select count(*) from {right}.{table}").fetchall()[0][0],
        type_mismatches=[(name, kind, right_columns.get(name)) for name, kind in left_columns
                         if right_columns.get(name) != kind],
    )
    approximate = set(PERCENTILES[table].columns) if approximate_percentiles and table in PERCENTILES else set()
    exact = [name for name, kind in left_columns if kind not in ("DOUBLE", "FLOAT") and name not in approximate]
    floats = [name for name, kind in left_columns if kind in ("DOUBLE", "FLOAT") and name not in approximate]
    # Rows pair up by their exact columns (ties ordered by the doubles), then the doubles must agree.
    keys = ", ".join(_quote(c) for c in exact)
    order = ", ".join(_quote(c) for c in floats) or "1"
    numbered = "select *, row_number() over (partition by {keys} order by {order}) as _n from {rel}"
    join = " and ".join(f"l.{_quote(c)} is not distinct from r.{_quote(c)}" for c in [*exact, "_n"])
    close = " and ".join(
        f"(l.{_quote(c)} is not distinct from r.{_quote(c)} or abs(l.{_quote(c)} - r.{_quote(c)})"
        f" <= {rel_tol} * greatest(abs(l.{_quote(c)}), abs(r.{_quote(c)}), 1e-12))" for c in floats) or "true"
    counts = con.execute(f"""
        with l as ({numbered.format(keys=keys, order=order, rel=f'{left}.{table}')}),
             r as ({numbered.format(keys=keys, order=order, rel=f'{right}.{table}')}),
             paired as (select l._n as ln, r._n as rn, ({close}) as close from l full join r on {join})
        select count(*) filter (where rn is null or (ln is not null and not close)),
               count(*) filter (where ln is null or (rn is not null and not close))
        from paired""").fetchall()[0]
    result.only_duckdb, result.only_spark = counts
    if approximate:
        result.percentile_checks, result.percentile_violations = check_percentile_ranks(
            con, f"{right}.{table}", PERCENTILES[table], source_schema=left)
    return result


def check_percentile_ranks(con: duckdb.DuckDBPyConnection, relation: str, spec: Percentiles, source_schema: str,
                           accuracy: int = PERCENTILE_ACCURACY) -> tuple[int, int]:
    """(values checked, values out of tolerance) for the percentile columns of ``relation`` (Spark's mart),
    over the values in ``source_schema`` (DuckDB's build of the same raw layer): each value v of
    percentile p over n values must have a rank window [count(x < v), count(x ≤ v)] that meets
    p × n ± (n / accuracy + 1), the guarantee of Spark's percentile_approx (+1 for its discrete ranks)."""
    grain_join = " and ".join(f"m.{_quote(c)} is not distinct from x.{_quote(c)}" for c in spec.grain)
    checks = []
    for column, p in spec.columns.items():
        checks.append(f"""
            select m.{_quote(column)} as v, {p} as p,
                   count(x.{_quote(spec.value)}) as n,
                   count_if(x.{_quote(spec.value)} < m.{_quote(column)}) as below,
                   count_if(x.{_quote(spec.value)} <= m.{_quote(column)}) as at_or_below
            from {relation} as m
            join ({spec.source_sql.format(db=source_schema)}) as x on {grain_join}
            where m.{_quote(column)} is not null
            group by all""")
    checked, violations = con.execute(f"""
        select count(*),
               count_if(not (below <= p * n + n / {accuracy} + 1 and at_or_below >= p * n - n / {accuracy} - 1))
        from ({' union all '.join(checks)})""").fetchall()[0]
    return checked, violations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warehouse", type=Path, default=None, help="warehouse.duckdb (default: the data root's)")
    parser.add_argument("--spark-warehouse", type=Path, default=None,
                        help="Spark's warehouse folder (default: <data root>/spark/warehouse)")
    args = parser.parse_args(argv)
    warehouse = args.warehouse or paths.warehouse_path()
    spark_warehouse = args.spark_warehouse or paths.data_dir() / "spark" / "warehouse"
    comparisons = compare_engines(warehouse, spark_warehouse)
    print(f"Spark ({spark_warehouse}) against DuckDB ({warehouse}), the same models from the same raw layer:")
    for comparison in comparisons:
        print("  " + comparison.describe())
    return 0 if all(c.equal for c in comparisons) else 1


if __name__ == "__main__":
    sys.exit(main())
