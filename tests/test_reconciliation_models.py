"""The reconciliation models on a tiny hand-made warehouse: dbt builds them on the partner tables (created
here as the connectors create them), and mart_reconciliation_breaks keeps a history across runs — a break
is open on the first run, resolved when a late update fixes it, reopened when it comes back.

The classification itself is covered by dbt unit tests (models/partners/_partners_unit_tests.yml); this
test is about what unit tests cannot show: an incremental model's behaviour over several runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow

# The partner tables as orchestration/partners creates them (docs/partners-design.md section 2).
PARTNER_TABLES_DDL = """
create table if not exists partner_oem_service_orders (
    order_id varchar, version integer, booking_ref varchar, vin varchar, status varchar, service_date date,
    amount decimal(18, 4), currency varchar, created_at timestamptz, updated_at timestamptz,
    landing_file varchar, line_no integer, sync_id varchar, loaded_at timestamptz);
create table if not exists partner_oem_recall_campaigns (
    campaign_id varchar, vin varchar, version integer, component varchar, severity varchar,
    remedy_status varchar, published_at timestamptz, updated_at timestamptz,
    landing_file varchar, line_no integer, sync_id varchar, loaded_at timestamptz);
create table if not exists partner_warranty_claims (
    partner_claim_id varchar, record_version integer, claim_ref varchar, vin varchar, repair_date date,
    claimed_amount decimal(18, 4), approved_amount decimal(18, 4), currency varchar, adjudication_status varchar,
    adjudicated_at timestamptz, updated_at timestamptz, exported_at timestamptz,
    landing_file varchar, line_no integer, sync_id varchar, loaded_at timestamptz, delivery_date date);
create table if not exists partner_warranty_claim_status (
    partner_claim_id varchar, record_version integer, adjudication_status varchar, approved_amount decimal(18, 4),
    updated_at timestamptz, landing_file varchar, line_no integer, sync_id varchar, loaded_at timestamptz);
create table if not exists partner_roadside_dispatch_events (
    event_id varchar, dispatch_id varchar, request_ref varchar, vin varchar, status varchar, occurred_at timestamptz,
    fee_amount decimal(18, 4), currency varchar, eta_minutes integer, received_at timestamptz,
    landing_file varchar, line_no integer, sync_id varchar, loaded_at timestamptz);
create table if not exists partner_api_calls (
    partner varchar, dataset varchar, endpoint varchar, sync_id varchar, requested_at timestamptz,
    status_code integer, outcome varchar, latency_ms double, bytes bigint);
create table if not exists partner_quarantine (
    partner varchar, dataset varchar, record_sha256 varchar, raw_record varchar, rule varchar, detail varchar,
    record_id varchar, record_version varchar, landing_file varchar, line_no integer, sync_id varchar,
    quarantined_at timestamptz);
create table if not exists partner_contract_breaches (
    breach_id varchar, partner varchar, dataset varchar, breach_kind varchar, rule varchar, day date,
    observed double, threshold double, records bigint, detail varchar, first_detected_at timestamptz,
    last_detected_at timestamptz);
create table if not exists partner_contract_datasets (
    partner varchar, partner_id varchar, dataset varchar, physical_name varchar, volume_date_field varchar,
    volume_min_ratio double, volume_max_ratio double, volume_min_history_days integer,
    amount_tolerance_abs double, amount_tolerance_rel double);
create table if not exists partner_contract_slas (
    partner varchar, dataset varchar, property varchar, value double, value_text varchar, unit varchar);
"""

CONTRACT_ROWS = """
insert into partner_contract_datasets values
    ('oem', 'oem_network', 'service_orders', 'partner_oem_service_orders', 'created_at', 0.4, 2.5, 3, 0.5, 0.01),
    ('oem', 'oem_network', 'recall_campaigns', 'partner_oem_recall_campaigns', 'published_at', null, null, null, null, null),
    ('warranty', 'warranty_co', 'claims', 'partner_warranty_claims', 'delivery_date', 0.4, 3.0, 3, 0.5, 0.01),
    ('warranty', 'warranty_co', 'claim_status', 'partner_warranty_claim_status', 'updated_at', null, null, null, null, null),
    ('roadside', 'roadside_co', 'dispatch_events', 'partner_roadside_dispatch_events', 'received_at', 0.3, 3.0, 3, 0.5, 0.01);
insert into partner_contract_slas values
    ('oem', 'service_orders', 'generalAvailability', 0.95, '0.95', 'ratio'),
    ('oem', 'service_orders', 'latency', 800, '800', 'ms'),
    ('oem', 'service_orders', 'freshness', 26, '26', 'h'),
    ('oem', 'service_orders', 'frequency', 1, '1', 'h'),
    ('warranty', 'claims', 'timeOfAvailability', null, '06:00', 'UTC'),
    ('warranty', 'claims', 'freshness', 30, '30', 'h'),
    ('warranty', 'claim_status', 'generalAvailability', 0.95, '0.95', 'ratio'),
    ('warranty', 'claim_status', 'latency', 800, '800', 'ms'),
    ('roadside', 'dispatch_events', 'latency', 5, '5', 'min'),
    ('roadside', 'dispatch_events', 'freshness', 5, '5', 'min');
"""

# The two ops tables of the partner pieces, as ingestion types them in the raw layer.
OPS_COLUMNS = {
    "partner_bookings": {
        "booking_id": "varchar", "partner_id": "varchar", "customer_id": "varchar", "vin": "varchar",
        "service_id": "varchar", "slot_start": "timestamptz", "amount": "decimal(12, 2)", "currency": "varchar",
        "status": "varchar", "partner_ref": "varchar", "follow_up_of_job_id": "varchar",
        "created_at": "timestamptz", "confirmed_at": "timestamptz", "completed_at": "timestamptz",
        "cancelled_at": "timestamptz", "updated_at": "timestamptz",
    },
    "warranty_claims": {
        "claim_id": "varchar", "job_id": "varchar", "customer_id": "varchar", "vin": "varchar",
        "repair_date": "date", "amount": "decimal(12, 2)", "currency": "varchar", "status": "varchar",
        "submitted_at": "timestamptz", "updated_at": "timestamptz",
    },
}
LOAD_COLUMNS = {"_landing_path": "varchar", "_line_no": "bigint", "_ingested_at": "timestamptz"}


def write_raw(root: Path, table: str, dt: str, rows: list[dict], columns: dict[str, str]) -> None:
    """One raw Parquet file of an ops table (typed as ingestion types it), hive-partitioned by dt."""
    target = root / "raw" / table / f"dt={dt}"
    target.mkdir(parents=True, exist_ok=True)
    columns = {**columns, **LOAD_COLUMNS}
    con = duckdb.connect()
    try:
        con.execute("create table t (" + ", ".join(f'"{c}" {t}' for c, t in columns.items()) + ")")
        for i, row in enumerate(rows, start=1):
            values = {**row, "_landing_path": f"ops/{table}/dt={dt}/{table}.parquet", "_line_no": i,
                      "_ingested_at": f"{dt} 23:00:00+00"}
            con.execute(f"insert into t ({', '.join(chr(34) + c + chr(34) for c in values)}) values "
                        f"({', '.join('?' for _ in values)})", list(values.values()))
        con.execute(f"copy t to '{target / 'part.parquet'}' (format parquet)")
    finally:
        con.close()
