"""Build the `ui_layouts` serving table: each user's home-screen cards, in order.

The order starts from the rules (seed ui_layout_rules: role × service stage) and, for users whose
`ui-personalized-layout` flag is on (experiments/flags.yaml), is reordered by what similar users click
(int_home_card_ctr); pinned cards keep their place either way. Both orders are computed in dbt
(int_ui_layout_candidates); this picks one per user and records the flag's experiment and variation.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pitwall.flags import Flags, load_flags
from pitwall.warehouse import read

from .placements import flag_assignments

FLAG = "ui-personalized-layout"
LAYOUT_COLUMNS = [
    "user_id", "role", "region", "service_stage", "position", "card_id", "pinned", "layout_source", "ctr_smoothed",
    "experiment_key", "variation_id", "generated_at", "valid_until",
]


def build_ui_layouts(flags: Flags | None = None, now: dt.datetime | None = None) -> tuple[pl.DataFrame, dict]:
    flags = flags or load_flags()
    candidates = read("select * from int_ui_layout_candidates")
    switches = flag_assignments(candidates.get_column("user_id").unique(maintain_order=True), FLAG, flags)
    now = now or dt.datetime.now(dt.UTC)
    layouts = (candidates.join(switches, on="user_id", how="left", maintain_order="left")
               .with_columns(personalized=pl.col("value").fill_null(False))
               .with_columns(
                   position=pl.when("personalized").then("personalized_position").otherwise("rule_position").cast(pl.Int32),
                   layout_source=pl.when("personalized").then(pl.lit("personalized")).otherwise(pl.lit("rules")),
                   generated_at=pl.lit(now),
                   valid_until=pl.col("as_of").dt.truncate("1d") + pl.duration(days=2),
               )
               .select(LAYOUT_COLUMNS).sort("user_id", "position"))
    summary = {"rows": len(layouts), "users": layouts["user_id"].n_unique(),
               "personalized_users": layouts.filter(pl.col("layout_source") == "personalized")["user_id"].n_unique()}
    return layouts, summary
