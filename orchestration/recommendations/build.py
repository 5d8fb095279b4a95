"""Train the next-best-action model and build the `recommendations` and `maintenance_reminders` serving
tables: plain functions over the warehouse, called by the Dagster assets next door (and by tests without
Dagster)."""

from __future__ import annotations

import datetime as dt
import math
import uuid
from collections import Counter
from dataclasses import dataclass

import numpy as np
import polars as pl

from models_ml import fingerprint as fingerprints
from models_ml.nba import (
    Champion,
    GateConfig,
    TrainConfig,
    TrainingOutcome,
    configure,
    load_champion,
    score,
    train_evaluate_register,
)
from models_ml.nba.policy import PolicyConfig, rank
from models_ml.nba.scoring import customer_reasons, render_reason
from models_ml.nba.spec import FEATURES, REASON_TEMPLATES, RULE_FEATURE
from pitwall.flags import Flags, load_flags
from pitwall.warehouse import read

from .placements import placement_flags

# Booleans of the feature mart become 0/1 numbers for the model.
FEATURE_SELECT = "* replace (cast(dtc_battery_7d as integer) as dtc_battery_7d, cast(dtc_brakes_7d as integer) as dtc_brakes_7d)"
MIN_TRAINING_ROWS, MIN_TRAINING_POSITIVES = 500, 50
# Exact reasons (TreeSHAP) cost about a millisecond a row: beyond this many kept rows, approximate ones.
EXACT_REASON_ROWS = 200_000
# Users scored at a time: bounds peak memory (make bench: 2.2 GB peak for 1M users × 8 actions in chunks of 250,000).
SCORING_CHUNK_USERS = 250_000

REMINDER_COLUMNS = [
    "rank", "user_id", "vin", "action_id", "action_kind", "due_reason", "score", "action_value", "policy",
    "model_alias", "model_version", "mlflow_run_id", "scoring_run_id", "generated_at", "valid_until",
]
RECOMMENDATION_COLUMNS = [
    "user_id", "placement", "rank", "action_id", "action_kind", "vin", "score", "expected_value", "reason_codes",
    "reason_method", "model_alias", "model_version", "mlflow_run_id", "scoring_run_id", "policy",
    "propensity_logged", "experiment_key", "variation_id", "generated_at", "valid_until",
]


@dataclass
class TrainingSkipped:
    reason: str
    trained_run_id: str | None = None  # the run whose fit stands (same rows, or within the refit cadence): nothing missing


def train(train_config: TrainConfig | None = None, gate_config: GateConfig | None = None,
          refit_every_days: int | None = None) -> TrainingOutcome | TrainingSkipped:
    """Train on the logged exposures, evaluate, register and gate; skipped with a reason when the data is
    too small to tell a model from the baselines, when an earlier run trained on the same rows with the same
    settings, or when the last fit with the same settings is within the refit cadence (``refit_every_days``, default
    ``PITWALL_REFIT_EVERY_DAYS`` or 7; models_ml/fingerprint.py)."""
    train_config = train_config or TrainConfig()
    frame = read(f"select {FEATURE_SELECT} from fct_nba_training")
    positives = int(frame["label"].sum()) if len(frame) else 0
    if len(frame) < MIN_TRAINING_ROWS or positives < MIN_TRAINING_POSITIVES:
        return TrainingSkipped(f"{len(frame)} labelled exposures with {positives} acceptances: need at least "
                               f"{MIN_TRAINING_ROWS} and {MIN_TRAINING_POSITIVES} to train")
    days = (frame["as_of_date"].max() - frame["as_of_date"].min()).days + 1
    needed = train_config.holdout_days + train_config.valid_days + 7  # at least a week to fit on
    if days < needed:
        return TrainingSkipped(f"labelled exposures span {days} days: need {needed} (fit, early-stopping and holdout weeks)")
    gate_config = gate_config or GateConfig()
    key = fingerprints.FitKey.of(frame, {"features": FEATURES, "train": train_config.as_params(),
                                         "gate": gate_config.as_dict()})
    client, experiment_id = configure()
    if (kept := fingerprints.fit_to_reuse(client, experiment_id, key, refit_every_days)) is not None:
        # The same rows and settings would give the same model and the same gate decision (a re-run, a retry), and
        # within the refit cadence the champion keeps serving: nothing new is trained or registered.
        tags = kept.run.data.tags
        return TrainingSkipped(f"{kept.why} (version {tags.get('model_version', '?')}, gated "
                               f"{tags.get('gate.decision', '?')})", trained_run_id=kept.run.info.run_id)
    return train_evaluate_register(frame, FEATURES, train_config, gate_config, tags=key.tags())


