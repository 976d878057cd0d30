"""The three-way JSON merge behind the `merge` conflict policy.

Unit cases pin each rule of statesync.core.merge; Hypothesis properties check
that merging never loses an edit the other side did not touch, that the merge
is symmetric in its two sides, and that identical changes never conflict.
Edits in the properties address object members only: arrays are atomic, so
edits to different elements of one array are, by design, overlapping edits.
"""

from __future__ import annotations

import copy
import json
import pickle
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from statesync.core.canonical import json_equal
from statesync.core.merge import MISSING, MergeConflict, MergeResult, merge3

MAX_SAFE = 2**53 - 1


def paths(result: MergeResult) -> list[str]:
    return [c.path for c in result.conflicts]


def same(a: object, b: object) -> bool:
    """JSON equality, where MISSING equals only itself."""
    return a is b if MISSING in (a, b) else json_equal(a, b)


def assert_clean(result: MergeResult, expected: object) -> None:
    assert result.clean, result.conflicts
    assert result.conflicts == ()
    assert json_equal(result.value, expected), (result.value, expected)


# --- the three short-cut rules ------------------------------------------------


def test_writer_unchanged_takes_current() -> None:
    assert_clean(merge3({"a": 1}, {"a": 2, "b": [1]}, {"a": 1}), {"a": 2, "b": [1]})


def test_current_unchanged_takes_writer() -> None:
    assert_clean(merge3([1, 2], [1, 2], [3]), [3])


def test_same_change_on_both_sides_takes_it() -> None:
    assert_clean(merge3("x", [1, {"k": None}], [1, {"k": None}]), [1, {"k": None}])


def test_numbers_compare_by_value_but_true_is_not_one() -> None:
    # 1.0 equals 1: the writer changed nothing, so the current value wins.
    assert_clean(merge3(1, 5, 1.0), 5)
    # Both sides "changed" 1 to the same number in another form: clean.
    assert merge3(1, 2, 2.0).clean
    # true is not 1: both sides changed the value differently.
    result = merge3(1, True, 2)
    assert paths(result) == [""]
    assert result.conflicts[0].current is True
    # false is not 0 and null is not false either.
    assert not merge3(0, False, None).clean


# --- objects, member by member ------------------------------------------------


def test_objects_merge_member_by_member() -> None:
    base = {"a": 1, "b": 2, "c": {"x": 1, "y": 1}}
    current = {"a": 10, "b": 2, "c": {"x": 1, "y": 2}}
    writer = {"a": 1, "b": 20, "c": {"x": 3, "y": 1}, "d": True}
    assert_clean(
        merge3(base, current, writer), {"a": 10, "b": 20, "c": {"x": 3, "y": 2}, "d": True}
    )


def test_member_deleted_on_one_side_and_unchanged_on_the_other_is_deleted() -> None:
    base = {"a": {"b": {"c": 1, "d": 2}}, "e": 3}
    current = {"a": {"b": {"d": 2}}, "e": 3}  # /a/b/c deleted
    writer = {"a": {"b": {"c": 1, "d": 2}, "n": 0}}  # /e deleted, /a/n added
    assert_clean(merge3(base, current, writer), {"a": {"b": {"d": 2}, "n": 0}})
    assert_clean(merge3(base, writer, current), {"a": {"b": {"d": 2}, "n": 0}})


def test_member_deleted_on_both_sides_is_deleted() -> None:
    assert_clean(merge3({"a": 1, "b": 2}, {"b": 2}, {"b": 2, "c": 3}), {"b": 2, "c": 3})


def test_deleted_on_one_side_and_modified_on_the_other_conflicts() -> None:
    base = {"a": {"b": {"c": 1}}, "keep": 1}
    current = {"a": {}, "keep": 2}
    writer = {"a": {"b": {"c": 2}}, "keep": 1}
    result = merge3(base, current, writer)
    assert result.conflicts == (
        MergeConflict(path="/a/b", base={"c": 1}, current=MISSING, writer={"c": 2}),
    )
    # The other side of the swap reports the same path, absent on the writer.
    swapped = merge3(base, writer, current)
    assert swapped.conflicts[0].writer is MISSING
    assert swapped.conflicts[0].current == {"c": 2}


