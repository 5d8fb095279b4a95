"""The A/B tests the simulated apps run, and the truths planted in them.

Every experiment of experiments/flags.yaml is met somewhere in the apps, and the apps send GrowthBook's
Segment event "Experiment Viewed" (experiment_id, variation_id = the variation's key) when the user meets
the feature, as the SDK's tracking callback does. Users are assigned by the GrowthBook SDK itself
(`growthbook.GrowthBook.eval_feature`, user by user, on the features of flags.yaml read here with PyYAML),
never by the product's own evaluator (pitwall.flags): a bug there must not be copied into the truth.
The SDK sees the attributes the app has: id, role, region, platform and the app version the session runs,
so an experiment on `app_version` takes a user in from the release that qualifies them; and an experiment's
rule is served only between its `start` and `end` dates, so nobody is in it (or exposed) outside them: the
days before a user's first exposure are their pre-period (CUPED's covariate).

Where each experiment is met, and what is planted:
- nba-reasons-text, when a recommendation is shown: the treatment multiplies the hidden acceptance
  probability by a planted factor (a known relative lift of the acceptance rate);
- on the home screen (customers' and technicians': the SDK decides who is in each experiment):
  home-layout-v2 and nba-home-card (the recommendation card's flag) and personalized-home (the card order's
  flag): no effect on anything (the null must not be rejected); booking-flow-v2: no effect, but the
  treatment build never sends the exposure from Android (a tracking bug), so the exposed users are not
  split 50/50: a sample-ratio mismatch;
- nba-post-job-placement, on the job-completed screen (the customer's rating session after a job): no effect.
The simulated apps' recommendations follow the logging policy (simulator/recommendations.py: a uniformly
random action in a random placement), not the placement flags, so the placement experiments change nothing
here: their truth is a null, which the analysis must not reject.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from . import planted
from .world import CUSTOMER, DAY_US, PLATFORMS, REGIONS, RELEASES, US, World

FLAGS_FILE = Path(__file__).resolve().parent.parent / "experiments" / "flags.yaml"
# Pitwall's own keys in flags.yaml (the analysis plan and descriptions): not part of GrowthBook's payload.
NOT_FOR_THE_SDK = {"description", "start", "end", "hypothesis", "primary_metric", "guardrail_metrics"}

EXPOSED_ON_RECOMMENDATION = "nba-reasons-text"
EXPOSED_ON_HOME = ("home-layout-v2", "booking-flow-v2", "nba-home-card", "personalized-home")
EXPOSED_ON_POST_JOB = ("nba-post-job-placement",)
SIMULATED = (EXPOSED_ON_RECOMMENDATION, *EXPOSED_ON_HOME, *EXPOSED_ON_POST_JOB)


@dataclass
class Experiments:
    keys: tuple[str, ...]                  # experiment keys, by index (event_a of "Experiment Viewed")
    variation_keys: tuple[tuple[str, ...], ...]
    variation: np.ndarray                  # (experiments, releases, users): variation index, -1 when not in it
    window_us: tuple[tuple[int, int], ...]  # per experiment: [start, end) of its dates, when its rule is served

    def index(self, key: str) -> int:
        return self.keys.index(key)

    def of(self, key: str, users: np.ndarray, version: np.ndarray | None = None,
           t_us: np.ndarray | None = None) -> np.ndarray:
        """The variation of these users (-1: not in the experiment) on the app version of each (release index;
        default the newest) at time t (default: whenever the experiment runs; outside its dates the rule is not
        in the SDK's payload, so nobody is in it)."""
        i = self.index(key)
        release = np.full(len(users), len(RELEASES) - 1) if version is None else version
        v = self.variation[i, release, users]
        if t_us is not None:
            start, end = self.window_us[i]
            v = np.where((t_us >= start) & (t_us < end), v, -1)
        return v

    def exposure_sent(self, key: str, users: np.ndarray, platform: np.ndarray,
                      version: np.ndarray | None = None, t_us: np.ndarray | None = None) -> np.ndarray:
        """Whether the app sends the exposure of this experiment for these users (the planted SRM bug)."""
        v = self.of(key, users, version, t_us)
        sent = v >= 0
        if key == planted.SRM_EXPERIMENT:
            sent &= ~((v == 1) & (platform == PLATFORMS.index("android")))
        return sent


def sdk_features(path: Path = FLAGS_FILE) -> tuple[dict, dict[str, dict]]:
    """(GrowthBook's `features` payload, experiment rules by key with their feature key) from flags.yaml."""
    data = yaml.safe_load(path.read_text())
    features, experiments = {}, {}
    for feature in data["features"]:
        rules = []
        for rule in feature.get("rules", []):
            rules.append({k: v for k, v in rule.items() if k not in NOT_FOR_THE_SDK})
            if "variations" in rule:
                experiments[rule["key"]] = {**rule, "feature_key": feature["key"]}
        features[feature["key"]] = {"defaultValue": feature["defaultValue"], "rules": rules}
    return features, experiments


def _mentions_app_version(rules: list[dict]) -> bool:
    return any("app_version" in json.dumps(rule.get("condition", {})) for rule in rules)


def assign(world: World) -> Experiments:
    from growthbook import GrowthBook

    logging.getLogger("growthbook").setLevel(logging.CRITICAL)
    features, experiments = sdk_features()
    missing = [key for key in experiments if key not in SIMULATED]
    if missing:
        raise ValueError(f"experiments/flags.yaml has experiments the simulated apps never meet: {missing} "
                         "(add each where the apps meet it, simulator/experiments.py)")
    n, releases = len(world.user_id), len(RELEASES)
    role = np.where(world.user_app == CUSTOMER, "customer", "technician")
    region, platform = np.asarray(REGIONS)[world.user_region], np.asarray(PLATFORMS)[world.user_platform]
    variation = np.full((len(SIMULATED), releases, n), -1, dtype=np.int16)
    variation_keys, window_us = [], []
    gb = GrowthBook(features=features)
    try:
        for i, key in enumerate(SIMULATED):
            experiment = experiments[key]
            rules = features[experiment["feature_key"]]["rules"]
            by_version = _mentions_app_version(rules)
            for u in range(n):
                attributes = {"id": world.user_id[u], "role": str(role[u]), "region": str(region[u]),
                              "platform": str(platform[u])}
                for r in range(releases) if by_version else (releases - 1,):
                    gb.set_attributes({**attributes, "app_version": RELEASES[r].version})
                    result = gb.eval_feature(experiment["feature_key"])
                    if (result.experiment is not None and result.experiment.key == key
                            and result.experimentResult is not None and result.experimentResult.inExperiment):
                        variation[i, r, u] = result.experimentResult.variationId
            if not by_version:
                variation[i] = variation[i, releases - 1]
            window_us.append((_day_us(experiment["start"]), _day_us(experiment["end"]) + DAY_US))
            meta = experiment.get("meta") or []
            variation_keys.append(tuple(meta[j]["key"] if j < len(meta) and "key" in meta[j] else str(j)
                                        for j in range(len(experiment["variations"]))))
    finally:
        gb.destroy()
    return Experiments(keys=SIMULATED, variation_keys=tuple(variation_keys), variation=variation,
                       window_us=tuple(window_us))


def _day_us(day: dt.date | str) -> int:
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()) * US


def truth(experiments: Experiments, world: World) -> dict:
    out = {}
    for i, key in enumerate(experiments.keys):
        v = experiments.variation[i].max(axis=0)  # in from some release on (a variation never changes with it)
        out[key] = {
            "assigned_by_variation": {experiments.variation_keys[i][j]: int((v == j).sum())
                                      for j in range(len(experiments.variation_keys[i]))},
            "planted_relative_lift": planted.EXPERIMENT_LIFT.get(key, {}),
            "srm_planted": key == planted.SRM_EXPERIMENT,
            "met": ("when a recommendation is shown" if key == EXPOSED_ON_RECOMMENDATION
                    else "on the home screen" if key in EXPOSED_ON_HOME else "on the job-completed screen"),
        }
    out["note"] = ("planted_relative_lift: metric → the true relative lift of the treatment (every other metric of "
                   "every experiment: 0); srm_planted: the treatment's exposures from Android are never sent; "
                   "assigned_by_variation: users the GrowthBook SDK puts in each variation on some app version")
    return out
