"""Every dbt model, seed and snapshot as a Dagster asset; dbt tests become asset checks.

The dbt sources (``raw.*``, ``ops.*``, ``ingestion.*``) map to the ingestion assets' keys, so the
graph runs landing → raw → staging without extra wiring. dbt runs as a subprocess and, like every
writer of ``warehouse.duckdb``, in the ``warehouse`` pool (limit 1): DuckDB allows one writer.

The engine is configuration, read when the code location loads (pitwall/engine.py): with
``PITWALL_ENGINE=spark`` the same assets build on Spark, limited to the portable models.

One ``dbt build`` per run, so every data test runs once, as an asset check. What it tests follows what the
run can change:

- a build over an existing warehouse passes ``PITWALL_TESTS_CHANGED_SINCE`` (each model incremental by day
  and its arrival watermark before the run, as JSON): the data tests of those models test the days the run can have
  changed, not the whole history (dbt_project/macros/tests/changed_rows.sql); every other model, rebuilt
  whole, is tested whole. A first build (no warehouse yet) tests everything.
- when ingestion changed the raw files of a day older than the newest (a landing file replaced or moved), it
  leaves that day in a marker; the build passes it as ``PITWALL_REPROCESS_FROM`` so the incremental models
  rebuild from it (and test from it), and a whole successful build clears the marker.
- unit tests check the SQL against fixed fixtures, not the data: they run when the dbt project's files (or
  dbt's version) differ from those of the last build whose unit tests passed (recorded in the dbt project's
  target folder, for every data root: they do not read the data), and are skipped otherwise.
"""

import functools
import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from packaging import version

from orchestration.ingestion.ingest import clear_reprocess_from, read_reprocess_from
from pitwall import engine, paths
from pitwall.duck import connect

from .project import dbt_project

WAREHOUSE_POOL = "warehouse"



class PitwallDbtTranslator(DagsterDbtTranslator):
    """dagster-dbt's translator, with every model in the Dagster group of its folder under ``models/``
    (staging, intermediate, marts, serving, and the domains: experiments, partners, recommendations, …) and the
    seeds in ``seeds``, instead of all of them in the unnamed ``default`` group. A dbt ``group`` config wins."""

    def get_group_name(self, dbt_resource_props) -> str | None:
        explicit = super().get_group_name(dbt_resource_props)
        if explicit:
            return explicit
        if dbt_resource_props["resource_type"] == "seed":
            return "seeds"
        fqn = dbt_resource_props.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else None  # [project, folder, …, name]


translator = PitwallDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


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
    since = changed_since(dbt_project.manifest_path) if engine.engine() == "duckdb" else {}
    code = project_fingerprint()
    unit_tests = engine.engine() == "duckdb" and code != _unit_tests_passed_for()
    if since:
        context.log.info(f"data tests of {len(since)} incremental models on the days this run can change")
    if engine.engine() == "duckdb" and not unit_tests:
        context.log.info("unit tests skipped: the dbt project is unchanged since they last passed")
    # The watermarks reach the data tests through the environment, not --vars: dbt re-parses the whole
    # project when its vars change (tens of seconds), and they change every day. Read only when tests
    # execute (never while parsing), so partial parsing is unaffected.
    if since:
        os.environ[CHANGED_SINCE_ENV] = json.dumps(since, sort_keys=True)
    else:
        os.environ.pop(CHANGED_SINCE_ENV, None)
    # Older days whose raw files changed (a landing file replaced or moved): rebuilt from that day.
    reprocess = read_reprocess_from()
    if reprocess:
        context.log.warning(f"raw files of {reprocess} or later changed since the last build: incremental "
                            "models rebuild from that day")
        os.environ[REPROCESS_ENV] = reprocess
    else:
        os.environ.pop(REPROCESS_ENV, None)
    invocation = dbt.cli(build_command(unit_tests=unit_tests), context=context, target_path=target_path())
    yield from invocation.stream()
    whole = context.selected_asset_keys >= set(context.assets_def.keys)
    if reprocess and invocation.is_successful() and whole:
        clear_reprocess_from(reprocess)
    # Recorded only when every model (hence every unit test) was in the build.
    if unit_tests and invocation.is_successful() and whole:
        record = unit_tests_record()
        record.parent.mkdir(parents=True, exist_ok=True)
        staged = record.with_name(f"{record.name}.{os.getpid()}.tmp")
        staged.write_text(json.dumps({"project": code}))
        staged.replace(record)  # atomic: pipelines on other data roots may read it meanwhile


CHANGED_SINCE_ENV = "PITWALL_TESTS_CHANGED_SINCE"  # read by dbt_project/macros/tests/changed_rows.sql
REPROCESS_ENV = "PITWALL_REPROCESS_FROM"  # read by reprocess_from() in dbt_project/macros/engine/incremental.sql


