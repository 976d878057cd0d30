"""statesync on its embedded store: `statesync serve` as a user runs it.

Writes are Commit (unary) or CommitStream (pipelined, one put per command,
each acknowledged after its group commit is fsynced). A watch is the SDK's
`Worker`, so what is measured includes its replica, digests and ACKs."""

from __future__ import annotations

import asyncio
import collections
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import grpc
import orjson

from bench._controller import serve_argv
from bench.suite.systems.base import Conn, Joined, Listing, OnEvent, System, Watch
from statesync import Command, Put
from statesync.v1 import statesync_pb2 as pb
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import command_to_pb
from statesync.worker import Worker

NAMESPACE = "bench"
LOAD_PUTS_PER_COMMAND = 1000
SNAPSHOT_CHUNK = 2000  # what the sync stream sends a bootstrapping worker
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 * 1024 * 1024)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Statesync(System):
    name = "statesync"
    label = "statesync (embedded SQLite store)"
    durability = (
        "acknowledged after the command's group commit is fsynced to the SQLite "
        "WAL (synchronous=FULL) on the controller"
    )
    client = (
        "statesync gRPC API through grpcio.aio (Commit, CommitStream, Snapshot); "
        "watches are SDK Workers"
    )
    bootstraps_a_worker = True

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data = workdir / "statesync-data"
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = workdir / "statesync.log"

    def start(self) -> None:
        self.port = self.port or free_port()
        ready = self.workdir / "statesync.ready.json"
        ready.unlink(missing_ok=True)
        self.data.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                serve_argv(self.data, f"127.0.0.1:{self.port}", ready),
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        deadline = time.monotonic() + 300
        while not ready.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.proc.kill()
                raise RuntimeError(f"statesync serve did not start:\n{self.log_tail()}")
            time.sleep(0.02)

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            code = self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError("statesync serve did not stop within 120 s of SIGTERM") from None
        self.proc = None
        if code != 0:
            raise RuntimeError(f"statesync serve exited {code}:\n{self.log_tail()}")

    def restart(self) -> None:
        self.stop()
        self.start()

    def server_pids(self) -> list[int]:
        return [] if self.proc is None else [self.proc.pid]

    def endpoint(self) -> dict[str, Any]:
        return {"address": f"127.0.0.1:{self.port}"}

    @classmethod
    async def connect(cls, endpoint: dict[str, Any]) -> StatesyncConn:
        return StatesyncConn(endpoint["address"])


def _put(key: str, value: bytes) -> pb.CommandRequest:
    return command_to_pb(Command([Put(NAMESPACE, key, orjson.loads(value))]))


class WorkerWatch(Watch):
    def __init__(self, worker: Worker, task: asyncio.Task[None]) -> None:
        self.worker = worker
        self.task = task

    async def close(self) -> None:
        self.worker.stop_soon()
        await self.task  # run() closes the replica


