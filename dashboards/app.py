"""Pitwall dashboards: one Streamlit app, one page per area, global filters in the sidebar.

    make dashboards        # streamlit run dashboards/app.py on 127.0.0.1

Reads only the published snapshot (``PITWALL_DATA_DIR/published/pitwall.duckdb``), read-only.
"""

from __future__ import annotations

import streamlit as st

from dashboards import data
from dashboards.pages import PAGES

st.set_page_config(page_title="Pitwall", page_icon=":material/speed:", layout="wide")

page = st.navigation([
    st.Page(p.file, title=p.title, icon=p.icon, url_path=p.url_path or None, default=not p.url_path)
    for p in PAGES
])

published = data.published_file()
if data.published_version(published) is None:
    data.show_missing_published(published)
    st.stop()
# The date range and the filters' choices come from release health: without it there is nothing to filter.
if not data.require_tables(["mart_release_health", "apps"]):
    st.stop()
data.sidebar_filters()
page.run()
