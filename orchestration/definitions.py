"""Pitwall's Dagster code location: a table of contents of its domains, nothing else.

On ``PITWALL_ENGINE=spark`` (pitwall/engine.py) the location holds what Spark builds: ingestion into the
raw Parquet layer and the portable dbt models; the domains that read ``warehouse.duckdb`` stay with the
embedded engine (docs/scale-out.md).

Steps run in the run's own process (Dagster's in-process executor): the steps that write the warehouse
run one at a time anyway (the ``warehouse`` pool), and a process per step cost ~10 s of re-importing
the code location for each of some twenty steps. The executor also frees the pool slots an interrupted run
left behind and alerts on a step that waits on a pool for too long (orchestration/instance/executor.py).
"""

import dagster as dg

from orchestration.alerts import definitions as alerts
from orchestration.dbt import definitions as dbt
from orchestration.experiments import definitions as experiments
from orchestration.ingestion import definitions as ingestion
from orchestration.instance.executor import pool_guarded_in_process_executor
from orchestration.partners import definitions as partners
from orchestration.pipeline import definitions as pipeline
from orchestration.publish import definitions as publish
from orchestration.recommendations import definitions as recommendations
from pitwall import engine

if engine.engine() == "spark":
    domains = [ingestion.defs, dbt.defs, pipeline.defs]
else:
    domains = [ingestion.defs, partners.defs, dbt.defs, experiments.defs, recommendations.defs, publish.defs,
               pipeline.defs, alerts.defs]
# One Definitions object at module scope: Dagster's loader refuses a second one.
defs = dg.Definitions.merge(*domains, dg.Definitions(executor=pool_guarded_in_process_executor))
