"""Experiments: every A/B test with its primary metric, and one experiment's results per metric, SRM and
guardrail warnings, and the primary metric's cumulative lift."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries
from dashboards.formatting import interval, lift, measure, p_value, percent

WARNING = "⚠️"


def verdict(row: dict) -> str:
    """The mart's decision on a metric (significantly_better / _worse know whether higher is better)."""
    if row["significantly_better"]:
        return "significantly better"
    if row["significantly_worse"]:
        return "significantly worse"
    return "inconclusive"


def warnings(row: dict) -> str:
    found = []
    if row["srm_flag"]:
        found.append(f"{WARNING} SRM")
    if row["guardrail_regressed"]:
        found.append(f"{WARNING} guardrail: {row['regressed_guardrails']}")
    return " · ".join(found)


st.title("Experiments")
if data.page_ready("experiments"):
    f = data.filters()
    st.caption("A/B tests of experiments/flags.yaml, each analysed over every user it exposed, from its start to "
               "the last day of data (mart_experiment_results): frequentist, two-sided, 95% intervals. The "
               "sidebar's filters (dates, app, platform, app version, role) do not apply here.")
    experiments = data.run(queries.experiment_list, f)
    if experiments.is_empty():
        st.info("No experiment has results yet: mart_experiment_results is empty (no user has been exposed to "
                "an experiment of experiments/flags.yaml in the published data).", icon=":material/science:")
        st.stop()

    st.subheader("All experiments")
    rows = experiments.to_dicts()
    several = len(rows) > experiments["experiment_key"].n_unique()  # some experiment has 2+ treatments
    st.dataframe(
        pl.DataFrame([{
            "experiment": r["experiment_name"], "key": r["experiment_key"],
            **({"treatment": r["variation_name"]} if several else {}), "status": r["status"],
            "warnings": warnings(r), "primary metric": r["primary_metric_label"], "lift": lift(r["relative_lift"]),
            "95% CI": interval(r["relative_ci_low"], r["relative_ci_high"]), "p-value": p_value(r["p_value"]),
            "verdict": verdict(r), "control users": r["control_users"], "treatment users": r["treatment_users"],
            "start": r["planned_start_date"], "end": r["planned_end_date"],
        } for r in rows]),
        hide_index=True, width="stretch",
        column_config={
            "status": st.column_config.TextColumn(width="small"),
            "warnings": st.column_config.TextColumn(help="SRM: sample-ratio mismatch; guardrail: a guardrail "
                                                         "metric significantly worse"),
            "lift": st.column_config.TextColumn(width="small", help="Primary metric: treatment / control − 1"),
            "p-value": st.column_config.TextColumn(width="small",
                                                   help="Welch's t-test on the difference of the means"),
            "control users": st.column_config.NumberColumn(format="localized"),
            "treatment users": st.column_config.NumberColumn(format="localized"),
            "start": st.column_config.DateColumn("planned start"), "end": st.column_config.DateColumn("planned end"),
        },
    )

    by_key = {}
    for r in rows:
        by_key.setdefault(r["experiment_key"], r)
    flagged = {r["experiment_key"] for r in rows if r["srm_flag"] or r["guardrail_regressed"]}
    key = st.selectbox("Experiment", list(by_key), key="experiment_key",
                       format_func=lambda k: f"{by_key[k]['experiment_name']} ({k})"
                                             + (f" {WARNING}" if k in flagged else ""))
    treatments = [r for r in rows if r["experiment_key"] == key]
    if len(treatments) > 1:
        names = {r["variation_id"]: r["variation_name"] for r in treatments}
        variation = st.selectbox("Treatment variation", list(names), key=f"experiment_variation_{key}",
                                 format_func=lambda v: f"{names[v]} ({v})")
        experiment = next(r for r in treatments if r["variation_id"] == variation)
    else:
        experiment = treatments[0]

    st.header(experiment["experiment_name"])
    st.caption(f"`{key}` · feature `{experiment['feature_key']}` · {experiment['status']} · planned "
               f"{experiment['planned_start_date']} to {experiment['planned_end_date']} · data through "
               f"{experiment['data_through']}")
    st.markdown(f"**Hypothesis.** {experiment['hypothesis']}")

    arms = data.run(queries.experiment_arms, f, key)
    if experiment["srm_flag"]:
        split = "; ".join(
            f"{a['variation_name']} ({a['variation_id']}): {a['users']:,} users, {percent(a['share'], 1)}"
            + (f" (expected {percent(a['expected_share'], 1)})" if a["expected_share"] is not None else "")
            for a in arms.iter_rows(named=True))
        st.error(f"**Sample ratio mismatch.** The exposed users are not split as the experiment's weights say "
                 f"(χ² = {experiment['srm_chi2']:.1f}, p-value {p_value(experiment['srm_p_value'])}, "
                 f"flagged below 0.001). {split}. Exposures are being lost or duplicated in one arm: do not "
                 "trust these results until the cause is found.", icon=":material/error:")

    metrics = data.run(queries.experiment_metrics, f, key).filter(variation_id=experiment["variation_id"])
    results = metrics.to_dicts()
    regressed = [r for r in results if r["guardrail_regressed"]]
    if regressed:
        st.warning("**Guardrail regressed.** " + "; ".join(
            f"{r['metric_label']}: {lift(r['relative_lift'])} {interval(r['relative_ci_low'], r['relative_ci_high'])}, "
            f"p-value {p_value(r['p_value'])}" for r in regressed) + ".", icon=":material/warning:")

    primary = next((r for r in results if r["is_primary"]), None)
    control_name = arms.filter(pl.col("is_control"))["variation_name"].to_list() or ["control"]
    if primary is None:
        st.info(f"The primary metric `{experiment['primary_metric']}` has no results for this experiment.")
    else:
        st.markdown(f"**Primary metric:** {primary['metric_label']}")
    cols = st.columns(4)
    cols[0].metric("Control users", f"{experiment['control_users']:,}", border=True, help=control_name[0])
    cols[1].metric("Treatment users", f"{experiment['treatment_users']:,}", border=True,
                   help=experiment["variation_name"])
    if primary is not None:
        # The verdict colours both cards: green better, red worse, grey inconclusive (whichever way is good).
        colour = {"significantly better": "normal", "significantly worse": "inverse"}.get(verdict(primary), "off")
        cols[2].metric("Relative lift", lift(primary["relative_lift"]),
                       "95% CI " + interval(primary["relative_ci_low"], primary["relative_ci_high"]),
                       delta_color=colour, delta_arrow="off", border=True,
                       help="Treatment / control − 1, with its 95% interval (delta method)")
        cols[3].metric("p-value", p_value(primary["p_value"]), verdict(primary), delta_color=colour,
                       delta_arrow="off", border=True,
                       help="Welch's t-test on the difference of the means; the relative lift's own test gives "
                            f"{p_value(primary['relative_p_value'])}")

    st.subheader("Results per metric")
    has_cuped = any(r["cuped_relative_lift"] is not None for r in results)
    table = pl.DataFrame([{
        "metric": r["metric_label"],
        "role": "primary" if r["is_primary"] else "guardrail" if r["is_guardrail"] else "secondary",
        "better": "↑" if r["higher_is_better"] else "↓",
        "control": measure(r["control_mean"], r["is_rate"]), "treatment": measure(r["treatment_mean"], r["is_rate"]),
        "lift": lift(r["relative_lift"]), "95% CI": interval(r["relative_ci_low"], r["relative_ci_high"]),
        "p-value": p_value(r["p_value"]), "verdict": verdict(r),
        **({"CUPED lift": lift(r["cuped_relative_lift"]),
            "CUPED 95% CI": interval(r["cuped_relative_ci_low"], r["cuped_relative_ci_high"]),
            "CUPED p-value": p_value(r["cuped_p_value"])} if has_cuped else {}),
        "note": r["error"] or "",
    } for r in results])
    st.dataframe(table if any(r["error"] for r in results) else table.drop("note"), hide_index=True,
                 width="stretch",
                 column_config={"role": st.column_config.TextColumn(width="small"),
                                "better": st.column_config.TextColumn(width="small", help="Which way is better"),
                                "lift": st.column_config.TextColumn(width="small"),
                                "p-value": st.column_config.TextColumn(width="small"),
                                "control": st.column_config.TextColumn(help="Mean per user, or the ratio of sums "
                                                                             "for ratio metrics; rates in %")})

    chart_rows = metrics.with_columns(
        label=pl.col("metric_label") + pl.when(pl.col("is_primary")).then(pl.lit(" (primary)"))
        .when(pl.col("is_guardrail")).then(pl.lit(" (guardrail)")).otherwise(pl.lit("")),
        verdict=pl.Series([verdict(r) for r in results], dtype=pl.String),
        lift_text=pl.Series([lift(r["relative_lift"]) for r in results], dtype=pl.String),
        ci_text=pl.Series([interval(r["relative_ci_low"], r["relative_ci_high"]) for r in results], dtype=pl.String),
        p_text=pl.Series([p_value(r["p_value"]) for r in results], dtype=pl.String),
    ).select("label", "relative_lift", "relative_ci_low", "relative_ci_high", "verdict", "lift_text", "ci_text",
             "p_text")
    st.altair_chart(charts.lift_intervals(
        chart_rows, "label", "relative_lift", "relative_ci_low", "relative_ci_high", "verdict",
        tooltip=[alt.Tooltip("label:N", title="metric"), alt.Tooltip("lift_text:N", title="lift"),
                 alt.Tooltip("ci_text:N", title="95% CI"), alt.Tooltip("p_text:N", title="p-value"),
                 "verdict:N"]), width="stretch")
    st.caption(f"Relative lift = treatment / control − 1 ({experiment['variation_name']} against "
               f"{control_name[0]}), with its 95% interval (delta method). Verdict and p-value: Welch's t-test on "
               "the difference of the means, in the metric's good direction; in close cases the relative "
               "interval can just touch zero while that test is significant, or the reverse. CUPED: the same "
               "lift adjusted by each user's value before exposure (mean metrics only).")

    label = primary["metric_label"] if primary else experiment["primary_metric"]
    st.subheader(f"Cumulative lift: {label}")
    daily = data.run(queries.experiment_daily, f, key).filter(variation_id=experiment["variation_id"])
    if daily.is_empty():
        st.info("No daily results yet: both arms need users on the same day.")
    else:
        st.altair_chart(charts.lift_over_time(
            daily, "day", "relative_lift", "relative_ci_low", "relative_ci_high",
            tooltip=[alt.Tooltip("day:T"), alt.Tooltip("relative_lift:Q", title="lift", format="+.1%"),
                     alt.Tooltip("relative_ci_low:Q", title="95% CI low", format="+.1%"),
                     alt.Tooltip("relative_ci_high:Q", title="95% CI high", format="+.1%"),
                     alt.Tooltip("p_value:Q", title="p-value", format=".3f"),
                     alt.Tooltip("control_users:Q", title="control users", format=","),
                     alt.Tooltip("treatment_users:Q", title="treatment users", format=",")]),
            width="stretch")
        st.caption("Each day: the lift over the users exposed up to that day, with its 95% interval "
                   "(mart_experiment_daily). The band narrows as users accrue; a fixed-horizon test read every "
                   "day crosses zero by chance more often than 5% of the time, so decide at the planned end.")
