"""Chaos with a worker of every language: Python, Go and Rust side by side.

One controller; a Python worker (`statesync worker`), a Go worker
(go/cmd/statesync-go-worker) and a Rust worker (crates/worker's example) on
overlapping namespace subsets. A writer commits thousands of puts, patches and
deletes over three namespaces, retrying with the same command_id whenever the
controller is unreachable; a side writer keeps a versioned namespace
(`orders`) busy. During the writes:

- a schema version change: `orders` v2 is registered with its translation;
  every worker declares versions 1 and 2 and is served v2, translated from the
  values stored in v1;
- each worker is SIGKILLed, its replica made to drift while it is stopped
  (values changed, keys deleted, keys added: the Python and Rust replicas
  through `statesync.worker.replica.Replica`, one SQLite format; the Go bbolt
  replica through `go_drift/`, a tiny program on the Go module's replica
  API), and restarted: it resumes from its persisted revision (its resync
  count does not grow) and the controller repairs the drift by descent;
- the controller is SIGKILLed and restarted on the same port and data;
- history is compacted to the head;
- every worker NACKs some key: the Python worker's local v2 schema refuses a
  large order, the Go worker's local schema refuses one key of `c`, the Rust
  worker's `--reject-key` one key of `a`.

At the end every replica equals the controller's state for its namespaces
(in the version it is served, held keys aside), digests agree at the head,
every acknowledged write is present, and a per-language table of changes
applied, resyncs and repairs is printed and written as JSON.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from e2e_helpers import (
    Cluster,
    ControllerProc,
    Proc,
    WorkerProc,
    Writer,
    assert_acks_present,
    controller_state,
    wait_converged,
    wait_until,
    worker_view,
)
from test_go_worker import GoWorker, go_build
from test_reconcile import FlaggedWorker
from test_rust_worker import RustWorkerProc, rust_worker_exe  # noqa: F401  (a fixture)

from statesync.client import Client
from statesync.worker.replica import Entry, Replica

HERE = Path(__file__).resolve().parent
CONTRACTS = HERE.parents[1] / "examples" / "contracts"

WRITES = 3000
NAMESPACES = ("a", "b", "c")
KEYS_PER_NS = 150
ORDERS = "orders"
SETTINGS = {"sync": {"heartbeat_s": 0.5, "silence_s": 5.0}}
SUBSETS = {
    "python": ("a", "b", ORDERS),
    "go": ("b", "c", ORDERS),
    "rust": ("a", "c", ORDERS),
}
WORKER_IDS = {"python": "chaos-py", "go": "chaos-go", "rust": "chaos-rs"}
DRIFT_NS = {"python": "a", "go": "c", "rust": "a"}
DRIFT_COUNT = 2  # keys changed, deleted and added (each)
RUST_REJECTS = ("a", "k0003")
GO_REJECTS = ("c", "k0007")
ORDERS_WRITES = 5 + 4 + 1  # before v2, with v2, after the compaction
BIG_ORDER = "o-big"  # qty over the Python worker's local maximum
UNSETTLED = {"localizing", "repairing"}  # a repair record's outcomes while it runs
# The logs that say a worker's replica was replaced by a snapshot.
SNAPSHOT_LOG = {
    "python": "resync at revision",
    "go": "replica replaced by a snapshot",
    "rust": "origin=Snapshot",
}


@pytest.fixture(scope="module")
def go_tools(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    out = tmp_path_factory.mktemp("go-chaos-bin")
    worker = go_build("./cmd/statesync-go-worker", out / "statesync-go-worker")
    drift = out / "go_drift"
    built = subprocess.run(
        ["go", "build", "-o", str(drift), "."],
        cwd=HERE / "go_drift",
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    yield {"worker": worker, "drift": drift}


def write_json(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


class Fleet:
    """The three workers by language, with what each needs to be checked."""

    def __init__(self, cluster: Cluster, tmp: Path, rust_exe: Path, go: dict[str, Path]) -> None:
        controller = cluster.controller
        assert controller is not None
        self.go_tools = go
        strict_v2 = write_json(
            tmp / "orders.strict.json",
            {"type": "object", "properties": {"qty": {"type": "integer", "maximum": 100}}},
        )
        python = FlaggedWorker(
            cluster.workdir,
            WORKER_IDS["python"],
            SUBSETS["python"],
            controller.address,
            extra=["--versions", f"{ORDERS}=1", "--schema", f"{ORDERS}@2={strict_v2}"],
        )
        go_worker = GoWorker(cluster.workdir, go["worker"], WORKER_IDS["go"], controller.address)
        go_worker.argv.remove("-deltas")
        go_worker.argv[go_worker.argv.index("-ns") + 1] = ",".join(SUBSETS["go"])
        no_key = {"properties": {"key": {"not": {"const": GO_REJECTS[1]}}}}
        go_schema = write_json(tmp / "go-c.schema.json", no_key)
        go_worker.argv += ["-versions", f"{ORDERS}=1,2", "-schema", f"{GO_REJECTS[0]}={go_schema}"]
        go_worker.argv += ["-stale-after", "5s"]
        rust = RustWorkerProc(
            rust_exe,
            cluster.workdir,
            WORKER_IDS["rust"],
            SUBSETS["rust"],
            controller.address,
            reject=["/".join(RUST_REJECTS)],
            extra=["--versions", f"{ORDERS}=1,2"],
        )
        self.procs: dict[str, Proc] = {"python": python, "go": go_worker, "rust": rust}
        for lang, proc in self.procs.items():
            cluster.workers[WORKER_IDS[lang]] = proc  # type: ignore[assignment]  # cleaned up

    def start(self, lang: str) -> None:
        proc = self.procs[lang]
        assert isinstance(proc, (WorkerProc, GoWorker))
        proc.start()

    def state_dir(self, lang: str) -> Path:
        proc = self.procs[lang]
        if isinstance(proc, GoWorker):
            return Path(proc.argv[proc.argv.index("-dir") + 1])
        assert isinstance(proc, WorkerProc)
        return proc.state_dir

    def dump(self, lang: str) -> dict[str, Any]:
        """The stopped or running worker's replica: applied_rev and namespaces' values."""
        if lang == "go":
            argv = [str(self.go_tools["worker"]), "-dump", "-dir", str(self.state_dir(lang))]
        else:  # Python and Rust share the replica format
            argv = [sys.executable, "-m", "statesync.cli.main", "replica", "dump"]
            argv += ["--state-dir", str(self.state_dir(lang))]
        out = subprocess.run(argv, capture_output=True, timeout=60, check=False)
        assert out.returncode == 0, f"{lang} dump: {out.stderr.decode(errors='replace')}"
        dump: dict[str, Any] = orjson.loads(out.stdout)
        return dump

    def drift(self, lang: str) -> dict[str, Any]:
        """Make the stopped worker's replica differ from the controller in DRIFT_NS."""
        ns = DRIFT_NS[lang]
        if lang == "go":
            argv = [str(self.go_tools["drift"]), "-dir", str(self.state_dir(lang)), "-ns", ns]
            out = subprocess.run(
                [*argv, "-count", str(DRIFT_COUNT)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
            assert out.returncode == 0, out.stderr
            report: dict[str, Any] = json.loads(out.stdout)
            return report
        return drift_sqlite_replica(self.state_dir(lang), WORKER_IDS[lang], ns, lang)


def drift_sqlite_replica(state_dir: Path, worker_id: str, ns: str, tag: str) -> dict[str, Any]:
    """The Python/Rust replica, offline: DRIFT_COUNT keys changed, deleted and added."""
    replica = Replica(state_dir, worker_id=worker_id)
    try:
        rev = replica.applied_rev
        before = replica.root(ns)
        held = {(h.namespace, h.key) for h in replica.held()}
        keys = [k for k, _ in replica.values(ns) if (ns, k) not in held]
        assert len(keys) >= 2 * DRIFT_COUNT, f"{worker_id} holds too few keys of {ns}"
        changed, deleted = keys[:DRIFT_COUNT], keys[DRIFT_COUNT : 2 * DRIFT_COUNT]
        added = [f"drift-{tag}-{i:03d}" for i in range(DRIFT_COUNT)]
        wrong = orjson.dumps({"drift": tag})
        puts: list[tuple[str, str, Entry]] = []
        for key in changed:
            old = replica.get(ns, key)
            assert old is not None
            entry = Entry(
                wrong, old.create_rev, old.mod_rev, old.version, hashlib.sha256(wrong).digest()
            )
            puts.append((ns, key, entry))
        for key in added:
            puts.append((ns, key, Entry(wrong, rev, rev, 1, hashlib.sha256(wrong).digest())))
        replica.apply(rev, puts, [(ns, key) for key in deleted], [])
        assert replica.root(ns) != before, "the drift did not change the replica's digest"
    finally:
        replica.close()
    return {"rev": rev, "changed": changed, "deleted": deleted, "added": added}


def served_in(version: int) -> Callable[[Any], bool]:
    def check(view: Any) -> bool:
        return [(s.ns, list(s.versions)) for s in view.served] == [(ORDERS, [version])]

    return check


def wait_view(client: Client, worker_id: str, ok: Callable[[Any], bool], what: str) -> Any:
    def found() -> Any:
        view = worker_view(client.status(), worker_id)
        return view if view is not None and ok(view) else None

    return wait_until(found, 60, what)


def in_served_version(value: Any) -> Any:
    """The controller's stored order as the worker is served it: v2 adds
    `priority` (default "standard") to a value stored in v1 (every v2 write
    here carries its own `priority`)."""
    return {"priority": "standard", **value}


def assert_replica_matches(
    lang: str, dump: dict[str, Any], expected: dict[str, dict[str, Any]], head: int, held: set[Any]
) -> None:
    assert dump["applied_rev"] == head, f"{lang}: replica at {dump['applied_rev']}, head {head}"
    assert set(dump["namespaces"]) <= set(SUBSETS[lang]), f"{lang}: foreign namespace"
    for ns in SUBSETS[lang]:
        got = {k: v for k, v in dump["namespaces"].get(ns, {}).items() if (ns, k) not in held}
        want = {k: v for k, v in expected[ns].items() if (ns, k) not in held}
        if ns == ORDERS:
            want = {k: in_served_version(v) for k, v in want.items()}
        missing = sorted(want.keys() - got.keys())[:5]
        extra = sorted(got.keys() - want.keys())[:5]
        wrong = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])[:5]
        assert got == want, (
            f"{lang} namespace {ns}: missing {missing}, extra {extra}, wrong {wrong}"
        )


