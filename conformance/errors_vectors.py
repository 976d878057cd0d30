"""Error vectors: what a client receives when a call fails, and what it must make of it.

Each vector is one failed call as it arrives: the gRPC status and the
`statesync.v1.Error` carried in the trailing metadata key `statesync-error-bin`
(both as fields and as the serialized bytes, base64). `expect` is what
docs/errors.md says a client decides from it: the code it reports (a code it
does not know becomes `RemoteError`), the codes it answers to (the error and
its parents), whether the same request may be retried, and the CLI's exit
status. Every code the controller sends appears once; two unknown codes (one
claiming to be retryable) check the rule that an unknown code is never
retried.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from statesync.core import errors
from statesync.core.errors import StatesyncError
from statesync.v1 import statesync_pb2 as pb
from statesync.wire import error_to_pb

SAMPLES: list[tuple[str, StatesyncError]] = [
    (
        "bad namespace",
        errors.InvalidNamespaceError("Orders", "must match [a-z0-9][a-z0-9._-]{0,62}"),
    ),
    ("bad key", errors.InvalidKeyError("orders", "", "a key is 1 to 1024 UTF-8 bytes")),
    ("bad value", errors.InvalidValueError("orders", "o-1", "/qty", "NaN is not JSON")),
    (
        "bad patch",
        errors.InvalidPatchError("orders", "o-1", 1, "/items/9", "index 9 is out of range"),
    ),
    ("malformed command", errors.InvalidCommandError("a command needs at least one op")),
    ("value too large", errors.ValueTooLargeError("orders", "o-1", 2_000_000, 1_048_576)),
    (
        "schema violation",
        errors.SchemaViolationError(
            "orders",
            "o-1",
            2,
            [errors.SchemaViolation("/qty", "maximum", "500 is greater than the maximum of 100")],
        ),
    ),
    (
        "bad schema",
        errors.InvalidSchemaError("orders", "/properties/qty/type", "unknown type 'int'"),
    ),
    (
        "incompatible schema",
        errors.IncompatibleSchemaError(
            "orders",
            3,
            "backward",
            [
                {
                    "path": "/properties/qty",
                    "rule": "type-narrowed",
                    "direction": "backward",
                    "against_version": 2,
                    "message": "qty was a number and is now an integer",
                }
            ],
        ),
    ),
    (
        "bad translation",
        errors.InvalidTranslationError(
            "the source field does not exist",
            namespace="orders",
            from_version=1,
            to_version=2,
            op_index=0,
            field="qty",
        ),
    ),
    (
        "no translation path",
        errors.NoTranslationPathError("orders", 7, [1, 2], "version 7 is not registered"),
    ),
    ("command id reused", errors.CommandIdReusedError("place-42", 1017)),
    ("future revision", errors.FutureRevisionError(90, 42)),
    (
        "failed compare",
        errors.ConflictError(
            [
                errors.FailedCompare("jobs", "job-1", "mod_rev == 5", 8),
                errors.FailedCompare("jobs", "job-2", "exists", None),
            ]
        ),
    ),
    (
        "merge conflict",
        errors.MergeConflictError(
            "orders",
            "o-1",
            10,
            12,
            [
                {
                    "path": "/qty",
                    "base": {"value": 1},
                    "current": {"value": 2},
                    "writer": {"value": 3},
                }
            ],
        ),
    ),
    ("not found", errors.NotFoundError("jobs", "job-9", 40)),
    ("compacted", errors.CompactedError(10, 500)),
    ("protocol error", errors.ProtocolError("the first message must be a hello, got ack")),
    ("store refused a write", errors.StoreError("database or disk is full")),
    ("store closed", errors.StoreClosedError()),
    ("store in use", errors.StoreInUseError("/var/lib/statesync/statesync.sqlite", "4242")),
    ("fsync failed", errors.StoreFailedError("fsync: Input/output error")),
    ("store corrupt", errors.StoreCorruptError("the hash chain breaks at revision 77")),
]

STATUS_NUMBER = {
    "OK": 0,
    "CANCELLED": 1,
    "UNKNOWN": 2,
    "INVALID_ARGUMENT": 3,
    "DEADLINE_EXCEEDED": 4,
    "NOT_FOUND": 5,
    "ALREADY_EXISTS": 6,
    "PERMISSION_DENIED": 7,
    "RESOURCE_EXHAUSTED": 8,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
    "UNIMPLEMENTED": 12,
    "INTERNAL": 13,
    "UNAVAILABLE": 14,
    "DATA_LOSS": 15,
    "UNAUTHENTICATED": 16,
}


def _ancestors(cls: type[StatesyncError]) -> list[str]:
    return [
        c.__name__ for c in cls.__mro__ if isinstance(c, type) and issubclass(c, StatesyncError)
    ]


def _vector(name: str, status: str, error: pb.Error, expect: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "grpc_status": {"name": status, "code": STATUS_NUMBER[status]},
        "error": {
            "code": error.code,
            "message": error.message,
            "detail": orjson.loads(error.detail) if error.detail else None,
            "retryable": error.retryable,
        },
        "error_bin": base64.b64encode(error.SerializeToString(deterministic=True)).decode("ascii"),
        "expect": expect,
    }


def build() -> dict[str, Any]:
    vectors = []
    for name, error in SAMPLES:
        cls = type(error)
        vectors.append(
            _vector(
                name,
                error.grpc_status,
                error_to_pb(error),
                {
                    "code": cls.__name__,
                    "known": True,
                    "is": _ancestors(cls),
                    "retryable": error.retryable,
                    "exit": error.exit_code,
                },
            )
        )
    remote = errors.RemoteError
    for name, status, retryable in (
        ("a code this client does not know", "FAILED_PRECONDITION", False),
        ("an unknown code that claims to be retryable", "UNAVAILABLE", True),
    ):
        unknown = pb.Error(
            code="QuotaExceededError",
            message="namespace 'jobs' is over its quota of 10,000 keys",
            detail=orjson.dumps(
                {"error": "QuotaExceededError", "message": "over quota", "namespace": "jobs"}
            ),
            retryable=retryable,
        )
        vectors.append(
            _vector(
                name,
                status,
                unknown,
                {
                    "code": "RemoteError",
                    "known": False,
                    "is": _ancestors(remote),
                    "retryable": False,
                    "exit": remote.exit_code,
                },
            )
        )
    return {
        "format_version": 1,
        "description": "A failed call as a client receives it (gRPC status + statesync.v1.Error "
        "in trailing metadata 'statesync-error-bin'), and what docs/errors.md says the client "
        "makes of it. error_bin is the serialized Error, base64.",
        "vectors": vectors,
    }
