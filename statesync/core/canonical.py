"""Values: the I-JSON domain (RFC 7493) and their canonical bytes (RFC 8785, JCS).

Every hash in statesync is computed over canonical bytes, so every language
that follows RFC 8785 computes the same bytes and the same hashes.

`rfc8785` is the reference encoder. It is slow for the common case (tens of
microseconds for a small document), so values with no floats and no object key
outside U+0000..U+D7FF are encoded with orjson and sorted keys, which yields the
same bytes for them: integers print the same, strings escape the same set of
characters, and code-point order equals UTF-16 order below U+D800. A property
test holds the two encoders equal on that domain.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, TypeAlias

import orjson
import rfc8785

from statesync.core.errors import InvalidValueError

__all__ = [
    "MAX_SAFE_INTEGER",
    "JSONValue",
    "canonical_bytes",
    "check_value",
    "parse_json",
    "sha256",
]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

MAX_SAFE_INTEGER = 2**53 - 1
# RFC 8785 prints a float below 1e21 with no exponent: an integral one of at
# least 2**53 would become an integer literal outside the I-JSON range.
_JCS_EXPONENT_FROM = 1e21
_FAST_KEY_LIMIT = "\ud800"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _pointer_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def _path(parts: list[str | int]) -> str:
    return "".join("/" + _pointer_token(p) for p in parts)


def _check_string(s: str, where: list[str | int], ns: str | None, key: str | None) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidValueError(
            ns, key, _path(where), f"string holds a lone surrogate at index {exc.start}"
        ) from None


def _integral_beyond_safe(number: float) -> bool:
    return MAX_SAFE_INTEGER < abs(number) < _JCS_EXPONENT_FROM


def _is_fast(value: Any) -> bool | None:
    """Walk `value` without tracking paths: True/False when it is I-JSON (fast
    encoder usable or not), None when it is not I-JSON (find out where slowly)."""
    fast = True
    stack = [value]
    pop, extend = stack.pop, stack.extend
    while stack:
        node = pop()
        kind = type(node)
        if kind is str:
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return None
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                return None
        elif kind is dict:
            for k in node:
                if type(k) is not str:
                    return None
                if not k.isascii():
                    try:
                        k.encode("utf-8")
                    except UnicodeEncodeError:
                        return None
                    if max(k) >= _FAST_KEY_LIMIT:
                        fast = False
            extend(node.values())
        elif kind is list or kind is tuple:
            extend(node)
        elif kind is float:
            if not math.isfinite(node) or _integral_beyond_safe(node):
                return None
            fast = False
        elif not (kind is bool or node is None):
            return None
    return fast


def check_value(value: Any, *, namespace: str | None = None, key: str | None = None) -> bool:
    """Raise `InvalidValueError` unless `value` is in the I-JSON domain.

    Returns True when the fast canonical encoder gives RFC 8785 bytes for it.
    The error names the namespace, the key and the JSON Pointer of the first
    offending member.
    """
    fast = _is_fast(value)
    if fast is None:
        _raise_where_invalid(value, namespace, key)
    return bool(fast)


def _raise_where_invalid(value: Any, namespace: str | None, key: str | None) -> None:
    # Iterative walk: deep documents must not hit Python's recursion limit.
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, where = stack.pop()
        kind = type(node)
        if kind is str:
            _check_string(node, where, namespace, key)
        elif kind is int:
            if not -MAX_SAFE_INTEGER <= node <= MAX_SAFE_INTEGER:
                raise InvalidValueError(
                    namespace,
                    key,
                    _path(where),
                    f"integer {node} is outside the I-JSON range ±(2**53-1)",
                )
        elif kind is float:
            if not math.isfinite(node):
                raise InvalidValueError(
                    namespace, key, _path(where), f"number {node} is not finite"
                )
            if _integral_beyond_safe(node):
                raise InvalidValueError(
                    namespace,
                    key,
                    _path(where),
                    f"number {node!r} is an integer outside the I-JSON range ±(2**53-1) "
                    "in canonical form",
                )
        elif kind is dict:
            for k, v in node.items():
                if type(k) is not str:
                    raise InvalidValueError(
                        namespace, key, _path(where), f"object key {k!r} is not a string"
                    )
                _check_string(k, [*where, k], namespace, key)
                stack.append((v, [*where, k]))
        elif kind is list or kind is tuple:
            stack.extend((v, [*where, i]) for i, v in enumerate(node))
        elif not (kind is bool or node is None):
            raise InvalidValueError(
                namespace, key, _path(where), f"{kind.__name__} is not a JSON type"
            )
    raise AssertionError("unreachable: _is_fast and _raise_where_invalid disagree")


def canonical_bytes(value: Any, *, fast: bool | None = None) -> bytes:
    """RFC 8785 bytes of an I-JSON value already accepted by `check_value`."""
    if fast is None:
        fast = check_value(value)
    if fast:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(value)


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


class _DuplicateKeys(dict):  # type: ignore[type-arg]
    """An object that had a duplicate key; parse_json finds where it is."""

    duplicate: str = ""


def _mark_duplicates(pairs: list[tuple[str, Any]]) -> _DuplicateKeys:
    marked = _DuplicateKeys(pairs)
    seen: set[str] = set()
    for k, _ in pairs:
        if k in seen:
            marked.duplicate = k
            break
        seen.add(k)
    return marked


def _find_duplicate(value: Any) -> tuple[str, str] | None:
    """(JSON Pointer of the object, the duplicated key) of the first marked object."""
    stack: list[tuple[Any, list[str | int]]] = [(value, [])]
    while stack:
        node, where = stack.pop()
        if isinstance(node, _DuplicateKeys):
            return _path(where), node.duplicate
        if isinstance(node, dict):
            stack.extend((v, [*where, k]) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((v, [*where, i]) for i, v in enumerate(node))
    return None


def parse_json(
    text: str | bytes, *, namespace: str | None = None, key: str | None = None
) -> JSONValue:
    """Parse untrusted JSON text strictly into an I-JSON value.

    Refuses duplicate object keys, NaN/Infinity, integers outside ±(2**53-1)
    and lone surrogates, with an error naming where.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidValueError(
                namespace, key, "", f"not valid UTF-8 at byte {exc.start}"
            ) from None
    saw_duplicate = False

    def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal saw_duplicate
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        saw_duplicate = True
        return _mark_duplicates(pairs)

    try:
        value = json.loads(text, object_pairs_hook=unique_object, parse_constant=_reject_constant)
    except ValueError as exc:  # json.JSONDecodeError is a ValueError
        raise InvalidValueError(namespace, key, "", f"malformed JSON: {exc}") from None
    duplicate = _find_duplicate(value) if saw_duplicate else None
    if duplicate is not None:
        path, name = duplicate
        raise InvalidValueError(namespace, key, path, f"duplicate object key {name!r}")
    check_value(value, namespace=namespace, key=key)
    return value
