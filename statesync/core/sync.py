"""The sync protocol's two ends, without I/O.

`WorkerSession` is the controller's view of one worker stream: it takes events
in (hello, ACK, NACK, heartbeat, a batch it sent, a tick with the time) and
says what to do (start from a snapshot or tail the log, send a progress
notice, drop a silent stream, resync a worker that fell behind).
`ReplicaCursor` is the worker's view: it decides whether a batch applies,
is a harmless replay, or reveals a gap.

The gRPC servicer and the worker SDK are loops around these; every state and
legal transition is in `TRANSITIONS`, and an illegal event raises
`ProtocolError` and changes nothing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from statesync.core.errors import ProtocolError

__all__ = [
    "TRANSITIONS",
    "BatchVerdict",
    "HeldKey",
    "ReplicaCursor",
    "StreamState",
    "SyncSettings",
    "WorkerSession",
    "bounded",
]


class StreamState(StrEnum):
    AWAITING_HELLO = "AWAITING_HELLO"
    SNAPSHOTTING = "SNAPSHOTTING"
    TAILING = "TAILING"
    CLOSED = "CLOSED"


class Event(StrEnum):
    HELLO_TAIL = "hello (tail the log)"
    HELLO_SNAPSHOT = "hello (needs a snapshot)"
    SNAPSHOT_SENT = "snapshot sent"
    FELL_BEHIND = "fell behind the buffer"
    CLOSE = "close"


TRANSITIONS: dict[tuple[StreamState, Event], StreamState] = {
    (StreamState.AWAITING_HELLO, Event.HELLO_TAIL): StreamState.TAILING,
    (StreamState.AWAITING_HELLO, Event.HELLO_SNAPSHOT): StreamState.SNAPSHOTTING,
    (StreamState.SNAPSHOTTING, Event.SNAPSHOT_SENT): StreamState.TAILING,
    (StreamState.TAILING, Event.FELL_BEHIND): StreamState.SNAPSHOTTING,
    (StreamState.AWAITING_HELLO, Event.CLOSE): StreamState.CLOSED,
    (StreamState.SNAPSHOTTING, Event.CLOSE): StreamState.CLOSED,
    (StreamState.TAILING, Event.CLOSE): StreamState.CLOSED,
}


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """Timing and buffer limits of sync streams (controller side)."""

    heartbeat_s: float = 1.0
    """Send a progress notice after this long without sending anything."""
    silence_s: float = 10.0
    """Drop a stream that sent nothing (ACK, heartbeat) for this long."""
    window: int = 4096
    """Most changes sent to one worker and not yet acknowledged."""


MAX_PEER_TEXT = 512
"""Most characters kept of a string a worker sends (a NACK reason, a held key's
names): it is stored in the worker's record and repeated in every status."""


def bounded(text: str, limit: int = MAX_PEER_TEXT) -> str:
    """`text` cut to `limit` characters, with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text) - limit} more characters]"


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key a worker kept at its last good value after rejecting a change."""

    namespace: str
    key: str
    rev: int
    reason: str
    held_hash: bytes = b""  # hash of the value kept; empty: the worker has no value

    @classmethod
    def from_peer(
        cls, namespace: str, key: str, rev: int, reason: str, held_hash: bytes = b""
    ) -> HeldKey:
        """A held key as a worker reported it, every string bounded (a hostile or
        broken worker must not make `status` unanswerable)."""
        return cls(
            bounded(namespace, 64),
            bounded(key, 1024),
            rev,
            bounded(reason),
            held_hash[:32],
        )


