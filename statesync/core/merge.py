"""A deterministic three-way JSON merge, for the `merge` conflict policy.

A writer that read a key at an old revision (it was offline, or it retries
after a timeout) sends its value. `merge3(base, current, writer)` combines it
with the current value, using the value at the writer's base revision from
history. Pure: no I/O, and the inputs are never mutated.

Rules, applied at the root and again at every member of objects that are
objects on all three sides ("equal" is JSON equality: true is not 1, numbers
compare by value, so 1 and 1.0 are equal):

1. writer equals base: the writer changed nothing here; take current.
2. current equals base: only the writer changed it; take writer.
3. current equals writer: both made the same change; take it (current's form).
4. base, current and writer are all objects: merge member by member over the
   union of member names. A member missing on a side was deleted (or never
   added) on that side, so the same rules decide it: deleted on one side and
   unchanged on the other is deleted; deleted on one side and modified on the
   other is a conflict at that member.
5. Otherwise both sides changed the value differently: one conflict at this
   path. That covers scalars, type changes (an object on one side, a scalar or
   array on the other) and an object both sides added with no base object.

Arrays are atomic, like scalars. An element-wise array merge is ambiguous
without element identities: was an element inserted, or edited in place and
the rest shifted? Were two equal elements added twice, or once by both sides?
Any guess can silently duplicate or drop data, so a change to the same array
on both sides is reported as a conflict for the caller to resolve.

`MISSING` stands for an absent member, and may also stand for an absent whole
document (a key that does not exist at base, or was deleted), in which case
the merged `value` may be `MISSING`: the key is deleted.

Every conflict is collected, sorted by path (RFC 6901 JSON Pointer, compared
as strings; "" is the whole document). Conflicting paths never nest: the merge
does not look inside a conflict. When there are conflicts, `value` keeps the
current side at each conflicting path and is only informative.
"""

from __future__ import annotations

import copy
import enum
from dataclasses import dataclass
from typing import Final

from statesync.core.canonical import json_equal, pointer_token

__all__ = ["MISSING", "MergeConflict", "MergeResult", "merge3"]


class _Missing(enum.Enum):
    MISSING = "MISSING"

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing.MISSING
"""An absent member (or document): deleted, or never there, on that side.

It is a singleton (an enum member), so test it with `is`; it survives copy
and pickle as itself."""


def _side(value: object) -> dict[str, object]:
    if value is MISSING:
        return {"absent": True}
    return {"value": copy.deepcopy(value)}


@dataclass(frozen=True, slots=True)
class MergeConflict:
    """Both sides changed the value at `path` differently from `base`.

    Each side holds the value at `path` on that side, or `MISSING` when the
    member is absent there.
    """

    path: str  # RFC 6901 JSON Pointer ("" is the whole document)
    base: object
    current: object
    writer: object

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready description.

        Each side is wrapped so that absence is never confused with a value:
        `{"value": <JSON>}` when present, `{"absent": true}` when absent.
        """
        return {
            "path": self.path,
            "base": _side(self.base),
            "current": _side(self.current),
            "writer": _side(self.writer),
        }


@dataclass(frozen=True, slots=True)
class MergeResult:
    """The merged document and every conflict, sorted by path."""

    value: object  # meaningful only when `clean`; MISSING: the document is deleted
    conflicts: tuple[MergeConflict, ...]

    @property
    def clean(self) -> bool:
        """True when the merge has no conflicts and `value` can be written."""
        return not self.conflicts


def _equal(a: object, b: object) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return json_equal(a, b)


def _merge(
    base: object, current: object, writer: object, path: str, conflicts: list[MergeConflict]
) -> object:
    """The merged value at `path` (MISSING: absent); appends conflicts found."""
    if _equal(writer, base):
        return current
    if _equal(current, base):
        return writer
    if _equal(current, writer):
        return current
    if isinstance(base, dict) and isinstance(current, dict) and isinstance(writer, dict):
        merged: dict[str, object] = {}
        # Current's members keep their order; members only the writer has follow.
        # A member absent from both current and writer stays deleted.
        names = list(current) + [k for k in writer if k not in current]
        for name in names:
            value = _merge(
                base.get(name, MISSING),
                current.get(name, MISSING),
                writer.get(name, MISSING),
                f"{path}/{pointer_token(name)}",
                conflicts,
            )
            if value is not MISSING:
                merged[name] = value
        return merged
    conflicts.append(
        MergeConflict(
            path=path,
            base=copy.deepcopy(base),
            current=copy.deepcopy(current),
            writer=copy.deepcopy(writer),
        )
    )
    return current


def merge3(base: object, current: object, writer: object) -> MergeResult:
    """Merge `writer`'s changes since `base` into `current` (see the module doc).

    Any argument may be `MISSING` for an absent document. The result shares no
    mutable structure with the inputs.
    """
    conflicts: list[MergeConflict] = []
    value = _merge(base, current, writer, "", conflicts)
    conflicts.sort(key=lambda c: c.path)
    return MergeResult(value=copy.deepcopy(value), conflicts=tuple(conflicts))
