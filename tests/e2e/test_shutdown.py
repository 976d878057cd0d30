"""Scenario 7: SIGTERM stops the controller cleanly in the middle of the traffic.

Two writers commit as fast as they can and two workers are connected when
the controller gets SIGTERM. It exits 0 within its grace period and logs its
shutdown; every write acknowledged before it stopped is there after a
restart on the same port and data directory (the writers retry what failed
with the same command_id); the workers reconnect, resume and agree.
"""

from __future__ import annotations

import re

from e2e_helpers import (
    Cluster,
    Writer,
    assert_acks_present,
    assert_replica_equals,
    wait_converged,
    wait_until,
    worker_view,
)

SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}, "grace_s": 5.0}
WRITES = 800  # per writer


def test_sigterm_is_graceful_and_loses_nothing(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    w1 = cluster.start_worker("w1", ("a", "b"))
    w2 = cluster.start_worker("w2", ("b",))
    w1.wait_connected()
    w2.wait_connected()
    writers = [
        Writer(controller.address, [ns], WRITES, keys_per_ns=100, seed=71 + i, prefix=ns)
        for i, ns in enumerate(("a", "b"))
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.wait_done(WRITES // 3, 60)

    retries = [w.retries for w in writers]
    code = controller.terminate(timeout=30)
    acked = {w.prefix: list(w.acks) for w in writers}  # acknowledged before the stop ended
    log = controller.log()
    assert code == 0, f"controller exited {code}:\n{log[-3000:]}"
    assert "shutting down" in log
    stopped = re.search(r"stopped at revision (\d+)", log)
    assert stopped, log[-3000:]
    final_rev = int(stopped.group(1))
    assert all(a.rev <= final_rev for acks in acked.values() for a in acks)
    assert "Traceback" not in log, log

    wait_until(
        lambda: all(w.retries > r for w, r in zip(writers, retries, strict=True)),
        30,
        "both writers to notice the controller is gone",
    )
    controller.start()
    restarted = controller.log()
    assert re.search(rf"serving .* at revision {final_rev}\b", restarted), restarted

    for writer in writers:
        writer.join_ok(120)
    client = controller.client()
    for prefix, acks in acked.items():  # acknowledged before the stop: still at their revision
        for ack in acks[-20:]:
            again = ack.resend(client)
            assert again.replayed and again.rev == ack.rev, (prefix, ack, again)
    status = wait_converged(client, ["w1", "w2"], timeout=60)
    for worker in (w1, w2):
        assert_replica_equals(client, worker, status.head_rev)
        assert worker.running, f"{worker.worker_id} exited"
        assert "resync at revision" not in worker.log()
        assert worker_view(status, worker.worker_id).resyncs == 0
    for writer in writers:
        assert len(writer.acks) == WRITES
        assert_acks_present(client, writer)
    client.close()
