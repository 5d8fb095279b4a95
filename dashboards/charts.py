"""Small Altair helpers so pages stay short and every chart looks and behaves the same (tooltips, zoom)."""

from __future__ import annotations

import altair as alt
import polars as pl

PERCENT = ".1%"
LEGEND = alt.Legend(orient="bottom", columns=4, labelLimit=260)


def lines(frame: pl.DataFrame, x: str, y: str, color: str | None = None, *, y_title: str | None = None,
          y_format: str | None = None, height: int = 300, ticks: str = "day") -> alt.Chart:
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
    return alt.Chart(frame).mark_line(point=True).encode(**encoding).properties(height=height).interactive()


def bars(frame: pl.DataFrame, x: str, y: str, color: str | None = None, *, x_title: str | None = None,
         y_title: str | None = None, y_format: str | None = None, sort: list[str] | str | None = None,
         horizontal: bool = False, tooltip: list | None = None, height: int = 300) -> alt.Chart:
    category = (alt.X(f"{x}:N", title=x_title, sort=sort, axis=alt.Axis(labelAngle=0, labelLimit=180)) if not horizontal
                else alt.Y(f"{x}:N", title=x_title, sort=sort, axis=alt.Axis(labelLimit=300)))
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
