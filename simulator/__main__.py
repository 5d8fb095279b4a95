"""python -m simulator --out <landing dir> --customers N --technicians M --days D --seed S ..."""
from __future__ import annotations

import argparse
import datetime as dt
import sys

from .generate import DEFAULT_START, generate, size_for_events


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m simulator",
        description="Write a synthetic Pitwall landing zone (events, crashes, traces, ops, telemetry) and truth.json. "
                    "The same arguments give byte-identical files.",
    )
    p.add_argument("--out", required=True, help="landing directory ($PITWALL_DATA_DIR/landing); a previous simulator run there is replaced")
    p.add_argument("--customers", type=int, default=300)
    p.add_argument("--technicians", type=int, default=40)
    p.add_argument("--days", type=int, default=14)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--start-date", type=dt.date.fromisoformat, default=DEFAULT_START, help="first day, YYYY-MM-DD (default %(default)s)")
    p.add_argument("--malformed", action=argparse.BooleanOptionalAction, default=True,
                   help="plant malformed input of every quarantine reason (default on)")
    p.add_argument("--events-per-file", type=int, default=100_000, help="lines per events/crashes file, rows per Parquet file")
    p.add_argument("--target-events", type=int, default=None,
                   help="size the world for about this many events over --days (overrides --customers/--technicians: "
                        "customers = E / days / (events per customer-day + events per technician-day / 7.5), technicians = customers / 7.5)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --out that is not a previous simulator run")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    customers, technicians = args.customers, args.technicians
    if args.target_events:
        customers, technicians = size_for_events(args.target_events, args.days, args.start_date)
        print(f"--target-events {args.target_events:,} over {args.days} days: {customers:,} customers, {technicians:,} technicians", file=sys.stderr)
    summary = generate(
        args.out, customers=customers, technicians=technicians, days=args.days, seed=args.seed, start=args.start_date,
        malformed=args.malformed, events_per_file=args.events_per_file, progress=not args.no_progress, overwrite=args.overwrite,
    )
    print(summary.text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
