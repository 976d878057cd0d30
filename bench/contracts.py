"""What write-time schema validation costs a commit.

The same realistic documents (16 properties: patterned strings, an enum,
bounded integers, a `date-time`, a nested address object, a bounded array of
tags; ~525 bytes canonical, every one valid) are committed to a namespace
without a schema ("plain") and to one with the schema registered ("schema").
Both variants run on stores that hold the same contract (registered for the
"schema" namespace), so they differ only in whether the written namespace has
one. Each round runs:

  micro
      The validator alone: `orjson.loads` of each value's canonical bytes
      (the gate parses a value once to validate it) and
      `SchemaValidator.check` on the parsed document (`is_valid`), in
      microseconds per value (best of 5 passes over 2,000 values); the check
      of an invalid document, which collects all of its 7 violations; and
      compiling the schema.
  store-plain, store-schema
      SQLiteStore in this process (real file, default settings: WAL,
      synchronous=FULL), 16 threads, each committing one single-put command
      at a time (`store.commit`). CPU per command: the whole process, and
      the committer thread alone (/proc/self/task). Wall time inside
      `ContractGate.admit` and `SchemaValidator.check` on the committer
      (patched with two perf_counter calls each): validation in situ.
  grpc-plain, grpc-schema
      The controller in its own process (bench/_controller.py), one
      `Client.commit_stream` from this process, 256 commands in flight, one
      put per command. CPU: the controller process, per command.
  reject
      One writer, in-process: a refused command (7 violations, nothing
      written, no fsync) against a valid one (one fsync each), alternately.

Variants alternate so that the noise of this shared machine reaches both,
and their order flips every round (A B, B A, A B, ...): runs later in a
round tended to be a few percent slower, which a fixed order would charge to
the second variant. The table shows the
median (min-max) of the rounds, and "schema / no schema" is the median of
the per-round ratios (each from two adjacent runs). Every commit is checked
(no error, revisions increasing, head revision = commands sent), and an
invalid put must be refused in the "schema" namespace after each timed run.

    python bench/contracts.py            # 3 rounds, < 2 minutes -> results/contracts-DATE.json
    python bench/contracts.py --quick    # 1 small round, < 30 s, writes nothing
    python bench/contracts.py --rounds 5 --store-commands 20000 --json /tmp/c.json
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _controller import CLK_TCK, ControllerProcess, MachineLoad, git_describe, pct
from commit import fsync_cost

from statesync import Command, Put, SQLiteStore
from statesync.client import Client
from statesync.contracts.registry import ContractGate, SchemaValidator, register_request
from statesync.core.canonical import canonical_bytes
from statesync.core.commands import SetContract
from statesync.core.errors import SchemaViolationError, StatesyncError

HERE = Path(__file__).resolve().parent
PLAIN, TYPED = "plain", "schema"
WRITERS = 16
WINDOW = 256
KEYS_PER_WRITER = 500

# ---------------------------------------------------------------- the schema and values

STATUSES = ["draft", "active", "backorder", "discontinued", "archived"]
CITIES = ["Hamburg", "Rotterdam", "Antwerp", "Gdansk", "Le Havre", "Valencia", "Genoa"]
COUNTRIES = ["DE", "NL", "BE", "PL", "FR", "ES", "IT"]
TAGS = ["fragile", "bulk", "cold-chain", "hazmat", "oversize", "priority", "returnable", "eco"]

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "inventory item",
    "type": "object",
    "additionalProperties": False,
    "required": [
        "id",
        "sku",
        "name",
        "status",
        "quantity",
        "price_cents",
        "currency",
        "updated_at",
        "warehouse",
        "tags",
    ],
    "properties": {
        "id": {"type": "string", "format": "uuid"},
        "sku": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{4}$"},
        "name": {"type": "string", "minLength": 1, "maxLength": 120},
        "description": {"type": "string", "maxLength": 2000},
        "status": {"enum": STATUSES},
        "quantity": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "reserved": {"type": "integer", "minimum": 0, "maximum": 1_000_000},
        "price_cents": {"type": "integer", "minimum": 0, "maximum": 100_000_000},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
        "weight_g": {"type": "integer", "exclusiveMinimum": 0, "maximum": 5_000_000},
        "rating_x10": {"type": "integer", "minimum": 0, "maximum": 50},
        "active": {"type": "boolean"},
        "updated_at": {"type": "string", "format": "date-time"},
        "revision": {"type": "integer", "minimum": 1},
        "warehouse": {
            "type": "object",
            "additionalProperties": False,
            "required": ["street", "city", "postal_code", "country"],
            "properties": {
                "street": {"type": "string", "minLength": 1, "maxLength": 200},
                "city": {"type": "string", "minLength": 1, "maxLength": 100},
                "postal_code": {"type": "string", "pattern": "^[0-9A-Z -]{3,10}$"},
                "country": {"type": "string", "pattern": "^[A-Z]{2}$"},
                "dock": {"type": "integer", "minimum": 1, "maximum": 64},
            },
        },
        "tags": {
            "type": "array",
            "maxItems": 8,
            "uniqueItems": True,
            "items": {"type": "string", "pattern": "^[a-z][a-z-]{1,31}$"},
        },
    },
}


def make_item(i: int) -> dict[str, Any]:
    """A valid document for SCHEMA, the same for a given i in every variant.
    Integers only: a float would send both variants through the slower
    RFC 8785 encoder (statesync/core/canonical.py)."""
    letters = "".join(chr(65 + (i // 26**k) % 26) for k in range(3))
    return {
        "id": str(uuid.UUID(int=(i * 0x9E3779B97F4A7C15) % 2**128, version=4)),
        "sku": f"{letters}-{i % 10_000:04d}",
        "name": f"Stackable storage crate {i % 977}, 40 l",
        "description": "Polypropylene crate with reinforced corners; nests when empty. "
        f"Batch {i % 53}.",
        "status": STATUSES[i % len(STATUSES)],
        "quantity": (i * 37) % 5_000,
        "reserved": (i * 11) % 100,
        "price_cents": 199 + (i * 7919) % 250_000,
        "currency": ("EUR", "USD", "GBP", "PLN")[i % 4],
        "weight_g": 250 + (i * 13) % 20_000,
        "rating_x10": i % 51,
        "active": i % 7 != 0,
        "updated_at": f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:{i % 60:02d}:"
        f"{(i * 7) % 60:02d}.{i % 1000:03d}Z",
        "revision": 1 + i % 40,
        "warehouse": {
            "street": f"{1 + i % 240} Harbour Road",
            "city": CITIES[i % len(CITIES)],
            "postal_code": f"{10_000 + (i * 31) % 89_999}",
            "country": COUNTRIES[i % len(COUNTRIES)],
            "dock": 1 + i % 64,
        },
        "tags": [TAGS[(i + k) % len(TAGS)] for k in range(1 + i % 5)],
    }


def make_invalid(i: int) -> tuple[dict[str, Any], int]:
    """An invalid document and its number of violations."""
    doc = make_item(i)
    doc["sku"] = "abc-12"  # pattern
    doc["status"] = "sold"  # enum
    doc["quantity"] = -1  # minimum
    doc["updated_at"] = "yesterday"  # format
    doc["warehouse"]["country"] = "Germany"  # nested pattern
    doc["tags"] = [f"tag-{c}" for c in "abcdefghij"]  # maxItems
    doc["colour"] = "blue"  # additionalProperties
    return doc, 7


def contract_command() -> Command:
    return Command([SetContract(TYPED, register_request(SCHEMA, by="bench"))])


# ---------------------------------------------------------------- machine


def thread_cpu(native_id: int) -> float:
    """utime + stime of one thread of this process."""
    stat = Path(f"/proc/self/task/{native_id}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def wait_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to max_wait s) for the rest of the machine to use < threshold cores."""
    started = time.perf_counter()
    while time.perf_counter() - started < max_wait:
        load = MachineLoad()
        time.sleep(1.0)
        if float(load.finish()["busy_cpu_s"]) < threshold:
            break
    return time.perf_counter() - started


