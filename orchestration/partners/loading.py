"""Contract enforcement and loading, shared by every partner connector (REST pages, CSV drops, webhook lines).

A batch of wire records goes through three gates, and every record that fails one goes to
``partner_quarantine`` with the rule it broke:

1. parse (per record, Python): the record becomes typed values by its contract — an absent field is
   ``missing:<field>`` (a renamed field shows up this way), a value of the wrong wire type ``type:<field>``
   (an amount sent as a number where the contract says decimal string, a version sent as a string);
2. physical fit (set-based, SQL): a value the column's DuckDB type cannot hold is ``type:<field>``;
3. the Great Expectations suite generated from the contract (``contracts.gx_suite``), run on the typed batch
   with result_format COMPLETE so each failing row is known: ``required:``, ``enum:``, ``pattern:``,
   ``range:``, ``unique:<key>``.

Good records are inserted into the contract's ``physicalName`` with ``insert or ignore`` on the contract's
primary key, so a replayed page, file or line adds nothing. Quarantined records are keyed by
(partner, dataset, sha256 of the raw record), so a replayed bad record is quarantined once. Each rule broken on
a day is one row of ``partner_contract_breaches`` (records counted); a breach seen for the first time raises an
alert through ``orchestration.alerts`` after the batch's commit.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import pandas as pd
import pyarrow as pa

from orchestration.alerts import raise_alert

from .contracts import Dataset, Property, all_datasets, gx_suite, rule_of

log = logging.getLogger(__name__)

QUARANTINE_TABLE = "partner_quarantine"
BREACHES_TABLE = "partner_contract_breaches"
API_CALLS_TABLE = "partner_api_calls"
FILE_LEDGER_TABLE = "partner_file_ledger"
ALERT_RULE = "partner_schema_breach"  # orchestration/alerts/rules.yaml

# Columns every partner table carries besides the contract's: where each row came from.
LINEAGE_DDL = """
    landing_file varchar not null,   -- relative to the data root
    line_no integer not null,        -- 1-based: the record's position in its page's data array, CSV row, JSONL line
    sync_id varchar not null,        -- the connector run that loaded it
    loaded_at timestamptz not null"""

SHARED_DDL = f"""
create table if not exists {QUARANTINE_TABLE} (
    partner varchar not null,
    dataset varchar not null,
    record_sha256 varchar not null,  -- of raw_record
    raw_record varchar not null,     -- the record as received (JSON, a CSV row as JSON, or the webhook line)
    rule varchar not null,           -- e.g. missing:amount, type:version, enum:status, pattern:vin, signature:invalid,
                                     -- format:page, error:RecursionError (an unexpected error, by its type)
    detail varchar,
    record_id varchar,               -- the record's id fields joined by '|', when readable
    record_version varchar,
    landing_file varchar not null,
    line_no integer not null,        -- 0: the item is a whole page or file
    sync_id varchar not null,
    quarantined_at timestamptz not null,
    primary key (partner, dataset, record_sha256)
);
create table if not exists {BREACHES_TABLE} (
    breach_id varchar primary key,   -- md5(partner|dataset|breach_kind|rule|day)
    partner varchar not null,
    dataset varchar not null,
    breach_kind varchar not null,    -- schema | volume | freshness | availability | latency | delivery
    rule varchar not null,
    day date not null,
    observed double,
    threshold double,
    records bigint,
    detail varchar,
    first_detected_at timestamptz not null,
    last_detected_at timestamptz not null
);
create table if not exists {API_CALLS_TABLE} (
    partner varchar not null,
    dataset varchar not null,
    endpoint varchar not null,
    sync_id varchar not null,
    requested_at timestamptz not null,
    status_code integer,             -- null when no response came (timeout, transport error)
    outcome varchar not null,        -- ok | rate_limited | server_error | timeout | unparsable | too_large | transport
                                     -- | client_error
    latency_ms double not null,
    bytes bigint                     -- response body size (of a refused body: what was read of it)
);
create table if not exists {FILE_LEDGER_TABLE} (
    partner varchar not null,
    dataset varchar not null,
    landing_file varchar not null,   -- relative to the data root
    sha256 varchar not null,         -- of the bytes loaded (a JSONL file: its prefix up to the last loaded line)
    bytes bigint not null,
    rows bigint not null,            -- data rows (CSV) or lines (JSONL) loaded from it
    first_loaded_at timestamptz not null,
    loaded_at timestamptz not null,
    primary key (partner, dataset, landing_file)
);
"""

_ARROW_TYPES = {"string": pa.string(), "number": pa.string(), "integer": pa.int64(), "boolean": pa.bool_(),
                "date": pa.date32(), "timestamp": pa.timestamp("us", tz="UTC")}


class PartnerTableMismatch(RuntimeError):
    """A partner table in the warehouse whose columns are not the contract's (the contract changed)."""


