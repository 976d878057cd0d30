"""Every error statesync raises, drawn once.

Each error carries the decision a caller has to make: the fields that say what
was wrong and where (namespace, key, JSON path, revisions), whether retrying
can help, the gRPC status an adapter maps it to and the CLI exit code.

    StatesyncError
    ├── InvalidInputError            exit 4  INVALID_ARGUMENT   (never retryable)
    │   ├── InvalidNamespaceError
    │   ├── InvalidKeyError
    │   ├── InvalidValueError        (namespace, key, JSON path)
    │   ├── InvalidPatchError        (namespace, key, op index, JSON path)
    │   ├── InvalidCommandError      (malformed command: duplicate key, empty...)
    │   ├── ValueTooLargeError       (namespace, key, size, limit)
    │   ├── SchemaViolationError     (namespace, key, schema version, every violation's JSON path)
    │   ├── InvalidSchemaError       (namespace, path inside the schema)
    │   ├── IncompatibleSchemaError  (namespace, mode, every breaking change: path + rule)
    │   ├── InvalidTranslationError  (namespace, versions, op index, field)
    │   ├── NoTranslationPathError   exit 4  FAILED_PRECONDITION (no version a worker understands)
    │   ├── CommandIdReusedError     exit 4  ALREADY_EXISTS     (same id, different content)
    │   └── FutureRevisionError      exit 4  OUT_OF_RANGE       (a revision after the head)
    ├── ConflictError                exit 3  ABORTED            (retry after re-reading)
    │   └── MergeConflictError       (namespace, key, base revision, every conflicting path)
    ├── NotFoundError                exit 1  NOT_FOUND
    ├── CompactedError               exit 6  OUT_OF_RANGE       (bootstrap from a snapshot)
    ├── UnavailableError             exit 5  UNAVAILABLE        (server unreachable; retryable)
    ├── ProtocolError                exit 7  FAILED_PRECONDITION (a peer broke the sync protocol)
    ├── RemoteError                  (an error the server reported that this client does not know)
    └── StoreError                   exit 7  INTERNAL           (storage refused: a full disk...)
        ├── StoreClosedError         exit 5  UNAVAILABLE        (retryable elsewhere)
        ├── StoreInUseError          exit 5  UNAVAILABLE        (another process has it open)
        ├── StoreFailedError         exit 7  UNAVAILABLE        (fsync failed: restart needed)
        └── StoreCorruptError        exit 7  DATA_LOSS          (hash chain, digest, format)

A storage error on a write means its outcome is unknown to the caller (a full
disk: not written; a failed fsync: perhaps written, perhaps not). Retrying the
same command with the same command_id is always safe: a command that did commit
is answered with its original revision (`replayed`), one that did not commits.

The core never imports gRPC, so statuses are carried by name. docs/errors.md is the
normative table for other languages; tests/test_errors_doc.py holds it to this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "CommandIdReusedError",
    "CompactedError",
    "ConflictError",
    "FailedCompare",
    "FutureRevisionError",
    "IncompatibleSchemaError",
    "InvalidCommandError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidNamespaceError",
    "InvalidPatchError",
    "InvalidSchemaError",
    "InvalidTranslationError",
    "InvalidValueError",
    "MergeConflictError",
    "NoTranslationPathError",
    "NotFoundError",
    "ProtocolError",
    "RemoteError",
    "SchemaViolation",
    "SchemaViolationError",
    "StatesyncError",
    "StoreClosedError",
    "StoreCorruptError",
    "StoreError",
    "StoreFailedError",
    "StoreInUseError",
    "UnavailableError",
    "ValueTooLargeError",
]


def _where(namespace: str | None, key: str | None, path: str | None = None) -> str:
    parts = []
    if namespace is not None:
        parts.append(f"namespace {namespace!r}")
    if key is not None:
        parts.append(f"key {key!r}")
    if path is not None:
        parts.append(f"at JSON path {path!r}" if path else "at the document root")
    return ", ".join(parts)


def _encodable(value: object) -> object:
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


class StatesyncError(Exception):
    """Base of every statesync error."""

    exit_code: int = 7
    grpc_status: str = "INTERNAL"
    retryable: bool = False

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description: the error type, message and its fields.

        Strings are made encodable: the bad input may hold lone surrogates."""
        fields = {k: _encodable(v) for k, v in vars(self).items() if not k.startswith("_")}
        return {"error": type(self).__name__, "message": _encodable(str(self)), **fields}


