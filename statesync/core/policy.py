"""Conflict policies: what a write based on an old revision does.

A writer sends `base_rev`, the revision it read the key at. When the key's
mod_rev is still `base_rev` (or it was absent then and is now), the write is
plain. When the key changed since, the namespace's policy decides:

- `reject` (default): compare-and-swap; a `ConflictError` names the revisions.
- `last-durable-wins`: the write is applied as sent; the later commit wins.
- `merge`: a three-way merge (`merge3`) of the writer's value with the current
  value, using the value at `base_rev` from history as the common ancestor; a
  `MergeConflictError` lists every path both sides changed differently.

`decide` is pure: the caller reads the base value from history (only `merge`
needs it) and applies the decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import orjson

from statesync.core.canonical import canonical_bytes, sha256
from statesync.core.errors import ConflictError, FailedCompare, MergeConflictError
from statesync.core.merge import MISSING, merge3
from statesync.core.model import KeyRecord

__all__ = ["ConflictPolicy", "Decision", "decide", "is_stale"]


class ConflictPolicy(StrEnum):
    REJECT = "reject"
    LAST_DURABLE_WINS = "last-durable-wins"
    MERGE = "merge"


@dataclass(frozen=True, slots=True)
class Decision:
    """Write `value` (canonical bytes; None: the merge leaves the key deleted),
    or refuse with `error`."""

    value: bytes | None
    error: ConflictError | None = None

    @property
    def summary(self) -> str:
        """What the decision does, comparable across policies (for shadow mode)."""
        if self.error is not None:
            return "refuse"
        if self.value is None:
            return "keep deleted"
        return f"write {len(self.value)} bytes (sha256 {sha256(self.value).hex()[:12]})"


def is_stale(base_rev: int, base: KeyRecord | None, current: KeyRecord | None) -> bool:
    """Did the key change after the writer read it at `base_rev`? (`base`: the
    key at `base_rev`, needed only when it is absent now.)"""
    if current is None:
        return base is not None  # deleted since
    return current.mod_rev > base_rev


def decide(
    policy: ConflictPolicy,
    *,
    namespace: str,
    key: str,
    base_rev: int,
    base: KeyRecord | None,
    current: KeyRecord | None,
    writer: bytes,
) -> Decision:
    """The policy's decision for a stale write (`is_stale` is true). `base` and
    `current` are the key at `base_rev` and now (None: absent)."""
    if policy is ConflictPolicy.LAST_DURABLE_WINS:
        return Decision(writer)
    actual = None if current is None else current.mod_rev
    if policy is ConflictPolicy.REJECT:
        expected = f"unchanged since revision {base_rev} (the write's base revision)"
        return Decision(None, ConflictError([FailedCompare(namespace, key, expected, actual)]))
    result = merge3(
        MISSING if base is None else orjson.loads(base.value),
        MISSING if current is None else orjson.loads(current.value),
        orjson.loads(writer),
    )
    if not result.clean:
        conflicts = [c.to_dict() for c in result.conflicts]
        return Decision(None, MergeConflictError(namespace, key, base_rev, actual or 0, conflicts))
    return Decision(None if result.value is MISSING else canonical_bytes(result.value))
