"""JSON Patch application through the binding, as the store's engine does it
(crates/core/src/patch.rs), with the store's typed errors: fast enough for
property tests, which would otherwise pay an fsync per example."""

from __future__ import annotations

from typing import Any

import statesync._native as _native
from statesync.core.commands import Command, Limits, Patch, check, patch_error
from statesync.core.errors import ValueTooLargeError


def apply_patch(ns: str, key: str, base: bytes, patch: Any, limits: Limits = Limits()) -> bytes:
    """The canonical result of `patch` (Python objects) applied to canonical `base`."""
    check(Command([Patch(ns, key, patch)]), limits)
    checked = _native.check_patch(patch)
    try:
        return _native.apply_patch(base, checked, limits.max_value_bytes)
    except _native.PatchRefused as exc:
        raise patch_error(exc, ns, key) from None
    except _native.ValueTooLarge as exc:
        size, limit = exc.args
        raise ValueTooLargeError(ns, key, size, limit) from None
