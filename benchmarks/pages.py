"""Render time of every dashboard page on the published file of ``PITWALL_DATA_DIR``, printed as JSON.

Each page is rendered through Streamlit's AppTest (the script runs as it does for a browser session,
queries included) with the query cache cleared first (cold: what the first visitor after a publish
waits) and then again with the cache warm, after one warm-up run that pays the imports a running server
has already paid. The floor is AppTest rendering a one-line page in the same
process: Streamlit's own cost per run, which no page can go below.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "dashboards" / "app.py"
TIMEOUT_S = 60


def _check(at: AppTest) -> AppTest:
    if at.exception:
        raise SystemExit(f"page raised: {[e.message for e in at.exception]}")
    return at


def render_seconds(page: str, default_page: str, *, cold: bool) -> float:
    """Seconds of one run of `page`; the app is opened first (its default page) when `page` is another."""
    import streamlit as st

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT_S)
    if page != default_page:
        _check(at.run())
        at.switch_page(page)
    if cold:
        st.cache_data.clear()
    start = time.perf_counter()
    _check(at.run())
    return time.perf_counter() - start


def floor_seconds() -> float:
    start = time.perf_counter()
    _check(AppTest.from_string("import streamlit as st\nst.write('ok')").run(timeout=TIMEOUT_S))
    return time.perf_counter() - start


def page_files() -> list[str]:
    """The app's pages, in the order of its navigation."""
    from dashboards.pages import PAGES

    return [p.file for p in PAGES]


def main() -> None:
    pages = page_files()
    render_seconds(pages[0], pages[0], cold=True)  # imports (plotly, polars, …) once, as a server process would
    results = {"floor_s": statistics.median(floor_seconds() for _ in range(5)), "pages": {}}
    for page in pages:
        cold = render_seconds(page, pages[0], cold=True)
        warm = statistics.median(render_seconds(page, pages[0], cold=False) for _ in range(3))
        results["pages"][page] = {"cold_s": round(cold, 3), "warm_s": round(warm, 3)}
    results["floor_s"] = round(results["floor_s"], 3)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
