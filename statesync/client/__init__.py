"""A blocking client for the controller's gRPC API (writers, readers, operators).

Every failure is a statesync error: the server's own errors keep their type
(`ConflictError`, `InvalidValueError`...), and a server that cannot be reached
raises `UnavailableError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
import orjson

from statesync.contracts.registry import Contract, configure_request, register_request
from statesync.core.canonical import JSONValue
from statesync.core.commands import (
    Command,
    Committed,
    Compare,
    Delete,
    Op,
    Patch,
    Put,
    SetContract,
)
from statesync.core.errors import StatesyncError
from statesync.core.model import CONTRACTS_NAMESPACE, KeyRecord
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import (
    command_to_pb,
    committed_from_pb,
    entry_from_pb,
    error_from_pb,
    error_from_rpc,
    pb,
)

__all__ = ["DEFAULT_SERVER", "Client", "RollbackStep", "WaitResult", "default_server"]

DEFAULT_SERVER = "127.0.0.1:7700"


def default_server() -> str:
    return os.environ.get("STATESYNC_SERVER") or DEFAULT_SERVER


@dataclass(frozen=True, slots=True)
class WaitResult:
    applied: list[str]
    pending: list[pb.WorkerStatus]

    @property
    def complete(self) -> bool:
        return not self.pending


@dataclass(frozen=True, slots=True)
class RollbackStep:
    """One key a rollback changes: from its value at `head_rev` back to `to_rev`'s."""

    namespace: str
    key: str
    current: KeyRecord | None  # at the head the plan was made at (None: absent)
    target: KeyRecord | None  # at the revision rolled back to (None: absent, so deleted)

    @property
    def action(self) -> str:
        if self.target is None:
            return "delete"
        return "recreate" if self.current is None else "restore"

    def to_json(self) -> dict[str, Any]:
        return {
            "ns": self.namespace,
            "key": self.key,
            "action": self.action,
            "current": None if self.current is None else self.current.json(),
            "current_mod_rev": 0 if self.current is None else self.current.mod_rev,
            "target": None if self.target is None else self.target.json(),
            "target_mod_rev": 0 if self.target is None else self.target.mod_rev,
        }

    def op(self) -> Op:
        if self.target is None:
            return Delete(self.namespace, self.key)
        # A stored value is JSON; KeyRecord.json() is annotated `object`.
        return Put(self.namespace, self.key, cast(JSONValue, self.target.json()))


