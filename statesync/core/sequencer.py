"""Group commit without I/O: a batch of prepared commands becomes one atomic write.

The `Sequencer` owns the head: the head revision, the hash chain's last hash
and every namespace's digest. `build` runs a batch of commands in order (each
sees the effects of the ones before it), assigns revisions, stamps and chains
the changes, and returns each command's outcome plus the `BatchWrite` a backend
must persist in one transaction. After the write is durable the backend calls
`confirm`; if it failed, `abort` puts the head back as it was.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from statesync.core.commands import Committed, Limits, PreparedCommand
from statesync.core.digest import NamespaceDigest, value_hash
from statesync.core.engine import PlannedChange, ReadKey, evaluate
from statesync.core.errors import (
    CommandIdReusedError,
    InvalidCommandError,
    StatesyncError,
    StoreError,
)
from statesync.core.model import (
    CONTRACTS_NAMESPACE,
    Change,
    KeyRecord,
    chain_hash,
    change_canonical_bytes,
)

__all__ = [
    "BatchWrite",
    "CommandGate",
    "CommandRecord",
    "NamespaceRoot",
    "Outcome",
    "Sequencer",
    "keys_read",
]

Outcome = Committed | StatesyncError


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """What idempotency remembers of a committed command."""

    command_id: str
    fingerprint: bytes
    rev: int
    ts_ms: int


@dataclass(frozen=True, slots=True)
class NamespaceRoot:
    """A namespace's digest right after the command at `rev` touched it."""

    namespace: str
    rev: int
    root: bytes
    count: int


