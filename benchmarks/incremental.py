"""``make bench`` (incremental part): one more day after a full build, against the full build itself.

The simulator writes a world of ``--days`` + 1 days ending yesterday (the publish checks refuse dates in the
future). The landing zone of a fresh data root receives every file but the last day's (``dt=`` folders of the
last day and later); the whole pipeline runs through Dagster in process (``pitwall_pipeline``, the in-process
executor, under the partners' simulated API): the **full** build. Then the last day's folders land and the
same job runs again on the same data root: the **day**. Then it runs once more with nothing new landed: the
**rerun**, the floor any run pays (Dagster's and dbt's start-ups, one pass over every node and step). Last, the
**refit**: the rerun again with ``PITWALL_REFIT_EVERY_DAYS=0``, so that both models fit the day's rows (the day
itself reuses the full build's fits: they are within the weekly refit cadence, models_ml/fingerprint.py); the
refit less the rerun is what the day costs on the day of the week the models refit. Each run is timed as a whole
process tree (the pipeline's process, dbt's subprocesses, the partner API), so the CPU seconds include Dagster's
start-up.

Reported: wall and CPU seconds of each run, **day CPU / full CPU** (goal < 0.10), the same for a refit day and
for the average day of a week (six days and one refit day), what the day costs beyond the rerun against the full
build (the work the new day's data caused), the peak RSS of the whole process tree, and each run's slowest steps.
Results are appended to docs/benchmarks.md with the machine, its load, date and commit.

    python -m benchmarks.incremental [--days 13] [--customers 300 --technicians 40 | --target-events 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .common import ROOT, append_section, commit, machine, timed_tree


def pipeline(report: Path) -> int:
    """The child: run the whole pipeline in process and write what happened to ``report``. (A module, not
    ``python -c``: pyspark, which Great Expectations imports, exits a process whose main module has no spec.)"""
    import dagster as dg

    from orchestration.definitions import defs

    instance = dg.DagsterInstance.get()
    result = defs.get_job_def("pitwall_pipeline").execute_in_process(instance=instance, raise_on_error=False)
    events = result.all_events
    # each step's duration and, from the stored event's timestamp, when it ran (to place the RSS peak)
    successes = instance.all_logs(result.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS)

    def seconds(entry) -> float:
        return entry.dagster_event.event_specific_data.duration_ms / 1000

    report.write_text(json.dumps({
        "success": result.success,
        "steps": {e.step_key: round(seconds(e), 2) for e in successes},
        "step_spans": {e.step_key: [e.timestamp - seconds(e), e.timestamp] for e in successes},
        "failed": [e.step_key for e in events if e.event_type_value == "STEP_FAILURE"],
        "checks_failed": sorted(e.asset_check_evaluation_data.check_name for e in events
                                if e.event_type_value == "ASSET_CHECK_EVALUATION"
                                and not e.asset_check_evaluation_data.passed),
        "published": any(e.asset_key.path == ["published", "pitwall"] for e in result.get_asset_materialization_events()),
    }))
    return 0 if result.success else 1


def dt_of(path: Path) -> str | None:
    """The day of a landing file's ``dt=YYYY-MM-DD`` folder (None outside one)."""
    for part in path.parts:
        if part.startswith("dt="):
            return part.removeprefix("dt=")
    return None


def land(world: Path, landing: Path, *, before: str | None) -> int:
    """Hard-link the world's landing files into ``landing``: those outside day folders and in days before
    ``before`` (all when None); files already there are kept. Returns how many files were linked."""
    linked = 0
    for file in sorted(p for p in world.rglob("*") if p.is_file()):
        day = dt_of(file.relative_to(world))
        if before is not None and day is not None and day >= before:
            continue
        target = landing / file.relative_to(world)
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.link(file, target)
        linked += 1
    return linked


