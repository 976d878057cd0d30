"""Deltas on the sync stream: a JSON Patch from the key's previous value,
sent with the hash of the result so a worker holding the wrong base notices.

The controller sends a delta only when it is smaller than the value and
re-applying it gives exactly the new canonical bytes; the diff, that check and
the worker's application are the native core's (crates/core/src/delta.rs).
"""

from __future__ import annotations

import statesync._native as _native
from statesync.core.canonical import value_error
from statesync.core.commands import patch_error
from statesync.core.errors import ProtocolError

__all__ = ["DeltaMismatchError", "apply_delta", "make_delta"]


class DeltaMismatchError(ProtocolError):
    """The delta does not apply to this base, or its result has another hash."""


def make_delta(ns: str, key: str, old: bytes, new: bytes) -> bytes | None:
    """The patch from `old` to `new` (canonical JSON), or None when a full value is better."""
    try:
        return _native.make_delta(old, new)
    except _native.ValueRefused as exc:
        raise value_error(exc, ns, key) from None


def apply_delta(ns: str, key: str, base: bytes, delta: bytes, value_hash: bytes) -> bytes:
    """The new canonical value, checked against `value_hash`."""
    try:
        return _native.apply_delta(base, delta, value_hash)
    except _native.DeltaMismatch:
        raise DeltaMismatchError(
            f"{ns}/{key}: delta result does not match its hash (wrong base)"
        ) from None
    except _native.PatchRefused as exc:
        cause: Exception = patch_error(exc, ns, key)
    except _native.ValueRefused as exc:
        cause = value_error(exc, ns, key)
    raise DeltaMismatchError(f"{ns}/{key}: delta does not apply to the base: {cause}") from None