def remove_store(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# ---------------------------------------------------------------- in-process store


class GateTimer:
    """Wall time spent in `ContractGate.admit` (on the committer thread: the
    contract lookup for every put, plus parsing and checking the value when
    its namespace has a schema), and within it in `SchemaValidator.check`.
    Costs two perf_counter calls per command and per check."""

    def __init__(self) -> None:
        self.admit_s = self.check_s = 0.0
        self.admits = self.checks = 0
        self._admit, self._check = ContractGate.admit, SchemaValidator.check

    def __enter__(self) -> GateTimer:
        orig_admit, orig_check = self._admit, self._check

        def admit(gate: ContractGate, *args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig_admit(gate, *args, **kwargs)
            finally:
                self.admit_s += time.perf_counter() - t
                self.admits += 1

        def check(validator: SchemaValidator, key: str, doc: object) -> None:
            t = time.perf_counter()
            try:
                orig_check(validator, key, doc)
            finally:
                self.check_s += time.perf_counter() - t
                self.checks += 1

        ContractGate.admit = admit  # type: ignore[method-assign]
        SchemaValidator.check = check  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        ContractGate.admit = self._admit  # type: ignore[method-assign]
        SchemaValidator.check = self._check  # type: ignore[method-assign]

    def reading(self) -> tuple[float, int, float, int]:
        return self.admit_s, self.admits, self.check_s, self.checks


def store_run(base: Path, name: str, ns: str, n: int, values: list[dict]) -> dict[str, Any]:
    per = n // WRITERS
    plan = [
        [
            Command([Put(ns, f"w{w:02d}/item-{i % KEYS_PER_WRITER:03d}", values[w * per + i])])
            for i in range(per)
        ]
        for w in range(WRITERS)
    ]
    path = base / f"{name}.sqlite"
    lat: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    start_line = threading.Barrier(WRITERS + 1)

    def writer(commands: list[Command]) -> None:
        mine = []
        start_line.wait()
        for command in commands:
            t = time.perf_counter()
            try:
                store.commit(command)
            except StatesyncError as exc:
                with lock:
                    errors.append(repr(exc))
                continue
            mine.append(time.perf_counter() - t)
        with lock:
            lat.extend(mine)

    with GateTimer() as timer, SQLiteStore(path) as store:
        store.commit(contract_command())
        store.commit(Command([Put(ns, "warm-up", values[-1])]))  # compiles the validator
        committer = next(t for t in threading.enumerate() if t.name.startswith("statesync-"))
        assert committer.native_id is not None
        threads = [threading.Thread(target=writer, args=(p,)) for p in plan]
        for t in threads:
            t.start()
        load = MachineLoad()
        cpu0, com0 = time.process_time(), thread_cpu(committer.native_id)
        gate0 = timer.reading()
        start_line.wait()
        started = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - started
        cpu, com = time.process_time() - cpu0, thread_cpu(committer.native_id) - com0
        gate_s, admits, check_s, checks = (
            a - b for a, b in zip(timer.reading(), gate0, strict=True)
        )
        machine = load.finish()
        head = store.head_rev
        refused = refuse_check_store(store)
    remove_store(path)
    sent = per * WRITERS
    if errors:
        raise RuntimeError(f"{name}: {len(errors)} failed commits, first: {errors[0]}")
    if head != sent + 2:
        raise RuntimeError(f"{name}: head revision {head} after {sent} + 2 commands")
    if not refused:
        raise RuntimeError(f"{name}: an invalid value was accepted in {TYPED!r}")
    if admits != sent or checks != (sent if ns == TYPED else 0):
        raise RuntimeError(f"{name}: {admits} admitted and {checks} checked of {sent} commands")
    return {
        "commands": sent,
        "wall_s": wall,
        "commands_s": sent / wall,
        "p50_ms": pct(lat, 0.50) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "max_ms": max(lat) * 1e3,
        "cpu_s": cpu,
        "cpu_us_per_command": cpu / sent * 1e6,
        "committer_cpu_s": com,
        "committer_us_per_command": com / sent * 1e6,
        "gate_us_per_command": gate_s / sent * 1e6,
        "check_us_per_command": check_s / sent * 1e6,
        "cores": cpu / wall,
        "other_cores": max(0.0, float(machine["busy_cpu_s"]) - cpu) / wall,
    }


def refuse_check_store(store: SQLiteStore) -> bool:
    """Whether an invalid value is refused in TYPED (it must be accepted in PLAIN)."""
    doc, _ = make_invalid(0)
    try:
        store.commit(Command([Put(TYPED, "invalid", doc)]))
    except SchemaViolationError:
        typed = True
    else:
        typed = False
    store.commit(Command([Put(PLAIN, "invalid", doc)]))  # no schema: accepted
    return typed


def reject_run(base: Path, n: int) -> dict[str, Any]:
    """One writer: refused commands (7 violations each) against valid ones."""
    path = base / "reject.sqlite"
    bad = [make_invalid(i) for i in range(n)]
    good = [make_item(i) for i in range(n)]
    refused_lat, valid_lat = [], []
    with SQLiteStore(path) as store:
        store.commit(contract_command())
        store.commit(Command([Put(TYPED, "warm-up", good[0])]))
        for i in range(n):  # alternate: a refused one, a valid one
            doc, expected = bad[i]
            command = Command([Put(TYPED, f"item-{i % KEYS_PER_WRITER:03d}", doc)])
            t = time.perf_counter()
            try:
                store.commit(command)
            except SchemaViolationError as exc:
                refused_lat.append(time.perf_counter() - t)
                found = len(exc.violations)
            else:
                raise RuntimeError("an invalid value was committed")
            if found != expected:
                raise RuntimeError(f"{found} violations, expected {expected}")
            command = Command([Put(TYPED, f"item-{i % KEYS_PER_WRITER:03d}", good[i])])
            t = time.perf_counter()
            store.commit(command)
            valid_lat.append(time.perf_counter() - t)
        head = store.head_rev
    remove_store(path)
    if head != n + 2:
        raise RuntimeError(f"reject: head revision {head} after {n} valid + 2 commands")
    return {
        "commands": n,
        "refused_p50_ms": pct(refused_lat, 0.50) * 1e3,
        "refused_p99_ms": pct(refused_lat, 0.99) * 1e3,
        "valid_p50_ms": pct(valid_lat, 0.50) * 1e3,
        "valid_p99_ms": pct(valid_lat, 0.99) * 1e3,
    }


# ---------------------------------------------------------------- through gRPC


def grpc_run(base: Path, name: str, ns: str, n: int, values: list[dict]) -> dict[str, Any]:
    commands = [
        Command([Put(ns, f"item-{i % (KEYS_PER_WRITER * WRITERS):04d}", values[i])])
        for i in range(n)
    ]
    data = base / name
    ctl = ControllerProcess(data, base / f"{name}.log")
    lat: list[float] = []
    errors: list[str] = []
    try:
        with Client(ctl.address) as client:
            client.register_schema(TYPED, SCHEMA, by="bench")
            client.put(ns, "warm-up", values[-1])  # connects, compiles the validator
            slots = threading.Semaphore(WINDOW)
            sent = [0.0] * n

            def feed():  # runs on gRPC's request thread; WINDOW commands in flight
                for i, command in enumerate(commands):
                    slots.acquire()
                    sent[i] = time.perf_counter()
                    yield command

            load = MachineLoad()
            ctl0, cpu0 = ctl.cpu(), time.process_time()
            started = time.perf_counter()
            replies, last_rev = 0, 0
            for i, outcome in enumerate(client.commit_stream(feed())):
                now = time.perf_counter()
                slots.release()
                replies += 1
                if isinstance(outcome, StatesyncError):
                    errors.append(repr(outcome))
                elif outcome.rev <= last_rev or outcome.replayed:
                    errors.append(f"unexpected reply {outcome}")
                else:
                    lat.append(now - sent[i])
                    last_rev = outcome.rev
            wall = time.perf_counter() - started
            ctl_cpu, client_cpu = ctl.cpu() - ctl0, time.process_time() - cpu0
            machine = load.finish()
            head = client.status().head_rev
            try:
                client.put(TYPED, "invalid", make_invalid(0)[0])
            except SchemaViolationError:
                refused = True
            else:
                refused = False
    finally:
        rc = ctl.stop()
    if errors or replies != n:
        raise RuntimeError(f"{name}: {len(errors)} errors, {replies} replies to {n} commands")
    if head != n + 2:
        raise RuntimeError(f"{name}: head revision {head} after {n} + 2 commands")
    if not refused:
        raise RuntimeError(f"{name}: an invalid value was accepted")
    if rc != 0:
        raise RuntimeError(f"{name}: controller exited {rc}\n{ctl.log_tail()}")
    shutil.rmtree(data)
    (base / f"{name}.log").unlink()
    return {
        "commands": n,
        "wall_s": wall,
        "commands_s": n / wall,
        "p50_ms": pct(lat, 0.50) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "max_ms": max(lat) * 1e3,
        "controller_cpu_s": ctl_cpu,
        "controller_us_per_command": ctl_cpu / n * 1e6,
        "controller_cores": ctl_cpu / wall,
        "client_cores": client_cpu / wall,
        "other_cores": max(0.0, float(machine["busy_cpu_s"]) - ctl_cpu - client_cpu) / wall,
        "controller_exit": rc,
    }


# ---------------------------------------------------------------- the validator alone


def micro_run(values: list[dict], repeats: int = 5) -> dict[str, Any]:
    """Best of `repeats` passes over all values, in µs per value."""
    validator = SchemaValidator(TYPED, 1, SCHEMA)
    blobs = [canonical_bytes(v) for v in values]
    docs = [orjson.loads(b) for b in blobs]
    bad = [orjson.loads(canonical_bytes(make_invalid(i)[0])) for i in range(len(values) // 10)]

    def best(fn) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            count = fn()
            times.append((time.perf_counter() - t) / count * 1e6)
        return min(times)

    def loads() -> int:
        for b in blobs:
            orjson.loads(b)
        return len(blobs)

    def check() -> int:
        for doc in docs:
            validator.check("k", doc)
        return len(docs)

    def reject() -> int:
        for doc in bad:
            try:
                validator.check("k", doc)
            except SchemaViolationError as exc:
                assert len(exc.violations) == 7, exc.violations
            else:
                raise AssertionError("an invalid document passed")
        return len(bad)

    def compile_() -> int:
        for _ in range(20):
            SchemaValidator(TYPED, 1, SCHEMA)
        return 20

    return {
        "values": len(blobs),
        "value_bytes_mean": statistics.fmean(len(b) for b in blobs),
        "loads_us": best(loads),
        "check_us": best(check),
        "reject_us": best(reject),
        "compile_us": best(compile_),
    }


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--store-commands", type=int, default=15_000, help="commands per store run (15,000)"
    )
    parser.add_argument(
        "--grpc-commands", type=int, default=10_000, help="commands per gRPC run (10,000)"
    )
    parser.add_argument(
        "--reject-commands", type=int, default=300, help="refused + valid commands (300 each)"
    )
    parser.add_argument("--quick", action="store_true", help="1 small round, < 30 s")
    parser.add_argument("--dir", type=Path, default=None, help="where stores live (a real disk)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default bench/results/contracts-DATE.json; none with --quick)",
    )
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=3.0,
        help="before each pair of runs, wait up to this many s for other load to stop (3)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.store_commands, args.grpc_commands = 1, 3_000, 2_000
        args.reject_commands, args.wait_quiet = 100, 0.0
    if args.json is None and not args.quick:
        args.json = HERE / "results" / f"contracts-{datetime.date.today().isoformat()}.json"

    console = Console(stderr=True, width=200)
    values = [make_item(i) for i in range(max(args.store_commands, args.grpc_commands) + 1)]
    validator = SchemaValidator(TYPED, 1, SCHEMA)
    for v in values:  # the values are what the benchmark claims they are
        validator.check("k", orjson.loads(canonical_bytes(v)))
    base = Path(tempfile.mkdtemp(prefix="statesync-contracts-bench-", dir=args.dir or Path.cwd()))
    fsync_s = fsync_cost(base)
    console.print(f"raw fsync on {base}: {fsync_s * 1e3:.3f} ms; {os.cpu_count()} cpus")

    runs: dict[str, list[dict[str, Any]]] = {
        k: [] for k in ("store-plain", "store-schema", "grpc-plain", "grpc-schema")
    }
    micro: list[dict[str, Any]] = []
    reject: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for r in range(args.rounds):
            micro.append(micro_run(values[:2_000]))
            console.print(
                f"round {r + 1}/{args.rounds} micro: loads {micro[-1]['loads_us']:.2f} µs, "
                f"check {micro[-1]['check_us']:.2f} µs, reject {micro[-1]['reject_us']:.1f} µs"
            )
            for kind, fn, n in (
                ("store", store_run, args.store_commands),
                ("grpc", grpc_run, args.grpc_commands),
            ):
                waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
                pair = [("plain", PLAIN), ("schema", TYPED)]
                order = pair if r % 2 == 0 else pair[::-1]  # A B, B A, A B, ...
                for position, (variant, ns) in enumerate(order):
                    name = f"{kind}-{variant}"
                    res = fn(base, f"{name}-{r}", ns, n, values)
                    res["waited_quiet_s"], res["position_in_pair"] = waited, position
                    runs[name].append(res)
                    cpu = res.get("cpu_us_per_command", res.get("controller_us_per_command"))
                    console.print(
                        f"round {r + 1}/{args.rounds} {name}: {res['commands_s']:,.0f} commands/s,"
                        f" p50 {res['p50_ms']:.2f} ms, p99 {res['p99_ms']:.1f} ms,"
                        f" {cpu:.0f} CPU µs/command, others {res['other_cores']:.2f} cores"
                    )
            reject.append(reject_run(base, args.reject_commands))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    elapsed = time.perf_counter() - started

    def med(rows: list[dict[str, Any]], field: str) -> float:
        return statistics.median(x[field] for x in rows)

    def cell(rows: list[dict[str, Any]], field: str, fmt: str) -> str:
        vals = [x[field] for x in rows]
        if len(vals) == 1:
            return f"{vals[0]:{fmt}}"
        return f"{statistics.median(vals):{fmt}} ({min(vals):{fmt}}-{max(vals):{fmt}})"

    def paired(kind: str, field: str) -> float:
        """Median over rounds of schema/plain, each ratio from adjacent runs."""
        a, b = runs[f"{kind}-plain"], runs[f"{kind}-schema"]
        return statistics.median(y[field] / x[field] for x, y in zip(a, b, strict=True))

    table = Table(
        title=f"Commits with and without a schema, 1 put of ~{micro[0]['value_bytes_mean']:.0f} "
        f"bytes per command, fsync on, {args.rounds} round(s) (median, min-max)"
    )
    cols = ("scenario", "commands/s", "p50 ms", "p99 ms", "CPU µs/cmd", "other cores")
    for col in (*cols, "committer CPU µs/cmd", "in gate µs/cmd", "in check µs/cmd"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    labels = {
        "store": f"store in-process, {WRITERS} threads",
        "grpc": f"gRPC commit_stream, {WINDOW} in flight",
    }
    store_fields = ("committer_us_per_command", "gate_us_per_command", "check_us_per_command")
    summary: dict[str, dict[str, float]] = {}
    ratios: dict[str, float] = {}
    for kind in ("store", "grpc"):
        cpu_field = "cpu_us_per_command" if kind == "store" else "controller_us_per_command"
        fields = ("commands_s", "p50_ms", "p99_ms", cpu_field, "other_cores")
        if kind == "store":
            fields += store_fields
        for variant in ("plain", "schema"):
            rows = runs[f"{kind}-{variant}"]
            table.add_row(
                f"{labels[kind]}, {'no schema' if variant == 'plain' else 'schema'}",
                cell(rows, "commands_s", ",.0f"),
                cell(rows, "p50_ms", ".2f"),
                cell(rows, "p99_ms", ".1f"),
                cell(rows, cpu_field, ",.0f"),
                cell(rows, "other_cores", ".2f"),
                *(cell(rows, f, ".1f") if kind == "store" else "-" for f in store_fields),
            )
            summary[f"{kind}-{variant}"] = {k: med(rows, k) for k in fields}
        for field in ("commands_s", "p50_ms", "p99_ms", cpu_field):
            ratios[f"{kind} {field}"] = paired(kind, field)
        table.add_row(
            "  schema / no schema (median of the rounds' ratios)",
            f"{ratios[f'{kind} commands_s']:.2f}x",
            f"{ratios[f'{kind} p50_ms']:.2f}x",
            f"{ratios[f'{kind} p99_ms']:.2f}x",
            f"{ratios[f'{kind} {cpu_field}']:.2f}x",
            "",
            f"{paired(kind, store_fields[0]):.2f}x" if kind == "store" else "",
            "",
            "",
            end_section=True,
        )
    Console(width=200).print(table)
    print(
        "CPU: the store row is this whole process (16 writers and the committer), the gRPC "
        "row the controller process; other cores = CPU used by everything else on the machine "
        "(interference); gate/check = wall time on the committer thread"
    )

    m = {k: med(micro, k) for k in ("loads_us", "check_us", "reject_us", "compile_us")}
    validate_us = m["loads_us"] + m["check_us"]
    plain, typed = summary["store-plain"], summary["store-schema"]
    store_cpu, committer_cpu = plain["cpu_us_per_command"], plain["committer_us_per_command"]
    grpc_cpu = summary["grpc-plain"]["controller_us_per_command"]
    in_gate = typed["gate_us_per_command"] - plain["gate_us_per_command"]
    shares = {
        "store_process_cpu": validate_us / store_cpu,
        "store_committer_cpu": validate_us / committer_cpu,
        "controller_cpu": validate_us / grpc_cpu,
        "in_gate_store_process_cpu": in_gate / store_cpu,
    }
    rej = {k: med(reject, k) for k in reject[0] if k != "commands"}
    micro_table = Table(title="Validation alone (best of 5 passes over 2,000 values; median)")
    micro_table.add_column("what", justify="left")
    micro_table.add_column("µs per value", justify="right")
    micro_table.add_column("", justify="left")
    micro_table.add_row("orjson.loads of the canonical bytes", cell(micro, "loads_us", ".2f"))
    micro_table.add_row("SchemaValidator.check (is_valid), valid", cell(micro, "check_us", ".2f"))
    micro_table.add_row(
        "validation = loads + check",
        f"{validate_us:.2f}",
        f"{shares['store_process_cpu']:.1%} of a store commit's CPU (no schema), "
        f"{shares['store_committer_cpu']:.1%} of its committer's; "
        f"{shares['controller_cpu']:.1%} of the controller's CPU per streamed command",
    )
    micro_table.add_row(
        "SchemaValidator.check in the store runs (schema)",
        f"{typed['check_us_per_command']:.2f}",
        "the same documents, between SQLite writes: colder caches than the loop above",
    )
    micro_table.add_row(
        "in the gate during the store runs, schema - no schema",
        f"{in_gate:.1f}",
        f"{shares['in_gate_store_process_cpu']:.1%} of a store commit's CPU (wall time, "
        "committer thread)",
    )
    micro_table.add_row(
        "check of an invalid value, 7 violations collected",
        cell(micro, "reject_us", ".1f"),
        f"{m['reject_us'] / m['check_us']:.0f}x a valid one",
    )
    micro_table.add_row(
        "compiling the schema (once per version)", cell(micro, "compile_us", ",.0f")
    )
    micro_table.add_row(
        "refused command, one writer in-process, p50 / p99",
        f"{rej['refused_p50_ms'] * 1e3:,.0f} / {rej['refused_p99_ms'] * 1e3:,.0f}",
        f"nothing written, no fsync; a valid one: {rej['valid_p50_ms'] * 1e3:,.0f} / "
        f"{rej['valid_p99_ms'] * 1e3:,.0f} µs",
    )
    Console(width=200).print(micro_table)
    print(
        f"raw fsync: {fsync_s * 1e3:.3f} ms; python {sys.version.split()[0]}; "
        f"{os.cpu_count()} cpus; value {micro[0]['value_bytes_mean']:.0f} bytes canonical; "
        f"{elapsed:.0f} s"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(
            orjson.dumps(
                {
                    "date": datetime.date.today().isoformat(),
                    "git": git_describe(),
                    "python": sys.version.split()[0],
                    "cpus": os.cpu_count(),
                    "fsync_ms": fsync_s * 1e3,
                    "writers": WRITERS,
                    "window": WINDOW,
                    "schema": SCHEMA,
                    "example_value": values[0],
                    "elapsed_s": elapsed,
                    "rounds": runs,
                    "micro": micro,
                    "reject": reject,
                    "median": summary,
                    "micro_median": m,
                    "reject_median": rej,
                    "ratios_schema_over_plain": ratios,
                    "validation_us": validate_us,
                    "in_gate_us": in_gate,
                    "validation_share": shares,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
