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
