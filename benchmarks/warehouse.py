"""``make bench``: building the warehouse and rendering the dashboards, at 1M and 5M events.

For each size the simulator writes a landing zone (30 days ending yesterday, planted bad records included) and the
ingestion loads it; then, each step in a fresh subprocess so its peak RSS is its own:
  floor    DuckDB copying the raw layer's three big facts (events, spans, crashes) into tables of a new
           database file, one statement each: reading and writing every row once, no logic;
  models   ``dbt seed`` + ``dbt run``: every staging, intermediate, mart and serving model;
  tests    ``dbt test``: every data test and unit test;
  publish  the staged copy, its expectations (set-based SQL in DuckDB), the rename and the serving Parquet files;
  pages    every dashboard page rendered through Streamlit's AppTest on the published file, cold (query
           cache cleared) and warm, against AppTest rendering a one-line page (benchmarks/pages.py).
Results are appended to docs/benchmarks.md with the machine, date and commit.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .common import ROOT, append_section, commit, machine, run_sizes, timed_child

FLOOR = """
import duckdb, sys
raw, out = sys.argv[1:3]
con = duckdb.connect(out, config={"autoinstall_known_extensions": False})
for source in ("events", "spans", "crashes"):
    con.execute(f"create table {source} as select * from read_parquet('{raw}/{source}/dt=*/*.parquet', union_by_name = true)")
"""

PUBLISH = """
# The publish assets' own table lists, less the serving tables Python assets write (not run here).
from orchestration.publish.assets import AUDITED_TABLES, PYTHON_MARTS, PYTHON_SERVING_TABLES, SERVING_TABLES
from orchestration.publish.expectations import validate_publication
from orchestration.publish.publish import promote_publication, stage_publication, staged_path
stage_publication()
audited = [t for t in AUDITED_TABLES if t not in PYTHON_SERVING_TABLES + PYTHON_MARTS]
failed = [t for t, r in validate_publication(staged_path(), audited).items() if not r.success]
if failed:
    raise SystemExit(f"checks failed: {failed}")
promote_publication([t for t in SERVING_TABLES if t not in PYTHON_SERVING_TABLES])
"""


def bench_size(target_events: int, workdir: Path, days: int, seed: int) -> dict:
    data = workdir / f"warehouse-{target_events}"
    shutil.rmtree(data, ignore_errors=True)
    env = {**os.environ, "PITWALL_DATA_DIR": str(data)}
    # The world ends yesterday: the publish checks refuse dates in the future.
    start = date.today() - timedelta(days=days)
    subprocess.run([sys.executable, "-m", "simulator", "--out", str(data / "landing"), "--target-events",
                    str(target_events), "--days", str(days), "--seed", str(seed), "--start-date", start.isoformat(),
                    "--no-progress"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([sys.executable, "-m", "orchestration.ingestion"], cwd=ROOT, env=env, check=True, capture_output=True)
    floor_db = workdir / "floor.duckdb"
    floor_db.unlink(missing_ok=True)
    floor = timed_child([sys.executable, "-c", FLOOR, str(data / "raw"), str(floor_db)], env)
    floor_db.unlink(missing_ok=True)

    dbt = [str(Path(sys.executable).parent / "dbt"), "--quiet", "--no-use-colors"]
    where = ["--project-dir", ".", "--profiles-dir", ".", "--target-path", str(workdir / "dbt_target")]
    seed_s, seed_cpu, _ = timed_child([*dbt, "seed", *where], env, cwd=ROOT / "dbt_project")
    run_s, run_cpu, run_rss = timed_child([*dbt, "run", *where], env, cwd=ROOT / "dbt_project")
    test_s, test_cpu, test_rss = timed_child([*dbt, "test", *where], env, cwd=ROOT / "dbt_project")
    publish = timed_child([sys.executable, "-c", PUBLISH], env)
    pages = json.loads(subprocess.run([sys.executable, "-m", "benchmarks.pages"], cwd=ROOT, env=env,
                                      capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1])

    import duckdb

    con = duckdb.connect(str(data / "published" / "pitwall.duckdb"), read_only=True)
    try:
        events, spans = (con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in ("stg_events", "stg_spans"))
    finally:
        con.close()
    models_s = seed_s + run_s
    result = {
        "target_events": target_events, "events": events, "spans": spans,
        "warehouse_mb": round((data / "warehouse.duckdb").stat().st_size / 1e6),
        "floor_s": round(floor[0], 2), "floor_rss_mib": round(floor[2]),
        "models_s": round(models_s, 1), "models_cpu_s": round(seed_cpu + run_cpu, 1), "models_rss_mib": round(run_rss),
        "tests_s": round(test_s, 1), "tests_rss_mib": round(test_rss),
        "publish_s": round(publish[0], 1), "publish_rss_mib": round(publish[2]),
        "ratio_models": round(models_s / floor[0], 1),
        "page_floor_s": pages["floor_s"], "pages": pages["pages"],
        "slowest_cold_s": max(p["cold_s"] for p in pages["pages"].values()),
        "slowest_warm_s": max(p["warm_s"] for p in pages["pages"].values()),
    }
    shutil.rmtree(data, ignore_errors=True)
    print(json.dumps(result), flush=True)
    return result


def append_results(results: list[dict]) -> None:
    lines = [
        f"\n## Warehouse and dashboards — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
        f"Machine: {machine()}. Floor: DuckDB copying the raw events, spans and crashes into tables, one statement "
        "each. Models: `dbt seed` + `dbt run` (every model); tests: `dbt test`; publish: staged copy, its "
        "expectations as SQL in DuckDB, rename, serving Parquet. Wall seconds; each step in its own process.\n",
        "| events | spans | warehouse MB | floor s | models s | **models / floor** | peak RSS models MiB | tests s |"
        " publish s | peak RSS publish MiB |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['events']:,} | {r['spans']:,} | {r['warehouse_mb']:,} | {r['floor_s']} | {r['models_s']} |"
            f" **{r['ratio_models']}** | {r['models_rss_mib']:,} | {r['tests_s']} | {r['publish_s']} |"
            f" {r['publish_rss_mib']:,} |")
    pages = list(results[0]["pages"])
    lines += [
        "\nDashboard pages (Streamlit AppTest on the published file; seconds, cold = query cache cleared / warm; "
        "floor = AppTest rendering a one-line page):\n",
        "| events | floor s | " + " | ".join(Path(p).stem for p in pages) + " | **slowest cold** |",
        "|---:|---:|" + "---:|" * len(pages) + "---:|",
    ]
    for r in results:
        cells = " | ".join(f"{r['pages'][p]['cold_s']} / {r['pages'][p]['warm_s']}" for p in pages)
        lines.append(f"| {r['events']:,} | {r['page_floor_s']} | {cells} | **{r['slowest_cold_s']}** |")
    lines.append("\nTarget: every page under 1 s cold on the 1M-event (medium) world.\n")
    append_section(lines)


def main() -> None:
    run_sizes(__doc__, bench_size, append_results)


if __name__ == "__main__":
    main()
