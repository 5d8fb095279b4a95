"""Trace Explorer: one trace as a waterfall with its critical path, or the traces of a session, device or
user. Other pages link here with the trace (or session, device, user) in the URL's query parameters."""

import polars as pl
import streamlit as st

from dashboards import charts, data, queries, tables, traces
from dashboards.formatting import milliseconds

# The URL parameters a link may carry, in the order they are honoured, and how the page names them.
LOOKUPS = {"trace_id": "Trace id", "session_id": "Session id", "device_id": "Device id", "user_id": "User id"}
LOOKUP_KEY, VALUE_KEY, URL_KEY = "trace_lookup_by", "trace_lookup_value", "trace_lookup_url"


def _follow_the_url() -> None:
    """Fill the lookup from the URL when the URL changed (a link was followed), and only then, so what
    someone types afterwards is not overwritten on the next rerun."""
    asked = next(((key, st.query_params[key]) for key in LOOKUPS if st.query_params.get(key)), None)
    if asked and st.session_state.get(URL_KEY) != asked:
        st.session_state[URL_KEY] = asked
        st.session_state[LOOKUP_KEY], st.session_state[VALUE_KEY] = asked


def _show_trace(trace_id: str) -> None:
    spans = data.run(queries.trace_spans, f, trace_id)
    if spans.is_empty():
        st.info(f"No spans with trace id `{trace_id}` in the published data.")
        return
    frame, path = traces.waterfall(spans)
    root = frame.row(0, named=True)
    context = data.run(queries.trace_context, f, trace_id)
    duration = float(frame["end_ms"].max())
    cols = st.columns(4)
    cols[0].metric("Duration", milliseconds(duration), border=True,
                   help="From the first span's start to the last span's end")
    cols[1].metric("Spans", f"{frame.height:,}", border=True)
    cols[2].metric("Errors", f"{int(frame['is_error'].sum()):,}", border=True,
                   help="Spans with status error or an HTTP status of 500 or more")
    server = frame.filter(pl.col("category") != "app")["critical_ms"].sum()
    cols[3].metric("Critical path in the backend", f"{server / duration:.0%}" if duration else "—", border=True,
                   help="Share of the trace's time the app waited on the server, the database and partner "
                        "calls (the rest is the app's own time and the network)")
    who = context.row(0, named=True) if context.height else {}
    st.caption(" · ".join(part for part in (
        f"trace `{queries.normalize_trace_id(trace_id)}`",
        f"{root['span_name']}",
        f"{who.get('release') or root.get('app_version') or ''} {who.get('platform') or root.get('platform') or ''}".strip(),
        f"user `{who['user_id']}`" if who.get("user_id") else "",
        f"session `{root['session_id']}`" if root.get("session_id") else "",
        f"started {spans['started_at'].min():%Y-%m-%d %H:%M:%S} UTC",
    ) if part))
    st.altair_chart(charts.waterfall(frame, path), width="stretch")
    st.caption("Bars: spans, coloured by what they are. Dark line: the critical path (from the end of the "
               "trace backwards, the work each span waited for last; see docs/dashboards.md). Red outline "
               "and cross: a failed span.")
    tables.table(
        frame.select("label", "service_name", "category", "duration_ms", "critical_ms", "start_ms", "is_error",
                     "status_code", "http_status_code", "http_route", "db_operation", "status_message"),
        column_config={"label": "span", "duration_ms": st.column_config.NumberColumn("ms", format="%.1f"),
                       "critical_ms": st.column_config.NumberColumn("on critical path (ms)", format="%.1f"),
                       "start_ms": st.column_config.NumberColumn("starts at (ms)", format="%.1f"),
                       "is_error": "error"})


st.title("Trace Explorer")
if data.page_ready("trace_explorer"):
    f = data.filters()
    _follow_the_url()
    st.session_state.setdefault(LOOKUP_KEY, "trace_id")
    left, right = st.columns([1, 3])
    by = left.selectbox("Look up by", list(LOOKUPS), key=LOOKUP_KEY, format_func=LOOKUPS.get)
    value = right.text_input(LOOKUPS[by], key=VALUE_KEY, max_chars=200,
                             placeholder="32 hex digits" if by == "trace_id" else "exact id")
    if not value.strip():
        st.info("Enter a trace id, or a session, device or user id to list its traces. Release Health and "
                "API Latency link here with example slow and failing traces.")
        st.stop()
    # The URL says what is shown, so the page can be shared or bookmarked as it is.
    if st.query_params.to_dict() != {by: value}:
        st.query_params.from_dict({by: value})
        st.session_state[URL_KEY] = (by, value)

    if by == "trace_id":
        _show_trace(value)
    else:
        st.caption(f"Traces started {f.start} to {f.end} (the sidebar's dates), newest first; other filters "
                   "do not apply to a lookup.")
        found = data.run(queries.traces_lookup, f, by, value)
        if found.is_empty():
            st.info(f"No traces for {LOOKUPS[by].lower()} `{value}` between {f.start} and {f.end}.")
            st.stop()
        st.metric("Traces", f"{found.height:,}", border=True)
        tables.table(found, column_config={
            "duration_ms": st.column_config.NumberColumn("ms", format="%.0f")})
        labels = {row["trace_id"]: f"{row['started_at']:%m-%d %H:%M:%S} · {row['route'] or row['root_span']} · "
                                   f"{milliseconds(row['duration_ms'])}{' · error' if row['errors'] else ''}"
                  for row in found.iter_rows(named=True)}
        chosen = st.selectbox("Trace", list(labels), format_func=labels.get, key="trace_lookup_choice")
        _show_trace(chosen)
