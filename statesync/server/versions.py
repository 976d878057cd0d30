"""Serving each worker the schema versions it declared.

A worker's hello lists, per namespace, the schema versions it understands.
Each change is served in the newest of them that is registered (its target),
translated from the version the value was written in. The translated value
carries the stored value's hash as `source_hash`, so the worker's digest still
counts what the controller stores and digests compare as usual.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping, Sequence

from statesync.contracts.registry import Contract
from statesync.core.errors import StatesyncError
from statesync.core.model import CONTRACTS_NAMESPACE
from statesync.store.base import Store
from statesync.wire import pb

__all__ = ["Targets", "VersionServer"]

log = logging.getLogger("statesync.sync")

Targets = dict[str, int]
"""Per namespace, the schema version a worker is served in."""

_CACHE_LIMIT = 50_000


class VersionServer:
    """Contracts by namespace (cached until their record changes) and translation."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._contracts: dict[str, Contract | None] = {}
        self._served: dict[tuple[int, tuple[tuple[str, int], ...]], pb.Revision] = {}

    def contract(self, namespace: str) -> Contract | None:
        if namespace not in self._contracts:
            record = self.store.get(CONTRACTS_NAMESPACE, namespace)
            self._contracts[namespace] = None if record is None else Contract.from_record(record)
        return self._contracts[namespace]

    def all(self) -> list[Contract]:
        """Every namespace's contract (read from the store)."""
        return [
            Contract.from_record(r) for r in self.store.range(CONTRACTS_NAMESPACE, limit=100_000)
        ]

    def changed(self, namespaces: Iterable[str]) -> None:
        """Contracts changed (a contract command was published): forget them."""
        for ns in namespaces:
            self._contracts.pop(ns, None)
        self._served.clear()

    def targets(self, declared: Mapping[str, Sequence[int]]) -> Targets:
        """The version each declared namespace is served in; raises
        NoTranslationPathError when no declared version is registered."""
        targets: Targets = {}
        for ns, versions in declared.items():
            contract = self.contract(ns)
            if contract is not None and contract.current:
                targets[ns] = contract.serving_version(versions)
        return targets

    def revision(self, revision: pb.Revision, targets: Targets) -> pb.Revision:
        """`revision` with each put in a target namespace in its target version."""
        if not targets or all(c.ns not in targets for c in revision.changes):
            return revision
        cache_key = (revision.rev, tuple(sorted(targets.items())))
        served = self._served.get(cache_key)
        if served is None:
            served = pb.Revision()
            served.CopyFrom(revision)
            for change in served.changes:
                if change.ns in targets and change.kind == pb.Change.PUT:
                    self._translate(change, revision.rev, targets[change.ns])
            if len(self._served) >= _CACHE_LIMIT:
                self._served.clear()
            self._served[cache_key] = served
        return served

    def entry(self, entry: pb.Entry, targets: Targets) -> pb.Entry:
        """A snapshot entry in its target version (changed in place)."""
        if entry.ns in targets:
            self._translate(entry, entry.mod_rev, targets[entry.ns])
        return entry

    def _translate(self, message: pb.Change | pb.Entry, mod_rev: int, target: int) -> None:
        contract = self.contract(message.ns)
        assert contract is not None
        stored = contract.version_of(mod_rev)
        message.schema_version = target
        if stored == target:
            return
        try:
            value = contract.translate_json(message.value, stored, target, key=message.key)
        except StatesyncError as exc:
            # Served as stored: the worker refuses the version it does not know (NACK).
            log.error("%s/%s: cannot serve in v%d: %s", message.ns, message.key, target, exc)
            message.schema_version = stored
            return
        source_hash = hashlib.sha256(message.value).digest()
        message.value = value
        message.source_hash = source_hash
        if isinstance(message, pb.Change):
            message.value_hash = hashlib.sha256(value).digest()
