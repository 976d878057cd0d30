"""The CLI against a real controller: `statesync serve` in a subprocess, every
command a real `statesync` process talking gRPC to it.

One controller serves the whole module (each test writes its own namespaces);
the compaction test runs last because it drops history.
"""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from test_cli import CLI, ENV, Server, cli, cli_many, ok, ok_json, server, start_server

from statesync.client import Client
from statesync.core.errors import ConflictError, UnavailableError

__all__ = ["server"]  # the module-scoped controller fixture


def put(server: Server, ns: str, key: str, value: Any, **kwargs: Any) -> Any:
    """A write that is not what the test is about: in-process, no CLI process."""
    with Client(server.address) as client:
        return client.put(ns, key, value, **kwargs)


def head(server: Server) -> int:
    with Client(server.address) as client:
        return client.status().head_rev


class LineReader:
    """Lines from a subprocess's stdout, read by a thread, with deadlines."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self.thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def take(self, n: int, timeout: float = 20) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"got {len(out)} of {n} lines in {timeout} s: {out}")
            assert line is not None, f"the stream ended after {out}"
            out.append(json.loads(line))
        return out


def spawn(address: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [*CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**ENV, "STATESYNC_SERVER": address},
    )


def test_put_get_patch_del_list_round_trip(server: Server) -> None:
    a = server.address
    put = ok_json(a, "put", "rt", "web", '{"upstream": "10.0.0.1:8080", "weight": 5}')
    assert set(put) == {"rev", "command_id", "replayed"} and put["replayed"] is False
    patched = ok_json(a, "patch", "rt", "web", '[{"op": "replace", "path": "/weight", "value": 7}]')
    assert patched["rev"] > put["rev"]
    ok(a, "put", "rt", "api", '"x"')
    ok(a, "put", "rt", "stdin", "-", stdin='{"from": "stdin"}')
    get, old, listed, prefixed, from_stdin = cli_many(
        a,
        ("get", "rt", "web"),
        ("get", "rt", "web", "--rev", str(put["rev"])),
        ("list", "rt"),
        ("list", "rt", "--prefix", "w"),
        ("get", "rt", "stdin"),
    )
    assert json.loads(get.stdout) == {
        "key": "web",
        "value": {"upstream": "10.0.0.1:8080", "weight": 7},
        "create_rev": put["rev"],
        "mod_rev": patched["rev"],
        "version": 2,
    }
    assert json.loads(old.stdout)["value"]["weight"] == 5 and json.loads(old.stdout)["version"] == 1
    lines = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [x["key"] for x in lines] == ["api", "stdin", "web"]
    assert set(lines[0]) == {"key", "value", "create_rev", "mod_rev", "version"}
    assert [json.loads(x)["key"] for x in prefixed.stdout.splitlines()] == ["web"]
    assert json.loads(from_stdin.stdout)["value"] == {"from": "stdin"}

    deleted = ok_json(a, "del", "rt", "web")
    assert deleted["rev"] > patched["rev"]
    with Client(a) as client:
        assert client.get("rt", "web") is None
        assert client.get("rt", "web", rev=patched["rev"]) is not None


def test_expect_rev_compare_and_swap(server: Server) -> None:
    a = server.address
    first = ok_json(a, "put", "cas", "k", "1", "--expect-rev", "0")  # only if absent
    second = ok_json(a, "put", "cas", "k", "2", "--expect-rev", str(first["rev"]))
    before = head(server)
    stale = cli(a, "put", "cas", "k", "3", "--expect-rev", str(first["rev"]))
    assert stale.returncode == 3, stale.stderr
    assert stale.stdout == ""
    assert (
        f"statesync: error: conflict: cas/k: expected mod_rev == {first['rev']}, "
        f"mod_rev is {second['rev']}" in stale.stderr
    )
    assert head(server) == before
    with Client(a) as client:
        assert client.get("cas", "k").json() == 2  # type: ignore[union-attr]


def test_command_id_makes_retries_idempotent(server: Server) -> None:
    a = server.address
    first = ok_json(a, "put", "idem", "x", '{"v": 1}', "--id", "deploy-42")
    assert first["command_id"] == "deploy-42" and first["replayed"] is False
    before = head(server)
    again = ok_json(a, "put", "idem", "x", '{"v": 1}', "--id", "deploy-42")
    assert again == {**first, "replayed": True}
    assert head(server) == before
    reused = cli(a, "put", "idem", "x", '{"v": 2}', "--id", "deploy-42")
    assert reused.returncode == 4 and "deploy-42" in reused.stderr
    assert head(server) == before


def test_watch_prints_changes_until_sigterm(server: Server) -> None:
    a = server.address
    first = put(server, "watched", "a", {"n": 1})
    watch = spawn(a, "watch", "watched", "--from-rev", "0")
    later = spawn(a, "watch", "watched", "--from-rev", str(first.rev))
    try:
        reader, later_reader = LineReader(watch), LineReader(later)
        [line] = reader.take(1)
        assert line == {
            "rev": first.rev,
            "ns": "watched",
            "key": "a",
            "op": "put",
            "value": {"n": 1},
            "command_id": first.command_id,
            "create_rev": first.rev,
            "version": 1,
            "ts_ms": line["ts_ms"],
        }
        assert abs(line["ts_ms"] / 1000 - time.time()) < 120
        with Client(a) as client:
            client.put("other", "a", 1)  # another namespace: not shown
            written = client.put("watched", "b", [True], command_id="watch-1")
            deleted = client.delete("watched", "a")
        lines = reader.take(2)
        assert [(x["rev"], x["key"], x["op"]) for x in lines] == [
            (written.rev, "b", "put"),
            (deleted.rev, "a", "delete"),
        ]
        assert lines[0]["value"] == [True] and lines[0]["command_id"] == "watch-1"
        assert "value" not in lines[1]
        # From a revision: only what came after it.
        assert [x["key"] for x in later_reader.take(2)] == ["b", "a"]
    finally:
        for process in (watch, later):
            process.send_signal(signal.SIGTERM)
    for process in (watch, later):
        _, stderr = process.communicate(timeout=20)
        assert process.returncode == 0, stderr
        assert stderr == ""


def test_status_json(server: Server) -> None:
    put(server, "stat", "k", 1)
    put(server, "stat", "k2", 2)
    as_json, table = cli_many(server.address, ("status", "--json"), ("status",))
    status = json.loads(as_json.stdout)
    assert status["server"] == server.address
    assert status["data"] == str(server.data.resolve())
    assert status["head_rev"] == head(server) >= 1
    assert status["compacted_rev"] == 0
    assert status["uptime_s"] >= 0
    digests = {n["ns"]: n["digest"] for n in status["namespaces"]}
    assert len(digests["stat"]) == 64
    assert {n["ns"]: n["keys"] for n in status["namespaces"]}["stat"] == 2
    assert status["workers"] == []
    assert f"head revision {status['head_rev']}" in table.stdout and "stat" in table.stdout


def test_wait_applied_without_workers_returns_at_once(server: Server) -> None:
    started = time.monotonic()
    out = ok_json(server.address, "put", "lonely", "k", "1", "--wait-applied", "--timeout", "20")
    assert time.monotonic() - started < 10
    assert out["applied"] == [] and out["pending"] == []


def test_wait_applied_and_status_with_a_worker(server: Server, tmp_path: Path) -> None:
    a = server.address
    put(server, "fleet", "seed", 0)
    worker = subprocess.Popen(
        [*CLI, "worker", "--id", "w1", "--ns", "fleet", "--state-dir", str(tmp_path / "w1")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**ENV, "STATESYNC_SERVER": a},
    )
    try:
        deadline = time.monotonic() + 20
        with Client(a) as client:
            while not any(w.worker_id == "w1" and w.connected for w in client.status().workers):
                assert worker.poll() is None, worker.communicate()[1]
                assert time.monotonic() < deadline, "the worker never connected"
                time.sleep(0.05)
        first = ok_json(a, "put", "fleet", "web", '{"w": 1}', "--wait-applied", "--timeout", "20")
        assert first["applied"] == ["w1"] and first["pending"] == []
        [w] = [w for w in ok_json(a, "status", "--json")["workers"] if w["worker_id"] == "w1"]
        assert w["connected"] is True and w["state"] == "TAILING"
        assert w["applied_rev"] >= first["rev"] and w["namespaces"] == ["fleet"]
        assert w["lag_revisions"] == head(server) - w["applied_rev"]
        assert w["digest"] == "agree" and w["nacks"] == 0 and w["held"] == []
        assert w["last_ack_age_s"] is not None and w["last_ack_age_s"] < 60
        assert "w1" in ok(a, "status")

        # A frozen worker does not apply in time: written, but exit 8.
        worker.send_signal(signal.SIGSTOP)
        try:
            late = cli(a, "put", "fleet", "web", '{"w": 2}', "--wait-applied", "--timeout", "1")
        finally:
            worker.send_signal(signal.SIGCONT)
        assert late.returncode == 8, late.stderr
        out = json.loads(late.stdout)
        assert out["applied"] == []
        assert out["pending"] == [
            {"worker_id": "w1", "connected": True, "applied_rev": first["rev"], "state": "TAILING"}
        ]
        assert f"revision {out['rev']} is written" in late.stderr and "w1" in late.stderr
        with Client(a) as client:
            assert client.get("fleet", "web").json() == {"w": 2}  # type: ignore[union-attr]
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.communicate()


def _ops_file(path: Path) -> Path:
    lines = [
        {"op": "put", "ns": "bulk", "key": f"k{i:04d}", "value": {"i": i}} for i in range(1200)
    ]
    lines += [
        {
            "op": "patch",
            "ns": "bulk",
            "key": "k1100",
            "patch": [{"op": "add", "path": "/p", "value": 1}],
        },
        {"op": "del", "ns": "bulk", "key": "k0002"},
        {"op": "put", "ns": "bulk2", "key": "x", "value": None},
        {"op": "put", "ns": "bulk", "key": "k0000", "value": "again"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + "\n")
    return path


def test_load_then_snapshot_restores_into_a_fresh_server(server: Server, tmp_path: Path) -> None:
    a = server.address
    before = head(server)
    loaded = ok_json(a, "load", str(_ops_file(tmp_path / "ops.jsonl")), "--batch", "500")
    # 1204 ops: 500 + 500 + 200, then the patch of k1100 (already in the third
    # command) starts a fourth.
    assert loaded == {"rev": before + 4, "ops": 1204}
    with Client(a) as client:
        assert client.get("bulk", "k1100").json() == {"i": 1100, "p": 1}  # type: ignore[union-attr]
        assert client.get("bulk", "k0000").json() == "again"  # type: ignore[union-attr]
        assert client.get("bulk", "k0002") is None

    snap_file = tmp_path / "snap.jsonl"
    snap = ok_json(a, "snapshot", "--out", str(snap_file), "--ns", "bulk", "--ns", "bulk2")
    assert snap["rev"] == before + 4 and snap["keys"] == 1200
    assert snap["counts"] == {"bulk": 1199, "bulk2": 1}
    header, *body = snap_file.read_text().splitlines()
    assert json.loads(header) == {
        "format": "statesync.snapshot.v1",
        "rev": snap["rev"],
        "namespaces": ["bulk", "bulk2"],
        "digests": snap["digests"],
        "counts": snap["counts"],
    }
    assert len(body) == 1200 and json.loads(body[0]) == {
        "op": "put",
        "ns": "bulk",
        "key": "k0000",
        "value": "again",
    }
    assert not list(tmp_path.glob("*.partial"))

    fresh = start_server(tmp_path / "fresh", "--http", "none")
    try:
        assert fresh.info["http"] is None
        restored = ok_json(fresh.address, "load", str(snap_file))
        assert restored == {"rev": 3, "ops": 1200}  # batches of 500 by default
        again = ok_json(fresh.address, "snapshot", "--out", str(tmp_path / "again.jsonl"))
        assert again["digests"] == snap["digests"] and again["counts"] == snap["counts"]
        assert (tmp_path / "again.jsonl").read_text().splitlines()[1:] == body
        status = ok_json(fresh.address, "status", "--json")
        assert {n["ns"]: n["digest"] for n in status["namespaces"]} == snap["digests"]
        # From stdin, too.
        stdin = '{"op":"put","ns":"piped","key":"k","value":1}\n'
        assert ok_json(fresh.address, "load", "-", stdin=stdin) == {"rev": 4, "ops": 1}
    finally:
        fresh.stop()


def test_http_endpoints(server: Server) -> None:
    def fetch(path: str) -> tuple[int, str]:
        with urllib.request.urlopen(server.http + path, timeout=10) as response:
            return response.status, response.read().decode()

    assert fetch("/healthz") == (200, "ok\n")
    status, body = fetch("/readyz")
    assert status == 200 and body.startswith("ready at revision")
    status, metrics = fetch("/metrics")
    assert status == 200
    assert f"statesync_head_revision {float(head(server))}" in metrics
    assert "statesync_compacted_revision" in metrics


def test_metrics_count_the_data_planes_commits(server: Server) -> None:
    """Commits are served natively; their counters keep the metric families they had."""

    def sample(metrics: str, name: str) -> float:
        for line in metrics.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    def scrape() -> str:
        with urllib.request.urlopen(server.http + "/metrics", timeout=10) as response:
            return str(response.read().decode())

    before = scrape()
    with Client(server.address) as client:
        rev = client.put("metered", "k", 1).rev
        with pytest.raises(ConflictError):
            client.put("metered", "k", 2, expect_rev=rev + 100)
    after = scrape()
    conflicts = 'statesync_commit_errors_total{error="ConflictError"}'
    for name, grew in [
        ("statesync_commits_total", 1),
        (conflicts, 1),
        ("statesync_commit_seconds_count", 1),
        ('statesync_commit_seconds_bucket{le="+Inf"}', 1),
    ]:
        assert sample(after, name) - sample(before, name) == grew, name
    assert sample(after, "statesync_commit_seconds_sum") > sample(
        before, "statesync_commit_seconds_sum"
    )


def test_a_watch_stream_stays_open(server: Server) -> None:
    """The server once ended an observer's stream about one heartbeat after its hello."""
    ended = threading.Event()
    rev = head(server)

    def follow(client: Client) -> None:
        with contextlib.suppress(UnavailableError):  # the channel closes at the end
            for _ in client.watch(["quiet"], from_rev=rev):
                pass
        ended.set()

    with Client(server.address) as client:
        threading.Thread(target=follow, args=(client,), daemon=True).start()
        assert not ended.wait(1.5), "the server closed an idle watch stream"


