"""Holdout metrics for the model and the two baselines, with scikit-learn.

Scorers compared on the same holdout rows:
- ``model``: the XGBoost propensity;
- ``popularity``: each action's acceptance rate in the training weeks (smoothed toward the overall
  rate with ``prior_weight`` pseudo-exposures; an action unseen in training gets the overall rate);
- ``rules``: the rules-only ordering's ``rules_score`` (not a probability: ranking metrics and AUC only).

Ranking groups: one group per ``user_id`` × ``as_of_date`` over the holdout rows, i.e. the actions a user
was shown that day (each training row is one logged exposure). NDCG@k and precision@k are averaged over
groups with at least two candidates and at least one acceptance (a group with one candidate or with no
acceptance cannot tell orderings apart). NDCG@k is ``sklearn.metrics.ndcg_score`` (ties averaged);
precision@k = accepted among the top min(k, group size), ties broken by ``action_id``.

Calibration: ``sklearn.calibration.calibration_curve`` with ``n_bins`` uniform bins; expected calibration
error (ECE) = Σ_bins (rows in bin / rows) × |observed rate − mean predicted| over the same bins.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl
from sklearn.calibration import calibration_curve
from sklearn.metrics import brier_score_loss, log_loss, ndcg_score, roc_auc_score

GROUP_KEYS = ("user_id", "as_of_date")
SCORERS = ("model", "popularity", "rules")


def popularity_scores(train: pl.DataFrame, frame: pl.DataFrame, prior_weight: float = 10.0) -> np.ndarray:
    """Acceptance rate of each row's action in ``train`` (the popularity baseline)."""
    overall = float(train.get_column("label").mean())
    rates = (train.group_by("action_id")
             .agg(pl.col("label").sum().alias("acc"), pl.len().alias("n"))
             .with_columns(((pl.col("acc") + prior_weight * overall) / (pl.col("n") + prior_weight)).alias("pop"))
             .select("action_id", "pop"))
    out = frame.select("action_id").join(rates, on="action_id", how="left", maintain_order="left")
    return out.get_column("pop").fill_null(overall).to_numpy().astype(np.float64)


def calibration(y: np.ndarray, p: np.ndarray, n_bins: int = 10) -> tuple[dict[str, list[float]], float]:
    """Reliability curve (non-empty bins) and expected calibration error over uniform bins."""
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    bins = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(bins[1:-1], p)  # the same binning calibration_curve uses
    counts = np.bincount(ids, minlength=n_bins)
    nonempty = counts[counts > 0]
    ece = float(np.sum(nonempty / len(p) * np.abs(prob_true - prob_pred)))
    curve = {"mean_predicted": prob_pred.tolist(), "observed_rate": prob_true.tolist(),
             "rows": nonempty.astype(int).tolist()}
    return curve, ece


def ranking_metrics(frame: pl.DataFrame, scores: np.ndarray, k: int = 3) -> dict[str, float]:
    """NDCG@k and precision@k over user × day groups (see the module docstring)."""
    df = (frame.select(*GROUP_KEYS, "action_id", "label")
          .with_columns(pl.Series("score", np.asarray(scores, dtype=np.float64)))
          .with_columns(pl.struct(*GROUP_KEYS).rank("dense").alias("g"))
          .with_columns(pl.len().over("g").alias("size"), pl.col("label").sum().over("g").alias("pos"))
          .filter((pl.col("size") >= 2) & (pl.col("pos") >= 1)))
    if not len(df):
        return {f"ndcg_at_{k}": float("nan"), f"precision_at_{k}": float("nan"), "ranking_groups": 0.0}
    df = (df.sort(["g", "score", "action_id"], descending=[False, True, False])
          .with_columns((pl.col("g").rank("dense") - 1).cast(pl.Int64).alias("gi"),
                        pl.int_range(pl.len()).over("g").alias("pos_in_g")))
    n_groups = int(df.get_column("gi").max()) + 1
    width = int(df.get_column("size").max())
    gi, pj = df.get_column("gi").to_numpy(), df.get_column("pos_in_g").to_numpy()
    score = df.get_column("score").to_numpy()
    true = np.zeros((n_groups, width))
    pred = np.full((n_groups, width), score.min() - 1.0)  # padding: below every real candidate, relevance 0
    true[gi, pj] = df.get_column("label").to_numpy()
    pred[gi, pj] = score
    ndcg = float(ndcg_score(true, pred, k=k))
    top = df.filter(pl.col("pos_in_g") < k).group_by("g").agg(
        (pl.col("label").sum() / pl.len()).alias("p"))
    return {f"ndcg_at_{k}": ndcg, f"precision_at_{k}": float(top.get_column("p").mean()),
            "ranking_groups": float(n_groups)}


