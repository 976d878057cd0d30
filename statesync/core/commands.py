"""Commands: atomic lists of ops with compares, and their outcome.

A writer builds a `Command`; `prepare` checks every name and value once,
computes canonical bytes and the command's fingerprint (what idempotency
compares), and gives a `PreparedCommand`. `evaluate` (in `engine`) turns a
prepared command into changes against a view of the current state.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import orjson

import statesync._native as _native
from statesync.core.canonical import JSONValue, canonical_bytes, sha256
from statesync.core.errors import (
    InvalidCommandError,
    InvalidPatchError,
    ValueTooLargeError,
)
from statesync.core.model import CONTRACTS_NAMESPACE, check_key, check_namespace

__all__ = [
    "Command",
    "Committed",
    "Compare",
    "CompareKind",
    "Delete",
    "Limits",
    "Patch",
    "PreparedCommand",
    "PreparedOp",
    "Put",
    "SetContract",
    "prepare",
]


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits enforced on every command."""

    max_value_bytes: int = 1024 * 1024
    """Largest canonical size of one value, after patches are applied."""
    max_ops: int = 10_000
    """Most ops (and, separately, compares) in one command."""


@dataclass(frozen=True, slots=True)
class Put:
    namespace: str
    key: str
    value: JSONValue
    schema_version: int = 0
    """The schema version `value` is written in (0: the namespace's current one);
    an older version's value is translated forward before validation."""
    base_rev: int = 0
    """The revision the writer read the key at (0: none). When the key changed
    since, the namespace's conflict policy decides: reject, last-durable-wins
    or merge (docs/conflicts.md)."""


