"""File-based partner connectors on a real landing zone and DuckDB: warranty CSV drops (file ledger, each file once)
and roadside webhook lines (signatures, redeliveries, appended files)."""

from __future__ import annotations

import csv
import io
import json
from datetime import date

import pytest

from orchestration.partners import contracts, files, loading, webhooks
from pitwall import paths
from pitwall.duck import connect

CLAIMS = contracts.dataset("warranty", "claims")
EVENTS = contracts.dataset("roadside", "dispatch_events")
SECRET_ENV = contracts.contract("roadside").secret_env
SECRET = "test-webhook-secret"


def query(sql: str) -> list[tuple]:
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


# -- warranty CSV drops -------------------------------------------------------------------------------------

def claim(claim_no: int, version: int = 1, **changes) -> dict:
    row = {"partner_claim_id": f"WC-{claim_no:04d}", "record_version": str(version), "claim_ref": f"wcl_{claim_no}",
           "vin": "1HGCM82633A004352", "repair_date": "2026-01-04", "claimed_amount": "310.25",
           "approved_amount": "", "currency": "EUR", "adjudication_status": "received", "adjudicated_at": "",
           "updated_at": "2026-01-04T15:00:00Z", "exported_at": "2026-01-05T02:00:00Z"}
    return {**row, **changes}


def write_drop(data_root, day: str, rows: list[dict], columns: list[str] | None = None) -> str:
    folder = data_root / "landing" / "partners" / "warranty" / f"dt={day}"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"claims_{day.replace('-', '')}.csv"
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns or list(CLAIMS.columns), lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    path.write_text(buffer.getvalue())
    return path.relative_to(data_root).as_posix()


def test_a_csv_drop_loads_once_and_its_bad_rows_are_quarantined(data_root):
    first = write_drop(data_root, "2026-01-05", [
        claim(1), claim(2, approved_amount="300.00", adjudication_status="partially_approved",
                        adjudicated_at="2026-01-04T16:00:00+00:00"),
        claim(3, record_version="two"),  # retyped: the version as a word
        claim(4, claimed_amount="3 10"),  # retyped: not a number
        claim(5, adjudication_status="lost"), claim(6, claimed_amount="-1"),
        claim(1),  # the same row twice in a file
    ])
    with open(data_root / first, "a", newline="") as fh:
        fh.write("WC-0007,1,too,few,fields\r\n")

    result = files.load("warranty", "claims")
    assert (result.files_loaded, result.records_loaded, result.quarantined) == (1, 2, 5)
    assert result.batch.duplicates == 1
    assert dict(query("select record_id, rule from partner_quarantine")) == {
        "WC-0003": "type:record_version", "WC-0004": "type:claimed_amount", "WC-0005": "enum:adjudication_status",
        "WC-0006": "range:claimed_amount", None: "format:csv"}
    rows = query("select partner_claim_id, record_version, approved_amount, adjudicated_at, delivery_date, landing_file, "
                 "line_no from partner_warranty_claims order by 1")
    assert [(r[0], r[1], r[4], r[5], r[6]) for r in rows] == [
        ("WC-0001", 1, date(2026, 1, 5), first, 1), ("WC-0002", 1, date(2026, 1, 5), first, 2)]
    assert rows[0][2] is None and rows[0][3] is None  # empty optional cells are nulls
    assert str(rows[1][2]) == "300.0000"
    [(ledger_file, ledger_rows, ledger_sha)] = query("select landing_file, rows, sha256 from partner_file_ledger")
    assert (ledger_file, ledger_rows, len(ledger_sha)) == (first, 8, 64)

    again = files.load("warranty", "claims")
    assert (again.files_loaded, again.files_unchanged, again.records_loaded, again.quarantined) == (0, 1, 0, 0)
    assert query("select count(*) from partner_warranty_claims") == [(2,)]

    # the next day's file (a new version of claim 1) loads; the first file rewritten is an error, not a reload
    second = write_drop(data_root, "2026-01-06", [claim(1, 2, adjudication_status="approved",
                                                         approved_amount="310.25",
                                                         adjudicated_at="2026-01-05T10:00:00Z")])
    (data_root / first).write_text((data_root / first).read_text().replace("310.25", "310.26"))
    with pytest.raises(loading.PartnerFileChanged, match=first):
        files.load("warranty", "claims")
    assert query("select landing_file, delivery_date from partner_warranty_claims where record_version = 2") == [
        (second, date(2026, 1, 6))]


def test_a_renamed_csv_column_quarantines_its_rows_as_missing(data_root):
    columns = [("claimed_amt" if c == "claimed_amount" else c) for c in CLAIMS.columns]
    write_drop(data_root, "2026-01-07", [{("claimed_amt" if k == "claimed_amount" else k): v
                                          for k, v in claim(i).items()} for i in range(3)], columns)
    result = files.load("warranty", "claims")
    assert (result.records_loaded, result.batch.quarantined_by_rule) == (
        0, {"missing:claimed_amount": 3})
    assert query("select rule, records from partner_contract_breaches") == [("missing:claimed_amount", 3)]


# -- roadside webhook lines ------------------------------------------------------------------------------------

