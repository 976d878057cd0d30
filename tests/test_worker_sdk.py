"""The worker SDK against a real controller (in this process, on a free port)."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import orjson
import pytest

import statesync._native as _native
from statesync.client import Client
from statesync.core.canonical import canonical_bytes
from statesync.core.digest import value_hash
from statesync.testing.controller import RunningController
from statesync.v1 import statesync_pb2 as pb
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.worker import ChangeEvent, Reject, Replica, ReplicaCorruptError, Worker
from statesync.worker.replica import REPLICA_FILE, ReplicaInUseError, read_offline


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningController]:
    running = RunningController(tmp_path / "controller")
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningController) -> Iterator[Client]:
    with Client(server.address) as c:
        yield c


def state_of(client: Client, ns: str) -> dict[str, object]:
    return {r.key: orjson.loads(r.value) for r in client.range(ns)}


def test_a_worker_follows_writes_in_order_and_resumes_from_its_checkpoint(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    for i in range(30):
        client.put("routes", f"k{i}", {"i": i})
    events: list[ChangeEvent] = []
    worker = Worker(
        server.address, worker_id="w1", namespaces=["routes"], state_dir=tmp_path / "w1"
    )
    worker.on_change(events.append)
    with worker:
        assert worker.wait_for(30, 10)  # bootstrapped
        rev = client.delete("routes", "k3").rev
        rev = client.patch("routes", "k4", [{"op": "add", "path": "/x", "value": 1}]).rev
        assert worker.wait_for(rev, 10)
        assert worker.list("routes") == state_of(client, "routes")
        assert worker.get("routes", "k4") == {"i": 4, "x": 1}
    assert [e.op for e in events[-2:]] == ["delete", "put"]
    assert events[-1].command_id  # handlers get the writer's idempotency key
    for i in range(5):
        rev = client.put("routes", f"late{i}", i).rev
    resumed = Worker(
        server.address, worker_id="w1", namespaces=["routes"], state_dir=tmp_path / "w1"
    )
    assert resumed.applied_rev > 0
    with resumed:
        assert resumed.wait_for(rev, 10)
        assert resumed.resyncs == 0  # resumed from its revision: no snapshot
        assert resumed.list("routes") == state_of(client, "routes")
    dump = read_offline(tmp_path / "w1")
    assert dump["applied_rev"] == rev and dump["worker_id"] == "w1"


def test_wait_applied_names_the_workers_that_did_and_did_not_apply(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    with Worker(server.address, worker_id="fast", namespaces=["a"], state_dir=tmp_path / "f"):
        # A namespace names the workers the controller knows: wait until it knows this one.
        wait_status(client, lambda w: w.worker_id == "fast" and w.connected)
        rev = client.put("a", "k", 1).rev
        result = client.wait_applied(rev, namespaces=["a"], timeout=10)
        assert result.complete and result.applied == ["fast"]
        result = client.wait_applied(rev, workers=["fast", "ghost"], timeout=0.5)
        assert not result.complete
        assert [p.worker_id for p in result.pending] == ["ghost"]


def test_a_rejected_change_is_nacked_held_and_released_by_the_next_good_value(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    def validator(ns: str, key: str, value: object) -> None:
        if isinstance(value, dict) and value.get("port", 0) > 65535:
            raise Reject("port out of range")

    client.put("svc", "web", {"port": 80})
    with Worker(
        server.address,
        worker_id="w",
        namespaces=["svc"],
        state_dir=tmp_path / "w",
        validator=validator,
    ) as worker:
        assert worker.wait_for(1, 10)
        bad = client.put("svc", "web", {"port": 70000}).rev
        other = client.put("svc", "api", {"port": 81}).rev
        assert worker.wait_for(other, 10)
        assert worker.get("svc", "web") == {"port": 80}  # the last good value is kept
        assert worker.get("svc", "api") == {"port": 81}  # the rest still applies
        status = wait_status(client, lambda w: w.digest == "agree" and w.applied_rev >= other)
        assert status.state == "NACKED" and status.nacks == 1
        assert [(h.ns, h.key, h.rev, h.reason) for h in status.held] == [
            ("svc", "web", bad, "port out of range")
        ]
        good = client.put("svc", "web", {"port": 8080}).rev
        assert worker.wait_for(good, 10)
        assert worker.get("svc", "web") == {"port": 8080}
        status = wait_status(client, lambda w: w.applied_rev >= good and not w.held)
        assert status.state == "TAILING" and status.digest == "agree"


def wait_status(client: Client, ready, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    import time

    deadline = time.monotonic() + timeout
    while True:
        workers = client.status().workers
        if workers and ready(workers[0]):
            return workers[0]
        assert time.monotonic() < deadline, f"status never became ready: {workers}"
        time.sleep(0.05)


def test_a_snapshot_is_validated_too(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    client.put("svc", "ok", {"port": 1})
    rev = client.put("svc", "bad", {"port": 70000}).rev

    def validator(ns: str, key: str, value: object) -> None:
        if isinstance(value, dict) and value.get("port", 0) > 65535:
            raise Reject("port out of range")

    with Worker(
        server.address,
        worker_id="v",
        namespaces=["svc"],
        state_dir=tmp_path / "v",
        validator=validator,
    ) as worker:
        assert worker.wait_for(rev, 10)
        assert worker.list("svc") == {"ok": {"port": 1}}
        status = wait_status(client, lambda w: w.applied_rev >= rev and w.digest != "unknown")
        assert status.digest == "agree" and [h.key for h in status.held] == ["bad"]


def test_deltas_carry_patches_and_end_equal(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    base = client.put("cfg", "big", {"items": list(range(300)), "name": "a"}).rev
    with Worker(
        server.address, worker_id="d", namespaces=["cfg"], state_dir=tmp_path / "d", deltas=True
    ) as worker:
        for i in range(10):
            rev = client.patch("cfg", "big", [{"op": "replace", "path": "/name", "value": i}]).rev
        assert worker.wait_for(rev, 10)
        assert worker.get("cfg", "big") == state_of(client, "cfg")["big"]
        assert worker.resyncs == 1  # the bootstrap only
    # The updates went out as patches: a stream asking for deltas from the base gets
    # each one as a patch and no value.
    outbox: queue.Queue[pb.SyncRequest | None] = queue.Queue()
    outbox.put(
        pb.SyncRequest(
            hello=pb.Hello(worker_id="d2", namespaces=["cfg"], from_rev=base, deltas=True)
        )
    )
    with grpc.insecure_channel(server.address) as channel:
        replies = pb_grpc.StatesyncStub(channel).Sync(iter(outbox.get, None))
        batch = next(r.batch for r in replies if r.WhichOneof("msg") == "batch")
        outbox.put(None)
    changes = [c for r in batch.revisions for c in r.changes]
    assert changes and all(c.patch and not c.value for c in changes), batch


def test_a_handler_failure_is_retried_never_skipped(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    failures = {"left": 2}
    seen: list[int] = []

    def handler(event: ChangeEvent) -> None:
        if event.key == "flaky" and failures["left"]:
            failures["left"] -= 1
            raise RuntimeError("downstream is down")
        seen.append(event.rev)

    warmup = client.put("jobs", "warmup", 0).rev
    with Worker(
        server.address,
        worker_id="h",
        namespaces=["jobs"],
        state_dir=tmp_path / "h",
        handler=handler,
    ) as worker:
        # Bootstrapped first, so the next two arrive as changes of their own
        # revisions (commits no longer queue behind the worker's hello).
        assert worker.wait_for(warmup, 20)
        first = client.put("jobs", "flaky", 1).rev
        second = client.put("jobs", "next", 2).rev
        assert worker.wait_for(second, 20)
    assert failures["left"] == 0
    assert seen[-2:] == [first, second]


def test_a_corrupt_state_directory_is_moved_aside_and_resynced(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    rev = client.put("routes", "a", 1).rev
    state = tmp_path / "w"
    with Worker(server.address, worker_id="c", namespaces=["routes"], state_dir=state) as w:
        assert w.wait_for(rev, 10)
    (state / REPLICA_FILE).write_bytes(b"not a database" * 100)
    for extra in ("-wal", "-shm"):
        (state / (REPLICA_FILE + extra)).unlink(missing_ok=True)
    with pytest.raises(ReplicaCorruptError, match="corrupt"):
        Replica(state)
    with Worker(server.address, worker_id="c", namespaces=["routes"], state_dir=state) as w:
        assert w.wait_for(rev, 10)
        assert w.get("routes", "a") == 1
    assert list(tmp_path.glob("w.corrupt-*"))


def test_a_replica_edited_behind_the_workers_back_is_detected(tmp_path: Path) -> None:
    import sqlite3

    replica = Replica(tmp_path / "r", worker_id="x")
    from statesync.worker.replica import Entry

    value = canonical_bytes({"a": 1})
    replica.apply(3, [("ns", "k", Entry(value, 3, 3, 1, value_hash(value)))], [], [])
    replica.close()
    conn = sqlite3.connect(tmp_path / "r" / REPLICA_FILE)
    edited = canonical_bytes({"a": 2})  # value and hash edited together: only the digest knows
    conn.execute("UPDATE kv SET value = ?, vhash = ?", (edited, value_hash(edited)))
    conn.commit()
    conn.close()
    with pytest.raises(ReplicaCorruptError, match="do not match the recorded digest"):
        Replica(tmp_path / "r")


def test_one_state_directory_serves_one_worker(tmp_path: Path) -> None:
    first = Replica(tmp_path / "r")
    try:
        with pytest.raises(ReplicaInUseError):
            Replica(tmp_path / "r")
    finally:
        first.close()


def until(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll `condition` until it holds or `timeout` passes (for state with no event)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.05)
    return True


def test_a_worker_that_fell_behind_the_buffer_is_reconciled(tmp_path: Path) -> None:
    server = RunningController(tmp_path / "ctl", feed_revisions=20)
    try:
        with Client(server.address) as client:
            gate = threading.Event()

            def slow(event: ChangeEvent) -> None:
                if not event.snapshot:
                    gate.wait(10)

            client.put("q", "seed", 0)
            worker = Worker(
                server.address,
                worker_id="slow",
                namespaces=["q"],
                state_dir=tmp_path / "s",
                handler=slow,
            )
            with worker:
                assert worker.wait_for(1, 10)
                for i in range(200):
                    rev = client.put("q", f"k{i % 50}", i).rev
                gate.set()
                assert worker.wait_for(rev, 30)
                # It moved to the head keeping its replica; descent repairs what it lacks.
                assert until(lambda: worker.list("q") == state_of(client, "q"), 30)
                assert worker.resyncs == 1  # only the bootstrap: no second snapshot
                assert worker.repairs > 0

                def verified() -> bool:
                    status = next(w for w in client.status().workers if w.worker_id == "slow")
                    return any(r.outcome == "verified" for r in status.repairs)

                assert until(verified, 10)
                status = next(w for w in client.status().workers if w.worker_id == "slow")
                assert status.keys_repaired == worker.repairs and status.divergences >= 1
    finally:
        server.stop()


def test_a_delta_on_the_wrong_base_is_caught() -> None:
    new = canonical_bytes({"a": 2, "pad": "x" * 50})
    delta = b'[{"op":"replace","path":"/a","value":2}]'  # from {"a": 1, "pad": "x" * 50}
    wrong = canonical_bytes({"a": 5, "pad": "y" * 50})
    with pytest.raises(_native.DeltaMismatch):
        _native.apply_delta(wrong, delta, value_hash(new))


def test_a_replica_holding_a_refused_delete_reopens_with_the_same_digest(tmp_path: Path) -> None:
    from statesync.worker.replica import Entry, HeldKey

    value = b'{"a":1}'
    entry = Entry(value, 1, 1, 1, value_hash(value))
    replica = Replica(tmp_path / "r")
    replica.apply(1, [("ns", "k", entry), ("ns", "j", entry)], [], [])
    replica.apply(2, [], [], [(HeldKey("ns", "k", 2, "refused a delete"), b"")])
    root, leaves = replica.digest("ns").root(), replica.leaves("ns", "")
    replica.close()
    reopened = Replica(tmp_path / "r")  # used to be declared corrupt: digests disagreed
    try:
        assert reopened.digest("ns").root() == root
        assert reopened.leaves("ns", "") == leaves == {"j": value_hash(value)}
    finally:
        reopened.close()
