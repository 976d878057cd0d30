"""The conformance suite every `Store` backend runs: what "implements Store" means.

A backend's test module subclasses `StoreSuite` and says how to open a store;
every test here then runs against it, through the `Store` Protocol only:

    class TestSQLiteStore(StoreSuite):
        def make_store(self, path, *, clock=None, **settings):
            return SQLiteStore(path, settings=StoreSettings(**settings),
                               clock=clock or time.time)

`make_store` is called again with the same `path` to reopen a store (durability
tests) and while a store is open (single-writer test). `settings` are
`StoreSettings` fields; `clock` (seconds since the epoch) is injected by the
retention tests, which then drive retention with `store.maintain()` only.

Behaviour that only one backend has (its files, its threads, tampering with its
tables) is tested in that backend's own module, next to its subclass. A bug
known in one backend is marked there, by overriding the test with a strict
xfail; a bug in the shared core is marked here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from statesync.core.commands import Command, Committed, Compare, Delete, Limits, Patch, Put
from statesync.core.digest import NamespaceDigest, position, value_hash
from statesync.core.errors import (
    CommandIdReusedError,
    CompactedError,
    ConflictError,
    FailedCompare,
    FutureRevisionError,
    InvalidCommandError,
    InvalidInputError,
    InvalidKeyError,
    InvalidNamespaceError,
    InvalidPatchError,
    InvalidValueError,
    NotFoundError,
    StoreClosedError,
    StoreError,
    ValueTooLargeError,
)
from statesync.core.model import GENESIS_HASH, Change, ChangeOp, KeyRecord
from statesync.store.base import Store

__all__ = ["NEVER", "ManualClock", "StoreSuite"]

NEVER = 1e6
"""A `maintenance_interval_s` that never elapses in a test: retention runs only
when the test calls `maintain()`."""

EMPTY_ROOT = NamespaceDigest().root()


class ManualClock:
    """An injected clock that moves only when the test says so."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# -- an independent expectation of a small history ----------------------------


@dataclass(frozen=True, slots=True)
class Rec:
    """What a key should hold: its JSON value and revision bookkeeping."""

    value: object
    create_rev: int
    mod_rev: int
    version: int


State = dict[tuple[str, str], Rec]

NAMESPACES = ("apps", "nets")

# Puts and deletes across two namespaces, keys sharing prefixes, a key deleted
# and created again. Entry i commits at revision i + 1.
SCRIPT: tuple[tuple[Put | Delete, ...], ...] = (
    (Put("apps", "svc/a", {"port": 80}), Put("apps", "svc/b", {"port": 81})),
    (Put("nets", "vlan/1", "blue"),),
    (Put("apps", "svc/a", {"port": 8080}), Delete("apps", "svc/b")),
    (Put("apps", "svcx", [1, 2]), Put("apps", "db", None)),
    (Delete("nets", "vlan/1"),),
    (Put("apps", "svc/b", {"port": 82}), Put("nets", "vlan/2", "red")),
    (Put("apps", "svc/c", {"port": 83}),),
    (Delete("apps", "svc/a"), Put("nets", "vlan/1", "green")),
    (Put("apps", "svc/c", {"port": 84}), Put("apps", "svc/d", 1)),
    (Put("nets", "vlan/2", "amber"),),
)


def fold(state: State, rev: int, ops: Sequence[Put | Delete]) -> State:
    """`state` after the put/delete `ops` committed at `rev`."""
    out = dict(state)
    for op in ops:
        where = (op.namespace, op.key)
        old = out.get(where)
        if isinstance(op, Delete):
            out.pop(where, None)
        else:
            out[where] = Rec(
                op.value,
                rev if old is None else old.create_rev,
                rev,
                1 if old is None else old.version + 1,
            )
    return out


def run_script(store: Store) -> list[State]:
    """Commit SCRIPT; return the expected state at every revision (index = rev)."""
    states: list[State] = [{}]
    for ops in SCRIPT:
        committed = store.commit(Command(list(ops)))
        assert committed.rev == len(states)
        states.append(fold(states[-1], committed.rev, ops))
    return states


def of_namespace(state: State, namespace: str) -> dict[str, Rec]:
    return {key: rec for (ns, key), rec in state.items() if ns == namespace}


# -- reading a store back ------------------------------------------------------


def rec(record: KeyRecord) -> Rec:
    return Rec(record.json(), record.create_rev, record.mod_rev, record.version)


def range_all(
    store: Store, namespace: str, *, rev: int | None = None, prefix: str = "", page: int = 2
) -> list[KeyRecord]:
    """Every record of a namespace, read in pages of `page` with start_after."""
    out: list[KeyRecord] = []
    start_after: str | None = None
    while True:
        batch = store.range(namespace, prefix=prefix, rev=rev, start_after=start_after, limit=page)
        assert len(batch) <= page
        out.extend(batch)
        if len(batch) < page:
            return out
        start_after = batch[-1].key


def view(store: Store, namespace: str, *, rev: int | None = None) -> dict[str, Rec]:
    records = range_all(store, namespace, rev=rev)
    keys = [r.key for r in records]
    assert keys == sorted(keys, key=lambda k: k.encode()), "range is ordered by key bytes"
    return {r.key: rec(r) for r in records}


def all_changes(store: Store, after_rev: int = 0, *, page: int = 3, **kw: Any) -> list[Change]:
    out: list[Change] = []
    while True:
        batch = store.changes(after_rev, limit=page, **kw)
        if not batch:
            return out
        out.extend(batch)
        after_rev = batch[-1].rev


def digest_of(records: Sequence[KeyRecord]) -> bytes:
    """A namespace's digest computed from scratch."""
    return NamespaceDigest.from_items((r.key, value_hash(r.value)) for r in records).root()