def test_compact_then_old_revisions_exit_6(server: Server) -> None:
    """Last in the module: compaction drops history the other tests read."""
    a = server.address
    first = put(server, "hist", "k", 1)
    put(server, "hist", "k", 2)
    top = head(server)
    assert ok_json(a, "compact", str(top)) == {"compacted_rev": top}
    old, old_list = cli_many(
        a, ("get", "hist", "k", "--rev", str(first.rev)), ("list", "hist", "--rev", str(first.rev))
    )
    assert old.returncode == 6 and old.stdout == ""
    assert f"revision {first.rev} is compacted" in old.stderr
    assert "bootstrap from a snapshot" in old.stderr
    with Client(a) as client:
        assert client.get("hist", "k", rev=top).json() == 2  # type: ignore[union-attr]
    assert old_list.returncode == 6

    # A watch from a compacted revision starts with the state, then follows.
    watch = spawn(a, "watch", "hist", "--from-rev", str(first.rev))
    try:
        reader = LineReader(watch)
        [snap] = reader.take(1)
        assert snap["snapshot"] is True and snap["rev"] == top
        assert (snap["key"], snap["value"], snap["op"]) == ("k", 2, "put")
        after = put(server, "hist", "k", 3)
        [line] = reader.take(1)
        assert line["rev"] == after.rev and line["value"] == 3 and "snapshot" not in line
    finally:
        watch.send_signal(signal.SIGTERM)
    _, stderr = watch.communicate(timeout=20)
    assert watch.returncode == 0
    assert "resync" in stderr and "compacted" in stderr
