"""The worker's end of the sync protocol, without I/O.

`ReplicaCursor` decides whether a batch applies, is a harmless replay, or
reveals a gap; `HeldKey` is a key the worker refused and keeps at its last
good value. The controller's end is the core's table in Rust
(crates/core/src/sync/controller.rs), served by the data plane's sync hub.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from statesync.core.errors import ProtocolError

__all__ = ["BatchVerdict", "HeldKey", "ReplicaCursor"]


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key a worker kept at its last good value after rejecting a change."""

    namespace: str
    key: str
    rev: int
    reason: str
    held_hash: bytes = b""  # hash of the value kept; empty: the worker has no value


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
