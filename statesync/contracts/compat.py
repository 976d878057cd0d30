"""Structural compatibility of JSON Schema versions (draft 2020-12), the way a registry gates them.

This module owns the answer to "may this schema follow those?": `diff` lists every difference
between two schemas with the direction it breaks, `check` applies a compatibility mode to a new
version and its predecessors, and `check_schema` refuses what is not a valid, self-contained
draft 2020-12 schema. It does no I/O, keeps no state and never looks at data.

Directions follow Confluent Schema Registry: BACKWARD means readers using the new schema can
read data written with the old one, so a *narrowing* (fewer valid values) breaks backward;
FORWARD means readers using the old schema can read data written with the new one, so a
*widening* breaks forward. A change that is neither (string -> integer) breaks both.

Properties follow the content-model reading of JSON Schema compatibility. In a closed model
(`additionalProperties: false`) adding an optional property widens and removing one narrows. In
an open model (no `additionalProperties`, or `true`) the strict reading is the reverse: data
written under the old schema may already hold the new name with any value. That reading makes
an open model impossible to evolve under FULL, so by default (`strict=False`) adding or
removing an *optional* property of an open model is compatible, and a note says what the strict
reading (`strict=True`) would report and how to be strictly safe. In a partially open model
(`patternProperties`, or an `additionalProperties` schema) the property is compared with what
the model already allowed for that name.

The checker is conservative: a keyword it cannot reason about (`not`, `if`/`then`/`else`,
`dependentSchemas`, ...) is reported as breaking both ways, never passed silently.

The normative text is docs/contracts.md ("The compatibility check"); this module is the
reference implementation, held to conformance/compat/vectors.json.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import jsonschema_rs

from statesync.contracts import compat_rules as r
from statesync.contracts.compat_rules import BACKWARD, FORWARD, OLD, Finding, Obj
from statesync.core.errors import InvalidSchemaError

__all__ = ["Breaking", "Difference", "Mode", "Verdict", "check", "check_schema", "diff"]


class Mode(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def directions(self) -> frozenset[str]:
        """The directions this mode requires to hold."""
        base = self.value.removesuffix("_TRANSITIVE")
        return {
            "NONE": frozenset(),
            "BACKWARD": frozenset({BACKWARD}),
            "FORWARD": frozenset({FORWARD}),
            "FULL": frozenset({BACKWARD, FORWARD}),
        }[base]

    @property
    def transitive(self) -> bool:
        return self.value.endswith("_TRANSITIVE")


@dataclass(frozen=True, slots=True)
class Difference:
    """One structural difference and its verdict; `breaks` empty means compatible both ways."""

    path: str  # JSON Pointer into the schema, e.g. "/properties/zip/maxLength"
    rule: str  # stable kebab-case id, e.g. "maximum-tightened"
    breaks: frozenset[str]  # subset of {"backward", "forward"}
    message: str


@dataclass(frozen=True, slots=True)
class Breaking:
    """A difference that breaks the mode in one direction, against one earlier version."""

    path: str
    rule: str
    direction: str  # "backward" | "forward"
    against_version: int
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "rule": self.rule,
            "direction": self.direction,
            "against_version": self.against_version,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Verdict:
    mode: Mode
    version: int  # the new version's number
    compatible: bool
    breaking: tuple[Breaking, ...]
    notes: tuple[Difference, ...]  # differences from the latest version that do not break
    checked_against: tuple[int, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "mode": self.mode.value,
            "version": self.version,
            "compatible": self.compatible,
            "checked_against": list(self.checked_against),
            "breaking": [b.to_dict() for b in self.breaking],
            "notes": [
                {"path": n.path, "rule": n.rule, "breaks": sorted(n.breaks), "message": n.message}
                for n in self.notes
            ],
        }


def diff(
    old: Mapping[str, Any] | bool, new: Mapping[str, Any] | bool, *, strict: bool = False
) -> list[Difference]:
    """Every difference between two schemas, with the directions each one breaks."""
    return [
        Difference(f.path, f.rule, f.breaks, f.render("the old schema", "the new schema"))
        for f in _findings(old, new, strict)
    ]


def _findings(old: object, new: object, strict: bool) -> list[Finding]:
    return _Comparer(old, new, strict=strict).compare(old, new, "")


def check(
    new: Mapping[str, Any] | bool,
    previous: Sequence[Mapping[str, Any] | bool],
    mode: Mode | str,
    *,
    strict: bool = False,
) -> Verdict:
    """Whether `new` (version len(previous) + 1) may follow `previous` (oldest first) in `mode`.

    Non-transitive modes compare with the latest version only, transitive ones with every
    version; NONE compares with none but still lists the differences from the latest as notes.
    """
    mode = Mode(mode.upper()) if isinstance(mode, str) else mode
    version = len(previous) + 1
    if not previous or mode is Mode.NONE:
        against: list[int] = []
    elif mode.transitive:
        against = list(range(1, version))
    else:
        against = [version - 1]
    compared = {k: _findings(previous[k - 1], new, strict) for k in {*against, version - 1} if k}
    breaking: list[Breaking] = []
    for k in against:
        for f in compared[k]:
            message = f.render(f"v{k}", f"v{version}")
            for direction in sorted(f.breaks & mode.directions):
                b = Breaking(f.path, f.rule, direction, k, message)
                if b not in breaking:
                    breaking.append(b)
    notes = [
        Difference(f.path, f.rule, f.breaks, f.render(f"v{version - 1}", f"v{version}"))
        for f in compared.get(version - 1, [])
        if not f.breaks & mode.directions
    ]
    return Verdict(mode, version, not breaking, tuple(breaking), tuple(notes), tuple(against))


# -- comparing two schemas -------------------------------------------------------------


def _has_assertions(schema: object) -> bool:
    return schema is False or (
        isinstance(schema, Mapping) and any(k not in r.ANNOTATIONS for k in schema)
    )


def _only(schema: Obj, kw: str) -> bool:
    return all(k == kw or k in r.ANNOTATIONS for k in schema)


class _Comparer:
    """Walks two schemas side by side; `compare(old, new, path)` returns the findings."""

    def __init__(self, old_root: object, new_root: object, *, strict: bool) -> None:
        self.old_root = old_root
        self.new_root = new_root
        self.strict = strict
        self._active: set[tuple[tuple[str, ...], tuple[str, ...]]] = set()

    def compare(self, old: object, new: object, path: str) -> list[Finding]:
        old, old_refs = r.resolve(self.old_root, old)
        new, new_refs = r.resolve(self.new_root, new)
        if not (old_refs and new_refs):
            return self._resolved(old, new, path)
        key = (old_refs, new_refs)
        if key in self._active:  # a recursive schema: this pair is being compared already
            return []
        self._active.add(key)
        try:
            return self._resolved(old, new, path)
        finally:
            self._active.discard(key)

    def _resolved(self, old: object, new: object, path: str) -> list[Finding]:
        if r.json_key(old) == r.json_key(new):
            return []
        old = {} if old is True else old
        new = {} if new is True else new
        if new is False or old is False:
            return r.false_rule(old, new, path)
        if not isinstance(old, Mapping) or not isinstance(new, Mapping):
            what = f"schema changed from {r.show(old)} to {r.show(new)}"
            why = "one of them is not a JSON Schema object or boolean"
            return [r.Finding(path, "unanalyzed-keyword-changed", r.BOTH, what, f"{what}: {why}")]
        for kw in ("anyOf", "oneOf"):
            # {"type": "string"} -> {"anyOf": [{"type": "string"}, {"type": "null"}]}: one branch.
            if kw in new and kw not in old and _only(new, kw) and _has_assertions(old):
                return self._branches(kw, [old], new[kw], path, wrapped="old")
            if kw in old and kw not in new and _only(old, kw) and _has_assertions(new):
                return self._branches(kw, old[kw], [new], path, wrapped="new")
        return self._keywords(old, new, path)

    def _keywords(self, old: Obj, new: Obj, path: str) -> list[Finding]:
        out = r.type_rule(old, new, path)
        if "enum" in old or "enum" in new:
            out += r.enum_rule(old, new, path)
        if "const" in old or "const" in new:
            out += r.const_rule(old, new, path)
        types = r.type_set(old) & r.type_set(new)  # families only one side admits: see type
        if r.accepts(types, "number"):
            out += r.bound_rule(old, new, path, upper=False)
            out += r.bound_rule(old, new, path, upper=True)
            out += r.multiple_of_rule(old, new, path)
        if r.accepts(types, "string"):
            for kw in ("minLength", "maxLength"):
                out += r.count_rule(old, new, path, kw)
            for kw in ("pattern", "format"):
                out += r.assertion_rule(old, new, path, kw)
        if r.accepts(types, "array"):
            out += self._arrays(old, new, path)
        if r.accepts(types, "object"):
            out += self._objects(old, new, path)
        for kw in ("anyOf", "oneOf"):
            if kw in old or kw in new:
                out += self._combinator(kw, old, new, path)
        if "allOf" in old or "allOf" in new:
            out += self._all_of(old.get("allOf", []), new.get("allOf", []), path)
        for kw in sorted((old.keys() | new.keys()) - r.ANALYZED - r.ANNOTATIONS):
            out += r.keyword_rule(old, new, path, kw)
        if "$ref" in old or "$ref" in new:  # only a dangling reference is left unresolved
            out += r.keyword_rule(old, new, path, "$ref")
        return out + r.default_rule(old, new, path)

    # -- arrays --------------------------------------------------------------------

    def _arrays(self, old: Obj, new: Obj, path: str) -> list[Finding]:
        out: list[Finding] = []
        op, np_ = old.get("prefixItems", []), new.get("prefixItems", [])
        oi, ni = old.get("items", True), new.get("items", True)
        if not all(isinstance(x, list) for x in (op, np_)) or any(
            isinstance(x, list) for x in (oi, ni)
        ):
            return [*r.keyword_rule(old, new, path, "prefixItems")]
        for i in range(max(len(op), len(np_))):
            o = op[i] if i < len(op) else oi
            n = np_[i] if i < len(np_) else ni
            out += self.compare(o, n, f"{path}/prefixItems/{i}")
        out += self.compare(oi, ni, f"{path}/items")
        for kw in ("minItems", "maxItems"):
            out += r.count_rule(old, new, path, kw)
        return out + r.unique_items_rule(old, new, path)

    # -- objects -------------------------------------------------------------------

    def _objects(self, old: Obj, new: Obj, path: str) -> list[Finding]:
        op, np_ = old.get("properties", {}), new.get("properties", {})
        if not isinstance(op, Mapping) or not isinstance(np_, Mapping):
            return r.keyword_rule(old, new, path, "properties")
        out: list[Finding] = []
        for name in [*np_, *(n for n in op if n not in np_)]:
            at = f"{path}/properties/{r.escape(name)}"
            if name in op and name in np_:
                out += self.compare(op[name], np_[name], at)
            elif name in np_:
                out += self._member(old, name, np_[name], at, added=True)
            else:
                out += self._member(new, name, op[name], at, added=False)
        out += self._required(old, new, path)
        out += self._additional(old, new, path)
        out += self._patterns(old, new, path)
        out += self.compare(
            old.get("propertyNames", True), new.get("propertyNames", True), f"{path}/propertyNames"
        )
        for kw in ("minProperties", "maxProperties"):
            out += r.count_rule(old, new, path, kw)
        return out

    def _model(self, schema: Obj, name: str) -> tuple[object, str, str]:
        """What `schema` allows for an undeclared `name`: (schema, model, its source)."""
        patterns = schema.get("patternProperties")
        hits = [(p, s) for p, s in patterns.items() if _matches(p, name)] if patterns else []
        if hits:
            allowed = hits[0][1] if len(hits) == 1 else {"allOf": [s for _, s in hits]}
            return allowed, "partially open", f"patternProperties {r.show([p for p, _ in hits])}"
        extra = schema.get("additionalProperties", True)
        if extra is False:
            return False, "closed", "additionalProperties: false"
        if extra is True or extra == {}:
            return True, "open", "additionalProperties (absent or true)"
        return extra, "partially open", f"additionalProperties {r.show(extra)}"

    def _member(
        self, other: Obj, name: str, prop: object, at: str, *, added: bool
    ) -> list[Finding]:
        """A property declared on one side only, against what the other side allows for it.

        One direction breaks in any reading: readers validate the name against what their
        model allows. The other breaks only in the strict reading: data written on the other
        side never declared the name, but could have held it with any value the model allowed.
        """
        allowed, model, source = self._model(other, name)
        inner = self.compare(allowed, prop, at) if added else self.compare(prop, allowed, at)
        real, loose = (FORWARD, BACKWARD) if added else (BACKWARD, FORWARD)
        writer, reader = (r.NEW, OLD) if added else (OLD, r.NEW)
        breaks = frozenset().union(*(f.breaks for f in inner))
        details, shown = "; ".join(f.summary for f in inner if f.breaks), r.show(name)
        verb = "added to" if added else "removed from"
        rule = f"property-{verb.replace(' ', '-')}-{model.replace(' ', '-')}-model"
        article = "an" if model == "open" else "a"
        what = f"property {shown} {verb} {article} {model} content model"
        what += f" ({source})" if model == "partially open" else ""
        loose_text = (
            f"data written under {reader} could hold {shown} with any value allowed by "
            f"{source}, and readers using {writer} reject some of them ({details})"
        )
        reasons = []
        if real in breaks and model == "closed":
            reasons.append(
                f"readers using {reader} reject every object holding {shown} ({source}), and "
                f"data written under {writer} may hold it (breaks {real})"
            )
        elif real in breaks:
            reasons.append(
                f"readers using {reader} validate {shown} against {source}, which rejects some "
                f"values data written under {writer} may hold there ({details}) (breaks {real})"
            )
        if loose in breaks and self.strict:
            reasons.append(f"under the strict reading, {loose_text} (breaks {loose})")
        if reasons:
            found = breaks & {real, loose} if self.strict else breaks & {real}
            return [Finding(at, rule, found, what, f"{what}: " + "; and ".join(reasons))]
        if loose not in breaks:
            why = f"compatible both ways: the property's schema allows exactly what {source} allows"
        else:
            safe = (
                "close the model (additionalProperties: false) or use a partially open model "
                "(patternProperties) whose schema covers the property"
                if added
                else "keep the property declared (deprecated) or close the model"
            )
            why = (
                f"compatible under the practical reading (strict=False), which takes data "
                f"written under {reader} not to hold the undeclared {shown}. The strict reading "
                f"(strict=True) would report that {loose_text}, which breaks {loose}. To be "
                f"strictly safe, {safe}"
            )
        return [r.note(at, rule, what, why)]

    def _required(self, old: Obj, new: Obj, path: str) -> list[Finding]:
        o, n = old.get("required", []), new.get("required", [])
        if not isinstance(o, list) or not isinstance(n, list):
            return r.keyword_rule(old, new, path, "required")
        out, at = [], f"{path}/required"
        for added, schema, root in ((True, new, self.new_root), (False, old, self.old_root)):
            names = [x for x in n if x not in o] if added else [x for x in o if x not in n]
            writer, reader = (OLD, r.NEW) if added else (r.NEW, OLD)
            rule = "required-added" if added else "required-removed"
            for name in names:
                shown, default = r.show(name), self._default(root, schema, name)
                what = f"property {shown} {'became' if added else 'is no longer'} required"
                if default is None:
                    make, full = (
                        (r.narrowing, f"{rule}-without-default") if added else (r.widening, rule)
                    )
                    out.append(make(at, full, what, f"an object without {shown}"))
                    continue
                why = (
                    f"its schema under {reader} has a default ({default}), so data written under "
                    f"{writer} without it is read under {reader} with the default filled in by "
                    "the translation or the reader; not breaking"
                )
                out.append(r.note(at, f"{rule}-with-default", what, why))
        return out

    @staticmethod
    def _default(root: object, schema: Obj, name: str) -> str | None:
        props = schema.get("properties")
        prop = props.get(name) if isinstance(props, Mapping) else None
        prop, _ = r.resolve(root, prop)
        return r.show(prop["default"]) if isinstance(prop, Mapping) and "default" in prop else None

    def _additional(self, old: Obj, new: Obj, path: str) -> list[Finding]:
        o, n = old.get("additionalProperties", True), new.get("additionalProperties", True)
        at = f"{path}/additionalProperties"
        if (o is False) == (n is False):
            return self.compare(o, n, at)
        ex = "an object with a property the schema does not declare"
        if n is False:
            what = f"additionalProperties closed (from {r.show(o)} to false)"
            return [r.narrowing(at, "additional-properties-closed", what, ex)]
        what = f"additionalProperties opened (from false to {r.show(n)})"
        return [r.widening(at, "additional-properties-opened", what, ex)]

    def _patterns(self, old: Obj, new: Obj, path: str) -> list[Finding]:
        o, n = old.get("patternProperties", {}), new.get("patternProperties", {})
        if not isinstance(o, Mapping) or not isinstance(n, Mapping):
            return r.keyword_rule(old, new, path, "patternProperties")
        out: list[Finding] = []
        for pattern in [*n, *(p for p in o if p not in n)]:
            at = f"{path}/patternProperties/{r.escape(pattern)}"
            if pattern in o and pattern in n:
                out += self.compare(o[pattern], n[pattern], at)
                continue
            added = pattern in n
            if added:
                inner = self.compare(old.get("additionalProperties", True), n[pattern], at)
            else:
                inner = self.compare(o[pattern], new.get("additionalProperties", True), at)
            breaks = frozenset().union(*(f.breaks for f in inner))
            if breaks:
                details = "; ".join(f.summary for f in inner if f.breaks)
                verb = "added" if added else "removed"
                what = f"patternProperties {r.show(pattern)} {verb}"
                pat, extra = "the pattern's schema", "additionalProperties"
                before, after = (extra, pat) if added else (pat, extra)
                why = (
                    f"properties matching it were checked against {before} under {OLD} and are "
                    f"checked against {after} under {r.NEW}, which differ ({details}) "
                    f"({r.breaks_text(breaks)})"
                )
                out.append(Finding(at, f"pattern-property-{verb}", breaks, what, f"{what}: {why}"))
        return out

    # -- combinators -----------------------------------------------------------------

    def _combinator(self, kw: str, old: Obj, new: Obj, path: str) -> list[Finding]:
        if kw in old and kw in new:
            return self._branches(kw, old[kw], new[kw], path)
        rule, at = r.kebab(kw), f"{path}/{kw}"
        ex = f"a value that matches none of the {kw} branches"
        if kw in new:
            return [r.narrowing(at, f"{rule}-added", f"{kw} {r.show(new[kw])} added", ex)]
        return [r.widening(at, f"{rule}-removed", f"{kw} {r.show(old[kw])} removed", ex)]

    def _branches(
        self, kw: str, old: Any, new: Any, path: str, *, wrapped: str | None = None
    ) -> list[Finding]:
        """Pair old and new branches (equal first, then the closest); report the rest.

        `wrapped` names the side that has no `kw` and stands as a single branch ("old"/"new").
        """
        if not isinstance(old, list) or not isinstance(new, list):
            return r.keyword_rule({kw: old}, {kw: new}, path, kw)
        rule = r.kebab(kw)
        out: list[Finding] = []
        left_old, left_new = _unmatched(old, new)
        for i in list(left_old):
            if not left_new:
                break
            trials = {
                j: self.compare(old[i], new[j], f"{path}/{kw}/{i if wrapped == 'new' else j}")
                for j in left_new
            }
            j = min(left_new, key=lambda j: (_type_findings(trials[j]), _breaking(trials[j]), j))
            out += trials[j]
            left_old.remove(i)
            left_new.remove(j)
        caveat = " (assuming the oneOf branches do not overlap)" if kw == "oneOf" else ""
        ex = "a value matching only that branch"
        for i in left_old:
            what = f"{kw} branch {r.show(old[i])} removed{caveat}"
            at = path if wrapped == "old" else f"{path}/{kw}/{i}"
            out.append(r.narrowing(at, f"{rule}-branch-removed", what, ex))
        for j in left_new:
            what = f"{kw} branch {r.show(new[j])} added{caveat}"
            at = path if wrapped == "new" else f"{path}/{kw}/{j}"
            out.append(r.widening(at, f"{rule}-branch-added", what, ex))
        return out

    def _all_of(self, old: Any, new: Any, path: str) -> list[Finding]:
        if not isinstance(old, list) or not isinstance(new, list):
            return r.keyword_rule({"allOf": old}, {"allOf": new}, path, "allOf")
        left_old, left_new = _unmatched(old, new)
        out: list[Finding] = []
        for i, j in zip(list(left_old), list(left_new), strict=False):
            out += self.compare(old[i], new[j], f"{path}/allOf/{j}")
            left_old.remove(i)
            left_new.remove(j)
        for i in left_old:
            what = f"allOf schema {r.show(old[i])} removed"
            out.append(r.widening(f"{path}/allOf/{i}", "all-of-schema-removed", what))
        for j in left_new:
            what = f"allOf schema {r.show(new[j])} added"
            out.append(r.narrowing(f"{path}/allOf/{j}", "all-of-schema-added", what))
        return out


def _unmatched(old: list[Any], new: list[Any]) -> tuple[list[int], list[int]]:
    """The indexes in `old` and in `new` left once equal schemas are paired off."""
    left_old, left_new = [], list(range(len(new)))
    for i, schema in enumerate(old):
        same = next((j for j in left_new if r.json_key(schema) == r.json_key(new[j])), None)
        if same is None:
            left_old.append(i)
        else:
            left_new.remove(same)
    return left_old, left_new


def _type_findings(findings: list[Finding]) -> int:
    return sum(1 for f in findings if f.rule.startswith("type-"))


def _breaking(findings: list[Finding]) -> int:
    return sum(1 for f in findings if f.breaks)


def _matches(pattern: str, name: str) -> bool:
    try:
        return re.search(pattern, name) is not None
    except re.error:  # an ECMA-262 construct Python does not know: assume it does not match
        return False


# -- is it a schema at all? -------------------------------------------------------------

_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


def check_schema(schema: object, namespace: str | None = None) -> None:
    """Raise InvalidSchemaError unless `schema` is a valid, self-contained draft 2020-12 schema.

    Refused besides what the meta-schema refuses: other drafts, remote references (anything
    not starting with "#"), references that do not resolve, embedded resources ($id or $schema
    below the root) and patterns that are not regular expressions.
    """
    try:
        json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidSchemaError(namespace, "", f"not a JSON value: {exc}") from exc
    if not isinstance(schema, bool | dict):
        reason = f"a schema is a JSON object or a boolean, not {type(schema).__name__}"
        raise InvalidSchemaError(namespace, "", reason)
    declared = schema.get("$schema", _DRAFT_2020_12) if isinstance(schema, dict) else None
    if declared is not None and str(declared).rstrip("#") != _DRAFT_2020_12:
        reason = (
            f"$schema {r.show(declared)} is not supported: statesync accepts JSON "
            f"Schema draft 2020-12 only ({_DRAFT_2020_12})"
        )
        raise InvalidSchemaError(namespace, "/$schema", reason)
    _validate(schema, namespace, jsonschema_rs.meta.validate)
    for path, sub in r.subschemas(schema):
        if not isinstance(sub, dict):
            continue
        for kw in ("$id", "$schema"):
            if path and kw in sub:
                reason = (
                    f"{kw} below the root is refused: embedded schema resources are not "
                    "supported, local references resolve against the root document"
                )
                raise InvalidSchemaError(namespace, f"{path}/{kw}", reason)
        for kw in ("$ref", "$dynamicRef"):
            ref = sub.get(kw)
            if isinstance(ref, str) and not ref.startswith("#"):
                reason = (
                    f"remote reference {r.show(ref)} is refused: schemas must be self-contained"
                    ' (put the referenced schema under $defs and use "#/$defs/...")'
                )
                raise InvalidSchemaError(namespace, f"{path}/{kw}", reason)
            if kw == "$ref" and isinstance(ref, str) and r.lookup(schema, ref) is None:
                reason = f"reference {r.show(ref)} does not resolve within the schema"
                raise InvalidSchemaError(namespace, f"{path}/{kw}", reason)
    _validate(schema, namespace, jsonschema_rs.validator_for)  # regexes, references


def _validate(schema: object, namespace: str | None, validate: Any) -> None:
    try:
        validate(schema)
    except jsonschema_rs.ValidationError as exc:
        path = "".join(f"/{r.escape(str(t))}" for t in exc.instance_path)
        raise InvalidSchemaError(namespace, path, exc.message) from exc
    except jsonschema_rs.ReferencingError as exc:  # pragma: no cover - refused above
        raise InvalidSchemaError(namespace, "", str(exc)) from exc
