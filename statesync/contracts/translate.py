"""Declarative translations between adjacent schema versions of a namespace.

A translation is JSON data (docs/translations.md is the normative text): a list
of ops that take a value from schema version N up to N+1, and a list that takes
it back down. The controller uses `translate` to serve each worker the newest
version it understands; Go, Rust or Java workers can apply the same data.

The format, its validation, the converters and the semantics of each op live in
the Rust core (`crates/core/src/translate.rs`); this module is its Python face:
the typed values, the errors with the namespace added, and the chain across
versions. It never mutates the document it is given, and every failure is an
`InvalidTranslationError` naming the op index and the field, or a
`NoTranslationPathError` for a missing step. `translate_json` is the fast path:
JSON text in, canonical bytes out, one call into Rust.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from types import MappingProxyType
from typing import Any, NoReturn

import statesync._native as _native
from statesync.core.canonical import value_error
from statesync.core.errors import InvalidTranslationError, NoTranslationPathError

__all__ = [
    "CONVERTERS",
    "FORMAT",
    "Converter",
    "Translation",
    "identity",
    "parse_translation",
    "translate",
    "translate_json",
]

FORMAT: str = _native.TRANSLATION_FORMAT


def _refused(exc: _native.TranslationRefused, namespace: str | None) -> InvalidTranslationError:
    reason, op_index, where, from_version, to_version = exc.args
    return InvalidTranslationError(
        reason,
        namespace=namespace,
        from_version=from_version,
        to_version=to_version,
        op_index=op_index,
        field=where,
    )


def _raise(exc: Exception, namespace: str | None) -> NoReturn:
    """The typed error of a native refusal, with the namespace this layer knows."""
    if isinstance(exc, _native.TranslationRefused):
        raise _refused(exc, namespace) from None
    if isinstance(exc, _native.ValueRefused):
        raise value_error(exc, namespace, None) from None
    raise exc


@dataclass(frozen=True, slots=True)
class Converter:
    """A named value converter and the name of the converter that undoes it."""

    name: str
    inverse: str
    summary: str
    convert: Callable[[Any], Any] = field(repr=False)


def _convert(name: str, value: Any) -> Any:
    try:
        return _native.convert(name, value)
    except (_native.TranslationRefused, _native.ValueRefused) as exc:
        _raise(exc, None)


CONVERTERS: Mapping[str, Converter] = MappingProxyType(
    {
        name: Converter(name, inverse, summary, partial(_convert, name))
        for name, inverse, summary in _native.converters()
    }
)


@dataclass(frozen=True, slots=True)
class Translation:
    """The translation between schema versions `from_version` and `from_version + 1`.

    `up` and `down` hold the ops in their canonical JSON form; `down` is always
    filled (`parse_translation` derives it when the data leaves it out).
    Constructing one validates both lists.
    """

    from_version: int
    to_version: int
    up: tuple[dict[str, Any], ...]
    down: tuple[dict[str, Any], ...]
    _compiled: _native.Translation = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            native = _native.Translation(self.from_version, self.to_version, self.up, self.down)
        except _native.TranslationRefused as exc:
            raise _refused(exc, None) from None
        object.__setattr__(self, "up", native.up)
        object.__setattr__(self, "down", native.down)
        object.__setattr__(self, "_compiled", native)

    def apply(self, doc: object, direction: str) -> object:
        """`doc` translated one step "up" (to `to_version`) or "down"; `doc` is not changed."""
        try:
            return self._compiled.apply(doc, direction)
        except (_native.TranslationRefused, _native.ValueRefused) as exc:
            _raise(exc, None)

    def to_json(self) -> dict[str, Any]:
        """The canonical data form, with an explicit `down`."""
        return self._compiled.to_json()


def parse_translation(data: object, *, namespace: str | None = None) -> Translation:
    """Validate the JSON form of a translation; derive `down` when it is absent.

    Every error is an `InvalidTranslationError` whose `op_index` is the bad op
    (None for a top-level member) and whose `field` is the JSON Pointer of the
    bad member inside `data` (e.g. "/up/2/converter").
    """
    try:
        native = _native.Translation.parse(data)
    except _native.TranslationRefused as exc:
        raise _refused(exc, namespace) from None
    return Translation(native.from_version, native.to_version, native.up, native.down)


def identity(from_version: int) -> Translation:
    """The translation with no ops, used between versions that registered none."""
    return Translation(from_version, from_version + 1, (), ())


def _steps(translations: Mapping[int, Translation]) -> dict[int, _native.Translation]:
    return {low: found._compiled for low, found in translations.items()}


def _no_path(
    exc: _native.TranslationMissing, namespace: str | None, start: int, end: int
) -> NoReturn:
    raise NoTranslationPathError(namespace or "", start, [end], exc.args[0]) from None


def translate(
    doc: object,
    from_version: int,
    to_version: int,
    translations: Mapping[int, Translation],
    *,
    namespace: str | None = None,
) -> object:
    """`doc` (in schema `from_version`) translated to `to_version`, step by step.

    `translations[n]` translates between n and n + 1. Every step is looked up
    before any runs; a missing one raises `NoTranslationPathError`. The result
    shares no mutable structure with `doc`, which is not changed.
    """
    try:
        return _native.translate(doc, from_version, to_version, _steps(translations))
    except _native.TranslationMissing as exc:
        _no_path(exc, namespace, from_version, to_version)
    except (_native.TranslationRefused, _native.ValueRefused) as exc:
        _raise(exc, namespace)


def translate_json(
    value: bytes,
    from_version: int,
    to_version: int,
    translations: Mapping[int, Translation],
    *,
    namespace: str | None = None,
    key: str | None = None,
) -> bytes:
    """Like `translate`, on JSON text (strictly parsed): canonical bytes out, in one
    call into Rust that runs without the GIL. A value that is not I-JSON raises
    `InvalidValueError` naming the namespace and key."""
    try:
        return _native.translate_json(value, from_version, to_version, _steps(translations))
    except _native.TranslationMissing as exc:
        _no_path(exc, namespace, from_version, to_version)
    except _native.ValueRefused as exc:
        raise value_error(exc, namespace, key) from None
    except _native.TranslationRefused as exc:
        raise _refused(exc, namespace) from None
