"""Write-audit-publish: stage a copy of the warehouse (only what changed since the last publication is
copied), check it (blocking asset checks: the expectations of expectations.py, as SQL in DuckDB), then move
it into place with the serving tables as Parquet. A failing check stops the run before the publish, so
readers keep the last good copy."""

import dagster as dg

from orchestration.dbt.assets import WAREHOUSE_POOL, pitwall_dbt_models
from orchestration.dbt.project import dbt_project
from orchestration.experiments.assets import EXPERIMENT_DAILY, EXPERIMENT_RESULTS
from orchestration.recommendations.assets import MAINTENANCE_REMINDERS, PARTS_SUGGESTIONS, RECOMMENDATIONS, UI_LAYOUTS

from .expectations import validate_publication
from .publish import SERVING_TAG, models_in, partitioned_models, promote_publication, stage_publication, staged_path

STAGED = dg.AssetKey(["published", "staged"])
# Serving tables written by Python assets rather than dbt.
PYTHON_SERVING_TABLES = ["maintenance_reminders", "parts_suggestions", "recommendations", "ui_layouts"]
# Marts written by Python assets (statistics need scipy).
PYTHON_MARTS = ["mart_experiment_daily", "mart_experiment_results"]
# What the checks audit: the marts (models/marts/ and the Python ones) and the serving tables (dbt's, read
# from its manifest).
SERVING_TABLES = sorted(models_in(dbt_project.manifest_path, tag=SERVING_TAG) + PYTHON_SERVING_TABLES)
AUDITED_TABLES = sorted(set(models_in(dbt_project.manifest_path, folders=("marts",))) | set(SERVING_TABLES)
                        | set(PYTHON_MARTS))


@dg.asset(
    key=STAGED,
    group_name="publish",
    kinds={"duckdb"},
    deps=[*pitwall_dbt_models.keys, RECOMMENDATIONS, MAINTENANCE_REMINDERS, PARTS_SUGGESTIONS, UI_LAYOUTS,
          EXPERIMENT_RESULTS, EXPERIMENT_DAILY],
    pool=WAREHOUSE_POOL,  # reads warehouse.duckdb: not while dbt writes it
    description="published/.pitwall.duckdb.staged: the next publication, waiting for its data-quality checks",
)
def staged_publication(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    staged = stage_publication(partitioned_models(dbt_project.manifest_path))
    replaced = {name: days for name, days in staged.replaced_parts.items() if days}
    context.log.info(f"staged {len(staged.tables)} relations at {staged.path}: {len(staged.copied)} copied whole, "
                     f"{len(replaced)} with changed days replaced, {len(staged.carried)} unchanged carried over")
    return dg.MaterializeResult(metadata={
        "path": str(staged.path), "relations": len(staged.tables), "copied": list(staged.copied),
        "days_replaced": {name: len(days) for name, days in replaced.items()}, "carried_over": len(staged.carried)})


@dg.multi_asset_check(
    specs=[
        dg.AssetCheckSpec(f"expectations_{table}", asset=STAGED, blocking=True,
                          description=f"{table}: rates in [0, 1], ordered percentiles, no future dates, no negative counts")
        for table in AUDITED_TABLES
    ],
)
def publication_expectations(context: dg.AssetCheckExecutionContext):
    for table, result in validate_publication(staged_path(), AUDITED_TABLES).items():
        yield dg.AssetCheckResult(
            asset_key=STAGED,
            check_name=f"expectations_{table}",
            passed=result.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": result.rows, "expectations": result.evaluated,
                      "failures": [str(f) for f in result.failures]},
            description="; ".join(str(f) for f in result.failures) or None,
        )


@dg.asset(
    key=["published", "pitwall"],
    group_name="publish",
    kinds={"duckdb", "parquet"},
    deps=[STAGED],
    description="published/pitwall.duckdb (read-only snapshot for dashboards and the backend) and "
                "published/serving/*.parquet (the serving tables)",
)
def published_warehouse(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    published = promote_publication(SERVING_TABLES)
    context.log.info(f"published {len(published.tables)} relations to {published.path}; serving files: "
                     f"{len(published.serving_files)} written, {len(published.serving_unchanged)} unchanged")
    return dg.MaterializeResult(metadata={
        "path": str(published.path), "rows": published.tables,
        "serving_files": [str(p) for p in published.serving_files],
        "serving_unchanged": [str(p) for p in published.serving_unchanged]})
