"""``python -m orchestration.ingestion [source ...]``: ingest landing files outside Dagster and print
the run summary (handy for scripts, benchmarks and the kill/re-run tests). Exits 1, naming them, when files
could not be ingested (the others are in)."""

from __future__ import annotations

import argparse
import logging
import sys

from .ingest import clean_stale_temporaries, ingest_source
from .sources import SOURCES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("sources", nargs="*", help=f"any of {', '.join(SOURCES)} (default: all)")
    args = parser.parse_args(argv)
    unknown = set(args.sources) - set(SOURCES)
    if unknown:
        parser.error(f"unknown source(s): {', '.join(sorted(unknown))}")
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    clean_stale_temporaries()
    failed: list[str] = []
    for name in args.sources or SOURCES:
        summary = ingest_source(name)
        print(summary.describe(), flush=True)
        failed += summary.failed_files
    if failed:  # the others are in; these are retried by the next run
        print(f"{len(failed)} landing file(s) could not be ingested:", *failed, sep="\n  ", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