def target_path() -> Path:
    """dbt's target folder for this data root, the same every run: its partial_parse.msgpack matches this
    root's profile (the warehouse path), so a daily run parses only what changed. (dagster-dbt's default, a
    new folder per invocation seeded from the project's, re-parses everything when the project was parsed
    for another data root.) Runs do not overlap: dbt runs in the warehouse pool."""
    return paths.data_dir() / "dbt_target"


def build_command(unit_tests: bool | None = None) -> list[str]:
    """``dbt build``. Unit tests run by default on DuckDB only: their fixtures are written in DuckDB's dialect
    (they pin the models' logic, which is the same on every engine, and run on DuckDB in CI)."""
    unit_tests = engine.engine() == "duckdb" if unit_tests is None else unit_tests
    command = ["build"]
    if not unit_tests:
        command += ["--exclude-resource-type", "unit_test"]
    return command


def incremental_models(manifest_path: Path) -> dict[str, str]:
    """The models incremental by day (macros/engine/incremental.sql) with their arrival column."""
    manifest = json.loads(Path(manifest_path).read_text())
    out = {}
    for node in manifest["nodes"].values():
        config = node.get("config") or {}
        arrival = (config.get("meta") or {}).get("arrival_column")
        if node["resource_type"] == "model" and config.get("materialized") == "incremental" and arrival:
            out[node.get("alias") or node["name"]] = arrival
    return out


def changed_since(manifest_path: Path) -> dict[str, str]:
    """Each incremental-by-day model already in the warehouse with its arrival watermark (the latest arrival
    day it holds): a run rebuilds from there, so its data tests need not look further back. Empty when there
    is no warehouse yet (a first build tests everything)."""
    if not paths.warehouse_path().exists():
        return {}
    models = incremental_models(manifest_path)
    con = connect(paths.warehouse_path(), read_only=True)
    try:
        present = {name: {c for (c,) in con.execute(
            "select column_name from information_schema.columns where table_schema = 'main' and table_name = ?",
            [name]).fetchall()} for name in models}
        out = {}
        for name, arrival in models.items():
            if arrival in present[name]:
                (watermark,) = con.execute(f'select max("{arrival}") from "{name}"').fetchall()[0]
                if watermark is not None:
                    out[name] = str(watermark)
        return out
    finally:
        con.close()


def unit_tests_record() -> Path:
    return Path(dbt_project.project_dir) / "target" / "dbt_unit_tests_passed.json"


def _unit_tests_passed_for() -> str | None:
    try:
        return json.loads(unit_tests_record().read_text())["project"]
    except (OSError, ValueError, KeyError):
        return None


def project_fingerprint() -> str:
    """The dbt project's files (models, macros, seeds, tests, project and profile settings) and the versions
    of dbt and its adapter: what a unit test's outcome depends on."""
    digest = hashlib.sha256()
    for package in ("dbt-core", "dbt-duckdb"):
        try:
            digest.update(f"{package}=={importlib.metadata.version(package)}\n".encode())
        except importlib.metadata.PackageNotFoundError:
            digest.update(f"{package} absent\n".encode())
    root = paths.DBT_PROJECT_DIR
    files = [root / "dbt_project.yml", root / "profiles.yml", root / "selectors.yml"]
    for folder in ("models", "macros", "seeds", "tests", "snapshots", "analyses"):
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file())
    for path in files:
        if path.exists():
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class PitwallDbtCli(DbtCliResource):
    """dagster-dbt's resource, less two loads of dbt per run in Dagster's own process:

    - it asks ``dbt --version`` (a whole dbt process, ~4 CPU-seconds) for the version; when the executable is
      the dbt installed beside this interpreter, the installed package says the same;
    - before each command it loads dbt's profile, project and adapter in process (~2 CPU-s before the dbt
      subprocess starts, docs/benchmarks.md), for ``fetch_row_counts()`` and ``fetch_column_metadata()`` only. Pitwall calls
      neither: the models' row counts are in the publication's fingerprints and their columns in the dbt
      contracts."""

    @functools.cached_property
    def _cli_version(self) -> version.Version:
        if Path(self.dbt_executable) == Path(sys.executable).parent / "dbt":
            return version.parse(importlib.metadata.version("dbt-core"))
        return super()._cli_version

    def _initialize_dbt_core_adapter(self, args):
        return None  # the invocation's adapter: None, as when dagster-dbt fails to open one (it then logs it)


def dbt_resource() -> DbtCliResource:
    # The dbt installed beside this interpreter, so it works without the virtualenv on PATH.
    beside = Path(sys.executable).parent / "dbt"
    return PitwallDbtCli(
        project_dir=dbt_project,
        profiles_dir=str(paths.DBT_PROJECT_DIR),
        target=engine.dbt_target(),
        dbt_executable=str(beside) if beside.exists() else "dbt",
    )
