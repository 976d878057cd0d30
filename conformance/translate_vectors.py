"""Vectors for translations between schema versions (docs/translations.md).

Every expected output below is written by hand; `build()` checks each against
the Python reference (`statesync.contracts.translate`) and stops the generator
on any disagreement, so the file never records a behaviour nobody chose.
conformance/generate.py renders the result into translate/vectors.json.
"""

from __future__ import annotations

from typing import Any

from statesync.contracts.translate import FORMAT, parse_translation
from statesync.core.errors import InvalidTranslationError

FORMAT_VERSION = 1


def _t(up: list[Any], down: list[Any] | None = None, *, start: int = 1) -> dict[str, Any]:
    data: dict[str, Any] = {"format": FORMAT, "from": start, "to": start + 1, "up": up}
    if down is not None:
        data["down"] = down
    return data


def _conv(name: str, path: str = "/v") -> dict[str, Any]:
    return _t([{"op": "convert", "path": path, "converter": name}])


RENAME = _t([{"op": "rename", "from": "/name", "to": "/full_name"}])
NESTED_RENAME = _t([{"op": "rename", "from": "/a/b", "to": "/a/c"}])
ADD = _t([{"op": "add", "path": "/tier", "default": "free"}])
NESTED_ADD = _t([{"op": "add", "path": "/address/country", "default": {"code": "FR"}}])
REMOVE = _t([{"op": "remove", "path": "/legacy", "default": 0}])
REMOVE_NO_DEFAULT = _t([{"op": "remove", "path": "/a/legacy"}])
MOVE = _t([{"op": "move", "from": "/city", "to": "/address/city"}])
MOVE_OUT = _t([{"op": "move", "from": "/a/b/c", "to": "/c"}])
SIBLINGS = _t([{"op": "move", "from": "/a/b", "to": "/a/c"}])
ESCAPED = _t([{"op": "move", "from": "/a~1b", "to": "/m~0n/0"}])
EXAMPLE = _t(
    [
        {"op": "rename", "from": "/name", "to": "/full_name"},
        {"op": "add", "path": "/tier", "default": "free"},
        {"op": "remove", "path": "/legacy", "default": 0},
        {"op": "move", "from": "/city", "to": "/address/city"},
        {"op": "convert", "path": "/created", "converter": "rfc3339_to_unix_ms"},
    ]
)
EXPLICIT_DOWN = _t(
    [{"op": "add", "path": "/tier", "default": "free"}],
    [{"op": "remove", "path": "/tier"}, {"op": "add", "path": "/note", "default": "from v2"}],
)
V2_V3 = _t([{"op": "convert", "path": "/n", "converter": "int_to_string"}], start=2)

