"""Screenshots of every dashboard page, taken by a real headless Chromium (``make screenshots``).

Starts ``streamlit run dashboards/app.py`` on 127.0.0.1 at a free port, headless, then drives the
machine's Chromium (Debian's ``/usr/bin/chromium``) through Playwright and saves one PNG per page. Playwright
is only the remote control here: it never downloads a browser of its own.

    .venv/bin/python -m dashboards.screenshots --out docs/screenshots
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from pitwall import paths

# url_path of each page in dashboards/app.py ("" is the default page, Overview) -> file name.
PAGES = {
    "": "overview",
    "funnels": "funnels",
    "engagement": "engagement",
    "release-health": "release_health",
    "api-latency": "api_latency",
    "traces": "trace_explorer",
    "feedback": "feedback",
    "experiments": "experiments",
    "recommendations": "recommendations",
    "partners": "partners",
    "support": "support_console",
}
CHROMIUM = "/usr/bin/chromium"
# Quiet and offline: no sandbox (we may be root), no GPU, no background traffic of Chromium's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(port: int) -> subprocess.Popen:
    command = [sys.executable, "-m", "streamlit", "run", str(paths.PROJECT_ROOT / "dashboards" / "app.py"),
               "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    env = {**os.environ, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    return subprocess.Popen(command, cwd=paths.PROJECT_ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def wait_healthy(port: int, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"streamlit exited early:\n{server.stderr.read()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                if response.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(f"streamlit did not answer on port {port} within {timeout:.0f} s")


def wait_rendered(page, timeout_ms: int = 30_000) -> None:
    """Until the script run is over (no "Running..." status) and every chart has drawn."""
    page.wait_for_selector('[data-testid="stMain"] h1', timeout=timeout_ms)
    deadline = time.monotonic() + timeout_ms / 1000
    quiet_since = None
    while time.monotonic() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').count() > 0
        charts = page.locator('[data-testid="stVegaLiteChart"]').count()
        drawn = page.locator('[data-testid="stVegaLiteChart"] canvas, [data-testid="stVegaLiteChart"] svg').count()
        settled = not running and drawn >= charts
        quiet_since = (quiet_since or time.monotonic()) if settled else None
        if quiet_since and time.monotonic() - quiet_since > 1.0:
            break
        time.sleep(0.2)
    page.wait_for_timeout(500)  # Vega's first paint and the data grids' fade-in


def example_query(url_path: str) -> str:
    """The query string a page is shot with. The Trace Explorer shows nothing until asked for a trace: shoot it
    on the slowest request of the default window, as a link from API Latency would open it."""
    if url_path != "traces":
        return ""
    from dashboards import queries
    from pitwall.duck import connect

    con = connect(paths.published_path(), read_only=True)
    try:
        trace_id = queries.slowest_trace_id(con, queries.default_filters(con))
    finally:
        con.close()
    return f"?trace_id={trace_id}" if trace_id else ""


def take(out: Path, width: int, height: int, full_page: bool, only: list[str] | None = None) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_streamlit(port)
    saved = []
    try:
        wait_healthy(port, server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            for url_path, name in PAGES.items():
                if only and name not in only:
                    continue
                page.goto(f"http://127.0.0.1:{port}/{url_path}{example_query(url_path)}", wait_until="domcontentloaded")
                wait_rendered(page)
                target = out / f"{name}.png"
                page.screenshot(path=str(target), full_page=full_page)
                saved.append(target)
                print(f"{target} ({target.stat().st_size // 1024} KiB)")
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=paths.PROJECT_ROOT / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="the whole scrolled page, not only the viewport")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"only these pages ({', '.join(PAGES.values())})")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make screenshots does it)")
    if not paths.published_path().exists():
        sys.exit(f"{paths.published_path()} is missing: run `make demo` first (or the pipeline on your data)")
    # Playwright must drive the machine's Chromium, never fetch one.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    take(args.out, args.width, args.height, args.full_page, args.only)


if __name__ == "__main__":
    main()
