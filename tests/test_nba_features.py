"""Next-best-action features on the simulated world: point in time, and labels only from exposures.

The point-in-time proof: copy the world's warehouse, delete or blank everything observed on or after a
cutoff day in the staging tables (events, telemetry, sessions' sources, job completions, invoices), rebuild
every model downstream of staging with dbt, and compare: the features of every exposure shown before the
cutoff must not change. A feature that peeks at later data changes.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from conftest import ROOT
from pitwall.duck import connect

pytestmark = pytest.mark.slow

FEATURE_KEY = ["user_id", "vin", "action_id", "as_of_date"]


def features_before(database: Path, cutoff) -> dict:
    con = connect(database, read_only=True)  # as the session's `con` fixture opens the world's file
    try:
        columns = [c for (c,) in con.execute(
            "select column_name from information_schema.columns where table_name = 'fct_nba_features' "
            "order by ordinal_position").fetchall()]
        rows = con.execute("""
            select * from fct_nba_features where purpose = 'training' and as_of_date <= ? order by all
        """, [cutoff]).fetchall()
    finally:
        con.close()
    key = [columns.index(c) for c in FEATURE_KEY]
    return {tuple(r[i] for i in key): dict(zip(columns, r)) for r in rows}


def same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (math.isnan(a) and math.isnan(b))
    return a == b


def test_features_do_not_change_when_later_data_is_removed(world, tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(world[0] / "warehouse.duckdb", root / "warehouse.duckdb")
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    try:
        first, last = con.execute("select min(as_of_date), max(as_of_date) from int_recommendation_exposures").fetchall()[0]
        cutoff = first + (last - first) // 2
        # Everything observed on or after the cutoff day disappears, as if the data ended the day before.
        con.execute("delete from stg_events where occurred_at >= ?::timestamptz", [cutoff])
        con.execute("delete from stg_telemetry where observed_at >= ?::timestamptz", [cutoff])
        con.execute("delete from stg_crashes where occurred_at >= ?::timestamptz", [cutoff])
        con.execute("delete from stg_jobs where created_at >= ?::timestamptz", [cutoff])
        con.execute("update stg_jobs set completed_at = null where completed_at >= ?::timestamptz", [cutoff])
        con.execute("delete from stg_invoices where issued_at >= ?::timestamptz", [cutoff])
        con.execute("delete from stg_vehicles where created_at >= ?::timestamptz", [cutoff])
        con.execute("delete from stg_customers where created_at >= ?::timestamptz", [cutoff])
    finally:
        con.close()
    subprocess.run(
        [str(Path(sys.executable).parent / "dbt"), "--quiet", "run", "--project-dir", ".", "--profiles-dir", ".",
         "--target-path", str(tmp_path / "target"), "--select", "+fct_nba_features", "--exclude", "path:models/staging"],
        cwd=ROOT / "dbt_project", env={**os.environ, "PITWALL_DATA_DIR": str(root)}, check=True, capture_output=True)

    # exposures shown before the cutoff day (those on it were deleted with the rest of that day)
    full = features_before(world[0] / "warehouse.duckdb", cutoff - timedelta(days=1))
    truncated = features_before(root / "warehouse.duckdb", cutoff - timedelta(days=1))
    assert len(full) > 100
    assert truncated.keys() == full.keys()
    changed = {k: {c for c in full[k] if not same(full[k][c], truncated[k][c])} for k in full}
    changed = {k: v for k, v in changed.items() if v}
    assert not changed, list(changed.items())[:5]
    # the later data exists and matters: later exposures have features built from it
    con = connect(world[0] / "warehouse.duckdb", read_only=True)
    try:
        later = con.execute("select count(*) from fct_nba_features where purpose = 'training' and as_of_date > ?",
                            [cutoff]).fetchall()[0][0]
    finally:
        con.close()
    assert later > 100


def test_labels_come_only_from_logged_exposures(con, world):
    # recounted here: each acceptance is credited to the latest exposure of the same action to the same
    # user in the 7 days before it (last touch); every training row is a logged exposure
    exposures = con.execute("""
        select exposure_id, user_id, action_id, shown_at from int_recommendation_exposures""").fetchall()
    accepted = con.execute("""
        select user_id, json_extract_string(properties, '$.action_id'), occurred_at
        from stg_events where event_name = 'recommendation_accepted'""").fetchall()
    by_offer: dict[tuple, list] = {}
    for exposure_id, user, action, shown_at in exposures:
        by_offer.setdefault((user, action), []).append((shown_at, exposure_id))
    credited = set()
    for user, action, at in accepted:
        before = [(t, e) for t, e in by_offer.get((user, action), []) if at - timedelta(days=7) <= t <= at]
        if before:
            credited.add(max(before)[1])
    labels = dict(con.execute("select exposure_id, label from fct_nba_training").fetchall())
    assert labels and sum(labels.values()) > 10
    assert {e: int(e in credited) for e in labels} == labels
    shown = con.execute("select count(*) from stg_events where event_name = 'recommendation_shown'").fetchall()[0][0]
    assert con.execute("select count(*) from int_recommendation_exposures").fetchall()[0][0] == shown


def test_due_now_rules_are_the_catalogs_in_sql_and_in_python(con):
    """The due-now rules have one definition, the action catalog's due_* columns: fct_nba_features' due_by_rule
    (SQL) equals models_ml.nba.spec's evaluation of the same catalog on every row, and the reading the rules
    fallback names for an action is the one its rule reads (they disagreed on cabin_filter)."""
    import polars as pl

    from models_ml.nba.spec import RULE_FEATURE, due_by_rule, due_rules

    catalog = {a: (r, b, c, d) for a, r, b, c, d in con.execute(
        "select action_id, due_reading, due_below, due_at_least, due_dtc_family from dim_actions").fetchall()}
    rules = due_rules()
    assert catalog == {a: (r.reading, r.below, r.at_least, r.dtc_family) for a, r in rules.items()}
    assert RULE_FEATURE == {a: r for a, (r, *_) in catalog.items() if r}

    frame = con.sql("""select action_id, due_by_rule, battery_voltage, oil_life_pct, min_tire_pressure_kpa,
                                  vehicle_age_years, daily_km_30d, odometer_km, dtc_families_7d
                           from fct_nba_features""").pl()
    python = due_by_rule(frame)
    assert frame["due_by_rule"].null_count() == 0
    differ = frame.filter(frame["due_by_rule"] != python)
    assert differ.is_empty(), differ.head()
    # every rule is due for some rows and not for others: the comparison is not vacuous
    per_action = frame.group_by("action_id").agg(pl.col("due_by_rule").sum().alias("due"), pl.len())
    for action_id, due, n in per_action.iter_rows():
        if rules[action_id].reading or rules[action_id].dtc_family:
            assert 0 < due < n, (action_id, due, n)
        else:
            assert due == 0, action_id
