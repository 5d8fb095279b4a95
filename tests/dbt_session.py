"""dbt commands in one long-lived child process, for a test that runs several on Spark against one data root.

dbt-spark's session method starts a JVM in dbt's process, and most of a small build's time is that JVM warming
up (class loading, the JIT): the same five models took 71 s in a fresh process and 26 s in the next command of
the same process. A child of its own keeps that JVM away from the pytest worker: Spark's static settings
(warehouse folder, metastore) are fixed when its session starts, and a later test in the worker with another
data root would silently write into this one's.
"""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.connection import Connection
from pathlib import Path
from typing import NamedTuple

from conftest import ROOT, subprocess_env


class Invocation(NamedTuple):
    success: bool
    statuses: dict[str, str]  # unique_id → dbt's status (success, pass, error, fail, skipped …)
    error: str | None  # what dbt raised, when it did not get as far as results


def _serve(conn: Connection, env: dict[str, str], log: str) -> None:
    """The child: run each argument list received with dbtRunner, answer with its Invocation, until None."""
    os.environ.clear()
    os.environ.update(env)
    os.chdir(ROOT / "dbt_project")
    with open(log, "ab") as out:  # dbt prints to fd 1; keep it out of pytest's output
        os.dup2(out.fileno(), 1)
        os.dup2(out.fileno(), 2)
    from dbt.cli.main import dbtRunner

    runner = dbtRunner()
    while (args := conn.recv()) is not None:
        try:
            res = runner.invoke(args)
            results = getattr(res.result, "results", None) or []
            answer = Invocation(res.success, {r.node.unique_id: str(r.status) for r in results},
                                None if res.exception is None else repr(res.exception))
        except Exception as exc:  # noqa: BLE001 - the parent asserts on it
            answer = Invocation(False, {}, repr(exc))
        conn.send(answer)


class DbtSession:
    """``with DbtSession(root, engine, target) as dbt: dbt.invoke("build", ...)``: dbt commands against ``root``'s
    data with dbt's target folder ``target``, their output appended to ``root/dbt_session_<engine>.log``."""

    def __init__(self, root: Path, engine: str, target: Path):
        self.target = target
        self.log = root / f"dbt_session_{engine}.log"
        env = {**subprocess_env(), "PITWALL_DATA_DIR": str(root), "PITWALL_ENGINE": engine}
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, env, str(self.log)), daemon=True)

    def __enter__(self) -> DbtSession:
        root = self.log.parent
        root.mkdir(parents=True, exist_ok=True)
        self._process.start()
        return self

    def invoke(self, *args: str) -> Invocation:
        try:
            self._conn.send([*args, "--project-dir", ".", "--profiles-dir", ".", "--target-path", str(self.target)])
            return self._conn.recv()
        except (EOFError, OSError):  # the child died (killed, out of memory): say what it printed last
            raise AssertionError(f"the dbt process ended during `dbt {' '.join(args)}`:\n{self.output()}") from None

    def output(self, tail: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-tail:] if self.log.exists() else ""

    def __exit__(self, *exc) -> None:
        try:
            if self._process.is_alive():
                self._conn.send(None)
                self._process.join(timeout=60)
        except OSError:  # it ended between the check and the send
            pass
        finally:
            if self._process.is_alive():
                self._process.kill()
                self._process.join()
