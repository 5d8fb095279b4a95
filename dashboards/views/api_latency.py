"""API Latency: percentile lines per route, the slowest routes, and client vs server time."""

import altair as alt
import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables
from dashboards.formatting import milliseconds, percent

TRACE_EXPLORER = "views/trace_explorer.py"

st.title("API Latency")
if data.page_ready("api_latency"):
    f = data.filters()
    st.caption(f"{f.start} to {f.end}. Requests: the apps' client spans with a route (mart_api_latency_daily). "
               "Percentiles are exact over the spans of the selection.")
    data.caption_ignored("mart_api_latency_daily")
    slowest = data.run(queries.slowest_routes, f)
    if slowest.is_empty():
        st.info("No requests for these filters and dates.")
        st.stop()
    requests, errors = slowest["requests"].sum(), slowest["errors"].sum()
    top = slowest.row(0, named=True)
    cols = st.columns(3)
    cols[0].metric("Requests", f"{requests:,}", border=True)
    cols[1].metric("Error rate", percent(errors / requests), border=True,
                   help="sum(errors) / sum(requests): 5xx or span status error")
    cols[2].metric(f"Slowest route (p95): {top['method']} {top['route']}", milliseconds(top["p95_ms"]), border=True)

    st.subheader("Percentiles per route")
    percentile = st.segmented_control("Percentile", ["p50_ms", "p95_ms", "p99_ms"], default="p95_ms",
                                      key="latency_percentile", format_func=lambda c: c.removesuffix("_ms"))
    daily = data.run(queries.latency_daily, f)
    st.altair_chart(charts.lines(daily, "day", percentile or "p95_ms", "route", y_title="ms", y_format=",.0f", incomplete=data.incomplete_day()),
                    width="stretch")

    left, right = st.columns([3, 2])
    with left:
        st.subheader("Slowest routes")
        tables.table(slowest, column_config={
            "error_rate": st.column_config.NumberColumn("error rate", format="percent"),
            **{c: st.column_config.NumberColumn(c.removesuffix("_ms") + " (ms)", format="%.0f")
               for c in ("p50_ms", "p95_ms", "p99_ms")},
        })
        st.subheader("Example traces")
        routes = [f"{row['method']} {row['route']}" for row in slowest.iter_rows(named=True)]
        chosen = st.selectbox("Route", routes, key="latency_example_route",
                              help="Its slowest and its failing requests under the filters, opened in the "
                                   "Trace Explorer")
        method, route = (chosen or routes[0]).split(" ", 1)
        for column, which, title in zip(st.columns(2), ("slowest", "failing"), ("Slowest", "Failing, newest first")):
            with column:
                st.markdown(f"**{title}**")
                examples = data.run(queries.route_example_traces, f, route, method, which)
                if examples.is_empty():
                    st.caption("None under these filters.")
                for example in examples.iter_rows(named=True):
                    status = example["status_code"] if example["status_code"] is not None else "no response"
                    st.page_link(TRACE_EXPLORER, query_params={"trace_id": example["trace_id"]},
                                 icon=":material/account_tree:",
                                 label=f"{milliseconds(example['duration_ms'])} · {status} · "
                                       f"{example['app_version']} {example['platform']} · "
                                       f"{example['started_at']:%m-%d %H:%M}")
    with right:
        st.subheader("Client vs server time")
        split = data.run(queries.client_vs_server, f)
        long = split.unpivot(index=["route", "client_ms", "requests_with_server_span"], on=["server_ms", "overhead_ms"],
                             variable_name="part", value_name="ms") \
            .with_columns(pl.col("part").replace({"server_ms": "server", "overhead_ms": "network + device"}))
        st.altair_chart(alt.Chart(long).mark_bar().encode(
            y=alt.Y("route:N", title=None, sort=split["route"].to_list()),
            x=alt.X("ms:Q", title="mean ms per request", stack="zero"),
            color=alt.Color("part:N", title=None, legend=alt.Legend(orient="bottom")),
            tooltip=["route:N", "part:N", alt.Tooltip("ms:Q", format=",.0f"),
                     alt.Tooltip("client_ms:Q", title="client total", format=",.0f"),
                     alt.Tooltip("requests_with_server_span:Q", title="requests", format=",")],
        ).properties(height=charts.fitted_height(split.height, legend=True)), width="stretch")
        st.caption("Over requests whose server span is in the trace.")
