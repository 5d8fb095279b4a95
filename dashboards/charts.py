"""Small Altair helpers so pages stay short and every chart looks and behaves the same (tooltips, zoom)."""

from __future__ import annotations

import altair as alt
import polars as pl

PERCENT = ".1%"
INCOMPLETE_NOTE = "incomplete day"
LEGEND = alt.Legend(orient="bottom", columns=4, labelLimit=260)


def lines(frame: pl.DataFrame, x: str, y: str, color: str | None = None, *, y_title: str | None = None,
          y_format: str | None = None, height: int = 300, ticks: str = "day", incomplete=None) -> alt.Chart:
    """A line per ``color`` over days; ``incomplete``: a day the data may not hold all of yet (data.incomplete_day),
    marked with a dashed rule where the chart shows it."""
    encoding = {
        "x": alt.X(f"{x}:T", title=None, axis=alt.Axis(format="%b %d", tickCount=ticks)),
        # Rates near 100% would be a flat line on a zero-based axis: let the scale follow the data.
        "y": alt.Y(f"{y}:Q", title=y_title or y, scale=alt.Scale(zero=y_format != PERCENT),
                   axis=alt.Axis(format=y_format) if y_format else alt.Undefined),
        "tooltip": [alt.Tooltip(f"{x}:T"), *( [alt.Tooltip(f"{color}:N")] if color else []),
                    alt.Tooltip(f"{y}:Q", format=y_format or ",.2f")],
    }
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None, legend=LEGEND)
    chart = alt.Chart(frame).mark_line(point=True).encode(**encoding).interactive()
    if incomplete is not None and frame.height and incomplete in set(frame[x].cast(pl.Date).to_list()):
        # inline values: they stay in the chart's spec (Streamlit ships data frames beside it)
        marker = alt.Data(values=[{x: incomplete.isoformat(), "note": INCOMPLETE_NOTE}])
        rule = alt.Chart(marker).mark_rule(strokeDash=[4, 4], color="gray").encode(
            x=f"{x}:T", tooltip=[alt.Tooltip(f"{x}:T"), "note:N"])
        text = alt.Chart(marker).mark_text(align="right", baseline="top", dx=-4, dy=4, color="gray").encode(
            x=f"{x}:T", y=alt.value(0), text="note:N")
        return alt.layer(chart, rule, text).properties(height=height)
    return chart.properties(height=height)


# Streamlit fits the whole chart (axes, titles and legend included) into the height it is given: a chart of
# categories needs that room on top of a band per category, or Vega hides the labels that would overlap.
AXIS_ROOM = 70     # px: the value axis, its title and padding
LEGEND_ROOM = 40   # px: a legend below the chart
BAND = 32          # px per category (per bar, when bars are grouped)
# Characters: longer category labels under vertical bars turn upright, the one angle at which Vega's overlap
# test (on each label's upright bounding box) lets a long label keep a narrow band.
LONG_LABEL = 10


def fitted_height(bands: int, *, legend: bool = False) -> int:
    """The height that gives each of ``bands`` horizontal bars a band its label fits in."""
    return AXIS_ROOM + (LEGEND_ROOM if legend else 0) + BAND * max(bands, 1)


