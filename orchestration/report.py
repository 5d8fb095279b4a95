"""``python -m orchestration.report [--relations]``: what the last run built, in the order a newcomer asks.

1. what was loaded (landing files per ledger, records quarantined by reason, marked when the simulator planted
   them), 2. the next-best-action model (its version, alias, gate decision and metrics, or why the rules fallback
   serves), 3. the serving tables the backend reads, 4. the run's decisions (release gate, reconciliation breaks,
   SLA breaches, alerts), 5. where to look next. ``--relations`` adds every warehouse relation with its rows.

Everything is read from the published copy (what readers see, the training record ``nba_model_runs`` included),
the ingestion ledger, and the simulator's truth file when the world is simulated.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from pitwall import paths
from pitwall.duck import connect

from .ingestion.checks import verify_ledger
from .ingestion.ledger import read_ledger

URLS = (("make dashboards", "the dashboards", "http://127.0.0.1:8501"),
        ("make dagster", "Dagster: assets, runs, the daily schedule", "http://127.0.0.1:3000"),
        ("make mlflow", "MLflow: training runs, the pitwall-nba registry", "http://127.0.0.1:5000"))

# What the run decided and raised, from the published copy (each part only once its table exists).
DECISIONS = {
    "Release gate": ("release_gate", "select app_namespace, platform, release, decision from release_gate order by all"),
    "Open reconciliation breaks": (
        "mart_reconciliation_breaks", "select partner, sum(n) || ':', string_agg(break_class || ' ' || n, ', ' "
                                      "order by break_class) from (select partner, break_class, count(*) as n "
                                      "from mart_reconciliation_breaks where status = 'open' group by all) "
                                      "group by all order by all"),
    "Partner SLA breaches": (
        "mart_partner_sla_daily", "select partner, day, breached_slas from mart_partner_sla_daily "
                                  "where not sla_met order by all"),
    "Alerts (webhook deliveries wait until PITWALL_ALERT_WEBHOOK_URL is set)": (
        "alerts", "select rule, status, count(*) from alerts group by all order by all"),
}


def loaded(con) -> list[str]:
    entries = read_ledger()
    checked, problems = verify_ledger()
    by_source = Counter(e["source"] for e in entries)
    lines = [f"Ledger: {checked} landing files, invariant {'holds' if not problems else 'BROKEN'} "
             f"({', '.join(f'{s} {n}' for s, n in sorted(by_source.items()))})"]
    lines += [f"  ! {p.landing_path}: {p.problem}" for p in problems[:10]]
    if _has(con, "partner_file_ledger"):
        (files,) = con.execute("select count(*) from partner_file_ledger").fetchall()[0]
        lines.append(f"Partner files: {files} CSV drops and webhook files, in their own ledger (partner_file_ledger)")
    if not _has(con, "quarantine"):
        return lines
    planted = planted_keys()
    rows = con.execute("""
        select q.source, q.reason_code, count(*), count(p.k)
        from quarantine q
        left join (select unnest(?::varchar[]) as k) p
          on p.k = q.landing_path || '|' || q.reason_code || '|' || coalesce(cast(q.line_no as varchar), '')
        group by all order by 1, 3 desc, 2""", [sorted(planted)]).fetchall()
    total, total_planted = sum(r[2] for r in rows), sum(r[3] for r in rows)
    if not planted:
        lines.append(f"Quarantined: {total:,} records, by source and reason:")
    else:
        lines.append(f"Quarantined: {total:,} records, of which {total_planted:,} were planted by the simulator "
                     f"({len(planted):,} planted in all), by source and reason:")
    for source in dict.fromkeys(r[0] for r in rows):
        mine = [r for r in rows if r[0] == source]
        n, n_planted = sum(r[2] for r in mine), sum(r[3] for r in mine)
        mark = f" (planted {n_planted:,})" if planted else ""
        lines.append(f"  {source} {n:,}{mark}: " + ", ".join(f"{reason} {count:,}" for _, reason, count, _ in mine))
    return lines


def planted_keys() -> set[str]:
    """The bad records the simulator planted (``path|reason|line``), from its truth file (a simulated world only)."""
    truth = paths.landing_dir() / "truth.json"
    if not truth.exists():
        return set()
    planted = (json.loads(truth.read_text()).get("malformed") or {}).get("planted") or []
    return {f"{p['path']}|{p['reason_code']}|{'' if p.get('line_no') is None else p['line_no']}" for p in planted}


def model(con) -> list[str]:
    """The last training attempt (``nba_model_runs``, what the Recommendations page reads) and the policy mix."""
    last = con.sql("select * from nba_model_runs order by trained_at desc, run_id limit 1").pl().to_dicts() \
        if _has(con, "nba_model_runs") else []
    lines = []
    if not last:
        lines.append("pitwall-nba: no training attempt recorded (nba_model_runs)")
    elif not last[0]["trained"]:
        lines.append(f"pitwall-nba not trained: {last[0]['skipped_reason']}")
    else:
        run = last[0]
        lines.append(f"pitwall-nba version {run['version']} → @{run['alias']} (MLflow run {run['mlflow_run_id']})")
        for metric in ("auc", "ndcg_at_3"):
            values = {who: run[f"{who}_{metric}"] for who in ("model", "popularity", "rules")}
            if values["model"] is not None:
                lines.append(f"  {metric.upper().replace('_AT_', '@')}: model {values['model']:.3f}, "
                             + ", ".join(f"{who} {v:.3f}" for who, v in values.items() if who != "model" and v is not None))
        reasons = list(run["gate_reasons"] or [])
        if run["alias"] == "champion":  # every check passed: one line, the checks are in MLflow
            lines.append(f"  gate: passed its {len(reasons)} checks (make mlflow: the run's tags and plots)")
        else:
            lines += [f"  gate: {reason}" for reason in reasons]
    if _has(con, "recommendations"):
        mix = con.execute("select policy, count(*) from recommendations group by 1 order by 2 desc").fetchall()
        lines.append("Recommendations by policy: " + ", ".join(f"{p} {n:,}" for p, n in mix)
                     + ("  (rules fallback: no champion to score with)" if "model" not in dict(mix) else ""))
    return lines


def serving() -> list[str]:
    files = sorted((paths.published_dir() / "serving").glob("*.parquet"))
    if not files:
        return ["none yet"]
    con = connect(":memory:")
    try:
        lines = []
        for file in files:
            (rows,) = con.execute("select count(*) from read_parquet(?)", [str(file)]).fetchall()[0]
            lines.append(f"  {file.stem:<28} {rows:>9,} rows")
        return lines
    finally:
        con.close()


def decisions(con) -> list[str]:
    lines = []
    for title, (table, sql) in DECISIONS.items():
        if _has(con, table):
            rows = con.execute(sql).fetchall()
            lines.append(f"{title}:")
            lines += ["  " + "  ".join("" if v is None else str(v) for v in row) for row in rows or [("none",)]]
    return lines


def relations() -> list[str]:
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        tables = con.execute("select table_schema, table_name from information_schema.tables "
                             "where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2").fetchall()
        lines = []
        for schema, name in tables:
            (rows,) = con.execute(f'select count(*) from "{schema}"."{name}"').fetchall()[0]
            lines.append(f"  {schema}.{name:<40} {rows:>10,}")
        return lines
    finally:
        con.close()


def _has(con, table: str) -> bool:
    return bool(con.execute("select 1 from information_schema.tables where table_name = ?", [table]).fetchall())


def section(title: str, lines: list[str]) -> None:
    print(f"\n{title}")
    for line in lines:
        print(line if line.startswith("  ") else f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestration.report", description=__doc__.splitlines()[0])
    parser.add_argument("--relations", action="store_true", help="also list every warehouse relation with its rows")
    args = parser.parse_args(argv)
    published = paths.published_path()
    print(f"\nPitwall — what the last run built (data root {paths.data_dir()})")
    if not published.exists():
        empty = connect(":memory:")
        section("1. Loaded", loaded(empty))
        empty.close()
        print("\nNothing published yet: run the pipeline first (`make demo`).")
        return 1
    con = connect(published, read_only=True)
    try:
        section("1. Loaded", loaded(con))
        section("2. Next-best-action model", model(con))
        section(f"3. Serving tables (Parquet the mobile backend reads, in {paths.published_dir() / 'serving'})",
                serving())
        section("4. Decisions", decisions(con))
    finally:
        con.close()
    if args.relations:
        section("Warehouse relations (rows)", relations())
    section("5. Look at it", [f"{command:<16} {what}: {url}" for command, what, url in URLS] + [
        f"{'SQL':<16} duckdb.connect('{published}', read_only=True)  (what every reader opens)",
        "python -m orchestration.report --relations   every warehouse relation with its row count"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
