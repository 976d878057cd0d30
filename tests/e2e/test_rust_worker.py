"""The Rust worker SDK against a real controller.

The example binary of crates/worker (`examples/worker.rs`) runs as a worker
process of a real `controller.py` controller; the Python client writes puts,
patches and deletes in several namespaces. The controller's own status is the
judge: the Rust worker reaches the head with its digests agreeing (with full
values and with deltas), resumes from its replica after SIGKILL (no snapshot:
the controller counts resyncs), follows a controller restart, shows as NACKED
with the key it refuses, is served the schema version it declares, NACKs and
holds a value its local schema refuses until a later good put, holds a value
the registered schema of the version it is served in refuses (a version
registered while it runs), and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from e2e_helpers import (
    Cluster,
    Proc,
    WorkerProc,
    Writer,
    assert_replica_equals,
    controller_state,
    wait_converged,
    wait_until,
    worker_view,
)

# The build fixtures (cargo or go build, bounded by their own timeout) are not counted
# in a test's time: on a loaded machine a cold build takes longer than any test.
pytestmark = pytest.mark.timeout(300, func_only=True)

ROOT = Path(__file__).resolve().parents[2]
NAMESPACES = ("flags", "jobs", "routes")
CONTRACTS = ROOT / "examples" / "contracts"
CLI = [sys.executable, "-m", "statesync.cli.main"]


@pytest.fixture(scope="session")
def rust_worker_exe() -> Path:
    """Build the example once per session (release, like the Python extension,
    so it reuses the extension's compiled dependencies); cargo says where the
    executable is, wherever CARGO_TARGET_DIR points."""
    cargo = shutil.which("cargo")
    assert cargo, "a Rust toolchain (cargo) is needed to build the Rust worker"
    argv = [cargo, "build", "--release", "--locked", "-p", "statesync-worker"]
    argv += ["--example", "worker", "--message-format", "json-render-diagnostics"]
    built = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=1500)
    assert built.returncode == 0, built.stderr[-6000:]
    for line in built.stdout.splitlines():
        message = json.loads(line)
        target = message.get("target", {})
        example = target.get("name") == "worker" and "example" in target.get("kind", ())
        if message.get("reason") == "compiler-artifact" and example and message.get("executable"):
            return Path(message["executable"])
    raise AssertionError(f"cargo built no worker example:\n{built.stderr[-3000:]}")


class RustWorkerProc(WorkerProc):
    """The Rust example worker; its state directory is a replica like the
    Python worker's, so `dump()` (statesync replica dump) reads it."""

    def __init__(
        self,
        exe: Path,
        workdir: Path,
        worker_id: str,
        namespaces: Sequence[str],
        server: str,
        reject: Sequence[str] = (),
        deltas: bool = False,
        extra: Sequence[str] = (),
        address: str | None = None,
    ) -> None:
        super().__init__(workdir, worker_id, namespaces, server, deltas=deltas)
        self.exe = exe
        self.reject = tuple(reject)
        self.extra = tuple(extra)
        self.address = address or f"http://{server}"

    def argv(self) -> list[str]:
        argv = [str(self.exe), "--address", self.address, "--worker-id"]
        argv += [self.worker_id, "--data-dir", str(self.state_dir)]
        argv += ["--heartbeat", str(self.heartbeat)]
        for ns in self.namespaces:
            argv += ["--namespace", ns]
        for key in self.reject:
            argv += ["--reject-key", key]
        if self.deltas:
            argv.append("--deltas")
        return argv + list(self.extra)


def start_rust_worker(
    cluster: Cluster,
    exe: Path,
    worker_id: str,
    reject: Sequence[str] = (),
    deltas: bool = False,
) -> RustWorkerProc:
    assert cluster.controller is not None
    address = cluster.controller.address
    worker = RustWorkerProc(
        exe, cluster.workdir, worker_id, NAMESPACES, address, reject, deltas=deltas
    )
    cluster.workers[worker_id] = worker
    worker.start()
    return worker


def write(
    cluster: Cluster, count: int, seed: int, model: dict[tuple[str, str], Any] | None = None
) -> Writer:
    """Commit `count` puts, patches and deletes over NAMESPACES; wait for all of them."""
    assert cluster.controller is not None
    writer = Writer(
        cluster.controller.address, NAMESPACES, count, keys_per_ns=15, seed=seed, model=model
    )
    writer.start()
    writer.join_ok(120)
    assert {a.op for a in writer.acks} == {"put", "patch", "delete"}, "not every kind of write"
    return writer


def stopped_cleanly(worker: Proc) -> None:
    assert worker.terminate() == 0, f"{worker.name} did not exit 0 on SIGTERM:\n{worker.log()}"
    assert "stopped" in worker.log().splitlines()


@pytest.mark.parametrize("deltas", [False, True], ids=["values", "deltas"])
def test_rust_worker_converges_and_resumes_after_sigkill(
    cluster: Cluster, rust_worker_exe: Path, deltas: bool
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    first = write(cluster, 60, seed=1)  # before the worker: it bootstraps from a snapshot

    worker = start_rust_worker(cluster, rust_worker_exe, "rust-1", deltas=deltas)
    worker.wait_log(r"origin=Snapshot", 60)
    status = wait_converged(client, ["rust-1"])
    view = worker_view(status, "rust-1")
    assert view.digest == "agree" and view.state == "TAILING" and view.resyncs == 1, view
    bootstrapped_at = status.head_rev

    # Writes stream to it as it runs; SIGKILL it mid-stream (no chance to close anything).
    writer = Writer(
        controller.address, NAMESPACES, 200, keys_per_ns=15, seed=2, rate=100, model=first.model
    )
    writer.start()
    wait_until(
        lambda: worker_view(client.status(), "rust-1").applied_rev > bootstrapped_at + 20,
        60,
        "rust-1 to apply streamed revisions",
    )
    worker.kill()
    assert "origin=Command" in worker.log()
    persisted = worker.dump()["applied_rev"]
    assert persisted > bootstrapped_at + 20
    writer.join_ok(120)
    assert {a.op for a in writer.acks} == {"put", "patch", "delete"}, "not every kind of write"

    worker.start()
    status = wait_converged(client, ["rust-1"])
    # It resumed from its replica's revision, and the controller sent no snapshot.
    controller.wait_log(rf"worker rust-1 connected from \S+ .*from revision {persisted}\b", 10)
    view = worker_view(status, "rust-1")
    assert view.resyncs == 1, f"the restarted worker resynced: {view}"
    restarted = worker.log()
    assert "origin=Snapshot" not in restarted, "the restarted worker was sent a snapshot"
    assert "origin=Command" in restarted, "the restarted worker applied nothing"
    assert_replica_equals(client, worker, status.head_rev)
    assert controller_state(client, NAMESPACES) == writer.expected()

    stopped_cleanly(worker)
    wait_until(
        lambda: not worker_view(client.status(), "rust-1").connected,
        30,
        "the controller to see the worker gone",
    )
    client.close()


def test_rust_worker_nack_shows_in_status(cluster: Cluster, rust_worker_exe: Path) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    client.put("routes", "open", {"port": 80})
    worker = start_rust_worker(cluster, rust_worker_exe, "rust-2", reject=["routes/blocked"])
    wait_converged(client, ["rust-2"])

    refused = client.put("routes", "blocked", {"port": 1})
    client.put("flags", "dark-mode", True)
    client.patch("routes", "open", [{"op": "replace", "path": "/port", "value": 81}])

    def nacked() -> object:
        view = worker_view(client.status(), "rust-2")
        return view if view is not None and view.state == "NACKED" else None

    view = wait_until(nacked, 30, "the controller to show rust-2 NACKED")
    assert [(h.ns, h.key, h.rev) for h in view.held] == [("routes", "blocked", refused.rev)]
    assert "refused by --reject-key" in view.held[0].reason
    assert view.nacks == 1
    # A worker right apart from its reported NACK agrees (its digest counts the
    # controller's value of the held key), and the rest is applied.
    status = wait_converged(client, ["rust-2"])
    assert worker_view(status, "rust-2").state == "NACKED"
    dump = worker.dump()
    assert dump["namespaces"]["routes"] == {"open": {"port": 81}}
    assert dump["namespaces"]["flags"] == {"dark-mode": True}
    assert [(h["ns"], h["key"]) for h in dump["held"]] == [("routes", "blocked")]

    stopped_cleanly(worker)
    client.close()


def test_rust_worker_follows_a_controller_restart(cluster: Cluster, rust_worker_exe: Path) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    first = write(cluster, 40, seed=4)
    worker = start_rust_worker(cluster, rust_worker_exe, "rust-3")
    head = wait_converged(client, ["rust-3"]).head_rev
    client.close()

    controller.kill()  # SIGKILL: the stream breaks without a goodbye
    worker.wait_log(r"connected=false", 30)
    controller.start()  # same port, same data
    client = controller.client()
    write(cluster, 40, seed=5, model=first.model)
    status = wait_converged(client, ["rust-3"])
    controller.wait_log(rf"worker rust-3 connected from \S+ .*from revision {head}\b", 10)
    assert worker_view(status, "rust-3").resyncs == 0, "the worker resynced after a restart"
    assert worker.running and worker.runs == 1, "the worker process did not survive"
    assert_replica_equals(client, worker, status.head_rev)
    stopped_cleanly(worker)
    client.close()


@pytest.mark.timeout(300, func_only=True)
def test_rust_worker_is_served_its_version_and_holds_what_its_schema_refuses(
    cluster: Cluster, rust_worker_exe: Path, tmp_path: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    v1, v2 = (json.loads((CONTRACTS / f"orders.v{n}.json").read_text()) for n in (1, 2))
    translation = json.loads((CONTRACTS / "orders.v1-v2.json").read_text())
    client.register_schema("orders", v1)
    client.put("orders", "o-1", {"item": "apple", "qty": 1})
    client.register_schema("orders", v2, translation=translation)
    # The worker's own v1 schema is stricter than the registry: no member but
    # v1's (a v2 value, with `priority`, would fail) and at most 10 of an item.
    local = dict(v1, additionalProperties=False)
    local["properties"] = {
        **v1["properties"],
        "qty": {"type": "integer", "minimum": 1, "maximum": 10},
    }
    schema_file = tmp_path / "orders.local.json"
    schema_file.write_text(json.dumps(local))
    extra = ["--versions", "orders=1", "--schema", f"orders={schema_file}"]
    assert controller.address.count(":") == 1, "a plain host:port address"
    worker = RustWorkerProc(
        rust_worker_exe, cluster.workdir, "rust-v1", ["orders"], controller.address,
        extra=extra, address=controller.address,
    )  # fmt: skip
    cluster.workers["rust-v1"] = worker
    worker.start()

    client.put("orders", "o-2", {"item": "pear", "qty": 2, "priority": "express"})
    client.put("orders", "o-3", {"item": "fig", "qty": 3}, schema_version=1)
    status = wait_converged(client, ["rust-v1"], timeout=60)  # source hashes: digests agree
    view = worker_view(status, "rust-v1")
    assert [(s.ns, list(s.versions)) for s in view.served] == [("orders", [1])], view
    assert view.nacks == 0 and not view.held, view

    refused = client.put("orders", "o-2", {"item": "pear", "qty": 50})  # the registry accepts it

    def nacked() -> object:
        view = worker_view(client.status(), "rust-v1")
        return view if view is not None and view.state == "NACKED" else None

    wait_until(nacked, 30, "the controller to show rust-v1 NACKED")
    # The NACK names the key; the ACK after it says what the worker kept, and
    # the digests agree only once the controller has heard that ACK.
    status = wait_converged(client, ["rust-v1"], timeout=60)  # right apart from its NACK
    view = worker_view(status, "rust-v1")
    assert view.state == "NACKED" and view.nacks == 1, view
    [held] = view.held
    assert (held.ns, held.key, held.rev) == ("orders", "o-2", refused.rev)
    assert held.reason.startswith(
        "orders/o-2 does not conform to the local schema: /qty fails maximum"
    )
    kept = hashlib.sha256(b'{"item":"pear","qty":2}').digest()  # the v1 value it was served
    assert held.held_hash == kept, "the last good value was not kept"

    shown = subprocess.run(
        [*CLI, "--server", controller.address, "status", "--json"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    [row] = [w for w in json.loads(shown.stdout)["workers"] if w["worker_id"] == "rust-v1"]
    assert row["state"] == "NACKED", row
    assert row["held"] == [
        {"ns": "orders", "key": "o-2", "rev": refused.rev, "reason": held.reason}
    ], row

    client.put("orders", "o-2", {"item": "pear", "qty": 4})  # a good put releases the hold
    status = wait_converged(client, ["rust-v1"], timeout=60)
    view = worker_view(status, "rust-v1")
    assert not view.held and view.state != "NACKED", view

    stopped_cleanly(worker)
    assert worker.dump()["namespaces"]["orders"] == {
        "o-1": {"item": "apple", "qty": 1},
        "o-2": {"item": "pear", "qty": 4},
        "o-3": {"item": "fig", "qty": 3},
    }
    client.close()


@pytest.mark.timeout(300, func_only=True)
def test_rust_worker_holds_a_value_the_registered_schema_of_its_served_version_refuses(
    cluster: Cluster, rust_worker_exe: Path
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    client = controller.client()
    v1, v2 = (json.loads((CONTRACTS / f"orders.v{n}.json").read_text()) for n in (1, 2))
    translation = json.loads((CONTRACTS / "orders.v1-v2.json").read_text())
    client.register_schema("orders", v1)
    client.put("orders", "o-1", {"item": "apple", "qty": 50})
    client.put("orders", "o-2", {"item": "pear", "qty": 2})
    worker = RustWorkerProc(
        rust_worker_exe, cluster.workdir, "rust-reg", ["orders"], controller.address,
        extra=["--versions", "orders=1,2"], address=controller.address,
    )  # fmt: skip
    cluster.workers["rust-reg"] = worker
    worker.start()
    status = wait_converged(client, ["rust-reg"], timeout=60)
    view = worker_view(status, "rust-reg")
    assert [(s.ns, list(s.versions)) for s in view.served] == [("orders", [1])], view
    assert view.nacks == 0 and not view.held, "v1 puts no cap on qty"

    # v2, registered while the worker runs, caps qty at 10: stricter than the
    # stored o-1 (forced past BACKWARD). The controller re-sends the state in v2,
    # a version the worker read no schema for: it reads the contract again.
    strict = dict(v2, properties={**v2["properties"], "qty": {"type": "integer", "maximum": 10}})
    client.register_schema("orders", strict, translation=translation, force=True, reason="cap")

    def nacked() -> object:
        view = worker_view(client.status(), "rust-reg")
        return view if view is not None and view.state == "NACKED" else None

    wait_until(nacked, 60, "the controller to show rust-reg NACKED")
    # What the worker kept arrives in the ACK after the NACK: converged means heard.
    status = wait_converged(client, ["rust-reg"], timeout=60)  # right apart from its NACK
    view = worker_view(status, "rust-reg")
    assert [(s.ns, list(s.versions)) for s in view.served] == [("orders", [2])], view
    [held] = view.held  # o-2 conforms to v2
    assert (held.ns, held.key) == ("orders", "o-1")
    assert held.reason.startswith("orders/o-1 does not conform to schema v2: /qty fails maximum")
    kept = hashlib.sha256(b'{"item":"apple","qty":50}').digest()  # the v1 value it was served
    assert held.held_hash == kept, "the last good value was not kept"

    # The hold survives a restart (read at connect, the contract has v2 now).
    worker.kill()
    worker.start()
    status = wait_converged(client, ["rust-reg"], timeout=60)
    assert [h.key for h in worker_view(status, "rust-reg").held] == ["o-1"]

    client.put("orders", "o-1", {"item": "apple", "qty": 9})  # a good v2 put releases the hold
    status = wait_converged(client, ["rust-reg"], timeout=60)
    view = worker_view(status, "rust-reg")
    assert not view.held and view.state != "NACKED", view

    stopped_cleanly(worker)
    assert worker.dump()["namespaces"]["orders"] == {
        "o-1": {"item": "apple", "qty": 9},  # written in v2: stored as sent
        "o-2": {"item": "pear", "priority": "standard", "qty": 2},
    }
    client.close()
