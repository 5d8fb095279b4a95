"""The generic REST partner connector (orchestration.partners.rest) against the simulated OEM API: a real HTTP
server on 127.0.0.1, a real DuckDB."""

from __future__ import annotations

import json
import time
from collections import Counter

import pytest

from orchestration.partners import contracts, loading, rest
from pitwall import paths
from pitwall.duck import connect
from simulator.partners.api import DEFAULT_API_KEY as PARTNER_KEY
from simulator.partners.api import PartnerApiServer
from simulator.partners.oem_api import DEFAULT_API_KEY, Faults, OemApiServer, OemWorld, serve

OEM = contracts.contract("oem")
ORDERS = contracts.dataset("oem", "service_orders")

# What the connector calls each kind of drift the simulator injects.
DRIFT_RULE = {"rename_amount": "missing:amount", "amount_number": "type:amount", "version_string": "type:version"}
FAST = dict(timeout=0.3, backoff_initial=0.02, backoff_max=0.2, max_attempts=10)


@pytest.fixture
def configured(monkeypatch, data_root):
    def configure(base_url: str, api_key: str = DEFAULT_API_KEY) -> None:
        monkeypatch.setenv(OEM.url_env, base_url)
        monkeypatch.setenv(OEM.api_key_env, api_key)
    return configure


def loaded_keys() -> list[tuple[str, int]]:
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        return [tuple(r) for r in con.execute(f"select order_id, version from {ORDERS.physical_name}").fetchall()]
    finally:
        con.close()


def quarantined() -> dict[tuple[str, int], str]:
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        rows = con.execute(f"select record_id, record_version, rule, landing_file from {loading.QUARANTINE_TABLE} "
                           f"where partner = 'oem' and dataset = 'service_orders'").fetchall()
    finally:
        con.close()
    out = {}
    for order_id, version, rule, landing_file in rows:
        assert (paths.data_dir() / landing_file).is_file()
        key = (order_id, int(version))
        assert key not in out, f"{key} quarantined twice"
        out[key] = rule
    return out


def sync_orders(**options) -> rest.SyncResult:
    return rest.sync("oem", "service_orders", **options)


def test_faulty_api_converges_on_the_truth(configured, data_root):
    world = OemWorld(seed=3, n_orders=300)
    faults = Faults(seed=11, rate_limit=0.07, retry_after=(0, 1), server_error_burst=0.06, burst_length=3,
                    timeout=0.06, timeout_sleep=0.8, truncate=0.07, duplicate=0.12, drift_share=0.06)
    with OemApiServer(world, faults) as server:
        configured(server.base_url)
        first = sync_orders(page_size=15, **FAST)
        assert first.complete and first.pages >= 10
        assert world.advance() > 0
        second = sync_orders(page_size=15, **FAST)
        assert second.complete
        stats = server.stats
        truth, drifted = server.truth(), server.drifted()

    assert stats.faulted / stats.requests >= 0.30, (stats.faulted, stats.requests, stats.faults)
    assert {"429", "503", "timeout", "truncate", "duplicate"} <= set(stats.faults)
    retries = first.retries + second.retries
    assert {"rate_limited", "server_error", "timeout", "unparsable"} <= set(retries)
    assert set(DRIFT_RULE) <= set(drifted.values()) and any(v > 1 for _, v in drifted)

    keys = loaded_keys()
    assert len(keys) == len(set(keys)), "a key loaded twice"
    assert set(keys) == truth - set(drifted)
    assert any(v > 1 for _, v in keys), "the late updates were picked up"
    assert quarantined() == {k: DRIFT_RULE[kind] for k, kind in drifted.items()}
    assert first.records_loaded + second.records_loaded == len(keys)
    assert first.quarantined + second.quarantined == len(drifted)
    assert first.duplicates_skipped + second.duplicates_skipped > 0  # injected duplicates and the overlap

    # every page landed as raw JSON before it was parsed; truncated bodies were set aside
    landed = list((data_root / "landing" / "partners" / "oem" / "service_orders").glob("dt=*/*.json"))
    assert len(landed) == first.pages + second.pages
    assert all("data" in json.loads(p.read_text()) for p in landed)
    assert list((data_root / "landing" / "partners" / "oem" / "service_orders").glob("dt=*/*.rejected"))
    state = json.loads((data_root / "partners" / "oem" / "service_orders" / "state.json").read_text())
    assert state["in_progress"] is None and state["high_water"]["updated_at"]

    # every HTTP attempt is logged (the SLA marts' availability and latency), faults by what the client saw
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        calls = dict(con.execute(f"select outcome, count(*) from {loading.API_CALLS_TABLE} group by outcome").fetchall())
        breaches = dict(con.execute(f"""select rule, records from {loading.BREACHES_TABLE}
                                        where partner = 'oem' and dataset = 'service_orders' and breach_kind = 'schema'
                                        """).fetchall())
    finally:
        con.close()
    assert sum(calls.values()) == stats.requests
    assert {"ok", "rate_limited", "server_error", "timeout", "unparsable"} <= set(calls)
    assert calls["ok"] == first.pages + second.pages
    # one breach per rule and day, counting the records that broke it
    assert breaches == dict(Counter(DRIFT_RULE[kind] for kind in drifted.values()))