# -- tables ---------------------------------------------------------------------------------------------------

def table_columns(dataset: Dataset) -> dict[str, str]:
    """The physical table's columns and DuckDB types: the contract's, the delivery date the connector adds
    (when the contract names one it does not send), then lineage."""
    columns = {p.name: p.physical_type for p in dataset.properties}
    if dataset.delivery_date_column:
        columns[dataset.delivery_date_column] = "date"
    return columns


def table_ddl(dataset: Dataset) -> str:
    cols = ",\n".join(f"    {name} {dtype}{' not null' if name in dataset.columns and dataset.prop(name).required else ''}"
                      for name, dtype in table_columns(dataset).items())
    key = ", ".join(dataset.primary_key)
    return f"create table if not exists {dataset.physical_name} (\n{cols},{LINEAGE_DDL},\n    primary key ({key})\n);"


def _existing_columns(con, table: str) -> list[str]:
    return [r[0] for r in con.execute(
        "select column_name from information_schema.columns where table_schema = 'main' and table_name = ? "
        "order by ordinal_position", [table]).fetchall()]


def ensure_tables(con, datasets: Iterable[Dataset] | None = None) -> None:
    """Create the shared partner tables and the datasets' tables (all contract datasets by default)."""
    con.execute(SHARED_DDL)
    if _existing_columns(con, QUARANTINE_TABLE)[:2] != ["partner", "dataset"]:
        raise PartnerTableMismatch(f"{QUARANTINE_TABLE} predates the contracts (no dataset column): "
                                   f"drop it and re-run (the raw records are in the landing zone)")
    for dataset in all_datasets() if datasets is None else datasets:
        con.execute(table_ddl(dataset))
        expected = [*table_columns(dataset), "landing_file", "line_no", "sync_id", "loaded_at"]
        found = _existing_columns(con, dataset.physical_name)
        if found != expected:
            raise PartnerTableMismatch(
                f"{dataset.physical_name} has columns {found} but contracts/partners/{dataset.partner}.odcs.yaml "
                f"says {expected}: migrate or drop it (its pages are in the landing zone)")


# -- records in, results out ----------------------------------------------------------------------------------

@dataclass
class Incoming:
    """One wire record: a JSON object, or a CSV row as a dict of strings."""

    raw: Any
    landing_file: str
    line_no: int
    extras: dict = field(default_factory=dict)  # connector-added columns (the delivery date of a file drop)


@dataclass
class Rejected:
    """A record refused before it could be parsed (a bad signature, a line that is not JSON), or a whole page or
    file refused (line_no 0)."""

    raw_text: str
    landing_file: str
    line_no: int
    rule: str
    detail: str


class BreachAlertFailed(RuntimeError):
    """The batch is committed but alerting on its new breaches failed: a connector's per-item guard lets this one
    through, so the run fails (and alerts through the failed-run path) instead of the breach going unannounced."""


# -- reading what partners send, defensively ------------------------------------------------------------------

RAW_RECORD_CHARS = 64 * 1024  # of a quarantined record, what is kept (with the sha256 of the whole)
DETAIL_CHARS = 1000


