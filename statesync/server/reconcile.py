"""Drift repair on the controller: detect, localize by digest descent, repair, verify.

Every ACK carries the worker's per-namespace digest at its applied revision;
`SyncHub` compares it with ours at that revision (idle workers ACK each
progress notice, so they are checked every heartbeat). When a namespace
differs, `Reconciler` runs a `Descent` (the native core's, statesync/core/reconcile.py) over the
worker's sync stream: queries go out in the stream, answers come back on it.
The controller's side of the comparison is its head; keys that changed since
the worker's revision are left out (the stream is delivering them), so a
descent never repairs what is merely in flight. The drifted keys are then sent
as one `Repair` holding their values at the revision the stream has reached,
and the next ACK verifies the digest. Each repair is recorded (worker, keys,
when, why, cost) for `status`, metrics and logs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from statesync.core.errors import StatesyncError
from statesync.core.reconcile import Descent, DescentRefused, NodeAnswer
from statesync.store.base import Store
from statesync.wire import entry_to_pb, pb

if TYPE_CHECKING:
    from statesync.core.model import KeyRecord
    from statesync.server.sync import WorkerRecord
    from statesync.server.versions import VersionServer

__all__ = ["Reconciler", "RepairRecord", "WorkerRepairs"]

log = logging.getLogger("statesync.reconcile")

MAX_ATTEMPTS = 3
"""Descents for one divergence before the worker is resynced from a snapshot."""
MAX_WINDOW = 100_000
"""A worker further behind than this many changes is left to catch up first."""
SHOWN_KEYS = 20


@dataclass(slots=True)
class RepairRecord:
    """One divergence: what was found and fixed, and what it cost."""

    worker_id: str
    namespace: str
    reason: str
    detected_unix: float
    keys: list[str] = field(default_factory=list)
    key_count: int = 0
    round_trips: int = 0
    bytes_exchanged: int = 0  # descent messages both ways, plus the repair
    outcome: str = "localizing"  # localizing, repairing, verified, nothing to repair, gave up
    seconds: float = 0.0  # detection to verified repair

    def to_pb(self) -> pb.RepairRecord:
        return pb.RepairRecord(
            ns=self.namespace,
            reason=self.reason,
            detected_unix=self.detected_unix,
            keys=self.keys[:SHOWN_KEYS],
            key_count=self.key_count,
            round_trips=self.round_trips,
            bytes=self.bytes_exchanged,
            outcome=self.outcome,
            seconds=self.seconds,
        )


@dataclass(slots=True)
class _Active:
    """The divergence being worked on for one worker."""

    record: RepairRecord
    descent: Descent
    started: float
    attempts: int = 1
    earlier_round_trips: int = 0  # spent by earlier attempts on this divergence
    earlier_bytes: int = 0
    query_id: int = 0
    awaiting: bool = False
    from_rev: int | None = None
    keys: list[str] | None = None
    verifying: bool = False
    done: asyncio.Event = field(default_factory=asyncio.Event)


@dataclass(slots=True)
class WorkerRepairs:
    """What `status` shows about one worker's divergences and repairs."""

    divergences: int = 0
    keys_repaired: int = 0
    history: deque[RepairRecord] = field(default_factory=lambda: deque(maxlen=20))
    active: _Active | None = None
    quiet_until: float = 0.0


