"""Dagster assets for ingestion: one multi-asset whose outputs are the raw tables (dbt sources),
the quarantine and the ledger. The work is in ``ingest.py``; this file only maps it to assets."""

import dagster as dg

from .checks import entries_without_landing_file, quarantine_shares, verify_ledger
from .ingest import clean_stale_temporaries, ingest_source
from .sources import SOURCES

LEDGER_KEY = dg.AssetKey(["ingestion", "ledger"])
QUARANTINE_KEY = dg.AssetKey(["ingestion", "quarantine"])
# Above this share of rejected records a source's producer is probably broken: warn, do not stop.
MAX_QUARANTINE_SHARE = 0.01
SOURCE_KEYS = {dg.AssetKey([s.dbt_source, s.name]): s.name for s in SOURCES.values()}

INGESTION_GROUP = "ingestion"


@dg.multi_asset(
    name="ingest_landing_files",
    specs=[
        *(
            dg.AssetSpec(key, description=SOURCES[name].description, group_name=INGESTION_GROUP,
                         kinds={"parquet"}, metadata={"raw_path": f"raw/{name}/dt=*/"})
            for key, name in SOURCE_KEYS.items()
        ),
        dg.AssetSpec(QUARANTINE_KEY, description="Rejected records with their reason, one file per landing file",
                     group_name=INGESTION_GROUP, kinds={"parquet"}),
        dg.AssetSpec(LEDGER_KEY, description="One entry per ingested landing file (size, checksum, counts)",
                     group_name=INGESTION_GROUP, kinds={"parquet"}),
    ],
    can_subset=True,
)
def ingest_landing_files(context: dg.AssetExecutionContext):
    """Ingest new or changed landing files into the Parquet raw layer (exactly once per file version)."""
    selected = context.selected_asset_keys
    names = [name for key, name in SOURCE_KEYS.items() if key in selected] or list(SOURCES)
    removed = clean_stale_temporaries()
    if removed:
        context.log.warning(f"removed {removed} temporary file(s) left by an interrupted run")
    total_quarantined: dict[str, int] = {}
    for name in names:
        summary = ingest_source(name, run_id=context.run_id)
        context.log.info(summary.describe())
        for error in summary.file_errors:
            context.log.warning(error)
        for reason, count in summary.quarantined_by_reason.items():
            total_quarantined[reason] = total_quarantined.get(reason, 0) + count
        key = dg.AssetKey([SOURCES[name].dbt_source, name])
        if key in selected:
            yield dg.MaterializeResult(
                asset_key=key,
                metadata={
                    "files_ingested": summary.files_ingested,
                    "files_unchanged": summary.files_unchanged,
                    "files_failed": summary.files_failed,
                    "files_retired": summary.files_retired,
                    "reprocess_from": summary.reprocess_from or "",
                    "records_loaded": summary.records_loaded,
                    "records_quarantined": summary.records_quarantined,
                    "quarantined_by_reason": dict(summary.quarantined_by_reason),
                },
            )
    if QUARANTINE_KEY in selected:
        yield dg.MaterializeResult(
            asset_key=QUARANTINE_KEY,
            metadata={"quarantined_this_run": sum(total_quarantined.values()), "by_reason": total_quarantined},
        )
    if LEDGER_KEY in selected:
        yield dg.MaterializeResult(asset_key=LEDGER_KEY)


@dg.asset_check(asset=LEDGER_KEY, description="lines read = rows loaded + rows quarantined, file by file")
def ledger_invariant() -> dg.AssetCheckResult:
    checked, problems = verify_ledger()
    retained = entries_without_landing_file()
    return dg.AssetCheckResult(
        passed=not problems,
        metadata={"entries_checked": checked, "problems": [f"{p.landing_path}: {p.problem}" for p in problems[:50]],
                  "retained_without_landing_file": len(retained), "retained_examples": retained[:20]},
    )


@dg.asset_check(asset=QUARANTINE_KEY, description=f"no source has more than {MAX_QUARANTINE_SHARE:.0%} of its records quarantined")
def quarantine_share() -> dg.AssetCheckResult:
    shares = quarantine_shares(MAX_QUARANTINE_SHARE)
    return dg.AssetCheckResult(
        passed=not any(s["above_limit"] for s in shares.values()),
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"by_source": shares},
    )
