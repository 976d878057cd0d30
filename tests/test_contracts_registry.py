"""Contracts in the store and through the controller: registration, write-time
validation, translation for writers and for workers, consume-time validation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from statesync.client import Client
from statesync.contracts.registry import Contract, register_request
from statesync.core.commands import Command, Patch, Put, SetContract
from statesync.core.errors import (
    IncompatibleSchemaError,
    InvalidCommandError,
    InvalidNamespaceError,
    NoTranslationPathError,
    SchemaViolationError,
)
from statesync.core.model import CONTRACTS_NAMESPACE
from statesync.store.sqlite import SQLiteStore
from statesync.testing.controller import RunningController
from statesync.worker import ChangeEvent, Worker

V1 = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "price": {"type": "integer", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
    },
    "required": ["name", "price"],
}
V2 = {  # adds an optional field with a default: compatible under BACKWARD
    **V1,
    "properties": {**V1["properties"], "tier": {"type": "string", "default": "free"}},
}
V3_BREAKING = {  # price became a string: a narrowing and a widening at once
    **V1,
    "properties": {**V1["properties"], "price": {"type": "string"}},
}
RENAMED = {  # v2 in which "name" is called "title"
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "price": {"type": "integer", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
    },
    "required": ["price"],
}
RENAME = {"format": "statesync.translation/1", "from": 1, "to": 2, "up": [
    {"op": "rename", "from": "/name", "to": "/title"}
]}  # fmt: skip


def register(store: SQLiteStore, ns: str, schema: Any, **options: Any) -> int:
    command = Command([SetContract(ns, register_request(schema, **options))])
    return store.commit(command).rev


def contract(store: SQLiteStore, ns: str) -> Contract:
    record = store.get(CONTRACTS_NAMESPACE, ns)
    assert record is not None
    return Contract.from_record(record)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "db.sqlite")
    yield s
    s.close()


def test_a_namespace_without_a_schema_accepts_any_value(store: SQLiteStore) -> None:
    store.commit(Command([Put("orders", "a", [1, "x", None])]))
    assert store.get("orders", "a") is not None


def test_registration_is_a_command_in_the_log_with_who_and_when(store: SQLiteStore) -> None:
    rev = register(store, "orders", V1, owner={"team": "payments", "contact": "#pay"}, by="ci")
    c = contract(store, "orders")
    assert (c.current, c.mode.value, c.owner["team"]) == (1, "BACKWARD", "payments")
    assert c.versions[0].since_rev == rev and c.versions[0].registered_by == "ci"
    logged = [ch for ch in store.changes(0) if ch.namespace == CONTRACTS_NAMESPACE]
    assert [ch.rev for ch in logged] == [rev]


def test_an_invalid_write_names_every_violation_and_writes_nothing(store: SQLiteStore) -> None:
    register(store, "orders", V1)
    head = store.head_rev
    bad = {"name": "", "price": -5, "currency": "GBP"}
    with pytest.raises(SchemaViolationError) as info:
        store.commit(Command([Put("orders", "o1", bad)]))
    error = info.value
    assert (error.namespace, error.key, error.schema_version) == ("orders", "o1", 1)
    assert sorted(v.path for v in error.violations) == ["/currency", "/name", "/price"]
    assert {v.keyword for v in error.violations} == {"enum", "minLength", "minimum"}
    assert "/price" in str(error) and "schema v1" in str(error)
    assert store.head_rev == head and store.get("orders", "o1") is None
    missing = {"price": 1}
    with pytest.raises(SchemaViolationError) as info:
        store.commit(Command([Put("orders", "o1", missing)]))
    assert [(v.path, v.keyword) for v in info.value.violations] == [("", "required")]


def test_a_compatible_version_registers_and_a_breaking_one_is_refused_with_reasons(
    store: SQLiteStore,
) -> None:
    register(store, "orders", V1)
    register(store, "orders", V2)
    head = store.head_rev
    with pytest.raises(IncompatibleSchemaError) as info:
        register(store, "orders", V3_BREAKING)
    error = info.value
    assert error.version == 3 and error.mode == "BACKWARD"
    assert any(b["path"].startswith("/properties/price") for b in error.breaking)
    assert "--force" in str(error)
    assert store.head_rev == head and contract(store, "orders").current == 2
    with pytest.raises(InvalidCommandError, match="reason"):
        register(store, "orders", V3_BREAKING, force=True)
    register(store, "orders", V3_BREAKING, force=True, reason="INC-42: price is a string now")
    latest = contract(store, "orders").versions[-1]
    assert latest.forced and latest.reason == "INC-42: price is a string now"
    assert any("FORCED" in note for note in latest.notes)


def test_an_invalid_schema_or_translation_is_refused(store: SQLiteStore) -> None:
    with pytest.raises(Exception, match="schema") as info:
        register(store, "orders", {"type": "no-such-type"})
    assert info.value.exit_code == 4  # type: ignore[attr-defined]
    register(store, "orders", V1)
    wrong_step = {**RENAME, "from": 2, "to": 3}
    with pytest.raises(InvalidCommandError, match="v1->v2"):
        register(store, "orders", RENAMED, translation=wrong_step, mode="NONE")


def test_users_cannot_write_the_contracts_namespace(store: SQLiteStore) -> None:
    with pytest.raises(InvalidNamespaceError):
        store.commit(Command([Put(CONTRACTS_NAMESPACE, "orders", {"mode": "NONE"})]))
    request = register_request(V1)
    with pytest.raises(InvalidCommandError, match="of its own"):
        store.commit(Command([SetContract("orders", request), Put("orders", "a", {})]))


def test_a_writer_on_an_older_version_is_translated_forward(store: SQLiteStore) -> None:
    register(store, "orders", V1)
    store.commit(Command([Put("orders", "old", {"name": "pen", "price": 2})]))
    register(store, "orders", RENAMED, translation=RENAME, mode="NONE")
    store.commit(Command([Put("orders", "new", {"name": "ink", "price": 3}, schema_version=1)]))
    assert orjson.loads(store.get("orders", "new").value) == {"title": "ink", "price": 3}
    with pytest.raises(SchemaViolationError) as info:  # checked against the declared version
        store.commit(Command([Put("orders", "bad", {"price": 3}, schema_version=1)]))
    assert info.value.schema_version == 1
    # A patch is written against the current version, even on a value stored in v1.
    store.commit(
        Command([Patch("orders", "old", [{"op": "replace", "path": "/title", "value": "P"}])])
    )
    assert orjson.loads(store.get("orders", "old").value) == {"title": "P", "price": 2}
    with pytest.raises(InvalidCommandError, match="newest registered is v2"):
        store.commit(Command([Put("orders", "x", {"price": 1}, schema_version=3)]))


def test_contracts_survive_a_restart(tmp_path: Path) -> None:
    with SQLiteStore(tmp_path / "db.sqlite") as s:
        register(s, "orders", V1)
    with SQLiteStore(tmp_path / "db.sqlite") as s, pytest.raises(SchemaViolationError):
        s.commit(Command([Put("orders", "o", {"price": "free"})]))


def test_a_value_is_in_the_version_current_when_it_was_written(store: SQLiteStore) -> None:
    rev1 = register(store, "orders", V1)
    a = store.commit(Command([Put("orders", "a", {"name": "a", "price": 1})])).rev
    rev2 = register(store, "orders", V2)
    b = store.commit(Command([Put("orders", "b", {"name": "b", "price": 1})])).rev
    c = contract(store, "orders")
    assert [c.version_of(r) for r in (rev1 - 1, a, rev2 - 1, b)] == [1, 1, 1, 2]


# ---------------------------------------------------------------- through the controller


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningController]:
    running = RunningController(tmp_path / "controller")
    yield running
    running.stop()


def _status(client: Client, worker_id: str) -> Any:
    return next(w for w in client.status().workers if w.worker_id == worker_id)


def test_old_and_new_workers_each_get_their_version_and_agree_by_digest(
    server: RunningController, tmp_path: Path
) -> None:
    with Client(server.address) as client:
        client.register_schema("orders", V1)
        client.put("orders", "pen", {"name": "pen", "price": 2})
        client.register_schema("orders", RENAMED, translation=RENAME, mode="NONE")
        rev = client.put("orders", "ink", {"title": "ink", "price": 3}).rev
        old_events: list[ChangeEvent] = []
        old = Worker(
            server.address,
            worker_id="old",
            namespaces=["orders"],
            state_dir=tmp_path / "old",
            versions={"orders": [1]},
        )
        old.on_change(old_events.append)
        new = Worker(
            server.address,
            worker_id="new",
            namespaces=["orders"],
            state_dir=tmp_path / "new",
            schemas={"orders": {1: V1, 2: RENAMED}},
        )
        with old, new:
            assert old.wait_for(rev, 10) and new.wait_for(rev, 10)
            rev = client.patch("orders", "pen", [{"op": "replace", "path": "/price", "value": 5}])
            assert old.wait_for(rev.rev, 10) and new.wait_for(rev.rev, 10)
            assert old.list("orders") == {
                "ink": {"name": "ink", "price": 3},
                "pen": {"name": "pen", "price": 5},
            }
            assert new.list("orders") == {
                "ink": {"title": "ink", "price": 3},
                "pen": {"title": "pen", "price": 5},
            }
            assert old_events[-1].schema_version == 1
            client.wait_applied(rev.rev, workers=["old", "new"], timeout=10)
            for worker_id, served in (("old", 1), ("new", 2)):
                status = _status(client, worker_id)
                assert status.digest == "agree", worker_id
                assert [(s.ns, list(s.versions)) for s in status.served] == [("orders", [served])]


def test_a_worker_whose_versions_are_not_registered_is_refused(
    server: RunningController, tmp_path: Path
) -> None:
    with Client(server.address) as client:
        client.register_schema("orders", V1)
    worker = Worker(
        server.address,
        worker_id="future",
        namespaces=["orders"],
        versions={"orders": [7]},
    )
    with worker:
        error = worker.wait_for_error(10)
    assert isinstance(error, NoTranslationPathError)
    assert error.namespace == "orders" and error.supported == [7]


def test_a_worker_with_a_stricter_local_schema_nacks_and_keeps_its_last_good_value(
    server: RunningController, tmp_path: Path
) -> None:
    strict = {
        **V1,
        "properties": {**V1["properties"], "price": {"type": "integer", "maximum": 100}},
    }
    with Client(server.address) as client:
        client.register_schema("orders", V1)
        first = client.put("orders", "pen", {"name": "pen", "price": 2}).rev
        with Worker(
            server.address,
            worker_id="strict",
            namespaces=["orders"],
            state_dir=tmp_path / "strict",
            schemas={"orders": {1: strict}},
        ) as worker:
            assert worker.wait_for(first, 10)
            rev = client.put("orders", "pen", {"name": "pen", "price": 500}).rev
            assert worker.wait_for(rev, 10)
            assert worker.get("orders", "pen") == {"name": "pen", "price": 2}
            client.wait_applied(rev, workers=["strict"], timeout=10)
            status = _status(client, "strict")
            assert status.state == "NACKED" and status.nacks == 1
            assert "/price" in status.held[0].reason and "schema v1" in status.held[0].reason
            assert status.digest == "agree"  # held keys count with the controller's value


def test_registering_a_newer_declared_version_re_serves_the_worker_in_it(
    server: RunningController, tmp_path: Path
) -> None:
    with Client(server.address) as client:
        client.register_schema("orders", V1)
        rev = client.put("orders", "pen", {"name": "pen", "price": 2}).rev
        with Worker(
            server.address,
            worker_id="eager",
            namespaces=["orders"],
            state_dir=tmp_path / "eager",
            versions={"orders": [1, 2]},
        ) as worker:
            assert worker.wait_for(rev, 10)
            assert worker.get("orders", "pen") == {"name": "pen", "price": 2}
            rev = client.register_schema("orders", RENAMED, translation=RENAME, mode="NONE").rev
            client.wait_applied(rev, workers=["eager"], timeout=10)
            assert worker.get("orders", "pen") == {"title": "pen", "price": 2}
            status = _status(client, "eager")
            assert [list(s.versions) for s in status.served] == [[2]]
            assert status.digest == "agree"


def test_a_version_registered_while_a_worker_was_away_is_re_sent_when_it_returns(
    server: RunningController, tmp_path: Path
) -> None:
    def worker() -> Worker:
        return Worker(
            server.address,
            worker_id="away",
            namespaces=["orders"],
            state_dir=tmp_path / "away",
            versions={"orders": [1, 2]},
        )

    with Client(server.address) as client:
        client.register_schema("orders", V1)
        rev = client.put("orders", "pen", {"name": "pen", "price": 2}).rev
        with worker() as away:
            assert away.wait_for(rev, 10)
        rev = client.register_schema("orders", RENAMED, translation=RENAME, mode="NONE").rev
        with worker() as back:
            assert back.wait_for(rev, 10)
            assert back.get("orders", "pen") == {"title": "pen", "price": 2}
            assert back.resyncs == 1
