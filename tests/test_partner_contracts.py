"""Partner data contracts: loaded and checked, the Great Expectations suite generated from them catches each rule,
every load enforces them (quarantine by rule, one breach per rule and day, an alert per new breach), and their SLA
terms reach the warehouse."""

from __future__ import annotations

import jinja2
import pytest
import yaml
from scipy.stats import poisson

from conftest import ROOT
from orchestration.alerts import alert_store
from orchestration.partners import contracts, loading
from orchestration.partners.contracts import ContractError
from pitwall.duck import connect

ORDERS = contracts.dataset("oem", "service_orders")
GOOD_ORDER = {"order_id": "SO-1", "version": 1, "booking_ref": "bk_1", "vin": "1HGCM82633A004352", "status": "open",
              "service_date": "2026-01-02", "amount": "120.50", "currency": "EUR",
              "created_at": "2026-01-01T08:00:00Z", "updated_at": "2026-01-01T09:00:00.123Z"}


def test_the_contracts_load_with_what_the_connectors_need():
    found = contracts.load_contracts()
    assert set(found) == {"oem", "warranty", "roadside"}
    assert {c.partner_id for c in found.values()} == {"oem_network", "warranty_co", "roadside_co"}
    oem, warranty, roadside = found["oem"], found["warranty"], found["roadside"]
    assert (oem.url_env, oem.api_key_env) == ("PITWALL_PARTNER_OEM_URL", "PITWALL_PARTNER_OEM_API_KEY")
    assert roadside.secret_env == "PITWALL_PARTNER_ROADSIDE_WEBHOOK_SECRET"

    recalls = oem.datasets["recall_campaigns"]
    assert recalls.primary_key == ("campaign_id", "vin", "version") and recalls.id_fields == ("campaign_id", "vin")
    assert (recalls.connector, recalls.endpoint, recalls.updated_field) == ("rest", "/v1/recall-campaigns", "updated_at")
    assert ORDERS.prop("status").valid_values[0] == "open" and ORDERS.prop("vin").pattern.startswith("^[A-HJ")
    assert ORDERS.prop("amount").wire_type == "decimal_string" and not ORDERS.prop("booking_ref").required
    assert warranty.datasets["claims"].connector == "file" and warranty.datasets["claim_status"].connector == "rest"
    assert warranty.datasets["claims"].delivery_date_column == "delivery_date"
    assert roadside.datasets["dispatch_events"].connector == "webhook"
    assert {(s.dataset, s.property) for s in warranty.slas} >= {("claims", "timeOfAvailability"),
                                                                  ("claim_status", "latency")}


def _write_contract(tmp_path, edit) -> None:
    raw = yaml.safe_load((contracts.CONTRACTS_DIR / "oem.odcs.yaml").read_text())
    edit(raw)
    (tmp_path / "oem.odcs.yaml").write_text(yaml.safe_dump(raw))


def _page_size(raw: dict, value) -> None:
    next(p for p in raw["schema"][0]["customProperties"] if p["property"] == "pageSize")["value"] = value


@pytest.mark.parametrize("edit, where, problem", [
    (lambda c: c["schema"][0]["properties"][4].update(logicalType="strnig"), "schema[0].properties[4].logicalType",
     "is not one of"),
    (lambda c: c["schema"][0]["properties"][3]["logicalTypeOptions"].update(pattern="^[A-Z"),
     "schema[0].properties[3](vin).logicalTypeOptions.pattern", "not a regex"),
    (lambda c: c["schema"][0]["properties"][1].update(primaryKeyPosition=3), "schema[0].properties",
     "primaryKeyPosition must run 1..n"),
    (lambda c: c["schema"][0]["properties"][6].update(physicalType="decimal(18,"), "(amount).physicalType",
     "not a DuckDB type"),
    (lambda c: c["slaProperties"][0].update(element="service_order"), "slaProperties[0].element", "not a dataset"),
    (lambda c: c["schema"][1].pop("physicalName"), "schema[1]", "'physicalName' is a required property"),
    (lambda c: c.update(apiVersion="v2.2.0"), "apiVersion", "v3.1.0"),
    (lambda c: _page_size(c, 0), "schema[0].customProperties.pageSize", "not a whole number of records"),
    (lambda c: _page_size(c, "500"), "schema[0].customProperties.pageSize", "not a whole number of records"),
    (lambda c: _page_size(c, 10**6), "schema[0].customProperties.pageSize", "from 1 to 10000"),
])
def test_a_broken_contract_is_refused_naming_the_file_and_field(tmp_path, edit, where, problem):
    _write_contract(tmp_path, edit)
    with pytest.raises(ContractError) as error:
        contracts.load_contracts(tmp_path)
    message = str(error.value)
    assert message.startswith("oem.odcs.yaml: ") and where in message and problem in message, message