def safe_text(text: str) -> str:
    """``text`` as storable UTF-8: lone surrogates (bytes that were not UTF-8, a JSON ``\\ud800`` escape) become
    backslash escapes."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def excerpt(text: str, limit: int = RAW_RECORD_CHARS) -> str:
    """``text``, or its start plus its length and sha256 when longer than ``limit`` (distinct texts stay distinct)."""
    text = safe_text(text)
    if len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{text[:limit]}… [{len(text)} characters in all, sha256 {digest}]"


def error_rule(exc: BaseException) -> str:
    """The quarantine rule of an item refused by an unexpected error: ``error:<exception type>``."""
    return f"error:{type(exc).__name__}"


def error_detail(exc: BaseException, context: str = "") -> str:
    message = safe_text(str(exc))[:DETAIL_CHARS]
    return f"{context}{': ' if context else ''}{type(exc).__name__}: {message}"


class NumberTooLong:
    """A JSON integer literal with more digits than any contract integer holds, kept as its text: converting it
    would cost time in its length (and Python refuses past 4,300 digits); the record is quarantined as a type
    error on its field instead."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return excerpt(self.text, 100)


MAX_INTEGER_CHARS = 20  # "-9223372036854775808": the longest 64-bit integer


def _json_int(text: str) -> int | NumberTooLong:
    return int(text) if len(text) <= MAX_INTEGER_CHARS else NumberTooLong(text)


def parse_json(text: str | bytes) -> Any:
    """``json.loads`` for partner input: an absurdly long integer literal stays text (``NumberTooLong``) rather
    than being converted. Raises ValueError (not JSON, not UTF-8) or RecursionError (nested too deep)."""
    return json.loads(text, parse_int=_json_int)


@dataclass
class BatchResult:
    received: int = 0
    loaded: int = 0
    duplicates: int = 0  # identical records within the batch, and records (or quarantined ones) already stored
    quarantined: int = 0
    quarantined_by_rule: Counter = field(default_factory=Counter)
    new_breaches: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)

    def add(self, other: BatchResult) -> None:
        self.received += other.received
        self.loaded += other.loaded
        self.duplicates += other.duplicates
        self.quarantined += other.quarantined
        self.quarantined_by_rule += other.quarantined_by_rule
        self.new_breaches += other.new_breaches
        self.alerts += other.alerts


# -- 1. parse ---------------------------------------------------------------------------------------------------

class _Broken(Exception):
    def __init__(self, rule: str, detail: str):
        super().__init__(rule)
        self.rule, self.detail = rule, detail


_INTEGER_TEXT = re.compile(r"^-?\d+$")


def _show(value: Any) -> str:
    return json.dumps(value, default=str)[:80]


def parse_timestamp(text: str) -> datetime | None:
    """An ISO timestamp with a zone, in UTC; None if it is not one (or is beyond datetime's range in UTC)."""
    try:
        ts = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return ts.astimezone(UTC) if ts.tzinfo else None  # a partner's time without a zone is ambiguous
    except (ValueError, TypeError, OverflowError):  # OverflowError: 9999-12-31T23:59-14:00 is past year 9999 in UTC
        return None


MAX_DECIMAL_CHARS = 100
MAX_DECIMAL_EXPONENT = 64  # far past any DuckDB decimal (38 digits); a larger one is refused before it is expanded


def _decimal_text(value: Decimal) -> str | None:
    """Plain decimal text (no exponent), or None for NaN, infinities and exponents that would expand to more
    than MAX_DECIMAL_EXPONENT digits (1E+100000000 would be a hundred million)."""
    if not value.is_finite() or abs(value.adjusted()) > MAX_DECIMAL_EXPONENT:
        return None
    return format(value, "f")


INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def parse_value(prop: Property, value: Any, *, text_wire: bool) -> Any:
    """One wire value as the typed value the loader stores (numbers as exact decimal text). ``text_wire``: the
    format carries only text (CSV), so every type is read from text. Raises _Broken on a wire type error."""
    def wrong(expected: str) -> _Broken:
        return _Broken(f"type:{prop.name}", f"expected {expected}, got {_show(value)}")

    kind = prop.logical_type
    if isinstance(value, str) and not _is_unicode_text(value):
        raise wrong("text (it has a lone surrogate: bytes that were not UTF-8)")
    if kind == "string":
        if not isinstance(value, str):
            raise wrong("a string")
        return value
    if kind == "integer":
        number = None
        if text_wire and isinstance(value, str):
            text = value.strip()
            # the length first: int() of a long literal costs time in its length, and raises past 4,300 digits
            if len(text) <= MAX_INTEGER_CHARS and _INTEGER_TEXT.match(text):
                number = int(text)
        elif not text_wire and isinstance(value, int) and not isinstance(value, bool):
            number = value
        if number is None:
            raise wrong("an integer")
        if not INT64_MIN <= number <= INT64_MAX:
            raise wrong("an integer within 64 bits")
        return number
    if kind == "number":
        if prop.wire_type == "decimal_string" or text_wire:
            if not isinstance(value, str):
                raise wrong("a decimal as a string")
            if len(value) > MAX_DECIMAL_CHARS:
                raise wrong(f"a decimal of at most {MAX_DECIMAL_CHARS} characters")
            try:
                number = Decimal(value.strip())
            except InvalidOperation:
                raise wrong("a decimal as a string") from None
            if _decimal_text(number) is None:
                raise wrong(f"a finite decimal with an exponent within ±{MAX_DECIMAL_EXPONENT}")
            # The partner's text is kept: the contract's pattern is a rule on it (DuckDB casts it on load).
            return value if prop.wire_type == "decimal_string" else _decimal_text(number)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            text = _decimal_text(Decimal(str(value)))
            if text is not None:
                return text
        raise wrong("a number")
    if kind == "boolean":
        if text_wire and isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if not text_wire and isinstance(value, bool):
            return value
        raise wrong("true or false")
    if kind == "date":
        try:
            return date.fromisoformat(value)
        except (TypeError, ValueError):
            raise wrong("an ISO date") from None
    if kind == "timestamp":
        ts = parse_timestamp(value) if isinstance(value, str) else None
        if ts is None:
            raise wrong("an ISO timestamp with a zone")
        return ts
    raise AssertionError(kind)  # contracts.py admits only the types above


def _is_unicode_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def parse_record(dataset: Dataset, raw: Any, *, text_wire: bool) -> dict:
    """A wire record as typed values by the contract; raises _Broken with the first rule it breaks. A CSV's
    empty cell is a null (RFC 4180 has no other)."""
    if not isinstance(raw, dict):
        raise _Broken("type:record", f"expected an object, got {type(raw).__name__}")
    out = {}
    for prop in dataset.properties:
        if prop.name not in raw:
            extra = sorted(set(raw) - set(dataset.columns))
            raise _Broken(f"missing:{prop.name}", f"unexpected fields: {extra}" if extra else "absent")
        value = raw[prop.name]
        if value is None or (text_wire and value == ""):
            out[prop.name] = None  # a null breaks required:<field> in the suite, with the other value rules
        else:
            out[prop.name] = parse_value(prop, value, text_wire=text_wire)
    return out


# -- 3. the suite ---------------------------------------------------------------------------------------------------

@functools.cache
def _gx_context():
    from pitwall.gx import great_expectations

    gx = great_expectations()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)  # a pipeline's logs are not a terminal
    return context


@functools.cache
def _gx_validator(dataset: Dataset):
    """The dataset's batch definition and suite, made once per process (datasets hash by identity)."""
    source = _gx_context().data_sources.add_or_update_pandas(f"partner_{dataset.partner}_{dataset.name}")
    batch_definition = source.add_dataframe_asset(name=dataset.physical_name).add_batch_definition_whole_dataframe(
        "batch")
    return batch_definition, gx_suite(dataset)


def typed_frame(dataset: Dataset, rows: list[dict]) -> pd.DataFrame:
    """The batch as the suite expects it (see contracts.gx_suite)."""
    columns = {}
    for prop in dataset.properties:
        values = [row[prop.name] for row in rows]
        if prop.wire_is_text:
            columns[prop.name] = pd.Series(values, dtype=object)
        elif prop.logical_type == "number":
            columns[prop.name] = pd.Series([None if v is None else float(v) for v in values], dtype="float64")
        elif prop.logical_type == "integer":
            columns[prop.name] = pd.array(values, dtype="Int64")
        elif prop.logical_type == "boolean":
            columns[prop.name] = pd.array(values, dtype="boolean")
        elif prop.logical_type == "date":
            columns[prop.name] = pd.to_datetime(pd.Series(values, dtype=object))
        else:
            columns[prop.name] = pd.to_datetime(pd.Series(values, dtype=object), utc=True)
    return pd.DataFrame(columns)


