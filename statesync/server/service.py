"""The control plane's gRPC service: status, compaction, reconcile, waits and
sync streams over the store.

Commits and reads (Commit, CommitStream, Get, Range, Snapshot) are served by
the native data-plane server (crates/server), which proxies every other call
here: this servicer answers only those, on a loopback address, and the
generated base class answers UNIMPLEMENTED for the rest. Errors keep their
type across the wire (see `statesync.wire`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from statesync.core.errors import StatesyncError
from statesync.server.reconcile import RepairRecord
from statesync.server.sync import SyncHub, WorkerRecord, peer_of
from statesync.store.base import Store
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import (
    ERROR_METADATA_KEY,
    error_to_pb,
    held_to_pb,
    pb,
    status_code,
)

__all__ = ["StatesyncService"]

log = logging.getLogger("statesync.server")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: StatesyncError) -> None:
    context.set_trailing_metadata(((ERROR_METADATA_KEY, error_to_pb(error).SerializeToString()),))
    await context.abort(status_code(error), str(error))


class StatesyncService(pb_grpc.StatesyncServicer):
    def __init__(self, store: Store, hub: SyncHub, *, data: str) -> None:
        self.store = store
        self.hub = hub
        self.data = data
        self.started = time.time()
        self.native_workers: Callable[[], list[pb.WorkerStatus]] | None = None
        """The workers whose streams the native data plane serves, if it serves Sync."""

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
        reply.workers.extend(self.worker_statuses())
        for ns in self.store.namespaces():
            root = self.store.digest_node(ns, "")
            reply.namespaces.add(ns=ns, root=root.fingerprint, count=root.count)
        return reply

    def worker_statuses(self) -> list[pb.WorkerStatus]:
        """Every worker's status: those of this hub and of the native one."""
        statuses = [self.worker_status(r) for r in list(self.hub.workers.values())]
        if self.native_workers is not None:
            statuses.extend(self.native_workers())
        return statuses

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
            log.warning("sync stream from %s ended: %s", peer_of(context), exc)
            await _abort(context, exc)
