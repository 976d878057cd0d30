"""The gRPC service: commands, reads, status and sync streams over the store.

A thin adapter: requests become core commands, results and errors become
wire messages. Errors keep their type across the wire (see `statesync.wire`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc

from statesync.core.commands import Committed, Limits
from statesync.core.errors import InvalidInputError, StatesyncError
from statesync.core.model import CONTRACTS_NAMESPACE
from statesync.server.metrics import Metrics
from statesync.server.reconcile import RepairRecord
from statesync.server.sync import SyncHub, WorkerRecord
from statesync.store.base import Store
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import (
    ERROR_METADATA_KEY,
    command_from_pb,
    committed_to_pb,
    entry_to_pb,
    error_to_pb,
    held_to_pb,
    pb,
    status_code,
)

__all__ = ["StatesyncService"]

log = logging.getLogger("statesync.server")

_STREAM_DEPTH = 256
"""Commands of one CommitStream in flight before the server stops reading it."""


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: StatesyncError) -> None:
    context.set_trailing_metadata(((ERROR_METADATA_KEY, error_to_pb(error).SerializeToString()),))
    await context.abort(status_code(error), str(error))


def _rev_arg(rev: int) -> int | None:
    if rev < 0:
        raise InvalidInputError(f"a revision is an integer >= 0, got {rev}")
    return rev or None


class StatesyncService(pb_grpc.StatesyncServicer):
    def __init__(
        self, store: Store, hub: SyncHub, metrics: Metrics, *, data: str, limits: Limits
    ) -> None:
        self.store = store
        self.limits = limits
        self.hub = hub
        self.metrics = metrics
        self.data = data
        self.started = time.time()

    async def _commit(self, request: pb.CommandRequest) -> Committed:
        started = time.perf_counter()
        try:
            committed = await self.store.commit_async(command_from_pb(request, self.limits))
        except StatesyncError as exc:
            self.metrics.commit_errors.labels(type(exc).__name__).inc()
            raise
        self.metrics.commits.inc()
        self.metrics.commit_seconds.observe(time.perf_counter() - started)
        return committed

    async def Commit(
        self,
        request: pb.CommandRequest,
        context: grpc.aio.ServicerContext[pb.CommandRequest, pb.CommandReply],
    ) -> pb.CommandReply:
        try:
            return committed_to_pb(await self._commit(request))
        except StatesyncError as exc:
            await _abort(context, exc)
            raise  # abort raised already; this keeps type checkers informed

    async def CommitStream(
        self,
        requests: AsyncIterator[pb.CommandRequest],
        context: grpc.aio.ServicerContext[pb.CommandRequest, pb.CommandReply],
    ) -> AsyncIterator[pb.CommandReply]:
        """Commands are submitted as they arrive (sharing group commits) and
        answered in order; a bounded queue pushes back on a fast client."""
        pending: asyncio.Queue[tuple[int, asyncio.Task[Committed]] | None] = asyncio.Queue(
            _STREAM_DEPTH
        )

        async def read() -> None:
            async for request in requests:
                await pending.put((request.tag, asyncio.ensure_future(self._commit(request))))
            await pending.put(None)

        reader = asyncio.create_task(read(), name="commit-stream-reader")
        try:
            while (item := await pending.get()) is not None:
                tag, task = item
                try:
                    yield committed_to_pb(await task, tag=tag)
                except StatesyncError as exc:
                    yield pb.CommandReply(tag=tag, error=error_to_pb(exc))
            await reader
        finally:
            reader.cancel()

    async def Get(
        self, request: pb.GetRequest, context: grpc.aio.ServicerContext[pb.GetRequest, pb.GetReply]
    ) -> pb.GetReply:
        try:
            rev = _rev_arg(request.rev)
            record = self.store.get(request.ns, request.key, rev=rev)
        except StatesyncError as exc:
            await _abort(context, exc)
            raise
        at = rev or self.store.head_rev
        if record is None:
            return pb.GetReply(rev=at)
        return pb.GetReply(entry=entry_to_pb(record), rev=at)

    async def Range(
        self,
        request: pb.RangeRequest,
        context: grpc.aio.ServicerContext[pb.RangeRequest, pb.RangePage],
    ) -> AsyncIterator[pb.RangePage]:
        page_size = request.page_size or 1000
        try:
            rev = _rev_arg(request.rev) or self.store.head_rev
            start_after = None
            while True:
                records = await asyncio.to_thread(
                    self.store.range,
                    request.ns,
                    prefix=request.prefix,
                    rev=rev,
                    start_after=start_after,
                    limit=page_size,
                )
                if records or start_after is None:
                    yield pb.RangePage(entries=[entry_to_pb(r) for r in records], rev=rev)
                if len(records) < page_size:
                    return
                start_after = records[-1].key
        except StatesyncError as exc:
            await _abort(context, exc)

    async def Snapshot(
        self,
        request: pb.SnapshotRequest,
        context: grpc.aio.ServicerContext[pb.SnapshotRequest, pb.SnapshotChunk],
    ) -> AsyncIterator[pb.SnapshotChunk]:
        try:
            snap = self.store.snapshot(
                list(request.namespaces) or None,
                rev=_rev_arg(request.rev),
                chunk_size=request.chunk_size or 1000,
            )
            await asyncio.to_thread(snap.__enter__)
        except StatesyncError as exc:
            await _abort(context, exc)
            return
        try:
            chunks = snap.chunks()
            # "Every namespace" means the user's: contracts are exported by naming them.
            skip = () if request.namespaces else (CONTRACTS_NAMESPACE,)
            while (records := await asyncio.to_thread(next, chunks, None)) is not None:
                entries = [entry_to_pb(r) for r in records if r.namespace not in skip]
                if entries:
                    yield pb.SnapshotChunk(rev=snap.rev, entries=entries)
            digests = [
                pb.NamespaceDigest(ns=ns, root=snap.digests[ns], count=snap.counts[ns])
                for ns in snap.namespaces
                if ns not in skip
            ]
            yield pb.SnapshotChunk(rev=snap.rev, digests=digests, last=True)
        finally:
            await asyncio.to_thread(snap.__exit__, None, None, None)

    async def Compact(
        self,
        request: pb.CompactRequest,
        context: grpc.aio.ServicerContext[pb.CompactRequest, pb.CompactReply],
    ) -> pb.CompactReply:
        try:
            await asyncio.to_thread(self.store.compact, request.rev)
        except StatesyncError as exc:
            await _abort(context, exc)
        log.info("compacted history through revision %d", self.store.compacted_rev)
        return pb.CompactReply(compacted_rev=self.store.compacted_rev)

    async def Status(
        self,
        request: pb.StatusRequest,
        context: grpc.aio.ServicerContext[pb.StatusRequest, pb.StatusReply],
    ) -> pb.StatusReply:
        reply = pb.StatusReply(
            head_rev=self.store.head_rev,
            compacted_rev=self.store.compacted_rev,
            data=self.data,
            started_unix=self.started,
        )
        reply.workers.extend(self.worker_status(r) for r in self.hub.workers.values())
        for ns in self.store.namespaces():
            reply.namespaces.add(ns=ns, root=self.store.digest(ns))
        return reply

    def worker_status(self, record: WorkerRecord) -> pb.WorkerStatus:
        session = record.session
        head = self.store.head_rev
        lag = max(0, head - session.acked_rev)
        lag_s = 0.0
        if lag:
            first = self.hub.feed.commit_time(session.acked_rev)
            lag_s = max(0.0, time.time() - first) if first is not None else -1.0
        if not record.connected:
            state = "DISCONNECTED"
        elif session.nacked:
            state = "NACKED"
        else:
            state = session.state.value
        return pb.WorkerStatus(
            worker_id=session.worker_id,
            connected=record.connected,
            namespaces=sorted(session.namespaces),
            applied_rev=session.acked_rev,
            lag_revisions=lag,
            lag_seconds=lag_s,
            last_ack_unix=time.time() - (time.monotonic() - session.acked_at),
            digest=record.digest,
            nacks=session.nacks,
            resyncs=session.resyncs,
            state=state,
            held=[held_to_pb(h) for h in session.held.values()],
            peer=record.peer,
            buffered=session.buffered,
            served=[
                pb.SchemaVersions(ns=ns, versions=[record.targets.get(ns, 0)])
                for ns in sorted(record.declared)
            ],
            divergences=record.repairs.divergences,
            keys_repaired=record.repairs.keys_repaired,
            repairs=[r.to_pb() for r in record.repairs.history],
        )

    async def Reconcile(
        self,
        request: pb.ReconcileRequest,
        context: grpc.aio.ServicerContext[pb.ReconcileRequest, pb.ReconcileReply],
    ) -> pb.ReconcileReply:
        deadline = time.monotonic() + (request.timeout_s or 30.0)
        wanted = set(request.workers)
        reply = pb.ReconcileReply()
        for worker_id in sorted(wanted - self.hub.workers.keys()):
            reply.results.add(worker_id=worker_id, record=pb.RepairRecord(outcome="unknown worker"))
        checks = []
        for worker_id, record in sorted(self.hub.workers.items()):
            if wanted and worker_id not in wanted:
                continue
            if not record.connected:
                reply.results.add(
                    worker_id=worker_id, record=pb.RepairRecord(outcome="not connected")
                )
                continue
            namespaces = [
                ns
                for ns in sorted(record.session.namespaces)
                if not request.namespaces or ns in request.namespaces
            ]
            checks.append((worker_id, self._check_worker(record, namespaces, deadline)))
        for worker_id, records in zip(
            [w for w, _ in checks], await asyncio.gather(*(c for _, c in checks)), strict=True
        ):
            for r in records:
                reply.results.add(worker_id=worker_id, record=r.to_pb())
        return reply

    async def _check_worker(
        self, record: WorkerRecord, namespaces: list[str], deadline: float
    ) -> list[RepairRecord]:
        reconciler = self.hub.reconciler
        return [
            await reconciler.check(record, ns, "requested by statesync reconcile", deadline)
            for ns in namespaces
        ]

    async def WaitApplied(
        self,
        request: pb.WaitAppliedRequest,
        context: grpc.aio.ServicerContext[pb.WaitAppliedRequest, pb.WaitAppliedReply],
    ) -> pb.WaitAppliedReply:
        applied, pending = await self.hub.wait_applied(
            request.rev,
            set(request.namespaces),
            set(request.workers),
            max(0.0, request.timeout_s or 30.0),
        )
        reply = pb.WaitAppliedReply(applied=applied, complete=not pending)
        for worker_id in pending:
            record = self.hub.workers.get(worker_id)
            if record is None:
                reply.pending.add(worker_id=worker_id, state="UNKNOWN")
            else:
                reply.pending.append(self.worker_status(record))
        return reply

    async def Sync(
        self,
        requests: AsyncIterator[pb.SyncRequest],
        context: grpc.aio.ServicerContext[pb.SyncRequest, pb.SyncReply],
    ) -> AsyncIterator[pb.SyncReply]:
        try:
            async for reply in self.hub.serve(requests, context):
                yield reply
        except StatesyncError as exc:
            log.warning("sync stream from %s ended: %s", context.peer(), exc)
            await _abort(context, exc)