MODEL_RUNS_TABLE = "nba_model_runs"  # one row per training attempt: the Recommendations page's model history
MODEL_RUN_METRICS = tuple(f"{who}_{metric}" for metric in ("auc", "ndcg_at_3")
                          for who in ("model", "popularity", "rules"))


def model_run_row(outcome: TrainingOutcome | TrainingSkipped, run_id: str, at: dt.datetime) -> pl.DataFrame:
    """What a training attempt decided, as one row of ``nba_model_runs``: trained or why not, the version and the
    alias the gate gave it, its reasons, and the holdout metrics of the model and both baselines."""
    trained = not isinstance(outcome, TrainingSkipped)
    metrics = outcome.evaluation.flat() if trained else {}
    row = {"run_id": run_id, "trained_at": at, "trained": trained,
           "skipped_reason": None if trained else outcome.reason,
           "version": outcome.version if trained else None,
           "alias": outcome.decision.alias if trained else None,
           "mlflow_run_id": outcome.run_id if trained else None,
           "gate_reasons": list(outcome.decision.reasons) if trained else [],
           **{name: metrics.get(name) for name in MODEL_RUN_METRICS}}
    schema = {"run_id": pl.String, "trained_at": pl.Datetime("us", "UTC"), "trained": pl.Boolean,
              "skipped_reason": pl.String, "version": pl.String, "alias": pl.String, "mlflow_run_id": pl.String,
              "gate_reasons": pl.List(pl.String), **{name: pl.Float64 for name in MODEL_RUN_METRICS}}
    return pl.DataFrame([row], schema=schema)


def _rule_reasons(kept: pl.DataFrame) -> pl.DataFrame:
    """Reasons of the rules-only ordering: the reading the action's rule looks at, else its description."""
    text = np.full(len(kept), None, dtype=object)
    action = kept.get_column("action_id")
    for action_id, feature in RULE_FEATURE.items():
        rows = np.flatnonzero(((action == action_id) & kept.get_column(feature).is_not_null()).to_numpy())
        if len(rows):
            text[rows] = render_reason(feature, REASON_TEMPLATES[feature], kept.get_column(feature).gather(rows)).to_numpy()
    reason = pl.Series("reason", text.tolist(), dtype=pl.String)
    return kept.with_columns(reason_codes=pl.concat_list([pl.coalesce([reason, pl.col("description")])]),
                             reason_method=pl.lit("rule"))


@dataclass
class ServingTables:
    recommendations: pl.DataFrame
    maintenance_reminders: pl.DataFrame
    summary: dict


