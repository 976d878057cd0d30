"""Scenario 3: one slow worker must not slow down the others or grow the controller.

The controller keeps only FEED_REVISIONS revisions in memory and sends each
worker at most WINDOW unacknowledged changes. One worker runs a slow --exec
command per change; two normal workers do nothing. A writer commits WRITES at
a steady rate. The normal workers keep applying each sampled write within
a couple of seconds, the controller's RSS stays bounded, the slow worker is
told to resync (by reconciliation: it keeps its replica) when it falls out of
the buffer, and once the writes stop it catches up and agrees.
"""

from __future__ import annotations

import re
import threading
import time

from e2e_helpers import (
    Cluster,
    Writer,
    assert_acks_present,
    assert_replica_equals,
    wait_converged,
    worker_view,
)

WRITES = 1500
RATE = 150.0  # writes per second
FEED_REVISIONS = 200
WINDOW = 50
MAX_LATENCY_S = 2.0
MAX_RSS_MB = 250
SETTINGS = {
    "feed_revisions": FEED_REVISIONS,
    "sync": {"heartbeat_s": 0.5, "silence_s": 10.0, "window": WINDOW},
}
NAMESPACES = ("a", "b", "c")
NORMAL = ["n1", "n2"]


def test_slow_worker_is_isolated(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    slow = cluster.start_worker("slow", ("a",), exec_cmd="sleep 0.05")
    n1 = cluster.start_worker("n1", ("a", "b"))
    n2 = cluster.start_worker("n2", ("a", "b", "c"))
    for worker in (slow, n1, n2):
        worker.wait_connected()
    client = controller.client()

    writer = Writer(
        controller.address, NAMESPACES, WRITES, keys_per_ns=40, rate=RATE, seed=41, pad=200
    )
    stop = threading.Event()
    latencies: list[tuple[int, float, list[str]]] = []
    rss: list[int] = []

    def sample_latency() -> None:
        with controller.client() as sampler:
            while not stop.is_set():
                if not writer.acks:
                    time.sleep(0.05)
                    continue
                ack = writer.acks[-1]
                result = sampler.wait_applied(ack.rev, workers=NORMAL, timeout=5)
                latencies.append((ack.rev, time.monotonic() - ack.at, sorted(result.applied)))
                time.sleep(0.2)

    def sample_rss() -> None:
        while not stop.is_set():
            rss.append(controller.rss_kb())
            time.sleep(0.2)

    samplers = [threading.Thread(target=f, daemon=True) for f in (sample_latency, sample_rss)]
    for t in samplers:
        t.start()
    writer.start()
    try:
        writer.join_ok(120)
    finally:
        stop.set()
        for t in samplers:
            t.join(30)

    assert len(latencies) >= 20, latencies
    slow_samples = [s for s in latencies if s[1] >= MAX_LATENCY_S or s[2] != NORMAL]
    assert not slow_samples, f"normal workers fell behind: {slow_samples[:10]}"
    assert max(rss) < MAX_RSS_MB * 1024, f"controller RSS peaked at {max(rss) // 1024} MB"

    status = client.status()
    resynced = worker_view(status, "slow").resyncs > 0
    assert resynced or "fell behind" in controller.log(), "the slow worker was never resynced"
    assert "fell behind the sync buffer" in controller.log()

    status = wait_converged(client, ["slow", *NORMAL], timeout=120)
    # The slow worker's replica is not empty: it is resynced by reconciliation, keeping
    # its replica (docs/reconciliation.md, section 4), not by a snapshot.
    resync = re.compile(r"worker slow: fell behind the sync buffer .*; reconciling instead of")
    assert resync.search(controller.log()), "the slow worker was not resynced by reconciliation"
    assert worker_view(status, "slow").resyncs == 0
    for wid in NORMAL:
        assert worker_view(status, wid).resyncs == 0
    for worker in (slow, n1, n2):
        assert_replica_equals(client, worker, status.head_rev)
    assert_acks_present(client, writer)
    client.close()
