"""The worker: a sync stream to the controller around a persisted replica.

`Worker.run()` is the asyncio entry point; `Worker.start()` / `stop()` run the
same loop on a background thread for plain scripts. The worker applies
batches strictly in revision order (`ReplicaCursor` says apply, replay or
gap), validates each change (canonical hash, the schema version it was served
in, then the user's validator) and
NACKs the ones it refuses while keeping that key's last good value, ACKs with
its digests, sends heartbeats, and reconnects with jittered backoff, resuming
from its applied revision.

A handler sees each applied change with its `command_id` (the idempotency key
for external effects). The replica commits a revision only after the handler
returned; a handler that raises is retried with backoff, never skipped. Raise
`Reject` to refuse a change instead (NACK).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import random
import shutil
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import orjson

from statesync.contracts.compat import check_schema
from statesync.contracts.registry import Contract, SchemaValidator
from statesync.core import reconcile
from statesync.core.canonical import canonical_bytes, parse_json
from statesync.core.delta import DeltaMismatchError, apply_delta
from statesync.core.digest import NamespaceDigest
from statesync.core.errors import ProtocolError, StatesyncError
from statesync.core.model import CONTRACTS_NAMESPACE
from statesync.core.sync import BatchVerdict, HeldKey, ReplicaCursor
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import error_from_rpc, held_to_pb, pb
from statesync.worker.replica import Entry, Replica, ReplicaCorruptError

__all__ = ["ChangeEvent", "Reject", "Worker", "WorkerSettings"]

log = logging.getLogger("statesync.worker")


class Reject(Exception):
    """Raised by a validator or handler: refuse this change (NACK), keep the last good value."""


class _Stale(Exception):
    pass


class _Resync(Exception):
    pass


class _Stopped(Exception):
    """stop() was called while a handler was being retried."""


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One applied change, as handlers and callbacks see it."""

    rev: int
    ns: str
    key: str
    op: str  # "put" or "delete"
    value: Any  # the decoded JSON value (None for a delete)
    command_id: str  # idempotency key for external side effects ("" for a snapshot)
    trace: str
    create_rev: int = 0
    version: int = 0
    snapshot: bool = False  # True: produced by a resync, not by a command
    schema_version: int = 0  # the schema version `value` is in (0: the namespace has none)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "rev": self.rev,
            "ns": self.ns,
            "key": self.key,
            "op": self.op,
            "command_id": self.command_id,
        }
        if self.op == "put":
            out |= {"value": self.value, "create_rev": self.create_rev, "version": self.version}
        if self.snapshot:
            out["snapshot"] = True
        if self.schema_version:
            out["schema_version"] = self.schema_version
        if self.trace:
            out["trace"] = self.trace
        return out


Handler = Callable[[ChangeEvent], Awaitable[None] | None]
Validator = Callable[[str, str, Any], None]


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    heartbeat_s: float = 1.0
    """How often the worker tells the controller it is alive."""
    stale_after_s: float = 5.0
    """Nothing from the controller for this long: the stream is stale, reconnect."""
    backoff_base_s: float = 0.1
    backoff_cap_s: float = 1.0
    """Reconnect delay: uniformly random in [0, min(cap, base * 2**attempt)] (full jitter);
    attempt is 0 right after a stream that was established, and counts failed
    attempts from there. The 1 s cap keeps a fleet back within about a second of
    a controller restart: the jitter spreads it, and the controller streams at
    most 4 snapshots at once, so a herd costs it little."""
    handler_retry_cap_s: float = 30.0
    chaos_drop: float = 0.0
    """Fault injection: the fraction of changes silently not applied (a buggy worker)."""
    chaos_corrupt: float = 0.0
    """Fault injection: the fraction of puts stored with a wrong value."""
    chaos_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("chaos_drop", "chaos_corrupt"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} is a fraction in [0, 1], got {rate!r}")


CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    # The worker paces its own reconnects (full jitter, above). gRPC's subchannels
    # outlive a channel and would otherwise add their own backoff (1 s, growing):
    # workers would stay away for seconds after a controller restart. The connect
    # timeout (min_reconnect_backoff_ms, 20 s) stays: a slow link must still connect.
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class _Chaos:
    """Decides, per applied change, whether to drop it, corrupt it, or apply it."""

    def __init__(self, settings: WorkerSettings) -> None:
        self.drop = settings.chaos_drop
        self.corrupt = settings.chaos_corrupt
        self._random = random.Random(settings.chaos_seed)
        self.dropped = 0
        self.corrupted = 0

    def fault(self) -> str | None:
        draw = self._random.random()
        if draw < self.drop:
            self.dropped += 1
            return "drop"
        if draw < self.drop + self.corrupt:
            self.corrupted += 1
            return "corrupt"
        return None


def _corrupted(entry: Entry) -> Entry:
    """A wrong value, consistent with its own hash, so only the digest can tell."""
    value = canonical_bytes({"statesync_chaos": "corrupted", "was": entry.vhash.hex()[:16]})
    digest = hashlib.sha256(value).digest()
    return Entry(
        value, entry.create_rev, entry.mod_rev, entry.version, digest, entry.schema_version
    )


