"""Next-best-action in the asset graph: train and gate the model after the feature marts, then write the
`recommendations` serving table before the publish step picks it up. The work is in build.py."""

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from models_ml.nba import GateConfig, TrainConfig
from models_ml.nba.policy import PolicyConfig
from orchestration.dbt.assets import WAREHOUSE_POOL, pitwall_dbt_models

from .build import TrainingSkipped, build_recommendations, train, write_table

RECOMMENDATIONS = dg.AssetKey(["recommendations"])
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


@dg.asset(
    key=RECOMMENDATIONS,
    group_name="recommendations",
    kinds={"duckdb"},
    deps=[NBA_MODEL, get_asset_key_for_model([pitwall_dbt_models], "int_nba_candidates")],
    pool=WAREHOUSE_POOL,
    description="recommendations (serving): top actions per customer and placement for tomorrow, by the champion or the rules fallback",
)
def recommendations(context: dg.AssetExecutionContext, config: RecommendationPolicy) -> dg.MaterializeResult:
    rows, summary = build_recommendations(PolicyConfig.from_mapping(config.policy))
    write_table("recommendations", rows)
    if summary["policy"] == "rules_fallback":
        context.log.warning(f"recommendations by the rules-only ordering: {summary['why_fallback']}")
    return dg.MaterializeResult(metadata={**{k: v for k, v in summary.items() if v is not None}, "rows": len(rows)})
