"""Property tests: SQLiteStore against an independent model, and the digest core.

The model below is a plain dict fold written from the documented semantics
(RFC 6902 for patches, etcd-style compares, idempotent command ids); it shares
no code with statesync's engine. A Hypothesis state machine runs random
commands against both and checks, after every step, that the store's state,
log, snapshots, digests and hash chain agree with the model.

Two RFC 6902 forms are not generated here but tested directly in
statesync.testing.store_suite: "copy"/"move" from the root, and "move" into a
child of "from".
"""

from __future__ import annotations

import bisect
import copy
import hashlib
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from digest_descent import differing_keys
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from statesync import (
    Command,
    Committed,
    Compare,
    Delete,
    Patch,
    Put,
    SQLiteStore,
    StoreSettings,
)
from statesync.core.commands import CompareKind
from statesync.core.digest import NamespaceDigest, position, value_hash
from statesync.core.errors import (
    CommandIdReusedError,
    CompactedError,
    ConflictError,
    InvalidCommandError,
    InvalidPatchError,
    InvalidValueError,
    NotFoundError,
    StatesyncError,
)
from statesync.core.model import KeyRecord

NAMESPACES = ("ns-a", "ns-b", "ns-c")
KEYS = ("k", "k1", "k2", "m")
FIELDS = ("x", "y")
TOKENS = ("x", "y", "0", "1", "-")
MAX_SAFE = 2**53 - 1
NEVER = 1e6

# -- the model -------------------------------------------------------------------------


