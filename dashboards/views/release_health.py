"""Release Health: crash-free sessions and users by release with adoption, and the crash groups."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import lift, milliseconds, percent

TRACE_EXPLORER = "views/trace_explorer.py"


def release_gate(f: queries.Filters) -> None:
    """The release gate (the serving table release_gate): each app's current rollout on each platform, the
    decision and its evidence, and links to the slowest traces of the route that stopped a rollout."""
    st.subheader("Release gate")
    if not data.require_tables(["release_gate"]):
        return
    gate = data.run(queries.release_gate, f)
    if gate.is_empty():
        st.info("No release is being rolled out (no app's newest release first appeared in the last 30 days).")
        return
    st.caption(f"Each app's newest release per platform, as of {gate['evaluated_at'].max():%Y-%m-%d %H:%M} UTC "
               "(table `release_gate`, also served to the mobile backend). Halt or roll back when crash-free "
               "sessions fall under the app's threshold or a key route's p95 regresses against the previous "
               "release beyond its threshold (seed `release_gate_rules`); wait while samples are too few. "
               "The date and version filters do not apply. Playbook: docs/playbooks/release-checklist.md.")
    data.caption_ignored("release_gate")
    rows = list(gate.iter_rows(named=True))
    for start in range(0, len(rows), 4):
        for col, row in zip(st.columns(4), rows[start:start + 4]):
            col.metric(f"{row['app_namespace']} {row['platform']} {row['app_version']}", row["decision"],
                       border=True, help=row["reasons"] or "Every check passes.")
    tables.table(
        gate.select("app_namespace", "platform", "app_version", "decision", "reasons", "adoption_rate", "sessions",
                    "crash_free_sessions_rate", "crash_free_halt_below", "crash_check", "previous_app_version",
                    "worst_route", "worst_route_p95_ms", "worst_route_baseline_p95_ms", "worst_route_p95_regression",
                    "p95_regression_halt_above", "worst_route_requests", "worst_route_baseline_requests",
                    "key_routes_judged", "key_routes", "latency_check", "route_evidence"),
        column_config={
            "adoption_rate": st.column_config.ProgressColumn("adoption", format="percent", min_value=0, max_value=1),
            "crash_free_sessions_rate": st.column_config.NumberColumn("crash-free sessions", format="percent"),
            "crash_free_halt_below": st.column_config.NumberColumn("halt under", format="percent"),
            "previous_app_version": "baseline",
            "worst_route_p95_ms": st.column_config.NumberColumn("p95 (ms)", format="%.0f"),
            "worst_route_baseline_p95_ms": st.column_config.NumberColumn("baseline p95 (ms)", format="%.0f"),
            "worst_route_p95_regression": st.column_config.NumberColumn("p95 change", format="percent"),
            "p95_regression_halt_above": st.column_config.NumberColumn("halt above", format="percent"),
        })
    for row in rows:
        if row["decision"] not in ("halt", "rollback") or not row["worst_route"]:
            continue
        method, route = row["worst_route"].split(" ", 1)
        examples = data.run(queries.release_example_traces, f, row["release"], row["platform"], route, method)
        if examples.is_empty():
            continue
        st.markdown(f"**Slowest {row['worst_route']} on {row['app_namespace']} {row['app_version']} "
                    f"{row['platform']}** ({lift(row['worst_route_p95_regression'])} p95 against "
                    f"{row['previous_app_version']}): open a trace")
        for col, example in zip(st.columns(len(examples)), examples.iter_rows(named=True)):
            with col:
                st.page_link(TRACE_EXPLORER, query_params={"trace_id": example["trace_id"]},
                             icon=":material/account_tree:",
                             label=f"{milliseconds(example['duration_ms'])} · {example['started_at']:%m-%d %H:%M}")


st.title("Release Health")
if data.page_ready("release_health"):
    f = data.filters()
    release_gate(f)
    st.subheader("In the selected window")
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
    tables.table(
        releases.drop("first_day"),
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
                                 y_format=charts.PERCENT, height=260, incomplete=data.incomplete_day()), width="stretch")

    st.subheader("Crash groups")
    st.caption("Groups seen in the window, most events first; counts are each group's lifetime totals "
               "(mart_crash_groups).")
    data.caption_ignored("mart_crash_groups")
    groups = data.run(queries.crash_groups, f)
    flags = st.columns(2)
    flags[0].metric("New in the latest release", f"{groups['new_in_latest_release'].sum():,}", border=True)
    flags[1].metric("Regressed", f"{groups['regressed'].sum():,}", border=True,
                    help="Seen again in a newer release after being absent for two or more releases")
    tables.table(groups,
                 column_config={"new_in_latest_release": "new", "regressed": "regressed"})