def test_each_page_asks_for_the_contracts_page_size_else_a_hundred(configured, data_root):
    """The contract's pageSize (the API's documented maximum) is each page's ``limit``; without one, 100."""
    import dataclasses
    import math

    assert ORDERS.page_size == 500
    world = OemWorld(seed=5, n_orders=1_200)
    with OemApiServer(world, None) as server:
        configured(server.base_url)
        by_contract = sync_orders(**FAST)
        unsized = dataclasses.replace(ORDERS, custom={k: v for k, v in ORDERS.custom.items() if k != "pageSize"})
        (data_root / "partners" / "oem" / "service_orders" / "state.json").unlink()  # sync it all again
        by_default = rest.sync_dataset(unsized, **FAST)
        current = len(server.truth())
    assert by_contract.complete and by_default.complete
    assert by_contract.records_loaded == current and by_default.records_loaded == 0  # all loaded already
    assert by_contract.pages == math.ceil(by_contract.records_received / 500)
    assert by_default.pages == math.ceil(by_default.records_received / 100)
    assert by_default.records_received == by_contract.records_received


def test_a_crashed_sync_resumes_from_its_cursor(configured, data_root):
    world = OemWorld(seed=5, n_orders=200)
    faults = Faults(seed=2, duplicate=0.2, truncate=0.1, drift_share=0.05)

    class Crash(Exception):
        pass

    def crash_after_page(k):
        def hook(page_no):
            if page_no == k:
                raise Crash(f"killed after page {page_no}")
        return hook

    with OemApiServer(world, faults) as server:
        configured(server.base_url)
        with pytest.raises(Crash):
            sync_orders(page_size=20, on_page_loaded=crash_after_page(3), **FAST)
        state = json.loads((data_root / "partners" / "oem" / "service_orders" / "state.json").read_text())
        assert state["in_progress"]["next_page"] == 4 and state["in_progress"]["cursor"]
        loaded_before = len(loaded_keys())
        assert 0 < loaded_before < len(server.truth())

        # a second interruption, the other way: stop after 2 more pages
        paused = sync_orders(page_size=20, max_pages=2, **FAST)
        assert paused.resumed and not paused.complete and paused.pages == 2

        requests_before = server.stats.requests
        resumed = sync_orders(page_size=20, **FAST)
        resume_requests = server.stats.requests - requests_before
        assert resumed.resumed and resumed.complete
        truth, drifted = server.truth(), server.drifted()

    keys = loaded_keys()
    assert len(keys) == len(set(keys))
    assert set(keys) == truth - set(drifted)
    assert set(quarantined()) == set(drifted)

    # a fresh full sync of the same world costs more requests than the resumed tail
    with OemApiServer(world, faults) as fresh_server, pytest.MonkeyPatch.context() as mp:
        fresh_root = data_root.parent / "fresh"
        (fresh_root / "landing").mkdir(parents=True)
        mp.setenv("PITWALL_DATA_DIR", str(fresh_root))
        mp.setenv(OEM.url_env, fresh_server.base_url)
        full = sync_orders(page_size=20, **FAST)
        assert full.complete and set(loaded_keys()) == set(keys)
        assert resume_requests < fresh_server.stats.requests


