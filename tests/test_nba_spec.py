"""The model's spec (models_ml/nba/spec.py) against the action catalog it reads: fast, no world."""

from __future__ import annotations

import polars as pl

from models_ml.nba.spec import FEATURES, REASON_TEMPLATES, RULE_FEATURE, due_by_rule, due_rules


def test_every_due_rule_reads_a_numeric_feature_with_a_reason_template():
    numeric = {name for name, kind in FEATURES if kind == "numeric"}
    rules = due_rules()
    assert {"battery_replacement", "oil_change", "tire_rotation", "brake_service"} <= set(RULE_FEATURE)
    for action_id, rule in rules.items():
        if rule.reading:
            assert rule.reading in numeric and rule.reading in REASON_TEMPLATES, action_id
            assert (rule.below is not None) or (rule.at_least is not None), action_id
        else:
            assert rule.below is None and rule.at_least is None, action_id


def test_due_by_rule_follows_the_catalog():
    frame = pl.DataFrame({
        "action_id": ["battery_replacement", "battery_replacement", "battery_replacement", "oil_change",
                      "oil_change", "brake_service", "brake_service", "brake_service", "cabin_filter"],
        "battery_voltage": [12.1, 12.6, None, 12.1, None, None, None, None, None],
        "oil_life_pct": [None, None, None, 19.0, 20.0, None, None, None, None],
        "min_tire_pressure_kpa": [None] * 9,
        "vehicle_age_years": [None, None, None, None, None, 7, 6, 2, 20],
        "daily_km_30d": [None] * 8 + [300.0],
        "odometer_km": [None] * 9,
        "dtc_families_7d": [[], [], ["battery"], [], [], [], ["brakes"], ["battery"], ["brakes"]],
    })
    assert due_by_rule(frame).to_list() == [True, False, True, True, False, True, True, False, False]
