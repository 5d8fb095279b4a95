"""Tables read as the pages promise (dashboards/tables.py): missing blank, counts with separators, amounts in
dollars, dates as dates, on every page of the demo world."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT
from dashboards.pages import PAGES
from dashboards.tables import default_column_config

APP = str(ROOT / "dashboards" / "app.py")


def test_each_column_gets_the_format_its_type_and_name_call_for():
    frame = pl.DataFrame({
        "sessions": [1_234_567], "share": [0.5], "day": [date(2026, 11, 29)], "seen_at": [datetime(2026, 11, 29, 8)],
        "amount_at_stake": [Decimal("12.50")], "revenue": [99.0], "partner": ["oem"], "cost_ms": [3.0],
    }, schema_overrides={"amount_at_stake": pl.Decimal(18, 4)})
    config = default_column_config(frame)  # Streamlit's column configs are plain dicts (TypedDicts)
    assert config["sessions"]["type_config"]["format"] == "localized"
    assert config["day"]["type_config"]["format"] == "YYYY-MM-DD"
    assert config["seen_at"]["type_config"]["format"] == "YYYY-MM-DD HH:mm"
    assert config["amount_at_stake"]["type_config"]["format"] == "dollar"
    assert config["revenue"]["type_config"]["format"] == "dollar"
    assert set(config) == {"sessions", "day", "seen_at", "amount_at_stake", "revenue"}  # no guess for the rest


@pytest.mark.slow
def test_every_table_on_every_page_blanks_missing_values_and_formats_counts_and_dates(world, monkeypatch):
    monkeypatch.setenv("PITWALL_DATA_DIR", str(world[0]))
    monkeypatch.setenv("PITWALL_SUPPORT_DEV_MODE", "1")
    monkeypatch.setenv("PITWALL_SUPPORT_DEV_USER", "sam.agent@example.com")
    at = AppTest.from_file(APP, default_timeout=60).run()
    unformatted, tables = [], 0
    for page in PAGES:
        if not page.reads_warehouse:  # the support console shows records, not the warehouse's tables
            continue
        at.switch_page(page.file).run()
        assert not at.exception, [e.value for e in at.exception]
        for element in at.dataframe:
            tables += 1
            assert element.proto.HasField("placeholder") and element.proto.placeholder == "", page.key
            columns = json.loads(element.proto.columns or "{}")
            frame: pd.DataFrame = element.value
            for name, dtype in frame.dtypes.items():
                typed = (pd.api.types.is_integer_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype)
                         or isinstance(dtype, pd.ArrowDtype) and "date" in str(dtype))
                if typed and not (columns.get(str(name), {}).get("type_config") or {}).get("format"):
                    unformatted.append((page.key, str(name), str(dtype)))
    assert tables >= 10
    assert unformatted == [], unformatted