def test_retry_after_is_honored(configured, data_root):
    world = OemWorld(seed=1, n_orders=10)
    with OemApiServer(world, Faults(script=("429",), retry_after=(1,))) as server:
        configured(server.base_url)
        started = time.monotonic()
        result = sync_orders(page_size=50, backoff_initial=0.01, backoff_max=0.05)
        elapsed = time.monotonic() - started
        log = list(server.stats.log)
    assert result.complete and result.retries == {"rate_limited": 1}
    assert [outcome for _, outcome in log] == ["429", "ok"]
    assert log[1][0] - log[0][0] >= 1.0
    assert elapsed >= 1.0
    assert len(loaded_keys()) == 10


def test_gives_up_with_a_clear_error(configured, data_root):
    world = OemWorld(seed=1, n_orders=10)
    with OemApiServer(world, Faults(script=("503",) * 10)) as server:
        configured(server.base_url)
        with pytest.raises(rest.PartnerSyncError, match="after 3 attempts.*server_error"):
            sync_orders(max_attempts=3, backoff_initial=0.01, backoff_max=0.02)
        assert server.stats.requests == 3
    with serve(world) as url:
        configured(url, api_key="wrong")
        with pytest.raises(rest.PartnerSyncError, match="401"):
            sync_orders()


def test_not_configured_does_nothing(monkeypatch, data_root, caplog):
    monkeypatch.delenv(OEM.url_env, raising=False)
    monkeypatch.delenv(OEM.api_key_env, raising=False)
    with caplog.at_level("INFO", logger=rest.__name__):
        result = sync_orders()
    assert not result.configured and "not configured" in result.message
    assert result.pages == result.records_loaded == 0
    assert [r.getMessage() for r in caplog.records if "not configured" in r.getMessage()]
    assert not paths.warehouse_path().exists()
    assert [p for p in data_root.rglob("*") if p.is_file()] == []


def test_the_dagster_asset_syncs_a_configured_partner_and_skips_a_missing_one(configured, monkeypatch, data_root):
    import dagster as dg

    from orchestration.partners.assets import CONFORMS, PARTNER_ASSETS

    orders_asset = PARTNER_ASSETS[ORDERS.physical_name]
    monkeypatch.delenv(OEM.url_env, raising=False)
    skipped = dg.materialize([orders_asset])
    assert skipped.success
    assert loaded_keys() == []  # the table exists, empty: downstream models can read it

    world = OemWorld(seed=5, n_orders=40)
    with OemApiServer(world, Faults(seed=1, drift_share=0.1)) as server:
        configured(server.base_url)
        run = dg.materialize([orders_asset])
        truth, drifted = server.truth(), server.drifted()
    assert run.success and drifted
    assert sorted(loaded_keys()) == sorted(truth - set(drifted))
    [materialization] = [e.event_specific_data.materialization for e in run.get_asset_materialization_events()]
    assert materialization.metadata["records_loaded"].value == len(truth) - len(drifted)
    [check] = run.get_asset_check_evaluations()
    assert check.check_name == CONFORMS and not check.passed
    assert sum(check.metadata["by_rule"].value.values()) == len(drifted)


