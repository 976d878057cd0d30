"""Values: the I-JSON domain (RFC 7493) and their canonical bytes (RFC 8785, JCS).

Every hash in statesync is computed over canonical bytes, so every language
that follows RFC 8785 computes the same bytes and the same hashes. The parser,
the checks and the encoder are the native core's (crates/core/src/value.rs and
canonical.rs); this module adds what only the caller knows to its refusals:
the namespace and the key.

Values nest at most `MAX_DEPTH` arrays and objects deep; a deeper value is
refused like any other invalid one (docs/digest.md, "Values").
"""

from __future__ import annotations

from typing import Any, NoReturn, TypeAlias

import statesync._native as _native
from statesync.core.errors import InvalidValueError

__all__ = [
    "MAX_DEPTH",
    "MAX_SAFE_INTEGER",
    "JSONValue",
    "canonical_bytes",
    "canonical_json",
    "check_value",
    "json_equal",
    "parse_json",
    "pointer",
    "sha256",
]

JSONValue: TypeAlias = bool | int | float | str | list["JSONValue"] | dict[str, "JSONValue"] | None

MAX_SAFE_INTEGER: int = _native.MAX_SAFE_INTEGER
MAX_DEPTH: int = _native.MAX_DEPTH
sha256 = _native.sha256


def pointer_token(token: str | int) -> str:
    """One RFC 6901 reference token (without its leading slash)."""
    return str(token).replace("~", "~0").replace("/", "~1")


def pointer(tokens: list[str | int]) -> str:
    """The JSON Pointer of a path given as keys and indexes."""
    return "".join("/" + pointer_token(t) for t in tokens)


def value_error(
    exc: _native.ValueRefused, namespace: str | None, key: str | None
) -> InvalidValueError:
    """The typed error of a native value refusal, which knows no namespace or key."""
    _kind, tokens, reason = exc.args
    return InvalidValueError(namespace, key, pointer(tokens), reason)


def _refuse(exc: _native.ValueRefused, namespace: str | None, key: str | None) -> NoReturn:
    raise value_error(exc, namespace, key) from None


def check_value(value: Any, *, namespace: str | None = None, key: str | None = None) -> None:
    """Raise `InvalidValueError` unless `value` is in the I-JSON domain; the error
    names the namespace, the key and the JSON Pointer of the first offending member."""
    try:
        _native.check_value(value)
    except _native.ValueRefused as exc:
        _refuse(exc, namespace, key)


def canonical_bytes(value: Any, *, namespace: str | None = None, key: str | None = None) -> bytes:
    """RFC 8785 bytes of an I-JSON value; `InvalidValueError` if it is not one."""
    try:
        return _native.canonical_bytes(value)
    except _native.ValueRefused as exc:
        _refuse(exc, namespace, key)


def canonical_json(
    text: str | bytes, *, namespace: str | None = None, key: str | None = None
) -> bytes:
    """Parse untrusted JSON text strictly and return its canonical bytes."""
    try:
        return _native.canonical_json(text)
    except _native.ValueRefused as exc:
        _refuse(exc, namespace, key)


def parse_json(
    text: str | bytes, *, namespace: str | None = None, key: str | None = None
) -> JSONValue:
    """Parse untrusted JSON text strictly into an I-JSON value.

    Refuses duplicate object keys, NaN/Infinity, integers outside ±(2**53-1),
    lone surrogates and nesting deeper than `MAX_DEPTH`, with an error naming where.
    """
    try:
        # The native parser returns only JSON values; its stub says Any.
        return _native.parse_json(text)  # type: ignore[no-any-return]
    except _native.ValueRefused as exc:
        _refuse(exc, namespace, key)


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality (RFC 6902 4.6), the one `test` ops use: true is not 1,
    numbers compare by value (1 equals 1.0), object members in any order."""
    try:
        return _native.json_equal(a, b)
    except _native.ValueRefused as exc:
        _refuse(exc, None, None)
