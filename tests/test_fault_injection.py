"""Built-in fault injection: a worker that drops or corrupts changes, on purpose."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client import generate_latest
from test_cli import cli
from test_worker_sdk import until

from statesync.client import Client
from statesync.testing.controller import RunningController
from statesync.v1 import statesync_pb2 as pb
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.worker import Worker, WorkerSettings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningController]:
    running = RunningController(tmp_path / "controller")
    yield running
    running.stop()


def _status(client: Client, worker_id: str) -> Any:
    return next(w for w in client.status().workers if w.worker_id == worker_id)


@pytest.mark.parametrize("fault", ["chaos_drop", "chaos_corrupt"])
def test_a_faulty_worker_is_found_by_its_digest_and_repaired(
    server: RunningController, tmp_path: Path, fault: str
) -> None:
    settings = WorkerSettings(**{fault: 1.0, "chaos_seed": 7})  # type: ignore[arg-type]
    with (
        Client(server.address) as client,
        Worker(
            server.address, worker_id="healthy", namespaces=["app"], state_dir=tmp_path / "h"
        ) as healthy,
        Worker(
            server.address,
            worker_id="faulty",
            namespaces=["app"],
            state_dir=tmp_path / "f",
            settings=settings,
        ) as faulty,
    ):
        # Both streams are open before the write, so it arrives as a change (which
        # the chaos acts on), not inside a bootstrap snapshot.
        assert until(
            lambda: (
                {w.worker_id for w in client.status().workers if w.connected}
                == {"healthy", "faulty"}
            ),
            10,
        )
        rev = client.put("app", "k", {"v": 1}).rev
        client.wait_applied(rev, workers=["healthy", "faulty"], timeout=10)
        assert healthy.get("app", "k") == {"v": 1}
        dropped = fault == "chaos_drop"
        assert (faulty.chaos.dropped, faulty.chaos.corrupted) == (int(dropped), int(not dropped))
        # It claims the revision; only its digest tells: found, localized and repaired.
        assert until(lambda: faulty.get("app", "k") == {"v": 1}, 10)
        assert until(lambda: _status(client, "faulty").digest == "agree", 10)
        assert until(lambda: _status(client, "faulty").repairs[-1].outcome == "verified", 10)
        repaired = _status(client, "faulty")
        assert repaired.divergences == 1 and repaired.keys_repaired == 1
        assert list(repaired.repairs[-1].keys) == ["k"]
        assert _status(client, "healthy").divergences == 0  # no false positives
        # /metrics says the same, from the hub's records.
        metrics = generate_latest(server.controller.metrics.registry).decode()
        for line in [
            'statesync_worker_divergences_total{worker="faulty"} 1.0',
            'statesync_worker_keys_repaired_total{worker="faulty"} 1.0',
            'statesync_worker_divergences_total{worker="healthy"} 0.0',
            f'statesync_repair_seconds{{quantile="1.0"}} {repaired.repairs[-1].seconds!r}',
            "statesync_feed_revisions 1.0",
        ]:
            assert line in metrics.splitlines(), (line, metrics)


def test_chaos_rates_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="chaos_drop"):
        WorkerSettings(chaos_drop=1.5)
    bad = cli(
        None, "worker", "--id", "w", "--ns", "a", "--state-dir", str(tmp_path), "--chaos-drop", "2"
    )
    assert bad.returncode == 4 and "chaos_drop" in bad.stderr


def test_a_hostile_nack_reason_is_bounded_and_status_keeps_working(
    server: RunningController,
) -> None:
    """A worker's NACK reason is stored in its record and repeated in every
    status: a 1 MB reason must not make `status` (or --wait-applied) fail."""
    outbox: queue.Queue[pb.SyncRequest | None] = queue.Queue()
    outbox.put(pb.SyncRequest(hello=pb.Hello(worker_id="hostile", namespaces=["app"])))

    def requests() -> Iterator[pb.SyncRequest]:
        while (message := outbox.get()) is not None:
            yield message

    huge = "x" * 1_000_000
    with (
        Client(server.address) as client,
        grpc.insecure_channel(
            server.address, options=[("grpc.max_send_message_length", 8 << 20)]
        ) as channel,
    ):
        replies = pb_grpc.StatesyncStub(channel).Sync(requests())
        next(replies)  # the controller answered the hello
        outbox.put(pb.SyncRequest(nack=pb.Nack(rev=1, ns="app", key="k", reason=huge)))
        assert until(lambda: any(w.held for w in client.status().workers), 10)
        [held] = _status(client, "hostile").held
        assert held.reason.startswith("x" * 512) and "999488 more characters" in held.reason
        assert len(held.reason) < 600
        # Held keys reported in an ACK are bounded the same way.
        held_pb = pb.HeldKey(ns="app", key="k", rev=1, reason=huge)
        outbox.put(pb.SyncRequest(ack=pb.Ack(rev=0, held=[held_pb])))
        assert until(lambda: len(_status(client, "hostile").held[0].reason) < 600, 10)
        # So is their number: an ACK holding 5,000 keys keeps the first 1,000,
        # and a marker says how many are not shown.
        many = [pb.HeldKey(ns="app", key=f"k{i:04d}", rev=1, reason="no") for i in range(5000)]
        outbox.put(pb.SyncRequest(ack=pb.Ack(rev=0, held=many)))
        assert until(lambda: len(_status(client, "hostile").held) > 1, 10)
        shown = _status(client, "hostile").held
        assert [h.key for h in shown[:1000]] == [f"k{i:04d}" for i in range(1000)]
        assert len(shown) == 1001 and shown[-1].key == ""
        assert shown[-1].reason.startswith("… 4000 more held key(s) not shown")
        outbox.put(None)
        replies.cancel()
