"""Reconciliation cost: finding and repairing k drifted keys in a large namespace,
next to a full re-list of it; and a worker away past compaction brought back by
reconciliation, next to a full snapshot.

Drift (default 1,000,000 keys): the controller's store is built in this
process (`SQLiteStore.commit_many`, commands of 10,000 puts of ~80-byte
values), then the worker's replica is built offline from the store's snapshot
(`Replica.replace` with the same records: applied revision = head, same
digest). The controller then runs as `statesync serve --ready-file` in its own
process. For each case (k = 1 as a wrong value, a key the worker lacks, and a
key only the worker has; k = 10, 100, 1000 as a mix of the three), the replica
is opened offline and k keys drift through `Replica.apply` at its own revision
(so the file stays self-consistent), then `statesync worker` starts on it. The
controller detects the mismatch at an ACK, localizes it by digest descent over
the sync stream, repairs and verifies; its RepairRecords (`Client.status()`)
give round trips, bytes (descent messages both ways + the repair message) and
seconds (detection -> verified repair). The worker is then stopped (SIGTERM,
exit 0 checked). Re-list: a full `Client.snapshot([ns])` of the namespace
(sum of SnapshotChunk ByteSize, and the time to receive it).

Away (default 200,000 keys, 1% changed): a worker reaches the head, is
stopped; the controller then updates, deletes and creates 1% of the keys
(a third each, 10 keys per command) and compacts its history to the head; the
worker comes back, gets a reconcile resync (no snapshot: its log must not say
"replica replaced by the snapshot") and is repaired by descent. Bytes are the
sum over its RepairRecords, next to a full snapshot's bytes and time, and the
time a fresh worker takes to bootstrap from that snapshot.

The worker process is `statesync worker` with its Worker class wrapped to
count the protobuf size of what it receives (by message kind) and of the
digest answers it sends: "wire" bytes, a cross-check on the records' counts
(which leave protobuf framing out).

A case that does not converge (the worker's stream broke twice, or
--case-timeout passed) is reported as such, its drift is undone, and it runs
again on a controller started with `serve --silence 60` (--retry-silence),
so that its cost is still measured.

    python bench/reconcile.py                 # 1M keys, k = 1/10/100/1000; away: 200k keys
    python bench/reconcile.py --quick         # 100k keys, k = 1/10; away: 50k keys
    python bench/reconcile.py --keys 300000 --rounds 3 --keep
"""

from __future__ import annotations

import argparse
import collections
import datetime
import hashlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _controller import (
    ChildProcess,
    MachineLoad,
    cpu_seconds,
    git_describe,
    rss_mb,
    statesync_exe,
)

from statesync import Command, Delete, Put
from statesync.client import Client
from statesync.core import reconcile
from statesync.core.digest import position
from statesync.core.reconcile import LEAF_LIMIT
from statesync.server.app import DB_FILE
from statesync.store.sqlite import SQLiteStore
from statesync.worker.replica import Entry, Replica

NAMESPACE = "recon"
AWAY_NAMESPACE = "away"
WORKER_ID = "recon-bench"
VALUE_BYTES = 80
PUTS_PER_COMMAND = 10_000
AWAY_OPS_PER_COMMAND = 10
SNAPSHOT_CHUNK = 2000  # what the sync stream sends a bootstrapping worker (SyncHub)
KINDS = ("wrong", "missing", "extra")
KIND_LABEL = {
    "wrong": "wrong value",
    "missing": "missing on worker",
    "extra": "extra on worker",
    "mix": "mix of the 3",
}
SNAPSHOT_APPLIED = "replica replaced by the snapshot"  # the worker's log line
ATTEMPT = re.compile(
    rf"worker {WORKER_ID}: repairing (\d+) key\(s\) .*\((\d+) round trips, (\d+) bytes\)"
)  # the controller's log line for each descent that ends in a repair
TARGET_K1_ROUND_TRIPS = 4
TARGET_K1_BYTES = 2048
TARGET_K10_SECONDS = 1.0
TARGET_K10_RATIO = 0.01
TARGET_AWAY_RATIO = 0.05

WORKER_LAUNCHER = """
import sys
import orjson
from statesync.cli import worker_cmd
from statesync.cli.main import main
from statesync.worker import Worker

counts = {}

def count(kind, size):
    c = counts.setdefault(kind, [0, 0])
    c[0] += 1
    c[1] += size

class CountingWorker(Worker):
    async def _handle(self, reply, snapshot, outgoing):
        count("received:" + str(reply.WhichOneof("msg")), reply.ByteSize())
        return await super()._handle(reply, snapshot, outgoing)

    def _answer(self, query):
        answer = super()._answer(query)
        count("sent:answer", answer.ByteSize())
        return answer

worker_cmd.Worker = CountingWorker
code = main(sys.argv[2:])
with open(sys.argv[1], "wb") as f:
    f.write(orjson.dumps(counts))
sys.exit(code)
"""


def key_name(i: int) -> str:
    return f"key-{i:07d}"


def make_value(i: int, gen: int = 0) -> dict[str, object]:
    """A small document whose canonical JSON is exactly VALUE_BYTES."""
    doc = {"addr": f"10.{i % 256}.{i // 256 % 256}.{i % 200}", "gen": gen, "port": 8080, "pad": ""}
    doc["pad"] = "x" * (VALUE_BYTES - len(canonical(doc)))
    return doc


def canonical(doc: dict[str, object]) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)


# ---------------------------------------------------------------- building, offline


def build_store(data: Path, ns: str, keys: int) -> dict[str, Any]:
    """Put keys [0, keys) into a fresh store in this process, 10,000 puts a command."""
    t0 = time.perf_counter()
    store = SQLiteStore(data / DB_FILE)
    try:
        for first in range(0, keys, 10 * PUTS_PER_COMMAND):
            last = min(keys, first + 10 * PUTS_PER_COMMAND)
            commands = [
                Command(
                    [
                        Put(ns, key_name(i), make_value(i))
                        for i in range(a, min(last, a + PUTS_PER_COMMAND))
                    ]
                )
                for a in range(first, last, PUTS_PER_COMMAND)
            ]
            for outcome in store.commit_many(commands):
                if isinstance(outcome, Exception):
                    raise outcome
        head = store.head_rev
    finally:
        store.close()
    return {"keys": keys, "head": head, "seconds": time.perf_counter() - t0}


