"""The promotion gate: does a newly registered version take the ``champion`` alias?

Everything it checks is configured in :class:`GateConfig`. A candidate becomes champion only if, on the
same holdout rows:
- its NDCG@k and AUC beat both baselines (popularity, rules-only ordering) by the baseline margins;
- its NDCG@k and AUC beat the current champion's, re-scored on this holdout, by the champion margins
  (skipped when there is no champion yet: the first model needs only the baselines and sanity checks);
- its expected calibration error is at most ``max_ece``;
- no ID-like feature carries more than ``max_id_like_gain_share`` of the total gain. A feature is ID-like
  when its name matches ``id_like_name_pattern`` (and it is not listed in ``id_like_allowed``, e.g.
  ``action_id``, a small catalog), or when it is categorical with distinct values ≥
  ``id_like_cardinality_ratio`` × training rows;
- the holdout is big enough to judge (``min_holdout_rows``, ``min_holdout_positives``).
"Beats by margin m" means candidate − other ≥ m and candidate > other. Otherwise the version gets the
``challenger`` alias and the decision lists why.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import xgboost as xgb


@dataclass(frozen=True)
class GateConfig:
    baseline_ndcg_margin: float = 0.01
    baseline_auc_margin: float = 0.01
    champion_ndcg_margin: float = 0.001
    champion_auc_margin: float = 0.0
    max_ece: float = 0.05
    max_id_like_gain_share: float = 0.30
    id_like_name_pattern: str = r"(^|_)(id|uuid|guid|key|hash|email|phone|vin)$"
    id_like_allowed: tuple[str, ...] = ("action_id",)
    id_like_cardinality_ratio: float = 0.5
    min_holdout_rows: int = 200
    min_holdout_positives: int = 30
    promote_if_champion_unscorable: bool = False

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any] | None) -> GateConfig:
        """From a dict (Dagster run config, YAML); unknown keys are an error."""
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown gate settings: {sorted(unknown)}")
        if "id_like_allowed" in values:
            values["id_like_allowed"] = tuple(values["id_like_allowed"])
        return cls(**values)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    message: str


@dataclass
class PromotionDecision:
    """What the gate decided for one registered version (also written as model-version tags)."""

    model_name: str
    version: str
    run_id: str
    promoted: bool
    alias: str  # "champion" or "challenger"
    previous_champion_version: str | None
    checks: list[Check] = field(default_factory=list)
    champion_metrics: dict[str, float] | None = None

    @property
    def reasons(self) -> list[str]:
        """Why it was not promoted (the failed checks), or, when promoted, what it passed."""
        return [c.message for c in self.checks if c.passed is self.promoted]

    def summary(self) -> str:
        head = (f"{self.model_name} v{self.version} promoted to champion" if self.promoted else
                f"{self.model_name} v{self.version} kept as challenger; champion stays "
                f"{'v' + self.previous_champion_version if self.previous_champion_version else 'unset (rules fallback)'}")
        return head + ": " + "; ".join(self.reasons)


def _beats(name: str, cand: float, other: float, margin: float, who: str) -> Check:
    ok = (cand - other >= margin) and cand > other
    verb = "beats" if ok else "does not beat"
    return Check(f"{name}_vs_{who}", ok, f"{name} {cand:.4f} {verb} {who} {other:.4f} by the margin {margin:g}")


def id_like_features(encoding_features: list[tuple[str, str]], cardinality: Mapping[str, int], n_rows: int,
                     config: GateConfig) -> list[str]:
    pattern = re.compile(config.id_like_name_pattern, re.IGNORECASE)
    out = []
    for name, kind in encoding_features:
        by_name = bool(pattern.search(name)) and name not in config.id_like_allowed
        by_cardinality = kind == "categorical" and n_rows > 0 and \
            cardinality.get(name, 0) >= config.id_like_cardinality_ratio * n_rows
        if by_name or by_cardinality:
            out.append(name)
    return out


def gain_shares(booster: xgb.Booster) -> dict[str, float]:
    gain = booster.get_score(importance_type="total_gain")
    total = sum(gain.values()) or 1.0
    return {k: v / total for k, v in gain.items()}


def sanity_checks(metrics: Mapping[str, float], n_rows: int, n_positives: int, booster: xgb.Booster,
                  encoding_features: list[tuple[str, str]], cardinality: Mapping[str, int], n_train_rows: int,
                  config: GateConfig) -> list[Check]:
    checks = [
        Check("holdout_size", n_rows >= config.min_holdout_rows and n_positives >= config.min_holdout_positives,
              f"holdout has {n_rows} rows and {n_positives} acceptances (need ≥ {config.min_holdout_rows} "
              f"and ≥ {config.min_holdout_positives})"),
    ]
    ece = metrics.get("ece", float("nan"))
    checks.append(Check("calibration", ece <= config.max_ece,
                        f"expected calibration error {ece:.4f} {'≤' if ece <= config.max_ece else '>'} bound {config.max_ece:g}"))
    shares = gain_shares(booster)
    suspects = id_like_features(encoding_features, cardinality, n_train_rows, config)
    worst = max(suspects, key=lambda n: shares.get(n, 0.0), default=None)
    if worst is None or shares.get(worst, 0.0) <= config.max_id_like_gain_share:
        detail = (f"ID-like feature {worst!r} has {shares.get(worst, 0.0):.0%} of total gain" if worst else
                  "no ID-like feature")
        checks.append(Check("id_like_dominance", True,
                            f"{detail} (bound {config.max_id_like_gain_share:.0%})"))
    else:
        checks.append(Check("id_like_dominance", False,
                            f"ID-like feature {worst!r} dominates: {shares[worst]:.0%} of total gain "
                            f"> {config.max_id_like_gain_share:.0%}"))
    return checks


def comparison_checks(candidate: Mapping[str, float], baselines: Mapping[str, Mapping[str, float]],
                      champion: Mapping[str, float] | None, champion_label: str, k: int,
                      config: GateConfig) -> list[Check]:
    ndcg = f"ndcg_at_{k}"
    checks = []
    for who, m in baselines.items():
        checks.append(_beats(ndcg, candidate[ndcg], m[ndcg], config.baseline_ndcg_margin, who))
        checks.append(_beats("auc", candidate["auc"], m["auc"], config.baseline_auc_margin, who))
    if champion is not None:
        checks.append(_beats(ndcg, candidate[ndcg], champion[ndcg], config.champion_ndcg_margin, champion_label))
        checks.append(_beats("auc", candidate["auc"], champion["auc"], config.champion_auc_margin, champion_label))
    return checks
