"""Schema contracts with real processes: a controller, workers and the CLI.

Old (v1) and new (v1, v2) workers of `orders` run side by side and each gets
every value in its own version (v1 without `priority`, v2 with the default
"standard" filled in); a write that breaks the schema is refused with every
violation; a breaking v3 is refused by `schema register` and `contract check`;
a worker with a stricter local schema NACKs, keeps its last good value, and
the controller reports it (status, log, metrics). A worker restarted with a
newer --versions is re-sent its whole replica in the new version.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from e2e_helpers import CLI, Cluster, ControllerProc, WorkerProc

SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}}
CONTRACTS = Path(__file__).resolve().parents[2] / "examples" / "contracts"
V1, V2, V3 = (str(CONTRACTS / f"orders.v{n}.json") for n in (1, 2, 3))
V1_V2 = str(CONTRACTS / "orders.v1-v2.json")
V3_BREAKING = ["/properties/qty/maximum", "/required", "/properties/priority/enum"]


class SchemaWorker(WorkerProc):
    """A `statesync worker` with extra flags (--versions, --schema)."""

    def __init__(self, *args: Any, extra: list[str], **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.extra = extra

    def argv(self) -> list[str]:
        return [*super().argv(), *self.extra]


def start_worker(cluster: Cluster, worker_id: str, *extra: str) -> SchemaWorker:
    assert cluster.controller is not None
    worker = SchemaWorker(
        cluster.workdir, worker_id, ("orders",), cluster.controller.address, extra=list(extra)
    )
    cluster.workers[worker_id] = worker
    worker.start()
    worker.wait_connected()
    return worker


def cli(controller: ControllerProc, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "--server", controller.address, *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def cli_json(controller: ControllerProc, *args: str) -> Any:
    out = cli(controller, *args)
    assert out.returncode == 0, f"{args}: exit {out.returncode}: {out.stderr}"
    return json.loads(out.stdout)


def status_of(controller: ControllerProc) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    status = cli_json(controller, "status", "--json")
    return status, {w["worker_id"]: w for w in status["workers"]}


def register_v1_v2(controller: ControllerProc) -> None:
    assert cli_json(controller, "schema", "register", "orders", V1)["version"] == 1
    registered = cli_json(controller, "schema", "register", "orders", V2, "--translation", V1_V2)
    assert registered["version"] == 2 and not registered["forced"]


def stop_and_dump(worker: WorkerProc) -> dict[str, Any]:
    code = worker.terminate()
    assert code == 0, f"{worker.worker_id}: SIGTERM exit code {code}"
    assert "Traceback" not in worker.log()
    return worker.dump()


def without_priority(values: dict[str, Any]) -> dict[str, Any]:
    return {k: {f: x for f, x in v.items() if f != "priority"} for k, v in values.items()}


def test_old_and_new_workers_get_their_own_version(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    client = controller.client()
    assert cli_json(controller, "schema", "register", "orders", V1)["version"] == 1
    rev = client.put("orders", "o-1", {"item": "apple", "qty": 1}).rev  # v1 is current
    # `early` understands v2 before it exists: it is re-sent the state once v2 is registered.
    early = start_worker(cluster, "early", "--versions", "orders=1,2")
    assert client.wait_applied(rev, workers=["early"], timeout=30).complete
    registered = cli_json(controller, "schema", "register", "orders", V2, "--translation", V1_V2)
    assert registered["version"] == 2
    old = start_worker(cluster, "old", "--versions", "orders=1")
    new = start_worker(cluster, "new", "--versions", "orders=1,2")

    # v2 writes (the current version) with `priority`, v1-declared writes without.
    when = "2024-05-01T10:00:00Z"
    client.put("orders", "o-2", {"item": "pear", "qty": 2, "priority": "express"})
    client.put("orders", "o-3", {"item": "fig", "qty": 3, "placed_at": when}, schema_version=1)
    client.put("orders", "o-4", {"item": "kiwi", "qty": 4, "priority": "express"})
    client.put("orders", "o-2", {"item": "pear", "qty": 7}, schema_version=1)  # v2 key, v1 write
    client.patch("orders", "o-3", [{"op": "replace", "path": "/qty", "value": 6}])
    client.put("orders", "gone", {"item": "lime", "qty": 1, "priority": "express"})
    client.delete("orders", "gone")
    head = client.put("orders", "o-5", {"item": "plum", "qty": 5}, schema_version=1).rev
    ids = ["early", "new", "old"]
    waited = client.wait_applied(head, workers=ids, timeout=30)
    assert waited.complete and sorted(waited.applied) == ids, waited

    status, workers = status_of(controller)
    assert status["head_rev"] == head
    for wid, served in {"old": 1, "new": 2, "early": 2}.items():
        w = workers[wid]
        assert (w["connected"], w["applied_rev"], w["digest"]) == (True, head, "agree"), w
        assert w["state"] == "TAILING" and w["nacks"] == 0 and w["held"] == [], w
        assert w.get("schema_versions", {"orders": served}) == {"orders": served}, w

    stored = {r.key: orjson.loads(r.value) for r in client.range("orders")}
    client.close()
    old_values = stop_and_dump(old)["namespaces"]["orders"]
    new_values = stop_and_dump(new)["namespaces"]["orders"]
    assert sorted(old_values) == sorted(new_values) == ["o-1", "o-2", "o-3", "o-4", "o-5"]
    # The old worker never sees `priority`; otherwise it holds what was written.
    assert all("priority" not in v for v in old_values.values()), old_values
    assert old_values == without_priority(stored)
    assert old_values["o-4"] == {"item": "kiwi", "qty": 4}
    # The new worker has `priority` on every value: the default for v1 writes.
    assert {k: v.get("priority") for k, v in new_values.items()} == {
        "o-1": "standard",
        "o-2": "standard",
        "o-3": "standard",
        "o-4": "express",
        "o-5": "standard",
    }, new_values
    assert new_values["o-3"] == {"item": "fig", "qty": 6, "placed_at": when, "priority": "standard"}
    assert new_values["o-4"] == stored["o-4"] == {"item": "kiwi", "qty": 4, "priority": "express"}
    assert without_priority(new_values) == old_values
    assert stop_and_dump(early)["namespaces"]["orders"] == new_values


def test_upgraded_worker_is_resent_the_state_in_its_new_version(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    register_v1_v2(controller)
    client = controller.client()
    worker = start_worker(cluster, "up", "--versions", "orders=1")
    client.put("orders", "o-1", {"item": "apple", "qty": 1}, schema_version=1)
    rev = client.put("orders", "o-2", {"item": "pear", "qty": 2, "priority": "express"}).rev
    assert client.wait_applied(rev, workers=["up"], timeout=30).complete
    assert stop_and_dump(worker)["namespaces"]["orders"] == {
        "o-1": {"item": "apple", "qty": 1},
        "o-2": {"item": "pear", "qty": 2},
    }

    worker.extra = ["--versions", "orders=1,2"]  # the same worker, upgraded
    worker.start()
    worker.wait_connected()
    rev = client.put("orders", "o-3", {"item": "fig", "qty": 3}, schema_version=1).rev
    assert client.wait_applied(rev, workers=["up"], timeout=30).complete
    view = status_of(controller)[1]["up"]
    assert view["digest"] == "agree" and view.get("schema_versions", {}).get("orders", 2) == 2
    client.close()
    assert stop_and_dump(worker)["namespaces"]["orders"] == {
        "o-1": {"item": "apple", "qty": 1, "priority": "standard"},
        "o-2": {"item": "pear", "qty": 2, "priority": "express"},  # priority lost: the bug
        "o-3": {"item": "fig", "qty": 3, "priority": "standard"},
    }


def test_invalid_write_is_refused_with_every_violation(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    register_v1_v2(controller)
    head = status_of(controller)[0]["head_rev"]

    bad = '{"item": "", "qty": 0, "placed_at": "yesterday"}'
    out = cli(controller, "put", "orders", "bad", bad)
    assert out.returncode == 4, (out.returncode, out.stdout, out.stderr)
    assert out.stdout == ""
    err = out.stderr
    assert err.startswith("statesync: error: ") and err.count("\n") == 1, err
    assert "'orders'" in err and "'bad'" in err and "schema v2" in err, err
    for path in ("/item", "/qty", "/placed_at"):
        assert f"{path}: " in err, f"{path} missing from: {err}"
    assert "3 violation(s)" in err, err

    assert status_of(controller)[0]["head_rev"] == head, "a refused write moved the head"
    assert cli(controller, "get", "orders", "bad").returncode == 1


def test_breaking_v3_is_refused(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    register_v1_v2(controller)
    head = status_of(controller)[0]["head_rev"]

    out = cli(controller, "schema", "register", "orders", V3)
    assert out.returncode == 4, (out.returncode, out.stdout, out.stderr)
    assert "BACKWARD" in out.stderr and "3 breaking change(s)" in out.stderr, out.stderr
    for path in V3_BREAKING:
        assert f"{path}: " in out.stderr, f"{path} missing from: {out.stderr}"
    assert status_of(controller)[0]["head_rev"] == head, "a refused schema moved the head"
    shown = cli_json(controller, "schema", "show", "orders", "--json")
    assert shown["current"] == 2

    out = cli(controller, "contract", "check", V3, "--ns", "orders", "--json")
    assert out.returncode == 1, (out.returncode, out.stdout, out.stderr)
    verdict = json.loads(out.stdout)
    assert verdict["compatible"] is False and verdict["version"] == 3
    assert sorted(b["path"] for b in verdict["breaking"]) == sorted(V3_BREAKING), verdict

    out = cli(controller, "contract", "check", V2, "--against", V1)
    assert out.returncode == 0, (out.returncode, out.stdout, out.stderr)
    assert out.stdout.startswith("compatible: "), out.stdout


def test_stricter_local_schema_nacks_and_keeps_last_good_value(cluster: Cluster) -> None:
    controller = cluster.start_controller(SETTINGS)
    register_v1_v2(controller)
    strict = json.loads(Path(V2).read_text())
    strict["properties"]["qty"]["maximum"] = 10
    strict_file = cluster.workdir / "orders.strict.json"
    strict_file.write_text(json.dumps(strict))
    client = controller.client()
    keep = {"item": "apple", "qty": 5, "priority": "express"}
    client.put("orders", "o-keep", keep)
    worker = start_worker(cluster, "strict", "--schema", f"orders@2={strict_file}")
    ok_rev = client.put("orders", "o-ok", {"item": "pear", "qty": 10}).rev
    assert client.wait_applied(ok_rev, workers=["strict"], timeout=30).complete

    # Valid for the registered v2 (no maximum), too big for the worker's copy.
    keep_rev = client.put("orders", "o-keep", {"item": "apple", "qty": 50}).rev
    big_rev = client.put("orders", "o-big", {"item": "melon", "qty": 50}).rev
    assert client.wait_applied(big_rev, workers=["strict"], timeout=30).complete

    status, workers = status_of(controller)
    view = workers["strict"]
    assert view["state"] == "NACKED" and view["nacks"] >= 2, view
    assert view["applied_rev"] == big_rev == status["head_rev"], view
    held = {h["key"]: h for h in view["held"]}
    assert sorted(held) == ["o-big", "o-keep"], view["held"]
    assert (held["o-big"]["rev"], held["o-keep"]["rev"]) == (big_rev, keep_rev)
    for h in held.values():
        assert h["ns"] == "orders" and "/qty" in h["reason"] and "schema v2" in h["reason"], h
    assert view["digest"] == "agree", view  # right except for its reported refusals

    log = controller.wait_log(rf"worker strict NACKed revision {big_rev} \(orders/o-big\)", 10)
    assert "/qty" in controller.log()[log.start() :].splitlines()[0]
    worker.wait_log(rf"NACK revision {keep_rev} orders/o-keep", 10)

    with urllib.request.urlopen(f"http://127.0.0.1:{controller.http_port}/metrics") as reply:
        metrics = reply.read().decode()
    m = re.search(r'^statesync_worker_nacks_total\{worker="strict"\} (\S+)$', metrics, re.M)
    assert m is not None and float(m.group(1)) >= 2, metrics

    client.close()
    dump = stop_and_dump(worker)
    values = dump["namespaces"]["orders"]
    assert values["o-keep"] == keep, "the last good value must be kept"
    assert "o-big" not in values, "a refused value was applied"
    assert values["o-ok"] == {"item": "pear", "qty": 10}
    assert sorted(h["key"] for h in dump["held"]) == ["o-big", "o-keep"]
    assert dump["applied_rev"] == big_rev
