"""The CLI as a user runs it: real processes, exit codes, stdout JSON, stderr messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def run(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "statesync.cli.main", "--data", str(data), *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def ok(data: Path, *args: str, stdin: str | None = None) -> str:
    result = run(data, *args, stdin=stdin)
    assert result.returncode == 0, result.stderr
    return result.stdout


def head(data: Path) -> int:
    return json.loads(ok(data, "status", "--json"))["head_rev"]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    ok(d, "put", "routes", "web", '{"upstream": "10.0.0.1:8080", "weight": 5}')
    return d


def test_write_read_and_history(data: Path) -> None:
    out = json.loads(
        ok(data, "patch", "routes", "web", '[{"op":"replace","path":"/weight","value":7}]')
    )
    assert out["rev"] == 2 and not out["replayed"]
    got = json.loads(ok(data, "get", "routes", "web"))
    assert got == {
        "key": "web",
        "value": {"upstream": "10.0.0.1:8080", "weight": 7},
        "create_rev": 1,
        "mod_rev": 2,
        "version": 2,
    }
    assert json.loads(ok(data, "get", "routes", "web", "--rev", "1"))["value"]["weight"] == 5
    ok(data, "put", "routes", "api", "1")
    lines = [json.loads(line) for line in ok(data, "list", "routes").splitlines()]
    assert [x["key"] for x in lines] == ["api", "web"]
    assert [json.loads(x)["rev"] for x in ok(data, "log", "show").splitlines()] == [1, 2, 3]
    assert json.loads(ok(data, "log", "verify"))["changes_verified"] == 3


def test_idempotent_retry_with_id(data: Path) -> None:
    first = json.loads(ok(data, "put", "routes", "x", "1", "--id", "op-1"))
    again = json.loads(ok(data, "put", "routes", "x", "1", "--id", "op-1"))
    assert again == {**first, "replayed": True}
    reused = run(data, "put", "routes", "x", "2", "--id", "op-1")
    assert reused.returncode == 4 and "op-1" in reused.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("put", "routes", "k", "{bad json"), 4, "malformed JSON"),
        (("put", "routes", "k", '{"a": 1, "a": 2}'), 4, "duplicate object key 'a'"),
        (("put", "Routes", "k", "1"), 4, "invalid namespace 'Routes'"),
        (("put", "routes", "", "1"), 4, "invalid key"),
        (("put", "routes", "k", '{"n": [9007199254740992]}'), 4, "'/n/0'"),
        (("put", "routes", "k", "NaN"), 4, "NaN"),
        (("patch", "routes", "web", '[{"op":"replace","path":"/nope/x","value":1}]'), 4, "/nope/x"),
        (("patch", "routes", "web", '[{"op":"frobnicate","path":"/a"}]'), 4, "frobnicate"),
        (("patch", "routes", "absent", '[{"op":"add","path":"/a","value":1}]'), 1, "absent"),
        (("put", "routes", "web", "1", "--expect-rev", "7"), 3, "mod_rev is 1"),
        (("get", "routes", "nope"), 1, "not found"),
        (("get", "routes", "web", "--rev", "99"), 4, "after the head revision"),
        (("put", "routes", "k", "1", "--bogus-flag"), 2, "unrecognized arguments"),
        (("frobnicate",), 2, "invalid choice"),
        (("load", "/nonexistent/file.jsonl"), 4, "cannot read"),
    ],
)
def test_bad_input_exit_codes_change_nothing(
    data: Path, args: tuple[str, ...], code: int, message: str
) -> None:
    before = ok(data, "snapshot", "--out", str(data / "before.jsonl"))
    result = run(data, *args)
    assert result.returncode == code, result.stderr
    assert message in result.stderr
    assert result.stdout == ""
    after = ok(data, "snapshot", "--out", str(data / "after.jsonl"))
    assert json.loads(before)["rev"] == json.loads(after)["rev"]
    assert (data / "before.jsonl").read_bytes() == (data / "after.jsonl").read_bytes()


def test_compacted_revision_has_its_own_exit_code(data: Path) -> None:
    ok(data, "put", "routes", "web", "2")
    ok(data, "compact", "2")
    result = run(data, "get", "routes", "web", "--rev", "1")
    assert result.returncode == 6
    assert "bootstrap from a snapshot" in result.stderr


def test_snapshot_load_round_trip(data: Path, tmp_path: Path) -> None:
    ok(data, "put", "flags", "dark-mode", "true")
    snap = json.loads(ok(data, "snapshot", "--out", str(tmp_path / "s.jsonl")))
    restored = tmp_path / "restored"
    loaded = json.loads(ok(restored, "load", str(tmp_path / "s.jsonl")))
    assert loaded["ops"] == 2
    status = json.loads(ok(restored, "status", "--json"))
    assert {n["ns"]: n["digest"] for n in status["namespaces"]} == snap["digests"]


def test_load_checks_every_line_before_writing(data: Path) -> None:
    good = '{"op":"put","ns":"a","key":"1","value":1}\n'
    bad = '{"op":"put","ns":"a","key":"2","value":9007199254740993}\n'
    result = run(data, "load", "-", stdin=good * 3 + bad)
    assert result.returncode == 4 and "<stdin>:4" in result.stderr
    assert head(data) == 1


def test_load_from_stdin_batches(data: Path) -> None:
    lines = "".join(
        json.dumps({"op": "put", "ns": "bulk", "key": f"k{i}", "value": i}) + "\n"
        for i in range(2500)
    )
    out = json.loads(ok(data, "load", "-", "--batch", "1000", stdin=lines))
    assert out == {"rev": 4, "ops": 2500}  # three commands after the fixture's one


def test_second_process_on_same_data_is_unavailable(data: Path) -> None:
    hold_open = (
        "import sys, statesync; s = statesync.SQLiteStore(sys.argv[1]); "
        "print('open', flush=True); sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", hold_open, str(data / "statesync.sqlite")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        result = run(data, "get", "routes", "web")
        assert result.returncode == 5
        assert "in use by another process" in result.stderr
    finally:
        holder.communicate("", timeout=30)


def test_help_teaches() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "statesync.cli.main", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert "examples:" in result.stdout and "exit codes" in result.stdout


def test_demo_runs(tmp_path: Path) -> None:
    result = run(tmp_path, "demo")
    assert result.returncode == 0, result.stderr
    assert "hash chain verifies" in result.stdout
