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

# The partner tables as orchestration/partners creates them (docs/partners.md, Connectors).
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
    volume_min_ratio double, volume_max_ratio double, volume_min_history_days integer, volume_significance double,
    amount_tolerance_abs double, amount_tolerance_rel double);
create table if not exists partner_contract_slas (
    partner varchar, dataset varchar, property varchar, value double, value_text varchar, unit varchar);
"""

CONTRACT_ROWS = """
insert into partner_contract_datasets values
    ('oem', 'oem_network', 'service_orders', 'partner_oem_service_orders', 'created_at', 0.4, 2.5, 3, null, 0.5, 0.01),
    ('oem', 'oem_network', 'recall_campaigns', 'partner_oem_recall_campaigns', 'published_at', null, null, null, null, null, null),
    ('warranty', 'warranty_co', 'claims', 'partner_warranty_claims', 'delivery_date', 0.4, 3.0, 3, null, 0.5, 0.01),
    ('warranty', 'warranty_co', 'claim_status', 'partner_warranty_claim_status', 'updated_at', null, null, null, null, null, null),
    ('roadside', 'roadside_co', 'dispatch_events', 'partner_roadside_dispatch_events', 'received_at', 0.3, 3.0, 3, null, 0.5, 0.01);
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


EVENT_COLUMNS = {"message_id": "varchar", "type": "varchar", "event": "varchar", "user_id": "varchar",
                 "context_session_id": "varchar", "properties": "varchar", "timestamp": "timestamptz",
                 "received_at": "timestamptz", "occurred_at": "timestamptz"}


def booking(booking_id: str, vin: str, status: str, updated_at: str) -> dict:
    return {"booking_id": booking_id, "partner_id": "oem_network", "customer_id": "c1", "vin": vin,
            "service_id": "svc_oil", "slot_start": "2026-03-05 09:00:00+00", "amount": 100, "currency": "EUR",
            "status": status, "created_at": "2026-03-01 10:00:00+00", "updated_at": updated_at}


def add_order(root: Path, version: int, status: str) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute("""insert into partner_oem_service_orders values
            ('SO-1', ?, 'bk_1', 'VIN00000000000001', ?, '2026-03-05', 100, 'EUR', '2026-03-02 08:00:00+00',
             ?::timestamptz, 'partners/oem/page.json', ?, 'sync', ?::timestamptz)""",
                    [version, status, f"2026-03-0{5 + version} 08:00:00+00", version, f"2026-03-0{5 + version} 09:00:00+00"])
    finally:
        con.close()


def build(root: Path, target: Path) -> None:
    """The mart and what it reads; the data tests of the mart alone (the upstream models' tests run elsewhere)."""
    for command in (["run", "--select", "+mart_reconciliation_breaks"],
                    ["test", "--select", "mart_reconciliation_breaks", "--indirect-selection", "cautious"]):
        run = subprocess.run(
            [str(Path(sys.executable).parent / "dbt"), *command, "--project-dir", ".", "--profiles-dir", ".",
             "--target-path", str(target)],
            cwd=ROOT / "dbt_project", env={**os.environ, "PITWALL_DATA_DIR": str(root)}, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]


def history(root: Path) -> dict[str, dict]:
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    try:
        cur = con.execute("select * from mart_reconciliation_breaks")
        names = [d[0] for d in cur.description]
        return {row["record_id"]: row for row in (dict(zip(names, r)) for r in cur.fetchall())}
    finally:
        con.close()


def test_break_history_opens_resolves_and_reopens(data_root, tmp_path):
    from orchestration.ingestion.ingest import write_schema_file
    from orchestration.ingestion.sources import SOURCES

    root = data_root
    con = duckdb.connect()
    try:
        write_schema_file(con, SOURCES["events"])
    finally:
        con.close()
    # the end of the data: 2026-03-10 12:00
    write_raw(root, "events", "2026-03-10", [{
        "message_id": "m1", "type": "track", "event": "app_opened", "user_id": "c1", "context_session_id": "s1",
        "properties": "{}", "timestamp": "2026-03-10 12:00:00+00", "received_at": "2026-03-10 12:00:01+00",
        "occurred_at": "2026-03-10 12:00:00+00"}], EVENT_COLUMNS)
    for table, columns in OPS_COLUMNS.items():
        write_raw(root, table, "1970-01-01", [], columns)
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        con.execute(PARTNER_TABLES_DDL)
        con.execute(CONTRACT_ROWS)
    finally:
        con.close()

    # run 1: the OEM says SO-1 (our bk_1) is completed while we still have it confirmed; bk_2 has no order
    write_raw(root, "partner_bookings", "2026-03-02", [
        booking("bk_1", "VIN00000000000001", "confirmed", "2026-03-02 10:00:00+00"),
        booking("bk_2", "VIN00000000000002", "confirmed", "2026-03-02 10:00:00+00"),
    ], OPS_COLUMNS["partner_bookings"])
    add_order(root, 1, "completed")
    build(root, tmp_path / "target")
    first = history(root)
    assert {k: (v["break_class"], v["status"]) for k, v in first.items()} == {
        "SO-1": ("status_mismatch", "open"), "bk_2": ("missing_partner", "open")}
    assert all(v["first_seen_at"] == v["last_seen_at"] and v["resolved_at"] is None for v in first.values())

    # run 2: our backend catches up (bk_1 completed): the status mismatch is resolved, bk_2 still open
    write_raw(root, "partner_bookings", "2026-03-07", [
        booking("bk_1", "VIN00000000000001", "completed", "2026-03-07 10:00:00+00"),
    ], OPS_COLUMNS["partner_bookings"])
    build(root, tmp_path / "target")
    second = history(root)
    assert second["SO-1"]["status"] == "resolved"
    assert second["SO-1"]["first_seen_at"] == first["SO-1"]["first_seen_at"]
    assert second["SO-1"]["last_seen_at"] == first["SO-1"]["last_seen_at"]
    assert second["SO-1"]["resolved_at"] > second["SO-1"]["first_seen_at"]
    assert second["bk_2"]["status"] == "open"
    assert second["bk_2"]["first_seen_at"] == first["bk_2"]["first_seen_at"]
    assert second["bk_2"]["last_seen_at"] > first["bk_2"]["last_seen_at"]

    # run 3: a new version of SO-1 says cancelled while we have it completed: the same break reopens
    add_order(root, 2, "cancelled")
    build(root, tmp_path / "target")
    third = history(root)
    assert third["SO-1"]["status"] == "open"
    assert third["SO-1"]["resolved_at"] is None
    assert third["SO-1"]["first_seen_at"] == first["SO-1"]["first_seen_at"]
    assert third["SO-1"]["reopened_at"] > second["SO-1"]["resolved_at"]
    assert third["SO-1"]["times_reopened"] == 1
    assert third["bk_2"]["status"] == "open" and third["bk_2"]["times_reopened"] == 0