def _detail(rule: str, prop: Property | None, value: Any) -> str:
    kind = rule.split(":")[0]
    if kind == "unique":
        return f"another record of the batch has the same {rule.split(':')[1]} and different values"
    if kind == "required":
        return "null"
    if kind == "enum":
        return f"{_show(value)} is not one of {list(prop.valid_values)}"
    if kind == "pattern":
        return f"{_show(value)} does not match {prop.pattern}"
    if kind == "range":
        bounds = [f">= {prop.minimum}" if prop.minimum is not None else "", f"<= {prop.maximum}"
                  if prop.maximum is not None else ""]
        return f"{_show(value)} is not {' and '.join(b for b in bounds if b)}"
    return f"column {rule.split(':')[1]} missing from the batch"


def validate_typed(dataset: Dataset, frame: pd.DataFrame) -> dict[int, tuple[str, list[str]]]:
    """Run the contract's suite on a typed batch: {row index: (first rule broken, all rules broken)}."""
    if frame.empty:
        return {}
    batch_definition, suite = _gx_validator(dataset)
    batch = batch_definition.get_batch(batch_parameters={"dataframe": frame})
    with warnings.catch_warnings():
        # pandas warns that a contract regex has groups (GX matches with str.contains); matching is what we want
        warnings.filterwarnings("ignore", message="This pattern is interpreted as a regular expression")
        outcome = batch.validate(suite, result_format={"result_format": "COMPLETE"})
    broken: dict[int, list[str]] = {}
    for result in outcome.results:
        if result.exception_info and result.exception_info.get("raised_exception"):
            raise RuntimeError(f"Great Expectations could not evaluate {result.expectation_config.type} on "
                               f"{dataset.physical_name}: {result.exception_info.get('exception_message')}")
        if result.success:
            continue
        rule = rule_of(result.expectation_config.type, result.expectation_config.kwargs)
        indices = result.result.get("unexpected_index_list")
        if indices is None:  # a failure without rows (a missing column) breaks every row
            indices = list(frame.index)
        for index in indices:
            broken.setdefault(int(index), []).append(rule)
    return {i: (rules[0], rules) for i, rules in broken.items()}


# -- loading ---------------------------------------------------------------------------------------------------------

def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _quarantine_row(dataset: Dataset, raw_text: str, raw: Any, rule: str, detail: str, landing_file: str,
                    line_no: int, sync_id: str, now: datetime) -> dict:
    """A quarantine row; every text made storable (a partner's text may hold lone surrogates) and the raw
    record bounded (keyed by the sha256 of all of it)."""
    record = raw if isinstance(raw, dict) else {}
    ids = [record.get(f) for f in dataset.id_fields]
    version = record.get(dataset.version_field) if dataset.version_field else None
    raw_text = safe_text(raw_text)
    return {
        "partner": dataset.partner, "dataset": dataset.name,
        "record_sha256": hashlib.sha256(raw_text.encode()).hexdigest(), "raw_record": excerpt(raw_text),
        "rule": safe_text(rule), "detail": excerpt(detail, DETAIL_CHARS),
        "record_id": (excerpt("|".join(str(v) for v in ids), 200)
                      if ids and all(v is not None for v in ids) else None),
        "record_version": None if version is None else excerpt(str(version), 200),
        "landing_file": safe_text(landing_file), "line_no": line_no, "sync_id": sync_id, "quarantined_at": now,
    }


_QUARANTINE_SCHEMA = pa.schema([
    ("partner", pa.string()), ("dataset", pa.string()), ("record_sha256", pa.string()), ("raw_record", pa.string()),
    ("rule", pa.string()), ("detail", pa.string()), ("record_id", pa.string()), ("record_version", pa.string()),
    ("landing_file", pa.string()), ("line_no", pa.int32()), ("sync_id", pa.string()),
    ("quarantined_at", pa.timestamp("us", tz="UTC")),
])


def _arrow_schema(dataset: Dataset) -> pa.Schema:
    fields = [(p.name, _ARROW_TYPES[p.logical_type]) for p in dataset.properties]
    if dataset.delivery_date_column:
        fields.append((dataset.delivery_date_column, pa.date32()))
    fields += [("landing_file", pa.string()), ("line_no", pa.int32()), ("sync_id", pa.string()),
               ("loaded_at", pa.timestamp("us", tz="UTC")), ("batch_row", pa.int64())]
    return pa.schema(fields)


