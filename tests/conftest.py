"""Shared fixtures: an isolated data root per test, the offline environment, dbt's manifest."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from filelock import FileLock

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
# A pytest-xdist worker runs under execnet's bootstrap: a ``__main__`` with neither spec nor file, which
# pyspark.sql.connect (imported by Great Expectations) takes for a doctest run and answers with sys.exit(0).
# Give the worker's ``__main__`` a file (an empty module: multiprocessing's spawn would run it, harmlessly).
_main = sys.modules["__main__"]
if os.environ.get("PYTEST_XDIST_WORKER") and _main.__spec__ is None and not hasattr(_main, "__file__"):
    _main.__file__ = str(Path(__file__).with_name("xdist_worker_main.py"))

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
    """dagster-dbt needs dbt's manifest at import time: parse the project once per test run (not once per
    xdist worker), into a folder of its own, then swap the files in whole. Other workers read the manifest
    at any moment (importing the code location does); a parse writing it in place would let them read
    half a file."""
    from orchestration.dbt.project import dbt_project

    target = dbt_project.manifest_path.parent
    target.mkdir(parents=True, exist_ok=True)
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid-{os.getpid()}"
    parsed_marker = target / ".parsed-by-test-run"
    with FileLock(str(target / ".parse.lock")):
        if not (parsed_marker.exists() and parsed_marker.read_text() == run_id):
            private = target / f".parse-{os.getpid()}"
            shutil.rmtree(private, ignore_errors=True)
            private.mkdir()
            if (target / "partial_parse.msgpack").exists():  # parse only what changed since the last parse
                shutil.copy2(target / "partial_parse.msgpack", private)
            run = subprocess.run([str(Path(sys.executable).parent / "dbt"), "--quiet", "parse", "--project-dir",
                                  ".", "--profiles-dir", ".", "--target-path", str(private)],
                                 cwd=ROOT / "dbt_project", env=subprocess_env(), capture_output=True, text=True)
            assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
            for name in ("partial_parse.msgpack", "manifest.json"):  # the manifest last: it is what is read
                os.replace(private / name, target / name)
            shutil.rmtree(private, ignore_errors=True)
            parsed_marker.write_text(run_id)
    return dbt_project.manifest_path


# What a built world depends on: the code that simulates, ingests, transforms, trains and publishes it, and
# the pinned packages. A change to any of these files makes a new cache key, so a stale world is never used.
WORLD_CODE = ("simulator", "orchestration", "dbt_project", "models_ml", "pitwall", "experiments", "contracts",
              "dashboards/support", "Makefile", "offline.env", "pyproject.toml", "requirements.lock")
WORLD_CODE_SUFFIXES = {".py", ".sql", ".yml", ".yaml", ".csv", ".json", ".toml", ".lock", ".env", ""}


def code_fingerprint() -> str:
    """A hash of the files that build a world (tracked or new, not ignored: dbt's target/ and logs are not)."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", *WORLD_CODE],
                            cwd=ROOT, capture_output=True, check=True).stdout.decode().split("\0")
    digest = hashlib.sha256()
    for name in sorted(n for n in listed if n):
        path = ROOT / name
        if path.is_file() and path.suffix in WORLD_CODE_SUFFIXES:
            digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def demo_args() -> list[str]:
    """The simulator arguments of `make demo` (the Makefile's DEMO_ARGS), so the test world is the demo's."""
    for line in (ROOT / "Makefile").read_text().splitlines():
        if line.startswith("DEMO_ARGS"):
            return shlex.split(line.split("=", 1)[1])
    raise AssertionError("DEMO_ARGS not found in the Makefile")


