"""One more day after a full build: what the daily run skips must not change what it produces.

- publish: a publication that carries unchanged tables over and replaces only the changed days equals a
  publication from scratch, table by table; serving files are rewritten only when their table changed;
- the publication's checks: the SQL engine agrees with Great Expectations on planted bad rows;
- the models: the fingerprint of their training rows ignores their order and sees any change, and a fit is
  reused for the same rows and within the refit cadence;
- dbt: a daily build's data tests of the incremental models look at the days the run can change, and
  still catch a bad row there.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import ROOT

# --- publish: only what changed is copied -----------------------------------------------------------------

PARTITIONED = {"events": "dt"}
SERVING = ["serving_a", "serving_b"]


def _warehouse(root: Path) -> None:
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("""
        create table events as
        select 'm' || i as message_id,
               case when i % 50 = 0 then null else date '2026-11-01' + cast(i % 3 as integer) end as dt,
               i % 7 as n, [i, i + 1] as list_col, {'k': 'v' || i} as struct_col
        from range(300) as t(i)""")
    con.execute("create table mart as select range as k, range * 0.5 as rate from range(10)")
    con.execute("create table serving_a as select 'u' || range as user_id, range as rank from range(20)")
    con.execute("create table serving_b as select 'u' || range as user_id, range as rank from range(20)")
    con.execute("create view v_events as select dt, count(*) as n from events group by dt")
    con.close()


def _change(root: Path) -> None:
    """A day's worth of change: a new day, a late row in an old day, a day gone, a serving table changed, a
    table dropped and one added."""
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    con.execute("insert into events select 'n' || range, date '2026-11-04', 1, [range], {'k': 'new'} from range(40)")
    con.execute("update events set n = 99 where message_id = 'm1'")  # m1 is on 2026-11-02
    con.execute("delete from events where dt = date '2026-11-01'")
    con.execute("update serving_b set rank = rank + 1 where user_id = 'u3'")
    con.execute("drop table mart")
    con.execute("create table mart_new as select 1 as x")
    con.close()


def _publish(root: Path, monkeypatch):
    from orchestration.publish.publish import promote_publication, stage_publication

    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    staged = stage_publication(PARTITIONED)
    return staged, promote_publication(SERVING)


def _same_tables(a: Path, b: Path) -> list[str]:
    con = duckdb.connect()
    con.execute(f"attach '{a}' as a (read_only)")
    con.execute(f"attach '{b}' as b (read_only)")
    names = {c: sorted(n for (n,) in con.execute(
        "select table_name from information_schema.tables where table_catalog = ?", [c]).fetchall()) for c in "ab"}
    assert names["a"] == names["b"]
    for name in names["a"]:
        columns = "* exclude (published_at)" if name == "_publication" else "*"
        for x, y in (("a", "b"), ("b", "a")):
            extra = con.execute(f'select count(*) from (select {columns} from {x}.main."{name}" except all '
                                f'select {columns} from {y}.main."{name}")').fetchall()[0][0]
            assert extra == 0, (name, x, y)
    con.close()
    return names["a"]


def test_an_incremental_publication_equals_one_from_scratch(tmp_path, monkeypatch):
    daily, fresh = tmp_path / "daily", tmp_path / "fresh"
    daily.mkdir()
    _warehouse(daily)
    first, _ = _publish(daily, monkeypatch)
    assert first.carried == () and set(first.copied) == {"events", "mart", "serving_a", "serving_b", "v_events"}
    serving = daily / "published" / "serving"
    before = {name: (serving / f"{name}.parquet").stat().st_mtime_ns for name in SERVING}
    published = daily / "published" / "pitwall.duckdb"
    reader = duckdb.connect(str(published), read_only=True)  # a dashboard holding the previous publication

    _change(daily)
    staged, promoted = _publish(daily, monkeypatch)
    assert staged.replaced_parts == {"events": ["2026-11-01", "2026-11-02", "2026-11-04"]}
    assert set(staged.copied) == {"serving_b", "v_events", "mart_new"}
    assert set(staged.carried) == {"serving_a"}
    assert promoted.serving_files == (serving / "serving_b.parquet",)
    assert promoted.serving_unchanged == (serving / "serving_a.parquet",)
    assert (serving / "serving_a.parquet").stat().st_mtime_ns == before["serving_a"]
    assert (serving / "serving_b.parquet").stat().st_mtime_ns != before["serving_b"]
    # the open reader still sees the whole previous publication
    assert reader.execute("select count(*) from events").fetchall()[0] == (300,)
    assert reader.execute("select count(*) from mart").fetchall()[0] == (10,)
    reader.close()

    fresh.mkdir()
    shutil.copy(daily / "warehouse.duckdb", fresh / "warehouse.duckdb")
    _publish(fresh, monkeypatch)
    names = _same_tables(published, fresh / "published" / "pitwall.duckdb")
    assert "mart" not in names and "mart_new" in names
    con = duckdb.connect()
    for name in SERVING:  # the serving files hold their tables, whether rewritten or kept
        for root in (daily, fresh):
            assert con.execute(f"select * from '{root}/published/serving/{name}.parquet' except all "
                               f"select * from '{fresh}/published/serving/{name}.parquet'").fetchall() == []
    con.close()

    # nothing changed since: everything is carried over, no serving file is rewritten
    again, promoted = _publish(daily, monkeypatch)
    assert set(again.carried) == {"events", "serving_a", "serving_b", "v_events", "mart_new"}
    assert again.replaced_parts == {} and again.copied == () and promoted.serving_files == ()


def test_the_publication_replaces_by_day_the_incremental_models_and_the_tables_that_name_their_day(dbt_manifest):
    """From dbt's manifest: every model incremental by day with its partition column, and every table whose
    ``meta.publish_partition_by`` names its day column; that column is one of the model's documented columns
    (a misspelt one would silently publish the table whole)."""
    from orchestration.publish.publish import partitioned_models

    manifest = json.loads(dbt_manifest.read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    partitioned = partitioned_models(dbt_manifest)
    incremental = {name for name, n in models.items()  # incremental by day (macros/engine/incremental.sql)
                   if n["config"]["materialized"] == "incremental" and (n["config"].get("meta") or {}).get("arrival_column")}
    named = {name for name, n in models.items() if (n["config"].get("meta") or {}).get("publish_partition_by")}
    assert {"stg_events", "fct_sessions"} <= incremental <= set(partitioned)
    assert {"fct_nba_features", "stg_telemetry"} <= named and set(partitioned) == incremental | named
    for name, column in partitioned.items():
        assert column in models[name]["columns"], (name, column)


def test_a_changed_schema_or_a_publication_without_fingerprints_is_copied_whole(tmp_path, monkeypatch):
    _warehouse(tmp_path)
    _publish(tmp_path, monkeypatch)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("alter table events add column extra integer")
    con.close()
    staged, _ = _publish(tmp_path, monkeypatch)
    assert "events" in staged.copied and staged.replaced_parts == {}
    con = duckdb.connect(str(tmp_path / "published" / "pitwall.duckdb"))
    con.execute("drop table _publication")  # as a publication written before fingerprints were kept
    con.close()
    staged, _ = _publish(tmp_path, monkeypatch)
    assert staged.carried == () and "serving_a" in staged.copied


# --- the publication's checks: SQL against Great Expectations ------------------------------------------------

NOW = dt.datetime(2026, 12, 5, 12, 0, tzinfo=dt.UTC)


def _planted(path: Path) -> None:
    con = duckdb.connect(str(path))
    con.execute("set TimeZone = 'UTC'")
    con.execute("""
        create table mart_planted (
            day date, seen_at timestamptz, logged_at timestamp, scheduled_for timestamptz,
            crash_free_rate double, converted_from_start decimal(9, 4), sessions bigint, users integer,
            p50_ms double, p90_ms double, p95_ms decimal(12, 3), median_wait double, p99_wait double, label varchar)""")
    con.execute("""
        insert into mart_planted values
        -- clean rows
        ('2026-12-04', '2026-12-05 11:00+00', '2026-12-05 11:00', '2027-01-01 00:00+00', 0.5, 0.25, 10, 3,
         10, 20, 30, 1, 2, 'a'),
        ('2026-12-05', '2026-12-05 13:00+00', null, null, 1.0, 0, 0, 0, 10, 10, 10, null, 5, 'b'),
        (null, null, null, null, null, null, null, null, null, null, null, null, null, 'c'),
        ('2026-12-01', '2026-12-01 00:00+00', '2026-12-01', null, 'NaN', 1, 5, 5, 'NaN', 3, 4, 7, 'NaN', 'd'),
        -- bad rows: a date tomorrow, a timestamp a week ahead, rates out of [0, 1], negative counts,
        -- percentiles out of order
        ('2026-12-06', '2026-12-12 00:00+00', '2026-12-12 00:00', '2030-01-01 00:00+00', 1.5, -0.5, -1, 2,
         50, 40, 30, 9, 3, 'e'),
        ('2026-12-04', '2026-12-05 11:00+00', '2026-12-12 00:00', null, -0.1, 1.0001, 3, -2,
         1, 2, 1.5, 1, 1, 'f')""")
    con.execute("create table mart_empty as select * from mart_planted where false")
    con.close()


def test_the_sql_checks_agree_with_great_expectations_on_planted_bad_rows(tmp_path):
    from orchestration.publish.expectations import validate_publication

    path = tmp_path / "planted.duckdb"
    _planted(path)
    tables = ["mart_planted", "mart_empty", "mart_missing"]
    sql = validate_publication(path, tables, now=NOW, engine="sql")
    gx = validate_publication(path, tables, now=NOW, engine="gx")

    def verdicts(results):
        return {t: (r.rows, r.evaluated, sorted((f.expectation, f.columns, f.observed["unexpected"]
                                                 if isinstance(f.observed, dict) else f.observed)
                                                for f in r.failures)) for t, r in results.items()}

    assert verdicts(sql) == verdicts(gx)
    failing = {(f.expectation, f.columns): f.observed["unexpected"] for f in sql["mart_planted"].failures}
    between, pair = "expect_column_values_to_be_between", "expect_column_pair_values_a_to_be_greater_than_b"
    assert failing == {
        (between, ("day",)): 1, (between, ("seen_at",)): 1, (between, ("logged_at",)): 2,
        (between, ("crash_free_rate",)): 2, (between, ("converted_from_start",)): 2,
        (between, ("sessions",)): 1, (between, ("users",)): 1,
        (pair, ("p90_ms", "p50_ms")): 1, (pair, ("p95_ms", "p90_ms")): 2, (pair, ("p99_wait", "median_wait")): 1,
    }
    assert sql["mart_empty"].success and sql["mart_empty"].rows == 0
    assert [f.expectation for f in sql["mart_missing"].failures] == ["table_exists"]


# --- the models: refit only when their training rows change, at most once per cadence --------------------------

def test_the_training_fingerprint_ignores_row_order_and_sees_any_change():
    from models_ml.parts.model import PartsConfig, training_fingerprint

    frame = pl.DataFrame({"job_id": [f"j{i}" for i in range(50)], "part_id": ["p1", "p2"] * 25,
                          "used": [i % 3 == 0 for i in range(50)], "as_of_date": [dt.date(2026, 11, 1 + i % 9) for i in range(50)]})
    base = training_fingerprint(frame)
    assert training_fingerprint(frame.sample(fraction=1.0, shuffle=True, seed=3)) == base
    assert training_fingerprint(frame.select(reversed(frame.columns))) == base
    relabelled = frame.with_columns(used=pl.when(pl.col("job_id") == "j7").then(~pl.col("used")).otherwise(pl.col("used")))
    assert training_fingerprint(relabelled) != base
    assert training_fingerprint(frame.head(49)) != base
    assert training_fingerprint(pl.concat([frame, frame.head(1)])) != base  # a duplicated row counts
    assert training_fingerprint(frame, PartsConfig(rounds=100)) != base


def _training(days: int, start: dt.date = dt.date(2026, 11, 1), flip: str | None = None) -> pl.DataFrame:
    frame = pl.DataFrame({"job_id": [f"j{i}" for i in range(10 * days)], "used": [i % 3 == 0 for i in range(10 * days)],
                          "as_of_date": [start + dt.timedelta(days=i // 10) for i in range(10 * days)]})
    if flip is None:
        return frame
    return frame.with_columns(used=pl.when(pl.col("job_id") == flip).then(~pl.col("used")).otherwise(pl.col("used")))


def test_a_fit_is_reused_for_the_same_rows_and_within_the_refit_cadence_of_days(tmp_path, monkeypatch):
    """Against a real MLflow store: one logged fit, trained through 2026-11-10, stands for the same rows at any
    cadence, and for rows with the same settings through fewer than ``every_days`` days later; more days, other
    settings or columns, data ending earlier, or a cadence of 0 (with changed rows) mean a new fit."""
    from mlflow import MlflowClient

    from models_ml.fingerprint import FitKey, fit_to_reuse, refit_every_days

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("fits", artifact_location=(tmp_path / "artifacts").as_uri())
    settings = {"rounds": 200}
    kept = FitKey.of(_training(10), settings)
    assert str(kept.through) == "2026-11-10"
    run = client.create_run(experiment, tags=kept.tags())
    unfinished = client.create_run(experiment, tags=FitKey.of(_training(12), settings).tags())  # still running
    client.set_terminated(run.info.run_id)

    def reused(frame: pl.DataFrame, every_days: int, with_settings: dict = settings) -> str | None:
        found = fit_to_reuse(client, experiment, FitKey.of(frame, with_settings), every_days=every_days)
        return found and found.run.info.run_id

    assert reused(_training(10).reverse(), every_days=0) == run.info.run_id  # the same rows: always reused
    assert reused(_training(10, flip="j3"), every_days=0) is None  # one label changed, no cadence: fit
    assert reused(_training(10, flip="j3"), every_days=7) == run.info.run_id
    assert reused(_training(16), every_days=7) == run.info.run_id  # through 11-16: 6 days after the kept fit
    assert reused(_training(17), every_days=7) is None  # through 11-17: a week of new data, fit
    assert reused(_training(17), every_days=8) == run.info.run_id
    assert reused(_training(9), every_days=7) is None  # data ending before the kept fit's: fit
    assert reused(_training(12), every_days=7, with_settings={"rounds": 100}) is None
    assert reused(_training(12).with_columns(extra=pl.lit(1)), every_days=7) is None
    assert reused(_training(12), every_days=0) is None  # its rows' only run has not finished
    assert reused(_training(12), every_days=7) == run.info.run_id != unfinished.info.run_id
    why = fit_to_reuse(client, experiment, FitKey.of(_training(12), settings), every_days=7).why
    assert "2026-11-10" in why and "2026-11-17" in why, why
    with pytest.raises(ValueError, match="0 or more"):  # as a run config's refit_every_days may say
        reused(_training(10), every_days=-1)

    monkeypatch.delenv("PITWALL_REFIT_EVERY_DAYS", raising=False)
    assert refit_every_days() == 7
    monkeypatch.setenv("PITWALL_REFIT_EVERY_DAYS", "0")
    assert refit_every_days() == 0
    for bad in ("-1", "weekly", "1.5"):
        monkeypatch.setenv("PITWALL_REFIT_EVERY_DAYS", bad)
        with pytest.raises(ValueError, match="PITWALL_REFIT_EVERY_DAYS"):
            refit_every_days()


# --- dbt: the data tests of a daily build ---------------------------------------------------------------------

def test_a_daily_build_tests_the_incremental_models_from_their_watermark(tmp_path, monkeypatch):
    from orchestration.dbt.assets import build_command, changed_since, incremental_models
    from orchestration.dbt.project import dbt_project

    models = incremental_models(dbt_project.manifest_path)
    assert models["stg_events"] == "dt" and models["fct_sessions"] == "last_arrival_dt"
    assert models["mart_release_health"] == "last_arrival_dt" and "dim_users" not in models
    monkeypatch.setenv("PITWALL_DATA_DIR", str(tmp_path))
    assert changed_since(dbt_project.manifest_path) == {}  # no warehouse yet: a full build, tested whole
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create table stg_events as select date '2026-11-03' - cast(range as integer) as dt from range(3)")
    con.execute("create table fct_sessions as select cast(null as date) as last_arrival_dt")  # nothing kept yet
    con.close()
    since = changed_since(dbt_project.manifest_path)
    assert since == {"stg_events": "2026-11-03"}
    assert build_command(unit_tests=False) == ["build", "--exclude-resource-type", "unit_test"]
    assert build_command(unit_tests=True) == ["build"]


@pytest.mark.slow
def test_the_daily_data_tests_catch_a_bad_row_in_the_new_days_and_leave_old_days_alone(world, tmp_path):
    """On a copy of the world's warehouse: a duplicate messageId planted in an old day is outside a daily run's
    tests (that day was tested when it was built); the same planted in the latest day fails them; a full
    build's tests (without the watermarks) catch both."""
    from orchestration.dbt.assets import CHANGED_SINCE_ENV

    root = tmp_path / "data"
    root.mkdir()
    shutil.copy(world[0] / "warehouse.duckdb", root / "warehouse.duckdb")
    con = duckdb.connect(str(root / "warehouse.duckdb"))
    first, last = con.execute("select min(dt), max(dt) from stg_events").fetchall()[0]
    con.close()
    env = {"PITWALL_DATA_DIR": str(root)}

    def unique_test(since: dict | None) -> int:
        args = [str(Path(sys.executable).parent / "dbt"), "--no-use-colors", "--quiet", "test", "--select",
                "unique_stg_events_message_id", "--project-dir", ".", "--profiles-dir", ".",
                "--target-path", str(tmp_path / "target")]
        changed = {CHANGED_SINCE_ENV: json.dumps(since)} if since is not None else {}
        base = {k: v for k, v in os.environ.items() if k != CHANGED_SINCE_ENV}
        return subprocess.run(args, cwd=ROOT / "dbt_project", env={**base, **env, **changed},
                              capture_output=True).returncode

    def plant(day) -> None:
        con = duckdb.connect(str(root / "warehouse.duckdb"))
        con.execute("insert into stg_events select * from stg_events where dt = ? limit 1", [day])
        con.close()

    since = {"stg_events": str(last)}
    plant(first)
    assert unique_test(since) == 0
    assert unique_test(None) != 0
    plant(last)
    assert unique_test(since) != 0


