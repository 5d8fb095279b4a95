"""Next-best-action in the asset graph: train and gate the model after the feature marts, then write the
`recommendations` serving table before the publish step picks it up. The work is in build.py."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from models_ml.nba import GateConfig, TrainConfig
from models_ml.nba.policy import PolicyConfig
from orchestration.dbt.assets import WAREHOUSE_POOL, pitwall_dbt_models

from .build import TrainingSkipped, build_serving, train, write_table

RECOMMENDATIONS = dg.AssetKey(["recommendations"])
MAINTENANCE_REMINDERS = dg.AssetKey(["maintenance_reminders"])
NBA_MODEL = dg.AssetKey(["nba_model"])


class TrainingConfig(dg.Config):
    gate: dict = {}    # GateConfig fields: margins and bounds of the promotion gate
    train: dict = {}   # TrainConfig fields: seed, depth, rounds, …


class RecommendationPolicy(dg.Config):
    policy: dict = {}  # PolicyConfig fields: slots, explore_share, weekly_cap, disabled_placements, …


@dg.asset(
    key=NBA_MODEL,
    group_name="recommendations",
    kinds={"xgboost", "mlflow"},
    deps=[get_asset_key_for_model([pitwall_dbt_models], "fct_nba_training")],
    pool=WAREHOUSE_POOL,  # reads warehouse.duckdb: not while dbt writes it
    description="pitwall-nba in the MLflow registry: trained on the logged exposures, promoted to @champion only through the gate",
)
def nba_model(context: dg.AssetExecutionContext, config: TrainingConfig) -> dg.MaterializeResult:
    outcome = train(TrainConfig(**config.train), GateConfig.from_mapping(config.gate))
    if isinstance(outcome, TrainingSkipped):
        context.log.warning(f"pitwall-nba not trained: {outcome.reason}")
        return dg.MaterializeResult(metadata={"trained": False, "reason": outcome.reason})
    decision = outcome.decision
    context.log.info(decision.summary())
    metrics = outcome.evaluation.flat()
    return dg.MaterializeResult(metadata={
        "trained": True, "version": outcome.version, "alias": decision.alias, "mlflow_run_id": outcome.run_id,
        "reasons": list(decision.reasons),
        **{k: float(v) for k, v in metrics.items() if k.endswith(("_auc", "_ndcg_at_3", "_brier", "_ece"))},
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec(RECOMMENDATIONS, group_name="recommendations", kinds={"duckdb"},
                     deps=[NBA_MODEL, get_asset_key_for_model([pitwall_dbt_models], "int_nba_candidates")],
                     description="recommendations (serving): top actions per customer and placement for tomorrow, "
                                 "by the champion or the rules fallback"),
        dg.AssetSpec(MAINTENANCE_REMINDERS, group_name="recommendations", kinds={"duckdb"},
                     deps=[NBA_MODEL, get_asset_key_for_model([pitwall_dbt_models], "int_nba_candidates")],
                     description="maintenance_reminders (serving): vehicles with a service due by its rule, ranked by the champion"),
    ],
    pool=WAREHOUSE_POOL,
)
def serving_recommendations(context: dg.AssetExecutionContext, config: RecommendationPolicy):
    tables = build_serving(PolicyConfig.from_mapping(config.policy))
    write_table("recommendations", tables.recommendations)
    write_table("maintenance_reminders", tables.maintenance_reminders)
    summary = tables.summary
    if summary["policy"] == "rules_fallback":
        context.log.warning(f"recommendations by the rules-only ordering: {summary['why_fallback']}")
    yield dg.MaterializeResult(asset_key=RECOMMENDATIONS, metadata={
        **{k: v for k, v in summary.items() if v is not None}, "rows": len(tables.recommendations)})
    yield dg.MaterializeResult(asset_key=MAINTENANCE_REMINDERS, metadata={"rows": len(tables.maintenance_reminders)})