def canon(value: Any) -> bytes:
    """Canonical JSON (RFC 8785) for the model's domain: no floats, ASCII text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def is_valid(value: Any) -> bool:
    """I-JSON: integers within ±(2**53-1), finite numbers, string member names."""
    if value is None or isinstance(value, bool | str):
        return True
    if isinstance(value, int):
        return -MAX_SAFE <= value <= MAX_SAFE
    if isinstance(value, float):
        return math.isfinite(value) and not (value.is_integer() and abs(value) > MAX_SAFE)
    if isinstance(value, list):
        return all(is_valid(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_valid(v) for k, v in value.items())
    return False


class PatchFailed(Exception):
    pass


def _tokens(pointer: str) -> list[str]:
    return [] if pointer == "" else pointer[1:].split("/")


def _index(token: str, size: int, *, append: bool) -> int:
    if append and token == "-":
        return size
    if not token.isdigit() or (len(token) > 1 and token[0] == "0"):
        raise PatchFailed(f"{token!r} is not an array index")
    index = int(token)
    if index > size or (index == size and not append):
        raise PatchFailed(f"index {index} is out of bounds")
    return index


def _get(doc: Any, tokens: list[str]) -> Any:
    for token in tokens:
        if isinstance(doc, dict):
            if token not in doc:
                raise PatchFailed(f"no member {token!r}")
            doc = doc[token]
        elif isinstance(doc, list):
            doc = doc[_index(token, len(doc), append=False)]
        else:
            raise PatchFailed("cannot point inside a scalar")
    return doc


def _add(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _get(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        parent.insert(_index(last, len(parent), append=True), value)
    else:
        raise PatchFailed("cannot add inside a scalar")
    return doc


def _remove(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        raise PatchFailed("cannot remove the whole document")
    parent, last = _get(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchFailed(f"no member {last!r}")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(last, len(parent), append=False))
    raise PatchFailed("cannot remove inside a scalar")


def _replace(doc: Any, tokens: list[str], value: Any) -> Any:
    if not tokens:
        return value
    parent, last = _get(doc, tokens[:-1]), tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise PatchFailed(f"no member {last!r}")
        parent[last] = value
    elif isinstance(parent, list):
        parent[_index(last, len(parent), append=False)] = value
    else:
        raise PatchFailed("cannot replace inside a scalar")
    return doc


def apply_patch(doc: Any, patch: list[dict[str, Any]]) -> Any:
    """RFC 6902, from the RFC: all ops apply, or the patch fails."""
    doc = copy.deepcopy(doc)
    for op in patch:
        path = _tokens(op["path"])
        kind = op["op"]
        if kind == "add":
            doc = _add(doc, path, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "replace":
            doc = _replace(doc, path, copy.deepcopy(op["value"]))
        elif kind == "test":
            if canon(_get(doc, path)) != canon(op["value"]):
                raise PatchFailed("test failed")
        else:
            source = _tokens(op["from"])
            value = copy.deepcopy(_get(doc, source))
            if kind == "move":
                if path == source:
                    continue
                if path[: len(source)] == source:
                    raise PatchFailed("cannot move a value into its own child")
                _remove(doc, source)
            doc = _add(doc, path, value)
    return doc


@dataclass(frozen=True, slots=True)
class MRec:
    value: Any
    create_rev: int
    mod_rev: int
    version: int


@dataclass(frozen=True, slots=True)
class MChange:
    rev: int
    seq: int
    namespace: str
    key: str
    op: str
    value: bytes | None
    prev_mod_rev: int
    create_rev: int
    version: int
    command_id: str


@dataclass(frozen=True, slots=True)
class Expected:
    """A command's expected outcome: a revision, or the error type(s) and, for a
    conflict, the failed compares as (namespace, key, actual mod_rev)."""

    rev: int = 0
    replayed: bool = False
    error: type[Exception] | tuple[type[Exception], ...] | None = None
    failed: tuple[tuple[str, str, int | None], ...] = ()


MState = dict[tuple[str, str], MRec]


def _content(command: Command) -> tuple[object, ...]:
    """What idempotency compares: the ops and compares, not the id or trace."""
    ops: list[object] = []
    for op in command.ops:
        if isinstance(op, Put):
            ops.append(("put", op.namespace, op.key, canon(op.value)))
        elif isinstance(op, Patch):
            ops.append(("patch", op.namespace, op.key, canon(list(op.patch))))
        else:
            ops.append(("delete", op.namespace, op.key))
    compares = [(c.namespace, c.key, str(c.kind), c.mod_rev) for c in command.compares]
    return (tuple(ops), tuple(compares))


class Model:
    def __init__(self) -> None:
        self.states: list[MState] = [{}]  # index: revision
        self.changes: list[list[MChange]] = [[]]
        self.commands: dict[str, tuple[tuple[object, ...], int]] = {}
        self.compacted = 0

    @property
    def head(self) -> int:
        return len(self.states) - 1

    def apply(self, command: Command) -> Expected:
        seen: set[tuple[str, str]] = set()
        for op in command.ops:
            if (op.namespace, op.key) in seen:
                return Expected(error=InvalidCommandError)
            seen.add((op.namespace, op.key))
            if isinstance(op, Put) and not is_valid(op.value):
                return Expected(error=InvalidValueError)
            if isinstance(op, Patch) and not all(is_valid(o.get("value")) for o in op.patch):
                return Expected(error=(InvalidPatchError, InvalidValueError))
        content = _content(command)
        prior = self.commands.get(command.command_id)
        if prior is not None:
            if prior[0] != content:
                return Expected(error=CommandIdReusedError)
            return Expected(rev=prior[1], replayed=True)
        state = self.states[-1]
        failed = []
        for c in command.compares:
            current = state.get((c.namespace, c.key))
            actual = None if current is None else current.mod_rev
            if c.kind is CompareKind.MOD_REV:
                holds = (actual or 0) == c.mod_rev
            elif c.kind is CompareKind.EXISTS:
                holds = actual is not None
            else:
                holds = actual is None
            if not holds:
                failed.append((c.namespace, c.key, actual))
        if failed:
            return Expected(error=ConflictError, failed=tuple(failed))
        rev = self.head + 1
        new = dict(state)
        changes: list[MChange] = []
        for op in command.ops:
            where = (op.namespace, op.key)
            current = new.get(where)
            if isinstance(op, Delete):
                if current is not None:
                    del new[where]
                    changes.append(
                        MChange(
                            rev,
                            len(changes),
                            *where,
                            "delete",
                            None,
                            current.mod_rev,
                            0,
                            0,
                            command.command_id,
                        )
                    )
                continue
            if isinstance(op, Patch):
                if current is None:
                    return Expected(error=NotFoundError)
                try:
                    value = apply_patch(current.value, list(op.patch))
                except PatchFailed:
                    return Expected(error=InvalidPatchError)
            else:
                value = copy.deepcopy(op.value)
            record = MRec(
                value,
                rev if current is None else current.create_rev,
                rev,
                1 if current is None else current.version + 1,
            )
            new[where] = record
            changes.append(
                MChange(
                    rev,
                    len(changes),
                    *where,
                    "put",
                    canon(value),
                    0 if current is None else current.mod_rev,
                    record.create_rev,
                    record.version,
                    command.command_id,
                )
            )
        self.states.append(new)
        self.changes.append(changes)
        self.commands[command.command_id] = (content, rev)
        return Expected(rev=rev)


def model_view(state: MState, namespace: str) -> dict[str, tuple[bytes, int, int, int]]:
    return {
        key: (canon(r.value), r.create_rev, r.mod_rev, r.version)
        for (ns, key), r in state.items()
        if ns == namespace
    }


def model_digest(state: MState, namespace: str) -> bytes:
    items = [
        (key, hashlib.sha256(canon(r.value)).digest())
        for (ns, key), r in state.items()
        if ns == namespace
    ]
    return NamespaceDigest.from_items(items).root()


def store_view(records: list[KeyRecord]) -> dict[str, tuple[bytes, int, int, int]]:
    return {r.key: (r.value, r.create_rev, r.mod_rev, r.version) for r in records}


# -- strategies ---------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["", "s"]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(FIELDS), inner, max_size=2)
    ),
    max_leaves=5,
)
documents = st.one_of(st.dictionaries(st.sampled_from(FIELDS), values, max_size=2), values)
bad_values = st.sampled_from(
    [2**53, -(2**53), float("nan"), float("inf"), [0, 2**60], {"x": float("nan")}, 2.0**60]
)


def _pointers(min_size: int) -> st.SearchStrategy[str]:
    tokens = st.lists(st.sampled_from(TOKENS), min_size=min_size, max_size=2)
    return tokens.map(lambda ts: "".join("/" + t for t in ts))


pointers, inner_pointers = _pointers(0), _pointers(1)


def _proper_prefix(source: str, path: str) -> bool:
    return path.startswith(source + "/")


patch_ops = st.one_of(
    st.builds(lambda p, v: {"op": "add", "path": p, "value": v}, pointers, values),
    st.builds(lambda p: {"op": "remove", "path": p}, pointers),
    st.builds(lambda p, v: {"op": "replace", "path": p, "value": v}, pointers, values),
    st.builds(lambda p, v: {"op": "test", "path": p, "value": v}, pointers, scalars),
    st.builds(lambda f, p: {"op": "copy", "from": f, "path": p}, inner_pointers, pointers),
    st.builds(lambda f, p: {"op": "move", "from": f, "path": p}, inner_pointers, pointers).filter(
        lambda op: not _proper_prefix(op["from"], op["path"])
    ),
)
patches = st.lists(patch_ops, max_size=3)
names = st.tuples(st.sampled_from(NAMESPACES), st.sampled_from(KEYS))


def ops_on(where: st.SearchStrategy[tuple[str, str]]) -> st.SearchStrategy[Put | Patch | Delete]:
    return st.one_of(
        st.builds(lambda w, v: Put(*w, v), where, documents),
        st.builds(lambda w, p: Patch(*w, p), where, patches),
        st.builds(lambda w: Delete(*w), where),
    )


# -- the state machine -------------------------------------------------------------------


class StoreMachine(RuleBasedStateMachine):
    """Random commands, compactions and reopens, against SQLiteStore and the model."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="statesync-props-"))
        self.store = self.open()
        self.model = Model()
        self.ids: list[str] = []
        self.committed: list[Command] = []

    def open(self) -> SQLiteStore:
        # A fixed clock: maintenance never runs by itself, idempotency never expires.
        return SQLiteStore(
            self.dir / "store.db",
            settings=StoreSettings(maintenance_interval_s=NEVER),
            clock=lambda: 1_700_000_000.0,
        )

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- drawing commands --

    def fresh_id(self) -> str:
        self.ids.append(f"cmd-{len(self.ids)}")
        return self.ids[-1]

    def draw_compare(self, data: st.DataObject) -> Compare:
        state = self.model.states[-1]
        if state and data.draw(st.booleans()):  # likely to hold
            (ns, key), record = data.draw(st.sampled_from(sorted(state.items())))
            return data.draw(
                st.sampled_from(
                    [Compare.mod_rev_is(ns, key, record.mod_rev), Compare.exists(ns, key)]
                )
            )
        ns, key = data.draw(names)
        revs = sorted({0, self.model.head, *(r.mod_rev for r in state.values())})
        kind = data.draw(st.sampled_from(list(CompareKind)))
        mod_rev = data.draw(st.sampled_from(revs)) if kind is CompareKind.MOD_REV else 0
        return Compare(ns, key, kind, mod_rev)

    def draw_command(self, data: st.DataObject, *, bad: bool = False) -> Command:
        existing = sorted(self.model.states[-1])
        where = st.one_of(names, st.sampled_from(existing)) if existing else names
        command_ops = data.draw(st.lists(ops_on(where), min_size=1, max_size=3))
        if bad:
            ns, key = data.draw(names)
            value = data.draw(bad_values)
            poisoned = data.draw(
                st.sampled_from(
                    [
                        Put(ns, key, value),
                        Patch(ns, key, [{"op": "add", "path": "/x", "value": value}]),
                    ]
                )
            )
            command_ops.insert(data.draw(st.integers(0, len(command_ops))), poisoned)
        how_many = data.draw(st.sampled_from([0, 0, 1, 2]))
        compares = [self.draw_compare(data) for _ in range(how_many)]
        if self.ids and data.draw(st.integers(0, 4)) == 0:
            command_id = data.draw(st.sampled_from(self.ids))
        else:
            command_id = self.fresh_id()
        trace = data.draw(st.sampled_from([None, "00-0af7651916cd43dd8448eb211c80319c-01"]))
        return Command(command_ops, compares=compares, command_id=command_id, trace=trace)

    # -- checking outcomes --

    def check(self, command: Command, got: Committed | StatesyncError, expected: Expected) -> None:
        if expected.error is not None:
            assert isinstance(got, expected.error), (command, got, expected)
            if isinstance(got, ConflictError):
                failed = tuple((f.namespace, f.key, f.actual_mod_rev) for f in got.failed)
                assert failed == expected.failed
            return
        assert isinstance(got, Committed), (command, got, expected)
        assert (got.rev, got.replayed, got.command_id) == (
            expected.rev,
            expected.replayed,
            command.command_id,
        )
        if not got.replayed:
            self.committed.append(command)

    def commit_and_check(self, command: Command) -> None:
        head = self.store.head_rev
        expected = self.model.apply(command)
        try:
            got: Committed | StatesyncError = self.store.commit(command)
        except StatesyncError as exc:
            got = exc
        self.check(command, got, expected)
        fresh = isinstance(got, Committed) and not got.replayed
        # A revision per committed command; failures and replays use none.
        assert self.store.head_rev == head + (1 if fresh else 0)

    # -- rules --

    @initialize(data=st.data(), length=st.integers(1, 8))
    def seed(self, data: st.DataObject, length: int) -> None:
        """A history to start from, so old revisions and compaction have depth."""
        for _ in range(length):
            self.put_or_delete(data)

    @rule(data=st.data())
    def put_or_delete(self, data: st.DataObject) -> None:
        """Valid without compares: keeps the history growing."""
        command_ops: list[Put | Delete] = []
        for ns, key in data.draw(st.lists(names, min_size=1, max_size=3, unique=True)):
            if data.draw(st.integers(0, 2)) == 0:
                command_ops.append(Delete(ns, key))
            else:
                command_ops.append(Put(ns, key, data.draw(documents)))
        self.commit_and_check(Command(command_ops, command_id=self.fresh_id()))

    @rule(data=st.data())
    def commit(self, data: st.DataObject) -> None:
        self.commit_and_check(self.draw_command(data))

    @rule(data=st.data())
    def commit_invalid_value(self, data: st.DataObject) -> None:
        self.commit_and_check(self.draw_command(data, bad=True))

    @precondition(lambda self: self.committed)
    @rule(data=st.data(), same_content=st.booleans())
    def replay(self, data: st.DataObject, same_content: bool) -> None:
        original = data.draw(st.sampled_from(self.committed))
        if same_content:
            command = Command(
                original.ops, compares=original.compares, command_id=original.command_id
            )
        else:  # usually different content: refused (same content by chance: a replay)
            drawn = self.draw_command(data)
            command = Command(drawn.ops, compares=drawn.compares, command_id=original.command_id)
        self.commit_and_check(command)

    @rule(data=st.data())
    def commit_many(self, data: st.DataObject) -> None:
        commands = [self.draw_command(data) for _ in range(data.draw(st.integers(2, 4)))]
        expected = [self.model.apply(c) for c in commands]
        outcomes = self.store.commit_many(commands)
        assert len(outcomes) == len(commands)
        for command, got, want in zip(commands, outcomes, expected, strict=True):
            self.check(command, got, want)

    @rule(data=st.data())
    def compact(self, data: st.DataObject) -> None:
        rev = data.draw(st.integers(self.model.compacted, self.model.head))
        self.store.compact(rev)
        self.model.compacted = max(self.model.compacted, rev)
        if self.model.compacted > 0:
            with pytest.raises(CompactedError):
                self.store.get(NAMESPACES[0], KEYS[0], rev=self.model.compacted - 1)
            with pytest.raises(CompactedError):
                self.store.changes(self.model.compacted - 1)

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = self.open()

    @rule(data=st.data())
    def read_at_a_retained_revision(self, data: st.DataObject) -> None:
        rev = data.draw(st.integers(self.model.compacted, self.model.head))
        state = self.model.states[rev]
        chunk_size = data.draw(st.integers(1, 4))
        with self.store.snapshot(rev=rev, chunk_size=chunk_size) as snap:
            chunks = list(snap.chunks())
            digests = dict(snap.digests)
        assert snap.rev == rev
        assert all(1 <= len(chunk) <= chunk_size for chunk in chunks)
        records = [r for chunk in chunks for r in chunk]
        for ns in NAMESPACES:
            expected = model_view(state, ns)
            assert store_view([r for r in records if r.namespace == ns]) == expected
            assert store_view(self.store.range(ns, rev=rev)) == expected
            root = model_digest(state, ns)
            assert self.store.digest(ns, rev=rev) == root
            assert digests.get(ns, root) == root
            for key in KEYS:
                record = self.store.get(ns, key, rev=rev)
                got = None if record is None else store_view([record])[key]
                assert got == expected.get(key)

    # -- invariants --

    @invariant()
    def revisions_match(self) -> None:
        assert (self.store.head_rev, self.store.compacted_rev) == (
            self.model.head,
            self.model.compacted,
        )

    @invariant()
    def state_and_digests_match(self) -> None:
        state = self.model.states[-1]
        for ns in NAMESPACES:
            records = self._range_all(ns)
            assert store_view(records) == model_view(state, ns)
            from_scratch = NamespaceDigest.from_items((r.key, value_hash(r.value)) for r in records)
            assert self.store.digest(ns) == from_scratch.root() == model_digest(state, ns)
        assert self.store.namespaces() == sorted({ns for ns, _ in state})

    @invariant()
    def log_folds_to_the_state(self) -> None:
        compacted, head = self.model.compacted, self.model.head
        changes, after = [], compacted
        while page := self.store.changes(after, limit=3):
            changes.extend(page)
            after = page[-1].rev
        expected = [c for rev in range(compacted + 1, head + 1) for c in self.model.changes[rev]]
        got = [
            MChange(
                c.rev,
                c.seq,
                c.namespace,
                c.key,
                c.op.value,
                c.value,
                c.prev_mod_rev,
                c.create_rev,
                c.version,
                c.command_id,
            )
            for c in changes
        ]
        assert got == expected
        with self.store.snapshot(rev=compacted, chunk_size=2) as snap:
            folded = {
                (r.namespace, r.key): (r.value, r.create_rev, r.mod_rev, r.version)
                for chunk in snap.chunks()
                for r in chunk
            }
        for c in changes:
            if c.value is None:
                del folded[(c.namespace, c.key)]
            else:
                folded[(c.namespace, c.key)] = (c.value, c.create_rev, c.rev, c.version)
        state = self.model.states[-1]
        assert folded == {
            where: (canon(r.value), r.create_rev, r.mod_rev, r.version)
            for where, r in state.items()
        }

    @invariant()
    def chain_verifies(self) -> None:
        report = self.store.verify_chain()
        assert (report.from_rev, report.to_rev) == (self.model.compacted, self.model.head)
        retained = range(self.model.compacted + 1, self.model.head + 1)
        assert report.changes == sum(len(self.model.changes[rev]) for rev in retained)

    def _range_all(self, namespace: str) -> list[KeyRecord]:
        out: list[KeyRecord] = []
        start_after: str | None = None
        while batch := self.store.range(namespace, start_after=start_after, limit=2):
            out.extend(batch)
            start_after = batch[-1].key
        return out


