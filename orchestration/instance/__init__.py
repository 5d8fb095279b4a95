"""The Dagster instance: its settings (dagster.yaml, copied into $DAGSTER_HOME) and its event log storage."""