# One bad record per rule: how it is broken, and the rule it must be quarantined with.
BROKEN = [
    ("missing:amount", lambda r: {**{k: v for k, v in r.items() if k != "amount"}, "total_amount": r["amount"]}),
    ("type:amount", lambda r: {**r, "amount": 120.5}),
    ("type:version", lambda r: {**r, "version": "1"}),
    ("type:service_date", lambda r: {**r, "service_date": "02/01/2026"}),
    ("type:created_at", lambda r: {**r, "created_at": "2026-01-01T08:00:00"}),  # no zone
    ("type:version", lambda r: {**r, "version": 2**40}),  # does not fit the integer column
    ("required:currency", lambda r: {**r, "currency": None}),
    ("enum:status", lambda r: {**r, "status": "done"}),
    ("pattern:vin", lambda r: {**r, "vin": "1HGCM82633A00435O"}),  # O is not a VIN character
    ("pattern:amount", lambda r: {**r, "amount": "120.12345"}),
    ("range:version", lambda r: {**r, "version": 0}),
]


def test_the_generated_suite_catches_each_rule():
    suite = contracts.gx_suite(ORDERS)
    types_ = {e.expectation_type for e in suite.expectations}
    assert types_ == {"expect_column_to_exist", "expect_column_values_to_not_be_null",
                      "expect_column_values_to_be_in_set", "expect_column_values_to_match_regex",
                      "expect_column_values_to_be_between", "expect_compound_columns_to_be_unique"}
    good = [loading.parse_record(ORDERS, {**GOOD_ORDER, "order_id": f"SO-{i}"}, text_wire=False) for i in range(3)]
    bad = {
        "required:currency": {**good[0], "order_id": "SO-10", "currency": None},
        "enum:status": {**good[0], "order_id": "SO-11", "status": "done"},
        "pattern:vin": {**good[0], "order_id": "SO-12", "vin": "short"},
        "pattern:amount": {**good[0], "order_id": "SO-13", "amount": "1.23456"},
        "range:version": {**good[0], "order_id": "SO-14", "version": 0},
        "unique:order_id+version": {**good[0], "status": "completed"},  # SO-0 v1 again, different values
    }
    frame = loading.typed_frame(ORDERS, [*good, *bad.values()])
    broken = loading.validate_typed(ORDERS, frame)
    assert {i: rule for i, (rule, _) in broken.items()} == {
        0: "unique:order_id+version", **{3 + n: rule for n, rule in enumerate(bad)}}


def alerts() -> list[dict]:
    """The alerts raised so far, through the real alert path (orchestration/alerts, its own file in the data root)."""
    with alert_store() as con:
        rows = con.execute("select rule, subject, status from alerts order by first_fired_at").fetchall()
    return [dict(zip(("rule", "subject", "status"), row)) for row in rows]


def deliveries_count(kind: str | None = None) -> int:
    with alert_store() as con:
        return con.execute("select count(*) from alert_deliveries where kind = coalesce(?, kind)", [kind]).fetchall()[0][0]


