"""Scenario 6: a frozen peer is noticed by heartbeats, and recovers when it thaws.

- SIGSTOP the controller: a worker with --stale-after 2 declares the stream
  stale within seconds and keeps retrying; the writer's calls time out and are
  retried with the same command_id. After SIGCONT the worker reconnects and
  catches up, and no write was applied twice.
- SIGSTOP a worker: with silence_s=2 the controller marks it disconnected
  within ~5 s (also while changes for it keep flowing); after SIGCONT it
  reconnects and agrees again.
"""

from __future__ import annotations

import signal
import time

import pytest
from e2e_helpers import (
    Cluster,
    Writer,
    assert_acks_present,
    assert_replica_equals,
    wait_converged,
    wait_until,
    worker_view,
)

SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 2.0}}
STALE_AFTER = 2.0
NAMESPACES = ("a", "b")


def test_frozen_controller_is_detected_by_workers(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("live", NAMESPACES, stale_after=STALE_AFTER)
    assert worker.wait_connected() == 0
    client = controller.client()
    writer = Writer(controller.address, NAMESPACES, 500, keys_per_ns=50, rate=100, seed=61)
    writer.start()
    writer.wait_done(150, 60)

    controller.signal(signal.SIGSTOP)
    frozen_at = time.monotonic()
    try:
        worker.wait_log(r"stream is stale", STALE_AFTER + 6)
        stale_after = time.monotonic() - frozen_at
        # It keeps trying: another attempt goes stale (or fails) while the controller is frozen.
        wait_until(
            lambda: worker.log().count("reconnecting") + worker.log().count("UNAVAILABLE") >= 2,
            STALE_AFTER * 2 + 10,
            "the worker to retry",
        )
        assert worker.running
    finally:
        controller.signal(signal.SIGCONT)
    assert stale_after < STALE_AFTER + 4, f"stale only after {stale_after:.1f} s"

    connects = worker.log().count("connected to")
    wait_until(lambda: worker.log().count("connected to") > connects, 30, "a reconnect")
    writer.join_ok(120)
    status = wait_converged(client, ["live"], timeout=60)
    assert_replica_equals(client, worker, status.head_rev)
    assert_acks_present(client, writer)
    assert status.head_rev == writer.acks[-1].rev == len(writer.acks), "a write applied twice"
    assert worker_view(status, "live").resyncs == 0
    client.close()


@pytest.mark.parametrize("traffic", ["idle", "busy"])
def test_frozen_worker_is_marked_disconnected(cluster: Cluster, traffic: str) -> None:
    controller = cluster.start_controller(SETTINGS)
    frozen = cluster.start_worker("frozen", NAMESPACES)
    other = cluster.start_worker("other", NAMESPACES)
    frozen.wait_connected()
    other.wait_connected()
    client = controller.client()
    model = {("a", f"k{i:04d}"): {"i": i} for i in range(50)}
    for (ns, key), value in model.items():
        client.put(ns, key, value)
    wait_converged(client, ["frozen", "other"])

    writer = None
    frozen.signal(signal.SIGSTOP)
    stopped_at = time.monotonic()
    try:
        if traffic == "busy":  # enough changes to fill the stream's flow-control window
            writer = Writer(
                controller.address, NAMESPACES, 600, keys_per_ns=50, rate=200, pad=8000,
                seed=62, model=model,
            )  # fmt: skip
            writer.start()

        def disconnected() -> bool:
            view = worker_view(client.status(), "frozen")
            return not view.connected and view.state == "DISCONNECTED"

        wait_until(disconnected, 10, "the controller to mark the frozen worker disconnected")
        noticed = time.monotonic() - stopped_at
        view = worker_view(client.status(), "other")
        assert view.connected, "the other worker must stay connected"
    finally:
        frozen.signal(signal.SIGCONT)
    assert noticed < 5.0, f"noticed only after {noticed:.1f} s"
    assert "nothing heard for" in controller.log()

    if writer is not None:
        writer.join_ok(120)
    status = wait_converged(client, ["frozen", "other"], timeout=60)
    for worker in (frozen, other):
        assert_replica_equals(client, worker, status.head_rev)
    if writer is not None:
        assert_acks_present(client, writer)
    client.close()
