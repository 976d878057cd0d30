"""The worker: a sync stream to the controller around a persisted replica.

The stream, the replica and every check are the native worker's
(crates/worker, through `statesync._native.Worker`): it applies batches
strictly in revision order, validates each change (canonical hash, the schema
version it was served in), NACKs the ones it refuses while keeping that key's
last good value, ACKs with its digests, answers digest descents, sends
heartbeats, and reconnects with jittered backoff, resuming from its applied
revision. Python is entered only to run the user's code: once per revision
(or snapshot, or repair) with all of its changes, for the validator and the
handler, and once after they are applied, with the accepted ones, for
`on_change` callbacks (none of them: Python is not entered at all).

`Worker.run()` is the asyncio entry point; `Worker.start()` / `stop()` run the
same on a background thread for plain scripts.

A handler sees each change with its `command_id` (the idempotency key for
external effects), before the revision is applied: the replica commits a
revision only after the handler returned. A handler that raises is retried
with backoff, never skipped. Raise `Reject` to refuse a change instead (NACK).
A handler may read the replica (`get`, `list`): it shows the revision before.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import grpc
import orjson

import statesync._native as _native
from statesync.contracts.compat import check_schema
from statesync.core.errors import StatesyncError
from statesync.wire import error_from_status
from statesync.worker.replica import Replica

__all__ = ["ChangeEvent", "Reject", "Worker", "WorkerSettings"]

log = logging.getLogger("statesync.worker")


class Reject(Exception):
    """Raised by a validator or handler: refuse this change (NACK), keep the last good value."""


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
    snapshot: bool = False  # True: produced by a resync or a repair, not by a command
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
    backoff_base_s: float = 0.05
    backoff_cap_s: float = 1.0
    """Reconnect delay: uniformly random in [1/2, 1] * min(cap, max(base, outage / 4)),
    the outage counted from when the last established stream ended (or the
    worker started). A fleet is back within about a quarter of the outage after
    the controller is (0.1 s after a 0.4 s restart), spread at random over that
    window; the controller streams at most 4 snapshots at once, so a herd costs
    it little. Over a long outage a worker tries about once a second."""
    handler_retry_cap_s: float = 30.0
    chaos_drop: float = 0.0
    """Fault injection: the fraction of accepted changes silently not applied (a buggy worker)."""
    chaos_corrupt: float = 0.0
    """Fault injection: the fraction of accepted puts stored with a wrong value."""
    chaos_seed: int | None = None

    def __post_init__(self) -> None:
        for name in ("chaos_drop", "chaos_corrupt"):
            rate = getattr(self, name)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} is a fraction in [0, 1], got {rate!r}")
        if self.stale_after_s <= self.heartbeat_s or self.heartbeat_s <= 0:
            raise ValueError(
                f"stale_after_s ({self.stale_after_s}) must exceed a positive "
                f"heartbeat_s ({self.heartbeat_s})"
            )


class ChaosCounts(NamedTuple):
    """What fault injection did so far."""

    dropped: int
    corrupted: int


_ORIGIN_REPAIR = 2


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
        for ns, declared in self.declared.items():
            if any(v < 1 for v in declared):
                raise ValueError(f"schema versions of {ns!r} start at 1, got {declared}")
        self._schemas: list[tuple[str, int, bytes]] = []
        for ns, by_version in (schemas or {}).items():
            for version, schema in by_version.items():
                check_schema(schema, ns)  # InvalidSchemaError names the path
                self._schemas.append((ns, version, orjson.dumps(schema)))
        self.replica = self._open_replica()
        self._callbacks: list[Callable[[ChangeEvent], None]] = []
        self._native: _native.Worker | None = None
        self._started = threading.Event()
        self._halt = threading.Event()
        """Set on stop: a handler being retried gives up (the revision stays unapplied)."""
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def _open_replica(self) -> Replica:
        if self.state_dir is None:
            return Replica(None, worker_id=self.worker_id)
        replica, set_aside = Replica.open_for_worker(self.state_dir, worker_id=self.worker_id)
        if set_aside is not None:
            aside, reason = set_aside
            log.error(
                "replica %s is corrupt: %s; moved it to %s and starting empty (full resync)",
                self.state_dir,
                reason,
                aside,
            )
        return replica

    # ------------------------------------------------------------ local reads

    @property
    def applied_rev(self) -> int:
        """The last revision applied. While the worker runs it is the one the
        worker published after finishing that revision (callbacks run, counters
        such as `resyncs` updated), so whatever is read after it is as new."""
        if self._native is None:
            return self.replica.applied_rev
        return self._native.status()[0]

    def get(self, ns: str, key: str) -> Any:
        entry = self.replica.get(ns, key)
        return None if entry is None else orjson.loads(entry.value)

    def list(self, ns: str, prefix: str = "") -> dict[str, Any]:
        return {k: orjson.loads(v) for k, v in self.replica.values(ns, prefix)}

    def on_change(self, callback: Callable[[ChangeEvent], None]) -> None:
        """Call `callback(event)` after each change is applied, on the worker's
        sync thread (register callbacks before the worker starts)."""
        self._callbacks.append(callback)

    def _status(self) -> tuple[int, bool, int, int, int, int, int, int, str | None]:
        if self._native is None:
            return (self.replica.applied_rev, False, 0, 0, 0, 0, 0, 0, None)
        return self._native.status()

    @property
    def connected(self) -> bool:
        return self._status()[1]

    @property
    def reconnects(self) -> int:
        return self._status()[2]

    @property
    def resyncs(self) -> int:
        """Snapshots installed (the bootstrap included)."""
        return self._status()[3]

    @property
    def repairs(self) -> int:
        """Keys the controller repaired after a digest descent found them drifted."""
        return self._status()[4]

    @property
    def chaos(self) -> ChaosCounts | None:
        """What fault injection did (None: no fault injection)."""
        if not (self.settings.chaos_drop or self.settings.chaos_corrupt):
            return None
        status = self._status()
        return ChaosCounts(status[5], status[6])

    @property
    def bytes_received(self) -> int:
        """The encoded size of every controller message received."""
        return self._status()[7]

    @property
    def last_error(self) -> StatesyncError | None:
        """The error that ended the last failed stream, as the controller reported it."""
        failed = None if self._native is None else self._native.last_error()
        if failed is None:
            return None
        code, message, error = failed
        return error_from_status(_status_code(code), message, error, self.server)

    def wait_for(self, rev: int, timeout: float | None = None) -> bool:
        """Block (from another thread) until the replica has applied `rev`."""
        if self.applied_rev >= rev:
            return True
        native, left = self._running(timeout)
        return native is not None and native.wait_for(rev, left)

    def wait_for_error(self, timeout: float | None = None) -> StatesyncError | None:
        """Block until a stream ends with an error (e.g. NoTranslationPathError)."""
        native, left = self._running(timeout)
        if native is not None:
            native.wait_for_error(left)
        return self.last_error

    def _running(self, timeout: float | None) -> tuple[_native.Worker | None, float | None]:
        """The native worker once it started (None: not within `timeout`), and
        what is left of `timeout`."""
        if timeout is None:
            self._started.wait()
            return self._native, None
        deadline = time.monotonic() + timeout
        self._started.wait(timeout)
        return self._native, max(0.0, deadline - time.monotonic())

    # ------------------------------------------------------------ lifecycle

    def start(self) -> Worker:
        """Run the worker on a background thread (for plain scripts)."""
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self.run()), name=f"statesync-worker:{self.worker_id}"
        )
        self._thread.start()
        self._started.wait()
        return self

    def stop_soon(self) -> None:
        """Ask `run()` to finish (call on the worker's own loop, e.g. from a signal handler)."""
        self._halt.set()
        self._stopping.set()

    def stop(self) -> None:
        """Stop the worker (from any thread) and close its replica."""
        self._halt.set()
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
        """Sync until `stop()`: the native worker reconnects after any failure."""
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        if self._halt.is_set():
            self._stopping.set()  # stop() came before the loop existed
        decides = self.handler is not None or self.validator is not None
        try:
            self._native = _native.Worker(
                self.server,
                self.worker_id,
                list(self.namespaces),
                self.replica.native,
                deltas=self.deltas,
                heartbeat_s=self.settings.heartbeat_s,
                stale_after_s=self.settings.stale_after_s,
                backoff_base_s=self.settings.backoff_base_s,
                backoff_cap_s=self.settings.backoff_cap_s,
                versions=self.declared,
                schemas=self._schemas,
                chaos=(
                    self.settings.chaos_drop,
                    self.settings.chaos_corrupt,
                    self.settings.chaos_seed,
                ),
                decide=self._decide if decides else None,
                applied=self._applied if self._callbacks else None,
            )
        finally:
            self._started.set()
        native = self._native
        try:
            await self._stopping.wait()
        finally:
            self._halt.set()
            # Off the loop: an async handler the worker is waiting for runs on it.
            await asyncio.to_thread(native.stop)

    # ------------------------------------------------------------ the user's code

    def _decide(self, rows: Sequence[tuple[Any, ...]]) -> Sequence[str | None]:
        """The native worker's hook: each change's verdict (None: accept; else
        the NACK reason), from the validator and the handler."""
        return [self._verdict(_event(row), repair=row[9] == _ORIGIN_REPAIR) for row in rows]

    def _verdict(self, event: ChangeEvent, *, repair: bool) -> str | None:
        try:
            if not repair and self.validator is not None:
                self.validator(event.ns, event.key, event.value)
            self._run_handler(event)
        except Reject as exc:
            if not repair:
                return str(exc)
            # docs/wire.md: a repair is the controller's value, applied as sent; a
            # refusal would leave the key drifted and the descent repairing it forever.
            log.warning(
                "worker %s: handler refused the repair of %s/%s (%s); applied as sent",
                self.worker_id,
                event.ns,
                event.key,
                exc,
            )
        return None

    def _applied(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """The native worker's hook: these accepted changes are in the replica."""
        for row in rows:
            event = _event(row)
            for callback in self._callbacks:
                callback(event)

    def _run_handler(self, event: ChangeEvent) -> None:
        if self.handler is None:
            return
        attempt = 0
        while True:
            try:
                if inspect.iscoroutinefunction(self.handler):
                    assert self._loop is not None, "handlers run while the worker runs"
                    asyncio.run_coroutine_threadsafe(self.handler(event), self._loop).result()
                else:
                    self.handler(event)
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
                if self._halt.wait(delay):
                    raise _Stopped from exc


def _event(row: tuple[Any, ...]) -> ChangeEvent:
    """A change as the native worker hands it over (crates/python/src/worker.rs)."""
    rev, ns, key, value, command_id, trace, create_rev, version, schema_version, origin = row
    return ChangeEvent(
        rev,
        ns,
        key,
        "delete" if value is None else "put",
        None if value is None else orjson.loads(value),
        command_id,
        trace,
        create_rev,
        version,
        snapshot=origin != 0,
        schema_version=schema_version,
    )


def _status_code(code: int) -> grpc.StatusCode | None:
    return next((c for c in grpc.StatusCode if c.value[0] == code), None)
