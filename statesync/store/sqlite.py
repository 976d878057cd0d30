"""The embedded store: one SQLite file in WAL mode, fsync on every commit.

One committer thread owns the write connection. Callers enqueue prepared
commands; the committer takes everything queued (up to `max_batch`), lets the
core's `Sequencer` turn it into one `BatchWrite`, writes that in a single
transaction and fsyncs once (`synchronous=FULL`), and only then resolves the
callers' futures. Concurrent commands therefore share one fsync (group commit)
and no caller is acknowledged before its command is on disk.

Readers use their own connection per thread; WAL gives them a consistent view
while the committer writes. Every `sqlite3` error becomes a `StoreError` here.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from statesync.contracts.registry import ContractGate
from statesync.core.commands import Command, Committed, PreparedCommand, prepare
from statesync.core.digest import NamespaceDigest, Node, fingerprint, position
from statesync.core.errors import (
    CompactedError,
    FutureRevisionError,
    InvalidCommandError,
    InvalidInputError,
    StatesyncError,
    StoreClosedError,
    StoreCorruptError,
    StoreError,
    StoreInUseError,
)
from statesync.core.model import (
    GENESIS_HASH,
    Change,
    ChangeOp,
    KeyRecord,
    chain_hash,
    check_key,
    check_namespace,
)
from statesync.core.sequencer import BatchWrite, CommandRecord, Outcome, Sequencer, keys_read
from statesync.store.base import ChainReport, StoreSettings

__all__ = ["SQLiteStore"]

log = logging.getLogger("statesync.store.sqlite")

FORMAT_VERSION = 1
EMPTY_ROOT = fingerprint(0, 0)
_POS_BIAS = 1 << 63
_PREFETCH = 400  # parameters per bulk query stay under SQLite's limit

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS kv (
    ns TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, vhash BLOB NOT NULL,
    create_rev INTEGER NOT NULL, mod_rev INTEGER NOT NULL, version INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    PRIMARY KEY (ns, key)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS kv_pos ON kv (ns, pos);
CREATE TABLE IF NOT EXISTS log (
    rev INTEGER NOT NULL, seq INTEGER NOT NULL, ns TEXT NOT NULL, key TEXT NOT NULL,
    op TEXT NOT NULL, value BLOB, prev_mod_rev INTEGER NOT NULL,
    create_rev INTEGER NOT NULL, version INTEGER NOT NULL, command_id TEXT NOT NULL,
    ts_ms INTEGER NOT NULL, trace TEXT, hash BLOB NOT NULL,
    PRIMARY KEY (rev, seq)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS log_key ON log (ns, key, rev);
CREATE TABLE IF NOT EXISTS commands (
    command_id TEXT PRIMARY KEY, fingerprint BLOB NOT NULL, rev INTEGER NOT NULL,
    ts_ms INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS commands_ts ON commands (ts_ms);
CREATE TABLE IF NOT EXISTS digests (
    ns TEXT NOT NULL, rev INTEGER NOT NULL, root BLOB NOT NULL, count INTEGER NOT NULL,
    PRIMARY KEY (ns, rev)) WITHOUT ROWID;
"""

_LOG_COLUMNS = (
    "rev, seq, ns, key, op, value, prev_mod_rev, create_rev, version, command_id, "
    "ts_ms, trace, hash"
)


def _pos(key: str) -> int:
    """The key's digest position as a signed 64-bit integer (order-preserving)."""
    return int.from_bytes(position(key)[:8], "big") - _POS_BIAS


def _check_limit(limit: int) -> None:
    if type(limit) is not int or limit < 1:
        raise InvalidInputError(f"limit is an integer >= 1, got {limit!r}")


def _row_to_change(row: tuple[Any, ...]) -> Change:
    return Change(
        rev=row[0],
        seq=row[1],
        namespace=row[2],
        key=row[3],
        op=ChangeOp(row[4]),
        value=row[5],
        prev_mod_rev=row[6],
        create_rev=row[7],
        version=row[8],
        command_id=row[9],
        ts_ms=row[10],
        trace=row[11],
        hash=row[12],
    )


