import dagster as dg

from .assets import ingest_landing_files, ledger_invariant, quarantine_share

defs = dg.Definitions(assets=[ingest_landing_files], asset_checks=[ledger_invariant, quarantine_share])