def read_snapshot(
    store: Store,
    namespaces: Sequence[str] | None = None,
    *,
    rev: int | None = None,
    chunk_size: int = 2,
) -> tuple[Any, list[list[KeyRecord]]]:
    with store.snapshot(namespaces, rev=rev, chunk_size=chunk_size) as snap:
        chunks = list(snap.chunks())
    return snap, chunks


def put(store: Store, namespace: str, key: str, value: object, **kw: Any) -> Committed:
    return store.commit(Command([Put(namespace, key, value)], **kw))


def must_get(store: Store, namespace: str, key: str, *, rev: int | None = None) -> KeyRecord:
    record = store.get(namespace, key, rev=rev)
    assert record is not None, f"{namespace}/{key} is absent"
    return record


class StoreSuite:
    """Subclass and implement `make_store`; every `test_*` here then runs."""

    def make_store(
        self, path: Path, *, clock: Callable[[], float] | None = None, **settings: Any
    ) -> Store:
        """Open (or reopen) the store kept at `path`."""
        raise NotImplementedError

    # -- fixtures ------------------------------------------------------------

    @pytest.fixture
    def store_path(self, tmp_path: Path) -> Path:
        return tmp_path / "store.db"

    @pytest.fixture
    def open_store(self, store_path: Path) -> Iterator[Callable[..., Store]]:
        """Opens the store at `store_path`; everything opened is closed at teardown."""
        opened: list[Store] = []

        def open_(*, clock: Callable[[], float] | None = None, **settings: Any) -> Store:
            store = self.make_store(store_path, clock=clock, **settings)
            opened.append(store)
            return store

        yield open_
        for store in reversed(opened):
            store.close()

    @pytest.fixture
    def store(self, open_store: Callable[..., Store]) -> Store:
        return open_store()

    # -- the Protocol ----------------------------------------------------------

    def test_implements_store_protocol(self, store: Store) -> None:
        assert isinstance(store, Store)
        store.commit(Command([Put("apps", f"k{i}", i) for i in range(50)]))
        root = store.digest_node("apps", "")
        assert (root.fingerprint, root.count) == (store.digest("apps"), 50)
        deep = position("k7").hex()[:6]
        assert store.digest_node("apps", deep).count == 1

    def test_empty_store(self, store: Store) -> None:
        assert (store.head_rev, store.compacted_rev) == (0, 0)
        assert store.get("apps", "a") is None
        assert store.range("apps") == []
        assert store.changes(0) == []
        assert store.namespaces() == []
        assert store.digest("apps") == EMPTY_ROOT
        report = store.verify_chain()
        assert (report.to_rev, report.changes, report.head_hash) == (0, 0, GENESIS_HASH)

    # -- put, get, patch, delete ----------------------------------------------

    def test_put_then_get(self, store: Store) -> None:
        committed = put(store, "apps", "svc", {"port": 80}, command_id="c-1")
        assert (committed.rev, committed.command_id, committed.replayed) == (1, "c-1", False)
        assert store.head_rev == 1
        record = store.get("apps", "svc")
        assert record == KeyRecord("apps", "svc", b'{"port":80}', 1, 1, 1)
        assert store.namespaces() == ["apps"]

    def test_values_are_stored_canonically(self, store: Store) -> None:
        put(store, "apps", "doc", {"b": [True, None, "x"], "a": {"d": 1, "c": -2}})
        assert must_get(store, "apps", "doc").value == b'{"a":{"c":-2,"d":1},"b":[true,null,"x"]}'

    def test_patch_applies_json_patch(self, store: Store) -> None:
        put(store, "apps", "svc", {"port": 80, "tags": ["a"]})
        committed = store.commit(
            Command(
                [
                    Patch(
                        "apps",
                        "svc",
                        [
                            {"op": "test", "path": "/port", "value": 80},
                            {"op": "replace", "path": "/port", "value": 81},
                            {"op": "add", "path": "/tags/-", "value": "b"},
                            {"op": "copy", "from": "/port", "path": "/old"},
                            {"op": "remove", "path": "/old"},
                            {"op": "move", "from": "/tags", "path": "/labels"},
                        ],
                    )
                ]
            )
        )
        record = must_get(store, "apps", "svc")
        assert rec(record) == Rec({"port": 81, "labels": ["a", "b"]}, 1, committed.rev, 2)
        [change] = store.changes(1)
        assert (change.op, change.value) == (ChangeOp.PUT, record.value)

    def test_patch_of_absent_key_is_not_found(self, store: Store) -> None:
        put(store, "apps", "other", 1)
        patch = [{"op": "add", "path": "/a", "value": 1}]
        with pytest.raises(NotFoundError) as caught:
            store.commit(Command([Put("apps", "new", 1), Patch("apps", "missing", patch)]))
        assert (caught.value.namespace, caught.value.key) == ("apps", "missing")
        self.assert_unchanged(store, head_rev=1)

    @pytest.mark.parametrize(
        "patch",
        [
            [{"op": "remove", "path": "/absent"}],
            [{"op": "replace", "path": "/absent", "value": 1}],
            [{"op": "test", "path": "/port", "value": 81}],
            [{"op": "add", "path": "/port/deeper", "value": 1}],
            [
                {"op": "replace", "path": "/port", "value": 1},
                {"op": "move", "from": "/x", "path": "/y"},
            ],
        ],
        ids=["remove-absent", "replace-absent", "test-fails", "add-under-scalar", "second-op"],
    )
    def test_failing_patch_writes_nothing(self, store: Store, patch: list[dict[str, Any]]) -> None:
        put(store, "apps", "svc", {"port": 80})
        before = store.digest("apps")
        with pytest.raises(InvalidPatchError) as caught:
            store.commit(Command([Put("apps", "new", 1), Patch("apps", "svc", patch)]))
        assert (caught.value.namespace, caught.value.key) == ("apps", "svc")
        assert caught.value.op_index == len(patch) - 1
        self.assert_unchanged(store, head_rev=1)
        assert store.digest("apps") == before
        assert must_get(store, "apps", "svc").json() == {"port": 80}

    def test_delete(self, store: Store) -> None:
        put(store, "apps", "svc", 1)
        committed = store.commit(Command([Delete("apps", "svc")]))
        assert committed.rev == 2
        assert store.get("apps", "svc") is None
        assert store.range("apps") == []
        assert store.namespaces() == []
        assert store.digest("apps") == EMPTY_ROOT
        [change] = store.changes(1)
        assert (change.op, change.value, change.prev_mod_rev) == (ChangeOp.DELETE, None, 1)
        assert (change.create_rev, change.version) == (0, 0)

    def test_delete_of_absent_key_uses_a_revision_and_changes_nothing(self, store: Store) -> None:
        put(store, "apps", "svc", 1)
        committed = store.commit(Command([Delete("apps", "never")]))
        assert committed.rev == store.head_rev == 2
        assert store.changes(1) == []
        assert put(store, "apps", "svc", 2).rev == 3
        assert [c.rev for c in store.changes(0)] == [1, 3]
        assert store.verify_chain().to_rev == 3

    def test_multi_op_command_is_one_revision(self, store: Store) -> None:
        ops = [Put("apps", "b", 1), Put("nets", "a", 2), Put("apps", "a", 3), Delete("apps", "z")]
        committed = store.commit(Command(ops, command_id="multi", trace="00-abc-def-01"))
        changes = store.changes(0)
        assert [(c.rev, c.seq, c.namespace, c.key) for c in changes] == [
            (1, 0, "apps", "b"),
            (1, 1, "nets", "a"),
            (1, 2, "apps", "a"),
        ]
        assert {c.command_id for c in changes} == {"multi"}
        assert {c.ts_ms for c in changes} == {committed.ts_ms}
        assert {c.trace for c in changes} == {"00-abc-def-01"}
        assert changes[-1].hash == store.verify_chain().head_hash

    def test_revision_bookkeeping(self, store: Store) -> None:
        put(store, "apps", "k", "v1")  # 1
        put(store, "apps", "other", 0)  # 2
        put(store, "apps", "k", "v2")  # 3
        assert rec(must_get(store, "apps", "k")) == Rec("v2", 1, 3, 2)
        store.commit(Command([Delete("apps", "k")]))  # 4
        put(store, "apps", "k", "v3")  # 5
        assert rec(must_get(store, "apps", "k")) == Rec("v3", 5, 5, 1)
        bookkeeping = [
            (c.rev, c.op, c.prev_mod_rev, c.create_rev, c.version)
            for c in store.changes(0, namespaces=["apps"])
            if c.key == "k"
        ]
        assert bookkeeping == [
            (1, ChangeOp.PUT, 0, 1, 1),
            (3, ChangeOp.PUT, 1, 1, 2),
            (4, ChangeOp.DELETE, 3, 0, 0),
            (5, ChangeOp.PUT, 0, 5, 1),
        ]

    # -- invalid input ---------------------------------------------------------

    @pytest.mark.parametrize(
        ("ops", "error"),
        [
            ([Put("apps", "k", 2**53)], InvalidValueError),
            ([Put("apps", "k", -(2**53))], InvalidValueError),
            ([Put("apps", "k", {"a": float("nan")})], InvalidValueError),
            ([Put("apps", "k", [float("inf")])], InvalidValueError),
            ([Put("apps", "k", {1: "x"})], InvalidValueError),
            ([Put("apps", "k", {1, 2})], InvalidValueError),
            (
                [Patch("apps", "k", [{"op": "add", "path": "/a", "value": 2**60}])],
                (InvalidPatchError, InvalidValueError),
            ),
            ([Patch("apps", "k", [{"op": "frobnicate", "path": "/a"}])], InvalidPatchError),
            ([Patch("apps", "k", [{"op": "add", "path": "a", "value": 1}])], InvalidPatchError),
            ([Patch("apps", "k", {"op": "remove", "path": "/a"})], InvalidPatchError),
            ([Put("Apps", "k", 1)], InvalidNamespaceError),
            ([Put("apps", "", 1)], InvalidKeyError),
            ([Put("apps", "a\x00b", 1)], InvalidKeyError),
            ([Put("apps", "k" * 1025, 1)], InvalidKeyError),
            ([Put("apps", "k", 1), Delete("apps", "k")], InvalidCommandError),
            ([], InvalidCommandError),
        ],
        ids=[
            "int-too-big",
            "int-too-small",
            "nan",
            "infinity",
            "non-string-member",
            "not-json",
            "patch-value",
            "patch-op",
            "patch-path",
            "patch-not-a-list",
            "namespace",
            "empty-key",
            "nul-in-key",
            "long-key",
            "duplicate-key",
            "no-ops",
        ],
    )
    def test_invalid_commands_write_nothing(
        self, store: Store, ops: list[Any], error: type[Exception] | tuple[type[Exception], ...]
    ) -> None:
        put(store, "apps", "k", {"a": 1})
        with pytest.raises(error):
            store.commit(Command(ops))
        self.assert_unchanged(store, head_rev=1)
        assert put(store, "apps", "after", 1).rev == 2

    def test_invalid_command_id_is_refused(self, store: Store) -> None:
        for command_id in ("", "x" * 257):
            with pytest.raises(InvalidCommandError):
                store.commit(Command([Put("apps", "k", 1)], command_id=command_id))
        assert store.head_rev == 0

    def test_invalid_value_error_names_the_place(self, store: Store) -> None:
        with pytest.raises(InvalidValueError) as caught:
            store.commit(Command([Put("apps", "svc", {"a": [1, 2**53]})]))
        assert (caught.value.namespace, caught.value.key, caught.value.path) == (
            "apps",
            "svc",
            "/a/1",
        )

    def test_value_size_limit(self, open_store: Callable[..., Store]) -> None:
        store = open_store(limits=Limits(max_value_bytes=32))
        with pytest.raises(ValueTooLargeError) as caught:
            put(store, "apps", "big", "x" * 40)
        assert (caught.value.size, caught.value.limit) == (42, 32)
        put(store, "apps", "small", "x" * 30)
        grow = [{"op": "replace", "path": "", "value": "y" * 31}]
        with pytest.raises(ValueTooLargeError):
            store.commit(Command([Patch("apps", "small", grow)]))
        self.assert_unchanged(store, head_rev=1)

    # -- compares --------------------------------------------------------------

    @pytest.mark.parametrize(
        "compare",
        [
            Compare.mod_rev_is("apps", "k", 2),
            Compare.mod_rev_is("apps", "absent", 0),
            Compare.exists("apps", "k"),
            Compare.absent("apps", "absent"),
        ],
        ids=["mod_rev", "mod_rev-0-absent", "exists", "absent"],
    )
    def test_compare_that_holds_commits(self, store: Store, compare: Compare) -> None:
        put(store, "apps", "other", 1)
        put(store, "apps", "k", 1)
        committed = store.commit(Command([Put("apps", "k", 2)], compares=[compare]))
        assert committed.rev == 3
        assert rec(must_get(store, "apps", "k")) == Rec(2, 2, 3, 2)

    def test_mod_rev_zero_means_absent(self, store: Store) -> None:
        create = Command([Put("apps", "k", 1)], compares=[Compare.mod_rev_is("apps", "k", 0)])
        assert store.commit(create).rev == 1
        again = Command([Put("apps", "k", 2)], compares=[Compare.mod_rev_is("apps", "k", 0)])
        with pytest.raises(ConflictError) as caught:
            store.commit(again)
        assert caught.value.failed == (FailedCompare("apps", "k", "mod_rev == 0", 1),)

    def test_conflict_names_every_failed_compare_and_writes_nothing(self, store: Store) -> None:
        put(store, "apps", "a", 1)  # 1
        put(store, "nets", "b", 1)  # 2
        put(store, "apps", "a", 2)  # 3
        digests = {ns: store.digest(ns) for ns in NAMESPACES}
        chain = store.verify_chain()
        compares = [
            Compare.mod_rev_is("apps", "a", 1),  # fails: mod_rev is 3
            Compare.mod_rev_is("nets", "b", 2),  # holds
            Compare.exists("apps", "missing"),  # fails: absent
            Compare.absent("nets", "b"),  # fails: mod_rev is 2
            Compare.mod_rev_is("apps", "missing", 5),  # fails: absent
        ]
        with pytest.raises(ConflictError) as caught:
            store.commit(Command([Put("apps", "a", 9), Delete("nets", "b")], compares=compares))
        assert caught.value.failed == (
            FailedCompare("apps", "a", "mod_rev == 1", 3),
            FailedCompare("apps", "missing", "exists", None),
            FailedCompare("nets", "b", "absent", 2),
            FailedCompare("apps", "missing", "mod_rev == 5", None),
        )
        assert "mod_rev is 3" in str(caught.value)
        self.assert_unchanged(store, head_rev=3)
        assert {ns: store.digest(ns) for ns in NAMESPACES} == digests
        assert store.verify_chain() == chain
        assert must_get(store, "apps", "a").json() == 2
        assert put(store, "apps", "c", 1).rev == 4  # no revision was used

    def test_compares_are_checked_before_ops(self, store: Store) -> None:
        patch = [{"op": "remove", "path": "/absent"}]
        with pytest.raises(ConflictError):
            store.commit(
                Command([Patch("apps", "missing", patch)], compares=[Compare.exists("apps", "k")])
            )
        assert store.head_rev == 0

    # -- idempotency -----------------------------------------------------------

    def test_replay_returns_the_original_outcome(self, store: Store) -> None:
        command = Command([Put("apps", "k", {"v": 1, "w": 2})], command_id="once")
        first = store.commit(command)
        put(store, "apps", "other", 1)
        # The same content built anew (members reordered, 1.0 for 1) is the same command.
        again = store.commit(Command([Put("apps", "k", {"w": 2, "v": 1.0})], command_id="once"))
        assert again == Committed(first.rev, "once", first.ts_ms, replayed=True)
        assert store.head_rev == 2
        assert len(store.changes(0)) == 2
        assert must_get(store, "apps", "k").version == 1

    def test_replay_survives_reopen(self, open_store: Callable[..., Store]) -> None:
        store = open_store()
        command = Command([Put("apps", "k", 1)], compares=[Compare.absent("apps", "k")])
        first = store.commit(command)
        store.close()
        store = open_store()
        again = store.commit(command)
        assert again == Committed(first.rev, first.command_id, first.ts_ms, replayed=True)
        assert store.head_rev == 1
        with pytest.raises(CommandIdReusedError):
            store.commit(Command([Put("apps", "k", 2)], command_id=first.command_id))

    def test_replay_ignores_current_state(self, store: Store) -> None:
        command = Command([Put("apps", "k", 1)], compares=[Compare.absent("apps", "k")])
        first = store.commit(command)
        # The compare would fail now; the command already happened, so it is reported.
        assert store.commit(command).rev == first.rev
        assert store.head_rev == 1

    def test_reused_command_id_with_different_content_is_refused(self, store: Store) -> None:
        store.commit(Command([Put("apps", "k", 1)], command_id="id-1"))
        for other in (
            Command([Put("apps", "k", 2)], command_id="id-1"),
            Command([Put("apps", "j", 1)], command_id="id-1"),
            Command([Delete("apps", "k")], command_id="id-1"),
            Command(
                [Put("apps", "k", 1)], compares=[Compare.exists("apps", "k")], command_id="id-1"
            ),
        ):
            with pytest.raises(CommandIdReusedError) as caught:
                store.commit(other)
            assert (caught.value.command_id, caught.value.committed_rev) == ("id-1", 1)
        self.assert_unchanged(store, head_rev=1)

    def test_trace_is_not_part_of_the_content(self, store: Store) -> None:
        first = store.commit(Command([Put("apps", "k", 1)], command_id="t", trace="00-a-b-01"))
        again = store.commit(Command([Put("apps", "k", 1)], command_id="t", trace="00-c-d-01"))
        assert (again.rev, again.replayed) == (first.rev, True)

    def test_failed_command_does_not_consume_its_id(self, store: Store) -> None:
        guarded = Command([Put("apps", "k", 1)], compares=[Compare.exists("apps", "gate")])
        with pytest.raises(ConflictError):
            store.commit(guarded)
        put(store, "apps", "gate", 1)
        committed = store.commit(guarded)
        assert (committed.rev, committed.replayed) == (2, False)

    # -- reads at revisions ----------------------------------------------------

    def test_reads_at_every_revision(self, store: Store) -> None:
        states = run_script(store)
        for rev, state in enumerate(states):
            for ns in NAMESPACES:
                assert view(store, ns, rev=rev) == of_namespace(state, ns), (ns, rev)
                for key in ("svc/a", "svc/b", "vlan/1", "db", "never"):
                    record = store.get(ns, key, rev=rev)
                    assert (None if record is None else rec(record)) == state.get((ns, key))
            expected = {
                k: r for (ns, k), r in state.items() if ns == "apps" and k.startswith("svc/")
            }
            for page in (1, 2, 100):
                records = range_all(store, "apps", rev=rev, prefix="svc/", page=page)
                assert {r.key: rec(r) for r in records} == expected

    def test_range_prefix_and_start_after(self, store: Store) -> None:
        keys = ["a", "b/1", "b/2", "b/3", "b0", "c"]
        store.commit(Command([Put("apps", k, i) for i, k in enumerate(keys)]))
        store.commit(Command([Delete("apps", "b/2")]))

        def keys_of(**kw: Any) -> list[str]:
            return [r.key for r in store.range("apps", **kw)]

        assert keys_of() == ["a", "b/1", "b/3", "b0", "c"]
        assert keys_of(prefix="b/") == ["b/1", "b/3"]
        assert keys_of(prefix="b/", rev=1) == ["b/1", "b/2", "b/3"]
        assert keys_of(prefix="b/", start_after="b/1", rev=1) == ["b/2", "b/3"]
        assert keys_of(prefix="b/", start_after="a") == ["b/1", "b/3"]
        assert keys_of(prefix="b/", start_after="b/3") == []
        assert keys_of(prefix="b/", start_after="zzz") == []
        assert keys_of(start_after="b/3", limit=2) == ["b0", "c"]
        assert keys_of(prefix="b/", limit=1, rev=1) == ["b/1"]
        assert keys_of(prefix="nothing") == []

    def test_reads_after_the_head_are_refused(self, store: Store) -> None:
        put(store, "apps", "k", 1)
        refused: list[Callable[[], object]] = [
            lambda: store.get("apps", "k", rev=2),
            lambda: store.range("apps", rev=2),
            lambda: store.changes(2),
            lambda: store.digest("apps", rev=2),
            lambda: read_snapshot(store, rev=2),
            lambda: store.compact(2),
        ]
        for read in refused:
            with pytest.raises(FutureRevisionError) as caught:
                read()
            assert (caught.value.requested_rev, caught.value.head_rev) == (2, 1)

    # -- changes ---------------------------------------------------------------

    def test_changes_are_whole_revisions_in_order(self, store: Store) -> None:
        run_script(store)
        changes = store.changes(0, limit=1000)
        assert [(c.rev, c.seq) for c in changes] == sorted((c.rev, c.seq) for c in changes)
        per_rev = {rev: [c for c in changes if c.rev == rev] for rev in range(1, 11)}
        for rev, ops in enumerate(SCRIPT, start=1):
            assert [(c.namespace, c.key) for c in per_rev[rev]] == [
                (op.namespace, op.key) for op in ops
            ]
            assert [c.seq for c in per_rev[rev]] == list(range(len(ops)))
        assert store.changes(4, limit=1000) == [c for c in changes if c.rev > 4]
        assert store.changes(10) == []

    @pytest.mark.parametrize("limit", [1, 2, 3, 5])
    def test_changes_paging_never_splits_a_revision(self, store: Store, limit: int) -> None:
        for rev in range(1, 9):
            store.commit(Command([Put("apps", f"k{i}", rev) for i in range(rev % 4 + 1)]))
        everything = store.changes(0, limit=1000)
        after, pages = 0, []
        while page := store.changes(after, limit=limit):
            pages.append(page)
            after = page[-1].rev
        assert [c for page in pages for c in page] == everything
        sizes = {rev: sum(1 for c in everything if c.rev == rev) for rev in range(1, 9)}
        for page in pages:
            for rev in {c.rev for c in page}:
                assert sum(1 for c in page if c.rev == rev) == sizes[rev], (limit, rev)
            # A page is the fewest whole revisions that reach the limit.
            assert len(page) - sum(1 for c in page if c.rev == page[-1].rev) < limit

    def test_changes_filter_by_namespace(self, store: Store) -> None:
        run_script(store)
        everything = store.changes(0, limit=1000)
        for namespaces in (["apps"], ["nets"], ["apps", "nets"], ["other"]):
            expected = [c for c in everything if c.namespace in namespaces]
            assert all_changes(store, namespaces=namespaces) == expected
            assert store.changes(0, limit=1000, namespaces=namespaces) == expected

    # -- snapshots -------------------------------------------------------------

    def test_snapshot_at_head_and_old_revisions_in_chunks(self, store: Store) -> None:
        states = run_script(store)
        for rev in (None, *range(len(states))):
            at = store.head_rev if rev is None else rev
            snap, chunks = read_snapshot(store, rev=rev, chunk_size=2)
            assert snap.rev == at
            assert all(1 <= len(chunk) <= 2 for chunk in chunks)
            records = [r for chunk in chunks for r in chunk]
            assert [(r.namespace, r.key) for r in records] == sorted(
                (r.namespace, r.key) for r in records
            )
            assert {(r.namespace, r.key): rec(r) for r in records} == states[at]
            assert {r.namespace for r in records} <= set(snap.namespaces)
            for ns in snap.namespaces:
                in_ns = [r for r in records if r.namespace == ns]
                assert snap.digests[ns] == store.digest(ns, rev=at) == digest_of(in_ns)
                assert snap.counts[ns] == len(in_ns)

    def test_snapshot_of_some_namespaces(self, store: Store) -> None:
        states = run_script(store)
        snap, chunks = read_snapshot(store, ["nets"], rev=6, chunk_size=1)
        assert snap.namespaces == ("nets",)
        assert {(r.namespace, r.key): rec(r) for c in chunks for r in c} == {
            k: v for k, v in states[6].items() if k[0] == "nets"
        }
        assert snap.digests == {"nets": store.digest("nets", rev=6)}

    def test_snapshot_is_a_consistent_view(self, store: Store) -> None:
        states = run_script(store)
        with store.snapshot(chunk_size=1) as snap:
            chunks = snap.chunks()
            first = next(chunks)
            store.commit(Command([Delete("apps", "svc/c"), Put("apps", "svc/zz", 1)]))
            put(store, "nets", "vlan/9", 1)
            records = first + [r for chunk in chunks for r in chunk]
        assert snap.rev == 10
        assert {(r.namespace, r.key): rec(r) for r in records} == states[10]

    # -- digests ---------------------------------------------------------------

    def test_digests_match_a_from_scratch_computation(self, store: Store) -> None:
        states = run_script(store)
        for rev in range(len(states)):
            for ns in NAMESPACES:
                records = range_all(store, ns, rev=rev)
                assert store.digest(ns, rev=rev) == digest_of(records), (ns, rev)
        for ns in NAMESPACES:
            assert store.digest(ns) == digest_of(range_all(store, ns))
        assert store.digest("nothing-here") == EMPTY_ROOT
        # A digest depends on the (key, value) set only, not on history.
        copy = [Put("copy", r.key, r.json()) for r in range_all(store, "apps")]
        store.commit(Command(copy))
        assert store.digest("copy") == store.digest("apps")
        assert store.digest("apps", rev=2) != store.digest("apps", rev=3)

    # -- compaction ------------------------------------------------------------

    def answers(self, store: Store, rev: int) -> dict[str, object]:
        """Everything a reader can ask at `rev`."""
        snap, chunks = read_snapshot(store, rev=rev)
        return {
            "views": {ns: view(store, ns, rev=rev) for ns in NAMESPACES},
            "gets": {ns: store.get(ns, "svc/a", rev=rev) for ns in NAMESPACES},
            "digests": {ns: store.digest(ns, rev=rev) for ns in NAMESPACES},
            "snapshot": [r for chunk in chunks for r in chunk],
            "snapshot_digests": snap.digests,
            "changes": all_changes(store, rev),
        }

    def test_compaction_keeps_reads_at_and_after_the_compacted_revision(self, store: Store) -> None:
        run_script(store)
        before = {rev: self.answers(store, rev) for rev in range(11)}
        store.compact(5)
        assert store.compacted_rev == 5
        for rev in range(5, 11):
            assert self.answers(store, rev) == before[rev], rev
        store.compact(9)
        for rev in range(9, 11):
            assert self.answers(store, rev) == before[rev], rev

    def test_compaction_refuses_older_reads(self, store: Store) -> None:
        run_script(store)
        store.compact(5)
        old: list[Callable[[int], object]] = [
            lambda r: store.get("apps", "svc/a", rev=r),
            lambda r: store.range("apps", rev=r),
            lambda r: store.digest("apps", rev=r),
            lambda r: store.changes(r),
            lambda r: read_snapshot(store, rev=r),
        ]
        for rev in (0, 4):
            for read in old:
                with pytest.raises(CompactedError) as caught:
                    read(rev)
                assert (caught.value.requested_rev, caught.value.compacted_rev) == (rev, 5)

    def test_compaction_keeps_the_chain_verifiable(self, open_store: Callable[..., Store]) -> None:
        store = open_store()
        run_script(store)
        head_hash = store.verify_chain().head_hash
        store.compact(4)
        report = store.verify_chain()
        assert (report.from_rev, report.to_rev, report.head_hash) == (4, 10, head_hash)
        assert report.changes == len(store.changes(4, limit=1000))
        put(store, "apps", "after", 1)
        store.compact(11)
        store.close()
        store = open_store()
        assert (store.head_rev, store.compacted_rev) == (11, 11)
        report = store.verify_chain()
        assert (report.from_rev, report.to_rev, report.changes) == (11, 11, 0)
        put(store, "apps", "again", 1)
        assert store.verify_chain().changes == 1
        assert store.get("apps", "again", rev=11) is None
        assert "again" in view(store, "apps", rev=12)

    def test_compaction_is_monotonic(self, store: Store) -> None:
        run_script(store)
        store.compact(6)
        store.compact(3)
        assert store.compacted_rev == 6
        store.compact(10)
        assert store.compacted_rev == 10
        assert view(store, "apps", rev=10) == view(store, "apps")

    def test_idempotency_outlives_compaction(self, store: Store) -> None:
        command = Command([Put("apps", "k", 1)], command_id="kept")
        original = store.commit(command)
        put(store, "apps", "j", 1)
        store.compact(2)
        assert store.commit(command) == Committed(1, "kept", original.ts_ms, replayed=True)
        assert store.head_rev == 2

    # -- retention (injected clock, maintain()) -------------------------------

    def test_history_retention_by_revisions(self, open_store: Callable[..., Store]) -> None:
        store = open_store(
            clock=ManualClock(), history_retention_revisions=3, maintenance_interval_s=NEVER
        )
        for i in range(10):
            put(store, "apps", f"k{i % 4}", i)
        assert store.compacted_rev == 0
        store.maintain()
        assert store.compacted_rev == 7
        assert len(view(store, "apps", rev=7)) == 4
        with pytest.raises(CompactedError):
            store.get("apps", "k0", rev=6)
        store.verify_chain()

    def test_history_retention_by_age(self, open_store: Callable[..., Store]) -> None:
        clock = ManualClock()
        store = open_store(clock=clock, history_retention_s=60, maintenance_interval_s=NEVER)
        for i in range(3):
            put(store, "apps", f"k{i}", i)  # 1-3 at t0
        clock.advance(30)
        put(store, "apps", "k3", 3)  # 4 at t0+30
        put(store, "apps", "k0", 4)  # 5 at t0+30
        store.maintain()
        assert store.compacted_rev == 0  # nothing older than 60 s yet
        clock.advance(40)  # t0+70: revisions 1-3 are older than 60 s
        store.maintain()
        assert store.compacted_rev == 3
        clock.advance(30)  # t0+100: revisions 4-5 are older too
        store.maintain()
        assert store.compacted_rev == 5
        assert view(store, "apps", rev=5) == view(store, "apps")
        store.verify_chain()

    def test_idempotency_records_expire(self, open_store: Callable[..., Store]) -> None:
        clock = ManualClock()
        store = open_store(clock=clock, idempotency_retention_s=100, maintenance_interval_s=NEVER)
        command = Command([Put("apps", "k", 1)], command_id="short-lived")
        first = store.commit(command)
        clock.advance(60)
        store.maintain()
        assert store.commit(command).replayed
        with pytest.raises(CommandIdReusedError):
            store.commit(Command([Put("apps", "k", 2)], command_id="short-lived"))
        clock.advance(41)  # 101 s after the commit
        store.maintain()
        again = store.commit(command)  # forgotten: it is a new command now
        assert (again.rev, again.replayed) == (first.rev + 1, False)
        assert must_get(store, "apps", "k").version == 2
        assert store.compacted_rev == 0  # idempotency retention does not compact

    # -- concurrency -----------------------------------------------------------

    def test_concurrent_threads_get_consecutive_revisions(self, store: Store) -> None:
        threads, per_thread = 8, 200
        barrier = threading.Barrier(threads)

        def writer(t: int) -> list[int]:
            barrier.wait()
            return [put(store, "load", f"t{t}", {"n": n}).rev for n in range(per_thread)]

        with ThreadPoolExecutor(threads) as pool:
            revs = list(pool.map(writer, range(threads)))
        total = threads * per_thread
        assert sorted(r for rs in revs for r in rs) == list(range(1, total + 1))
        assert all(rs == sorted(rs) for rs in revs)
        assert store.head_rev == total
        for t in range(threads):
            record = must_get(store, "load", f"t{t}")
            assert (record.json(), record.version) == ({"n": per_thread - 1}, per_thread)
        changes = all_changes(store, page=500)
        assert [c.rev for c in changes] == list(range(1, total + 1))
        assert store.verify_chain().changes == total

    def test_concurrent_asyncio_tasks_get_consecutive_revisions(self, store: Store) -> None:
        tasks = 200

        async def main() -> list[Committed]:
            return await asyncio.gather(
                *(store.commit_async(Command([Put("load", f"a{i}", i)])) for i in range(tasks))
            )

        committed = asyncio.run(main())
        assert sorted(c.rev for c in committed) == list(range(1, tasks + 1))
        assert len(range_all(store, "load", page=64)) == tasks

    def test_concurrent_compare_and_swap_loses_no_update(self, store: Store) -> None:
        threads, increments = 8, 20
        put(store, "cas", "counter", 0)
        barrier = threading.Barrier(threads)

        def incrementer(_: int) -> int:
            barrier.wait()
            done = conflicts = 0
            while done < increments:
                current = must_get(store, "cas", "counter")
                count = current.json()
                assert isinstance(count, int)
                command = Command(
                    [Put("cas", "counter", count + 1)],
                    compares=[Compare.mod_rev_is("cas", "counter", current.mod_rev)],
                )
                try:
                    store.commit(command)
                except ConflictError:
                    conflicts += 1
                else:
                    done += 1
            return conflicts

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(incrementer, range(threads)))
        final = must_get(store, "cas", "counter")
        total = threads * increments
        assert (final.json(), final.version, store.head_rev) == (total, total + 1, total + 1)

    # -- durability and lifecycle ----------------------------------------------

    def test_state_survives_close_and_reopen(self, open_store: Callable[..., Store]) -> None:
        store = open_store()
        run_script(store)
        store.compact(3)

        def everything(s: Store) -> dict[str, object]:
            return {
                "head": (s.head_rev, s.compacted_rev),
                "namespaces": s.namespaces(),
                "at": {rev: self.answers(s, rev) for rev in range(3, 11)},
                "chain": s.verify_chain(),
            }

        before = everything(store)
        store.close()
        store = open_store()
        assert everything(store) == before
        committed = put(store, "apps", "svc/a", "back")
        assert committed.rev == 11
        report = store.verify_chain()
        assert report.to_rev == 11
        assert report.head_hash == store.changes(10)[-1].hash

    def test_second_open_is_refused(self, store: Store, store_path: Path) -> None:
        put(store, "apps", "k", 1)
        try:
            second = self.make_store(store_path)
        except StoreError:
            pass
        else:
            second.close()
            pytest.fail("a second open of an open store must raise StoreError")
        assert put(store, "apps", "k", 2).rev == 2
        store.close()
        reopened = self.make_store(store_path)
        try:
            assert reopened.head_rev == 2
        finally:
            reopened.close()

    def test_commit_after_close_is_refused(self, store: Store) -> None:
        put(store, "apps", "k", 1)
        store.close()
        store.close()  # idempotent
        with pytest.raises(StoreClosedError):
            put(store, "apps", "k", 2)

        async def later() -> Committed:
            return await store.commit_async(Command([Put("apps", "k", 3)]))

        with pytest.raises(StoreClosedError):
            asyncio.run(later())

    def test_reads_after_close_are_refused(self, store: Store) -> None:
        put(store, "apps", "k", 1)
        assert store.get("apps", "k") is not None  # this thread has read before
        store.close()
        reads: dict[str, Callable[[], object]] = {
            "get": lambda: store.get("apps", "k"),
            "range": lambda: store.range("apps"),
            "changes": lambda: store.changes(0),
            "digest": lambda: store.digest("apps"),
            "verify_chain": store.verify_chain,
            "snapshot": lambda: read_snapshot(store),
        }
        outcomes = {}
        for name, read in reads.items():
            try:
                read()
            except StoreClosedError:
                outcomes[name] = "StoreClosedError"
            except Exception as exc:
                outcomes[name] = f"{type(exc).__module__}.{type(exc).__name__}"
            else:
                outcomes[name] = "answered"
        assert outcomes == dict.fromkeys(reads, "StoreClosedError")

    # -- commit_many -------------------------------------------------------------

    def test_commit_many_reports_each_outcome(self, store: Store) -> None:
        patch = [{"op": "add", "path": "/a", "value": 1}]
        outcomes = store.commit_many(
            [
                Command([Put("apps", "a", 1)], command_id="c1"),
                Command([Put("apps", "b", 1)], compares=[Compare.exists("apps", "zzz")]),
                Command([Put("apps", "c", 2**53)]),
                Command([Patch("apps", "nope", patch)]),
                Command([Put("apps", "a", 2)], command_id="c1"),
                Command([Put("apps", "a", 1)], command_id="c1"),
                Command([Put("apps", "d", 1)], compares=[Compare.mod_rev_is("apps", "a", 1)]),
                Command([Patch("apps", "d", [{"op": "replace", "path": "", "value": 5}])]),
            ]
        )
        kinds = [type(o) for o in outcomes]
        assert kinds == [
            Committed,
            ConflictError,
            InvalidValueError,
            NotFoundError,
            CommandIdReusedError,
            Committed,
            Committed,
            Committed,
        ]
        committed = [o for o in outcomes if isinstance(o, Committed)]
        assert [(c.rev, c.replayed) for c in committed] == [
            (1, False),
            (1, True),
            (2, False),
            (3, False),
        ]
        assert store.head_rev == 3
        assert view(store, "apps") == {"a": Rec(1, 1, 1, 1), "d": Rec(5, 2, 3, 2)}
        assert store.commit_many([]) == []

    # -- limits on reads -----------------------------------------------------------

    def test_changes_limit_zero(self, store: Store) -> None:
        put(store, "apps", "k", 1)
        try:
            answer = store.changes(0, limit=0)
        except InvalidInputError:
            return  # refusing a zero limit is fine
        assert answer == []

    def test_range_limit_zero(self, store: Store) -> None:
        store.commit(Command([Put("apps", "a", 1), Put("apps", "b", 1)]))
        for rev in (None, 1):
            try:
                answer = store.range("apps", rev=rev, limit=0)
            except InvalidInputError:
                continue  # refusing a zero limit is fine
            assert answer == [], rev

    # -- JSON Patch semantics (RFC 6902), shared by every backend -------------------

    @pytest.mark.parametrize("document", ["text", 5, [1, 2], None])
    def test_patch_add_at_root_replaces_any_document(self, store: Store, document: object) -> None:
        put(store, "apps", "k", document)
        store.commit(Command([Patch("apps", "k", [{"op": "add", "path": "", "value": {"a": 1}}])]))
        assert must_get(store, "apps", "k").json() == {"a": 1}

    def test_patch_move_into_its_own_child_is_refused(self, store: Store) -> None:
        put(store, "apps", "k", {"x": [{"a": 1}, {"b": 2}]})
        move = [{"op": "move", "from": "/x/0", "path": "/x/0/y"}]
        with pytest.raises(InvalidPatchError):
            store.commit(Command([Patch("apps", "k", move)]))
        assert must_get(store, "apps", "k").json() == {"x": [{"a": 1}, {"b": 2}]}

    @pytest.mark.parametrize(
        ("document", "path", "result"),
        [({"x": 1}, "/y", {"x": 1, "y": {"x": 1}}), ([1], "/-", [1, [1]])],
    )
    def test_patch_copy_from_the_root(
        self, store: Store, document: object, path: str, result: object
    ) -> None:
        put(store, "apps", "k", document)
        store.commit(Command([Patch("apps", "k", [{"op": "copy", "from": "", "path": path}])]))
        assert must_get(store, "apps", "k").json() == result

    def test_patch_remove_of_root_is_an_invalid_patch(self, store: Store) -> None:
        for document in (5, {"a": 1}):
            put(store, "apps", "k", document)
            with pytest.raises(InvalidPatchError):
                store.commit(Command([Patch("apps", "k", [{"op": "remove", "path": ""}])]))

    @pytest.mark.parametrize(
        ("stored", "tested"), [(1, True), (0, False), ([1], [True]), ({"a": True}, {"a": 1})]
    )
    def test_patch_test_distinguishes_booleans_from_numbers(
        self, store: Store, stored: object, tested: object
    ) -> None:
        """RFC 6902 4.6: values of different JSON types are never equal."""
        put(store, "apps", "k", {"v": stored})
        with pytest.raises(InvalidPatchError):
            store.commit(
                Command([Patch("apps", "k", [{"op": "test", "path": "/v", "value": tested}])])
            )

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def assert_unchanged(store: Store, *, head_rev: int) -> None:
        """Nothing was written after `head_rev`: no revision, change or key."""
        assert store.head_rev == head_rev
        assert store.changes(head_rev) == []
        assert store.verify_chain().to_rev == head_rev
