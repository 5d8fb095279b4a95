"""Holdout plots logged to MLflow: ROC, precision-recall, reliability (calibration), cumulative gain and
feature importance, for any model and its baselines.

Each plot takes the holdout's labels and one score array per scorer (the model first, then its baselines)
and computes what its legend says with scikit-learn; the next-best-action model (``holdout_figures``) and the
parts model draw the same plots. Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no
display needed).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

from models_ml.nba.evaluate import HoldoutEvaluation, calibration

COLORS = {"model": "#1f77b4", "popularity": "#ff7f0e", "rules": "#2ca02c", "champion": "#9467bd",
          "parts_list": "#ff7f0e"}
Scores = Mapping[str, np.ndarray]


def _both_classes(labels: np.ndarray) -> bool:
    return 0 < int(np.sum(labels)) < len(labels)


def roc_figure(labels: np.ndarray, scores: Scores, holdout: str = "the holdout") -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    if _both_classes(labels):
        for who, s in scores.items():
            fpr, tpr, _ = roc_curve(labels, s)
            ax.plot(fpr, tpr, color=COLORS.get(who), label=f"{who} (AUC {roc_auc_score(labels, s):.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=f"ROC on {holdout}")
    ax.legend(loc="lower right")
    return fig


def precision_recall_figure(labels: np.ndarray, scores: Scores, holdout: str = "the holdout") -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    if _both_classes(labels):
        for who, s in scores.items():
            precision, recall, _ = precision_recall_curve(labels, s)
            ax.plot(recall, precision, color=COLORS.get(who), drawstyle="steps-post",
                    label=f"{who} (AP {average_precision_score(labels, s):.3f})")
    ax.axhline(float(np.mean(labels)) if len(labels) else 0.0, ls=":", color="grey", label="base rate")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title=f"Precision-recall on {holdout}")
    ax.legend(loc="lower left")  # the curves start high on the left and fall to the right
    return fig


def calibration_figure(labels: np.ndarray, probabilities: Scores, holdout: str = "the holdout",
                       n_bins: int = 10) -> Figure:
    """Only scorers whose scores are probabilities (a rules score is not)."""
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    top = 0.0
    for who, p in probabilities.items():
        curve, ece = calibration(labels, np.clip(p, 1e-6, 1 - 1e-6), n_bins=n_bins)
        x, y = curve["mean_predicted"], curve["observed_rate"]
        ax.plot(x, y, marker="o", color=COLORS.get(who), label=f"{who} (ECE {ece:.3f})")
        top = max(top, max(x, default=0), max(y, default=0))
    top = min(1.0, top * 1.05 + 0.01)
    ax.plot([0, top], [0, top], ls=":", color="grey", label="perfectly calibrated")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted probability", ylabel="observed rate",
           title=f"Reliability on {holdout}")
    ax.legend(loc="upper left")
    return fig


def gain_figure(labels: np.ndarray, scores: Scores, holdout: str = "the holdout") -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    y = np.asarray(labels)
    share = np.arange(1, len(y) + 1) / max(1, len(y))
    for who, s in scores.items():
        gain = np.cumsum(y[np.argsort(-np.asarray(s), kind="stable")]) / max(1, y.sum())
        ax.plot(share, gain, color=COLORS.get(who), label=who)
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="random")
    ax.set(xlabel="share of rows, by score", ylabel="share of positives captured",
           title=f"Cumulative gain on {holdout}")
    ax.legend(loc="lower right")
    return fig


def importance_figure(gain_share: Mapping[str, float], top: int = 15) -> Figure:
    """The features that carry the most of the booster's total gain, largest on top."""
    ranked = sorted(gain_share.items(), key=lambda kv: kv[1], reverse=True)[:top][::-1]
    fig = Figure(figsize=(6, 0.8 + 0.32 * max(1, len(ranked))), dpi=100)
    ax = fig.add_subplot()
    ax.barh([name for name, _ in ranked], [share for _, share in ranked], color=COLORS["model"])
    for i, (_, share) in enumerate(ranked):
        ax.text(share, i, f" {share:.1%}", va="center", fontsize=8)
    ax.set(xlabel="share of the total gain", title="Feature importance (total gain)")
    ax.set_xlim(0, max([s for _, s in ranked], default=0) * 1.2 or 1)
    fig.tight_layout()
    return fig


def model_figures(labels: np.ndarray, scores: Scores, probabilities: Scores, gain_share: Mapping[str, float],
                  holdout: str = "the holdout") -> dict[str, Figure]:
    """Every plot of a run, by its artifact path."""
    return {"plots/roc.png": roc_figure(labels, scores, holdout),
            "plots/precision_recall.png": precision_recall_figure(labels, scores, holdout),
            "plots/calibration.png": calibration_figure(labels, probabilities, holdout),
            "plots/gain.png": gain_figure(labels, scores, holdout),
            "plots/feature_importance.png": importance_figure(gain_share)}


def holdout_figures(ev: HoldoutEvaluation, gain_share: Mapping[str, float]) -> dict[str, Figure]:
    """The next-best-action model's plots: the model against both baselines on the holdout week."""
    probabilistic = {who: s for who, s in ev.scores.items() if who in ev.calibration}
    return model_figures(ev.labels, ev.scores, probabilistic, gain_share, holdout="the holdout week")
