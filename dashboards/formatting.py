"""How numbers read on the pages (tests format their independent values with the same functions)."""

from __future__ import annotations


def percent(rate: float | None, digits: int = 2) -> str:
    return "—" if rate is None else f"{rate:.{digits}%}"


def points(current: float | None, previous: float | None, digits: int = 2) -> str | None:
    """Change of a rate in percentage points, or None (no arrow) when either side is unknown."""
    if current is None or previous is None:
        return None
    return f"{(current - previous) * 100:+.{digits}f} pp"


def milliseconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ms"


def change(current: float | None, previous: float | None, unit: str = "", digits: int = 0) -> str | None:
    if current is None or previous is None:
        return None
    return f"{current - previous:+,.{digits}f}{unit}"


def score(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def seconds(value: float | None) -> str:
    """A duration the way an analyst reads it: 42 s, 7.5 min, 3.2 h, 2.1 d."""
    if value is None:
        return "—"
    for limit, divisor, unit in ((90, 1, "s"), (90 * 60, 60, "min"), (48 * 3600, 3600, "h")):
        if value < limit:
            return f"{value / divisor:.0f} {unit}" if unit == "s" else f"{value / divisor:.1f} {unit}"
    return f"{value / 86400:.1f} d"


def _missing(value: float | None) -> bool:
    return value is None or value != value  # None, or NaN


def lift(value: float | None, digits: int = 1) -> str:
    """A relative lift, signed: +36.6%."""
    return "—" if _missing(value) else f"{value:+.{digits}%}"


def interval(low: float | None, high: float | None, digits: int = 1) -> str:
    """A confidence interval of relative lifts: [+6.4%, +66.8%]."""
    return "—" if _missing(low) or _missing(high) else f"[{low:+.{digits}%}, {high:+.{digits}%}]"


def p_value(value: float | None) -> str:
    """Three decimals, and below 0.001 just that (the digits beyond say nothing more)."""
    if _missing(value):
        return "—"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def measure(value: float | None, is_rate: bool, digits: int = 2) -> str:
    """A metric's value: a rate as a percentage (8.43%), anything else as a number (48.30)."""
    if _missing(value):
        return "—"
    return percent(value, digits) if is_rate else score(value, digits)
