"""In-process commit throughput and latency of statesync's embedded store (no
network): what the store and its group commit reach, apart from gRPC.

Every command is one put of a 100-byte value, fsynced before it is
acknowledged. Each case runs on a fresh store in this process:

  single        one writer, one command at a time (the sync API)
  writers-16    16 asyncio writers, one command in flight each (commit_async)
  pipelined-16  16 asyncio writers, 8 commands in flight each (submit)
  batch-1000    one writer, 1,000 commands per commit_many call

The raw cost of one fsync on the same disk is measured first: it bounds what
one writer with one command in flight can reach.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench._controller import make_value, pct
from statesync import Command, Put, SQLiteStore

Latencies = tuple[float, list[float]]
"""Commands per second, and each command's (or batch's) latency in seconds."""


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


def _command(writer: int, i: int) -> Command:
    return Command([Put("bench", f"w{writer}/k{i % 1000}", make_value(i))])


def single(store: SQLiteStore, n: int) -> Latencies:
    latencies = []
    start = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        store.commit(_command(0, i))
        latencies.append(time.perf_counter() - t)
    return n / (time.perf_counter() - start), latencies


def writers(store: SQLiteStore, n: int, count: int = 16, depth: int = 1) -> Latencies:
    latencies: list[float] = []
    per = n // count

    async def writer(w: int) -> None:
        window: list[tuple[float, asyncio.Future[Any]]] = []
        for i in range(per):
            window.append((time.perf_counter(), asyncio.wrap_future(store.submit(_command(w, i)))))
            if len(window) >= depth:
                t, done = window.pop(0)
                await done
                latencies.append(time.perf_counter() - t)
        for t, done in window:
            await done
            latencies.append(time.perf_counter() - t)

    async def run() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(writer(w) for w in range(count)))
        return per * count / (time.perf_counter() - start)

    return asyncio.run(run()), latencies


def batches(store: SQLiteStore, n: int, size: int = 1000) -> Latencies:
    latencies = []
    start = time.perf_counter()
    for b in range(max(1, n // size)):
        t = time.perf_counter()
        outcomes = store.commit_many([_command(0, b * size + i) for i in range(size)])
        failed = [o for o in outcomes if isinstance(o, Exception)]
        if failed:
            raise RuntimeError(f"commit_many: {len(failed)} commands failed: {failed[0]}")
        latencies.append(time.perf_counter() - t)
    return max(1, n // size) * size / (time.perf_counter() - start), latencies


CASES: dict[str, Callable[[SQLiteStore, int], Latencies]] = {
    "single": lambda store, n: single(store, max(n // 5, 200)),
    "writers-16": writers,
    "pipelined-16": lambda store, n: writers(store, n, depth=8),
    "batch-1000": batches,
}


def commit(workdir: Path, commands: int) -> dict[str, Any]:
    """Every case once on a fresh store in `workdir`, and the raw fsync cost."""
    out: dict[str, Any] = {"fsync_ms": fsync_cost(workdir) * 1e3, "commands": commands}
    for name, case in CASES.items():
        path = workdir / f"commit-{name}.sqlite"
        with SQLiteStore(path) as store:
            ops, latencies = case(store, commands)
        for suffix in ("", "-wal", "-shm", ".lock"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        out[name] = {
            "ops_per_s": ops,
            "p50_ms": pct(latencies, 0.50) * 1e3,
            "p99_ms": pct(latencies, 0.99) * 1e3,
            "max_ms": max(latencies) * 1e3,
        }
    return out
