"""The etcd driver of `python -m bench` against a real etcd (the Debian binary).

One server for the whole test (starting etcd takes ~0.5 s, a restart ~1.5 s);
every check works in its own key range so that the checks do not depend on
one another's data. Without etcd the tests fail: it is a prerequisite of the
suite, which .ci/run installs.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from bench.suite.systems.etcd_sys import Etcd, EtcdConn, WatchCompactedError, prefix_end


def _need_etcd() -> None:
    """etcd is a prerequisite of the suite (.ci/run installs it): fail, never skip."""
    if not (shutil.which("etcd") or Path("/usr/bin/etcd").exists()):
        pytest.fail("etcd is not installed: apt-get install etcd-server (as .ci/run does)")


def test_prefix_end() -> None:
    assert prefix_end(b"bench/") == b"bench0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff") == b"\x00"


def test_missing_etcd_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    monkeypatch.setattr(Path, "exists", lambda self: False)
    with pytest.raises(RuntimeError, match="apt-get install etcd-server"):
        Etcd(tmp_path).start()


def test_etcd_driver(tmp_path: Path) -> None:
    _need_etcd()
    etcd = Etcd(tmp_path)
    etcd.start()
    try:
        assert etcd.server_pids() and all(p > 0 for p in etcd.server_pids())
        endpoint = etcd.endpoint()
        assert endpoint["prefix"] == "bench/" and endpoint["address"].startswith("127.0.0.1:")
        asyncio.run(_scenario(etcd))
    finally:
        pid = etcd.server_pids()
        etcd.stop()  # raises unless etcd exited cleanly on SIGTERM
    assert etcd.server_pids() == []
    assert not Path(f"/proc/{pid[0]}").exists()
    assert (tmp_path / "etcd-data").is_dir() and (tmp_path / "etcd.log").exists()


async def _scenario(etcd: Etcd) -> None:
    conn = await Etcd.connect(etcd.endpoint())
    assert isinstance(conn, EtcdConn)
    try:
        await _puts(conn)
        await _load_and_list(conn)
        await _watches(conn)
        await _watch_survives_restart(conn, etcd)
        await _compact(conn)
    finally:
        await conn.close()


async def _puts(conn: EtcdConn) -> None:
    revisions = [await conn.put(f"p-{i}", b"v%d" % i) for i in range(5)]
    assert revisions == sorted(revisions) and len(set(revisions)) == 5
    assert await conn.head() == revisions[-1]

    items = [(f"w-{i:04d}", b"w%d" % i) for i in range(200)]
    latencies = await conn.put_window(items, window=16)
    assert len(latencies) == len(items) and all(lat > 0 for lat in latencies)
    listed = (await conn.list_all()).items
    assert all(listed[k] == v for k, v in items)
    assert await conn.head() == revisions[-1] + len(items)


async def _load_and_list(conn: EtcdConn) -> None:
    before = await conn.list_all()
    items = {f"l-{i:05d}": b"x%05d" % i for i in range(5000)}
    head = await conn.load(iter(items.items()))  # a generator is fine
    assert head == await conn.head()
    assert head == before.revision + 5  # 1,000 puts per txn: one revision each

    listing = await conn.list_all()
    assert listing.items == before.items | items
    assert listing.revision == head
    assert listing.round_trips == 1 and listing.wire_bytes > 5000 * 10

    conn.page_limit = 700  # force pages: each pinned to the first page's revision
    try:
        await conn.put("l-00000", b"changed")
        paged = await conn.list_all()
        assert paged.round_trips == -(-len(paged.items) // 700) > 1
        assert paged.items["l-00000"] == b"changed" and paged.revision == head + 1
        assert {k: v for k, v in paged.items.items() if k != "l-00000"} == {
            k: v for k, v in listing.items.items() if k != "l-00000"
        }
    finally:
        conn.page_limit = EtcdConn.page_limit


async def _watches(conn: EtcdConn) -> None:
    from_now: list[tuple[str, bytes | None, int]] = []
    w_now = await conn.watch(lambda k, v, r: from_now.append((k, v, r)), from_revision=0)
    r0 = await conn.head()
    expected = [("n-1", b"a", await conn.put("n-1", b"a"))]
    expected.append(("n-2", b"b", await conn.put("n-2", b"b")))
    assert expected[0][2] == r0 + 1

    # From a past revision: exactly the changes after it, and nothing before.
    since: list[tuple[str, bytes | None, int]] = []
    w_since = await conn.watch(lambda k, v, r: since.append((k, v, r)), from_revision=r0 + 1)
    expected.append(("n-3", b"c", await conn.put("n-3", b"c")))
    await _until(lambda: len(from_now) >= 3 and len(since) >= 2)
    await asyncio.sleep(0.1)  # nothing more arrives
    assert from_now == expected
    assert since == expected[1:]
    await w_now.close()
    await w_since.close()

    await conn.put("n-4", b"d")  # after close: not delivered
    await asyncio.sleep(0.1)
    assert len(from_now) == 3


async def _watch_survives_restart(conn: EtcdConn, etcd: Etcd) -> None:
    seen: list[tuple[str, bytes | None, int]] = []
    watch = await conn.watch(lambda k, v, r: seen.append((k, v, r)), from_revision=0)
    expected = [("r-1", b"1", await conn.put("r-1", b"1"))]
    await _until(lambda: len(seen) == 1)

    await asyncio.to_thread(etcd.restart)
    # Writes right after the restart, and a txn of several keys (one revision).
    expected.append(("r-2", b"2", await conn.put("r-2", b"2")))
    head = await conn.load([("r-3", b"3"), ("r-4", b"4")])
    expected += [("r-3", b"3", head), ("r-4", b"4", head)]
    await _until(lambda: len(seen) >= 4)
    await asyncio.sleep(0.1)
    assert seen == expected
    assert watch.reconnects >= 1
    await watch.close()


async def _compact(conn: EtcdConn) -> None:
    before = await conn.list_all()
    await conn.compact()
    await conn.compact()  # again at the same head: harmless
    after = await conn.list_all()
    assert after.items == before.items and after.revision == before.revision
    # A watch from before the compaction cannot be served: etcd says so (after
    # confirming the creation), the watch stops and close() raises it.
    watch = await conn.watch(lambda k, v, r: None, from_revision=1)
    await _until(lambda: watch.error is not None)
    with pytest.raises(WatchCompactedError):
        await watch.close()


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out waiting for watch events"
        await asyncio.sleep(0.01)
