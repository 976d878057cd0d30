"""Deltas on the sync stream, as a worker applies them: a JSON Patch from the
key's previous value, sent with the hash of the result so a worker holding the
wrong base notices.

The controller (the data plane's sync hub) sends a delta only when it is
smaller than the value and re-applying it gives exactly the new canonical
bytes; the diff, that check and the worker's application are the native
core's (crates/core/src/delta.rs).
"""

from __future__ import annotations

import statesync._native as _native
from statesync.core.canonical import value_error
from statesync.core.commands import patch_error
from statesync.core.errors import ProtocolError

__all__ = ["DeltaMismatchError", "apply_delta"]


class DeltaMismatchError(ProtocolError):
    """The delta does not apply to this base, or its result has another hash."""


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
