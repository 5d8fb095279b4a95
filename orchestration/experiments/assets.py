"""Experiments in the asset graph: the definitions of experiments/flags.yaml go into the warehouse before
dbt (a dbt source), and the results are computed from dbt's summary statistics after it. The work is in
analysis.py and stats.py."""

import dagster as dg
import polars as pl
from dagster_dbt import get_asset_key_for_model

from orchestration.dbt.assets import WAREHOUSE_POOL, pitwall_dbt_models
from pitwall.flags import flags_path
from pitwall.warehouse import write_table

EXPERIMENT_DEFINITIONS = dg.AssetKey(["experiments", "experiment_definitions"])  # dbt source experiments.experiment_definitions
EXPERIMENT_RESULTS = dg.AssetKey(["mart_experiment_results"])
EXPERIMENT_DAILY = dg.AssetKey(["mart_experiment_daily"])


@dg.asset(
    key=EXPERIMENT_DEFINITIONS,
    group_name="experiments",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    description="experiment_definitions: every experiment × variation of experiments/flags.yaml, for dbt",
)
def experiment_definitions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    from .analysis import definitions_frame  # SciPy's statistics load when the asset runs, not with the code location

    frame = definitions_frame()
    write_table("experiment_definitions", frame, order_by=("experiment_key", "variation_index"))
    return dg.MaterializeResult(metadata={"experiments": frame["experiment_key"].n_unique(), "rows": len(frame),
                                          "source": str(flags_path())})


@dg.multi_asset(
    specs=[
        dg.AssetSpec(EXPERIMENT_RESULTS, group_name="experiments", kinds={"duckdb", "scipy"},
                     deps=[get_asset_key_for_model([pitwall_dbt_models], "int_experiment_metric_stats"),
                           get_asset_key_for_model([pitwall_dbt_models], "int_experiment_quantile_stats")],
                     description="mart_experiment_results: lift, intervals, p-values, CUPED, SRM and guardrails "
                                 "per experiment × metric × variation"),
        dg.AssetSpec(EXPERIMENT_DAILY, group_name="experiments", kinds={"duckdb", "scipy"},
                     deps=[get_asset_key_for_model([pitwall_dbt_models], "int_experiment_metric_stats_daily")],
                     description="mart_experiment_daily: the primary metric's cumulative lift, day by day"),
    ],
    pool=WAREHOUSE_POOL,
)
def experiment_marts(context: dg.AssetExecutionContext):
    from .analysis import experiment_daily, experiment_results

    results, daily = experiment_results(), experiment_daily()
    write_table("mart_experiment_results", results, order_by=("experiment_key", "metric", "variation_id"))
    write_table("mart_experiment_daily", daily, order_by=("experiment_key", "variation_id", "day"))
    flagged = results.filter(pl.col("srm_flag")) if len(results) else results
    for row in flagged.unique("experiment_key").iter_rows(named=True):
        context.log.warning(f"sample-ratio mismatch in {row['experiment_key']}: p = {row['srm_p_value']:.2g}")
    zero_variance = results.filter(pl.col("zero_variance_flag")) if len(results) else results
    for row in zero_variance.iter_rows(named=True):
        context.log.warning(f"zero variance in {row['zero_variance_arm']} of {row['experiment_key']} / "
                            f"{row['metric']} ({row['variation_id']}): {row['verdict']}")
    yield dg.MaterializeResult(asset_key=EXPERIMENT_RESULTS, metadata={
        "rows": len(results), "experiments": results["experiment_key"].n_unique() if len(results) else 0,
        "srm_flagged": flagged["experiment_key"].n_unique() if len(flagged) else 0,
        "zero_variance_flagged": len(zero_variance)})
    yield dg.MaterializeResult(asset_key=EXPERIMENT_DAILY, metadata={"rows": len(daily)})