def build_replica(data: Path, state_dir: Path, ns: str) -> dict[str, Any]:
    """The worker's replica at the store's head, written offline from its snapshot."""
    t0 = time.perf_counter()
    store = SQLiteStore(data / DB_FILE)
    try:
        entries: dict[str, Entry] = {}
        with store.snapshot([ns], chunk_size=10_000) as snap:
            rev, root = snap.rev, snap.digests[ns]
            for chunk in snap.chunks():
                for r in chunk:
                    vhash = hashlib.sha256(r.value).digest()
                    entries[r.key] = Entry(r.value, r.create_rev, r.mod_rev, r.version, vhash)
    finally:
        store.close()
    replica = Replica(state_dir, worker_id=WORKER_ID)
    try:
        replica.replace(rev, {ns: entries})
        if replica.digest(ns).root() != root:
            raise RuntimeError("the offline replica's digest differs from the controller's")
    finally:
        replica.close()
    return {"rev": rev, "keys": len(entries), "seconds": time.perf_counter() - t0}


def trie_shape(keys: int) -> dict[str, Any]:
    """How deep a descent goes for one wrong key: per key, the first trie depth
    whose node holds at most LEAF_LIMIT keys (described by its leaves);
    round trips = that depth + 1."""
    hexes = [position(key_name(i)).hex()[:8] for i in range(keys)]
    counts: list[collections.Counter[str]] = [collections.Counter()]
    while len(counts) < 8 and (len(counts) == 1 or max(counts[-1].values()) > LEAF_LIMIT):
        d = len(counts)
        counts.append(collections.Counter(h[:d] for h in hexes))
    depths: collections.Counter[int] = collections.Counter()
    for h in hexes:
        d = 0
        if keys > LEAF_LIMIT:
            d = next(d for d in range(1, len(counts)) if counts[d][h[:d]] <= LEAF_LIMIT)
        depths[d] += 1
    return {
        "leaf_limit": LEAF_LIMIT,
        "round_trips_share": {str(d + 1): n / keys for d, n in sorted(depths.items())},
        "nodes_by_depth": [len(c) for c in counts[1:]],
        "nodes_over_limit_by_depth": [
            sum(1 for n in c.values() if n > LEAF_LIMIT) for c in counts[1:]
        ],
        "max_keys_by_depth": [max(c.values()) for c in counts[1:]],
    }


