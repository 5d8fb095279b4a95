"""Funnels: steps with conversion, a breakdown, the trend of overall conversion, and time to convert."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import percent, seconds

st.title("Funnels")
if data.page_ready("funnels"):
    f = data.filters()
    definitions = data.run(queries.funnel_definitions, f)
    left, right = st.columns([2, 1])
    funnel = left.selectbox("Funnel", definitions["funnel"].to_list(), key="funnel_name",
                            format_func=lambda name: name.replace("_", " ").capitalize())
    breakdown = right.selectbox("Breakdown", list(queries.FUNNEL_BREAKDOWNS), key="funnel_breakdown",
                                format_func=lambda key: key.replace("_", " ").capitalize())
    definition = definitions.filter(funnel=funnel).row(0, named=True)
    st.caption(f"{definition['description']}. Steps: {definition['steps']}; counted per {definition['entity']}, "
               f"first entry per day, window {seconds(definition['conversion_window_seconds'])}. "
               f"{f.start} to {f.end} (entry days).")
    data.caption_ignored("mart_funnel_daily")

    steps = data.run(queries.funnel_steps, f, funnel, breakdown)
    if steps.is_empty():
        st.info("No entries into this funnel for these filters and dates.")
        st.stop()
    overall = steps.group_by("step_order").agg(entered=pl.col("entered").sum()).sort("step_order")
    entries, conversions = overall["entered"][0], overall["entered"][-1]
    cols = st.columns(3)
    cols[0].metric("Entries", f"{entries:,}", border=True)
    cols[1].metric("Converted (last step)", f"{conversions:,}", border=True)
    cols[2].metric("Overall conversion", percent(conversions / entries if entries else None, 1), border=True,
                   help="Entries reaching the last step / entries (sums of mart_funnel_daily.entered)")

    st.subheader("Steps")
    steps = steps.with_columns(step=pl.format("{}. {}", "step_order", "step_event"))
    bar = charts.bars(steps, "step", "entered", None if breakdown == "none" else "breakdown",
                      y_title="entries reaching the step", sort=steps["step"].unique(maintain_order=True).to_list(),
                      tooltip=["step:N", "breakdown:N", alt.Tooltip("entered:Q", format=","),
                               alt.Tooltip("converted_from_first:Q", title="from step 1", format=".1%"),
                               alt.Tooltip("converted_from_previous:Q", title="from previous", format=".1%")])
    labels = bar.mark_text(dy=-8).encode(text=alt.Text("converted_from_first:Q", format=".0%"))
    st.altair_chart((bar + labels).properties(height=320), width="stretch")
    tables.table(
        steps.select("breakdown", "step", "entered", "converted_from_first", "converted_from_previous"),
        column_config={
            "entered": st.column_config.NumberColumn("entries", format="localized"),
            "converted_from_first": st.column_config.ProgressColumn("from step 1", format="percent", min_value=0, max_value=1),
            "converted_from_previous": st.column_config.NumberColumn("from previous step", format="percent"),
        },
    )

    left, right = st.columns(2)
    with left:
        st.subheader("Overall conversion per day")
        trend = data.run(queries.funnel_trend, f, funnel, breakdown)
        st.altair_chart(charts.lines(trend, "day", "conversion_rate", None if breakdown == "none" else "breakdown",
                                     y_title="entries converted", y_format=charts.PERCENT, height=280, incomplete=data.incomplete_day()),
                        width="stretch")
    with right:
        st.subheader("Time to convert")
        timing = data.run(queries.funnel_time_to_convert, f, funnel)
        tables.table(
            timing.with_columns(
                median=pl.col("median_seconds").map_elements(seconds, return_dtype=pl.String),
                p90=pl.col("p90_seconds").map_elements(seconds, return_dtype=pl.String),
            ).select("step_order", "step_event", "reached", "median", "p90"),
            column_config={"step_order": "step", "median": "median from entry", "p90": "p90 from entry"},
        )
        st.caption("Exact over the window, from the entry steps mart_funnel_daily is built on.")
