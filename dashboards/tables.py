"""How tables read on the pages: one call, ``table(frame)``, in place of ``st.dataframe``.

- missing values are blank (Streamlit would print ``None``);
- counts carry thousands separators; amounts are US dollars (the company bills, and its partners
  settle, in USD: every ``currency`` in the warehouse is USD or missing);
- dates read as dates (2026-11-29), timestamps to the minute, never ``00:00:00``.

A page's own ``column_config`` for a column wins over these defaults.
"""

from __future__ import annotations

import re

import polars as pl
import streamlit as st

AMOUNT = re.compile(r"(^|_)(amount|revenue|fee|price|cost|stake)$")  # money by its last word: not cost_ms


def default_column_config(frame: pl.DataFrame) -> dict:
    """The column settings ``table`` gives each column of ``frame`` by its type and name."""
    config: dict = {}
    for name, dtype in frame.schema.items():
        if AMOUNT.search(name) and (dtype.is_numeric() or isinstance(dtype, pl.Decimal)):
            config[name] = st.column_config.NumberColumn(format="dollar")
        elif dtype.is_integer():
            config[name] = st.column_config.NumberColumn(format="localized")
        elif dtype == pl.Date:
            config[name] = st.column_config.DateColumn(format="YYYY-MM-DD")
        elif isinstance(dtype, pl.Datetime):
            config[name] = st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")
    return config


def _merged(default: dict | None, own):
    """A page's setting for a column over the default: a bare label keeps the default's format."""
    if isinstance(own, str):
        own = {"label": own}
    if default and isinstance(own, dict) and "type_config" not in own:
        return {**default, **own}
    return own


def table(frame: pl.DataFrame, *, column_config: dict | None = None, **kwargs) -> None:
    """``st.dataframe`` with the pages' conventions (the module's docstring), full width, without the index."""
    kwargs.setdefault("hide_index", True)
    kwargs.setdefault("width", "stretch")
    config = default_column_config(frame)
    for name, own in (column_config or {}).items():
        config[name] = _merged(config.get(name), own)
    st.dataframe(frame, column_config=config, placeholder="", **kwargs)
