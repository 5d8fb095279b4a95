"""The decision policy after the model (models_ml/nba/policy.py) on small synthetic slots: exploration draws
over every eligible action, arbitration cut or not, and logs the probability the policy really had."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from models_ml.nba.policy import POLICY_EXPLORE, PolicyConfig, rank

ACTIONS = {"a_upsell": "upsell", "b_upsell": "upsell", "c_upsell": "upsell", "d_upsell": "upsell",
           "e_upsell": "upsell", "oil": "maintenance_reminder"}


def candidates(users: int, seed: int = 1) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    n = users * len(ACTIONS)
    return pl.DataFrame({
        "user_id": np.repeat([f"u{i:06d}" for i in range(users)], len(ACTIONS)),
        "placement": "home_card",
        "placement_on": True,
        "action_id": list(ACTIONS) * users,
        "action_kind": list(ACTIONS.values()) * users,
        "as_of_date": dt.date(2026, 5, 1),
        "shown_last_7d": 0,
        "rules_score": rng.random(n),
        "expected_value": rng.random(n),
    })


def test_exploration_draws_over_every_eligible_action_with_its_true_probability():
    """Six eligible actions, five of them upsells of which arbitration keeps two: an explored slot shows any of
    the six at rank 1, each in about a sixth of explored slots (the upsells arbitration would cut included),
    and propensity_logged is ε/6, plus 1 − ε for the greedy choice (recounted here from the scores)."""
    config = PolicyConfig(explore_share=0.2)
    frame = candidates(6000)
    kept, counts = rank(frame, config, by_model=True)
    greedy = frame.sort("expected_value", descending=True).group_by("user_id").first().select(
        "user_id", greedy_action="action_id")
    top = kept.filter(pl.col("rank") == 1).join(greedy, on="user_id")
    eps, n = config.explore_share, len(ACTIONS)
    expected = np.where(top["action_id"] == top["greedy_action"], 1 - eps, 0.0) + eps / n
    np.testing.assert_allclose(top["propensity_logged"].to_numpy(), expected, rtol=0, atol=1e-12)
    # the unexplored slots show the greedy choice
    assert (top.filter(pl.col("policy") != POLICY_EXPLORE)["action_id"]
            == top.filter(pl.col("policy") != POLICY_EXPLORE)["greedy_action"]).all()

    explored = top.filter(pl.col("policy") == POLICY_EXPLORE)
    assert abs(explored.height / top.height - eps) < 0.02
    # arbitration-cut actions are explored too: every action, each about 1/6 of the explored slots
    greedy_kept, _ = rank(frame, PolicyConfig(explore_share=0.0), by_model=True)
    cut = frame.join(greedy_kept.select("user_id", "action_id"), on=["user_id", "action_id"], how="anti")
    assert explored.join(cut, on=["user_id", "action_id"], how="semi").height > 50
    shares = explored.group_by("action_id").len().with_columns(share=pl.col("len") / explored.height)
    assert set(shares["action_id"]) == set(ACTIONS)
    assert (shares["share"] - 1 / n).abs().max() < 0.04, shares
    # the logged probabilities are the ones rank 1 was drawn with: E[1 / π(A)] over A ~ π is the support's size
    assert abs((1 / top["propensity_logged"]).mean() / n - 1) < 0.1
    assert counts["kept"] == kept.height and counts["arbitration"] > 0


def test_arbitration_still_holds_around_the_explored_action():
    """At most 2 upsells and 1 reminder per slot, the explored action counted; ranks 1..3 without gaps."""
    kept, _ = rank(candidates(3000, seed=2), PolicyConfig(explore_share=0.3), by_model=True)
    per_kind = kept.group_by("user_id", "action_kind").len()
    assert per_kind.filter(pl.col("action_kind") == "upsell")["len"].max() <= 2
    assert per_kind.filter(pl.col("action_kind") == "maintenance_reminder")["len"].max() <= 1
    ranks = kept.group_by("user_id").agg(pl.col("rank").sort())
    assert (ranks["rank"].list.eval(pl.element() == pl.int_range(1, pl.len() + 1)).list.all()).all()
    assert kept.group_by("user_id").len()["len"].min() == 3
    # later ranks: the chance their slot was not explored
    assert (kept.filter(pl.col("rank") > 1)["propensity_logged"] == 0.7).all()


def test_a_kind_allowed_no_slot_is_never_explored():
    kept, _ = rank(candidates(2000, seed=3),
                   PolicyConfig(explore_share=0.5, max_per_kind={"upsell": 2, "maintenance_reminder": 0}), by_model=True)
    assert "maintenance_reminder" not in set(kept["action_kind"])
    top = kept.filter(pl.col("rank") == 1)
    assert set(top.filter(pl.col("policy") == POLICY_EXPLORE)["propensity_logged"].round(12)) <= {
        round(0.5 / 5, 12), round(0.5 + 0.5 / 5, 12)}
