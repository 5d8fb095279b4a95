"""Every dashboard page in a real browser: Debian's Chromium driven by Playwright (dashboards/screenshots.py,
the code `make screenshots` runs) at 1280 and 1600 px against `streamlit run dashboards/app.py` on the shared world's publication.

A page fails on an exception box, on a chart that leaves some of its categories unnamed (Vega hides labels
that would overlap), or on dates drawn as numbers; each page is also shot, as `make screenshots` does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboards import screenshots
from dashboards.pages import PAGES

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(screenshots.CHROMIUM).exists():
        reason = f"{screenshots.CHROMIUM} is missing: `make chromium` installs Debian's"
        if os.environ.get("PITWALL_REQUIRE_BROWSER"):  # CI installs it and must run this test, not skip it
            pytest.fail(reason)
        pytest.skip(reason)
    return screenshots.CHROMIUM


def test_chart_defects_names_unlabelled_categories_and_dates_drawn_as_numbers():
    axes = [
        {"chart": 0, "description": "Y-axis for a discrete scale with 8 values: a, b, ending with h", "shown": ["a"] * 4},
        {"chart": 0, "description": "X-axis titled 'ms' for a linear scale with values from 0 to 800", "shown": ["0"]},
        {"chart": 1, "description": "X-axis for a linear scale with values from 1,764,547,200,000 to 1,764,633,600,000",
         "shown": ["1,764,547,200,000"]},
        {"chart": 2, "description": "X-axis titled 'week starting' for a linear scale with values from 0 to 9",
         "shown": ["0"]},
        {"chart": 3, "description": "Y-axis titled 'NPS (week starting)' for a linear scale with values from 0 to 26",
         "shown": ["0"]},
        {"chart": 3, "description": "X-axis for a time scale with values from November 29 to December 05",
         "shown": ["Nov 29"]},
        {"chart": 3, "description": "Y-axis for a discrete scale with 3 values: oem, roadside, warranty",
         "shown": ["oem", "roadside", "warranty"]},
    ]
    found = screenshots.chart_defects(axes)
    assert [d.split(":")[0] for d in found] == ["chart 1", "chart 2", "chart 3"]
    assert "names 4 of its 8 categories" in found[0]


WIDTHS = (1280, 1600)  # the screens analysts read them on


def test_every_page_renders_readably_in_chromium_at_each_width(world, chromium, tmp_path, monkeypatch):
    root, _ = world
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    monkeypatch.setenv("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    # the support console as `make dashboards` opens it: the demo agent, signed in in development mode
    monkeypatch.setenv("PITWALL_SUPPORT_DEV_MODE", "1")
    monkeypatch.setenv("PITWALL_SUPPORT_DEV_USER", "sam.agent@example.com")
    # one server for both widths: the second width reads the pages' cached queries, as a reader's next visit
    folders = {width: tmp_path / str(width) for width in WIDTHS}
    by_width = screenshots.take_at_widths(folders, 1000, full_page=True, env=dict(os.environ))
    assert list(by_width) == list(WIDTHS)
    for width, defects in by_width.items():
        assert list(defects) == [p.key for p in PAGES], width
        assert {key: found for key, found in defects.items() if found} == {}, width
        assert all((folders[width] / f"{p.key}.png").stat().st_size > 20_000 for p in PAGES), width  # drawn
