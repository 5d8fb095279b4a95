"""Shared fixtures: an isolated data root per test, the offline environment, dbt's manifest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SDK_LANDING = FIXTURES / "sdk" / "landing"


def _offline_env() -> dict[str, str]:
    env = {}
    for line in (ROOT / "offline.env").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


os.environ.update(_offline_env())
# Tools installed beside this interpreter (dbt, dagster) win, activated virtualenv or not.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
# dbt's profile reads the data root from the environment, even just to parse the project.
os.environ.setdefault("PITWALL_DATA_DIR", str(ROOT / "data"))


@pytest.fixture(scope="session", autouse=True)
def dagster_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    shutil.copy(ROOT / "orchestration" / "instance" / "dagster.yaml", home / "dagster.yaml")
    os.environ["DAGSTER_HOME"] = str(home)
    return home


@pytest.fixture(autouse=True)
def _mlflow_store_follows_the_data_root(monkeypatch):
    """mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI, which would leak one test's store into the
    next test and into the pipelines tests start as subprocesses: every test starts without it."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture
def data_root(tmp_path, monkeypatch) -> Path:
    """An empty PITWALL_DATA_DIR for one test."""
    root = tmp_path / "data"
    (root / "landing").mkdir(parents=True)
    monkeypatch.setenv("PITWALL_DATA_DIR", str(root))
    return root


@pytest.fixture
def sdk_data_root(data_root) -> Path:
    """A data root whose landing zone holds the real-SDK sample payloads."""
    shutil.copytree(SDK_LANDING, data_root / "landing", dirs_exist_ok=True)
    return data_root


def subprocess_env() -> dict[str, str]:
    """The environment for a pipeline run in a subprocess: its MLflow store is its data root's."""
    return {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}


def run_python(*args: str, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**os.environ, **(env or {})},
        capture_output=True, text=True, check=True, **kwargs,
    )


@pytest.fixture(scope="session")
def dbt_manifest() -> Path:
    """dagster-dbt needs dbt's manifest at import time: prepare it once per session."""
    from orchestration.dbt.project import dbt_project

    dbt_project.preparer.prepare(dbt_project)
    return dbt_project.manifest_path


@pytest.fixture(scope="session")
def world(tmp_path_factory, dbt_manifest) -> tuple[Path, dict]:
    """A simulated world (the demo's size) run through the same commands `make demo` runs (the pipeline under
    the partners' simulated API), built once."""
    root = tmp_path_factory.mktemp("world") / "data"
    env = {**subprocess_env(), "PITWALL_DATA_DIR": str(root)}
    subprocess.run([sys.executable, "-m", "simulator", "--out", str(root / "landing"), "--customers", "300",
                    "--technicians", "40", "--days", "14", "--seed", "7", "--no-progress"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    run = subprocess.run([sys.executable, "-m", "simulator.partners", "run", "--world",
                          str(root / "landing" / "partners" / "world.json"), "--",
                          str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "--select", "*",
                          "-m", "orchestration.definitions"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return root, json.loads((root / "landing" / "truth.json").read_text())


@pytest.fixture(scope="session")
def con(world):
    """A read-only connection to the simulated world's warehouse, opened as the pipeline opens it (DuckDB
    refuses a second connection to a file with another configuration in the same process)."""
    from pitwall.duck import connect

    connection = connect(world[0] / "warehouse.duckdb", read_only=True)
    yield connection
    connection.close()
