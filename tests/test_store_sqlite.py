"""SQLiteStore: the shared conformance suite, plus what only this backend has.

Its own parts: the file and its lock, the committer thread (group commit,
periodic maintenance), the raw tables a tamperer could edit, a process that
dies without closing.
"""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.register_assert_rewrite("statesync.testing.store_suite")

from statesync import (  # noqa: E402
    Committed,
    SQLiteStore,
    StoreCorruptError,
    StoreSettings,
)
from statesync.core.model import ChangeOp  # noqa: E402
from statesync.testing.store_suite import (  # noqa: E402
    NEVER,
    ManualClock,
    StoreSuite,
    all_changes,
    digest_of,
    must_get,
    put,
    range_all,
    run_script,
)


class TestSQLiteStore(StoreSuite):
    def make_store(
        self, path: Path, *, clock: Callable[[], float] | None = None, **settings: Any
    ) -> SQLiteStore:
        return SQLiteStore(path, settings=StoreSettings(**settings), clock=clock or time.time)


# -- helpers --------------------------------------------------------------------


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "statesync.db"


@pytest.fixture
def opened(db: Path) -> Iterator[Callable[..., SQLiteStore]]:
    stores: list[SQLiteStore] = []

    def open_(*, clock: Callable[[], float] = time.time, **settings: Any) -> SQLiteStore:
        store = SQLiteStore(db, settings=StoreSettings(**settings), clock=clock)
        stores.append(store)
        return store

    yield open_
    for store in reversed(stores):
        store.close()


def raw(db: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    """Edit the closed store's file behind its back."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(sql, params)
    finally:
        conn.close()


# -- tampering is evident ----------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "broken_at"),
    [
        ("UPDATE log SET value = CAST('{\"port\":1}' AS BLOB) WHERE rev = 3 AND seq = 0", 3),
        ("UPDATE log SET ts_ms = ts_ms + 1 WHERE rev = 6 AND seq = 1", 6),
        ("UPDATE log SET command_id = 'forged' WHERE rev = 9 AND seq = 0", 9),
        ("UPDATE log SET op = 'delete', value = NULL WHERE rev = 2", 2),
        ("DELETE FROM log WHERE rev = 4 AND seq = 0", 4),
    ],
    ids=["value", "timestamp", "command-id", "op", "deleted-row"],
)
def test_verify_chain_detects_tampering(
    opened: Callable[..., SQLiteStore], db: Path, sql: str, broken_at: int
) -> None:
    store = opened()
    run_script(store)
    store.verify_chain()
    store.close()
    raw(db, sql)
    store = opened()  # the key table is intact, so the store opens
    with pytest.raises(StoreCorruptError, match=rf"revision {broken_at}\b"):
        store.verify_chain()


def test_verify_chain_detects_a_truncated_tail(
    opened: Callable[..., SQLiteStore], db: Path
) -> None:
    store = opened()
    run_script(store)
    store.close()
    raw(db, "DELETE FROM log WHERE rev = 10")
    with pytest.raises(StoreCorruptError, match="head"):
        opened().verify_chain()


def test_edited_key_table_is_refused_at_open(opened: Callable[..., SQLiteStore], db: Path) -> None:
    store = opened()
    run_script(store)
    store.close()
    # A careful forger even fixes the value hash; the recorded digest still disagrees.
    raw(
        db,
        "UPDATE kv SET value = CAST('666' AS BLOB), vhash = ? WHERE ns = 'apps' AND key = 'db'",
        (hashlib.sha256(b"666").digest(),),
    )
    with pytest.raises(StoreCorruptError, match="apps"):
        SQLiteStore(db)


def test_a_file_that_is_not_a_database_is_a_store_error(db: Path) -> None:
    db.write_bytes(b"this is not a database, " * 100)
    with pytest.raises(StoreCorruptError, match="not a database"):
        SQLiteStore(db)


def test_a_failed_open_releases_the_file(db: Path) -> None:
    SQLiteStore(db).close()
    raw(db, "UPDATE meta SET value = 99 WHERE name = 'format_version'")
    with pytest.raises(StoreCorruptError, match="format version 99"):
        SQLiteStore(db)
    raw(db, "UPDATE meta SET value = 1 WHERE name = 'format_version'")
    SQLiteStore(db).close()


# -- group commit ----------------------------------------------------------------------
# (what each group commit takes, seen by a store listener: crates/store/tests/store.rs)


def test_concurrent_writers_share_transactions(opened: Callable[..., SQLiteStore]) -> None:
    """Many concurrent commits, fewer transactions: counted by distinct commit
    timestamps, with a clock that ticks on every reading."""

    class TickingClock:
        def __init__(self) -> None:
            self.now = 1_700_000_000.0
            self.lock = threading.Lock()

        def __call__(self) -> float:
            with self.lock:
                self.now += 1
                return self.now

    store = opened(clock=TickingClock(), maintenance_interval_s=NEVER)
    gate_open = threading.Event()
    threads, per_thread = 8, 50
    results: list[Committed] = []
    lock = threading.Lock()

    def writer(t: int) -> None:
        gate_open.wait()
        for n in range(per_thread):
            committed = put(store, "load", f"t{t}", n)
            with lock:
                results.append(committed)

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    gate_open.set()
    for w in workers:
        w.join()
    assert sorted(c.rev for c in results) == list(range(1, threads * per_thread + 1))
    transactions = len({c.ts_ms for c in results})
    assert transactions < threads * per_thread


def test_periodic_maintenance_follows_the_injected_clock(
    opened: Callable[..., SQLiteStore],
) -> None:
    clock = ManualClock()
    store = opened(clock=clock, history_retention_s=50, maintenance_interval_s=10)
    for i in range(5):
        put(store, "apps", f"k{i}", i)  # revisions 1-5 at t0
    assert store.compacted_rev == 0
    clock.advance(100)  # the interval elapsed; revisions 1-5 are past the retention
    put(store, "apps", "k5", 5)  # maintenance runs on the committer after this batch
    put(store, "apps", "k6", 6)  # ...and before this one
    assert store.compacted_rev == 5
    assert must_get(store, "apps", "k0", rev=5).json() == 0
    store.verify_chain()


# -- a process that dies without closing -----------------------------------------------------

_WRITER = textwrap.dedent(
    """
    import sys
    from statesync import Command, Put, SQLiteStore
    store = SQLiteStore(sys.argv[1])
    for i in range(1_000_000):
        committed = store.commit(Command([Put("crash", f"k{i % 7}", {"i": i})]))
        print(committed.rev, flush=True)
    """
)


@pytest.mark.timeout(120)
def test_acknowledged_commits_survive_sigkill(db: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(db)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert writer.stdout is not None
        acknowledged = [int(writer.stdout.readline()) for _ in range(150)]
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=60)
    assert acknowledged == list(range(1, 151))
    store = SQLiteStore(db)  # the lock died with the process
    try:
        assert store.head_rev >= acknowledged[-1]
        changes = all_changes(store, page=100)
        assert [c.rev for c in changes] == list(range(1, store.head_rev + 1))
        assert all(c.op is ChangeOp.PUT for c in changes)
        latest = {c.key: c.value for c in changes}
        assert {r.key: r.value for r in range_all(store, "crash", page=100)} == latest
        assert store.digest("crash") == digest_of(range_all(store, "crash"))
        store.verify_chain()
        assert put(store, "crash", "after", 1).rev == store.head_rev
    finally:
        store.close()
