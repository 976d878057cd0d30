"""Vectors for JSON Patch application (RFC 6902, as statesync applies it strictly).

Every expected result and error below is written by hand; `build()` checks each
against statesync's implementation (the native core, crates/core/src/patch.rs,
through its binding) and stops the generator on any disagreement, so the file
never records a behaviour nobody chose. Expected canonical bytes come from
`rfc8785`. conformance/generate.py renders the result into patch/vectors.json.
"""

from __future__ import annotations

from typing import Any

import rfc8785

import statesync._native as _native

FORMAT_VERSION = 1
_NO_LIMIT = 1 << 62

DOC: dict[str, Any] = {"a": [1, 2, 3], "o": {"k": "v"}, "n": 1, "s": "text", "t": True}


def _op(op: str, path: str, **members: Any) -> dict[str, Any]:
    return {"op": op, "path": path, **members}


# (name, document, patch, expected result)
VECTORS: list[tuple[str, Any, Any, Any]] = [
    ("empty patch", DOC, [], DOC),
    ("add a member", {"a": 1}, [_op("add", "/b", value=2)], {"a": 1, "b": 2}),
    ("add replaces an existing member", {"a": 1}, [_op("add", "/a", value=[1])], {"a": [1]}),
    ("add 1.0 gives 1", {}, [_op("add", "/n", value=1.0)], {"n": 1}),
    ("add -0.0 gives 0", {}, [_op("add", "/n", value=-0.0)], {"n": 0}),
    ("add 100e-2 gives 1", {}, [_op("add", "/n", value=100e-2)], {"n": 1}),
    ("add 1e21 keeps its exponent", {}, [_op("add", "/n", value=1e21)], {"n": 1e21}),
    ("add inserts into an array", {"a": [1, 3]}, [_op("add", "/a/1", value=2)], {"a": [1, 2, 3]}),
    ("add at the array length appends", [1], [_op("add", "/1", value=2)], [1, 2]),
    (
        "add with - appends",
        {"a": [1]},
        [_op("add", "/a/-", value={"x": None})],
        {"a": [1, {"x": None}]},
    ),
    ("add the whole document", {"a": 1}, [_op("add", "", value=[True])], [True]),
    ("replace the whole document with a scalar", {"a": 1}, [_op("replace", "", value="s")], "s"),
    ("remove a member", {"a": 1, "b": 2}, [_op("remove", "/a")], {"b": 2}),
    ("remove an array element", {"a": [1, 2, 3]}, [_op("remove", "/a/1")], {"a": [1, 3]}),
    ("remove the last array element", {"a": [1]}, [_op("remove", "/a/0")], {"a": []}),
    ("replace a member", DOC, [_op("replace", "/o/k", value=None)], {**DOC, "o": {"k": None}}),
    ("replace an array element", {"a": [1, 2]}, [_op("replace", "/a/1", value=[])], {"a": [1, []]}),
    (
        "move a member (RFC 6902 A.6)",
        {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
        [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
        {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
    ),
    (
        "move an array element forward (RFC 6902 A.7)",
        {"foo": ["all", "grass", "cows", "eat"]},
        [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
        {"foo": ["all", "cows", "eat", "grass"]},
    ),
    (
        "move an array element back",
        {"a": [1, 2, 3]},
        [{"op": "move", "from": "/a/2", "path": "/a/0"}],
        {"a": [3, 1, 2]},
    ),
    (
        "move from an array into an object",
        {"a": [1, {"x": 2}], "o": {}},
        [{"op": "move", "from": "/a/1", "path": "/o/y"}],
        {"a": [1], "o": {"y": {"x": 2}}},
    ),
    ("move onto itself changes nothing", DOC, [{"op": "move", "from": "/o", "path": "/o"}], DOC),
    ("move the whole document onto itself", DOC, [{"op": "move", "from": "", "path": ""}], DOC),
    ("move a member to the root", DOC, [{"op": "move", "from": "/o", "path": ""}], {"k": "v"}),
    (
        "copy a member",
        {"a": {"b": [1]}},
        [{"op": "copy", "from": "/a/b", "path": "/c"}],
        {"a": {"b": [1]}, "c": [1]},
    ),
    (
        "copy the whole document into a member",
        {"a": 1},
        [{"op": "copy", "from": "", "path": "/b"}],
        {"a": 1, "b": {"a": 1}},
    ),
    ("copy a member to the root", DOC, [{"op": "copy", "from": "/a", "path": ""}], [1, 2, 3]),
    ("test: 1 equals 1.0", DOC, [_op("test", "/n", value=1.0)], DOC),
    (
        "test: members in any order",
        {"o": {"a": 1, "b": 2}},
        [_op("test", "/o", value={"b": 2, "a": 1})],
        {"o": {"a": 1, "b": 2}},
    ),
    ("test the whole document", DOC, [_op("test", "", value=DOC)], DOC),
    (
        "escaped pointer tokens",
        {"a/b": 1, "m~n": 2, "~1": 3},
        [_op("replace", "/a~1b", value=4), _op("remove", "/m~0n"), _op("replace", "/~01", value=5)],
        {"a/b": 4, "~1": 5},
    ),
    ("the empty member name", {"": 1}, [_op("replace", "/", value=2)], {"": 2}),
    (
        "numeric member names are names",
        {"0": 1, "01": 2},
        [_op("replace", "/01", value=3)],
        {"0": 1, "01": 3},
    ),
    ("- is a member name in an object", {"-": 1}, [_op("replace", "/-", value=2)], {"-": 2}),
    (
        "each op sees the result of the ops before it",
        {},
        [_op("add", "/a", value={}), _op("add", "/a/b", value=[1]), _op("test", "/a/b/0", value=1)],
        {"a": {"b": [1]}},
    ),
    (
        "non-ASCII member names",
        {"\u00e9": 1},
        [_op("add", "/\u20ac", value="\U0001f600"), _op("remove", "/\u00e9")],
        {"\u20ac": "\U0001f600"},
    ),
    ("members an op does not need are ignored", {"a": 1}, [_op("remove", "/a", value=2, x=[])], {}),
]

# (name, document, patch, error kind, op index)
FAILURES: list[tuple[str, Any, Any, str, int | None]] = [
    ("a patch is an array", DOC, _op("add", "/a", value=1), "not_an_array", None),
    ("a patch is not a string", DOC, "[]", "not_an_array", None),
    ("an op is an object", DOC, ["add"], "not_an_object", 0),
    ("unknown op", DOC, [_op("frob", "/a")], "unknown_op", 0),
    ("op missing", DOC, [{"path": "/a", "value": 1}], "unknown_op", 0),
    ("op is not a string", DOC, [{"op": 1, "path": "/a"}], "unknown_op", 0),
    ("path missing", DOC, [{"op": "remove"}], "bad_pointer", 0),
    ("path is not a string", DOC, [{"op": "remove", "path": 5}], "bad_pointer", 0),
    ("path without a leading slash", DOC, [_op("add", "a", value=1)], "bad_pointer", 0),
    ("invalid escape ~2", DOC, [_op("replace", "/a~2", value=1)], "bad_pointer", 0),
    ("dangling ~", DOC, [_op("remove", "/a~")], "bad_pointer", 0),
    (
        "invalid escape in from",
        DOC,
        [{"op": "copy", "from": "/a~2", "path": "/x"}],
        "bad_pointer",
        0,
    ),
    ("add needs a value", DOC, [_op("add", "/x")], "missing_member", 0),
    ("test needs a value", DOC, [_op("test", "/n")], "missing_member", 0),
    ("move needs from", DOC, [_op("move", "/x")], "missing_member", 0),
    (
        "a malformed op is refused before any op applies",
        DOC,
        [_op("test", "/n", value=2), _op("add", "/x")],
        "missing_member",
        1,
    ),
    ("replace a missing member", DOC, [_op("replace", "/missing", value=1)], "not_found", 0),
    ("remove a missing member", DOC, [_op("remove", "/missing")], "not_found", 0),
    ("remove under a missing parent", DOC, [_op("remove", "/o/x/y")], "not_found", 0),
    ("remove past the end of an array", DOC, [_op("remove", "/a/3")], "not_found", 0),
    ("remove -", DOC, [_op("remove", "/a/-")], "not_found", 0),
    ("add past the end of an array", DOC, [_op("add", "/a/4", value=1)], "not_found", 0),
    ("add at an index with a leading zero", DOC, [_op("add", "/a/01", value=1)], "not_found", 0),
    ("add at a negative index", DOC, [_op("add", "/a/-1", value=1)], "not_found", 0),
    ("add inside a number", DOC, [_op("add", "/n/x", value=1)], "not_found", 0),
    ("add under a missing parent", DOC, [_op("add", "/no/x", value=1)], "not_found", 0),
    ("- inside a pointer", DOC, [_op("add", "/a/-/x", value=1)], "not_found", 0),
    ("replace -", DOC, [_op("replace", "/a/-", value=1)], "not_found", 0),
    ("replace past the end of an array", DOC, [_op("replace", "/a/3", value=1)], "not_found", 0),
    ("a pointer never steps into a string", DOC, [_op("remove", "/s/0")], "not_found", 0),
    (
        "copy from inside a string",
        DOC,
        [{"op": "copy", "from": "/s/0", "path": "/x"}],
        "not_found",
        0,
    ),
    (
        "copy from a missing member",
        DOC,
        [{"op": "copy", "from": "/zz", "path": "/x"}],
        "not_found",
        0,
    ),
    ("move from -", DOC, [{"op": "move", "from": "/a/-", "path": "/x"}], "not_found", 0),
    ("remove the whole document", DOC, [_op("remove", "")], "conflict", 0),
    (
        "move into its own child",
        DOC,
        [{"op": "move", "from": "/o", "path": "/o/k2"}],
        "conflict",
        0,
    ),
    (
        "move the whole document into a member",
        DOC,
        [{"op": "move", "from": "", "path": "/x"}],
        "conflict",
        0,
    ),
    ("test: true is not 1", DOC, [_op("test", "/t", value=1)], "test_failed", 0),
    ("test: 1 is not true", DOC, [_op("test", "/n", value=True)], "test_failed", 0),
    ('test: 1 is not "1"', DOC, [_op("test", "/n", value="1")], "test_failed", 0),
    ("test: arrays of another length", DOC, [_op("test", "/a", value=[1, 2])], "test_failed", 0),
    (
        "test: an object with another member",
        DOC,
        [_op("test", "/o", value={"k": "v", "x": 1})],
        "test_failed",
        0,
    ),
    ("test: a missing member", DOC, [_op("test", "/missing", value=None)], "test_failed", 0),
    ("test: inside a string", DOC, [_op("test", "/s/0", value="t")], "test_failed", 0),
    (
        "the failing op is named after the ops that applied",
        DOC,
        [_op("replace", "/n", value=2), _op("add", "/b", value=1), _op("test", "/n", value=1)],
        "test_failed",
        2,
    ),
    (
        "a result nesting deeper than 128 levels",
        {},
        [{"op": "copy", "from": "", "path": "/a"}] * 128,
        "too_deep",
        127,
    ),
]


def _check(condition: bool, name: str) -> None:
    if not condition:  # pragma: no cover - a broken vector table
        raise SystemExit(f"patch vector {name!r} disagrees with the implementation")


def _apply(document: Any, patch: Any) -> bytes:
    checked = _native.check_patch(patch)
    return _native.apply_patch(_native.canonical_bytes(document), checked, _NO_LIMIT)


def build() -> dict[str, Any]:
    vectors = []
    for name, document, patch, expected in VECTORS:
        canonical = rfc8785.dumps(expected)
        _check(_apply(document, patch) == canonical, name)
        vectors.append(
            {
                "name": name,
                "document": document,
                "patch": patch,
                "canonical": canonical.decode("utf-8"),
            }
        )
    failures = []
    for name, document, patch, kind, index in FAILURES:
        try:
            _apply(document, patch)
        except _native.PatchRefused as exc:
            _check(exc.args[:2] == (kind, index), name)
        else:  # pragma: no cover - a broken vector table
            raise SystemExit(f"patch vector {name!r} applied without error")
        failures.append(
            {"name": name, "document": document, "patch": patch, "error": kind, "op_index": index}
        )
    return {
        "description": "JSON Patch (RFC 6902) applied strictly; see conformance/README.md",
        "format_version": FORMAT_VERSION,
        "vectors": vectors,
        "failures": failures,
    }
