"""etcd 3.4 as a system under test: one member, its default durability, the v3 gRPC API.

The server is the Debian `etcd` binary (`apt-get install etcd-server`), run as a
child process on loopback ports with its data under `workdir/etcd-data`. The
client speaks etcd's v3 gRPC API through grpcio.aio with message classes
generated from a minimal rpc.proto (bench/suite/systems/etcd/), so the
benchmark needs no etcd client library and its calls are exactly the RPCs
named here: KV.Put, KV.Range, KV.Txn, KV.Compact and Watch.Watch.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from bench._controller import ChildProcess
from bench.suite.systems.base import Conn, Listing, OnEvent, System, Watch
from bench.suite.systems.etcd import rpc_pb2 as pb

__all__ = ["Etcd", "EtcdConn", "EtcdWatch", "WatchCompactedError"]

log = logging.getLogger(__name__)

MiB = 1 << 20
GiB = 1 << 30
INSTALL_HINT = "install it with `apt-get install etcd-server` (Debian/Ubuntu; etcd 3.4)"

# A restarted server should be found again within tens of milliseconds, not
# after gRPC's default 1 s (then exponential) reconnect backoff.
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.max_receive_message_length", 256 * MiB),
    ("grpc.max_send_message_length", 64 * MiB),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
]

RANGE = "/etcdserverpb.KV/Range"
PUT = "/etcdserverpb.KV/Put"
TXN = "/etcdserverpb.KV/Txn"
COMPACT = "/etcdserverpb.KV/Compact"
WATCH = "/etcdserverpb.Watch/Watch"


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, end) every key starting with prefix
    (etcd's clientv3.GetPrefixRangeEnd)."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\x00"  # every key


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WatchCompactedError(RuntimeError):
    """The revision a watch had to resume from is gone: a resync (list) is needed."""


class EtcdProcess(ChildProcess):
    """One etcd member; stderr appended to `log` (the same file across restarts)."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.log = log
        self._stderr = open(log, "ab")  # noqa: SIM115 - closed in stop()
        env = {k: v for k, v in os.environ.items() if not k.startswith("ETCD")}
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._stderr, env=env
        )
        self.pid = self.proc.pid