@dataclass(slots=True)
class WorkerSession:
    """The controller's state for one worker stream."""

    settings: SyncSettings
    now: float
    state: StreamState = StreamState.AWAITING_HELLO
    worker_id: str = ""
    namespaces: frozenset[str] = frozenset()
    observer: bool = False
    deltas: bool = False
    sent_rev: int = 0
    """The worker was told everything through this revision (batches, progress)."""
    cursor: int = 0
    """The feed was scanned through this revision (>= sent_rev)."""
    acked_rev: int = 0
    acked_at: float = 0.0
    last_heard: float = 0.0
    last_sent: float = 0.0
    nacks: int = 0
    resyncs: int = 0
    resync_reason: str = ""
    held: dict[tuple[str, str], HeldKey] = field(default_factory=dict)
    acked_digests: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    _unacked: deque[tuple[int, int]] = field(default_factory=deque)
    _buffered: int = 0

    def __post_init__(self) -> None:
        self.last_heard = self.last_sent = self.now

    def _move(self, event: Event) -> None:
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            raise ProtocolError(f"{event.value!r} is not allowed in state {self.state.value}")
        self.state = target

    # ------------------------------------------------------------ events in

    def hello(
        self,
        *,
        worker_id: str,
        namespaces: Iterable[str],
        from_rev: int,
        observer: bool,
        held: Iterable[HeldKey],
        head_rev: int,
        compacted_rev: int,
        now: float,
        deltas: bool = False,
    ) -> bool:
        """Start the stream. Returns True when the worker needs a snapshot first."""
        if self.state is not StreamState.AWAITING_HELLO:
            raise ProtocolError(f"a second hello on a stream in state {self.state.value}")
        if not worker_id and not observer:
            raise ProtocolError("hello has no worker_id")
        if from_rev < 0:
            raise ProtocolError(f"hello has a negative from_rev {from_rev}")
        self.worker_id = worker_id
        self.namespaces = frozenset(namespaces)
        self.observer = observer
        self.deltas = deltas
        self.held = {(h.namespace, h.key): h for h in held}
        self.last_heard = now
        reason = ""
        if from_rev > head_rev:
            reason = f"the worker is at revision {from_rev}, after the controller's head {head_rev}"
        elif from_rev == 0 and head_rev > 0 and not observer:
            reason = "an empty replica bootstraps from a snapshot"
        elif 0 < from_rev < compacted_rev or (from_rev == 0 < compacted_rev):
            reason = f"revision {from_rev} is compacted (history starts after {compacted_rev})"
        if reason:
            self.resync_reason = reason
            self._move(Event.HELLO_SNAPSHOT)
            return True
        self.sent_rev = self.cursor = self.acked_rev = from_rev
        self.acked_at = now
        self._move(Event.HELLO_TAIL)
        return False

    def snapshot_sent(self, rev: int, now: float, *, snapshot: bool = True) -> None:
        """The resync is out: a snapshot at `rev`, or (`snapshot=False`) the order
        to keep the replica and move to `rev`, reconciled by digest descent."""
        self._move(Event.SNAPSHOT_SENT)
        self.sent_rev = self.cursor = rev
        self.resyncs += snapshot
        self._unacked.clear()
        self._buffered = 0
        self.last_sent = now

    def fell_behind(self, reason: str) -> None:
        """The worker's position left the shared buffer: it must resync."""
        self._move(Event.FELL_BEHIND)
        self.resync_reason = reason

    def close(self) -> None:
        if self.state is not StreamState.CLOSED:
            self._move(Event.CLOSE)

    def sent(self, *, prev_rev: int, rev: int, changes: int, now: float) -> None:
        """A batch (prev_rev, rev] with `changes` changes went out."""
        if self.state is not StreamState.TAILING:
            raise ProtocolError(f"sending a batch in state {self.state.value}")
        if prev_rev != self.sent_rev or rev < prev_rev:
            raise ProtocolError(f"batch ({prev_rev}, {rev}] does not follow {self.sent_rev}")
        self.sent_rev = rev
        self.cursor = max(self.cursor, rev)
        self.last_sent = now
        if changes:
            self._unacked.append((rev, changes))
            self._buffered += changes

    def skip(self, rev: int) -> None:
        """Revisions through `rev` hold nothing for this worker."""
        self.cursor = max(self.cursor, rev)

    def progress_sent(self, now: float) -> int:
        """A progress notice for the scanned position went out; returns its revision."""
        self.sent_rev = self.cursor
        self.last_sent = now
        return self.cursor

    def ack(self, rev: int, digests: dict[str, tuple[bytes, int]], now: float) -> None:
        self.last_heard = now
        if rev > self.sent_rev:
            raise ProtocolError(f"ACK of revision {rev}, but only {self.sent_rev} was sent")
        if rev >= self.acked_rev:
            self.acked_rev = rev
            self.acked_at = now
            self.acked_digests = digests
        while self._unacked and self._unacked[0][0] <= rev:
            self._buffered -= self._unacked.popleft()[1]

    def nack(self, held: HeldKey, now: float) -> None:
        self.last_heard = now
        self.nacks += 1
        self.held[(held.namespace, held.key)] = held

    def set_held(self, held: Iterable[HeldKey]) -> None:
        """The worker's full list of held keys (sent with each ACK)."""
        self.held = {(h.namespace, h.key): h for h in held}

    def heard(self, now: float) -> None:
        self.last_heard = now

    # ------------------------------------------------------------ decisions out

    @property
    def buffered(self) -> int:
        return self._buffered

    def room(self) -> int:
        """How many more changes may be sent before the worker ACKs."""
        if self.observer:
            return self.settings.window
        return max(0, self.settings.window - self._buffered)

    def progress_due(self, now: float) -> bool:
        return now - self.last_sent >= self.settings.heartbeat_s

    def silent(self, now: float) -> bool:
        return now - self.last_heard > self.settings.silence_s

    @property
    def nacked(self) -> bool:
        return bool(self.held)


class BatchVerdict(StrEnum):
    APPLY = "apply"
    REPLAY = "replay"  # already applied: harmless, skip
    GAP = "gap"  # the batch does not follow the applied revision: resync


@dataclass(slots=True)
class ReplicaCursor:
    """The worker's applied revision and the check every batch must pass."""

    applied_rev: int = 0

    def check(self, prev_rev: int, rev: int) -> BatchVerdict:
        if rev < prev_rev:
            raise ProtocolError(f"batch ({prev_rev}, {rev}] goes backwards")
        if rev <= self.applied_rev:
            return BatchVerdict.REPLAY
        if prev_rev > self.applied_rev:
            return BatchVerdict.GAP
        # prev_rev < applied_rev overlaps: revisions already applied are skipped one by one.
        return BatchVerdict.APPLY

    def advance(self, rev: int) -> None:
        if rev < self.applied_rev:
            raise ProtocolError(f"applied revision would go back from {self.applied_rev} to {rev}")
        self.applied_rev = rev
