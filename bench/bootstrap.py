"""Bootstrap: how long a new worker takes to get a full replica from a snapshot.

Each round starts a fresh controller in its own process (stopped with SIGTERM,
exit code checked) and loads `--keys` keys of 100-byte canonical JSON values
(bench/commit.py's documents) into namespace "boot" through
`Client.commit_stream`, 500 puts per command (the load is timed too). The
controller is then restarted on the same data (SIGTERM, exit 0, start again),
so the scenarios see the memory a controller serving these keys needs, not
what the load left behind. Then, with every worker in its own fresh process
(its imports are not timed), the SDK's `Worker(...).start()` then
`worker.wait_for(head)`:

  bootstrap  fresh state_dir: hello from revision 0 -> Resync -> snapshot
             chunks -> digests verified -> replica persisted (one SQLite
             transaction) -> applied_rev == head
  resume     the same worker restarted with its state_dir: opening the
             replica (load every key, check its digests) is timed apart
             from start -> applied (already at head: nothing to receive)
  compacted  worker stopped, 1,000 more keys written, Client.compact(head),
             worker restarted with its state_dir: its revision is compacted,
             so it resyncs from a full snapshot again

The worker is instrumented by subclassing (bench only): the time of the first
message (the Resync notice), of the last snapshot chunk, and after the
snapshot is applied, plus the protobuf size of every message received. Peak
RSS: the worker process's VmHWM; the controller's VmHWM is reset (clear_refs)
just before each scenario, so it is the peak during that scenario.

    python bench/bootstrap.py                  # 200,000 keys, 3 rounds
    python bench/bootstrap.py --quick          # 20,000 keys
    python bench/bootstrap.py --keys 500000 --rounds 1 --json out.json
"""

from __future__ import annotations

import argparse
import datetime
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _controller import (
    VALUE_BYTES,
    ControllerProcess,
    MachineLoad,
    Profiler,
    git_describe,
    make_value,
    rss_mb,
)

from statesync import Command, Committed, Put
from statesync.client import Client

NAMESPACE = "boot"
PUTS_PER_COMMAND = 500
EXTRA_KEYS = 1000
SCENARIOS = ("bootstrap", "resume", "compacted")


def key_name(i: int) -> str:
    return f"key-{i:07d}"


# ---------------------------------------------------------------- the worker process


