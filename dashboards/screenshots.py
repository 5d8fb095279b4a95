"""Screenshots of every dashboard page, taken by a real headless Chromium (``make screenshots``).

Starts ``streamlit run dashboards/app.py`` on 127.0.0.1 at a free port, headless, then drives the
machine's Chromium (Debian's ``/usr/bin/chromium``) through Playwright and saves one PNG per page. Playwright
is only the remote control here: it never downloads a browser of its own. Each page is also checked
(``page_defects``: an exception box, a chart that leaves categories unnamed, dates drawn as numbers); the
command exits non-zero listing what it found, and tests/test_browser.py runs the same check.

    .venv/bin/python -m dashboards.screenshots --out docs/screenshots
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from dashboards.pages import PAGES, Page
from pitwall import paths

CHROMIUM = "/usr/bin/chromium"
# Quiet and offline: no sandbox (we may be root), no GPU, no background traffic of Chromium's own.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_streamlit(port: int, env: dict[str, str] | None = None) -> subprocess.Popen:
    command = [sys.executable, "-m", "streamlit", "run", str(paths.PROJECT_ROOT / "dashboards" / "app.py"),
               "--server.address", "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    env = {**(os.environ if env is None else env), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
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


def example_query(shown: Page) -> str:
    """The query string a page is shot with. The Trace Explorer shows nothing until asked for a trace: shoot it
    on the slowest request of the default window, as a link from API Latency would open it."""
    if shown.key != "trace_explorer":
        return ""
    from dashboards import queries
    from pitwall.duck import connect

    con = connect(paths.published_path(), read_only=True)
    try:
        trace_id = queries.slowest_trace_id(con, queries.default_filters(con))
    finally:
        con.close()
    return f"?trace_id={trace_id}" if trace_id else ""


# Every axis of every Vega chart on the page: Vega's own description of it (its aria-label names the scale
# type and, for a discrete scale, how many values it has) and the tick labels it drew visibly (labels that
# would overlap are drawn with opacity 0).
AXES_JS = """() => [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].flatMap((chart, index) =>
  [...chart.querySelectorAll('svg g.role-axis')].map(axis => ({
    chart: index,
    description: axis.getAttribute('aria-label') || '',
    shown: [...axis.querySelectorAll('g.role-axis-label text')]
      .filter(t => t.getAttribute('opacity') !== '0').map(t => t.textContent),
  })))"""
DISCRETE = re.compile(r"for a discrete scale with (\d+) values")
LINEAR_FROM = re.compile(r"for a linear scale with values from (-?[\d,.]+)")
DATE_TITLE = re.compile(r"^X-axis titled '[^']*\b(day|date|week|month)\b", re.IGNORECASE)  # time runs along x
EPOCH_MS = 1e11  # a "number" this large on an axis is a timestamp drawn as a count (2001 onwards in ms)


def chart_defects(axes: list[dict]) -> list[str]:
    """What makes a chart unreadable, from its axes: categories left unnamed (a bar without its label),
    dates drawn as numbers."""
    found = []
    for axis in axes:
        description, shown = axis["description"], axis["shown"]
        where = f"chart {axis['chart'] + 1}: {description.split(' for ')[0] or 'an axis'}"
        if m := DISCRETE.search(description):
            if len(shown) < int(m.group(1)):
                found.append(f"{where} names {len(shown)} of its {m.group(1)} categories")
        elif m := LINEAR_FROM.search(description):
            if DATE_TITLE.search(description) or abs(float(m.group(1).replace(",", ""))) >= EPOCH_MS:
                found.append(f"{where} shows dates as numbers ({description})")
    return found


def page_defects(page) -> list[str]:
    """An exception box, or a chart ``chart_defects`` finds unreadable, on the rendered page."""
    found = [f"exception: {text[:300]}" for text in page.locator('[data-testid="stException"]').all_inner_texts()]
    return found + chart_defects(page.evaluate(AXES_JS))


def take(out: Path, width: int, height: int, full_page: bool, only: list[str] | None = None, *,
         env: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Shoot every page (or ``only`` these keys) into ``out``/<key>.png; each page's defects (``page_defects``)."""
    return take_at_widths({width: out}, height, full_page, only, env=env)[width]


def take_at_widths(outs: dict[int, Path], height: int, full_page: bool, only: list[str] | None = None, *,
                   env: dict[str, str] | None = None) -> dict[int, dict[str, list[str]]]:
    """``take`` at each width of ``outs`` (width -> folder) from one Streamlit server and one browser: the pages
    after the first width's come from the server's query cache, as a reader's second visit does."""
    from playwright.sync_api import sync_playwright

    for out in outs.values():
        out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = start_streamlit(port, env)
    defects: dict[int, dict[str, list[str]]] = {}
    try:
        wait_healthy(port, server)
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            for width, out in outs.items():
                page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
                defects[width] = {}
                for shown in PAGES:
                    if only and shown.key not in only:
                        continue
                    page.goto(f"http://127.0.0.1:{port}/{shown.url_path}{example_query(shown)}",
                              wait_until="domcontentloaded")
                    wait_rendered(page)
                    defects[width][shown.key] = page_defects(page)
                    target = out / f"{shown.key}.png"
                    page.screenshot(path=str(target), full_page=full_page)
                    print(f"{target} ({target.stat().st_size // 1024} KiB)"
                          + "".join(f"\n  defect: {d}" for d in defects[width][shown.key]))
                page.close()
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return defects


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=paths.PROJECT_ROOT / "docs" / "screenshots")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--full-page", action="store_true", help="the whole scrolled page, not only the viewport")
    parser.add_argument("--only", nargs="+", metavar="NAME", help=f"only these pages ({', '.join(p.key for p in PAGES)})")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make screenshots does it)")
    if not paths.published_path().exists():
        sys.exit(f"{paths.published_path()} is missing: run `make demo` first (or the pipeline on your data)")
    # Playwright must drive the machine's Chromium, never fetch one.
    os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")
    defects = {key: found for key, found in take(args.out, args.width, args.height, args.full_page, args.only).items()
               if found}
    if defects:
        sys.exit(f"unreadable pages: {', '.join(defects)} (defects listed above)")


if __name__ == "__main__":
    main()