@dataclass(frozen=True, slots=True)
class _Pinned:
    """A read transaction: its connection, the revision read and the head/compacted
    revisions it sees."""

    conn: sqlite3.Connection
    rev: int
    head: int
    compacted: int


@dataclass(slots=True)
class _Job:
    future: Future[Any]
    command: Command | None = None
    task: Callable[[sqlite3.Connection], Any] | None = None


class _LockedDataFile:
    """An exclusive advisory lock beside the database: one process writes it."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".lock")
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(self._fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(self._fd)
            raise StoreInUseError(str(db_path), holder) from None
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        os.close(self._fd)


def _connect(path: Path, *, readonly: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=10000")
    if readonly:
        conn.execute("PRAGMA query_only=1")
    return conn


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
        self._clock = clock
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock_file = _LockedDataFile(self.path)
        self._conn: sqlite3.Connection | None = None
        self.contract_gate = ContractGate(history=lambda ns, key, rev: self.get(ns, key, rev=rev))
        """Contracts and conflict policies, enforced in every group commit."""
        try:
            self._conn = _connect(self.path)
            self._init_schema()
            self._sequencer = self._load_head()
        except BaseException as exc:
            if self._conn is not None:
                self._conn.close()
            self._lock_file.release()
            if isinstance(exc, sqlite3.Error):
                raise StoreCorruptError(f"cannot open {self.path}: {exc}") from exc
            raise
        self._compacted_rev = int(self._meta("compacted_rev", 0))
        self._readers = threading.local()
        self._reader_conns: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._head_lock = threading.Lock()
        self._queue: deque[_Job] = deque()
        self._cv = threading.Condition()
        self._closing = False
        self._last_maintenance = self._clock()
        self._listeners: list[Callable[[BatchWrite], None]] = []
        self._committer = threading.Thread(
            target=self._run_committer, name=f"statesync-committer:{self.path.name}", daemon=True
        )
        self._committer.start()
        log.info(
            "opened %s at revision %d (compacted at %d)",
            self.path,
            self._sequencer.head_rev,
            self._compacted_rev,
        )

    # -- opening ---------------------------------------------------------

    def _init_schema(self) -> None:
        self._conn.executescript(_SCHEMA)
        version = self._meta("format_version", None)
        if version is None:
            self._conn.execute("INSERT INTO meta VALUES ('format_version', ?)", (FORMAT_VERSION,))
        elif int(version) != FORMAT_VERSION:
            raise StoreCorruptError(
                f"{self.path} has format version {version}; this statesync reads {FORMAT_VERSION}"
            )

    def _meta(self, name: str, default: Any) -> Any:
        row = self._conn.execute("SELECT value FROM meta WHERE name = ?", (name,)).fetchone()
        return default if row is None else row[0]

    def _load_head(self) -> Sequencer:
        head_rev = int(self._meta("head_rev", 0))
        chain_head = self._meta("chain_head", GENESIS_HASH)
        by_ns: dict[str, list[tuple[str, bytes]]] = {}
        for ns, key, vhash in self._conn.execute("SELECT ns, key, vhash FROM kv"):
            by_ns.setdefault(ns, []).append((key, vhash))
        digests = {ns: NamespaceDigest.from_items(items) for ns, items in by_ns.items()}
        for ns, digest in digests.items():
            row = self._conn.execute(
                "SELECT root FROM digests WHERE ns = ? ORDER BY rev DESC LIMIT 1", (ns,)
            ).fetchone()
            if row is not None and row[0] != digest.root():
                raise StoreCorruptError(
                    f"namespace {ns!r}: the recorded digest does not match the stored keys"
                )
        return Sequencer(
            head_rev=head_rev,
            chain_head=chain_head,
            digests=digests,
            limits=self.settings.limits,
            gate=self.contract_gate,
        )

    # -- properties ------------------------------------------------------

    @property
    def head_rev(self) -> int:
        return self._sequencer.head_rev

    @property
    def compacted_rev(self) -> int:
        return self._compacted_rev

    # -- writes ----------------------------------------------------------

    def _submit(self, *jobs: _Job) -> None:
        """Queue jobs together: the committer sees all of them or none."""
        with self._cv:
            if self._closing:
                raise StoreClosedError()
            self._queue.extend(jobs)
            self._cv.notify()

    def submit(self, command: Command) -> Future[Committed]:
        """Queue a command for the next group commit; the future resolves when
        it is durable (or fails with a statesync error).

        The committer thread checks and prepares commands too: one thread doing
        all the CPU work avoids handing the GIL back and forth with callers.
        """
        job = _Job(Future(), command=command)
        self._submit(job)
        return job.future

    def commit(self, command: Command) -> Committed:
        return self.submit(command).result()

    async def commit_async(self, command: Command) -> Committed:
        return await asyncio.wrap_future(self.submit(command))

    def commit_many(self, commands: Sequence[Command]) -> list[Outcome]:
        jobs = [_Job(Future(), command=command) for command in commands]
        for i in range(0, len(jobs), self.settings.max_batch):
            self._submit(*jobs[i : i + self.settings.max_batch])
        outcomes: list[Outcome] = []
        for f in (job.future for job in jobs):
            try:
                outcomes.append(f.result())
            except StatesyncError as exc:
                outcomes.append(exc)
        return outcomes

    def _run_task(self, task: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `task` on the committer thread, between group commits."""
        job = _Job(Future(), task=task)
        self._submit(job)
        return job.future.result()

    # -- the committer thread ---------------------------------------------

    def _run_committer(self) -> None:
        interval = self.settings.maintenance_interval_s
        while True:
            with self._cv:
                if not self._queue and not self._closing:
                    self._cv.wait(timeout=interval)
                if self._closing and not self._queue:
                    return
                jobs: list[_Job] = []
                ops = 0
                while self._queue and len(jobs) < self.settings.max_batch:
                    if self._queue[0].task is not None:
                        if jobs:
                            break
                        jobs.append(self._queue.popleft())
                        break
                    # Bound a group by ops too: a bulk load must not hold every writer
                    # behind one giant transaction.
                    command = self._queue[0].command
                    ops += len(command.ops) if command is not None else 0
                    if jobs and ops > self.settings.max_batch_ops:
                        break
                    jobs.append(self._queue.popleft())
            if jobs and jobs[0].task is not None:
                self._run_job_task(jobs[0])
            elif jobs:
                self._group_commit(jobs)
            if self._clock() - self._last_maintenance >= interval:
                self._maintain_now()

    def _run_job_task(self, job: _Job) -> None:
        assert job.task is not None
        try:
            job.future.set_result(job.task(self._conn))
        except sqlite3.Error as exc:
            self._rollback()
            error = StoreError(f"{self.path}: {exc}")
            error.__cause__ = exc
            job.future.set_exception(error)
        except BaseException as exc:
            self._rollback()
            job.future.set_exception(exc)

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def _prefetch_keys(self, keys: set[tuple[str, str]]) -> dict[tuple[str, str], KeyRecord]:
        """The head records of `keys`, in as few primary-key queries as possible."""
        by_ns: dict[str, list[str]] = {}
        for ns, key in keys:
            by_ns.setdefault(ns, []).append(key)
        found: dict[tuple[str, str], KeyRecord] = {}
        for ns, names in by_ns.items():
            for i in range(0, len(names), _PREFETCH):
                chunk = names[i : i + _PREFETCH]
                for row in self._conn.execute(
                    "SELECT ns, key, value, create_rev, mod_rev, version FROM kv "
                    f"WHERE ns = ? AND key IN ({','.join('?' * len(chunk))})",
                    [ns, *chunk],
                ):
                    found[(ns, row[1])] = KeyRecord(*row)
        return found

    def _prefetch_commands(self, ids: list[str]) -> dict[str, CommandRecord]:
        found: dict[str, CommandRecord] = {}
        for i in range(0, len(ids), _PREFETCH):
            chunk = ids[i : i + _PREFETCH]
            for row in self._conn.execute(
                "SELECT command_id, fingerprint, rev, ts_ms FROM commands "
                f"WHERE command_id IN ({','.join('?' * len(chunk))})",
                chunk,
            ):
                found[row[0]] = CommandRecord(*row)
        return found

    def _group_commit(self, jobs: list[_Job]) -> None:
        commands: list[PreparedCommand] = []
        ready: list[_Job] = []
        for job in jobs:
            assert job.command is not None
            try:
                commands.append(prepare(job.command, self.settings.limits))
            except StatesyncError as exc:
                job.future.set_exception(exc)
            except Exception as exc:  # a malformed object: fail this command, not the thread
                error = InvalidCommandError(f"malformed command: {exc!r}")
                error.__cause__ = exc
                job.future.set_exception(error)
            else:
                ready.append(job)
        if not ready:
            return
        jobs = ready
        with self._head_lock:
            try:
                head = self._prefetch_keys(keys_read(commands))
                known = self._prefetch_commands([c.command_id for c in commands])
                outcomes, batch = self._sequencer.build(
                    commands,
                    read=lambda ns, key: head.get((ns, key)),
                    lookup=known.get,
                    now_ms=int(self._clock() * 1000),
                )
            except Exception as exc:  # a bug: fail this batch, keep the committer alive
                log.exception("group commit of %d commands failed before writing", len(jobs))
                # The in-memory head may be half-updated: take it from disk again.
                self._sequencer = self._load_head()
                error = StoreError(f"{self.path}: commit failed: {exc!r}")
                error.__cause__ = exc
                for job in jobs:
                    job.future.set_exception(error)
                return
            if not batch.empty:
                try:
                    self._write(batch)
                except sqlite3.Error as exc:
                    self._rollback()
                    self._sequencer.abort(batch)
                    log.error("group commit of %d commands failed: %s", len(jobs), exc)
                    error = StoreError(f"{self.path}: commit failed: {exc}")
                    error.__cause__ = exc
                    outcomes = [
                        error if isinstance(o, Committed) and not o.replayed else o
                        for o in outcomes
                    ]
                else:
                    self._sequencer.confirm(batch)
                    self._notify(batch)
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                job.future.set_exception(outcome)
            else:
                job.future.set_result(outcome)

    def add_listener(self, listener: Callable[[BatchWrite], None]) -> None:
        """Call `listener(batch)` after each durable group commit,
        on the committer thread, before any of its writers is answered (so a
        writer's revision is always known to listeners). It must be quick."""
        self._listeners.append(listener)

    def _notify(self, batch: BatchWrite) -> None:
        for listener in self._listeners:
            try:
                listener(batch)
            except Exception:
                log.exception("commit listener %r failed", listener)

    def _write(self, batch: BatchWrite) -> None:
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        puts = []
        deletes = []
        for (ns, key), record in batch.state.items():
            if record is None:
                deletes.append((ns, key))
            else:
                puts.append(
                    (
                        ns,
                        key,
                        record.value,
                        batch.value_hashes[(ns, key)],
                        record.create_rev,
                        record.mod_rev,
                        record.version,
                        _pos(key),
                    )
                )
        if deletes:
            conn.executemany("DELETE FROM kv WHERE ns = ? AND key = ?", deletes)
        if puts:
            conn.executemany("INSERT OR REPLACE INTO kv VALUES (?, ?, ?, ?, ?, ?, ?, ?)", puts)
        conn.executemany(
            f"INSERT INTO log ({_LOG_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    c.rev,
                    c.seq,
                    c.namespace,
                    c.key,
                    c.op.value,
                    c.value,
                    c.prev_mod_rev,
                    c.create_rev,
                    c.version,
                    c.command_id,
                    c.ts_ms,
                    c.trace,
                    c.hash,
                )
                for c in batch.changes
            ],
        )
        conn.executemany(
            "INSERT INTO commands VALUES (?, ?, ?, ?)",
            [(c.command_id, c.fingerprint, c.rev, c.ts_ms) for c in batch.commands],
        )
        conn.executemany(
            "INSERT INTO digests VALUES (?, ?, ?, ?)",
            [(r.namespace, r.rev, r.root, r.count) for r in batch.roots],
        )
        conn.executemany(
            "INSERT OR REPLACE INTO meta VALUES (?, ?)",
            [("head_rev", batch.head_rev), ("chain_head", batch.chain_head)],
        )
        conn.execute("COMMIT")  # synchronous=FULL: the WAL is fsynced here

    # -- maintenance ------------------------------------------------------

    def maintain(self) -> None:
        self._run_task(lambda conn: self._maintain_now())

    def _maintain_now(self) -> None:
        self._last_maintenance = now = self._clock()
        s = self.settings
        try:
            cutoff_ms = int((now - s.idempotency_retention_s) * 1000)
            pruned = self._conn.execute("DELETE FROM commands WHERE ts_ms < ?", (cutoff_ms,))
            if pruned.rowcount:
                log.info("forgot %d command ids older than the retention", pruned.rowcount)
            target = self._auto_compaction_target(now)
            if target > self._compacted_rev:
                self._compact_now(self._conn, target)
        except sqlite3.Error as exc:
            self._rollback()
            log.error("maintenance failed: %s", exc)

    def _auto_compaction_target(self, now: float) -> int:
        s = self.settings
        target = 0
        if s.history_retention_revisions is not None:
            target = max(target, self.head_rev - s.history_retention_revisions)
        if s.history_retention_s is not None:
            cutoff_ms = int((now - s.history_retention_s) * 1000)
            row = self._conn.execute(
                "SELECT max(rev) FROM log WHERE ts_ms < ? AND rev > ?",
                (cutoff_ms, self._compacted_rev),
            ).fetchone()
            if row[0] is not None:
                target = max(target, row[0])
        return target

    def compact(self, rev: int) -> None:
        """Drop history at or below `rev`; reads at revisions >= `rev` still work."""
        if rev > self.head_rev:
            raise FutureRevisionError(rev, self.head_rev)
        self._run_task(lambda conn: self._compact_now(conn, rev))

    def _compact_now(self, conn: sqlite3.Connection, rev: int) -> None:
        if rev <= self._compacted_rev:
            return
        conn.execute("BEGIN IMMEDIATE")
        anchor = conn.execute(
            "SELECT hash FROM log WHERE rev <= ? AND rev > ? ORDER BY rev DESC, seq DESC LIMIT 1",
            (rev, self._compacted_rev),
        ).fetchone()
        # Keep each key's newest put at or below `rev`, so reads at `rev` still work.
        conn.execute(
            """DELETE FROM log WHERE rev <= ?1 AND (op = 'delete' OR rev < (
                   SELECT max(l2.rev) FROM log l2
                   WHERE l2.ns = log.ns AND l2.key = log.key AND l2.rev <= ?1))""",
            (rev,),
        )
        conn.execute(
            """DELETE FROM digests WHERE rev < (
                   SELECT max(d2.rev) FROM digests d2 WHERE d2.ns = digests.ns AND d2.rev <= ?1)""",
            (rev,),
        )
        updates = [("compacted_rev", rev)]
        if anchor is not None:
            updates.append(("chain_anchor", anchor[0]))
        conn.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", updates)
        conn.execute("COMMIT")
        self._compacted_rev = rev
        log.info("compacted history at or below revision %d", rev)

    # -- reads -----------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        if self._closing:
            raise StoreClosedError()
        conn = getattr(self._readers, "conn", None)
        if conn is None:
            conn = _connect(self.path, readonly=True)
            self._readers.conn = conn
            with self._readers_lock:
                self._reader_conns.append(conn)
        return conn

    @contextlib.contextmanager
    def _read_txn(self, rev: int | None) -> Iterator[_Pinned]:
        """A read transaction pinned at `rev` (None: the head), checked to be retained."""
        if rev is not None and (type(rev) is not int or rev < 0):
            raise InvalidInputError(f"a revision is an integer >= 0, got {rev!r}")
        conn = self._reader()
        try:
            conn.execute("BEGIN")
            head, compacted = self._pinned_revs(conn)
            if rev is None:
                rev = head
            elif rev > head:
                raise FutureRevisionError(rev, head)
            elif rev < compacted:
                raise CompactedError(rev, compacted)
            yield _Pinned(conn, rev, head, compacted)
        except sqlite3.Error as exc:
            if self._closing:
                raise StoreClosedError() from exc
            raise StoreError(f"{self.path}: read failed: {exc}") from exc
        finally:
            with contextlib.suppress(sqlite3.ProgrammingError):  # closed under us by close()
                if conn.in_transaction:
                    conn.execute("COMMIT")

    @staticmethod
    def _pinned_revs(conn: sqlite3.Connection) -> tuple[int, int]:
        values = dict(
            conn.execute("SELECT name, value FROM meta WHERE name IN ('head_rev', 'compacted_rev')")
        )
        return int(values.get("head_rev", 0)), int(values.get("compacted_rev", 0))

    def get(self, namespace: str, key: str, *, rev: int | None = None) -> KeyRecord | None:
        check_key(check_namespace(namespace, readable=True), key)
        with self._read_txn(rev) as txn:
            conn, at = txn.conn, txn.rev
            if at == txn.head:
                row = conn.execute(
                    "SELECT value, create_rev, mod_rev, version FROM kv WHERE ns = ? AND key = ?",
                    (namespace, key),
                ).fetchone()
                return None if row is None else KeyRecord(namespace, key, *row)
            row = conn.execute(
                "SELECT op, value, create_rev, rev, version FROM log "
                "WHERE ns = ? AND key = ? AND rev <= ? ORDER BY rev DESC LIMIT 1",
                (namespace, key, at),
            ).fetchone()
            if row is None or row[0] == ChangeOp.DELETE:
                return None
            return KeyRecord(namespace, key, row[1], row[2], row[3], row[4])

    def range(
        self,
        namespace: str,
        *,
        prefix: str = "",
        rev: int | None = None,
        start_after: str | None = None,
        limit: int = 1000,
    ) -> list[KeyRecord]:
        check_namespace(namespace, readable=True)
        _check_limit(limit)
        start = prefix if start_after is None or start_after < prefix else start_after
        op = ">=" if start_after is None or start_after < prefix else ">"
        out: list[KeyRecord] = []
        with self._read_txn(rev) as txn:
            rows = self._range_rows(
                txn.conn, [namespace], txn.rev, txn.head, key_op=op, key_from=start
            )
            for ns, key, value, create_rev, mod_rev, version in rows:
                if not key.startswith(prefix):
                    break  # keys sort by UTF-8 bytes: a prefix's keys are contiguous
                out.append(KeyRecord(ns, key, value, create_rev, mod_rev, version))
                if len(out) >= limit:
                    break
        return out

    @staticmethod
    def _range_rows(
        conn: sqlite3.Connection,
        namespaces: Sequence[str] | None,
        at: int,
        head: int,
        *,
        key_op: str = ">=",
        key_from: str = "",
    ) -> sqlite3.Cursor:
        """(ns, key, value, create_rev, mod_rev, version) at `at`, ordered by (ns, key)."""
        ns_filter, params = "", []
        if namespaces is not None:
            ns_filter = f"ns IN ({','.join('?' * len(namespaces))}) AND "
            params = list(namespaces)
        if len(namespaces or ()) == 1:
            ns_filter += f"key {key_op} ? AND "
            params.append(key_from)
        if at == head:
            return conn.execute(
                "SELECT ns, key, value, create_rev, mod_rev, version FROM kv "
                f"WHERE {ns_filter} 1 ORDER BY ns, key",
                params,
            )
        # SQLite takes the bare columns from the row holding max(rev).
        return conn.execute(
            "SELECT ns, key, value, create_rev, rev, version FROM ("
            "  SELECT ns, key, op, value, create_rev, max(rev) AS rev, version FROM log "
            f"  WHERE {ns_filter} rev <= ? GROUP BY ns, key"
            ") WHERE op = 'put' ORDER BY ns, key",
            [*params, at],
        )

    def changes(
        self, after_rev: int, *, limit: int = 1000, namespaces: Sequence[str] | None = None
    ) -> list[Change]:
        if type(after_rev) is not int or after_rev < 0:
            raise InvalidInputError(f"a revision is an integer >= 0, got {after_rev!r}")
        _check_limit(limit)
        with self._read_txn(None) as txn:
            conn = txn.conn
            if after_rev < txn.compacted:
                raise CompactedError(after_rev, txn.compacted)
            if after_rev > txn.head:
                raise FutureRevisionError(after_rev, txn.head)
            ns_filter, params = "", []
            if namespaces is not None:
                for ns in namespaces:
                    check_namespace(ns, readable=True)
                ns_filter = f"AND ns IN ({','.join('?' * len(namespaces))})"
                params = list(namespaces)
            rows = conn.execute(
                f"SELECT {_LOG_COLUMNS} FROM log WHERE rev > ? {ns_filter} "
                "ORDER BY rev, seq LIMIT ?",
                [after_rev, *params, limit],
            ).fetchall()
            if len(rows) == limit:
                # Never split a revision: one command's changes arrive together.
                last = rows[-1][0]
                rows = [r for r in rows if r[0] != last]
                rows += conn.execute(
                    f"SELECT {_LOG_COLUMNS} FROM log WHERE rev = ? {ns_filter} ORDER BY seq",
                    [last, *params],
                ).fetchall()
        return [_row_to_change(r) for r in rows]

    def snapshot(
        self,
        namespaces: Sequence[str] | None = None,
        *,
        rev: int | None = None,
        chunk_size: int = 1000,
    ) -> _SQLiteSnapshot:
        if self._closing:
            raise StoreClosedError()
        if namespaces is not None:
            namespaces = tuple(check_namespace(ns, readable=True) for ns in namespaces)
        _check_limit(chunk_size)
        return _SQLiteSnapshot(self, namespaces, rev, chunk_size)

    def namespaces(self) -> list[str]:
        with self._head_lock:
            return sorted(ns for ns, d in self._sequencer.digests.items() if d.count)

    def digest(self, namespace: str, *, rev: int | None = None) -> bytes:
        check_namespace(namespace, readable=True)
        with self._read_txn(rev) as txn:
            return self._root_at(txn.conn, namespace, txn.rev)[0]

    @staticmethod
    def _root_at(conn: sqlite3.Connection, namespace: str, rev: int) -> tuple[bytes, int]:
        """A namespace's digest root and key count at `rev`."""
        row = conn.execute(
            "SELECT root, count FROM digests WHERE ns = ? AND rev <= ? ORDER BY rev DESC LIMIT 1",
            (namespace, rev),
        ).fetchone()
        return (EMPTY_ROOT, 0) if row is None else (row[0], row[1])

    def digest_node(self, namespace: str, prefix: str) -> Node:
        """The head digest trie's node at `prefix` (a string of hex nibbles)."""
        check_namespace(namespace, readable=True)
        with self._head_lock:
            digest = self._sequencer.digest(namespace)
            return digest.node(prefix, lambda p: self.leaves(namespace, p))

    def leaves(self, namespace: str, prefix: str) -> dict[str, bytes]:
        check_namespace(namespace, readable=True)
        nibbles = prefix[:16]
        lo = int(nibbles.ljust(16, "0"), 16) - _POS_BIAS if nibbles else -_POS_BIAS
        hi = int(nibbles.ljust(16, "f"), 16) - _POS_BIAS if nibbles else _POS_BIAS - 1
        with self._read_txn(None) as txn:
            rows = txn.conn.execute(
                "SELECT key, vhash FROM kv WHERE ns = ? AND pos BETWEEN ? AND ?",
                (namespace, lo, hi),
            ).fetchall()
        if len(prefix) > 16:
            return {k: v for k, v in rows if position(k).hex().startswith(prefix)}
        return dict(rows)

    def verify_chain(self) -> ChainReport:
        """Recompute the hash chain over the retained history.

        Raises StoreCorruptError naming the first revision that does not verify.
        """
        with self._read_txn(None) as txn:
            conn, head, compacted = txn.conn, txn.head, txn.compacted
            row = conn.execute("SELECT value FROM meta WHERE name = 'chain_anchor'").fetchone()
            expected = GENESIS_HASH if row is None else row[0]
            recorded_head = conn.execute(
                "SELECT value FROM meta WHERE name = 'chain_head'"
            ).fetchone()
            count = 0
            for r in conn.execute(
                f"SELECT {_LOG_COLUMNS} FROM log WHERE rev > ? ORDER BY rev, seq", (compacted,)
            ):
                change = _row_to_change(r)
                expected = chain_hash(expected, change.canonical())
                if expected != change.hash:
                    raise StoreCorruptError(
                        f"hash chain broken at revision {change.rev} (change #{change.seq}, "
                        f"{change.namespace}/{change.key}): the log was altered"
                    )
                count += 1
            if recorded_head is not None and recorded_head[0] != expected:
                raise StoreCorruptError("hash chain head does not match the last change")
        return ChainReport(compacted, head, count, expected)

    # -- closing ---------------------------------------------------------

    def close(self) -> None:
        """Finish queued commits, then close. Idempotent."""
        with self._cv:
            if self._closing:
                return
            self._closing = True
            self._cv.notify()
        self._committer.join()
        with self._readers_lock:
            for conn in self._reader_conns:
                conn.close()
            self._reader_conns.clear()
        self._conn.close()
        self._lock_file.release()
        log.info("closed %s at revision %d", self.path, self.head_rev)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _SQLiteSnapshot:
    """A read transaction pinned at one revision, iterated in chunks."""

    def __init__(
        self,
        store: SQLiteStore,
        namespaces: tuple[str, ...] | None,
        rev: int | None,
        chunk_size: int,
    ) -> None:
        self._store = store
        self._requested_rev = rev
        self._chunk_size = chunk_size
        self._requested_ns = namespaces
        self._conn: sqlite3.Connection | None = None
        self.rev = 0
        self.namespaces: tuple[str, ...] = ()
        self.digests: dict[str, bytes] = {}
        self.counts: dict[str, int] = {}
        self._head = 0

    def __enter__(self) -> _SQLiteSnapshot:
        conn = _connect(self._store.path, readonly=True)
        try:
            conn.execute("BEGIN")
            self._head, compacted = SQLiteStore._pinned_revs(conn)
            rev = self._head if self._requested_rev is None else self._requested_rev
            if rev > self._head:
                raise FutureRevisionError(rev, self._head)
            if rev < compacted:
                raise CompactedError(rev, compacted)
            if self._requested_ns is None:
                names = [r[0] for r in conn.execute("SELECT DISTINCT ns FROM digests")]
            else:
                names = list(self._requested_ns)
            self.rev = rev
            self.namespaces = tuple(sorted(names))
            roots = {ns: SQLiteStore._root_at(conn, ns, rev) for ns in self.namespaces}
            self.digests = {ns: root for ns, (root, _) in roots.items()}
            self.counts = {ns: count for ns, (_, count) in roots.items()}
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return self

    def chunks(self) -> Iterator[list[KeyRecord]]:
        if self._conn is None:
            raise RuntimeError("use the snapshot as a context manager")
        rows = SQLiteStore._range_rows(self._conn, self.namespaces, self.rev, self._head)
        while batch := rows.fetchmany(self._chunk_size):
            yield [KeyRecord(*r) for r in batch]

    def __exit__(self, *exc: object) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
