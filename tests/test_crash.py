"""Crash durability: SIGKILL a real writer process mid-flight, many times over.

`crash_writer.py` commits from several threads (so group commit batches
them), logging each command's intent before committing and its
acknowledgement (command_id, rev, ops) after `commit` returns, both fsynced.
Each cycle kills it with SIGKILL after a random amount of progress, reopens
the database in this process and checks what the store promises:

- every acknowledged command is in the log at its acknowledged revision and
  replays (same command_id) as `replayed=True` with that revision;
- every revision 1..head holds exactly one command's complete op list (no
  partial command, no gap, no command twice), and replaying the log through
  an independent model reproduces every change record and the head state;
- the hash chain verifies and each namespace's digest equals one computed from
  scratch over the head state.

The next cycle restarts the writer on the same database, continuing it. The
`.lock` beside the database is released by the kernel when the writer dies.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from crash_writer import NAMESPACES, apply_op, to_command

from statesync.core.canonical import canonical_bytes
from statesync.core.digest import NamespaceDigest, value_hash
from statesync.core.errors import StoreInUseError
from statesync.core.model import ChangeOp
from statesync.store.sqlite import SQLiteStore

WRITER = Path(__file__).with_name("crash_writer.py")
CYCLES = 20
THREADS = 4
ACK_TIMEOUT_S = 20.0
POLL_S = 0.002


@dataclass(frozen=True, slots=True)
class Ack:
    command_id: str
    rev: int
    ops: list[dict[str, Any]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Complete lines of a JSON-lines file; a torn last line (no newline) is ignored."""
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    # Everything before the last newline is complete: each line is one write + fsync.
    return [orjson.loads(line) for line in lines[:-1]]