def event(n: int, status: str = "requested", minute: int = 0, **changes) -> dict:
    return {"event_id": f"ev-{n}", "dispatch_id": "RD-100", "request_ref": "bk_1", "vin": "1HGCM82633A004352",
            "status": status, "occurred_at": f"2026-01-05T10:{minute:02d}:00Z", "fee_amount": None,
            "currency": None, "eta_minutes": 25, **changes}


def envelope(body: dict | str, received_minute: int, secret: str = SECRET) -> str:
    text = body if isinstance(body, str) else json.dumps(body)
    return json.dumps({"received_at": f"2026-01-05T10:{received_minute:02d}:30Z",
                       "signature": webhooks.signature(secret, text), "body": text})


def append_lines(data_root, lines: list[str], hour: str = "10", end: str = "\n") -> str:
    folder = data_root / "landing" / "partners" / "roadside" / "dt=2026-01-05"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"webhooks-{hour}.jsonl"
    with open(path, "a") as fh:
        fh.write("\n".join(lines) + end)
    return path.relative_to(data_root).as_posix()


def test_webhook_lines_are_verified_deduplicated_and_loaded_as_they_are_appended(monkeypatch, data_root):
    monkeypatch.setenv(SECRET_ENV, SECRET)
    landing_file = append_lines(data_root, [
        envelope(event(2, "assigned", 5), 6),
        envelope(event(1), 1),
        envelope(event(1), 9),  # redelivered, out of order
        envelope(event(3, "arrived", 20), 21, secret="not-the-secret"),
        "{not json",
        envelope("{\"event_id\": ", 22),  # a signed body that is not JSON
        envelope(event(4, "exploded", 30), 31),
    ])
    first = webhooks.load("roadside", "dispatch_events")
    assert (first.records_loaded, first.batch.duplicates, first.quarantined) == (2, 1, 4)
    assert sorted(query("select rule, line_no from partner_quarantine")) == [
        ("enum:status", 7), ("format:json", 5), ("format:json", 6), ("signature:invalid", 4)]
    # the first delivery of a redelivered event is the one kept (its latency is the partner's)
    assert query("select event_id, received_at, line_no from partner_roadside_dispatch_events order by 1") == [
        ("ev-1", *query("select timestamptz '2026-01-05 10:01:30+00'")[0], 2),
        ("ev-2", *query("select timestamptz '2026-01-05 10:06:30+00'")[0], 1)]

    assert webhooks.load("roadside", "dispatch_events").files_unchanged == 1  # nothing new: a no-op

    # appended later: a new event, another redelivery, and a last line still being written
    append_lines(data_root, [envelope(event(5, "completed", 40, fee_amount=89.9, currency="EUR"), 41),
                             envelope(event(2, "assigned", 5), 42)])
    partial = envelope(event(6, "cancelled", 45), 46)
    append_lines(data_root, [partial[:40]], end="")
    second = webhooks.load("roadside", "dispatch_events")
    assert (second.records_loaded, second.batch.duplicates, second.quarantined) == (1, 1, 0)
    assert query("select rows from partner_file_ledger") == [(9,)]
    append_lines(data_root, [partial[40:]])
    third = webhooks.load("roadside", "dispatch_events")
    assert third.records_loaded == 1
    assert query("select event_id, fee_amount, line_no from partner_roadside_dispatch_events where event_id in "
                 "('ev-5', 'ev-6') order by 1") == [("ev-5", *query("select 89.9::decimal(18,4)")[0], 8),
                                                    ("ev-6", None, 10)]

    # a receiver only appends: a rewritten line is an error
    path = data_root / landing_file
    path.write_text(path.read_text().replace("ev-1", "ev-9", 1))
    with pytest.raises(loading.PartnerFileChanged, match="webhooks-10.jsonl"):
        webhooks.load("roadside", "dispatch_events")


def test_webhooks_without_a_secret_are_skipped(monkeypatch, data_root, caplog):
    monkeypatch.delenv(SECRET_ENV, raising=False)
    append_lines(data_root, [envelope(event(1), 1)])
    with caplog.at_level("INFO", logger=webhooks.__name__):
        result = webhooks.load("roadside", "dispatch_events")
    assert not result.configured and SECRET_ENV in result.message
    assert any("not configured" in r.getMessage() for r in caplog.records)
    assert not paths.warehouse_path().exists()


def test_the_partner_assets_succeed_with_nothing_configured(monkeypatch, data_root):
    import dagster as dg

    from orchestration.partners.assets import PARTNER_ASSETS, partner_contracts

    for c in contracts.load_contracts().values():
        for env in (c.url_env, c.api_key_env, c.secret_env):
            if env:
                monkeypatch.delenv(env, raising=False)
    run = dg.materialize([partner_contracts, *PARTNER_ASSETS.values()])  # partner_sla_breaches runs after dbt
    assert run.success
    tables = {t for (t,) in query("select table_name from information_schema.tables")}
    assert {d.physical_name for d in contracts.all_datasets()} <= tables
    assert {"partner_contract_datasets", "partner_contract_slas", "partner_quarantine", "partner_api_calls",
            "partner_contract_breaches", "partner_file_ledger"} <= tables
    assert query("select count(*) from partner_contract_slas") == [(10,)]
    assert all(e.passed for e in run.get_asset_check_evaluations())
