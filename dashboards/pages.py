"""The app's pages, once: their order in the navigation, titles, icons and URLs.

Read by the app (``st.navigation``), the page tables and queries (``queries.PAGE_TABLES`` and
``PAGE_QUERIES``, keyed by ``Page.key``), the screenshots (``docs/screenshots/<key>.png``), the page
benchmark and the tests. A new page is a file in ``views/`` and a line here.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Page:
    key: str         # views/<key>.py; the name of its screenshot and of its entries in queries.py
    title: str
    icon: str
    url_path: str    # "" for the default page (Overview, at the app's root)
    reads_warehouse: bool = True  # the support console reads the support store, not the publication

    @property
    def file(self) -> str:
        """The page's script, relative to dashboards/ (as st.Page and Streamlit's AppTest take it)."""
        return f"views/{self.key}.py"


PAGES: tuple[Page, ...] = (
    Page("overview", "Overview", ":material/monitor_heart:", ""),
    Page("funnels", "Funnels", ":material/filter_alt:", "funnels"),
    Page("engagement", "Engagement & Retention", ":material/group:", "engagement"),
    Page("release_health", "Release Health", ":material/bug_report:", "release-health"),
    Page("api_latency", "API Latency", ":material/timer:", "api-latency"),
    Page("trace_explorer", "Trace Explorer", ":material/account_tree:", "traces"),
    Page("feedback", "Feedback", ":material/reviews:", "feedback"),
    Page("experiments", "Experiments", ":material/science:", "experiments"),
    Page("recommendations", "Recommendations", ":material/recommend:", "recommendations"),
    Page("partners", "Partners", ":material/handshake:", "partners"),
    Page("support_console", "Support console", ":material/support_agent:", "support", reads_warehouse=False),
)
# The pages that chart the published warehouse (each has its tables and queries in queries.py).
WAREHOUSE_PAGES: tuple[Page, ...] = tuple(p for p in PAGES if p.reads_warehouse)