class StatesyncConn(Conn):
    def __init__(self, address: str) -> None:
        self.address = address
        self.reader_rss: tuple[float, float] | None = None
        """After `bootstrap`, where the worker is another process: its RSS
        before (0: the whole process counts) and its peak; None: this process's."""
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.stub = pb_grpc.StatesyncStub(self.channel)

    async def put(self, key: str, value: bytes) -> int:
        reply = await self.stub.Commit(_put(key, value), timeout=60)
        return reply.rev

    async def put_window(self, items: list[tuple[str, bytes]], window: int) -> list[float]:
        requests = [_put(k, v) for k, v in items]
        for tag, request in enumerate(requests):
            request.tag = tag
        return await self._stream(requests, window)

    async def put_batches(self, batches: list[list[tuple[str, bytes]]], window: int) -> list[float]:
        requests = [
            command_to_pb(Command([Put(NAMESPACE, k, orjson.loads(v)) for k, v in batch]), tag=tag)
            for tag, batch in enumerate(batches)
        ]
        return await self._stream(requests, window)

    async def _stream(self, requests: list[pb.CommandRequest], window: int) -> list[float]:
        call = self.stub.CommitStream()
        slots = asyncio.Semaphore(window)
        sent = [0.0] * len(requests)
        latencies = [0.0] * len(requests)

        async def write() -> None:
            for i, request in enumerate(requests):
                await slots.acquire()
                sent[i] = time.perf_counter()
                await call.write(request)
            await call.done_writing()

        writer = asyncio.create_task(write())
        replies = 0
        async for reply in call:
            slots.release()
            if reply.HasField("error"):
                raise RuntimeError(f"commit {reply.tag} failed: {reply.error.message}")
            latencies[reply.tag] = time.perf_counter() - sent[reply.tag]
            replies += 1
        await writer
        if replies != len(requests):
            raise RuntimeError(f"{replies} replies to {len(requests)} commands")
        return latencies

    async def load(self, items: Iterable[tuple[str, bytes]]) -> int:
        batch: list[Put] = []
        requests = []
        for key, value in items:
            batch.append(Put(NAMESPACE, key, orjson.loads(value)))
            if len(batch) == LOAD_PUTS_PER_COMMAND:
                requests.append(command_to_pb(Command(batch), tag=len(requests)))
                batch = []
        if batch:
            requests.append(command_to_pb(Command(batch), tag=len(requests)))
        await self._stream(requests, window=4)
        return await self.head()

    async def list_all(self) -> Listing:
        request = pb.SnapshotRequest(namespaces=[NAMESPACE], chunk_size=SNAPSHOT_CHUNK)
        items: dict[str, bytes] = {}
        size = chunks = rev = 0
        async for chunk in self.stub.Snapshot(request):
            size += chunk.ByteSize()
            chunks += 1
            rev = chunk.rev
            for entry in chunk.entries:
                items[entry.key] = entry.value
        return Listing(items=items, revision=rev, wire_bytes=size, round_trips=1)

    async def watch(self, on_event: OnEvent, *, from_revision: int) -> Watch:
        """A Worker with an in-memory replica; it starts from a snapshot of the
        namespace (what a new worker does), so `from_revision` only tells the
        caller which changes it cares about. Returns once it is at the head."""
        loop = asyncio.get_running_loop()
        # Callbacks run on the worker's sync thread: each change is timed there
        # and recorded on the agent's loop, one wake-up for what is pending.
        pending: collections.deque[tuple[str, bytes | None, int, float]] = collections.deque()
        scheduled = threading.Event()

        def record() -> None:
            scheduled.clear()
            while pending:
                key, value, rev, at = pending.popleft()
                on_event(key, value, rev, at=at)

        def changed(event: Any) -> None:
            if event.rev > from_revision:  # a snapshot's entries count: they are applied
                value = None if event.op == "delete" else orjson.dumps(event.value)
                pending.append((event.key, value, event.rev, time.time()))
                if not scheduled.is_set():
                    scheduled.set()
                    loop.call_soon_threadsafe(record)

        worker, task = await self._start_worker(None, on_change=changed)
        await self._until_applied(worker, await self.head())
        return WorkerWatch(worker, task)

    async def join(self, head: int) -> Joined:
        """A new Worker with an in-memory replica, until it has applied `head`."""
        worker, task = await self._start_worker(None)
        await self._until_applied(worker, head)
        return Joined(
            time.time(),
            worker.replica.count(NAMESPACE),
            worker.resyncs,
            worker.reconnects,
            WorkerWatch(worker, task),
        )

    async def _start_worker(
        self, state_dir: Path | None, on_change: Callable[[Any], None] | None = None
    ) -> tuple[Worker, asyncio.Task[None]]:
        """The SDK's default settings (heartbeats, staleness, reconnect delays)."""
        worker = Worker(
            self.address,
            worker_id=f"bench-{uuid.uuid4().hex[:12]}",
            namespaces=[NAMESPACE],
            state_dir=state_dir,
        )
        if on_change is not None:
            worker.on_change(on_change)
        return worker, asyncio.create_task(worker.run())

    @staticmethod
    async def _until_applied(worker: Worker, rev: int, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while worker.applied_rev < rev:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker at {worker.applied_rev}, not {rev}, after {timeout} s")
            await asyncio.sleep(0.005)

    async def bootstrap(self, state_dir: Path) -> tuple[float, Listing, int]:
        """A fresh worker with an on-disk replica until it has applied the head:
        the seconds that took, what it received, and how many keys it holds."""
        head = await self.head()
        t0 = time.perf_counter()
        worker, task = await self._start_worker(state_dir)
        await self._until_applied(worker, head)
        seconds = time.perf_counter() - t0
        worker.stop_soon()
        await task
        keys = worker.replica.count(NAMESPACE)
        listing = Listing(items={}, revision=head, wire_bytes=worker.bytes_received, round_trips=1)
        return seconds, listing, keys

    async def head(self) -> int:
        reply = await self.stub.Status(pb.StatusRequest(), timeout=60)
        return reply.head_rev

    async def compact(self) -> None:
        await self.stub.Compact(pb.CompactRequest(rev=await self.head()), timeout=60)

    async def close(self) -> None:
        await self.channel.close()
