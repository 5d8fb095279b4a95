"""The pages' one door to the published snapshot, and the sidebar's global filters.

The pipeline replaces ``published/pitwall.duckdb`` by a rename after every run, and a process that keeps
a DuckDB connection open keeps seeing the old file (and blocks nothing only while it reads). So nothing
here holds a connection: each query that misses the cache opens the file read-only, runs, and closes it.
Results are cached by query, filters and the file's modification time, so a new publish is picked up on
the next rerun, and with a ttl so the cache does not grow stale forever.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import polars as pl
import streamlit as st

from dashboards import queries
from dashboards.queries import Filters
from pitwall import paths
from pitwall.duck import connect

PRODUCE_IT = "make demo"
CACHE_TTL = timedelta(minutes=10)
FILTER_KEYS = {"apps": "filter_apps", "platforms": "filter_platforms", "app_versions": "filter_app_versions",
               "roles": "filter_roles"}
DATES_KEY = "filter_dates"


def published_file() -> Path:
    return paths.published_path()


def published_version(path: Path) -> int | None:
    """The file's modification time (ns), or None when there is no usable file (missing or empty)."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns if stat.st_size else None


def show_missing_published(path: Path) -> None:
    st.warning(
        f"No published data yet: `{path}` is missing or empty.\n\n"
        f"Run `{PRODUCE_IT}` (a simulated world through the whole pipeline) or a pipeline run on your own "
        "data, then reload this page.",
        icon=":material/database_off:",
    )


@st.cache_data(ttl=CACHE_TTL, show_spinner=False, max_entries=1024)
def _run_cached(query_name: str, path: str, version: int, filters: Filters, args: tuple) -> pl.DataFrame:
    query = getattr(queries, query_name)
    con = connect(path, read_only=True)
    try:
        return query(con, filters, *args)
    finally:
        con.close()


def run(query: Callable[..., pl.DataFrame], filters: Filters, *args) -> pl.DataFrame:
    """``query(con, filters, *args)`` on the published file, cached on the file's version."""
    path = published_file()
    return _run_cached(query.__name__, str(path), published_version(path), filters, tuple(args))


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _tables(path: str, version: int) -> frozenset[str]:
    con = connect(path, read_only=True)
    try:
        return frozenset(name for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main'").fetchall())
    finally:
        con.close()


def missing_tables(tables: Sequence[str]) -> list[str]:
    path = published_file()
    present = _tables(str(path), published_version(path))
    return [table for table in tables if table not in present]


def require_tables(tables: Sequence[str]) -> bool:
    """True when every table is published; otherwise say which are not built yet and how to build them."""
    missing = missing_tables(tables)
    if missing:
        st.info(
            f"Not built yet: {', '.join(f'`{t}`' for t in missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not in the published file. Run `{PRODUCE_IT}` "
            "(or the pipeline) with a version of Pitwall that builds "
            f"{'it' if len(missing) == 1 else 'them'}, then reload.",
            icon=":material/construction:",
        )
    return not missing


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _choices(path: str, version: int) -> tuple[pl.DataFrame, dict[str, list[str]]]:
    con = connect(path, read_only=True)
    try:
        return queries.data_extent(con), queries.filter_options(con)
    finally:
        con.close()


def sidebar_filters() -> None:
    """The global filters. Their widgets live in the entrypoint, which runs before every page, and keep
    their values in st.session_state under fixed keys, so a choice survives switching pages."""
    path = published_file()
    first_day, last_day = data_extent()
    if first_day is None:
        return
    _, options = _choices(str(path), published_version(path))
    default_start = max(first_day, last_day - timedelta(days=6))
    # Seed the state once, then let the widgets own it (passing value= as well would reset it on each run).
    dates = st.session_state.get(DATES_KEY)
    if not dates or any(day < first_day or day > last_day for day in dates):
        st.session_state[DATES_KEY] = (default_start, last_day)
    for field, key in FILTER_KEYS.items():
        # A newer publish may have dropped a value someone had chosen.
        st.session_state[key] = [v for v in st.session_state.get(key, []) if v in options[field]]

    st.sidebar.header("Filters")
    st.sidebar.date_input("Dates (UTC)", key=DATES_KEY, min_value=first_day, max_value=last_day,
                          help="Overview compares this window with the one of the same length just before it.")
    for field, key in FILTER_KEYS.items():
        st.sidebar.multiselect(queries.FILTER_LABELS[field].capitalize(), options[field], key=key,
                               placeholder="All")
    st.sidebar.caption(f"Data: {first_day} to {last_day}, published file `{path.name}`.")


def data_extent() -> tuple:
    """(first day, last day) with sessions in the published file, or (None, None)."""
    path = published_file()
    if missing_tables(["mart_release_health", "apps"]):
        return None, None
    extent, _ = _choices(str(path), published_version(path))
    return extent.item(0, "first_day"), extent.item(0, "last_day")


@st.cache_data(ttl=CACHE_TTL, show_spinner=False)
def _last_ingestion(path: str, version: int):
    con = connect(path, read_only=True)
    try:
        return queries.last_ingestion(con).item(0, "last_ingested_at")
    finally:
        con.close()


def incomplete_day():
    """The last day, when the data may not hold all of it yet: the latest ingestion ran before that day ended
    (UTC). Daily charts mark it, so a dip on a half-loaded day does not read as a drop. None otherwise."""
    path = published_file()
    if missing_tables(["mart_release_health", "stg_events"]):
        return None
    _, last_day = data_extent()
    ingested_at = _last_ingestion(str(path), published_version(path))
    if last_day is None or ingested_at is None:
        return None
    day_end = datetime.combine(last_day + timedelta(days=1), time(), tzinfo=UTC)
    return last_day if ingested_at < day_end else None


def filters() -> Filters:
    """The global filters as chosen in the sidebar (a half-picked date range counts as one day)."""
    dates = tuple(st.session_state.get(DATES_KEY) or ())
    start = dates[0]
    end = dates[1] if len(dates) > 1 else start
    return Filters(start=start, end=end,
                   **{field: tuple(sorted(st.session_state.get(key, []))) for field, key in FILTER_KEYS.items()})


def page_ready(page: str) -> bool:
    """Whether a page's tables exist; if not, the page has already said so."""
    return require_tables(queries.PAGE_TABLES[page])


def caption_ignored(*sources: str) -> None:
    ignored = queries.ignored_filters(*sources)
    if ignored:
        names = " and ".join(ignored).capitalize()
        st.caption(f"{names} filter{'s do' if len(ignored) > 1 else ' does'} not apply here "
                   f"({', '.join(sources)} {'have' if len(sources) > 1 else 'has'} no such column).")
