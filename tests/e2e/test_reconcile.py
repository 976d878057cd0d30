"""Drift repair with real processes: digests find it, descent localizes it, repair fixes it.

- Chaos: two healthy workers and two faulty ones (`--chaos-drop`, which
  silently skips changes, and `--chaos-corrupt`, which stores wrong values
  consistent with their own hash) tail namespaces under thousands of writes.
  Once the writes stop every replica equals the controller's state within
  seconds; `status` shows divergences and repaired keys for the faulty
  workers only (no false positives on the healthy ones), and the faulty
  workers log the CHAOS warning.
- A state directory restored from an old backup, whose revision has since
  been compacted, keeps its replica: the controller moves it to the head and
  reconciliation repairs exactly the keys that differ (no snapshot).
- The cost: a worker away while 1% of 20,000 keys changed (and compacted
  past) is reconciled for a small fraction of a full snapshot's bytes.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from e2e_helpers import (
    CLI,
    Cluster,
    ControllerProc,
    WorkerProc,
    Writer,
    assert_acks_present,
    assert_replica_equals,
    controller_state,
    wait_converged,
    wait_until,
    worker_view,
)

from statesync.client import Client
from statesync.core.commands import Command, Delete, Put

SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}}
SETTLED = {"verified", "no drift", "nothing to repair"}
SNAPSHOT_REPLACED = "replica replaced by the snapshot"
KEEPS_REPLICA = r"moving from revision (\d+) to (\d+), keeping the replica: (.*)"
RESYNCED = r"resync at revision (\d+): (.*)"


class FlaggedWorker(WorkerProc):
    """A `statesync worker` with extra flags (--chaos-drop, --chaos-corrupt...)."""

    def __init__(self, *args: Any, extra: Sequence[str] = (), **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.extra = list(extra)

    def argv(self) -> list[str]:
        return [*super().argv(), *self.extra]


def add_worker(
    cluster: Cluster, worker_id: str, namespaces: Sequence[str], *extra: str
) -> FlaggedWorker:
    assert cluster.controller is not None
    worker = FlaggedWorker(
        cluster.workdir, worker_id, namespaces, cluster.controller.address, extra=extra
    )
    cluster.workers[worker_id] = worker
    return worker


def cli_json(controller: ControllerProc, *args: str) -> Any:
    out = subprocess.run(
        [*CLI, "--server", controller.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, f"{args}: exit {out.returncode}: {out.stderr}"
    return json.loads(out.stdout)


def stop(worker: WorkerProc) -> None:
    code = worker.terminate()
    assert code == 0, f"{worker.worker_id}: SIGTERM exit code {code}\n{worker.log()[-3000:]}"
    assert "Traceback" not in worker.log(), worker.log()[-3000:]


def repairs_since(client: Client, worker_id: str, since_unix: float) -> list[Any]:
    view = worker_view(client.status(), worker_id)
    assert view is not None, f"{worker_id} unknown to the controller"
    return [r for r in view.repairs if r.detected_unix >= since_unix]


def wait_repaired(client: Client, worker_id: str, since_unix: float, timeout: float) -> list[Any]:
    """Until the worker's repairs since `since_unix` all settled, one of them verified."""

    def settled() -> list[Any] | None:
        records = repairs_since(client, worker_id, since_unix)
        if not records or any(r.outcome not in SETTLED for r in records):
            return None
        return records if any(r.outcome == "verified" for r in records) else None

    try:
        return wait_until(settled, timeout, f"a verified repair of {worker_id}")
    except AssertionError:
        records = repairs_since(client, worker_id, since_unix)
        raise AssertionError(f"{worker_id} repairs: {records}") from None


def wait_resync(worker: WorkerProc) -> re.Match[str]:
    """The restarted worker's way back: kept its replica (the match) or got a snapshot (fail)."""
    m = worker.wait_log(f"{KEEPS_REPLICA}|{RESYNCED}", 30)
    assert m.group(0).startswith("moving from"), f"it was sent a snapshot: {m.group(0)!r}"
    return m


def commit_ops(client: Client, ops: Sequence[Any], batch: int = 10_000) -> int:
    rev = 0
    for i in range(0, len(ops), batch):
        rev = client.commit(Command(list(ops[i : i + batch]))).rev
    return rev


def differing_keys(old: dict[str, Any], new: dict[str, Any]) -> set[str]:
    return {k for k in old.keys() | new.keys() if old.get(k) != new.get(k)}


# ---------------------------------------------------------------- 1. chaos


CHAOS_NAMESPACES = ("a", "b")
CHAOS_WRITES = 3000
CHAOS_RATE = 300.0  # writes per second: about 10 s of writes
CHAOS = {
    "drop": ("--chaos-drop", "0.05", "--chaos-seed", "1"),
    "corrupt": ("--chaos-corrupt", "0.02", "--chaos-seed", "2"),
}
HEALTHY = ("h1", "h2")