StoreMachine.TestCase.settings = settings(
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestStoreMachine = StoreMachine.TestCase


# -- the model itself, on cases from RFC 6902 appendix A ----------------------------------


@pytest.mark.parametrize(
    ("doc", "patch", "result"),
    [
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux"}],
            {"baz": "qux", "foo": "bar"},
        ),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        (
            {"foo": ["bar", "qux", "baz"]},
            [{"op": "remove", "path": "/foo/1"}],
            {"foo": ["bar", "baz"]},
        ),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        (
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
        ),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], None),
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], None),
        ({"foo": 1}, [{"op": "test", "path": "/foo", "value": True}], None),
        ({"foo": [1]}, [{"op": "add", "path": "/foo/01", "value": 2}], None),
        (
            {"foo": [{"a": 1}, {"b": 2}]},
            [{"op": "move", "from": "/foo/0", "path": "/foo/0/a"}],
            None,
        ),
    ],
)
def test_model_patch_follows_rfc6902(doc: Any, patch: list[dict[str, Any]], result: Any) -> None:
    if result is None:
        with pytest.raises(PatchFailed):
            apply_patch(doc, patch)
    else:
        assert apply_patch(doc, patch) == result


# -- digests: pure core properties ----------------------------------------------------------

digest_keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=6)
value_hashes = st.binary(min_size=32, max_size=32)


