"""Parquet extracts from the service backend (ops tables) and vehicle telemetry.

Each table declares its columns and types once, here. A landing file may carry more columns (kept
out of the raw layer and named in the ledger) or lack optional ones (NULL); a row whose required
column is null, or whose value does not cast to the declared type, is quarantined with the reason.
Extracts are daily change sets or full snapshots: staging keeps the latest version of each key.
"""

from __future__ import annotations

from dataclasses import dataclass

from .common import load_columns, quarantine_text


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    required: bool = False


@dataclass(frozen=True)
class ExtractTable:
    name: str
    columns: tuple[Column, ...]

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _table(name: str, *columns: tuple) -> ExtractTable:
    return ExtractTable(name, tuple(Column(*c) for c in columns))


TS = "TIMESTAMPTZ"
MONEY = "DECIMAL(12, 2)"

OPS_TABLES: dict[str, ExtractTable] = {
    t.name: t
    for t in (
        _table("customers", ("customer_id", "VARCHAR", True), ("email", "VARCHAR"), ("full_name", "VARCHAR"),
               ("region", "VARCHAR"), ("segment", "VARCHAR"), ("created_at", TS), ("updated_at", TS, True)),
        _table("vehicles", ("vin", "VARCHAR", True), ("customer_id", "VARCHAR"), ("make", "VARCHAR"),
               ("model", "VARCHAR"), ("model_year", "INTEGER"), ("fuel_type", "VARCHAR"), ("created_at", TS),
               ("updated_at", TS, True)),
        _table("technicians", ("technician_id", "VARCHAR", True), ("full_name", "VARCHAR"), ("region", "VARCHAR"),
               ("skill_level", "INTEGER"), ("hired_at", TS), ("updated_at", TS, True)),
        _table("jobs", ("job_id", "VARCHAR", True), ("customer_id", "VARCHAR"), ("vin", "VARCHAR"),
               ("technician_id", "VARCHAR"), ("service_id", "VARCHAR"), ("status", "VARCHAR"),
               ("scheduled_for", TS), ("assigned_at", TS), ("started_at", TS), ("completed_at", TS),
               ("cancelled_at", TS), ("created_at", TS), ("updated_at", TS, True)),
        _table("invoices", ("invoice_id", "VARCHAR", True), ("job_id", "VARCHAR"), ("customer_id", "VARCHAR"),
               ("amount", MONEY), ("currency", "VARCHAR"), ("status", "VARCHAR"), ("issued_at", TS),
               ("paid_at", TS), ("updated_at", TS, True)),
        _table("service_catalog", ("service_id", "VARCHAR", True), ("name", "VARCHAR"), ("kind", "VARCHAR"),
               ("price", MONEY), ("margin", MONEY), ("duration_min", "INTEGER"), ("updated_at", TS, True)),
        _table("parts_catalog", ("part_id", "VARCHAR", True), ("name", "VARCHAR"), ("category", "VARCHAR"),
               ("unit_cost", MONEY), ("unit_price", MONEY), ("service_id", "VARCHAR"), ("updated_at", TS, True)),
        _table("job_parts", ("job_part_id", "VARCHAR", True), ("job_id", "VARCHAR", True), ("part_id", "VARCHAR", True),
               ("quantity", "INTEGER"), ("used_at", TS), ("updated_at", TS, True)),
        # Bookings made through the partner widgets, and the warranty claims we file (reconciled against the partners).
        _table("partner_bookings", ("booking_id", "VARCHAR", True), ("partner_id", "VARCHAR", True), ("customer_id", "VARCHAR"),
               ("vin", "VARCHAR"), ("service_id", "VARCHAR"), ("slot_start", TS), ("amount", MONEY),
               ("currency", "VARCHAR"), ("status", "VARCHAR", True), ("partner_ref", "VARCHAR"),
               ("follow_up_of_job_id", "VARCHAR"), ("created_at", TS, True), ("confirmed_at", TS), ("completed_at", TS),
               ("cancelled_at", TS), ("updated_at", TS, True)),
        _table("warranty_claims", ("claim_id", "VARCHAR", True), ("job_id", "VARCHAR"), ("customer_id", "VARCHAR"),
               ("vin", "VARCHAR"), ("repair_date", "DATE"), ("amount", MONEY), ("currency", "VARCHAR"),
               ("status", "VARCHAR", True), ("submitted_at", TS), ("updated_at", TS, True)),
    )
}

TELEMETRY = _table(
    "telemetry", ("vin", "VARCHAR", True), ("observed_at", TS, True), ("odometer_km", "DOUBLE"),
    ("oil_life_pct", "DOUBLE"), ("battery_voltage", "DOUBLE"), ("dtc_codes", "VARCHAR[]"),
    ("tire_pressure_kpa", "DOUBLE[]"),
)


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def extract_sql(table: ExtractTable, present: set[str]) -> str:
    """SQL over the relation ``extract_rows`` (the file, with ``file_row_number``)."""
    selects, code, text = [], [], []
    for col in table.columns:
        src = _quote(col.name)
        if col.name in present:
            selects.append(f"try_cast({src} as {col.type}) as {src}")
            bad_cast = f"({src} is not null and try_cast({src} as {col.type}) is null)"
            code.append(f"when {bad_cast} then 'wrong_type'")
            text.append(f"when {bad_cast} then '{col.name} does not cast to {col.type}: ' || left({src}::VARCHAR, 200)")
        else:
            selects.append(f"null::{col.type} as {src}")
        if col.required:
            absent = f"{src} is null" if col.name in present else "true"
            code.append(f"when {absent} then 'missing_field'")
            text.append(f"when {absent} then 'required column {col.name} is missing or null'")
    reason_code = "case " + " ".join(code) + " end" if code else "null"
    reason_text = "case when _reason_code is null then null " + " ".join(text) + " end" if text else "null"
    return f"""
select
    {", ".join(selects)},
    {load_columns("file_row_number + 1")},
    {reason_code} as _reason_code,
    {reason_text} as _reason,
    {quarantine_text("to_json(extract_rows)::VARCHAR")} as _raw_text
from extract_rows
"""