class InvalidInputError(StatesyncError):
    """The request itself is wrong; sending it again cannot succeed."""

    exit_code = 4
    grpc_status = "INVALID_ARGUMENT"


class InvalidNamespaceError(InvalidInputError):
    def __init__(self, namespace: str, reason: str) -> None:
        self.namespace = namespace
        self.reason = reason
        super().__init__(f"invalid namespace {namespace!r}: {reason}")


class InvalidKeyError(InvalidInputError):
    def __init__(self, namespace: str, key: str, reason: str) -> None:
        self.namespace = namespace
        self.key = key
        self.reason = reason
        super().__init__(f"invalid key in namespace {namespace!r}: {key!r}: {reason}")


class InvalidValueError(InvalidInputError):
    """A value is outside the I-JSON domain (RFC 7493) or is not JSON at all."""

    def __init__(self, namespace: str | None, key: str | None, path: str, reason: str) -> None:
        self.namespace = namespace
        self.key = key
        self.path = path
        self.reason = reason
        super().__init__(f"invalid value ({_where(namespace, key, path)}): {reason}")


class InvalidPatchError(InvalidInputError):
    """A JSON Patch (RFC 6902) is malformed or does not apply to the current value."""

    def __init__(
        self, namespace: str, key: str, op_index: int | None, path: str | None, reason: str
    ) -> None:
        self.namespace = namespace
        self.key = key
        self.op_index = op_index
        self.path = path
        self.reason = reason
        at = "" if op_index is None else f" op #{op_index}"
        super().__init__(f"invalid patch ({_where(namespace, key, path)}){at}: {reason}")


class InvalidCommandError(InvalidInputError):
    def __init__(self, reason: str, *, namespace: str | None = None, key: str | None = None):
        self.namespace = namespace
        self.key = key
        self.reason = reason
        where = _where(namespace, key)
        super().__init__(f"invalid command{f' ({where})' if where else ''}: {reason}")


class ValueTooLargeError(InvalidInputError):
    def __init__(self, namespace: str, key: str, size: int, limit: int) -> None:
        self.namespace = namespace
        self.key = key
        self.size = size
        self.limit = limit
        super().__init__(
            f"value too large ({_where(namespace, key)}): {size} canonical bytes, limit is {limit}"
        )


@dataclass(frozen=True, slots=True)
class SchemaViolation:
    """One way a value breaks its schema: where in the value, which keyword, why."""

    path: str  # JSON Pointer into the value ("" is the whole document)
    keyword: str  # the JSON Schema keyword that failed: "required", "type", "enum"...
    message: str


class SchemaViolationError(InvalidInputError):
    """A value does not conform to its namespace's schema; lists every violation."""

    def __init__(
        self,
        namespace: str,
        key: str,
        schema_version: int,
        violations: Sequence[SchemaViolation],
    ) -> None:
        self.namespace = namespace
        self.key = key
        self.schema_version = schema_version
        self.violations = tuple(violations)
        detail = "; ".join(
            f"{v.path or '(root)'}: {v.message} [{v.keyword}]" for v in self.violations
        )
        super().__init__(
            f"value does not conform to schema v{schema_version} "
            f"({_where(namespace, key)}): {len(self.violations)} violation(s): {detail}"
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": _encodable(str(self)),
            "namespace": self.namespace,
            "key": _encodable(self.key),
            "schema_version": self.schema_version,
            "violations": [
                {"path": _encodable(v.path), "keyword": v.keyword, "message": _encodable(v.message)}
                for v in self.violations
            ],
        }


class InvalidSchemaError(InvalidInputError):
    """A schema is not a valid JSON Schema (draft 2020-12) or uses what statesync refuses."""

    def __init__(self, namespace: str | None, path: str, reason: str) -> None:
        self.namespace = namespace
        self.path = path
        self.reason = reason
        where = f"namespace {namespace!r}, " if namespace else ""
        super().__init__(f"invalid schema ({where}at schema path {path!r}): {reason}")