def _physical_misfits(con, dataset: Dataset) -> dict[int, str]:
    """Rows of the registered ``partner_batch`` with a value its column's DuckDB type cannot hold (an integer
    beyond int32, a decimal with too many digits): {batch_row: first such column}."""
    checks = ", ".join(
        f"case when {p.name} is not null and try_cast({p.name} as {p.physical_type}) is null then '{p.name}' end"
        for p in dataset.properties)
    rows = con.execute(f"""select batch_row, coalesce({checks}) as misfit from partner_batch
                           where coalesce({checks}) is not null""").fetchall()
    return {int(row): column for row, column in rows}


def raise_breach_alerts(alerts: list[dict]) -> list[str]:
    """Alert on new breaches: each dict has the keyword arguments of ``orchestration.alerts.raise_alert``.
    Returns the ids of the alerts that sent a message (None in cooldown is left out). An error here fails the
    run, which alerts through the same path."""
    fired = [raise_alert(**alert) for alert in alerts]
    return [alert_id for alert_id in fired if alert_id]


def day_window(day: date) -> dict:
    return {"window_start": datetime.combine(day, time(), UTC),
            "window_end": datetime.combine(day + timedelta(days=1), time(), UTC)}


def _schema_breach_alerts(dataset: Dataset, breaches: list[tuple[str, str, date, int]]) -> list[dict]:
    return [{
        "rule": ALERT_RULE, "subject": f"{dataset.partner}/{dataset.name}/{rule}",
        "summary": f"{dataset.partner} {dataset.name}: {records} record(s) broke the contract rule {rule} on {day}; "
                   f"quarantined in {QUARANTINE_TABLE}",
        "severity": "warning", "value": float(records), "threshold": 0.0,
        "details": {"breach_id": breach, "partner": dataset.partner, "dataset": dataset.name, "rule": rule,
                    "table": dataset.physical_name},
        **day_window(day),
    } for breach, rule, day, records in breaches]


