"""Engagement & Retention: DAU / WAU / MAU, stickiness, and weekly cohort retention."""

import polars as pl
import streamlit as st

from dashboards import charts, data, queries
from dashboards.formatting import percent

st.title("Engagement & Retention")
if data.page_ready("engagement"):
    f = data.filters()
    st.caption(f"{f.start} to {f.end}. Active = started a session; each person counts once over the selected "
               "apps, platforms and roles (rolling windows as in mart_engagement_daily).")
    data.caption_ignored("int_user_activity_daily")
    daily = data.run(queries.engagement_daily, f)
    if daily.is_empty():
        st.info("No activity for these filters and dates.")
        st.stop()
    last = daily.row(-1, named=True)
    cols = st.columns(4)
    cols[0].metric(f"DAU on {last['day']}", f"{last['dau']:,}", border=True,
                   chart_data=daily["dau"].to_list())
    cols[1].metric("WAU", f"{last['wau']:,}", border=True, help="Active in the 7 days ending that day")
    cols[2].metric("MAU", f"{last['mau']:,}", border=True, help="Active in the 30 days ending that day")
    cols[3].metric("Stickiness (DAU/MAU)", percent(last["stickiness"], 1), border=True,
                   help="DAU / MAU")

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Active users")
        long = daily.unpivot(index="day", on=["dau", "wau", "mau"], variable_name="measure", value_name="users") \
            .with_columns(pl.col("measure").str.to_uppercase())
        st.altair_chart(charts.lines(long, "day", "users", "measure", y_title="active users", incomplete=data.incomplete_day()), width="stretch")
    with right:
        st.subheader("Stickiness")
        st.altair_chart(charts.lines(daily, "day", "stickiness", y_title="DAU / MAU", y_format=charts.PERCENT, incomplete=data.incomplete_day()),
                        width="stretch")

    st.subheader("Weekly cohort retention")
    data.caption_ignored("mart_retention_weekly")
    cohorts = data.run(queries.retention_cohorts, f)
    if cohorts.is_empty():
        st.info("No cohorts first seen in these weeks.")
    else:
        cohorts = cohorts.with_columns(cohort=pl.format("{} ({} users)", "cohort_week",
                                                        pl.col("cohort_users").max().over("cohort_week")))
        st.altair_chart(charts.heatmap(
            cohorts, "week_number", "cohort", "retention", x_title="weeks since first seen",
            y_title="cohort (first-seen week)", height=max(120, 40 * cohorts["cohort"].n_unique()),
            tooltip=["cohort:O", "week_number:O", "active_users:Q", "cohort_users:Q",
                     charts.alt.Tooltip("retention:Q", format=".1%")]), width="stretch")
        st.caption("Week-N retention: cohort users active in week N / cohort users (mart_retention_weekly).")
