"""Next-best-action in the asset graph: train and gate the model after the feature marts, then write the
`recommendations`, `maintenance_reminders`, `parts_suggestions` and `ui_layouts` serving tables before the
publish step picks them up. The work is in build.py, parts.py and layouts.py; flags come from
experiments/flags.yaml.

The work (XGBoost, MLflow) is imported when an asset runs, not when the code location loads: every
``dagster`` command and every run's start would otherwise pay for it (about 2.5 s).
"""

import datetime as dt

import dagster as dg
from dagster_dbt import get_asset_key_for_model

from orchestration.dbt.assets import WAREHOUSE_POOL, pitwall_dbt_models
from pitwall.flags import load_flags
from pitwall.warehouse import replace_rows, write_table

RECOMMENDATIONS = dg.AssetKey(["recommendations"])
MAINTENANCE_REMINDERS = dg.AssetKey(["maintenance_reminders"])
PARTS_SUGGESTIONS = dg.AssetKey(["parts_suggestions"])
UI_LAYOUTS = dg.AssetKey(["ui_layouts"])
BY_USER = ("user_id",)  # serving tables are sorted by user: a reader of the Parquet file skips to one user
NBA_MODEL = dg.AssetKey(["nba_model"])


class TrainingConfig(dg.Config):
    gate: dict = {}    # GateConfig fields: margins and bounds of the promotion gate
    train: dict = {}   # TrainConfig fields: seed, depth, rounds, …
    # days of data between fits (models_ml/fingerprint.py); None: PITWALL_REFIT_EVERY_DAYS or 7; 0: whenever
    # the training rows changed
    refit_every_days: int | None = None


class RecommendationPolicy(dg.Config):
    policy: dict = {}      # PolicyConfig fields: slots, explore_share, weekly_cap, max_per_kind, seed
    flags_file: str = ""   # placement flags; default experiments/flags.yaml


class LayoutPolicy(dg.Config):
    flags_file: str = ""   # the ui-personalized-layout flag; default experiments/flags.yaml


class PartsSuggestionPolicy(dg.Config):
    policy: dict = {}      # PartsPolicy fields: min_probability, max_parts
    flags_file: str = ""
    refit_every_days: int | None = None  # as TrainingConfig's


@dg.asset(
    key=NBA_MODEL,
    group_name="recommendations",
    kinds={"xgboost", "mlflow"},
    deps=[get_asset_key_for_model([pitwall_dbt_models], "fct_nba_training")],
    pool=WAREHOUSE_POOL,  # reads warehouse.duckdb: not while dbt writes it
    description="pitwall-nba in the MLflow registry: trained on the logged exposures (at most once a week of data: "
                "config refit_every_days), promoted to @champion only through the gate",
)
def nba_model(context: dg.AssetExecutionContext, config: TrainingConfig) -> dg.MaterializeResult:
    from models_ml.nba import GateConfig, TrainConfig

    from .build import MODEL_RUNS_TABLE, TrainingSkipped, model_run_row, train

    outcome = train(TrainConfig(**config.train), GateConfig.from_mapping(config.gate), config.refit_every_days)
    replace_rows(MODEL_RUNS_TABLE, model_run_row(outcome, context.run_id, dt.datetime.now(dt.UTC)), key="run_id")
    if isinstance(outcome, TrainingSkipped):
        (context.log.info if outcome.trained_run_id else context.log.warning)(f"pitwall-nba not trained: {outcome.reason}")
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
                     deps=[NBA_MODEL, get_asset_key_for_model([pitwall_dbt_models], "int_nba_candidates"),
                           get_asset_key_for_model([pitwall_dbt_models], "dim_users")],
                     description="recommendations (serving): top actions per customer and placement for tomorrow, "
                                 "by the champion or the rules fallback"),
        dg.AssetSpec(MAINTENANCE_REMINDERS, group_name="recommendations", kinds={"duckdb"},
                     deps=[NBA_MODEL, get_asset_key_for_model([pitwall_dbt_models], "int_nba_candidates"),
                           get_asset_key_for_model([pitwall_dbt_models], "dim_users")],
                     description="maintenance_reminders (serving): vehicles with a service due by its rule, ranked by the champion"),
    ],
    pool=WAREHOUSE_POOL,
)
def serving_recommendations(context: dg.AssetExecutionContext, config: RecommendationPolicy):
    from models_ml.nba.policy import PolicyConfig

    from .build import build_serving

    tables = build_serving(PolicyConfig.from_mapping(config.policy), flags=load_flags(config.flags_file or None))
    write_table("recommendations", tables.recommendations, order_by=(*BY_USER, "placement", "rank"))
    write_table("maintenance_reminders", tables.maintenance_reminders, order_by=(*BY_USER, "rank"))
    summary = tables.summary
    if summary["policy"] == "rules_fallback":
        context.log.warning(f"recommendations by the rules-only ordering: {summary['why_fallback']}")
    yield dg.MaterializeResult(asset_key=RECOMMENDATIONS, metadata={
        **{k: v for k, v in summary.items() if v is not None}, "rows": len(tables.recommendations)})
    yield dg.MaterializeResult(asset_key=MAINTENANCE_REMINDERS, metadata={"rows": len(tables.maintenance_reminders)})


@dg.asset(
    key=PARTS_SUGGESTIONS,
    group_name="recommendations",
    kinds={"xgboost", "duckdb"},
    deps=[get_asset_key_for_model([pitwall_dbt_models], "int_job_part_candidates"),
          get_asset_key_for_model([pitwall_dbt_models], "dim_users")],
    pool=WAREHOUSE_POOL,
    description="parts_suggestions (serving): for each job in the next 7 days, the parts it most likely needs, "
                "by a parts model fit on past jobs (refit at most once a week of data: config refit_every_days)",
)
def parts_suggestions(context: dg.AssetExecutionContext, config: PartsSuggestionPolicy) -> dg.MaterializeResult:
    from .parts import PartsPolicy, build_parts_suggestions

    built = build_parts_suggestions(PartsPolicy(**config.policy), flags=load_flags(config.flags_file or None),
                                    refit_every_days=config.refit_every_days)
    write_table("parts_suggestions", built.table, order_by=(*BY_USER, "scheduled_for", "job_id", "rank"))
    if built.summary.get("why_empty"):
        context.log.warning(f"parts_suggestions is empty: {built.summary['why_empty']}")
    return dg.MaterializeResult(metadata={k: v for k, v in built.summary.items() if v is not None})


@dg.asset(
    key=UI_LAYOUTS,
    group_name="recommendations",
    kinds={"duckdb"},
    deps=[get_asset_key_for_model([pitwall_dbt_models], "int_ui_layout_candidates")],
    pool=WAREHOUSE_POOL,
    description="ui_layouts (serving): each user's home-screen cards in order, by role and service stage, "
                "personalized by what similar users click where the ui-personalized-layout flag is on",
)
def ui_layouts(context: dg.AssetExecutionContext, config: LayoutPolicy) -> dg.MaterializeResult:
    from .layouts import build_ui_layouts

    layouts, summary = build_ui_layouts(flags=load_flags(config.flags_file or None))
    write_table("ui_layouts", layouts, order_by=(*BY_USER, "position"))
    return dg.MaterializeResult(metadata=summary)