def test_chaos_workers_converge_and_healthy_workers_show_no_repairs(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    workers = {wid: add_worker(cluster, wid, CHAOS_NAMESPACES) for wid in HEALTHY}
    workers |= {wid: add_worker(cluster, wid, CHAOS_NAMESPACES, *f) for wid, f in CHAOS.items()}
    for worker in workers.values():
        worker.start()
    for worker in workers.values():
        assert worker.wait_connected() == 0
    client = controller.client()

    writer = Writer(
        controller.address, CHAOS_NAMESPACES, CHAOS_WRITES, keys_per_ns=150, rate=CHAOS_RATE,
        seed=7, prefix="chaos",
    )  # fmt: skip
    writer.start()
    writer.join_ok(60)
    assert len(writer.acks) == CHAOS_WRITES
    assert {a.op for a in writer.acks} == {"put", "patch", "delete"}

    # Within 10 s of the last write: every worker is at the head and agrees.
    status = wait_converged(client, workers, timeout=10)
    head = status.head_rev
    assert head == writer.acks[-1].rev
    assert_acks_present(client, writer)

    # Repairs for the faulty workers only (`statesync status --json`).
    shown = {w["worker_id"]: w for w in cli_json(controller, "status", "--json")["workers"]}
    for wid in CHAOS:
        w = shown[wid]
        assert w["divergences"] >= 1 and w["keys_repaired"] >= 1, w
        assert any(r["outcome"] == "verified" and r["key_count"] >= 1 for r in w["repairs"]), w
    for wid in HEALTHY:
        w = shown[wid]
        assert (w["divergences"], w["keys_repaired"], w["repairs"]) == (0, 0, []), w
        assert w["resyncs"] == 0, w

    # The replicas, read offline after a clean stop, hold exactly the controller's state.
    for worker in workers.values():
        stop(worker)
        assert_replica_equals(client, worker, head)
    client.close()

    warning = "WARNING statesync.worker: worker {}: CHAOS ON: silently dropping {} of changes "
    assert warning.format("drop", "5.0%") in workers["drop"].log()
    assert "and corrupting 0.0% of values" in workers["drop"].log()
    assert warning.format("corrupt", "0.0%") in workers["corrupt"].log()
    assert "and corrupting 2.0% of values" in workers["corrupt"].log()
    for wid in CHAOS:
        assert "repaired" in workers[wid].log() and "drifted key(s)" in workers[wid].log()
    for wid in HEALTHY:
        assert "CHAOS" not in workers[wid].log()
        assert "drifted" not in workers[wid].log()


# ---------------------------------------------------------------- 2. restored backup


def test_a_state_dir_restored_from_an_old_copy_is_repaired_without_a_full_resync(
    cluster: Cluster, tmp_path: Path
) -> None:
    ns = "routes"
    controller = cluster.start_controller(SETTINGS)
    client = controller.client()
    commit_ops(client, [Put(ns, f"k{i:03d}", {"v": i, "gen": 0}) for i in range(300)])
    w = add_worker(cluster, "w", (ns,))
    w.start()
    w.wait_connected()
    wait_converged(client, ["w"])
    stop(w)
    backup = tmp_path / "w-state.backup"
    shutil.copytree(w.state_dir, backup)
    old = w.dump()
    old_rev = old["applied_rev"]
    assert old_rev == client.status().head_rev and len(old["namespaces"][ns]) == 300

    # Life goes on: changes, deletes and new keys the worker applies.
    w.start()
    assert w.wait_connected() == old_rev
    commit_ops(client, [Put(ns, f"k{i:03d}", {"v": i, "gen": 1}) for i in range(0, 40)])
    commit_ops(client, [Delete(ns, f"k{i:03d}") for i in range(40, 60)])
    client.put(ns, "k100", {"v": 100, "gen": 1, "note": "single"})
    commit_ops(client, [Put(ns, f"n{i:03d}", {"new": i}) for i in range(30)])
    wait_converged(client, ["w"])
    stop(w)
    assert w.dump()["applied_rev"] > old_rev

    # The disk is restored from the old backup; more writes, and history is compacted.
    shutil.rmtree(w.state_dir)
    shutil.copytree(backup, w.state_dir)
    assert w.dump()["applied_rev"] == old_rev
    commit_ops(client, [Put(ns, f"k{i:03d}", {"v": i, "gen": 2}) for i in range(200, 230)])
    commit_ops(client, [Delete(ns, f"k{i:03d}") for i in range(280, 300)])
    commit_ops(client, [Delete(ns, f"n{i:03d}") for i in range(10)])
    commit_ops(client, [Put(ns, f"m{i:03d}", {"late": i}) for i in range(15)])
    head = client.status().head_rev
    assert cli_json(controller, "compact", str(head)) == {"compacted_rev": head}
    assert client.status().compacted_rev == head > old_rev
    expected = controller_state(client, [ns])[ns]
    drifted = differing_keys(old["namespaces"][ns], expected)
    # 40 + 1 changed, 20 deleted, 20 n-keys kept; then 30 changed, 20 deleted, 15 created.
    assert len(drifted) == 40 + 1 + 20 + 20 + 30 + 20 + 15

    # It comes back on the old replica, is moved to the head and repaired.
    repaired_before = worker_view(client.status(), "w").keys_repaired
    restarted = time.time()
    w.start()
    assert w.wait_connected() == old_rev, "it should resume from the restored replica"
    m = wait_resync(w)
    assert (int(m.group(1)), int(m.group(2))) == (old_rev, head)
    assert "compacted" in m.group(3), m.group(0)
    status = wait_converged(client, ["w"], timeout=30)
    assert status.head_rev == head
    records = wait_repaired(client, "w", restarted, 30)
    assert all(r.ns == ns and r.round_trips >= 1 for r in records), records
    assert all(set(r.keys) <= drifted for r in records), records
    # Exactly the keys that differ from the backup are repaired: no more, no fewer.
    view = worker_view(client.status(), "w")
    assert view.keys_repaired - repaired_before == len(drifted), records
    assert view.divergences >= 1
    w.wait_log(r"repaired \d+ drifted key\(s\) at revision", 10)

    log_text = w.log()
    assert SNAPSHOT_REPLACED not in log_text, "the restored worker was re-sent a snapshot"
    assert "resync at revision" not in log_text
    assert "reconciling instead of a snapshot" in controller.log()

    stop(w)
    assert_replica_equals(client, w, head)
    client.close()


# ---------------------------------------------------------------- 3. the cost


BIG_KEYS = 20_000
CHANGED = BIG_KEYS // 100  # 1%: updates, deletes and creates
MAX_FRACTION = 0.05


def _value(i: int, gen: int) -> dict[str, Any]:
    return {"i": i, "gen": gen, "pad": "abcdefghij" * 8}  # about 100 bytes of JSON


def test_reconciling_a_returning_worker_costs_a_small_fraction_of_a_snapshot(
    cluster: Cluster,
) -> None:
    ns = "big"
    controller = cluster.start_controller(SETTINGS)
    client = controller.client(timeout=60)
    assert len(orjson.dumps(_value(12345, 0))) in range(90, 111)
    commit_ops(client, [Put(ns, f"key-{i:05d}", _value(i, 0)) for i in range(BIG_KEYS)])

    w = add_worker(cluster, "returning", (ns,))
    w.start()
    w.wait_connected()
    wait_converged(client, ["returning"], timeout=30)
    assert SNAPSHOT_REPLACED in w.log(), "an empty replica bootstraps from a snapshot"
    stop(w)
    left_at = w.dump()["applied_rev"]

    # 1% of the keys change while it is away: updates, deletes and creates.
    updates, deletes, creates = CHANGED // 2, CHANGED // 4, CHANGED - CHANGED // 2 - CHANGED // 4
    step = BIG_KEYS // (updates + deletes)
    touched = list(range(0, BIG_KEYS, step))[: updates + deletes]
    commit_ops(client, [Put(ns, f"key-{i:05d}", _value(i, 1)) for i in touched[:updates]])
    commit_ops(client, [Delete(ns, f"key-{i:05d}") for i in touched[updates:]])
    commit_ops(client, [Put(ns, f"new-{i:05d}", _value(i, 1)) for i in range(creates)])
    head = client.status().head_rev
    assert client.compact(head) == head > left_at

    restarted = time.time()
    w.start()
    assert w.wait_connected() == left_at
    wait_resync(w)
    wait_converged(client, ["returning"], timeout=30)
    records = wait_repaired(client, "returning", restarted, 30)
    assert sum(r.key_count for r in records) == CHANGED, records
    reconciled = sum(r.bytes for r in records)
    # The controller logs each attempt's descent cost; the records add the repairs to it.
    logged = re.findall(
        r"worker returning: repairing (\d+) key\(s\) .* (\d+) bytes\)", controller.log()
    )
    assert sum(int(k) for k, _ in logged) == CHANGED, logged
    assert reconciled > sum(int(b) for _, b in logged), (records, logged)
    snapshot = sum(e.ByteSize() for chunk in client.snapshot([ns]) for e in chunk.entries)
    fraction = reconciled / snapshot
    print(
        f"\nreconciliation: {reconciled} bytes ({sum(r.round_trips for r in records)} round "
        f"trips, {CHANGED} keys of {BIG_KEYS}); full snapshot: {snapshot} bytes; "
        f"{100 * fraction:.2f}% of a snapshot"
    )
    assert 0 < fraction < MAX_FRACTION, (reconciled, snapshot)
    assert SNAPSHOT_REPLACED not in w.log(), "the returning worker was re-sent a snapshot"

    stop(w)
    assert_replica_equals(client, w, head)
    client.close()
