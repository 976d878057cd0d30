"""Sync and WaitApplied served by the data plane's sync hub, with real Python
workers against a real controller on a free port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from statesync.client import Client
from statesync.testing.controller import RunningController
from statesync.worker import Worker


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningController]:
    # One snapshot slot: empty workers connecting together queue for it.
    running = RunningController(tmp_path / "controller", bootstrap_slots=1)
    yield running
    running.stop()


@pytest.fixture
def client(server: RunningController) -> Iterator[Client]:
    with Client(server.address) as c:
        yield c


def state_of(client: Client, ns: str) -> dict[str, object]:
    return {r.key: orjson.loads(r.value) for r in client.range(ns)}


def test_workers_bootstrap_follow_and_resume_from_the_hub(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    big = "x" * 2000
    for i in range(300):
        client.put("routes", f"k{i:03}", {"i": i, "pad": big})
    workers = [
        Worker(
            server.address, worker_id=f"w{n}", namespaces=["routes"], state_dir=tmp_path / f"w{n}"
        )
        for n in range(4)
    ]
    for worker in workers:
        worker.start()
    try:
        head = client.put("routes", "k000", {"i": -1}).rev
        done = client.wait_applied(head, namespaces=["routes"], timeout=60)
        assert sorted(done.applied) == ["w0", "w1", "w2", "w3"], done
        expected = state_of(client, "routes")
        for worker in workers:
            assert worker.list("routes") == expected
        status = {w.worker_id: w for w in client.status().workers}
        assert sorted(status) == ["w0", "w1", "w2", "w3"]
        for shown in status.values():
            assert (shown.state, shown.applied_rev, shown.connected) == ("TAILING", head, True)
            assert shown.resyncs == 1
            assert shown.peer.startswith("ipv4:127.0.0.1:")
        # A worker that stops resumes from its replica: no second snapshot.
        workers[0].stop()
        rev = client.delete("routes", "k001").rev
        workers[0] = Worker(
            server.address, worker_id="w0", namespaces=["routes"], state_dir=tmp_path / "w0"
        )
        workers[0].start()
        assert client.wait_applied(rev, workers=["w0"], timeout=60).applied == ["w0"]
        assert workers[0].get("routes", "k001") is None
        shown = next(w for w in client.status().workers if w.worker_id == "w0")
        assert (shown.resyncs, shown.digest) == (1, "agree")
    finally:
        for worker in workers:
            worker.stop()


def test_wait_applied_names_the_workers_still_pending(
    server: RunningController, client: Client, tmp_path: Path
) -> None:
    rev = client.put("routes", "a", 1).rev
    pending = client.wait_applied(rev, workers=["nobody"], timeout=0.05)
    assert [p.worker_id for p in pending.pending] == ["nobody"]
    assert pending.pending[0].state == "UNKNOWN"
    stopped = threading.Event()
    worker = Worker(
        server.address, worker_id="w1", namespaces=["routes"], state_dir=tmp_path / "w1"
    )
    worker.on_change(lambda _event: stopped.set())
    with worker:
        assert client.wait_applied(rev, workers=["w1"], timeout=60).applied == ["w1"]
    assert stopped.is_set()
