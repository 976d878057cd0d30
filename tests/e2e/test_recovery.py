"""Scenarios 2 and 5: a worker that cannot tail the log.

- Compaction: a worker is stopped (SIGTERM, exit 0), writes go on, history
  is compacted through the head; the restarted worker's revision is compacted,
  so it keeps its replica, moves to the head and is reconciled (no snapshot),
  and ends equal.
- Corrupt state directory: the replica file is overwritten, truncated or
  edited (also a value changed under its intact stored hash); the restarted
  worker notices, moves the directory aside, resyncs from a snapshot and
  ends equal.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from e2e_helpers import (
    Cluster,
    Writer,
    assert_acks_present,
    assert_replica_equals,
    wait_converged,
    worker_view,
)

NAMESPACES = ("a", "b", "c")
BEFORE, DURING, AFTER = 400, 400, 300  # writes before the stop, while stopped, while restarting
SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}}


def test_compacted_worker_is_reconciled_not_re_listed(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    stopped = cluster.start_worker("stopped", ("a", "b"))
    other = cluster.start_worker("other", ("b", "c"))
    stopped.wait_connected()
    other.wait_connected()
    client = controller.client()

    first = Writer(controller.address, NAMESPACES, BEFORE, keys_per_ns=80, seed=21, prefix="p1")
    first.start()
    first.join_ok(120)
    wait_converged(client, ["stopped", "other"])

    assert stopped.terminate() == 0, "SIGTERM should stop a worker cleanly"
    assert "stopped at revision" in stopped.log()
    left_at = stopped.dump()["applied_rev"]
    assert left_at == first.acks[-1].rev

    second = Writer(
        controller.address, NAMESPACES, DURING, keys_per_ns=80, seed=22, prefix="p2",
        model=first.model,
    )  # fmt: skip
    second.start()
    second.join_ok(120)
    head = client.status().head_rev
    assert client.compact(head) == head
    assert client.status().compacted_rev == head

    # Restart while a third writer keeps committing: reconcile, then tail.
    third = Writer(
        controller.address, NAMESPACES, AFTER, keys_per_ns=80, seed=23, prefix="p3",
        rate=150, model=first.model,
    )  # fmt: skip
    third.start()
    stopped.start()
    assert stopped.wait_connected() == left_at, "it should ask to resume from its replica"
    m = stopped.wait_log(r"moving from revision (\d+) to (\d+), keeping the replica: (.*)", 30)
    assert int(m.group(1)) == left_at and int(m.group(2)) >= head
    assert "compacted" in m.group(3)
    third.join_ok(120)

    status = wait_converged(client, ["stopped", "other"])
    assert "replica replaced by the snapshot" not in stopped.log()
    returned = worker_view(status, "stopped")
    assert returned.resyncs == 0 and returned.keys_repaired > 0
    assert worker_view(status, "other").resyncs == 0
    assert "compacted" in controller.log()
    for worker in (stopped, other):
        assert_replica_equals(client, worker, status.head_rev)
    assert_acks_present(client, first, second, third)
    # Command ids outlive compaction: a retry of a compacted command is still a replay.
    for ack in first.acks[:10] + second.acks[-10:]:
        again = ack.resend(client)
        assert again.replayed and again.rev == ack.rev, (ack, again)
    client.close()


def _garbage(path: Path) -> None:
    size = path.stat().st_size
    path.write_bytes(os.urandom(max(size, 8192)))


def _truncated(path: Path) -> None:
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


def _header_zeroed(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(b"\0" * 100)


def _edited_with_hashes(path: Path) -> None:
    """A consistent edit (value and its hash) that skipped the recorded digest."""
    import hashlib

    conn = sqlite3.connect(path)
    ns, key = conn.execute("SELECT ns, key FROM kv ORDER BY ns, key LIMIT 1").fetchone()
    value = b'{"edited":true}'
    conn.execute(
        "UPDATE kv SET value = ?, vhash = ? WHERE ns = ? AND key = ?",
        (value, hashlib.sha256(value).digest(), ns, key),
    )
    conn.commit()
    conn.close()


CORRUPTIONS = {
    "garbage": _garbage,
    "truncated": _truncated,
    "header-zeroed": _header_zeroed,
    "edited": _edited_with_hashes,
}


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_corrupt_replica_is_moved_aside_and_resynced(cluster: Cluster, corruption: str) -> None:
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("victim", ("a", "b"))
    worker.wait_connected()
    client = controller.client()

    first = Writer(controller.address, NAMESPACES, 400, keys_per_ns=150, seed=31, pad=400)
    first.start()
    first.join_ok(120)
    wait_converged(client, ["victim"])
    assert worker.terminate() == 0

    replica = worker.state_dir / "replica.sqlite"
    for suffix in ("-wal", "-shm"):
        Path(f"{replica}{suffix}").unlink(missing_ok=True)
    CORRUPTIONS[corruption](replica)

    second = Writer(
        controller.address, NAMESPACES, 100, keys_per_ns=150, seed=32, prefix="p2",
        model=first.model,
    )  # fmt: skip
    second.start()
    second.join_ok(120)

    worker.start()
    worker.wait_log(r"replica .* is corrupt: .*moved it to", 30)
    assert worker.wait_connected() == 0, "a fresh replica starts at revision 0"
    worker.wait_log(r"resync at revision \d+", 30)
    status = wait_converged(client, ["victim"])
    assert worker_view(status, "victim").resyncs == 1
    assert_replica_equals(client, worker, status.head_rev)
    assert_acks_present(client, first, second)
    aside = [p for p in worker.workdir.iterdir() if p.name.startswith("victim-state.corrupt-")]
    assert len(aside) == 1, "the corrupt state directory is kept aside for inspection"
    client.close()


def test_rotted_value_under_intact_hash_is_detected(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("rot", ("a",))
    worker.wait_connected()
    client = controller.client()
    for i in range(20):
        client.put("a", f"k{i:02d}", {"i": i})
    wait_converged(client, ["rot"])
    assert worker.terminate() == 0

    # The value column of one key changes on disk; its stored hash does not.
    conn = sqlite3.connect(worker.state_dir / "replica.sqlite")
    conn.execute("UPDATE kv SET value = ? WHERE ns = 'a' AND key = 'k07'", (b'{"i":666}',))
    conn.commit()
    conn.close()

    worker.start()
    worker.wait_log(r"replica .* is corrupt: .*k07.*moved it to", 30)
    assert worker.wait_connected() == 0
    worker.wait_log(r"resync at revision \d+", 30)
    status = wait_converged(client, ["rot"])
    assert_replica_equals(client, worker, status.head_rev)
    client.close()


def test_a_worker_ahead_of_a_restored_controller_converges(cluster: Cluster) -> None:
    """The controller is restored from an older copy of its data (its head goes
    back): a worker whose replica is from after that head is resynced from a
    snapshot, drops the keys the controller no longer has, and ends equal."""
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("ahead", ("a",))
    worker.wait_connected()
    client = controller.client()
    first = Writer(controller.address, ("a",), 60, keys_per_ns=30, seed=31, prefix="r1")
    first.start()
    first.join_ok(60)
    wait_converged(client, ["ahead"])
    client.close()
    assert controller.terminate() == 0
    backup = controller.workdir / "controller-backup"
    shutil.copytree(controller.data, backup)
    restored_head = first.acks[-1].rev

    controller.start()
    client = controller.client()
    for i in range(20):  # keys the restored copy will not have
        client.put("a", f"later-{i}", i)
    wait_converged(client, ["ahead"])
    assert worker.dump()["applied_rev"] > restored_head
    client.close()
    assert controller.terminate() == 0
    shutil.rmtree(controller.data)
    shutil.copytree(backup, controller.data)

    controller.start()
    client = controller.client()
    assert client.status().head_rev == restored_head
    status = wait_converged(client, ["ahead"])
    assert worker_view(status, "ahead").resyncs >= 1
    assert_replica_equals(client, worker, restored_head)
    assert "after the controller's head" in controller.log()
