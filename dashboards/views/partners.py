"""Partners: SLA status per partner and day, contract breaches, reconciliation breaks with their age, and the
booking funnel of the partner widgets (contracts in contracts/partners/, marts in dbt_project/models/partners/)."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import percent

STATUS_COLORS = {"met": "#2e7d32", "breached": "#c62828", "not judged": "#bdbdbd"}


def sla_grid(days: pl.DataFrame) -> alt.Chart:
    return alt.Chart(days).mark_rect(stroke="white").encode(
        x=alt.X("day:O", title=None, timeUnit="monthdate"),
        y=alt.Y("partner:N", title=None),
        color=alt.Color("status:N", title=None, legend=charts.LEGEND,
                        scale=alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values()))),
        tooltip=["partner:N", alt.Tooltip("day:T"), "status:N", alt.Tooltip("breached_slas:N", title="breached"),
                 alt.Tooltip("volume_records:Q", title="records"),
                 alt.Tooltip("volume_expected_min:Q", title="expected min", format=",.0f"),
                 alt.Tooltip("volume_expected_max:Q", title="expected max", format=",.0f")],
    ).properties(height={"step": 28})


st.title("Partners")
if data.page_ready("partners"):
    f = data.filters()
    data.caption_ignored("mart_partner_sla_daily")

    st.subheader("SLA status")
    summary = data.run(queries.partner_sla_summary, f)
    if summary.is_empty():
        st.info("No partner has data in this range: connect a partner (its URL and key env vars, see "
                "docs/partners.md) or widen the dates.", icon=":material/handshake:")
    else:
        cols = st.columns(len(summary))
        for col, row in zip(cols, summary.to_dicts()):
            col.metric(row["partner"], "SLA met" if row["latest_sla_met"] else "SLA breached",
                       delta=f"{row['days_breached']} of {row['days_judged']} days breached",
                       delta_color="red" if row["days_breached"] else "gray", delta_arrow="off",
                       help=f"Latest day {row['latest_day']}. Breached in the range: {row['breached_slas'] or 'none'}.")
        st.altair_chart(sla_grid(data.run(queries.partner_sla_days, f)), width="stretch")
        tables.table(summary.select(
            "partner", "days_judged", "days_breached", "breached_slas", "records",
            pl.concat_str([pl.col("worst_freshness").round(1).cast(pl.String), pl.col("freshness_unit")], separator=" ")
              .alias("worst freshness"),
            pl.concat_str([pl.col("worst_latency").round(0).cast(pl.String), pl.col("latency_unit")], separator=" ")
              .alias("worst latency"),
            pl.col("worst_availability").map_elements(percent, return_dtype=pl.String).alias("worst availability"),
        ))

    st.subheader("Contract breaches")
    breaches = data.run(queries.partner_contract_breaches, f)
    if breaches.is_empty():
        st.success("No record broke a partner contract and no SLA was missed in this range.", icon=":material/verified:")
    else:
        st.caption("Schema breaches: records quarantined at load with the rule they broke (partner_quarantine). "
                   "SLA breaches: a day's volume, freshness, availability or latency outside the contract. Each "
                   "new breach raised an alert.")
        tables.table(breaches)

    st.subheader("Reconciliation")
    open_breaks = data.run(queries.reconciliation_open_breaks, f)
    if open_breaks.is_empty():
        st.success("Every partner transaction matches an internal record, and every internal record its partner "
                   "transaction.", icon=":material/balance:")
    else:
        left, right = st.columns(2)
        left.metric("Open breaks", f"{open_breaks['breaks'].sum():,}")
        right.metric("Amount at stake", f"${open_breaks['amount_at_stake'].sum():,.2f}")
        st.altair_chart(charts.bars(open_breaks, "break_class", "breaks", "age", x_title=None, y_title="open breaks",
                                    sort=list(queries.AGE_BUCKETS)).facet(column=alt.Column("partner:N", title=None)),
                        width="content")
    breaks = data.run(queries.reconciliation_breaks, f)
    if not breaks.is_empty():
        tables.table(breaks,
                     column_config={"age_days": st.column_config.NumberColumn("age (days)", format="%d")})

    st.subheader("Booking funnel of the partner widgets")
    funnel = data.run(queries.partner_booking_funnel, f)
    if funnel.is_empty():
        st.info("No partner widget was opened in this range.", icon=":material/event:")
    else:
        labels = dict(queries.PARTNER_FUNNEL_STEPS)
        long = funnel.unpivot(index=["partner_id", "is_follow_up"], on=list(labels), variable_name="step",
                              value_name="sessions").with_columns(
            pl.col("step").replace_strict(labels),
            pl.when(pl.col("is_follow_up")).then(pl.lit("follow-up visit")).otherwise(pl.lit("first booking"))
              .alias("booking"))
        st.altair_chart(charts.bars(long, "step", "sessions", "booking", x_title=None, y_title="sessions",
                                    sort=list(labels.values())).facet(column=alt.Column("partner_id:N", title=None)),
                        width="content")
        st.caption("Follow-up visits are bookings the customer made from a completed job; a widget opened without a "
                   "booking counts as a first booking. Confirmed and completed come from the partner's own data, so "
                   "a partner without a feed stops at booking created.")
