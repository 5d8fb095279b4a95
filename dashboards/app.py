"""Pitwall dashboards: one Streamlit app, one page per area, global filters in the sidebar.

    make dashboards        # streamlit run dashboards/app.py on 127.0.0.1

Reads only the published snapshot (``PITWALL_DATA_DIR/published/pitwall.duckdb``), read-only.
"""

from __future__ import annotations

import streamlit as st

from dashboards import data

st.set_page_config(page_title="Pitwall", page_icon=":material/speed:", layout="wide")

PAGES = [
    st.Page("views/overview.py", title="Overview", icon=":material/monitor_heart:", default=True),
    st.Page("views/funnels.py", title="Funnels", icon=":material/filter_alt:", url_path="funnels"),
    st.Page("views/engagement.py", title="Engagement & Retention", icon=":material/group:", url_path="engagement"),
    st.Page("views/release_health.py", title="Release Health", icon=":material/bug_report:",
            url_path="release-health"),
    st.Page("views/api_latency.py", title="API Latency", icon=":material/timer:", url_path="api-latency"),
    st.Page("views/trace_explorer.py", title="Trace Explorer", icon=":material/account_tree:", url_path="traces"),
    st.Page("views/feedback.py", title="Feedback", icon=":material/reviews:", url_path="feedback"),
    st.Page("views/experiments.py", title="Experiments", icon=":material/science:", url_path="experiments"),
    st.Page("views/recommendations.py", title="Recommendations", icon=":material/recommend:",
            url_path="recommendations"),
    st.Page("views/partners.py", title="Partners", icon=":material/handshake:", url_path="partners"),
    st.Page("views/support_console.py", title="Support console", icon=":material/support_agent:", url_path="support"),
]
page = st.navigation(PAGES)

published = data.published_file()
if data.published_version(published) is None:
    data.show_missing_published(published)
    st.stop()
# The date range and the filters' choices come from release health: without it there is nothing to filter.
if not data.require_tables(["mart_release_health", "apps"]):
    st.stop()
data.sidebar_filters()
page.run()