class IncompatibleSchemaError(InvalidInputError):
    """A new schema version breaks the namespace's compatibility mode.

    `breaking` holds one dict per breaking change: path (JSON Pointer into the
    schema), rule, direction ("backward"/"forward"), against_version, message.
    """

    def __init__(
        self, namespace: str, version: int, mode: str, breaking: Sequence[dict[str, object]]
    ) -> None:
        self.namespace = namespace
        self.version = version
        self.mode = mode
        self.breaking = [dict(b) for b in breaking]
        lines = "".join(
            f"\n  - {b['path'] or '(root)'}: {b['rule']} ({b['direction']}, against "
            f"v{b['against_version']}): {b['message']}"
            for b in self.breaking
        )
        super().__init__(
            f"schema v{version} for namespace {namespace!r} breaks compatibility mode {mode} "
            f"with {len(self.breaking)} breaking change(s):{lines}\n"
            "(fix the schema, or register with --force --reason TEXT to record an exception)"
        )


class InvalidTranslationError(InvalidInputError):
    """A translation between schema versions is malformed or cannot apply to a value."""

    def __init__(
        self,
        reason: str,
        *,
        namespace: str | None = None,
        from_version: int | None = None,
        to_version: int | None = None,
        op_index: int | None = None,
        field: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.from_version = from_version
        self.to_version = to_version
        self.op_index = op_index
        self.field = field
        self.reason = reason
        where = []
        if namespace is not None:
            where.append(f"namespace {namespace!r}")
        if from_version is not None and to_version is not None:
            where.append(f"v{from_version}->v{to_version}")
        if op_index is not None:
            where.append(f"op #{op_index}")
        if field is not None:
            where.append(f"field {field!r}")
        at = f" ({', '.join(where)})" if where else ""
        super().__init__(f"invalid translation{at}: {reason}")


class NoTranslationPathError(InvalidInputError):
    """A value cannot be served in any schema version the reader understands."""

    grpc_status = "FAILED_PRECONDITION"

    def __init__(
        self, namespace: str, from_version: int, supported: Sequence[int], reason: str
    ) -> None:
        self.namespace = namespace
        self.from_version = from_version
        self.supported = list(supported)
        self.reason = reason
        super().__init__(
            f"no translation path in namespace {namespace!r} from schema v{from_version} to "
            f"any of {self.supported or '(none)'}: {reason}"
        )


class CommandIdReusedError(InvalidInputError):
    grpc_status = "ALREADY_EXISTS"

    def __init__(self, command_id: str, committed_rev: int) -> None:
        self.command_id = command_id
        self.committed_rev = committed_rev
        super().__init__(
            f"command_id {command_id!r} was already committed at revision {committed_rev} "
            "with different content; use a new command_id for a different command"
        )


class FutureRevisionError(InvalidInputError):
    grpc_status = "OUT_OF_RANGE"

    def __init__(self, requested_rev: int, head_rev: int) -> None:
        self.requested_rev = requested_rev
        self.head_rev = head_rev
        super().__init__(f"revision {requested_rev} is after the head revision {head_rev}")


@dataclass(frozen=True, slots=True)
class FailedCompare:
    """One compare that did not hold: what was expected and what is there now."""

    namespace: str
    key: str
    expected: str  # "mod_rev == 7", "exists", "absent"
    actual_mod_rev: int | None  # None: the key is absent


class ConflictError(StatesyncError):
    """A compare failed. Nothing was written and no revision was used."""

    exit_code = 3
    grpc_status = "ABORTED"

    def __init__(self, failed: Sequence[FailedCompare]) -> None:
        self.failed = tuple(failed)
        detail = "; ".join(
            f"{f.namespace}/{f.key}: expected {f.expected}, "
            + ("key is absent" if f.actual_mod_rev is None else f"mod_rev is {f.actual_mod_rev}")
            for f in self.failed
        )
        super().__init__(f"conflict: {detail}")

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": str(self),
            "failed": [
                {
                    "namespace": f.namespace,
                    "key": f.key,
                    "expected": f.expected,
                    "actual_mod_rev": f.actual_mod_rev,
                }
                for f in self.failed
            ],
        }