class Etcd(System):
    name = "etcd"
    label = "etcd 3.4 (single node)"
    durability = (
        "acknowledged after the Raft entry is fsynced to the WAL on the single member "
        "(etcd's default; --unsafe-no-fsync is not used)"
    )
    client = "etcd v3 gRPC API (KV, Watch) through grpcio.aio, stubs from a minimal rpc.proto"

    prefix = "bench/"
    quota_backend_bytes = 8 * GiB
    """etcd's largest recommended quota: 1M keys of 100 bytes plus their history fit easily."""
    max_txn_ops = 1024
    """Raised from etcd's 128 so that `load` commits 1,000 puts per Raft entry."""
    start_timeout = 30.0
    stop_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data = workdir / "etcd-data"
        self.log = workdir / "etcd.log"
        self._proc: EtcdProcess | None = None
        self._client_port = 0
        self._peer_port = 0

    @staticmethod
    def binary() -> str:
        exe = shutil.which("etcd") or ("/usr/bin/etcd" if Path("/usr/bin/etcd").exists() else None)
        if exe is None:
            raise RuntimeError(f"the etcd binary is not on PATH: {INSTALL_HINT}")
        return exe

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._client_port}"

    def _argv(self) -> list[str]:
        client = f"http://127.0.0.1:{self._client_port}"
        peer = f"http://127.0.0.1:{self._peer_port}"
        return [
            self.binary(),
            "--name=bench",
            f"--data-dir={self.data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=bench={peer}",
            "--initial-cluster-state=new",
            f"--quota-backend-bytes={self.quota_backend_bytes}",
            f"--max-txn-ops={self.max_txn_ops}",
            "--auto-compaction-retention=0",  # off: the scenarios compact explicitly
            "--logger=zap",
            "--log-outputs=stderr",
            "--log-level=warn",
        ]

    def start(self) -> None:
        if self._proc is not None:
            raise RuntimeError("etcd is already running")
        self.binary()  # fail on a missing binary before anything is touched
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.data.exists():
            shutil.rmtree(self.data)
        self._client_port = free_port()
        self._peer_port = free_port()
        while self._peer_port == self._client_port:
            self._peer_port = free_port()
        self._launch(self._argv())

    def restart(self) -> None:
        if self._proc is None:
            raise RuntimeError("etcd is not running")
        self._terminate()
        self._launch(self._argv())

    def stop(self) -> None:
        if self._proc is not None:
            self._terminate()

    def server_pids(self) -> list[int]:
        return [] if self._proc is None else [self._proc.pid]

    def endpoint(self) -> dict[str, Any]:
        return {"address": self.address, "prefix": self.prefix}

    @classmethod
    async def connect(cls, endpoint: dict[str, Any]) -> EtcdConn:
        return EtcdConn(endpoint["address"], endpoint.get("prefix", cls.prefix))

    def _launch(self, argv: list[str]) -> None:
        proc = EtcdProcess(argv, self.log)
        self._proc = proc
        try:
            self._wait_ready(proc)
        except BaseException:
            proc.stop(timeout=5)
            self._proc = None
            raise

    def _wait_ready(self, proc: EtcdProcess) -> None:
        """Until a linearizable Range succeeds: the member is up and has elected itself."""
        deadline = time.monotonic() + self.start_timeout
        request = pb.RangeRequest(key=self.prefix.encode(), limit=1, keys_only=True)
        with grpc.insecure_channel(self.address, options=CHANNEL_OPTIONS) as channel:
            rng = channel.unary_unary(
                RANGE,
                request_serializer=pb.RangeRequest.SerializeToString,
                response_deserializer=pb.RangeResponse.FromString,
            )
            while True:
                rc = proc.proc.poll()
                if rc is not None:
                    raise RuntimeError(
                        f"etcd exited with code {rc} while starting; {self.log}:\n{proc.log_tail()}"
                    )
                try:
                    rng(request, timeout=1.0, wait_for_ready=True)
                    return
                except grpc.RpcError as e:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"etcd did not answer on {self.address} within "
                            f"{self.start_timeout:.0f} s ({e}); {self.log}:\n{proc.log_tail()}"
                        ) from None
                time.sleep(0.05)

    def _terminate(self) -> None:
        """SIGTERM, wait; SIGKILL and raise after stop_timeout or on an unclean exit.

        etcd handles SIGTERM by closing the server and then re-raising the
        signal at itself, so a clean exit is -SIGTERM (or 0), not only 0."""
        proc = self._proc
        assert proc is not None
        self._proc = None
        killed = False
        if proc.proc.poll() is None:
            proc.proc.send_signal(signal.SIGTERM)
            try:
                proc.proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                killed = True
        rc = proc.stop(timeout=1)
        if killed:
            raise RuntimeError(
                f"etcd (pid {proc.pid}) did not exit within {self.stop_timeout:.0f} s of SIGTERM; "
                f"killed. {self.log}:\n{proc.log_tail()}"
            )
        if rc not in (0, -signal.SIGTERM):
            raise RuntimeError(
                f"etcd (pid {proc.pid}) exited with code {rc}; {self.log}:\n{proc.log_tail()}"
            )


