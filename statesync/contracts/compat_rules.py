"""The rules behind `statesync.contracts.compat`: how a change to a schema moves its set of values.

Every rule compares one keyword (or one group of related keywords) of two schemas and says
whether the new set of valid values is narrower (some data written under the old schema is
invalid under the new one: breaks BACKWARD), wider (breaks FORWARD), both or neither. Each
finding carries a message template in which `OLD` and `NEW` stand for the two schemas' names, so
that `compat` can say "the old schema" in a diff and "v1" in a verdict.

Pure: no I/O. Local `$ref` are resolved against each schema's own root document.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, TypeGuard
from urllib.parse import unquote

BACKWARD = "backward"
FORWARD = "forward"
NARROWING = frozenset({BACKWARD})
WIDENING = frozenset({FORWARD})
BOTH = frozenset({BACKWARD, FORWARD})
NEITHER: frozenset[str] = frozenset()

Obj = Mapping[str, Any]  # a schema that is a JSON object

# Placeholders for the two schemas' names in message templates. JSON rendering of user
# values escapes control characters, so these can never come from a schema.
OLD = "\x1eOLD\x1e"
NEW = "\x1eNEW\x1e"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ANNOTATIONS = _words(
    "$schema $id $anchor $dynamicAnchor $comment $defs definitions $vocabulary title "
    "description default examples deprecated readOnly writeOnly contentEncoding "
    "contentMediaType contentSchema"
)
UNANALYZED = _words(
    "not if then else dependentSchemas dependentRequired unevaluatedProperties "
    "unevaluatedItems contains minContains maxContains $dynamicRef $recursiveRef"
)
_NUMBER_KWS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING_KWS = ("minLength", "maxLength", "pattern", "format")
_ARRAY_KWS = ("items", "prefixItems", "minItems", "maxItems", "uniqueItems")
_OBJECT_KWS = _words(
    "properties patternProperties additionalProperties required propertyNames "
    "minProperties maxProperties"
)
ANALYZED = _words("type enum const anyOf oneOf allOf $ref").union(
    _NUMBER_KWS, _STRING_KWS, _ARRAY_KWS, _OBJECT_KWS
)
_SINGLE: tuple[str, ...] = ("additionalProperties", "propertyNames", "items", "contains", "not")
_SINGLE += ("if", "then", "else", "unevaluatedItems", "unevaluatedProperties", "contentSchema")
_LISTS = ("prefixItems", "allOf", "anyOf", "oneOf")
_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")

ALL_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_SAMPLE = dict(
    zip(sorted(ALL_TYPES), ("[]", "true", "1", "null", "1.5", "{}", '"text"'), strict=True)
)
_COUNTED = {
    "Length": ("a string", "characters", "character"),
    "Items": ("an array", "items", "item"),
    "Properties": ("an object", "properties", "property"),
}


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference: where, which rule, which directions break, and why (a template)."""

    path: str
    rule: str
    breaks: frozenset[str]
    summary: str  # what changed, in a few words, with the values
    template: str  # the whole explanation; OLD and NEW stand for the schemas' names

    def render(self, old: str, new: str) -> str:
        return self.template.replace(OLD, old).replace(NEW, new)


def narrowing(path: str, rule: str, what: str, example: str | None = None) -> Finding:
    text = (
        f"{what}: {example or 'some data'} written under {OLD} is invalid under {NEW}, so "
        f"readers using {NEW} cannot read all data written with {OLD} (breaks backward)"
    )
    return Finding(path, rule, NARROWING, what, text)


def widening(path: str, rule: str, what: str, example: str | None = None) -> Finding:
    text = (
        f"{what}: {example or 'some data'} written under {NEW} is invalid under {OLD}, so "
        f"readers still using {OLD} cannot read all data written with {NEW} (breaks forward)"
    )
    return Finding(path, rule, WIDENING, what, text)


def changed(path: str, rule: str, what: str, old_ex: str, new_ex: str) -> Finding:
    text = (
        f"{what}: {old_ex} written under {OLD} is invalid under {NEW} (breaks backward), and "
        f"{new_ex} written under {NEW} is invalid under {OLD} (breaks forward)"
    )
    return Finding(path, rule, BOTH, what, text)