class Reconciler:
    def __init__(self, store: Store, versions: VersionServer, *, retry_after_s: float) -> None:
        self.store = store
        self.versions = versions
        self.retry_after_s = retry_after_s
        self._ids = itertools.count(1)
        self.seconds_to_repair: deque[float] = deque(maxlen=1000)

    def start(self, worker: WorkerRecord, namespace: str, reason: str) -> _Active | None:
        """Localize and repair `namespace` on `worker` now (None: one is under way)."""
        repairs = worker.repairs
        if repairs.active is not None:
            return None
        record = RepairRecord(worker.session.worker_id, namespace, reason, time.time())
        repairs.active = _Active(record, Descent(namespace), time.monotonic())
        repairs.history.append(record)
        worker.wake.set()
        return repairs.active

    async def check(
        self, worker: WorkerRecord, namespace: str, reason: str, deadline: float
    ) -> RepairRecord:
        """A full check now (after any check under way): descend, repair, verify."""
        while True:
            active = self.start(worker, namespace, reason)
            if active is not None:
                break
            current = worker.repairs.active
            if current is not None:
                await _wait(current.done, deadline)
        await _wait(active.done, deadline)
        if not active.done.is_set():
            active.record.outcome += " (timed out)"
        return active.record

    def on_ack(self, worker: WorkerRecord, differing: list[str], *, repaired: int) -> None:
        """An ACK was compared: verify a repair (once the worker says it applied it),
        or start on a new divergence."""
        repairs, now = worker.repairs, time.monotonic()
        active = repairs.active
        if active is not None and active.verifying:
            if repaired != active.query_id:
                return  # an ACK sent before the repair arrived
            ns = active.record.namespace
            if ns not in differing:
                self._finish(worker, active, "verified")
            elif active.attempts >= MAX_ATTEMPTS:
                self._finish(worker, active, "gave up")
                reason = f"namespace {ns!r} still differs after {MAX_ATTEMPTS} repairs"
                log.error("worker %s: %s: full resync", worker.session.worker_id, reason)
                worker.full_resync = True
                worker.session.fell_behind(reason)
                worker.wake.set()
            else:
                active.attempts += 1
                active.earlier_round_trips = active.record.round_trips
                active.earlier_bytes = active.record.bytes_exchanged
                active.descent = Descent(ns)
                active.verifying, active.from_rev, active.keys = False, None, None
                worker.wake.set()
            return
        if active is None and differing and now >= repairs.quiet_until:
            ns = differing[0]
            repairs.divergences += 1
            log.warning(
                "worker %s: namespace %r differs from the controller at revision %d: localizing",
                worker.session.worker_id,
                ns,
                worker.session.acked_rev,
            )
            self.start(worker, ns, f"digest differs at revision {worker.session.acked_rev}")

    def abandon(self, worker: WorkerRecord, why: str) -> None:
        """The stream is resyncing: a descent under way cannot finish."""
        active = worker.repairs.active
        if active is not None:
            self._finish(worker, active, f"abandoned ({why})")

    async def next_message(self, worker: WorkerRecord) -> pb.SyncReply | None:
        """The next reconciliation message for the worker's stream, if any."""
        active = worker.repairs.active
        if active is None or active.awaiting or active.verifying:
            return None
        if active.keys is not None:
            return await self._repair(worker, active)
        prefixes, unknown = active.descent.query()
        active.query_id = next(self._ids)
        active.awaiting = True
        query = pb.DigestQuery(id=active.query_id, ns=active.descent.namespace, prefixes=prefixes)
        for prefix, leaves in unknown:
            query.names.add(prefix=prefix, leaves=leaves)
        return pb.SyncReply(query=query)

    async def on_answer(self, worker: WorkerRecord, reply: pb.DigestAnswer) -> None:
        active = worker.repairs.active
        if active is None or not active.awaiting or reply.id != active.query_id:
            return  # an answer to a descent that was abandoned
        # Still awaiting until the answer is taken in: `next_message` must not send
        # a query meanwhile (an empty one, whose answer would localize the same keys
        # again and count them twice).
        try:
            await self._take_in(worker, active, reply)
        finally:
            active.awaiting = False
        worker.wake.set()

    async def _take_in(self, worker: WorkerRecord, active: _Active, reply: pb.DigestAnswer) -> None:
        if active.from_rev is None:
            active.from_rev = reply.rev
        ns = active.descent.namespace
        answers = [NodeAnswer(n.prefix, n.children, n.leaves, n.is_leaves) for n in reply.nodes]
        try:
            await asyncio.to_thread(
                active.descent.receive,
                answers,
                list(reply.names),
                lambda prefix: self.store.digest_node(ns, prefix),
                lambda prefix: self.store.leaves(ns, prefix),
            )
        except DescentRefused as exc:
            log.warning("worker %s: %s", worker.session.worker_id, exc)
            self._finish(worker, active, f"gave up ({exc})")
            return
        active.record.round_trips = active.earlier_round_trips + active.descent.round_trips
        active.record.bytes_exchanged = active.earlier_bytes + active.descent.bytes_exchanged
        if active.descent.done:
            await self._localized(worker, active)

    async def _localized(self, worker: WorkerRecord, active: _Active) -> None:
        ns = active.descent.namespace
        assert active.from_rev is not None
        try:
            in_flight = await asyncio.to_thread(self._changed_since, ns, active.from_rev)
        except StatesyncError as exc:
            in_flight = None
            log.warning("worker %s: %s", worker.session.worker_id, exc)
        keys = sorted(active.descent.differing - (in_flight or set()))
        if not active.descent.differing:
            self._finish(worker, active, "no drift")
            return
        if in_flight is None or not keys:
            # Nothing to repair outside what the stream is delivering: look again later.
            self._finish(worker, active, "nothing to repair")
            worker.repairs.quiet_until = time.monotonic() + self.retry_after_s
            return
        active.keys = keys
        record = active.record
        record.keys = (record.keys + [k for k in keys if k not in record.keys])[:SHOWN_KEYS]
        record.key_count += len(keys)  # earlier attempts' keys were repaired too
        record.outcome = "repairing"

    def _changed_since(self, namespace: str, rev: int) -> set[str] | None:
        """Keys of `namespace` changed after `rev` (None: too many to tell)."""
        keys: set[str] = set()
        changes = 0
        while True:
            batch = self.store.changes(rev, limit=1000, namespaces=[namespace])
            if not batch:
                return keys
            keys.update(c.key for c in batch)
            changes += len(batch)
            if changes > MAX_WINDOW:
                return None
            rev = batch[-1].rev

    async def _repair(self, worker: WorkerRecord, active: _Active) -> pb.SyncReply:
        """The authoritative values of the drifted keys, at the stream's revision."""
        assert active.keys is not None
        ns, rev = active.descent.namespace, worker.session.sent_rev

        def read() -> list[tuple[str, KeyRecord | None]]:
            return [(key, self.store.get(ns, key, rev=rev)) for key in active.keys or ()]

        repair = pb.Repair(id=active.query_id, rev=rev, reason=active.record.reason)
        for key, record in await asyncio.to_thread(read):
            if record is None:
                repair.deletes.add(ns=ns, key=key)
            else:
                repair.entries.append(self.versions.entry(entry_to_pb(record), worker.targets))
        active.verifying = True
        active.record.bytes_exchanged += repair.ByteSize()
        worker.repairs.keys_repaired += len(active.keys)
        log.warning(
            "worker %s: repairing %d key(s) of %r at revision %d (%d round trips, %d bytes): %s",
            worker.session.worker_id,
            len(active.keys),
            ns,
            rev,
            active.descent.round_trips,
            active.descent.bytes_exchanged,
            ", ".join(active.keys[:5]) + (", ..." if len(active.keys) > 5 else ""),
        )
        return pb.SyncReply(repair=repair)

    def _finish(self, worker: WorkerRecord, active: _Active, outcome: str) -> None:
        active.record.outcome = outcome
        active.record.seconds = time.monotonic() - active.started
        if outcome == "verified":
            self.seconds_to_repair.append(active.record.seconds)
            log.info(
                "worker %s: repair of %r verified (%d key(s), %.3f s after detection)",
                worker.session.worker_id,
                active.record.namespace,
                active.record.key_count,
                active.record.seconds,
            )
        worker.repairs.active = None
        active.done.set()


async def _wait(event: asyncio.Event, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining > 0:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), remaining)
