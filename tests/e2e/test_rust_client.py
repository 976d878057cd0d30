"""The Rust writer client against a real controller.

`crates/worker/examples/writer.rs` (a small CLI on `statesync_worker::client`)
is built with cargo and run as a process against a `controller.py` process. It
puts values (read back through the Python client), fails a compare with exit
status 3 and the conflict's fields, refuses a value outside I-JSON before the
network (exit 4, with the namespace, key and JSON path), replays a command id,
reports an unreachable controller as retryable (exit 5), reads a range in
pages, waits for a Python worker to apply a revision, and says which command a
timed-out commit left in doubt, whose retry with the same id writes it once.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_helpers import Cluster, free_port

# The build fixtures (cargo or go build, bounded by their own timeout) are not counted
# in a test's time: on a loaded machine a cold build takes longer than any test.
pytestmark = pytest.mark.timeout(300, func_only=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def writer_exe() -> str:
    cargo = shutil.which("cargo")
    assert cargo, "a Rust toolchain (cargo) is needed to build the Rust writer"
    built = subprocess.run(
        [
            *(cargo, "build", "--locked", "-p", "statesync-worker", "--example", "writer"),
            *("--message-format", "json-render-diagnostics"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    for line in built.stdout.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message["target"]["name"] == "writer":
            exe: str = message["executable"]
            return exe
    raise AssertionError(f"cargo built no writer executable:\n{built.stdout[-4000:]}")


def writer(exe: str, address: str, *args: str) -> tuple[int, Any]:
    """Run the writer; (exit status, the JSON it printed: stdout, or stderr on failure)."""
    done = subprocess.run(
        [exe, "--server", address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "RUST_BACKTRACE": "0"},
    )
    out = done.stdout if done.returncode == 0 else done.stderr
    try:
        return done.returncode, json.loads(out)
    except json.JSONDecodeError:
        detail = f"exit {done.returncode}, not JSON: {done.stdout!r} {done.stderr!r}"
        raise AssertionError(detail) from None


def test_rust_writer_puts_conflicts_and_refuses_bad_values(
    cluster: Cluster, writer_exe: str
) -> None:
    controller = cluster.start_controller()
    address = controller.address

    code, put = writer(writer_exe, address, "put", "app", "web", '{"port": 80, "tags": ["a"]}')
    assert code == 0, put
    assert put["rev"] > 0 and put["replayed"] is False
    with controller.client() as client:
        record = client.get("app", "web")
        assert record is not None
        assert orjson.loads(record.value) == {"port": 80, "tags": ["a"]}
        assert record.mod_rev == put["rev"]

    code, got = writer(writer_exe, address, "get", "app", "web")
    assert code == 0, got
    assert got["value"] == {"port": 80, "tags": ["a"]}
    assert (got["mod_rev"], got["version"]) == (put["rev"], 1)

    # A compare that does not hold: exit 3, the failed compare and the actual revision.
    stale = put["rev"] + 100
    code, error = writer(
        writer_exe, address, "put", "app", "web", '{"port": 1}', "--if-rev", str(stale)
    )
    assert code == 3, error
    assert error["error"] == "ConflictError" and error["retryable"] is False
    assert error["failed"] == [
        {
            "namespace": "app",
            "key": "web",
            "expected": f"mod_rev == {stale}",
            "actual_mod_rev": put["rev"],
        }
    ]

    # The compare that holds writes.
    code, second = writer(
        writer_exe, address, "put", "app", "web", '{"port": 81}', "--if-rev", str(put["rev"])
    )
    assert code == 0, second
    assert second["rev"] > put["rev"]

    # A value outside I-JSON: refused with namespace, key and path; nothing written.
    code, error = writer(writer_exe, address, "put", "app", "web", '{"n": [9007199254740993]}')
    assert code == 4, error
    assert error["error"] == "InvalidValueError"
    assert (error["namespace"], error["key"], error["path"]) == ("app", "web", "/n/0")
    with controller.client() as client:
        assert client.status().head_rev == second["rev"]
        record = client.get("app", "web")
        assert record is not None and orjson.loads(record.value) == {"port": 81}

    # ...and refused before the network: the same error with no controller at all.
    dead = f"127.0.0.1:{free_port()}"
    assert writer(writer_exe, dead, "put", "app", "web", '{"n": [9007199254740993]}') == (
        code,
        error,
    )


def test_rust_writer_replays_a_command_id_and_reports_an_unreachable_controller(
    cluster: Cluster, writer_exe: str
) -> None:
    controller = cluster.start_controller()
    args = ("put", "app", "k", '{"v": 1}', "--command-id", "deploy-1")
    code, first = writer(writer_exe, controller.address, *args)
    assert code == 0 and first["replayed"] is False, first
    code, again = writer(writer_exe, controller.address, *args)
    assert code == 0, again
    assert (again["rev"], again["command_id"], again["replayed"]) == (
        first["rev"],
        "deploy-1",
        True,
    )

    code, error = writer(writer_exe, controller.address, "get", "app", "absent")
    assert (code, error["error"]) == (1, "NotFoundError"), error

    code, error = writer(writer_exe, f"127.0.0.1:{free_port()}", *args)
    assert code == 5, error
    assert error["error"] == "UnavailableError" and error["retryable"] is True


def test_rust_writer_ranges_in_pages_and_waits_for_a_worker(
    cluster: Cluster, writer_exe: str
) -> None:
    controller = cluster.start_controller({"sync": {"heartbeat_s": 0.5}})
    worker = cluster.start_worker("w1", ["app"])
    worker.wait_connected()
    address = controller.address
    for key in ("svc/b", "svc/a", "other", "svc/c"):
        code, put = writer(writer_exe, address, "put", "app", key, json.dumps({"name": key}))
        assert code == 0, put

    code, listed = writer(
        writer_exe, address, "range", "app", "--prefix", "svc/", "--page-size", "2"
    )
    assert code == 0, listed
    assert [r["key"] for r in listed["records"]] == ["svc/a", "svc/b", "svc/c"]
    assert [r["value"] for r in listed["records"]] == [
        {"name": k} for k in ("svc/a", "svc/b", "svc/c")
    ]
    assert sum(listed["page_sizes"]) == 3 and max(listed["page_sizes"]) <= 2
    assert listed["rev"] == put["rev"]

    code, waited = writer(writer_exe, address, "wait", str(put["rev"]), "--worker", "w1")
    assert code == 0, waited
    assert waited["complete"] is True and waited["applied"] == ["w1"], waited
    assert waited["head_rev"] == put["rev"]
    with controller.client() as client:
        (status,) = [w for w in client.status().workers if w.worker_id == "w1"]
        assert status.applied_rev >= put["rev"]


def test_a_commit_left_in_doubt_says_so_and_its_retry_writes_once(
    cluster: Cluster, writer_exe: str
) -> None:
    controller = cluster.start_controller()
    code, first = writer(writer_exe, controller.address, "put", "app", "k", '{"v": 1}')
    assert code == 0, first

    # A stopped controller accepts the connection and never answers: the call
    # times out and the client cannot know whether the command committed.
    args = ("put", "app", "k", '{"v": 2}', "--command-id", "deploy-2")
    controller.signal(signal.SIGSTOP)
    try:
        code, error = writer(writer_exe, controller.address, *args, "--timeout", "1")
    finally:
        controller.signal(signal.SIGCONT)
    assert code == 5, error
    assert error["error"] == "UnavailableError" and error["retryable"] is True
    assert error["unknown_outcome"] == "deploy-2"
    assert "retry it with the same command_id" in error["message"]

    # The same command again: committed exactly once, whatever the first attempt did.
    code, retried = writer(writer_exe, controller.address, *args)
    assert code == 0, retried
    assert retried["command_id"] == "deploy-2"
    with controller.client() as client:
        record = client.get("app", "k")
        assert record is not None and orjson.loads(record.value) == {"v": 2}
        assert (record.mod_rev, record.version) == (retried["rev"], 2)
        assert client.status().head_rev == retried["rev"] == first["rev"] + 1