def cached_world(name: str, build, *key_parts: str) -> Path:
    """A built world's data root, built once by ``build(root)`` and kept on disk under the pytest cache, keyed
    by the code that builds it (plus ``key_parts``). pytest-xdist workers share one build through a file lock;
    a build that fails or is killed leaves no COMPLETE marker and is redone from scratch."""
    cache = Path(os.environ.get("PITWALL_TEST_WORLDS", ROOT / ".pytest_cache" / "pitwall-worlds"))
    cache.mkdir(parents=True, exist_ok=True)
    key = hashlib.sha256("\0".join([code_fingerprint(), *key_parts]).encode()).hexdigest()[:16]
    home = cache / f"{name}-{key}"
    with FileLock(str(cache / f"{name}-{key}.lock")):
        if not (home / "COMPLETE").exists():
            shutil.rmtree(home, ignore_errors=True)
            (home / "data").mkdir(parents=True)
            build(home / "data")
            (home / "COMPLETE").write_text(datetime.now(UTC).isoformat())
        os.utime(cache / f"{name}-{key}.lock")  # last used: now
    # Worlds of other code versions, unused for a day, go. (Not sooner: a session's copy of a world reads
    # its MLflow artifacts where the world was built.)
    for lock in cache.glob(f"{name}-*.lock"):
        if lock.stem != home.name and time.time() - lock.stat().st_mtime > 86400:
            shutil.rmtree(cache / lock.stem, ignore_errors=True)
            lock.unlink(missing_ok=True)
    return home / "data"


def session_copy(built: Path, tmp_path_factory, name: str) -> Path:
    """This session's own copy of a cached world: tests write into their world (audit rows, published files).
    MLflow's store names its artifacts by absolute path: the copy's store is moved to the copy's own."""
    root = tmp_path_factory.mktemp(name) / "data"
    shutil.copytree(built, root, ignore=shutil.ignore_patterns("*.tmp*"))
    for store in root.glob("mlflow/*.db"):
        relocate_sqlite_paths(store, str(built), str(root))
    return root


def relocate_sqlite_paths(database: Path, old: str, new: str) -> None:
    """Replace the path prefix ``old`` by ``new`` in every text column of a SQLite file (MLflow's store keeps
    artifact locations, run artifact URIs and model version sources as absolute paths or file URIs)."""
    con = sqlite3.connect(database)
    try:
        tables = [t for (t,) in con.execute("select name from sqlite_master where type = 'table'")]
        for table in tables:
            for _, column, declared, *_ in con.execute(f'pragma table_info("{table}")').fetchall():
                if any(t in declared.upper() for t in ("CHAR", "TEXT", "CLOB")):
                    con.execute(f'update "{table}" set "{column}" = replace("{column}", ?, ?) '
                                f'where instr("{column}", ?) > 0', [old, new, old])
        con.commit()
    finally:
        con.close()


def build_demo_world(root: Path) -> None:
    """The demo's world, built by `make demo` itself (the one test of that command path): the simulator, the
    pipeline under the partners' simulated API, the report. Its setup targets are already made for the
    session (``-o`` keeps make from re-parsing dbt's manifest under other workers' feet)."""
    run = subprocess.run(["make", "--no-print-directory", "-o", "venv", "-o", "manifest", "demo",
                          f"PITWALL_DATA_DIR={root}", f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}",
                          f"DEMO_ARGS={shlex.join([*demo_args(), '--no-progress'])}"],
                         cwd=ROOT, env=subprocess_env(), capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    # from make's echo of the report's command line on
    (root / "demo-report.txt").write_text(run.stdout[run.stdout.rfind("-m orchestration.report\n"):])


@pytest.fixture(scope="session")
def world(tmp_path_factory, dbt_manifest, dagster_home) -> tuple[Path, dict]:
    """A simulated world of the demo's size, built by `make demo` once per code version and shared."""
    root = session_copy(cached_world("demo", build_demo_world, *demo_args()), tmp_path_factory, "world")
    return root, json.loads((root / "landing" / "truth.json").read_text())


@pytest.fixture(scope="session")
def con(world):
    """A read-only connection to the simulated world's warehouse, opened as the pipeline opens it (DuckDB
    refuses a second connection to a file with another configuration in the same process)."""
    from pitwall.duck import connect

    connection = connect(world[0] / "warehouse.duckdb", read_only=True)
    yield connection
    connection.close()


# Which module each pytest-xdist worker starts on (with --dist loadscope a module runs on one worker; the
# Makefile passes --no-loadscope-reorder so that this order is kept, not replaced by "most tests first"):
# the Spark equivalence (minutes of Spark) on one worker; on the other, a module on the demo world, which
# builds that world (five weeks, the trained model's too) for everyone meanwhile. Nobody waits on a world's
# lock, and the two workers end together instead of one finishing the Spark module alone.
STARTING_ORDER = ("test_engine_equivalence.py", "test_support_console.py")


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        name = item.path.name
        return STARTING_ORDER.index(name) if name in STARTING_ORDER else len(STARTING_ORDER)

    items.sort(key=rank)  # stable: each module keeps its own order
