"""Client processes: writers and watchers run outside the harness's process
(and outside the servers'), the way a fleet would, so that Python clients of
every system get the same share of the 2 cores.

An `Agent` is one spawned process with its own asyncio loop, driving one
system through `Conn`s. The parent sends it a request and waits for the
reply; `gather` runs one request on several agents at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing as mp
import os
import time
import traceback
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import orjson

from bench._controller import make_value, rss_mb
from bench.suite.systems.base import Conn, Joined, Watch, connect

_SPAWN = mp.get_context("spawn")


def value_bytes(i: int) -> bytes:
    """The 100-byte JSON document every system stores."""
    return orjson.dumps(make_value(i), option=orjson.OPT_SORT_KEYS)


def key_name(i: int) -> str:
    return f"k-{i:07d}"


class Agent:
    def __init__(self, spec: str, endpoint: dict[str, Any], name: str, log: Path) -> None:
        self.name = name
        self._conn, child = _SPAWN.Pipe()
        self.proc = _SPAWN.Process(
            target=_main, args=(spec, endpoint, child, str(log)), name=name, daemon=True
        )
        self.proc.start()
        child.close()

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def send(self, op: str, **kwargs: Any) -> None:
        self._conn.send((op, kwargs))

    def receive(self, timeout: float = 900) -> Any:
        if not self._conn.poll(timeout):
            raise TimeoutError(f"agent {self.name}: no reply within {timeout:.0f} s")
        ok, result = self._conn.recv()
        if not ok:
            raise RuntimeError(f"agent {self.name} failed:\n{result}")
        return result

    def request(self, op: str, timeout: float = 900, **kwargs: Any) -> Any:
        self.send(op, **kwargs)
        return self.receive(timeout)

    def close(self) -> None:
        if self.proc.is_alive():
            with contextlib.suppress(TimeoutError, RuntimeError, EOFError, BrokenPipeError):
                self.request("exit", timeout=60)
            self.proc.join(timeout=30)
            if self.proc.is_alive():
                self.proc.kill()
                self.proc.join()
        self._conn.close()


def gather(agents: list[Agent], op: str, timeout: float = 900, **kwargs: Any) -> list[Any]:
    for agent in agents:
        agent.send(op, **kwargs)
    return [agent.receive(timeout) for agent in agents]


def close_all(agents: list[Agent]) -> None:
    for agent in agents:
        agent.close()


# ---------------------------------------------------------------- the child


class _Child:
    def __init__(self, spec: str, endpoint: dict[str, Any]) -> None:
        self.spec = spec
        self.endpoint = endpoint
        self.watches: list[tuple[Conn, Watch, dict[str, float]]] = []
        self.changed = asyncio.Event()

    async def conn(self) -> Conn:
        return await connect(self.spec, self.endpoint)

    # writers ---------------------------------------------------------

    async def op_put_seq(self, seconds: float, first: int) -> dict[str, Any]:
        conn = await self.conn()
        try:
            return await _sequential(conn, seconds, first)
        finally:
            await conn.close()

    async def op_put_parallel(self, clients: int, seconds: float, first: int) -> dict[str, Any]:
        conns = [await self.conn() for _ in range(clients)]
        try:
            runs = await asyncio.gather(
                *(_sequential(c, seconds, first + n * 10_000_000) for n, c in enumerate(conns))
            )
        finally:
            for c in conns:
                await c.close()
        return {
            "latencies": [x for r in runs for x in r["latencies"]],
            "elapsed": max(r["elapsed"] for r in runs),
        }

    async def op_put_window(self, count: int, window: int, first: int) -> dict[str, Any]:
        conn = await self.conn()
        items = [(key_name(first + i), value_bytes(first + i)) for i in range(count)]
        try:
            t0 = time.perf_counter()
            latencies = await conn.put_window(items, window)
            return {"latencies": latencies, "elapsed": time.perf_counter() - t0}
        finally:
            await conn.close()

    async def op_put_batches(
        self, batches: int, size: int, window: int, first: int
    ) -> dict[str, Any] | None:
        """Atomic batches of `size` puts; None where the system has none."""
        conn = await self.conn()
        work = [
            [
                (key_name(first + b * size + i), value_bytes(first + b * size + i))
                for i in range(size)
            ]
            for b in range(batches)
        ]
        try:
            t0 = time.perf_counter()
            latencies = await conn.put_batches(work, window)
            return {"latencies": latencies, "elapsed": time.perf_counter() - t0}
        except NotImplementedError:
            return None
        finally:
            await conn.close()

    async def op_put_rate(self, rate: float, seconds: float, first: int) -> dict[str, Any]:
        """One writer, write i due at t0 + i/rate; a late write goes at once.
        Each put is its own task, so a slow ack does not hold back the next.
        For each acknowledged put: key, unix time sent, unix time acknowledged."""
        conn = await self.conn()
        count = int(rate * seconds)
        acked: list[tuple[str, float, float]] = []
        errors: list[str] = []

        async def one(i: int) -> None:
            key = key_name(first + i)
            sent = time.time()
            try:
                await conn.put(key, value_bytes(first + i))
            except Exception as exc:
                errors.append(repr(exc))
                return
            acked.append((key, sent, time.time()))

        tasks = []
        t0 = time.perf_counter()
        late = 0
        for i in range(count):
            delay = t0 + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late += 1
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - t0
        await conn.close()
        return {"acked": acked, "errors": errors, "late": late, "elapsed": elapsed}

    async def op_put_keys(self, keys: list[str]) -> list[int]:
        conn = await self.conn()
        try:
            return [await conn.put(key, value_bytes(0)) for key in keys]
        finally:
            await conn.close()

    async def op_load(self, first: int, count: int) -> int:
        conn = await self.conn()
        try:
            items = ((key_name(i), value_bytes(i)) for i in range(first, first + count))
            return await conn.load(items)
        finally:
            await conn.close()

    async def op_head(self) -> int:
        conn = await self.conn()
        try:
            return await conn.head()
        finally:
            await conn.close()

    async def op_compact(self) -> None:
        conn = await self.conn()
        try:
            await conn.compact()
        finally:
            await conn.close()

    # readers ---------------------------------------------------------

    async def op_list_all(self, expect: int) -> dict[str, Any]:
        """A re-list, then what its user does with it: compare with a local copy."""
        conn = await self.conn()
        try:
            t0 = time.perf_counter()
            listing = await conn.list_all()
            seconds = time.perf_counter() - t0
        finally:
            await conn.close()
        if len(listing.items) != expect:
            raise RuntimeError(f"listed {len(listing.items)} keys, expected {expect}")
        local = {key_name(i): value_bytes(i) for i in range(expect)}
        t0 = time.perf_counter()
        differ = sum(1 for k, v in local.items() if listing.items.get(k) != v)
        compare = time.perf_counter() - t0
        return {
            "seconds": seconds,
            "compare_seconds": compare,
            "differ": differ,
            "keys": len(listing.items),
            "revision": listing.revision,
            "bytes": listing.wire_bytes,
            "round_trips": listing.round_trips,
            "peak_rss_mb": rss_mb(os.getpid()),
        }

    async def op_bootstrap(self, state_dir: str, expect: int) -> dict[str, Any]:
        """statesync: a fresh worker with an on-disk replica until it is at the head."""
        conn = await self.conn()
        try:
            seconds, listing, keys = await conn.bootstrap(Path(state_dir))  # type: ignore[attr-defined]
        finally:
            await conn.close()
        if keys != expect:
            raise RuntimeError(f"the worker holds {keys} keys, expected {expect}")
        out = {
            "seconds": seconds,
            "keys": keys,
            "revision": listing.revision,
            "bytes": listing.wire_bytes,
            "peak_rss_mb": rss_mb(os.getpid()),
        }
        if conn.reader_rss is not None:  # type: ignore[attr-defined]
            out["reader_rss_empty_mb"], out["peak_rss_mb"] = conn.reader_rss  # type: ignore[attr-defined]
        return out

    async def op_join(self, readers: int, head: int, start_at: float) -> list[dict[str, Any]]:
        """`readers` new, empty readers (each its own connection) all starting at
        unix time `start_at`, until each has reached `head`; each kept until all are."""
        await asyncio.sleep(max(0.0, start_at - time.time()))
        conns: list[Conn] = []

        async def one() -> Joined:
            conn = await self.conn()
            conns.append(conn)
            return await conn.join(head)

        joined: list[Joined] = []
        try:
            joined = list(await asyncio.gather(*(one() for _ in range(readers))))
            return [
                {
                    "at": j.at,
                    "keys": j.keys,
                    "transfers": j.transfers,
                    "reconnects": j.reconnects,
                }
                for j in joined
            ]
        finally:
            for j in joined:
                if isinstance(j.held, Watch):
                    await j.held.close()
            for conn in conns:
                await conn.close()

    async def op_watch(self, watchers: int, from_revision: int) -> int:
        for _ in range(watchers):
            conn = await self.conn()
            seen: dict[str, float] = {}

            def on_event(
                key: str, value: bytes | None, rev: int, *, at: float | None = None, seen=seen
            ) -> None:
                seen.setdefault(key, time.time() if at is None else at)
                self.changed.set()

            watch = await conn.watch(on_event, from_revision=from_revision)
            self.watches.append((conn, watch, seen))
        return len(self.watches)

    async def op_wait_seen(self, keys: list[str], within: float) -> list[float | None]:
        """For each watcher, when it had seen every one of `keys` (None: not within `within` s)."""
        deadline = time.monotonic() + within
        while True:
            done = [seen.keys() >= set(keys) for _, _, seen in self.watches]
            if all(done) or time.monotonic() > deadline:
                return [
                    max(seen[k] for k in keys) if ok else None
                    for ok, (_, _, seen) in zip(done, self.watches, strict=True)
                ]
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), 0.05)

    async def op_collect(self) -> list[dict[str, float]]:
        out = [dict(seen) for _, _, seen in self.watches]
        for _, _, seen in self.watches:
            seen.clear()
        return out

    async def op_unwatch(self) -> None:
        for conn, watch, _ in self.watches:
            await watch.close()
            await conn.close()
        self.watches.clear()

    async def op_rss(self) -> dict[str, float]:
        return {"peak_rss_mb": rss_mb(os.getpid()), "rss_mb": rss_mb(os.getpid(), "VmRSS")}


async def _sequential(conn: Conn, seconds: float, first: int) -> dict[str, Any]:
    latencies = []
    t0 = time.perf_counter()
    i = first
    while time.perf_counter() - t0 < seconds:
        started = time.perf_counter()
        await conn.put(key_name(i), value_bytes(i))
        latencies.append(time.perf_counter() - started)
        i += 1
    return {"latencies": latencies, "elapsed": time.perf_counter() - t0}


def _main(spec: str, endpoint: dict[str, Any], pipe: Connection, log: str) -> None:
    logging.basicConfig(
        filename=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    asyncio.run(_serve(spec, endpoint, pipe))


async def _serve(spec: str, endpoint: dict[str, Any], pipe: Connection) -> None:
    child = _Child(spec, endpoint)
    loop = asyncio.get_running_loop()
    while True:
        try:
            op, kwargs = await loop.run_in_executor(None, pipe.recv)
        except EOFError:
            return
        if op == "exit":
            if child.watches:
                await child.op_unwatch()
            pipe.send((True, None))
            return
        try:
            result = await getattr(child, f"op_{op}")(**kwargs)
        except Exception:
            pipe.send((False, traceback.format_exc()))
        else:
            pipe.send((True, result))