def breaks_text(breaks: frozenset[str]) -> str:
    return "breaks " + " and ".join(sorted(breaks)) if breaks else "compatible both ways"


def note(path: str, rule: str, what: str, why: str) -> Finding:
    return Finding(path, rule, NEITHER, what, f"{what}: {why}")


def show(value: object) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 80 else text[:77] + "..."


def escape(token: str) -> str:
    """One JSON Pointer reference token (RFC 6901)."""
    return token.replace("~", "~0").replace("/", "~1")


def kebab(keyword: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"-\1", keyword).lower()


def json_key(value: object) -> object:
    """A hashable key equal for equal JSON values (1 == 1.0, but true != 1)."""
    if isinstance(value, bool) or value is None:
        return ("lit", value)
    if isinstance(value, int | float):
        return ("num", Fraction(value))
    if isinstance(value, str):
        return ("str", value)
    if isinstance(value, Mapping):
        return ("obj", frozenset((k, json_key(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("arr", tuple(json_key(v) for v in value))
    return ("other", repr(value))


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


# -- walking and resolving -----------------------------------------------------


def subschemas(schema: object, path: str = "") -> Iterator[tuple[str, object]]:
    """Every schema in `schema` (itself first) with its JSON Pointer, by keyword position."""
    yield path, schema
    if not isinstance(schema, Mapping):
        return
    for kw in _SINGLE:
        if kw in schema:
            yield from subschemas(schema[kw], f"{path}/{kw}")
    for kw in _LISTS:
        if isinstance(schema.get(kw), list):
            for i, sub in enumerate(schema[kw]):
                yield from subschemas(sub, f"{path}/{kw}/{i}")
    for kw in _MAPS:
        if isinstance(schema.get(kw), Mapping):
            for name, sub in schema[kw].items():
                yield from subschemas(sub, f"{path}/{kw}/{escape(name)}")


def lookup(root: object, ref: str) -> object | None:
    """The target of a local reference ("#", "#/json/pointer" or "#anchor"), or None."""
    if not ref.startswith("#"):
        return None
    fragment = unquote(ref[1:])
    if not fragment.startswith("/") and fragment:
        for _, sub in subschemas(root):
            if isinstance(sub, Mapping) and fragment in (
                sub.get("$anchor"),
                sub.get("$dynamicAnchor"),
            ):
                return sub
        return None
    node: object = root
    for token in fragment.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and token in node:
            node = node[token]
        elif isinstance(node, list) and token.isdigit() and int(token) < len(node):
            node = node[int(token)]
        else:
            return None
    return node


def resolve(root: object, schema: object) -> tuple[object, tuple[str, ...]]:
    """Follow `$ref` (merging sibling keywords); return the schema and the refs followed."""
    chain: list[str] = []
    while isinstance(schema, Mapping) and isinstance(schema.get("$ref"), str):
        ref = schema["$ref"]
        target = lookup(root, ref)
        if ref in chain or target is None:
            break  # a reference loop with no structure, or dangling: compared literally
        chain.append(ref)
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        assertions = {k: v for k, v in rest.items() if k not in ANNOTATIONS}
        if isinstance(target, bool):
            schema = ({**rest} if assertions or rest else True) if target else False
        elif not isinstance(target, Mapping):
            break
        elif set(assertions) & set(target):
            notes = {k: v for k, v in rest.items() if k in ANNOTATIONS}
            schema = {**notes, "allOf": [target, assertions]}
        else:
            schema = {**target, **rest}
    return schema, tuple(chain)


# -- types ---------------------------------------------------------------------


def type_set(schema: Obj) -> frozenset[str]:
    """The JSON types a schema's `type` admits ("integer" is part of "number")."""
    declared = schema.get("type")
    if declared is None:
        return ALL_TYPES
    if isinstance(declared, str):
        names = {declared}
    elif isinstance(declared, list) and all(isinstance(t, str) for t in declared):
        names = set(declared)
    else:  # not a valid schema (check_schema refuses it): assume any type
        return ALL_TYPES
    if "number" in names:
        names.add("integer")
    return frozenset(names)


def accepts(types: frozenset[str], family: str) -> bool:
    return ("integer" if family == "number" else family) in types


def type_rule(old: Obj, new: Obj, path: str) -> list[Finding]:
    ot, nt = type_set(old), type_set(new)
    if ot == nt:
        return []
    was = show(old["type"]) if "type" in old else "any type"
    now = show(new["type"]) if "type" in new else "any type"
    lost, gained = sorted(ot - nt), sorted(nt - ot)
    at = f"{path}/type"
    if not gained:
        what = f"type narrowed from {was} to {now}"
        return [narrowing(at, "type-narrowed", what, f"the value {_SAMPLE[lost[0]]}")]
    if not lost:
        what = f"type widened from {was} to {now}"
        return [widening(at, "type-widened", what, f"the value {_SAMPLE[gained[0]]}")]
    what = f"type changed from {was} to {now}"
    old_ex, new_ex = f"the value {_SAMPLE[lost[0]]}", f"the value {_SAMPLE[gained[0]]}"
    return [changed(at, "type-changed", what, old_ex, new_ex)]


# -- values: enum and const ----------------------------------------------------


def enum_rule(old: Obj, new: Obj, path: str) -> list[Finding]:
    at = f"{path}/enum"
    if "enum" not in old:
        what = f"enum {show(new['enum'])} added"
        return [narrowing(at, "enum-added", what, "a value outside the new enum")]
    if "enum" not in new:
        what = f"enum {show(old['enum'])} removed"
        return [widening(at, "enum-removed", what, "a value outside the old enum")]
    old_keys = {json_key(v) for v in old["enum"]}
    new_keys = {json_key(v) for v in new["enum"]}
    removed = [v for v in old["enum"] if json_key(v) not in new_keys]
    added = [v for v in new["enum"] if json_key(v) not in old_keys]
    out = []
    if removed:
        what = f"enum value(s) {show(removed)} removed"
        out.append(narrowing(at, "enum-value-removed", what, f"the value {show(removed[0])}"))
    if added:
        what = f"enum value(s) {show(added)} added"
        out.append(widening(at, "enum-value-added", what, f"the value {show(added[0])}"))
    return out


def const_rule(old: Obj, new: Obj, path: str) -> list[Finding]:
    at = f"{path}/const"
    if "const" not in old:
        what = f"const {show(new['const'])} added"
        return [narrowing(at, "const-added", what, "any other value")]
    if "const" not in new:
        what = f"const {show(old['const'])} removed"
        return [widening(at, "const-removed", what, "any other value")]
    was, now = show(old["const"]), show(new["const"])
    what = f"const changed from {was} to {now}"
    return [changed(at, "const-changed", what, f"the value {was}", f"the value {now}")]


# -- numbers -------------------------------------------------------------------


_Bound = tuple[str, int | float, bool]  # (keyword, value, exclusive)


def _bound(schema: Obj, upper: bool) -> _Bound | None:
    """The tightest (keyword, value, exclusive) among a schema's lower or upper bounds."""
    names = ("maximum", "exclusiveMaximum") if upper else ("minimum", "exclusiveMinimum")
    found = [(kw, schema[kw], kw.startswith("exclusive")) for kw in names if kw in schema]
    found = [b for b in found if _is_number(b[1])]
    if not found:
        return None
    sign = 1 if upper else -1
    return min(found, key=lambda b: (sign * b[1], not b[2]))


def _inside(x: float, bound: _Bound | None, upper: bool) -> bool:
    if bound is None:
        return True
    _, v, exclusive = bound
    if upper:
        return x < v if exclusive else x <= v
    return x > v if exclusive else x >= v


def _witness(a: _Bound, b: _Bound, upper: bool) -> str | None:
    """A number inside bound `a` and outside bound `b`, preferring the midpoint."""
    mid = (a[1] + b[1]) / 2
    if isinstance(a[1], int) and isinstance(b[1], int) and mid == int(mid):
        mid = int(mid)
    for x in (mid, a[1]):
        if _inside(x, a, upper) and not _inside(x, b, upper):
            return f"the value {x}"
    return None


def bound_rule(old: Obj, new: Obj, path: str, upper: bool) -> list[Finding]:
    """minimum/exclusiveMinimum (upper=False) or maximum/exclusiveMaximum, taken together."""
    ob, nb = _bound(old, upper), _bound(new, upper)
    step = 1 if upper else -1
    if ob == nb:
        return []
    if nb is None:
        kw, value, _ = ob  # type: ignore[misc]  # ob == nb ruled out both None
        what, example = f"{kw} {value} removed", f"the value {value + step}"
        return [widening(f"{path}/{kw}", f"{kebab(kw)}-removed", what, example)]
    if ob is None:
        kw, value, _ = nb
        what, example = f"{kw} {value} added", f"the value {value + step}"
        return [narrowing(f"{path}/{kw}", f"{kebab(kw)}-added", what, example)]
    tighter = (step * nb[1], not nb[2]) < (step * ob[1], not ob[2])
    verb = "tightened" if tighter else "loosened"
    what = f"{nb[0]} {verb} from {ob[1]} to {nb[1]}"
    if ob[0] != nb[0]:
        side = "upper" if upper else "lower"
        what = f"{side} bound {verb} from {ob[0]} {ob[1]} to {nb[0]} {nb[1]}"
    rule, at = f"{kebab(nb[0])}-{verb}", f"{path}/{nb[0]}"
    if tighter:
        return [narrowing(at, rule, what, _witness(ob, nb, upper))]
    return [widening(at, rule, what, _witness(nb, ob, upper))]


def _fraction(value: int | float) -> Fraction:
    return Fraction(str(value)) if isinstance(value, float) else Fraction(value)


def multiple_of_rule(old: Obj, new: Obj, path: str) -> list[Finding]:
    om, nm = old.get("multipleOf"), new.get("multipleOf")
    at = f"{path}/multipleOf"
    if not _is_number(om) and not _is_number(nm):
        return []
    if not _is_number(om):
        ex = f"a number that is not a multiple of {nm}"
        return [narrowing(at, "multiple-of-added", f"multipleOf {nm} added", ex)]
    if not _is_number(nm):
        ex = f"a number that is not a multiple of {om}"
        return [widening(at, "multiple-of-removed", f"multipleOf {om} removed", ex)]
    o, n = _fraction(om), _fraction(nm)
    if o == n:
        return []
    if (n / o).denominator == 1:
        what = f"multipleOf tightened from {om} to {nm}"
        return [narrowing(at, "multiple-of-tightened", what, f"the value {om}")]
    if (o / n).denominator == 1:
        what = f"multipleOf loosened from {om} to {nm}"
        return [widening(at, "multiple-of-loosened", what, f"the value {nm}")]
    what = f"multipleOf changed from {om} to {nm}"
    return [changed(at, "multiple-of-changed", what, f"the value {om}", f"the value {nm}")]


# -- counts: lengths, item and property counts ----------------------------------


def count_rule(old: Obj, new: Obj, path: str, kw: str) -> list[Finding]:
    """minLength/maxLength, minItems/maxItems, minProperties/maxProperties."""
    noun, units, unit = _COUNTED[kw[3:]]
    upper = kw.startswith("max")
    o, n = old.get(kw, None if upper else 0), new.get(kw, None if upper else 0)
    if o == n:
        return []
    # A larger lower bound, or a smaller upper bound, is tighter; None is no upper bound.
    tighter = (n is not None and (o is None or n < o)) if upper else n > o
    suffix = "added" if kw not in old else "removed" if kw not in new else None
    suffix = suffix or ("tightened" if tighter else "loosened")
    was, now = old.get(kw, "absent"), new.get(kw, "absent")
    what, rule, at = f"{kw} {suffix} ({was} -> {now})", f"{kebab(kw)}-{suffix}", f"{path}/{kw}"
    if tighter:  # a size the old bound allows and the new one does not
        size = (o if o is not None else n + 1) if upper else o
        return [narrowing(at, rule, what, f"{noun} with {size} {unit if size == 1 else units}")]
    size = (n if n is not None else o + 1) if upper else n
    return [widening(at, rule, what, f"{noun} with {size} {unit if size == 1 else units}")]


# -- strings: pattern and format -----------------------------------------------


def assertion_rule(old: Obj, new: Obj, path: str, kw: str) -> list[Finding]:
    """`pattern` and `format` (format is treated as an assertion, as statesync validates it)."""
    o, n = old.get(kw), new.get(kw)
    if o == n:
        return []
    at, rule = f"{path}/{kw}", kebab(kw)
    if kw == "pattern":
        old_ex = f"a string that matches {show(o)} but not {show(n)}"
        new_ex = f"a string that matches {show(n)} but not {show(o)}"
    else:
        old_ex = f"a string of format {show(o)} that is not of format {show(n)}"
        new_ex = f"a string of format {show(n)} that is not of format {show(o)}"
    if o is None:
        what, ex = f"{kw} {show(n)} added", f"a string that does not satisfy {kw} {show(n)}"
        return [narrowing(at, f"{rule}-added", what, ex)]
    if n is None:
        what, ex = f"{kw} {show(o)} removed", f"a string that does not satisfy {kw} {show(o)}"
        return [widening(at, f"{rule}-removed", what, ex)]
    what = f"{kw} changed from {show(o)} to {show(n)}"
    return [changed(at, f"{rule}-changed", what, old_ex, new_ex)]


def unique_items_rule(old: Obj, new: Obj, path: str) -> list[Finding]:
    o, n = old.get("uniqueItems") is True, new.get("uniqueItems") is True
    if o == n:
        return []
    at, ex = f"{path}/uniqueItems", "an array with duplicate items"
    if n:
        return [narrowing(at, "unique-items-added", "uniqueItems added", ex)]
    return [widening(at, "unique-items-removed", "uniqueItems removed", ex)]


def false_rule(old: object, new: object, path: str) -> list[Finding]:
    if new is False:
        what = f"schema {show(old)} replaced by false (no value is valid)"
        return [narrowing(path, "schema-now-false", what, "any value")]
    what = f"schema false (no value is valid) replaced by {show(new)}"
    return [widening(path, "schema-no-longer-false", what, "a value valid under it")]


def keyword_rule(old: Obj, new: Obj, path: str, kw: str) -> list[Finding]:
    """A keyword this checker does not analyse changed: breaking both ways, to be reviewed."""
    o, n = old.get(kw), new.get(kw)
    if json_key(o) == json_key(n) and (kw in old) == (kw in new):
        return []
    was = show(o) if kw in old else "absent"
    now = show(n) if kw in new else "absent"
    what = f"{kw} changed from {was} to {now}"
    at = f"{path}/{escape(kw)}"
    if kw not in UNANALYZED and kw not in ANALYZED:
        why = (
            f"{show(kw)} is not a JSON Schema 2020-12 keyword, so validators ignore it "
            "and the set of valid values does not change"
        )
        return [note(at, "unknown-keyword-changed", what, why)]
    return [
        Finding(
            at,
            "unanalyzed-keyword-changed",
            BOTH,
            what,
            f"{what}: the compatibility checker does not analyse {kw}, so it cannot tell "
            f"whether data written under {OLD} stays valid under {NEW} or the other way "
            "round, and reports the change as breaking both ways (review it by hand; if it "
            "is safe, register the version with --force and a recorded reason)",
        )
    ]


def default_rule(old: Obj, new: Obj, path: str) -> list[Finding]:
    if json_key(old.get("default")) == json_key(new.get("default")) and (
        ("default" in old) == ("default" in new)
    ):
        return []
    was = show(old["default"]) if "default" in old else "absent"
    now = show(new["default"]) if "default" in new else "absent"
    why = (
        "default is an annotation, so the set of valid values does not change; readers "
        "and translations that fill in missing values now use the new default"
    )
    return [note(f"{path}/default", "default-changed", f"default changed from {was} to {now}", why)]
