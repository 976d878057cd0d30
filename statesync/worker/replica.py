"""The worker's local replica: in memory, persisted in a state directory.

One SQLite file (`replica.sqlite`) holds the entries, the keys held back after
a NACK, and the applied revision; each revision (or snapshot) is applied in
one transaction together with the new applied revision, so a crash never
applies a change twice nor skips one. A restarted worker resumes from its
applied revision. The file is checked at open (SQLite integrity, format, and
each namespace's digest against the one stored with the last commit); a bad
file raises `ReplicaCorruptError`, and the worker moves it aside and resyncs.

SQLite runs with `synchronous=NORMAL` in WAL mode: a killed process loses
nothing committed; a power loss may lose the newest revisions, which the
worker simply receives again (the controller is the source of truth).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from statesync.core.digest import NamespaceDigest, bucket_of, position
from statesync.core.errors import StatesyncError
from statesync.core.sync import HeldKey

__all__ = ["REPLICA_FILE", "Entry", "Replica", "ReplicaCorruptError", "ReplicaInUseError"]

REPLICA_FILE = "replica.sqlite"
FORMAT = "statesync.replica.v1"


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


@dataclass(frozen=True, slots=True)
class Entry:
    value: bytes  # canonical JSON
    create_rev: int
    mod_rev: int
    version: int
    vhash: bytes
    schema_version: int = 0  # the schema version `value` is in (0: no schema)
    source_hash: bytes = b""  # the controller's value hash, when `value` is a translation

    @property
    def leaf(self) -> bytes:
        """The hash the digest counts: the controller's value, as stored there."""
        return self.source_hash or self.vhash

    def row(self, ns: str, key: str) -> tuple[object, ...]:
        return (
            ns,
            key,
            self.value,
            self.create_rev,
            self.mod_rev,
            self.version,
            self.vhash,
            self.schema_version,
            self.source_hash,
        )


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, create_rev INTEGER NOT NULL,
    mod_rev INTEGER NOT NULL, version INTEGER NOT NULL, vhash BLOB NOT NULL,
    schema_version INTEGER NOT NULL DEFAULT 0, source_hash BLOB NOT NULL DEFAULT x'',
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS held (
    ns TEXT NOT NULL, key TEXT NOT NULL, rev INTEGER NOT NULL, reason TEXT NOT NULL,
    auth_hash BLOB NOT NULL, PRIMARY KEY (ns, key)) WITHOUT ROWID;