FIGURES = ("nacks", "resyncs", "divergences", "keys_repaired")


def figures(client: Client) -> dict[str, dict[str, int]]:
    """The controller's per-worker counters (kept in memory: a controller
    restart starts them again, so the test adds up both runs)."""
    status = client.status()
    out = {}
    for lang, wid in WORKER_IDS.items():
        view = worker_view(status, wid)
        out[lang] = {f: int(getattr(view, f)) if view is not None else 0 for f in FIGURES}
    return out


@pytest.mark.timeout(600, func_only=True)
def test_chaos_with_python_go_and_rust_workers(
    cluster: Cluster,
    tmp_path: Path,
    rust_worker_exe: Path,  # noqa: F811  (the fixture imported above)
    go_tools: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
) -> None:
    controller = cluster.start_controller(SETTINGS)
    client = controller.client()
    v1, v2 = (json.loads((CONTRACTS / f"orders.v{n}.json").read_text()) for n in (1, 2))
    translation = json.loads((CONTRACTS / "orders.v1-v2.json").read_text())
    client.register_schema(ORDERS, v1)
    for i in range(5):
        client.put(ORDERS, f"o-{i}", {"item": f"item {i}", "qty": i + 1})

    fleet = Fleet(cluster, tmp_path, rust_worker_exe, go_tools)
    for lang in fleet.procs:
        fleet.start(lang)
    wait_converged(client, WORKER_IDS.values(), timeout=90)

    writer = Writer(controller.address, NAMESPACES, WRITES, keys_per_ns=KEYS_PER_NS, seed=13)
    writer.start()

    # --- a schema version change under load; the Python worker refuses a large order.
    writer.wait_done(WRITES * 10 // 100, 120)
    client.register_schema(ORDERS, v2, translation=translation)
    client.put(ORDERS, "o-v2", {"item": "pear", "qty": 2, "priority": "express"})
    client.put(ORDERS, "o-1", {"item": "fig", "qty": 9}, schema_version=1)
    client.patch(ORDERS, "o-2", [{"op": "replace", "path": "/qty", "value": 20}])
    client.put(ORDERS, BIG_ORDER, {"item": "melon", "qty": 500, "priority": "express"})
    for lang in WORKER_IDS:
        wait_view(client, WORKER_IDS[lang], served_in(2), f"{lang} to be served orders v2")
    wait_view(
        client,
        WORKER_IDS["python"],
        lambda v: any((h.ns, h.key) == (ORDERS, BIG_ORDER) for h in v.held),
        "the Python worker to hold the large order",
    )

    # --- each language: SIGKILL, drift while stopped, restart, resume, repair.
    restarts: dict[str, dict[str, Any]] = {}
    for step, lang in enumerate(("python", "rust", "go")):
        writer.wait_done(WRITES * (20 + 12 * step) // 100, 120)
        restarts[lang] = kill_drift_restart(client, controller, fleet, writer, lang)

    # --- the controller is SIGKILLed and restarted on the same port and data.
    writer.wait_done(WRITES * 65 // 100, 120)
    first_run = figures(client)
    faults = {"controller_killed_at_write": writer.done}
    retries_before = writer.retries
    client.close()
    controller.kill()
    wait_until(lambda: writer.retries > retries_before, 30, "the writer to hit the outage")
    controller.start()
    client = controller.client()

    # --- compaction of the whole history, under load.
    writer.wait_done(WRITES * 80 // 100, 120)
    compact_to = client.status().head_rev
    faults["compacted_at_write"] = writer.done
    assert client.compact(compact_to) == compact_to
    client.put(ORDERS, "o-3", {"item": "plum", "qty": 3}, schema_version=1)

    writer.join_ok(240)
    assert len(writer.acks) == WRITES and writer.retries > retries_before
    assert {a.op for a in writer.acks} == {"put", "patch", "delete"}

    # --- the end: converged, equal, nothing lost, each worker NACKing its key.
    status = wait_converged(client, WORKER_IDS.values(), timeout=120)
    head = status.head_rev
    second_run = figures(client)
    state = controller_state(client, (*NAMESPACES, ORDERS))
    assert_acks_present(client, writer)
    # Every acknowledged command sent again around the controller's crash is a
    # replay at its revision: the retries wrote nothing twice.
    crashed = faults["controller_killed_at_write"]
    for ack in [a for a in writer.acks if a.index >= crashed - 20][:40]:
        again = ack.resend(client)
        assert again.replayed and again.rev == ack.rev, (ack, again)
    assert client.status().head_rev == head, "a replayed command wrote something"
    held_by = {}
    for lang, wid in WORKER_IDS.items():
        view = worker_view(status, wid)
        assert view.applied_rev == head and view.digest == "agree", view
        held_by[lang] = {(h.ns, h.key) for h in view.held}
    assert held_by["python"] == {(ORDERS, BIG_ORDER)}
    assert held_by["rust"] <= {RUST_REJECTS}
    assert held_by["go"] <= {GO_REJECTS}
    for lang, proc in fleet.procs.items():
        assert proc.terminate() == 0, f"{lang} did not stop cleanly:\n{proc.log()[-3000:]}"
        dump = fleet.dump(lang)
        assert_replica_matches(lang, dump, state, head, held_by[lang])
    assert BIG_ORDER in state[ORDERS]  # the controller took it: only the Python worker refuses it

    # --- the per-language figures, across both controller runs.
    table = {}
    for lang in WORKER_IDS:
        totals = {f: first_run[lang][f] + second_run[lang][f] for f in FIGURES}
        table[lang] = {
            "worker_id": WORKER_IDS[lang],
            "namespaces": list(SUBSETS[lang]),
            "changes_applied": changes_in(writer, SUBSETS[lang]) + ORDERS_WRITES,
            **totals,
            "restart": restarts[lang],
        }
        assert totals["nacks"] >= 1, (lang, totals)
        assert totals["keys_repaired"] >= 1 and totals["divergences"] >= 1, (lang, totals)
        assert second_run[lang]["resyncs"] == 0, f"{lang} resynced after the controller restart"
    report = {
        "head_rev": head,
        "writes": WRITES,
        "writer_retries": writer.retries,
        "compacted_to": compact_to,
        "faults": faults,
        "workers": table,
    }
    (tmp_path / "chaos_languages.json").write_text(json.dumps(report, indent=2))
    with capsys.disabled():  # shown in CI's output too, not only with -s
        print_table(table, tmp_path / "chaos_languages.json")
        print(json.dumps(report))
    client.close()


def kill_drift_restart(
    client: Client, controller: ControllerProc, fleet: Fleet, writer: Writer, lang: str
) -> dict[str, Any]:
    """SIGKILL the worker, drift its replica, restart it; it resumes from its
    persisted revision without a snapshot and the drift is repaired."""
    wid = WORKER_IDS[lang]
    proc = fleet.procs[lang]
    # Tailing (or NACKED: tailing with a held key), so no snapshot is half sent.
    before = wait_view(
        client,
        wid,
        lambda v: v.connected and v.applied_rev > 0 and v.state in ("TAILING", "NACKED"),
        f"{lang} to be tailing",
    )
    killed_at = writer.done
    proc.kill()
    drift = fleet.drift(lang)
    persisted = fleet.dump(lang)["applied_rev"]
    assert persisted == drift["rev"] > 0
    restarted_unix = time.time()
    fleet.start(lang)
    controller.wait_log(rf"worker {wid} connected from \S+ .*from revision {persisted}\b", 60)
    wait_repaired(client, wid, restarted_unix)
    after = wait_view(client, wid, lambda v: v.applied_rev > persisted, f"{lang} to apply more")
    assert after.resyncs == before.resyncs, f"the restarted {lang} worker resynced: {after}"
    assert SNAPSHOT_LOG[lang] not in proc.log(), f"the restarted {lang} worker got a snapshot"
    repaired = after.keys_repaired - before.keys_repaired
    # At least the added keys, which no write touches; a write may fix a changed
    # or deleted key before the descent reaches it.
    assert repaired >= DRIFT_COUNT, f"{lang}: {repaired} keys repaired after {drift}"
    return {
        "writes_done_at_kill": killed_at,
        "resumed_from": persisted,
        "drifted_keys": len(drift["changed"]) + len(drift["deleted"]) + len(drift["added"]),
        "keys_repaired": repaired,
    }


def wait_repaired(client: Client, worker_id: str, since_unix: float) -> None:
    """Until the worker's repairs detected since `since_unix` all ended, one verified."""

    def settled(view: Any) -> bool:
        records = [r for r in view.repairs if r.detected_unix >= since_unix]
        return all(r.outcome not in UNSETTLED for r in records) and any(
            r.outcome == "verified" for r in records
        )

    wait_view(client, worker_id, settled, f"a verified repair of {worker_id}'s drift")


def changes_in(writer: Writer, namespaces: tuple[str, ...]) -> int:
    """The changes the controller sent the worker from the writer: its
    acknowledged writes in these namespaces (the worker ends at the head with
    digests agreeing, so each was applied, refused or overtaken by a repair)."""
    return sum(1 for a in writer.acks if a.ns in namespaces)


def print_table(table: dict[str, dict[str, Any]], path: Path) -> None:
    columns = ("changes_applied", "resyncs", "keys_repaired", "divergences", "nacks")
    print(f"\nper-language chaos figures ({path}):")
    print(f"{'language':<10}" + "".join(f"{c:>17}" for c in columns))
    for lang, row in table.items():
        print(f"{lang:<10}" + "".join(f"{row[c]:>17}" for c in columns))
