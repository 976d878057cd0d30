"""Commands: atomic lists of ops with compares, and their outcome.

A writer builds a `Command`; the store checks every name and value once,
computes canonical bytes and the command's fingerprint (what idempotency
compares) and evaluates it against the current state, all in the native core
(crates/core: command.rs, engine.rs, sequencer.rs). `check` runs the same
checks without a store.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import statesync._native as _native
from statesync.core.canonical import JSONValue
from statesync.core.errors import InvalidPatchError

__all__ = [
    "Command",
    "Committed",
    "Compare",
    "CompareKind",
    "Delete",
    "Limits",
    "Patch",
    "Put",
    "SetContract",
    "check",
    "patch_error",
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


def patch_error(exc: _native.PatchRefused, namespace: str, key: str) -> InvalidPatchError:
    """The typed error of a native patch refusal, which knows no namespace or key."""
    _kind, index, path, reason = exc.args
    return InvalidPatchError(namespace, key, index, path, reason)


def check(command: Command, limits: Limits = Limits()) -> None:
    """Raise the `InvalidInputError` subtype that committing `command` would
    raise for its shape, names or values (the native core's checks; nothing is
    written and no store is needed)."""
    _native.check_command(command, limits.max_value_bytes, limits.max_ops)
