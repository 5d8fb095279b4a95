"""Partners end to end on the simulated world (`make demo`'s commands: the pipeline under the partners'
simulated API): every planted reconciliation break found and nothing else, SLA breaches on exactly the
planted days with an alert each, the booking funnel tied to the app's bookings; then the partners' late
updates, re-synced, resolve exactly the breaks they fix."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, subprocess_env
from pitwall.duck import connect

pytestmark = pytest.mark.slow


def break_keys(breaks) -> set[tuple[str, str, str]]:
    """(partner, class, record id): a break's record is its partner transaction, a missing_partner's the internal one."""
    return {(b["partner"], b["class"], b["internal_id"] if b["class"] == "missing_partner" else b["partner_txn_id"])
            for b in breaks}


def open_breaks(con) -> set[tuple[str, str, str]]:
    return set(con.execute("select partner, break_class, record_id from mart_reconciliation_breaks "
                           "where status = 'open'").fetchall())


def test_reconciliation_finds_exactly_the_planted_breaks(con, world):
    truth = world[1]["partners"]
    found = open_breaks(con)
    planted = break_keys(truth["breaks"])
    assert {c for _, c, _ in planted} == {"missing_internal", "missing_partner", "amount_mismatch",
                                          "status_mismatch", "duplicate"}
    true_positives = len(found & planted)
    precision, recall = true_positives / len(found), true_positives / len(planted)
    assert (precision, recall) == (1.0, 1.0), (sorted(found - planted), sorted(planted - found))
    # the fallback (vin, date ± 1 day, amount within tolerance) matched what it should, and no near miss
    fallback = set(con.execute("select partner, partner_txn_id, internal_id from int_reconciliation_matches "
                               "where match_method = 'fallback'").fetchall())
    assert fallback == {(m["partner"], m["partner_txn_id"], m["internal_id"]) for m in truth["fallback_matches"]}
    assert not fallback & {(m["partner"], m["partner_txn_id"], m["internal_id"]) for m in truth["near_misses"]}
    # the daily summary adds up to the same breaks
    (total,) = con.execute("select sum(open_breaks) from mart_reconciliation_daily").fetchall()[0]
    assert total == len(planted)


def measured_api_breaches(con) -> set[tuple[str, str, str, str]]:
    """SLAs the connector's own API calls broke: the simulator plants no API fault in the demo world, but the calls'
    latency is the machine's (a loaded 2-core CI runner has stalled one past the contract's 800 ms). Computed here
    with numpy from the calls as logged (p95 linear, the share not failed), against the contracts' thresholds."""
    calls: dict[tuple[str, str, str], list[tuple[float | None, str]]] = {}
    for partner, dataset, day, latency_ms, outcome in con.execute(
            "select partner, dataset, cast(requested_at as date), latency_ms, outcome from partner_api_calls").fetchall():
        calls.setdefault((partner, dataset, day.isoformat()), []).append((latency_ms, outcome))
    slas = con.execute("select partner, dataset, property, value from partner_contract_slas "
                       "where property = 'generalAvailability' or (property = 'latency' and unit = 'ms')").fetchall()
    breaches = set()
    for (partner, dataset, day), day_calls in calls.items():
        for _, _, sla, threshold in (s for s in slas if s[:2] == (partner, dataset)):
            if sla == "latency":
                latencies = [ms for ms, _ in day_calls if ms is not None]
                broken = bool(latencies) and float(np.quantile(latencies, 0.95)) > threshold
            else:
                failed = sum(o in ("rate_limited", "server_error", "timeout") for _, o in day_calls)
                broken = 1 - failed / len(day_calls) < threshold
            if broken:
                breaches.add((partner, dataset, day, sla))
    return breaches


def test_sla_breaches_are_flagged_on_the_planted_days_and_alerted(con, world):
    planted = {(b["partner"], b["dataset"], b["day"], b["sla"]) for b in world[1]["partners"]["sla_breaches"]}
    expected = planted | measured_api_breaches(con)
    flagged = {(p, d, day.isoformat(), s) for p, d, day, s in con.execute(
        "select partner, dataset, day, sla from int_partner_sla_checks where not is_ok").fetchall()}
    assert flagged == expected
    breached_days = {(p, day.isoformat()) for p, day in con.execute(
        "select partner, day from mart_partner_sla_daily where not sla_met").fetchall()}
    assert breached_days == {(p, day) for p, _, day, _ in expected}
    recorded = {(p, d, day.isoformat(), rule) for p, d, day, rule in con.execute(
        "select partner, dataset, day, rule from partner_contract_breaches").fetchall()}
    assert recorded == expected  # no schema breach: the demo's partners send clean records
    # one alert per breached SLA, each queued for delivery (no webhook URL in the test world: they wait)
    # alerts live in their own file beside the warehouse (orchestration/alerts/store.py)
    alerts_con = connect(world[0] / "alerts.duckdb", read_only=True)
    try:
        alerts = set(alerts_con.execute("select subject from alerts where rule = 'partner_sla_breach'").fetchall())
        waiting = alerts_con.execute("select count(*) from alert_deliveries where status = 'pending'").fetchall()[0][0]
    finally:
        alerts_con.close()
    assert alerts == {(f"{p}/{d}/{s}",) for p, d, _, s in expected}
    assert waiting >= len(alerts)


