"""Each namespace's contract, and how a contract request changes it.

A contract is one record in the reserved `_contracts` namespace, keyed by the
namespace it governs, so every change to it is a command with a revision, in
the log and readable like any key:

    {"namespace": "orders", "mode": "BACKWARD",
     "owner": {"team": "payments", "contact": "#payments-oncall"},
     "versions": [{"version": 1, "schema": {...}, "translation": null,
                   "since_rev": 12, "registered_at_ms": ..., "registered_by": "ci",
                   "reason": "", "forced": false, "notes": [...]}, ...]}

`translation` on version N+1 is the JSON form of the N <-> N+1 translation
(null: the identity). A value is in the schema version that was current when it
was written (`since_rev` < mod_rev); values written before the first schema
count as version 1.

Writers change a contract with a `SetContract` op whose request is

    {"action": "register", "schema": {...}, "mode"?, "owner"?, "translation"?,
     "force"?: bool, "reason"?: str, "by"?: str}
    {"action": "configure", "mode"?, "owner"?, "by"?: str}

and the write gate (crates/core/src/gate, which enforces contracts and conflict
policies on every write) calls `registered_record` to turn the request into the
new record inside the group commit, so the compatibility check runs against
exactly the versions it will follow.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, cast

import jsonschema_rs
import orjson

from statesync.contracts.compat import Mode, check, check_schema
from statesync.contracts.translate import (
    Translation,
    identity,
    parse_translation,
    translate,
    translate_json,
)
from statesync.core.canonical import canonical_bytes
from statesync.core.errors import (
    IncompatibleSchemaError,
    InvalidCommandError,
    SchemaViolation,
    SchemaViolationError,
)
from statesync.core.model import KeyRecord
from statesync.core.policy import ConflictPolicy

__all__ = [
    "DEFAULT_MODE",
    "Contract",
    "SchemaValidator",
    "SchemaVersion",
    "ShadowStats",
    "configure_request",
    "register_request",
    "registered_record",
]

DEFAULT_MODE = Mode.BACKWARD
"""As in Confluent Schema Registry: new readers can read what old writers wrote."""


def register_request(
    schema: Mapping[str, Any] | bool,
    *,
    mode: str | None = None,
    owner: Mapping[str, str] | None = None,
    translation: Mapping[str, Any] | None = None,
    force: bool = False,
    reason: str = "",
    by: str = "",
) -> dict[str, Any]:
    """The request that registers `schema` as a namespace's next version."""
    request: dict[str, Any] = {"action": "register", "schema": schema, "force": force}
    if mode is not None:
        request["mode"] = mode
    if owner is not None:
        request["owner"] = dict(owner)
    if translation is not None:
        request["translation"] = translation
    if reason:
        request["reason"] = reason
    if by:
        request["by"] = by
    return request


def configure_request(
    *,
    mode: str | None = None,
    owner: Mapping[str, str] | None = None,
    conflict_policy: str | None = None,
    shadow_policy: str | None = None,
    by: str = "",
) -> dict[str, Any]:
    """The request that changes a namespace's mode, owner or conflict policies
    without a new version (`shadow_policy="none"` turns shadow mode off)."""
    request: dict[str, Any] = {"action": "configure"}
    if mode is not None:
        request["mode"] = mode
    if owner is not None:
        request["owner"] = dict(owner)
    if conflict_policy is not None:
        request["conflict_policy"] = conflict_policy
    if shadow_policy is not None:
        request["shadow_policy"] = None if shadow_policy == "none" else shadow_policy
    if by:
        request["by"] = by
    return request


class SchemaValidator:
    """One schema version, compiled once (jsonschema-rs, formats asserted)."""

    def __init__(self, namespace: str, version: int, schema: dict[str, Any] | bool) -> None:
        self.namespace = namespace
        self.version = version
        self._compiled = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)

    def violations(self, doc: object) -> list[SchemaViolation]:
        found = []
        for error in self._compiled.iter_errors(doc):
            path = "".join(
                "/" + str(p).replace("~", "~0").replace("/", "~1") for p in error.instance_path
            )
            if isinstance(error.kind, jsonschema_rs.ValidationErrorKind.FalseSchema):
                keyword = "false"  # a `false` subschema: its path ends at the property name
            else:
                keyword = str(error.schema_path[-1])
            found.append(SchemaViolation(path, keyword, error.message))
        found.sort(key=lambda v: (v.path, v.keyword))
        return found

    def check(self, key: str, doc: object) -> None:
        """Raise SchemaViolationError listing every violation of `doc`."""
        if self._compiled.is_valid(doc):
            return
        raise SchemaViolationError(self.namespace, key, self.version, self.violations(doc))