@dataclass(frozen=True, slots=True)
class Patch:
    """An RFC 6902 JSON Patch applied to the key's current value."""

    namespace: str
    key: str
    patch: Sequence[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Delete:
    """Remove a key. Deleting an absent key is allowed and changes nothing."""

    namespace: str
    key: str


@dataclass(frozen=True, slots=True)
class SetContract:
    """Change `namespace`'s contract: register a schema version, set the mode or owner.

    `request` is the JSON form `statesync.contracts.registry` defines; the
    store's contract gate checks it (compatibility, translations) when it commits.
    A command holding a SetContract holds nothing else.
    """

    namespace: str
    request: JSONValue


Op = Put | Patch | Delete | SetContract


class CompareKind(StrEnum):
    MOD_REV = "mod_rev"
    EXISTS = "exists"
    ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class Compare:
    namespace: str
    key: str
    kind: CompareKind
    mod_rev: int = 0

    @classmethod
    def mod_rev_is(cls, namespace: str, key: str, mod_rev: int) -> Compare:
        return cls(namespace, key, CompareKind.MOD_REV, mod_rev)

    @classmethod
    def exists(cls, namespace: str, key: str) -> Compare:
        return cls(namespace, key, CompareKind.EXISTS)

    @classmethod
    def absent(cls, namespace: str, key: str) -> Compare:
        return cls(namespace, key, CompareKind.ABSENT)

    def describe(self) -> str:
        if self.kind is CompareKind.MOD_REV:
            return f"mod_rev == {self.mod_rev}"
        return self.kind.value


_id_prefix = os.urandom(8).hex()
_id_counter = itertools.count(1)


def _reseed_ids() -> None:
    # A forked child must not repeat its parent's ids.
    global _id_prefix
    _id_prefix = os.urandom(8).hex()


os.register_at_fork(after_in_child=_reseed_ids)


def _new_command_id() -> str:
    """Unique without a syscall per id: a random per-process prefix and a counter."""
    return f"{_id_prefix}-{next(_id_counter)}"


@dataclass(frozen=True, slots=True)
class Command:
    """An atomic list of ops; all apply at one new revision or none does."""

    ops: Sequence[Op]
    compares: Sequence[Compare] = ()
    command_id: str = field(default_factory=_new_command_id)
    trace: str | None = None
    """W3C trace context (traceparent) carried to every worker's apply."""


@dataclass(frozen=True, slots=True)
class Committed:
    """A command is durable at `rev`. `replayed` is True when this is the
    original outcome returned again for a repeated command_id."""

    rev: int
    command_id: str
    ts_ms: int
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class PreparedOp:
    kind: str  # "put", "patch", "delete", "contract" (key: the namespace it governs)
    namespace: str
    key: str
    value: bytes | None = None  # canonical bytes, for put and contract
    patch: bytes = b""  # canonical bytes of the checked JSON Patch, for patch
    schema_version: int = 0
    base_rev: int = 0


@dataclass(frozen=True, slots=True)
class PreparedCommand:
    command_id: str
    ops: tuple[PreparedOp, ...]
    compares: tuple[Compare, ...]
    fingerprint: bytes
    trace: str | None


def patch_error(exc: _native.PatchRefused, namespace: str, key: str) -> InvalidPatchError:
    """The typed error of a native patch refusal, which knows no namespace or key."""
    _kind, index, path, reason = exc.args
    return InvalidPatchError(namespace, key, index, path, reason)


def _check_patch(namespace: str, key: str, patch: object) -> bytes:
    try:
        return _native.check_patch(patch)
    except _native.PatchRefused as exc:
        raise patch_error(exc, namespace, key) from None


def _fingerprint(ops: Sequence[PreparedOp], compares: Sequence[Compare]) -> bytes:
    """What makes two commands "the same" for idempotency (not the id or trace)."""
    parts: list[bytes] = []
    for op in ops:
        # Names and values are already checked: orjson gives their canonical form.
        header: list[object] = [op.kind, op.namespace, op.key]
        if op.schema_version or op.base_rev:
            header += [op.schema_version, op.base_rev]
        parts.append(orjson.dumps(header))
        parts.append(op.value or b"")
        # Fingerprints are kept with idempotency records: an empty patch adds
        # nothing, as it did when patches were tuples.
        if op.patch not in (b"", b"[]"):
            parts.append(op.patch)
    for c in compares:
        parts.append(orjson.dumps([c.namespace, c.key, c.kind.value, c.mod_rev]))
    return sha256(b"\x1e".join(parts))


MAX_TRACE_CHARS = 1024


def _is_unicode(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def prepare(command: Command, limits: Limits = Limits()) -> PreparedCommand:
    """Check a command completely and compute its canonical parts.

    Raises an `InvalidInputError` subtype naming what is wrong and where.
    """
    if not isinstance(command.command_id, str) or not 1 <= len(command.command_id) <= 256:
        raise InvalidCommandError("command_id must be a string of 1 to 256 characters")
    if not _is_unicode(command.command_id):
        raise InvalidCommandError(f"command_id {command.command_id!r} is not valid Unicode")
    if not command.ops:
        raise InvalidCommandError("a command needs at least one op")
    if len(command.ops) > limits.max_ops or len(command.compares) > limits.max_ops:
        raise InvalidCommandError(f"a command holds at most {limits.max_ops} ops and compares")
    ops: list[PreparedOp] = []
    seen: set[tuple[str, str]] = set()
    for op in command.ops:
        if isinstance(op, SetContract):
            if len(command.ops) != 1 or command.compares:
                raise InvalidCommandError(
                    "a contract change is a command of its own", namespace=op.namespace
                )
            ns = check_namespace(op.namespace)
            request = canonical_bytes(op.request, namespace=CONTRACTS_NAMESPACE, key=ns)
            ops.append(PreparedOp("contract", CONTRACTS_NAMESPACE, ns, value=request))
            continue
        if not isinstance(op, Put | Patch | Delete):
            raise InvalidCommandError(f"unknown op {op!r}: use Put, Patch, Delete or SetContract")
        ns = check_namespace(op.namespace)
        key = check_key(ns, op.key)
        if (ns, key) in seen:
            raise InvalidCommandError("a key may appear in only one op", namespace=ns, key=key)
        seen.add((ns, key))
        if isinstance(op, Put):
            value = canonical_bytes(op.value, namespace=ns, key=key)
            if len(value) > limits.max_value_bytes:
                raise ValueTooLargeError(ns, key, len(value), limits.max_value_bytes)
            for name in ("schema_version", "base_rev"):
                number = getattr(op, name)
                if type(number) is not int or number < 0:
                    raise InvalidCommandError(
                        f"{name} must be an integer >= 0, got {number!r}", namespace=ns, key=key
                    )
            ops.append(
                PreparedOp(
                    "put",
                    ns,
                    key,
                    value=value,
                    schema_version=op.schema_version,
                    base_rev=op.base_rev,
                )
            )
        elif isinstance(op, Patch):
            ops.append(PreparedOp("patch", ns, key, patch=_check_patch(ns, key, op.patch)))
        else:
            ops.append(PreparedOp("delete", ns, key))
    compares: list[Compare] = []
    for c in command.compares:
        if not isinstance(c, Compare):
            raise InvalidCommandError(f"unknown compare {c!r}: use Compare")
        ns = check_namespace(c.namespace)
        key = check_key(ns, c.key)
        try:
            kind = CompareKind(c.kind)
        except ValueError:
            raise InvalidCommandError(
                f"unknown compare kind {c.kind!r}: use mod_rev, exists or absent",
                namespace=ns,
                key=key,
            ) from None
        if kind is CompareKind.MOD_REV and (type(c.mod_rev) is not int or c.mod_rev < 0):
            raise InvalidCommandError(
                f"mod_rev compare needs a revision >= 0, got {c.mod_rev!r}", namespace=ns, key=key
            )
        compares.append(Compare(ns, key, kind, c.mod_rev))
    if command.trace is not None and not isinstance(command.trace, str):
        raise InvalidCommandError("trace must be a string (W3C traceparent)")
    if command.trace is not None and (
        len(command.trace) > MAX_TRACE_CHARS or not _is_unicode(command.trace)
    ):
        raise InvalidCommandError(
            f"trace must be valid Unicode of at most {MAX_TRACE_CHARS} characters"
        )
    return PreparedCommand(
        command_id=command.command_id,
        ops=tuple(ops),
        compares=tuple(compares),
        fingerprint=_fingerprint(ops, compares),
        trace=command.trace,
    )