"""


class Replica:
    """Entries by namespace and key, the held-back keys, and the applied revision.

    `digest(ns)` covers the authoritative view: a held key counts with the
    value the controller sent (which the worker refused), so a worker that
    is right except for its reported NACKs agrees with the controller.
    """

    def __init__(self, state_dir: Path | None, *, worker_id: str = "") -> None:
        self.state_dir = state_dir
        self.worker_id = worker_id
        self.applied_rev = 0
        self.data: dict[str, dict[str, Entry]] = {}
        self.held: dict[tuple[str, str], HeldKey] = {}
        self._auth: dict[tuple[str, str], bytes] = {}
        self.digests: dict[str, NamespaceDigest] = {}
        self._buckets: dict[str, dict[int, set[str]]] = {}
        """Per namespace, keys by their position's first 4 nibbles (for `leaves`)."""
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        if state_dir is not None:
            self._open(state_dir)

    # ------------------------------------------------------------ persistence

    @property
    def path(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / REPLICA_FILE

    def _open(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ReplicaInUseError(state_dir) from None
        self._lock_fd = fd
        path = state_dir / REPLICA_FILE
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._conn = conn
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            status = conn.execute("PRAGMA quick_check").fetchone()[0]
            if status != "ok":
                raise ReplicaCorruptError(path, f"integrity check failed: {status}")
            conn.executescript(_SCHEMA)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(kv)")}
            if "schema_version" not in columns:  # a replica from before contracts
                conn.execute("ALTER TABLE kv ADD COLUMN schema_version INTEGER NOT NULL DEFAULT 0")
                conn.execute("ALTER TABLE kv ADD COLUMN source_hash BLOB NOT NULL DEFAULT x''")
            self._load(path)
        except sqlite3.Error as exc:
            self.close()
            raise ReplicaCorruptError(path, str(exc)) from exc
        except ReplicaCorruptError:
            self.close()
            raise

    def _load(self, path: Path) -> None:
        conn = self._conn
        assert conn is not None
        meta = dict(conn.execute("SELECT name, value FROM meta"))
        if not meta:
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("format", FORMAT), ("applied_rev", "0"), ("worker_id", self.worker_id)],
            )
            return
        if meta.get("format") != FORMAT:
            raise ReplicaCorruptError(path, f"unknown format {meta.get('format')!r}")
        try:
            self.applied_rev = int(meta["applied_rev"])
        except (KeyError, ValueError):
            raise ReplicaCorruptError(path, "no applied revision recorded") from None
        for ns, key, *fields in conn.execute(
            "SELECT ns, key, value, create_rev, mod_rev, version, vhash, schema_version,"
            " source_hash FROM kv"
        ):
            entry = Entry(*fields)
            if hashlib.sha256(entry.value).digest() != entry.vhash:
                raise ReplicaCorruptError(
                    path, f"namespace {ns!r}, key {key!r}: value changed on disk"
                )
            self.data.setdefault(ns, {})[key] = entry
        for ns, key, rev, reason, auth_hash in conn.execute("SELECT * FROM held"):
            self.held[(ns, key)] = HeldKey(ns, key, rev, reason, self._hash_of(ns, key))
            self._auth[(ns, key)] = auth_hash
        self._rebuild_digests()
        for name, value in meta.items():
            if name.startswith("root:"):
                ns = name[5:]
                if self.digest(ns).root().hex() != value:
                    raise ReplicaCorruptError(
                        path, f"namespace {ns!r}: entries do not match the recorded digest"
                    )

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection | None]:
        if self._conn is None:
            yield None
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # ------------------------------------------------------------ reads

    def get(self, ns: str, key: str) -> Entry | None:
        return self.data.get(ns, {}).get(key)

    def items(self, ns: str, prefix: str = "") -> list[tuple[str, Entry]]:
        return sorted((k, e) for k, e in self.data.get(ns, {}).items() if k.startswith(prefix))

    def schema_version(self, ns: str) -> int:
        """The schema version ns's values were served in (one for all of them:
        a change of version re-sends the state); -1 when there are none."""
        entries = self.data.get(ns)
        if not entries:
            return -1
        return next(iter(entries.values())).schema_version

    def digest(self, ns: str) -> NamespaceDigest:
        digest = self.digests.get(ns)
        if digest is None:
            digest = self.digests[ns] = NamespaceDigest()
        return digest

    def _hash_of(self, ns: str, key: str) -> bytes:
        entry = self.get(ns, key)
        return b"" if entry is None else entry.vhash

    def _count(self, ns: str, key: str, old: bytes | None, new: bytes | None) -> None:
        """`key`'s leaf changed from `old` to `new` (None: not counted)."""
        if old == new:
            return
        top = bucket_of(key)  # hashed once, for the digest and the index
        self.digest(ns).update(key, old, new, bucket=top)
        buckets = self._buckets.get(ns)
        if buckets is not None and (old is None) != (new is None):
            bucket = buckets.setdefault(top, set())
            if new is None:
                bucket.discard(key)
            else:
                bucket.add(key)

    def leaves(self, ns: str, prefix: str) -> dict[str, bytes]:
        """The (key -> leaf hash) pairs the digest counts under `prefix`, for
        digest descent. The by-bucket index is built on first use."""
        buckets = self._buckets.get(ns)
        if buckets is None:
            buckets = self._index(ns)
        if len(prefix) >= 4:
            candidates: Iterable[str] = buckets.get(int(prefix[:4], 16), ())
        else:  # the 16**(4 - len) buckets under the prefix
            first = int(prefix.ljust(4, "0"), 16) if prefix else 0
            last = int(prefix.ljust(4, "f"), 16) if prefix else 0xFFFF
            candidates = (k for b in range(first, last + 1) for k in buckets.get(b, ()))
        found = {}
        for key in candidates:
            if len(prefix) <= 4 or position(key).hex().startswith(prefix):
                leaf = self._auth_hash(ns, key)
                if leaf is not None:
                    found[key] = leaf
        return found

    def _index(self, ns: str) -> dict[int, set[str]]:
        buckets: dict[int, set[str]] = {}
        for key in self.data.get(ns, {}):
            buckets.setdefault(bucket_of(key), set()).add(key)
        for held_ns, key in self._auth:
            if held_ns == ns and self._auth_hash(ns, key) is not None:
                buckets.setdefault(bucket_of(key), set()).add(key)
        self._buckets[ns] = buckets
        return buckets

    def _rebuild_digests(self) -> None:
        """Digests and the descent index, in one pass over the keys (one hash each)."""
        self._buckets = {}
        self.digests = {}
        for ns, entries in self.data.items():
            buckets: dict[int, set[str]] = self._buckets.setdefault(ns, {})

            def index(key: str, top: int, buckets: dict[int, set[str]] = buckets) -> None:
                buckets.setdefault(top, set()).add(key)

            counted = ((k, self._auth_hash(ns, k)) for k in entries)
            self.digests[ns] = NamespaceDigest.from_items(
                ((k, h) for k, h in counted if h is not None), on_bucket=index
            )
        for (ns, key), auth in self._auth.items():
            if key not in self.data.get(ns, {}) and auth:
                self._count(ns, key, None, auth)

    # ------------------------------------------------------------ writes

    def _auth_hash(self, ns: str, key: str) -> bytes | None:
        if (ns, key) in self._auth:
            return self._auth[(ns, key)] or None
        entry = self.get(ns, key)
        return None if entry is None else entry.leaf

    def apply(
        self,
        rev: int,
        puts: list[tuple[str, str, Entry]],
        deletes: list[tuple[str, str]],
        rejected: list[tuple[HeldKey, bytes]],
    ) -> None:
        """Apply one revision atomically: puts, deletes, newly held keys
        (with the hash of the value the controller sent; b"" for a delete)."""
        with self._transaction() as conn:
            touched = set()
            for ns, key, entry in puts:
                old = self._auth_hash(ns, key)
                self.data.setdefault(ns, {})[key] = entry
                self._release(ns, key, conn)
                self._count(ns, key, old, entry.leaf)
                touched.add(ns)
            for ns, key in deletes:
                old = self._auth_hash(ns, key)
                self.data.get(ns, {}).pop(key, None)
                self._release(ns, key, conn)
                self._count(ns, key, old, None)
                touched.add(ns)
            for held, auth in rejected:
                ns, key = held.namespace, held.key
                old = self._auth_hash(ns, key)
                self.held[(ns, key)] = held
                self._auth[(ns, key)] = auth
                self._count(ns, key, old, auth or None)
                touched.add(ns)
            if conn is not None:
                conn.executemany(
                    "INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [e.row(ns, k) for ns, k, e in puts],
                )
                conn.executemany("DELETE FROM kv WHERE ns = ? AND key = ?", deletes)
                conn.executemany(
                    "INSERT OR REPLACE INTO held VALUES (?, ?, ?, ?, ?)",
                    [(h.namespace, h.key, h.rev, h.reason, a) for h, a in rejected],
                )
                self._write_meta(conn, rev, touched)
            self.applied_rev = rev

    def _release(self, ns: str, key: str, conn: sqlite3.Connection | None) -> None:
        if self.held.pop((ns, key), None) is not None:
            self._auth.pop((ns, key), None)
            if conn is not None:
                conn.execute("DELETE FROM held WHERE ns = ? AND key = ?", (ns, key))

    def advance(self, rev: int) -> None:
        """No change for our namespaces through `rev` (a progress notice)."""
        if rev <= self.applied_rev:
            return
        with self._transaction() as conn:
            if conn is not None:
                self._write_meta(conn, rev, ())
            self.applied_rev = rev

    def replace(
        self,
        rev: int,
        entries: dict[str, dict[str, Entry]],
        rejected: list[tuple[HeldKey, bytes]] = (),  # type: ignore[assignment]
        digests: dict[str, NamespaceDigest] | None = None,
    ) -> None:
        """Replace the replica with a snapshot at `rev`. Earlier held keys are
        dropped; `rejected` are the snapshot's own refused keys (already left
        at their last good value in `entries`), with the refused value's hash.
        `digests`, when the caller already built them over the snapshot as
        sent, are the authoritative view as is: no second build."""
        with self._transaction() as conn:
            if conn is not None:
                conn.execute("DELETE FROM kv")
                conn.execute("DELETE FROM held")
                conn.execute("DELETE FROM meta WHERE name LIKE 'root:%'")
                conn.executemany(
                    "INSERT INTO kv VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (e.row(ns, k) for ns, keyed in entries.items() for k, e in keyed.items()),
                )
                conn.executemany(
                    "INSERT INTO held VALUES (?, ?, ?, ?, ?)",
                    [(h.namespace, h.key, h.rev, h.reason, a) for h, a in rejected],
                )
            self.data = entries
            self.held = {(h.namespace, h.key): h for h, _ in rejected}
            self._auth = {(h.namespace, h.key): a for h, a in rejected}
            if digests is not None and digests.keys() >= entries.keys():
                self.digests = dict(digests)
                self._buckets = {}
            else:
                self._rebuild_digests()
            if conn is not None:
                self._write_meta(conn, rev, entries.keys())
            self.applied_rev = rev

    def _write_meta(self, conn: sqlite3.Connection, rev: int, namespaces: Iterable[str]) -> None:
        rows = [("applied_rev", str(rev)), ("worker_id", self.worker_id)]
        rows += [(f"root:{ns}", self.digest(ns).root().hex()) for ns in namespaces]
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", rows)


def read_offline(state_dir: Path) -> dict[str, object]:
    """The replica as `statesync replica dump` prints it, read without a worker."""
    path = state_dir / REPLICA_FILE
    if not path.exists():
        raise ReplicaCorruptError(path, "no replica file (is this a worker's --state-dir?)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT name, value FROM meta"))
            namespaces: dict[str, dict[str, bytes]] = {}
            for ns, key, value in conn.execute("SELECT ns, key, value FROM kv ORDER BY ns, key"):
                namespaces.setdefault(ns, {})[key] = value
            held = [
                {"ns": ns, "key": key, "rev": rev, "reason": reason}
                for ns, key, rev, reason in conn.execute("SELECT ns, key, rev, reason FROM held")
            ]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise ReplicaCorruptError(path, str(exc)) from exc
    return {
        "worker_id": meta.get("worker_id", ""),
        "applied_rev": int(meta.get("applied_rev", 0)),
        "namespaces": namespaces,
        "held": held,
    }
