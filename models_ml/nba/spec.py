"""The next-best-action model's inputs, in one place: which columns of the feature mart
(dbt_project/models/recommendations/fct_nba_features.sql) it reads, how each becomes a readable reason,
and each action's due-now rule, read from the action catalog (dbt_project/seeds/action_catalog.csv, the
definition fct_nba_features computes `due_by_rule` from) for reasons of the rules-only fallback."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import polars as pl

FEATURES: tuple[tuple[str, str], ...] = (
    # context
    ("action_id", "categorical"), ("action_kind", "categorical"), ("placement", "categorical"),
    ("region", "categorical"), ("segment", "categorical"), ("platform", "categorical"),
    # vehicle and telemetry (as of the day before)
    ("fuel_type", "categorical"), ("vehicle_age_years", "numeric"), ("odometer_km", "numeric"),
    ("oil_life_pct", "numeric"), ("battery_voltage", "numeric"), ("battery_voltage_trend_7d", "numeric"),
    ("min_tire_pressure_kpa", "numeric"), ("daily_km_30d", "numeric"), ("days_since_telemetry", "numeric"),
    ("dtc_battery_7d", "numeric"), ("dtc_brakes_7d", "numeric"), ("dtc_codes_7d", "numeric"),
    # service history
    ("visits_365d", "numeric"), ("spend_365d", "numeric"), ("days_since_last_visit", "numeric"),
    ("days_since_same_service", "numeric"),
    # earlier offers
    ("shown_same_action_90d", "numeric"), ("accepted_same_action_90d", "numeric"),
    ("declined_same_action_30d", "numeric"), ("accepted_same_kind_90d", "numeric"),
)

# How a feature that pushed a recommendation up reads to a customer or a support agent.
REASON_TEMPLATES: dict[str, str] = {
    "oil_life_pct": "oil life {value:.0f}%",
    "battery_voltage": "battery at {value:.2f} V",
    "battery_voltage_trend_7d": "battery voltage trend {value:+.2f} V this week",
    "min_tire_pressure_kpa": "a tire at {value:.0f} kPa",
    "vehicle_age_years": "vehicle {value:.0f} years old",
    "odometer_km": "{value:,.0f} km on the odometer",
    "daily_km_30d": "drives {value:.0f} km a day",
    "dtc_battery_7d": "battery trouble code this week",
    "dtc_brakes_7d": "brake-system trouble code this week",
    "dtc_codes_7d": "{value:.0f} trouble codes this week",
    "days_since_same_service": "last done {value:.0f} days ago",
    "days_since_last_visit": "last visit {value:.0f} days ago",
    "visits_365d": "{value:.0f} visits this year",
    "spend_365d": "spent ${value:,.0f} this year",
    "region": "popular in the {value} region",
    "segment": "customer segment {value}",
    "fuel_type": "{value} vehicle",
}
# Never given as a reason: identity (what the recommendation is, where it shows, the device) and the history of
# earlier offers (the model may use them; a customer is not told "we showed you this before").
NOT_REASONS: tuple[str, ...] = ("action_id", "action_kind", "placement", "platform",
                                "shown_same_action_90d", "accepted_same_action_90d",
                                "declined_same_action_30d", "accepted_same_kind_90d", "days_since_telemetry")
# Context: true of the customer but not something to act on ("gasoline vehicle", "popular in the north region").
# Given as a reason only when no actionable reason (every other feature: the vehicle's condition, age and
# mileage, its trouble codes, the service history) pushed the recommendation up.
CONTEXT_REASONS: tuple[str, ...] = ("region", "segment", "fuel_type")
# Flags and counts: a reason only when present ("battery trouble code this week" needs one).
REASON_WHEN_POSITIVE: tuple[str, ...] = ("dtc_battery_7d", "dtc_brakes_7d", "dtc_codes_7d", "visits_365d", "spend_365d")
# A row with no positive reason at all.
FALLBACK_REASON = "popular with similar drivers"
ACTIONABLE_REASONS: tuple[str, ...] = tuple(name for name, _ in FEATURES
                                            if name not in NOT_REASONS and name not in CONTEXT_REASONS)

ACTION_CATALOG = Path(__file__).resolve().parents[2] / "dbt_project" / "seeds" / "action_catalog.csv"


@dataclass(frozen=True)
class DueRule:
    """An action's due-now rule, as the catalog's due_* columns state it: due when the reading is below
    ``below`` or at least ``at_least``, or when a trouble code of ``dtc_family`` was seen in the last 7 days."""

    action_id: str
    reading: str | None
    below: float | None
    at_least: float | None
    dtc_family: str | None

    def expr(self) -> pl.Expr:
        """Whether a row of fct_nba_features (this action's) is due now, never null, as the mart computes it."""
        due = pl.lit(False)
        if self.reading and self.below is not None:
            due = due | (pl.col(self.reading).cast(pl.Float64) < self.below).fill_null(False)
        if self.reading and self.at_least is not None:
            due = due | (pl.col(self.reading).cast(pl.Float64) >= self.at_least).fill_null(False)
        if self.dtc_family:
            due = due | pl.col("dtc_families_7d").list.contains(self.dtc_family).fill_null(False)
        return due


def due_rules(catalog: Path = ACTION_CATALOG) -> dict[str, DueRule]:
    """Every catalog action's due-now rule (one without a reading nor a trouble-code family is never due)."""
    def number(text: str) -> float | None:
        return float(text) if text.strip() else None

    with catalog.open(newline="") as f:
        return {row["action_id"]: DueRule(row["action_id"], row["due_reading"] or None, number(row["due_below"]),
                                          number(row["due_at_least"]), row["due_dtc_family"] or None)
                for row in csv.DictReader(f)}


def due_by_rule(frame: pl.DataFrame, rules: dict[str, DueRule] | None = None) -> pl.Series:
    """``due_by_rule`` of fct_nba_features rows (action_id, the readings, dtc_families_7d) from the catalog."""
    rules = due_rules() if rules is None else rules
    due = pl.lit(False)
    for action_id, rule in rules.items():
        due = pl.when(pl.col("action_id") == action_id).then(rule.expr()).otherwise(due)
    return frame.select(due.alias("due_by_rule")).get_column("due_by_rule")


# The feature each action's due-now rule reads (the catalog's due_reading), for reasons of the rules fallback.
RULE_FEATURE: dict[str, str] = {a: r.reading for a, r in due_rules().items() if r.reading}