# (name, translation, direction, input, output)
VECTORS: list[tuple[str, dict[str, Any], str, Any, Any]] = [
    ("rename", RENAME, "up", {"name": "Ada", "x": 1}, {"full_name": "Ada", "x": 1}),
    ("rename, down", RENAME, "down", {"full_name": "Ada", "x": 1}, {"name": "Ada", "x": 1}),
    ("rename of an absent member", RENAME, "up", {"x": 1}, {"x": 1}),
    (
        "rename replaces an existing target",
        RENAME,
        "up",
        {"name": 1, "full_name": 2},
        {"full_name": 1},
    ),
    (
        "rename inside an object",
        NESTED_RENAME,
        "up",
        {"a": {"b": [1], "k": 0}},
        {"a": {"c": [1], "k": 0}},
    ),
    ("rename under a non-object", NESTED_RENAME, "up", {"a": "b"}, {"a": "b"}),
    ("rename under an array", NESTED_RENAME, "up", {"a": [{"b": 1}]}, {"a": [{"b": 1}]}),
    ("add", ADD, "up", {"x": 1}, {"x": 1, "tier": "free"}),
    ("add keeps a present value", ADD, "up", {"tier": "pro"}, {"tier": "pro"}),
    ("add keeps a present null", ADD, "up", {"tier": None}, {"tier": None}),
    ("add, down removes", ADD, "down", {"tier": "pro", "x": 1}, {"x": 1}),
    (
        "add into an existing object",
        NESTED_ADD,
        "up",
        {"address": {}},
        {"address": {"country": {"code": "FR"}}},
    ),
    ("add never creates its parent", NESTED_ADD, "up", {"x": 1}, {"x": 1}),
    ("add under a non-object", NESTED_ADD, "up", {"address": "12 rue"}, {"address": "12 rue"}),
    ("remove", REMOVE, "up", {"legacy": 7, "x": 1}, {"x": 1}),
    ("remove, down restores the default", REMOVE, "down", {"x": 1}, {"x": 1, "legacy": 0}),
    ("remove, down keeps a present value", REMOVE, "down", {"legacy": 3}, {"legacy": 3}),
    ("remove keeps an emptied parent", REMOVE_NO_DEFAULT, "up", {"a": {"legacy": 1}}, {"a": {}}),
    ("remove without a default, down", REMOVE_NO_DEFAULT, "down", {"a": {}}, {"a": {}}),
    (
        "move creates the target's parents",
        MOVE,
        "up",
        {"city": "Paris"},
        {"address": {"city": "Paris"}},
    ),
    (
        "move, down prunes emptied parents",
        MOVE,
        "down",
        {"address": {"city": "Paris"}},
        {"city": "Paris"},
    ),
    (
        "move into an existing object",
        MOVE,
        "up",
        {"city": "Paris", "address": {"zip": "75001"}},
        {"address": {"zip": "75001", "city": "Paris"}},
    ),
    (
        "move, down keeps a non-empty parent",
        MOVE,
        "down",
        {"address": {"zip": "75001", "city": "Paris"}},
        {"address": {"zip": "75001"}, "city": "Paris"},
    ),
    ("move of an absent source", MOVE, "up", {"x": 1}, {"x": 1}),
    (
        "move replaces an existing target",
        MOVE,
        "up",
        {"city": "Paris", "address": {"city": "Lyon"}},
        {"address": {"city": "Paris"}},
    ),
    (
        "move prunes every emptied level",
        MOVE_OUT,
        "up",
        {"a": {"b": {"c": 1}}, "x": 0},
        {"x": 0, "c": 1},
    ),
    (
        "move prunes up to a non-empty object",
        MOVE_OUT,
        "up",
        {"a": {"b": {"c": 1}, "k": 2}},
        {"a": {"k": 2}, "c": 1},
    ),
    ("move creates every missing level, down", MOVE_OUT, "down", {"c": 1}, {"a": {"b": {"c": 1}}}),
    ("move between siblings", SIBLINGS, "up", {"a": {"b": 1}}, {"a": {"c": 1}}),
    ("move with escaped pointers", ESCAPED, "up", {"a/b": 1}, {"m~n": {"0": 1}}),
    ("a document that is not an object", EXAMPLE, "up", [{"name": "Ada"}], [{"name": "Ada"}]),
    (
        "several ops, up",
        EXAMPLE,
        "up",
        {
            "name": "Ada",
            "legacy": 5,
            "city": "Paris",
            "created": "2024-01-02T04:04:05.123456+01:00",
        },
        {
            "full_name": "Ada",
            "tier": "free",
            "address": {"city": "Paris"},
            "created": 1704164645123,
        },
    ),
    (
        "several ops, down (derived)",
        EXAMPLE,
        "down",
        {"full_name": "Ada", "tier": "pro", "address": {"city": "Paris"}, "created": 1704164645123},
        {"name": "Ada", "legacy": 0, "city": "Paris", "created": "2024-01-02T03:04:05.123Z"},
    ),
    (
        "explicit down is used as written",
        EXPLICIT_DOWN,
        "down",
        {"tier": "pro"},
        {"note": "from v2"},
    ),
    ("convert of an absent member", _conv("int_to_string", "/a/v"), "up", {"a": {}}, {"a": {}}),
    (
        "rfc3339_to_unix_ms, Z",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "1970-01-01T00:00:00Z"},
        {"v": 0},
    ),
    (
        "rfc3339_to_unix_ms, offset",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "2024-01-01T22:34:05.123-04:30"},
        {"v": 1704164645123},
    ),
    (
        "rfc3339_to_unix_ms, lower case t and z",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "2024-01-02t03:04:05.123z"},
        {"v": 1704164645123},
    ),
    (
        "rfc3339_to_unix_ms, digits past ms are dropped",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "1969-12-31T23:59:59.9999Z"},
        {"v": -1},
    ),
    (
        "rfc3339_to_unix_ms, leap second",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "2016-12-31T23:59:60Z"},
        {"v": 1483228800000},
    ),
    (
        "rfc3339_to_unix_ms, year 0",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "0000-01-01T00:00:00Z"},
        {"v": -62167219200000},
    ),
    (
        "unix_ms_to_rfc3339",
        _conv("rfc3339_to_unix_ms"),
        "down",
        {"v": 1704164645123},
        {"v": "2024-01-02T03:04:05.123Z"},
    ),
    (
        "unix_ms_to_rfc3339, before 1970",
        _conv("unix_ms_to_rfc3339"),
        "up",
        {"v": -1},
        {"v": "1969-12-31T23:59:59.999Z"},
    ),
    (
        "unix_ms_to_rfc3339, largest",
        _conv("unix_ms_to_rfc3339"),
        "up",
        {"v": 253402300799999},
        {"v": "9999-12-31T23:59:59.999Z"},
    ),
    ("seconds_to_ms", _conv("seconds_to_ms"), "up", {"v": 1.5}, {"v": 1500}),
    ("seconds_to_ms, half to even down", _conv("seconds_to_ms"), "up", {"v": 0.0005}, {"v": 0}),
    ("seconds_to_ms, half to even up", _conv("seconds_to_ms"), "up", {"v": 0.0015}, {"v": 2}),
    ("seconds_to_ms, decimal value", _conv("seconds_to_ms"), "up", {"v": 1.0005}, {"v": 1000}),
    (
        "seconds_to_ms, shortest decimal",
        _conv("seconds_to_ms"),
        "up",
        {"v": 9007199254740.991},
        {"v": 9007199254740990},
    ),
    ("ms_to_seconds", _conv("seconds_to_ms"), "down", {"v": 1}, {"v": 0.001}),
    ("ms_to_seconds, whole", _conv("ms_to_seconds"), "up", {"v": -3000}, {"v": -3}),
    ("int_to_string", _conv("int_to_string"), "up", {"v": -42}, {"v": "-42"}),
    ("int_to_string, integral float", _conv("int_to_string"), "up", {"v": 5.0}, {"v": "5"}),
    (
        "string_to_int",
        _conv("int_to_string"),
        "down",
        {"v": "9007199254740991"},
        {"v": 9007199254740991},
    ),
    ("string_to_array", _conv("string_to_array"), "up", {"v": "a"}, {"v": ["a"]}),
    ("array_to_string", _conv("string_to_array"), "down", {"v": ["a"]}, {"v": "a"}),
]

