"""The native JSON Patch engine against an independent one, and its Python edge.

`jsonpatch` (a test dependency only) is the reference model: on generated
documents and patches, valid or not, statesync's strict application succeeds
exactly when jsonpatch's does and gives the same value; the deltas the
controller makes apply with jsonpatch too. The conformance vectors
(conformance/patch) pin the exact outcomes; tests/test_errors.py the errors a
writer sees.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
import rfc8785
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from patching import apply_patch

import statesync._native as _native
from statesync.core.canonical import MAX_SAFE_INTEGER, canonical_bytes, json_equal, pointer
from statesync.core.commands import Command, Limits, Patch, check
from statesync.core.digest import value_hash
from statesync.core.errors import InvalidPatchError, InvalidValueError, ValueTooLargeError

_LIMITS = Limits(max_value_bytes=1 << 30)

# Member names from a small alphabet, so that pointers often name existing
# members, and escapes and index-like names occur.
_names = st.text(alphabet="ab~/0-", max_size=3)
_floats = st.floats(allow_nan=False, allow_infinity=False).filter(
    lambda f: not MAX_SAFE_INTEGER < abs(f) < 1e21
)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-3, 3)
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e21])
    | _floats
    | st.text(alphabet="ab", max_size=2)
)
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_names, inner, max_size=4),
    max_leaves=10,
)


def _locations(doc: Any, at: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    out = [at]
    if isinstance(doc, list):
        for i, item in enumerate(doc):
            out += _locations(item, (*at, i))
    elif isinstance(doc, dict):
        for key, item in doc.items():
            out += _locations(item, (*at, key))
    return out


@st.composite
def _pointers(draw: st.DrawFn, doc: Any) -> str:
    """An existing location, often with one more step: a new member, the end of
    an array, an index past it, a non-canonical index."""
    tokens = list(draw(st.sampled_from(_locations(doc))))
    extra = draw(st.none() | st.sampled_from(["-", "9", "01", "0"]) | _names)
    if extra is not None:
        tokens.append(extra)
    return pointer(tokens)


@st.composite
def _patches(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    # The reference (jsonpatch) takes container documents only: it refuses None
    # and reads a str document as JSON text.
    doc = draw(st.lists(_values, max_size=4) | st.dictionaries(_names, _values, max_size=4))
    ops = []
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["add", "remove", "replace", "move", "copy", "test"]))
        op: dict[str, Any] = {"op": kind, "path": draw(_pointers(doc))}
        if kind in ("move", "copy"):
            op["from"] = draw(_pointers(doc))
        elif kind != "remove":
            # A test usually checks the value that is there.
            op["value"] = draw(_values | st.sampled_from([v for _, v in _walk(doc)]))
        ops.append(op)
    return doc, ops


def _walk(doc: Any) -> list[tuple[tuple[str | int, ...], Any]]:
    out = []
    for at in _locations(doc):
        node = doc
        for token in at:
            node = node[token]
        out.append((at, node))
    return out


def _native_apply(doc: Any, patch: list[dict[str, Any]]) -> bytes | None:
    try:
        return apply_patch("ns", "k", canonical_bytes(doc), patch, _LIMITS)
    except InvalidPatchError:
        return None


def _steps_into_a_string(doc: Any, pointer: str, *, parent: bool) -> bool:
    """Does `pointer` (or its parent) go through a string? A JSON Pointer never
    can; jsonpatch indexes into strings, so such ops are refusals here."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in pointer.split("/")[1:]]
    node = doc
    for token in tokens[:-1] if parent else tokens:
        if isinstance(node, str):
            return True
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False  # a missing step: jsonpatch refuses it itself
    return False


class _NoReference(Exception):
    """jsonpatch is no reference for this op (see where it is raised)."""


def _dash_member(doc: Any, pointer: str) -> bool:
    """Does `pointer` name a member "-" of an object? jsonpatch treats "-" as
    the end of an array even in objects (RFC 6902 gives it no meaning there)."""
    if not pointer.endswith("/-"):
        return False
    parent = pointer[: -len("/-")]
    node = doc
    for token in [t.replace("~1", "/").replace("~0", "~") for t in parent.split("/")[1:]]:
        if isinstance(node, dict) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return False
    return isinstance(node, dict)


def _reference_apply(doc: Any, patch: list[dict[str, Any]]) -> bytes | None:
    result = copy.deepcopy(doc)
    for op in patch:
        if _dash_member(result, op["path"]) or _dash_member(result, op.get("from", "")):
            raise _NoReference
        if op["op"] == "move" and op["path"].startswith(op["from"] + "/"):
            raise _NoReference  # jsonpatch moves a value into its own child; RFC 6902 refuses
        if _steps_into_a_string(result, op["path"], parent=True) or (
            "from" in op and _steps_into_a_string(result, op["from"], parent=False)
        ):
            return None
        try:
            result = jsonpatch.JsonPatch([copy.deepcopy(op)]).apply(result)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException):
            return None
        except TypeError:  # jsonpatch crashes where it should refuse: a 'from' of "/-"
            return None
    return rfc8785.dumps(result)


