"""Writes based on an old revision: reject, last-durable-wins, merge, and shadow mode."""

from __future__ import annotations

import itertools
import json
import logging
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_cli import Server, cli, ok_json, server

from statesync.contracts.registry import configure_request, register_request
from statesync.core.commands import Command, Delete, Put, SetContract
from statesync.core.errors import (
    CompactedError,
    ConflictError,
    MergeConflictError,
    SchemaViolationError,
)
from statesync.store.sqlite import SQLiteStore

__all__ = ["server"]  # the module-scoped controller fixture (CLI tests)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path_factory.mktemp("policies") / "db.sqlite")
    yield s
    s.close()


_names = itertools.count()


def fresh_ns(store: SQLiteStore, policy: str, shadow: str | None = None) -> str:
    ns = f"ns{next(_names)}"
    request = configure_request(conflict_policy=policy, shadow_policy=shadow)
    store.commit(Command([SetContract(ns, request)]))
    return ns


def put(store: SQLiteStore, ns: str, key: str, value: Any, base_rev: int = 0) -> int:
    return store.commit(Command([Put(ns, key, value, base_rev=base_rev)])).rev


def value(store: SQLiteStore, ns: str, key: str) -> Any:
    record = store.get(ns, key)
    return None if record is None else record.json()


def test_reject_is_the_default_and_names_the_revisions(store: SQLiteStore) -> None:
    ns = f"plain{next(_names)}"  # no contract at all
    base = put(store, ns, "k", {"a": 1})
    assert put(store, ns, "k", {"a": 2}, base_rev=base)  # unchanged since base: a plain write
    head = store.head_rev
    with pytest.raises(ConflictError) as info:
        put(store, ns, "k", {"a": 3}, base_rev=base)
    failed = info.value.failed[0]
    assert failed.actual_mod_rev == head and f"revision {base}" in failed.expected
    assert value(store, ns, "k") == {"a": 2} and store.head_rev == head
    store.commit(Command([Delete(ns, "k")]))
    with pytest.raises(ConflictError):  # deleted since the base: changed too
        put(store, ns, "k", {"a": 4}, base_rev=base)


def test_last_durable_wins_applies_the_stale_write(store: SQLiteStore) -> None:
    ns = fresh_ns(store, "last-durable-wins")
    base = put(store, ns, "k", {"a": 1, "b": 1})
    put(store, ns, "k", {"a": 2, "b": 1})
    put(store, ns, "k", {"a": 1, "b": 9}, base_rev=base)
    assert value(store, ns, "k") == {"a": 1, "b": 9}


def test_merge_keeps_both_sides_or_names_every_conflict(store: SQLiteStore) -> None:
    ns = fresh_ns(store, "merge")
    base = put(store, ns, "cart", {"items": ["pen"], "note": "", "owner": "ann", "tag": 1})
    put(store, ns, "cart", {"items": ["pen"], "note": "gift", "owner": "ann", "tag": 1})
    put(store, ns, "cart", {"items": ["pen", "ink"], "note": "", "owner": "ann"}, base_rev=base)
    assert value(store, ns, "cart") == {"items": ["pen", "ink"], "note": "gift", "owner": "ann"}
    head = store.head_rev
    with pytest.raises(MergeConflictError) as info:
        put(store, ns, "cart", {"items": ["ink"], "note": "x", "owner": "ann"}, base_rev=base)
    error = info.value
    assert [c["path"] for c in error.conflicts] == ["/items", "/note"]
    assert error.conflicts[1] == {
        "path": "/note",
        "base": {"value": ""},
        "current": {"value": "gift"},
        "writer": {"value": "x"},
    }
    assert (error.base_rev, error.current_mod_rev) == (base, head)
    assert store.head_rev == head and error.exit_code == 3


def test_merge_against_a_created_or_deleted_key(store: SQLiteStore) -> None:
    ns = fresh_ns(store, "merge")
    base = put(store, ns, "other", 0)  # "k" is absent at base
    put(store, ns, "k", {"a": 1})
    with pytest.raises(MergeConflictError):  # both created it, differently
        put(store, ns, "k", {"a": 2}, base_rev=base)
    put(store, ns, "k", {"a": 1}, base_rev=base)  # both created the same value: clean
    base = store.head_rev
    store.commit(Command([Delete(ns, "k")]))
    put(store, ns, "k", {"a": 1}, base_rev=base)  # unchanged by the writer: stays deleted
    assert value(store, ns, "k") is None
    with pytest.raises(MergeConflictError):  # deleted since, modified by the writer
        put(store, ns, "k", {"a": 5}, base_rev=base)


def test_merge_needs_the_base_in_history_and_the_result_must_fit_the_schema(
    tmp_path: Path,
) -> None:
    with SQLiteStore(tmp_path / "db.sqlite") as store:
        ns = fresh_ns(store, "merge")
        schema = {"type": "object", "properties": {"a": {"type": "integer", "maximum": 5}}}
        store.commit(Command([SetContract(ns, register_request(schema))]))
        base = put(store, ns, "k", {"a": 1, "b": 1})
        put(store, ns, "k", {"a": 9 - 4, "b": 1})
        put(store, ns, "k", {"a": 1, "b": 2}, base_rev=base)
        assert value(store, ns, "k") == {"a": 5, "b": 2}
        store.compact(store.head_rev)
        with pytest.raises(CompactedError):
            put(store, ns, "k", {"a": 1, "b": 3}, base_rev=base)
    with SQLiteStore(tmp_path / "db2.sqlite") as store:
        ns = fresh_ns(store, "merge")
        store.commit(Command([SetContract(ns, register_request({"maxProperties": 2}))]))
        base = put(store, ns, "k", {"a": 1})
        put(store, ns, "k", {"a": 1, "b": 1})
        with pytest.raises(SchemaViolationError):  # the merge {a, b, c} breaks the schema
            put(store, ns, "k", {"a": 1, "c": 1}, base_rev=base)


