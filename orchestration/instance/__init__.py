"""The Dagster instance: its settings (dagster.yaml, copied into $DAGSTER_HOME), its event log storage, and the
recovery of pool slots that interrupted runs left behind (slots.py, executor.py)."""
