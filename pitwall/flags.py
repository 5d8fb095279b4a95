"""Feature flags and experiments: ``experiments/flags.yaml``, evaluated exactly as the GrowthBook SDK does,
for a million users at once.

The file holds GrowthBook features (``defaultValue`` + ``rules``) plus Pitwall's metadata: a ``key`` and
``description`` per feature and, on experiment rules, the analysis plan (``start``, ``end``, ``hypothesis``,
``primary_metric``, ``guardrail_metrics``). ``Flags.growthbook_features()`` is the payload the SDK takes.

``evaluate`` gives, for every user of a frame, what ``GrowthBook(attributes=user,
features=flags.growthbook_features()).eval_feature(key)`` gives (growthbook 4.0.0, ``growthbook/core.py``): rules
in order, first match wins; a condition is decided by the SDK's ``evalCondition`` once per distinct combination of
the attributes it names; a hash by the SDK's ``gbhash`` once per distinct hash-attribute value; a variation by the
SDK's ``getBucketRanges`` + ``chooseVariation`` once per distinct bucket. A null attribute is a missing one.

Not supported (refused when the file is loaded): namespaces, ``filters``, explicit ``range``/``ranges``,
``fallbackAttribute`` and sticky bucketing, prerequisites (``parentConditions``), saved groups, contextual
bandits, and hash version 1. The SDK's per-user overrides (forced variations, URL overrides, QA mode) are not
flag definitions and do not apply.
"""

from __future__ import annotations

import copy
import csv
import json
import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import polars as pl
import yaml
from growthbook.core import _hash_string, _is_hashable, chooseVariation, evalCondition, gbhash, getBucketRanges

from pitwall.paths import PROJECT_ROOT

FEATURE_FIELDS = {"key", "description", "defaultValue", "rules"}
RULE_FIELDS = {"id", "description", "condition", "coverage", "hashAttribute", "hashVersion", "seed"}
FORCE_FIELDS = RULE_FIELDS | {"force"}
EXPERIMENT_FIELDS = RULE_FIELDS | {"key", "name", "variations", "weights", "meta"}
# Pitwall's analysis plan for an experiment: the SDK ignores it, growthbook_features() leaves it out.
ANALYSIS_FIELDS = {"start", "end", "hypothesis", "primary_metric", "guardrail_metrics"}
META_FIELDS = {"key", "name", "passthrough"}
UNSUPPORTED_FIELDS = {
    "namespace", "filters", "range", "ranges", "fallbackAttribute", "disableStickyBucketing", "bucketVersion",
    "minBucketVersion", "parentConditions", "tracks", "contextualBanditRef", "contextualVariations",
}
SAVED_GROUP_OPERATORS = {"$savedGroup", "$savedGroups", "$inGroup", "$notInGroup"}
# Condition keys that combine conditions rather than name an attribute (growthbook.core._eval_condition).
CONDITION_COMBINATORS = {"$or", "$nor", "$and"}

def experiments_dir() -> Path:
    return PROJECT_ROOT / "experiments"


def flags_path() -> Path:
    return experiments_dir() / "flags.yaml"


def metrics_path() -> Path:
    """The one definition of the metrics experiments are analysed on (the dbt seed experiment_metrics)."""
    return PROJECT_ROOT / "dbt_project" / "seeds" / "experiment_metrics.csv"


def defined_metrics(path: str | Path | None = None) -> set[str]:
    """The metric names of the seed experiment_metrics (its `metric` column)."""
    path = Path(path) if path is not None else metrics_path()
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames or "metric" not in reader.fieldnames:
            raise FlagsError(f"{path}: no 'metric' column")
        return {row["metric"] for row in reader if row["metric"]}


class FlagsError(ValueError):
    """A malformed flag definition; the message names the file, the feature, the rule and the problem."""