def test_every_load_enforces_the_contract(data_root):
    con = connect()
    loading.ensure_tables(con)
    records = [{**GOOD_ORDER, "order_id": "SO-good"}, {**GOOD_ORDER, "order_id": "SO-good"},  # a duplicate
               *({**make(GOOD_ORDER), "order_id": f"SO-bad-{i}"} if rule != "missing:amount"
                 else make({**GOOD_ORDER, "order_id": f"SO-bad-{i}"}) for i, (rule, make) in enumerate(BROKEN))]
    incoming = [loading.Incoming(r, "landing/x.json", i) for i, r in enumerate(records, start=1)]
    result = loading.load_batch(con, ORDERS, incoming, sync_id="s1")
    assert (result.loaded, result.duplicates, result.quarantined) == (1, 1, len(BROKEN))
    quarantined = con.execute(f"select record_id, rule, detail from {loading.QUARANTINE_TABLE}").fetchall()
    assert {(record_id, rule) for record_id, rule, _ in quarantined} == {
        (f"SO-bad-{i}", rule) for i, (rule, _) in enumerate(BROKEN)}
    assert all(detail for _, _, detail in quarantined)
    [(amount, booking_ref)] = con.execute(f"select amount, booking_ref from {ORDERS.physical_name}").fetchall()
    assert (str(amount), booking_ref) == ("120.5000", "bk_1")

    # one breach per rule and day, counting records; an alert for each new breach only
    breaches = dict(con.execute(f"select rule, records from {loading.BREACHES_TABLE}").fetchall())
    assert breaches == {"missing:amount": 1, "type:amount": 1, "type:version": 2, "type:service_date": 1,
                        "type:created_at": 1, "required:currency": 1, "enum:status": 1, "pattern:vin": 1,
                        "pattern:amount": 1, "range:version": 1}
    assert sorted(a["subject"] for a in alerts()) == sorted(f"oem/service_orders/{rule}" for rule in breaches)
    assert {a["rule"] for a in alerts()} == {loading.ALERT_RULE} and result.alerts

    # a replay adds nothing; another bad record of a known rule counts into its breach without a new alert
    again = loading.load_batch(con, ORDERS, incoming, sync_id="s2")
    assert (again.loaded, again.quarantined, again.duplicates) == (0, 0, len(records))
    late = loading.load_batch(con, ORDERS, [loading.Incoming({**GOOD_ORDER, "order_id": "SO-x", "status": "?"},
                                                              "landing/y.json", 1)], sync_id="s3")
    assert late.quarantined == 1 and late.new_breaches == []
    assert con.execute(f"select records from {loading.BREACHES_TABLE} where rule = 'enum:status'").fetchall() == [(2,)]
    assert len(alerts()) == len(breaches)
    assert deliveries_count() == len(breaches)


def test_partner_tables_are_the_contract_columns_plus_lineage():
    con = connect()
    loading.ensure_tables(con)
    for dataset in contracts.all_datasets():
        columns = [r[0] for r in con.execute(f"describe {dataset.physical_name}").fetchall()]
        extra = ["delivery_date"] if dataset.name == "claims" else []
        assert columns == [*dataset.columns, *extra, "landing_file", "line_no", "sync_id", "loaded_at"]
    con.execute("drop table partner_oem_service_orders")
    con.execute("create table partner_oem_service_orders (order_id varchar)")  # an older shape
    with pytest.raises(loading.PartnerTableMismatch, match="partner_oem_service_orders has columns"):
        loading.ensure_tables(con)


def test_contract_tables_are_written_idempotently():
    con = connect()
    # a warehouse written before volumePerDay.significance existed gets the column
    con.execute("""create table partner_contract_datasets (partner varchar not null, partner_id varchar not null,
        dataset varchar not null, physical_name varchar not null, volume_date_field varchar, volume_min_ratio double,
        volume_max_ratio double, volume_min_history_days integer, amount_tolerance_abs double,
        amount_tolerance_rel double, primary key (partner, dataset))""")
    assert contracts.write_contract_tables(con) == contracts.write_contract_tables(con) == (5, 10)
    datasets = {r[0]: r[1:] for r in con.execute(
        "select partner || '.' || dataset, partner_id, physical_name, volume_date_field, volume_min_ratio, "
        "volume_max_ratio, volume_min_history_days, volume_significance, amount_tolerance_abs, amount_tolerance_rel "
        "from partner_contract_datasets").fetchall()}
    assert datasets["oem.service_orders"] == ("oem_network", "partner_oem_service_orders", "created_at", 0.4, 2.5, 3,
                                              0.01, 0.5, 0.01)
    assert datasets["roadside.dispatch_events"][5:7] == (7, 0.01)
    assert datasets["warranty.claims"][2] == "delivery_date"
    assert datasets["oem.recall_campaigns"][3:] == (None,) * 6
    slas = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
        "select partner, dataset, property, value, value_text, unit from partner_contract_slas").fetchall()}
    assert slas[("warranty", "claims", "timeOfAvailability")] == (None, "06:00", "UTC")
    assert slas[("oem", "service_orders", "latency")] == (800.0, "800", "ms")
    assert slas[("roadside", "dispatch_events", "freshness")] == (5.0, "5", "min")


