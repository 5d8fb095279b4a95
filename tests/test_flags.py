"""pitwall.flags: the vectorized evaluation gives what the GrowthBook SDK gives, user by user; malformed
definitions are refused with a message naming the flag; assignments are deterministic."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import polars as pl
import pytest
import yaml
from growthbook import GrowthBook

from pitwall.flags import FlagsError, assignments, evaluate, flags_path, load_flags, parse_flags

N_USERS = 10_000
ANALYSIS = {"start": "2026-11-02", "end": "2026-11-29", "hypothesis": "h", "primary_metric": "m",
            "guardrail_metrics": []}


@pytest.fixture(autouse=True)
def _quiet_sdk():
    """The SDK warns for unknown features and debug-logs every step."""
    logger = logging.getLogger("growthbook")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def experiment(**rule) -> dict:
    return {"hashVersion": 2, **ANALYSIS, **rule}


# Edge cases beyond experiments/flags.yaml, in the same shape.
EXTRA_FEATURES = [
    {   # three string variations, uneven weights, coverage < 1, $or / $vgte; the rest to a force rollout
        "key": "edge-three-way", "defaultValue": "default",
        "rules": [
            experiment(key="edge-three-way-exp", variations=["a", "b", "c"], weights=[0.1, 0.3, 0.6], coverage=0.7,
                       seed="s3", condition={"$or": [{"platform": "ios"}, {"app_version": {"$vgte": "3.4.0"}}]},
                       meta=[{"key": "a"}, {"key": "b"}, {"key": "c", "name": "C"}]),
            {"force": "rolled-out", "coverage": 0.35, "hashVersion": 2, "seed": "rollout-seed"},
            {"force": "android", "condition": {"platform": {"$in": ["android"]}}},
        ],
    },
    {   # hash attribute some users lack: they skip the experiment; $not / $in; force rollout keyed on the feature
        "key": "edge-device", "defaultValue": True,
        "rules": [
            experiment(key="edge-device-exp", variations=[False, True], weights=[0.25, 0.75], coverage=0.5,
                       hashAttribute="device_id", condition={"role": "customer"}),
            {"force": False, "condition": {"$not": {"region": {"$in": ["north", "south"]}}},
             "coverage": 0.5, "hashAttribute": "device_id", "hashVersion": 2},
        ],
    },
    {   # a numeric hash attribute (zero and missing are not hashable), equal weights by default, seed = key
        "key": "edge-numeric", "defaultValue": 0,
        "rules": [experiment(key="edge-numeric-exp", variations=[1, 2, 3], hashAttribute="account_no",
                             condition={"$and": [{"app_version": {"$exists": True}},
                                                 {"$nor": [{"role": "technician"}]}]})],
    },
    {   # a passthrough variation falls through to the next rule; empty condition; coverage 0 rollout
        "key": "edge-passthrough", "defaultValue": "off",
        "rules": [
            {"force": "never", "coverage": 0, "hashVersion": 2},
            experiment(key="edge-holdout", variations=["holdout", "pass"], weights=[0.2, 0.8], condition={},
                       meta=[{"key": "holdout"}, {"key": "pass", "passthrough": True}]),
            {"force": "on", "condition": {"region": {"$ne": "central"}, "app_version": {"$vlt": "3.5.0"}}},
        ],
    },
    {   # an attribute no user has, and an object value
        "key": "edge-missing-attribute", "defaultValue": {"slots": 3},
        "rules": [
            {"force": {"slots": 1}, "condition": {"country": {"$exists": False}, "role": "technician"}},
            experiment(key="edge-object-exp", variations=[{"slots": 2}, {"slots": 4}], coverage=0.9),
        ],
    },
]


def yaml_features() -> list[dict]:
    return yaml.safe_load(flags_path().read_text())["features"]


def synthetic_users(n: int = N_USERS, seed: int = 3) -> pl.DataFrame:
    rng = np.random.default_rng(seed)

    def pick(values, p=None):
        return [values[i] for i in rng.choice(len(values), n, p=p)]

    role = pick(["customer", "technician", None], [0.7, 0.25, 0.05])
    number = rng.integers(0, 200_000, n)
    ids = [f"{'tec' if r == 'technician' else 'cus'}_{k:07d}" for r, k in zip(role, number)]
    for i in rng.choice(n, 60, replace=False):  # no hash attribute: missing or empty
        ids[i] = None if i % 2 else ""
    return pl.DataFrame({
        "id": ids,
        "role": role,
        "region": pick(["north", "south", "east", "west", "central", None]),
        "platform": pick(["ios", "android", None], [0.45, 0.45, 0.1]),
        "app_version": pick(["3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.4.1", "3.5.0", "3.10.0", "v3.4.1",
                             "3.4.0-beta.1", "3.2", None]),
        "device_id": pick([f"dev_{k:05d}" for k in range(3000)] + [None] * 1000),
        "account_no": pl.Series(pick(list(range(0, 500)) + [None] * 50), dtype=pl.Int64),
    })


def sdk_results(features: dict, keys: list[str], users: pl.DataFrame) -> dict[str, list[tuple]]:
    """The real SDK, one GrowthBook instance per user: (value, source, experiment key, variationId, bucket)."""
    out: dict[str, list[tuple]] = {key: [] for key in keys}
    for row in users.iter_rows(named=True):
        gb = GrowthBook(attributes={k: v for k, v in row.items() if v is not None}, features=features)
        for key in keys:
            r = gb.eval_feature(key)
            in_exp = r.source == "experiment"
            out[key].append((r.value, r.source, r.experiment.key if in_exp else None,
                             r.experimentResult.variationId if in_exp else None,
                             r.experimentResult.bucket if in_exp else None))
    return out


def test_vectorized_evaluation_matches_the_sdk_user_by_user():
    flags = parse_flags({"features": yaml_features() + EXTRA_FEATURES})
    users = synthetic_users()
    keys = [*flags.features, "no-such-feature"]
    expected = sdk_results(flags.growthbook_features(), keys, users)
    for key in keys:
        got = evaluate(flags, key, users)
        assert got.height == users.height and got["id"].to_list() == users["id"].to_list()
        as_json = key in flags.features and not flags.is_boolean(key)
        rows = [(json.loads(v) if as_json and v is not None else v, s, e, var, b)
                for v, s, e, var, b in got.select("value", "source", "experiment_key", "variation_id",
                                                   "bucket").iter_rows()]
        mismatches = [(u, w, g) for u, w, g in zip(users.iter_rows(named=True), expected[key], rows) if w != g]
        assert not mismatches, f"{key}: {len(mismatches)} users differ from the SDK, e.g. {mismatches[:3]}"
        assert got["in_experiment"].to_list() == [s == "experiment" for _, s, *_ in expected[key]]
        sources = {s for _, s, *_ in expected[key]}
        assert len(sources) > 1 or key == "no-such-feature", f"{key}: every user had source {sources}"


def test_the_edge_cases_are_exercised():
    """The comparison above is only worth something if each path is taken by some users."""
    flags = parse_flags({"features": yaml_features() + EXTRA_FEATURES})
    users = synthetic_users()
    seen = {(k, s) for k, s in assignments(flags, users).select("feature_key", "source").unique().iter_rows()}
    for key in flags.features:
        assert (key, "defaultValue") in seen or key.startswith("rec-placement-pre_job"), key
    three = evaluate(flags, "edge-three-way", users)
    assert set(three.filter(pl.col("source") == "experiment")["variation_id"]) == {0, 1, 2}
    assert three.filter(pl.col("source") == "force")["value"].n_unique() == 2  # rollout and android
    device = evaluate(flags, "edge-device", users).with_columns(users["device_id"])  # rows stay in input order
    assert device.filter(pl.col("device_id").is_null())["source"].ne("experiment").all()
    numeric = evaluate(flags, "edge-numeric", users)
    assert numeric.filter(pl.Series(users["account_no"].fill_null(0) == 0))["source"].ne("experiment").all()
    passthrough = evaluate(flags, "edge-passthrough", users)
    assert set(passthrough["source"]) == {"experiment", "force", "defaultValue"}
    assert passthrough.filter(pl.col("source") == "experiment")["variation_id"].eq(0).all()


def test_the_placement_flags_do_what_the_file_says():
    flags = load_flags()
    users = pl.DataFrame({
        "id": [f"cus_{i:07d}" for i in range(4000)] + ["tec_0000007", "cus_0000001"],
        "role": ["customer"] * 4000 + ["technician", "customer"],
        "platform": ["ios", "android"] * 2000 + ["android", "ios"],
        "app_version": ["3.4.1"] * 4000 + ["3.1.0", "3.1.9"],
    })
    home = evaluate(flags, "rec-placement-home_card", users).head(4000)
    assert home["source"].eq("experiment").all() and home["experiment_key"].eq("nba-home-card").all()
    assert 0.45 < home["value"].mean() < 0.55
    post = evaluate(flags, "rec-placement-post_job", users).head(4000)
    assert 0.75 < post["in_experiment"].mean() < 0.85
    history = evaluate(flags, "rec-placement-service_history", users)
    assert history["value"].to_list() == [True] * 4000 + [False, False]
    parts = evaluate(flags, "rec-placement-pre_job_parts", users)
    assert parts["source"].to_list()[-2:] == ["force", "defaultValue"]
    placement_experiments = {key for key, e in flags.experiments().items() if e["feature_key"].startswith("rec-placement-")}
    assert placement_experiments == {"nba-home-card", "nba-post-job-placement"}
    assert all(e["start"] < e["end"] and e["primary_metric"] for e in flags.experiments().values())


def test_growthbook_features_are_the_sdk_payload_without_pitwalls_metadata():
    features = load_flags().growthbook_features()
    for key, feature in features.items():
        assert set(feature) == {"defaultValue", "rules"}, key
        for rule in feature["rules"]:
            assert not {"start", "end", "hypothesis", "primary_metric", "guardrail_metrics", "description"} & set(rule)
    assert features["rec-placement-home_card"]["rules"][0]["hashVersion"] == 2
    result = GrowthBook(attributes={"id": "cus_0000042", "role": "customer"}, features=features).eval_feature(
        "rec-placement-home_card")
    assert result.source == "experiment" and result.experiment.key == "nba-home-card"


def test_assignments_are_long_and_match_evaluate():
    flags = load_flags()
    users = synthetic_users(500)
    long = assignments(flags, users)
    assert long.height == 500 * len(flags.features)
    assert long.columns == ["feature_key", "id", "value", "source", "experiment_key", "variation_id",
                            "in_experiment", "bucket"]
    assert long.schema["value"] == pl.Boolean
    for key in flags.features:
        assert long.filter(pl.col("feature_key") == key).drop("feature_key").equals(evaluate(flags, key, users))
    mixed = assignments(parse_flags({"features": yaml_features() + EXTRA_FEATURES}), users)
    assert mixed.schema["value"] == pl.String
    assert set(mixed.filter(pl.col("feature_key") == "rec-placement-home_card")["value"]) <= {"true", "false"}


def test_assignment_is_deterministic_and_follows_the_seed():
    flags = load_flags()
    users = synthetic_users(5000, seed=9)
    key = "rec-placement-home_card"
    first = evaluate(flags, key, users)
    assert first.equals(evaluate(flags, key, users))
    shuffled = users.sample(fraction=1.0, shuffle=True, seed=1)  # one user's assignment ignores the others
    again = evaluate(flags, key, shuffled)
    assert (first.sort(first.columns, nulls_last=True).equals(again.sort(again.columns, nulls_last=True)))

    features = yaml_features()
    features[0]["rules"][0]["seed"] = "nba-home-card-v2"
    reseeded = evaluate(parse_flags({"features": features}), key, users)
    both = first["in_experiment"] & reseeded["in_experiment"]
    changed = (first["variation_id"] != reseeded["variation_id"]).filter(both).mean()
    assert 0.4 < changed < 0.6  # an independent 50/50 split disagrees for about half the users


def base_features() -> list[dict]:
    return copy.deepcopy(EXTRA_FEATURES[:2])


def _set(path: list, value):
    def change(features):
        target = features
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


def _delete(path: list):
    def change(features):
        target = features
        for step in path[:-1]:
            target = target[step]
        del target[path[-1]]
    return change


MALFORMED = {
    "unknown rule type": (_set([0, "rules", 2], {"condition": {"role": "customer"}, "value": "x"}),
                          "edge-three-way", "unknown rule type"),
    "force and variations": (_set([0, "rules", 1, "variations"], ["a", "b"]), "edge-three-way", "unknown rule type"),
    "weights not summing to 1": (_set([0, "rules", 0, "weights"], [0.1, 0.3, 0.5]), "edge-three-way-exp",
                                 "sum to 0.9"),
    "weights/variations mismatch": (_set([0, "rules", 0, "weights"], [0.5, 0.5]), "edge-three-way",
                                    "2 weights for 3 variations"),
    "negative weight": (_set([1, "rules", 0, "weights"], [1.5, -0.5]), "edge-device", "non-negative"),
    "hashVersion 1": (_set([0, "rules", 0, "hashVersion"], 1), "edge-three-way", "hashVersion must be 2"),
    "hashVersion missing": (_delete([1, "rules", 0, "hashVersion"]), "edge-device", "missing 'hashVersion'"),
    "rollout without hashVersion": (_delete([0, "rules", 1, "hashVersion"]), "edge-three-way",
                                    "missing 'hashVersion'"),
    "duplicated feature key": (_set([1, "key"], "edge-three-way"), "edge-three-way", "duplicated feature key"),
    "duplicated experiment key": (_set([1, "rules", 0, "key"], "edge-three-way-exp"), "edge-device",
                                  "duplicated experiment key"),
    "missing feature key": (_delete([1, "key"]), "feature #2", "missing 'key'"),
    "missing experiment key": (_delete([1, "rules", 0, "key"]), "edge-device", "missing ['key']"),
    "missing defaultValue": (_delete([1, "defaultValue"]), "edge-device", "missing ['defaultValue']"),
    "unknown feature field": (_set([1, "default_value"], True), "edge-device", "unknown field"),
    "unknown rule field": (_set([1, "rules", 1, "hashattribute"], "id"), "edge-device", "unknown field"),
    "namespace": (_set([1, "rules", 0, "namespace"], ["ns", 0, 0.5]), "edge-device", "not supported"),
    "filters": (_set([1, "rules", 0, "filters"], [{"seed": "x", "ranges": [[0, 0.5]]}]), "edge-device",
                "not supported"),
    "fallbackAttribute": (_set([1, "rules", 1, "fallbackAttribute"], "id"), "edge-device", "not supported"),
    "saved group": (_set([1, "rules", 1, "condition"], {"id": {"$inGroup": "beta"}}), "edge-device", "saved groups"),
    "coverage above 1": (_set([1, "rules", 0, "coverage"], 1.5), "edge-device", "'coverage' must be"),
    "one variation": (_set([1, "rules", 0, "variations"], [True]), "edge-device", "at least 2"),
    "variation type": (_set([1, "rules", 0, "variations"], [False, "yes"]), "edge-device", "is a string"),
    "force type": (_set([0, "rules", 2, "force"], 3), "edge-three-way", "is a number"),
    "null force": (_set([0, "rules", 2, "force"], None), "edge-three-way", "must not be null"),
    "meta length": (_set([0, "rules", 0, "meta"], [{"key": "a"}]), "edge-three-way", "one entry per variation"),
    "condition not a mapping": (_set([1, "rules", 1, "condition"], "role == customer"), "edge-device",
                                "'condition' must be a mapping"),
    "end before start": (_set([1, "rules", 0, "end"], "2026-10-01"), "edge-device", "before start"),
    "bad date": (_set([1, "rules", 0, "start"], "next monday"), "edge-device", "ISO date"),
    "missing analysis metadata": (_delete([1, "rules", 0, "primary_metric"]), "edge-device", "primary_metric"),
    "guardrails not a list": (_set([1, "rules", 0, "guardrail_metrics"], "crash_rate"), "edge-device",
                              "guardrail_metrics"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_definitions_are_refused_naming_the_flag(case):
    change, names, message = MALFORMED[case]
    features = base_features()
    parse_flags({"features": copy.deepcopy(features)})  # the base is valid
    change(features)
    with pytest.raises(FlagsError) as error:
        parse_flags({"features": features}, source="flags.yaml")
    assert message in str(error.value) and names in str(error.value), str(error.value)


def test_malformed_files_are_refused(tmp_path):
    path = tmp_path / "flags.yaml"
    path.write_text("features: [\n")
    with pytest.raises(FlagsError, match="not valid YAML"):
        load_flags(path)
    path.write_text("flags: []\n")
    with pytest.raises(FlagsError, match="'features'"):
        load_flags(path)
    path.write_text(yaml.safe_dump({"features": base_features()}))
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("metric,label\nm,M\n")
    assert list(load_flags(path, metrics_file=metrics).features) == ["edge-three-way", "edge-device"]


def test_an_undefined_metric_is_refused_on_load_naming_it(tmp_path):
    """A metric an experiment names but experiment_metrics does not define would be inner-joined away (no
    results, no error): loading refuses it, naming the experiment, the metric and its role."""
    from pitwall.flags import defined_metrics, metrics_path

    path = tmp_path / "flags.yaml"
    features = base_features()
    features[1]["rules"][0]["guardrail_metrics"] = ["crash_free_sessions", "app_uninstall_rate"]
    path.write_text(yaml.safe_dump({"features": features}))
    seed = tmp_path / "metrics.csv"
    seed.write_text("metric,label\nm,M\ncrash_free_sessions,C\n")
    with pytest.raises(FlagsError) as error:
        load_flags(path, metrics_file=seed)
    message = str(error.value)
    assert "'app_uninstall_rate'" in message and "guardrail_metrics" in message and "edge-device" in message
    features[1]["rules"][0]["guardrail_metrics"] = ["crash_free_sessions"]
    features[1]["rules"][0]["primary_metric"] = "rec_booking_rate_7d"
    path.write_text(yaml.safe_dump({"features": features}))
    with pytest.raises(FlagsError, match="primary_metric 'rec_booking_rate_7d'"):
        load_flags(path, metrics_file=seed)
    # the project's own file, against the project's own seed (an independent read of both files)
    flags = yaml.safe_load(flags_path().read_text())
    with metrics_path().open() as f:
        seeded = {line.split(",")[0] for line in f.read().splitlines()[1:] if line}
    assert defined_metrics() == seeded
    named = {m for feature in flags["features"] for rule in feature.get("rules", []) if "variations" in rule
             for m in [rule["primary_metric"], *rule["guardrail_metrics"]]}
    assert named <= seeded, named - seeded
    load_flags()


def test_the_simulator_assigns_with_the_sdk_not_with_pitwall_flags(monkeypatch):
    """The simulated truth must not inherit a bug of pitwall.flags: the simulator assigns with the GrowthBook SDK
    and works with pitwall.flags unimportable; its variations are the SDK's, user by user, recounted here on
    each app version for the experiment with an app_version condition."""
    import datetime as dt
    import sys

    from growthbook import GrowthBook

    from simulator.experiments import SIMULATED, assign, sdk_features
    from simulator.world import CUSTOMER, PLATFORMS, REGIONS, RELEASES, build_world

    world = build_world(5, dt.date(2026, 11, 1), 10, 80, 12)
    monkeypatch.setitem(sys.modules, "pitwall.flags", None)  # any import of it now raises ImportError
    experiments = assign(world)
    monkeypatch.undo()
    features, rules = sdk_features()
    assert set(SIMULATED) == set(rules) == set(load_flags().experiments())
    gb = GrowthBook(features=features)
    for key in SIMULATED:
        for u in range(len(world.user_id)):
            for r, release in enumerate(RELEASES):
                gb.set_attributes({"id": world.user_id[u],
                                   "role": "customer" if world.user_app[u] == CUSTOMER else "technician",
                                   "region": REGIONS[world.user_region[u]], "platform": PLATFORMS[world.user_platform[u]],
                                   "app_version": release.version})
                result = gb.eval_feature(rules[key]["feature_key"])
                inside = result.experiment is not None and result.experiment.key == key and result.experimentResult.inExperiment
                expected = result.experimentResult.variationId if inside else -1
                assert experiments.variation[experiments.index(key), r, u] == expected, (key, u, release.version)
    gb.destroy()
    post_job = experiments.variation[experiments.index("nba-post-job-placement")]
    assert (post_job[0] == -1).all() and (post_job[-1] >= 0).any()  # 3.3.0 is below the condition's 3.4.0