# (name, translation, direction, input, op_index, field)
FAILURES: list[tuple[str, dict[str, Any], str, Any, int, str]] = [
    ("not a date", EXAMPLE, "up", {"created": "not a date"}, 4, "/created"),
    ("February 30", _conv("rfc3339_to_unix_ms"), "up", {"v": "2024-02-30T00:00:00Z"}, 0, "/v"),
    ("no offset", _conv("rfc3339_to_unix_ms"), "up", {"v": "2024-01-02T03:04:05"}, 0, "/v"),
    (
        "a date before year 0",
        _conv("rfc3339_to_unix_ms"),
        "up",
        {"v": "0000-01-01T00:00:00+00:01"},
        0,
        "/v",
    ),
    ("ms after year 9999", _conv("unix_ms_to_rfc3339"), "up", {"v": 253402300800000}, 0, "/v"),
    ("ms that are not an integer", _conv("unix_ms_to_rfc3339"), "up", {"v": 1.5}, 0, "/v"),
    ("a string is not seconds", _conv("seconds_to_ms"), "up", {"v": "1"}, 0, "/v"),
    ("ms beyond the I-JSON range", _conv("seconds_to_ms"), "up", {"v": 9007199254741}, 0, "/v"),
    ("a boolean is not an integer", _conv("int_to_string"), "up", {"v": True}, 0, "/v"),
    ("leading zeros", _conv("string_to_int"), "up", {"v": "007"}, 0, "/v"),
    ("minus zero", _conv("string_to_int"), "up", {"v": "-0"}, 0, "/v"),
    (
        "an integer string beyond the I-JSON range",
        _conv("string_to_int"),
        "up",
        {"v": "9007199254740992"},
        0,
        "/v",
    ),
    ("two elements", _conv("array_to_string"), "up", {"v": ["a", "b"]}, 0, "/v"),
    ("down names its own op index", EXAMPLE, "down", {"created": "soon"}, 0, "/created"),
    (
        "move into a non-object",
        MOVE,
        "up",
        {"city": "Paris", "address": "12 rue"},
        0,
        "/address/city",
    ),
]

_R = {"op": "rename", "from": "/a", "to": "/b"}


def _spec(**members: Any) -> dict[str, Any]:
    return {**_t([]), **members}