def test_member_added_on_both_sides() -> None:
    assert_clean(merge3({}, {"n": [1]}, {"n": [1]}), {"n": [1]})
    result = merge3({}, {"n": 1}, {"n": 2})
    assert result.conflicts == (MergeConflict(path="/n", base=MISSING, current=1, writer=2),)


def test_objects_added_on_both_sides_without_a_base_object_conflict() -> None:
    # No two-way merge of additions: with no base object, the whole member conflicts.
    result = merge3({}, {"n": {"a": 1}}, {"n": {"b": 2}})
    assert paths(result) == ["/n"]
    assert paths(merge3({"n": None}, {"n": {"a": 1}}, {"n": {"b": 2}})) == ["/n"]


# --- arrays and scalars are atomic ---------------------------------------------


def test_arrays_are_atomic() -> None:
    base = {"xs": [1, 2, 3]}
    result = merge3(base, {"xs": [9, 2, 3]}, {"xs": [1, 2, 9]})
    assert result.conflicts == (
        MergeConflict(path="/xs", base=[1, 2, 3], current=[9, 2, 3], writer=[1, 2, 9]),
    )


def test_objects_inside_arrays_are_not_merged() -> None:
    base = [{"a": 1, "b": 1}]
    result = merge3(base, [{"a": 2, "b": 1}], [{"a": 1, "b": 2}])
    assert paths(result) == [""]


def test_scalars_changed_differently_conflict() -> None:
    assert merge3({"s": "a"}, {"s": "b"}, {"s": "c"}).conflicts == (
        MergeConflict(path="/s", base="a", current="b", writer="c"),
    )


# --- type changes ----------------------------------------------------------------


def test_type_change_against_a_nested_edit_conflicts() -> None:
    base = {"o": {"a": 1}}
    result = merge3(base, {"o": "flattened"}, {"o": {"a": 2}})
    assert result.conflicts == (
        MergeConflict(path="/o", base={"a": 1}, current="flattened", writer={"a": 2}),
    )
    assert paths(merge3(base, {"o": [1]}, {"o": {"a": 1, "b": 1}})) == ["/o"]


def test_type_change_on_one_side_only_is_taken() -> None:
    assert_clean(
        merge3({"o": {"a": 1}, "p": 1}, {"o": 7, "p": 1}, {"o": {"a": 1}, "p": 2}), {"o": 7, "p": 2}
    )


def test_scalar_replaced_by_objects_on_both_sides_conflicts() -> None:
    assert paths(merge3(1, {"a": 1}, {"a": 1, "b": 2})) == [""]


# --- every conflict, in order --------------------------------------------------


def test_every_conflict_is_listed_sorted_by_path() -> None:
    base = {"z": 1, "a/b": 1, "m~n": 1, "a": {"y": 1, "x": 1}, "ok": 1}
    current = {"z": 2, "a/b": 2, "m~n": 2, "a": {"y": 2, "x": 2}, "ok": 1}
    writer = {"z": 3, "a/b": 3, "a": {"y": 3, "x": 3}, "ok": 5}
    result = merge3(base, current, writer)
    assert not result.clean
    assert paths(result) == ["/a/x", "/a/y", "/a~1b", "/m~0n", "/z"]
    assert result.conflicts[3] == MergeConflict(path="/m~0n", base=1, current=2, writer=MISSING)
    # Non-conflicting changes are still merged; conflicts keep the current side.
    assert result.value == {"z": 2, "a/b": 2, "m~n": 2, "a": {"y": 2, "x": 2}, "ok": 5}


def test_empty_member_name_and_escapes_in_paths() -> None:
    result = merge3({"": {"~/": 0}}, {"": {"~/": 1}}, {"": {"~/": 2}})
    assert paths(result) == ["//~0~1"]


def test_conflicts_are_not_nested_inside_a_conflict() -> None:
    result = merge3({"a": {"b": 1}}, {"a": [{"b": 2}]}, {"a": {"b": 3, "c": {"d": 1}}})
    assert paths(result) == ["/a"]


