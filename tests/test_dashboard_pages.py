"""The app's page list is kept once (dashboards/pages.py) and everything else follows it."""

from __future__ import annotations

from conftest import ROOT
from dashboards import queries
from dashboards.pages import PAGES, WAREHOUSE_PAGES


def test_every_view_is_a_page_and_every_page_a_view():
    views = {f"views/{path.name}" for path in (ROOT / "dashboards" / "views").glob("*.py")}
    assert {p.file for p in PAGES} == views
    assert len({p.key for p in PAGES}) == len({p.url_path for p in PAGES}) == len(PAGES)
    assert [p.url_path for p in PAGES].count("") == 1  # one default page


def test_every_page_that_reads_the_warehouse_names_its_tables_and_queries():
    keys = {p.key for p in WAREHOUSE_PAGES}
    assert set(queries.PAGE_TABLES) == keys
    assert set(queries.PAGE_QUERIES) == keys


def test_the_app_and_the_screenshots_take_the_list_from_the_one_module():
    """No second list: neither file spells out a page's script or its URL again."""
    for user in ("app.py", "screenshots.py"):
        text = (ROOT / "dashboards" / user).read_text()
        assert "from dashboards.pages import PAGES" in text
        assert not any(p.file in text or f'"{p.url_path}"' in text for p in PAGES if p.url_path), user
