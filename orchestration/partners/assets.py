"""Partner connectors in the asset graph. The work is in one module per partner (oem.py); an asset only
runs it and reports. A partner whose endpoint is not configured (env var unset) is skipped with one log
line, and its tables exist empty so the rest of the pipeline runs."""

import dagster as dg

from orchestration.dbt.assets import WAREHOUSE_POOL
from pitwall import paths
from pitwall.duck import connect

from . import oem

OEM_SERVICE_ORDERS = dg.AssetKey(["partners", oem.TABLE])


@dg.asset(
    key=OEM_SERVICE_ORDERS,
    group_name="partners",
    kinds={"http", "duckdb"},
    pool=WAREHOUSE_POOL,  # writes warehouse.duckdb
    description="The OEM maintenance network's service orders: incremental REST sync (cursor pagination, retries "
                "honoring Retry-After), raw pages landed before parsing, idempotent by (order_id, version); "
                "records breaking the contract go to partner_quarantine",
)
def oem_service_orders(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    result = oem.sync()
    if not result.configured:
        con = connect(paths.warehouse_path())
        try:
            oem.ensure_tables(con)
        finally:
            con.close()
        context.log.info(f"OEM partner skipped: {result.message}")
        return dg.MaterializeResult(metadata={"configured": False, "message": result.message})
    return dg.MaterializeResult(metadata={
        "configured": True, "complete": result.complete, "pages": result.pages, "requests": result.requests,
        "records_loaded": result.records_loaded, "duplicates_skipped": result.duplicates_skipped,
        "quarantined": result.quarantined, "retries": dict(result.retries), "seconds": round(result.seconds, 2),
        "high_water": str(result.high_water),
    })