def build_serving(config: PolicyConfig | None = None, now: dt.datetime | None = None,
                  flags: Flags | None = None, chunk_users: int = SCORING_CHUNK_USERS) -> ServingTables:
    """Tomorrow's `recommendations` and `maintenance_reminders`, scored once, and how they were made.
    Placement flags come from `flags` (default: experiments/flags.yaml). Users are scored in chunks of about
    `chunk_users` (every decision is per user, so chunks change nothing but peak memory)."""
    config, flags = config or PolicyConfig(), flags or load_flags()
    users, slots = read("""select count(distinct user_id), count(distinct (user_id, placement))
                           from int_nba_candidates where ineligible_reason is null""").row(0)
    chunks = max(1, math.ceil(users / chunk_users))
    champion = load_champion()
    by_model = isinstance(champion, Champion)
    # decided on the whole table, so the reasons do not depend on the chunking
    method = "exact" if slots * config.slots <= EXACT_REASON_ROWS else "approx"
    kept_chunks, due_chunks, counts = [], [], Counter()
    for chunk in range(chunks):
        in_chunk = f"and hash(user_id) % {chunks} = {chunk}" if chunks > 1 else ""
        candidates = read(f"""
            select {FEATURE_SELECT}, (select description from dim_actions a where a.action_id = c.action_id) as description
            from int_nba_candidates c where ineligible_reason is null {in_chunk}""")
        kept, chunk_counts, due = _decide(candidates, config, flags, champion if by_model else None, method)
        counts.update(chunk_counts)
        kept_chunks.append(kept)
        due_chunks.append(due)
    kept = pl.concat(kept_chunks, how="diagonal_relaxed").sort("user_id", "placement", "rank")
    now = now or dt.datetime.now(dt.UTC)
    model_columns = dict(
        model_alias=pl.lit(champion.alias if by_model else None, pl.String),
        model_version=pl.lit(champion.version if by_model else None, pl.String),
        mlflow_run_id=pl.lit(champion.run_id if by_model else None, pl.String),
        scoring_run_id=pl.lit(str(uuid.uuid4())),
        generated_at=pl.lit(now),
        valid_until=pl.col("as_of_date").cast(pl.Datetime("us", "UTC")) + pl.duration(days=1),
    )
    recommendations = kept.with_columns(score=pl.col("propensity").cast(pl.Float64), **model_columns) \
        .select(RECOMMENDATION_COLUMNS)
    due = pl.concat(due_chunks, how="diagonal_relaxed")
    reminders = maintenance_reminders(due, by_model).with_columns(**model_columns).select(REMINDER_COLUMNS)
    summary = {**counts, "chunks": chunks, "policy": "model" if by_model else "rules_fallback",
               "scoring_run_id": recommendations["scoring_run_id"][0] if len(recommendations) else None,
               "why_fallback": None if by_model else champion.reason,
               "model_version": champion.version if by_model else None, "maintenance_reminders": len(reminders)}
    return ServingTables(recommendations, reminders, summary)


def _decide(candidates: pl.DataFrame, config: PolicyConfig, flags: Flags, champion: Champion | None,
            method: str) -> tuple[pl.DataFrame, dict, pl.DataFrame]:
    """One chunk of users: placement flags, scores, the policy's ranking and reasons. Returns the kept rows,
    what each policy step removed, and the scored rows due by their rule (for maintenance reminders)."""
    switches = placement_flags(candidates.get_column("user_id").unique(maintain_order=True),
                               candidates.get_column("placement").unique(maintain_order=True), flags)
    candidates = candidates.join(switches, on=["user_id", "placement"], how="left", maintain_order="left") \
        .with_columns(pl.col("placement_on").fill_null(True))
    scored = score(champion, candidates) if champion is not None and len(candidates) else candidates.with_columns(
        propensity=pl.lit(None, pl.Float32), expected_value=pl.lit(None, pl.Float64))
    kept, counts = rank(scored, config, by_model=champion is not None)
    if champion is not None and len(kept):
        kept = customer_reasons(champion, kept, method=method)
    else:
        kept = _rule_reasons(kept)
    return kept, counts, scored.filter(pl.col("due_by_rule").fill_null(False))


def build_recommendations(config: PolicyConfig | None = None, now: dt.datetime | None = None,
                          flags: Flags | None = None) -> tuple[pl.DataFrame, dict]:
    tables = build_serving(config, now, flags)
    return tables.recommendations, tables.summary


def maintenance_reminders(scored: pl.DataFrame, by_model: bool) -> pl.DataFrame:
    """Vehicles with a service due now by its rule (the reading the rule looks at is the reason), one row per
    vehicle and service, ranked by the champion's propensity (its best placement), else by value."""
    due = scored.filter(pl.col("due_by_rule").fill_null(False))
    per_service = (due.sort("propensity", descending=True, nulls_last=True)
                   .group_by("user_id", "vin", "action_id", maintain_order=True).first())
    order = ["propensity", "action_value"] if by_model else ["action_value"]
    ranked = per_service.sort([*order, "vin", "action_id"], descending=[True] * len(order) + [False, False], nulls_last=True)
    ranked = _rule_reasons(ranked).with_columns(
        rank=pl.int_range(1, pl.len() + 1), score=pl.col("propensity").cast(pl.Float64),
        due_reason=pl.col("reason_codes").list.first(),
        policy=pl.lit("model" if by_model else "rules_fallback"))
    return ranked
