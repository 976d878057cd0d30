"""Drift and "back after compaction", statesync only: k drifted keys found
and repaired by digest descent, next to a full re-list; and a worker away
while 1% of its namespace changed and history was compacted, brought back by
reconciliation, next to a full snapshot.

Drift: the controller's store is built in this process (`SQLiteStore.commit_many`,
commands of 10,000 puts of ~80-byte values), the worker's replica offline from
the store's snapshot (same records, so the same digest at the head). The
controller runs as `statesync serve --ready-file` in its own process. For each
case (k = 1 as a wrong value; larger k as a mix of wrong values, keys the
worker lacks and keys only the worker has), k keys of the replica drift
offline at its own revision, then `statesync worker` starts on it; the
controller detects the mismatch at an ACK, localizes it by descent, repairs
and verifies, and its repair records (`Client.status()`) give round trips,
bytes and seconds. Re-list: a full `Client.snapshot([ns])` of the namespace.

Away: a worker reaches the head and stops; 1% of the keys are updated,
deleted and created (a third each) and history is compacted to the head; the
worker comes back, gets a reconcile resync (its log must not say that the
snapshot replaced its replica) and is repaired by descent.

A case that does not converge (the worker's stream broke twice, or the case
timed out) is reported as such, its drift is undone, and it runs again on a
controller started with `serve --silence 60`, so that its cost is measured.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import random
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench._controller import (
    ChildProcess,
    MachineLoad,
    cpu_seconds,
    rss_mb,
    serve_argv,
    statesync_exe,
)
from statesync import Command, Delete, Put
from statesync.client import Client
from statesync.server.app import DB_FILE
from statesync.store.sqlite import SQLiteStore
from statesync.worker.replica import Entry, Replica

NAMESPACE = "recon"
AWAY_NAMESPACE = "away"
WORKER_ID = "recon-bench"
VALUE_BYTES = 80
PUTS_PER_COMMAND = 10_000
AWAY_OPS_PER_COMMAND = 10
SNAPSHOT_CHUNK = 2000  # what the sync stream sends a bootstrapping worker
KINDS = ("wrong", "missing", "extra")
SNAPSHOT_APPLIED = "replica replaced by the snapshot"  # the worker's log line


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
        if replica.digest(ns).root() == before:
            raise RuntimeError("drift did not change the replica's digest")
        count = replica.digest(ns).count
    finally:
        replica.close()
    return {
        "open_s": open_s,
        "seconds": time.perf_counter() - t0,
        "rev": rev,
        "kinds": dict(Counter(kinds)),
        "worker_keys": count,
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
            serve_argv(data, "127.0.0.1:0", ready, *extra),
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
    timeout: float = 300,
    max_reconnects: int | None = None,
) -> dict[str, Any]:
    """Start `statesync worker` on state_dir, wait until the controller says its
    digest agrees at `head` (after keys were repaired, when a repair is
    expected), stop it, and collect its repair records and its log. With
    `max_reconnects`, a worker whose stream broke more often than that, or
    that did not agree within `timeout`, is stopped and reported as not
    converged (`converged` False) instead of raising."""
    start_unix = time.time()
    t0 = time.perf_counter()
    stderr = open(log, "wb")  # noqa: SIM115 - the child has its own copy
    proc = subprocess.Popen(
        [
            statesync_exe(),
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
) -> dict[str, Any]:
    """Drift k keys offline, run the worker until the controller has repaired
    them (or gives up on it), check what was repaired."""
    ns = NAMESPACE
    d = drift(state_dir, ns, args.keys, k, kind, rng, tag)
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
            f"{res['bytes']:,} bytes, "
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
                res = run_case(controller, args, base, state_dir, head, k, kind, rng, tag)
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
            f"{res['bytes']:,} bytes, {res['round_trips']} round "
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
            f"(a snapshot of {out['snapshot']['bytes']:,} bytes)"
        )
    finally:
        stop(controller)
    out["controller_exit_code"] = max(c["exit_code"] for c in out["controllers"])
    return out
