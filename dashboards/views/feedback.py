"""Feedback: NPS trend, CSAT by job type and technician, feature-request topics, review-prompt eligibility."""

import altair as alt
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import percent, score

st.title("Feedback")
f = data.filters()
st.caption(f"{f.start} to {f.end} (weekly marts: the weeks touching the window).")

st.subheader("Net Promoter Score")
if data.require_tables(["mart_nps_weekly"]):
    data.caption_ignored("mart_nps_weekly")
    nps = data.run(queries.nps_weekly, f)
    if nps.is_empty():
        st.info("No NPS answers for these filters and dates.")
    else:
        responses = nps["responses"].sum()
        overall = 100 * (nps["promoters"].sum() - nps["detractors"].sum()) / responses if responses else None
        cols = st.columns(4)
        cols[0].metric("NPS", score(overall), border=True,
                       help="100 × (promoters − detractors) / responses, summed over the weeks (mart_nps_weekly)")
        cols[1].metric("Responses", f"{responses:,}", border=True)
        cols[2].metric("Promoters", percent(nps["promoters"].sum() / responses, 1) if responses else "—", border=True)
        cols[3].metric("Detractors", percent(nps["detractors"].sum() / responses, 1) if responses else "—",
                       border=True)
        st.altair_chart(charts.lines(nps, "week_start", "nps", y_title="NPS (week starting)", y_format=".0f",
                                     height=240, ticks="week"),
                        width="stretch")

st.subheader("Customer satisfaction (CSAT)")
if data.require_tables(["mart_csat_daily"]):
    st.caption("Job ratings 1-5; satisfied = 4 or 5 (mart_csat_daily). App, platform, version and role do not "
               "apply: ratings are about jobs.")
    by_day = data.run(queries.csat_daily, f)
    if by_day.is_empty():
        st.info("No CSAT answers for these dates.")
    else:
        responses = by_day["responses"].sum()
        by_type = data.run(queries.csat_by_job_type, f)
        satisfied = (by_type["csat_rate"] * by_type["responses"]).sum()
        cols = st.columns(2)
        cols[0].metric("CSAT", percent(satisfied / responses, 1), border=True,
                       help="sum(satisfied) / sum(responses)")
        cols[1].metric("Responses", f"{responses:,}", border=True)
        left, right = st.columns(2)
        with left:
            st.altair_chart(charts.bars(by_type, "job_type", "csat_rate", y_title="CSAT", y_format=".0%",
                                        horizontal=True, sort="x",
                                        tooltip=["job_type:N", alt.Tooltip("csat_rate:Q", format=".1%"),
                                                 alt.Tooltip("mean_score:Q", format=".2f"), "responses:Q"]),
                            width="stretch")
        with right:
            st.altair_chart(charts.lines(by_day, "day", "csat_rate", y_title="CSAT per day",
                                         y_format=charts.PERCENT, incomplete=data.incomplete_day()), width="stretch")
        st.markdown("**By technician** (lowest CSAT first)")
        tables.table(data.run(queries.csat_by_technician, f), height=250,
                     column_config={"csat_rate": st.column_config.ProgressColumn(
                         "CSAT", format="percent", min_value=0, max_value=1),
                         "mean_score": st.column_config.NumberColumn("mean score", format="%.2f")})

st.subheader("Feature requests")
if data.require_tables(["mart_feature_requests"]):
    data.caption_ignored("mart_feature_requests")
    topics = data.run(queries.feature_request_topics, f)
    if topics.is_empty():
        st.info("No feature requests in these weeks.")
    else:
        st.altair_chart(alt.Chart(topics).mark_bar().encode(
            # a date as an ordinal axis needs its time unit, or Vega-Lite labels it in epoch milliseconds
            x=alt.X("week_start:O", timeUnit="yearmonthdate", title="week starting",
                    axis=alt.Axis(format="%b %d", labelAngle=0)),
            y=alt.Y("requests:Q", title="requests", stack="zero"),
            color=alt.Color("topic:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["week_start:T", "topic:N", "requests:Q", "users:Q", "example_text:N"],
        ).properties(height=260), width="stretch")
        tables.table(topics, height=220)

st.subheader("Review prompt eligibility (now)")
if data.require_tables(["review_prompt_eligibility"]):
    eligibility = data.run(queries.review_prompt_summary, f)
    eligible = eligibility.filter(status="eligible")["users"].sum()
    st.metric("Users the app may ask for a store review now", f"{eligible:,}",
              help="review_prompt_eligibility.is_eligible (the serving table the mobile backend reads)")
    st.altair_chart(charts.bars(eligibility, "status", "users", horizontal=True, sort="-x", y_title="users"),
                    width="stretch")
