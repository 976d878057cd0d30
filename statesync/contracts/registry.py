"""Each namespace's contract, and the gate that enforces contracts at commit time.

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

and the gate turns the request into the new record inside the group commit, so
the compatibility check runs against exactly the versions it will follow.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Callable, Mapping, Sequence
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
from statesync.core.model import CONTRACTS_NAMESPACE, ChangeOp, KeyRecord
from statesync.core.policy import ConflictPolicy, Decision, decide, is_stale

__all__ = [
    "DEFAULT_MODE",
    "Contract",
    "ContractGate",
    "GateOp",
    "PlannedChange",
    "ReadAt",
    "ReadKey",
    "SchemaValidator",
    "SchemaVersion",
    "ShadowStats",
    "configure_request",
    "register_request",
]

log = logging.getLogger("statesync.policy")

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


ReadAt = Callable[[str, str, int], KeyRecord | None]
"""A key's record at a retained revision (None: absent then)."""


@dataclass(slots=True)
class ShadowStats:
    active: ConflictPolicy
    candidate: ConflictPolicy
    compared: int = 0
    disagreed: int = 0


ReadKey = Callable[[str, str], KeyRecord | None]
"""A key's record at the head, as the group commit sees it."""


@dataclass(frozen=True, slots=True)
class GateOp:
    """What the gate needs of one op of the command being committed."""

    kind: str  # "put", "patch", "delete", "contract" (key: the namespace it governs)
    namespace: str
    key: str
    schema_version: int = 0
    base_rev: int = 0


@dataclass(frozen=True, slots=True)
class PlannedChange:
    """A change the core planned, before it is stamped and chained: the key's
    state before and after (None: absent)."""

    namespace: str
    key: str
    op: ChangeOp
    before: KeyRecord | None
    record: KeyRecord | None