def test_the_count_aware_volume_bound_is_the_poisson_quantile_of_scipy():
    """The dbt macro behind a dataset's expected daily volume (int_partner_dataset_daily), against scipy."""
    macros = jinja2.Environment().from_string((ROOT / "dbt_project/macros/partners.sql").read_text()).module
    means = [0.0, 0.5, 1.0, 3.5, 8.0, 30.0, 1000.0, 123456.5]
    probabilities = [0.001, 0.01, 0.5, 0.99, 0.999]
    con = connect()
    rows = con.execute(f"""select mean, p, {macros.poisson_quantile("mean", "p")} as quantile
                           from unnest(?::double[]) as m(mean), unnest(?::double[]) as q(p)""",
                       [means, probabilities]).fetchall()
    assert len(rows) == len(means) * len(probabilities)
    for mean, p, quantile in rows:
        assert quantile == (poisson.ppf(p, mean) if mean > 0 else 0), (mean, p)
    # a small day is not a breach by chance: 3 orders against a median of 8 (4% of such days) is within the
    # lower bound of the oem contract (significance 0.01), 0 orders is not
    (bound,) = con.execute(f"select {macros.poisson_quantile('8.0', '0.01')}").fetchall()[0]
    assert 0 < bound <= 3


def test_sla_breaches_are_recorded_from_the_sla_checks_once_each(data_root):
    from datetime import date

    from orchestration.partners import breaches

    con = connect()
    con.execute("""create table int_partner_sla_checks as select * from (values
        ('warranty', 'claims', date '2026-01-05', 'volume', 0.0, 4.0, 30.0, 'records', false),
        ('warranty', 'claims', date '2026-01-06', 'volume', 9.0, 4.0, 30.0, 'records', true),
        ('roadside', 'dispatch_events', date '2026-01-07', 'latency', 42.5, null, 5.0, 'min', false),
        ('oem', 'service_orders', date '2026-01-07', 'generalAvailability', 0.9, 0.95, null, 'ratio', false),
        ('oem', 'service_orders', date '2026-01-08', 'frequency', 3.0, null, null, 'syncs', null),
        ('oem', 'service_orders', date '2026-01-09', 'latency', null, null, 800.0, 'ms', null)
    ) t(partner, dataset, day, sla, observed, threshold_min, threshold_max, unit, is_ok)""")
    seen, fired = breaches.record_sla_breaches(con)
    assert seen == 3 and len(fired) == 3
    rows = con.execute(f"select breach_id, partner, dataset, breach_kind, rule, day, observed, threshold, records "
                       f"from {loading.BREACHES_TABLE} order by day, partner").fetchall()
    assert [r[1:] for r in rows] == [
        ("warranty", "claims", "volume", "volume", date(2026, 1, 5), 0.0, 4.0, 0),
        ("oem", "service_orders", "availability", "generalAvailability", date(2026, 1, 7), 0.9, 0.95, None),
        ("roadside", "dispatch_events", "latency", "latency", date(2026, 1, 7), 42.5, 5.0, None)]
    assert rows[0][0] == loading.breach_id("warranty", "claims", "volume", "volume", date(2026, 1, 5))
    assert {a["rule"] for a in alerts()} == {breaches.ALERT_RULE}
    assert breaches.record_sla_breaches(con) == (3, [])  # the same breaches again: updated, no new alert
    assert len(alerts()) == 3
    # warranty's volume was met again on the next day: its alert is resolved, with a resolve message
    status = {a["subject"]: a["status"] for a in alerts()}
    assert status == {"warranty/claims/volume": "resolved", "oem/service_orders/generalAvailability": "firing",
                      "roadside/dispatch_events/latency": "firing"}
    assert deliveries_count("resolve") == 1


def test_the_staging_models_dbt_contracts_agree_with_the_data_contracts():
    """Each partner table's staging model enforces, as a dbt contract, the ODCS columns with the same
    types (compared as DuckDB resolves them) and the same enums."""
    import duckdb
    import yaml

    from conftest import ROOT

    models = {m["name"]: m for m in yaml.safe_load(
        (ROOT / "dbt_project" / "models" / "partners" / "_partners_staging.yml").read_text())["models"]}
    con = duckdb.connect()

    def resolved(type_name: str) -> str:
        return con.execute(f"select typeof(cast(null as {type_name}))").fetchall()[0][0]

    for dataset in contracts.all_datasets():
        model = models[f"stg_{dataset.physical_name}"]
        assert model["config"]["contract"]["enforced"] is True
        columns = {c["name"]: c for c in model["columns"]}
        for prop in dataset.properties:
            assert prop.name in columns, (model["name"], prop.name)
            assert resolved(columns[prop.name]["data_type"]) == resolved(prop.physical_type), (model["name"], prop.name)
            if prop.valid_values:
                accepted = [t["accepted_values"]["arguments"]["values"] for t in columns[prop.name].get("data_tests", [])
                            if isinstance(t, dict) and "accepted_values" in t]
                assert accepted and set(accepted[0]) == set(prop.valid_values), (model["name"], prop.name)
