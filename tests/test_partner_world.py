"""The simulated partners write what the contracts promise, and truth.json["partners"] is what an independent
reading of the files finds.

On the demo world (`make demo`'s DEMO_ARGS: 300 customers, 40 technicians, 35 days, seed 7): records checked against
contracts/partners/*.odcs.yaml with a small validator written here, webhook signatures verified with the secret,
the reconciliation rules of docs/partners.md, Reconciliation reimplemented here and run on the landed files
(phase 1) and again after the late updates (phase 2), the SLA days recomputed, and the internal bookings tied
back to the apps' booking_created events.
"""
from __future__ import annotations

import csv
import datetime as dt
import gzip
import hashlib
import hmac
import json
import re
import shutil
import statistics
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from simulator import generate
from simulator.partners.world import WEBHOOK_SECRET, PartnerWorld

ROOT = Path(__file__).resolve().parent.parent
DEMO = dict(customers=300, technicians=40, days=14, seed=7, progress=False)
CLASSES = ("missing_internal", "missing_partner", "amount_mismatch", "status_mismatch", "duplicate")
ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@pytest.fixture(scope="module")
def landing(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("partners") / "landing"
    generate(out, **DEMO)
    return out


@pytest.fixture(scope="module")
def truth(landing) -> dict:
    return json.loads((landing / "truth.json").read_text())["partners"]


@pytest.fixture(scope="module")
def contracts() -> dict:
    out = {}
    for path in sorted((ROOT / "contracts" / "partners").glob("*.odcs.yaml")):
        doc = yaml.safe_load(path.read_text())
        out[doc["dataProduct"]] = {d["name"]: d for d in doc["schema"]}
    return out


@pytest.fixture(scope="module")
def late_landing(landing, tmp_path_factory) -> Path:
    """A copy of the landing zone with the late updates applied through the CLI."""
    out = tmp_path_factory.mktemp("late") / "landing"
    shutil.copytree(landing, out)
    from simulator.partners.__main__ import main
    assert main(["late-updates", "--world", str(out / "partners" / "world.json"), "--landing", str(out)]) == 0
    return out


# --- readers -----------------------------------------------------------------------------------------

def stores(landing: Path) -> dict:
    return PartnerWorld.load(landing / "partners" / "world.json").stores()


def claim_rows(landing: Path) -> list[dict]:
    rows = []
    for path in sorted((landing / "partners" / "warranty").glob("dt=*/claims_*.csv")):
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            for row in reader:
                rows.append({**row, "_delivery_date": path.parent.name[3:], "_header": reader.fieldnames})
    return rows


def webhook_lines(landing: Path) -> list[dict]:
    lines = []
    for path in sorted((landing / "partners" / "roadside").glob("dt=*/webhooks-*.jsonl")):
        for text in path.read_text().splitlines():
            lines.append({**json.loads(text), "_path": path})
    return lines


def latest_ops(landing: Path, table: str, key: str) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for path in sorted((landing / "ops" / table).glob("dt=*/*.parquet")):
        for row in pq.read_table(path).to_pylist():
            if row[key] not in rows or row["updated_at"] >= rows[row[key]]["updated_at"]:
                rows[row[key]] = row
    return rows


def ts(value: str) -> dt.datetime:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))


def cents(value) -> int:
    return int(Decimal(str(value)) * 100)


# --- a contract validator ---------------------------------------------------------------------------------

