"""Declarative translations between adjacent schema versions (statesync.contracts.translate).

Behaviour of each op and converter in both directions, the errors a malformed
translation or an unconvertible value gives (op index and field), Hypothesis
round trips (lossless translations are undone by `down`; lossy ones are stable
after one round), multi-step chains, and the language-neutral vectors in
conformance/translate/vectors.json. docs/translations.md is the spec.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from statesync.contracts.translate import (
    CONVERTERS,
    FORMAT,
    Translation,
    identity,
    parse_translation,
    translate,
    translate_json,
)
from statesync.core.canonical import MAX_SAFE_INTEGER, canonical_bytes
from statesync.core.errors import (
    InvalidTranslationError,
    InvalidValueError,
    NoTranslationPathError,
)

ROOT = Path(__file__).resolve().parent.parent
MIN_MS = -62167219200000  # 0000-01-01T00:00:00.000Z
MAX_MS = 253402300799999  # 9999-12-31T23:59:59.999Z


def tr(up: list[Any], down: list[Any] | None = None, *, start: int = 1) -> Translation:
    data: dict[str, Any] = {"format": FORMAT, "from": start, "to": start + 1, "up": up}
    if down is not None:
        data["down"] = down
    return parse_translation(data)


def round_trip(ops: list[Any], doc: Any, expected_up: Any) -> Any:
    """Apply `ops` up, check the result, and return what `down` gives back."""
    before = copy.deepcopy(doc)
    t = tr(ops)
    assert t.apply(doc, "up") == expected_up
    assert doc == before
    return t.apply(expected_up, "down")


def convert(name: str, value: Any) -> Any:
    return CONVERTERS[name].convert(value)


# -- rename ---------------------------------------------------------------------

RENAME = [{"op": "rename", "from": "/name", "to": "/full_name"}]


def test_rename_and_back() -> None:
    doc = {"name": "Ada", "x": 1}
    assert round_trip(RENAME, doc, {"full_name": "Ada", "x": 1}) == doc


def test_rename_of_an_absent_member_is_a_no_op() -> None:
    assert round_trip(RENAME, {"x": 1}, {"x": 1}) == {"x": 1}


def test_rename_inside_a_nested_object() -> None:
    ops = [{"op": "rename", "from": "/a/b", "to": "/a/c"}]
    doc = {"a": {"b": [1, 2], "k": None}}
    assert round_trip(ops, doc, {"a": {"c": [1, 2], "k": None}}) == doc
    assert round_trip(ops, {"a": 5}, {"a": 5}) == {"a": 5}  # no object to rename in


def test_rename_onto_an_existing_member_replaces_it() -> None:
    assert tr(RENAME).apply({"name": "A", "full_name": "B"}, "up") == {"full_name": "A"}


# -- add and remove -------------------------------------------------------------

ADD = [{"op": "add", "path": "/tier", "default": "free"}]


def test_add_sets_the_default_only_when_absent() -> None:
    assert round_trip(ADD, {"x": 1}, {"x": 1, "tier": "free"}) == {"x": 1}
    assert tr(ADD).apply({"tier": "pro"}, "up") == {"tier": "pro"}
    assert tr(ADD).apply({"tier": None}, "up") == {"tier": None}
    assert tr(ADD).down == ({"op": "remove", "path": "/tier", "default": "free"},)


def test_add_never_creates_its_parent() -> None:
    ops = [{"op": "add", "path": "/address/country", "default": "FR"}]
    assert tr(ops).apply({}, "up") == {}
    assert tr(ops).apply({"address": "12 rue"}, "up") == {"address": "12 rue"}
    assert tr(ops).apply({"address": []}, "up") == {"address": []}
    assert tr(ops).apply({"address": {}}, "up") == {"address": {"country": "FR"}}


def test_add_copies_its_default() -> None:
    t = tr([{"op": "add", "path": "/tags", "default": {"list": []}}])
    first = t.apply({}, "up")
    first["tags"]["list"].append("x")  # type: ignore[index]
    assert t.apply({}, "up") == {"tags": {"list": []}}


def test_remove_with_a_default_is_restored_down() -> None:
    ops = [{"op": "remove", "path": "/legacy", "default": 0}]
    assert round_trip(ops, {"legacy": 7, "x": 1}, {"x": 1}) == {"x": 1, "legacy": 0}
    assert round_trip(ops, {"x": 1}, {"x": 1}) == {"x": 1, "legacy": 0}


def test_remove_without_a_default_restores_nothing() -> None:
    ops = [{"op": "remove", "path": "/legacy"}]
    assert tr(ops).down == ()
    assert round_trip(ops, {"legacy": 7}, {}) == {}


def test_remove_keeps_an_emptied_parent() -> None:
    ops = [{"op": "remove", "path": "/a/b", "default": 1}]
    assert round_trip(ops, {"a": {"b": 2}}, {"a": {}}) == {"a": {"b": 1}}
    assert tr(ops).apply({"a": "s"}, "up") == {"a": "s"}


# -- move -----------------------------------------------------------------------

MOVE = [{"op": "move", "from": "/city", "to": "/address/city"}]


def test_move_creates_missing_objects_and_prunes_them_back() -> None:
    doc = {"city": "Paris", "x": 1}
    assert round_trip(MOVE, doc, {"address": {"city": "Paris"}, "x": 1}) == doc
    deep = [{"op": "move", "from": "/a", "to": "/b/c/d/a"}]
    assert round_trip(deep, {"a": 1}, {"b": {"c": {"d": {"a": 1}}}}) == {"a": 1}


def test_move_into_an_existing_object() -> None:
    doc = {"city": "Paris", "address": {"zip": "75001"}}
    expected = {"address": {"zip": "75001", "city": "Paris"}}
    assert round_trip(MOVE, doc, expected) == doc


def test_move_prunes_only_the_ancestors_it_emptied() -> None:
    ops = [{"op": "move", "from": "/a/b/c", "to": "/c"}]
    assert tr(ops).apply({"a": {"b": {"c": 1}}, "x": 0}, "up") == {"x": 0, "c": 1}
    assert tr(ops).apply({"a": {"b": {"c": 1}, "k": 2}}, "up") == {"a": {"k": 2}, "c": 1}
    assert tr(ops).apply({"a": {"b": {"c": 1, "d": 2}}}, "up") == {"a": {"b": {"d": 2}}, "c": 1}


def test_move_between_siblings_keeps_their_parent() -> None:
    ops = [{"op": "move", "from": "/a/b", "to": "/a/c"}]
    assert round_trip(ops, {"a": {"b": 1}}, {"a": {"c": 1}}) == {"a": {"b": 1}}


def test_move_of_an_absent_source_is_a_no_op() -> None:
    assert round_trip(MOVE, {"x": 1}, {"x": 1}) == {"x": 1}
    assert tr(MOVE).apply({"address": {}}, "up") == {"address": {}}


def test_move_onto_an_existing_member_replaces_it() -> None:
    doc = {"city": "Paris", "address": {"city": "Lyon"}}
    assert tr(MOVE).apply(doc, "up") == {"address": {"city": "Paris"}}


def test_an_empty_object_on_the_target_path_is_pruned_on_the_way_back() -> None:
    # The documented limit of the round trip: an empty object is not remembered.
    doc = {"city": "Paris", "address": {}}
    assert round_trip(MOVE, doc, {"address": {"city": "Paris"}}) == {"city": "Paris"}


def test_move_into_a_non_object_raises_and_changes_nothing() -> None:
    doc = {"city": "Paris", "address": "12 rue de Rivoli"}
    before = copy.deepcopy(doc)
    t = tr([{"op": "add", "path": "/x", "default": 1}, *MOVE])
    with pytest.raises(InvalidTranslationError) as info:
        t.apply(doc, "up")
    err = info.value
    assert (err.op_index, err.field, err.from_version, err.to_version) == (1, "/address/city", 1, 2)
    assert "/address" in err.reason
    assert doc == before


def test_pointers_are_unescaped_and_arrays_are_never_indexed() -> None:
    ops = [{"op": "move", "from": "/a~1b", "to": "/m~0n/0"}]
    doc = {"a/b": 1}
    assert round_trip(ops, doc, {"m~n": {"0": 1}}) == doc
    # A token is always a member name: an array on the path means the value is absent.
    rename = [{"op": "rename", "from": "/a/0", "to": "/a/1"}]
    assert tr(rename).apply({"a": ["x", "y"]}, "up") == {"a": ["x", "y"]}
    assert tr(rename).apply({"a": {"0": "x"}}, "up") == {"a": {"1": "x"}}


@pytest.mark.parametrize("doc", [None, 1, "s", [1, {"city": "x"}], True])
def test_a_document_that_is_not_an_object_passes_unchanged(doc: Any) -> None:
    ops = [*RENAME, *ADD, *MOVE, {"op": "convert", "path": "/n", "converter": "int_to_string"}]
    assert tr(ops).apply(doc, "up") == doc
    assert tr(ops).apply(doc, "down") == doc


# -- convert --------------------------------------------------------------------

# (up converter, v1 value, v2 value): lossless on these values.
CONVERSIONS = [
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05.123Z", 1704164645123),
    ("unix_ms_to_rfc3339", 0, "1970-01-01T00:00:00.000Z"),
    ("seconds_to_ms", 1.5, 1500),
    ("ms_to_seconds", 2500, 2.5),
    ("int_to_string", -42, "-42"),
    ("string_to_int", "9007199254740991", MAX_SAFE_INTEGER),
    ("string_to_array", "a", ["a"]),
    ("array_to_string", ["a"], "a"),
]


@pytest.mark.parametrize(("name", "v1", "v2"), CONVERSIONS, ids=[c[0] for c in CONVERSIONS])
def test_convert_up_and_down(name: str, v1: Any, v2: Any) -> None:
    ops = [{"op": "convert", "path": "/a/v", "converter": name}]
    assert tr(ops).down == (
        {"op": "convert", "path": "/a/v", "converter": CONVERTERS[name].inverse},
    )
    assert round_trip(ops, {"a": {"v": v1}}, {"a": {"v": v2}}) == {"a": {"v": v1}}
    assert round_trip(ops, {"a": {}}, {"a": {}}) == {"a": {}}  # absent: a no-op
    assert round_trip(ops, {"v": v1}, {"v": v1}) == {"v": v1}


def test_a_value_that_cannot_be_converted_names_the_op_and_field() -> None:
    ops = [*RENAME, {"op": "convert", "path": "/created", "converter": "rfc3339_to_unix_ms"}]
    with pytest.raises(InvalidTranslationError) as info:
        tr(ops).apply({"created": "not a date"}, "up")
    err = info.value
    assert (err.op_index, err.field, err.from_version, err.to_version) == (1, "/created", 1, 2)
    assert "not a date" in str(err) and "rfc3339_to_unix_ms" in err.reason
    # Down: v2 -> v1, and the index is the op's position in the down list.
    with pytest.raises(InvalidTranslationError) as info:
        tr(ops).apply({"created": "1"}, "down")
    assert (info.value.op_index, info.value.field) == (0, "/created")
    assert (info.value.from_version, info.value.to_version) == (2, 1)


# -- converters -----------------------------------------------------------------

GOOD = [
    ("rfc3339_to_unix_ms", "1970-01-01T00:00:00Z", 0),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05.123Z", 1704164645123),
    ("rfc3339_to_unix_ms", "2024-01-02T04:04:05.123+01:00", 1704164645123),
    ("rfc3339_to_unix_ms", "2024-01-01T22:34:05.123-04:30", 1704164645123),
    ("rfc3339_to_unix_ms", "2024-01-02t03:04:05.123z", 1704164645123),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05.1239999Z", 1704164645123),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05.1Z", 1704164645100),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05-00:00", 1704164645000),
    ("rfc3339_to_unix_ms", "1969-12-31T23:59:59.999Z", -1),
    ("rfc3339_to_unix_ms", "1969-12-31T23:59:59.9999Z", -1),
    ("rfc3339_to_unix_ms", "2000-02-29T00:00:00Z", 951782400000),
    ("rfc3339_to_unix_ms", "2016-12-31T23:59:60Z", 1483228800000),
    ("rfc3339_to_unix_ms", "0000-01-01T00:00:00Z", MIN_MS),
    ("rfc3339_to_unix_ms", "9999-12-31T23:59:59.999Z", MAX_MS),
    ("unix_ms_to_rfc3339", 1704164645123, "2024-01-02T03:04:05.123Z"),
    ("unix_ms_to_rfc3339", 1704164645000.0, "2024-01-02T03:04:05.000Z"),
    ("unix_ms_to_rfc3339", -1, "1969-12-31T23:59:59.999Z"),
    ("unix_ms_to_rfc3339", MIN_MS, "0000-01-01T00:00:00.000Z"),
    ("unix_ms_to_rfc3339", MAX_MS, "9999-12-31T23:59:59.999Z"),
    ("unix_ms_to_rfc3339", 951782400000, "2000-02-29T00:00:00.000Z"),
    ("seconds_to_ms", 1, 1000),
    ("seconds_to_ms", -1.5, -1500),
    ("seconds_to_ms", 0.001, 1),
    ("seconds_to_ms", 0.0005, 0),  # half to even on the decimal 0.5
    ("seconds_to_ms", 0.0015, 2),
    ("seconds_to_ms", 0.0025, 2),
    ("seconds_to_ms", -0.0005, 0),
    ("seconds_to_ms", 1e-7, 0),
    ("seconds_to_ms", 1.0005, 1000),
    ("seconds_to_ms", 2**-10, 1),  # 0.0009765625 exactly: the decimal, not a float product
    # The double nearest 9007199254740.991 prints as 9007199254740.99: that is the value used.
    ("seconds_to_ms", 9007199254740.991, 9007199254740990),
    ("ms_to_seconds", 1000, 1),
    ("ms_to_seconds", 1, 0.001),
    ("ms_to_seconds", -1, -0.001),
    ("ms_to_seconds", 1500.0, 1.5),
    ("ms_to_seconds", MAX_SAFE_INTEGER, 9007199254740.99),
    ("int_to_string", 0, "0"),
    ("int_to_string", -0.0, "0"),
    ("int_to_string", 5.0, "5"),
    ("int_to_string", -MAX_SAFE_INTEGER, "-9007199254740991"),
    ("string_to_int", "0", 0),
    ("string_to_int", "-12", -12),
    ("string_to_array", "", [""]),
    ("array_to_string", ["\u00e9"], "\u00e9"),
]


@pytest.mark.parametrize(
    ("name", "value", "expected"), GOOD, ids=[f"{n}-{v!r}" for n, v, _ in GOOD]
)
def test_converter(name: str, value: Any, expected: Any) -> None:
    result = convert(name, value)
    assert result == expected
    assert type(result) is type(expected)


BAD = [
    ("rfc3339_to_unix_ms", "not a date"),
    ("rfc3339_to_unix_ms", "2024-02-30T00:00:00Z"),
    ("rfc3339_to_unix_ms", "1900-02-29T00:00:00Z"),
    ("rfc3339_to_unix_ms", "2024-13-01T00:00:00Z"),
    ("rfc3339_to_unix_ms", "2024-00-01T00:00:00Z"),
    ("rfc3339_to_unix_ms", "2024-01-01T24:00:00Z"),
    ("rfc3339_to_unix_ms", "2024-01-01T00:60:00Z"),
    ("rfc3339_to_unix_ms", "2024-01-01T00:00:61Z"),
    ("rfc3339_to_unix_ms", "2024-01-01T00:00:00+24:00"),
    ("rfc3339_to_unix_ms", "2024-01-01T00:00:00+01:60"),
    ("rfc3339_to_unix_ms", "2024-01-02 03:04:05Z"),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05"),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05.Z"),
    ("rfc3339_to_unix_ms", "2024-01-02T03:04:05Z\n"),
    ("rfc3339_to_unix_ms", "2024-01-02"),
    ("rfc3339_to_unix_ms", "\u0662\u0660\u0662\u0664-01-02T03:04:05Z"),
    ("rfc3339_to_unix_ms", "0000-01-01T00:00:00+00:01"),
    ("rfc3339_to_unix_ms", "9999-12-31T23:59:60Z"),
    ("rfc3339_to_unix_ms", 1704164645123),
    ("unix_ms_to_rfc3339", MAX_MS + 1),
    ("unix_ms_to_rfc3339", MIN_MS - 1),
    ("unix_ms_to_rfc3339", 1.5),
    ("unix_ms_to_rfc3339", "0"),
    ("unix_ms_to_rfc3339", True),
    ("seconds_to_ms", 9007199254741),
    ("seconds_to_ms", 1e300),
    ("seconds_to_ms", 9007199254741.5),
    ("seconds_to_ms", "1"),
    ("seconds_to_ms", True),
    ("seconds_to_ms", None),
    ("ms_to_seconds", 1.5),
    ("ms_to_seconds", "1000"),
    ("ms_to_seconds", False),
    ("ms_to_seconds", MAX_SAFE_INTEGER + 1),
    ("int_to_string", 1.5),
    ("int_to_string", "5"),
    ("int_to_string", True),
    ("int_to_string", None),
    ("int_to_string", 1e21),
    ("string_to_int", "-0"),
    ("string_to_int", "007"),
    ("string_to_int", "+1"),
    ("string_to_int", " 1"),
    ("string_to_int", "1.0"),
    ("string_to_int", "1e3"),
    ("string_to_int", ""),
    ("string_to_int", "\u0661"),
    ("string_to_int", "9007199254740992"),
    ("string_to_int", "1" * 5000),
    ("string_to_int", 5),
    ("string_to_array", 1),
    ("string_to_array", ["a"]),
    ("string_to_array", None),
    ("array_to_string", []),
    ("array_to_string", ["a", "b"]),
    ("array_to_string", [1]),
    ("array_to_string", "a"),
]


@pytest.mark.parametrize(("name", "value"), BAD, ids=[f"{n}-{v!r:.30}" for n, v in BAD])
def test_converter_refuses(name: str, value: Any) -> None:
    ops = [{"op": "convert", "path": "/v", "converter": name}]
    with pytest.raises(InvalidTranslationError) as info:
        tr(ops).apply({"v": value}, "up")
    assert (info.value.op_index, info.value.field) == (0, "/v")
    assert name in info.value.reason


def test_converters_come_in_inverse_pairs() -> None:
    assert len(CONVERTERS) == 8
    for name, conv in CONVERTERS.items():
        assert conv.name == name
        assert CONVERTERS[conv.inverse].inverse == name
        assert conv.summary


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@settings(max_examples=300, deadline=None)
@given(st.integers(MIN_MS, MAX_MS))
def test_unix_ms_and_rfc3339_agree_with_datetime(ms: int) -> None:
    text = convert("unix_ms_to_rfc3339", ms)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", text)
    assert convert("rfc3339_to_unix_ms", text) == ms
    if ms >= -62135596800000:  # datetime starts at year 1
        reference = _EPOCH + timedelta(milliseconds=ms)
        assert text == reference.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@settings(max_examples=300, deadline=None)
@given(
    st.datetimes(min_value=datetime(2, 1, 1), max_value=datetime(9998, 12, 31)),
    st.integers(-23 * 60 - 59, 23 * 60 + 59),
)
def test_rfc3339_parses_any_offset(local: datetime, offset_min: int) -> None:
    moment = local.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    text = moment.isoformat()  # "+HH:MM" offsets, 0 or 6 fraction digits
    expected = (moment - _EPOCH) // timedelta(milliseconds=1)
    assert convert("rfc3339_to_unix_ms", text) == expected


@settings(max_examples=300, deadline=None)
@given(st.integers(-(1000 * 2**43) + 1, 1000 * 2**43 - 1))
def test_ms_to_seconds_is_undone_below_2_to_the_43_seconds(ms: int) -> None:
    assert convert("seconds_to_ms", convert("ms_to_seconds", ms)) == ms


def test_ms_to_seconds_is_lossy_near_the_top_of_the_range() -> None:
    # Above 2**43 seconds, doubles are 2**-9 apart: coarser than a millisecond.
    seconds = convert("ms_to_seconds", 9007199254540991)
    assert convert("seconds_to_ms", seconds) != 9007199254540991


@settings(max_examples=300, deadline=None)
@given(st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER))
def test_integers_and_strings_round_trip(n: int) -> None:
    assert convert("string_to_int", convert("int_to_string", n)) == n
    assert convert("int_to_string", n) == str(n)


# -- parsing ----------------------------------------------------------------------


def _spec(**members: Any) -> dict[str, Any]:
    return {"format": FORMAT, "from": 1, "to": 2, "up": [], **members}


def _up(*ops: Any) -> dict[str, Any]:
    return _spec(up=list(ops))


_R = {"op": "rename", "from": "/a", "to": "/b"}

# (name, data, op_index, field)
INVALID: list[tuple[str, Any, int | None, str]] = [
    ("not an object", [], None, ""),
    ("unknown top-level member", _spec(extra=1), None, "/extra"),
    ("missing format", {"from": 1, "to": 2, "up": []}, None, "/format"),
    ("unknown format", _spec(format="statesync.translation/2"), None, "/format"),
    ("from is zero", _spec(**{"from": 0, "to": 1}), None, "/from"),
    ("from is a string", _spec(**{"from": "1"}), None, "/from"),
    ("from is a boolean", _spec(**{"from": True}), None, "/from"),
    ("to skips a version", _spec(to=3), None, "/to"),
    ("to goes down", _spec(**{"from": 2, "to": 1}), None, "/to"),
    ("to is missing", {"format": FORMAT, "from": 1, "up": []}, None, "/to"),
    ("up is missing", {"format": FORMAT, "from": 1, "to": 2}, None, "/up"),
    ("up is not an array", _spec(up={"op": "add"}), None, "/up"),
    ("down is not an array", _spec(down=None), None, "/down"),
    ("op is not an object", _up("rename"), 0, "/up/0"),
    ("unknown op", _up(_R, {"op": "copy", "from": "/a", "to": "/b"}), 1, "/up/1/op"),
    ("op member missing", _up({"from": "/a", "to": "/b"}), 0, "/up/0/op"),
    ("op is not a string", _up({"op": ["rename"], "from": "/a", "to": "/b"}), 0, "/up/0/op"),
    ("unknown member", _up({"op": "remove", "path": "/a", "defualt": 0}), 0, "/up/0/defualt"),
    ("required member missing", _up({"op": "rename", "from": "/a"}), 0, "/up/0/to"),
    ("add without default", _up({"op": "add", "path": "/a"}), 0, "/up/0/default"),
    ("pointer is not a string", _up({"op": "remove", "path": ["a"]}), 0, "/up/0/path"),
    ("pointer is the root", _up({"op": "remove", "path": ""}), 0, "/up/0/path"),
    ("pointer without a slash", _up({"op": "remove", "path": "a"}), 0, "/up/0/path"),
    ("pointer with a bad escape", _up({"op": "remove", "path": "/a~2"}), 0, "/up/0/path"),
    ("pointer with a trailing tilde", _up({"op": "remove", "path": "/a~"}), 0, "/up/0/path"),
    (
        "rename across objects",
        _up({"op": "rename", "from": "/a/b", "to": "/c/b"}),
        0,
        "/up/0/to",
    ),
    ("rename to itself", _up({"op": "rename", "from": "/a", "to": "/a"}), 0, "/up/0/to"),
    ("move into itself", _up({"op": "move", "from": "/a", "to": "/a/b"}), 0, "/up/0/to"),
    ("move onto its parent", _up({"op": "move", "from": "/a/b", "to": "/a"}), 0, "/up/0/to"),
    ("move to itself", _up({"op": "move", "from": "/a", "to": "/a"}), 0, "/up/0/to"),
    (
        "unknown converter",
        _up({"op": "convert", "path": "/a", "converter": "to_upper"}),
        0,
        "/up/0/converter",
    ),
    (
        "converter is not a string",
        _up({"op": "convert", "path": "/a", "converter": 5}),
        0,
        "/up/0/converter",
    ),
    (
        "default outside I-JSON",
        _up({"op": "add", "path": "/a", "default": 2**53}),
        0,
        "/up/0/default",
    ),
    (
        "default is not JSON",
        _up({"op": "add", "path": "/a", "default": float("nan")}),
        0,
        "/up/0/default",
    ),
    (
        "bad op in an explicit down",
        _spec(up=[_R], down=[_R, _R, {"op": "add", "path": "/x"}]),
        2,
        "/down/2/default",
    ),
]


@pytest.mark.parametrize(
    ("data", "op_index", "field"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_parse_errors_name_the_op_and_field(data: Any, op_index: int | None, field: str) -> None:
    with pytest.raises(InvalidTranslationError) as info:
        parse_translation(data, namespace="users")
    err = info.value
    assert (err.op_index, err.field, err.namespace) == (op_index, field, "users")
    assert "namespace 'users'" in str(err)
    json.dumps(err.to_dict())


def test_parse_errors_carry_the_versions_when_they_are_valid() -> None:
    with pytest.raises(InvalidTranslationError) as info:
        parse_translation(_spec(**{"from": 4, "to": 5, "up": [{"op": "nope"}]}))
    assert (info.value.from_version, info.value.to_version) == (4, 5)
    with pytest.raises(InvalidTranslationError) as info:
        parse_translation(_spec(**{"from": "x"}))
    assert (info.value.from_version, info.value.to_version) == (None, None)


def test_constructing_a_translation_validates_it() -> None:
    with pytest.raises(InvalidTranslationError, match="from"):
        Translation(0, 1, (), ())
    with pytest.raises(InvalidTranslationError) as info:
        Translation(1, 2, (), ({"op": "nope"},))
    assert (info.value.op_index, info.value.field) == (0, "/down/0/op")


# -- the Translation value --------------------------------------------------------


def test_down_is_the_inverse_of_up_in_reverse_order() -> None:
    t = tr(
        [
            {"op": "rename", "from": "/name", "to": "/full_name"},
            {"op": "add", "path": "/tier", "default": "free"},
            {"op": "remove", "path": "/legacy", "default": 0},
            {"op": "remove", "path": "/gone"},
            {"op": "move", "from": "/city", "to": "/address/city"},
            {"op": "convert", "path": "/created", "converter": "rfc3339_to_unix_ms"},
        ]
    )
    assert t.down == (
        {"op": "convert", "path": "/created", "converter": "unix_ms_to_rfc3339"},
        {"op": "move", "from": "/address/city", "to": "/city"},
        {"op": "add", "path": "/legacy", "default": 0},
        {"op": "remove", "path": "/tier", "default": "free"},
        {"op": "rename", "from": "/full_name", "to": "/name"},
    )


def test_an_explicit_down_is_used_as_written() -> None:
    down = [{"op": "remove", "path": "/tier"}, {"op": "add", "path": "/note", "default": "v2"}]
    t = tr(ADD, down)
    assert t.down == tuple(down)
    assert t.apply({"tier": "pro"}, "down") == {"note": "v2"}
    assert tr(ADD, []).apply({"tier": "pro"}, "down") == {"tier": "pro"}


def test_to_json_is_canonical_and_parses_back() -> None:
    raw = {"op": "remove", "path": "/a", "default": {"k": [1]}}
    t = tr([raw])
    data = t.to_json()
    assert data == {
        "format": FORMAT,
        "from": 1,
        "to": 2,
        "up": [{"op": "remove", "path": "/a", "default": {"k": [1]}}],
        "down": [{"op": "add", "path": "/a", "default": {"k": [1]}}],
    }
    assert parse_translation(data) == t
    assert parse_translation(json.loads(json.dumps(data))) == t
    data["up"][0]["default"]["k"].append(2)  # the copy is the caller's
    raw["default"]["k"].append(3)  # and so is the input
    assert t.up[0]["default"] == {"k": [1]}


def test_identity_changes_nothing_and_copies() -> None:
    t = identity(3)
    assert (t.from_version, t.to_version, t.up, t.down) == (3, 4, (), ())
    doc = {"a": [1, {"b": 2}]}
    out = t.apply(doc, "up")
    assert out == doc and out is not doc and out["a"] is not doc["a"]  # type: ignore[index]


def test_translation_is_frozen_and_direction_is_checked() -> None:
    t = tr(ADD)
    with pytest.raises(dataclasses.FrozenInstanceError):
        t.up = ()  # type: ignore[misc]
    with pytest.raises(ValueError, match="direction"):
        t.apply({}, "sideways")


def test_deep_documents_do_not_hit_the_recursion_limit() -> None:
    doc: Any = {"x": 1}
    for _ in range(5000):
        doc = {"n": doc}
    out = tr(ADD).apply(doc, "up")
    assert out["tier"] == "free"  # type: ignore[index]


# -- translate: chains -------------------------------------------------------------

V1_V2 = tr([{"op": "rename", "from": "/name", "to": "/full_name"}, *MOVE])
V2_V3 = tr(
    [
        {"op": "convert", "path": "/created", "converter": "unix_ms_to_rfc3339"},
        {"op": "move", "from": "/address", "to": "/contact/address"},
    ],
    start=2,
)
CHAIN = {1: V1_V2, 2: V2_V3}


def test_translate_chains_up_and_down() -> None:
    v1 = {"name": "Ada", "city": "London", "created": 0}
    v3 = {
        "full_name": "Ada",
        "created": "1970-01-01T00:00:00.000Z",
        "contact": {"address": {"city": "London"}},
    }
    assert translate(v1, 1, 3, CHAIN) == v3
    assert translate(v3, 3, 1, CHAIN) == v1
    assert translate(v3, 3, 2, CHAIN) == V2_V3.apply(v3, "down")
    assert translate(v1, 1, 2, CHAIN) == V1_V2.apply(v1, "up")
    assert v1 == {"name": "Ada", "city": "London", "created": 0}


def test_translate_to_the_same_version_copies() -> None:
    doc = {"a": {"b": 1}}
    out = translate(doc, 2, 2, {})
    assert out == doc and out is not doc


def test_a_missing_step_raises_before_any_step_runs() -> None:
    with pytest.raises(NoTranslationPathError) as info:
        translate({"created": "not a number"}, 1, 4, CHAIN, namespace="users")
    err = info.value
    assert (err.namespace, err.from_version, err.supported) == ("users", 1, [4])
    assert "v3 and v4" in err.reason
    with pytest.raises(NoTranslationPathError) as info:
        translate({}, 3, 1, {1: V1_V2})
    assert info.value.namespace == "" and "v2 and v3" in info.value.reason


def test_errors_in_a_chain_name_the_namespace_and_the_step() -> None:
    with pytest.raises(InvalidTranslationError) as info:
        translate({"created": "soon"}, 3, 1, CHAIN, namespace="users")
    err = info.value
    assert (err.namespace, err.from_version, err.to_version) == ("users", 3, 2)
    assert (err.op_index, err.field) == (1, "/created")


def test_a_mapping_entry_for_the_wrong_versions_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"translations\[1\]"):
        translate({}, 1, 2, {1: V2_V3})


# -- translate_json: bytes in, canonical bytes out ------------------------------------


def test_translate_json_gives_the_canonical_bytes_of_translate() -> None:
    v1 = {"name": "Ada", "city": "London", "created": 0, "z": [1.5, "\u00e9"]}
    text = json.dumps(v1).encode()
    v3 = translate_json(text, 1, 3, CHAIN)
    assert v3 == canonical_bytes(translate(v1, 1, 3, CHAIN))
    assert translate_json(v3, 3, 1, CHAIN) == canonical_bytes(v1)
    assert translate_json(b'{"b": 1, "a": 2.0}', 2, 2, {}) == b'{"a":2,"b":1}'


def test_translate_json_errors_name_the_namespace_key_and_step() -> None:
    with pytest.raises(InvalidTranslationError) as info:
        translate_json(b'{"created": "soon"}', 3, 1, CHAIN, namespace="users")
    err = info.value
    assert (err.namespace, err.from_version, err.to_version) == ("users", 3, 2)
    assert (err.op_index, err.field) == (1, "/created")
    with pytest.raises(NoTranslationPathError) as missing:
        translate_json(b"{}", 1, 4, CHAIN, namespace="users")
    assert "v3 and v4" in missing.value.reason
    for text in (b'{"a": 9007199254740992}', b'{"a": 1, "a": 2}', b"{"):
        with pytest.raises(InvalidValueError) as bad:
            translate_json(text, 1, 2, CHAIN, namespace="users", key="k1")
        assert (bad.value.namespace, bad.value.key) == ("users", "k1")


def test_a_document_that_is_not_json_is_refused_naming_the_path() -> None:
    with pytest.raises(InvalidValueError) as info:
        tr(ADD).apply({"a": [0, {"b": {1, 2}}]}, "up")
    assert info.value.path == "/a/1/b"
    with pytest.raises(InvalidValueError) as info:
        tr(ADD).apply({"a": {3: "x"}}, "up")
    assert info.value.path == "/a"


def test_a_converter_called_directly_refuses_with_its_name() -> None:
    with pytest.raises(InvalidTranslationError, match="string_to_int") as info:
        convert("string_to_int", "007")
    assert info.value.op_index is None


# -- Hypothesis: round trips ---------------------------------------------------------

# Documents use the member names below; translations put values under fresh
# names ("f0", "f1", ...), which no document holds.
_NAMES = ["a", "b", "c", "s/~"]
_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.floats(-1e15, 1e15, allow_nan=False)
    | st.text(max_size=3)
)
_value = st.recursive(
    _leaf,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(_NAMES), inner, max_size=3)
    ),
    max_leaves=8,
)
# "o" is always a non-empty object when present: moving into it and back is lossless.
_docs = st.fixed_dictionaries(
    {},
    optional={
        **{name: _value for name in _NAMES},
        "o": st.dictionaries(st.sampled_from([*_NAMES, "x"]), _value, min_size=1, max_size=3),
        "x": _value,
        "y": _value,
        "n": st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER),
        "ms": st.integers(MIN_MS, MAX_MS),
        "sec": st.integers(-(10**12), 10**12),
        "tag": st.text(max_size=3),
        "when": st.integers(MIN_MS, MAX_MS).map(lambda ms: convert("unix_ms_to_rfc3339", ms)),
    },
)
# Lossless on the typed members of _docs.
_LOSSLESS_CONVERSIONS = [
    ("/n", "int_to_string"),
    ("/ms", "unix_ms_to_rfc3339"),
    ("/sec", "seconds_to_ms"),
    ("/tag", "string_to_array"),
    ("/when", "rfc3339_to_unix_ms"),
]
_REMOVABLE = [("x",), ("y",), ("o", "x")]
_SOURCES = [(n,) for n in [*_NAMES, "o", "n", "tag"]] + [("a", "b"), ("o", "a"), ("o", "s/~")]


def _ptr(tokens: tuple[str, ...]) -> str:
    return "".join("/" + t.replace("~", "~0").replace("/", "~1") for t in tokens)


@st.composite
def _lossless_ops(draw: st.DrawFn, *, lossy: bool = False) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for path, name in _LOSSLESS_CONVERSIONS:
        if draw(st.booleans()):
            ops.append({"op": "convert", "path": path, "converter": name})
    counter = iter(range(1000))

    def fresh() -> str:
        return f"f{next(counter)}"

    sources = list(_SOURCES)
    parents: list[tuple[str, ...]] = [(), ("o",)]  # objects that are absent or non-empty
    for _ in range(draw(st.integers(0, 6))):
        kinds = ["rename", "move", "add", *(["remove"] if lossy else [])]
        kind = draw(st.sampled_from(kinds))
        if kind == "rename":
            src = draw(st.sampled_from(sources))
            dst = (*src[:-1], fresh())
            ops.append({"op": "rename", "from": _ptr(src), "to": _ptr(dst)})
        elif kind == "move":
            src = draw(st.sampled_from(sources))
            shape = draw(st.sampled_from(["known", "new", "new2", "o-new"]))
            if shape == "known":
                parent = draw(st.sampled_from(parents))
            else:
                parent = {"new": (fresh(),), "new2": (fresh(), fresh()), "o-new": ("o", fresh())}[
                    shape
                ]
                parents.extend(parent[:i] for i in range(1, len(parent) + 1))
            if parent[: len(src)] == src:
                parent = ()
            dst = (*parent, fresh())
            ops.append({"op": "move", "from": _ptr(src), "to": _ptr(dst)})
        elif kind == "add":
            dst = (*draw(st.sampled_from(parents)), fresh())
            ops.append({"op": "add", "path": _ptr(dst), "default": draw(_value)})
        else:
            # Only removes touch these paths: the stability law needs no op to read a
            # path that a remove of the same list restores on the way down.
            path = draw(st.sampled_from(_REMOVABLE))
            remove: dict[str, Any] = {"op": "remove", "path": _ptr(path)}
            if draw(st.booleans()):
                remove["default"] = draw(_value)
            ops.append(remove)
            continue
        sources.append(dst)
    return ops


@settings(max_examples=400, deadline=None)
@given(doc=_docs, ops=_lossless_ops())
def test_lossless_translations_are_undone_by_down(doc: dict[str, Any], ops: list[Any]) -> None:
    before = copy.deepcopy(doc)
    t = tr(ops)
    v2 = t.apply(doc, "up")
    assert t.apply(v2, "down") == doc
    assert doc == before


@settings(max_examples=400, deadline=None)
@given(doc=_docs, ops=_lossless_ops(lossy=True))
def test_lossy_translations_are_stable_after_one_round(doc: dict[str, Any], ops: list[Any]) -> None:
    before = copy.deepcopy(doc)
    t = tr(ops)
    v2 = t.apply(doc, "up")
    assert t.apply(t.apply(v2, "down"), "up") == v2
    assert doc == before


@settings(max_examples=200, deadline=None)
@given(doc=_docs, first=_lossless_ops(), second=_lossless_ops())
def test_chains_v1_v3_v1(doc: dict[str, Any], first: list[Any], second: list[Any]) -> None:
    # The second step sees the first step's output: keep its conversions off.
    second = [op for op in second if op["op"] != "convert"]
    renamed = json.loads(re.sub(r"/f([0-9])", r"/g\1", json.dumps(second)))  # its own names
    chain = {1: tr(first), 2: tr(renamed, start=2)}
    v3 = translate(doc, 1, 3, chain)
    assert translate(v3, 3, 1, chain) == doc
    assert translate(translate(v3, 3, 2, chain), 2, 1, chain) == doc


@settings(max_examples=200, deadline=None)
@given(doc=_value, ops=_lossless_ops(lossy=True))
def test_any_value_is_translated_or_refused_without_mutation(doc: Any, ops: list[Any]) -> None:
    before = copy.deepcopy(doc)
    t = tr(ops)
    for direction in ("up", "down"):
        try:
            out = t.apply(doc, direction)
        except InvalidTranslationError as exc:
            assert exc.op_index is not None and exc.field is not None
        else:
            json.dumps(out, allow_nan=False)
        assert doc == before


# -- conformance vectors ------------------------------------------------------------

VECTORS = json.loads((ROOT / "conformance/translate/vectors.json").read_text(encoding="ascii"))


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=_ids(VECTORS["vectors"]))
def test_vector(vector: dict[str, Any]) -> None:
    t = parse_translation(vector["translation"])
    before = copy.deepcopy(vector["input"])
    assert t.apply(vector["input"], vector["direction"]) == vector["output"]
    assert vector["input"] == before


@pytest.mark.parametrize("vector", VECTORS["failures"], ids=_ids(VECTORS["failures"]))
def test_vector_failure(vector: dict[str, Any]) -> None:
    t = parse_translation(vector["translation"])
    with pytest.raises(InvalidTranslationError) as info:
        t.apply(vector["input"], vector["direction"])
    assert vector["error"] == "InvalidTranslationError"
    assert (info.value.op_index, info.value.field) == (vector["op_index"], vector["field"])


@pytest.mark.parametrize("vector", VECTORS["canonical"], ids=_ids(VECTORS["canonical"]))
def test_vector_canonical(vector: dict[str, Any]) -> None:
    assert parse_translation(vector["translation"]).to_json() == vector["canonical"]
    assert parse_translation(vector["canonical"]).to_json() == vector["canonical"]


@pytest.mark.parametrize("vector", VECTORS["invalid"], ids=_ids(VECTORS["invalid"]))
def test_vector_invalid(vector: dict[str, Any]) -> None:
    with pytest.raises(InvalidTranslationError) as info:
        parse_translation(vector["translation"])
    assert vector["error"] == "InvalidTranslationError"
    assert (info.value.op_index, info.value.field) == (vector["op_index"], vector["field"])


def test_vectors_format_version() -> None:
    assert VECTORS["format_version"] == 1


# -- the spec ---------------------------------------------------------------------


def test_the_spec_documents_every_op_and_converter_and_its_example_runs() -> None:
    text = (ROOT / "docs/translations.md").read_text(encoding="utf-8")
    for name in [*CONVERTERS, "rename", "move", "add", "remove", "convert", FORMAT]:
        assert f"`{name}`" in text
    example = text[text.index("## Worked example") :]
    translation, v1, v2 = (
        json.loads(block) for block in re.findall(r"```json\n(.*?)```", example, re.S)[:3]
    )
    t = parse_translation(translation)
    assert t.apply(v1, "up") == v2
    assert t.apply(v2, "down") == v1
