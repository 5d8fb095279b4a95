"""From scored candidates to the `recommendations` serving table: the decision policy after the model.

    eligible candidates (int_nba_candidates: catalog eligibility and suppression already applied)
      → placements switched off for the user by their flag (experiments/flags.yaml): no rows
      → weekly frequency cap per user (recommendations shown in the last 7 days)
      → order by expected value (propensity × value), or by rules_score when no champion (rules_fallback)
      → exploration: a small share of (user, placement) slots shows a uniformly random eligible action at
        rank 1 (drawn from every eligible action, before arbitration), with the probability the policy had
        of putting it there (propensity_logged) for IPS estimates
      → arbitration across kinds per placement (at most N of each kind, the explored action included)
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
    limit = pl.col("action_kind").replace_strict(dict(config.max_per_kind), default=config.slots, return_dtype=pl.Int64)
    # A kind allowed no slot at all is never shown, explored or not.
    before = len(rows)
    rows = rows.filter(limit > 0)
    rows = rows.with_columns(pl.col(order).alias("order_value")).sort(
        [*slot, "order_value", "action_id"], descending=[False, False, True, False], nulls_last=True)
    # Exploration draws over every eligible action of the slot (before arbitration), so that any of them,
    # an upsell arbitration would cut included, can be shown at rank 1 with a known probability.
    draw = [pl.col("user_id"), pl.col("placement"), pl.col("as_of_date")]
    rows = rows.with_columns(
        greedy_position=pl.int_range(pl.len()).over(slot) + 1,
        n_eligible=pl.len().over(slot),
        explored=_uniform(draw, config.seed) < config.explore_share,
    ).with_columns(
        explore_pick=(_uniform(draw, config.seed + 1) * pl.col("n_eligible")).floor().cast(pl.Int64) + 1,
    ).with_columns(
        picked=pl.col("explored") & (pl.col("greedy_position") == pl.col("explore_pick")),
    )
    # Then arbitration across kinds on the rest, in the greedy order, the explored action (first) counting
    # against its kind's limit.
    rows = rows.sort([*slot, "picked", "greedy_position"], descending=[False, False, True, False])
    within_kind = pl.int_range(pl.len()).over([*slot, "action_kind"]) + 1
    rows = rows.filter(within_kind <= limit)
    counts["arbitration"] = before - len(rows)
    eps = config.explore_share
    # P(this action at rank 1) under the policy: the greedy choice (the slot's first eligible action, which
    # arbitration always keeps) with 1 − ε, any of the n eligible actions with ε / n.
    rank1_probability = (pl.when(pl.col("greedy_position") == 1).then(1 - eps).otherwise(0.0)
                         + eps / pl.col("n_eligible"))
    rows = rows.with_columns(rank=pl.int_range(pl.len()).over(slot) + 1)
    rows = rows.filter(pl.col("rank") <= config.slots).with_columns(
        policy=pl.when(pl.col("explored") & (pl.col("rank") == 1)).then(pl.lit(POLICY_EXPLORE))
        .otherwise(pl.lit(POLICY_MODEL if by_model else POLICY_FALLBACK)),
        propensity_logged=pl.when(pl.col("rank") == 1).then(rank1_probability).otherwise(1 - eps),
    ).drop("order_value", "greedy_position", "explore_pick", "explored", "picked").sort([*slot, "rank"])
    counts["kept"] = len(rows)
    return rows, counts
