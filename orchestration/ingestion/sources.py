"""The landing sources Pitwall ingests: where each one lands and how its files are read.

This registry is the one definition of a source; the ingestion assets, the ledger, the raw layer
paths and the dbt sources (``dbt_project/models/staging/__sources.yml``) all follow it.
"""

from __future__ import annotations

from dataclasses import dataclass

from .formats import otlp, segment, sentry
from .formats.extracts import OPS_TABLES, TELEMETRY, ExtractTable

JSONL_PATTERNS = ("*.jsonl", "*.jsonl.gz", "*.json", "*.json.gz", "*.ndjson", "*.ndjson.gz")


@dataclass(frozen=True)
class Source:
    name: str  # raw table name: raw/<name>/dt=…/
    landing: str  # folder under landing/ holding dt=YYYY-MM-DD/ partitions
    dbt_source: str  # dbt source (and Dagster asset key prefix) it is published as
    description: str
    sql: str | None = None  # JSON-lines formats: SQL over the registered ``lines`` table
    extract: ExtractTable | None = None  # Parquet extracts: declared columns
    records_per_line: bool = True  # False where a line holds many records (an OTLP request holds spans)
    # Where a record is a part of its line: SQL giving rejected records their raw text afterwards, over the
    # registered ``rejected`` (rows of ``sql`` whose ``_raw_text_path`` is set) and ``lines`` (their lines).
    rejected_sql: str | None = None

    @property
    def one_record_per_line(self) -> bool:
        """Whether a file's record count is its line count, known before parsing."""
        return self.sql is not None and self.records_per_line

    @property
    def patterns(self) -> tuple[str, ...]:
        return ("*.parquet",) if self.extract else JSONL_PATTERNS


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("events", "events", "raw", "Segment Spec events from both apps (Segment / RudderStack S3 layout)",
               sql=segment.SQL),
        Source("crashes", "crashes", "raw", "Sentry crash and error events", sql=sentry.SQL),
        Source("spans", "traces", "raw", "OpenTelemetry spans from OTLP/JSON file-exporter output", sql=otlp.SQL,
               records_per_line=False, rejected_sql=otlp.REJECTED_SQL),
        Source("telemetry", "telemetry", "raw", "Vehicle telemetry snapshots", extract=TELEMETRY),
        *(
            Source(t.name, f"ops/{t.name}", "ops", f"Service-backend extract: {t.name}", extract=t)
            for t in OPS_TABLES.values()
        ),
    )
}
