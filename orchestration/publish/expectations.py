"""Data-quality rules every published relation must pass (marts, serving tables, and the rest), checked on
the staged publication before it replaces the published one.

The rules follow from each table's columns, so a new mart is checked without a line here:

- rates (``*_rate``, ``converted_from_*``, ``stickiness``, ``retention``) lie in [0, 1];
- percentiles of one measure are ordered: median/p50 ≤ p90 ≤ p95 ≤ p99 (``p95_ms`` ≥ ``p50_ms``, …);
- nothing observed is dated in the future: dates not after today (UTC), timestamps not after now plus
  the clock tolerance that ingestion accepts (a device may run ahead of the collector); planned times
  (``scheduled_for``, ``*_until``, ``planned_*``, ``slot_*``, and the columns ``PLANNED_COLUMNS`` names) are
  exempt;
- counts (integer columns) are not negative.

``expectations_for`` states the rules once, as Great Expectations' expectation types with their
arguments. Two engines evaluate them:

- ``sql`` (the pipeline's): each table's expectations as one set-based query in DuckDB over the staged
  file — unexpected rows counted with ``count_if``, a few examples fetched only for a failing one. Nothing
  is read into Python, so the big facts cost a scan, not a DataFrame.
- ``gx``: Great Expectations itself on DataFrames fetched with DuckDB (its SQL path through duckdb-engine
  is broken in GX 1.24, see FACTS). The tests hold the SQL engine to it: same verdicts and the same
  unexpected counts on planted bad rows, GX semantics included (nulls, and NaN as missing, are ignored).
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
PLANNED = re.compile(r"(^scheduled_for$|_until$|^planned_|^slot_)")  # times in the future by design
# Columns of one relation that hold planned dates under a general name. A partner's service order is dated by its
# appointment, which may lie ahead; the reconciliation compares transactions and internal records by that date,
# so its dates (and its daily mart's days) may lie ahead too (docs/partners.md, Reconciliation). An experiment
# definition's end date is its planned end.
PLANNED_COLUMNS: dict[str, frozenset[str]] = {
    "partner_oem_service_orders": frozenset({"service_date"}),
    "stg_partner_oem_service_orders": frozenset({"service_date"}),
    "int_partner_transactions": frozenset({"txn_date"}),
    "int_partner_internal_records": frozenset({"record_date"}),
    "int_reconciliation_matches": frozenset({"txn_date", "record_date"}),
    "int_reconciliation_breaks": frozenset({"break_date"}),
    "mart_reconciliation_breaks": frozenset({"break_date"}),
    "mart_reconciliation_daily": frozenset({"day"}),
    "experiment_definitions": frozenset({"end_date"}),
}
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


@dataclass(frozen=True)
class Expectation:
    """One rule on one table, named and parameterized as Great Expectations names it."""
    type: str                     # expect_column_values_to_be_between | expect_column_pair_values_a_to_be_greater_than_b
    columns: tuple[str, ...]      # (column,) or (column_A, column_B)
    min_value: object = None
    max_value: object = None


BETWEEN = "expect_column_values_to_be_between"
PAIR_GREATER = "expect_column_pair_values_a_to_be_greater_than_b"


def expectations_for(columns: dict[str, str], now: dt.datetime, planned: frozenset[str] = frozenset()
                     ) -> list[Expectation]:
    """The expectations a table with these columns (name -> DuckDB type) must meet; ``planned``: its columns
    that hold planned dates (``PLANNED_COLUMNS``)."""
    out = []
    percentiles: dict[str, list[tuple[int, str]]] = {}
    for name, dtype in columns.items():
        if RATE.search(name):
            out.append(Expectation(BETWEEN, (name,), min_value=0, max_value=1))
        elif dtype in INTEGER_TYPES:
            out.append(Expectation(BETWEEN, (name,), min_value=0))
        # Dates and timestamps compare as naive UTC timestamps, so the bounds are naive UTC too.
        # Values, not the max: a column that is all null (no crash yet) has nothing in the future.
        if PLANNED.search(name) or name in planned:
            pass
        elif dtype == "DATE":
            out.append(Expectation(BETWEEN, (name,), max_value=dt.datetime.combine(now.date(), dt.time())))
        elif dtype in TIMESTAMP_TYPES:
            out.append(Expectation(BETWEEN, (name,), max_value=(now + FUTURE_TOLERANCE).astimezone(
                dt.UTC).replace(tzinfo=None)))
        if m := PERCENTILE.match(name):
            level = 50 if m.group(2) else int(m.group(1))
            percentiles.setdefault(m.group(3), []).append((level, name))
    for series in percentiles.values():
        ordered = sorted(series)
        for (_, lower), (_, higher) in zip(ordered, ordered[1:]):
            out.append(Expectation(PAIR_GREATER, (higher, lower)))
    return out


def _columns(con, table: str) -> dict[str, str]:
    return dict(con.execute(
        "select column_name, data_type from information_schema.columns where table_schema = 'main' "
        "and table_name = ? order by ordinal_position", [table]).fetchall())


# --- the SQL engine ---------------------------------------------------------------------------------------

FLOAT_TYPES = {"FLOAT", "DOUBLE", "REAL"}


def _value(column: str, dtype: str) -> str:
    """A column as GX sees it after ``_frame``: dates and timestamps as naive UTC timestamps."""
    if dtype == "TIMESTAMP WITH TIME ZONE":
        return f"timezone('UTC', \"{column}\")"
    if dtype == "DATE" or dtype in TIMESTAMP_TYPES:
        return f"cast(\"{column}\" as timestamp)"
    return f'"{column}"'


def _present(column: str, dtype: str) -> str:
    """Not missing, as pandas sees it: not null, and for floats not NaN."""
    return f'("{column}" is not null and not isnan("{column}"))' if dtype in FLOAT_TYPES else f'"{column}" is not null'


def _literal(value) -> str:
    if isinstance(value, dt.datetime):
        return f"timestamp '{value.isoformat(sep=' ')}'"
    return repr(value)


def unexpected_sql(e: Expectation, columns: dict[str, str]) -> str:
    """A SQL condition true on exactly the rows GX counts as unexpected for ``e``."""
    if e.type == BETWEEN:
        (c,) = e.columns
        value, bounds = _value(c, columns[c]), []
        if e.min_value is not None:
            bounds.append(f"{value} < {_literal(e.min_value)}")
        if e.max_value is not None:
            bounds.append(f"{value} > {_literal(e.max_value)}")
        return f"({_present(c, columns[c])} and ({' or '.join(bounds)}))"
    if e.type == PAIR_GREATER:
        a, b = e.columns
        return (f"({_present(a, columns[a])} and {_present(b, columns[b])} "
                f"and not ({_value(a, columns[a])} >= {_value(b, columns[b])}))")
    raise ValueError(f"no SQL for {e.type}")


def _validate_sql(con, table: str, columns: dict[str, str], expectations: list[Expectation]) -> TableValidation:
    conditions = [unexpected_sql(e, columns) for e in expectations]
    counts = con.execute(f'select count(*){"".join(f", count_if({c})" for c in conditions)} from "{table}"').fetchall()[0]
    validation = TableValidation(table, counts[0], len(expectations))
    for e, condition, unexpected in zip(expectations, conditions, counts[1:]):
        if unexpected:
            shown = ", ".join(f'cast("{c}" as varchar)' for c in e.columns)
            examples = con.execute(f'select {shown} from "{table}" where {condition} limit 3').fetchall()
            validation.failures.append(Failure(e.type, e.columns, {
                "unexpected": unexpected,
                "examples": [row[0] if len(row) == 1 else list(row) for row in examples]}))
    return validation


# --- the Great Expectations engine ------------------------------------------------------------------------

def to_gx(e: Expectation):
    from pitwall.gx import great_expectations

    gx = great_expectations()

    if e.type == BETWEEN:
        return gx.expectations.ExpectColumnValuesToBeBetween(column=e.columns[0], min_value=e.min_value,
                                                             max_value=e.max_value)
    if e.type == PAIR_GREATER:
        return gx.expectations.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=e.columns[0], column_B=e.columns[1], or_equal=True, ignore_row_if="either_value_is_missing")
    raise ValueError(f"no GX expectation for {e.type}")


def _frame(con, table: str, columns: dict[str, str]):
    # Dates and timestamps as naive UTC timestamps: pandas gives them one dtype (datetime64) that GX compares
    # with the bounds; everything else as DuckDB gives it.
    select = ", ".join(f'{_value(c, t)} as "{c}"' for c, t in columns.items())
    return con.execute(f'select {select} from "{table}"').df()


class _GX:
    def __init__(self):
        from pitwall.gx import great_expectations

        gx = great_expectations()
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.gx = gx
        context = gx.get_context(mode="ephemeral")
        context.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = context.data_sources.add_pandas("publication")

    def validate(self, con, table: str, columns: dict[str, str], expectations: list[Expectation]) -> TableValidation:
        frame = _frame(con, table, columns)
        if frame.empty:  # nothing to break a rule (and GX fails a max over no rows)
            return TableValidation(table, 0, len(expectations))
        suite = self.gx.ExpectationSuite(name=table, expectations=[to_gx(e) for e in expectations])
        batch = self.source.add_dataframe_asset(name=table).add_batch_definition_whole_dataframe("all").get_batch(
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
        return validation


def validate_publication(path: Path, tables: list[str], now: dt.datetime | None = None,
                         engine: str = "sql") -> dict[str, TableValidation]:
    """Validate the given tables of a DuckDB file; one result per table (a missing table fails). ``engine``:
    ``sql`` (set-based queries in DuckDB) or ``gx`` (Great Expectations on DataFrames)."""
    if engine not in ("sql", "gx"):
        raise ValueError(f"unknown engine {engine!r}: sql or gx")
    now = now or dt.datetime.now(dt.UTC)
    gx_engine = _GX() if engine == "gx" else None
    results: dict[str, TableValidation] = {}
    con = connect(path, read_only=True)
    try:
        for table in tables:
            columns = _columns(con, table)
            if not columns:
                results[table] = TableValidation(table, 0, 0, [Failure("table_exists", (), "missing")])
                continue
            expectations = expectations_for(columns, now, PLANNED_COLUMNS.get(table, frozenset()))
            results[table] = (gx_engine.validate(con, table, columns, expectations) if gx_engine
                              else _validate_sql(con, table, columns, expectations))
    finally:
        con.close()
    return results