def violations(record: dict, dataset: dict) -> list[str]:
    """What in one wire record breaks its contract dataset: required fields, types, patterns, enums, minimums."""
    out = []
    props = {p["name"]: p for p in dataset["properties"]}
    for name in record:
        if name not in props:
            out.append(f"unknown field {name}")
    for name, p in props.items():
        value = record.get(name)
        if value is None or value == "":
            if p.get("required"):
                out.append(f"{name} missing")
            continue
        logical = p["logicalType"]
        wire = {c["property"]: c["value"] for c in p.get("customProperties", [])}.get("wireType")
        text = str(value)
        if logical == "integer" and not (isinstance(value, int) or re.fullmatch(r"\d+", text)):
            out.append(f"{name} not an integer: {value!r}")
        if logical == "timestamp" and not ISO_Z.match(text):
            out.append(f"{name} not ISO-8601 UTC: {value!r}")
        if logical == "date" and not DATE.match(text):
            out.append(f"{name} not a date: {value!r}")
        if logical == "number":
            if wire == "decimal_string" and not isinstance(value, str):
                out.append(f"{name} must be a decimal string: {value!r}")
            try:
                Decimal(text)
            except Exception:
                out.append(f"{name} not a number: {value!r}")
        options = p.get("logicalTypeOptions", {})
        if "pattern" in options and not re.search(options["pattern"], text):
            out.append(f"{name} does not match {options['pattern']}: {value!r}")
        if "minimum" in options and Decimal(text) < Decimal(str(options["minimum"])):
            out.append(f"{name} below {options['minimum']}: {value!r}")
        for q in p.get("quality", []):
            if q.get("metric") == "invalidValues" and value not in q["arguments"]["validValues"]:
                out.append(f"{name} not in {q['arguments']['validValues']}: {value!r}")
    return out


def test_every_record_conforms_to_its_contract(landing, late_landing, contracts):
    for where in (landing, late_landing):
        api = stores(where)
        checked = Counter()
        for path, product, name in (("/v1/service-orders", "oem", "service_orders"), ("/v1/recall-campaigns", "oem", "recall_campaigns"),
                                    ("/v1/claims/status", "warranty", "claim_status")):
            for record in api[path].current():
                assert not violations(record, contracts[product][name]), (path, record, violations(record, contracts[product][name]))
                checked[path] += 1
        columns = [p["name"] for p in contracts["warranty"]["claims"]["properties"]]
        for row in claim_rows(where):
            assert row["_header"] == columns, "the CSV's columns are the contract's, in its order"
            record = {k: v for k, v in row.items() if not k.startswith("_")}
            assert not violations(record, contracts["warranty"]["claims"]), (row, violations(record, contracts["warranty"]["claims"]))
            checked["claims"] += 1
        for line in webhook_lines(where):
            assert set(line) - {"_path"} == {"received_at", "signature", "body"}
            event = json.loads(line["body"])
            record = {**event, "received_at": line["received_at"]}
            assert not violations(record, contracts["roadside"]["dispatch_events"]), (record, violations(record, contracts["roadside"]["dispatch_events"]))
            stamp = ts(line["received_at"])
            assert line["_path"].parent.name == f"dt={stamp:%Y-%m-%d}" and line["_path"].name == f"webhooks-{stamp:%H}.jsonl"
            checked["webhooks"] += 1
        assert min(checked.values()) > 0 and len(checked) == 5, checked


def test_webhook_signatures_verify_and_deliveries_are_at_least_once(landing):
    lines = webhook_lines(landing)
    for line in lines:
        expected = "sha256=" + hmac.new(WEBHOOK_SECRET.encode(), line["body"].encode(), hashlib.sha256).hexdigest()
        assert hmac.compare_digest(line["signature"], expected)
    event_ids = Counter(json.loads(line["body"])["event_id"] for line in lines)
    assert any(n > 1 for n in event_ids.values()), "some deliveries are duplicated"
    # some event is received after a later event of its dispatch
    by_dispatch = defaultdict(list)
    for line in lines:
        event = json.loads(line["body"])
        by_dispatch[event["dispatch_id"]].append((line["received_at"], event["occurred_at"]))
    assert any(sorted(v) != sorted(v, key=lambda x: (x[1], x[0])) for v in by_dispatch.values()), "some deliveries are out of order"
    # a file's lines are in arrival order (the receiver appends)
    by_file = defaultdict(list)
    for line in lines:
        by_file[line["_path"]].append(line["received_at"])
    assert all(v == sorted(v) for v in by_file.values())


