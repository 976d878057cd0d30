"""The data model: namespaces, keys, revisions, key records and change records.

A change record is what workers receive. Each one is linked into a hash chain,
`hash = SHA-256(prev_hash || canonical change)`, so any edit to the log is
evident. The canonical change is the RFC 8785 form of the object documented in
docs/log-format.md; `change_canonical_bytes` builds it directly from parts
because its members are fixed and the value is already canonical.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import NewType

import orjson

import statesync._native as _native
from statesync.core.errors import InvalidKeyError, InvalidNamespaceError

__all__ = [
    "CONTRACTS_NAMESPACE",
    "GENESIS_HASH",
    "MAX_KEY_BYTES",
    "Change",
    "ChangeOp",
    "KeyRecord",
    "Revision",
    "chain_hash",
    "change_canonical_bytes",
    "check_key",
    "check_namespace",
]

Revision = NewType("Revision", int)

MAX_KEY_BYTES = 1024
GENESIS_HASH = bytes(32)
_NAMESPACE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
CONTRACTS_NAMESPACE = "_contracts"
"""Where each namespace's contract (owner, mode, schema versions) lives, keyed by
namespace. Its name is outside the user pattern, so only contract ops write it."""


def check_namespace(namespace: object, *, readable: bool = False) -> str:
    """`namespace` if it is a user namespace (or, when `readable`, the contracts one)."""
    if not isinstance(namespace, str):
        raise InvalidNamespaceError(repr(namespace), "a namespace is a string")
    if readable and namespace == CONTRACTS_NAMESPACE:
        return namespace
    if not _NAMESPACE.fullmatch(namespace):
        raise InvalidNamespaceError(
            namespace, "must match [a-z0-9][a-z0-9._-]{0,62} (lowercase, 1 to 63 characters)"
        )
    return namespace


def check_key(namespace: str, key: object) -> str:
    if not isinstance(key, str):
        raise InvalidKeyError(namespace, repr(key), "a key is a string")
    if not key:
        raise InvalidKeyError(namespace, key, "a key is 1 to 1024 UTF-8 bytes, this one is empty")
    if "\x00" in key:
        raise InvalidKeyError(namespace, key, "a key may not contain NUL")
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        raise InvalidKeyError(namespace, key, "a key must be valid Unicode") from None
    if size > MAX_KEY_BYTES:
        raise InvalidKeyError(
            namespace,
            key[:40] + "...",
            f"a key is at most {MAX_KEY_BYTES} UTF-8 bytes, this one is {size}",
        )
    return key


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A key's value and metadata at some revision. `value` is canonical JSON."""

    namespace: str
    key: str
    value: bytes
    create_rev: int
    mod_rev: int
    version: int

    def json(self) -> object:
        return orjson.loads(self.value)


class ChangeOp(StrEnum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Change:
    """One key's change in one committed command, as workers receive it.

    `seq` orders the changes of one revision. For a delete, `value` is None and
    `create_rev`/`version` are 0. `prev_mod_rev` is 0 when the key was absent.
    """

    rev: int
    seq: int
    namespace: str
    key: str
    op: ChangeOp
    value: bytes | None
    prev_mod_rev: int
    create_rev: int
    version: int
    command_id: str
    ts_ms: int
    trace: str | None
    hash: bytes

    def canonical(self) -> bytes:
        return change_canonical_bytes(
            rev=self.rev,
            seq=self.seq,
            namespace=self.namespace,
            key=self.key,
            op=self.op,
            value=self.value,
            prev_mod_rev=self.prev_mod_rev,
            create_rev=self.create_rev,
            version=self.version,
            command_id=self.command_id,
            ts_ms=self.ts_ms,
            trace=self.trace,
        )

    def to_json(self) -> dict[str, object]:
        return {
            "rev": self.rev,
            "seq": self.seq,
            "ns": self.namespace,
            "key": self.key,
            "op": self.op.value,
            "value": None if self.value is None else orjson.loads(self.value),
            "prev_mod_rev": self.prev_mod_rev,
            "create_rev": self.create_rev,
            "version": self.version,
            "command_id": self.command_id,
            "ts_ms": self.ts_ms,
            "trace": self.trace,
            "hash": self.hash.hex(),
        }


def change_canonical_bytes(
    *,
    rev: int,
    seq: int,
    namespace: str,
    key: str,
    op: ChangeOp,
    value: bytes | None,
    prev_mod_rev: int,
    create_rev: int,
    version: int,
    command_id: str,
    ts_ms: int,
    trace: str | None,
) -> bytes:
    """RFC 8785 bytes of the change object (built by the native core's log.rs)."""
    return _native.change_canonical_bytes(
        rev=rev,
        seq=seq,
        namespace=namespace,
        key=key,
        op=op.value,
        value=value,
        prev_mod_rev=prev_mod_rev,
        create_rev=create_rev,
        version=version,
        command_id=command_id,
        ts_ms=ts_ms,
        trace=trace,
    )


chain_hash = _native.chain_hash
