"""The published copy: complete, self-contained, and replaced without blocking or disturbing readers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import duckdb
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_pipeline_publishes_every_relation_with_its_rows(world, con):
    root, _ = world
    published = duckdb.connect(str(root / "published" / "pitwall.duckdb"), read_only=True)
    try:
        names = [n for (n,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' order by 1").fetchall()]
        assert {"stg_events", "fct_sessions", "mart_funnel_daily", "mart_release_health", "quarantine"} <= set(names)
        for name in names:
            assert published.execute(f'select count(*) from "{name}"').fetchall() == \
                con.execute(f'select count(*) from "{name}"').fetchall(), name
        # Views are published as tables, so the copy needs neither the warehouse nor the raw files.
        kinds = {t for (t,) in published.execute("select distinct table_type from information_schema.tables").fetchall()}
        assert kinds == {"BASE TABLE"}
    finally:
        published.close()


def test_republishing_does_not_block_or_disturb_an_open_reader(world):
    root, _ = world
    path = root / "published" / "pitwall.duckdb"
    reader = duckdb.connect(str(path), read_only=True)
    try:
        before = reader.execute("select count(*) from stg_events").fetchall()[0]
        inode = path.stat().st_ino
        subprocess.run([sys.executable, "-c", "from orchestration.publish.publish import publish_warehouse; publish_warehouse()"],
                       cwd=ROOT, env={**os.environ, "PITWALL_DATA_DIR": str(root)}, check=True, capture_output=True)
        assert path.stat().st_ino != inode  # a new file took the name
        assert reader.execute("select count(*) from stg_events").fetchall()[0] == before  # the open reader is undisturbed
    finally:
        reader.close()
    assert not list(path.parent.glob(".*.tmp-*"))


# --- the audit before the publish ----------------------------------------------------------------------

def audited_tables() -> list[str]:
    from orchestration.publish.assets import AUDITED_TABLES

    return AUDITED_TABLES


def spoil(database, statements: list[str]) -> None:
    con = duckdb.connect(str(database))
    try:
        for sql in statements:
            con.execute(sql)
    finally:
        con.close()


VIOLATIONS = [
    # (table, the statement that breaks one rule, the expectation that must catch it, its columns)
    ("mart_release_health", "update mart_release_health set crash_free_sessions_rate = 1.5 where rowid = 0",
     "expect_column_values_to_be_between", ("crash_free_sessions_rate",)),
    ("mart_api_latency_daily", "update mart_api_latency_daily set p95_ms = p50_ms - 1 where rowid = (select min(rowid) from mart_api_latency_daily where p50_ms > 0)",
     "expect_column_pair_values_a_to_be_greater_than_b", ("p95_ms", "p90_ms")),
    ("mart_funnel_daily", "update mart_funnel_daily set day = current_date + 3 where rowid = 0",
     "expect_column_values_to_be_between", ("day",)),
    ("mart_engagement_daily", "update mart_engagement_daily set dau = -1 where rowid = 0",
     "expect_column_values_to_be_between", ("dau",)),
]


@pytest.mark.parametrize("engine", ["sql", "gx"])
def test_the_expectations_catch_each_kind_of_violation(world, tmp_path, engine):
    from orchestration.publish.expectations import validate_publication

    copy = tmp_path / "pitwall.duckdb"
    shutil.copy(world[0] / "published" / "pitwall.duckdb", copy)
    tables = audited_tables()
    clean = validate_publication(copy, tables, engine=engine)
    assert all(r.success for r in clean.values()), {t: [str(f) for f in r.failures] for t, r in clean.items()}
    assert all(r.evaluated > 0 for r in clean.values())

    spoil(copy, [sql for _, sql, _, _ in VIOLATIONS])
    spoiled = validate_publication(copy, tables, engine=engine)
    failing = {t: {(f.expectation, f.columns) for f in r.failures} for t, r in spoiled.items() if not r.success}
    assert failing == {table: {(expectation, columns)} for table, _, expectation, columns in VIOLATIONS}
    if engine == "sql":  # the pipeline's engine agrees with Great Expectations on the world's own tables
        assert {t: (r.rows, r.evaluated, [(f.expectation, f.columns, f.observed["unexpected"]) for f in r.failures])
                for t, r in spoiled.items()} == \
            {t: (r.rows, r.evaluated, [(f.expectation, f.columns, f.observed["unexpected"]) for f in r.failures])
             for t, r in validate_publication(copy, tables, engine="gx").items()}


def _publish_in_process():
    import dagster as dg

    from orchestration.publish.assets import publication_expectations, published_warehouse, staged_publication

    return dg.materialize([staged_publication, publication_expectations, published_warehouse], raise_on_error=False)


def test_a_failing_check_stops_the_publish_and_a_passing_one_publishes_the_serving_tables(world, tmp_path, monkeypatch):
    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(world[0] / "warehouse.duckdb", root / "warehouse.duckdb")
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    published = root / "published" / "pitwall.duckdb"

    spoil(root / "warehouse.duckdb", ["update mart_release_health set crash_free_users_rate = -0.1 where rowid = 0"])
    result = _publish_in_process()
    checks = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data.passed
              for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert checks["expectations_mart_release_health"] is False
    assert sum(not ok for ok in checks.values()) == 1 and len(checks) == len(audited_tables()) + 1
    materialized = {tuple(e.asset_key.path) for e in result.get_asset_materialization_events()}
    assert materialized == {("published", "staged")}
    assert not published.exists() and not (root / "published" / "serving").exists()

    spoil(root / "warehouse.duckdb", ["update mart_release_health set crash_free_users_rate = 0.5 where rowid = 0"])
    result = _publish_in_process()
    assert result.success
    assert published.exists() and not (root / "published" / ".pitwall.duckdb.staged").exists()
    con = duckdb.connect(str(published), read_only=True)
    try:
        for name in ("review_prompt_eligibility",):
            parquet = root / "published" / "serving" / f"{name}.parquet"
            assert con.execute(f"select count(*) from read_parquet('{parquet}')").fetchall() == \
                con.execute(f'select count(*) from "{name}"').fetchall() != [(0,)]
    finally:
        con.close()


def test_every_published_relation_is_audited_marts_by_name_wherever_their_folder(world, tmp_path, monkeypatch):
    """A mart in a domain folder (models/partners/) has its own check, as one in models/marts/ does, and a bad
    row in any other published relation (a fact, here) stops the publish too."""
    from orchestration.publish.assets import AUDITED_TABLES, OTHER_RELATIONS_CHECK
    from orchestration.publish.publish import publication_relations

    published_names = publication_relations(world[0] / "published" / "pitwall.duckdb")
    marts = {name for name in published_names if name.startswith("mart_")}
    assert {"mart_partner_sla_daily", "mart_reconciliation_breaks", "mart_reconciliation_daily",
            "mart_partner_booking_funnel"} <= marts <= set(AUDITED_TABLES)

    root = tmp_path / "data"
    root.mkdir()
    for database in ("warehouse.duckdb", "alerts.duckdb"):  # what the world's publication was staged from
        shutil.copy(world[0] / database, root / database)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    spoil(root / "warehouse.duckdb", [
        "update mart_partner_sla_daily set day = current_date + 3 where rowid = 0",
        "update fct_sessions set events = -1 where rowid = 0",
    ])
    result = _publish_in_process()
    evaluations = {e.asset_check_evaluation_data.check_name: e.asset_check_evaluation_data
                   for e in result.all_events if e.event_type_value == "ASSET_CHECK_EVALUATION"}
    assert {name for name, e in evaluations.items() if not e.passed} == \
        {"expectations_mart_partner_sla_daily", OTHER_RELATIONS_CHECK}
    failing = evaluations[OTHER_RELATIONS_CHECK].metadata["failing"].value
    assert list(failing) == ["fct_sessions"] and "events" in failing["fct_sessions"][0]
    assert evaluations[OTHER_RELATIONS_CHECK].metadata["relations"].value == \
        len(published_names) - len(set(AUDITED_TABLES) & set(published_names))
    assert not (root / "published" / "pitwall.duckdb").exists()