class Client:
    """Use as a context manager, or call `close()`."""

    def __init__(self, address: str | None = None, *, timeout: float = 30.0) -> None:
        self.address = address or default_server()
        self.timeout = timeout
        self._channel = grpc.insecure_channel(
            self.address,
            options=[
                ("grpc.max_receive_message_length", 64 * 1024 * 1024),
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
            ],
        )
        self._stub = pb_grpc.StatesyncStub(self._channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout: float | None = None) -> Any:
        try:
            return method(request, timeout=timeout or self.timeout, wait_for_ready=False)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, self.address) from None

    def _stream(self, method: Any, request: Any) -> Iterator[Any]:
        try:
            yield from method(request, timeout=None)
        except grpc.RpcError as exc:
            raise error_from_rpc(exc, self.address) from None

    # ------------------------------------------------------------ writes

    def commit(self, command: Command) -> Committed:
        return committed_from_pb(self._call(self._stub.Commit, command_to_pb(command)))

    def _write(
        self, op: Put | Patch | Delete, expect_rev: int | None, command_id: str | None
    ) -> Committed:
        compares = (
            [] if expect_rev is None else [Compare.mod_rev_is(op.namespace, op.key, expect_rev)]
        )
        if command_id:
            return self.commit(Command([op], compares, command_id=command_id))
        return self.commit(Command([op], compares))

    def put(
        self,
        ns: str,
        key: str,
        value: Any,
        *,
        expect_rev: int | None = None,
        command_id: str | None = None,
        schema_version: int = 0,
        base_rev: int = 0,
    ) -> Committed:
        """`schema_version`: the version `value` is written in, when not the current one.
        `base_rev`: the revision this value was derived from; if the key changed
        since, the namespace's conflict policy decides (reject, merge...)."""
        put = Put(ns, key, value, schema_version, base_rev)
        return self._write(put, expect_rev, command_id)

    def patch(
        self,
        ns: str,
        key: str,
        patch: Sequence[dict[str, Any]],
        *,
        expect_rev: int | None = None,
        command_id: str | None = None,
    ) -> Committed:
        return self._write(Patch(ns, key, patch), expect_rev, command_id)

    def delete(
        self, ns: str, key: str, *, expect_rev: int | None = None, command_id: str | None = None
    ) -> Committed:
        return self._write(Delete(ns, key), expect_rev, command_id)

    def commit_stream(self, commands: Iterator[Command]) -> Iterator[Committed | StatesyncError]:
        """Pipeline commands over one stream; yields each outcome in order. A
        command refused before it is sent (a value that is not I-JSON) takes its
        place among the outcomes like one the controller refused."""
        refused: dict[int, StatesyncError] = {}

        def requests() -> Iterator[pb.CommandRequest]:
            for i, command in enumerate(commands):
                try:
                    yield command_to_pb(command, tag=i)
                except StatesyncError as exc:
                    refused[i] = exc

        next_tag = 0
        for reply in self._stream(self._stub.CommitStream, requests()):
            # Request `reply.tag` was sent after every earlier refusal was recorded.
            while next_tag < reply.tag:
                yield refused.pop(next_tag)
                next_tag += 1
            yield (
                error_from_pb(reply.error) if reply.HasField("error") else committed_from_pb(reply)
            )
            next_tag = reply.tag + 1
        for tag in sorted(refused):
            yield refused[tag]

    # ------------------------------------------------------------ contracts

    def register_schema(
        self,
        ns: str,
        schema: Any,
        *,
        mode: str | None = None,
        owner: dict[str, str] | None = None,
        translation: dict[str, Any] | None = None,
        force: bool = False,
        reason: str = "",
        by: str = "",
    ) -> Committed:
        """Register `schema` as `ns`'s next version; raises IncompatibleSchemaError
        with every breaking change when it breaks the mode (unless forced)."""
        request = register_request(
            schema,
            mode=mode,
            owner=owner,
            translation=translation,
            force=force,
            reason=reason,
            by=by,
        )
        return self.commit(Command([SetContract(ns, request)]))

    def configure_contract(
        self,
        ns: str,
        *,
        mode: str | None = None,
        owner: dict[str, str] | None = None,
        conflict_policy: str | None = None,
        shadow_policy: str | None = None,
        by: str = "",
    ) -> Committed:
        """Change ns's mode, owner, conflict policy or shadow policy ("none": off)."""
        request = configure_request(
            mode=mode,
            owner=owner,
            conflict_policy=conflict_policy,
            shadow_policy=shadow_policy,
            by=by,
        )
        return self.commit(Command([SetContract(ns, request)]))

    def contract(self, ns: str) -> Contract | None:
        record = self.get(CONTRACTS_NAMESPACE, ns)
        return None if record is None else Contract.from_json(orjson.loads(record.value))

    def contracts(self) -> list[Contract]:
        return [Contract.from_json(orjson.loads(r.value)) for r in self.range(CONTRACTS_NAMESPACE)]

    # ------------------------------------------------------------ rollback

    def rollback_plan(
        self, to_rev: int, namespaces: Sequence[str], *, key: str | None = None
    ) -> tuple[int, list[RollbackStep]]:
        """What restoring `namespaces` (or one `key`) to their state at `to_rev`
        changes, compared with the head: (the head revision, the steps). Raises
        CompactedError when `to_rev` is compacted."""
        head = self.status().head_rev
        steps: list[RollbackStep] = []
        for ns in namespaces:
            if key is not None:
                then = {key: r} if (r := self.get(ns, key, rev=to_rev)) else {}
                now = {key: r} if (r := self.get(ns, key, rev=head)) else {}
            else:
                then = {r.key: r for r in self.range(ns, rev=to_rev)}
                now = {r.key: r for r in self.range(ns, rev=head)}
            for k in sorted(then.keys() | now.keys()):
                old, new = then.get(k), now.get(k)
                if old is None and new is None:
                    continue
                if old is not None and new is not None and old.value == new.value:
                    continue  # the same value now as then
                steps.append(RollbackStep(ns, k, new, old))
        return head, steps

    def rollback(
        self, steps: Sequence[RollbackStep], *, command_id: str | None = None
    ) -> Committed:
        """Write `steps` as one command, each guarded by the key's mod_rev at the
        plan's head: a write since then fails the whole rollback (ConflictError)."""
        ops = [step.op() for step in steps]
        compares = [
            Compare.mod_rev_is(s.namespace, s.key, 0 if s.current is None else s.current.mod_rev)
            for s in steps
        ]
        if command_id:
            return self.commit(Command(ops, compares, command_id=command_id))
        return self.commit(Command(ops, compares))

    # ------------------------------------------------------------ reads

    def get(self, ns: str, key: str, *, rev: int | None = None) -> KeyRecord | None:
        reply = self._call(self._stub.Get, pb.GetRequest(ns=ns, key=key, rev=rev or 0))
        return entry_from_pb(reply.entry) if reply.HasField("entry") else None

    def range(
        self, ns: str, *, prefix: str = "", rev: int | None = None, page_size: int = 1000
    ) -> Iterator[KeyRecord]:
        request = pb.RangeRequest(ns=ns, prefix=prefix, rev=rev or 0, page_size=page_size)
        for page in self._stream(self._stub.Range, request):
            yield from (entry_from_pb(e) for e in page.entries)

    def snapshot(
        self, namespaces: Sequence[str] = (), *, rev: int | None = None, chunk_size: int = 1000
    ) -> Iterator[pb.SnapshotChunk]:
        request = pb.SnapshotRequest(namespaces=namespaces, rev=rev or 0, chunk_size=chunk_size)
        return self._stream(self._stub.Snapshot, request)

    def compact(self, rev: int) -> int:
        reply: pb.CompactReply = self._call(self._stub.Compact, pb.CompactRequest(rev=rev))
        return reply.compacted_rev

    def status(self) -> pb.StatusReply:
        reply: pb.StatusReply = self._call(self._stub.Status, pb.StatusRequest())
        return reply

    def reconcile(
        self, *, workers: Sequence[str] = (), namespaces: Sequence[str] = (), timeout: float = 30.0
    ) -> list[pb.ReconcileResult]:
        """Check workers now (every connected one by default): a digest descent per
        namespace, repairing and verifying what differs. One result per (worker, ns)."""
        request = pb.ReconcileRequest(workers=workers, namespaces=namespaces, timeout_s=timeout)
        return list(self._call(self._stub.Reconcile, request, timeout=timeout + 10).results)

    def wait_applied(
        self,
        rev: int,
        *,
        namespaces: Sequence[str] = (),
        workers: Sequence[str] = (),
        timeout: float = 30.0,
    ) -> WaitResult:
        """Block until every connected worker subscribed to one of `namespaces`
        (or each of `workers`) has ACKed `rev`, or `timeout` passes."""
        request = pb.WaitAppliedRequest(
            rev=rev, namespaces=namespaces, workers=workers, timeout_s=timeout
        )
        reply = self._call(self._stub.WaitApplied, request, timeout=timeout + 10)
        return WaitResult(list(reply.applied), list(reply.pending))

    def watch(self, namespaces: Sequence[str], *, from_rev: int = 0) -> Iterator[pb.SyncReply]:
        """Every change to `namespaces` after `from_rev`, as the sync stream sends them
        (batches, progress notices; a resync and snapshot when from_rev is compacted)."""
        hello = pb.SyncRequest(
            hello=pb.Hello(namespaces=namespaces, from_rev=from_rev, observer=True)
        )
        return self._stream(self._stub.Sync, iter([hello]))
