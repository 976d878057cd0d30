"""The worker's local replica: the native one (crates/worker), adapted to Python.

The replica itself lives in Rust (`statesync-worker`, `replica.rs`): one
SQLite file (`replica.sqlite`) in the state directory holds the entries, the
keys held back after a NACK, and the applied revision; each revision (or
snapshot) is applied in one transaction together with the new applied
revision, so a crash never applies a change twice nor skips one. The file is
checked at open (SQLite integrity, format, and each namespace's digest against
the one stored with the last commit); a bad file raises `ReplicaCorruptError`,
and a worker moves it aside and resyncs. A running worker shares it: reads
here see what the worker applied.

This module owns what is Python about it: the errors in statesync's tree,
`HeldKey` records, and the dump's shape. It holds no replica logic.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import statesync._native as _native
from statesync.core.digest import NamespaceDigest
from statesync.core.errors import StatesyncError

__all__ = [
    "REPLICA_FILE",
    "Entry",
    "HeldKey",
    "Replica",
    "ReplicaCorruptError",
    "ReplicaInUseError",
    "read_offline",
]

REPLICA_FILE: str = _native.REPLICA_FILE
Entry = _native.Entry
"""One key's value: canonical JSON bytes, create_rev, mod_rev, version, vhash,
schema_version (0: no schema) and source_hash (the controller's value hash
when the value is a translation); `leaf` is the hash the digest counts."""


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A key a worker kept at its last good value after rejecting a change."""

    namespace: str
    key: str
    rev: int
    reason: str
    held_hash: bytes = b""  # hash of the value kept; empty: the worker has no value


class ReplicaCorruptError(StatesyncError):
    """The state directory cannot be trusted; the worker resyncs from a snapshot."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"replica {path} is corrupt: {reason}")


class ReplicaInUseError(StatesyncError):
    exit_code = 5

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        super().__init__(f"state directory {path} is in use by another worker process")


@contextmanager
def _translated() -> Iterator[None]:
    try:
        yield
    except _native.ReplicaCorrupt as exc:
        path, reason = exc.args
        raise ReplicaCorruptError(Path(path), reason) from exc
    except _native.ReplicaInUse as exc:
        raise ReplicaInUseError(Path(exc.args[0])) from exc


def _rows(rejected: Iterable[tuple[HeldKey, bytes]]) -> list[tuple[str, str, int, str, bytes]]:
    return [(h.namespace, h.key, h.rev, h.reason, refused) for h, refused in rejected]


class Replica:
    """Entries by namespace and key, the held-back keys, and the applied revision.

    Persisted in `state_dir` (None: in memory only). `digest(ns)` covers the
    authoritative view: a held key counts with the value the controller sent
    (which the worker refused), so a worker that is right except for its
    reported NACKs agrees with the controller. Thread-safe; SQLite work runs
    with the GIL released.
    """

    def __init__(self, state_dir: Path | None, *, worker_id: str = "") -> None:
        with _translated():
            self._native = _native.Replica(state_dir, worker_id)

    @classmethod
    def open_for_worker(
        cls, state_dir: Path, *, worker_id: str
    ) -> tuple[Replica, tuple[str, str] | None]:
        """A worker's replica; a corrupt one is moved aside (the second item:
        where, and why) and an empty one opened in its place, to be bootstrapped."""
        with _translated():
            native, set_aside = _native.open_worker_replica(state_dir, worker_id)
        replica = cls.__new__(cls)
        replica._native = native
        return replica, set_aside

    @property
    def native(self) -> _native.Replica:
        """The native replica (the native worker syncs this one)."""
        return self._native

    @property
    def applied_rev(self) -> int:
        return self._native.applied_rev

    def get(self, ns: str, key: str) -> Entry | None:
        return self._native.get(ns, key)

    def values(self, ns: str, prefix: str = "") -> list[tuple[str, bytes]]:
        """(key, canonical value) of ns's keys under `prefix`, sorted by key."""
        return self._native.values(ns, prefix)

    def value_hashes(self, ns: str) -> dict[str, bytes]:
        """Each stored key of ns with its value's hash (what a snapshot is compared with)."""
        return self._native.value_hashes(ns)

    def schema_version(self, ns: str) -> int:
        """The schema version ns's values were served in (one for all of them:
        a change of version re-sends the state); -1 when there are none."""
        return self._native.schema_version(ns)

    def root(self, ns: str) -> bytes:
        """ns's digest."""
        return self._native.root(ns)

    def count(self, ns: str) -> int:
        """The number of keys ns's digest counts."""
        return self._native.count(ns)

    def digest(self, ns: str) -> NamespaceDigest:
        """A copy of ns's digest trie, for a descent."""
        return self._native.digest(ns)

    def leaves(self, ns: str, prefix: str) -> dict[str, bytes]:
        """The (key -> leaf hash) pairs the digest counts under `prefix`, for
        digest descent. The by-bucket index is built on first use."""
        return self._native.leaves(ns, prefix)

    def held(self) -> list[HeldKey]:
        """The keys held back after a NACK, with the hash of the value kept."""
        return [HeldKey(*row) for row in self._native.held()]

    def apply(
        self,
        rev: int,
        puts: list[tuple[str, str, Entry]],
        deletes: list[tuple[str, str]],
        rejected: list[tuple[HeldKey, bytes]],
    ) -> None:
        """Apply one revision atomically: puts, deletes, newly held keys
        (with the hash of the value the controller sent; b"" for a delete)."""
        self._native.apply(rev, puts, deletes, _rows(rejected))

    def advance(self, rev: int) -> None:
        """No change for our namespaces through `rev` (a progress notice)."""
        self._native.advance(rev)

    def replace(
        self,
        rev: int,
        entries: dict[str, dict[str, Entry]],
        rejected: Iterable[tuple[HeldKey, bytes]] = (),
        digests: dict[str, NamespaceDigest] | None = None,
    ) -> None:
        """Replace the replica with a snapshot at `rev`. Earlier held keys are
        dropped; `rejected` are the snapshot's own refused keys (already left
        at their last good value in `entries`), with the refused value's hash.
        `digests`, when the caller already built them over the snapshot as
        sent, are the authoritative view as is: no second build."""
        self._native.replace(rev, entries, _rows(rejected), digests)

    def close(self) -> None:
        """Close the file and release the state directory; reads still work."""
        self._native.close()


def read_offline(state_dir: Path) -> dict[str, object]:
    """The replica as `statesync replica dump` prints it, read without a worker."""
    with _translated():
        worker_id, applied_rev, namespaces, held = _native.read_replica(state_dir)
    return {
        "worker_id": worker_id,
        "applied_rev": applied_rev,
        "namespaces": namespaces,
        "held": [
            {"ns": ns, "key": key, "rev": rev, "reason": reason} for ns, key, rev, reason in held
        ],
    }