# (name, translation, op_index, field)
INVALID: list[tuple[str, Any, int | None, str]] = [
    ("not an object", [], None, ""),
    ("unknown top-level member", _spec(extra=1), None, "/extra"),
    ("unknown format", _spec(format="statesync.translation/2"), None, "/format"),
    ("from is zero", _spec(**{"from": 0, "to": 1}), None, "/from"),
    ("to is not from + 1", _spec(to=3), None, "/to"),
    ("up is missing", {"format": FORMAT, "from": 1, "to": 2}, None, "/up"),
    ("unknown op", _t([_R, {"op": "copy", "from": "/a", "to": "/b"}]), 1, "/up/1/op"),
    ("unknown member", _t([{"op": "remove", "path": "/a", "defualt": 0}]), 0, "/up/0/defualt"),
    ("missing member", _t([{"op": "add", "path": "/a"}]), 0, "/up/0/default"),
    ("pointer is the root", _t([{"op": "remove", "path": ""}]), 0, "/up/0/path"),
    ("pointer without a leading slash", _t([{"op": "remove", "path": "a"}]), 0, "/up/0/path"),
    ("pointer with a bad escape", _t([{"op": "remove", "path": "/a~2"}]), 0, "/up/0/path"),
    ("rename across objects", _t([{"op": "rename", "from": "/a/b", "to": "/c/b"}]), 0, "/up/0/to"),
    ("move into itself", _t([{"op": "move", "from": "/a", "to": "/a/b"}]), 0, "/up/0/to"),
    (
        "unknown converter",
        _t([{"op": "convert", "path": "/a", "converter": "to_upper"}]),
        0,
        "/up/0/converter",
    ),
    (
        "default outside I-JSON",
        _t([{"op": "add", "path": "/a", "default": 2**53}]),
        0,
        "/up/0/default",
    ),
    ("bad op in an explicit down", _t([_R], [_R, {"op": "move", "from": "/b"}]), 1, "/down/1/to"),
]

# (name, translation, its derived or explicit `down`): the canonical form is the
# translation with its ops' members in the order op, from/to/path, default/converter.
CANONICAL: list[tuple[str, dict[str, Any], list[Any]]] = [
    (
        "several ops",
        EXAMPLE,
        [
            {"op": "convert", "path": "/created", "converter": "unix_ms_to_rfc3339"},
            {"op": "move", "from": "/address/city", "to": "/city"},
            {"op": "add", "path": "/legacy", "default": 0},
            {"op": "remove", "path": "/tier", "default": "free"},
            {"op": "rename", "from": "/full_name", "to": "/name"},
        ],
    ),
    ("remove without a default has no inverse", REMOVE_NO_DEFAULT, []),
    ("explicit down", EXPLICIT_DOWN, EXPLICIT_DOWN["down"]),
    ("from v2", V2_V3, [{"op": "convert", "path": "/n", "converter": "string_to_int"}]),
]


def _check(condition: bool, name: str) -> None:
    if not condition:  # pragma: no cover - a broken vector table or reference
        raise SystemExit(f"translation vector {name!r} disagrees with the reference")


def _failure(name: str, data: Any, apply: tuple[str, Any] | None) -> InvalidTranslationError:
    try:
        translation = parse_translation(data)
        if apply is not None:
            translation.apply(apply[1], apply[0])
    except InvalidTranslationError as exc:
        return exc
    raise SystemExit(f"translation vector {name!r} did not fail")  # pragma: no cover


def build() -> dict[str, Any]:
    vectors = []
    for name, data, direction, doc, output in VECTORS:
        _check(parse_translation(data).apply(doc, direction) == output, name)
        vectors.append(
            {
                "name": name,
                "translation": data,
                "direction": direction,
                "input": doc,
                "output": output,
            }
        )
    failures = []
    for name, data, direction, doc, index, field in FAILURES:
        exc = _failure(name, data, (direction, doc))
        _check((exc.op_index, exc.field) == (index, field), name)
        failures.append(
            {
                "name": name,
                "translation": data,
                "direction": direction,
                "input": doc,
                "error": "InvalidTranslationError",
                "op_index": index,
                "field": field,
            }
        )
    invalid = []
    for name, data, index, field in INVALID:
        exc = _failure(name, data, None)
        _check((exc.op_index, exc.field) == (index, field), name)
        invalid.append(
            {
                "name": name,
                "translation": data,
                "error": "InvalidTranslationError",
                "op_index": index,
                "field": field,
            }
        )
    canonical = []
    for name, data, down in CANONICAL:
        expected = {**data, "down": down}
        _check(parse_translation(data).to_json() == expected, name)
        canonical.append({"name": name, "translation": data, "canonical": expected})
    return {
        "description": "Translations between schema versions (docs/translations.md); "
        "see conformance/README.md",
        "format_version": FORMAT_VERSION,
        "vectors": vectors,
        "failures": failures,
        "invalid": invalid,
        "canonical": canonical,
    }
