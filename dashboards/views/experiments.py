"""Experiments: every A/B test with its primary metric, and one experiment's results per metric, SRM and
guardrail warnings, and the primary metric's cumulative lift."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import interval, lift, measure, p_value, percent

WARNING = "⚠️"


def verdict(row: dict) -> str:
    """The mart's verdict (orchestration/experiments/verdict.py): the one definition, never recomputed here."""
    return row["verdict"]


def is_absolute(row: dict) -> bool:
    return (row["decision_basis"] or "").endswith("absolute")


def decision_lift(row: dict) -> str:
    """The lift the verdict was read from: relative in %, or absolute in the metric's unit when there is no
    relative lift (a control mean ≤ 0)."""
    value = row["decision_lift"]
    if is_absolute(row):
        return "—" if value is None else f"{value:+,.2f}"
    return lift(value)


def decision_interval(row: dict) -> str:
    low, high = row["decision_ci_low"], row["decision_ci_high"]
    if is_absolute(row):
        return "—" if low is None or high is None else f"[{low:+,.2f}, {high:+,.2f}]"
    return interval(low, high)


def reduction(value: float | None) -> str:
    return "—" if value is None else percent(value, 1)


def warnings(row: dict) -> str:
    found = []
    if row["srm_flag"]:
        found.append(f"{WARNING} SRM")
    if row["guardrail_regressed"]:
        found.append(f"{WARNING} guardrail: {row['regressed_guardrails']}")
    if row["zero_variance_flag"]:
        found.append(f"{WARNING} zero variance: {row['zero_variance_metrics']}")
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
    tables.table(
        pl.DataFrame([{
            "experiment": r["experiment_name"], "key": r["experiment_key"],
            **({"treatment": r["variation_name"]} if several else {}), "status": r["status"],
            "warnings": warnings(r), "primary metric": r["primary_metric_label"], "lift": decision_lift(r),
            "95% CI": decision_interval(r), "p-value": p_value(r["decision_p_value"]),
            "verdict": verdict(r), "control users": r["control_users"], "treatment users": r["treatment_users"],
            "start": r["planned_start_date"], "end": r["planned_end_date"],
        } for r in rows]),
        column_config={
            "status": st.column_config.TextColumn(width="small"),
            "warnings": st.column_config.TextColumn(help="SRM: sample-ratio mismatch (no verdict); guardrail: a "
                                                         "guardrail metric significantly worse, or fallen to a "
                                                         "constant the bad way; zero variance: an arm where "
                                                         "every user has the same value (nothing to test)"),
            "lift": st.column_config.TextColumn(width="small", help="Primary metric: treatment / control − 1 "
                                                "(CUPED-adjusted where it applies); the absolute difference "
                                                "when the control mean is ≤ 0"),
            "p-value": st.column_config.TextColumn(width="small", help="The test of the lift shown: the verdict "
                                                   "is significant exactly when its interval excludes 0"),
            "control users": st.column_config.NumberColumn(format="localized"),
            "treatment users": st.column_config.NumberColumn(format="localized"),
            "start": st.column_config.DateColumn("planned start", format="YYYY-MM-DD"),
            "end": st.column_config.DateColumn("planned end", format="YYYY-MM-DD"),
        },
    )

    by_key = {}
    for r in rows:
        by_key.setdefault(r["experiment_key"], r)
    flagged = {r["experiment_key"] for r in rows if r["srm_flag"] or r["guardrail_regressed"] or r["zero_variance_flag"]}
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
                 f"flagged below 0.001). {split}. Exposures are being lost or duplicated in one arm: no "
                 "metric of this experiment gets a verdict until the cause is found.", icon=":material/error:")

    metrics = data.run(queries.experiment_metrics, f, key).filter(variation_id=experiment["variation_id"])
    results = metrics.to_dicts()
    regressed = [r for r in results if r["guardrail_regressed"]]
    if regressed:
        st.warning("**Guardrail regressed.** " + "; ".join(
            f"{r['metric_label']}: {decision_lift(r)} {decision_interval(r)}, p-value {p_value(r['decision_p_value'])}"
            if r["decision_basis"] else
            f"{r['metric_label']}: {measure(r['control_mean'], r['is_rate'])} in the control, "
            f"{measure(r['treatment_mean'], r['is_rate'])} for every user of the treatment"
            for r in regressed) + ".", icon=":material/warning:")
    constant = [r for r in results if r["zero_variance_flag"] and not r["guardrail_regressed"]]
    if constant:
        st.warning("**Zero variance.** " + "; ".join(
            f"{r['metric_label']}: every user of {r['zero_variance_arm'].replace('both', 'both arms')} has the "
            "same value, so nothing can be tested" for r in constant) + ".", icon=":material/warning:")

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
        basis = primary["decision_basis"] or "relative"
        cols[2].metric("Absolute lift" if is_absolute(primary) else "Relative lift", decision_lift(primary),
                       "95% CI " + decision_interval(primary), delta_color=colour, delta_arrow="off", border=True,
                       help=f"The {basis} lift the verdict is read from, with its 95% interval: treatment / "
                            "control − 1 (delta method), or the difference of the means when the control mean "
                            "is ≤ 0")
        cols[3].metric("p-value", p_value(primary["decision_p_value"]), verdict(primary), delta_color=colour,
                       delta_arrow="off", border=True,
                       help=f"The two-sided test of that {basis} lift: below 0.05 exactly when its interval "
                            f"excludes 0. Welch's test of the unadjusted difference gives {p_value(primary['p_value'])}")

    st.subheader("Results per metric")
    has_cuped = any(r["cuped_relative_lift"] is not None for r in results)
    table = pl.DataFrame([{
        "metric": r["metric_label"],
        "role": "primary" if r["is_primary"] else "guardrail" if r["is_guardrail"] else "secondary",
        "better": "↑" if r["higher_is_better"] else "↓",
        "control": measure(r["control_mean"], r["is_rate"]), "treatment": measure(r["treatment_mean"], r["is_rate"]),
        "lift": decision_lift(r), "95% CI": decision_interval(r), "p-value": p_value(r["decision_p_value"]),
        "verdict": verdict(r), "basis": r["decision_basis"] or "—",
        "unadjusted lift": lift(r["relative_lift"]),
        **({"CUPED variance reduction": reduction(r["cuped_variance_reduction"])} if has_cuped else {}),
        "note": r["error"] or "",
    } for r in results])
    tables.table(table if any(r["error"] for r in results) else table.drop("note"),
                 column_config={"role": st.column_config.TextColumn(width="small"),
                                "better": st.column_config.TextColumn(width="small", help="Which way is better"),
                                "lift": st.column_config.TextColumn(width="small"),
                                "p-value": st.column_config.TextColumn(width="small"),
                                "basis": st.column_config.TextColumn(
                                    width="small", help="The lift the verdict is read from: CUPED relative where "
                                    "the pre-period adjusts it, relative, or absolute when the control mean ≤ 0"),
                                "CUPED variance reduction": st.column_config.TextColumn(
                                    help="Share of the lift's variance removed by each user's value before "
                                    "exposure (mean metrics; 0 when the pre-period says nothing)"),
                                "control": st.column_config.TextColumn(help="Mean per user, or the ratio of sums "
                                                                             "for ratio metrics; rates in %")})

    # The chart shows relative lifts: the rows whose verdict comes from an absolute lift are in the table only.
    chart_rows = metrics.with_columns(
        label=pl.col("metric_label") + pl.when(pl.col("is_primary")).then(pl.lit(" (primary)"))
        .when(pl.col("is_guardrail")).then(pl.lit(" (guardrail)")).otherwise(pl.lit("")),
        verdict=pl.Series([verdict(r) for r in results], dtype=pl.String),
        lift_text=pl.Series([decision_lift(r) for r in results], dtype=pl.String),
        ci_text=pl.Series([decision_interval(r) for r in results], dtype=pl.String),
        p_text=pl.Series([p_value(r["decision_p_value"]) for r in results], dtype=pl.String),
    ).filter(pl.col("decision_basis").str.ends_with("relative")).select(
        "label", "decision_lift", "decision_ci_low", "decision_ci_high", "verdict", "lift_text", "ci_text", "p_text")
    st.altair_chart(charts.lift_intervals(
        chart_rows, "label", "decision_lift", "decision_ci_low", "decision_ci_high", "verdict",
        tooltip=[alt.Tooltip("label:N", title="metric"), alt.Tooltip("lift_text:N", title="lift"),
                 alt.Tooltip("ci_text:N", title="95% CI"), alt.Tooltip("p_text:N", title="p-value"),
                 "verdict:N"]), width="stretch")
    st.caption(f"Relative lift = treatment / control − 1 ({experiment['variation_name']} against "
               f"{control_name[0]}), with its 95% interval (delta method), CUPED-adjusted by each user's value "
               "in the 14 days before exposure where it applies (mean metrics). The verdict is the mart's, read "
               "off the interval shown, in the metric's good direction: significant exactly when that interval "
               "excludes 0. No verdict under a sample-ratio mismatch; an arm with zero variance is flagged. "
               "A metric whose control mean is ≤ 0 has no relative lift: its absolute difference decides, and "
               "it is left out of this chart.")

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
