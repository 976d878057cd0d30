"""`statesync rollback`: one new command restores keys to an earlier revision."""

from __future__ import annotations

import json

import pytest
from test_cli import Server, cli, ok_json, server

from statesync.client import Client
from statesync.core.errors import ConflictError

__all__ = ["server"]  # the module-scoped controller fixture


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def test_rollback_restores_changed_deleted_and_created_keys(server: Server) -> None:
    a = server.address
    ok_json(a, "put", "rb", "keep", "1")
    ok_json(a, "put", "rb", "edit", '{"v": 1}')
    to_rev = ok_json(a, "put", "rb", "gone", '"x"')["rev"]
    ok_json(a, "put", "rb", "edit", '{"v": 2}')
    ok_json(a, "del", "rb", "gone")
    head = ok_json(a, "put", "rb", "new", "true")["rev"]

    dry = cli(a, "rollback", "--to-rev", str(to_rev), "--ns", "rb", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    *steps, summary = lines(dry.stdout)
    assert [(s["key"], s["action"]) for s in steps] == [
        ("edit", "restore"),
        ("gone", "recreate"),
        ("new", "delete"),
    ]
    assert steps[0]["current"] == {"v": 2} and steps[0]["target"] == {"v": 1}
    assert summary == {"to_rev": to_rev, "head_rev": head, "keys": 3, "written": False}
    assert ok_json(a, "get", "rb", "new")["value"] is True  # a dry run writes nothing

    done = cli(a, "rollback", "--to-rev", str(to_rev), "--ns", "rb")
    assert done.returncode == 0, done.stderr
    written = lines(done.stdout)[-1]
    assert written["written"] is True and written["rev"] == head + 1  # one new command
    state = {r["key"]: r["value"] for r in lines(cli(a, "list", "rb").stdout)}
    assert state == {"keep": 1, "edit": {"v": 1}, "gone": "x"}
    # History is kept: the values before the rollback are still readable.
    assert ok_json(a, "get", "rb", "new", "--rev", str(head))["value"] is True
    again = lines(cli(a, "rollback", "--to-rev", str(to_rev), "--ns", "rb").stdout)
    assert again == [{"to_rev": to_rev, "head_rev": head + 1, "keys": 0, "written": False}]


def test_rollback_of_one_key_and_refusals(server: Server) -> None:
    a = server.address
    first = ok_json(a, "put", "rb1", "k", "1")["rev"]
    ok_json(a, "put", "rb1", "k", "2")
    ok_json(a, "put", "rb1", "other", "3")
    one = cli(a, "rollback", "--to-rev", str(first), "--ns", "rb1", "--key", "k")
    assert one.returncode == 0, one.stderr
    assert ok_json(a, "get", "rb1", "k")["value"] == 1
    assert ok_json(a, "get", "rb1", "other")["value"] == 3  # untouched
    with Client(a) as client:  # a write between the plan and the rollback fails it whole
        _, steps = client.rollback_plan(first, ["rb1"])
        client.put("rb1", "other", 5)
        with pytest.raises(ConflictError):
            client.rollback(steps)
        assert client.get("rb1", "k").json() == 1
    no_ns = cli(a, "rollback", "--to-rev", "1", "--key", "k")
    assert no_ns.returncode == 4 and "--key needs exactly one --ns" in no_ns.stderr
    future = cli(a, "rollback", "--to-rev", "999999", "--ns", "rb1")
    assert future.returncode == 4 and "after the head" in future.stderr
    compact_to = ok_json(a, "put", "rb1", "k", "4")["rev"]
    ok_json(a, "compact", str(compact_to))
    compacted = cli(a, "rollback", "--to-rev", str(first), "--ns", "rb1")
    assert compacted.returncode == 6 and "compacted" in compacted.stderr
