"""Data-quality rules the published marts and serving tables must pass, checked with Great Expectations
on the staged publication before it replaces the published one.

The rules follow from each table's columns, so a new mart is checked without a line here:

- rates (``*_rate``, ``converted_from_*``, ``stickiness``, ``retention``) lie in [0, 1];
- percentiles of one measure are ordered: median/p50 ≤ p90 ≤ p95 ≤ p99 (``p95_ms`` ≥ ``p50_ms``, …);
- nothing observed is dated in the future: dates not after today (UTC), timestamps not after now plus
  the clock tolerance that ingestion accepts (a device may run ahead of the collector); planned times
  (``scheduled_for``, ``*_until``, ``planned_*``) are exempt;
- counts (integer columns) are not negative.

Tables are read into pandas with DuckDB and validated as DataFrames: GX's SQL path through
duckdb-engine is broken in GX 1.24 (see FACTS).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestration.ingestion.formats.common import FUTURE_TOLERANCE_HOURS
from pitwall.duck import connect

# Timestamps may run as far ahead as ingestion lets them (a device clock ahead of the collector).
FUTURE_TOLERANCE = dt.timedelta(hours=FUTURE_TOLERANCE_HOURS)
RATE = re.compile(r"(_rate|^converted_from_.+|^stickiness|^retention)$")
PLANNED = re.compile(r"(^scheduled_for$|_until$|^planned_)")  # times in the future by design
PERCENTILE = re.compile(r"^(?:p(\d{2})|(median))_(.+)$")
INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_NS", "TIMESTAMP_MS", "TIMESTAMP_S"}


@dataclass
class Failure:
    expectation: str
    columns: tuple[str, ...]
    observed: object

    def __str__(self) -> str:
        return f"{self.expectation}({', '.join(self.columns)}): {self.observed}"


@dataclass
class TableValidation:
    table: str
    rows: int
    evaluated: int
    failures: list[Failure] = field(default_factory=list)

    @property
    def success(self) -> bool:
        return not self.failures


def expectations_for(columns: dict[str, str], now: dt.datetime) -> list:
    """The expectations a table with these columns (name -> DuckDB type) must meet."""
    import great_expectations as gx

    out = []
    percentiles: dict[str, list[tuple[int, str]]] = {}
    for name, dtype in columns.items():
        if RATE.search(name):
            out.append(gx.expectations.ExpectColumnValuesToBeBetween(column=name, min_value=0, max_value=1))
        elif dtype in INTEGER_TYPES:
            out.append(gx.expectations.ExpectColumnValuesToBeBetween(column=name, min_value=0))
        # Dates and timestamps arrive as naive UTC timestamps (see _frame), so the bounds are naive UTC too.
        # Values, not the max: a column that is all null (no crash yet) has nothing in the future.
        if PLANNED.search(name):
            pass
        elif dtype == "DATE":
            out.append(gx.expectations.ExpectColumnValuesToBeBetween(
                column=name, max_value=dt.datetime.combine(now.date(), dt.time())))
        elif dtype in TIMESTAMP_TYPES:
            out.append(gx.expectations.ExpectColumnValuesToBeBetween(
                column=name, max_value=(now + FUTURE_TOLERANCE).astimezone(dt.timezone.utc).replace(tzinfo=None)))
        if m := PERCENTILE.match(name):
            level = 50 if m.group(2) else int(m.group(1))
            percentiles.setdefault(m.group(3), []).append((level, name))
    for series in percentiles.values():
        ordered = sorted(series)
        for (_, lower), (_, higher) in zip(ordered, ordered[1:]):
            out.append(gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
                column_A=higher, column_B=lower, or_equal=True, ignore_row_if="either_value_is_missing"))
    return out


def _frame(con, table: str, columns: dict[str, str]):
    # Dates and timestamps as naive UTC timestamps: pandas gives them one dtype (datetime64) that GX compares
    # with the bounds; everything else as DuckDB gives it.
    select = ", ".join(
        f"timezone('UTC', \"{c}\") as \"{c}\"" if t == "TIMESTAMP WITH TIME ZONE"
        else f"cast(\"{c}\" as timestamp) as \"{c}\"" if t == "DATE" or t in TIMESTAMP_TYPES
        else f'"{c}"'
        for c, t in columns.items())
    return con.execute(f'select {select} from "{table}"').df()


def validate_publication(path: Path, tables: list[str], now: dt.datetime | None = None) -> dict[str, TableValidation]:
    """Validate the given tables of a DuckDB file; one result per table (a missing table fails)."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    now = now or dt.datetime.now(dt.timezone.utc)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = context.data_sources.add_pandas("publication")
    results: dict[str, TableValidation] = {}
    con = connect(path, read_only=True)
    try:
        for table in tables:
            columns = dict(con.execute(
                "select column_name, data_type from information_schema.columns where table_schema = 'main' "
                "and table_name = ? order by ordinal_position", [table]).fetchall())
            if not columns:
                results[table] = TableValidation(table, 0, 0, [Failure("table_exists", (), "missing")])
                continue
            frame = _frame(con, table, columns)
            if frame.empty:  # nothing to break a rule (and GX fails a max over no rows)
                results[table] = TableValidation(table, 0, 0)
                continue
            suite = gx.ExpectationSuite(name=table, expectations=expectations_for(columns, now))
            batch = source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe("all").get_batch(
                batch_parameters={"dataframe": frame})
            outcome = batch.validate(suite)
            validation = TableValidation(table, len(frame), len(outcome.results))
            for r in outcome.results:
                if not r.success:
                    kwargs = r.expectation_config.kwargs
                    cols = tuple(kwargs[k] for k in ("column", "column_A", "column_B") if k in kwargs)
                    observed = r.result.get("observed_value")
                    if observed is None:
                        observed = {"unexpected": r.result.get("unexpected_count"),
                                    "examples": [str(v) for v in (r.result.get("partial_unexpected_list") or [])[:3]]}
                    validation.failures.append(Failure(r.expectation_config.type, cols, observed))
            results[table] = validation
    finally:
        con.close()
    return results