def worker_process(address: str, state_dir: str, head: int, conn: Any, log: str) -> None:
    """Child: build an instrumented Worker when told to, time it to `head`."""
    import logging

    logging.basicConfig(
        filename=log, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    from statesync.worker import Worker

    class TimedWorker(Worker):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.marks: dict[str, float] = {}
            self.bytes_received = 0
            self.messages = 0
            self.snapshot_entries = 0

        async def _handle(self, reply: Any, snapshot: Any, outgoing: Any) -> Any:
            now = time.perf_counter()
            self.marks.setdefault("first_message", now)
            self.bytes_received += reply.ByteSize()
            self.messages += 1
            kind = reply.WhichOneof("msg")
            last = kind == "chunk" and reply.chunk.last
            if kind == "resync":
                self.marks["resync"] = now
            elif kind == "chunk":
                self.snapshot_entries += len(reply.chunk.entries)
                if last:
                    self.marks["last_chunk"] = now
            result = await super()._handle(reply, snapshot, outgoing)
            if last:
                self.marks["snapshot_applied"] = time.perf_counter()
            return result

    conn.send("ready")
    command = conn.recv()
    assert command == "go", command
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    worker = TimedWorker(
        address, worker_id="bootstrap-bench", namespaces=[NAMESPACE], state_dir=state_dir
    )
    opened = time.perf_counter()
    loaded_rev = worker.applied_rev
    worker.start()
    started = time.perf_counter()
    ok = worker.wait_for(head, timeout=600)
    applied = time.perf_counter()
    deadline = time.monotonic() + 10
    while not worker.connected and time.monotonic() < deadline:
        time.sleep(0.001)
    connected = time.perf_counter() if worker.connected else float("nan")
    cpu1 = time.process_time()
    worker.stop()
    stopped = time.perf_counter()
    marks = {k: v - started for k, v in worker.marks.items()}
    conn.send(
        {
            "ok": ok,
            "applied_rev": worker.applied_rev,
            "loaded_rev": loaded_rev,
            "open_s": opened - t0,
            "start_to_applied_s": applied - started,
            "total_s": applied - t0,
            "start_to_connected_s": connected - started,
            "stop_s": stopped - applied,
            "marks": marks,
            "bytes_received": worker.bytes_received,
            "messages": worker.messages,
            "snapshot_entries": worker.snapshot_entries,
            "resyncs": worker.resyncs,
            "reconnects": worker.reconnects,
            "cpu_s": cpu1 - cpu0,
            "peak_rss_mb": rss_mb(os.getpid(), "VmHWM"),
        }
    )


def run_worker(
    controller: ControllerProcess,
    state_dir: Path,
    head: int,
    log: Path,
    profile: Path | None = None,
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(
        target=worker_process,
        args=(controller.address, str(state_dir), head, child, str(log)),
        daemon=True,
    )
    proc.start()
    child.close()
    try:
        if parent.recv() != "ready":
            raise RuntimeError("worker process did not start")
        rss_start = controller.rss_mb()
        reset = controller.reset_peak_rss()
        cpu0 = controller.cpu()
        wall0 = time.perf_counter()
        machine = MachineLoad()
        profilers = []
        if profile is not None:
            profilers = [
                ("controller", Profiler(controller.pid, profile.with_suffix(".controller.txt"))),
                ("worker", Profiler(proc.pid, profile.with_suffix(".worker.txt"))),
            ]
            time.sleep(0.5)  # py-spy attaches
        parent.send("go")
        if not parent.poll(900):
            raise TimeoutError("worker process did not report")
        result = parent.recv()
        for _, prof in profilers:
            prof.stop()
        result["profile"] = {name: prof.summary() for name, prof in profilers}
        wall = time.perf_counter() - wall0
        result["controller_cpu_s"] = controller.cpu() - cpu0
        result["controller_peak_rss_mb"] = controller.peak_rss_mb()
        result["controller_peak_is_scenario"] = reset
        result["controller_rss_start_mb"] = rss_start
        result["wall_s"] = wall
        result["machine"] = machine.finish()
    finally:
        proc.join(60)
        if proc.is_alive():
            proc.kill()
            proc.join()
    if proc.exitcode != 0:
        raise RuntimeError(f"worker process exited {proc.exitcode}")
    return result


# ---------------------------------------------------------------- loading


def load(client: Client, first: int, count: int) -> tuple[float, int]:
    """Put keys [first, first+count) with 500 puts per command over one stream."""

    def commands() -> Any:
        for start in range(first, first + count, PUTS_PER_COMMAND):
            end = min(first + count, start + PUTS_PER_COMMAND)
            yield Command([Put(NAMESPACE, key_name(i), make_value(i)) for i in range(start, end)])

    started = time.perf_counter()
    outcomes = 0
    for outcome in client.commit_stream(commands()):
        if not isinstance(outcome, Committed):
            raise RuntimeError(f"load failed: {outcome!r}")
        outcomes += 1
    elapsed = time.perf_counter() - started
    expected = -(-count // PUTS_PER_COMMAND)
    if outcomes != expected:
        raise RuntimeError(f"{outcomes} outcomes for {expected} commands")
    return elapsed, outcomes


def entry_bytes(first: int, count: int) -> int:
    """ns + key + value bytes of keys [first, first+count)."""
    return sum(len(NAMESPACE) + len(key_name(i)) + VALUE_BYTES for i in range(first, first + count))


# ---------------------------------------------------------------- one round


def run_round(
    keys: int,
    base: Path,
    console: Console,
    r: int,
    profile: Path | None = None,
    keep: bool = False,
) -> dict[str, Any]:
    """Load into a fresh controller, restart it on the same data (so that its
    memory is what serving the keys costs, not what the load left behind), then
    the three worker scenarios."""
    data = base / f"controller-{r}"
    state_dir = base / f"worker-{r}"
    out: dict[str, Any] = {}
    controller = ControllerProcess(data, base / f"controller-{r}-load.log")
    try:
        with Client(controller.address, timeout=120) as client:
            cpu0 = controller.cpu()
            machine = MachineLoad()
            prof = None
            if profile is not None:
                prof = Profiler(controller.pid, profile / "load.controller.txt")
                time.sleep(0.5)
            load_s, commands = load(client, 0, keys)
            if prof is not None:
                prof.stop()
            head = client.status().head_rev
            out["load"] = {
                "keys": keys,
                "commands": commands,
                "seconds": load_s,
                "keys_per_s": keys / load_s,
                "controller_cpu_s": controller.cpu() - cpu0,
                "controller_peak_rss_mb": controller.peak_rss_mb(),
                "controller_rss_after_mb": controller.rss_mb(),
                "head": head,
                "machine": machine.finish(),
                "profile": {"controller": prof.summary()} if prof is not None else {},
            }
    finally:
        out["load_controller_exit_code"] = controller.stop(timeout=120)
    if out["load_controller_exit_code"] != 0:
        raise RuntimeError(f"controller exited {out['load_controller_exit_code']} after the load")
    console.print(
        f"round {r + 1}: loaded {keys:,} keys in {load_s:.2f} s ({keys / load_s:,.0f} keys/s), "
        f"head {head}; controller peak RSS {out['load']['controller_peak_rss_mb']:.0f} MiB, "
        f"{out['load']['controller_rss_after_mb']:.0f} MiB after"
    )

    controller = ControllerProcess(data, base / f"controller-{r}.log")
    try:
        out["controller_rss_restarted_mb"] = controller.rss_mb()
        with Client(controller.address, timeout=120) as client:
            res = run_worker(
                controller,
                state_dir,
                head,
                base / f"worker-{r}-bootstrap.log",
                profile and profile / "bootstrap.txt",
            )
            check(res, head, resync=True, name="bootstrap")
            res["keys"] = keys
            res["entry_bytes"] = entry_bytes(0, keys)
            out["bootstrap"] = res
            console.print(
                f"round {r + 1}: bootstrap {res['start_to_applied_s']:.2f} s, "
                f"{res['bytes_received'] / 2**20:.1f} MiB received"
            )

            res = run_worker(controller, state_dir, head, base / f"worker-{r}-resume.log")
            check(res, head, resync=False, name="resume")
            res["keys"] = keys
            out["resume"] = res
            console.print(
                f"round {r + 1}: resume: open {res['open_s']:.2f} s, "
                f"start->applied {res['start_to_applied_s'] * 1e3:.1f} ms"
            )

            load(client, keys, EXTRA_KEYS)
            head2 = client.status().head_rev
            compacted = client.compact(head2)
            res = run_worker(controller, state_dir, head2, base / f"worker-{r}-compacted.log")
            check(res, head2, resync=True, name="compacted")
            res["keys"] = keys + EXTRA_KEYS
            res["entry_bytes"] = entry_bytes(0, keys + EXTRA_KEYS)
            res["compacted_rev"] = compacted
            out["compacted"] = res
            console.print(f"round {r + 1}: compacted while away: {res['start_to_applied_s']:.2f} s")
            status = client.status()
            worker = next(w for w in status.workers if w.worker_id == "bootstrap-bench")
            out["final_status"] = {
                "applied_rev": worker.applied_rev,
                "digest": worker.digest,
                "head": status.head_rev,
            }
    finally:
        out["controller_exit_code"] = controller.stop(timeout=120)
    if not keep:
        shutil.rmtree(state_dir, ignore_errors=True)
        shutil.rmtree(data, ignore_errors=True)
    if out["controller_exit_code"] != 0:
        raise RuntimeError(
            f"controller exited {out['controller_exit_code']}:\n{controller.log_tail()}"
        )
    return out


def check(res: dict[str, Any], head: int, *, resync: bool, name: str) -> None:
    problems = []
    if not res["ok"] or res["applied_rev"] != head:
        problems.append(f"applied_rev {res['applied_rev']} != head {head}")
    if resync and (res["resyncs"] < 1 or "last_chunk" not in res["marks"]):
        problems.append(f"expected one snapshot, got resyncs={res['resyncs']}")
    if not resync and res["resyncs"]:
        problems.append(f"expected no snapshot, got resyncs={res['resyncs']}")
    res["problems"] = problems
    if problems:
        raise RuntimeError(f"{name}: " + "; ".join(problems))
    if res["reconnects"]:
        # Reaching head after a reconnect is correct but not what is measured: say so.
        res["problems"].append(f"{res['reconnects']} reconnect(s): see the worker log")


# ---------------------------------------------------------------- report


def med(values: list[float], fmt: str, scale: float = 1.0) -> str:
    values = [v * scale for v in values]
    m = statistics.median(values)
    if len(values) == 1:
        return f"{m:{fmt}}"
    return f"{m:{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


def summarize(
    rounds: list[dict[str, Any]],
) -> tuple[list[tuple[str, ...]], list[tuple[str, ...]], dict[str, Any]]:
    """Rows of the main table, rows of the phases table, and the medians."""

    def col(scenario: str, field: str) -> list[float]:
        return [r[scenario][field] for r in rounds]

    def mark(scenario: str, name: str) -> list[float]:
        return [r[scenario]["marks"].get(name, float("nan")) for r in rounds]

    rows: list[tuple[str, ...]] = []
    phases: list[tuple[str, ...]] = []
    summary: dict[str, Any] = {}
    load_s = col("load", "seconds")
    rows.append(
        (
            "load (commit_stream, 500 puts/command)",
            med(load_s, ".2f") + " s",
            med(col("load", "keys_per_s"), ",.0f") + " keys/s",
            "",
            "",
            med(col("load", "controller_peak_rss_mb"), ".0f")
            + " peak, "
            + med(col("load", "controller_rss_after_mb"), ".0f")
            + " after; restarted: "
            + med([r["controller_rss_restarted_mb"] for r in rounds], ".0f"),
        )
    )
    summary["load_s"] = statistics.median(load_s)
    summary["load_keys_per_s"] = statistics.median(col("load", "keys_per_s"))
    for sc in SCENARIOS:
        secs = col(sc, "start_to_applied_s")
        keys = [r[sc]["keys"] for r in rounds]
        if sc == "resume":
            totals = col(sc, "total_s")
            label = "resume: open replica + start -> applied"
            time_cell = med(col(sc, "open_s"), ".2f") + " s + " + med(secs, ".1f", 1e3) + " ms"
            kps = [k / t for k, t in zip(keys, totals, strict=True)]
        else:
            label = {
                "bootstrap": "bootstrap: fresh state_dir, start -> applied",
                "compacted": "compacted while away: start -> applied",
            }[sc]
            time_cell = med(secs, ".2f") + " s"
            kps = [k / t for k, t in zip(keys, secs, strict=True)]
            first = mark(sc, "first_message")
            last = mark(sc, "last_chunk")
            done = mark(sc, "snapshot_applied")
            phases.append(
                (
                    sc,
                    med(first, ".0f", 1e3) + " ms",
                    med([x - f for x, f in zip(last, first, strict=True)], ".2f") + " s",
                    med([d - x for d, x in zip(done, last, strict=True)], ".2f") + " s",
                    med(col(sc, "open_s"), ".2f") + " s",
                )
            )
        mib = [r[sc]["bytes_received"] / 2**20 for r in rounds]
        rows.append(
            (
                label,
                time_cell,
                med(kps, ",.0f") + " keys/s",
                med(mib, ".1f") + " MiB",
                med(col(sc, "peak_rss_mb"), ".0f"),
                med(col(sc, "controller_peak_rss_mb"), ".0f"),
            )
        )
        summary[sc] = {
            "start_to_applied_s": statistics.median(secs),
            "min_s": min(secs),
            "max_s": max(secs),
            "open_s": statistics.median(col(sc, "open_s")),
            "keys_per_s": statistics.median(kps),
            "bytes_received": statistics.median(col(sc, "bytes_received")),
            "worker_peak_rss_mb": statistics.median(col(sc, "peak_rss_mb")),
            "worker_cpu_s": statistics.median(col(sc, "cpu_s")),
            "controller_peak_rss_mb": statistics.median(col(sc, "controller_peak_rss_mb")),
            "controller_cpu_s": statistics.median(col(sc, "controller_cpu_s")),
        }
        if sc != "resume":
            summary[sc]["phases_s"] = {
                "resync_notice": statistics.median(mark(sc, "first_message")),
                "last_chunk": statistics.median(mark(sc, "last_chunk")),
                "snapshot_applied": statistics.median(mark(sc, "snapshot_applied")),
            }
    return rows, phases, summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keys", type=int, default=None, help="keys loaded (default 200,000)")
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument("--quick", action="store_true", help="20,000 keys")
    parser.add_argument("--dir", type=Path, default=None, help="where data dirs live")
    parser.add_argument("--keep", action="store_true", help="keep logs and data directories")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the controller (load, bootstrap) and the worker (bootstrap) of round 1",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default bench/results/bootstrap-DATE.json)",
    )
    args = parser.parse_args(argv)
    if args.keys is None:
        args.keys = 20_000 if args.quick else 200_000
    if args.json is None:
        today = datetime.date.today().isoformat()
        args.json = Path(__file__).resolve().parent / "results" / f"bootstrap-{today}.json"

    console = Console(width=None if sys.stdout.isatty() else 130)
    base = Path(tempfile.mkdtemp(prefix="statesync-bootstrap-", dir=args.dir))
    rounds = []
    failed = True
    try:
        for r in range(args.rounds):
            profile = args.profile if r == 0 else None
            if profile is not None:
                profile.mkdir(parents=True, exist_ok=True)
            rounds.append(run_round(args.keys, base, console, r, profile, args.keep))
        failed = False
    finally:
        if failed or args.keep:
            console.print(f"logs and data kept in {base}")
        else:
            shutil.rmtree(base, ignore_errors=True)

    rows, phase_rows, summary = summarize(rounds)
    n = len(rounds)
    of = f" (median, min-max of {n} rounds)" if n > 1 else ""
    table = Table(title=f"Worker bootstrap, {args.keys:,} keys of {VALUE_BYTES}-byte values{of}")
    for col in ("scenario", "time", "rate", "received", "worker RSS MiB", "controller RSS MiB"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    table = Table(title=f"Snapshot phases, from Worker.start(){of}")
    for col in (
        "scenario",
        "resync notice",
        "chunks received",
        "verify + persist",
        "replica open",
    ):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for row in phase_rows:
        table.add_row(*row)
    console.print(table)
    cpu = Table(title="CPU seconds (median)")
    for col in ("scenario", "worker process", "controller"):
        cpu.add_column(col, justify="left" if col == "scenario" else "right")
    cpu.add_row(
        "load", "", f"{statistics.median(r['load']['controller_cpu_s'] for r in rounds):.2f}"
    )
    for sc in SCENARIOS:
        cpu.add_row(
            sc, f"{summary[sc]['worker_cpu_s']:.2f}", f"{summary[sc]['controller_cpu_s']:.2f}"
        )
    console.print(cpu)
    for name in ("load", *SCENARIOS):
        ms = [r[name]["machine"] for r in rounds]
        console.print(
            f"machine during {name}: busy "
            + med([m["busy_pct"] for m in ms], ".0f")
            + "%, steal "
            + med([m["steal_pct"] for m in ms], ".0f")
            + "%, load avg before "
            + med([m["loadavg_1m_before"] for m in ms], ".1f")
        )
    for phase in ("load", "bootstrap"):
        for name, prof in rounds[0][phase].get("profile", {}).items():
            if prof:
                own = "; ".join(f"{k} {v}%" for k, v in prof["own"][:6])
                incl = "; ".join(f"{k} {v}%" for k, v in prof["inclusive"][:8])
                console.print(f"py-spy {phase}, {name}: own time {own}")
                console.print(f"py-spy {phase}, {name}: inclusive {incl}")
    for i, rnd in enumerate(rounds):
        for sc in SCENARIOS:
            for problem in rnd[sc]["problems"]:
                console.print(f"[red]round {i + 1} {sc}: {problem}[/red]")
    console.print(
        f"every scenario reached head; controller exit codes "
        f"{[(r['load_controller_exit_code'], r['controller_exit_code']) for r in rounds]}; digests "
        f"{[r['final_status']['digest'] for r in rounds]}"
    )
    cmd = "python bench/bootstrap.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {
        "command": cmd.strip(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "git": git_describe(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "keys": args.keys,
        "extra_keys": EXTRA_KEYS,
        "value_bytes": VALUE_BYTES,
        "puts_per_command": PUTS_PER_COMMAND,
        "median": summary,
        "rounds": rounds,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(orjson.dumps(out, option=orjson.OPT_INDENT_2))
    console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