def bars(frame: pl.DataFrame, x: str, y: str, color: str | None = None, *, x_title: str | None = None,
         y_title: str | None = None, y_format: str | None = None, sort: list[str] | str | None = None,
         horizontal: bool = False, tooltip: list | None = None, height: int | None = None) -> alt.Chart:
    if horizontal:
        groups = frame[color].n_unique() if color else 1
        height = height or fitted_height(frame[x].n_unique() * groups, legend=color is not None)
        category = alt.Y(f"{x}:N", title=x_title, sort=sort, axis=alt.Axis(labelLimit=300))
    else:
        long_labels = frame.height and frame[x].cast(pl.String).str.len_chars().max() > LONG_LABEL
        category = alt.X(f"{x}:N", title=x_title, sort=sort, axis=alt.Axis(
            labelAngle=-90 if long_labels else 0, labelAlign="right" if long_labels else "center",
            labelBaseline="middle" if long_labels else "top", labelLimit=180))
        height = height or 300
    axis = alt.Axis(format=y_format) if y_format else alt.Undefined
    value = (alt.Y(f"{y}:Q", title=y_title or y, axis=axis) if not horizontal
             else alt.X(f"{y}:Q", title=y_title or y, axis=axis))
    encoding = {"x": category, "y": value} if not horizontal else {"y": category, "x": value}
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None, legend=LEGEND)
        encoding["xOffset" if not horizontal else "yOffset"] = alt.XOffset(f"{color}:N") if not horizontal \
            else alt.YOffset(f"{color}:N")
    encoding["tooltip"] = tooltip or [f"{x}:N", *([f"{color}:N"] if color else []),
                                      alt.Tooltip(f"{y}:Q", format=y_format or ",")]
    return alt.Chart(frame).mark_bar().encode(**encoding).properties(height=height)


def heatmap(frame: pl.DataFrame, x: str, y: str, value: str, *, x_title: str, y_title: str,
            value_format: str = PERCENT, tooltip: list | None = None, height: int = 300) -> alt.Chart:
    base = alt.Chart(frame).encode(
        x=alt.X(f"{x}:O", title=x_title), y=alt.Y(f"{y}:O", title=y_title),
    )
    cells = base.mark_rect().encode(
        color=alt.Color(f"{value}:Q", title=None, scale=alt.Scale(scheme="blues", domain=[0, 1])),
        tooltip=tooltip or [f"{y}:O", f"{x}:O", alt.Tooltip(f"{value}:Q", format=value_format)],
    )
    labels = base.mark_text(fontSize=12).encode(
        text=alt.Text(f"{value}:Q", format=value_format),
        color=alt.condition(alt.datum[value] > 0.5, alt.value("white"), alt.value("black")),
    )
    return (cells + labels).properties(height=height)


# An experiment's verdict on a metric, whichever direction is good for it (the mart's significantly_better /
# significantly_worse already account for higher_is_better).
VERDICT_COLORS = {"significantly better": "#2e7d32", "significantly worse": "#c62828", "inconclusive": "#9e9e9e"}
LIFT = "+.0%"


def _zero(axis: str) -> alt.Chart:
    return alt.Chart(pl.DataFrame({"zero": [0.0]})).mark_rule(color="#555", strokeDash=[4, 4]).encode(
        **{axis: alt.X("zero:Q") if axis == "x" else alt.Y("zero:Q")})


def lift_intervals(frame: pl.DataFrame, label: str, lift: str, low: str, high: str, verdict: str, *,
                   title: str = "relative lift, 95% CI", tooltip: list | None = None,
                   height: int | None = None) -> alt.Chart:
    """One row per metric: a point at the lift and a rule across its interval, a dashed line at zero, coloured
    by the verdict (VERDICT_COLORS). Rows keep the frame's order."""
    base = alt.Chart(frame).encode(
        y=alt.Y(f"{label}:N", title=None, sort=frame[label].to_list(), axis=alt.Axis(labelLimit=300)),
        color=alt.Color(f"{verdict}:N", title=None, legend=LEGEND,
                        scale=alt.Scale(domain=list(VERDICT_COLORS), range=list(VERDICT_COLORS.values()))),
        tooltip=tooltip or [f"{label}:N", alt.Tooltip(f"{lift}:Q", format=".1%"), f"{verdict}:N"],
    )
    rules = base.mark_rule(strokeWidth=3).encode(
        x=alt.X(f"{low}:Q", title=title, axis=alt.Axis(format=LIFT)), x2=f"{high}:Q")
    points = base.mark_point(filled=True, size=110, opacity=1).encode(x=f"{lift}:Q")
    return (_zero("x") + rules + points).properties(height=height or max(140, 42 * frame.height))


