"""``python -m orchestration.report``: where the results are, and what the last run produced."""

from __future__ import annotations

import json

from pitwall import paths
from pitwall.duck import connect

from .ingestion.checks import verify_ledger


def main() -> None:
    root = paths.data_dir()
    print(f"\nPitwall data root: {root}")
    print(f"  landing zone : {paths.landing_dir()}")
    print(f"  raw layer    : {paths.raw_dir()}  (ledger in {paths.ledger_dir()})")
    print(f"  quarantine   : {paths.quarantine_dir()}")
    print(f"  warehouse    : {paths.warehouse_path()}")
    print(f"  published    : {paths.published_path()}  (what readers open, read-only)")
    serving = sorted((paths.published_dir() / "serving").glob("*.parquet"))
    print(f"  serving      : {', '.join(p.name for p in serving) or 'none yet'}  (Parquet for the mobile backend)")
    checked, problems = verify_ledger()
    print(f"\nLedger: {checked} landing files, invariant {'holds' if not problems else 'BROKEN'}")
    for p in problems[:10]:
        print(f"  ! {p.landing_path}: {p.problem}")
    if not paths.warehouse_path().exists():
        print("No warehouse yet: run the pipeline first.")
        return
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            "where table_schema not in ('information_schema', 'pg_catalog') order by 1, 2"
        ).fetchall()
        print("\nWarehouse relations (rows):")
        for schema, name in tables:
            (n,) = con.execute(f'select count(*) from "{schema}"."{name}"').fetchall()[0]
            print(f"  {schema}.{name:<28} {n:>10,}")
        if any(name == "quarantine" for _, name in tables):
            rows = con.execute(
                "select source, reason_code, count(*) from quarantine group by all order by 1, 2"
            ).fetchall()
            print("\nQuarantined records by source and reason:")
            print(json.dumps({f"{s}.{r}": n for s, r, n in rows}, indent=2) if rows else "  none")
    finally:
        con.close()
    published = paths.published_path()
    if published.exists():
        decisions(published)
    print("\nLook at it: `make dashboards` (Streamlit on http://127.0.0.1:8501), or query the published copy:")
    print(f"  .venv/bin/python -c \"import duckdb; print(duckdb.connect('{published}', "
          "read_only=True).sql('from mart_release_health limit 5'))\"")


# What the run decided and raised, read from the published copy (each part only once its table exists).
DECISIONS = {
    "Release gate (release_gate)": ("release_gate", "select app_namespace, platform, release, decision from release_gate "
                                                    "order by all"),
    "Open reconciliation breaks (mart_reconciliation_breaks)": (
        "mart_reconciliation_breaks", "select partner, break_class, count(*) from mart_reconciliation_breaks "
                                      "where status = 'open' group by all order by all"),
    "Partner SLA breaches (mart_partner_sla_daily)": (
        "mart_partner_sla_daily", "select partner, day, breached_slas from mart_partner_sla_daily "
                                  "where not sla_met order by all"),
    "Alerts (alerts; webhook deliveries wait without PITWALL_ALERT_WEBHOOK_URL)": (
        "alerts", "select rule, status, count(*) from alerts group by all order by all"),
}


def decisions(published) -> None:
    con = connect(published, read_only=True)
    try:
        present = {name for (name,) in con.execute("select table_name from information_schema.tables").fetchall()}
        for title, (table, sql) in DECISIONS.items():
            if table not in present:
                continue
            rows = con.execute(sql).fetchall()
            print(f"\n{title}:")
            for row in rows or [("none",)]:
                print("  " + "  ".join(str(v) for v in row))
    finally:
        con.close()


if __name__ == "__main__":
    main()
