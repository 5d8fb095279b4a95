"""ui_layouts on the simulated world: the cards each user's home screen shows, in order.

Rules first (seed ui_layout_rules by role × service stage, pinned cards keep their place), then, for users
whose `ui-personalized-layout` flag is on, the other cards by what users of the same role and region
click. The simulator plants the clicks (planted.HOME_CARD_WEIGHTS): customers in the north open vehicle
health far more than anyone, technicians in the east go for parts; the personalized layouts must show it
and the rules layouts must not.
"""

from __future__ import annotations

import polars as pl
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def layouts(world) -> pl.DataFrame:
    return pl.read_parquet(world[0] / "published" / "serving" / "ui_layouts.parquet")


def order(frame: pl.DataFrame, user: str) -> list[str]:
    return frame.filter(pl.col("user_id") == user).sort("position")["card_id"].to_list()


def test_every_user_gets_the_cards_of_their_role_and_stage(con, layouts):
    rules = con.sql("select * from ui_layout_rules").pl()
    users = con.sql("select user_id, role from dim_users").pl()
    assert set(layouts["user_id"]) == set(users["user_id"])
    assert layouts["user_id"].is_sorted()
    per_user = layouts.group_by("user_id", "role", "service_stage").agg(
        cards=pl.col("card_id").sort(), positions=pl.col("position").sort())
    expected = rules.group_by("role", "service_stage").agg(expected=pl.col("card_id").sort())
    joined = per_user.join(expected, on=["role", "service_stage"], how="left")
    assert (joined["cards"] == joined["expected"]).all()
    assert all(p == list(range(1, len(p) + 1)) for p in joined["positions"].to_list())
    # pinned cards hold their rule position in every layout
    pinned = layouts.join(rules, on=["role", "service_stage", "card_id"]).filter(pl.col("pinned_right"))
    assert len(pinned) > 0 and (pinned["position"] == pinned["rule_rank"]).all()
    on_site = layouts.filter(pl.col("service_stage") == "on_site")
    assert len(on_site) and all(order(on_site, u)[:2] == ["checklist", "parts"] for u in on_site["user_id"].unique())
    waiting = layouts.filter(pl.col("service_stage") == "awaiting_approval")
    assert len(waiting) and all(order(waiting, u)[0] == "estimate" for u in waiting["user_id"].unique())


def test_stages_follow_the_jobs(con, layouts):
    """Technicians on site, recounted from the jobs: a job started in the last day and not completed."""
    now = con.sql("select max(occurred_at) from stg_events").fetchall()[0][0]
    jobs = con.sql("select technician_id, started_at, completed_at, cancelled_at from stg_jobs").pl()
    on_site = set(jobs.filter(
        (pl.col("started_at") <= now) & (pl.col("started_at") > now - pl.duration(days=1))
        & (pl.col("completed_at").is_null() | (pl.col("completed_at") > now))
        & (pl.col("cancelled_at").is_null() | (pl.col("cancelled_at") > now)))["technician_id"])
    assert on_site and on_site == set(layouts.filter(pl.col("service_stage") == "on_site")["user_id"])


def test_personalized_layouts_learn_what_similar_users_click(layouts):
    def before(frame, first, second):
        pos = frame.pivot(on="card_id", index="user_id", values="position")
        return (pos[first] < pos[second]).to_list()

    customers = layouts.filter((pl.col("role") == "customer") & (pl.col("service_stage") == "none"))
    north = customers.filter(pl.col("region") == "north")
    personalized = north.filter(pl.col("layout_source") == "personalized")
    assert personalized["user_id"].n_unique() >= 3
    assert all(before(personalized, "vehicle_health", "recommendations"))
    elsewhere = customers.filter(pl.col("region") != "north")
    assert all(before(elsewhere, "recommendations", "vehicle_health"))             # rules and personalized agree
    assert all(before(north.filter(pl.col("layout_source") == "rules"), "recommendations", "vehicle_health"))

    technicians = layouts.filter((pl.col("role") == "technician") & (pl.col("service_stage") == "assigned")
                                 & (pl.col("region") == "east"))
    personalized = technicians.filter(pl.col("layout_source") == "personalized")
    assert personalized["user_id"].n_unique() >= 1 and all(before(personalized, "parts", "navigation"))
    assert all(before(technicians.filter(pl.col("layout_source") == "rules"), "navigation", "parts"))


def test_the_flag_decides_who_gets_the_personalized_order(world, layouts, monkeypatch):
    monkeypatch.setenv("PITWALL_DATA_DIR", str(world[0]))
    from orchestration.recommendations.layouts import FLAG, build_ui_layouts
    from orchestration.recommendations.placements import flag_assignments
    from pitwall.flags import load_flags, parse_flags

    switches = flag_assignments(layouts["user_id"].unique(), FLAG, load_flags())
    got = layouts.unique("user_id").join(switches, on="user_id")
    assert ((got["layout_source"] == "personalized") == got["value"]).all()
    assert set(got["experiment_key"].drop_nulls()) == {"personalized-home"}
    assert 0.3 < got["value"].mean() < 0.7

    off = parse_flags({"features": [{"key": FLAG, "defaultValue": False, "rules": []}]})
    rules_only, summary = build_ui_layouts(flags=off)
    assert summary["personalized_users"] == 0 and set(rules_only["layout_source"]) == {"rules"}
    assert rules_only["experiment_key"].null_count() == len(rules_only)
