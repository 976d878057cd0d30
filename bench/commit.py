"""In-process commit throughput and latency of the embedded SQLite store.

Every command is one put of a 100-byte value (canonical size), fsynced before
it is acknowledged (synchronous=FULL, WAL). Scenarios, run in one process on
fresh stores, alternated and repeated (median with min-max):

  single       one writer, one command at a time (sync API)
  async-16     16 asyncio tasks, one command in flight each (commit_async)
  threads-16   16 threads, one command in flight each (commit)
  pipelined-16 16 asyncio tasks, 8 commands in flight each (submit futures)
  batch-1000   one writer, 1,000 commands per commit_many call

The raw cost of one fsync on the same disk is measured first: it bounds what
one writer with one command in flight can reach.

    python bench/commit.py                 # 3 rounds, ~1 minute
    python bench/commit.py --rounds 5 --commands 20000 --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from rich.console import Console
from rich.table import Table

from statesync import Command, Put, SQLiteStore

VALUE_BYTES = 100


def make_value(i: int) -> dict[str, object]:
    """A realistic small document whose canonical form is exactly VALUE_BYTES."""
    doc = {"host": f"10.0.{i % 256}.{i % 200}", "port": 8080, "weight": i % 100, "pad": ""}
    size = len(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS))
    doc["pad"] = "x" * (VALUE_BYTES - size)
    return doc


def fsync_cost(directory: Path, n: int = 300) -> float:
    path = directory / "fsync.probe"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        start = time.perf_counter()
        for _ in range(n):
            os.write(fd, b"x" * 100)
            os.fsync(fd)
        return (time.perf_counter() - start) / n
    finally:
        os.close(fd)
        path.unlink()


def _cmd(writer: int, i: int) -> Command:
    return Command([Put("bench", f"w{writer}/k{i % 1000}", make_value(i))])


def run_single(store: SQLiteStore, n: int) -> tuple[float, list[float]]:
    lat = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        store.commit(_cmd(0, i))
        lat.append(time.perf_counter() - t)
    return n / (time.perf_counter() - start), lat


def run_async(store: SQLiteStore, n: int, writers: int = 16, depth: int = 1):
    lat: list[float] = []

    async def writer(w: int) -> None:
        per = n // writers
        if depth == 1:
            for i in range(per):
                t = time.perf_counter()
                await store.commit_async(_cmd(w, i))
                lat.append(time.perf_counter() - t)
            return
        window: list[tuple[float, asyncio.Future]] = []
        for i in range(per):
            window.append((time.perf_counter(), asyncio.wrap_future(store.submit(_cmd(w, i)))))
            if len(window) >= depth:
                t, f = window.pop(0)
                await f
                lat.append(time.perf_counter() - t)
        for t, f in window:
            await f
            lat.append(time.perf_counter() - t)

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(writers)))
        return (n // writers * writers) / (time.perf_counter() - start)

    return asyncio.run(main()), lat


def run_threads(store: SQLiteStore, n: int, writers: int = 16):
    lat: list[float] = []
    lock = threading.Lock()

    def writer(w: int) -> None:
        mine = []
        for i in range(n // writers):
            t = time.perf_counter()
            store.commit(_cmd(w, i))
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return (n // writers * writers) / (time.perf_counter() - start), lat


def run_batch(store: SQLiteStore, n: int, size: int = 1000):
    lat = []
    start = time.perf_counter()
    for b in range(n // size):
        t = time.perf_counter()
        outcomes = store.commit_many([_cmd(0, b * size + i) for i in range(size)])
        assert all(not isinstance(o, Exception) for o in outcomes)
        lat.append(time.perf_counter() - t)
    return (n // size * size) / (time.perf_counter() - start), lat


SCENARIOS: dict[str, Callable] = {
    "single": lambda s, n: run_single(s, max(n // 5, 500)),
    "async-16": run_async,
    "threads-16": run_threads,
    "pipelined-16": lambda s, n: run_async(s, n, depth=8),
    "batch-1000": run_batch,
}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--commands", type=int, default=10_000, help="commands per run")
    parser.add_argument("--dir", type=Path, default=None, help="where stores live (a real disk)")
    parser.add_argument("--json", type=Path, default=None, help="also write results as JSON")
    args = parser.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="statesync-bench-", dir=args.dir or Path.cwd()))
    console = Console(stderr=True)
    fsync_s = fsync_cost(base)
    console.print(f"raw fsync on {base}: {fsync_s * 1e3:.3f} ms")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in SCENARIOS}
    for r in range(args.rounds):
        for name, run in SCENARIOS.items():  # alternate scenarios within each round
            path = base / f"{name}-{r}.sqlite"
            with SQLiteStore(path) as store:
                ops, lat = run(store, args.commands)
            for suffix in ("", "-wal", "-shm", ".lock"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            results[name].append(
                {
                    "ops_s": ops,
                    "p50_ms": pct(lat, 0.50) * 1e3,
                    "p99_ms": pct(lat, 0.99) * 1e3,
                    "max_ms": max(lat) * 1e3,
                }
            )
            console.print(f"round {r + 1}/{args.rounds} {name}: {ops:,.0f} commands/s")
    base.rmdir()

    table = Table(title=f"Commit throughput, fsync on, {VALUE_BYTES}-byte values (median, min-max)")
    for col in ("scenario", "commands/s", "p50 ms", "p99 ms", "max ms"):
        table.add_column(col, justify="right" if col != "scenario" else "left")
    summary = {}
    for name, runs in results.items():

        def cell(field: str, fmt: str, runs=runs) -> str:
            vals = [x[field] for x in runs]
            return f"{statistics.median(vals):{fmt}} ({min(vals):{fmt}}-{max(vals):{fmt}})"

        table.add_row(
            name,
            cell("ops_s", ",.0f"),
            cell("p50_ms", ".2f"),
            cell("p99_ms", ".2f"),
            cell("max_ms", ".1f"),
        )
        summary[name] = {
            k: statistics.median(x[k] for x in runs) for k in ("ops_s", "p50_ms", "p99_ms")
        }
    Console().print(table)
    print(
        f"raw fsync: {fsync_s * 1e3:.3f} ms; python {sys.version.split()[0]}; {os.cpu_count()} cpus"
    )
    if args.json:
        args.json.write_bytes(
            orjson.dumps(
                {"fsync_ms": fsync_s * 1e3, "rounds": results, "median": summary},
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
