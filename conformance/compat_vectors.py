"""Schema compatibility vectors (conformance/compat/vectors.json), built by generate.py.

Each case is a mode, a reading (strict or not), earlier schema versions (oldest first), a new
version, and the breaking changes statesync reports: path, rule, direction, against which
version. The expected rules and directions are written here by hand; `build()` refuses to write
a vector when the reference checker disagrees with them, so a regression in the checker cannot
silently become the new expectation. Messages are prose and are left out.
"""

from __future__ import annotations

from typing import Any

from statesync.contracts.compat import Mode, check

FORMAT_VERSION = 1
B, F = "backward", "forward"

Schema = dict[str, Any] | bool
# (name, mode, strict, previous, new, expected {(rule, direction, against_version)})
Case = tuple[str, str, bool, list[Schema], Schema, set[tuple[str, str, int]]]


def obj(props: dict[str, Any], *, required: list[str] | None = None, **extra: Any) -> Schema:
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required is not None:
        schema["required"] = required
    return {**schema, **extra}


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}
CLOSED = {"additionalProperties": False}
ADDRESS = obj({"zip": {"type": "string", "maxLength": 10}})
ADDRESS_V2 = obj({"zip": {"type": "integer"}})


def _defs(address: Schema) -> Schema:
    return {
        "$defs": {"address": address},
        **obj({"home": {"$ref": "#/$defs/address"}, "work": {"$ref": "#/$defs/address"}}),
    }


TREE = {
    "$defs": {
        "node": obj(
            {"value": INT, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}
        )
    },
    "$ref": "#/$defs/node",
}
TREE_V2 = {
    "$defs": {
        "node": obj(
            {"value": NUM, "children": {"type": "array", "items": {"$ref": "#/$defs/node"}}}
        )
    },
    "$ref": "#/$defs/node",
}

