"""Scenario 4: `statesync worker --exec` runs a command once per applied change.

The command (a shell script) appends "$STATESYNC_COMMAND_ID $STATESYNC_REV
<stdin JSON>" to a file when it succeeds. It fails (exit 1) the first two
times for the key `flaky`: the change is retried, never skipped, and later
revisions wait for it. It keeps failing for the key `gate` while a flag file
exists, also across a SIGKILL and restart of the worker. A value containing
"reject": true makes it exit 65: the worker NACKs, keeps the last good
value, and the controller shows the worker NACKED with the held key until a
good value of that key arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from e2e_helpers import (
    Cluster,
    assert_replica_equals,
    wait_converged,
    wait_until,
    worker_view,
)

from statesync.core.commands import Command, Delete, Patch, Put

SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}}

SCRIPT = r"""#!/bin/sh
out="$1"
payload=$(cat)
case "$payload" in
  *'"reject":true'*) echo "$STATESYNC_REV $STATESYNC_KEY" >> "$out/refused"; exit 65 ;;
esac
if [ "$STATESYNC_KEY" = "flaky" ]; then
  n=$(cat "$out/counter" 2>/dev/null || echo 0)
  n=$((n + 1))
  echo "$n" > "$out/counter"
  echo "$n $STATESYNC_REV" >> "$out/attempts"
  if [ "$n" -le 2 ]; then echo "flaky: failing attempt $n" >&2; exit 1; fi
fi
if [ "$STATESYNC_KEY" = "gate" ] && [ -e "$out/gate.closed" ]; then
  echo "$STATESYNC_REV" >> "$out/gate.attempts"
  exit 1
