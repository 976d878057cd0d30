"""Scenario 1: thousands of writes while workers and the controller are SIGKILLed.

A controller and three workers on different namespace subsets; one writer
commits WRITES single-op commands (puts, patches, deletes) over three
namespaces, retrying with the same command_id whenever the controller is
unreachable. During the writes: a worker is SIGKILLed and restarted on its
state directory (it must resume from its persisted revision, not resync), the
controller is SIGKILLed and restarted on the same port and data directory,
and another worker (one that receives deltas) is killed while the controller
is down. At the end every
replica equals the controller's state for its namespaces, every digest
agrees at the head, and every acknowledged write is present.
"""

from __future__ import annotations

import random

from e2e_helpers import (
    Cluster,
    Writer,
    assert_acks_present,
    assert_replica_equals,
    wait_converged,
    wait_until,
    worker_view,
)

WRITES = 3000
NAMESPACES = ("a", "b", "c")
KEYS_PER_NS = 150
SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}}
SUBSETS = {"w1": ("a", "b"), "w2": ("b", "c"), "w3": ("a", "c")}
DELTAS = {"w3"}  # receives updates as JSON Patch deltas


def test_chaos_kills_lose_nothing(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    workers = {
        wid: cluster.start_worker(wid, ns, deltas=wid in DELTAS) for wid, ns in SUBSETS.items()
    }
    for worker in workers.values():
        assert worker.wait_connected() == 0
    client = controller.client()

    writer = Writer(controller.address, NAMESPACES, WRITES, keys_per_ns=KEYS_PER_NS, seed=11)
    writer.start()

    # --- a worker is SIGKILLed mid-stream and restarted on the same state dir.
    writer.wait_done(WRITES * 15 // 100, 120)
    w2 = workers["w2"]
    wait_until(
        lambda: (v := worker_view(client.status(), "w2")) and v.applied_rev > 0,
        30,
        "w2 to apply something",
    )
    resyncs_before = worker_view(client.status(), "w2").resyncs
    w2.kill()
    writer.wait_done(WRITES * 30 // 100, 120)
    persisted = w2.dump()["applied_rev"]
    assert persisted > 0
    w2.start()
    resumed_at = w2.wait_connected()
    assert resumed_at == persisted > 0, "the restarted worker did not resume from its replica"

    def reconnected() -> bool:
        view = worker_view(client.status(), "w2")
        return view is not None and view.connected and view.applied_rev > resumed_at

    wait_until(reconnected, 30, "w2 to reconnect and apply new revisions")
    assert worker_view(client.status(), "w2").resyncs == resyncs_before
    assert "resync at revision" not in w2.log(), "the restarted worker was sent a snapshot"

    # --- the controller is SIGKILLed and restarted on the same port and data.
    writer.wait_done(WRITES * 50 // 100, 120)
    retries_before = writer.retries
    client.close()
    controller.kill()
    killed_at = writer.done
    workers["w3"].kill()  # a worker dies while the controller is down, too
    wait_until(lambda: writer.retries > retries_before, 30, "the writer to hit the outage")
    controller.start()
    workers["w3"].start()
    client = controller.client()
    assert workers["w3"].wait_connected() > 0

    # --- a third kill after the controller restart, for good measure.
    writer.wait_done(WRITES * 75 // 100, 120)
    workers["w1"].kill()
    workers["w1"].start()
    assert workers["w1"].wait_connected() > 0

    writer.join_ok(180)
    assert len(writer.acks) == WRITES
    assert writer.retries > retries_before

    status = wait_converged(client, workers, timeout=90)
    head = status.head_rev
    assert head == max(a.rev for a in writer.acks)
    for view in status.workers:
        assert view.state == "TAILING" and view.resyncs == 0, view
    for worker in workers.values():
        assert_replica_equals(client, worker, head)
        assert "resync at revision" not in worker.all_logs(), worker.worker_id
    assert_acks_present(client, writer)

    # Idempotency: every acknowledged command sent again is a replay at its revision,
    # including the ones around the controller's crash.
    rng = random.Random(5)
    crash = [a for a in writer.acks if a.index >= killed_at - 20][:40]
    for ack in crash + rng.sample(writer.acks, 100):
        again = ack.resend(client)
        assert again.replayed and again.rev == ack.rev, (ack, again)
    assert client.status().head_rev == head, "a replayed command wrote something"
    client.close()