def load_batch(con, dataset: Dataset, records: list[Incoming], *, sync_id: str, text_wire: bool = False,
               rejected: Iterable[Rejected] = (), identity_ignores: tuple[str, ...] = (),
               before_commit: Callable[[Any], None] | None = None) -> BatchResult:
    """Enforce the contract on a batch and load it in one transaction; alert on new breaches after the commit.

    ``identity_ignores``: fields that differ between deliveries of the same record (a webhook's received_at);
    records equal apart from them are duplicates and the first one is kept. ``before_commit(con)`` runs in the
    transaction (a file ledger entry, the API call log), so the batch and its bookkeeping commit together.
    """
    now = datetime.now(UTC)
    rejected = list(rejected)
    result = BatchResult(received=len(records) + len(rejected))
    bad = [_quarantine_row(dataset, r.raw_text, None, r.rule, r.detail, r.landing_file, r.line_no, sync_id, now)
           for r in rejected]
    # 1. parse, and drop repeats of a record within the batch (a page's duplicate, a redelivered webhook)
    parsed: list[tuple[Incoming, dict]] = []
    seen: set[str] = set()
    for incoming in records:
        raw_text = None
        try:
            raw_text = canonical_json(incoming.raw)
            values = parse_record(dataset, incoming.raw, text_wire=text_wire)
            identity = canonical_json({k: v for k, v in values.items() if k not in identity_ignores})
        except Exception as exc:  # noqa: BLE001 - whatever one record does, it is quarantined, not the batch
            rule, detail = ((exc.rule, exc.detail) if isinstance(exc, _Broken)
                            else (error_rule(exc), error_detail(exc, "the record could not be read")))
            if raw_text is None:  # not even serializable (nested past the recursion limit)
                raw_text = (f"<{type(incoming.raw).__name__} not serializable: {type(exc).__name__}> "
                            f"{incoming.landing_file}:{incoming.line_no}")
            bad.append(_quarantine_row(dataset, raw_text, incoming.raw, rule, detail,
                                       incoming.landing_file, incoming.line_no, sync_id, now))
            continue
        if identity in seen:
            result.duplicates += 1
            continue
        seen.add(identity)
        parsed.append((incoming, values))

    rows = [{**values, **incoming.extras, "landing_file": incoming.landing_file, "line_no": incoming.line_no,
             "sync_id": sync_id, "loaded_at": now, "batch_row": i} for i, (incoming, values) in enumerate(parsed)]
    batch = pa.Table.from_pylist(rows, schema=_arrow_schema(dataset))
    columns = list(table_columns(dataset))
    select = ", ".join([*(f"cast({c} as {t}) as {c}" for c, t in table_columns(dataset).items()),
                        "landing_file", "line_no", "sync_id", "loaded_at"])
    con.execute("begin transaction")
    try:
        con.register("partner_batch", batch)
        # 2. physical fit, 3. the suite: each failing row keeps the first rule it broke
        failed: dict[int, tuple[str, str]] = {
            row: (f"type:{column}", f"{_show(parsed[row][1][column])} does not fit "
                                    f"{dataset.prop(column).physical_type}")
            for row, column in _physical_misfits(con, dataset).items()}
        fit = [i for i in range(len(parsed)) if i not in failed]
        frame = typed_frame(dataset, [parsed[i][1] for i in fit])
        for position, (rule, rules) in validate_typed(dataset, frame).items():
            row = fit[position]
            column = rule.split(":")[1]  # unique:<key> names no single column
            prop = dataset.prop(column) if column in dataset.columns else None
            detail = _detail(rule, prop, parsed[row][0].raw.get(column))
            if len(rules) > 1:
                detail += f" (also broke {', '.join(rules[1:])})"
            failed[row] = (rule, detail)
        for row, (rule, detail) in failed.items():
            incoming = parsed[row][0]
            bad.append(_quarantine_row(dataset, canonical_json(incoming.raw), incoming.raw, rule, detail,
                                       incoming.landing_file, incoming.line_no, sync_id, now))

        good_rows = [i for i in range(len(parsed)) if i not in failed]
        con.register("partner_good_rows", pa.table({"batch_row": pa.array(good_rows, pa.int64())}))
        inserted = con.execute(f"""
            insert or ignore into {dataset.physical_name} ({', '.join(columns)}, landing_file, line_no, sync_id,
                                                           loaded_at)
            select {select} from partner_batch where batch_row in (select batch_row from partner_good_rows)
            returning 1""").fetchall()
        result.loaded = len(inserted)
        result.duplicates += len(good_rows) - len(inserted)

        new_bad: list[tuple[str]] = []
        if bad:
            con.register("partner_bad", pa.Table.from_pylist(bad, schema=_QUARANTINE_SCHEMA))
            # one row per distinct raw record (a bad record repeated within the batch counts once)
            new_bad = con.execute(f"""
                insert or ignore into {QUARANTINE_TABLE}
                select * from partner_bad qualify row_number() over (partition by record_sha256 order by line_no) = 1
                returning rule""").fetchall()
            result.duplicates += len(bad) - len(new_bad)
        result.quarantined = len(new_bad)
        result.quarantined_by_rule = Counter(rule for (rule,) in new_bad)
        breaches = _record_schema_breaches(con, dataset, result.quarantined_by_rule, now)
        if before_commit:
            before_commit(con)
        con.execute("commit")
    except BaseException:
        con.execute("rollback")
        raise
    finally:
        for view in ("partner_batch", "partner_good_rows", "partner_bad"):
            try:
                con.unregister(view)
            except Exception:  # not registered in this batch
                pass
    result.new_breaches = [b[0] for b in breaches]
    if breaches:
        try:
            result.alerts = raise_breach_alerts(_schema_breach_alerts(dataset, breaches))
        except Exception as exc:
            raise BreachAlertFailed(f"{dataset.partner}.{dataset.name}: batch loaded, but alerting on its new "
                                    f"breaches failed: {error_detail(exc)}") from exc
    return result


