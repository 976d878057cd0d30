"""Commands to changes, with no I/O: the one place command semantics live.

`evaluate` reads current key records through a callable (the store passes its
table plus the changes already planned in the same group commit), checks the
compares, applies the ops and returns the changes to write at `rev`. It raises
and plans nothing when a compare fails or an op cannot apply.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import jsonpatch
import jsonpointer
import orjson

from statesync.core.canonical import canonical_bytes
from statesync.core.commands import CompareKind, Limits, PreparedCommand
from statesync.core.errors import (
    ConflictError,
    FailedCompare,
    InvalidPatchError,
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


def _json_equal(a: object, b: object) -> bool:
    """JSON equality (RFC 6902 4.6): true is not 1, numbers compare by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _resolve(doc: object, pointer: str, *, parent_only: bool) -> object:
    """Follow an RFC 6901 pointer through objects and arrays only.

    jsonpatch would index into strings; a pointer never can. Raises
    JsonPointerException when a step leaves the containers.
    """
    node = doc
    tokens = jsonpointer.JsonPointer(pointer).parts
    for token in tokens[:-1] if parent_only else tokens:
        if isinstance(node, dict):
            if token not in node:
                raise jsonpointer.JsonPointerException(f"member {token!r} not found")
            node = node[token]
        elif isinstance(node, list):
            if not token.isdigit() or int(token) >= len(node) or token != str(int(token)):
                raise jsonpointer.JsonPointerException(f"no array index {token!r}")
            node = node[int(token)]
        else:
            raise jsonpointer.JsonPointerException(
                f"cannot point inside a {type(node).__name__} at {token!r}"
            )
    if parent_only and tokens and not isinstance(node, dict | list):
        raise jsonpointer.JsonPointerException(f"cannot point inside a {type(node).__name__}")
    return node


def _apply_op(doc: object, op: dict) -> object:
    kind = op["op"]
    if kind == "test":
        try:
            actual = _resolve(doc, op["path"], parent_only=False)
        except jsonpointer.JsonPointerException as exc:
            raise jsonpatch.JsonPatchTestFailed(str(exc)) from None
        if not _json_equal(actual, op["value"]):
            raise jsonpatch.JsonPatchTestFailed(f"value at {op['path']!r} is not {op['value']!r}")
        return doc
    if op["path"] == "":  # the whole document (RFC 6902 4.1, 4.3)
        if kind in ("add", "replace"):
            return copy.deepcopy(op["value"])
        if kind in ("move", "copy"):
            return copy.deepcopy(_resolve(doc, op["from"], parent_only=False))
        raise jsonpatch.JsonPatchConflict("cannot remove the whole document")
    _resolve(doc, op["path"], parent_only=True)
    if kind in ("move", "copy"):
        source = _resolve(doc, op["from"], parent_only=False)
        if kind == "copy" and op["from"] == "":
            op = {"op": "add", "path": op["path"], "value": source}
        elif kind == "move":
            frm = jsonpointer.JsonPointer(op["from"]).parts
            to = jsonpointer.JsonPointer(op["path"]).parts
            if len(to) > len(frm) and to[: len(frm)] == frm:
                raise jsonpatch.JsonPatchConflict(
                    f"cannot move {op['from']!r} into its own child {op['path']!r}"
                )
    return jsonpatch.JsonPatch([copy.deepcopy(op)]).apply(doc, in_place=True)


def apply_patch(ns: str, key: str, base: bytes, patch: tuple, limits: Limits) -> bytes:
    """Apply an RFC 6902 patch strictly to canonical `base`; the result is canonical."""
    doc = orjson.loads(base)
    for index, op in enumerate(patch):
        try:
            # One op at a time so that the error can name the op that failed.
            doc = _apply_op(doc, op)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise InvalidPatchError(ns, key, index, op.get("path"), f"test failed: {exc}") from None
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            TypeError,
            KeyError,
            IndexError,
        ) as exc:
            raise InvalidPatchError(ns, key, index, op.get("path"), str(exc)) from None
    value = canonical_bytes(doc, namespace=ns, key=key)
    if len(value) > limits.max_value_bytes:
        raise ValueTooLargeError(ns, key, len(value), limits.max_value_bytes)
    return value


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
