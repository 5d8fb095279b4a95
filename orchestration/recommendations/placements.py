"""Which recommendation placements (and other flagged serving behaviour) are on for whom, and through which
experiment variation.

Each placement has a boolean feature flag in experiments/flags.yaml named `rec-placement-<placement>`,
evaluated per user exactly as the GrowthBook SDK in the app evaluates it (pitwall.flags), on the attributes
of `dim_users`. A placement switched off for a user gets no rows; every row carries the experiment key and
variation (GrowthBook's Result.key: the variation's meta key, else its index) that decided it, so the
warehouse and the app agree on who saw what. A placement with no flag in the file is on for everyone.
"""

from __future__ import annotations

from collections.abc import Iterable

import polars as pl

from pitwall.flags import Flags, evaluate, load_flags
from pitwall.warehouse import read

FLAG_PREFIX = "rec-placement-"
ATTRIBUTES = "user_id as id, role, region, platform, app_version"


def placement_flag_key(placement: str) -> str:
    return FLAG_PREFIX + placement


def variation_keys(flags: Flags) -> pl.DataFrame:
    """(experiment_key, variation index, variation_id): the key GrowthBook reports for each variation."""
    rows = []
    for key, experiment in flags.experiments().items():
        rows.extend((key, index, variation) for index, variation in enumerate(experiment["variation_keys"]))
    return pl.DataFrame(rows, schema={"experiment_key": pl.String, "variation_index": pl.Int32, "variation_id": pl.String},
                        orient="row")


def flag_assignments(user_ids: Iterable[str], feature_key: str, flags: Flags) -> pl.DataFrame:
    """One boolean flag for each user on their dim_users attributes: user_id, value (a flag missing from the
    file is null), flag_source, experiment_key, variation_id (the logged key)."""
    ids = pl.DataFrame({"id": pl.Series(list(user_ids), dtype=pl.String)}).unique(maintain_order=True)
    users = ids.join(read(f"select {ATTRIBUTES} from dim_users"), on="id", how="left", maintain_order="left")
    result = evaluate(flags, feature_key, users)
    return (result.join(variation_keys(flags), left_on=["experiment_key", "variation_id"],
                        right_on=["experiment_key", "variation_index"], how="left", maintain_order="left", suffix="_key")
            .select(user_id=pl.col("id"), value=pl.col("value").cast(pl.Boolean), flag_source=pl.col("source"),
                    experiment_key=pl.col("experiment_key"), variation_id=pl.col("variation_id_key")))


def placement_flags(user_ids: Iterable[str], placements: Iterable[str], flags: Flags | None = None) -> pl.DataFrame:
    """One row per (user, placement): user_id, placement, placement_on, flag_source, experiment_key, variation_id."""
    flags = flags or load_flags()
    user_ids = list(user_ids)
    frames = [flag_assignments(user_ids, placement_flag_key(placement), flags)
              .select("user_id", pl.lit(placement).alias("placement"),
                      pl.col("value").fill_null(True).alias("placement_on"), "flag_source", "experiment_key", "variation_id")
              for placement in dict.fromkeys(placements)]
    schema = {"user_id": pl.String, "placement": pl.String, "placement_on": pl.Boolean, "flag_source": pl.String,
              "experiment_key": pl.String, "variation_id": pl.String}
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