def test_warranty_files_are_next_morning_drops(landing, truth):
    for path in sorted((landing / "partners" / "warranty").glob("dt=*/*.csv")):
        day = dt.date.fromisoformat(path.parent.name[3:])
        assert path.name == f"claims_{day:%Y%m%d}.csv"
        raw = path.read_bytes()
        assert raw.startswith(b"partner_claim_id,") and b"\r\n" in raw  # RFC 4180 line ends
        with open(path, newline="") as fh:
            exported = {r["exported_at"] for r in csv.DictReader(fh)}
        assert len(exported) == 1
        at = ts(exported.pop())
        assert at.date() == day + dt.timedelta(days=1) and 2 <= at.hour < 5


# --- reconciliation, independently ------------------------------------------------------------------------

OEM_STATUS = {"completed": "completed", "invoiced": "completed", "cancelled": "cancelled"}
WARRANTY_STATUS = {"approved": "approved", "partially_approved": "approved", "paid": "approved", "rejected": "rejected"}
ROADSIDE_STATUS = {"completed": "completed", "cancelled": "cancelled"}


def partner_transactions(landing: Path) -> dict[str, list[dict]]:
    api = stores(landing)
    out = {"oem": [], "warranty": [], "roadside": []}
    for r in api["/v1/service-orders"].current():
        out["oem"].append({"id": r["order_id"], "ref": r["booking_ref"], "vin": r["vin"], "date": dt.date.fromisoformat(r["service_date"]),
                           "cents": cents(r["amount"]), "status": OEM_STATUS.get(r["status"], "open"), "created": r["created_at"]})
    # warranty: the latest version over the file and the status endpoint; other columns from the file's latest
    file_latest, first_seen = {}, {}
    for row in claim_rows(landing):
        key = row["partner_claim_id"]
        first_seen[key] = min(first_seen.get(key, row["updated_at"]), row["updated_at"])
        if key not in file_latest or int(row["record_version"]) > int(file_latest[key]["record_version"]):
            file_latest[key] = row
    status = {r["partner_claim_id"]: r for r in api["/v1/claims/status"].current()}
    for key, row in file_latest.items():
        s = status.get(key)
        adjudication = s["adjudication_status"] if s and s["record_version"] >= int(row["record_version"]) else row["adjudication_status"]
        out["warranty"].append({"id": key, "ref": row["claim_ref"] or None, "vin": row["vin"], "date": dt.date.fromisoformat(row["repair_date"]),
                                "cents": cents(row["claimed_amount"]), "status": WARRANTY_STATUS.get(adjudication, "pending"),
                                "created": first_seen[key]})
    events = defaultdict(dict)
    for line in webhook_lines(landing):
        e = json.loads(line["body"])
        events[e["dispatch_id"]][e["event_id"]] = e
    for dispatch_id, evs in events.items():
        ordered = sorted(evs.values(), key=lambda e: (e["occurred_at"], e["event_id"]))
        fees = [e for e in ordered if e["fee_amount"] is not None]
        out["roadside"].append({"id": dispatch_id, "ref": ordered[0]["request_ref"], "vin": ordered[0]["vin"],
                                "date": dt.date.fromisoformat(ordered[0]["occurred_at"][:10]), "cents": cents(fees[-1]["fee_amount"]) if fees else 0,
                                "status": ROADSIDE_STATUS.get(ordered[-1]["status"], "open"), "created": ordered[0]["occurred_at"]})
    return out


def internal_records(landing: Path) -> dict[str, list[dict]]:
    out = {"oem": [], "warranty": [], "roadside": []}
    for b in latest_ops(landing, "partner_bookings", "booking_id").values():
        if b["partner_id"] in ("oem_network", "roadside_co") and b["status"] in ("confirmed", "completed", "cancelled"):
            out["oem" if b["partner_id"] == "oem_network" else "roadside"].append(
                {"id": b["booking_id"], "vin": b["vin"], "date": b["slot_start"].date(), "cents": cents(b["amount"]),
                 "status": {"confirmed": "open"}.get(b["status"], b["status"]), "created": b["created_at"]})
    for c in latest_ops(landing, "warranty_claims", "claim_id").values():
        out["warranty"].append({"id": c["claim_id"], "vin": c["vin"], "date": c["repair_date"], "cents": cents(c["amount"]),
                                "status": {"paid": "approved", "submitted": "pending"}.get(c["status"], c["status"]), "created": c["submitted_at"]})
    return out


