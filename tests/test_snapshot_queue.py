"""Streams waiting for a snapshot slot are told they are queued (issue 12
point 8): without a heartbeat they called their stream stale, reconnected and
wasted snapshots."""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import grpc

from statesync.client import Client
from statesync.core.commands import Command, Put
from statesync.testing.controller import RunningController
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import pb


def raw_stream(
    channel: grpc.Channel, worker_id: str
) -> tuple[queue.Queue[pb.SyncRequest | None], Iterator[pb.SyncReply]]:
    """A worker's Sync stream opened with an empty replica; nothing is read yet."""
    outbox: queue.Queue[pb.SyncRequest | None] = queue.Queue()
    outbox.put(pb.SyncRequest(hello=pb.Hello(worker_id=worker_id, namespaces=["big"])))

    def requests() -> Iterator[pb.SyncRequest]:
        while (message := outbox.get()) is not None:
            yield message

    replies: Iterator[pb.SyncReply] = pb_grpc.StatesyncStub(channel).Sync(requests())
    return outbox, replies


def test_a_stream_waiting_for_the_only_snapshot_slot_gets_queued_heartbeats(
    tmp_path: Path,
) -> None:
    server = RunningController(tmp_path / "controller", bootstrap_slots=1)
    try:
        with Client(server.address) as client:
            # 8 MB in 4 chunks: more than flow control lets through unread.
            value = {"pad": "x" * 1000}
            for c in range(80):
                ops = [Put("big", f"k{c}-{i}", value) for i in range(100)]
                rev = client.commit(Command(ops)).rev
        # Without BDP probing the flow-control window stays small: a stream
        # whose replies are not read stalls after about 64 KiB.
        options = [("grpc.http2.bdp_probe", 0)]
        first_channel = grpc.insecure_channel(server.address, options=options)
        second_channel = grpc.insecure_channel(server.address, options=options)
        first_out, first = raw_stream(first_channel, "first")
        second_out, second = raw_stream(second_channel, "second")
        # One of them holds the slot and stalls (its replies are not read); the
        # other hears only queued heartbeats until the slot is free.
        reply = next(second)
        if reply.WhichOneof("msg") == "resync":
            second_out, second, first_out, first = first_out, first, second_out, second
            second_channel, first_channel = first_channel, second_channel
            reply = next(second)
        assert reply.WhichOneof("msg") == "heartbeat", reply
        assert reply.heartbeat.snapshot_queued
        again = next(second)
        assert again.WhichOneof("msg") == "heartbeat" and again.heartbeat.snapshot_queued
        # The slot holder leaves: the queued stream gets its snapshot.
        first_out.put(None)
        first_channel.close()
        kinds = set()
        while (reply := next(second)).WhichOneof("msg") != "resync":
            kinds.add(reply.WhichOneof("msg"))
        assert kinds <= {"heartbeat"}
        assert reply.resync.rev == rev
        second_out.put(None)
        second_channel.close()
    finally:
        server.stop()
