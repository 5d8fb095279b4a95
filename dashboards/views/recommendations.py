"""Recommendations: the model that ranks next-best actions (or why the rules fallback serves), what tomorrow's
serving table holds by policy and placement, what customers see first, how shown recommendations did (click and
acceptance, and off-policy IPS/SNIPS estimates from the explore traffic), and one customer's rows with their
reasons. Tables: nba_model_runs, recommendations, mart_recommendation_efficacy(_ips); docs/recommendations.md."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import percent

st.title("Recommendations")
if data.page_ready("recommendations"):
    f = data.filters()

    st.subheader("Model")
    runs = data.run(queries.recommendation_model_runs, f)
    trained = runs.filter(trained=True)
    champion = trained.filter(alias="champion")
    if champion.is_empty():
        why = runs.item(0, "skipped_reason") if runs.height and not runs.item(0, "trained") else \
            "no version has passed the promotion gate yet"
        st.info(f"No champion: the serving table is ranked by the rules fallback. Last training: {why}.",
                icon=":material/rule:")
    else:
        best = champion.row(0, named=True)
        cols = st.columns(4)
        cols[0].metric("Champion", f"pitwall-nba v{best['version']}", border=True,
                       help="the version holding the @champion alias in the MLflow registry (make mlflow)")
        cols[1].metric("AUC", f"{best['model_auc']:.3f}", border=True,
                       delta=f"{best['model_auc'] - max(best['popularity_auc'], best['rules_auc']):+.3f} vs best baseline",
                       help="holdout AUC; baselines: popularity and the rules-only ordering")
        cols[2].metric("NDCG@3", f"{best['model_ndcg_at_3']:.3f}", border=True,
                       delta=f"{best['model_ndcg_at_3'] - max(best['popularity_ndcg_at_3'], best['rules_ndcg_at_3']):+.3f}"
                             " vs best baseline")
        cols[3].metric("Trained", best["trained_at"].strftime("%Y-%m-%d %H:%M UTC"), border=True)
    with st.expander(f"Training history ({runs.height} runs)", expanded=champion.is_empty() and runs.height > 0):
        tables.table(runs.select("trained_at", "trained", "version", "alias", "skipped_reason", "gate_reasons",
                                 "model_auc", "popularity_auc", "rules_auc", "model_ndcg_at_3"),
                     column_config={"trained_at": st.column_config.DatetimeColumn("trained", format="YYYY-MM-DD HH:mm"),
                                    "skipped_reason": "not trained because",
                                    "gate_reasons": st.column_config.ListColumn("gate"),
                                    **{c: st.column_config.NumberColumn(c, format="%.3f")
                                       for c in ("model_auc", "popularity_auc", "rules_auc", "model_ndcg_at_3")}})

    st.subheader("Tomorrow's serving table")
    mix = data.run(queries.recommendation_policy_mix, f)
    if mix.is_empty():
        st.info("The serving table is empty: no customer has an eligible action.")
    else:
        valid_until = mix["valid_until"].max()
        st.caption(f"Built {mix['generated_at'].max():%Y-%m-%d %H:%M} UTC, valid until {valid_until:%Y-%m-%d %H:%M} "
                   "UTC. Global filters do not apply: the table holds every customer.")
        by_policy = mix.group_by("policy").agg(pl.col("rows").sum())
        cols = st.columns(1 + by_policy.height)
        total = mix["rows"].sum()
        cols[0].metric("Rows", f"{total:,}", border=True, help="rows of recommendations: customer × placement × rank")
        for col, row in zip(cols[1:], by_policy.sort("rows", descending=True).to_dicts()):
            col.metric(row["policy"], f"{row['rows']:,}", border=True,
                       help=f"{percent(row['rows'] / total, 1)} of the rows")
        st.altair_chart(charts.bars(mix, "placement", "rows", "policy", horizontal=True, y_title="rows"),
                        width="stretch")

        st.markdown("**What customers see first** (the rank-1 action per placement)")
        top = data.run(queries.recommendation_top_actions, f)
        st.altair_chart(alt.Chart(top).mark_bar().encode(
            y=alt.Y("action_id:N", title=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("customers:Q", title="customers"),
            row=alt.Row("placement:N", title=None, header=alt.Header(labelAngle=0, labelAlign="left")),
            tooltip=["placement:N", "action_id:N", "customers:Q", alt.Tooltip("share:Q", format=".1%")],
        ).properties(height={"step": charts.BAND}).resolve_scale(y="independent"), width="stretch")

    st.subheader("How shown recommendations did")
    data.caption_ignored("mart_recommendation_efficacy")
    efficacy = data.run(queries.recommendation_efficacy, f)
    if efficacy.is_empty():
        st.info("No recommendation was shown in the weeks of this window.")
    else:
        tables.table(efficacy,
                     column_config={"click_rate": st.column_config.NumberColumn("click rate", format="percent"),
                                    "acceptance_rate": st.column_config.NumberColumn("acceptance rate",
                                                                                     format="percent"),
                                    "shown": st.column_config.NumberColumn(format="localized"),
                                    "revenue": st.column_config.NumberColumn("revenue", format="dollar")})
    ips = data.run(queries.recommendation_ips, f)
    st.markdown("**Acceptance if always shown**: off-policy estimates from the explore traffic (IPS and "
                "self-normalised IPS, 95 % intervals), whole history")
    if ips.is_empty():
        st.info("No explore traffic logged yet: the estimates need recommendations shown by the explore policy.")
    else:
        st.altair_chart(alt.Chart(ips).mark_errorbar().encode(
            y=alt.Y("action_id:N", title=None, sort=None, axis=alt.Axis(labelLimit=300)),
            x=alt.X("snips_ci_low:Q", title="acceptance rate (SNIPS, 95 % interval)", axis=alt.Axis(format=".0%")),
            x2="snips_ci_high:Q") + alt.Chart(ips).mark_point(filled=True).encode(
            y=alt.Y("action_id:N", sort=None), x="snips_acceptance:Q",
            tooltip=["action_id:N", alt.Tooltip("snips_acceptance:Q", format=".1%"),
                     alt.Tooltip("ips_acceptance:Q", format=".1%"), "exploration_exposures:Q", "shown:Q",
                     "accepted:Q", alt.Tooltip("effective_sample_size:Q", format=",.0f")]),
            width="stretch")

    st.subheader("One customer")
    first = data.run(queries.first_recommended_user, f)
    example = first.item(0, "user_id") if first.height else ""
    user_id = st.text_input("Customer id", key="recommendation_user", placeholder=example,
                            help="empty: the first customer of the serving table").strip() or example
    rows = data.run(queries.user_recommendations, f, user_id)
    if rows.is_empty():
        st.info(f"No recommendation for {user_id!r} tomorrow.")
    else:
        tables.table(rows)
