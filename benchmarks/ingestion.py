"""``make bench``: ingestion throughput against a floor measured in the same run, on the same files.

For each size (1M and 5M events by default) the simulator writes a clean landing zone; then, each in
a fresh subprocess so its peak RSS is its own:
  floor    DuckDB's bare ``read_ndjson`` over all event files copied straight to Parquet (no ledger,
           no validation, no quarantine, one statement, every thread);
  ingest   Pitwall's ingestion of the same files (ledger, checksums, validation, quarantine, one
           Parquet file per landing file, atomic renames);
  dedup    the dbt model ``stg_events`` (typing, clock-skew columns, deduplication on messageId).
Results are appended to docs/benchmarks.md with the machine, date and commit.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from .common import ROOT, append_section, commit, machine, run_sizes, timed_child

# The floor: DuckDB's own reader straight to Parquet, nothing else. "all" reads every file in one
# statement (DuckDB spreads files over its threads); "per-file" writes one Parquet file per landing
# file, the raw layer's own layout, one statement per file.
FLOOR = """
import duckdb, glob, os, sys
con = duckdb.connect(config={"autoinstall_known_extensions": False})
pattern, out, mode = sys.argv[1:4]
if mode == "all":
    con.execute(f"copy (select * from read_ndjson('{pattern}')) to '{out}/all.parquet' (format parquet, compression zstd)")
else:
    for i, path in enumerate(sorted(glob.glob(pattern))):
        con.execute(f"copy (select * from read_ndjson('{path}')) to '{out}/{i}.parquet' (format parquet, compression zstd)")
"""


def json_bytes(files: list[Path]) -> int:
    total = 0
    for f in files:
        with gzip.open(f, "rb") as fh:
            while chunk := fh.read(16 << 20):
                total += len(chunk)
    return total


def bench_size(target_events: int, workdir: Path, days: int, seed: int) -> dict:
    data = workdir / f"events-{target_events}"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "PITWALL_DATA_DIR": str(data)}
    gen_s, _, _ = timed_child(
        [sys.executable, "-m", "simulator", "--out", str(data / "landing"), "--target-events", str(target_events),
         "--days", str(days), "--seed", str(seed), "--no-malformed"], env)
    files = sorted((data / "landing" / "events").glob("dt=*/*.jsonl.gz"))
    mb = json_bytes(files) / 1e6
    pattern = str(data / "landing" / "events" / "dt=*" / "*.jsonl.gz")
    floors = {}
    for mode in ("all", "per-file"):
        out = workdir / f"floor-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        floors[mode] = timed_child([sys.executable, "-c", FLOOR, pattern, str(out), mode], env)
        shutil.rmtree(out, ignore_errors=True)
    ingest_s, ingest_cpu, ingest_rss = timed_child([sys.executable, "-m", "orchestration.ingestion", "events"], env)
    ledger = json.loads(subprocess.run(
        [sys.executable, "-c",
         "import json; from orchestration.ingestion.ledger import read_ledger; "
         "rows = read_ledger('events'); "
         "print(json.dumps({'records': sum(r['records_read'] for r in rows), "
         "'quarantined': sum(r['records_quarantined'] for r in rows)}))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)
    subprocess.run([sys.executable, "-m", "orchestration.ingestion"], cwd=ROOT, env=env, check=True,
                   capture_output=True)  # the other sources, so dbt has every table
    dbt = [str(Path(sys.executable).parent / "dbt"), "--quiet", "run", "--project-dir", ".",
           "--profiles-dir", ".", "--select", "stg_events"]
    dedup_s, _, dedup_rss = timed_child(dbt, env, cwd=ROOT / "dbt_project")
    events = ledger["records"]
    result = {
        "target_events": target_events, "events": events, "files": len(files), "json_mb": round(mb, 1),
        "generate_s": round(gen_s, 1),
        "floor_s": round(floors["all"][0], 2), "floor_cpu_s": round(floors["all"][1], 1),
        "floor_rss_mib": round(floors["all"][2]),
        "floor_per_file_s": round(floors["per-file"][0], 2), "floor_per_file_cpu_s": round(floors["per-file"][1], 1),
        "ingest_s": round(ingest_s, 2), "ingest_cpu_s": round(ingest_cpu, 1), "ingest_rss_mib": round(ingest_rss),
        "dedup_s": round(dedup_s, 2), "dedup_rss_mib": round(dedup_rss),
        "quarantined": ledger["quarantined"],
    }
    result["ratio"] = round(result["floor_s"] / ingest_s, 2)
    result["ratio_per_file"] = round(result["floor_per_file_s"] / ingest_s, 2)
    result["ingest_events_per_s"] = round(events / ingest_s)
    result["ingest_mb_per_s"] = round(mb / ingest_s, 1)
    result["floor_mb_per_s"] = round(mb / result["floor_s"], 1)
    shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def append_results(results: list[dict]) -> None:
    lines = [
        f"\n## Ingestion — {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
        f"Machine: {machine()}. Floor: DuckDB `read_ndjson` → Parquet, in one statement over all files, and one"
        " statement per landing file (the raw layer's layout). Ingest: Pitwall with ledger, checksums, validation,"
        " quarantine, one Parquet per landing file. Dedup: `dbt run -s stg_events` (typing and deduplication"
        " on messageId, including dbt's start-up). Wall seconds, CPU seconds in brackets.\n",
        "| events | files | JSON MB | floor (all) s | floor (per file) s | ingest s | **ratio all/ingest** |"
        " **ratio per-file/ingest** | ingest MB/s | peak RSS ingest MiB | peak RSS floor MiB | dedup s |"
        " peak RSS dedup MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['files']} | {r['json_mb']:,} | {r['floor_s']} ({r['floor_cpu_s']}) |"
            f" {r['floor_per_file_s']} ({r['floor_per_file_cpu_s']}) | {r['ingest_s']} ({r['ingest_cpu_s']}) |"
            f" **{r['ratio']}** | **{r['ratio_per_file']}** | {r['ingest_mb_per_s']} | {r['ingest_rss_mib']:,} |"
            f" {r['floor_rss_mib']:,} | {r['dedup_s']} | {r['dedup_rss_mib']:,} |"
        )
    lines.append("\nTargets: ratio ≥ 0.6, peak RSS of ingestion < 3 GB at 5M events.\n")
    append_section(lines)


def main() -> None:
    run_sizes(__doc__, bench_size, append_results)


if __name__ == "__main__":
    main()