def run_pipeline(data: Path, home: Path, workdir: Path, name: str, **extra_env: str) -> dict:
    env = {**os.environ, "PITWALL_DATA_DIR": str(data), "DAGSTER_HOME": str(home), **extra_env}
    env.pop("MLFLOW_TRACKING_URI", None)
    report = workdir / f"{name}.json"
    at_peak: dict = {}
    wall, cpu, rss = timed_tree(
        [sys.executable, "-m", "simulator.partners", "run", "--world", str(data / "landing" / "partners" / "world.json"),
         "--", sys.executable, "-m", "benchmarks.incremental", "--pipeline-report", str(report)], env, at_peak=at_peak)
    outcome = json.loads(report.read_text())
    when = at_peak.pop("at_epoch", None)
    running = [step for step, (begin, end) in outcome["step_spans"].items() if when and begin <= when <= end]
    if not outcome["published"]:
        raise SystemExit(f"{name}: the pipeline did not publish: {outcome}")
    slowest = dict(sorted(outcome["steps"].items(), key=lambda kv: -kv[1])[:6])
    return {"wall_s": round(wall, 1), "cpu_s": round(cpu, 1), "tree_rss_mib": round(rss), "slowest_steps": slowest,
            "peak": {"steps": running, "processes": dict(list(at_peak.items())[:4])},
            "steps_s": round(sum(outcome["steps"].values()), 1)}