class Worker:
    def __init__(
        self,
        server: str,
        *,
        worker_id: str,
        namespaces: Sequence[str],
        state_dir: Path | str | None = None,
        handler: Handler | None = None,
        validator: Validator | None = None,
        settings: WorkerSettings | None = None,
        deltas: bool = False,
        schemas: Mapping[str, Mapping[int, Any]] | None = None,
        versions: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """`schemas[ns][v]` is a JSON Schema this worker checks version v of ns
        against (NACKing what does not conform); `versions[ns]` lists versions it
        understands whose schemas come from the controller's registry. Together
        they are the versions the worker declares: the controller serves each
        change in the newest of them, translated. Neither: values as stored."""
        if not worker_id:
            raise ValueError("a worker needs a worker_id")
        if not namespaces:
            raise ValueError("a worker subscribes to at least one namespace")
        self.server = server
        self.worker_id = worker_id
        self.namespaces = tuple(sorted(set(namespaces)))
        self.settings = settings or WorkerSettings()
        self.handler = handler
        self.validator = validator
        self.deltas = deltas
        self.state_dir = None if state_dir is None else Path(state_dir)
        self.declared = {
            ns: sorted({*(versions or {}).get(ns, ()), *(schemas or {}).get(ns, {})})
            for ns in {*(versions or {}), *(schemas or {})}
        }
        unknown = self.declared.keys() - set(self.namespaces)
        if unknown:
            raise ValueError(f"schemas or versions for unsubscribed namespaces: {sorted(unknown)}")
        self._stub: pb_grpc.StatesyncStub | None = None
        for ns, by_version in (schemas or {}).items():
            for schema in by_version.values():
                check_schema(schema, ns)  # InvalidSchemaError names the path
        self._validators = {
            ns: {v: SchemaValidator(ns, v, schema) for v, schema in by_version.items()}
            for ns, by_version in (schemas or {}).items()
        }
        self.replica = self._open_replica()
        self.cursor = ReplicaCursor(self.replica.applied_rev)
        self._callbacks: list[Callable[[ChangeEvent], None]] = []
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._applied = threading.Condition()
        self.connected = False
        self._force_snapshot = False
        self._refused: dict[tuple[str, str], Entry] = {}
        """The last refused value of each held key: a delta may still be based on it."""
        self.reconnects = 0
        self.resyncs = 0
        self.repairs = 0
        self._repaired = 0  # the last repair applied: ACKs name it, so it is verified
        """Keys the controller repaired after a digest descent found them drifted."""
        self.chaos = (
            _Chaos(self.settings)
            if self.settings.chaos_drop or self.settings.chaos_corrupt
            else None
        )
        self.last_error: StatesyncError | None = None
        """The error that ended the last stream, as the controller reported it."""

    def _open_replica(self) -> Replica:
        try:
            return Replica(self.state_dir, worker_id=self.worker_id)
        except ReplicaCorruptError as exc:
            assert self.state_dir is not None
            aside = self.state_dir.with_name(f"{self.state_dir.name}.corrupt-{int(time.time())}")
            log.error("%s; moved it to %s and starting empty (full resync)", exc, aside)
            shutil.move(str(self.state_dir), aside)
            return Replica(self.state_dir, worker_id=self.worker_id)

    # ------------------------------------------------------------ local reads

    @property
    def applied_rev(self) -> int:
        return self.replica.applied_rev

    def get(self, ns: str, key: str) -> Any:
        entry = self.replica.get(ns, key)
        return None if entry is None else orjson.loads(entry.value)

    def list(self, ns: str, prefix: str = "") -> dict[str, Any]:
        return {k: orjson.loads(v) for k, v in self.replica.values(ns, prefix)}

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> None:
        """Call `callback(event)` after each change is applied (on the worker's loop)."""
        self._callbacks.append(callback)

    def wait_for(self, rev: int, timeout: float | None = None) -> bool:
        """Block (from another thread) until the replica has applied `rev`."""
        with self._applied:
            return self._applied.wait_for(lambda: self.applied_rev >= rev, timeout)

    def wait_for_error(self, timeout: float | None = None) -> StatesyncError | None:
        """Block until a stream ends with an error (e.g. NoTranslationPathError)."""
        with self._applied:
            self._applied.wait_for(lambda: self.last_error is not None, timeout)
            return self.last_error

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Worker:
        """Run the worker on a background thread (for plain scripts)."""
        started = threading.Event()

        def main() -> None:
            async def body() -> None:
                started.set()
                await self.run()

            asyncio.run(body())

        self._thread = threading.Thread(target=main, name=f"statesync-worker:{self.worker_id}")
        self._thread.start()
        started.wait()
        return self

    def stop_soon(self) -> None:
        """Ask `run()` to finish (call on the worker's own loop, e.g. from a signal handler)."""
        self._stopping.set()

    def stop(self) -> None:
        """Stop the worker (from any thread) and close its replica."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def __enter__(self) -> Worker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def run(self) -> None:
        """Sync until `stop()`: reconnect with jittered backoff after any failure."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        attempt = 0
        if self.chaos is not None:
            log.warning(
                "worker %s: CHAOS ON: silently dropping %.1f%% of changes and corrupting "
                "%.1f%% of values (fault injection; never in production)",
                self.worker_id,
                100 * self.chaos.drop,
                100 * self.chaos.corrupt,
            )
        try:
            while not self._stopping.is_set():
                established = False
                try:
                    established = await self._session()
                except _Stale as exc:
                    log.warning(
                        "worker %s: stream is stale (%s); reconnecting", self.worker_id, exc
                    )
                except _Stopped:
                    break
                except _Resync as exc:
                    log.warning("worker %s: %s; reconnecting to resync", self.worker_id, exc)
                except grpc.aio.AioRpcError as exc:
                    error = error_from_rpc(exc, self.server)
                    log.warning("worker %s: %s", self.worker_id, error)
                    with self._applied:
                        self.last_error = error
                        self._applied.notify_all()
                except Exception:  # a bug or a protocol violation: log it loudly, start over
                    log.exception("worker %s: sync stream failed; reconnecting", self.worker_id)
                finally:
                    self.connected = False
                if self._stopping.is_set():
                    break
                attempt = 0 if established else attempt + 1
                self.reconnects += 1
                delay = random.uniform(
                    0, min(self.settings.backoff_cap_s, self.settings.backoff_base_s * 2**attempt)
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
        finally:
            self.replica.close()
            log.info("worker %s stopped at revision %d", self.worker_id, self.applied_rev)

    # ------------------------------------------------------------ one stream

    async def _session(self) -> bool:
        outgoing: asyncio.Queue[pb.SyncRequest | None] = asyncio.Queue()
        outgoing.put_nowait(self._hello())

        async def requests() -> Any:
            while (item := await outgoing.get()) is not None:
                yield item

        async def heartbeats() -> None:
            while True:
                await asyncio.sleep(self.settings.heartbeat_s)
                outgoing.put_nowait(pb.SyncRequest(heartbeat=pb.Heartbeat(sent_unix=time.time())))

        established = False
        async with grpc.aio.insecure_channel(self.server, options=CHANNEL_OPTIONS) as channel:
            self._stub = stub = pb_grpc.StatesyncStub(channel)
            await self._fetch_schemas()
            call = stub.Sync(requests())
            beating = asyncio.create_task(heartbeats(), name=f"heartbeats:{self.worker_id}")
            stopping = asyncio.create_task(self._stopping.wait())
            self.cursor = ReplicaCursor(self.applied_rev)
            snapshot: _Snapshot | None = None
            try:
                while True:
                    read = asyncio.ensure_future(call.read())
                    done, _ = await asyncio.wait(
                        {read, stopping},
                        timeout=self.settings.stale_after_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                    if stopping in done:
                        read.cancel()
                        outgoing.put_nowait(None)
                        return established
                    if not done:
                        read.cancel()
                        raise _Stale(
                            f"nothing from the controller for {self.settings.stale_after_s:.1f} s"
                        )
                    reply = read.result()
                    if reply is grpc.aio.EOF:
                        log.info("worker %s: the controller closed the stream", self.worker_id)
                        return established
                    if not established:
                        established = self.connected = True
                        log.info(
                            "worker %s: connected to %s at revision %d",
                            self.worker_id,
                            self.server,
                            self.applied_rev,
                        )
                    snapshot = await self._handle(reply, snapshot, outgoing)
            finally:
                beating.cancel()
                stopping.cancel()
                call.cancel()

    def _hello(self) -> pb.SyncRequest:
        """A stream's first message: from the applied revision, or 0 to ask for a resync."""
        return pb.SyncRequest(
            hello=pb.Hello(
                worker_id=self.worker_id,
                namespaces=self.namespaces,
                from_rev=0 if self._force_snapshot else self.applied_rev,
                heartbeat_s=self.settings.heartbeat_s,
                deltas=self.deltas,
                held=[held_to_pb(h) for h in self.replica.held()],
                versions=[
                    pb.SchemaVersions(
                        ns=ns, versions=v, replica_version=self.replica.schema_version(ns)
                    )
                    for ns, v in self.declared.items()
                ],
            )
        )

    async def _handle(
        self,
        reply: pb.SyncReply,
        snapshot: _Snapshot | None,
        outgoing: asyncio.Queue[pb.SyncRequest | None],
    ) -> _Snapshot | None:
        kind = reply.WhichOneof("msg")
        if kind == "batch":
            if snapshot is not None:
                raise ProtocolError("a change batch arrived in the middle of a snapshot")
            verdict = self.cursor.check(reply.batch.prev_rev, reply.batch.rev)
            if verdict is BatchVerdict.GAP:
                raise _Resync(
                    f"gap: batch follows revision {reply.batch.prev_rev}, "
                    f"but revision {self.applied_rev} is the last applied"
                )
            if verdict is BatchVerdict.APPLY:
                for revision in reply.batch.revisions:
                    if revision.rev > self.applied_rev:
                        await self._apply_revision(revision, outgoing)
                self._advance(reply.batch.rev)
            self._ack(outgoing)
        elif kind == "progress":
            if snapshot is None:
                self._advance(reply.progress.rev)
                self._ack(outgoing)
        elif kind == "resync" and reply.resync.reconcile:
            log.info(
                "worker %s: moving from revision %d to %d, keeping the replica: %s "
                "(digest descent repairs what differs)",
                self.worker_id,
                self.applied_rev,
                reply.resync.rev,
                reply.resync.reason,
            )
            self.replica.advance(reply.resync.rev)
            self.cursor = ReplicaCursor(self.applied_rev)
            self._notify_applied()
            self._ack(outgoing)
        elif kind == "resync":
            log.info(
                "worker %s: resync at revision %d: %s",
                self.worker_id,
                reply.resync.rev,
                reply.resync.reason,
            )
            return _Snapshot(reply.resync)
        elif kind == "query":
            # Off the loop: heartbeats go on while a big namespace is described.
            try:
                answer = await asyncio.to_thread(self._answer, reply.query)
            except reconcile.DescentRefused as exc:
                raise ProtocolError(f"digest query {reply.query.id}: {exc}") from exc
            outgoing.put_nowait(pb.SyncRequest(answer=answer))
        elif kind == "repair":
            await self._repair(reply.repair)
            self._ack(outgoing)
        elif kind == "chunk":
            if snapshot is None:
                raise ProtocolError("a snapshot chunk arrived without a resync")
            snapshot.add(reply.chunk)
            if reply.chunk.last:
                await self._apply_snapshot(snapshot, outgoing)
                self._ack(outgoing)
                return None
        return snapshot

    async def _fetch_schemas(self) -> None:
        """Compile the registry's schemas for declared versions with no local schema
        (at connect, and when a change arrives in a version registered since)."""
        for ns, declared in self.declared.items():
            have = self._validators.setdefault(ns, {})
            if all(v in have for v in declared):
                continue
            assert self._stub is not None, "schemas are fetched on a stream"
            reply = await self._stub.Get(pb.GetRequest(ns=CONTRACTS_NAMESPACE, key=ns))
            if not reply.HasField("entry"):
                continue  # no schema yet: the controller decides whether it can serve us
            contract = Contract.from_json(orjson.loads(reply.entry.value))
            for v in declared:
                if v not in have and 1 <= v <= contract.current:
                    have[v] = contract.validator(v)

    async def _schemas_for(self, served: Iterable[tuple[str, int]]) -> None:
        if any(v not in self._validators.get(ns, {}) for ns, v in served if v):
            await self._fetch_schemas()

    def _check_schema(self, ns: str, key: str, version: int, value: Any) -> None:
        """Reject a value that breaks the schema version it was served in."""
        validators = self._validators.get(ns)
        if not validators:
            return
        if version == 0:  # the namespace has no registered schema: check the newest we run
            version = max(validators)
        validator = validators.get(version)
        if validator is None:
            raise Reject(f"served in schema v{version}, which this worker has no schema for")
        violations = validator.violations(value)
        if violations:
            detail = "; ".join(f"{v.path or '(root)'}: {v.message}" for v in violations)
            raise Reject(f"does not conform to schema v{version}: {detail}")

    def _answer(self, query: pb.DigestQuery) -> pb.DigestAnswer:
        """Describe our digest trie's nodes (and name leaves) for a descent."""
        ns = query.ns

        def leaves(prefix: str) -> dict[str, bytes]:
            return self.replica.leaves(ns, prefix)

        out = pb.DigestAnswer(id=query.id, ns=ns, rev=self.applied_rev)
        for a in reconcile.describe(self.replica.digest(ns), leaves, list(query.prefixes)):
            out.nodes.add(
                prefix=a.prefix, children=a.children, leaves=a.leaves, is_leaves=a.is_leaves
            )
        for q in query.names:
            out.names.extend(reconcile.name(leaves, q.prefix, q.leaves))
        return out

    async def _repair(self, repair: pb.Repair) -> None:
        """Apply the controller's values for drifted keys (never subject to chaos)."""
        self._repaired = repair.id  # applied or skipped: the next ACK's digest decides
        if repair.rev != self.applied_rev:
            log.info(
                "worker %s: repair for revision %d skipped at revision %d (the next digest "
                "check decides again)",
                self.worker_id,
                repair.rev,
                self.applied_rev,
            )
            return
        puts = [(e.ns, e.key, _entry_of(e)) for e in repair.entries]
        deletes = [(d.ns, d.key) for d in repair.deletes]
        events = [_state_event(repair.rev, ns, key, entry) for ns, key, entry in puts] + [
            ChangeEvent(repair.rev, ns, key, "delete", None, "", "", snapshot=True)
            for ns, key in deletes
        ]
        for event in events:
            try:
                await self._run_handler(event)
            except Reject as exc:
                # docs/wire.md: a repair is the controller's value, applied as sent; a
                # refusal would leave the key drifted and the descent repairing it forever.
                log.warning(
                    "worker %s: handler refused the repair of %s/%s (%s); applied as sent",
                    self.worker_id,
                    event.ns,
                    event.key,
                    exc,
                )
        self.replica.apply(repair.rev, puts, deletes, [])
        self.repairs += len(events)
        log.warning(
            "worker %s: repaired %d drifted key(s) at revision %d: %s",
            self.worker_id,
            len(events),
            repair.rev,
            repair.reason,
        )
        for event in events:
            for callback in self._callbacks:
                callback(event)

    def _advance(self, rev: int) -> None:
        self.replica.advance(rev)
        self.cursor.advance(max(rev, self.cursor.applied_rev))
        self._notify_applied()

    def _notify_applied(self) -> None:
        with self._applied:
            self._applied.notify_all()

    def _ack(self, outgoing: asyncio.Queue[pb.SyncRequest | None]) -> None:
        ack = pb.Ack(rev=self.applied_rev, repaired=self._repaired)
        for ns in self.namespaces:
            ack.digests.add(ns=ns, root=self.replica.root(ns), count=self.replica.count(ns))
        ack.held.extend(held_to_pb(h) for h in self.replica.held())
        outgoing.put_nowait(pb.SyncRequest(ack=ack))

    # ------------------------------------------------------------ applying

    def _check(self, change: pb.Change) -> Any:
        """Decode and validate one change; raise Reject when it cannot be applied."""
        if change.kind == pb.Change.DELETE:
            if self.validator is not None:
                self.validator(change.ns, change.key, None)
            return None
        if change.patch:
            change.value = self._resolve_delta(change)
        if hashlib.sha256(change.value).digest() != change.value_hash:
            raise Reject("the value does not match its hash")
        try:
            value = parse_json(change.value, namespace=change.ns, key=change.key)
        except StatesyncError as exc:
            raise Reject(str(exc)) from None
        self._check_schema(change.ns, change.key, change.schema_version, value)
        if self.validator is not None:
            self.validator(change.ns, change.key, value)
        return value

    def _resolve_delta(self, change: pb.Change) -> bytes:
        """The full value of a delta; a wrong base means this replica drifted: resync."""
        base = self.replica.get(change.ns, change.key)
        refused = self._refused.get((change.ns, change.key))
        if refused is not None and refused.mod_rev == change.prev_mod_rev:
            base = refused  # sent before the controller heard our NACK: based on what we refused
        if base is None or base.mod_rev != change.prev_mod_rev:
            self._force_snapshot = True
            have = "no value" if base is None else f"mod_rev {base.mod_rev}"
            raise _Resync(
                f"delta for {change.ns}/{change.key} is based on mod_rev "
                f"{change.prev_mod_rev}, the replica has {have}"
            )
        try:
            return apply_delta(change.ns, change.key, base.value, change.patch, change.value_hash)
        except DeltaMismatchError as exc:
            self._force_snapshot = True
            raise _Resync(str(exc)) from None

    async def _apply_revision(
        self, revision: pb.Revision, outgoing: asyncio.Queue[pb.SyncRequest | None]
    ) -> None:
        puts: list[tuple[str, str, Entry]] = []
        deletes: list[tuple[str, str]] = []
        rejected: list[tuple[HeldKey, bytes]] = []
        events: list[ChangeEvent] = []
        await self._schemas_for((c.ns, c.schema_version) for c in revision.changes)
        for change in revision.changes:
            try:
                value = self._check(change)
                op = "delete" if change.kind == pb.Change.DELETE else "put"
                event = ChangeEvent(
                    revision.rev,
                    change.ns,
                    change.key,
                    op,
                    value,
                    revision.command_id,
                    revision.trace,
                    change.create_rev,
                    change.version,
                    schema_version=change.schema_version,
                )
                await self._run_handler(event)
            except Reject as exc:
                held = self._nack(revision.rev, change, str(exc), outgoing)
                rejected.append((held, change.source_hash or change.value_hash))
                if change.kind == pb.Change.PUT and change.value:
                    self._refused[(change.ns, change.key)] = _entry(change, revision.rev)
                continue
            self._refused.pop((change.ns, change.key), None)
            fault = None if self.chaos is None else self.chaos.fault()
            change_key = (change.ns, change.key)
            if fault == "drop":
                log.debug("worker %s: CHAOS dropped %s/%s", self.worker_id, *change_key)
                continue
            if op == "delete":
                deletes.append((change.ns, change.key))
            else:
                entry = _entry(change, revision.rev)
                if fault == "corrupt":
                    log.debug(
                        "worker %s: CHAOS corrupted %s/%s", self.worker_id, change.ns, change.key
                    )
                    entry = _corrupted(entry)
                puts.append((change.ns, change.key, entry))
            events.append(event)
        self.replica.apply(revision.rev, puts, deletes, rejected)
        self.cursor.advance(revision.rev)
        self._notify_applied()
        for event in events:
            for callback in self._callbacks:
                callback(event)

    def _nack(
        self,
        rev: int,
        change: pb.Change,
        reason: str,
        outgoing: asyncio.Queue[pb.SyncRequest | None],
    ) -> HeldKey:
        log.warning(
            "worker %s: NACK revision %d %s/%s: %s",
            self.worker_id,
            rev,
            change.ns,
            change.key,
            reason,
        )
        outgoing.put_nowait(
            pb.SyncRequest(nack=pb.Nack(rev=rev, ns=change.ns, key=change.key, reason=reason))
        )
        return HeldKey(change.ns, change.key, rev, reason)

    async def _run_handler(self, event: ChangeEvent) -> None:
        if self.handler is None:
            return
        attempt = 0
        while True:
            try:
                if inspect.iscoroutinefunction(self.handler):
                    await self.handler(event)
                else:
                    await asyncio.to_thread(self.handler, event)
                return
            except Reject:
                raise
            except Exception as exc:
                attempt += 1
                delay = min(self.settings.handler_retry_cap_s, 0.1 * 2**attempt)
                log.error(
                    "worker %s: handler failed on revision %d %s/%s (attempt %d): %s; "
                    "retrying in %.1f s",
                    self.worker_id,
                    event.rev,
                    event.ns,
                    event.key,
                    attempt,
                    exc,
                    delay,
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    raise _Stopped from exc

    async def _apply_snapshot(
        self, snapshot: _Snapshot, outgoing: asyncio.Queue[pb.SyncRequest | None]
    ) -> None:
        entries = snapshot.entries
        digests = {
            d.ns: NamespaceDigest.from_items((k, e.leaf) for k, e in entries.get(d.ns, {}).items())
            for d in snapshot.resync.digests
        }
        for d in snapshot.resync.digests:
            if digests[d.ns].root() != d.root:
                self._force_snapshot = True
                raise _Resync(f"snapshot of namespace {d.ns!r} does not match its digest")
        rev = snapshot.resync.rev
        events: list[ChangeEvent] = []
        rejected: list[tuple[HeldKey, bytes]] = []
        # The snapshot releases every earlier hold; its own refused entries are the
        # bases of deltas sent before the controller hears their NACKs.
        refused_entries: dict[tuple[str, str], Entry] = {}
        await self._schemas_for(
            {(ns, e.schema_version) for ns, keyed in entries.items() for e in keyed.values()}
        )
        checked = self.validator is not None or any(self._validators.values())
        if self.handler is not None or self._callbacks or checked:
            for event in list(self._snapshot_events(entries, rev)):
                try:
                    if event.op == "put":
                        self._check_schema(event.ns, event.key, event.schema_version, event.value)
                    if self.validator is not None:
                        self.validator(event.ns, event.key, event.value)
                    await self._run_handler(event)
                except Reject as exc:
                    refused = entries[event.ns].pop(event.key, None)
                    kept = self.replica.get(event.ns, event.key)
                    if kept is not None:
                        entries.setdefault(event.ns, {})[event.key] = kept
                    change = pb.Change(ns=event.ns, key=event.key)
                    held = self._nack(rev, change, str(exc), outgoing)
                    rejected.append((held, b"" if refused is None else refused.leaf))
                    if refused is not None:
                        refused_entries[(event.ns, event.key)] = refused
                    continue
                events.append(event)
        self.replica.replace(rev, entries, rejected, digests)
        self._refused = refused_entries
        self.cursor = ReplicaCursor(rev)
        self._force_snapshot = False
        self.resyncs += 1
        self._notify_applied()
        log.info(
            "worker %s: replica replaced by the snapshot at revision %d (%d keys)",
            self.worker_id,
            rev,
            sum(len(v) for v in entries.values()),
        )
        for event in events:
            for callback in self._callbacks:
                callback(event)

    def _snapshot_events(self, entries: dict[str, dict[str, Entry]], rev: int) -> Any:
        """What a snapshot changes, as events: puts of new or different values, deletes
        (each in key order, so the NACKs of refused ones are in a stable order)."""
        for ns in self.namespaces:
            old = self.replica.value_hashes(ns)
            new = entries.get(ns, {})
            for key, entry in sorted(new.items()):
                if old.get(key) != entry.vhash:
                    yield _state_event(rev, ns, key, entry)
            for key in sorted(old.keys() - new.keys()):
                yield ChangeEvent(rev, ns, key, "delete", None, "", "", snapshot=True)


def _state_event(rev: int, ns: str, key: str, entry: Entry) -> ChangeEvent:
    """A put that a snapshot or a repair makes (no command behind it)."""
    value = orjson.loads(entry.value)
    return ChangeEvent(
        rev,
        ns,
        key,
        "put",
        value,
        "",
        "",
        entry.create_rev,
        entry.version,
        snapshot=True,
        schema_version=entry.schema_version,
    )


class _Snapshot:
    """A bootstrap being received: the resync notice and the entries so far."""

    def __init__(self, resync: pb.Resync) -> None:
        self.resync = resync
        self.entries: dict[str, dict[str, Entry]] = {}

    def add(self, chunk: pb.SnapshotChunk) -> None:
        for e in chunk.entries:
            self.entries.setdefault(e.ns, {})[e.key] = _entry_of(e)


def _entry_of(e: pb.Entry) -> Entry:
    return Entry(
        e.value,
        e.create_rev,
        e.mod_rev,
        e.version,
        hashlib.sha256(e.value).digest(),
        e.schema_version,
        e.source_hash,
    )


def _entry(change: pb.Change, rev: int) -> Entry:
    return Entry(
        change.value,
        change.create_rev,
        rev,
        change.version,
        change.value_hash,
        change.schema_version,
        change.source_hash,
    )
