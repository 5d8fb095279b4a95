"""The A/B tests the simulated apps run, and the truths planted in them.

Users are assigned from experiments/flags.yaml exactly as the GrowthBook SDK on the device assigns them
(pitwall.flags evaluates the same hash), and the apps send GrowthBook's Segment event "Experiment Viewed"
(experiment_id, variation_id = the variation's key) when the user meets the feature:
- nba-reasons-text, when a recommendation is shown: the treatment multiplies the hidden acceptance
  probability by a planted factor (a known relative lift of the acceptance rate);
- home-layout-v2, on the home screen: no effect on anything (the null must not be rejected);
- booking-flow-v2, on the home screen: no effect, but the treatment build never sends the exposure from
  Android (a tracking bug), so the exposed users are not split 50/50: a sample-ratio mismatch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from . import planted
from .world import CUSTOMER, PLATFORMS, REGIONS, World

EXPOSED_ON_RECOMMENDATION = "nba-reasons-text"
EXPOSED_ON_HOME = ("home-layout-v2", "booking-flow-v2")
SIMULATED = (EXPOSED_ON_RECOMMENDATION, *EXPOSED_ON_HOME)


@dataclass
class Experiments:
    keys: tuple[str, ...]                  # experiment keys, by index (event_a of "Experiment Viewed")
    variation_keys: tuple[tuple[str, ...], ...]
    variation: np.ndarray                  # (experiments, users): variation index, -1 when not in the experiment

    def index(self, key: str) -> int:
        return self.keys.index(key)

    def of(self, key: str, users: np.ndarray) -> np.ndarray:
        return self.variation[self.index(key), users]

    def exposure_sent(self, key: str, users: np.ndarray, platform: np.ndarray) -> np.ndarray:
        """Whether the app sends the exposure of this experiment for these users (the planted SRM bug)."""
        v = self.of(key, users)
        sent = v >= 0
        if key == planted.SRM_EXPERIMENT:
            sent &= ~((v == 1) & (platform == PLATFORMS.index("android")))
        return sent


def assign(world: World) -> Experiments:
    from pitwall.flags import evaluate, load_flags

    flags = load_flags()
    experiments = flags.experiments()
    n = len(world.user_id)
    users = pl.DataFrame({
        "id": world.user_id,
        "role": np.where(world.user_app == CUSTOMER, "customer", "technician"),
        "region": np.asarray(REGIONS)[world.user_region],
        "platform": np.asarray(PLATFORMS)[world.user_platform],
    })
    variation = np.full((len(SIMULATED), n), -1, dtype=np.int16)
    variation_keys = []
    for i, key in enumerate(SIMULATED):
        experiment = experiments[key]
        result = evaluate(flags, experiment["feature_key"], users)
        in_this = (result["experiment_key"] == key).fill_null(False).to_numpy()
        variation[i, in_this] = result["variation_id"].to_numpy()[in_this]
        variation_keys.append(tuple(experiment["variation_keys"]))
    return Experiments(keys=SIMULATED, variation_keys=tuple(variation_keys), variation=variation)


def truth(experiments: Experiments, world: World) -> dict:
    out = {}
    for i, key in enumerate(experiments.keys):
        v = experiments.variation[i]
        out[key] = {
            "assigned_by_variation": {experiments.variation_keys[i][j]: int((v == j).sum())
                                      for j in range(len(experiments.variation_keys[i]))},
            "planted_relative_lift": planted.EXPERIMENT_LIFT.get(key, {}),
            "srm_planted": key == planted.SRM_EXPERIMENT,
        }
    out["note"] = ("planted_relative_lift: metric → the true relative lift of the treatment (every other metric of "
                   "every experiment: 0); srm_planted: the treatment's exposures from Android are never sent")
    return out