def score_metrics(frame: pl.DataFrame, scores: np.ndarray, probabilistic: bool, k: int = 3,
                  n_bins: int = 10) -> tuple[dict[str, float], dict[str, list[float]] | None]:
    y = frame.get_column("label").to_numpy().astype(np.int64)
    s = np.asarray(scores, dtype=np.float64)
    metrics: dict[str, float] = {}
    metrics["auc"] = float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else float("nan")
    metrics.update(ranking_metrics(frame, s, k=k))
    curve = None
    if probabilistic:
        p = np.clip(s, 1e-6, 1 - 1e-6)
        metrics["log_loss"] = float(log_loss(y, p, labels=[0, 1]))
        metrics["brier"] = float(brier_score_loss(y, p))
        curve, metrics["ece"] = calibration(y, p, n_bins=n_bins)
        metrics["mean_predicted"] = float(p.mean())
    metrics["lift_top_10pct"] = _lift(y, s, 0.10)
    return metrics, curve


def _lift(y: np.ndarray, s: np.ndarray, share: float) -> float:
    if not y.sum():
        return float("nan")
    n = max(1, int(len(y) * share))
    top = np.argsort(-s, kind="stable")[:n]
    return float(y[top].mean() / y.mean())


@dataclass
class HoldoutEvaluation:
    """Metrics per scorer on one holdout, plus what plots need."""

    metrics: dict[str, dict[str, float]]
    scores: dict[str, np.ndarray]
    labels: np.ndarray
    calibration: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    k: int = 3
    n_rows: int = 0
    n_positives: int = 0

    def flat(self) -> dict[str, float]:
        """``{"model_auc": …, "popularity_ndcg_at_3": …}`` for MLflow."""
        return {f"{who}_{name}": value for who, m in self.metrics.items() for name, value in m.items()
                if value == value}  # drop NaN


def evaluate_holdout(model_scores: np.ndarray, train: pl.DataFrame, holdout: pl.DataFrame,
                     k: int = 3, n_bins: int = 10) -> HoldoutEvaluation:
    """The model's and both baselines' metrics on ``holdout`` (popularity fitted on ``train``)."""
    scores = {
        "model": np.asarray(model_scores, dtype=np.float64),
        "popularity": popularity_scores(train, holdout),
        "rules": holdout.get_column("rules_score").cast(pl.Float64).fill_null(float("-inf")).to_numpy(),
    }
    scores["rules"] = np.where(np.isfinite(scores["rules"]), scores["rules"], np.nanmin(
        np.where(np.isfinite(scores["rules"]), scores["rules"], np.nan)) - 1.0)
    metrics, curves = {}, {}
    for who, s in scores.items():
        metrics[who], curve = score_metrics(holdout, s, probabilistic=(who != "rules"), k=k, n_bins=n_bins)
        if curve is not None:
            curves[who] = curve
    y = holdout.get_column("label").to_numpy().astype(np.int64)
    return HoldoutEvaluation(metrics=metrics, scores=scores, labels=y, calibration=curves, k=k,
                             n_rows=len(holdout), n_positives=int(y.sum()))
