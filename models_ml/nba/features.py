"""Feature spec and encoding: polars candidate frame -> float32 matrix XGBoost reads natively.

Categoricals are encoded as codes into category lists fitted on the training rows and stored with the
model (a booster attribute, also logged as an MLflow artifact), so scoring always uses the training
categories: a value unseen in training becomes missing (NaN), which XGBoost routes down the default
branch. Numerics are cast to float32; nulls are missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import polars as pl

Kind = Literal["numeric", "categorical"]
ENCODING_ATTR = "pitwall_encoding"


@dataclass(frozen=True)
class Feature:
    name: str
    kind: Kind

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"feature {self.name!r}: kind must be 'numeric' or 'categorical', not {self.kind!r}")


def as_spec(spec: Iterable[Feature | tuple[str, str]]) -> tuple[Feature, ...]:
    """Accept ``[("oil_life_pct", "numeric"), ("region", "categorical"), ...]`` or ``Feature`` objects."""
    out = tuple(f if isinstance(f, Feature) else Feature(*f) for f in spec)
    names = [f.name for f in out]
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate feature names in spec: {names}")
    if not out:
        raise ValueError("empty feature spec")
    return out


@dataclass(frozen=True)
class Encoding:
    """What scoring needs to rebuild the training matrix: feature order, kinds, category lists."""

    features: tuple[Feature, ...]
    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def xgb_types(self) -> list[str]:
        return ["c" if f.kind == "categorical" else "q" for f in self.features]

    def to_json(self) -> str:
        return json.dumps({"features": [[f.name, f.kind] for f in self.features],
                           "categories": {k: list(v) for k, v in self.categories.items()}}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Encoding:
        raw = json.loads(text)
        return cls(features=as_spec(raw["features"]),
                   categories={k: tuple(v) for k, v in raw["categories"].items()})


def fit_encoding(frame: pl.DataFrame, spec: Sequence[Feature | tuple[str, str]]) -> Encoding:
    """Category lists (sorted, nulls excluded) from the training rows."""
    features = as_spec(spec)
    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")
    cats = {}
    for f in features:
        if f.kind == "categorical":
            values = frame.get_column(f.name).cast(pl.String).drop_nulls().unique().sort()
            cats[f.name] = tuple(values.to_list())
    return Encoding(features=features, categories=cats)


def encode(frame: pl.DataFrame, encoding: Encoding) -> np.ndarray:
    """The model matrix (rows × features, float32, NaN = missing), vectorized in polars."""
    missing = [n for n in encoding.names if n not in frame.columns]
    if missing:
        raise ValueError(f"feature columns missing from the frame: {missing}")
    exprs = []
    for f in encoding.features:
        if f.kind == "categorical":
            cats = list(encoding.categories[f.name])
            exprs.append(pl.col(f.name).cast(pl.String)
                         .replace_strict(cats, list(range(len(cats))), default=None, return_dtype=pl.Float32)
                         .fill_null(float("nan")).alias(f.name))
        else:
            exprs.append(pl.col(f.name).cast(pl.Float32).fill_null(float("nan")).alias(f.name))
    if not len(frame):
        return np.empty((0, len(exprs)), dtype=np.float32)
    return np.ascontiguousarray(frame.select(exprs).to_numpy(), dtype=np.float32)