class TableStore:
    """A minimal API store: records with compound ids, many sharing an updated_at (the cursor must break ties)."""

    def __init__(self, id_fields, version_field, amount_field, records):
        self.id_fields, self.version_field, self.amount_field = id_fields, version_field, amount_field
        self.versions = {}
        self.published = set()
        for record in records:
            self.publish(record)

    def publish(self, record):
        self.versions[tuple(record[f] for f in self.id_fields)] = record
        self.published.add((*(record[f] for f in self.id_fields), record[self.version_field]))

    def current(self):
        return sorted(self.versions.values(), key=lambda r: (r["updated_at"], *(r[f] for f in self.id_fields)))

    def truth(self):
        return set(self.published)


def recall(campaign: int, vin_no: int, version: int = 1, hour: int = 8) -> dict:
    return {"campaign_id": f"RC-{campaign}", "vin": f"1HGCM82633A{vin_no:06d}", "version": version,
            "component": "airbag inflator", "severity": "high", "remedy_status": "open" if version == 1 else "remedied",
            "published_at": "2026-01-02T00:00:00Z", "updated_at": f"2026-01-03T{hour:02d}:00:00Z"}


def claim_status(claim: int, version: int = 1, hour: int = 8) -> dict:
    return {"partner_claim_id": f"WC-{claim:04d}", "record_version": version,
            "adjudication_status": "in_review" if version == 1 else "approved",
            "approved_amount": f"{claim}.50", "updated_at": f"2026-01-03T{hour:02d}:00:00Z"}


def test_the_generic_connector_syncs_other_contract_datasets(monkeypatch, data_root):
    recalls = TableStore(("campaign_id", "vin"), "version", None,
                         [recall(c, v, hour=8 + v % 2) for c in (1, 2, 3) for v in range(12)])
    statuses = TableStore(("partner_claim_id",), "record_version", "approved_amount",
                          [claim_status(c, hour=8 + c % 3) for c in range(40)])
    recall_set = contracts.dataset("oem", "recall_campaigns")
    status_set = contracts.dataset("warranty", "claim_status")
    faults = Faults(seed=4, rate_limit=0.1, retry_after=(0,), server_error_burst=0.05, burst_length=2, duplicate=0.2,
                    drift_share=0.1)
    with PartnerApiServer({recall_set.endpoint: recalls, status_set.endpoint: statuses}, faults) as server:
        for contract in (OEM, contracts.contract("warranty")):
            monkeypatch.setenv(contract.url_env, server.base_url)
            monkeypatch.setenv(contract.api_key_env, PARTNER_KEY)
        for sync_round in range(2):
            for dataset in (recall_set, status_set):
                result = rest.sync_dataset(dataset, page_size=7, **FAST)
                assert result.complete and result.pages > 1
            # late updates: new versions, later
            for n in range(3, 8):
                recalls.publish(recall(2, n, version=2, hour=12))
                statuses.publish(claim_status(n, version=2, hour=12))
        drifted = {path: server.drifted(path) for path in server.endpoints}
        truth = {path: server.truth(path) for path in server.endpoints}
        requests = server.stats.by_endpoint

    con = connect(paths.warehouse_path(), read_only=True)
    try:
        for dataset in (recall_set, status_set):
            keys = con.execute(f"select {', '.join(dataset.primary_key)} from {dataset.physical_name}").fetchall()
            expected = truth[dataset.endpoint] - set(drifted[dataset.endpoint])
            assert len(keys) == len(set(keys)) and set(keys) == expected
            assert any(k[-1] == 2 for k in keys), "the late version was picked up"
            rules = dict(con.execute(
                f"select record_id || '|' || record_version, rule from {loading.QUARANTINE_TABLE} where dataset = ?",
                [dataset.name]).fetchall())
            assert set(rules) == {"|".join(map(str, k)) for k in drifted[dataset.endpoint]}
            calls = con.execute(f"select count(*), count(distinct endpoint), min(endpoint) from "
                                f"{loading.API_CALLS_TABLE} where dataset = ?", [dataset.name]).fetchall()
            assert calls == [(requests[dataset.endpoint], 1, dataset.endpoint)]
    finally:
        con.close()
    assert {"type:record_version", "type:approved_amount", "missing:approved_amount"} & set(rules.values())
