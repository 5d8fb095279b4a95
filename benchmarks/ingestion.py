"""``make bench``: ingestion throughput against a floor measured in the same run, on the same files.

For each size (1M and 5M events by default) the simulator writes a clean landing zone (events, and the
OTLP traces, crashes and extracts of the same world); then, each in a fresh subprocess so its CPU time
and peak RSS are its own:
  floor    DuckDB's bare ``read_ndjson`` over all event files copied straight to Parquet (no ledger,
           no validation, no quarantine), in one statement over all files (every thread) and one
           statement per file;
  ingest   Pitwall's ingestion of the same event files (ledger, checksums, validation, quarantine, one
           Parquet file per landing file, atomic renames);
  spans    Pitwall's ingestion of the world's OTLP trace files alone: CPU seconds per 1,000 records
           against the events' (the ratio's target is ≤ 2);
  whole    the whole ingestion (every source, one process, as the Dagster asset runs it) from an empty
           raw layer: wall, CPU and the peak RSS of its process tree (target < 1.5 GB);
  dedup    the dbt model ``stg_events`` (typing, clock-skew columns, deduplication on messageId).
The 1-minute load average is recorded before and after the size's measurements: another process on the
machine slows every figure (the ratios, measured side by side, less so).
Results are appended to docs/benchmarks.md with the machine, date and commit.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from orchestration.ingestion.ingest import default_workers

from .common import ROOT, append_section, commit, machine, run_sizes, timed_child, timed_tree

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
         "--days", str(days), "--seed", str(seed), "--no-malformed", "--no-progress"], env)
    files = sorted((data / "landing" / "events").glob("dt=*/*.jsonl.gz"))
    mb = json_bytes(files) / 1e6
    pattern = str(data / "landing" / "events" / "dt=*" / "*.jsonl.gz")
    load_before = os.getloadavg()[0]
    floors = {}
    for mode in ("all", "per-file"):
        out = workdir / f"floor-{mode}"
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        floors[mode] = timed_child([sys.executable, "-c", FLOOR, pattern, str(out), mode], env)
        shutil.rmtree(out, ignore_errors=True)
    ingest_s, ingest_cpu, ingest_rss = timed_child([sys.executable, "-m", "orchestration.ingestion", "events"], env)
    spans_s, spans_cpu, spans_rss = timed_child([sys.executable, "-m", "orchestration.ingestion", "spans"], env)
    ledger = ledger_counts(env)
    # The whole ingestion from an empty raw layer, in one process as the Dagster asset runs it (this also
    # gives dbt every table).
    for layer in ("raw", "quarantine"):
        shutil.rmtree(data / layer, ignore_errors=True)
    whole_s, whole_cpu, whole_rss = timed_tree([sys.executable, "-m", "orchestration.ingestion"], env)
    whole = ledger_counts(env)
    if {k: whole.get(k) for k in ledger} != ledger:
        raise SystemExit(f"the whole ingestion's ledger {whole} differs from the per-source runs' {ledger}")
    dbt = [str(Path(sys.executable).parent / "dbt"), "--quiet", "run", "--project-dir", ".",
           "--profiles-dir", ".", "--select", "stg_events", "--target-path", str(data / "dbt_target")]
    dedup_s, _, dedup_rss = timed_child(dbt, env, cwd=ROOT / "dbt_project")
    load_after = os.getloadavg()[0]
    events = ledger["events"]["records"]
    spans = ledger["spans"]["records"]
    result = {
        "target_events": target_events, "events": events, "files": len(files), "json_mb": round(mb, 1),
        "generate_s": round(gen_s, 1),
        "floor_s": round(floors["all"][0], 2), "floor_cpu_s": round(floors["all"][1], 1),
        "floor_rss_mib": round(floors["all"][2]),
        "floor_per_file_s": round(floors["per-file"][0], 2), "floor_per_file_cpu_s": round(floors["per-file"][1], 1),
        "ingest_s": round(ingest_s, 2), "ingest_cpu_s": round(ingest_cpu, 1), "ingest_rss_mib": round(ingest_rss),
        "dedup_s": round(dedup_s, 2), "dedup_rss_mib": round(dedup_rss),
        "quarantined": ledger["events"]["quarantined"],
        "spans": spans, "spans_s": round(spans_s, 2), "spans_cpu_s": round(spans_cpu, 1),
        "spans_rss_mib": round(spans_rss), "spans_quarantined": ledger["spans"]["quarantined"],
        "whole_s": round(whole_s, 2), "whole_cpu_s": round(whole_cpu, 1), "whole_rss_mib": round(whole_rss),
        "load_before": round(load_before, 2), "load_after": round(load_after, 2),
    }
    # CPU ms per record (= CPU s per 1,000 records), each source in its own process, start-up included
    result["events_cpu_ms_per_record"] = round(ingest_cpu / events * 1000, 4)
    result["spans_cpu_ms_per_record"] = round(spans_cpu / spans * 1000, 4) if spans else None
    result["spans_to_events_cpu"] = (round(result["spans_cpu_ms_per_record"] / result["events_cpu_ms_per_record"], 2)
                                     if spans else None)
    result["ratio"] = round(result["floor_s"] / ingest_s, 2)
    result["ratio_per_file"] = round(result["floor_per_file_s"] / ingest_s, 2)
    result["ingest_events_per_s"] = round(events / ingest_s)
    result["ingest_mb_per_s"] = round(mb / ingest_s, 1)
    result["floor_mb_per_s"] = round(mb / result["floor_s"], 1)
    shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def ledger_counts(env: dict) -> dict:
    """Records read and quarantined per source, from the ledger."""
    return json.loads(subprocess.run(
        [sys.executable, "-c",
         "import json; from orchestration.ingestion.ledger import read_ledger; "
         "rows = read_ledger(); out = {}\n"
         "for r in rows:\n"
         "    c = out.setdefault(r['source'], {'records': 0, 'quarantined': 0})\n"
         "    c['records'] += r['records_read']; c['quarantined'] += r['records_quarantined']\n"
         "out.setdefault('spans', {'records': 0, 'quarantined': 0})\n"
         "print(json.dumps(out, sort_keys=True))"],
        cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout)


def append_results(results: list[dict]) -> None:
    lines = [
        f"\n## Ingestion — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
        f"Machine: {machine()}. Floor: DuckDB `read_ndjson` → Parquet, in one statement over all files, and one"
        " statement per landing file (the raw layer's layout). Ingest: Pitwall with ledger, checksums, validation,"
        f" quarantine, one Parquet per landing file, {default_workers()} files at a time (one DuckDB thread each). Dedup: `dbt run -s stg_events` (typing and deduplication"
        " on messageId, including dbt's start-up). Wall seconds, CPU seconds in brackets.\n",
        "| events | files | JSON MB | floor (all) s | floor (per file) s | ingest s | **ratio all/ingest** |"
        " **ratio per-file/ingest** | ingest MB/s | peak RSS ingest MiB | peak RSS floor MiB | dedup s |"
        " peak RSS dedup MiB | load before/after |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['files']} | {r['json_mb']:,} | {r['floor_s']} ({r['floor_cpu_s']}) |"
            f" {r['floor_per_file_s']} ({r['floor_per_file_cpu_s']}) | {r['ingest_s']} ({r['ingest_cpu_s']}) |"
            f" **{r['ratio']}** | **{r['ratio_per_file']}** | {r['ingest_mb_per_s']} | {r['ingest_rss_mib']:,} |"
            f" {r['floor_rss_mib']:,} | {r['dedup_s']} | {r['dedup_rss_mib']:,} | {r['load_before']} / {r['load_after']} |"
        )
    lines += [
        "\nSpans against events, each source ingested alone in its own process (CPU ms per record, start-up"
        " included), and the whole ingestion (every source, one process, from an empty raw layer; peak RSS of"
        " its process tree):\n",
        "| events | spans | events CPU ms/record | spans CPU ms/record | **spans/events CPU per record** |"
        " spans s (CPU s) | peak RSS spans MiB | whole ingestion s (CPU s) | **peak RSS whole MiB** |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['spans']:,} | {r['events_cpu_ms_per_record']} | {r['spans_cpu_ms_per_record']} |"
            f" **{r['spans_to_events_cpu']}** | {r['spans_s']} ({r['spans_cpu_s']}) | {r['spans_rss_mib']:,} |"
            f" {r['whole_s']} ({r['whole_cpu_s']}) | **{r['whole_rss_mib']:,}** |"
        )
    lines.append("\nTargets: ratio all/ingest ≥ 1.0 and per-file/ingest ≥ 1.5; spans ≤ 2× the events' CPU per"
                 " record; peak RSS of the whole ingestion < 1.5 GB (at 1M and 5M events).\n")
    append_section(lines)


def main() -> None:
    run_sizes(__doc__, bench_size, append_results)


if __name__ == "__main__":
    main()
