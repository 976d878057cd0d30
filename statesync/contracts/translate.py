"""Declarative translations between adjacent schema versions of a namespace.

A translation is JSON data (docs/translations.md is the normative text): a list
of ops that take a value from schema version N up to N+1, and a list that takes
it back down. The controller uses `translate` to serve each worker the newest
version it understands; Go, Rust or Java workers can apply the same data.

This module owns the format, its validation, the named converters and the
semantics of each op. It is pure: no I/O and no clock. It never mutates the
document it is given, and every failure is an `InvalidTranslationError` naming
the op index and the field, or a `NoTranslationPathError` for a missing step.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from types import MappingProxyType
from typing import Any

from statesync.core.canonical import MAX_SAFE_INTEGER, check_value
from statesync.core.errors import (
    InvalidTranslationError,
    InvalidValueError,
    NoTranslationPathError,
)

__all__ = [
    "CONVERTERS",
    "FORMAT",
    "Converter",
    "Translation",
    "identity",
    "parse_translation",
    "translate",
]

FORMAT = "statesync.translation/1"

# -- converters ---------------------------------------------------------------


class _Refused(Exception):
    """A value an op cannot handle (outside a converter's domain); the message says why."""


@dataclass(frozen=True, slots=True)
class Converter:
    """A named value converter and the name of the converter that undoes it."""

    name: str
    inverse: str
    summary: str
    convert: Callable[[Any], Any] = field(repr=False)


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=True, allow_nan=True, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _integer(value: Any) -> int:
    """An integer within the I-JSON range; an integral float counts (1.0 is 1 in JSON)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise _Refused(f"{_show(value)} is not an integer")
    _in_range(value)
    return value


def _in_range(number: int) -> int:
    if not -MAX_SAFE_INTEGER <= number <= MAX_SAFE_INTEGER:
        raise _Refused(f"{number} is outside the I-JSON integer range +-(2**53-1)")
    return number


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def _civil_from_days(days: int) -> tuple[int, int, int]:
    days += 719468
    era = days // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    return yoe + era * 400 + (month <= 2), month, day


_DAY_MS = 86_400_000
_MIN_MS = _days_from_civil(0, 1, 1) * _DAY_MS  # 0000-01-01T00:00:00.000Z
_MAX_MS = _days_from_civil(10000, 1, 1) * _DAY_MS - 1  # 9999-12-31T23:59:59.999Z
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]+))?"
    r"(?:[Zz]|([+-])([0-9]{2}):([0-9]{2}))"
)


def _rfc3339_to_unix_ms(value: Any) -> int:
    match = _RFC3339.fullmatch(value) if type(value) is str else None
    if match is None:
        raise _Refused(f"{_show(value)} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    frac, sign, off_h, off_m = match.group(7, 8, 9, 10)
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    month_days = (31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
    offset = 0
    if sign is not None:
        if int(off_h) > 23 or int(off_m) > 59:
            raise _Refused(f"{_show(value)} has an invalid UTC offset")
        offset = (1 if sign == "+" else -1) * (int(off_h) * 60 + int(off_m))
    if not (1 <= month <= 12 and 1 <= day <= month_days[month - 1]):
        raise _Refused(f"{_show(value)} is not a valid calendar date")
    if hour > 23 or minute > 59 or second > 60:
        raise _Refused(f"{_show(value)} is not a valid time of day")
    seconds = ((_days_from_civil(year, month, day) * 24 + hour) * 60 + minute - offset) * 60
    ms = (seconds + second) * 1000 + int((frac or "").ljust(3, "0")[:3])
    if not _MIN_MS <= ms <= _MAX_MS:
        raise _Refused(f"{_show(value)} is outside years 0000-9999 UTC")
    return ms


def _unix_ms_to_rfc3339(value: Any) -> str:
    ms = _integer(value)
    if not _MIN_MS <= ms <= _MAX_MS:
        raise _Refused(f"{ms} ms is outside years 0000-9999 UTC")
    days, rest = divmod(ms, _DAY_MS)
    year, month, day = _civil_from_days(days)
    hour, rest = divmod(rest, 3_600_000)
    minute, rest = divmod(rest, 60_000)
    second, milli = divmod(rest, 1000)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{milli:03d}Z"


def _seconds_to_ms(value: Any) -> int:
    if type(value) is int:
        return _in_range(value * 1000)
    if type(value) is not float or not math.isfinite(value):
        raise _Refused(f"{_show(value)} is not a number")
    if abs(value) > 1e16:  # far outside the range; keeps the exact arithmetic small
        raise _Refused(f"{value!r} seconds is outside the I-JSON integer range in ms")
    # The shortest decimal that reads back as this double (what RFC 8785 prints),
    # times 1000, rounded half to even: exact, and the same in every language.
    return _in_range(round(Fraction(repr(value)) * 1000))


def _ms_to_seconds(value: Any) -> int | float:
    ms = _integer(value)
    whole, rest = divmod(ms, 1000)
    return whole if rest == 0 else ms / 1000  # int / int is correctly rounded


_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]{0,15})")


def _int_to_string(value: Any) -> str:
    return str(_integer(value))


def _string_to_int(value: Any) -> int:
    if type(value) is not str or not _DECIMAL.fullmatch(value) or value == "-0":
        raise _Refused(f"{_show(value)} is not a canonical decimal integer string")
    return _in_range(int(value))


def _string_to_array(value: Any) -> list[str]:
    if type(value) is not str:
        raise _Refused(f"{_show(value)} is not a string")
    return [value]


def _array_to_string(value: Any) -> str:
    if type(value) is not list or len(value) != 1 or type(value[0]) is not str:
        raise _Refused(f"{_show(value)} is not an array of exactly one string")
    return str(value[0])


def _converters(*rows: tuple[str, str, Callable[[Any], Any], str]) -> Mapping[str, Converter]:
    table = {name: Converter(name, inverse, summary, fn) for name, inverse, fn, summary in rows}
    assert all(table[c.inverse].inverse == c.name for c in table.values())
    return MappingProxyType(table)


CONVERTERS: Mapping[str, Converter] = _converters(
    ("rfc3339_to_unix_ms", "unix_ms_to_rfc3339", _rfc3339_to_unix_ms,
     "RFC 3339 date-time string -> integer milliseconds since 1970-01-01T00:00:00Z"),
    ("unix_ms_to_rfc3339", "rfc3339_to_unix_ms", _unix_ms_to_rfc3339,
     "integer milliseconds since the epoch -> YYYY-MM-DDTHH:MM:SS.mmmZ"),
    ("seconds_to_ms", "ms_to_seconds", _seconds_to_ms,
     "number of seconds -> integer milliseconds (exact, half to even)"),
    ("ms_to_seconds", "seconds_to_ms", _ms_to_seconds,
     "integer milliseconds -> number of seconds (the nearest double)"),
    ("int_to_string", "string_to_int", _int_to_string,
     "integer -> its canonical decimal string"),
    ("string_to_int", "int_to_string", _string_to_int,
     "canonical decimal integer string -> integer"),
    ("string_to_array", "array_to_string", _string_to_array,
     "string -> a one-element array holding it"),
    ("array_to_string", "string_to_array", _array_to_string,
     "a one-element array of a string -> that string"),
)  # fmt: skip

# -- the format ---------------------------------------------------------------

# op -> (required members, optional members), "op" aside.
_OP_MEMBERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "rename": (("from", "to"), ()),
    "move": (("from", "to"), ()),
    "add": (("path", "default"), ()),
    "remove": (("path",), ("default",)),
    "convert": (("path", "converter"), ()),
}
_TOP_MEMBERS = ("format", "from", "to", "up", "down")
_POINTERS = ("from", "to", "path")


@dataclass(frozen=True, slots=True)
class _Op:
    kind: str
    index: int
    pointer: str  # the document path errors name: `to` for a move, else the source
    path: tuple[str, ...]
    target: tuple[str, ...] = ()
    default: Any = None
    converter: Converter | None = None


class _SpecError(Exception):
    def __init__(self, reason: str, index: int | None, where: str) -> None:
        super().__init__(reason)
        self.reason, self.index, self.where = reason, index, where


def _pointer(tokens: tuple[str, ...]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


def _tokens(pointer: object, where: str, index: int) -> tuple[str, ...]:
    if type(pointer) is not str:
        raise _SpecError("a JSON Pointer must be a string", index, where)
    if not pointer.startswith("/"):
        reason = "the document root cannot be a path" if pointer == "" else "must start with '/'"
        raise _SpecError(f"bad JSON Pointer {pointer!r}: {reason}", index, where)
    if re.search("~(?![01])", pointer):
        raise _SpecError(f"bad JSON Pointer {pointer!r}: '~' not followed by 0 or 1", index, where)
    return tuple(t.replace("~1", "/").replace("~0", "~") for t in pointer[1:].split("/"))


def _compile_op(raw: object, index: int, where: str) -> tuple[dict[str, Any], _Op]:
    if type(raw) is not dict:
        raise _SpecError("an op must be a JSON object", index, where)
    kind = raw.get("op")
    if type(kind) is not str or kind not in _OP_MEMBERS:
        known = ", ".join(sorted(_OP_MEMBERS))
        raise _SpecError(f"unknown op {kind!r} (known: {known})", index, f"{where}/op")
    required, optional = _OP_MEMBERS[kind]
    for name in raw:
        if name != "op" and name not in required and name not in optional:
            raise _SpecError(f"unknown member {name!r} in a {kind} op", index, f"{where}/{name}")
    for name in required:
        if name not in raw:
            raise _SpecError(f"a {kind} op needs {name!r}", index, f"{where}/{name}")
    spec = {"op": kind, **{n: raw[n] for n in (*required, *optional) if n in raw}}
    paths = {n: _tokens(spec[n], f"{where}/{n}", index) for n in _POINTERS if n in spec}
    if "default" in spec:
        try:
            check_value(spec["default"])
        except InvalidValueError as exc:
            raise _SpecError(f"default is not I-JSON: {exc}", index, f"{where}/default") from None
        spec["default"] = _copy(spec["default"])
    if kind in ("rename", "move"):
        src, dst = paths["from"], paths["to"]
        if kind == "rename" and (src[:-1] != dst[:-1] or src == dst):
            reason = "rename changes the last token only; use move to change objects"
            raise _SpecError(reason, index, f"{where}/to")
        if dst[: len(src)] == src or src[: len(dst)] == dst:
            raise _SpecError("from and to must not contain one another", index, f"{where}/to")
        pointer = spec["to"] if kind == "move" else spec["from"]
        return spec, _Op(kind, index, pointer, src, dst)
    converter = None
    if kind == "convert":
        converter = CONVERTERS.get(spec["converter"]) if type(spec["converter"]) is str else None
        if converter is None:
            reason = f"unknown converter {spec['converter']!r} (known: {', '.join(CONVERTERS)})"
            raise _SpecError(reason, index, f"{where}/converter")
    return spec, _Op(kind, index, spec["path"], paths["path"], (), spec.get("default"), converter)


def _compile(ops: object, where: str) -> tuple[tuple[dict[str, Any], ...], tuple[_Op, ...]]:
    if not isinstance(ops, list | tuple):
        raise _SpecError(f"{where[1:]} must be an array of ops", None, where)
    compiled = [_compile_op(op, i, f"{where}/{i}") for i, op in enumerate(ops)]
    return tuple(s for s, _ in compiled), tuple(o for _, o in compiled)


def _inverse(spec: dict[str, Any]) -> dict[str, Any] | None:
    kind = spec["op"]
    if kind in ("rename", "move"):
        return {"op": kind, "from": spec["to"], "to": spec["from"]}
    if kind == "add":
        return {"op": "remove", "path": spec["path"], "default": _copy(spec["default"])}
    if kind == "remove":
        if "default" not in spec:
            return None  # nothing to restore
        return {"op": "add", "path": spec["path"], "default": _copy(spec["default"])}
    return {"op": kind, "path": spec["path"], "converter": CONVERTERS[spec["converter"]].inverse}


def _derive_down(up: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(inv for inv in map(_inverse, reversed(up)) if inv is not None)


def _check_versions(from_version: object, to_version: object) -> None:
    if type(from_version) is not int or from_version < 1:
        raise _SpecError("from must be an integer >= 1", None, "/from")
    if type(to_version) is not int or to_version != from_version + 1:
        raise _SpecError(f"to must be from + 1 = {from_version + 1}", None, "/to")


# -- applying -------------------------------------------------------------------


def _shell(value: Any) -> Any:
    return {} if type(value) is dict else [None] * len(value)


def _copy(value: Any) -> Any:
    """A deep copy of a JSON value (iterative: deep documents must not hit the recursion limit)."""
    if type(value) not in (dict, list, tuple):
        return value
    root = _shell(value)
    stack = [(value, root)]
    while stack:
        src, dst = stack.pop()
        for k, v in src.items() if type(src) is dict else enumerate(src):
            if type(v) in (dict, list, tuple):
                dst[k] = _shell(v)
                stack.append((v, dst[k]))
            else:
                dst[k] = v
    return root


def _parent(doc: Any, path: tuple[str, ...]) -> dict[str, Any] | None:
    """The object holding the last token of `path`, or None when there is none."""
    node = doc
    for token in path[:-1]:
        if type(node) is not dict or token not in node:
            return None
        node = node[token]
    return node if type(node) is dict else None


def _move(doc: dict[str, Any], op: _Op) -> None:
    parent = _parent(doc, op.path)
    if parent is None or op.path[-1] not in parent:
        return
    node: Any = doc  # check the target first: the move either happens whole or raises
    for depth, token in enumerate(op.target[:-1]):
        if token not in node:
            break
        node = node[token]
        if type(node) is not dict:
            raise _Refused(f"cannot move into {_pointer(op.target[: depth + 1])}: not an object")
    value = parent.pop(op.path[-1])
    # Prune the objects on the source side that the move left empty, innermost first.
    for depth in range(len(op.path) - 1, 0, -1):
        holder = _parent(doc, op.path[:depth])
        if holder is None or holder[op.path[depth - 1]]:
            break
        del holder[op.path[depth - 1]]
    node = doc
    for token in op.target[:-1]:
        node = node.setdefault(token, {})
    node[op.target[-1]] = value


def _run(doc: Any, op: _Op) -> None:
    if op.kind == "move":
        _move(doc, op)
        return
    parent = _parent(doc, op.path)
    if parent is None:
        return
    key = op.path[-1]
    if op.kind == "add":
        if key not in parent:
            parent[key] = _copy(op.default)
    elif key not in parent:
        return
    elif op.kind == "rename":
        parent[op.target[-1]] = parent.pop(key)
    elif op.kind == "remove":
        del parent[key]
    else:
        assert op.converter is not None
        try:
            parent[key] = op.converter.convert(parent[key])
        except _Refused as exc:
            raise _Refused(f"{op.converter.name}: {exc}") from None


# -- the public API -------------------------------------------------------------


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
    _ops: tuple[tuple[_Op, ...], tuple[_Op, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        try:
            _check_versions(self.from_version, self.to_version)
            up, up_ops = _compile(self.up, "/up")
            down, down_ops = _compile(self.down, "/down")
        except _SpecError as exc:
            raise _spec_error(exc, None, self.from_version, self.to_version) from None
        object.__setattr__(self, "up", up)
        object.__setattr__(self, "down", down)
        object.__setattr__(self, "_ops", (up_ops, down_ops))

    def apply(self, doc: object, direction: str) -> object:
        """`doc` translated one step "up" (to `to_version`) or "down"; `doc` is not changed."""
        copy = _copy(doc)
        self._apply_in_place(copy, direction, None)
        return copy

    def _apply_in_place(self, doc: Any, direction: str, namespace: str | None) -> None:
        if direction not in ("up", "down"):
            raise ValueError(f"direction must be 'up' or 'down', not {direction!r}")
        ops = self._ops[direction == "down"]
        versions = (self.from_version, self.to_version)
        start, end = versions if direction == "up" else versions[::-1]
        for op in ops:
            try:
                _run(doc, op)
            except _Refused as exc:
                raise InvalidTranslationError(
                    f"{direction} {op.kind}: {exc}",
                    namespace=namespace,
                    from_version=start,
                    to_version=end,
                    op_index=op.index,
                    field=op.pointer,
                ) from None

    def to_json(self) -> dict[str, Any]:
        """The canonical data form, with an explicit `down`."""
        return {
            "format": FORMAT,
            "from": self.from_version,
            "to": self.to_version,
            "up": _copy(list(self.up)),
            "down": _copy(list(self.down)),
        }


def _spec_error(
    exc: _SpecError, namespace: str | None, from_version: object, to_version: object
) -> InvalidTranslationError:
    known = type(from_version) is int and type(to_version) is int
    # The versions are ints when `known`, which mypy cannot relate to the two checks.
    return InvalidTranslationError(
        exc.reason,
        namespace=namespace,
        from_version=from_version if known else None,  # type: ignore[arg-type]
        to_version=to_version if known else None,  # type: ignore[arg-type]
        op_index=exc.index,
        field=exc.where,
    )


def parse_translation(data: object, *, namespace: str | None = None) -> Translation:
    """Validate the JSON form of a translation; derive `down` when it is absent.

    Every error is an `InvalidTranslationError` whose `op_index` is the bad op
    (None for a top-level member) and whose `field` is the JSON Pointer of the
    bad member inside `data` (e.g. "/up/2/converter").
    """
    from_version = to_version = None
    try:
        if type(data) is not dict:
            raise _SpecError("a translation must be a JSON object", None, "")
        for name in data:
            if name not in _TOP_MEMBERS:
                raise _SpecError(f"unknown member {name!r}", None, f"/{name}")
        if data.get("format") != FORMAT:
            raise _SpecError(f"format must be {FORMAT!r}", None, "/format")
        from_version, to_version = data.get("from"), data.get("to")
        _check_versions(from_version, to_version)
        if "up" not in data:
            raise _SpecError("up is required", None, "/up")
        up, _ = _compile(data["up"], "/up")
        down, _ = _compile(data["down"], "/down") if "down" in data else (_derive_down(up), ())
    except _SpecError as exc:
        raise _spec_error(exc, namespace, from_version, to_version) from None
    # _check_versions raised unless both versions are ints.
    return Translation(from_version, to_version, up, down)  # type: ignore[arg-type]


def identity(from_version: int) -> Translation:
    """The translation with no ops, used between versions that registered none."""
    return Translation(from_version, from_version + 1, (), ())


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
    step = 1 if to_version >= from_version else -1
    chain = []
    for version in range(from_version, to_version, step):
        low = version if step == 1 else version - 1
        found = translations.get(low)
        if found is None:
            raise NoTranslationPathError(
                namespace or "",
                from_version,
                [to_version],
                f"no translation is registered between v{low} and v{low + 1}",
            )
        if found.from_version != low:
            raise ValueError(f"translations[{low}] translates from v{found.from_version}")
        chain.append(found)
    result = _copy(doc)
    for found in chain:
        found._apply_in_place(result, "up" if step == 1 else "down", namespace)
    return result