def within(partner_cents: int, internal_cents: int) -> bool:
    return abs(Decimal(partner_cents - internal_cents)) <= max(Decimal(50), Decimal("0.01") * internal_cents)


def breaks_by_the_rules(partner: str, txns: list[dict], internal: list[dict], end: dt.datetime) -> set[tuple]:
    found = set()
    ids = {r["id"]: r for r in internal}
    matched = {}
    same_ref = defaultdict(list)
    for t in txns:
        if t["ref"] in ids:
            same_ref[t["ref"]].append(t)
    dups = set()
    for ref, group in same_ref.items():
        group.sort(key=lambda t: (t["created"], t["id"]))
        matched[group[0]["id"]] = ref
        for t in group[1:]:
            found.add((partner, "duplicate", t["id"]))
            dups.add(t["id"])
    free_t = [t for t in txns if t["id"] not in matched and t["id"] not in dups]
    free_r = [r for r in internal if r["id"] not in set(matched.values())]
    pairs = sorted((abs((t["date"] - r["date"]).days), abs(t["cents"] - r["cents"]), t["id"], r["id"])
                   for t in free_t for r in free_r
                   if t["vin"] == r["vin"] and abs((t["date"] - r["date"]).days) <= 1 and within(t["cents"], r["cents"]))
    for _g, _a, tid, rid in pairs:
        if tid not in matched and rid not in matched.values():
            matched[tid] = rid
    txn = {t["id"]: t for t in txns}
    keys = {(txn[tid]["vin"], txn[tid]["date"], txn[tid]["cents"]) for tid in matched}
    for t in free_t:
        if t["id"] not in matched:
            if (t["vin"], t["date"], t["cents"]) in keys:
                found.add((partner, "duplicate", t["id"]))
            elif ts(t["created"]) <= end:  # one created after the data ends waits for the data that would match it
                found.add((partner, "missing_internal", t["id"]))
    for r in free_r:
        if r["id"] not in matched.values() and r["created"] < end - dt.timedelta(hours=24):
            found.add((partner, "missing_partner", r["id"]))
    for tid, rid in matched.items():
        if not within(txn[tid]["cents"], ids[rid]["cents"]):
            found.add((partner, "amount_mismatch", tid))
        elif txn[tid]["status"] != ids[rid]["status"]:
            found.add((partner, "status_mismatch", tid))
    return found


def all_breaks(landing: Path, end: dt.datetime) -> set[tuple]:
    txns, internal = partner_transactions(landing), internal_records(landing)
    return set().union(*(breaks_by_the_rules(p, txns[p], internal[p], end) for p in ("oem", "warranty", "roadside")))


def record_id(b: dict) -> str:
    return b["internal_id"] if b["class"] == "missing_partner" else b["partner_txn_id"]


def test_planted_breaks_are_what_the_rules_find(landing, late_landing, truth):
    end = ts(truth["data_end_at"])
    planted = {(b["partner"], b["class"], record_id(b)) for b in truth["breaks"]}
    assert all_breaks(landing, end) == planted
    resolved = {(b["partner"], b["class"], record_id(b)) for b in truth["breaks"] if b["resolved_by_late_update"]}
    assert all_breaks(late_landing, end) == planted - resolved, "the late updates resolve exactly the flagged breaks"
    by_class = Counter((b["partner"], b["class"]) for b in truth["breaks"])
    for partner in ("oem", "warranty"):
        for cls in CLASSES:
            assert by_class[(partner, cls)] >= 3, (partner, cls, by_class)
        for cls in ("amount_mismatch", "status_mismatch", "missing_partner"):
            assert any(b["resolved_by_late_update"] for b in truth["breaks"] if (b["partner"], b["class"]) == (partner, cls))
    assert sum(n for (p, _c), n in by_class.items() if p == "roadside") >= 3


