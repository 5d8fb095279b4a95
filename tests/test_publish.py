"""The published copy: complete, self-contained, and replaced without blocking or disturbing readers."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_the_pipeline_publishes_every_relation_with_its_rows(world, con):
    root, _ = world
    published = duckdb.connect(str(root / "published" / "pitwall.duckdb"), read_only=True)
    try:
        names = [n for (n,) in con.execute(
            "select table_name from information_schema.tables where table_schema = 'main' order by 1").fetchall()]
        assert {"stg_events", "fct_sessions", "mart_funnel_daily", "mart_release_health", "quarantine"} <= set(names)
        for name in names:
            assert published.execute(f'select count(*) from "{name}"').fetchone() == \
                con.execute(f'select count(*) from "{name}"').fetchone(), name
        # Views are published as tables, so the copy needs neither the warehouse nor the raw files.
        kinds = {t for (t,) in published.execute("select distinct table_type from information_schema.tables").fetchall()}
        assert kinds == {"BASE TABLE"}
    finally:
        published.close()


def test_republishing_does_not_block_or_disturb_an_open_reader(world):
    root, _ = world
    path = root / "published" / "pitwall.duckdb"
    reader = duckdb.connect(str(path), read_only=True)
    try:
        before = reader.execute("select count(*) from stg_events").fetchone()
        inode = path.stat().st_ino
        subprocess.run([sys.executable, "-c", "from orchestration.publish.publish import publish_warehouse; publish_warehouse()"],
                       cwd=ROOT, env={**os.environ, "PITWALL_DATA_DIR": str(root)}, check=True, capture_output=True)
        assert path.stat().st_ino != inode  # a new file took the name
        assert reader.execute("select count(*) from stg_events").fetchone() == before  # the open reader is undisturbed
    finally:
        reader.close()
    assert not list(path.parent.glob(".*.tmp-*"))
