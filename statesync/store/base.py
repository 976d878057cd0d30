"""The storage Protocol every backend implements, and its settings.

A backend persists what the native core's sequencer builds, atomically and durably,
and answers reads. It translates its own errors into statesync errors. The
shared suite in `statesync.testing.store_suite` is the definition of
"implements": every backend runs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from statesync.core.commands import Command, Committed, Limits
from statesync.core.digest import Node
from statesync.core.errors import StatesyncError
from statesync.core.model import Change, KeyRecord

__all__ = ["ChainReport", "Outcome", "Snapshot", "Store", "StoreSettings"]

Outcome = Committed | StatesyncError
"""One command's outcome in `commit_many`."""


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """How a store keeps data. Every field has a safe default."""

    limits: Limits = Limits()
    idempotency_retention_s: float = 24 * 3600
    """How long a committed command_id is remembered (independent of compaction)."""
    history_retention_revisions: int | None = None
    """Auto-compact to keep at most this many revisions of history (None: keep all)."""
    history_retention_s: float | None = None
    """Auto-compact history older than this many seconds (None: keep all)."""
    maintenance_interval_s: float = 5.0
    """How often retention (idempotency records, auto-compaction) is applied."""
    max_batch: int = 2048
    """Most commands in one group commit (one transaction, one fsync)."""
    max_batch_ops: int = 10_000
    """Most ops in one group commit (a single larger command still commits alone)."""


@dataclass(frozen=True, slots=True)
class ChainReport:
    """A verified stretch of the hash chain."""

    from_rev: int  # exclusive: the chain is anchored at the compaction point
    to_rev: int
    changes: int
    head_hash: bytes


class Snapshot(Protocol):
    """A consistent view of namespaces at one revision, read in chunks.

    Use as a context manager; iterating never holds the whole view in memory.
    """

    rev: int
    namespaces: tuple[str, ...]
    digests: dict[str, bytes]
    """Each namespace's digest root at `rev`."""
    counts: dict[str, int]
    """Each namespace's number of keys at `rev`."""

    def chunks(self) -> Iterator[list[KeyRecord]]: ...

    def __enter__(self) -> Snapshot: ...

    def __exit__(self, *exc: object) -> None: ...


@runtime_checkable
class Store(Protocol):
    @property
    def head_rev(self) -> int: ...

    @property
    def compacted_rev(self) -> int: ...

    def commit(self, command: Command) -> Committed:
        """Commit one command durably (group-committed with concurrent callers).

        Raises ConflictError, an InvalidInputError subtype, NotFoundError or
        StoreError; on any of them nothing was written.
        """
        ...

    async def commit_async(self, command: Command) -> Committed: ...

    def commit_many(self, commands: Sequence[Command]) -> list[Outcome]:
        """Commit in order as one group; each command succeeds or fails alone."""
        ...

    def get(self, namespace: str, key: str, *, rev: int | None = None) -> KeyRecord | None: ...

    def range(
        self,
        namespace: str,
        *,
        prefix: str = "",
        rev: int | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> list[KeyRecord]: ...

    def changes(
        self, after_rev: int, *, limit: int = 1000, namespaces: Sequence[str] | None = None
    ) -> list[Change]:
        """Changes with revision > after_rev, whole revisions only, in order."""
        ...

    def snapshot(
        self,
        namespaces: Sequence[str] | None = None,
        *,
        rev: int | None = None,
        chunk_size: int = 1000,
    ) -> Snapshot: ...

    def compact(self, rev: int) -> None: ...

    def namespaces(self) -> list[str]: ...

    def digest(self, namespace: str, *, rev: int | None = None) -> bytes: ...

    def digest_node(self, namespace: str, prefix: str) -> Node:
        """The head digest trie's node at `prefix` (hex nibbles; "" is the root)."""
        ...

    def verify_chain(self) -> ChainReport: ...

    def maintain(self) -> None:
        """Apply retention now: forget old command ids, auto-compact."""
        ...

    def close(self) -> None: ...