# --- absent documents ----------------------------------------------------------


def test_absent_documents() -> None:
    assert merge3(MISSING, MISSING, {"a": 1}).value == {"a": 1}  # created by the writer
    assert merge3({"a": 1}, MISSING, {"a": 1}).value is MISSING  # deleted meanwhile
    assert merge3({"a": 1}, {"a": 1}, MISSING).value is MISSING  # deleted by the writer
    assert merge3({"a": 1}, MISSING, MISSING).value is MISSING
    result = merge3({"a": 1}, MISSING, {"a": 2})
    assert result.conflicts == (
        MergeConflict(path="", base={"a": 1}, current=MISSING, writer={"a": 2}),
    )
    assert paths(merge3(MISSING, {"a": 1}, {"a": 2})) == [""]


# --- encoding, purity, the sentinel --------------------------------------------


def test_to_dict_wraps_each_side_and_marks_absence() -> None:
    conflict = merge3({"k": {"absent": True}}, {}, {"k": None}).conflicts[0]
    encoded = conflict.to_dict()
    assert encoded == {
        "path": "/k",
        "base": {"value": {"absent": True}},
        "current": {"absent": True},
        "writer": {"value": None},
    }
    assert json.loads(json.dumps(encoded)) == encoded


def test_inputs_are_not_mutated_and_the_result_shares_nothing() -> None:
    base = {"a": {"b": [1, {"c": 2}]}, "d": {"e": 1}, "f": 1}
    current = {"a": {"b": [1, {"c": 3}]}, "d": {"e": 1}, "f": 2}
    writer = {"a": {"b": [1, {"c": 4}]}, "d": {"e": 1, "g": [5]}, "f": 1}
    saved = copy.deepcopy((base, current, writer))
    result = merge3(base, current, writer)
    assert (base, current, writer) == saved
    assert paths(result) == ["/a/b"]
    result.value["d"]["g"].append(6)
    result.value["a"]["b"][1]["c"] = 0
    result.conflicts[0].current[1]["c"] = 0
    result.conflicts[0].to_dict()["writer"]["value"].clear()
    assert (base, current, writer) == saved


def test_the_merge_is_deterministic() -> None:
    base = {"a": 1, "b": {"c": 1}}
    args = (base, {"b": {"c": 2}, "x": 1}, {"a": 3, "b": {"c": 3}, "y": 2})
    first = merge3(*args)
    assert all(merge3(*args) == first for _ in range(5))
    assert list(first.value) == ["b", "x", "y"]  # current's order, then writer's additions


def test_missing_is_a_singleton() -> None:
    assert repr(MISSING) == "MISSING"
    assert copy.deepcopy(MISSING) is MISSING
    assert pickle.loads(pickle.dumps(MISSING)) is MISSING
    assert MISSING != None  # noqa: E711 - absent is not JSON null


# --- properties --------------------------------------------------------------------

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX_SAFE, max_value=MAX_SAFE)
    # Values in the I-JSON domain only, as stored values are: floats in
    # (2**53-1, 1e21) print as integers beyond it (test_conformance.py).
    | st.floats(allow_nan=False, allow_infinity=False).filter(
        lambda f: not MAX_SAFE < abs(f) < 1e21
    )
    | st.text(max_size=6)
)
names = st.text(alphabet="abc~/", max_size=3)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=12,
)
json_objects = st.dictionaries(names, json_values, max_size=5)

Path = tuple[str, ...]
Edit = tuple[Path, Any]  # value MISSING: delete the member


def object_paths(doc: Any, prefix: Path = ()) -> list[Path]:
    """Every object in `doc` reachable through object members only."""
    found = [prefix]
    for name, value in doc.items():
        if isinstance(value, dict):
            found += object_paths(value, (*prefix, name))
    return found


def lookup(doc: Any, path: Path) -> Any:
    for name in path:
        doc = doc[name]
    return doc


