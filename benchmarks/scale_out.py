"""``make bench`` (scale-out part): what the capacity plan in docs/scale-out.md rests on.

For each size the simulator writes a landing zone (``--days`` days ending yesterday) and the ingestion loads it.
Then:
  bytes    landing bytes per record (the SDKs' own JSON / OTLP / Sentry envelopes) and raw Parquet bytes per
           record, per source: the compression the raw layer gets;
  floors   each engine reading the raw events, spans and crashes and writing them back once (DuckDB: create
           table as select; Spark: a local session writing Parquet), no logic;
  build    the portable models (dbt selector ``portable``: staging, sessions, funnels, release health, API
           latency, recommendation efficacy) on DuckDB and on local Spark, from every day but the last;
  day      the last day lands and both engines run again: the incremental models rebuild one day.
Each step runs in a fresh process so its peak RSS is its own (Spark's: dbt or Python and its JVM, summed).
Results are appended to docs/benchmarks.md with the machine, date and commit.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .common import ROOT, append_section, commit, machine, run_sizes, timed_child, timed_tree

SOURCES = {"events": "events", "crashes": "crashes", "spans": "traces"}  # raw table → landing folder

DUCKDB_FLOOR = """
import duckdb, sys
raw, out = sys.argv[1:3]
con = duckdb.connect(out, config={"autoinstall_known_extensions": False})
for source in ("events", "spans", "crashes"):
    con.execute(f"create table {source} as select * from read_parquet('{raw}/{source}/dt=*/*.parquet', union_by_name = true)")
"""

SPARK_FLOOR = """
import sys
from pitwall.spark import local_session
raw, out = sys.argv[1:3]
spark = local_session("pitwall-floor", cores=int(sys.argv[3]), memory=sys.argv[4])
for source in ("events", "spans", "crashes"):
    spark.read.option("mergeSchema", "true").parquet(f"{raw}/{source}").write.mode("overwrite").parquet(f"{out}/{source}")
spark.stop()
"""


def folder_bytes(path: Path, pattern: str = "*") -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def uncompressed_bytes(path: Path) -> int:
    """The files' bytes before gzip, by decompressing them (a gzip trailer's size field would do, but the
    simulator plants truncated files, whose last bytes are not a trailer); a truncated file counts what
    decompresses of it."""
    total = 0
    for file in (p for p in path.rglob("*") if p.is_file()):
        if file.suffix != ".gz":
            total += file.stat().st_size
            continue
        with gzip.open(file, "rb") as fh:
            try:
                while chunk := fh.read(1 << 22):
                    total += len(chunk)
            except (EOFError, OSError):
                pass
    return total


def raw_rows(raw: Path, source: str) -> int:
    import duckdb

    with duckdb.connect() as con:
        return con.execute(f"select count(*) from read_parquet('{raw}/{source}/dt=*/*.parquet')").fetchall()[0][0]


def land(full: Path, target: Path, before: str | None) -> None:
    """Hard-link the raw layer's partitions (all, or those with dt < ``before``) of ``full`` into ``target``."""
    for partition in sorted(full.glob("raw/*/dt=*")):
        if before is None or partition.name.removeprefix("dt=") < before:
            destination = target / partition.relative_to(full)
            if not destination.exists():
                shutil.copytree(partition, destination, copy_function=os.link)


def dbt_step(engine: str, data: Path, workdir: Path, *args: str) -> tuple[float, float, float]:
    env = {**os.environ, "PITWALL_DATA_DIR": str(data), "PITWALL_ENGINE": engine,
           "PITWALL_SPARK_CORES": str(os.cpu_count()), "PITWALL_SPARK_MEMORY": SPARK_MEMORY}
    dbt = [str(Path(sys.executable).parent / "dbt"), "--quiet", "--no-use-colors", *args, "--selector", "portable",
           "--project-dir", ".", "--profiles-dir", ".", "--target-path", str(workdir / f"dbt_target_{engine}")]
    return timed_tree(dbt, env, cwd=ROOT / "dbt_project")


SPARK_MEMORY = "8g"


