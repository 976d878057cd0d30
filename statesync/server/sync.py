"""The sync stream adapter: one asyncio loop per worker around `WorkerSession`.

The session (in the core) decides; this module moves messages. A stream
starts with a snapshot or at the worker's revision, catches up from the
store's log while it is older than the shared feed, then tails the feed.
Bootstraps are streamed chunk by chunk under a small semaphore, so many
workers reconnecting at once cost bounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass, field
from typing import Any

import grpc

from statesync.core.delta import make_delta
from statesync.core.errors import CompactedError, ProtocolError, StatesyncError
from statesync.core.sync import HeldKey, StreamState, SyncSettings, WorkerSession
from statesync.server.feed import ChangeFeed, Slice, revisions_to_pb
from statesync.server.reconcile import Reconciler, WorkerRepairs
from statesync.server.versions import Targets, VersionServer
from statesync.store.base import Store
from statesync.wire import entry_to_pb, held_from_pb, pb

__all__ = ["PEER_METADATA_KEY", "SyncHub", "WorkerRecord", "peer_of"]

PEER_METADATA_KEY = "statesync-peer"
"""The caller's address, set by the data-plane server that proxies calls here
(without it this servicer would see the proxy's loopback address)."""


def peer_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The caller's address in gRPC's `ipv4:HOST:PORT` form."""
    for key, value in context.invocation_metadata() or ():
        if key == PEER_METADATA_KEY:
            return value if isinstance(value, str) else value.decode()
    return context.peer()


log = logging.getLogger("statesync.sync")


@dataclass(slots=True)
class WorkerRecord:
    """What `status` shows about a worker, kept after it disconnects."""

    session: WorkerSession
    peer: str
    connected: bool = True
    digest: str = "unknown"
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    declared: dict[str, list[int]] = field(default_factory=dict)
    """Schema versions the worker understands, per namespace (its hello)."""
    targets: Targets = field(default_factory=dict)
    """The version each declared namespace is served in."""
    repairs: WorkerRepairs = field(default_factory=WorkerRepairs)
    full_resync: bool = False
    """The next resync must send a snapshot (e.g. the served schema version changed)."""


class SyncHub:
    """Every sync stream of one controller, and the state `status` reports."""

    def __init__(
        self,
        store: Store,
        feed: ChangeFeed,
        settings: SyncSettings,
        *,
        bootstrap_slots: int = 4,
        catch_up_slots: int = 4,
        chunk_size: int = 2000,
    ) -> None:
        self.store = store
        self.feed = feed
        self.settings = settings
        self.workers: dict[str, WorkerRecord] = {}
        self._bootstraps = asyncio.Semaphore(bootstrap_slots)
        self._catch_ups = asyncio.Semaphore(catch_up_slots)
        self._chunk_size = chunk_size
        self._acked = asyncio.Event()
        self._closing = False
        self._deltas: dict[tuple[int, str, str], bytes | None] = {}
        self.versions = VersionServer(store)
        feed.contract_listeners.append(self._contracts_changed)
        self.reconciler = Reconciler(store, self.versions, retry_after_s=2 * settings.heartbeat_s)

    # ------------------------------------------------------------ the stream

    async def serve(
        self,
        requests: AsyncIterator[pb.SyncRequest],
        context: grpc.aio.ServicerContext[pb.SyncRequest, pb.SyncReply],
    ) -> AsyncIterator[pb.SyncReply]:
        now = time.monotonic()
        session = WorkerSession(self.settings, now=now)
        try:
            first = await asyncio.wait_for(anext(requests), self.settings.silence_s)
        except (StopAsyncIteration, TimeoutError):
            return
        if first.WhichOneof("msg") != "hello":
            raise ProtocolError(f"the first message must be a hello, got {first.WhichOneof('msg')}")
        hello = first.hello
        needs_snapshot = session.hello(
            worker_id=hello.worker_id,
            namespaces=hello.namespaces,
            from_rev=hello.from_rev,
            observer=hello.observer,
            held=[held_from_pb(h) for h in hello.held],
            head_rev=self.feed.head_rev,
            compacted_rev=self.store.compacted_rev,
            now=now,
            deltas=hello.deltas,
        )
        record = WorkerRecord(session, peer_of(context))
        record.declared = {v.ns: list(v.versions) for v in hello.versions}
        record.targets = self.versions.targets(record.declared)
        stale = [
            f"{v.ns} (replica in v{v.replica_version}, now served in v{record.targets[v.ns]})"
            for v in hello.versions
            if v.ns in record.targets and v.replica_version not in (-1, record.targets[v.ns])
        ]
        if stale and not needs_snapshot:
            session.fell_behind("schema version changed: " + ", ".join(stale))
            needs_snapshot = True
        # Watchers hold no replica to reconcile; empty replicas have nothing to keep; a
        # replica from after the head (the controller was restored from an older copy)
        # cannot move back by reconciliation: a snapshot replaces it.
        record.full_resync = (
            bool(stale)
            or hello.from_rev == 0
            or hello.observer
            or hello.from_rev > self.feed.head_rev
        )
        self._register(record)
        if needs_snapshot:
            log.info("worker %s: %s", session.worker_id or "(watch)", session.resync_reason)
        receiver = asyncio.create_task(
            self._receive(record, requests), name=f"sync-receive:{session.worker_id}"
        )
        self.feed.subscribe(record.wake)
        try:
            async for reply in self._send(record, receiver):
                yield reply
        finally:
            self.feed.unsubscribe(record.wake)
            receiver.cancel()
            session.close()
            record.connected = False
            log.info(
                "worker %s disconnected at revision %d",
                session.worker_id or "(watch)",
                session.acked_rev,
            )

    def _register(self, record: WorkerRecord) -> None:
        session = record.session
        if session.observer:
            return
        old = self.workers.get(session.worker_id)
        if old is not None and old.connected:
            log.warning("worker %s connected again: closing its older stream", session.worker_id)
            old.connected = False
            old.wake.set()
        if old is not None:
            session.nacks += old.session.nacks
            session.resyncs += old.session.resyncs
            record.repairs = old.repairs
            record.repairs.active = None
        self.workers[session.worker_id] = record
        log.info(
            "worker %s connected from %s: namespaces %s, from revision %d",
            session.worker_id,
            record.peer,
            ",".join(sorted(session.namespaces)),
            session.acked_rev,
        )

    async def _send(
        self, record: WorkerRecord, receiver: asyncio.Task[None]
    ) -> AsyncIterator[pb.SyncReply]:
        session = record.session
        fed = False  # served from the feed at least once on this stream
        while record.connected and not self._closing:
            if receiver.done():
                receiver.result()  # raises the worker's protocol error, if any
                if not session.observer:  # a watcher half-closes after its hello
                    return
            now = time.monotonic()
            if session.silent(now) and not session.observer:
                log.warning(
                    "worker %s: nothing heard for %.1f s: marking it disconnected",
                    session.worker_id,
                    now - session.last_heard,
                )
                return
            if session.state is StreamState.SNAPSHOTTING:
                self.reconciler.abandon(record, "resync")
                if record.full_resync:
                    async for reply in self._snapshot(record):
                        yield reply
                else:
                    yield self._reconcile_resync(record)
                record.full_resync = False
                fed = False
                continue
            message = await self.reconciler.next_message(record)
            if message is not None:
                yield message
                continue
            room = session.room()
            chunk: Slice | None = None
            if room > 0 and session.cursor < self.feed.head_rev:
                chunk = self.feed.read(session.cursor, session.namespaces, room)
                if chunk is None and fed:
                    session.fell_behind(
                        f"fell behind the sync buffer ({self.feed.size_revisions} revisions): "
                        f"at revision {session.cursor}, head {self.feed.head_rev}"
                    )
                    log.warning("worker %s %s", session.worker_id, session.resync_reason)
                    continue
                if chunk is None:
                    try:
                        chunk = await self._catch_up(session, room)
                    except CompactedError as exc:
                        session.fell_behind(str(exc))
                        continue
                else:
                    fed = True
            if chunk is not None and chunk.revisions:
                batch = pb.ChangeBatch(prev_rev=session.sent_rev, rev=chunk.rev)
                revisions = chunk.revisions
                if session.deltas:
                    # Translated namespaces go whole: the worker's base is not what we store.
                    skip = {*session.held, *record.targets}
                    revisions = [self._with_deltas(r, skip) for r in revisions]
                if record.targets:
                    revisions = [self.versions.revision(r, record.targets) for r in revisions]
                batch.revisions.extend(revisions)
                session.sent(
                    prev_rev=session.sent_rev, rev=chunk.rev, changes=chunk.changes, now=now
                )
                yield pb.SyncReply(batch=batch)
                continue
            if chunk is not None:
                session.skip(chunk.rev)
            if session.progress_due(now):
                rev = session.progress_sent(now)
                yield pb.SyncReply(progress=pb.Progress(rev=rev, head_rev=self.feed.head_rev))
            if session.cursor >= self.feed.head_rev or session.room() == 0:
                record.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(record.wake.wait(), self.settings.heartbeat_s)

    def _with_deltas(self, revision: pb.Revision, skip: Collection[object]) -> pb.Revision:
        """The revision with each update sent as a patch where that is smaller;
        never for a (namespace, key) or namespace in `skip`."""
        out: pb.Revision | None = None
        for i, change in enumerate(revision.changes):
            if change.kind != pb.Change.PUT or change.prev_mod_rev == 0:
                continue
            if (change.ns, change.key) in skip or change.ns in skip:
                continue
            delta = self._delta(revision.rev, change)
            if delta is None:
                continue
            if out is None:
                out = pb.Revision()
                out.CopyFrom(revision)
            out.changes[i].ClearField("value")
            out.changes[i].patch = delta
        return revision if out is None else out

    def _delta(self, rev: int, change: pb.Change) -> bytes | None:
        cache_key = (rev, change.ns, change.key)
        if cache_key in self._deltas:
            return self._deltas[cache_key]
        try:
            base = self.store.get(change.ns, change.key, rev=change.prev_mod_rev)
        except StatesyncError:  # compacted: the full value it is
            base = None
        delta = (
            None if base is None else make_delta(change.ns, change.key, base.value, change.value)
        )
        if len(self._deltas) >= 50_000:
            self._deltas.clear()
        self._deltas[cache_key] = delta
        return delta

    async def _catch_up(self, session: WorkerSession, room: int) -> Slice:
        """Read the log after the cursor from the store (older than the feed)."""
        async with self._catch_ups:
            head = self.store.head_rev
            changes = await asyncio.to_thread(
                self.store.changes,
                session.cursor,
                limit=max(1, room),
                namespaces=sorted(session.namespaces),
            )
        changes = [c for c in changes if c.rev <= head]
        revisions = revisions_to_pb(changes)
        full = len(changes) >= room
        rev = revisions[-1].rev if full and revisions else head
        return Slice(session.cursor, max(rev, session.cursor), revisions, len(changes))

    def _reconcile_resync(self, record: WorkerRecord) -> pb.SyncReply:
        """Resync by reconciliation: the worker keeps its replica and moves to the
        head; the digest check at its next ACK finds what it lacks, and descent
        repairs exactly that (a snapshot only for an empty replica)."""
        session = record.session
        head = self.feed.head_rev
        reason = f"{session.resync_reason}; reconciling instead of a snapshot"
        log.info("worker %s: %s (moving it to revision %d)", session.worker_id, reason, head)
        session.snapshot_sent(head, time.monotonic(), snapshot=False)
        return pb.SyncReply(resync=pb.Resync(reason=reason, rev=head, reconcile=True))

    async def _snapshot(self, record: WorkerRecord) -> AsyncIterator[pb.SyncReply]:
        """Stream a bootstrap: Resync (reason, revision, digests), then chunks."""
        session = record.session
        # One acquire keeps the stream's place in the queue; while it waits, a
        # heartbeat every interval says the stream is queued, not stale.
        acquire = asyncio.ensure_future(self._bootstraps.acquire())
        try:
            while not acquire.done():
                done, _ = await asyncio.wait({acquire}, timeout=self.settings.heartbeat_s)
                if not done:
                    yield pb.SyncReply(
                        heartbeat=pb.Heartbeat(sent_unix=time.time(), snapshot_queued=True)
                    )
        except BaseException:
            if acquire.done() and not acquire.cancelled():
                self._bootstraps.release()
            else:
                acquire.cancel()
            raise
        try:
            snap = await asyncio.to_thread(
                self.store.snapshot, sorted(session.namespaces), chunk_size=self._chunk_size
            )
            await asyncio.to_thread(snap.__enter__)
            try:
                digests = [
                    pb.NamespaceDigest(ns=ns, root=snap.digests[ns], count=snap.counts[ns])
                    for ns in snap.namespaces
                ]
                yield pb.SyncReply(
                    resync=pb.Resync(reason=session.resync_reason, rev=snap.rev, digests=digests)
                )
                chunks = snap.chunks()
                while True:
                    records = await asyncio.to_thread(next, chunks, None)
                    if records is None:
                        break
                    entries = [self.versions.entry(entry_to_pb(r), record.targets) for r in records]
                    yield pb.SyncReply(chunk=pb.SnapshotChunk(rev=snap.rev, entries=entries))
                # Before the last chunk goes out: the worker may ACK it at once.
                session.snapshot_sent(snap.rev, time.monotonic())
                yield pb.SyncReply(chunk=pb.SnapshotChunk(rev=snap.rev, digests=digests, last=True))
            finally:
                await asyncio.to_thread(snap.__exit__, None, None, None)
        finally:
            self._bootstraps.release()
        log.info(
            "worker %s: snapshot at revision %d sent (%s)",
            session.worker_id or "(watch)",
            snap.rev,
            ", ".join(f"{d.ns}: {d.count} keys" for d in digests) or "no keys",
        )

    def _contracts_changed(self, namespaces: set[str]) -> None:
        """Re-serve workers whose target version changed (a newer declared version
        was registered) from a snapshot in that version."""
        self.versions.changed(namespaces)
        for record in self.workers.values():
            if not record.connected or record.declared.keys().isdisjoint(namespaces):
                continue
            try:
                targets = self.versions.targets(record.declared)
            except StatesyncError as exc:
                log.error("worker %s: %s; closing its stream", record.session.worker_id, exc)
                record.connected = False
                record.wake.set()
                continue
            if targets == record.targets:
                continue
            changed = ", ".join(f"{ns} v{v}" for ns, v in sorted(targets.items()))
            record.targets = targets
            if record.session.state is StreamState.TAILING:
                record.full_resync = True
                record.session.fell_behind(f"now served in {changed}: re-sending the state")
                log.info("worker %s %s", record.session.worker_id, record.session.resync_reason)
                record.wake.set()

    async def _receive(self, record: WorkerRecord, requests: AsyncIterator[pb.SyncRequest]) -> None:
        session = record.session
        async for request in requests:
            now = time.monotonic()
            kind = request.WhichOneof("msg")
            if kind == "ack":
                ack = request.ack
                session.ack(ack.rev, {d.ns: (d.root, d.count) for d in ack.digests}, now)
                session.set_held(held_from_pb(h) for h in ack.held)
                record.digest, differing = await self._agreement(session)
                self.reconciler.on_ack(record, differing, repaired=ack.repaired)
                record.wake.set()
                self._acked.set()
                self._acked = asyncio.Event()
            elif kind == "nack":
                nack = request.nack
                held = HeldKey.from_peer(nack.ns, nack.key, nack.rev, nack.reason)
                session.nack(held, now)
                log.warning(
                    "worker %s NACKed revision %d (%s/%s): %s",
                    session.worker_id,
                    held.rev,
                    held.namespace,
                    held.key,
                    held.reason,
                )
            elif kind == "answer":
                session.heard(now)
                await self.reconciler.on_answer(record, request.answer)
            elif kind == "hello":
                raise ProtocolError(f"a second hello from worker {session.worker_id}")
            else:  # a heartbeat, or a message kind from a newer worker: it is alive
                session.heard(now)
        if not session.observer:  # a watcher half-closes after its hello and keeps reading
            record.connected = False
            record.wake.set()

    async def _agreement(self, session: WorkerSession) -> tuple[str, list[str]]:
        """Compare the worker's digests with ours at the revision it applied:
        ("agree" | "differ" | "unknown", the namespaces that differ)."""
        if not session.acked_digests:
            return "unknown", []
        differing = []
        for ns, (root, _count) in sorted(session.acked_digests.items()):
            ours = self.feed.root_at(ns, session.acked_rev)
            if ours is None:
                try:
                    ours = await asyncio.to_thread(self.store.digest, ns, rev=session.acked_rev)
                except StatesyncError:
                    return "unknown", []
            if ours != root:
                differing.append(ns)
        return ("differ" if differing else "agree"), differing

    # ------------------------------------------------------------ queries

    async def wait_applied(
        self, rev: int, namespaces: set[str], workers: set[str], timeout: float
    ) -> tuple[list[str], list[str]]:
        """Wait until every wanted worker ACKed `rev`: the named `workers`, or
        else every connected worker subscribed to one of `namespaces`.
        Returns (applied, pending) worker ids."""
        deadline = time.monotonic() + timeout
        while True:
            applied: list[str] = []
            pending = sorted(workers - self.workers.keys())
            for worker_id, record in self.workers.items():
                wanted = (
                    worker_id in workers
                    if workers
                    else (record.connected and not record.session.namespaces.isdisjoint(namespaces))
                )
                if not wanted:
                    continue
                if record.connected and record.session.acked_rev >= rev:
                    applied.append(worker_id)
                else:
                    pending.append(worker_id)
            remaining = deadline - time.monotonic()
            if not pending or remaining <= 0:
                return sorted(applied), sorted(pending)
            acked = self._acked
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(acked.wait(), remaining)

    def close(self) -> None:
        self._closing = True
        for record in self.workers.values():
            record.wake.set()