def apply(doc: Any, edits: list[Edit]) -> Any:
    """`doc` with `edits` applied in order; an edit an earlier one made moot is skipped."""
    doc = copy.deepcopy(doc)
    for path, value in edits:
        parent = doc
        for name in path[:-1]:
            parent = parent.get(name) if isinstance(parent, dict) else None
        if not isinstance(parent, dict):
            continue
        if value is not MISSING:
            parent[path[-1]] = copy.deepcopy(value)
        elif path[-1] in parent:
            del parent[path[-1]]
    return doc


def overlaps(p: Path, q: Path) -> bool:
    return p[: len(q)] == q or q[: len(p)] == p


@st.composite
def edit_sites(draw: st.DrawFn, base: dict[str, Any], *, disjoint: bool) -> list[Edit]:
    """Edits on members of objects in `base`: set, replace or delete.

    With `disjoint`, no edited path is a prefix of another (nor equal to it).
    """
    sites: list[Path] = []
    for where in object_paths(base):
        sites += [(*where, name) for name in lookup(base, where)]
        sites.append((*where, "new~/"))  # a member no object in `base` has
    chosen = draw(st.lists(st.sampled_from(sites), unique=True, max_size=6))
    edits: list[Edit] = []
    for path in chosen:
        if disjoint and any(overlaps(path, done) for done, _ in edits):
            continue
        exists = path[-1] in lookup(base, path[:-1])
        value = draw((st.just(MISSING) | json_values) if exists else json_values)
        edits.append((path, value))
    return edits


@settings(max_examples=150, deadline=None)
@given(json_values, json_values)
def test_identity(b: Any, c: Any) -> None:
    assert_clean(merge3(b, b, b), b)
    assert_clean(merge3(b, c, b), c)
    assert_clean(merge3(b, b, c), c)


@settings(max_examples=300, deadline=None)
@given(st.data(), json_objects)
def test_non_overlapping_edits_are_never_lost(data: st.DataObject, base: dict[str, Any]) -> None:
    edits = data.draw(edit_sites(base, disjoint=True))
    owners = data.draw(st.lists(st.sampled_from("AB"), min_size=len(edits), max_size=len(edits)))
    a = [e for e, who in zip(edits, owners, strict=True) if who == "A"]
    b = [e for e, who in zip(edits, owners, strict=True) if who == "B"]
    current, writer = apply(base, a), apply(base, b)
    result = merge3(base, current, writer)
    assert_clean(result, apply(apply(base, a), b))
    assert_clean(result, apply(apply(base, b), a))


@settings(max_examples=300, deadline=None)
@given(st.data(), json_objects)
def test_the_merge_is_symmetric(data: st.DataObject, base: dict[str, Any]) -> None:
    # Overlapping edits on both sides: conflicts are common here.
    current = apply(base, data.draw(edit_sites(base, disjoint=False)))
    writer = apply(base, data.draw(edit_sites(base, disjoint=False)))
    if data.draw(st.booleans()):  # sometimes an unrelated value on one side
        writer = data.draw(json_values)
    forward, backward = merge3(base, current, writer), merge3(base, writer, current)
    assert forward.clean == backward.clean
    assert paths(forward) == paths(backward) == sorted(paths(forward))
    for there, back in zip(forward.conflicts, backward.conflicts, strict=True):
        assert same(there.base, back.base)
        assert same(there.current, back.writer)
        assert same(there.writer, back.current)
    if forward.clean:
        assert json_equal(forward.value, backward.value)


@settings(max_examples=300, deadline=None)
@given(st.data(), json_objects)
def test_the_same_change_on_both_sides_is_clean(data: st.DataObject, base: dict[str, Any]) -> None:
    changed = apply(base, data.draw(edit_sites(base, disjoint=False)))
    assert_clean(merge3(base, changed, copy.deepcopy(changed)), changed)
    # Shared edits alongside disjoint ones on each side: still clean, nothing lost.
    edits = data.draw(edit_sites(base, disjoint=True))
    owners = data.draw(st.lists(st.sampled_from("AB="), min_size=len(edits), max_size=len(edits)))
    a = [e for e, who in zip(edits, owners, strict=True) if who in "A="]
    b = [e for e, who in zip(edits, owners, strict=True) if who in "B="]
    assert_clean(merge3(base, apply(base, a), apply(base, b)), apply(base, edits))
