"""`statesync reconcile`: a full check now, with what it found and fixed."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import cli

from statesync.client import Client
from statesync.server import SyncSettings
from statesync.testing.controller import RunningController
from statesync.worker import Worker
from statesync.worker.replica import Entry


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningController]:
    # Rare progress notices: idle workers ACK (and are checked) only when asked to.
    quiet = SyncSettings(heartbeat_s=30.0, silence_s=60.0, window=64)
    running = RunningController(tmp_path / "controller", sync=quiet)
    yield running
    running.stop()


def test_reconcile_finds_and_repairs_drift_made_behind_the_workers_back(
    server: RunningController, tmp_path: Path
) -> None:
    with Client(server.address) as client:
        for i in range(300):
            rev = client.put("app", f"k{i}", {"i": i}).rev
        good = Worker(
            server.address, worker_id="good", namespaces=["app"], state_dir=tmp_path / "g"
        )
        bad = Worker(server.address, worker_id="bad", namespaces=["app"], state_dir=tmp_path / "b")
        with good, bad:
            assert good.wait_for(rev, 10) and bad.wait_for(rev, 10)
            # Edit only once the controller has both ACKs: an ACK sent after the edit
            # would have the drift found and repaired before `reconcile` is asked.
            assert client.wait_applied(rev, workers=["good", "bad"], timeout=10).complete
            # Someone edits the replica by hand (through the replica: it stays self-consistent).
            edited = b'{"i":"edited"}'
            entry = Entry(edited, 1, rev, 1, hashlib.sha256(edited).digest())
            bad.replica.apply(rev, [("app", "k7", entry)], [("app", "k8")], [])
            run = cli(server.address, "reconcile", "--timeout", "10")
            assert run.returncode == 0, run.stderr
            lines = {(r["worker"], r["ns"]): r for r in map(json.loads, run.stdout.splitlines())}
            assert lines[("good", "app")]["outcome"] == "no drift"
            assert lines[("good", "app")]["round_trips"] == 1
            fixed = lines[("bad", "app")]
            assert fixed["outcome"] == "verified" and sorted(fixed["keys"]) == ["k7", "k8"]
            assert bad.get("app", "k7") == {"i": 7} and bad.get("app", "k8") == {"i": 8}
            one = cli(server.address, "reconcile", "--worker", "bad", "--worker", "ghost")
            assert one.returncode == 8  # the unknown worker did not settle
            outcomes = {
                json.loads(line)["worker"]: json.loads(line)["outcome"]
                for line in one.stdout.splitlines()
            }
            assert outcomes == {"bad": "no drift", "ghost": "unknown worker"}
