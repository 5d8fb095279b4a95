"""``python -m orchestration.ingestion [source ...]``: ingest landing files outside Dagster and print
the run summary (handy for scripts, benchmarks and the kill/re-run tests)."""

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
    for name in args.sources or SOURCES:
        print(ingest_source(name).describe(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