def lift_over_time(frame: pl.DataFrame, x: str, lift: str, low: str, high: str, color: str | None = None, *,
                   y_title: str = "relative lift, 95% CI", tooltip: list | None = None,
                   height: int = 300) -> alt.Chart:
    """A lift per day as a line with its interval as a band around it, and a dashed line at zero."""
    encoding = {"x": alt.X(f"{x}:T", title=None, axis=alt.Axis(format="%b %d", tickCount="day"))}
    if color:
        encoding["color"] = alt.Color(f"{color}:N", title=None, legend=LEGEND)
    base = alt.Chart(frame).encode(**encoding)
    band = base.mark_area(opacity=0.2).encode(y=alt.Y(f"{low}:Q", title=y_title, axis=alt.Axis(format=LIFT)),
                                              y2=f"{high}:Q")
    line = base.mark_line(point=True).encode(
        y=f"{lift}:Q",
        tooltip=tooltip or [alt.Tooltip(f"{x}:T"), alt.Tooltip(f"{lift}:Q", format="+.1%"),
                            alt.Tooltip(f"{low}:Q", format="+.1%"), alt.Tooltip(f"{high}:Q", format="+.1%")])
    return (band + _zero("y") + line).properties(height=height).interactive()


# A trace's waterfall: span kinds in fixed colours (the same in every trace), errors in red.
SPAN_COLORS = {"app": "#1565c0", "server": "#6a1b9a", "database": "#2e7d32", "partner call": "#ef6c00",
               "messaging": "#00838f", "internal": "#9e9e9e"}
ERROR_COLOR = "#c62828"
CRITICAL_COLOR = "#212121"


def waterfall(spans: pl.DataFrame, path: pl.DataFrame) -> alt.Chart:
    """One bar per span from its start to its end (ms from the trace's start), rows in tree order
    (``dashboards.traces.waterfall``); the critical path as a thin dark bar inside the bars it runs
    through; a red outline and a cross at the end of every span that failed."""
    rows = spans["label"].to_list()
    y = alt.Y("label:N", title=None, sort=rows, axis=alt.Axis(labelLimit=360, labelFontSize=12))
    x_title = "ms from the trace's start"
    tooltip = ["span_name:N", "service_name:N", "category:N", alt.Tooltip("duration_ms:Q", format=",.1f"),
               alt.Tooltip("start_ms:Q", title="starts at (ms)", format=",.1f"),
               alt.Tooltip("critical_ms:Q", title="on the critical path (ms)", format=",.1f"),
               "status_code:N", "http_status_code:Q", "is_error:N"]
    bars = alt.Chart(spans).mark_bar(height=16, opacity=0.55).encode(
        x=alt.X("start_ms:Q", title=x_title), x2="end_ms:Q", y=y,
        color=alt.Color("category:N", title=None, legend=LEGEND,
                        scale=alt.Scale(domain=list(SPAN_COLORS), range=list(SPAN_COLORS.values()))),
        stroke=alt.condition(alt.datum.is_error, alt.value(ERROR_COLOR), alt.value(None)),
        strokeWidth=alt.condition(alt.datum.is_error, alt.value(2), alt.value(0)),
        tooltip=tooltip,
    )
    layers = [bars]
    if path.height:
        layers.append(alt.Chart(path).mark_bar(height=5, color=CRITICAL_COLOR).encode(
            x="start_ms:Q", x2="end_ms:Q", y=y,
            tooltip=[alt.Tooltip("label:N", title="critical path"), alt.Tooltip("ms:Q", format=",.1f")]))
    errors = spans.filter(pl.col("is_error"))
    if errors.height:
        layers.append(alt.Chart(errors).mark_point(shape="cross", size=140, filled=True, color=ERROR_COLOR)
                      .encode(x="end_ms:Q", y=y, tooltip=tooltip))
    # Streamlit fits the whole chart (axis, title and legend included) into the height: leave them room.
    return alt.layer(*layers).properties(height=120 + 26 * spans.height)