def _levels(digest: NamespaceDigest, keys: list[str]) -> dict[str, tuple[int, int]]:
    """Every materialized node on the paths of `keys`, as (count, sum)."""
    out = {}
    for key in keys:
        hexpos = position(key).hex()
        for depth in range(5):
            node = digest.node(hexpos[:depth])
            out[hexpos[:depth]] = (node.count, node.sum)
    return out


@settings(max_examples=60, deadline=None)
@given(
    initial=st.dictionaries(digest_keys, value_hashes, max_size=30),
    updates=st.lists(st.tuples(digest_keys, st.none() | value_hashes), max_size=40),
    order=st.randoms(use_true_random=False),
)
def test_incremental_digest_equals_from_items(
    initial: dict[str, bytes], updates: list[tuple[str, bytes | None]], order: Any
) -> None:
    digest = NamespaceDigest()
    inserts = list(initial.items())
    order.shuffle(inserts)
    for key, vhash in inserts:
        digest.update(key, None, vhash)
    current = dict(initial)
    for key, vhash in updates:
        digest.update(key, current.get(key), vhash)
        if vhash is None:
            current.pop(key, None)
        else:
            current[key] = vhash
    fresh = NamespaceDigest.from_items(current.items())
    assert (
        (digest.root(), digest.count)
        == (fresh.root(), fresh.count)
        == (
            fresh.root(),
            len(current),
        )
    )
    touched = list(initial) + [key for key, _ in updates]
    assert _levels(digest, touched) == _levels(fresh, touched)
    if not current:
        assert digest.root() == NamespaceDigest().root()