fi
printf '%s %s %s\n' "$STATESYNC_COMMAND_ID" "$STATESYNC_REV" "$payload" >> "$out/applied"
"""


def read_applied(out: Path) -> list[tuple[str, int, dict[str, Any]]]:
    path = out / "applied"
    if not path.exists():
        return []
    lines = []
    for line in path.read_text().splitlines():
        command_id, rev, payload = line.split(" ", 2)
        lines.append((command_id, int(rev), orjson.loads(payload)))
    return lines


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_exec_retries_in_order_and_nacks(cluster: Cluster) -> None:
    out = cluster.workdir / "effects"
    out.mkdir()
    script = cluster.workdir / "apply.sh"
    script.write_text(SCRIPT)
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("ex", ("a",), exec_cmd=f"sh {script} {out}")
    assert worker.wait_connected() == 0
    client = controller.client()

    # (command_id, rev, key, op, value) of every change the worker must run CMD for.
    expected: list[tuple[str, int, str, str, Any]] = []

    def put(key: str, value: Any, command_id: str) -> int:
        c = client.put("a", key, value, command_id=command_id)
        assert c.command_id == command_id and not c.replayed
        expected.append((command_id, c.rev, key, "put", value))
        return c.rev

    put("x", {"v": 1}, "cmd-x1")
    flaky_rev = put("flaky", {"v": 1}, "cmd-flaky1")
    put("y", {"v": 1}, "cmd-y1")
    c = client.patch("a", "x", [{"op": "add", "path": "/p", "value": 2}], command_id="cmd-x2")
    expected.append(("cmd-x2", c.rev, "x", "put", {"v": 1, "p": 2}))
    c = client.delete("a", "y", command_id="cmd-y2")
    expected.append(("cmd-y2", c.rev, "y", "delete", None))
    c = client.put("b", "elsewhere", {"v": 1}, command_id="cmd-b1")  # not subscribed: no CMD
    # One command, three changes at one revision (two of them for this worker).
    multi = Command(
        [Put("a", "m1", {"m": 1}), Put("b", "m", {"m": 0}), Put("a", "m2", {"m": 2})],
        command_id="cmd-multi",
    )
    c = client.commit(multi)
    expected.append(("cmd-multi", c.rev, "m1", "put", {"m": 1}))
    expected.append(("cmd-multi", c.rev, "m2", "put", {"m": 2}))
    put("flaky", {"v": 2}, "cmd-flaky2")

    status = wait_converged(client, ["ex"], timeout=60)
    worker.wait_log(rf"handler failed on revision {flaky_rev} a/flaky \(attempt 1\)", 10)
    worker.wait_log(rf"handler failed on revision {flaky_rev} a/flaky \(attempt 2\)", 10)
    flaky2_rev = expected[-1][1]
    attempts = [f"1 {flaky_rev}", f"2 {flaky_rev}", f"3 {flaky_rev}", f"4 {flaky2_rev}"]
    assert lines_of(out / "attempts") == attempts

    # --- a change that keeps failing blocks later ones, across a SIGKILL and restart.
    (out / "gate.closed").touch()
    gate_rev = put("gate", {"v": 1}, "cmd-gate1")
    after_rev = put("z", {"v": 1}, "cmd-z1")
    wait_until(lambda: len(lines_of(out / "gate.attempts")) >= 2, 30, "gate to be retried")
    assert worker_view(client.status(), "ex").applied_rev < gate_rev
    worker.kill()
    assert worker.dump()["applied_rev"] < gate_rev, "a failing change was committed"
    attempts_before = len(lines_of(out / "gate.attempts"))
    worker.start()
    assert worker.wait_connected() < gate_rev
    wait_until(
        lambda: len(lines_of(out / "gate.attempts")) > attempts_before,
        30,
        "the restarted worker to retry the gate change",
    )
    assert worker_view(client.status(), "ex").applied_rev < gate_rev
    assert all(rev < gate_rev for _, rev, _ in read_applied(out))
    (out / "gate.closed").unlink()
    status = wait_converged(client, ["ex"], timeout=60)
    assert status.head_rev == after_rev
    assert set(lines_of(out / "gate.attempts")) == {str(gate_rev)}

    # Every change ran CMD exactly once after it succeeded, in revision order,
    # with the writer's command ids and the change as JSON on stdin.
    applied = read_applied(out)
    assert [(cid, rev) for cid, rev, _ in applied] == [(e[0], e[1]) for e in expected]
    for (cid, rev, payload), (_, _, key, op, value) in zip(applied, expected, strict=True):
        assert payload["rev"] == rev and payload["command_id"] == cid
        assert (payload["ns"], payload["key"], payload["op"]) == ("a", key, op)
        assert payload.get("value") == value
        assert not payload.get("snapshot")
    assert_replica_equals(client, worker, status.head_rev)

    # --- exit 65 refuses a change: NACK, last good value kept, NACKED until fixed.
    bad_rev = client.put("a", "x", {"reject": True}, command_id="cmd-x-bad").rev

    def nacked() -> Any:
        view = worker_view(client.status(), "ex")
        return view if view.state == "NACKED" and view.applied_rev >= bad_rev else None

    view = wait_until(nacked, 30, "the worker to be NACKED")
    assert view.nacks == 1
    assert [(h.ns, h.key, h.rev) for h in view.held] == [("a", "x", bad_rev)]
    assert "65" in view.held[0].reason
    assert lines_of(out / "refused") == [f"{bad_rev} x"]
    worker.wait_log(rf"NACK revision {bad_rev} a/x", 10)
    assert "NACKed revision" in controller.log()
    dump = worker.dump()
    assert dump["namespaces"]["a"]["x"] == {"v": 1, "p": 2}, "the last good value is kept"
    assert [(h["ns"], h["key"], h["rev"]) for h in dump["held"]] == [("a", "x", bad_rev)]
    # A worker right except for its reported refusals still agrees.
    assert view.digest == "agree"

    # The refusal outlives a controller restart: the worker reports its held keys.
    client.close()
    controller.kill()
    controller.start()
    client = controller.client()

    def renacked() -> Any:
        view = worker_view(client.status(), "ex")
        return view if view is not None and view.connected and view.digest == "agree" else None

    view = wait_until(renacked, 30, "the worker to reconnect to the new controller")
    assert view.state == "NACKED"
    assert [(h.ns, h.key, h.rev) for h in view.held] == [("a", "x", bad_rev)]

    good_rev = client.put("a", "x", {"v": 3}, command_id="cmd-x3").rev
    status = wait_converged(client, ["ex"], timeout=60)
    view = worker_view(status, "ex")
    assert view.state == "TAILING" and not view.held, view
    assert read_applied(out)[-1][:2] == ("cmd-x3", good_rev)
    dump = assert_replica_equals(client, worker, status.head_rev)
    assert dump["held"] == []

    client.delete("a", "z", command_id="cmd-z2")
    assert client.commit(Command([Delete("a", "m1")], command_id="cmd-m1-del")).rev > 0
    wait_converged(client, ["ex"], timeout=60)
    assert [line[0] for line in read_applied(out)[-2:]] == ["cmd-z2", "cmd-m1-del"]
    client.close()


def test_fixing_a_nacked_key_does_not_resync_a_delta_worker(cluster: Cluster) -> None:
    out = cluster.workdir / "effects"
    out.mkdir()
    script = cluster.workdir / "apply.sh"
    script.write_text(SCRIPT)
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("dw", ("a",), exec_cmd=f"sh {script} {out}", deltas=True)
    worker.wait_connected()
    client = controller.client()
    for i in range(20):
        client.put("a", f"k{i:02d}", {"i": i, "pad": "x" * 1000})
    wait_converged(client, ["dw"])

    bad = client.patch("a", "k07", [{"op": "add", "path": "/reject", "value": True}]).rev
    wait_until(
        lambda: worker_view(client.status(), "dw").state == "NACKED", 30, "the worker to NACK"
    )
    # The fix is a small patch: the controller sends it as a delta from the refused value.
    fixed = client.patch("a", "k07", [{"op": "replace", "path": "/reject", "value": False}]).rev
    status = wait_converged(client, ["dw"], timeout=60)
    assert status.head_rev == fixed > bad
    assert_replica_equals(client, worker, fixed)
    view = worker_view(status, "dw")
    assert view.state == "TAILING" and not view.held
    assert view.resyncs == 0, "fixing one refused key cost a full snapshot resync"
    assert "resync at revision" not in worker.log()
    client.close()


def test_sigterm_during_handler_retry_exits_cleanly(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("busy", ("a",), exec_cmd="exit 1")
    worker.wait_connected()
    with controller.client() as client:
        client.put("a", "k", {"v": 1})
    worker.wait_log(r"handler failed on revision 1 a/k \(attempt 2\)", 30)
    code = worker.terminate()
    assert worker.dump()["applied_rev"] == 0, "the failing change must not be committed"
    assert "Traceback" not in worker.log()
    assert code == 0, f"SIGTERM exit code {code}"


def test_fix_right_behind_a_refused_value_does_not_resync(cluster: Cluster) -> None:
    out = cluster.workdir / "effects"
    out.mkdir()
    script = cluster.workdir / "apply.sh"
    script.write_text(SCRIPT)
    controller = cluster.start_controller(SETTINGS)
    worker = cluster.start_worker("dw", ("a",), exec_cmd=f"sh {script} {out}", deltas=True)
    worker.wait_connected()
    client = controller.client()
    for i in range(20):
        client.put("a", f"k{i:02d}", {"i": i, "pad": "x" * 1000})
    wait_converged(client, ["dw"])

    # The refused value and its fix, pipelined: both go out before the worker answers.
    commands = [
        Command([Patch("a", "k07", [{"op": "add", "path": "/reject", "value": True}])]),
        Command([Patch("a", "k07", [{"op": "add", "path": "/reject", "value": False}])]),
    ]
    bad, fixed = (c.rev for c in client.commit_stream(iter(commands)))
    status = wait_converged(client, ["dw"], timeout=60)
    assert status.head_rev == fixed > bad
    assert_replica_equals(client, worker, fixed)
    view = worker_view(status, "dw")
    assert view.nacks == 1 and view.state == "TAILING" and not view.held
    assert view.resyncs == 0, "fixing one refused key cost a full snapshot resync"
    assert "resync at revision" not in worker.log()
    client.close()
