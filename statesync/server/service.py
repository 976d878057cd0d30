"""The control plane's gRPC service: status and compaction over the store.

Commits and reads (Commit, CommitStream, Get, Range, Snapshot) and the worker
streams (Sync, WaitApplied, Reconcile) are served by the native data-plane
server (crates/server), which proxies every other call here: this servicer
answers only those, on a loopback address, and the generated base class
answers UNIMPLEMENTED for the rest. Errors keep their type across the wire
(see `statesync.wire`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from statesync.core.errors import StatesyncError
from statesync.store.base import Store
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import ERROR_METADATA_KEY, error_to_pb, pb, status_code

__all__ = ["StatesyncService"]

log = logging.getLogger("statesync.server")


async def _abort(context: grpc.aio.ServicerContext[Any, Any], error: StatesyncError) -> None:
    context.set_trailing_metadata(((ERROR_METADATA_KEY, error_to_pb(error).SerializeToString()),))
    await context.abort(status_code(error), str(error))


class StatesyncService(pb_grpc.StatesyncServicer):
    def __init__(
        self, store: Store, worker_statuses: Callable[[], list[pb.WorkerStatus]], *, data: str
    ) -> None:
        self.store = store
        self.worker_statuses = worker_statuses
        """Every worker the data plane's sync hub knows."""
        self.data = data
        self.started = time.time()

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