def _leaves_of(items: Mapping[str, bytes]) -> Callable[[str], dict[str, bytes]]:
    hexpos = {key: position(key).hex() for key in items}
    return lambda prefix: {k: v for k, v in items.items() if hexpos[k].startswith(prefix)}


@settings(max_examples=60, deadline=None)
@given(
    a=st.dictionaries(digest_keys, value_hashes, max_size=40),
    edits=st.lists(st.tuples(digest_keys, st.none() | value_hashes), max_size=6),
    leaf_threshold=st.sampled_from([0, 1, 2, 16]),
)
def test_differing_keys_is_the_symmetric_difference(
    a: dict[str, bytes], edits: list[tuple[str, bytes | None]], leaf_threshold: int
) -> None:
    b = dict(a)
    for key, vhash in edits:
        if vhash is None:
            b.pop(key, None)
        else:
            b[key] = vhash
    found, stats = differing_keys(
        NamespaceDigest.from_items(a.items()),
        _leaves_of(a),
        NamespaceDigest.from_items(b.items()),
        _leaves_of(b),
        leaf_threshold=leaf_threshold,
    )
    assert found == {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}
    if found == set():
        assert stats.nodes_compared == 1


class _Big:
    """20,000 keys, their digest and a prefix index, built once."""

    N = 20_000

    def __init__(self) -> None:
        self.items = {f"key-{i}": hashlib.sha256(str(i).encode()).digest() for i in range(self.N)}
        order = sorted((position(k).hex(), k) for k in self.items)
        self.positions = [p for p, _ in order]
        self.keys = [k for _, k in order]
        self.digest = NamespaceDigest.from_items(self.items.items())
        self.other = NamespaceDigest.from_items(self.items.items())

    def leaves(self, edits: Mapping[str, bytes | None]) -> Callable[[str], dict[str, bytes]]:
        def leaves(prefix: str) -> dict[str, bytes]:
            lo = bisect.bisect_left(self.positions, prefix)
            hi = bisect.bisect_left(self.positions, prefix + "g")  # past every hex digit
            out = {k: self.items[k] for k in self.keys[lo:hi]}
            for key, vhash in edits.items():
                if position(key).hex().startswith(prefix):
                    if vhash is None:
                        out.pop(key, None)
                    else:
                        out[key] = vhash
            return out

        return leaves


