"""The published copy of the warehouse, after every dbt model and test of the run succeeded."""

import dagster as dg

from orchestration.dbt.assets import WAREHOUSE_POOL, pitwall_dbt_models

from .publish import publish_warehouse


@dg.asset(
    key=["published", "pitwall"],
    group_name="publish",
    kinds={"duckdb"},
    deps=list(pitwall_dbt_models.keys),
    pool=WAREHOUSE_POOL,  # reads warehouse.duckdb: not while dbt writes it
    description="published/pitwall.duckdb: a read-only snapshot of the warehouse for dashboards and the backend",
)
def published_warehouse(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    published = publish_warehouse()
    context.log.info(f"published {len(published.tables)} relations to {published.path}")
    return dg.MaterializeResult(metadata={"path": str(published.path), "rows": published.tables})