def _record_schema_breaches(con, dataset: Dataset, by_rule: Counter, now: datetime) -> list[tuple]:
    """Count the batch's newly quarantined records into today's breach of each rule; returns the breaches that
    are new (breach_id, rule, day, records)."""
    if not by_rule:
        return []
    day = now.date()
    rows = [{"breach_id": breach_id(dataset.partner, dataset.name, "schema", rule, day), "rule": rule,
             "records": count} for rule, count in sorted(by_rule.items())]
    con.register("partner_breach_rows", pa.Table.from_pylist(rows))
    try:
        known = {b for (b,) in con.execute(
            f"select breach_id from {BREACHES_TABLE} where breach_id in (select breach_id from partner_breach_rows)"
        ).fetchall()}
        con.execute(f"""
            insert into {BREACHES_TABLE}
            select breach_id, ?, ?, 'schema', rule, ?::date, records::double, 0, records,
                   'records quarantined for breaking the rule ' || rule, ?, ?
            from partner_breach_rows
            on conflict (breach_id) do update set
                records = {BREACHES_TABLE}.records + excluded.records,
                observed = {BREACHES_TABLE}.records + excluded.records,
                last_detected_at = excluded.last_detected_at""",
                    [dataset.partner, dataset.name, day, now, now])
    finally:
        con.unregister("partner_breach_rows")
    return [(r["breach_id"], r["rule"], day, r["records"]) for r in rows if r["breach_id"] not in known]


def breach_id(partner: str, dataset: str, kind: str, rule: str, day: date) -> str:
    return hashlib.md5(f"{partner}|{dataset}|{kind}|{rule}|{day.isoformat()}".encode()).hexdigest()


# -- the file ledger (file drops and webhook lines) ---------------------------------------------------------------

@dataclass(frozen=True)
class LedgerEntry:
    sha256: str
    bytes: int
    rows: int


def read_ledger(con, dataset: Dataset) -> dict[str, LedgerEntry]:
    rows = con.execute(f"select landing_file, sha256, bytes, rows from {FILE_LEDGER_TABLE} "
                       f"where partner = ? and dataset = ?", [dataset.partner, dataset.name]).fetchall()
    return {f: LedgerEntry(sha, size, n) for f, sha, size, n in rows}


def write_ledger_entry(con, dataset: Dataset, landing_file: str, entry: LedgerEntry) -> None:
    """Record what of a file is loaded; meant for ``load_batch(before_commit=...)`` so it commits with the rows."""
    now = datetime.now(UTC)
    con.execute(f"""
        insert into {FILE_LEDGER_TABLE} values (?, ?, ?, ?, ?, ?, ?, ?)
        on conflict (partner, dataset, landing_file) do update set
            sha256 = excluded.sha256, bytes = excluded.bytes, rows = excluded.rows, loaded_at = excluded.loaded_at""",
                [dataset.partner, dataset.name, landing_file, entry.sha256, entry.bytes, entry.rows, now, now])


@dataclass
class FileLoadResult:
    """What a file-drop or webhook-lines load did."""

    partner: str
    dataset: str
    configured: bool = True
    sync_id: str | None = None
    files_seen: int = 0
    files_loaded: int = 0          # files (or appended tails of files) loaded by this run
    files_unchanged: int = 0       # already in the ledger as they are
    files_quarantined: int = 0     # refused as a whole (unreadable, misplaced), each one quarantined item
    changed_files: list[str] = field(default_factory=list)  # changed after loading: an error
    batch: BatchResult = field(default_factory=BatchResult)
    message: str = ""

    @property
    def records_loaded(self) -> int:
        return self.batch.loaded

    @property
    def quarantined(self) -> int:
        return self.batch.quarantined

    def finish(self, loaded_what: str, why_no_rewrite: str) -> FileLoadResult:
        """Log the summary; raise PartnerFileChanged (the other files are loaded by then) if a loaded file changed."""
        b, name = self.batch, f"{self.partner}.{self.dataset}"
        self.message = (f"{name}: {self.files_loaded} {loaded_what} of {self.files_seen}, {b.loaded} loaded, "
                        f"{b.duplicates} duplicates skipped, {b.quarantined} quarantined"
                        f"{f', {self.files_quarantined} file(s) refused whole' if self.files_quarantined else ''}"
                        f"{f', {len(self.changed_files)} changed after loading' if self.changed_files else ''}")
        log.info(self.message)
        if self.changed_files:
            raise PartnerFileChanged(f"{name}: {len(self.changed_files)} file(s) changed after they were loaded "
                                     f"({why_no_rewrite}): {', '.join(self.changed_files)}")
        return self


def new_sync_id() -> str:
    """A load's id: sortable by start time, unique across concurrent runs."""
    return f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"


class PartnerFileChanged(RuntimeError):
    """A landing file changed after it was loaded (partners deliver new files, they do not rewrite old ones)."""