def test_booking_funnel_follows_the_apps_bookings(con, world):
    truth = world[1]["partners"]["bookings"]
    funnel = {p: steps for p, *steps in con.execute("""
        select partner_id, sum(widget_sessions_opened), sum(slots_chosen), sum(bookings_created),
               sum(confirmed_by_partner), sum(visits_completed)
        from mart_partner_booking_funnel group by partner_id""").fetchall()}
    assert {p: steps[2] for p, steps in funnel.items()} == truth
    for partner, steps in funnel.items():
        assert steps == sorted(steps, reverse=True), (partner, steps)  # each step a subset of the one before
    assert funnel["tire_depot"][3] == 0 and funnel["oem_network"][3] > 0  # no feed, no partner confirmation
    # every booking the app logged is an internal booking with the same id
    logged = con.execute("""select count(*) from stg_events where event_name = 'booking_created'
                            and json_extract_string(properties, '$.booking_id') not in
                                (select booking_id from fct_partner_bookings)""").fetchall()[0][0]
    assert logged == 0
    follow_ups = con.execute("select count(*) from fct_partner_bookings where is_follow_up").fetchall()[0][0]
    assert follow_ups > 0


def test_late_updates_resolve_exactly_the_breaks_they_fix(world, tmp_path):
    """Phase 2 on a copy of the world: the partners publish late versions (API), a correction file and late
    webhook lines; re-syncing the partners and rebuilding what depends on them resolves exactly the planted
    breaks marked resolved_by_late_update, keeps the others open, and opens none."""
    root = tmp_path / "data"
    shutil.copytree(world[0], root, ignore=shutil.ignore_patterns("*.tmp*"))
    env = {**subprocess_env(), "PITWALL_DATA_DIR": str(root)}
    world_json = str(root / "landing" / "partners" / "world.json")
    subprocess.run([sys.executable, "-m", "simulator.partners", "late-updates", "--world", world_json,
                    "--landing", str(root / "landing")], cwd=ROOT, env=env, check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "simulator.partners", "run", "--world", world_json, "--",
                          str(Path(sys.executable).parent / "dagster"), "asset", "materialize",
                          "--select", "group:partners+", "-m", "orchestration.definitions"],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    truth = world[1]["partners"]
    fixed = break_keys(b for b in truth["breaks"] if b["resolved_by_late_update"])
    kept = break_keys(b for b in truth["breaks"] if not b["resolved_by_late_update"])
    assert fixed and kept
    con = connect(root / "warehouse.duckdb", read_only=True)
    try:
        assert open_breaks(con) == kept
        resolved = set(con.execute("select partner, break_class, record_id from mart_reconciliation_breaks "
                                   "where status = 'resolved' and resolved_at > first_seen_at").fetchall())
        assert resolved == fixed
        # the late versions loaded once each; the correction file and the late lines loaded once
        versions = con.execute("select count(*) - count(distinct (order_id, version)) "
                               "from partner_oem_service_orders").fetchall()[0][0]
        assert versions == 0
        new_sla = {(p, d, day.isoformat(), s) for p, d, day, s in con.execute(
            "select partner, dataset, day, sla from int_partner_sla_checks where not is_ok").fetchall()}
        assert new_sla == ({(b["partner"], b["dataset"], b["day"], b["sla"]) for b in truth["sla_breaches"]}
                           | measured_api_breaches(con))
    finally:
        con.close()


def test_an_open_oem_recall_suppresses_the_upsell_it_covers(con):
    """brake_service is not offered while the vehicle has an open brake recall (the OEM fixes it free);
    the open recalls are recomputed here from the partner's raw versions, not from staging."""
    import polars as pl

    versions = pl.DataFrame(con.execute("select campaign_id, vin, version, component, remedy_status "
                                        "from partner_oem_recall_campaigns").fetchall(),
                            schema=["campaign_id", "vin", "version", "component", "remedy_status"], orient="row")
    latest = versions.sort("version").group_by("campaign_id", "vin").last()
    open_brake = set(latest.filter(pl.col("remedy_status").is_in(["open", "remedy_available"])
                                   & pl.col("component").str.to_lowercase().str.contains("brake"))["vin"])
    assert open_brake
    reasons = con.execute("select vin, ineligible_reason from int_nba_candidates "
                          "where action_id = 'brake_service'").fetchall()
    suppressed = {vin for vin, reason in reasons if reason == "open_recall_handled_by_oem"}
    assert suppressed and suppressed <= open_brake
    # a recalled vehicle is ruled out one way or another (an eligibility rule may come first)
    assert all(reason is not None for vin, reason in reasons if vin in open_brake)
    offered = con.execute("select count(*) from recommendations where action_id = 'brake_service' and vin in "
                          "(select unnest(?))", [sorted(open_brake)]).fetchall()[0][0]
    assert offered == 0
