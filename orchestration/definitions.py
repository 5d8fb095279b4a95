"""Pitwall's Dagster code location: a table of contents of its domains, nothing else."""

import dagster as dg

from orchestration.dbt.definitions import defs as dbt_defs
from orchestration.ingestion.definitions import defs as ingestion_defs
from orchestration.pipeline.definitions import defs as pipeline_defs

defs = dg.Definitions.merge(ingestion_defs, dbt_defs, pipeline_defs)
