"""The controller process: the store, the gRPC services, the HTTP endpoints.

Clients reach one address, `settings.listen`, served by the native data-plane
server (crates/server): it commits and reads on the store itself, serves the
worker streams (Sync, WaitApplied, Reconcile) with its sync hub, and proxies
every other call to the Python servicer, which listens on a loopback port of
its own. `Controller` owns both servers and every task it starts. Shutdown
(SIGTERM/SIGINT or `stop`) goes: not ready → close sync streams cleanly →
stop accepting RPCs and let in-flight ones finish (grace period), the native
server first, then the Python one → drain and close the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from statesync import _native
from statesync.contracts.registry import Contract
from statesync.core.model import CONTRACTS_NAMESPACE
from statesync.server.metrics import COMMIT_SECONDS_BUCKETS, CommitStats, Metrics, commit_metrics
from statesync.server.service import StatesyncService
from statesync.store.base import StoreSettings
from statesync.store.sqlite import SQLiteStore
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import pb

__all__ = ["DB_FILE", "Controller", "ServerSettings", "SyncSettings", "split_address"]

log = logging.getLogger("statesync.server")

DB_FILE = "statesync.sqlite"

_INTERNAL = "127.0.0.1:0"
"""Where the Python servicer listens: loopback only, reached through the data plane."""


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Timing and buffer limits of the sync streams the data plane serves."""

    heartbeat_s: float = 1.0
    """Send a progress notice after this long without sending anything."""
    silence_s: float = 10.0
    """Drop a stream that sent nothing (ACK, heartbeat) for this long."""
    window: int = 4096
    """Most changes sent to one worker and not yet acknowledged."""


@dataclass(frozen=True, slots=True)
class ServerSettings:
    data: Path = Path("statesync-data")
    listen: str = "127.0.0.1:7700"
    """gRPC address; port 0 picks a free port."""
    http: str | None = "127.0.0.1:7701"
    """/healthz, /readyz and /metrics; None: no HTTP."""
    sync: SyncSettings = field(default_factory=SyncSettings)
    store: StoreSettings = field(default_factory=StoreSettings)
    feed_revisions: int = 100_000
    """Revisions kept in memory for sync streams; a worker that falls further behind
    resyncs by reconciliation."""
    feed_bytes: int = 64 * 1024 * 1024
    feed_memory: int = 8 * 1024 * 1024
    """Bytes of the newest revisions held in memory; workers further behind, still
    within the buffer, read the store's log instead."""
    bootstrap_slots: int = 4
    """Snapshots streamed at once; more bootstrapping workers wait their turn."""
    grace_s: float = 5.0
    """On shutdown, how long in-flight calls may take to finish."""


def split_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"expected HOST:PORT, got {address!r}")
    return host.strip("[]"), int(port)