@dataclass(frozen=True, slots=True)
class SchemaVersion:
    version: int
    schema: Any
    translation: dict[str, Any] | None
    since_rev: int
    registered_at_ms: int
    registered_by: str
    reason: str
    forced: bool
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "schema": self.schema,
            "translation": self.translation,
            "since_rev": self.since_rev,
            "registered_at_ms": self.registered_at_ms,
            "registered_by": self.registered_by,
            "reason": self.reason,
            "forced": self.forced,
            "notes": list(self.notes),
        }


@dataclass(slots=True)
class Contract:
    """A namespace's contract, parsed, with its validators and translations built lazily."""

    namespace: str
    mode: Mode
    owner: dict[str, str]
    versions: list[SchemaVersion]
    conflict_policy: ConflictPolicy = ConflictPolicy.REJECT
    """What a write based on an old revision does (docs/conflicts.md)."""
    shadow_policy: ConflictPolicy | None = None
    """A candidate policy evaluated beside the active one, counted, never acted on."""
    _validators: dict[int, SchemaValidator] = field(default_factory=dict)
    _translations: dict[int, Translation] | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Contract:
        versions = [
            SchemaVersion(**{**v, "notes": tuple(v.get("notes", ()))}) for v in data["versions"]
        ]
        shadow = data.get("shadow_policy")
        return cls(
            data["namespace"],
            Mode(data["mode"]),
            dict(data.get("owner") or {}),
            versions,
            ConflictPolicy(data.get("conflict_policy", ConflictPolicy.REJECT)),
            None if shadow is None else ConflictPolicy(shadow),
        )

    @classmethod
    def from_record(cls, record: KeyRecord) -> Contract:
        return cls.from_json(orjson.loads(record.value))

    def to_json(self) -> dict[str, Any]:
        return {
            "namespace": self.namespace,
            "mode": self.mode.value,
            "owner": self.owner,
            "versions": [v.to_json() for v in self.versions],
            "conflict_policy": self.conflict_policy.value,
            "shadow_policy": None if self.shadow_policy is None else self.shadow_policy.value,
        }

    @property
    def current(self) -> int:
        """The newest version (0: no schema yet)."""
        return self.versions[-1].version if self.versions else 0

    def version_of(self, mod_rev: int) -> int:
        """The schema version a value last written at `mod_rev` is in (at least 1)."""
        since = [v.since_rev for v in self.versions]
        return max(1, bisect.bisect_left(since, mod_rev))

    def validator(self, version: int) -> SchemaValidator:
        found = self._validators.get(version)
        if found is None:
            schema = self.versions[version - 1].schema
            found = self._validators[version] = SchemaValidator(self.namespace, version, schema)
        return found

    @property
    def translations(self) -> dict[int, Translation]:
        """translations[n] translates n <-> n+1."""
        if self._translations is None:
            built = {}
            for v in self.versions[1:]:
                n = v.version - 1
                built[n] = (
                    identity(n)
                    if v.translation is None
                    else parse_translation(v.translation, namespace=self.namespace)
                )
            self._translations = built
        return self._translations

    def translate(self, doc: object, from_version: int, to_version: int) -> object:
        if from_version == to_version:
            return doc
        return translate(doc, from_version, to_version, self.translations, namespace=self.namespace)

    def translate_json(
        self, value: bytes, from_version: int, to_version: int, *, key: str | None = None
    ) -> bytes:
        """`value` (JSON text in `from_version`) as canonical bytes in `to_version`:
        one call into the Rust core, no Python objects built."""
        if from_version == to_version:
            return value
        return translate_json(
            value,
            from_version,
            to_version,
            self.translations,
            namespace=self.namespace,
            key=key,
        )

    def registered(self, request: Mapping[str, Any], *, rev: int, now_ms: int) -> Contract:
        """This contract after `request` commits at `rev` (raises when it is refused)."""
        action = request.get("action")
        by = _text(request, "by", self.namespace)
        configured = replace(
            self,
            mode=Mode(request["mode"]) if "mode" in request else self.mode,
            owner=_owner(request, self.namespace) if "owner" in request else self.owner,
            # _policy returns None only for shadow_policy or when `current` is None.
            conflict_policy=cast(
                ConflictPolicy, _policy(request, "conflict_policy", self.conflict_policy)
            ),
            shadow_policy=_policy(request, "shadow_policy", self.shadow_policy),
            versions=list(self.versions),
            _validators={},
            _translations=None,
        )
        if action == "configure":
            return configured
        if action != "register":
            raise InvalidCommandError(
                f"unknown contract action {action!r}: use register or configure",
                namespace=self.namespace,
            )
        schema = request.get("schema")
        check_schema(schema, self.namespace)
        version = self.current + 1
        force = request.get("force", False) is True
        reason = _text(request, "reason", self.namespace)
        if force and not reason:
            raise InvalidCommandError(
                "a forced registration needs a reason (it is recorded)", namespace=self.namespace
            )
        translation = request.get("translation")
        if translation is not None:
            parsed = parse_translation(translation, namespace=self.namespace)
            if parsed.from_version != self.current or parsed.to_version != version:
                raise InvalidCommandError(
                    f"the translation is v{parsed.from_version}->v{parsed.to_version}, "
                    f"registering v{version} needs v{self.current}->v{version}",
                    namespace=self.namespace,
                )
            translation = parsed.to_json()
        mode = configured.mode
        # check_schema raised unless `schema` is a JSON object or a boolean.
        valid = cast("dict[str, Any] | bool", schema)
        verdict = check(valid, [v.schema for v in self.versions], mode)
        if not verdict.compatible and not force:
            raise IncompatibleSchemaError(
                self.namespace, version, mode.value, [b.to_dict() for b in verdict.breaking]
            )
        notes = tuple(n.message for n in verdict.notes) + tuple(
            f"FORCED past {b.rule} at {b.path or '(root)'} ({b.direction}): {b.message}"
            for b in verdict.breaking
        )
        entry = SchemaVersion(
            version=version,
            schema=schema,
            translation=translation,
            since_rev=rev,
            registered_at_ms=now_ms,
            registered_by=by,
            reason=reason,
            forced=force and not verdict.compatible,
            notes=notes,
        )
        configured.versions.append(entry)
        return configured