def test_shadow_mode_counts_and_logs_where_the_candidate_would_differ(
    store: SQLiteStore, caplog: pytest.LogCaptureFixture
) -> None:
    ns = fresh_ns(store, "reject", shadow="merge")
    base = put(store, ns, "k", {"a": 1, "b": 1})
    put(store, ns, "k", {"a": 2, "b": 1})
    with caplog.at_level(logging.INFO, logger="statesync.policy"), pytest.raises(ConflictError):
        put(store, ns, "k", {"a": 1, "b": 2}, base_rev=base)  # merge would have written
    with pytest.raises(ConflictError):
        put(store, ns, "k", {"a": 3, "b": 1}, base_rev=base)  # merge would refuse too
    put(store, ns, "k", {"a": 2, "b": 1}, base_rev=store.head_rev)  # not stale: not compared
    stats = store.shadow_stats()[ns]
    assert (stats.compared, stats.disagreed) == (2, 1)
    assert (stats.active.value, stats.candidate.value) == ("reject", "merge")
    assert any("shadow policy merge would write" in r.message for r in caplog.records)
    assert value(store, ns, "k") == {"a": 2, "b": 1}  # only the active policy acted


# -- merging non-overlapping edits never loses either side ---------------------------

members = st.text("abcdef", min_size=1, max_size=2)
scalars = st.one_of(st.integers(-1000, 1000), st.text(max_size=3), st.booleans(), st.none())
documents = st.dictionaries(members, scalars | st.lists(scalars, max_size=2), max_size=6)


@st.composite
def disjoint_edits(draw: st.DrawFn) -> tuple[dict, dict, dict]:
    base = draw(documents)
    names = sorted(set(base) | set(draw(st.lists(members, max_size=4))))
    mine = set(draw(st.lists(st.sampled_from(names), max_size=len(names)))) if names else set()
    current, writer = dict(base), dict(base)
    for name in names:
        side = current if name in mine else writer
        if draw(st.booleans()) and name in side:
            del side[name]
        else:
            side[name] = draw(scalars)
    return base, current, writer


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(edits=disjoint_edits())
def test_merging_non_overlapping_edits_keeps_both(
    store: SQLiteStore, edits: tuple[dict, dict, dict]
) -> None:
    base, current, writer = edits
    ns = fresh_ns(store, "merge")
    base_rev = put(store, ns, "k", base)
    put(store, ns, "k", current)
    put(store, ns, "k", writer, base_rev=base_rev)
    expected = dict(base)
    for side in (current, writer):
        for name in set(base) | set(side):
            if base.get(name, KeyError) != side.get(name, KeyError):
                if name in side:
                    expected[name] = side[name]
                else:
                    expected.pop(name, None)
    assert value(store, ns, "k") == expected


# -- the CLI and the metrics -----------------------------------------------------------


def test_policy_cli_and_shadow_metrics(server: Server) -> None:
    a = server.address
    assert ok_json(a, "policy", "set", "carts", "reject", "--shadow", "merge")["rev"]
    assert ok_json(a, "policy", "show", "carts") == {
        "namespace": "carts",
        "conflict_policy": "reject",
        "shadow_policy": "merge",
    }
    assert ok_json(a, "policy", "show", "nothing-set")["conflict_policy"] == "reject"
    base = ok_json(a, "put", "carts", "c1", '{"a": 1, "b": 1}')["rev"]
    ok_json(a, "put", "carts", "c1", '{"a": 2, "b": 1}')
    stale = cli(a, "put", "carts", "c1", '{"a": 1, "b": 2}', "--base-rev", str(base))
    assert stale.returncode == 3 and f"revision {base}" in stale.stderr
    with urllib.request.urlopen(server.http + "/metrics", timeout=10) as response:
        metrics = response.read().decode()
    labels = 'active="reject",candidate="merge",namespace="carts"'
    assert f"statesync_shadow_disagreements_total{{{labels}}} 1.0" in metrics
    ok_json(a, "policy", "set", "carts", "merge", "--shadow", "none")
    merged = ok_json(a, "put", "carts", "c1", '{"a": 1, "b": 2}', "--base-rev", str(base))
    assert ok_json(a, "get", "carts", "c1", "--rev", str(merged["rev"]))["value"] == {
        "a": 2,
        "b": 2,
    }
    conflict = cli(a, "put", "carts", "c1", '{"a": 7, "b": 1}', "--base-rev", str(base))
    assert conflict.returncode == 3 and "merge conflict" in conflict.stderr
    assert "/a" in conflict.stderr
    shown = json.loads(cli(a, "policy", "show").stdout.splitlines()[0])
    assert shown["namespace"] == "carts" and shown["shadow_policy"] is None
    bad = cli(a, "policy", "set", "carts", "first-wins")
    assert bad.returncode == 2
