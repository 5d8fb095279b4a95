"""From scored candidates to the `recommendations` serving table: the decision policy after the model.

    eligible candidates (int_nba_candidates: catalog eligibility and suppression already applied)
      → placements switched off for the user by their flag (experiments/flags.yaml): no rows
      → weekly frequency cap per user (recommendations shown in the last 7 days)
      → order by expected value (propensity × value), or by rules_score when no champion (rules_fallback)
      → arbitration across kinds per placement (at most N of each kind)
      → exploration: a small share of (user, placement) slots shows a uniformly random eligible action at
        rank 1, with the probability the policy chose it (propensity_logged) for IPS estimates
      → top `slots` per (user, placement)

Everything is vectorized in polars. Exploration draws come from a hash of (seed, user, placement, as-of
date), so identical inputs and seed give identical tables.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import polars as pl

from models_ml.nba.scoring import POLICY_FALLBACK, POLICY_MODEL

POLICY_EXPLORE = "explore"


@dataclass(frozen=True)
class PolicyConfig:
    slots: int = 3                              # ranks kept per (user, placement)
    explore_share: float = 0.05                 # share of (user, placement) slots explored at rank 1
    weekly_cap: int = 20                        # no recommendations for a user shown this many in 7 days
    max_per_kind: Mapping[str, int] = field(default_factory=lambda: {"maintenance_reminder": 1, "upsell": 2, "parts": 3})
    seed: int = 7

    @classmethod
    def from_mapping(cls, values: Mapping | None) -> PolicyConfig:
        return cls(**dict(values or {}))


def _uniform(columns: list[pl.Expr], seed: int) -> pl.Expr:
    """A deterministic draw in [0, 1) per row from a hash of the given columns."""
    return pl.concat_str([c.cast(pl.String) for c in columns], separator="|").hash(seed=seed).cast(pl.Float64) / 2.0**64


def rank(candidates: pl.DataFrame, config: PolicyConfig, by_model: bool) -> tuple[pl.DataFrame, dict[str, int]]:
    """Kept rows with `rank`, `policy` and `propensity_logged`, and counts of what each step removed.

    `candidates` are eligible rows (ineligible_reason null) with user_id, placement, placement_on (the
    placement's flag for that user), action_id, action_kind, as_of_date, shown_last_7d, rules_score and,
    when `by_model`, expected_value."""
    counts = {"candidates": len(candidates)}
    rows = candidates.filter(pl.col("placement_on"))
    counts["placement_switched_off"] = counts["candidates"] - len(rows)
    capped = rows.filter(pl.col("shown_last_7d") >= config.weekly_cap)
    counts["weekly_cap"] = len(capped)
    rows = rows.filter(pl.col("shown_last_7d") < config.weekly_cap)

    order = "expected_value" if by_model else "rules_score"
    slot = ["user_id", "placement"]
    rows = rows.with_columns(pl.col(order).alias("order_value")).sort(
        [*slot, "order_value", "action_id"], descending=[False, False, True, False], nulls_last=True)
    within_kind = pl.int_range(pl.len()).over([*slot, "action_kind"]) + 1
    limit = pl.col("action_kind").replace_strict(dict(config.max_per_kind), default=config.slots, return_dtype=pl.Int64)
    before = len(rows)
    rows = rows.filter(within_kind <= limit)
    counts["arbitration"] = before - len(rows)

    # Exploration: in an explored slot, rank 1 is a uniformly random eligible action.
    rows = rows.with_columns(
        greedy_rank=pl.int_range(pl.len()).over(slot) + 1,
        n_eligible=pl.len().over(slot),
        explored=_uniform([pl.col("user_id"), pl.col("placement"), pl.col("as_of_date")], config.seed) < config.explore_share,
    )
    pick = (_uniform([pl.col("user_id"), pl.col("placement"), pl.col("as_of_date")], config.seed + 1)
            * pl.col("n_eligible")).floor().cast(pl.Int64) + 1
    rows = rows.with_columns(explore_pick=pick)
    eps = config.explore_share
    rows = rows.with_columns(
        rank=pl.when(~pl.col("explored")).then(pl.col("greedy_rank"))
        .when(pl.col("greedy_rank") == pl.col("explore_pick")).then(1)
        .when(pl.col("greedy_rank") < pl.col("explore_pick")).then(pl.col("greedy_rank") + 1)
        .otherwise(pl.col("greedy_rank")),
    )
    # P(this action at rank 1) under the policy: greedy choice with 1 − ε, any eligible one with ε / n.
    rank1_probability = (pl.when(pl.col("greedy_rank") == 1).then(1 - eps).otherwise(0.0) + eps / pl.col("n_eligible"))
    rows = rows.filter(pl.col("rank") <= config.slots).with_columns(
        policy=pl.when(pl.col("explored") & (pl.col("rank") == 1)).then(pl.lit(POLICY_EXPLORE))
        .otherwise(pl.lit(POLICY_MODEL if by_model else POLICY_FALLBACK)),
        propensity_logged=pl.when(pl.col("rank") == 1).then(rank1_probability).otherwise(1 - eps),
    ).drop("order_value", "greedy_rank", "explore_pick", "explored").sort([*slot, "rank"])
    counts["kept"] = len(rows)
    return rows, counts