class Controller:
    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.port = 0
        self.http_port = 0
        self._ready = False
        self._stopped = asyncio.Event()

    async def start(self) -> None:
        settings = self.settings
        self.store = SQLiteStore(settings.data / DB_FILE, settings=settings.store)
        self.metrics = Metrics()
        self.metrics.watch(self._collect)
        self.service = StatesyncService(
            self.store, self._worker_statuses, data=str(settings.data.resolve())
        )
        # Only the data plane calls this server, over loopback, with unary calls
        # (status, compaction): the public port and the worker streams are its.
        self.grpc = grpc.aio.server(
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ]
        )
        pb_grpc.add_StatesyncServicer_to_server(self.service, self.grpc)
        internal = self.grpc.add_insecure_port(_INTERNAL)
        await self.grpc.start()
        try:
            self.data_plane = _native.serve(
                self.store.native,
                settings.listen,
                f"127.0.0.1:{internal}",
                list(COMMIT_SECONDS_BUCKETS),
                sync=settings.sync,
                snapshot_slots=settings.bootstrap_slots,
                feed_revisions=settings.feed_revisions,
                feed_bytes=settings.feed_bytes,
                feed_memory=settings.feed_memory,
            )
        except OSError as exc:
            await self.grpc.stop(None)
            self.store.close()
            raise OSError(f"cannot listen on {settings.listen}: {exc}") from exc
        self.port = self.data_plane.port
        self._http: asyncio.Server | None = None
        if settings.http:
            host, port = split_address(settings.http)
            self._http = await asyncio.start_server(self._serve_http, host, port)
            self.http_port = self._http.sockets[0].getsockname()[1]
        self._ready = True
        host = split_address(settings.listen)[0]
        log.info(
            "serving %s at revision %d: gRPC on %s:%d%s",
            settings.data,
            self.store.head_rev,
            host,
            self.port,
            f", HTTP on {split_address(settings.http)[0]}:{self.http_port}"
            if settings.http
            else "",
        )

    def _worker_statuses(self) -> list[pb.WorkerStatus]:
        """Every worker the data plane's sync hub knows, as `status` shows them."""
        return [pb.WorkerStatus.FromString(b) for b in self.data_plane.worker_statuses()]

    async def stop(self) -> None:
        if not self._ready:
            return
        self._ready = False
        log.info("shutting down: closing sync streams, finishing in-flight calls")
        # The data plane ends its sync streams first. Off the event loop: calls
        # the native server proxies are served here.
        await asyncio.to_thread(self.data_plane.shutdown, self.settings.grace_s)
        await self.grpc.stop(self.settings.grace_s)
        if self._http is not None:
            self._http.close()
            await self._http.wait_closed()
        await asyncio.to_thread(self.store.close)
        log.info("stopped at revision %d", self.store.head_rev)
        self._stopped.set()

    async def run(self, on_ready: Callable[[Controller], None] | None = None) -> None:
        """Serve until SIGTERM or SIGINT, then shut down gracefully."""
        loop = asyncio.get_running_loop()
        await self.start()
        if on_ready is not None:
            on_ready(self)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            await self.stop()

    # ------------------------------------------------------------ HTTP

    async def _serve_http(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, TimeoutError):
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            parts = head.split(b"\r\n", 1)[0].split()
            path = parts[1].decode("latin-1").split("?", 1)[0] if len(parts) > 1 else ""
            status, content_type, body = self._http_response(path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        writer.close()

    def _http_response(self, path: str) -> tuple[str, str, bytes]:
        text = "text/plain; charset=utf-8"
        if path == "/healthz":
            return "200 OK", text, b"ok\n"
        if path == "/readyz":
            failure = self.store.failure
            if failure is not None:
                return "503 Service Unavailable", text, f"not ready: {failure}\n".encode()
            if self._ready:
                return "200 OK", text, f"ready at revision {self.store.head_rev}\n".encode()
            return "503 Service Unavailable", text, b"not ready\n"
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.metrics.registry)
        return "404 Not Found", text, b"try /healthz, /readyz or /metrics\n"

    def _collect(self) -> Iterator[Metric]:
        yield from commit_metrics(
            CommitStats(*self.data_plane.stats()), created=self.service.started
        )
        head = self.store.head_rev
        yield GaugeMetricFamily("statesync_head_revision", "The newest revision.", value=head)
        yield GaugeMetricFamily(
            "statesync_compacted_revision",
            "History is compacted through this revision.",
            value=self.store.compacted_rev,
        )
        feed_revisions, feed_bytes, repair_seconds = self.data_plane.sync_stats()
        yield GaugeMetricFamily(
            "statesync_feed_revisions", "Revisions in the sync buffer.", value=feed_revisions
        )
        yield GaugeMetricFamily(
            "statesync_feed_bytes", "Bytes in the sync buffer.", value=feed_bytes
        )
        labels = ["worker"]
        applied = GaugeMetricFamily(
            "statesync_worker_applied_revision", "Revision each worker ACKed.", labels=labels
        )
        lag = GaugeMetricFamily(
            "statesync_worker_lag_revisions",
            "Head minus the worker's ACKed revision.",
            labels=labels,
        )
        lag_s = GaugeMetricFamily(
            "statesync_worker_lag_seconds",
            "Age of the oldest revision the worker has not ACKed.",
            labels=labels,
        )
        connected = GaugeMetricFamily(
            "statesync_worker_connected", "1 while the worker's stream is open.", labels=labels
        )
        buffered = GaugeMetricFamily(
            "statesync_worker_buffered_changes",
            "Changes sent to the worker and not yet ACKed.",
            labels=labels,
        )
        nacks = CounterMetricFamily("statesync_worker_nacks", "NACKs per worker.", labels=labels)
        resyncs = CounterMetricFamily(
            "statesync_worker_resyncs", "Snapshot resyncs per worker.", labels=labels
        )
        divergences = CounterMetricFamily(
            "statesync_worker_divergences",
            "Digest mismatches detected per worker (each is localized and repaired).",
            labels=labels,
        )
        repaired = CounterMetricFamily(
            "statesync_worker_keys_repaired", "Drifted keys repaired per worker.", labels=labels
        )
        held = GaugeMetricFamily(
            "statesync_worker_held_keys",
            "Keys the worker refused (NACKed) and holds at their last good value.",
            labels=labels,
        )
        served = GaugeMetricFamily(
            "statesync_worker_schema_version",
            "Schema version each worker is served in, per namespace it declared versions for.",
            labels=["worker", "namespace"],
        )
        for status in self._worker_statuses():
            worker = [status.worker_id]
            applied.add_metric(worker, status.applied_rev)
            lag.add_metric(worker, status.lag_revisions)
            lag_s.add_metric(worker, max(0.0, status.lag_seconds))
            connected.add_metric(worker, 1 if status.connected else 0)
            buffered.add_metric(worker, status.buffered)
            nacks.add_metric(worker, status.nacks)
            resyncs.add_metric(worker, status.resyncs)
            # Keys shown (at most 1,000; a keyless marker says how many more).
            held.add_metric(worker, sum(1 for h in status.held if h.key))
            divergences.add_metric(worker, status.divergences)
            repaired.add_metric(worker, status.keys_repaired)
            for versions in status.served:
                served.add_metric([status.worker_id, versions.ns], versions.versions[0])
        yield from (applied, lag, lag_s, connected, buffered, nacks, resyncs, held, served)
        yield from (divergences, repaired)
        seconds = sorted(repair_seconds)
        repair_time = GaugeMetricFamily(
            "statesync_repair_seconds",
            "Detection to verified repair, over the last 1000 repairs.",
            labels=["quantile"],
        )
        for q in (0.5, 0.99, 1.0):
            if seconds:
                repair_time.add_metric(
                    [str(q)], seconds[min(len(seconds) - 1, int(q * len(seconds)))]
                )
        yield repair_time
        current = GaugeMetricFamily(
            "statesync_schema_version",
            "The newest registered schema version per namespace.",
            labels=["namespace"],
        )
        for record in self.store.range(CONTRACTS_NAMESPACE, limit=100_000):
            contract = Contract.from_record(record)
            current.add_metric([contract.namespace], contract.current)
        yield current
        labels = ["namespace", "active", "candidate"]
        compared = CounterMetricFamily(
            "statesync_shadow_decisions",
            "Writes based on an old revision on which a shadow policy was evaluated.",
            labels=labels,
        )
        disagreed = CounterMetricFamily(
            "statesync_shadow_disagreements",
            "Of those, the writes the shadow policy would have decided differently.",
            labels=labels,
        )
        for ns, stats in self.store.shadow_stats().items():
            names = [ns, stats.active.value, stats.candidate.value]
            compared.add_metric(names, stats.compared)
            disagreed.add_metric(names, stats.disagreed)
        yield from (compared, disagreed)
