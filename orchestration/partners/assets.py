"""Partner datasets in the asset graph: one asset per contract dataset, keyed ["partners", <physicalName>], and
``partner_contracts`` writing the contracts' SLA terms. The work is in the connectors (rest.py, files.py,
webhooks.py); an asset only runs one and reports. A partner that is not configured (its URL or webhook secret
env var unset) is skipped with one log line and its table exists empty, so the rest of the pipeline runs.

Each dataset asset carries the check ``conforms_to_contract`` (warn): it fails when this run quarantined
records, with the rules they broke, or when a REST sync stopped before its last page (and says why)."""

import dagster as dg

from orchestration.dbt.assets import WAREHOUSE_POOL
from pitwall import paths
from pitwall.duck import connect

from . import breaches, contracts, files, loading, rest, webhooks

CONTRACT_TABLES = ("partner_contract_datasets", "partner_contract_slas")
CONFORMS = "conforms_to_contract"
KINDS = {"rest": {"http", "duckdb"}, "file": {"csv", "duckdb"}, "webhook": {"json", "duckdb"}}
CONNECTOR_DOC = {
    "rest": "incremental REST sync (cursor pagination, retries honoring Retry-After, every call logged to "
            "partner_api_calls), raw pages landed before parsing",
    "file": "daily CSV drops loaded once each (file ledger; a rewritten file is an error), delivery_date = dt folder",
    "webhook": "signed webhook lines (HMAC-SHA256; bad signatures quarantined), new lines only (file ledger), "
               "redeliveries deduplicated by event_id",
}


def asset_key(dataset: contracts.Dataset) -> dg.AssetKey:
    return dg.AssetKey(["partners", dataset.physical_name])


@dg.multi_asset(
    name="partner_contracts",
    specs=[dg.AssetSpec(["partners", table], group_name="partners", kinds={"yaml", "duckdb"},
                        description=f"{table}: the SLA terms of contracts/partners/*.odcs.yaml")
           for table in CONTRACT_TABLES],
    pool=WAREHOUSE_POOL,  # writes warehouse.duckdb
)
def partner_contracts(context: dg.AssetExecutionContext):
    con = connect(paths.warehouse_path())
    try:
        n_datasets, n_slas = contracts.write_contract_tables(con)
    finally:
        con.close()
    context.log.info(f"partner contracts: {n_datasets} datasets, {n_slas} SLA terms written")
    yield dg.MaterializeResult(asset_key=["partners", CONTRACT_TABLES[0]], metadata={"rows": n_datasets})
    yield dg.MaterializeResult(asset_key=["partners", CONTRACT_TABLES[1]], metadata={"rows": n_slas})


@dg.asset(
    key=["partners", "partner_sla_breaches"],
    deps=[dg.AssetKey(["mart_partner_sla_daily"]), dg.AssetKey([breaches.SLA_CHECKS])],
    group_name="partners",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,  # writes warehouse.duckdb
    description="SLA breaches: each partner dataset's SLA not met on a day (dbt's int_partner_sla_checks) upserted "
                "into partner_contract_breaches; an alert for each new one",
)
def partner_sla_breaches(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    con = connect(paths.warehouse_path())
    try:
        seen, fired = breaches.record_sla_breaches(con)
    finally:
        con.close()
    return dg.MaterializeResult(metadata={"breaches": seen, "alerts_fired": len(fired)})


def _run_connector(dataset: contracts.Dataset):
    if dataset.connector == "rest":
        return rest.sync_dataset(dataset)
    if dataset.connector == "file":
        return files.load_dataset(dataset)
    return webhooks.load_dataset(dataset)


def _metadata(result) -> dict:
    if isinstance(result, rest.SyncResult):
        return {"complete": result.complete, "stopped": result.stopped, "pages": result.pages,
                "requests": result.requests,
                "records_loaded": result.records_loaded, "duplicates_skipped": result.duplicates_skipped,
                "quarantined": result.quarantined, "retries": dict(result.retries),
                "seconds": round(result.seconds, 2), "high_water": str(result.high_water)}
    b = result.batch
    return {"files_seen": result.files_seen, "files_loaded": result.files_loaded,
            "records_loaded": b.loaded, "duplicates_skipped": b.duplicates, "quarantined": b.quarantined}


def dataset_asset(dataset: contracts.Dataset) -> dg.AssetsDefinition:
    key = asset_key(dataset)

    @dg.asset(
        key=key,
        group_name="partners",
        kinds=KINDS[dataset.connector],
        pool=WAREHOUSE_POOL,  # writes warehouse.duckdb
        check_specs=[dg.AssetCheckSpec(CONFORMS, asset=key, description=(
            "No record of this run broke the data contract (failing ones are in partner_quarantine)"))],
        description=f"{dataset.partner} {dataset.name} ({dataset.physical_name}): {CONNECTOR_DOC[dataset.connector]}; "
                    f"contract enforced with Great Expectations, idempotent by ({', '.join(dataset.primary_key)}), "
                    "breaking records quarantined in partner_quarantine",
    )
    def _asset(context: dg.AssetExecutionContext):
        result = _run_connector(dataset)
        if not result.configured:
            con = connect(paths.warehouse_path())
            try:
                loading.ensure_tables(con, [dataset])  # empty: downstream models can read it
            finally:
                con.close()
            context.log.info(f"partner {dataset.partner}.{dataset.name} skipped: {result.message}")
            yield dg.MaterializeResult(metadata={"configured": False, "message": result.message})
            yield dg.AssetCheckResult(check_name=CONFORMS, passed=True, metadata={"configured": False})
            return
        by_rule = dict(result.quarantined_by_rule if isinstance(result, rest.SyncResult)
                       else result.batch.quarantined_by_rule)
        yield dg.MaterializeResult(metadata={"configured": True, **_metadata(result)})
        # A sync held at a refused page quarantines that page once; every later run stops there again, quarantining
        # nothing new: the check fails on the stop itself, so the stall stays visible run after run.
        stopped = getattr(result, "stopped", "")
        yield dg.AssetCheckResult(
            check_name=CONFORMS, passed=not by_rule and not stopped, severity=dg.AssetCheckSeverity.WARN,
            metadata={"quarantined": sum(by_rule.values()), "by_rule": by_rule, "stopped": stopped})

    return _asset


PARTNER_ASSETS: dict[str, dg.AssetsDefinition] = {
    d.physical_name: dataset_asset(d) for d in contracts.all_datasets()
}
