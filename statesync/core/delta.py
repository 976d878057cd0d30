"""Deltas on the sync stream: a JSON Patch from the key's previous value,
sent with the hash of the result so a worker holding the wrong base notices.

The controller sends a delta only when it is smaller than the value and
re-applying it here gives exactly the new canonical bytes (a diff tool that
confuses 1, 1.0 and true can never produce a wrong delta).
"""

from __future__ import annotations

import hashlib

import jsonpatch
import orjson

from statesync.core.commands import Limits
from statesync.core.engine import apply_patch
from statesync.core.errors import InvalidInputError, ProtocolError

__all__ = ["DeltaMismatchError", "apply_delta", "make_delta"]


class DeltaMismatchError(ProtocolError):
    """The delta does not apply to this base, or its result has another hash."""


def make_delta(ns: str, key: str, old: bytes, new: bytes) -> bytes | None:
    """The patch from `old` to `new` (canonical JSON), or None when a full value is better."""
    patch = jsonpatch.make_patch(orjson.loads(old), orjson.loads(new)).patch
    encoded = orjson.dumps(patch)
    if len(encoded) >= len(new):
        return None
    try:
        result = apply_patch(ns, key, old, tuple(patch), Limits(max_value_bytes=len(new) + 1))
    except InvalidInputError:
        return None
    return encoded if result == new else None


def apply_delta(ns: str, key: str, base: bytes, delta: bytes, value_hash: bytes) -> bytes:
    """The new canonical value, checked against `value_hash`."""
    try:
        patch = tuple(orjson.loads(delta))
        value = apply_patch(ns, key, base, patch, Limits(max_value_bytes=1 << 40))
    except (InvalidInputError, orjson.JSONDecodeError, TypeError) as exc:
        raise DeltaMismatchError(f"{ns}/{key}: delta does not apply to the base: {exc}") from None
    if hashlib.sha256(value).digest() != value_hash:
        raise DeltaMismatchError(f"{ns}/{key}: delta result does not match its hash (wrong base)")
    return value
