"""The schema compatibility checker (statesync.contracts.compat): rules, modes, readings.

Every rule is checked in both directions: a table gives the difference old -> new, and the
same table read backwards (new -> old) must give the inverse rule with the directions swapped.
Hypothesis holds that symmetry, and "a schema is compatible with itself", for generated
schemas. The language-neutral vectors in conformance/compat/vectors.json run at the end.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from statesync.contracts.compat import (
    Breaking,
    Difference,
    Mode,
    Verdict,
    check,
    check_schema,
    diff,
)
from statesync.core.errors import InvalidSchemaError

B, F = "backward", "forward"
NARROW, WIDE, BOTH, NONE = frozenset({B}), frozenset({F}), frozenset({B, F}), frozenset()
STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
CLOSED = {"additionalProperties": False}


def obj(props: Mapping[str, Any], *, required: list[str] | None = None, **extra: Any):
    schema: dict[str, Any] = {"type": "object", "properties": dict(props)}
    if required is not None:
        schema["required"] = required
    return {**schema, **extra}


def found(old: Any, new: Any, *, strict: bool = False) -> list[tuple[str, str, frozenset[str]]]:
    return [(d.path, d.rule, d.breaks) for d in diff(old, new, strict=strict)]


_EXPLICIT_INVERSE = {
    "required-added-without-default": "required-removed",
    "required-added-with-default": "required-removed-with-default",
    "schema-now-false": "schema-no-longer-false",
}
_EXPLICIT_INVERSE.update({v: k for k, v in _EXPLICIT_INVERSE.items()})
_LAST_WORD = {
    "narrowed": "widened",
    "tightened": "loosened",
    "added": "removed",
    "closed": "opened",
}
_LAST_WORD.update({v: k for k, v in _LAST_WORD.items()})


def inverse(rule: str) -> str:
    """The rule that reports the same difference read the other way round."""
    if rule in _EXPLICIT_INVERSE:
        return _EXPLICIT_INVERSE[rule]
    if rule.startswith("property-added-to-"):
        return rule.replace("property-added-to-", "property-removed-from-")
    if rule.startswith("property-removed-from-"):
        return rule.replace("property-removed-from-", "property-added-to-")
    head, _, last = rule.rpartition("-")
    return f"{head}-{_LAST_WORD[last]}" if last in _LAST_WORD else rule


def swap(breaks: frozenset[str]) -> frozenset[str]:
    return frozenset({B: F, F: B}[d] for d in breaks)


# -- every rule, both ways ---------------------------------------------------------------

# (id, old, new, [(path, rule, breaks)], reversible). Reversible: new -> old gives the inverse
# rules at the same paths with the directions swapped.
RULES: list[tuple[str, Any, Any, list[tuple[str, str, frozenset[str]]], bool]] = [
    (
        "type narrowed",
        {"type": ["string", "null"]},
        STR,
        [("/type", "type-narrowed", NARROW)],
        True,
    ),
    ("type narrowed from any", {}, STR, [("/type", "type-narrowed", NARROW)], True),
    ("integer is part of number", INT, NUM, [("/type", "type-widened", WIDE)], True),
    ("type changed", STR, INT, [("/type", "type-changed", BOTH)], True),
    (
        "nested type",
        obj({"address": obj({"zip": STR})}),
        obj({"address": obj({"zip": INT})}),
        [("/properties/address/properties/zip/type", "type-changed", BOTH)],
        True,
    ),
    (
        "enum value removed",
        {"enum": [1, 2]},
        {"enum": [1]},
        [("/enum", "enum-value-removed", NARROW)],
        True,
    ),
    (
        "enum values removed and added",
        {"enum": ["a", "b"]},
        {"enum": ["a", "c"]},
        [("/enum", "enum-value-removed", NARROW), ("/enum", "enum-value-added", WIDE)],
        True,
    ),
    ("enum added", STR, {**STR, "enum": ["a"]}, [("/enum", "enum-added", NARROW)], True),
    (
        "enum true is not 1",
        {"enum": [1]},
        {"enum": [True]},
        [("/enum", "enum-value-removed", NARROW), ("/enum", "enum-value-added", WIDE)],
        True,
    ),
    ("const added", {}, {"const": 3}, [("/const", "const-added", NARROW)], True),
    ("const changed", {"const": 3}, {"const": 4}, [("/const", "const-changed", BOTH)], True),
    (
        "maximum tightened",
        {"maximum": 100},
        {"maximum": 50},
        [("/maximum", "maximum-tightened", NARROW)],
        True,
    ),
    ("maximum added", {}, {"maximum": 50}, [("/maximum", "maximum-added", NARROW)], True),
    (
        "minimum tightened",
        {"minimum": 0},
        {"minimum": 1},
        [("/minimum", "minimum-tightened", NARROW)],
        True,
    ),
    ("minimum added", {}, {"minimum": 1}, [("/minimum", "minimum-added", NARROW)], True),
    (
        "exclusiveMaximum tightened",
        {"exclusiveMaximum": 10},
        {"exclusiveMaximum": 5.5},
        [("/exclusiveMaximum", "exclusive-maximum-tightened", NARROW)],
        True,
    ),
    (
        "exclusiveMinimum added",
        {},
        {"exclusiveMinimum": 0},
        [("/exclusiveMinimum", "exclusive-minimum-added", NARROW)],
        True,
    ),
    (
        "maximum made exclusive",
        {"maximum": 5},
        {"exclusiveMaximum": 5},
        [("/exclusiveMaximum", "exclusive-maximum-tightened", NARROW)],
        False,  # read backwards: maximum-loosened at /maximum
    ),
    (
        "multipleOf tightened",
        {"multipleOf": 0.5},
        {"multipleOf": 1.5},
        [("/multipleOf", "multiple-of-tightened", NARROW)],
        True,
    ),
    (
        "multipleOf changed",
        {"multipleOf": 2},
        {"multipleOf": 3},
        [("/multipleOf", "multiple-of-changed", BOTH)],
        True,
    ),
    (
        "multipleOf added",
        {},
        {"multipleOf": 2},
        [("/multipleOf", "multiple-of-added", NARROW)],
        True,
    ),
    (
        "minLength tightened",
        {"minLength": 1},
        {"minLength": 2},
        [("/minLength", "min-length-tightened", NARROW)],
        True,
    ),
    ("minLength added", {}, {"minLength": 2}, [("/minLength", "min-length-added", NARROW)], True),
    ("minLength 0 is no bound", {}, {"minLength": 0}, [], True),
    (
        "maxLength tightened",
        {"maxLength": 9},
        {"maxLength": 3},
        [("/maxLength", "max-length-tightened", NARROW)],
        True,
    ),
    ("maxLength added", {}, {"maxLength": 3}, [("/maxLength", "max-length-added", NARROW)], True),
    ("pattern added", STR, {**STR, "pattern": "^a"}, [("/pattern", "pattern-added", NARROW)], True),
    (
        "pattern changed",
        {"pattern": "^a"},
        {"pattern": "^b"},
        [("/pattern", "pattern-changed", BOTH)],
        True,
    ),
    ("format added", STR, {**STR, "format": "email"}, [("/format", "format-added", NARROW)], True),
    (
        "format changed",
        {"format": "date"},
        {"format": "uri"},
        [("/format", "format-changed", BOTH)],
        True,
    ),
    (
        "items narrowed",
        {"type": "array", "items": NUM},
        {"type": "array", "items": INT},
        [("/items/type", "type-narrowed", NARROW)],
        True,
    ),
    (
        "prefixItems against items",
        {"type": "array", "prefixItems": [NUM], "items": STR},
        {"type": "array", "prefixItems": [NUM, {**STR, "maxLength": 2}], "items": STR},
        [("/prefixItems/1/maxLength", "max-length-added", NARROW)],
        True,
    ),
    (
        "items false",
        {"type": "array"},
        {"type": "array", "items": False},
        [("/items", "schema-now-false", NARROW)],
        True,
    ),
    ("minItems added", {}, {"minItems": 1}, [("/minItems", "min-items-added", NARROW)], True),
    (
        "maxItems tightened",
        {"maxItems": 5},
        {"maxItems": 4},
        [("/maxItems", "max-items-tightened", NARROW)],
        True,
    ),
    (
        "uniqueItems added",
        {},
        {"uniqueItems": True},
        [("/uniqueItems", "unique-items-added", NARROW)],
        True,
    ),
    ("uniqueItems false is no constraint", {}, {"uniqueItems": False}, [], True),
    (
        "minProperties tightened",
        {"minProperties": 1},
        {"minProperties": 2},
        [("/minProperties", "min-properties-tightened", NARROW)],
        True,
    ),
    (
        "maxProperties added",
        {},
        {"maxProperties": 2},
        [("/maxProperties", "max-properties-added", NARROW)],
        True,
    ),
    (
        "propertyNames added",
        obj({}),
        obj({}, propertyNames={"pattern": "^[a-z]+$"}),
        [("/propertyNames/pattern", "pattern-added", NARROW)],
        True,
    ),
    (
        "additionalProperties closed",
        obj({"a": STR}),
        obj({"a": STR}, **CLOSED),
        [("/additionalProperties", "additional-properties-closed", NARROW)],
        True,
    ),
    (
        "additionalProperties schema narrowed",
        obj({}, additionalProperties=NUM),
        obj({}, additionalProperties=INT),
        [("/additionalProperties/type", "type-narrowed", NARROW)],
        True,
    ),
    (
        "required added without a default",
        obj({"a": STR}),
        obj({"a": STR}, required=["a"]),
        [("/required", "required-added-without-default", NARROW)],
        True,
    ),
    (
        "required added with a default is a note",
        obj({"a": {**STR, "default": "x"}}),
        obj({"a": {**STR, "default": "x"}}, required=["a"]),
        [("/required", "required-added-with-default", NONE)],
        True,
    ),
    (
        "required added, default through $ref",
        {"$defs": {"e": {**STR, "default": "x"}}, **obj({"a": {"$ref": "#/$defs/e"}})},
        {
            "$defs": {"e": {**STR, "default": "x"}},
            **obj({"a": {"$ref": "#/$defs/e"}}, required=["a"]),
        },
        [("/required", "required-added-with-default", NONE)],
        True,
    ),
    (
        "patternProperties added to a closed model",
        obj({}, **CLOSED),
        obj({}, patternProperties={"^x-": STR}, **CLOSED),
        [("/patternProperties/^x-", "pattern-property-added", WIDE)],
        True,
    ),
    (
        "patternProperties schema narrowed",
        obj({}, patternProperties={"^x-": NUM}),
        obj({}, patternProperties={"^x-": INT}),
        [("/patternProperties/^x-/type", "type-narrowed", NARROW)],
        True,
    ),
    (
        "anyOf branch removed",
        {"anyOf": [STR, INT]},
        {"anyOf": [STR]},
        [("/anyOf/1", "any-of-branch-removed", NARROW)],
        True,
    ),
    (
        "anyOf branch changed in place",
        {"anyOf": [STR, {**INT, "maximum": 9}]},
        {"anyOf": [{**INT, "maximum": 5}, STR]},
        [("/anyOf/0/maximum", "maximum-tightened", NARROW)],
        False,  # branch indexes are the new schema's
    ),
    (
        "a schema becomes a branch",
        STR,
        {"anyOf": [{"type": "null"}, STR]},
        [("/anyOf/0", "any-of-branch-added", WIDE)],
        False,  # read backwards the removed branch is the old schema's /anyOf/0
    ),
    ("anyOf added", {}, {"anyOf": [STR, INT]}, [("/anyOf", "any-of-added", NARROW)], True),
    (
        "oneOf branch added",
        {"oneOf": [STR]},
        {"oneOf": [STR, INT]},
        [("/oneOf/1", "one-of-branch-added", WIDE)],
        True,
    ),
    (
        "allOf schema added",
        {"allOf": [STR]},
        {"allOf": [STR, {"minLength": 1}]},
        [("/allOf/1", "all-of-schema-added", NARROW)],
        True,
    ),
    (
        "allOf schema changed",
        {"allOf": [{"minLength": 1}]},
        {"allOf": [{"minLength": 2}]},
        [("/allOf/0/minLength", "min-length-tightened", NARROW)],
        True,
    ),
    ("true to false", True, False, [("", "schema-now-false", NARROW)], True),
    ("a schema to false", STR, False, [("", "schema-now-false", NARROW)], True),
    ("true is {}", True, {}, [], True),
    (
        "not changed",
        {"not": STR},
        {"not": INT},
        [("/not", "unanalyzed-keyword-changed", BOTH)],
        True,
    ),
    (
        "if added",
        {},
        {"if": STR, "then": {"minLength": 1}},
        [
            ("/if", "unanalyzed-keyword-changed", BOTH),
            ("/then", "unanalyzed-keyword-changed", BOTH),
        ],
        True,
    ),
    (
        "dependentSchemas changed",
        {"dependentSchemas": {"a": {"required": ["b"]}}},
        {},
        [("/dependentSchemas", "unanalyzed-keyword-changed", BOTH)],
        True,
    ),
    (
        "unevaluatedProperties added",
        obj({}),
        obj({}, unevaluatedProperties=False),
        [("/unevaluatedProperties", "unanalyzed-keyword-changed", BOTH)],
        True,
    ),
    (
        "unknown keyword is a note",
        {"x-owner": "a"},
        {"x-owner": "b"},
        [("/x-owner", "unknown-keyword-changed", NONE)],
        True,
    ),
    (
        "default changed is a note",
        {**STR, "default": "a"},
        {**STR, "default": "b"},
        [("/default", "default-changed", NONE)],
        True,
    ),
    (
        "annotations are ignored",
        {"title": "a", "description": "b"},
        {"title": "c", "examples": [1]},
        [],
        True,
    ),
    ("string keywords on a number schema do not apply", NUM, {**NUM, "maxLength": 3}, [], True),
    ("numeric keywords on a string schema do not apply", STR, {**STR, "minimum": 3}, [], True),
]


@pytest.mark.parametrize(
    ("old", "new", "expected"), [c[1:4] for c in RULES], ids=[c[0] for c in RULES]
)
def test_rule(old: Any, new: Any, expected: list[tuple[str, str, frozenset[str]]]) -> None:
    assert found(old, new) == expected
    assert found(old, new, strict=True) == expected  # no property is added or removed


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [c[1:4] for c in RULES if c[4]],
    ids=[c[0] for c in RULES if c[4]],
)
def test_rule_read_backwards(old: Any, new: Any, expected: list[tuple[str, str, frozenset[str]]]):
    backwards = [(path, inverse(rule), swap(breaks)) for path, rule, breaks in expected]
    assert Counter(found(new, old)) == Counter(backwards)


def test_messages_say_what_changed_with_the_values() -> None:
    [d] = diff({"maximum": 100}, {"maximum": 50})
    assert d.message.startswith("maximum tightened from 100 to 50: the value 75 ")
    assert "breaks backward" in d.message
    verdict = check({"maximum": 50}, [{"maximum": 100}], Mode.BACKWARD)
    [b] = verdict.breaking
    assert "the value 75 written under v1 is invalid under v2" in b.message
    [d] = diff(STR, INT)
    assert '"string"' in d.message and '"integer"' in d.message
    assert "breaks backward" in d.message and "breaks forward" in d.message
    [d] = diff({"enum": ["a", "b"]}, {"enum": ["a"]})
    assert 'the value "b"' in d.message
    [d] = diff({}, {"not": STR})
    assert "does not analyse not" in d.message
    [d] = diff(obj({"a": STR}), obj({"a": STR}, required=["a"]))
    assert 'an object without "a"' in d.message
    [d] = diff({"minLength": 5}, {"minLength": 2})
    assert "a string with 2 characters" in d.message and "breaks forward" in d.message


def test_required_with_default_says_why_it_does_not_break() -> None:
    [d] = diff(
        obj({"a": {**STR, "default": "n/a"}}), obj({"a": {**STR, "default": "n/a"}}, required=["a"])
    )
    assert d.breaks == NONE
    assert '"n/a"' in d.message and "default" in d.message and "not breaking" in d.message


def test_ref_paths_follow_the_reference() -> None:
    def schema(zip_type: str) -> dict[str, Any]:
        return {
            "$defs": {"address": obj({"zip": {"type": zip_type}})},
            **obj({"address": {"$ref": "#/$defs/address"}}),
        }

    assert found(schema("string"), schema("integer")) == [
        ("/properties/address/properties/zip/type", "type-changed", BOTH)
    ]


def test_ref_with_sibling_keywords_and_anchors() -> None:
    old = {"$defs": {"s": {"$anchor": "s", **STR}}, **obj({"a": {"$ref": "#s", "maxLength": 5}})}
    new = {"$defs": {"s": {"$anchor": "s", **STR}}, **obj({"a": {"$ref": "#s", "maxLength": 3}})}
    assert found(old, new) == [("/properties/a/maxLength", "max-length-tightened", NARROW)]


def test_recursive_schemas_terminate() -> None:
    def tree(value: dict[str, Any]) -> dict[str, Any]:
        node = obj({"value": value, "children": {"type": "array", "items": {"$ref": "#"}}})
        return node

    assert found(tree(INT), tree(NUM)) == [("/properties/value/type", "type-widened", WIDE)]
    assert found(tree(INT), tree(INT)) == []


# -- content models ----------------------------------------------------------------------


def test_closed_model_add_is_a_widening_remove_a_narrowing() -> None:
    v1, v2 = obj({"a": STR}, **CLOSED), obj({"a": STR, "b": INT}, **CLOSED)
    for strict in (False, True):
        [add] = diff(v1, v2, strict=strict)
        assert (add.path, add.rule, add.breaks) == (
            "/properties/b",
            "property-added-to-closed-model",
            WIDE,
        )
        assert "additionalProperties: false" in add.message
        [rm] = diff(v2, v1, strict=strict)
        assert (rm.rule, rm.breaks) == ("property-removed-from-closed-model", NARROW)


def test_open_model_practical_reading() -> None:
    v1, v2 = obj({"a": STR}), obj({"a": STR, "b": INT})
    [add] = diff(v1, v2)
    assert (add.path, add.rule, add.breaks) == (
        "/properties/b",
        "property-added-to-open-model",
        NONE,
    )
    assert "practical reading" in add.message and "strict reading" in add.message
    assert "breaks backward" in add.message  # what the strict reading would say
    assert "additionalProperties: false" in add.message and "patternProperties" in add.message
    [rm] = diff(v2, v1)
    assert (rm.rule, rm.breaks) == ("property-removed-from-open-model", NONE)
    assert "breaks forward" in rm.message
    assert check(v2, [v1], Mode.FULL).compatible
    assert check(v1, [v2], Mode.FULL_TRANSITIVE).compatible
    verdict = check(v2, [v1], "FULL")
    assert [n.rule for n in verdict.notes] == ["property-added-to-open-model"]


def test_open_model_strict_reading() -> None:
    v1, v2 = obj({"a": STR}), obj({"a": STR, "b": INT})
    [add] = diff(v1, v2, strict=True)
    assert (add.rule, add.breaks) == ("property-added-to-open-model", NARROW)
    assert "strict reading" in add.message and '"integer"' in add.message
    [rm] = diff(v2, v1, strict=True)
    assert (rm.rule, rm.breaks) == ("property-removed-from-open-model", WIDE)
    verdict = check(v2, [v1], Mode.FULL, strict=True)
    assert not verdict.compatible
    assert [(b.rule, b.direction) for b in verdict.breaking] == [
        ("property-added-to-open-model", B)
    ]
    assert check(v2, [v1], Mode.FORWARD, strict=True).compatible


def test_open_model_property_without_constraints_is_compatible_even_strictly() -> None:
    [d] = diff(obj({}), obj({"anything": {}}), strict=True)
    assert (d.rule, d.breaks) == ("property-added-to-open-model", NONE)
    assert "exactly" in d.message


def test_required_new_property_in_an_open_model_still_breaks() -> None:
    verdict = check(obj({"a": STR, "b": INT}, required=["b"]), [obj({"a": STR})], Mode.FULL)
    assert [b.rule for b in verdict.breaking] == ["required-added-without-default"]


@pytest.mark.parametrize("strict", [False, True])
def test_partially_open_model_covered(strict: bool) -> None:
    v1 = obj({}, patternProperties={"^i_": INT}, **CLOSED)
    v2 = obj({"i_age": INT}, patternProperties={"^i_": INT}, **CLOSED)
    [d] = diff(v1, v2, strict=strict)
    assert (d.rule, d.breaks) == ("property-added-to-partially-open-model", NONE)
    assert '"^i_"' in d.message
    [d] = diff(v2, v1, strict=strict)
    assert (d.rule, d.breaks) == ("property-removed-from-partially-open-model", NONE)


def test_partially_open_model_narrower_than_allowed() -> None:
    v1, v2 = obj({}, additionalProperties=NUM), obj({"n": INT}, additionalProperties=NUM)
    [d] = diff(v1, v2)
    assert (d.rule, d.breaks) == ("property-added-to-partially-open-model", NONE)
    [d] = diff(v1, v2, strict=True)
    assert d.breaks == NARROW


def test_partially_open_model_not_covered() -> None:
    v1, v2 = obj({}, additionalProperties=STR), obj({"n": INT}, additionalProperties=STR)
    [d] = diff(v1, v2)
    assert (d.path, d.rule, d.breaks) == (
        "/properties/n",
        "property-added-to-partially-open-model",
        WIDE,
    )
    assert 'additionalProperties {"type": "string"}' in d.message
    [d] = diff(v1, v2, strict=True)
    assert d.breaks == BOTH
    [d] = diff(v2, v1)
    assert (d.rule, d.breaks) == ("property-removed-from-partially-open-model", NARROW)


def test_additional_properties_opened() -> None:
    [d] = diff(obj({}, **CLOSED), obj({}))
    assert (d.rule, d.breaks) == ("additional-properties-opened", WIDE)


# -- modes -------------------------------------------------------------------------------


def test_modes_pick_directions() -> None:
    v1, v2 = {**INT, "maximum": 10}, {**NUM, "maximum": 5}
    expected = {
        Mode.NONE: set(),
        Mode.BACKWARD: {("maximum-tightened", B)},
        Mode.FORWARD: {("type-widened", F)},
        Mode.FULL: {("maximum-tightened", B), ("type-widened", F)},
    }
    for mode, rules in expected.items():
        verdict = check(v2, [v1], mode)
        assert {(b.rule, b.direction) for b in verdict.breaking} == rules
        assert verdict.compatible == (not rules)
        assert verdict.version == 2
        assert verdict.checked_against == (() if mode is Mode.NONE else (1,))


def test_none_accepts_anything_but_lists_the_differences() -> None:
    verdict = check(INT, [obj({"a": STR}), STR], Mode.NONE)
    assert verdict.compatible and verdict.breaking == () and verdict.checked_against == ()
    assert [(n.rule, n.breaks) for n in verdict.notes] == [("type-changed", BOTH)]
    assert "v2" in verdict.notes[0].message and "v3" in verdict.notes[0].message


def test_first_version_is_compatible_in_every_mode() -> None:
    for mode in Mode:
        verdict = check(STR, [], mode)
        assert verdict.compatible and verdict.version == 1 and verdict.checked_against == ()


def test_mode_accepts_strings() -> None:
    assert check(STR, [STR], "full_transitive").mode is Mode.FULL_TRANSITIVE
    assert Mode("BACKWARD") is Mode.BACKWARD and str(Mode.FULL) == "FULL"
    with pytest.raises(ValueError):
        check(STR, [STR], "SIDEWAYS")


def test_transitive_modes_across_three_versions() -> None:
    v1, v2, v3 = {"type": ["string", "null"]}, {**STR, "maxLength": 99}, STR
    # v3 can read v2's data (it drops maxLength) but not v1's (null).
    assert check(v3, [v1, v2], Mode.BACKWARD).compatible
    verdict = check(v3, [v1, v2], Mode.BACKWARD_TRANSITIVE)
    assert not verdict.compatible and verdict.version == 3 and verdict.checked_against == (1, 2)
    assert [(b.rule, b.direction, b.against_version) for b in verdict.breaking] == [
        ("type-narrowed", B, 1)
    ]
    assert "v1" in verdict.breaking[0].message and "v3" in verdict.breaking[0].message
    # The mirror image for FORWARD: v1's readers cannot read v3's data.
    w1, w2, w3 = {**INT, "maximum": 5}, {**INT, "maximum": 10}, {**INT, "maximum": 10}
    assert check(w3, [w1, w2], Mode.FORWARD).compatible
    verdict = check(w3, [w1, w2], Mode.FORWARD_TRANSITIVE)
    assert [(b.rule, b.direction, b.against_version) for b in verdict.breaking] == [
        ("maximum-loosened", F, 1)
    ]
    # FULL_TRANSITIVE: both directions against every version.
    verdict = check({"enum": ["a"]}, [{"enum": ["a", "b"]}, {"enum": ["a"]}], Mode.FULL_TRANSITIVE)
    assert [(b.rule, b.direction, b.against_version) for b in verdict.breaking] == [
        ("enum-value-removed", B, 1)
    ]
    assert check({"enum": ["a"]}, [{"enum": ["a", "b"]}, {"enum": ["a"]}], Mode.FULL).compatible


def test_verdict_to_dict() -> None:
    verdict = check({**STR, "maxLength": 3}, [STR], Mode.FULL)
    assert isinstance(verdict, Verdict)
    data = verdict.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["mode"] == "FULL" and data["version"] == 2 and data["compatible"] is False
    assert data["checked_against"] == [1]
    [b] = data["breaking"]
    assert set(b) == {"path", "rule", "direction", "against_version", "message"}
    assert (b["path"], b["rule"], b["direction"], b["against_version"]) == (
        "/maxLength",
        "max-length-added",
        B,
        1,
    )
    assert Breaking(**b).to_dict() == b
    notes = check({**STR, "default": "x"}, [STR], Mode.FULL).to_dict()["notes"]
    assert notes == [
        {
            "path": "/default",
            "rule": "default-changed",
            "breaks": [],
            "message": notes[0]["message"],
        }
    ]


def test_differences_are_frozen() -> None:
    [d] = diff(STR, INT)
    assert isinstance(d, Difference)
    with pytest.raises(AttributeError):
        d.rule = "x"  # type: ignore[misc]


# -- check_schema ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "schema",
    [
        True,
        False,
        {},
        {"$schema": "https://json-schema.org/draft/2020-12/schema", **STR},
        {"$defs": {"a": STR}, "$id": "https://example.com/s", **obj({"x": {"$ref": "#/$defs/a"}})},
        {"$defs": {"a": {"$anchor": "a", **STR}}, "items": {"$ref": "#a"}},
        obj({"child": {"$ref": "#"}}, patternProperties={"^[a-z]+$": INT}),
    ],
)
def test_check_schema_accepts(schema: object) -> None:
    check_schema(schema, "ns")


@pytest.mark.parametrize(
    ("schema", "path", "reason"),
    [
        ({"properties": {"a": {"minimum": "x"}}}, "/properties/a/minimum", "not of type"),
        ({"type": "text"}, "/type", "anyOf"),
        ({"items": [STR]}, "/items", "is not of type"),
        ({"properties": {"a": {"pattern": "("}}}, "/properties/a/pattern", "regex"),
        ({"$ref": "https://example.com/schema.json"}, "/$ref", "remote reference"),
        ({"properties": {"a": {"$ref": "other.json#/x"}}}, "/properties/a/$ref", "remote"),
        ({"$ref": "#/$defs/missing"}, "/$ref", "does not resolve"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, "/$schema", "2020-12"),
        ({"$schema": 7}, "/$schema", "2020-12"),
        ({"properties": {"a": {"$id": "https://x/a", **STR}}}, "/properties/a/$id", "embedded"),
        ({"enum": [float("nan")]}, "", "not a JSON value"),
        ({"const": {1, 2}}, "", "set"),
        ("string", "", "JSON object or a boolean"),
    ],
)
def test_check_schema_refuses(schema: object, path: str, reason: str) -> None:
    with pytest.raises(InvalidSchemaError) as info:
        check_schema(schema, "orders")
    assert info.value.path == path
    assert info.value.namespace == "orders"
    assert reason in info.value.reason
    assert "orders" in str(info.value)


# -- properties --------------------------------------------------------------------------

_names = st.sampled_from(["a", "b", "c"])
_string = st.fixed_dictionaries(
    {"type": st.just("string")},
    optional={
        "minLength": st.integers(0, 3),
        "maxLength": st.integers(2, 6),
        "pattern": st.sampled_from(["^a", "^b"]),
        "format": st.sampled_from(["email", "date"]),
        "enum": st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=3, unique=True),
        "default": st.sampled_from(["x", "y"]),
    },
)
_number = st.fixed_dictionaries(
    {"type": st.sampled_from(["integer", "number", ["integer", "null"]])},
    optional={
        "minimum": st.integers(-2, 2),
        "maximum": st.sampled_from([3, 4.5, 10]),
        "multipleOf": st.sampled_from([1, 2, 0.5, 3]),
        "const": st.sampled_from([1, 2]),
    },
)
_leaf = st.one_of(st.booleans(), st.just({}), _string, _number, st.just({"not": STR}))


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    objects = st.fixed_dictionaries(
        {"type": st.just("object"), "properties": st.dictionaries(_names, inner, max_size=3)},
        optional={
            "required": st.lists(_names, max_size=3, unique=True),
            "additionalProperties": st.one_of(st.booleans(), inner),
            "patternProperties": st.dictionaries(st.sampled_from(["^a", "^x"]), inner, max_size=1),
            "maxProperties": st.integers(1, 4),
        },
    )
    arrays = st.fixed_dictionaries(
        {"type": st.just("array")},
        optional={
            "items": inner,
            "prefixItems": st.lists(inner, min_size=1, max_size=2),
            "minItems": st.integers(0, 2),
            "uniqueItems": st.booleans(),
        },
    )
    return st.one_of(objects, arrays)


_schemas = st.recursive(_leaf, _containers, max_leaves=8)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_schemas, st.booleans())
def test_a_schema_is_compatible_with_itself(schema: Any, strict: bool) -> None:
    assert diff(schema, schema, strict=strict) == []
    for mode in Mode:
        assert check(schema, [schema, schema], mode, strict=strict).compatible


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_schemas, _schemas, st.booleans())
def test_reading_a_difference_backwards_swaps_the_directions(a: Any, b: Any, strict: bool) -> None:
    forwards = Counter((p, inverse(r), swap(br)) for p, r, br in found(a, b, strict=strict))
    assert forwards == Counter(found(b, a, strict=strict))
    backward = check(b, [a], Mode.BACKWARD, strict=strict).breaking
    forward = check(a, [b], Mode.FORWARD, strict=strict).breaking
    assert Counter((x.path, inverse(x.rule)) for x in backward) == Counter(
        (x.path, x.rule) for x in forward
    )
    assert {x.direction for x in backward} <= {B} and {x.direction for x in forward} <= {F}


# -- the conformance vectors -------------------------------------------------------------

CONFORMANCE = Path(__file__).resolve().parent.parent / "conformance"
VECTORS = json.loads((CONFORMANCE / "compat/vectors.json").read_text(encoding="ascii"))


def test_vector_file_format() -> None:
    assert VECTORS["format_version"] == 1
    assert {v["mode"] for v in VECTORS["vectors"]} == {m.value for m in Mode}
    names = [v["name"] for v in VECTORS["vectors"]]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize("vector", VECTORS["vectors"], ids=[v["name"] for v in VECTORS["vectors"]])
def test_compat_vector(vector: dict[str, Any]) -> None:
    verdict = check(vector["new"], vector["previous"], vector["mode"], strict=vector["strict"])
    assert verdict.compatible is vector["compatible"]
    expected = {
        (b["path"], b["rule"], b["direction"], b["against_version"]) for b in vector["breaking"]
    }
    assert {(b.path, b.rule, b.direction, b.against_version) for b in verdict.breaking} == expected
    check_schema(vector["new"])
    for schema in vector["previous"]:
        check_schema(schema)