def answer_cost(replica: Replica, ns: str) -> dict[str, float]:
    """What answering a descent costs the worker (the same calls as
    `Worker._answer`): the by-bucket index built on the first `leaves` call,
    then one node's leaves by prefix length."""
    t0 = time.perf_counter()
    replica.leaves(ns, "ffff")
    out = {"index_build_s": time.perf_counter() - t0}
    for length in (2, 3, 4):
        prefixes = [f"{i:0{length}x}" for i in range(0, 16**length, 16**length // 16)]
        t0 = time.perf_counter()
        for prefix in prefixes:
            reconcile.answer(replica.digest(ns), lambda p: replica.leaves(ns, p), [prefix])
        out[f"answer_{length}_nibbles_s"] = (time.perf_counter() - t0) / len(prefixes)
    return out


Undo = tuple[list[tuple[str, str, Entry]], list[tuple[str, str]]]
"""The drifted keys' entries as the controller has them, and the extra keys."""


def drift(
    state_dir: Path,
    ns: str,
    keys: int,
    k: int,
    kind: str,
    rng: random.Random,
    tag: str,
    measure_answer: bool = False,
) -> dict[str, Any]:
    """Open the replica offline and make k of its keys differ from the controller:
    wrong values, deletions (the worker lacks the key) and extra keys."""
    t0 = time.perf_counter()
    replica = Replica(state_dir, worker_id=WORKER_ID)
    open_s = time.perf_counter() - t0
    try:
        rev = replica.applied_rev
        before = replica.digest(ns).root()
        kinds = [kind] * k if kind != "mix" else [KINDS[j % 3] for j in range(k)]
        existing = iter(rng.sample(range(keys), k))
        puts: list[tuple[str, str, Entry]] = []
        deletes: list[tuple[str, str]] = []
        undo: Undo = ([], [])
        for j, what in enumerate(kinds):
            if what == "extra":
                value = canonical(make_value(keys + j, gen=-1))
                key = f"extra-{tag}-{j:04d}"
                entry = Entry(value, rev, rev, 1, hashlib.sha256(value).digest())
                puts.append((ns, key, entry))
                undo[1].append((ns, key))
                continue
            i = next(existing)
            key = key_name(i)
            old = replica.get(ns, key)
            assert old is not None, key
            undo[0].append((ns, key, old))
            if what == "missing":
                deletes.append((ns, key))
            else:
                value = canonical(make_value(i, gen=-1))
                entry = Entry(
                    value, old.create_rev, old.mod_rev, old.version, hashlib.sha256(value).digest()
                )
                puts.append((ns, key, entry))
        replica.apply(rev, puts, deletes, [])
        cost = answer_cost(replica, ns) if measure_answer else None
        if replica.digest(ns).root() == before:
            raise RuntimeError("drift did not change the replica's digest")
        count = replica.digest(ns).count
    finally:
        replica.close()
    return {
        "open_s": open_s,
        "seconds": time.perf_counter() - t0,
        "rev": rev,
        "kinds": dict(collections.Counter(kinds)),
        "worker_keys": count,
        "answer_cost": cost,
        "undo": undo,
    }


def undo_drift(state_dir: Path, undo: Undo) -> None:
    """Put the drifted keys back as the controller has them (after a case that
    did not converge), so that the next case starts from an agreeing replica."""
    replica = Replica(state_dir, worker_id=WORKER_ID)
    try:
        replica.apply(replica.applied_rev, undo[0], undo[1], [])
    finally:
        replica.close()


# ---------------------------------------------------------------- processes


class Serve(ChildProcess):
    """`statesync serve` on a data directory, until stop() (SIGTERM)."""

    def __init__(self, data: Path, log: Path, extra: Sequence[str] = ()) -> None:
        ready = data.parent / f"{data.name}.ready.json"
        ready.unlink(missing_ok=True)
        self.log = log
        self._stderr = open(log, "wb")  # noqa: SIM115 - closed in stop()
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(
            [
                statesync_exe(),
                "serve",
                "--data",
                str(data),
                "--listen",
                "127.0.0.1:0",
                "--http",
                "none",
                "--ready-file",
                str(ready),
                *extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )
        while not ready.exists():
            if self.proc.poll() is not None or time.perf_counter() - t0 > 300:
                self.stop()
                raise RuntimeError(f"controller did not start:\n{self.log_tail()}")
            time.sleep(0.02)
        self.start_s = time.perf_counter() - t0
        self.silence_s = float(extra[list(extra).index("--silence") + 1]) if extra else 10.0
        info = orjson.loads(ready.read_bytes())
        self.pid = self.proc.pid
        self.address = f"127.0.0.1:{info['grpc']}"

    def stop(self, timeout: float = 120) -> int:
        return super().stop(timeout)

    def log_tail(self, chars: int = 3000) -> str:
        return super().log_tail(chars)


def log_time(line: str) -> float:
    """The unix time of a logging line ("2026-11-23 18:15:44,123 ...")."""
    stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
    return stamp.timestamp()


def run_worker(
    client: Client,
    ns: str,
    state_dir: Path,
    log: Path,
    head: int,
    *,
    expect_repair: bool,
    snapshot_allowed: bool = False,
    controller_log: Path | None = None,
    timeout: float = 300,
    max_reconnects: int | None = None,
) -> dict[str, Any]:
    """Start `statesync worker` on state_dir, wait until the controller says its
    digest agrees at `head` (after keys were repaired, when a repair is
    expected), stop it, and collect its repair records, its log and its byte
    counts. With `max_reconnects`, a worker whose stream broke more often than
    that, or that did not agree within `timeout`, is stopped and reported as
    not converged (`converged` False) instead of raising."""
    counts_file = log.with_suffix(".counts.json")
    counts_file.unlink(missing_ok=True)
    start_unix = time.time()
    t0 = time.perf_counter()
    stderr = open(log, "wb")  # noqa: SIM115 - the child has its own copy
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            WORKER_LAUNCHER,
            str(counts_file),
            "worker",
            "--server",
            client.address,
            "--id",
            WORKER_ID,
            "--ns",
            ns,
            "--state-dir",
            str(state_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=stderr,
    )
    stderr.close()
    records: list[Any] = []
    peak = float("nan")
    status: Any = None
    agree_s = float("nan")
    cpu = 0.0
    given_up = ""
    try:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}")
            broken = log.read_text(errors="replace").count(" connected to ") - 1
            if max_reconnects is not None and broken > max_reconnects:
                given_up = f"the worker's stream broke {broken} times"
                break
            if time.perf_counter() - t0 > timeout:
                if max_reconnects is not None:
                    given_up = f"not in agreement after {timeout:.0f} s"
                    break
                raise TimeoutError(f"worker did not agree within {timeout} s: {status}")
            st = client.status()
            status = next((w for w in st.workers if w.worker_id == WORKER_ID), None)
            if status is not None and status.connected:
                records = [
                    r for r in status.repairs if r.ns == ns and r.detected_unix >= start_unix
                ]
                settled = all(r.outcome not in ("localizing", "repairing") for r in records)
                # Keys repaired and the digest agrees. The record's outcome is reported
                # as the controller gives it ("verified" expected).
                repaired = any(r.key_count > 0 for r in records)
                if (
                    status.digest == "agree"
                    and status.applied_rev == head
                    and settled
                    and (repaired or not expect_repair)
                ):
                    agree_s = time.perf_counter() - t0
                    break
                if any(r.outcome == "gave up" for r in records):
                    raise RuntimeError(f"the controller gave up repairing: {records}")
            if not snapshot_allowed and SNAPSHOT_APPLIED in log.read_text(errors="replace"):
                raise RuntimeError(f"the worker was sent a snapshot:\n{log.read_text()[-3000:]}")
            time.sleep(0.05)
        cpu = cpu_seconds(proc.pid)
        peak = rss_mb(proc.pid)
        if given_up:
            st = client.status()
            status = next((w for w in st.workers if w.worker_id == WORKER_ID), None)
            if status is not None:
                records = [r for r in status.repairs if r.detected_unix >= start_unix]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            exit_code = proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            exit_code = proc.wait()
    text = log.read_text(errors="replace")
    marks: dict[str, float] = {}
    for line in text.splitlines():
        if "applied revision" in line and "opened" not in marks:
            marks["opened"] = log_time(line) - start_unix
        elif " connected to " in line and "connected" not in marks:
            marks["connected"] = log_time(line) - start_unix
    attempts = []
    if controller_log is not None:
        for line in controller_log.read_text(errors="replace").splitlines():
            m = ATTEMPT.search(line)
            if m and log_time(line) >= start_unix - 0.01:
                attempts.append(
                    {
                        "at_s": log_time(line) - start_unix,
                        "keys": int(m.group(1)),
                        "round_trips": int(m.group(2)),
                        "descent_bytes": int(m.group(3)),
                    }
                )
    counts = orjson.loads(counts_file.read_bytes()) if counts_file.exists() else {}
    reconcile_kinds = ("received:query", "received:repair", "sent:answer")
    out = {
        "converged": not given_up,
        "given_up": given_up,
        "elapsed_s": time.perf_counter() - t0,
        "reconnects": text.count(" connected to ") - 1,
        "stream_errors": text.count("INTERNAL"),
        "exit_code": exit_code,
        "start_to_agree_s": agree_s,
        "marks": marks,
        "records": [
            {
                "reason": r.reason,
                "detected_s": r.detected_unix - start_unix,
                "key_count": r.key_count,
                "keys": list(r.keys),
                "round_trips": r.round_trips,
                "bytes": r.bytes,
                "outcome": r.outcome,
                "seconds": r.seconds,
            }
            for r in records
        ],
        "round_trips": sum(r.round_trips for r in records),
        "bytes": sum(r.bytes for r in records),
        "key_count": sum(r.key_count for r in records),
        "repair_seconds": sum(r.seconds for r in records),
        "attempts": attempts,
        "wire": counts,
        "wire_bytes": sum(counts.get(k, [0, 0])[1] for k in reconcile_kinds),
        "snapshot_bytes_received": counts.get("received:chunk", [0, 0])[1],
        "digest": status.digest if status is not None else "",
        "applied_rev": status.applied_rev if status is not None else 0,
        "worker_cpu_s": cpu,
        "worker_peak_rss_mb": peak,
        "log_snapshot_applied": SNAPSHOT_APPLIED in text,
        "log_kept_replica": "keeping the replica" in text,
    }
    if records:
        out["detect_s"] = min(r.detected_unix for r in records) - start_unix
        if "connected" in marks:
            out["connect_to_detect_s"] = out["detect_s"] - marks["connected"]
    if exit_code != 0:
        raise RuntimeError(f"worker exited {exit_code} after SIGTERM:\n{text[-3000:]}")
    return out


def relist(client: Client, ns: str) -> dict[str, Any]:
    """A full snapshot of ns through the API: bytes and time to receive it."""
    t0 = time.perf_counter()
    size = entries = chunks = 0
    for chunk in client.snapshot([ns], chunk_size=SNAPSHOT_CHUNK):
        size += chunk.ByteSize()
        entries += len(chunk.entries)
        chunks += 1
    return {
        "bytes": size,
        "entries": entries,
        "chunks": chunks,
        "seconds": time.perf_counter() - t0,
    }


# ---------------------------------------------------------------- scenarios


def cases(ks: list[int], single: list[str]) -> list[tuple[int, str]]:
    out: list[tuple[int, str]] = []
    for k in ks:
        if k == 1:
            out += [(1, kind) for kind in single]
        else:
            out.append((k, "mix"))
    return out


def run_case(
    controller: Serve,
    args: argparse.Namespace,
    base: Path,
    state_dir: Path,
    head: int,
    k: int,
    kind: str,
    rng: random.Random,
    tag: str,
    *,
    measure_answer: bool,
) -> dict[str, Any]:
    """Drift k keys offline, run the worker until the controller has repaired
    them (or gives up on it), check what was repaired."""
    ns = NAMESPACE
    d = drift(state_dir, ns, args.keys, k, kind, rng, tag, measure_answer=measure_answer)
    undo = d.pop("undo")
    cpu0, machine = controller.cpu(), MachineLoad()
    with Client(controller.address, timeout=120) as client:
        res = run_worker(
            client,
            ns,
            state_dir,
            base / f"drift-worker-{tag}.log",
            head,
            expect_repair=True,
            controller_log=controller.log,
            timeout=args.case_timeout,
            max_reconnects=1,
        )
    res["controller_cpu_s"] = controller.cpu() - cpu0
    res["machine"] = machine.finish()
    res.update(k=k, kind=kind, drift=d, controller_silence_s=controller.silence_s)
    problems = []
    if not res["converged"]:
        problems.append(f"did not converge: {res['given_up']}")
        undo_drift(state_dir, undo)
    else:
        if res["key_count"] != k:
            problems.append(f"{res['key_count']} keys repaired, {k} drifted")
        if len(res["records"]) != 1:
            problems.append(f"{len(res['records'])} repair records")
        outcomes = [x["outcome"] for x in res["records"]]
        if any(o != "verified" for o in outcomes):
            problems.append(f"record outcome {outcomes} (digest agrees)")
    if res["log_snapshot_applied"]:
        problems.append("the worker applied a snapshot")
    res["problems"] = problems
    return res


def run_drift(args: argparse.Namespace, base: Path, console: Console) -> dict[str, Any]:
    data, state_dir = base / "drift-controller", base / "drift-worker"
    ns, keys = NAMESPACE, args.keys
    out: dict[str, Any] = {"keys": keys}
    if getattr(args, "reuse", False) and (data / DB_FILE).exists():
        # A previous round repaired the replica back to the store: both still agree.
        store = SQLiteStore(data / DB_FILE)
        out["build_store"] = {"keys": keys, "head": store.head_rev, "seconds": 0.0}
        out["build_replica"] = {"rev": store.head_rev, "keys": keys, "seconds": 0.0}
        store.close()
    else:
        out["build_store"] = build_store(data, ns, keys)
        out["build_replica"] = build_replica(data, state_dir, ns)
    head = out["build_store"]["head"]
    console.print(
        f"drift: {keys:,} keys built in {out['build_store']['seconds']:.1f} s "
        f"(store) + {out['build_replica']['seconds']:.1f} s (replica), head {head}"
    )
    t0 = time.perf_counter()
    out["trie"] = trie_shape(keys)
    out["trie"]["seconds"] = time.perf_counter() - t0
    runs: list[dict[str, Any]] = []
    out["runs"] = runs
    out["controllers"] = []
    rng = random.Random(args.seed)
    starts = 0

    def serve(silence: float | None) -> Serve:
        nonlocal starts
        starts += 1
        extra = [] if silence is None else ["--silence", f"{silence:g}"]
        c = Serve(data, base / f"drift-controller-{starts}.log", extra)
        console.print(f"controller started in {c.start_s:.1f} s {' '.join(extra)}")
        return c

    def stop(c: Serve) -> None:
        code = c.stop()
        out["controllers"].append(
            {"silence_s": c.silence_s, "start_s": c.start_s, "exit_code": code}
        )
        if code != 0:
            raise RuntimeError(f"controller exited {code}:\n{c.log_tail()}")

    def show(r: int, res: dict[str, Any]) -> None:
        problems = res["problems"]
        console.print(
            f"round {r + 1} k={res['k']} ({res['kind']}, --silence "
            f"{res['controller_silence_s']:g}): {res['round_trips']} round trips, "
            f"{res['bytes']:,} bytes (wire {res['wire_bytes']:,}), "
            f"{res['repair_seconds'] * 1e3:.0f} ms detect->verified, "
            f"start->agree {res['start_to_agree_s']:.2f} s"
            + (f" [red]{'; '.join(problems)}[/red]" if problems else "")
        )

    controller = serve(None)
    out["controller_start_s"] = controller.start_s
    try:
        todo = cases(args.k, args.single)
        for r in range(args.rounds):
            for n, (k, kind) in enumerate(todo):
                tag = f"r{r}-k{k}-{kind}"
                first = r == 0 and not runs
                res = run_case(
                    controller, args, base, state_dir, head, k, kind, rng, tag, measure_answer=first
                )
                if first:
                    out["worker_answer_cost"] = res["drift"].pop("answer_cost")
                res["round"] = r
                runs.append(res)
                show(r, res)
                if res["converged"] or not args.retry_silence:
                    continue
                # The same case again, with the controller tolerating a longer silence.
                stop(controller)
                controller = serve(args.retry_silence)
                res = run_case(
                    controller,
                    args,
                    base,
                    state_dir,
                    head,
                    k,
                    kind,
                    rng,
                    tag + "-silence",
                    measure_answer=False,
                )
                res["round"] = r
                runs.append(res)
                show(r, res)
                if r + 1 < args.rounds or n + 1 < len(todo):
                    stop(controller)
                    controller = serve(None)
            with Client(controller.address, timeout=120) as client:
                relisted = relist(client, ns)
                out["final_head"] = client.status().head_rev
            relisted["round"] = r
            out.setdefault("relist", []).append(relisted)
            console.print(
                f"round {r + 1} re-list: {relisted['bytes']:,} bytes, "
                f"{relisted['entries']:,} entries in {relisted['seconds']:.2f} s"
            )
    finally:
        stop(controller)
    out["controller_exit_code"] = max(c["exit_code"] for c in out["controllers"])
    return out


def away_commands(
    keys: int, fraction: float, rng: random.Random
) -> tuple[list[Command], dict[str, int]]:
    """1% of the keys change: a third updated, a third deleted, a third created."""
    changed = max(3, round(keys * fraction))
    picked = rng.sample(range(keys), changed - changed // 3)
    n_update = changed // 3 + (changed % 3 > 0)
    ops: list[Any] = []
    for i in picked[:n_update]:
        ops.append(Put(AWAY_NAMESPACE, key_name(i), make_value(i, gen=1)))
    for i in picked[n_update:]:
        ops.append(Delete(AWAY_NAMESPACE, key_name(i)))
    for j in range(changed // 3):
        ops.append(Put(AWAY_NAMESPACE, key_name(keys + j), make_value(keys + j, gen=1)))
    rng.shuffle(ops)
    commands = [
        Command(ops[a : a + AWAY_OPS_PER_COMMAND]) for a in range(0, len(ops), AWAY_OPS_PER_COMMAND)
    ]
    kinds = {"updated": n_update, "deleted": len(picked) - n_update, "created": changed // 3}
    return commands, kinds


def run_away(args: argparse.Namespace, base: Path, console: Console) -> dict[str, Any]:
    data, state_dir = base / "away-controller", base / "away-worker"
    ns, keys = AWAY_NAMESPACE, args.away_keys
    out: dict[str, Any] = {"keys": keys, "fraction": args.away_fraction, "controllers": []}
    out["build_store"] = build_store(data, ns, keys)
    out["build_replica"] = build_replica(data, state_dir, ns)
    rev = out["build_store"]["head"]
    console.print(
        f"away: {keys:,} keys built in {out['build_store']['seconds']:.1f} s "
        f"+ {out['build_replica']['seconds']:.1f} s, worker replica at revision {rev}"
    )
    controllers = 0

    def serve(silence: float | None) -> Serve:
        nonlocal controllers
        controllers += 1
        extra = [] if silence is None else ["--silence", f"{silence:g}"]
        return Serve(data, base / f"away-controller-{controllers}.log", extra)

    def stop(c: Serve) -> None:
        code = c.stop()
        out["controllers"].append({"silence_s": c.silence_s, "exit_code": code})
        if code != 0:
            raise RuntimeError(f"controller exited {code}:\n{c.log_tail()}")

    def back(controller: Serve, head: int, name: str) -> dict[str, Any]:
        """The stopped worker comes back; how it gets to head."""
        cpu0, machine = controller.cpu(), MachineLoad()
        with Client(controller.address, timeout=120) as client:
            res = run_worker(
                client,
                ns,
                state_dir,
                base / f"away-worker-{name}.log",
                head,
                expect_repair=True,
                controller_log=controller.log,
                timeout=args.case_timeout,
                max_reconnects=1,
            )
        res["controller_cpu_s"] = controller.cpu() - cpu0
        res["controller_silence_s"] = controller.silence_s
        res["machine"] = machine.finish()
        problems = []
        if res["log_snapshot_applied"]:
            raise RuntimeError("the returning worker was sent a snapshot, not reconciled")
        if not res["log_kept_replica"]:
            problems.append("no reconcile resync in the worker's log")
        if not res["converged"]:
            problems.append(f"did not converge: {res['given_up']}")
        else:
            outcomes = [x["outcome"] for x in res["records"]]
            if any(o != "verified" for o in outcomes):
                problems.append(f"record outcome {outcomes} (digest agrees)")
            if res["key_count"] != out["changes"]["keys"]:
                problems.append(
                    f"{res['key_count']} keys repaired, {out['changes']['keys']} changed"
                )
        res["problems"] = problems
        console.print(
            f"away (serve --silence {controller.silence_s:g}): back by reconciliation: "
            f"{res['bytes']:,} bytes (wire {res['wire_bytes']:,}), {res['round_trips']} round "
            f"trips, start->agree {res['start_to_agree_s']:.2f} s"
            + (f" [red]{'; '.join(problems)}[/red]" if problems else "")
        )
        return res

    controller = serve(None)
    rng = random.Random(args.seed + 1)
    try:
        with Client(controller.address, timeout=120) as client:
            # The worker is in step before it goes away (no repair expected).
            out["before"] = run_worker(
                client, ns, state_dir, base / "away-worker-before.log", rev, expect_repair=False
            )
            if out["before"]["records"]:
                raise RuntimeError(
                    f"the offline replica needed repairs: {out['before']['records']}"
                )
            # Kept to bring the same worker back again if the first return fails.
            shutil.copytree(state_dir, base / "away-worker-stopped")
            commands, kinds = away_commands(keys, args.away_fraction, rng)
            t0 = time.perf_counter()
            for outcome in client.commit_stream(iter(commands)):
                if isinstance(outcome, Exception):
                    raise outcome
            head = client.status().head_rev
            compacted = client.compact(head)
        out["changes"] = {
            **kinds,
            "keys": sum(kinds.values()),
            "commands": len(commands),
            "from_rev": rev,
            "head": head,
            "compacted_rev": compacted,
            "seconds": time.perf_counter() - t0,
        }
        console.print(
            f"away: worker stopped at revision {rev}; {sum(kinds.values()):,} keys changed "
            f"({kinds}) in {len(commands)} commands, compacted to {compacted}"
        )
        out["reconcile"] = back(controller, head, "back")
        if not out["reconcile"]["converged"] and args.retry_silence:
            stop(controller)
            controller = serve(args.retry_silence)
            shutil.rmtree(state_dir)
            shutil.copytree(base / "away-worker-stopped", state_dir)
            out["reconcile_retry"] = back(controller, head, "back-silence")
        with Client(controller.address, timeout=120) as client:
            out["snapshot"] = relist(client, ns)
            console.print(
                f"away: full snapshot {out['snapshot']['bytes']:,} bytes "
                f"in {out['snapshot']['seconds']:.2f} s"
            )
            cpu0 = controller.cpu()
            boot = run_worker(
                client,
                ns,
                base / "away-worker-fresh",
                base / "away-worker-fresh.log",
                head,
                expect_repair=False,
                snapshot_allowed=True,
            )
        boot["controller_cpu_s"] = controller.cpu() - cpu0
        if not boot["log_snapshot_applied"]:
            raise RuntimeError("the fresh worker did not bootstrap from a snapshot")
        out["bootstrap"] = boot
        console.print(
            f"away: a fresh worker bootstraps in {boot['start_to_agree_s']:.2f} s "
            f"({boot['snapshot_bytes_received']:,} snapshot bytes)"
        )
    finally:
        stop(controller)
    out["controller_exit_code"] = max(c["exit_code"] for c in out["controllers"])
    return out


# ---------------------------------------------------------------- report


def med(values: list[float], fmt: str, scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    m = statistics.median(values)
    if len(values) == 1 or min(values) == max(values):
        return f"{m:{fmt}}"
    return f"{m:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def descents(res: dict[str, Any]) -> str:
    """Round trips of each descent behind a record: the ones that ended in a repair
    (controller log), then what the record counts beyond them (a re-check that
    found nothing, or a descent cut short)."""
    done = [a["round_trips"] for a in res["attempts"]]
    rest = res["round_trips"] - sum(done)
    return " + ".join([str(n) for n in done] + ([f"({rest})"] if rest else [])) or "-"


def summarize_drift(drift: dict[str, Any]) -> list[dict[str, Any]]:
    relist_bytes = statistics.median(x["bytes"] for x in drift["relist"])
    relist_s = statistics.median(x["seconds"] for x in drift["relist"])
    rows = []
    seen: list[tuple[int, str, float, bool]] = []
    for run in drift["runs"]:
        case = (run["k"], run["kind"], run["controller_silence_s"], run["converged"])
        if case not in seen:
            seen.append(case)
    for k, kind, silence, converged in seen:
        runs = [
            x
            for x in drift["runs"]
            if (x["k"], x["kind"], x["controller_silence_s"], x["converged"])
            == (k, kind, silence, converged)
        ]
        rows.append(
            {
                "k": k,
                "kind": kind,
                "silence_s": silence,
                "converged": converged,
                "given_up": [x["given_up"] for x in runs],
                "reconnects": [x["reconnects"] for x in runs],
                "elapsed_s": [x["elapsed_s"] for x in runs],
                "runs": len(runs),
                "round_trips": [x["round_trips"] for x in runs],
                "descents": [descents(x) for x in runs],
                "first_descent_bytes": [
                    x["attempts"][0]["descent_bytes"] if x["attempts"] else 0 for x in runs
                ],
                "bytes": [x["bytes"] for x in runs],
                "wire_bytes": [x["wire_bytes"] for x in runs],
                "seconds": [x["repair_seconds"] for x in runs],
                "connect_to_detect_s": [x.get("connect_to_detect_s", float("nan")) for x in runs],
                "start_to_agree_s": [x["start_to_agree_s"] for x in runs],
                "worker_open_s": [x["marks"].get("opened", float("nan")) for x in runs],
                "relist_bytes": relist_bytes,
                "relist_s": relist_s,
                "bytes_ratio": [x["bytes"] / relist_bytes for x in runs],
                "time_ratio": [x["repair_seconds"] / relist_s for x in runs],
            }
        )
    return rows


def targets(rows: list[dict[str, Any]], away: dict[str, Any] | None) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if not row["converged"]:
            out.append(
                {
                    "target": f"k={row['k']}: repaired (no numeric target)",
                    "figure": f"did not converge: {row['given_up'][0]} "
                    f"(serve --silence {row['silence_s']:g})",
                    "met": False,
                }
            )
            continue
        if row["silence_s"] != 10:
            continue
        if row["k"] == 1:
            worst_rt, worst_b = max(row["round_trips"]), max(row["bytes"])
            out.append(
                {
                    "target": f"k=1 ({KIND_LABEL[row['kind']]}): <= {TARGET_K1_ROUND_TRIPS} "
                    f"round trips and <= {TARGET_K1_BYTES} bytes",
                    "figure": f"{worst_rt} round trips, {worst_b:,} bytes (worst of {row['runs']})",
                    "met": worst_rt <= TARGET_K1_ROUND_TRIPS and worst_b <= TARGET_K1_BYTES,
                }
            )
        if row["k"] == 10:
            worst_s, worst_r = max(row["seconds"]), max(row["bytes_ratio"])
            out.append(
                {
                    "target": f"k=10: < {TARGET_K10_SECONDS:.0f} s detect->verified and "
                    f"< {TARGET_K10_RATIO:.0%} of the re-list's bytes",
                    "figure": f"{worst_s * 1e3:.0f} ms, {worst_r:.3%} (worst of {row['runs']})",
                    "met": worst_s < TARGET_K10_SECONDS and worst_r < TARGET_K10_RATIO,
                }
            )
    if away is not None:
        for res in (away["reconcile"], away.get("reconcile_retry")):
            if res is None:
                continue
            ratio = res["bytes"] / away["snapshot"]["bytes"]
            settings = f"serve --silence {res['controller_silence_s']:g}"
            if not res["converged"]:
                out.append(
                    {
                        "target": f"away past compaction ({settings}): brought to head",
                        "figure": f"did not converge: {res['given_up']}",
                        "met": False,
                    }
                )
                continue
            out.append(
                {
                    "target": f"away past compaction ({settings}): < {TARGET_AWAY_RATIO:.0%} "
                    "of a full snapshot's bytes",
                    "figure": f"{ratio:.2%} ({res['bytes']:,} of {away['snapshot']['bytes']:,})",
                    "met": ratio < TARGET_AWAY_RATIO,
                }
            )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keys", type=int, default=None, help="drift namespace size (default 1,000,000)"
    )
    parser.add_argument(
        "--k",
        type=lambda s: [int(x) for x in s.split(",")],
        default=None,
        help="differing keys, comma-separated (default 1,10,100,1000)",
    )
    parser.add_argument(
        "--single",
        type=lambda s: [x for x in s.split(",") if x],
        default=list(KINDS),
        help="kinds of drift measured for k=1 (default wrong,missing,extra)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="repetitions of the drift cases (default 1)"
    )
    parser.add_argument(
        "--away-keys", type=int, default=None, help="away namespace size (default 200,000)"
    )
    parser.add_argument(
        "--away-fraction", type=float, default=0.01, help="share changed while away"
    )
    parser.add_argument("--only", choices=("drift", "away"), default=None)
    parser.add_argument(
        "--case-timeout",
        type=float,
        default=90,
        help="give up on a drift case after this many seconds (default 90)",
    )
    parser.add_argument(
        "--retry-silence",
        type=float,
        default=60,
        help="a drift case that did not converge runs again with `serve --silence S` "
        "(default 60; 0: no retry)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="100,000 keys, k = 1,10; away: 50,000 keys"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="where data dirs live")
    parser.add_argument("--keep", action="store_true", help="keep logs and data directories")
    parser.add_argument(
        "--json", type=Path, default=None, help="default bench/results/reconcile-DATE.json"
    )
    args = parser.parse_args(argv)
    if args.keys is None:
        args.keys = 100_000 if args.quick else 1_000_000
    if args.k is None:
        args.k = [1, 10] if args.quick else [1, 10, 100, 1000]
    if args.away_keys is None:
        args.away_keys = 50_000 if args.quick else 200_000
    if any(kind not in KINDS for kind in args.single):
        parser.error(f"--single takes {','.join(KINDS)}")
    if args.json is None:
        today = datetime.date.today().isoformat()
        suffix = "-quick" if args.quick else ""
        args.json = Path(__file__).resolve().parent / "results" / f"reconcile-{today}{suffix}.json"

    console = Console(width=None if sys.stdout.isatty() else 200)
    base = Path(tempfile.mkdtemp(prefix="statesync-reconcile-", dir=args.dir))
    t_start = time.perf_counter()
    machine = MachineLoad()
    drift = away = None
    failed = True
    try:
        if args.only != "away":
            drift = run_drift(args, base, console)
        if args.only != "drift":
            away = run_away(args, base, console)
        failed = False
    finally:
        if failed or args.keep:
            console.print(f"logs and data kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)
    runtime = time.perf_counter() - t_start

    rows: list[dict[str, Any]] = []
    if drift is not None:
        rows = summarize_drift(drift)
        of = f", median (min-max) of {args.rounds} rounds" if args.rounds > 1 else ""
        table = Table(
            title=f"Drift in a {args.keys:,}-key namespace ({VALUE_BYTES}-byte values){of}"
        )
        for col in (
            "k",
            "drift",
            "round trips",
            "descents",
            "bytes",
            "wire bytes",
            "detect->verified",
            "re-list bytes",
            "bytes ratio",
            "re-list time",
            "time ratio",
            "connect->detect",
            "start->agree",
        ):
            table.add_column(col, justify="left" if col == "drift" else "right")
        for row in rows:
            label = KIND_LABEL[row["kind"]]
            if row["silence_s"] != 10:
                label += f", serve --silence {row['silence_s']:g}"
            if not row["converged"]:
                table.add_row(
                    str(row["k"]),
                    label,
                    f"DID NOT CONVERGE: {row['given_up'][0]} in {row['elapsed_s'][0]:.0f} s "
                    "(worker dropped after 10 s of silence, descent restarts)",
                )
                continue
            table.add_row(
                str(row["k"]),
                label,
                med(row["round_trips"], ".0f"),
                " / ".join(row["descents"]),
                med(row["bytes"], ",.0f"),
                med(row["wire_bytes"], ",.0f"),
                med(row["seconds"], ".0f", 1e3) + " ms",
                f"{row['relist_bytes']:,.0f}",
                med(row["bytes_ratio"], ".4%"),
                f"{row['relist_s']:.2f} s",
                med(row["time_ratio"], ".3f"),
                med(row["connect_to_detect_s"], ".0f", 1e3) + " ms",
                med(row["start_to_agree_s"], ".2f") + " s",
            )
        console.print(table)
        shape = drift["trie"]
        console.print(
            "one wrong key, by where it falls in the trie: "
            + ", ".join(
                f"{rt} round trips for {share:.1%} of keys"
                for rt, share in shape["round_trips_share"].items()
            )
            + f"; trie nodes holding more than {LEAF_LIMIT} keys, by depth: "
            + ", ".join(
                f"{d + 1}: {over:,} of {n:,} (largest {big})"
                for d, (over, n, big) in enumerate(
                    zip(
                        shape["nodes_over_limit_by_depth"],
                        shape["nodes_by_depth"],
                        shape["max_keys_by_depth"],
                        strict=True,
                    )
                )
            )
        )
    if drift is not None and drift.get("worker_answer_cost"):
        c = drift["worker_answer_cost"]
        console.print(
            f"worker side, {args.keys:,} keys: first leaves() builds the bucket index in "
            f"{c['index_build_s']:.2f} s; answering one node by prefix length 2/3/4 nibbles: "
            f"{c['answer_2_nibbles_s'] * 1e3:.1f} / {c['answer_3_nibbles_s'] * 1e3:.1f} / "
            f"{c['answer_4_nibbles_s'] * 1e3:.2f} ms"
        )
    if away is not None:
        snap, boot = away["snapshot"], away["bootstrap"]
        table = Table(
            title=f"Worker away past compaction: {away['keys']:,} keys, "
            f"{sum(away['changes'][x] for x in ('updated', 'deleted', 'created')):,} changed"
        )
        for col in (
            "how it gets back to head",
            "bytes",
            "wire bytes",
            "vs snapshot",
            "round trips",
            "descents",
            "repair",
            "start->agree",
        ):
            table.add_column(col, justify="left" if col.startswith("how") else "right")
        for rec in (away["reconcile"], away.get("reconcile_retry")):
            if rec is None:
                continue
            label = "reconciliation (kept replica, descent + repair)"
            if rec["controller_silence_s"] != 10:
                label += f", serve --silence {rec['controller_silence_s']:g}"
            if not rec["converged"]:
                table.add_row(
                    label,
                    f"DID NOT CONVERGE: {rec['given_up']} in {rec['elapsed_s']:.0f} s "
                    "(worker dropped after 10 s of silence, descent restarts)",
                )
                continue
            table.add_row(
                label,
                f"{rec['bytes']:,}",
                f"{rec['wire_bytes']:,}",
                f"{rec['bytes'] / snap['bytes']:.2%}",
                str(rec["round_trips"]),
                descents(rec),
                f"{rec['repair_seconds']:.2f} s",
                f"{rec['start_to_agree_s']:.2f} s",
            )
        table.add_row(
            "full snapshot (Client.snapshot, receive only)",
            f"{snap['bytes']:,}",
            "",
            "100%",
            "",
            "",
            "",
            f"{snap['seconds']:.2f} s",
        )
        table.add_row(
            "fresh worker bootstrapping from a snapshot",
            f"{boot['snapshot_bytes_received']:,}",
            "",
            f"{boot['snapshot_bytes_received'] / snap['bytes']:.0%}",
            "",
            "",
            "",
            f"{boot['start_to_agree_s']:.2f} s",
        )
        console.print(table)
        for rec in (away["reconcile"], away.get("reconcile_retry")):
            if rec is None:
                continue
            console.print(
                f"returning worker (serve --silence {rec['controller_silence_s']:g}): replica "
                f"open {rec['marks'].get('opened', float('nan')):.2f} s, connected "
                f"{rec['marks'].get('connected', float('nan')):.2f} s, detected "
                f"{rec.get('detect_s', float('nan')):.2f} s after start; "
                f"{len(rec['records'])} repair record(s), {rec['reconnects']} reconnect(s); "
                f"wire by kind {rec['wire']}"
            )
            for a in rec["attempts"]:
                console.print(
                    f"  descent ending {a['at_s']:.2f} s after start: {a['keys']} key(s), "
                    f"{a['round_trips']} round trips, {a['descent_bytes']:,} descent bytes"
                )
    checks = targets(rows, away)
    for t in checks:
        colour = "green" if t["met"] else "red"
        console.print(
            f"[{colour}]{'met' if t['met'] else 'MISSED'}[/{colour}]: {t['target']}: {t['figure']}"
        )
    problems = [p for run in (drift or {}).get("runs", []) for p in run["problems"]]
    if away is not None:
        problems += away["reconcile"]["problems"]
        problems += away.get("reconcile_retry", {}).get("problems", [])
    for p in problems:
        console.print(f"[red]problem: {p}[/red]")
    console.print(f"runtime {runtime:.0f} s")
    cmd = "python bench/reconcile.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {
        "command": cmd.strip(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "git": git_describe(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "runtime_s": runtime,
        "machine": machine.finish(),
        "value_bytes": VALUE_BYTES,
        "puts_per_command": PUTS_PER_COMMAND,
        "leaf_limit": LEAF_LIMIT,
        "summary": rows,
        "targets": checks,
        "problems": problems,
        "drift": drift,
        "away": away,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(
        orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