def _touches_the_root(patch: list[dict[str, Any]]) -> bool:
    # jsonpatch is no reference for whole-document ops: it crashes on an `add`
    # at the root of an array and refuses a `move` from the root to itself.
    # They are covered by conformance/patch/vectors.json instead.
    return any(op["path"] == "" or op.get("from") == "" for op in patch)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_patches())
def test_native_application_agrees_with_jsonpatch(case: tuple[Any, list[dict[str, Any]]]) -> None:
    doc, patch = case
    assume(not _touches_the_root(patch))
    try:
        expected = _reference_apply(doc, patch)
    except _NoReference:
        assume(False)
    assert _native_apply(doc, patch) == expected


@settings(max_examples=300, deadline=None)
@given(_values, _values)
def test_deltas_apply_with_jsonpatch_too(old: Any, new: Any) -> None:
    old_b, new_b = canonical_bytes(old), canonical_bytes(new)
    delta = _native.make_delta(old_b, new_b)  # as the sync hub makes them
    if delta is not None:
        result = jsonpatch.apply_patch(copy.deepcopy(old), _native.parse_json(delta))
        assert rfc8785.dumps(result) == new_b
        assert _native.apply_delta(old_b, delta, value_hash(new_b)) == new_b


@settings(max_examples=300, deadline=None)
@given(_values, _values)
def test_json_equality_is_equality_of_canonical_bytes(a: Any, b: Any) -> None:
    assert json_equal(a, copy.deepcopy(a))
    assert json_equal(a, b) == (canonical_bytes(a) == canonical_bytes(b))


def test_json_equality() -> None:
    assert json_equal(1, 1.0) and json_equal({"a": [1, 2.5]}, {"a": [1.0, 2.5]})
    assert not json_equal(True, 1) and not json_equal(0, False) and not json_equal(None, 0)
    with pytest.raises(InvalidValueError):
        json_equal(float("nan"), 1)


@settings(max_examples=200, deadline=None)
@given(_floats.filter(lambda f: not f.is_integer() or abs(f) >= 1e21))
def test_a_failed_test_shows_the_value_as_python_does(value: float) -> None:
    patch = [{"op": "test", "path": "/n", "value": {"x": [value, None, True, "it's"]}}]
    with pytest.raises(InvalidPatchError) as info:
        apply_patch("ns", "k", b'{"n":1}', patch, _LIMITS)
    shown = {"x": [value, None, True, "it's"]}
    assert info.value.reason == f"test failed: value at '/n' is not {shown!r}"


def test_refusals_name_namespace_key_op_and_path() -> None:
    with pytest.raises(InvalidPatchError) as info:
        apply_patch("ns", "k", b'{"a":{}}', [{"op": "remove", "path": "/a/zz"}], _LIMITS)
    err = info.value
    assert (err.namespace, err.key, err.op_index, err.path) == ("ns", "k", 0, "/a/zz")
    assert err.reason == "can't remove a non-existent object 'zz'"


def test_a_bad_value_is_reported_after_the_shape_of_its_op() -> None:
    bad = float("nan")
    with pytest.raises(InvalidPatchError, match="unknown patch op 'frob'"):
        check(Command([Patch("ns", "k", [{"op": "frob", "path": "/a", "value": bad}])]))
    with pytest.raises(InvalidPatchError) as info:
        check(Command([Patch("ns", "k", [{"op": "add", "path": "/a", "value": [1, bad]}])]))
    assert (info.value.op_index, info.value.path) == (0, "/a")
    assert info.value.reason.startswith("bad 'value' (at /1): ")


def test_a_patch_too_deep_for_canonical_bytes_is_refused_with_its_op() -> None:
    deep: Any = []
    for _ in range(127):
        deep = [deep]
    patch = [{"op": "add", "path": "/a", "value": 1}, {"op": "add", "path": "/x", "value": deep}]
    with pytest.raises(InvalidPatchError) as info:
        check(Command([Patch("ns", "k", patch)]))
    assert info.value.op_index == 1
    assert "nest deeper than 128 levels" in info.value.reason


def test_the_size_limit_applies_to_the_result() -> None:
    patch = [{"op": "add", "path": "/s", "value": "x" * 20}]
    with pytest.raises(ValueTooLargeError) as info:
        apply_patch("ns", "k", b"{}", patch, Limits(max_value_bytes=20))
    assert (info.value.namespace, info.value.key, info.value.size, info.value.limit) == (
        "ns",
        "k",
        len(canonical_bytes({"s": "x" * 20})),
        20,
    )


def test_a_delta_that_does_not_apply_is_a_mismatch() -> None:
    base = canonical_bytes({"a": 1})
    for delta, why in [
        (b'[{"op": "remove", "path": "/zz"}]', "non-existent object 'zz'"),
        (b'{"op": "remove"}', "array of ops"),
        (b"[nope", "malformed JSON"),
    ]:
        with pytest.raises((_native.PatchRefused, _native.ValueRefused)) as info:
            _native.apply_delta(base, delta, value_hash(base))
        assert why in str(info.value)