def count_lines(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def writer_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SS_SYNC", None)  # a benchmarking knob that weakens synchronous=FULL
    src = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def start_writer(db: Path, work: Path, cycle: int, seed: int) -> subprocess.Popen[bytes]:
    err = (work / f"writer-{cycle}.err").open("wb")
    try:
        return subprocess.Popen(
            [
                sys.executable,
                str(WRITER),
                "--db",
                str(db),
                "--intents",
                str(work / f"intents-{cycle}.jsonl"),
                "--acks",
                str(work / f"acks-{cycle}.jsonl"),
                "--seed",
                str(seed),
                "--threads",
                str(THREADS),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=writer_env(),
        )
    finally:
        err.close()


def wait_for_acks(proc: subprocess.Popen[bytes], acks: Path, at_least: int, err: Path) -> None:
    """Poll the ack log until it holds `at_least` lines; fail if the writer dies or stalls."""
    deadline = time.monotonic() + ACK_TIMEOUT_S
    while count_lines(acks) < at_least:
        if proc.poll() is not None:
            pytest.fail(
                f"writer exited with {proc.returncode} before {at_least} acks:\n"
                + err.read_text(errors="replace")
            )
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(
                f"writer made {count_lines(acks)} of {at_least} acks in {ACK_TIMEOUT_S}s:\n"
                + err.read_text(errors="replace")
            )
        time.sleep(POLL_S)


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    assert proc.poll() is None, "the writer stopped on its own"
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=10) == -signal.SIGKILL


def all_changes(store: SQLiteStore) -> list[Any]:
    out: list[Any] = []
    after = 0
    while batch := store.changes(after, limit=500):
        out += batch
        after = batch[-1].rev
    return out


def check_store(db: Path, work: Path, cycles_run: int) -> dict[str, int]:
    """Reopen the database after a SIGKILL and check everything it promised."""
    intents: dict[str, list[dict[str, Any]]] = {}
    acks: list[Ack] = []
    for cycle in range(cycles_run):
        for line in read_jsonl(work / f"intents-{cycle}.jsonl"):
            assert line["command_id"] not in intents, "the writer reused a command_id"
            intents[line["command_id"]] = line["ops"]
        acks += [Ack(**line) for line in read_jsonl(work / f"acks-{cycle}.jsonl")]
    current_acks = read_jsonl(work / f"acks-{cycles_run - 1}.jsonl")

    with SQLiteStore(db) as store:
        head = store.head_rev
        changes = all_changes(store)
        by_rev: dict[int, list[Any]] = defaultdict(list)
        for change in changes:
            by_rev[change.rev].append(change)

        # Dense revisions: the writer never plans a no-op, so every revision has changes.
        assert sorted(by_rev) == list(range(1, head + 1)), "gap or extra revision in the log"

        # Each revision is exactly one whole command, replayed through an independent model.
        model: dict[tuple[str, str], Any] = {}
        meta: dict[tuple[str, str], tuple[int, int]] = {}  # (create_rev, mod_rev)
        versions: dict[tuple[str, str], int] = {}
        rev_of: dict[str, int] = {}
        expected_at: dict[tuple[int, str, str], bytes | None] = {}
        for rev in range(1, head + 1):
            rev_changes = by_rev[rev]
            ids = {c.command_id for c in rev_changes}
            assert len(ids) == 1, f"revision {rev} mixes commands {ids}"
            (command_id,) = ids
            assert command_id in intents, f"revision {rev}: {command_id!r} was never intended"
            assert command_id not in rev_of, f"{command_id!r} committed twice"
            rev_of[command_id] = rev
            ops = intents[command_id]
            assert [c.seq for c in rev_changes] == list(range(len(ops))), (
                f"revision {rev} holds {len(rev_changes)} of {len(ops)} ops (partial command)"
            )
            for op, change in zip(ops, rev_changes, strict=True):
                where = (op["ns"], op["key"])
                assert (change.namespace, change.key) == where
                before = meta.get(where)
                assert change.prev_mod_rev == (0 if before is None else before[1])
                apply_op(model, op)
                if op["op"] == "delete":
                    assert change.op is ChangeOp.DELETE and change.value is None
                    del meta[where]
                    versions.pop(where)
                    expected_at[(rev, *where)] = None
                else:
                    value = canonical_bytes(model[where])
                    assert change.op is ChangeOp.PUT
                    assert change.value == value, f"revision {rev} {where}: wrong value"
                    create = rev if before is None else before[0]
                    versions[where] = versions.get(where, 0) + 1
                    assert (change.create_rev, change.version) == (create, versions[where])
                    meta[where] = (create, rev)
                    expected_at[(rev, *where)] = value

        # Every acknowledged command survived, at the revision it was acknowledged with.
        for ack in acks:
            assert rev_of.get(ack.command_id) == ack.rev, (
                f"acknowledged command {ack.command_id!r} at revision {ack.rev} was lost "
                f"(found at {rev_of.get(ack.command_id)})"
            )
            assert ack.ops == intents[ack.command_id]

        # ...and its command_id replays its original outcome without writing anything.
        replays = store.commit_many([to_command(a.ops, a.command_id) for a in acks])
        for ack, outcome in zip(acks, replays, strict=True):
            assert not isinstance(outcome, Exception), outcome
            assert (outcome.rev, outcome.replayed) == (ack.rev, True)
        assert store.head_rev == head
        assert len(all_changes(store)) == len(changes)

        # Point reads at this cycle's acknowledged revisions see the ops' effects.
        for line in current_acks:
            for op in line["ops"]:
                record = store.get(op["ns"], op["key"], rev=line["rev"])
                expected = expected_at[(line["rev"], op["ns"], op["key"])]
                assert (None if record is None else record.value) == expected
                if record is not None:
                    assert record.mod_rev == line["rev"]

        report = store.verify_chain()
        assert (report.to_rev, report.changes) == (head, len(changes))
        if changes:
            assert report.head_hash == changes[-1].hash

        # Head state and digests, against the model and from scratch.
        with store.snapshot() as snap:
            assert snap.rev == head
            snap_state = {(r.namespace, r.key): r.value for chunk in snap.chunks() for r in chunk}
        for ns in NAMESPACES:
            records = store.range(ns, limit=1_000_000)
            state = {r.key: r.value for r in records}
            expected_state = {k: canonical_bytes(v) for (n, k), v in model.items() if n == ns}
            assert state == expected_state, f"namespace {ns!r}: head state differs from the log"
            for r in records:
                assert (r.create_rev, r.mod_rev, r.version) == (
                    *meta[(ns, r.key)],
                    versions[(ns, r.key)],
                )
            scratch = NamespaceDigest.from_items((k, value_hash(v)) for k, v in state.items())
            assert store.digest(ns) == scratch.root(), f"namespace {ns!r}: digest is wrong"
            if ns in snap.digests:
                assert snap.digests[ns] == scratch.root()
        assert snap_state == {w: canonical_bytes(v) for w, v in model.items()}

    return {
        "head": head,
        "acked": len(acks),
        "unacked_committed": len(rev_of) - len(acks),
        "unacked_lost": len(intents) - len(rev_of),
    }


def test_sigkill_loses_no_acknowledged_command(tmp_path: Path) -> None:
    seed = int(os.environ.get("STATESYNC_CRASH_SEED", "20240601"))
    rng = random.Random(seed)
    db = tmp_path / "data" / "state.sqlite"
    summary: dict[str, int] = {}
    for cycle in range(CYCLES):
        proc = start_writer(db, tmp_path, cycle, seed * 100 + cycle)
        try:
            acks = tmp_path / f"acks-{cycle}.jsonl"
            wait_for_acks(proc, acks, rng.randint(3, 60), tmp_path / f"writer-{cycle}.err")
            if cycle == 0:
                # While the writer lives, its lock keeps a second process out.
                with pytest.raises(StoreInUseError) as in_use:
                    SQLiteStore(db)
                assert in_use.value.holder_pid == str(proc.pid)
        finally:
            if proc.poll() is None:
                sigkill(proc)
        summary = check_store(db, tmp_path, cycle + 1)
    assert summary["acked"] >= CYCLES * 3
    # Shown with -rA or on failure: how much in-flight work each kill caught.
    print(f"crash seed {seed}: {summary}")
