"""The Go SDK against a real controller: the Go worker (go/cmd/statesync-go-worker)
bootstraps, follows writes made with the Python client, agrees on digests, and
resumes after SIGKILL without a snapshot; the Go writer client (go/examples/writer)
commits, reads back and gets a compare failure as a typed ConflictError."""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import Cluster, Proc, controller_state, wait_converged, worker_view

from statesync.core.commands import Command, Delete, Put

ROOT = Path(__file__).resolve().parents[2]
GO_DIR = ROOT / "go"
SNAPSHOT_LOG = "replica replaced by a snapshot"


def go_build(package: str, out: Path) -> Path:
    exe = shutil.which("go")
    assert exe, "a Go toolchain (go) is needed for the Go SDK tests"
    result = subprocess.run(
        [exe, "build", "-o", str(out), package],
        cwd=GO_DIR,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture(scope="module")
def go_bin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("go-bin")
    go_build("./cmd/statesync-go-worker", out / "statesync-go-worker")
    go_build("./examples/writer", out / "writer")
    yield out


class GoWorker(Proc):
    def __init__(self, workdir: Path, binary: Path, worker_id: str, address: str) -> None:
        super().__init__(worker_id, workdir)
        self.argv = [
            str(binary),
            "-target",
            address,
            "-id",
            worker_id,
            "-ns",
            "app,flags",
            "-dir",
            str(workdir / f"{worker_id}-state"),
            "-heartbeat",
            "500ms",
            "-deltas",
        ]

    def start(self) -> GoWorker:
        self._spawn(self.argv)
        return self


@pytest.mark.timeout(240, func_only=True)
def test_go_worker_follows_the_controller_and_resumes_after_sigkill(
    cluster: Cluster, tmp_path: Path, go_bin: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    for i in range(40):
        # Values much larger than a one-field patch, so the controller sends deltas.
        value = {"id": i, "name": f"user {i}", "tags": ["a", "b"], "bio": "lorem ipsum " * 30}
        client.put("app", f"user/{i:03d}", value)
    client.put("flags", "beta", True)
    client.put("other", "ignored", 1)  # a namespace the worker does not replicate

    worker = GoWorker(tmp_path, go_bin / "statesync-go-worker", "go-1", controller.address)
    cluster.workers["go-1"] = worker  # type: ignore[assignment]  # cleaned up with the cluster
    worker.start()
    wait_converged(client, ["go-1"], timeout=60)
    assert worker.log().count(SNAPSHOT_LOG) == 1, worker.log()[-3000:]

    # Tailing: puts, a patch (sent as a delta when smaller), deletes, a multi-op command.
    for i in range(0, 40, 3):
        client.patch("app", f"user/{i:03d}", [{"op": "replace", "path": "/name", "value": "x"}])
    for i in range(1, 40, 7):
        client.delete("app", f"user/{i:03d}")
    client.put("flags", "beta", False)
    client.put("flags", "new", {"rollout": 0.25})
    status = wait_converged(client, ["go-1"], timeout=60)
    view = worker_view(status, "go-1")
    assert view.applied_rev == status.head_rev and view.digest == "agree"
    assert view.nacks == 0 and not view.held
    resyncs_before = view.resyncs

    # SIGKILL, write while it is down, restart: it resumes from its replica.
    worker.kill()
    for i in range(40, 50):
        client.put("app", f"user/{i:03d}", {"id": i})
    client.delete("flags", "new")
    worker.start()
    worker.wait_log(r'"msg":"worker started","rev":[1-9]', timeout=30)
    status = wait_converged(client, ["go-1"], timeout=60)
    view = worker_view(status, "go-1")
    assert view.digest == "agree" and view.applied_rev == status.head_rev
    assert SNAPSHOT_LOG not in worker.log(), "the restarted worker bootstrapped again"
    assert view.resyncs == resyncs_before
    expected = controller_state(client, ["app", "flags"])
    assert len(expected["app"]) == 50 - len(range(1, 40, 7))
    assert expected["flags"] == {"beta": False}


@pytest.mark.timeout(180, func_only=True)
def test_go_writer_client_against_the_controller(cluster: Cluster, go_bin: Path) -> None:
    controller = cluster.start_controller()
    result = subprocess.run(
        [str(go_bin / "writer"), "-target", controller.address, "-ns", "app", "-key", "greeting"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    rev = report["put_rev"]
    assert rev >= 1
    assert report["get_value"] == '{"from":"go","n":1}'
    assert report["get_mod_rev"] == rev
    conflict = report["conflict"]
    assert conflict["code"] == "ConflictError" and conflict["retryable"] is False
    assert conflict["failed"] == [
        {
            "namespace": "app",
            "key": "greeting",
            "expected": f"mod_rev == {rev - 1}",
            "actual_mod_rev": rev,
        }
    ]
    assert report["replayed"] is True and report["replay_rev"] == rev
    assert report["missing_is_not_found"] is True
    assert report["range_keys"] == 1 and report["range_rev"] == rev

    # Read back with the Python client: exactly the Go writer's value, written once.
    client = controller.client()
    record = client.get("app", "greeting")
    assert record is not None and json.loads(record.value) == {"from": "go", "n": 1}
    assert record.mod_rev == rev and client.status().head_rev == rev


@pytest.mark.timeout(240, func_only=True)
def test_go_worker_nacks_a_value_its_schema_refuses_and_keeps_the_last_good_one(
    cluster: Cluster, tmp_path: Path, go_bin: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    schema = tmp_path / "app.schema.json"
    schema.write_text(
        json.dumps({"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}})
    )
    worker = GoWorker(tmp_path, go_bin / "statesync-go-worker", "go-2", controller.address)
    worker.argv += ["-schema", f"app={schema}"]
    cluster.workers["go-2"] = worker  # type: ignore[assignment]  # cleaned up with the cluster
    worker.start()
    client.put("app", "k", {"n": 5})
    wait_converged(client, ["go-2"], timeout=60)

    refused = client.put("app", "k", {"n": 99})  # the controller has no schema: it accepts
    status = wait_converged(client, ["go-2"], timeout=60)  # digests agree with the key held
    view = worker_view(status, "go-2")
    assert view.state == "NACKED" and view.nacks == 1
    [held] = view.held
    assert (held.ns, held.key, held.rev) == ("app", "k", refused.rev)
    assert "schema" in held.reason
    assert held.held_hash == hashlib.sha256(b'{"n":5}').digest(), "the last good value was not kept"

    # The hold survives a restart: the new stream's hello repeats it.
    worker.kill()
    worker.start()
    worker.wait_log(r'"msg":"connected"', timeout=30)
    status = wait_converged(client, ["go-2"], timeout=60)
    assert [h.key for h in worker_view(status, "go-2").held] == ["k"]

    client.put("app", "k", {"n": 7})  # a later valid value releases the hold
    status = wait_converged(client, ["go-2"], timeout=60)
    view = worker_view(status, "go-2")
    assert not view.held and view.state != "NACKED"


@pytest.mark.timeout(240, func_only=True)
def test_go_worker_away_past_compaction_is_repaired_by_digest_descent(
    cluster: Cluster, tmp_path: Path, go_bin: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}})
    client = controller.client()
    # 300 keys: more than a leaf list holds, so the descent goes below the root.
    client.commit(Command([Put("app", f"k{i:03d}", {"v": i}) for i in range(300)]))
    worker = GoWorker(tmp_path, go_bin / "statesync-go-worker", "go-3", controller.address)
    cluster.workers["go-3"] = worker  # type: ignore[assignment]  # cleaned up with the cluster
    worker.start()
    wait_converged(client, ["go-3"], timeout=60)
    worker.kill()

    # While it is away: updates, deletes and new keys; then history is compacted.
    client.commit(Command([Put("app", f"k{i:03d}", {"v": i, "gen": 1}) for i in range(0, 20)]))
    client.commit(Command([Delete("app", f"k{i:03d}") for i in range(100, 110)]))
    client.commit(Command([Put("app", f"n{i:03d}", {"new": i}) for i in range(5)]))
    head = client.status().head_rev
    assert client.compact(head) == head
    repaired_before = worker_view(client.status(), "go-3").keys_repaired

    worker.start()
    worker.wait_log(r'"msg":"connected"', timeout=30)
    status = wait_converged(client, ["go-3"], timeout=60)
    assert status.head_rev == head
    view = worker_view(status, "go-3")
    assert view.keys_repaired - repaired_before == 20 + 10 + 5
    assert view.divergences >= 1
    assert SNAPSHOT_LOG not in worker.log(), "the returning worker was sent a snapshot"
    assert "reconciling instead of a snapshot" in controller.log()


CONTRACTS = ROOT / "examples" / "contracts"


def dump(go_bin: Path, worker: GoWorker) -> dict[str, Any]:
    state_dir = worker.argv[worker.argv.index("-dir") + 1]
    out = subprocess.run(
        [str(go_bin / "statesync-go-worker"), "-dump", "-dir", state_dir],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = json.loads(out.stdout)
    return result


@pytest.mark.timeout(240, func_only=True)
def test_go_workers_are_served_the_schema_version_they_declare(
    cluster: Cluster, tmp_path: Path, go_bin: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}})
    client = controller.client()
    v1, v2 = (json.loads((CONTRACTS / f"orders.v{n}.json").read_text()) for n in (1, 2))
    translation = json.loads((CONTRACTS / "orders.v1-v2.json").read_text())
    client.register_schema("orders", v1)
    client.put("orders", "o-1", {"item": "apple", "qty": 1})
    client.register_schema("orders", v2, translation=translation)
    workers = {}
    for wid, versions in {"go-old": "orders=1", "go-new": "orders=1,2"}.items():
        w = GoWorker(tmp_path, go_bin / "statesync-go-worker", wid, controller.address)
        w.argv[w.argv.index("-ns") + 1] = "orders"
        w.argv += ["-versions", versions]
        cluster.workers[wid] = w  # type: ignore[assignment]  # cleaned up with the cluster
        workers[wid] = w.start()
    client.put("orders", "o-2", {"item": "pear", "qty": 2, "priority": "express"})
    client.put("orders", "o-3", {"item": "fig", "qty": 3}, schema_version=1)
    status = wait_converged(client, list(workers), timeout=60)  # source hashes: digests agree
    for wid, served in {"go-old": 1, "go-new": 2}.items():
        view = worker_view(status, wid)
        assert [(s.ns, list(s.versions)) for s in view.served] == [("orders", [served])], view
        assert view.nacks == 0 and not view.held

    for w in workers.values():
        assert w.terminate() == 0, w.log()[-2000:]
    old = dump(go_bin, workers["go-old"])["namespaces"]["orders"]
    new = dump(go_bin, workers["go-new"])["namespaces"]["orders"]
    assert old == {
        "o-1": {"item": "apple", "qty": 1},
        "o-2": {"item": "pear", "qty": 2},
        "o-3": {"item": "fig", "qty": 3},
    }
    assert new == {
        "o-1": {"item": "apple", "qty": 1, "priority": "standard"},
        "o-2": {"item": "pear", "qty": 2, "priority": "express"},
        "o-3": {"item": "fig", "qty": 3, "priority": "standard"},
    }


@pytest.mark.timeout(240, func_only=True)
def test_go_worker_reconnects_after_a_controller_restart(
    cluster: Cluster, tmp_path: Path, go_bin: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    client.put("app", "before", 1)
    worker = GoWorker(tmp_path, go_bin / "statesync-go-worker", "go-4", controller.address)
    cluster.workers["go-4"] = worker  # type: ignore[assignment]  # cleaned up with the cluster
    worker.start()
    wait_converged(client, ["go-4"], timeout=60)
    client.close()

    assert controller.terminate() == 0
    controller.start()
    client = controller.client()
    rev = client.put("app", "after", 2).rev
    status = wait_converged(client, ["go-4"], timeout=60)
    assert status.head_rev == rev
    assert worker.running, "the worker gave up when the controller went away"
    assert worker.log().count(SNAPSHOT_LOG) == 1, "the worker bootstrapped again"
    assert worker.log().count('"msg":"connected"') >= 2


@pytest.mark.timeout(240, func_only=True)
def test_go_worker_that_falls_out_of_the_sync_buffer_is_reconciled(
    cluster: Cluster, tmp_path: Path, go_bin: Path
) -> None:
    controller = cluster.start_controller(
        {"feed_revisions": 50, "sync": {"heartbeat_s": 0.5, "silence_s": 60.0, "window": 20}}
    )
    client = controller.client()
    client.put("app", "k000", 0)
    worker = GoWorker(tmp_path, go_bin / "statesync-go-worker", "go-5", controller.address)
    worker.argv += ["-stale-after", "60s"]  # so only the controller decides, however slow this is
    cluster.workers["go-5"] = worker  # type: ignore[assignment]  # cleaned up with the cluster
    worker.start()
    wait_converged(client, ["go-5"], timeout=60)

    worker.signal(signal.SIGSTOP)  # it stops reading: its window fills, the feed moves on
    try:
        for i in range(1, 150):
            client.put("app", f"k{i % 40:03d}", i)
        client.delete("app", "k000")
    finally:
        worker.signal(signal.SIGCONT)
    # The controller moves it to the head keeping its replica, and digest descent
    # repairs exactly the keys that changed while it was stuck.
    status = wait_converged(client, ["go-5"], timeout=60)
    assert "fell behind the sync buffer" in controller.log()
    assert worker_view(status, "go-5").keys_repaired == 40  # k001..k039 changed, k000 deleted
    assert worker.log().count(SNAPSHOT_LOG) == 1, "the replica was replaced, not repaired"
    assert worker.running
