"""Random streams and vectorized identifier formatting.

Every random draw comes from a generator derived from (seed, stream, *keys), so a part of the
simulation (one day, one source) gets the same numbers whatever else the run does: that is what
makes the output byte-identical for a seed.
"""
from __future__ import annotations

import numpy as np
import polars as pl

_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)

# Stream numbers: one per concern, never reused.
WORLD, JOBS, DAY_SESSIONS, DAY_DELIVERY, DAY_IDS, DAY_TRACES, DAY_CRASHES = 1, 2, 3, 4, 5, 6, 7
OPS, TELEMETRY, FLUSH_EVENTS, MALFORMED, PARTS = 8, 9, 10, 11, 12
PARTNERS = 13  # simulator/partners/world.py: drawn after the run, from nothing the run draws
HEAVY_VIEWERS = 14  # simulator/recommendations.py: the heavy viewers' extra cards, apart from the day's stream


def rng_for(seed: int, stream: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, *keys]))


def _hex_matrix(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    raw = np.frombuffer(rng.bytes(n * nbytes), dtype=np.uint8).reshape(n, nbytes)
    chars = np.empty((n, 2 * nbytes), dtype=np.uint8)
    chars[:, 0::2] = _HEX[raw >> 4]
    chars[:, 1::2] = _HEX[raw & 15]
    return chars


def hex_ids(rng: np.random.Generator, n: int, nbytes: int) -> np.ndarray:
    """n lowercase hex strings of 2*nbytes characters (OTLP trace/span ids, Sentry event ids), as bytes."""
    if n == 0:
        return np.empty(0, dtype=f"S{2 * nbytes}")
    return _hex_matrix(rng, n, nbytes).view(f"S{2 * nbytes}").ravel()


def uuid_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    """n UUID-formatted random ids (8-4-4-4-12 hex), as bytes; like the SDK samples, no version nibble."""
    if n == 0:
        return np.empty(0, dtype="S36")
    chars = _hex_matrix(rng, n, 16)
    out = np.full((n, 36), ord("-"), dtype=np.uint8)
    out[:, 0:8] = chars[:, 0:8]
    out[:, 9:13] = chars[:, 8:12]
    out[:, 14:18] = chars[:, 12:16]
    out[:, 19:23] = chars[:, 16:20]
    out[:, 24:36] = chars[:, 20:32]
    return out.view("S36").ravel()


def to_series(values: np.ndarray, name: str = "") -> pl.Series:
    """Byte strings (numpy S dtype) to a polars String series, without a Python-object round trip."""
    return pl.Series(name, values).cast(pl.String)


def decode(values: np.ndarray) -> list[str]:
    return [v.decode("ascii") for v in values]
