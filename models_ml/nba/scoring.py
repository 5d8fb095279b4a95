"""Batch scoring with the champion, the rules-only fallback signal, and readable reasons.

    champ = load_champion()                  # Champion, or ChampionUnavailable(reason=…)
    if isinstance(champ, ChampionUnavailable):
        ...  # rank by rules_score, policy "rules_fallback", log champ.reason
    scored = score(champ, candidates)         # + propensity, expected_value, model_version, mlflow_run_id
    ...                                       # the caller ranks, caps and keeps the top rows
    kept = explain(champ, kept, templates)    # + reason_codes, reason_features, reason_method

Only ``models:/pitwall-nba@champion`` is ever scored: the alias is resolved to its version once and that
exact version is loaded (never "the latest"), so an alias moved mid-run cannot mix versions.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import mlflow
import mlflow.xgboost
import numpy as np
import polars as pl
import xgboost as xgb

from models_ml.nba.features import Encoding, encode
from models_ml.nba.tracking import MODEL_NAME, configure
from models_ml.nba.train import encoding_of, predict

CHAMPION = "champion"
POLICY_MODEL = "model"
POLICY_FALLBACK = "rules_fallback"


@dataclass
class Champion:
    booster: xgb.Booster
    encoding: Encoding
    model_name: str
    version: str
    run_id: str
    alias: str = CHAMPION
    load_seconds: float = 0.0

    @property
    def uri(self) -> str:
        return f"models:/{self.model_name}/{self.version}"


@dataclass
class ChampionUnavailable:
    """No usable champion: the caller publishes the rules-only ordering with this policy and reason."""

    reason: str
    policy: str = POLICY_FALLBACK


def load_champion(name: str = MODEL_NAME, alias: str = CHAMPION) -> Champion | ChampionUnavailable:
    """The version holding ``alias`` (default ``champion``), loaded with its encoding; never the latest."""
    t0 = time.perf_counter()
    try:
        client, _ = configure()
        mv = client.get_model_version_by_alias(name, alias)
    except Exception as exc:  # noqa: BLE001 - no registered model, no alias, store unreadable
        return ChampionUnavailable(f"no {alias!r} alias on registered model {name!r}: {type(exc).__name__}: {exc}")
    try:
        booster = mlflow.xgboost.load_model(f"models:/{name}/{mv.version}")
        encoding = encoding_of(booster)
    except Exception as exc:  # noqa: BLE001 - artifacts missing or corrupt
        return ChampionUnavailable(f"{name} v{mv.version} ({alias}) could not be loaded: {type(exc).__name__}: {exc}")
    return Champion(booster=booster, encoding=encoding, model_name=name, version=str(mv.version),
                    run_id=mv.run_id, alias=alias, load_seconds=time.perf_counter() - t0)


def score(champion: Champion, frame: pl.DataFrame, batch_rows: int = 1_000_000) -> pl.DataFrame:
    """``frame`` plus ``propensity`` (float32), ``expected_value`` (propensity × action_value when the frame
    has ``action_value``), ``policy``, ``model_alias``, ``model_version``, ``mlflow_run_id``.
    Encoded and scored in vectorized batches of ``batch_rows``."""
    p = predict(champion.booster, champion.encoding, frame, batch_rows=batch_rows)
    out = frame.with_columns(pl.Series("propensity", p, dtype=pl.Float32))
    if "action_value" in out.columns:
        out = out.with_columns((pl.col("propensity").cast(pl.Float64) * pl.col("action_value")).alias("expected_value"))
    return out.with_columns(pl.lit(POLICY_MODEL).alias("policy"), pl.lit(champion.alias).alias("model_alias"),
                            pl.lit(champion.version).alias("model_version"),
                            pl.lit(champion.run_id).alias("mlflow_run_id"))


def contributions(booster: xgb.Booster, encoding: Encoding, frame: pl.DataFrame,
                  method: Literal["exact", "approx"] = "exact", batch_rows: int = 200_000) -> np.ndarray:
    """Per-row, per-feature contributions to the log-odds (bias column dropped), rows × features."""
    nthread = int(booster.attr("nthread") or 0) or None
    out = np.empty((len(frame), len(encoding.names)), dtype=np.float32)
    for start in range(0, len(frame), batch_rows):
        chunk = frame.slice(start, batch_rows)
        d = xgb.DMatrix(encode(chunk, encoding), feature_names=encoding.names, feature_types=encoding.xgb_types,
                        enable_categorical=True, nthread=nthread)
        c = booster.predict(d, pred_contribs=True, approx_contribs=(method == "approx"))
        out[start:start + len(chunk)] = c[:, :-1]
    return out


def render_reason(name: str, template: str | None, values: pl.Series) -> pl.Series:
    """Template text per row; formatting runs once per distinct value, not per row."""
    uniq = values.unique()
    texts = []
    for v in uniq.to_list():
        if v is None:
            texts.append(f"{name.replace('_', ' ')} unknown")
            continue
        try:
            texts.append(template.format(value=v) if template else f"{name.replace('_', ' ')}: {v}")
        except (ValueError, TypeError, KeyError, IndexError):
            texts.append(f"{name.replace('_', ' ')}: {v}")
    lookup = pl.DataFrame({"v": uniq, "text": pl.Series(texts, dtype=pl.String)})
    joined = pl.DataFrame({"v": values}).join(lookup, on="v", how="left", maintain_order="left", nulls_equal=True)
    return joined.get_column("text")


def explain(model: Champion, kept: pl.DataFrame, templates: Mapping[str, str], top_n: int = 3,
            method: Literal["exact", "approx"] = "exact", min_contribution: float = 0.0,
            exclude: tuple[str, ...] = (), fallback: str | None = None,
            only_when_positive: tuple[str, ...] = (), context: tuple[str, ...] = ()) -> pl.DataFrame:
    """Reasons for the rows the caller kept after ranking: ``kept`` plus
    - ``reason_features``: up to ``top_n`` features with the largest positive contributions: the first must be
      > 0, the others > ``min_contribution`` (log-odds), so every row with any positive contribution has a reason;
    - ``reason_codes``: the same, rendered with ``templates[feature]`` (``{value}`` is the row's value),
    - ``reason_method``: ``exact`` (TreeSHAP, ``pred_contribs``) or ``approx`` (Saabas; cheaper, may differ).
    A row with no positive contribution at all gets ``[fallback]`` as its reason codes when ``fallback`` is
    given (and no reason features).

    Features named in ``exclude`` (e.g. ``action_id``) are never given as reasons, nor is a missing reading,
    nor a feature of ``only_when_positive`` (flags, counts) whose value is not above zero. Features named in
    ``context`` (true of the customer, nothing to act on: region, fuel type) are given only on rows where no
    other feature is a positive reason. Exact contributions cost about a millisecond per row: call this only
    on the kept rows."""
    names = model.encoding.names
    contrib = contributions(model.booster, model.encoding, kept, method=method)
    for i, n in enumerate(names):
        if n in exclude:
            contrib[:, i] = -np.inf
        elif n in kept.columns:
            # a missing reading is no reason to show anything ("battery voltage unknown")
            absent = kept.get_column(n).is_null()
            if n in only_when_positive:
                absent = absent | (kept.get_column(n).fill_null(0) <= 0)
            contrib[absent.to_numpy(), i] = -np.inf
    in_context = np.array([n in context for n in names], dtype=bool)
    if in_context.any():
        actionable = (contrib[:, ~in_context] > 0).any(axis=1)
        contrib[np.ix_(actionable, in_context)] = -np.inf
    k = min(top_n, len(names))
    top = np.argsort(-contrib, axis=1, kind="stable")[:, :k]
    top_val = np.take_along_axis(contrib, top, axis=1)
    code_cols, feat_cols = [], []
    names_arr = np.array(names, dtype=object)
    for j in range(k):
        ok = top_val[:, j] > (0.0 if j == 0 else min_contribution)
        feat = np.where(ok, names_arr[top[:, j]], None)
        text_np = np.full(len(kept), None, dtype=object)
        for fi, n in enumerate(names):
            rows = np.flatnonzero(ok & (top[:, j] == fi))
            if len(rows):
                text_np[rows] = render_reason(n, templates.get(n), kept.get_column(n).gather(rows)).to_numpy()
        code_cols.append(pl.Series(f"c{j}", text_np.tolist(), dtype=pl.String))
        feat_cols.append(pl.Series(f"f{j}", feat.tolist(), dtype=pl.String))
    parts = pl.DataFrame(code_cols + feat_cols)
    lists = parts.select(
        pl.concat_list([f"c{j}" for j in range(k)]).list.drop_nulls().alias("reason_codes"),
        pl.concat_list([f"f{j}" for j in range(k)]).list.drop_nulls().alias("reason_features"))
    if fallback is not None:
        lists = lists.with_columns(pl.when(pl.col("reason_codes").list.len() == 0).then(pl.lit([fallback]))
                                   .otherwise(pl.col("reason_codes")).alias("reason_codes"))
    return pl.concat([kept, lists], how="horizontal").with_columns(pl.lit(method).alias("reason_method"))


def customer_reasons(model: Champion, kept: pl.DataFrame, method: Literal["exact", "approx"] = "exact") -> pl.DataFrame:
    """The reasons a customer is shown, with the spec's rules (models_ml/nba/spec.py): actionable facts about
    the vehicle or its history first; context (region, segment, fuel type) only when none pushed the row up;
    identity and earlier offers never; the fallback text when nothing did."""
    from models_ml.nba.spec import CONTEXT_REASONS, FALLBACK_REASON, NOT_REASONS, REASON_TEMPLATES, REASON_WHEN_POSITIVE

    return explain(model, kept, REASON_TEMPLATES, method=method, exclude=NOT_REASONS,
                   only_when_positive=REASON_WHEN_POSITIVE, context=CONTEXT_REASONS, fallback=FALLBACK_REASON)


def reason_shares(model: Champion, explained: pl.DataFrame) -> dict[str, float]:
    """How the reasons of ``explained`` rows (the output of :func:`customer_reasons`) explain them:
    - ``reasons_actionable_share``: rows with at least one actionable reason (a fact about the vehicle or history);
    - ``reasons_context_only_share``: rows whose reasons are context only (region, segment, fuel type);
    - ``reasons_fallback_share``: rows with no positive reason (the fallback text);
    - ``reasons_top_feature_shown_share``: rows whose largest positive contribution is among their reasons
      (the rest were pushed most by something never shown: the action itself, its placement, earlier offers)."""
    from models_ml.nba.spec import CONTEXT_REASONS

    n = len(explained)
    if not n:
        return {}
    features = explained.get_column("reason_features")
    actionable = features.list.eval(~pl.element().is_in(list(CONTEXT_REASONS))).list.any().fill_null(False)
    any_reason = features.list.len() > 0
    contrib = contributions(model.booster, model.encoding, explained, method=explained["reason_method"][0]
                            if "reason_method" in explained.columns else "exact")
    names = np.array(model.encoding.names, dtype=object)
    top = np.where(contrib.max(axis=1) > 0, names[np.argmax(contrib, axis=1)], None)
    shown = pl.Series([t is not None and t in (f or []) for t, f in zip(top, features.to_list())])
    return {"reasons_actionable_share": float(actionable.sum()) / n,
            "reasons_context_only_share": float((any_reason & ~actionable).sum()) / n,
            "reasons_fallback_share": float((~any_reason).sum()) / n,
            "reasons_top_feature_shown_share": float(shown.sum()) / n}
