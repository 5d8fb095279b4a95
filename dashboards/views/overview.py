"""Overview: today's health at a glance, each KPI against the previous period of the same length."""

import streamlit as st

from dashboards import charts, data, queries
from dashboards.formatting import change, milliseconds, percent, points, score

st.title("Overview")
f = data.filters()
compare = f"vs the previous {f.days} day{'s' if f.days > 1 else ''}"
st.caption(f"{f.start} to {f.end}, {compare} ({f.previous().start} to {f.previous().end}).")
first_day, _ = data.data_extent()
if first_day is not None and f.previous().start < first_day:
    covered = max(0, (f.previous().end - first_day).days + 1)
    st.warning(f"The previous {f.days} days start before the data (first day {first_day}): they hold "
               f"{covered} day{'s' if covered != 1 else ''} of data, so the changes below compare against "
               f"{'nothing' if covered == 0 else 'a partial window'}. Pick a later window to compare like with like.",
               icon=":material/history_toggle_off:")


def by_period(frame, column):
    values = dict(zip(frame["period"], frame[column]))
    return values.get("current"), values.get("previous")


cols = st.columns(4)
if data.require_tables(["mart_release_health"]):
    crash_free = data.run(queries.overview_crash_free, f)
    daily = data.run(queries.overview_daily_health, f)
    current, previous = by_period(crash_free, "crash_free_sessions_rate")
    cols[0].metric("Crash-free sessions", percent(current), points(current, previous), border=True,
                   chart_data=daily["crash_free_sessions_rate"].to_list() or None,
                   help="1 − crashed sessions / sessions (mart_release_health), " + compare)
    current, previous = by_period(crash_free, "crash_free_users_rate")
    cols[1].metric("Crash-free users", percent(current), points(current, previous), border=True,
                   help="1 − crashed users / users, counted per user and day (mart_release_health), " + compare)
if data.require_tables(["fct_api_requests"]):
    latency = data.run(queries.overview_latency, f)
    current, previous = by_period(latency, "p95_ms")
    # Latency going up is bad: inverse colours.
    cols[2].metric("p95 API latency", milliseconds(current), change(current, previous, " ms"), delta_color="inverse",
                   border=True, help="95th percentile of request duration over all routes (the requests of "
                                     "mart_api_latency_daily: client spans with a route), " + compare)
if data.missing_tables(["mart_nps_weekly"]):
    cols[3].metric("NPS", "—", border=True, help="mart_nps_weekly is not built yet: run `make demo`.")
else:
    nps = data.run(queries.overview_nps, f)
    current, previous = by_period(nps, "nps")
    cols[3].metric("NPS", score(current), change(current, previous, digits=1), border=True,
                   help="100 × (promoters − detractors) / responses over the weeks starting in the window "
                        "(mart_nps_weekly), " + compare)

st.subheader("Funnel conversion")
if data.require_tables(["mart_funnel_daily", "funnel_steps"]):
    funnels = data.run(queries.overview_funnels, f)
    names = funnels["funnel"].unique(maintain_order=True).to_list()
    for col, name in zip(st.columns(max(len(names), 1)), names):
        current, previous = by_period(funnels.filter(funnel=name), "conversion_rate")
        col.metric(name.replace("_", " ").capitalize(), percent(current, 1), points(current, previous, 1),
                   border=True, help="Entries reaching the last step / entries (mart_funnel_daily), " + compare)
    data.caption_ignored("mart_funnel_daily")

if data.require_tables(["mart_release_health"]) and daily.height:
    st.subheader("Crash-free sessions per day")
    st.altair_chart(charts.lines(daily, "day", "crash_free_sessions_rate", y_title="crash-free sessions",
                                 y_format=charts.PERCENT, height=220, incomplete=data.incomplete_day()), width="stretch")