@pytest.mark.slow
def test_an_older_day_whose_raw_files_changed_is_rebuilt_from_the_ingestion_marker(sdk_data_root, tmp_path):
    """A landing file of an older day replaced after the warehouse was built: an incremental run alone keeps
    that day's old rows (it rebuilds from the newest day); with the day ingestion noted (what the Dagster
    asset passes), it rebuilds from there and the model equals the raw layer again."""
    import gzip

    from orchestration.dbt.assets import REPROCESS_ENV
    from orchestration.ingestion.ingest import ingest_source, read_reprocess_from

    events = sdk_data_root / "landing" / "events"
    old_file = events / "dt=2026-11-24" / "segment-s3-0000.jsonl.gz"
    lines = gzip.decompress(old_file.read_bytes()).splitlines()
    (events / "dt=2026-11-25").mkdir()
    (events / "dt=2026-11-25" / "later.jsonl.gz").write_bytes(gzip.compress(b"\n".join(lines[:2]) + b"\n", mtime=0))
    # the later day's two events arrive again on the newest day: keep them out of the older day's file
    old_file.write_bytes(gzip.compress(b"\n".join(lines[2:]) + b"\n", mtime=0))

    def stg_events(reprocess_from: str | None = None) -> list[tuple]:
        env = {k: v for k, v in os.environ.items() if k != REPROCESS_ENV}
        if reprocess_from:
            env[REPROCESS_ENV] = reprocess_from
        run = subprocess.run([str(Path(sys.executable).parent / "dbt"), "--quiet", "run", "--select", "stg_events",
                              "--project-dir", ".", "--profiles-dir", ".", "--target-path", str(tmp_path / "target")],
                             cwd=ROOT / "dbt_project", env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        con = duckdb.connect(str(sdk_data_root / "warehouse.duckdb"), read_only=True)
        try:
            return con.execute("select dt, count(*) from stg_events group by dt order by dt").fetchall()
        finally:
            con.close()

    def raw_by_day() -> list[tuple]:
        glob = str(sdk_data_root / "raw" / "events" / "dt=2026-*" / "*.parquet")
        return duckdb.sql(f"select dt, count(distinct message_id) from read_parquet('{glob}', hive_partitioning = true) "
                          "group by dt order by dt").fetchall()

    ingest_source("events")
    built = stg_events()
    assert built == raw_by_day() and len(built) == 2
    old_file.write_bytes(gzip.compress(b"\n".join(lines[2:-3]) + b"\n", mtime=0))  # three events withdrawn
    ingest_source("events")
    day = read_reprocess_from()
    assert day == "2026-11-24"
    assert stg_events() == built != raw_by_day()  # rebuilt from the newest day only: the old day is stale
    assert stg_events(day) == raw_by_day()
