"""Release Health: crash-free sessions and users by release with adoption, and the crash groups."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries
from dashboards.formatting import percent

st.title("Release Health")
if data.page_ready("release_health"):
    f = data.filters()
    st.caption(f"{f.start} to {f.end}. Crash-free = sessions (users) with no crash; sums over days and "
               "platforms of mart_release_health, divided once.")
    releases = data.run(queries.release_health_by_release, f)
    if releases.is_empty():
        st.info("No sessions for these filters and dates.")
        st.stop()
    sessions, crashed = releases["sessions"].sum(), releases["crashed_sessions"].sum()
    worst = releases.sort("crash_free_sessions_rate").row(0, named=True)
    cols = st.columns(3)
    cols[0].metric("Crash-free sessions", percent(1 - crashed / sessions), border=True,
                   help="1 − sum(crashed_sessions) / sum(sessions) over the selected releases")
    cols[1].metric("Sessions", f"{sessions:,}", border=True)
    # Releases are app@version+build: the app goes in the label so the version fits the card.
    cols[2].metric(f"Least crash-free: {worst['app_namespace']}",
                   worst["release"].removeprefix(worst["app_namespace"] + "@"),
                   percent(worst["crash_free_sessions_rate"]), delta_color="off", delta_arrow="off", border=True,
                   help=f"{worst['release']}: the release with the lowest crash-free sessions rate in the window")

    st.subheader("Crash-free by release")
    long = releases.unpivot(index=["release", "adoption_rate", "sessions"],
                            on=["crash_free_sessions_rate", "crash_free_users_rate"], variable_name="measure",
                            value_name="rate") \
        .with_columns(pl.col("measure").replace({"crash_free_sessions_rate": "sessions",
                                                 "crash_free_users_rate": "users"}))
    low = max(0.0, float(long["rate"].min()) - 0.02)
    chart = alt.Chart(long).mark_bar().encode(
        y=alt.Y("release:N", title=None, sort=releases["release"].to_list(), axis=alt.Axis(labelLimit=300)),
        x=alt.X("rate:Q", title="crash-free", scale=alt.Scale(domain=[low, 1]), axis=alt.Axis(format=".1%")),
        yOffset="measure:N",
        color=alt.Color("measure:N", title=None, legend=alt.Legend(orient="bottom")),
        tooltip=["release:N", "measure:N", alt.Tooltip("rate:Q", format=".2%"), alt.Tooltip("sessions:Q", format=","),
                 alt.Tooltip("adoption_rate:Q", title="adoption (last day)", format=".1%")],
    ).properties(height=max(200, 45 * releases.height))
    st.altair_chart(chart.interactive(), width="stretch")
    st.dataframe(
        releases.drop("first_day"), hide_index=True, width="stretch",
        column_config={
            "crash_free_sessions_rate": st.column_config.NumberColumn("crash-free sessions", format="percent"),
            "crash_free_users_rate": st.column_config.NumberColumn("crash-free users", format="percent"),
            "adoption_rate": st.column_config.ProgressColumn("adoption (last day)", format="percent",
                                                             min_value=0, max_value=1),
            "user_days": st.column_config.NumberColumn("user-days", format="localized"),
        },
    )

    st.subheader("Adoption per day")
    adoption = data.run(queries.release_adoption_daily, f)
    st.altair_chart(charts.lines(adoption, "day", "adoption_rate", "release", y_title="share of the app's users",
                                 y_format=charts.PERCENT, height=260), width="stretch")

    st.subheader("Crash groups")
    st.caption("Groups seen in the window, most events first; counts are each group's lifetime totals "
               "(mart_crash_groups).")
    data.caption_ignored("mart_crash_groups")
    groups = data.run(queries.crash_groups, f)
    flags = st.columns(2)
    flags[0].metric("New in the latest release", f"{groups['new_in_latest_release'].sum():,}", border=True)
    flags[1].metric("Regressed", f"{groups['regressed'].sum():,}", border=True,
                    help="Seen again in a newer release after being absent for two or more releases")
    st.dataframe(groups, hide_index=True, width="stretch",
                 column_config={"new_in_latest_release": "new", "regressed": "regressed"})