class MergeConflictError(ConflictError):
    """A write based on an old revision changed fields the key also changed since.

    `conflicts` holds one dict per conflicting path: path (JSON Pointer), and
    base, current and writer, each {"value": V} or {"absent": true}.
    """

    def __init__(
        self,
        namespace: str,
        key: str,
        base_rev: int,
        current_mod_rev: int,
        conflicts: Sequence[dict[str, object]],
    ) -> None:
        self.namespace = namespace
        self.key = key
        self.base_rev = base_rev
        self.current_mod_rev = current_mod_rev
        self.conflicts = [dict(c) for c in conflicts]
        self.failed = ()
        paths = ", ".join(str(c["path"]) or "(root)" for c in self.conflicts)
        StatesyncError.__init__(
            self,
            f"merge conflict ({_where(namespace, key)}): written from revision {base_rev}, "
            f"changed since at revision {current_mod_rev}; both sides changed "
            f"{len(self.conflicts)} path(s) differently: {paths}",
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "error": type(self).__name__,
            "message": _encodable(str(self)),
            "namespace": self.namespace,
            "key": _encodable(self.key),
            "base_rev": self.base_rev,
            "current_mod_rev": self.current_mod_rev,
            "conflicts": self.conflicts,
        }


class NotFoundError(StatesyncError):
    exit_code = 1
    grpc_status = "NOT_FOUND"

    def __init__(self, namespace: str, key: str, rev: int | None = None) -> None:
        self.namespace = namespace
        self.key = key
        self.rev = rev
        at = "" if rev is None else f" at revision {rev}"
        super().__init__(f"not found: {_where(namespace, key)}{at}")


class CompactedError(StatesyncError):
    """History at the requested revision is gone; bootstrap from a snapshot instead."""

    exit_code = 6
    grpc_status = "OUT_OF_RANGE"

    def __init__(self, requested_rev: int, compacted_rev: int) -> None:
        self.requested_rev = requested_rev
        self.compacted_rev = compacted_rev
        super().__init__(
            f"revision {requested_rev} is compacted (the oldest readable revision is "
            f"{compacted_rev}); bootstrap from a snapshot and continue from its revision"
        )


class UnavailableError(StatesyncError):
    """The server could not be reached or went away; retrying may succeed."""

    exit_code = 5
    grpc_status = "UNAVAILABLE"
    retryable = True

    def __init__(self, address: str, reason: str) -> None:
        self.address = address
        self.reason = reason
        super().__init__(f"server {address} is unavailable: {reason}")


class ProtocolError(StatesyncError):
    """A peer sent a message the sync protocol does not allow in this state."""

    grpc_status = "FAILED_PRECONDITION"

    def __init__(self, message: str) -> None:
        super().__init__(message)


class RemoteError(StatesyncError):
    """A server-side error with a type this client does not know (a newer server)."""

    def __init__(self, code: str, message: str, detail: dict[str, object]) -> None:
        self.code = code
        self.detail = detail
        super().__init__(message)


class StoreError(StatesyncError):
    """The storage backend failed; the cause is chained."""


class StoreClosedError(StoreError):
    exit_code = 5
    grpc_status = "UNAVAILABLE"
    retryable = True

    def __init__(self, message: str = "the store is closed") -> None:
        super().__init__(message)


class StoreInUseError(StoreError):
    exit_code = 5
    grpc_status = "UNAVAILABLE"
    retryable = True

    def __init__(self, path: str, holder_pid: str) -> None:
        self.path = path
        self.holder_pid = holder_pid
        super().__init__(f"{path} is in use by another process (pid {holder_pid}); stop it first")


class StoreFailedError(StoreError):
    """A commit's durability is unknown (an fsync failed): the store acknowledges
    no write until it is restarted, because a later fsync that succeeds says
    nothing about the data of the one that failed. `/readyz` reports it."""

    grpc_status = "UNAVAILABLE"
    retryable = True

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class StoreCorruptError(StoreError):
    grpc_status = "DATA_LOSS"
