"""Holdout plots logged to MLflow: ROC, reliability (calibration) and cumulative gain.

Drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from sklearn.metrics import roc_curve

from models_ml.nba.evaluate import HoldoutEvaluation

COLORS = {"model": "#1f77b4", "popularity": "#ff7f0e", "rules": "#2ca02c", "champion": "#9467bd"}


def roc_figure(ev: HoldoutEvaluation) -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    for who, scores in ev.scores.items():
        fpr, tpr, _ = roc_curve(ev.labels, scores)
        ax.plot(fpr, tpr, color=COLORS.get(who), label=f"{who} (AUC {ev.metrics[who]['auc']:.3f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC on the holdout week")
    ax.legend(loc="lower right")
    return fig


def calibration_figure(ev: HoldoutEvaluation) -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    top = 0.0
    for who, curve in ev.calibration.items():
        x, y = curve["mean_predicted"], curve["observed_rate"]
        ax.plot(x, y, marker="o", color=COLORS.get(who), label=f"{who} (ECE {ev.metrics[who]['ece']:.3f})")
        top = max(top, max(x, default=0), max(y, default=0))
    top = min(1.0, top * 1.05 + 0.01)
    ax.plot([0, top], [0, top], ls=":", color="grey", label="perfectly calibrated")
    ax.set(xlim=(0, top), ylim=(0, top), xlabel="mean predicted propensity", ylabel="observed acceptance rate",
           title="Reliability on the holdout week")
    ax.legend(loc="upper left")
    return fig


def gain_figure(ev: HoldoutEvaluation) -> Figure:
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.add_subplot()
    y = ev.labels
    share = np.arange(1, len(y) + 1) / len(y)
    for who, scores in ev.scores.items():
        order = np.argsort(-scores, kind="stable")
        gain = np.cumsum(y[order]) / max(1, y.sum())
        ax.plot(share, gain, color=COLORS.get(who), label=f"{who} (lift@10% {ev.metrics[who]['lift_top_10pct']:.2f})")
    ax.plot([0, 1], [0, 1], ls=":", color="grey", label="random")
    ax.set(xlabel="share of candidates, by score", ylabel="share of acceptances captured",
           title="Cumulative gain on the holdout week")
    ax.legend(loc="lower right")
    return fig


def holdout_figures(ev: HoldoutEvaluation) -> dict[str, Figure]:
    return {"plots/roc.png": roc_figure(ev), "plots/calibration.png": calibration_figure(ev),
            "plots/gain.png": gain_figure(ev)}
