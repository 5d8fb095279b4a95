"""What the benchmarks share: timing a child process, the machine and commit a result belongs to, and
the results file."""

from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "docs" / "benchmarks.md"
HEADER = ("# Benchmarks\n\nAppended by `make bench`. Ratios compare Pitwall with a floor measured in the same run on the "
          "same files; absolute figures depend on the machine.\n")


def timed_child(args: list[str], env: dict, cwd: Path = ROOT) -> tuple[float, float, float]:
    """Run a child process; return (wall seconds, CPU seconds, its peak RSS in MiB)."""
    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{args} failed with status {status}")
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def timed_tree(args: list[str], env: dict, cwd: Path = ROOT, every: float = 0.25,
               at_peak: dict[str, float] | None = None) -> tuple[float, float, float]:
    """Like timed_child, but the peak is the summed RSS of the whole process tree, sampled from /proc every
    ``every`` seconds: a Spark step's JVM is a grandchild that is killed, not waited for, so wait4 never
    counts it. ``at_peak``, when given, receives the tree's composition at its peak: MiB by process (its
    command, shortened), to say which one holds the memory, and ``at_epoch``, when it was."""
    import threading

    start = time.perf_counter()
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    peak = [0]
    done = threading.Event()
    page = os.sysconf("SC_PAGE_SIZE")

    def tree_rss() -> dict[int, int]:
        parents: dict[int, int] = {}
        rss: dict[int, int] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            parents[pid], rss[pid] = int(fields[1]), int(fields[21]) * page
        tree, frontier = {proc.pid}, [proc.pid]
        while frontier:
            parent = frontier.pop()
            children = [pid for pid, ppid in parents.items() if ppid == parent and pid not in tree]
            tree.update(children)
            frontier += children
        return {pid: rss.get(pid, 0) for pid in tree}

    def sample() -> None:
        while not done.wait(every):
            by_pid = tree_rss()
            total = sum(by_pid.values())
            if total > peak[0]:
                peak[0] = total
                if at_peak is not None:
                    at_peak.clear()
                    at_peak.update(_named(by_pid), at_epoch=time.time())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, status, usage = os.wait4(proc.pid, 0)
    done.set()
    sampler.join()
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{args} failed with status {status}")
    return seconds, usage.ru_utime + usage.ru_stime, max(peak[0] / 2**20, usage.ru_maxrss / 1024)


def _named(by_pid: dict[int, int]) -> dict[str, float]:
    """MiB by process, each named by the most telling words of its command line (``dbt build``,
    ``-m simulator.partners``), summed when two share a name."""
    out: dict[str, float] = {}
    for pid, rss in by_pid.items():
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        words = [Path(argv[0]).name] + [Path(a).name if a.startswith("/") else a for a in argv[1:4] if a]
        name = " ".join(" ".join(words).split())[:60]  # /…/bin/dbt → dbt; a `-c` script on one line
        out[name] = round(out.get(name, 0) + rss / 2**20)
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def machine() -> str:
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{platform.machine()}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}"


def commit() -> str:
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
    return (out.stdout.strip() or "unknown") + ("+dirty" if dirty.strip() else "")


def append_section(lines: list[str]) -> None:
    if not RESULTS.exists():
        RESULTS.write_text(HEADER)
    with RESULTS.open("a") as fh:
        fh.write("\n".join(lines) + "\n")


def run_sizes(description: str, bench_size, append_results) -> None:
    """The command line both size benchmarks share: simulate each size, measure, append the results."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--workdir", type=Path, default=ROOT / ".tmp_bench")
    parser.add_argument("--no-record", action="store_true", help="print only; do not append to docs/benchmarks.md")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = [bench_size(n, args.workdir, args.days, args.seed) for n in args.sizes]
    if not args.no_record:
        append_results(results)
        print(f"appended to {RESULTS}")