def test_fallback_matches_hold_and_near_misses_break(landing, truth):
    txns = partner_transactions(landing)
    breaks = {(b["partner"], record_id(b)) for b in truth["breaks"]}
    fallback = [m for m in truth["fallback_matches"]]
    assert {m["partner"] for m in fallback} >= {"oem", "warranty"}
    for m in fallback:
        t = next(t for t in txns[m["partner"]] if t["id"] == m["partner_txn_id"])
        assert t["ref"] is None or t["ref"] != m["internal_id"]
        assert (m["partner"], m["partner_txn_id"]) not in breaks and (m["partner"], m["internal_id"]) not in breaks
    internal = {(p, r["id"]): r for p, records in internal_records(landing).items() for r in records}
    gaps = {abs((next(t for t in txns[m["partner"]] if t["id"] == m["partner_txn_id"])["date"]
                 - internal[(m["partner"], m["internal_id"])]["date"]).days) for m in fallback}
    assert gaps == {0, 1}, "fallback matches on the same day and a day apart"
    assert len(truth["near_misses"]) >= 2
    for m in truth["near_misses"]:
        assert Decimal(m["amount_gap"]) > Decimal(m["tolerance"])
        assert (m["partner"], m["partner_txn_id"]) in breaks and (m["partner"], m["internal_id"]) in breaks


# --- SLAs ---------------------------------------------------------------------------------------------------

def volume_breach_days(per_day: dict[dt.date, int], days: list[dt.date], min_ratio: float, max_ratio: float, min_history: int = 3) -> set:
    """int_partner_dataset_daily's rule: records against min/max ratio × the median of the 7 days before, on a
    spine of days from the dataset's first day with records."""
    days = [d for d in days if d >= min(per_day)]
    out = set()
    for i, day in enumerate(days):
        history = [per_day.get(d, 0) for d in days[max(0, i - 7):i]]
        if len(history) < min_history:
            continue
        median = statistics.median(history)
        if not (min_ratio * median <= per_day.get(day, 0) <= max_ratio * median):
            out.add(day)
    return out


def test_sla_breaches_are_on_the_planted_days_only(landing, truth):
    start = dt.date(2026, 11, 1)
    days = [start + dt.timedelta(days=k) for k in range(DEMO["days"])]
    planted = {(s["partner"], s["dataset"], s["sla"]): dt.date.fromisoformat(s["day"]) for s in truth["sla_breaches"]}
    orders = Counter(ts(r["created_at"]).date() for r in stores(landing)["/v1/service-orders"].current())
    assert volume_breach_days(orders, days, 0.4, 2.5) == {planted[("oem", "service_orders", "volume")]}
    rows = Counter(dt.date.fromisoformat(r["_delivery_date"]) for r in claim_rows(landing))
    assert volume_breach_days(rows, days, 0.4, 3.0) == {planted[("warranty", "claims", "volume")]}
    assert planted[("warranty", "claims", "timeOfAvailability")] not in rows
    lags = defaultdict(list)
    for r in claim_rows(landing):
        lags[ts(r["updated_at"]).date()].append((ts(r["exported_at"]) - ts(r["updated_at"])).total_seconds() / 3600)
    late = {d for d, v in lags.items() if statistics.quantiles(v + v, n=20)[-1] > 30}
    assert late == {planted[("warranty", "claims", "freshness")]}
    first_receipt = {}
    for line in webhook_lines(landing):
        e = json.loads(line["body"])
        first_receipt[e["event_id"]] = min(first_receipt.get(e["event_id"], line["received_at"]), line["received_at"])
    received = Counter(ts(v).date() for v in first_receipt.values())
    assert volume_breach_days(received, days, 0.3, 3.0) == set()
    delay = defaultdict(list)
    for line in webhook_lines(landing):
        e = json.loads(line["body"])
        delay[ts(e["occurred_at"]).date()].append((ts(line["received_at"]) - ts(e["occurred_at"])).total_seconds() / 60)
    slow = {d for d, v in delay.items() if sorted(v)[int(0.95 * (len(v) - 1))] > 5}
    assert slow == {planted[("roadside", "dispatch_events", "latency")]} == {planted[("roadside", "dispatch_events", "freshness")]}


