"""Commands to changes, with no I/O: the one place command semantics live.

`evaluate` reads current key records through a callable (the store passes its
table plus the changes already planned in the same group commit), checks the
compares, applies the ops and returns the changes to write at `rev`. It raises
and plans nothing when a compare fails or an op cannot apply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import statesync._native as _native
from statesync.core.commands import CompareKind, Limits, PreparedCommand, patch_error
from statesync.core.errors import (
    ConflictError,
    FailedCompare,
    NotFoundError,
    ValueTooLargeError,
)
from statesync.core.model import ChangeOp, KeyRecord

__all__ = ["PlannedChange", "ReadKey", "Rebase", "apply_patch", "evaluate"]

ReadKey = Callable[[str, str], KeyRecord | None]
Rebase = Callable[[KeyRecord], bytes]
"""A key's current value in the form a patch is written against (the
namespace's current schema version); the identity when there are no contracts."""


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """A change before it is stamped with time and chained: `before` and
    `record` are the key's state before and after (None: absent)."""

    namespace: str
    key: str
    op: ChangeOp
    before: KeyRecord | None
    record: KeyRecord | None

    @property
    def prev_mod_rev(self) -> int:
        return 0 if self.before is None else self.before.mod_rev


def _check_compares(command: PreparedCommand, read: ReadKey) -> None:
    failed = []
    for c in command.compares:
        current = read(c.namespace, c.key)
        actual = None if current is None else current.mod_rev
        if c.kind is CompareKind.MOD_REV:
            # mod_rev == 0 means "absent", as in etcd.
            holds = (actual or 0) == c.mod_rev
        elif c.kind is CompareKind.EXISTS:
            holds = actual is not None
        else:
            holds = actual is None
        if not holds:
            failed.append(FailedCompare(c.namespace, c.key, c.describe(), actual))
    if failed:
        raise ConflictError(failed)


def apply_patch(ns: str, key: str, base: bytes, patch: bytes, limits: Limits) -> bytes:
    """Apply a checked patch (`PreparedOp.patch`) strictly to canonical `base`
    (crates/core/src/patch.rs); the result is canonical."""
    try:
        return _native.apply_patch(base, patch, limits.max_value_bytes)
    except _native.PatchRefused as exc:
        raise patch_error(exc, ns, key) from None
    except _native.ValueTooLarge as exc:
        size, limit = exc.args
        raise ValueTooLargeError(ns, key, size, limit) from None


def evaluate(
    command: PreparedCommand,
    read: ReadKey,
    *,
    rev: int,
    limits: Limits = Limits(),
    rebase: Rebase | None = None,
) -> list[PlannedChange]:
    """The changes `command` makes when committed at `rev`.

    A "contract" op plans the request itself as the record's value; the
    contract gate turns it into the namespace's new contract.

    Raises `ConflictError` when a compare fails, `NotFoundError` when a patch
    targets an absent key, `InvalidPatchError`/`ValueTooLargeError` when a
    patch result is unacceptable. Deleting an absent key plans no change.
    """
    _check_compares(command, read)
    planned: list[PlannedChange] = []
    for op in command.ops:
        current = read(op.namespace, op.key)
        if op.kind == "delete":
            if current is not None:
                planned.append(PlannedChange(op.namespace, op.key, ChangeOp.DELETE, current, None))
            continue
        if op.kind == "patch":
            if current is None:
                raise NotFoundError(op.namespace, op.key)
            base = current.value if rebase is None else rebase(current)
            value = apply_patch(op.namespace, op.key, base, op.patch, limits)
        else:
            assert op.value is not None
            value = op.value
        record = KeyRecord(
            namespace=op.namespace,
            key=op.key,
            value=value,
            create_rev=rev if current is None else current.create_rev,
            mod_rev=rev,
            version=1 if current is None else current.version + 1,
        )
        planned.append(PlannedChange(op.namespace, op.key, ChangeOp.PUT, current, record))
    return planned
