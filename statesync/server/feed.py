"""The shared, bounded buffer of recent revisions that every sync stream reads.

The store calls `on_commit` on its committer thread after each durable group
commit; the feed turns the changes into wire messages once and hands them to
the event loop. Streams keep only a cursor: memory is the buffer's bound
(revisions and bytes), whatever the number or speed of workers. A stream whose
cursor falls out of the buffer (a slow worker) is told to resync; one that
starts before it (a reconnect) catches up from the store's log first.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from statesync._native import CommitBatch
from statesync.core.digest import value_hash
from statesync.core.model import CONTRACTS_NAMESPACE, Change
from statesync.wire import change_to_pb, pb

__all__ = ["ChangeFeed", "Slice", "revisions_to_pb"]


@dataclass(frozen=True, slots=True)
class _Entry:
    rev: int
    namespaces: frozenset[str]
    message: pb.Revision
    size: int


@dataclass(frozen=True, slots=True)
class Slice:
    """Revisions after `prev_rev` through `rev` for one set of namespaces."""

    prev_rev: int
    rev: int
    revisions: list[pb.Revision]
    changes: int


def revisions_to_pb(changes: Sequence[Change]) -> list[pb.Revision]:
    """Group changes (in log order) into one message per revision."""
    out: list[pb.Revision] = []
    current: pb.Revision | None = None
    for change in changes:
        if current is None or current.rev != change.rev:
            current = pb.Revision(
                rev=change.rev,
                command_id=change.command_id,
                ts_ms=change.ts_ms,
                trace=change.trace or "",
            )
            out.append(current)
        vhash = b"" if change.value is None else value_hash(change.value)
        current.changes.append(change_to_pb(change, vhash))
    return out


def filter_revision(message: pb.Revision, namespaces: frozenset[str]) -> pb.Revision:
    kept = pb.Revision(
        rev=message.rev, command_id=message.command_id, ts_ms=message.ts_ms, trace=message.trace
    )
    kept.changes.extend(c for c in message.changes if c.ns in namespaces)
    return kept


class ChangeFeed:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        *,
        head_rev: int,
        max_revisions: int = 100_000,
        max_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        self._loop = loop
        self._max_revisions = max_revisions
        self._max_bytes = max_bytes
        self._revs: list[int] = []
        self._entries: list[_Entry] = []
        self._bytes = 0
        self.head_rev = head_rev
        self.floor = head_rev
        """The feed holds every revision in (floor, head_rev]."""
        self._roots: dict[str, tuple[list[int], list[bytes]]] = {}
        self._listeners: set[asyncio.Event] = set()
        self.contract_listeners: list[Callable[[set[str]], None]] = []
        """Called (on the loop) with the namespaces whose contract a new revision changed."""

    @property
    def size_bytes(self) -> int:
        return self._bytes

    @property
    def size_revisions(self) -> int:
        return len(self._entries)

    # ------------------------------------------------------------ writer side

    def on_commit(self, batch: CommitBatch) -> None:
        """Store listener (committer thread): build messages once, publish on the loop."""
        entries = [
            _Entry(
                rev=m.rev,
                namespaces=frozenset(c.ns for c in m.changes),
                message=m,
                size=m.ByteSize(),
            )
            for m in revisions_to_pb(batch.changes)
        ]
        roots = [(r.namespace, r.rev, r.root) for r in batch.roots]
        self._loop.call_soon_threadsafe(self._publish, batch.head_rev, entries, roots)

    def _publish(
        self, head_rev: int, entries: list[_Entry], roots: list[tuple[str, int, bytes]]
    ) -> None:
        for ns, rev, root in roots:
            revs, values = self._roots.setdefault(ns, ([], []))
            revs.append(rev)
            values.append(root)
        contracts = {
            c.key
            for entry in entries
            if CONTRACTS_NAMESPACE in entry.namespaces
            for c in entry.message.changes
            if c.ns == CONTRACTS_NAMESPACE
        }
        if contracts:
            for listener in self.contract_listeners:
                listener(contracts)
        for entry in entries:
            self._revs.append(entry.rev)
            self._entries.append(entry)
            self._bytes += entry.size
        self.head_rev = max(self.head_rev, head_rev)
        evict = 0
        while len(self._entries) - evict > self._max_revisions or (
            self._bytes > self._max_bytes and len(self._entries) - evict > 1
        ):
            self._bytes -= self._entries[evict].size
            evict += 1
        if evict:
            self.floor = self._entries[evict - 1].rev
            del self._entries[:evict]
            del self._revs[:evict]
            for revs, values in self._roots.values():
                # Keep the newest root at or below the floor: it is the digest until the next.
                drop = max(0, bisect.bisect_right(revs, self.floor) - 1)
                del revs[:drop]
                del values[:drop]
        for wake in self._listeners:
            wake.set()

    # ------------------------------------------------------------ reader side

    def root_at(self, namespace: str, rev: int) -> bytes | None:
        """The namespace's digest at `rev` if the feed knows it (None: ask the store)."""
        revs, values = self._roots.get(namespace, ((), ()))
        i = bisect.bisect_right(revs, rev)
        if i == 0:
            return None
        return values[i - 1]

    def commit_time(self, after: int) -> float | None:
        """When the first revision after `after` was committed (Unix seconds)."""
        i = bisect.bisect_right(self._revs, after)
        if i >= len(self._entries):
            return None
        return self._entries[i].message.ts_ms / 1000

    def subscribe(self, wake: asyncio.Event) -> None:
        """Set `wake` whenever new revisions are published."""
        self._listeners.add(wake)

    def unsubscribe(self, wake: asyncio.Event) -> None:
        self._listeners.discard(wake)

    def read(self, after: int, namespaces: frozenset[str], max_changes: int) -> Slice | None:
        """What follows `after` for these namespaces, or None when `after` is
        older than the buffer. Stops at about `max_changes` (whole revisions)."""
        if after < self.floor:
            return None
        start = bisect.bisect_right(self._revs, after)
        revisions: list[pb.Revision] = []
        changes = 0
        rev = after
        for entry in self._entries[start:]:
            if changes >= max_changes:
                break
            rev = entry.rev
            if entry.namespaces <= namespaces:
                revisions.append(entry.message)
                changes += len(entry.message.changes)
            elif not entry.namespaces.isdisjoint(namespaces):
                kept = filter_revision(entry.message, namespaces)
                revisions.append(kept)
                changes += len(kept.changes)
        else:
            rev = max(rev, self.head_rev)
        return Slice(after, rev, revisions, changes)