@dataclass(frozen=True)
class Flags:
    """Validated feature definitions, by feature key, in file order (read-only; copy before changing)."""

    features: Mapping[str, dict]
    source: str = "<dict>"
    _experiments: Mapping[str, dict] = field(default_factory=dict, repr=False)

    def growthbook_features(self) -> dict:
        """The ``features`` dict ``GrowthBook(features=...)`` takes: the file without Pitwall's metadata."""
        out = {}
        for key, feature in self.features.items():
            rules = [{k: copy.deepcopy(v) for k, v in rule.items() if k not in ANALYSIS_FIELDS and k != "description"}
                     for rule in feature.get("rules", [])]
            out[key] = {"defaultValue": copy.deepcopy(feature["defaultValue"]), "rules": rules}
        return out

    def experiments(self) -> dict[str, dict]:
        """Every experiment rule by experiment key, with its feature key and analysis plan (dates as ``date``)."""
        return copy.deepcopy(dict(self._experiments))

    def is_boolean(self, feature_key: str) -> bool:
        return isinstance(self.features[feature_key]["defaultValue"], bool)


# --------------------------------------------------------------------------------------------------- loading


def load_flags(path: str | Path | None = None, metrics_file: str | Path | None = None) -> Flags:
    """Read and validate a flags file (default ``experiments/flags.yaml``); ``FlagsError`` says what is wrong.
    Every primary and guardrail metric an experiment names must be defined in ``metrics_file`` (default the
    seed ``dbt_project/seeds/experiment_metrics.csv``): an undefined one would have no results at all."""
    path = Path(path) if path is not None else flags_path()
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise FlagsError(f"{path}: not valid YAML: {exc}") from None
    metrics_file = Path(metrics_file) if metrics_file is not None else metrics_path()
    return parse_flags(data, source=str(path), metrics=defined_metrics(metrics_file), metrics_source=str(metrics_file))


def parse_flags(data: Any, source: str = "<dict>", metrics: Collection[str] | None = None,
                metrics_source: str = "the metric definitions") -> Flags:
    """Validate flag definitions already parsed: ``{"features": [{"key": ..., "defaultValue": ..., ...}, ...]}``;
    with ``metrics``, every experiment's primary and guardrail metrics must be among them."""
    if not isinstance(data, dict) or set(data) != {"features"} or not isinstance(data["features"], list):
        raise FlagsError(f"{source}: expected a mapping with one key, 'features', holding a list of features")
    features: dict[str, dict] = {}
    experiments: dict[str, dict] = {}
    for position, feature in enumerate(data["features"], start=1):
        key = feature.get("key") if isinstance(feature, dict) else None
        where = f"{source}: feature {key!r}" if key else f"{source}: feature #{position}"
        if not isinstance(feature, dict):
            raise FlagsError(f"{where}: expected a mapping, got {type(feature).__name__}")
        if not isinstance(key, str) or not key:
            raise FlagsError(f"{where}: missing 'key' (a non-empty string)")
        if key in features:
            raise FlagsError(f"{where}: duplicated feature key")
        _check_fields(where, feature, FEATURE_FIELDS, required={"key", "defaultValue"})
        default = feature["defaultValue"]
        if default is None:
            raise FlagsError(f"{where}: 'defaultValue' must not be null")
        if "description" in feature and not isinstance(feature["description"], str):
            raise FlagsError(f"{where}: 'description' must be a string")
        rules = feature.get("rules", [])
        if not isinstance(rules, list):
            raise FlagsError(f"{where}: 'rules' must be a list")
        for number, rule in enumerate(rules, start=1):
            rule_where = f"{where}, rule {number}"
            if not isinstance(rule, dict):
                raise FlagsError(f"{rule_where}: expected a mapping, got {type(rule).__name__}")
            if "force" in rule and "variations" in rule:
                raise FlagsError(f"{rule_where}: unknown rule type: has both 'force' and 'variations'")
            if "force" in rule:
                _check_force_rule(rule_where, rule, default)
            elif "variations" in rule:
                exp_key = rule.get("key")
                rule_where += f" (experiment {exp_key!r})" if exp_key else ""
                _check_experiment_rule(rule_where, rule, default)
                if exp_key in experiments:
                    raise FlagsError(f"{rule_where}: duplicated experiment key (also in feature "
                                     f"{experiments[exp_key]['feature_key']!r})")
                if metrics is not None:
                    _check_metrics(rule_where, rule, metrics, metrics_source)
                experiments[exp_key] = _experiment_record(key, rule)
            else:
                raise FlagsError(f"{rule_where}: unknown rule type: a rule needs 'force' (a force or rollout rule) "
                                 f"or 'variations' (an experiment rule); got fields {sorted(rule)}")
        features[key] = copy.deepcopy(feature)
    return Flags(MappingProxyType(features), source, MappingProxyType(experiments))