@dataclass(slots=True)
class BatchWrite:
    """Everything one group commit persists, atomically."""

    head_rev: int
    chain_head: bytes
    changes: list[Change] = field(default_factory=list)
    commands: list[CommandRecord] = field(default_factory=list)
    roots: list[NamespaceRoot] = field(default_factory=list)
    state: dict[tuple[str, str], KeyRecord | None] = field(default_factory=dict)
    """Final state of every key the batch touched (None: deleted)."""
    value_hashes: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """SHA-256 of each final value in `state`, computed once for digest and storage."""
    _undo: list[tuple[str, str, bytes | None, bytes | None]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not self.commands


class CommandGate(Protocol):
    """What a store consults for every command: the namespaces' contracts.

    `statesync.contracts.registry.ContractGate` is the implementation; the core
    only knows that a gate can rewrite a patch's base and admit or refuse the
    changes a command plans (raising an `InvalidInputError`).
    """

    def rebase(self, read: ReadKey, record: KeyRecord) -> bytes: ...

    def admit(
        self,
        command: PreparedCommand,
        planned: list[PlannedChange],
        read: ReadKey,
        *,
        rev: int,
        now_ms: int,
    ) -> list[PlannedChange]: ...


def keys_read(commands: Sequence[PreparedCommand]) -> set[tuple[str, str]]:
    """Every (namespace, key) that building `commands` reads, with the contract
    record of every namespace written."""
    keys = {(op.namespace, op.key) for c in commands for op in c.ops}
    keys.update((cmp.namespace, cmp.key) for c in commands for cmp in c.compares)
    keys.update((CONTRACTS_NAMESPACE, op.namespace) for c in commands for op in c.ops)
    return keys


class Sequencer:
    def __init__(
        self,
        *,
        head_rev: int,
        chain_head: bytes,
        digests: dict[str, NamespaceDigest],
        limits: Limits = Limits(),
        gate: CommandGate | None = None,
    ) -> None:
        self.head_rev = head_rev
        self.chain_head = chain_head
        self.digests = digests
        self.limits = limits
        self.gate = gate

    def digest(self, namespace: str) -> NamespaceDigest:
        return self.digests.get(namespace) or NamespaceDigest()

    def build(
        self,
        commands: Sequence[PreparedCommand],
        *,
        read: ReadKey,
        lookup: Callable[[str], CommandRecord | None],
        now_ms: int,
    ) -> tuple[list[Outcome], BatchWrite]:
        """Run `commands` in order on top of the head.

        `read` gives a key's record at the head, `lookup` a committed command's
        record; a backend may answer both from a prefetch of the batch's keys
        and ids (see `keys_read` and the command ids).
        """
        batch = BatchWrite(head_rev=self.head_rev, chain_head=self.chain_head)
        seen: dict[str, CommandRecord] = {}

        def read_through(ns: str, key: str) -> KeyRecord | None:
            if (ns, key) in batch.state:
                return batch.state[(ns, key)]
            return read(ns, key)

        outcomes: list[Outcome] = []
        for command in commands:
            prior = seen.get(command.command_id) or lookup(command.command_id)
            if prior is not None:
                if prior.fingerprint != command.fingerprint:
                    outcomes.append(CommandIdReusedError(command.command_id, prior.rev))
                else:
                    outcomes.append(Committed(prior.rev, command.command_id, prior.ts_ms, True))
                continue
            rev = batch.head_rev + 1
            try:
                planned = self._plan(command, read_through, rev=rev, now_ms=now_ms)
            except StatesyncError as exc:
                outcomes.append(exc)
                continue
            except Exception as exc:  # a bug: fail this command loudly, keep the others
                error = StoreError(f"command {command.command_id!r} failed: {exc!r}")
                error.__cause__ = exc
                outcomes.append(error)
                continue
            touched: dict[str, None] = {}
            for seq, p in enumerate(planned):
                before, record = p.before, p.record
                fields = {
                    "rev": rev,
                    "seq": seq,
                    "namespace": p.namespace,
                    "key": p.key,
                    "op": p.op,
                    "value": None if record is None else record.value,
                    "prev_mod_rev": p.prev_mod_rev,
                    "create_rev": 0 if record is None else record.create_rev,
                    "version": 0 if record is None else record.version,
                    "command_id": command.command_id,
                    "ts_ms": now_ms,
                    "trace": command.trace,
                }
                batch.chain_head = chain_hash(batch.chain_head, change_canonical_bytes(**fields))
                batch.changes.append(Change(**fields, hash=batch.chain_head))
                batch.state[(p.namespace, p.key)] = record
                old = None if before is None else value_hash(before.value)
                new = None if record is None else value_hash(record.value)
                if new is not None:
                    batch.value_hashes[(p.namespace, p.key)] = new
                digest = self.digests.get(p.namespace)
                if digest is None:
                    digest = self.digests[p.namespace] = NamespaceDigest()
                digest.update(p.key, old, new)
                batch._undo.append((p.namespace, p.key, old, new))
                touched[p.namespace] = None
            for ns in touched:
                digest = self.digests[ns]
                batch.roots.append(NamespaceRoot(ns, rev, digest.root(), digest.count))
            record = CommandRecord(command.command_id, command.fingerprint, rev, now_ms)
            batch.commands.append(record)
            seen[command.command_id] = record
            batch.head_rev = rev
            outcomes.append(Committed(rev, command.command_id, now_ms))
        return outcomes, batch

    def _plan(
        self, command: PreparedCommand, read: ReadKey, *, rev: int, now_ms: int
    ) -> list[PlannedChange]:
        gate = self.gate
        if gate is None:
            if any(op.kind == "contract" for op in command.ops):
                raise InvalidCommandError("this store has no contract gate")
            return evaluate(command, read, rev=rev, limits=self.limits)

        def rebase(record: KeyRecord) -> bytes:
            return gate.rebase(read, record)

        planned = evaluate(command, read, rev=rev, limits=self.limits, rebase=rebase)
        return gate.admit(command, planned, read, rev=rev, now_ms=now_ms)

    def confirm(self, batch: BatchWrite) -> None:
        """The batch is durable: it is the new head."""
        self.head_rev = batch.head_rev
        self.chain_head = batch.chain_head

    def abort(self, batch: BatchWrite) -> None:
        """The batch was not written: undo its digest updates."""
        for ns, key, old, new in reversed(batch._undo):
            self.digests[ns].update(key, new, old)
