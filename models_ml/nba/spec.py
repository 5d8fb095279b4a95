"""The next-best-action model's inputs, in one place: which columns of the feature mart
(dbt_project/models/recommendations/fct_nba_features.sql) it reads, how each becomes a readable reason,
and which feature states each action's rule (for reasons of the rules-only fallback)."""

from __future__ import annotations

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
# Never given as a reason: they say what the recommendation is, not why.
NOT_REASONS: tuple[str, ...] = ("action_id", "action_kind", "placement", "platform",
                                "shown_same_action_90d", "accepted_same_action_90d",
                                "declined_same_action_30d", "accepted_same_kind_90d", "days_since_telemetry")
# Flags and counts: a reason only when present ("battery trouble code this week" needs one).
REASON_WHEN_POSITIVE: tuple[str, ...] = ("dtc_battery_7d", "dtc_brakes_7d", "dtc_codes_7d", "visits_365d", "spend_365d")
# The feature each action's due-now rule reads (int_nba candidates' rules_score), for fallback reasons.
RULE_FEATURE: dict[str, str] = {
    "battery_replacement": "battery_voltage",
    "oil_change": "oil_life_pct",
    "tire_rotation": "min_tire_pressure_kpa",
    "brake_service": "vehicle_age_years",
    "cabin_filter": "daily_km_30d",
}