class EtcdConn(Conn):
    """One gRPC channel (one HTTP/2 connection) to etcd; keys live under `prefix`."""

    page_limit = 10_000
    """Keys per Range page in list_all (Kubernetes' reflector pages by 500; clients
    that re-list big prefixes use larger pages)."""
    txn_ops = 1000
    """Puts per Txn in load(); at most Etcd.max_txn_ops."""
    load_concurrency = 8
    """Txns in flight in load()."""
    timeout = 120.0
    """Deadline of each unary call: a dead server fails the run instead of hanging it."""

    def __init__(self, address: str, prefix: str) -> None:
        self.address = address
        self.prefix = prefix.encode()
        self.range_end = prefix_end(self.prefix)
        self.channel = grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        ch = self.channel

        def unary(path: str, request: Any, response: Any) -> Any:
            return ch.unary_unary(
                path,
                request_serializer=request.SerializeToString,
                response_deserializer=response.FromString,
            )

        self._range = unary(RANGE, pb.RangeRequest, pb.RangeResponse)
        self._put = unary(PUT, pb.PutRequest, pb.PutResponse)
        self._txn = unary(TXN, pb.TxnRequest, pb.TxnResponse)
        self._compact = unary(COMPACT, pb.CompactionRequest, pb.CompactionResponse)
        self.watch_method = ch.stream_stream(
            WATCH,
            request_serializer=pb.WatchRequest.SerializeToString,
            response_deserializer=pb.WatchResponse.FromString,
        )
        self._watches: set[EtcdWatch] = set()

    async def put(self, key: str, value: bytes) -> int:
        request = pb.PutRequest(key=self.prefix + key.encode(), value=value)
        response = await self._put(request, timeout=self.timeout, wait_for_ready=True)
        return int(response.header.revision)

    async def put_window(self, items: list[tuple[str, bytes]], window: int) -> list[float]:
        """`window` workers share one index iterator, so at most `window` Puts are
        outstanding and a new one is sent as soon as any is acknowledged."""
        latencies = [0.0] * len(items)
        indexes = iter(range(len(items)))
        prefix = self.prefix
        put = self._put
        timeout = self.timeout

        async def worker() -> None:
            for i in indexes:
                key, value = items[i]
                request = pb.PutRequest(key=prefix + key.encode(), value=value)
                t0 = time.perf_counter()
                await put(request, timeout=timeout, wait_for_ready=True)
                latencies[i] = time.perf_counter() - t0

        await asyncio.gather(*(worker() for _ in range(max(1, min(window, len(items))))))
        return latencies

    async def put_batches(self, batches: list[list[tuple[str, bytes]]], window: int) -> list[float]:
        """One Txn of puts per batch (one Raft entry, atomic), `window` in flight."""
        latencies = [0.0] * len(batches)
        indexes = iter(range(len(batches)))

        async def worker() -> None:
            for i in indexes:
                ops = [
                    pb.RequestOp(request_put=pb.PutRequest(key=self.prefix + k.encode(), value=v))
                    for k, v in batches[i]
                ]
                t0 = time.perf_counter()
                await self._txn(pb.TxnRequest(success=ops), timeout=self.timeout)
                latencies[i] = time.perf_counter() - t0

        await asyncio.gather(*(worker() for _ in range(max(1, min(window, len(batches))))))
        return latencies

    async def load(self, items: Iterable[tuple[str, bytes]]) -> int:
        """Txns of `txn_ops` puts (one Raft entry, one fsync each), `load_concurrency`
        in flight; the items may be a generator."""
        pending: set[asyncio.Task[pb.TxnResponse]] = set()
        it = iter(items)
        try:
            while chunk := list(itertools.islice(it, self.txn_ops)):
                if len(pending) >= self.load_concurrency:
                    done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()
                ops = [
                    pb.RequestOp(request_put=pb.PutRequest(key=self.prefix + k.encode(), value=v))
                    for k, v in chunk
                ]
                call = self._txn(pb.TxnRequest(success=ops), timeout=self.timeout)
                pending.add(asyncio.ensure_future(call))
            for task in asyncio.as_completed(pending):
                await task
        finally:
            for task in pending:
                task.cancel()
        return await self.head()

    async def list_all(self) -> Listing:
        """Range pages of `page_limit` keys: the first at the current revision, the
        rest pinned to that revision, each starting just after the last key seen."""
        items: dict[str, bytes] = {}
        n = len(self.prefix)
        key = self.prefix
        revision = 0
        wire = 0
        pages = 0
        while True:
            request = pb.RangeRequest(
                key=key, range_end=self.range_end, limit=self.page_limit, revision=revision
            )
            response = await self._range(request, timeout=self.timeout, wait_for_ready=True)
            pages += 1
            wire += response.ByteSize()
            if revision == 0:
                revision = int(response.header.revision)
            for kv in response.kvs:
                items[kv.key[n:].decode()] = kv.value
            if not response.more or not response.kvs:
                break
            key = response.kvs[-1].key + b"\x00"
        return Listing(items=items, revision=revision, wire_bytes=wire, round_trips=pages)

    async def watch(self, on_event: OnEvent, *, from_revision: int) -> EtcdWatch:
        w = EtcdWatch(self, on_event, from_revision)
        self._watches.add(w)
        try:
            await w.wait_created()
        except BaseException:
            await self._close_watch(w)
            raise
        return w

    async def head(self) -> int:
        """A point Range on the bare prefix key: O(log n), unlike a count over the
        prefix; the response header carries the store's current revision."""
        request = pb.RangeRequest(key=self.prefix, limit=1, keys_only=True)
        response = await self._range(request, timeout=self.timeout, wait_for_ready=True)
        return int(response.header.revision)

    async def compact(self) -> None:
        revision = await self.head()
        try:
            await self._compact(
                pb.CompactionRequest(revision=revision, physical=True),
                timeout=self.timeout,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as e:
            # Compacting twice at the same head: nothing left to drop.
            if e.code() != grpc.StatusCode.OUT_OF_RANGE or "compacted" not in (e.details() or ""):
                raise

    async def close(self) -> None:
        for w in list(self._watches):
            await self._close_watch(w)
        await self.channel.close()

    async def _close_watch(self, w: EtcdWatch) -> None:
        self._watches.discard(w)
        await w.stop()


class EtcdWatch(Watch):
    """A Watch stream on the prefix that re-creates itself after the stream breaks.

    `last` is the highest revision delivered (or, for a watch "from now", the
    revision it was created at); after a restart the watch resumes at last + 1,
    so nothing is missed or repeated. etcd keeps a revision's events in one
    response, so `last` only advances by whole revisions."""

    retry_delay = 0.05
    """Before re-creating a broken stream, plus up to as much again of jitter."""

    def __init__(self, conn: EtcdConn, on_event: OnEvent, from_revision: int) -> None:
        self.conn = conn
        self.on_event = on_event
        self.last = from_revision
        self.reconnects = 0
        self.error: BaseException | None = None
        self._closing = False
        self._call: grpc.aio.StreamStreamCall[pb.WatchRequest, pb.WatchResponse] | None = None
        self._created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name=f"etcd-watch-{conn.address}")

    async def wait_created(self) -> None:
        """Until the server confirmed the first creation (changes after that are seen)."""
        await asyncio.wait({self._created, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._created.done():
            self._task.result()  # raises what ended the task
            raise RuntimeError("the etcd watch ended before it was created")

    async def close(self) -> None:
        await self.conn._close_watch(self)
        if self.error is not None:
            raise self.error

    async def stop(self) -> None:
        self._closing = True
        if self._call is not None:
            self._call.cancel()
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        except Exception as e:  # already recorded in self.error by _run
            self.error = self.error or e

    async def _run(self) -> None:
        try:
            while not self._closing:
                try:
                    await self._stream()
                except grpc.aio.AioRpcError as e:
                    if self._closing:
                        return
                    log.debug("etcd watch broke (%s): resuming after %d", e.code(), self.last)
                else:
                    log.debug("etcd watch stream ended: resuming after revision %d", self.last)
                self.reconnects += 1
                await asyncio.sleep(self.retry_delay * (1 + random.random()))
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.error = e
            log.error("etcd watch on %s failed: %s", self.conn.address, e)
            raise

    async def _stream(self) -> None:
        """One Watch stream: create, then deliver until it breaks or ends."""
        call = self.conn.watch_method(wait_for_ready=True)
        self._call = call
        try:
            create = pb.WatchCreateRequest(
                key=self.conn.prefix,
                range_end=self.conn.range_end,
                start_revision=self.last + 1 if self.last > 0 else 0,
            )
            await call.write(pb.WatchRequest(create_request=create))
            n = len(self.conn.prefix)
            on_event = self.on_event
            delete = pb.Event.DELETE
            while True:
                response = await call.read()
                if response is grpc.aio.EOF:
                    return
                assert isinstance(response, pb.WatchResponse)
                if response.compact_revision > 0:
                    raise WatchCompactedError(
                        f"etcd compacted to revision {response.compact_revision}; the watch "
                        f"needed revision {self.last + 1} onwards"
                    )
                if response.canceled:
                    raise RuntimeError(f"etcd canceled the watch: {response.cancel_reason!r}")
                if response.created:
                    if self.last == 0:
                        # Created "from now": etcd watches from header.revision + 1.
                        self.last = int(response.header.revision)
                    if not self._created.done():
                        self._created.set_result(None)
                floor = self.last
                for event in response.events:
                    kv = event.kv
                    revision = int(kv.mod_revision)
                    if revision <= floor:
                        continue  # defensive: never deliver a revision twice
                    value = None if event.type == delete else kv.value
                    on_event(kv.key[n:].decode(), value, revision)
                    self.last = revision
        finally:
            self._call = None
            call.cancel()