CASES: list[Case] = [
    # -- types
    (
        "type narrowed",
        "BACKWARD",
        False,
        [{"type": ["string", "null"]}],
        STR,
        {("type-narrowed", B, 1)},
    ),
    (
        "type narrowed is forward compatible",
        "FORWARD",
        False,
        [{"type": ["string", "null"]}],
        STR,
        set(),
    ),
    ("type widened, integer to number", "FORWARD", False, [INT], NUM, {("type-widened", F, 1)}),
    ("type widened is backward compatible", "BACKWARD", False, [INT], NUM, set()),
    ("type changed", "FULL", False, [STR], INT, {("type-changed", B, 1), ("type-changed", F, 1)}),
    ("type added to an untyped schema", "BACKWARD", False, [{}], STR, {("type-narrowed", B, 1)}),
    (
        "nested type changed",
        "BACKWARD",
        False,
        [obj({"a": STR})],
        obj({"a": INT}),
        {("type-changed", B, 1)},
    ),
    # -- properties and content models
    (
        "optional property added to a closed model",
        "FORWARD",
        False,
        [obj({"a": STR}, **CLOSED)],
        obj({"a": STR, "b": INT}, **CLOSED),
        {("property-added-to-closed-model", F, 1)},
    ),
    (
        "optional property added to a closed model is backward compatible",
        "BACKWARD",
        False,
        [obj({"a": STR}, **CLOSED)],
        obj({"a": STR, "b": INT}, **CLOSED),
        set(),
    ),
    (
        "optional property removed from a closed model",
        "BACKWARD",
        False,
        [obj({"a": STR, "b": INT}, **CLOSED)],
        obj({"a": STR}, **CLOSED),
        {("property-removed-from-closed-model", B, 1)},
    ),
    (
        "optional property added to an open model, practical reading",
        "FULL",
        False,
        [obj({"a": STR})],
        obj({"a": STR, "b": INT}),
        set(),
    ),
    (
        "optional property added to an open model, strict reading",
        "FULL",
        True,
        [obj({"a": STR})],
        obj({"a": STR, "b": INT}),
        {("property-added-to-open-model", B, 1)},
    ),
    (
        "optional property removed from an open model, practical reading",
        "FULL",
        False,
        [obj({"a": STR, "b": INT})],
        obj({"a": STR}),
        set(),
    ),
    (
        "optional property removed from an open model, strict reading",
        "FULL",
        True,
        [obj({"a": STR, "b": INT})],
        obj({"a": STR}),
        {("property-removed-from-open-model", F, 1)},
    ),
    (
        "property added, covered by patternProperties",
        "FULL",
        True,
        [obj({}, patternProperties={"^i_": INT}, **CLOSED)],
        obj({"i_age": INT}, patternProperties={"^i_": INT}, **CLOSED),
        set(),
    ),
    (
        "property added, not covered by additionalProperties",
        "FULL",
        False,
        [obj({}, additionalProperties=STR)],
        obj({"age": INT}, additionalProperties=STR),
        {("property-added-to-partially-open-model", F, 1)},
    ),
    (
        "property added, not covered by additionalProperties, strict",
        "FULL",
        True,
        [obj({}, additionalProperties=STR)],
        obj({"age": INT}, additionalProperties=STR),
        {
            ("property-added-to-partially-open-model", F, 1),
            ("property-added-to-partially-open-model", B, 1),
        },
    ),
    (
        "property added, narrower than additionalProperties",
        "FULL",
        False,
        [obj({}, additionalProperties=NUM)],
        obj({"age": INT}, additionalProperties=NUM),
        set(),
    ),
    (
        "property added, narrower than additionalProperties, strict",
        "FULL",
        True,
        [obj({}, additionalProperties=NUM)],
        obj({"age": INT}, additionalProperties=NUM),
        {("property-added-to-partially-open-model", B, 1)},
    ),
    (
        "property removed from a partially open model",
        "FULL",
        False,
        [obj({"age": INT}, additionalProperties=STR)],
        obj({}, additionalProperties=STR),
        {("property-removed-from-partially-open-model", B, 1)},
    ),
    (
        "patternProperties added to a closed model",
        "FULL",
        False,
        [obj({}, **CLOSED)],
        obj({}, patternProperties={"^x-": STR}, **CLOSED),
        {("pattern-property-added", F, 1)},
    ),
    (
        "patternProperties removed from a closed model",
        "FULL",
        False,
        [obj({}, patternProperties={"^x-": STR}, **CLOSED)],
        obj({}, **CLOSED),
        {("pattern-property-removed", B, 1)},
    ),
    # -- required
    (
        "required added without a default",
        "BACKWARD",
        False,
        [obj({"a": STR})],
        obj({"a": STR}, required=["a"]),
        {("required-added-without-default", B, 1)},
    ),
    (
        "required added with a default",
        "FULL",
        False,
        [obj({"a": STR})],
        obj({"a": {**STR, "default": ""}}, required=["a"]),
        set(),
    ),
    (
        "required removed",
        "FORWARD",
        False,
        [obj({"a": STR}, required=["a"])],
        obj({"a": STR}),
        {("required-removed", F, 1)},
    ),
    (
        "required removed is backward compatible",
        "BACKWARD",
        False,
        [obj({"a": STR}, required=["a"])],
        obj({"a": STR}),
        set(),
    ),
    (
        "new required property in a closed model",
        "FULL",
        False,
        [obj({"a": STR}, **CLOSED)],
        obj({"a": STR, "b": INT}, required=["b"], **CLOSED),
        {("property-added-to-closed-model", F, 1), ("required-added-without-default", B, 1)},
    ),
    # -- enum and const
    (
        "enum value removed",
        "BACKWARD",
        False,
        [{"enum": ["a", "b"]}],
        {"enum": ["a"]},
        {("enum-value-removed", B, 1)},
    ),
    (
        "enum value added",
        "FULL",
        False,
        [{"enum": ["a"]}],
        {"enum": ["a", "b"]},
        {("enum-value-added", F, 1)},
    ),
    ("enum added", "FULL", False, [STR], {**STR, "enum": ["a"]}, {("enum-added", B, 1)}),
    ("enum removed", "FULL", False, [{**STR, "enum": ["a"]}], STR, {("enum-removed", F, 1)}),
    (
        "enum: 1 and 1.0 are the same value",
        "FULL",
        False,
        [{"enum": [1, "x"]}],
        {"enum": [1.0, "x"]},
        set(),
    ),
    ("const added", "FULL", False, [STR], {**STR, "const": "a"}, {("const-added", B, 1)}),
    (
        "const changed",
        "FULL",
        False,
        [{"const": "a"}],
        {"const": "b"},
        {("const-changed", B, 1), ("const-changed", F, 1)},
    ),
    ("const removed", "FULL", False, [{**STR, "const": "a"}], STR, {("const-removed", F, 1)}),
    # -- additionalProperties
    (
        "additionalProperties closed",
        "FULL",
        False,
        [obj({"a": STR})],
        obj({"a": STR}, **CLOSED),
        {("additional-properties-closed", B, 1)},
    ),
    (
        "additionalProperties opened",
        "FULL",
        False,
        [obj({"a": STR}, **CLOSED)],
        obj({"a": STR}),
        {("additional-properties-opened", F, 1)},
    ),
    (
        "additionalProperties schema narrowed",
        "FULL",
        False,
        [obj({}, additionalProperties=NUM)],
        obj({}, additionalProperties=INT),
        {("type-narrowed", B, 1)},
    ),
    # -- numbers
    (
        "maximum tightened",
        "FULL",
        False,
        [{**INT, "maximum": 100}],
        {**INT, "maximum": 50},
        {("maximum-tightened", B, 1)},
    ),
    (
        "maximum loosened",
        "FULL",
        False,
        [{**INT, "maximum": 50}],
        {**INT, "maximum": 100},
        {("maximum-loosened", F, 1)},
    ),
    ("minimum added", "FULL", False, [NUM], {**NUM, "minimum": 0}, {("minimum-added", B, 1)}),
    ("minimum removed", "FULL", False, [{**NUM, "minimum": 0}], NUM, {("minimum-removed", F, 1)}),
    (
        "minimum made exclusive",
        "FULL",
        False,
        [{**NUM, "minimum": 0}],
        {**NUM, "exclusiveMinimum": 0},
        {("exclusive-minimum-tightened", B, 1)},
    ),
    (
        "exclusiveMaximum added",
        "BACKWARD",
        False,
        [NUM],
        {**NUM, "exclusiveMaximum": 1},
        {("exclusive-maximum-added", B, 1)},
    ),
    (
        "exclusiveMaximum loosened",
        "FULL",
        False,
        [{**NUM, "exclusiveMaximum": 1}],
        {**NUM, "exclusiveMaximum": 2},
        {("exclusive-maximum-loosened", F, 1)},
    ),
    (
        "multipleOf tightened",
        "FULL",
        False,
        [{**NUM, "multipleOf": 2}],
        {**NUM, "multipleOf": 4},
        {("multiple-of-tightened", B, 1)},
    ),
    (
        "multipleOf loosened",
        "FULL",
        False,
        [{**NUM, "multipleOf": 0.1}],
        {**NUM, "multipleOf": 0.05},
        {("multiple-of-loosened", F, 1)},
    ),
    (
        "multipleOf changed",
        "FULL",
        False,
        [{**NUM, "multipleOf": 2}],
        {**NUM, "multipleOf": 3},
        {("multiple-of-changed", B, 1), ("multiple-of-changed", F, 1)},
    ),
    (
        "multipleOf added",
        "FULL",
        False,
        [NUM],
        {**NUM, "multipleOf": 5},
        {("multiple-of-added", B, 1)},
    ),
    (
        "numeric bound on a string schema is irrelevant",
        "FULL",
        False,
        [STR],
        {**STR, "maximum": 5},
        set(),
    ),
    # -- strings
    (
        "minLength tightened",
        "FULL",
        False,
        [{**STR, "minLength": 1}],
        {**STR, "minLength": 3},
        {("min-length-tightened", B, 1)},
    ),
    (
        "maxLength loosened",
        "FULL",
        False,
        [{**STR, "maxLength": 5}],
        {**STR, "maxLength": 10},
        {("max-length-loosened", F, 1)},
    ),
    (
        "maxLength added",
        "FULL",
        False,
        [STR],
        {**STR, "maxLength": 10},
        {("max-length-added", B, 1)},
    ),
    (
        "pattern added",
        "FULL",
        False,
        [STR],
        {**STR, "pattern": "^[a-z]+$"},
        {("pattern-added", B, 1)},
    ),
    (
        "pattern changed",
        "FULL",
        False,
        [{**STR, "pattern": "^a"}],
        {**STR, "pattern": "^b"},
        {("pattern-changed", B, 1), ("pattern-changed", F, 1)},
    ),
    (
        "pattern removed",
        "FULL",
        False,
        [{**STR, "pattern": "^a"}],
        STR,
        {("pattern-removed", F, 1)},
    ),
    ("format added", "FULL", False, [STR], {**STR, "format": "email"}, {("format-added", B, 1)}),
    (
        "format changed",
        "FULL",
        False,
        [{**STR, "format": "email"}],
        {**STR, "format": "uri"},
        {("format-changed", B, 1), ("format-changed", F, 1)},
    ),
    ("format removed", "FULL", False, [{**STR, "format": "date"}], STR, {("format-removed", F, 1)}),
    # -- arrays
    (
        "items narrowed",
        "FULL",
        False,
        [{"type": "array", "items": NUM}],
        {"type": "array", "items": INT},
        {("type-narrowed", B, 1)},
    ),
    (
        "prefixItems entry widened",
        "FULL",
        False,
        [{"type": "array", "prefixItems": [INT]}],
        {"type": "array", "prefixItems": [NUM]},
        {("type-widened", F, 1)},
    ),
    (
        "prefixItems entry added",
        "FULL",
        False,
        [{"type": "array", "prefixItems": [INT]}],
        {"type": "array", "prefixItems": [INT, STR]},
        {("type-narrowed", B, 1)},
    ),
    (
        "minItems added",
        "FULL",
        False,
        [{"type": "array"}],
        {"type": "array", "minItems": 1},
        {("min-items-added", B, 1)},
    ),
    (
        "maxItems tightened",
        "FULL",
        False,
        [{"type": "array", "maxItems": 10}],
        {"type": "array", "maxItems": 3},
        {("max-items-tightened", B, 1)},
    ),
    (
        "uniqueItems added",
        "FULL",
        False,
        [{"type": "array"}],
        {"type": "array", "uniqueItems": True},
        {("unique-items-added", B, 1)},
    ),
    (
        "uniqueItems removed",
        "FULL",
        False,
        [{"type": "array", "uniqueItems": True}],
        {"type": "array", "uniqueItems": False},
        {("unique-items-removed", F, 1)},
    ),
    # -- object counts and names
    (
        "minProperties added",
        "FULL",
        False,
        [obj({})],
        obj({}, minProperties=1),
        {("min-properties-added", B, 1)},
    ),
    (
        "maxProperties loosened",
        "FULL",
        False,
        [obj({}, maxProperties=2)],
        obj({}, maxProperties=4),
        {("max-properties-loosened", F, 1)},
    ),
    (
        "propertyNames tightened",
        "FULL",
        False,
        [obj({}, propertyNames={"maxLength": 10})],
        obj({}, propertyNames={"maxLength": 5}),
        {("max-length-tightened", B, 1)},
    ),
    # -- combinators
    (
        "anyOf branch added",
        "FULL",
        False,
        [{"anyOf": [STR, INT]}],
        {"anyOf": [STR, INT, {"type": "null"}]},
        {("any-of-branch-added", F, 1)},
    ),
    (
        "anyOf branch removed",
        "FULL",
        False,
        [{"anyOf": [STR, INT]}],
        {"anyOf": [INT]},
        {("any-of-branch-removed", B, 1)},
    ),
    (
        "anyOf branch narrowed",
        "FULL",
        False,
        [{"anyOf": [STR, NUM]}],
        {"anyOf": [NUM, {**STR, "maxLength": 3}]},
        {("max-length-added", B, 1)},
    ),
    (
        "a schema becomes one anyOf branch",
        "FULL",
        False,
        [STR],
        {"anyOf": [STR, {"type": "null"}]},
        {("any-of-branch-added", F, 1)},
    ),
    (
        "anyOf added to a schema",
        "FULL",
        False,
        [obj({})],
        obj({}, anyOf=[{"required": ["a"]}]),
        {("any-of-added", B, 1)},
    ),
    (
        "oneOf branch added",
        "FULL",
        False,
        [{"oneOf": [STR]}],
        {"oneOf": [STR, INT]},
        {("one-of-branch-added", F, 1)},
    ),
    (
        "oneOf branch removed",
        "BACKWARD",
        False,
        [{"oneOf": [STR, INT]}],
        {"oneOf": [STR]},
        {("one-of-branch-removed", B, 1)},
    ),
    (
        "allOf schema added",
        "FULL",
        False,
        [{"allOf": [STR]}],
        {"allOf": [STR, {"minLength": 1}]},
        {("all-of-schema-added", B, 1)},
    ),
    (
        "allOf schema removed",
        "FULL",
        False,
        [{"allOf": [STR, {"minLength": 1}]}],
        {"allOf": [STR]},
        {("all-of-schema-removed", F, 1)},
    ),
    # -- references and boolean schemas
    (
        "change inside a $defs schema, reached through $ref",
        "BACKWARD",
        False,
        [_defs(ADDRESS)],
        _defs(ADDRESS_V2),
        {("type-changed", B, 1)},
    ),
    ("recursive schema", "FULL", False, [TREE], TREE_V2, {("type-widened", F, 1)}),
    (
        "renamed $defs entry with the same content",
        "FULL",
        False,
        [{"$defs": {"a": STR}, **obj({"x": {"$ref": "#/$defs/a"}})}],
        {"$defs": {"b": STR}, **obj({"x": {"$ref": "#/$defs/b"}})},
        set(),
    ),
    ("true to false", "BACKWARD", False, [True], False, {("schema-now-false", B, 1)}),
    ("false to a schema", "FULL", False, [False], STR, {("schema-no-longer-false", F, 1)}),
    ("true and {} are the same schema", "FULL", False, [True], {}, set()),
    (
        "items: false added",
        "FULL",
        False,
        [{"type": "array", "prefixItems": [STR]}],
        {"type": "array", "prefixItems": [STR], "items": False},
        {("schema-now-false", B, 1)},
    ),
    # -- keywords the checker does not analyse
    (
        "not changed",
        "FULL",
        False,
        [{"not": STR}],
        {"not": INT},
        {("unanalyzed-keyword-changed", B, 1), ("unanalyzed-keyword-changed", F, 1)},
    ),
    (
        "if added",
        "BACKWARD",
        False,
        [obj({})],
        obj({}, **{"if": {"required": ["a"]}, "then": {"required": ["b"]}}),
        {("unanalyzed-keyword-changed", B, 1)},
    ),
    (
        "annotations do not matter",
        "FULL",
        False,
        [{**STR, "title": "A", "description": "x"}],
        {**STR, "title": "B", "examples": ["y"], "deprecated": True},
        set(),
    ),
    # -- modes
    ("NONE accepts anything", "NONE", False, [STR], INT, set()),
    (
        "FULL fails both ways",
        "FULL",
        False,
        [{**INT, "maximum": 10}],
        {**NUM, "maximum": 5},
        {("type-widened", F, 1), ("maximum-tightened", B, 1)},
    ),
    (
        "BACKWARD checks the latest version only",
        "BACKWARD",
        False,
        [obj({"a": STR}), obj({"a": STR, "b": INT}, **CLOSED)],
        obj({"a": STR}, **CLOSED),
        {("property-removed-from-closed-model", B, 2)},
    ),
    (
        "BACKWARD_TRANSITIVE passes when every step widens",
        "BACKWARD_TRANSITIVE",
        False,
        [{**STR, "maxLength": 5}, {**STR, "maxLength": 10}],
        {"type": ["string", "null"]},
        set(),
    ),
    (
        "BACKWARD passes: v3 reads the data of v2",
        "BACKWARD",
        False,
        [{"type": ["string", "null"]}, {**STR, "maxLength": 99}],
        STR,
        set(),
    ),
    (
        "BACKWARD_TRANSITIVE fails: v3 cannot read the data of v1",
        "BACKWARD_TRANSITIVE",
        False,
        [{"type": ["string", "null"]}, {**STR, "maxLength": 99}],
        STR,
        {("type-narrowed", B, 1)},
    ),
    (
        "FORWARD passes against the latest",
        "FORWARD",
        False,
        [{**INT, "maximum": 5}, {**INT, "maximum": 10}],
        {**INT, "maximum": 10},
        set(),
    ),
    (
        "FORWARD_TRANSITIVE fails against v1",
        "FORWARD_TRANSITIVE",
        False,
        [{**INT, "maximum": 5}, {**INT, "maximum": 10}],
        {**INT, "maximum": 10},
        {("maximum-loosened", F, 1)},
    ),
    (
        "FULL passes against the latest",
        "FULL",
        False,
        [obj({"a": STR}), obj({"a": STR, "b": INT})],
        obj({"a": STR, "b": INT}),
        set(),
    ),
    (
        "FULL_TRANSITIVE fails against v1",
        "FULL_TRANSITIVE",
        False,
        [{"enum": ["a", "b"]}, {"enum": ["a"]}],
        {"enum": ["a"]},
        {("enum-value-removed", B, 1)},
    ),
    (
        "FULL_TRANSITIVE, three versions, both ways",
        "FULL_TRANSITIVE",
        False,
        [{**INT, "maximum": 5}, {**NUM, "maximum": 5}, {**INT, "maximum": 3}],
        {**INT, "maximum": 3},
        {("maximum-tightened", B, 1), ("maximum-tightened", B, 2), ("type-narrowed", B, 2)},
    ),
    (
        "the first version is compatible with nothing to compare",
        "FULL_TRANSITIVE",
        False,
        [],
        STR,
        set(),
    ),
]


