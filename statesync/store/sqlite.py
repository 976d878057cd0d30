"""The embedded store: one SQLite file in WAL mode, fsync on every commit.

The store is native (crates/store, with the command semantics in crates/core):
one committer thread owns the write connection and turns everything queued into
one transaction and one fsync (group commit); no caller is acknowledged before
its command is on disk. A commit whose durability is unknown (a failed fsync)
stops the store from acknowledging anything until it is restarted
(`StoreFailedError`, and `failure` says why); a write refused for space is
rolled back and reported, and the store serves again once space is freed.

This module is its typed Python face: it keeps the `Store` Protocol, turns
reads into `KeyRecord`/`Change` records, and gives the native write gate (which
the committer consults only for commands that need it: a namespace with a
contract, a declared schema version, a base revision, a contract change) the
function that registers contracts.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path

import statesync._native as _native
from statesync.contracts.registry import ShadowStats, registered_record
from statesync.core.commands import Command, Committed
from statesync.core.digest import Node
from statesync.core.errors import InvalidInputError, StatesyncError, StoreClosedError
from statesync.core.model import Change, KeyRecord
from statesync.core.policy import ConflictPolicy
from statesync.store.base import ChainReport, Outcome, StoreSettings

__all__ = ["SQLiteStore"]

log = logging.getLogger("statesync.store.sqlite")


def _check_revision(rev: object) -> None:
    if rev is not None and (type(rev) is not int or rev < 0):
        raise InvalidInputError(f"a revision is an integer >= 0, got {rev!r}")


def _check_limit(limit: object) -> None:
    if type(limit) is not int or limit < 1:
        raise InvalidInputError(f"limit is an integer >= 1, got {limit!r}")


class SQLiteStore:
    """The embedded, durable `Store`. Open one per database file.

    `clock` returns seconds since the epoch (injectable for tests).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        settings: StoreSettings = StoreSettings(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self.settings = settings
        self._is_closed = False
        # The write gate (contracts and conflict policies) runs in the committer;
        # it calls back here only to register a contract.
        self._native = _native.Store(
            self.path,
            settings,
            clock=None if clock is time.time else clock,
            registrar=registered_record,
        )
        log.info(
            "opened %s at revision %d (compacted at %d)",
            self.path,
            self._native.head_rev,
            self._native.compacted_rev,
        )

    # -- properties ------------------------------------------------------

    @property
    def native(self) -> _native.Store:
        """The native store, for the data-plane server to share (its commits
        go through the same committer and gate, and its sync feed hears every commit)."""
        return self._native

    @property
    def head_rev(self) -> int:
        return self._native.head_rev

    @property
    def compacted_rev(self) -> int:
        return self._native.compacted_rev

    @property
    def failure(self) -> str | None:
        """Why the store stopped acknowledging writes (None: it did not)."""
        return self._native.failure

    # -- writes ----------------------------------------------------------

    def submit(self, command: Command) -> Future[Committed]:
        """Queue a command for the next group commit; the future resolves when
        it is durable (or fails with a statesync error). The command is checked
        and prepared now, in the caller's thread."""
        future: Future[Committed] = Future()
        self._native.submit([command], [future])
        return future

    def commit(self, command: Command) -> Committed:
        return self.submit(command).result()

    async def commit_async(self, command: Command) -> Committed:
        return await asyncio.wrap_future(self.submit(command))

    def commit_many(self, commands: Sequence[Command]) -> list[Outcome]:
        futures: list[Future[Committed]] = [Future() for _ in commands]
        step = self.settings.max_batch
        for i in range(0, len(commands), step):
            # Queued together: each slice is one group commit.
            self._native.submit(list(commands[i : i + step]), futures[i : i + step])
        outcomes: list[Outcome] = []
        for f in futures:
            try:
                outcomes.append(f.result())
            except StatesyncError as exc:
                outcomes.append(exc)
        return outcomes

    def shadow_stats(self) -> dict[str, ShadowStats]:
        """Per namespace with a shadow policy: the stale writes it was evaluated
        on, and on how many it disagreed with the active policy."""
        return {
            ns: ShadowStats(ConflictPolicy(active), ConflictPolicy(candidate), compared, disagreed)
            for ns, active, candidate, compared, disagreed in self._native.shadow_stats()
        }

    # -- maintenance ------------------------------------------------------

    def maintain(self) -> None:
        self._native.maintain()

    def compact(self, rev: int) -> None:
        """Drop history at or below `rev`; reads at revisions >= `rev` still work."""
        _check_revision(rev)
        self._native.compact(rev)

    # -- reads -----------------------------------------------------------

    def get(self, namespace: str, key: str, *, rev: int | None = None) -> KeyRecord | None:
        _check_revision(rev)
        record: KeyRecord | None = self._native.get(namespace, key, rev)
        return record

    def range(
        self,
        namespace: str,
        *,
        prefix: str = "",
        rev: int | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> list[KeyRecord]:
        _check_revision(rev)
        _check_limit(limit)
        records: list[KeyRecord] = self._native.range(namespace, prefix, rev, start_after, limit)
        return records

    def changes(
        self, after_rev: int, *, limit: int = 1000, namespaces: Sequence[str] | None = None
    ) -> list[Change]:
        if type(after_rev) is not int or after_rev < 0:
            raise InvalidInputError(f"a revision is an integer >= 0, got {after_rev!r}")
        _check_limit(limit)
        names = None if namespaces is None else list(namespaces)
        changes: list[Change] = self._native.changes(after_rev, limit, names)
        return changes

    def snapshot(
        self,
        namespaces: Sequence[str] | None = None,
        *,
        rev: int | None = None,
        chunk_size: int = 1000,
    ) -> _Snapshot:
        if self._is_closed:
            raise StoreClosedError()
        _check_revision(rev)
        _check_limit(chunk_size)
        names = None if namespaces is None else list(namespaces)
        return _Snapshot(self._native.snapshot(names, rev, chunk_size))

    def namespaces(self) -> list[str]:
        return list(self._native.namespaces())

    def digest(self, namespace: str, *, rev: int | None = None) -> bytes:
        _check_revision(rev)
        root: bytes = self._native.digest(namespace, rev)
        return root

    def digest_node(self, namespace: str, prefix: str) -> Node:
        """The head digest trie's node at `prefix` (a string of hex nibbles)."""
        count, total = self._native.digest_node(namespace, prefix)
        return Node(count, int.from_bytes(total, "big"))

    def verify_chain(self) -> ChainReport:
        """Recompute the hash chain over the retained history.

        Raises StoreCorruptError naming the first revision that does not verify.
        """
        return ChainReport(*self._native.verify_chain())

    # -- closing ---------------------------------------------------------

    def close(self) -> None:
        """Finish queued commits, then close. Idempotent."""
        if self._is_closed:
            return
        self._is_closed = True
        self._native.close()
        log.info("closed %s at revision %d", self.path, self.head_rev)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Snapshot:
    """A read transaction pinned at one revision (opened when the snapshot is
    taken), iterated in chunks."""

    def __init__(self, native: _native.Snapshot) -> None:
        self._native: _native.Snapshot | None = native
        rev, namespaces, digests = native.header()
        self.rev = rev
        self.namespaces: tuple[str, ...] = tuple(namespaces)
        self.digests: dict[str, bytes] = {ns: root for ns, root, _ in digests}
        self.counts: dict[str, int] = {ns: count for ns, _, count in digests}

    def __enter__(self) -> _Snapshot:
        return self

    def chunks(self) -> Iterator[list[KeyRecord]]:
        if self._native is None:
            raise RuntimeError("the snapshot is closed")
        while chunk := self._native.next_chunk():
            yield chunk

    def __exit__(self, *exc: object) -> None:
        if self._native is not None:
            self._native.close()
            self._native = None
