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
from .publish import (
    SERVING_TAG,
    models_in,
    partitioned_models,
    promote_publication,
    publication_relations,
    stage_publication,
    staged_path,
)

STAGED = dg.AssetKey(["published", "staged"])
# Serving tables written by Python assets rather than dbt.
PYTHON_SERVING_TABLES = ["maintenance_reminders", "parts_suggestions", "recommendations", "ui_layouts"]
# Marts written by Python assets (statistics need scipy).
PYTHON_MARTS = ["mart_experiment_daily", "mart_experiment_results"]
# What readers ask for by name is audited table by table, one check each: every mart (the `mart_` prefix, in
# whatever domain folder it lives, and the Python ones) and every serving table (dbt's, tagged, and the Python
# ones). Everything else the publication holds (staging, facts, dimensions, alerts) is audited by one more check,
# so no published relation goes out unchecked.
SERVING_TABLES = sorted(models_in(dbt_project.manifest_path, tag=SERVING_TAG) + PYTHON_SERVING_TABLES)
AUDITED_TABLES = sorted(set(models_in(dbt_project.manifest_path, prefix="mart_")) | set(SERVING_TABLES)
                        | set(PYTHON_MARTS))
OTHER_RELATIONS_CHECK = "expectations_every_other_relation"


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
    ] + [dg.AssetCheckSpec(OTHER_RELATIONS_CHECK, asset=STAGED, blocking=True,
                           description="every other published relation: the same rules")],
)
def publication_expectations(context: dg.AssetCheckExecutionContext):
    staged = staged_path()
    others = [name for name in publication_relations(staged) if name not in AUDITED_TABLES]
    results = validate_publication(staged, AUDITED_TABLES + others)  # one pass over the staged file
    for table in AUDITED_TABLES:
        result = results[table]
        yield dg.AssetCheckResult(
            asset_key=STAGED,
            check_name=f"expectations_{table}",
            passed=result.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"rows": result.rows, "expectations": result.evaluated,
                      "failures": [str(f) for f in result.failures]},
            description="; ".join(str(f) for f in result.failures) or None,
        )
    failed = {table: [str(f) for f in results[table].failures] for table in others if not results[table].success}
    yield dg.AssetCheckResult(
        asset_key=STAGED,
        check_name=OTHER_RELATIONS_CHECK,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"relations": len(others), "failing": failed},
        description="; ".join(f"{table}: {', '.join(f)}" for table, f in failed.items()) or None,
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
