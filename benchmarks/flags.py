"""Feature-flag benchmark: ``pitwall.flags.evaluate`` for N synthetic users (1M by default), each feature of
experiments/flags.yaml on its own, then ``assignments`` (every feature, long format); best of ``--repeat`` runs,
peak RSS. The SDK's own ``gbhash`` (pure Python, once per distinct user id and seed) dominates a feature with an
experiment. Appends to docs/benchmarks.md.

    .venv/bin/python -m benchmarks.flags --users 1000000
"""

from __future__ import annotations

import argparse
import resource
import time
from datetime import UTC, datetime

import numpy as np
import polars as pl

from pitwall.flags import assignments, evaluate, load_flags

from .common import append_section, commit, machine


def synthetic_users(n: int, seed: int = 5) -> pl.DataFrame:
    """Customers and technicians (4:1) with every attribute flags.yaml may use; 1% without an app version."""
    rng = np.random.default_rng(seed)
    technician = rng.random(n) < 0.2
    ids = pl.Series(np.arange(n)).cast(pl.String).str.zfill(7)
    versions = np.array(["3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.4.1", "3.5.0"])
    return pl.DataFrame({
        "id": pl.select(pl.when(pl.Series(technician)).then(pl.lit("tec_")).otherwise(pl.lit("cus_")) + ids)
        .to_series(),
        "role": np.where(technician, "technician", "customer"),
        "region": rng.choice(["north", "south", "east", "west", "central"], n),
        "platform": rng.choice(["ios", "android"], n),
        "app_version": versions[rng.integers(0, len(versions), n)],
    }).with_columns(app_version=pl.when(pl.Series(rng.random(n) < 0.01)).then(None).otherwise("app_version"))


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def run(users: int, repeat: int) -> dict:
    flags = load_flags()
    frame = synthetic_users(users)
    per_feature = {key: best_of(repeat, lambda key=key: evaluate(flags, key, frame)) for key in flags.features}
    all_s = best_of(repeat, lambda: assignments(flags, frame))
    return {"users": users, "features": per_feature, "slowest_feature_s": max(per_feature.values()),
            "assignments_s": all_s, "assignment_rows": users * len(flags.features),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args()
    result = run(args.users, args.repeat)
    for key, seconds in result["features"].items():
        print(f"evaluate {key:40s} {seconds:8.2f} s")
    print(f"{'assignments (every feature)':49s} {result['assignments_s']:8.2f} s")
    print(f"{'peak RSS':49s} {result['peak_rss_mib']:8.0f} MiB")
    if not args.no_record:
        features = list(result["features"])
        append_section([
            f"\n## Feature flags — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
            f"Machine: {machine()}. `python -m benchmarks.flags`: `pitwall.flags.evaluate` on {args.users:,} synthetic "
            "users for each feature of experiments/flags.yaml, then `assignments` (all features); best of "
            f"{args.repeat}, wall seconds.\n",
            "| users | " + " | ".join(features) + " | **slowest feature s** | assignments s | peak RSS MiB |",
            "|---:|" + "---:|" * len(features) + "---:|---:|---:|",
            f"| {result['users']:,} | " + " | ".join(f"{result['features'][k]:.2f}" for k in features)
            + f" | **{result['slowest_feature_s']:.2f}** | {result['assignments_s']:.2f} |"
            f" {result['peak_rss_mib']:,.0f} |",
            "\nTarget: one feature for 1M users in a few seconds (the SDK's pure-Python hash, once per user and "
            "experiment, is most of it).\n",
        ])


if __name__ == "__main__":
    main()
