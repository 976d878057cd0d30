"""Conversions between the core's types and the wire contract (proto/statesync/v1).

Everything that crosses the network passes through here: commands, results,
entries and errors. Values are canonical JSON bytes on the wire; a
value or patch that is not strict I-JSON is refused with an error naming the
namespace, key and JSON path. Errors travel as a `statesync.v1.Error` in the
trailing metadata key `statesync-error-bin`, mapped to the gRPC status named
in `statesync.core.errors`, so a client rebuilds the same error type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import grpc
import orjson

from statesync.core import errors
from statesync.core.canonical import canonical_bytes
from statesync.core.commands import (
    Command,
    Committed,
    Limits,
    Patch,
    Put,
    SetContract,
    check,
)
from statesync.core.errors import (
    FailedCompare,
    InvalidValueError,
    RemoteError,
    StatesyncError,
    UnavailableError,
)
from statesync.core.model import KeyRecord
from statesync.v1 import statesync_pb2 as pb

__all__ = [
    "ERROR_METADATA_KEY",
    "command_to_pb",
    "committed_from_pb",
    "entry_from_pb",
    "error_from_pb",
    "error_from_rpc",
    "error_from_status",
    "error_to_pb",
    "pb",
    "status_code",
]

ERROR_METADATA_KEY = "statesync-error-bin"


# ---------------------------------------------------------------- commands


_UNLIMITED = Limits(max_value_bytes=2**62, max_ops=2**62)
"""The server applies its own size limits; a client checks everything else."""


def _json_text(op: Put | Patch | SetContract) -> bytes:
    """An op's value, patch or request as JSON text; anything the server would
    refuse (not I-JSON, nested too deep) is refused here with the server's error."""
    doc: object
    if isinstance(op, Put):
        doc = op.value
    elif isinstance(op, SetContract):
        doc = op.request
    else:  # a patch as given; a sequence other than a list is sent as one
        doc = op.patch if isinstance(op.patch, list | dict | str) else list(op.patch)
    try:
        return canonical_bytes(doc)
    except InvalidValueError:
        check(Command([op]), _UNLIMITED)  # raises the error committing it would raise
        raise


def command_to_pb(command: Command, *, tag: int = 0) -> pb.CommandRequest:
    request = pb.CommandRequest(command_id=command.command_id, trace=command.trace or "", tag=tag)
    for op in command.ops:
        if isinstance(op, Put):
            put = pb.PutOp(
                ns=op.namespace,
                key=op.key,
                value=_json_text(op),
                schema_version=op.schema_version,
                base_rev=op.base_rev,
            )
            request.ops.add(put=put)
        elif isinstance(op, SetContract):
            contract = pb.ContractOp(ns=op.namespace, request=_json_text(op))
            request.ops.add(contract=contract)
        elif isinstance(op, Patch):
            request.ops.add(
                patch=pb.PatchOp(
                    ns=op.namespace,
                    key=op.key,
                    patch=_json_text(op),
                )
            )
        else:
            request.ops.add(delete=pb.DeleteOp(ns=op.namespace, key=op.key))
    for compare in command.compares:
        if compare.kind == "mod_rev":
            request.compares.add(ns=compare.namespace, key=compare.key, mod_rev=compare.mod_rev)
        else:
            request.compares.add(
                ns=compare.namespace, key=compare.key, exists=compare.kind == "exists"
            )
    return request


def committed_from_pb(reply: pb.CommandReply) -> Committed:
    return Committed(reply.rev, reply.command_id, reply.ts_ms, reply.replayed)


# ---------------------------------------------------------------- data


def entry_from_pb(entry: pb.Entry) -> KeyRecord:
    return KeyRecord(
        entry.ns, entry.key, entry.value, entry.create_rev, entry.mod_rev, entry.version
    )


# ---------------------------------------------------------------- errors


def status_code(error: StatesyncError) -> grpc.StatusCode:
    return grpc.StatusCode[error.grpc_status]


def error_to_pb(error: StatesyncError) -> pb.Error:
    detail = error.to_dict()
    return pb.Error(
        code=type(error).__name__,
        message=str(error),
        detail=orjson.dumps(detail, default=str),
        retryable=error.retryable,
    )


def _error_class(code: str) -> type[StatesyncError] | None:
    cls = getattr(errors, code, None) if code in errors.__all__ else None
    if isinstance(cls, type) and issubclass(cls, StatesyncError):
        return cls
    return None


def error_from_pb(error: pb.Error) -> StatesyncError:
    """Rebuild the server's error: same type, message and fields."""
    try:
        detail: dict[str, Any] = orjson.loads(error.detail) if error.detail else {}
    except orjson.JSONDecodeError:
        detail = {}
    cls = _error_class(error.code)
    if cls is None:
        return RemoteError(error.code, error.message, detail)
    rebuilt = cls.__new__(cls)
    Exception.__init__(rebuilt, error.message)
    for name, value in detail.items():
        if name not in ("error", "message"):
            setattr(rebuilt, name, value)
    if isinstance(rebuilt, errors.ConflictError):
        rebuilt.failed = tuple(FailedCompare(**f) for f in detail.get("failed", ()))
    if isinstance(rebuilt, errors.SchemaViolationError):
        rebuilt.violations = tuple(
            errors.SchemaViolation(**v) for v in detail.get("violations", ())
        )
    return rebuilt


def error_from_rpc(exc: grpc.RpcError, address: str) -> StatesyncError:
    """The statesync error behind a failed call, or UnavailableError for transport failures."""
    error = next((value for key, value in _trailing(exc) if key == ERROR_METADATA_KEY), None)
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    return error_from_status(code, details or "", error, address)


def error_from_status(
    code: grpc.StatusCode | None, details: str, error: bytes | None, address: str
) -> StatesyncError:
    """The statesync error of a failed call from its status: the encoded
    `statesync.v1.Error` the controller attached, else by the status code."""
    if error is not None:
        return error_from_pb(pb.Error.FromString(error))
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, None):
        return UnavailableError(address, details or "no response")
    if code == grpc.StatusCode.CANCELLED:
        return UnavailableError(address, f"call cancelled: {details}")
    return RemoteError(code.name, f"{code.name}: {details}", {})


def _trailing(exc: grpc.RpcError) -> Iterable[tuple[str, Any]]:
    metadata: Iterable[tuple[str, Any]] | None = None
    if hasattr(exc, "trailing_metadata"):
        # grpc's concrete errors (sync and aio) return (key, value) pairs or None; the stub
        # of the abstract RpcError says a tuple of key/value records.
        metadata = cast("Iterable[tuple[str, Any]] | None", exc.trailing_metadata())
    return metadata or ()