def _vector(case: Case) -> dict[str, Any]:
    name, mode, strict, previous, new, expected = case
    verdict = check(new, previous, Mode(mode), strict=strict)
    found = {(b.rule, b.direction, b.against_version) for b in verdict.breaking}
    if found != expected:  # pragma: no cover - the checker or the table is wrong
        raise SystemExit(
            f"compat vector {name!r}: expected {sorted(expected)}, got {sorted(found)}"
        )
    return {
        "name": name,
        "mode": mode,
        "strict": strict,
        "previous": previous,
        "new": new,
        "compatible": verdict.compatible,
        "breaking": [
            {k: v for k, v in b.to_dict().items() if k != "message"} for b in verdict.breaking
        ],
    }


def build() -> dict[str, Any]:
    names = [case[0] for case in CASES]
    if len(set(names)) != len(names):  # pragma: no cover - a broken vector table
        raise SystemExit("duplicate compat vector name")
    if {case[1] for case in CASES} != {m.value for m in Mode}:  # pragma: no cover
        raise SystemExit("compat vectors must cover every mode")
    return {
        "description": "JSON Schema compatibility checks (statesync.contracts.compat); "
        "see conformance/README.md",
        "format_version": FORMAT_VERSION,
        "vectors": [_vector(case) for case in CASES],
    }