class ContractGate:
    """The store's `CommandGate`: applies contract requests and validates writes.

    Parsed contracts are cached by (namespace, mod_rev), so a steady stream of
    writes compiles each schema version once.
    """

    def __init__(self, history: ReadAt | None = None) -> None:
        self._cache: dict[str, tuple[int, Contract]] = {}
        self._history = history
        self.shadow_stats: dict[str, ShadowStats] = {}
        """Per namespace: stale writes the shadow policy was compared on, and disagreed."""

    def contract(self, read: ReadKey, namespace: str) -> Contract | None:
        record = read(CONTRACTS_NAMESPACE, namespace)
        if record is None:
            return None
        cached = self._cache.get(namespace)
        if cached is not None and cached[0] == record.mod_rev:
            return cached[1]
        contract = Contract.from_record(record)
        self._cache[namespace] = (record.mod_rev, contract)
        return contract

    def rebase(self, read: ReadKey, record: KeyRecord) -> bytes:
        contract = self.contract(read, record.namespace)
        if contract is None or contract.current == 0:
            return record.value
        stored = contract.version_of(record.mod_rev)
        if stored == contract.current:
            return record.value
        return contract.translate_json(record.value, stored, contract.current, key=record.key)

    def admit(
        self,
        ops: Sequence[GateOp],
        planned: list[PlannedChange],
        read: ReadKey,
        *,
        rev: int,
        now_ms: int,
    ) -> list[PlannedChange]:
        by_key = {(op.namespace, op.key): op for op in ops}
        admitted = []
        for change in planned:
            if change.record is None:
                admitted.append(change)
                continue
            if change.namespace == CONTRACTS_NAMESPACE:
                admitted.append(self._contract_change(change, read, rev=rev, now_ms=now_ms))
                continue
            op = by_key[(change.namespace, change.key)]
            contract = self.contract(read, change.namespace)
            change = self._translated(change, contract, op.schema_version)
            if op.base_rev:
                resolved = self._resolved(change, contract, read, op.base_rev)
                if resolved is None:
                    continue  # merged into "deleted", which the key already is
                change = resolved
            if change.record is not None and contract is not None and contract.current:
                doc = orjson.loads(change.record.value)
                contract.validator(contract.current).check(change.key, doc)
            admitted.append(change)
        return admitted

    def _contract_change(
        self, change: PlannedChange, read: ReadKey, *, rev: int, now_ms: int
    ) -> PlannedChange:
        assert change.record is not None
        namespace = change.key
        current = self.contract(read, namespace) or Contract(namespace, DEFAULT_MODE, {}, [])
        request = orjson.loads(change.record.value)
        if not isinstance(request, dict):
            raise InvalidCommandError("a contract request is a JSON object", namespace=namespace)
        updated = current.registered(request, rev=rev, now_ms=now_ms)
        return _with_value(change, canonical_bytes(updated.to_json()))

    def _translated(
        self, change: PlannedChange, contract: Contract | None, declared: int
    ) -> PlannedChange:
        """A value written in an older version (`declared`), checked against it and
        translated to the current version."""
        assert change.record is not None
        current = 0 if contract is None else contract.current
        if declared > current:
            have = f"the newest registered is v{current}" if current else "it has no schema"
            raise InvalidCommandError(
                f"schema_version {declared} declared, but {have}",
                namespace=change.namespace,
                key=change.key,
            )
        if not declared or declared == current:
            return change
        assert contract is not None
        doc = orjson.loads(change.record.value)
        contract.validator(declared).check(change.key, doc)
        value = contract.translate_json(change.record.value, declared, current, key=change.key)
        return _with_value(change, value)

    def _resolved(
        self, change: PlannedChange, contract: Contract | None, read: ReadKey, base_rev: int
    ) -> PlannedChange | None:
        """Apply the conflict policy to a write based on `base_rev` (None: no change)."""
        assert change.record is not None
        current = change.before
        if current is not None and current.mod_rev <= base_rev:
            return change  # unchanged since the writer read it
        if self._history is None:
            raise InvalidCommandError("base_rev needs a store that keeps history")
        base = self._history(change.namespace, change.key, base_rev)
        if not is_stale(base_rev, base, current):
            return change
        if base is not None:
            base = replace(base, value=self.rebase(read, base))
        policy = ConflictPolicy.REJECT if contract is None else contract.conflict_policy
        inputs = {
            "namespace": change.namespace,
            "key": change.key,
            "base_rev": base_rev,
            "base": base,
            "current": current,
            "writer": change.record.value,
        }
        # `inputs` holds exactly decide()'s keyword arguments, with their types.
        decision = decide(policy, **inputs)  # type: ignore[arg-type]
        shadow = None if contract is None else contract.shadow_policy
        if shadow is not None and shadow is not policy:
            # As above: `inputs` holds decide()'s keyword arguments.
            self._compare(change, base_rev, policy, decision, shadow, decide(shadow, **inputs))  # type: ignore[arg-type]
        if decision.error is not None:
            raise decision.error
        if decision.value is None:
            if current is None:
                return None
            return PlannedChange(change.namespace, change.key, ChangeOp.DELETE, current, None)
        return _with_value(change, decision.value)

    def _compare(
        self,
        change: PlannedChange,
        base_rev: int,
        active: ConflictPolicy,
        decision: Decision,
        candidate: ConflictPolicy,
        shadow: Decision,
    ) -> None:
        """Shadow mode: count (and log) where the candidate policy would differ."""
        stats = self.shadow_stats.setdefault(change.namespace, ShadowStats(active, candidate))
        stats.active, stats.candidate = active, candidate
        stats.compared += 1
        if decision.summary != shadow.summary:
            stats.disagreed += 1
            log.info(
                "shadow policy %s would %s where %s does %s (namespace %r, key %r, base rev %d)",
                candidate.value,
                shadow.summary,
                active.value,
                decision.summary,
                change.namespace,
                change.key,
                base_rev,
            )


def _with_value(change: PlannedChange, value: bytes) -> PlannedChange:
    assert change.record is not None
    return replace(change, record=replace(change.record, value=value))