@cache
def _big() -> _Big:
    return _Big()


@settings(max_examples=20, deadline=None)
@given(
    picks=st.lists(st.integers(0, _Big.N + 50), min_size=1, max_size=8, unique=True),
    kinds=st.lists(st.sampled_from(["change", "delete"]), min_size=8, max_size=8),
)
def test_differing_keys_cost_grows_with_differences_not_size(
    picks: list[int], kinds: list[str]
) -> None:
    big = _big()
    edits: dict[str, bytes | None] = {}
    for i, kind in zip(picks, kinds, strict=False):
        key = f"key-{i}"
        if key not in big.items:  # beyond N: a key only the other side has
            edits[key] = hashlib.sha256(b"new" + key.encode()).digest()
        elif kind == "delete":
            edits[key] = None
        else:
            edits[key] = hashlib.sha256(b"changed" + key.encode()).digest()
    for key, vhash in edits.items():
        big.other.update(key, big.items.get(key), vhash)
    try:
        found, stats = differing_keys(
            big.digest, big.leaves({}), big.other, big.leaves(edits), leaf_threshold=16
        )
    finally:
        for key, vhash in edits.items():  # put the shared digest back
            big.other.update(key, vhash, big.items.get(key))
    k = len(edits)
    assert found == set(edits)
    assert stats.nodes_compared <= 16 * k * 6 + 16, (k, stats)
    assert stats.leaves_exchanged <= 2 * k * 40, (k, stats)
    assert big.other.root() == big.digest.root()