def _policy(
    request: Mapping[str, Any], name: str, current: ConflictPolicy | None
) -> ConflictPolicy | None:
    if name not in request:
        return current
    value = request[name]
    if value is None and name == "shadow_policy":
        return None
    try:
        return ConflictPolicy(value)
    except ValueError:
        choices = ", ".join(p.value for p in ConflictPolicy)
        raise InvalidCommandError(f"{name} {value!r} is not one of: {choices}") from None


def _text(request: Mapping[str, Any], name: str, namespace: str) -> str:
    value = request.get(name, "")
    if not isinstance(value, str):
        raise InvalidCommandError(f"contract {name!r} must be a string", namespace=namespace)
    return value


def _owner(request: Mapping[str, Any], namespace: str) -> dict[str, str]:
    owner = request["owner"]
    if not isinstance(owner, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in owner.items()
    ):
        raise InvalidCommandError(
            'owner must be an object of strings, e.g. {"team": "payments", "contact": "#oncall"}',
            namespace=namespace,
        )
    return dict(owner)


@dataclass(frozen=True, slots=True)
class ShadowStats:
    """A namespace's shadow mode so far: stale writes the candidate policy was
    evaluated on beside the active one, and on how many it disagreed (counted
    by the write gate in the Rust core)."""

    active: ConflictPolicy
    candidate: ConflictPolicy
    compared: int
    disagreed: int


def registered_record(
    namespace: str, current: bytes | None, request: bytes, rev: int, now_ms: int
) -> bytes:
    """The contract record of `namespace` after the contract op `request`
    commits at `rev` (`current`: its record now, None: none yet).

    The write gate (crates/core/src/gate) calls this for a command that carries
    a contract op: registration is control-plane policy (compatibility rules,
    owners, policy names) and stays here; everything per key is the gate's.
    """
    contract = (
        Contract(namespace, DEFAULT_MODE, {}, [])
        if current is None
        else Contract.from_json(orjson.loads(current))
    )
    parsed = orjson.loads(request)
    if not isinstance(parsed, dict):
        raise InvalidCommandError("a contract request is a JSON object", namespace=namespace)
    return canonical_bytes(contract.registered(parsed, rev=rev, now_ms=now_ms).to_json())
