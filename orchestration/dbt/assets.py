"""Every dbt model, seed and snapshot as a Dagster asset; dbt tests become asset checks.

The dbt sources (``raw.*``, ``ops.*``, ``ingestion.*``) map to the ingestion assets' keys, so the
graph runs landing → raw → staging without extra wiring. dbt runs as a subprocess and, like every
writer of ``warehouse.duckdb``, in the ``warehouse`` pool (limit 1): DuckDB allows one writer.
"""

import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pitwall import paths

from .project import dbt_project

WAREHOUSE_POOL = "warehouse"

translator = DagsterDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_POOL,
)
def pitwall_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # dbt reads the data root from the environment; make it explicit for the subprocess.
    os.environ["PITWALL_DATA_DIR"] = str(paths.data_dir())
    yield from dbt.cli(["build"], context=context).stream()


def dbt_resource() -> DbtCliResource:
    # The dbt installed beside this interpreter, so it works without the virtualenv on PATH.
    beside = Path(sys.executable).parent / "dbt"
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(paths.DBT_PROJECT_DIR),
        dbt_executable=str(beside) if beside.exists() else "dbt",
    )