# --- the internal side and the apps --------------------------------------------------------------------------

def event_lines(landing: Path):
    """The events' lines, past the planted bad bytes and the planted truncated file."""
    for path in sorted((landing / "events").glob("dt=*/*.jsonl.gz")):
        data = b""
        with gzip.open(path, "rb") as fh:
            try:
                while chunk := fh.read(1 << 20):
                    data += chunk
            except EOFError:
                pass
        yield from data.decode("utf-8", errors="replace").splitlines()


def test_bookings_follow_the_apps_booking_events(landing):
    created = {}
    slots = Counter()
    for text in event_lines(landing):
        if '"booking_created"' in text or '"partner_slot_chosen"' in text:
            try:
                e = json.loads(text)
            except json.JSONDecodeError:
                continue  # a planted malformed line
            if e.get("event") == "booking_created":
                true = ts(e["receivedAt"]) - (ts(e["sentAt"]) - ts(e["timestamp"]))
                created[e["properties"]["booking_id"]] = (e["userId"], e["properties"]["partner_id"], true)
            elif e.get("event") == "partner_slot_chosen":
                slots[e["properties"].get("booking_id")] += 1
    bookings = latest_ops(landing, "partner_bookings", "booking_id")
    assert created and set(created) <= set(bookings)
    for booking_id, (user, partner, true) in created.items():
        b = bookings[booking_id]
        assert (b["customer_id"], b["partner_id"]) == (user, partner)
        assert abs((b["created_at"] - true).total_seconds()) < 2
        assert slots[booking_id] >= 1, "every booking's session chose a slot first"
    assert slots[None] > 0, "some sessions chose a slot and did not book"
    assert {b["partner_id"] for b in bookings.values()} == {"oem_network", "roadside_co", "tire_depot"}
    assert all(b["status"] == "requested" for b in bookings.values() if b["partner_id"] == "tire_depot")
    assert any(b["follow_up_of_job_id"] for b in bookings.values())
    assert all(b["service_id"] is None for b in bookings.values() if b["partner_id"] == "roadside_co")
    for b in bookings.values():
        assert (b["partner_ref"] is not None) == (b["confirmed_at"] is not None)
        if b["status"] == "cancelled":
            assert b["amount"] == 0


def test_same_seed_gives_identical_partner_files(landing, tmp_path):
    again = tmp_path / "again"
    generate(again, **DEMO)

    def digest(root: Path) -> dict:
        paths = [p for p in root.rglob("*") if p.is_file() and ("partners" in p.parts or p.parts[-3] in ("partner_bookings", "warranty_claims"))]
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}

    first = digest(landing)
    assert len(first) > 50 and first == digest(again)
    assert json.loads((again / "truth.json").read_text())["partners"] == json.loads((landing / "truth.json").read_text())["partners"]


def test_stores_serve_current_versions_in_cursor_order(landing, late_landing):
    before, after = stores(landing), stores(late_landing)
    for path, store in after.items():
        records = store.current()
        keys = [(r["updated_at"], *(r[f] for f in store.id_fields)) for r in records]
        assert keys == sorted(keys) and len(set(k[1:] for k in keys)) == len(keys)
        assert before[path].truth() <= store.truth()
    assert len(after["/v1/service-orders"].truth()) > len(before["/v1/service-orders"].truth())
    assert len(after["/v1/claims/status"].truth()) > len(before["/v1/claims/status"].truth())