def bench(args) -> dict:
    workdir = args.workdir
    world, data, home = workdir / "world", workdir / "data", workdir / "dagster_home"
    for path in (world, data, home):
        shutil.rmtree(path, ignore_errors=True)
    home.mkdir(parents=True)
    shutil.copy(ROOT / "orchestration" / "instance" / "dagster.yaml", home / "dagster.yaml")
    start = date.today() - timedelta(days=args.days + 1)
    size = (["--target-events", str(args.target_events)] if args.target_events
            else ["--customers", str(args.customers), "--technicians", str(args.technicians)])
    subprocess.run([sys.executable, "-m", "simulator", "--out", str(world), *size, "--days", str(args.days + 1),
                    "--seed", str(args.seed), "--start-date", start.isoformat(), "--no-progress"],
                   cwd=ROOT, check=True, capture_output=True)
    last_day = (start + timedelta(days=args.days)).isoformat()
    land(world, data / "landing", before=last_day)
    full = run_pipeline(data, home, workdir, "full")
    new_files = land(world, data / "landing", before=None)
    day = run_pipeline(data, home, workdir, "day")
    # The floor of any run: the same job once more with nothing new landed. What the day costs beyond it is
    # the work the day's data caused; the rest (start-ups, one pass over every node) any run pays.
    rerun = run_pipeline(data, home, workdir, "rerun")
    # The day the models refit (once a week of data by default): the rerun, with both models fitting the day's rows.
    refit = run_pipeline(data, home, workdir, "refit", PITWALL_REFIT_EVERY_DAYS="0")
    refit_extra = refit["cpu_s"] - rerun["cpu_s"]

    import duckdb

    with duckdb.connect(str(data / "published" / "pitwall.duckdb"), read_only=True) as con:
        events = con.execute("select count(*) from stg_events").fetchall()[0][0]
        day_events = con.execute("select count(*) from stg_events where dt >= ?", [last_day]).fetchall()[0][0]
    result = {"days": args.days, "events": events, "day_events": day_events, "day_files": new_files,
              "load_before": args.load, "full": full, "day": day, "rerun": rerun, "refit": refit,
              "ratio_cpu": round(day["cpu_s"] / full["cpu_s"], 3), "ratio_wall": round(day["wall_s"] / full["wall_s"], 3),
              "refit_day_ratio_cpu": round((day["cpu_s"] + refit_extra) / full["cpu_s"], 3),
              "week_average_ratio_cpu": round((day["cpu_s"] + refit_extra / 7) / full["cpu_s"], 3),
              "rerun_ratio_cpu": round(rerun["cpu_s"] / full["cpu_s"], 3),
              "day_beyond_rerun_ratio_cpu": round((day["cpu_s"] - rerun["cpu_s"]) / full["cpu_s"], 3)}
    result["load_after"] = os.getloadavg()
    if not args.keep:
        for path in (world, data, home):
            shutil.rmtree(path, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def append_results(r: dict, load: tuple[float, float, float]) -> None:
    lines = [
        f"\n## One more day after a full build — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
        f"Machine: {machine()}; load average before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} "
        f"(1 / 5 / 15 min). The whole pipeline (`pitwall_pipeline`) through Dagster in process under the "
        f"partners' simulated API: a full build of {r['days']} days, then the next day lands and the job runs "
        "again on the same data root (the models reuse the full build's fits, within their weekly refit cadence); "
        "then it runs once more with nothing new landed (the rerun: what any run costs), and once more with "
        "`PITWALL_REFIT_EVERY_DAYS=0` (the refit: both models fit the day's rows; a refit day costs the day plus "
        "the refit less the rerun, the week's average day a seventh of that extra). Seconds and peak RSS of the "
        "whole process tree (Dagster, dbt, the API).\n",
        "| events | day events | full wall s | full CPU s | day wall s | day CPU s | rerun CPU s | refit CPU s |"
        " **day / full CPU** | refit day / full | **week's average day / full** | rerun / full CPU |"
        " (day − rerun) / full CPU | peak RSS full MiB | peak RSS day MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['events']:,} | {r['day_events']:,} | {r['full']['wall_s']} | {r['full']['cpu_s']} | {r['day']['wall_s']} |"
        f" {r['day']['cpu_s']} | {r['rerun']['cpu_s']} | {r['refit']['cpu_s']} | **{r['ratio_cpu']}** |"
        f" {r['refit_day_ratio_cpu']} | **{r['week_average_ratio_cpu']}** | {r['rerun_ratio_cpu']} |"
        f" {r['day_beyond_rerun_ratio_cpu']} | {r['full']['tree_rss_mib']:,} | {r['day']['tree_rss_mib']:,} |",
        "\nSlowest steps (wall seconds): full — " + ", ".join(f"{k} {v}" for k, v in r["full"]["slowest_steps"].items())
        + "; day — " + ", ".join(f"{k} {v}" for k, v in r["day"]["slowest_steps"].items())
        + "; rerun — " + ", ".join(f"{k} {v}" for k, v in r["rerun"]["slowest_steps"].items())
        + "; refit — " + ", ".join(f"{k} {v}" for k, v in r["refit"]["slowest_steps"].items()) + ".\n",
        "At the full build's peak RSS: steps " + (", ".join(r["full"]["peak"]["steps"]) or "none (start-up)")
        + "; MiB by process — " + ", ".join(f"`{k}` {v:,}" for k, v in r["full"]["peak"]["processes"].items()) + ".\n",
        "Targets (issue #15): one more day under 0.10 of the full build's CPU; the full build, landing to published, "
        "under 90 s wall at 1M events and under 300 s at 5M, with the whole tree under 3 GB.\n",
    ]
    append_section(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=13, help="days of the full build (the world has one more)")
    parser.add_argument("--customers", type=int, default=300)
    parser.add_argument("--technicians", type=int, default=40)
    parser.add_argument("--target-events", type=int, default=None, help="size the world by events instead")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".tmp_bench" / "incremental")
    parser.add_argument("--keep", action="store_true", help="keep the world and data root after the run")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    parser.add_argument("--pipeline-report", type=Path, help=argparse.SUPPRESS)  # the child run_pipeline starts
    args = parser.parse_args()
    if args.pipeline_report:
        raise SystemExit(pipeline(args.pipeline_report))
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.load = os.getloadavg()
    result = bench(args)
    if not args.no_record:
        append_results(result, args.load)
        print("appended to docs/benchmarks.md")


if __name__ == "__main__":
    main()