def _check_fields(where: str, obj: dict, allowed: set[str], required: set[str]) -> None:
    unsupported = sorted(set(obj) & UNSUPPORTED_FIELDS)
    if unsupported:
        raise FlagsError(f"{where}: {unsupported} not supported by pitwall.flags (see its docstring)")
    unknown = sorted(set(obj) - allowed, key=str)
    if unknown:
        raise FlagsError(f"{where}: unknown field(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(obj))
    if missing:
        raise FlagsError(f"{where}: missing {missing}")


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def _check_value(where: str, what: str, value: Any, default: Any) -> None:
    if _json_type(value) != _json_type(default):
        raise FlagsError(f"{where}: {what} {value!r} is a {_json_type(value)}, but the feature's defaultValue is a "
                         f"{_json_type(default)}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_common(where: str, rule: dict, hashes: bool) -> None:
    if "condition" in rule:
        _check_condition(where, rule["condition"])
    if "coverage" in rule and not (_is_number(rule["coverage"]) and 0 <= rule["coverage"] <= 1):
        raise FlagsError(f"{where}: 'coverage' must be a number from 0 to 1, got {rule['coverage']!r}")
    for name in ("hashAttribute", "seed", "id", "description"):
        if name in rule and not (isinstance(rule[name], str) and rule[name]):
            raise FlagsError(f"{where}: {name!r} must be a non-empty string, got {rule[name]!r}")
    if hashes and "hashVersion" not in rule:
        raise FlagsError(f"{where}: missing 'hashVersion' (must be 2; the SDK would default to version 1)")
    if "hashVersion" in rule and (rule["hashVersion"] != 2 or isinstance(rule["hashVersion"], bool)):
        raise FlagsError(f"{where}: hashVersion must be 2, got {rule['hashVersion']!r}")


def _check_condition(where: str, condition: Any) -> None:
    if not isinstance(condition, dict):
        raise FlagsError(f"{where}: 'condition' must be a mapping, got {condition!r}")

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in SAVED_GROUP_OPERATORS:
                    raise FlagsError(f"{where}: condition operator {key!r} (saved groups) is not supported")
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(condition)


def _check_force_rule(where: str, rule: dict, default: Any) -> None:
    _check_fields(where, rule, FORCE_FIELDS, required={"force"})
    if rule["force"] is None:
        raise FlagsError(f"{where}: 'force' must not be null (the SDK would not treat it as a force rule)")
    _check_value(where, "force value", rule["force"], default)
    _check_common(where, rule, hashes="coverage" in rule)


def _check_experiment_rule(where: str, rule: dict, default: Any) -> None:
    _check_fields(where, rule, EXPERIMENT_FIELDS | ANALYSIS_FIELDS, required={"key"} | ANALYSIS_FIELDS)
    if not isinstance(rule["key"], str) or not rule["key"]:
        raise FlagsError(f"{where}: experiment 'key' must be a non-empty string")
    _check_common(where, rule, hashes=True)
    variations = rule["variations"]
    if not isinstance(variations, list) or len(variations) < 2:
        raise FlagsError(f"{where}: 'variations' must be a list of at least 2 values, got {variations!r}")
    for value in variations:
        _check_value(where, "variation", value, default)
    if "weights" in rule:
        weights = rule["weights"]
        if not isinstance(weights, list) or not all(_is_number(w) and w >= 0 for w in weights):
            raise FlagsError(f"{where}: 'weights' must be a list of non-negative numbers, got {weights!r}")
        if len(weights) != len(variations):
            raise FlagsError(f"{where}: {len(weights)} weights for {len(variations)} variations")
        if abs(sum(weights) - 1) > 1e-9:
            raise FlagsError(f"{where}: weights sum to {sum(weights):g}, not 1")
    if "name" in rule and not isinstance(rule["name"], str):
        raise FlagsError(f"{where}: 'name' must be a string")
    if "meta" in rule:
        meta = rule["meta"]
        if not isinstance(meta, list) or len(meta) != len(variations):
            raise FlagsError(f"{where}: 'meta' must be a list with one entry per variation ({len(variations)})")
        for entry in meta:
            if not isinstance(entry, dict) or set(entry) - META_FIELDS:
                raise FlagsError(f"{where}: each 'meta' entry is a mapping of {sorted(META_FIELDS)}, got {entry!r}")
        keys = [entry.get("key") for entry in meta if "key" in entry]
        if len(keys) != len(set(keys)):
            raise FlagsError(f"{where}: duplicated variation key in 'meta': {keys}")
    start, end = _date(where, "start", rule["start"]), _date(where, "end", rule["end"])
    if end < start:
        raise FlagsError(f"{where}: end {end} is before start {start}")
    for name in ("hypothesis", "primary_metric"):
        if not isinstance(rule[name], str) or not rule[name].strip():
            raise FlagsError(f"{where}: {name!r} must be a non-empty string")
    guardrails = rule["guardrail_metrics"]
    if not isinstance(guardrails, list) or not all(isinstance(m, str) and m for m in guardrails):
        raise FlagsError(f"{where}: 'guardrail_metrics' must be a list of metric names, got {guardrails!r}")


def _check_metrics(where: str, rule: dict, metrics: Collection[str], metrics_source: str) -> None:
    named = [("primary_metric", rule["primary_metric"])] + [("guardrail_metrics", m) for m in rule["guardrail_metrics"]]
    for role, metric in named:
        if metric not in metrics:
            raise FlagsError(f"{where}: {role} {metric!r} is not a defined metric (not in {metrics_source}; "
                             f"defined: {', '.join(sorted(metrics))})")


def _date(where: str, name: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise FlagsError(f"{where}: {name!r} must be an ISO date (YYYY-MM-DD), got {value!r}") from None


def _experiment_record(feature_key: str, rule: dict) -> dict:
    meta = rule.get("meta") or []
    info = [meta[i] if i < len(meta) else {} for i in range(len(rule["variations"]))]
    return {
        "experiment_key": rule["key"], "feature_key": feature_key, "name": rule.get("name"),
        "variations": copy.deepcopy(rule["variations"]),
        "meta": copy.deepcopy(rule.get("meta")),
        # what the SDK reports as Result.key (and apps log as variation_id): the meta key, else the index
        "variation_keys": [str(m["key"]) if m.get("key") is not None else str(i) for i, m in enumerate(info)],
        "variation_names": [m.get("name") or (str(m["key"]) if m.get("key") is not None else str(i))
                            for i, m in enumerate(info)],
        "weights": rule.get("weights") or [1 / len(rule["variations"])] * len(rule["variations"]),
        "coverage": rule.get("coverage", 1.0), "hashAttribute": rule.get("hashAttribute", "id"),
        "seed": rule.get("seed") or rule["key"], "condition": copy.deepcopy(rule.get("condition")),
        "start": _date("", "start", rule["start"]), "end": _date("", "end", rule["end"]),
        "hypothesis": rule["hypothesis"], "primary_metric": rule["primary_metric"],
        "guardrail_metrics": list(rule["guardrail_metrics"]),
    }


# ------------------------------------------------------------------------------------------------ evaluation


def evaluate(flags: Flags, feature_key: str, users: pl.DataFrame) -> pl.DataFrame:
    """Evaluate one feature for every row of ``users`` (an ``id`` column plus any attributes; null = missing).

    One row per input row, in order: ``id``; ``value`` (Boolean for a boolean feature, else the value as JSON
    text, null for an unknown feature); ``source`` (GrowthBook's FeatureResult.source: ``defaultValue``,
    ``force``, ``experiment`` or ``unknownFeature``); ``experiment_key`` and ``variation_id`` (the SDK's
    experiment key and variationId, null unless the source is ``experiment``); ``in_experiment``; ``bucket``
    (the user's hash in [0, 1), the SDK's Result.bucket, null unless the source is ``experiment``).
    """
    if feature_key in flags.features:
        return _evaluate(flags, feature_key, users, as_json=not flags.is_boolean(feature_key))
    return _unknown(users)


def assignments(flags: Flags, users: pl.DataFrame) -> pl.DataFrame:
    """Every feature for every user, long: ``feature_key`` + ``evaluate``'s columns. ``value`` is Boolean when
    every feature is boolean, else JSON text for all."""
    as_json = not all(flags.is_boolean(key) for key in flags.features)
    frames = [_evaluate(flags, key, users, as_json).select(pl.lit(key).alias("feature_key"), pl.all())
              for key in flags.features]
    if not frames:
        return _unknown(users).clear().select(pl.lit("").alias("feature_key"), pl.all())
    return pl.concat(frames)


def _unknown(users: pl.DataFrame) -> pl.DataFrame:
    _require_id(users)
    n = users.height
    return pl.DataFrame({
        "id": users.get_column("id"), "value": pl.Series([None] * n, dtype=pl.String),
        "source": pl.Series(["unknownFeature"] * n, dtype=pl.String),
        "experiment_key": pl.Series([None] * n, dtype=pl.String),
        "variation_id": pl.Series([None] * n, dtype=pl.Int32),
        "in_experiment": pl.Series([False] * n, dtype=pl.Boolean),
        "bucket": pl.Series([None] * n, dtype=pl.Float64),
    })


def _require_id(users: pl.DataFrame) -> None:
    if "id" not in users.columns:
        raise ValueError(f"users needs an 'id' column; got {users.columns}")


def _evaluate(flags: Flags, feature_key: str, users: pl.DataFrame, as_json: bool) -> pl.DataFrame:
    """growthbook.core._eval_feature + _run_experiment, one rule at a time over every user still undecided."""
    _require_id(users)
    feature = flags.features[feature_key]
    n = users.height
    outcome = np.full(n, -1, dtype=np.int64)      # index into `outcomes`; -1: no rule matched yet
    variation = np.full(n, -1, dtype=np.int32)
    bucket = np.full(n, np.nan)
    outcomes: list[tuple[Any, str, str | None]] = []  # (value, source, experiment key)

    for rule in feature.get("rules", []):
        candidate = outcome < 0
        if not candidate.any():
            break
        if rule.get("condition"):  # the SDK skips an empty condition ({} is falsy)
            candidate &= _condition_mask(users, rule["condition"])
        if "force" in rule:
            coverage = rule.get("coverage")
            if coverage is not None:  # growthbook.core._isIncludedInRollout
                if coverage == 0:
                    candidate[:] = False
                else:
                    hashes = _hashes(users, rule.get("seed") or feature_key, rule.get("hashAttribute") or "id",
                                     rule.get("hashVersion") or 1, candidate)
                    candidate &= hashes < coverage  # NaN (no hash value) compares False: excluded
            outcome[candidate] = len(outcomes)
            outcomes.append((rule["force"], "force", None))
            continue
        exp_key = rule.get("key") or feature_key
        variations = rule["variations"]
        hashes = _hashes(users, rule.get("seed") or exp_key, rule.get("hashAttribute") or "id",
                         rule.get("hashVersion") or 1, candidate)
        coverage = rule.get("coverage")
        ranges = getBucketRanges(len(variations), coverage if coverage is not None else 1, rule.get("weights"))
        assigned = _choose_variations(hashes, ranges)  # -1: no hash value, or outside coverage: next rule
        meta = rule.get("meta") or []
        for i, value in enumerate(variations):
            if i < len(meta) and meta[i].get("passthrough"):
                continue  # a passthrough variation falls through to the next rule, like the SDK
            hit = candidate & (assigned == i)
            outcome[hit] = len(outcomes)
            variation[hit] = i
            bucket[hit] = hashes[hit]
            outcomes.append((value, "experiment", exp_key))

    outcome[outcome < 0] = len(outcomes)
    outcomes.append((feature["defaultValue"], "defaultValue", None))

    index = pl.Series(outcome)
    values = [v for v, _, _ in outcomes]
    value = (pl.Series([json.dumps(v) for v in values], dtype=pl.String) if as_json
             else pl.Series(values, dtype=pl.Boolean))
    in_experiment = variation >= 0
    return pl.DataFrame({
        "id": users.get_column("id"),
        "value": value.gather(index),
        "source": pl.Series([s for _, s, _ in outcomes], dtype=pl.String).gather(index),
        "experiment_key": pl.Series([k for _, _, k in outcomes], dtype=pl.String).gather(index),
        "variation_id": pl.Series(np.where(in_experiment, variation, 0), dtype=pl.Int32),
        "in_experiment": pl.Series(in_experiment, dtype=pl.Boolean),
        "bucket": pl.Series(bucket, dtype=pl.Float64).fill_nan(None),
    }).with_columns(variation_id=pl.when("in_experiment").then("variation_id"))


def _referenced_attributes(condition: Any, found: dict[str, None] | None = None) -> list[str]:
    """The top-level attributes a condition reads (``a.b`` reads ``a``), following growthbook's _eval_condition:
    ``$or``/``$nor``/``$and`` hold lists of conditions, ``$not`` a condition, every other key is a path."""
    found = {} if found is None else found
    if isinstance(condition, dict):
        for key, value in condition.items():
            if key in CONDITION_COMBINATORS:
                for sub in value if isinstance(value, list) else []:
                    _referenced_attributes(sub, found)
            elif key == "$not":
                _referenced_attributes(value, found)
            elif key not in SAVED_GROUP_OPERATORS:
                found[key.split(".", 1)[0]] = None
    return list(found)


def _condition_mask(users: pl.DataFrame, condition: dict) -> np.ndarray:
    """``evalCondition`` once per distinct combination of the attributes the condition names, joined back."""
    columns = [c for c in _referenced_attributes(condition) if c in users.columns]
    if not columns:
        return np.full(users.height, evalCondition({}, condition, {}), dtype=bool)
    combos = users.select(columns).unique()
    hits = [evalCondition({k: v for k, v in row.items() if v is not None}, condition, {})
            for row in combos.iter_rows(named=True)]
    combos = combos.with_columns(pl.Series("__hit", hits, dtype=pl.Boolean))
    joined = users.select(columns).join(combos, on=columns, how="left", nulls_equal=True, maintain_order="left")
    return joined.get_column("__hit").fill_null(False).to_numpy()


def _hashes(users: pl.DataFrame, seed: str, attribute: str, version: int, rows: np.ndarray) -> np.ndarray:
    """``gbhash(seed, value, version)`` for the selected rows, once per distinct hash-attribute value; NaN where
    the value is not hashable (missing, empty, zero, a boolean: growthbook.core._is_hashable)."""
    out = np.full(users.height, np.nan)
    if attribute not in users.columns or not rows.any():
        return out
    index = np.flatnonzero(rows)
    values = users.get_column(attribute).gather(index).rename("__value")
    distinct = values.drop_nulls().unique()
    if distinct.dtype == pl.String:  # the common case, without a Python call per value to check it
        distinct = distinct.filter(distinct != "")
        hashed = [gbhash(seed, v, version) for v in distinct.to_list()]
    else:
        hashed = [gbhash(seed, _hash_string(v), version) if _is_hashable(v) else None for v in distinct.to_list()]
    table = pl.DataFrame({"__value": distinct, "__hash": pl.Series(hashed, dtype=pl.Float64)})
    joined = values.to_frame().join(table, on="__value", how="left", maintain_order="left")
    out[index] = joined.get_column("__hash").fill_null(np.nan).to_numpy()
    return out


def _choose_variations(hashes: np.ndarray, ranges: list[tuple[float, float]]) -> np.ndarray:
    """``chooseVariation`` per user: decided once per distinct bucket (at most 10,000), then looked up."""
    assigned = np.full(hashes.shape, -1, dtype=np.int32)
    valid = ~np.isnan(hashes)
    if not valid.any():
        return assigned
    distinct, inverse = np.unique(hashes[valid], return_inverse=True)
    chosen = np.array([chooseVariation(float(n), ranges) for n in distinct], dtype=np.int32)
    assigned[valid] = chosen[inverse]
    return assigned
