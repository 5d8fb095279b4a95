"""Partner REST sync benchmark: ``orchestration.partners.rest.sync`` of the OEM service orders from the simulated
API on 127.0.0.1 (no faults), at 100 records a page and at the contract's ``pageSize``, against a floor measured
in the same run: the same pages fetched with httpx and parsed, nothing validated or loaded. Each size runs
``--repeat`` times, alternating, on a fresh data root; the best run counts. Appends to docs/benchmarks.md.

    .venv/bin/python -m benchmarks.partners --orders 5000
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import UTC, datetime

import httpx

from .common import append_section, commit, machine


def _floor(base_url: str, api_key: str, path: str, page_size: int) -> tuple[float, int]:
    """Seconds to fetch and parse every page, and how many pages."""
    start, pages, cursor = time.perf_counter(), 0, None
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"}, timeout=10) as client:
        while True:
            params = {"limit": page_size, **({"cursor": cursor} if cursor else {})}
            page = json.loads(client.get(path, params=params).raise_for_status().content)
            pages += 1
            cursor = page.get("next_cursor")
            if not cursor:
                return time.perf_counter() - start, pages


def run(orders: int, repeat: int) -> dict:
    from orchestration.partners import contracts, rest
    from simulator.partners.oem_api import DEFAULT_API_KEY, OemApiServer, OemWorld

    dataset = contracts.dataset("oem", "service_orders")
    oem = contracts.contract("oem")
    sizes = sorted({rest.DEFAULT_PAGE_SIZE, dataset.page_size or rest.DEFAULT_PAGE_SIZE})
    best: dict[int, dict] = {}
    with OemApiServer(OemWorld(seed=3, n_orders=orders), None) as server:
        os.environ[oem.url_env], os.environ[oem.api_key_env] = server.base_url, DEFAULT_API_KEY
        with tempfile.TemporaryDirectory(prefix="pitwall-bench-partners-") as root:
            os.environ["PITWALL_DATA_DIR"] = root
            rest.sync("oem", "service_orders", page_size=10, max_pages=1)  # imports and GX's context, once
        for _ in range(repeat):
            for size in sizes:
                with tempfile.TemporaryDirectory(prefix="pitwall-bench-partners-") as root:
                    os.environ["PITWALL_DATA_DIR"] = root
                    wall, cpu = time.perf_counter(), time.process_time()
                    result = rest.sync("oem", "service_orders", page_size=size)
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                floor_s, floor_pages = _floor(server.base_url, DEFAULT_API_KEY, dataset.endpoint, size)
                if not result.complete or result.pages != floor_pages:
                    raise SystemExit(f"page size {size}: sync {result.pages} pages, complete {result.complete}; "
                                     f"floor {floor_pages} pages")
                if size not in best or wall < best[size]["sync_s"]:
                    best[size] = {"pages": result.pages, "records": result.records_loaded, "sync_s": wall,
                                  "sync_cpu_s": cpu, "floor_s": floor_s}
    return {"orders": orders, "contract_page_size": dataset.page_size, "sizes": best}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orders", type=int, default=5000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = ap.parse_args()
    load = os.getloadavg()
    r = run(args.orders, args.repeat)
    print(json.dumps(r), flush=True)
    if args.no_record:
        return
    rows = [f"| {size} | {s['pages']} | {s['records']:,} | {s['floor_s']:.2f} | {s['sync_s']:.2f} |"
            f" {s['sync_cpu_s']:.2f} | {s['sync_s'] / s['pages']:.3f} | **{s['floor_s'] / s['sync_s']:.3f}** |"
            for size, s in r["sizes"].items()]
    append_section([
        f"\n## Partner REST sync — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, commit {commit()}\n",
        f"Machine: {machine()}; load average before the run {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f}. "
        f"`rest.sync` of {r['orders']:,} OEM service orders from the simulated API on 127.0.0.1 (no faults) into a "
        f"fresh data root, at each page size (the contract's `pageSize` is {r['contract_page_size']}); best of "
        f"{args.repeat}, alternating. Floor: the same pages fetched with httpx and parsed, nothing validated or "
        "loaded.\n",
        "| page size | pages | records | floor s | sync s | sync CPU s | sync s per page | **floor / sync** |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])
    print("appended to docs/benchmarks.md")


if __name__ == "__main__":
    main()
