"""Every dbt model, seed and snapshot as a Dagster asset; dbt tests become asset checks.

The dbt sources (``raw.*``, ``ops.*``, ``ingestion.*``) map to the ingestion assets' keys, so the
graph runs landing → raw → staging without extra wiring. dbt runs as a subprocess and, like every
writer of ``warehouse.duckdb``, in the ``warehouse`` pool (limit 1): DuckDB allows one writer.

The engine is configuration, read when the code location loads (pitwall/engine.py): with
``PITWALL_ENGINE=spark`` the same assets build on Spark, limited to the portable models.
"""

import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from pitwall import engine, paths

from .project import dbt_project

WAREHOUSE_POOL = "warehouse"

translator = DagsterDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=dbt_project.manifest_path,
    project=dbt_project,
    selector=engine.dbt_selector() or "",
    dagster_dbt_translator=translator,
    pool=WAREHOUSE_POOL,
)
def pitwall_dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource):
    # dbt reads the data root from the environment; make it explicit for the subprocess.
    os.environ["PITWALL_DATA_DIR"] = str(paths.data_dir())
    yield from dbt.cli(build_command(), context=context).stream()


def build_command() -> list[str]:
    """``dbt build``; on Spark without the unit tests, whose fixtures are written in DuckDB's dialect (they pin
    the models' logic, which is the same on every engine, and run on DuckDB in CI)."""
    if engine.engine() == "duckdb":
        return ["build"]
    return ["build", "--exclude-resource-type", "unit_test"]


def dbt_resource() -> DbtCliResource:
    # The dbt installed beside this interpreter, so it works without the virtualenv on PATH.
    beside = Path(sys.executable).parent / "dbt"
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(paths.DBT_PROJECT_DIR),
        target=engine.dbt_target(),
        dbt_executable=str(beside) if beside.exists() else "dbt",
    )