def bench_size(target_events: int, workdir: Path, days: int, seed: int) -> dict:
    full, daily = workdir / f"scale-{target_events}", workdir / f"scale-{target_events}-daily"
    for path in (full, daily):
        shutil.rmtree(path, ignore_errors=True)
    env = {**os.environ, "PITWALL_DATA_DIR": str(full)}
    start = date.today() - timedelta(days=days)
    subprocess.run([sys.executable, "-m", "simulator", "--out", str(full / "landing"), "--target-events",
                    str(target_events), "--days", str(days), "--seed", str(seed), "--start-date", start.isoformat(),
                    "--no-progress"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "orchestration.ingestion"], cwd=ROOT, env=env, check=True,
                   capture_output=True)

    sizes = {}
    for source, landing in SOURCES.items():
        rows = raw_rows(full / "raw", source)
        landing_bytes = folder_bytes(full / "landing" / landing)
        payload_bytes = uncompressed_bytes(full / "landing" / landing)
        parquet_bytes = folder_bytes(full / "raw" / source, "*.parquet")
        sizes[source] = {"rows": rows, "payload_b_per_row": round(payload_bytes / rows),
                         "landing_b_per_row": round(landing_bytes / rows),
                         "parquet_b_per_row": round(parquet_bytes / rows, 1),
                         "ratio": round(payload_bytes / parquet_bytes, 1)}

    floors = {}
    out = workdir / "floor"
    shutil.rmtree(out, ignore_errors=True)
    floors["duckdb"] = timed_child([sys.executable, "-c", DUCKDB_FLOOR, str(full / "raw"), str(out) + ".duckdb"], env)
    Path(str(out) + ".duckdb").unlink(missing_ok=True)
    floors["spark"] = timed_tree([sys.executable, "-c", SPARK_FLOOR, str(full / "raw"), str(out),
                                   str(os.cpu_count()), SPARK_MEMORY], env)
    shutil.rmtree(out, ignore_errors=True)

    arrival_days = sorted(p.name.removeprefix("dt=") for p in (full / "raw" / "events").glob("dt=*"))
    last_day = arrival_days[-1]
    land(full, daily, before=last_day)
    builds = {}
    for engine in ("duckdb", "spark"):
        seed_s = dbt_step(engine, daily, workdir, "seed")
        run_s = dbt_step(engine, daily, workdir, "run")
        builds[engine] = {"build_s": round(seed_s[0] + run_s[0], 1), "build_cpu_s": round(seed_s[1] + run_s[1], 1),
                          "build_rss_mib": round(max(seed_s[2], run_s[2]))}
    land(full, daily, before=None)
    for engine in ("duckdb", "spark"):
        day_s = dbt_step(engine, daily, workdir, "run")
        builds[engine].update({"day_s": round(day_s[0], 1), "day_rss_mib": round(day_s[2])})

    import duckdb

    with duckdb.connect(str(daily / "warehouse.duckdb"), read_only=True) as con:
        events, spans = (con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in ("stg_events", "stg_spans"))
        last_day_events = con.execute("select count(*) from stg_events where dt = ?", [last_day]).fetchall()[0][0]
    result = {
        "target_events": target_events, "events": events, "spans": spans, "days": days,
        "last_day_events": last_day_events, "sizes": sizes,
        "floors": {k: {"s": round(v[0], 1), "rss_mib": round(v[2])} for k, v in floors.items()},
        "builds": builds,
    }
    for path in (full, daily):
        shutil.rmtree(path, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def append_results(results: list[dict]) -> None:
    lines = [
        f"\n## Scale-out: DuckDB and local Spark — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
        f"Machine: {machine()}; Spark local[{os.cpu_count()}], {SPARK_MEMORY} driver heap. Build: `dbt seed` + "
        "`dbt run --selector portable` from every day but the last; day: the last day lands, `dbt run` again "
        "(incremental models rebuild one day). Floor: the engine reading the raw events, spans and crashes and "
        "writing them once. Wall seconds; peak RSS of the step's whole process tree (Spark: Python + JVM).\n",
        "| events | spans | engine | floor s | build s | **build / floor** | build events/s | peak RSS MiB |"
        " day events | day s |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for engine in ("duckdb", "spark"):
            b, f = r["builds"][engine], r["floors"][engine]
            lines.append(
                f"| {r['events']:,} | {r['spans']:,} | {engine} | {f['s']} | {b['build_s']} |"
                f" **{round(b['build_s'] / f['s'], 1)}** | {round(r['events'] / b['build_s']):,} |"
                f" {b['build_rss_mib']:,} | {r['last_day_events']:,} | {b['day_s']} |")
    lines += [
        "\nBytes per record: the SDKs' payloads (JSON lines as sent), as landed (gzip), and in the raw layer's "
        "Parquet (zstd, level 1); compression = payload / Parquet:\n",
        "| events | source | records | payload B/record | landed B/record | Parquet B/record | **compression** |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        for source, s in r["sizes"].items():
            lines.append(f"| {r['events']:,} | {source} | {s['rows']:,} | {s['payload_b_per_row']:,} |"
                         f" {s['landing_b_per_row']:,} | {s['parquet_b_per_row']} | **{s['ratio']}×** |")
    append_section(lines)


def main() -> None:
    run_sizes(__doc__, bench_size, append_results)


if __name__ == "__main__":
    main()
