"""Fan-out: one writer at a steady rate, every change delivered to N workers.

A controller runs in its own process (fresh data directory, stopped with
SIGTERM, exit code checked). N workers (the SDK's `Worker`, each with its own
state_dir, namespace "fanout") run in separate OS processes: by default 4
workers share one process's asyncio loop (32 workers = 8 processes x 4, to fit
a 2-core machine); `--one-process-per-worker` gives each its own process.
Every worker's `on_change` callback records (rev, time.time()) for each applied
change; the callback runs after the replica committed the revision.

Before the writer starts, every worker is connected and has ACKed a warm-up
write (Client.status() shows applied_rev == head for all N). The writer (this
process, one blocking `Client`) then puts one 100-byte value per command at
`--rate` writes/s for `--seconds`, paced by an absolute schedule (write i is
due at t0 + i/rate; a late write is sent at once, never skipped), and records
the time each put returned (its acknowledgement) by revision. A put takes
several ms under fan-out load on 2 cores, so `--in-flight` threads (default 8)
share the one Client and take the writes in turn; with `--in-flight 1` the
writer is closed-loop and the achieved rate is 1/put latency.

Latency is write-acknowledged-to-applied: applied_time - ack_time, one clock
(all processes on one machine). A worker can apply a change before the
writer's put has returned (the ACK races the fan-out); those few negative
values are clamped at 0 and counted. The commit timestamp (Revision.ts_ms,
returned by put as Committed.ts_ms, ms resolution) gives a second view,
commit-to-applied, reported alongside.

Checks: every worker applied exactly the revisions written (no loss, no
duplicate, count == writes), its final applied revision == head (from the
worker and from the controller's status), and no resync happened.

    python bench/fanout.py                     # 32 workers, 500 writes/s, 10 s
    python bench/fanout.py --quick             # 8 workers, 200 writes/s, 5 s
    python bench/fanout.py --one-process-per-worker --json out.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import itertools
import math
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _controller import (
    ControllerProcess,
    MachineLoad,
    Profiler,
    cpu_seconds,
    git_describe,
    make_value,
    pct,
)

from statesync.client import Client

NAMESPACE = "fanout"
KEYS = 1000


# ---------------------------------------------------------------- worker processes


def worker_process(address: str, worker_ids: list[str], state_root: str, conn: Any) -> None:
    """A child process: run `worker_ids` on one asyncio loop until told to stop."""
    import logging

    logging.basicConfig(level=logging.WARNING, format=f"[workers pid {os.getpid()}] %(message)s")
    asyncio.run(_workers_main(address, worker_ids, Path(state_root), conn))


async def _workers_main(address: str, worker_ids: list[str], root: Path, conn: Any) -> None:
    from statesync.worker import Worker

    workers = []
    seen: dict[str, tuple[array, array]] = {}
    for wid in worker_ids:
        worker = Worker(address, worker_id=wid, namespaces=[NAMESPACE], state_dir=root / wid)
        revs, times = array("q"), array("d")

        def record(event: Any, revs: array = revs, times: array = times) -> None:
            times.append(time.time())
            revs.append(event.rev)

        worker.on_change(record)
        workers.append(worker)
        seen[wid] = (revs, times)
    tasks = [asyncio.create_task(w.run(), name=w.worker_id) for w in workers]
    loop = asyncio.get_running_loop()
    conn.send(("started", os.getpid()))
    command = await loop.run_in_executor(None, conn.recv)
    assert command == "stop", command
    for w in workers:
        w.stop_soon()
    await asyncio.gather(*tasks)
    conn.send(
        (
            "result",
            {
                w.worker_id: {
                    "revs": seen[w.worker_id][0].tobytes(),
                    "times": seen[w.worker_id][1].tobytes(),
                    "applied_rev": w.applied_rev,
                    "reconnects": w.reconnects,
                    "resyncs": w.resyncs,
                }
                for w in workers
            },
        )
    )


class WorkerPool:
    def __init__(self, address: str, groups: list[list[str]], state_root: Path) -> None:
        ctx = mp.get_context("spawn")
        self.groups = groups
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        for ids in groups:
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=worker_process, args=(address, ids, str(state_root), child), daemon=True
            )
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        self.pids = []
        for conn in self.conns:
            kind, pid = conn.recv()
            assert kind == "started"
            self.pids.append(pid)

    def cpu(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.pids)

    def stop(self) -> dict[str, dict[str, Any]]:
        for conn in self.conns:
            conn.send("stop")
        out: dict[str, dict[str, Any]] = {}
        for conn in self.conns:
            kind, result = conn.recv()
            assert kind == "result"
            out.update(result)
        for proc in self.procs:
            proc.join(30)
        return out

    def kill(self) -> None:
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join()


# ---------------------------------------------------------------- controller status


def worker_view(client: Client, ids: set[str]) -> tuple[int, dict[str, Any]]:
    status = client.status()
    return status.head_rev, {w.worker_id: w for w in status.workers if w.worker_id in ids}


def wait_caught_up(client: Client, ids: set[str], timeout: float, poll: float = 0.05) -> float:
    """Until every worker is connected with applied_rev == head; returns when."""
    deadline = time.monotonic() + timeout
    while True:
        head, view = worker_view(client, ids)
        if len(view) == len(ids) and all(
            w.connected and w.applied_rev == head for w in view.values()
        ):
            return time.time()
        if time.monotonic() > deadline:
            behind = {i: (v.applied_rev, v.state) for i, v in view.items() if v.applied_rev != head}
            missing = sorted(ids - view.keys())
            raise TimeoutError(f"head {head}; behind: {behind}; not connected: {missing}")
        time.sleep(poll)


# ---------------------------------------------------------------- the writer


def write_steadily(client: Client, rate: float, seconds: float, in_flight: int) -> dict[str, Any]:
    """Write i is due at t0 + i/rate. `in_flight` threads share one Client (one
    channel): a thread takes the next write, waits for its due time (or sends
    it at once if it is late) and records the put's return time by revision."""
    n = int(rate * seconds)
    revs = [0] * n
    acks = [0.0] * n
    commit_ts = [0.0] * n
    put_lat = [0.0] * n
    late = [0.0] * n
    sent = [0.0] * n
    interval = 1.0 / rate
    counter = itertools.count()
    errors: list[BaseException] = []
    t0 = time.perf_counter() + 0.05

    def writer() -> None:
        try:
            while (i := next(counter)) < n:
                due = t0 + i * interval
                now = time.perf_counter()
                if now < due:
                    time.sleep(due - now)
                    now = time.perf_counter()
                late[i] = now - due
                sent[i] = time.time()
                committed = client.put(NAMESPACE, f"k{i % KEYS:04d}", make_value(i))
                acks[i] = time.time()
                put_lat[i] = time.perf_counter() - now
                revs[i] = committed.rev
                commit_ts[i] = committed.ts_ms / 1000
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, name=f"writer-{k}") for k in range(in_flight)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    elapsed = max(time.perf_counter() - t0, 1e-9)
    # Late: sent more than 1 ms after its due time (all threads were busy).
    late_writes = [x for x in late if x > 1e-3]
    return {
        "n": n,
        "started": min(sent),
        "elapsed_s": elapsed,
        "revs": revs,
        "acks": acks,
        "commit_ts": commit_ts,
        "put_lat": put_lat,
        "late": late_writes,
    }


# ---------------------------------------------------------------- one run


def run(args: argparse.Namespace, base: Path, console: Console) -> dict[str, Any]:
    per_process = 1 if args.one_process_per_worker else args.per_process
    ids = [f"w{i:02d}" for i in range(args.workers)]
    groups = [ids[i : i + per_process] for i in range(0, len(ids), per_process)]
    layout = f"{args.workers} workers in {len(groups)} processes" + (
        " (one per worker)" if per_process == 1 else f" x {per_process} (asyncio, one loop)"
    )
    controller = ControllerProcess(base / "controller", base / "controller.log")
    pool: WorkerPool | None = None
    exit_code = None
    try:
        console.print(f"controller pid {controller.pid} on {controller.address}; {layout}")
        started = time.perf_counter()
        pool = WorkerPool(controller.address, groups, base / "workers")
        with Client(controller.address) as client:
            wanted = set(ids)
            deadline = time.monotonic() + 60
            while len(worker_view(client, wanted)[1]) < len(ids):
                if time.monotonic() > deadline:
                    raise TimeoutError("workers did not connect")
                time.sleep(0.05)
            warm = client.put(NAMESPACE, "warmup", {"warm": True})
            wait_caught_up(client, wanted, timeout=60)
            start_head = warm.rev
            console.print(
                f"{len(ids)} workers connected and at revision {start_head} "
                f"after {time.perf_counter() - started:.1f} s; writing "
                f"{args.rate:g}/s for {args.seconds:g} s"
            )
            profilers = []
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                profilers = [
                    ("controller", Profiler(controller.pid, args.profile / "controller.txt")),
                    ("worker process 0", Profiler(pool.pids[0], args.profile / "workers0.txt")),
                ]
            machine = MachineLoad()
            cpu0, wcpu0, mycpu0 = controller.cpu(), pool.cpu(), time.process_time()
            wall0 = time.time()
            writes = write_steadily(client, args.rate, args.seconds, args.in_flight)
            cpu_w, wall_w = controller.cpu(), time.time()
            mycpu1 = time.process_time()
            caught_up = wait_caught_up(client, wanted, timeout=args.seconds * 100 + 60)
            cpu1, wcpu1 = controller.cpu(), pool.cpu()
            machine_use = machine.finish()
            for _, prof in profilers:
                prof.stop()
            head, view = worker_view(client, wanted)
            peak_rss = controller.peak_rss_mb()
        results = pool.stop()
        pool = None
    finally:
        if pool is not None:
            pool.kill()
        exit_code = controller.stop()
    if exit_code != 0:
        raise RuntimeError(f"controller exited {exit_code}:\n{controller.log_tail()}")

    n = writes["n"]
    ack_of = dict(zip(writes["revs"], writes["acks"], strict=True))
    ts_of = dict(zip(writes["revs"], writes["commit_ts"], strict=True))
    expected = set(writes["revs"])
    per_worker = []
    all_lat: list[float] = []
    all_commit_lat: list[float] = []
    negatives = 0
    most_negative = 0.0
    problems = []
    last_applied = 0.0
    for gi, group in enumerate(groups):
        for wid in group:
            r = results[wid]
            revs = array("q")
            revs.frombytes(r["revs"])
            times = array("d")
            times.frombytes(r["times"])
            lat = []
            commit_lat = []
            got = []
            for rev, t in zip(revs, times, strict=True):
                if rev <= start_head:
                    continue
                got.append(rev)
                if rev not in ack_of:
                    continue
                raw = t - ack_of[rev]
                if raw < 0:
                    negatives += 1
                    most_negative = min(most_negative, raw)
                lat.append(max(0.0, raw))
                commit_lat.append(max(0.0, t - ts_of[rev]))
                last_applied = max(last_applied, t)
            ok = (
                len(got) == n
                and set(got) == expected
                and r["applied_rev"] == head
                and view[wid].applied_rev == head
                and r["resyncs"] == 0
            )
            if not ok:
                problems.append(
                    f"{wid}: {len(got)} changes of {n}, {len(set(got) & expected)} distinct "
                    f"written revisions, applied_rev {r['applied_rev']} (status "
                    f"{view[wid].applied_rev}), head {head}, resyncs {r['resyncs']}, "
                    f"reconnects {r['reconnects']}"
                )
            all_lat.extend(lat)
            all_commit_lat.extend(commit_lat)
            per_worker.append(
                {
                    "worker": wid,
                    "process": gi,
                    "changes": len(got),
                    "applied_rev": r["applied_rev"],
                    "reconnects": r["reconnects"],
                    "resyncs": r["resyncs"],
                    "ok": ok,
                    "p50_ms": pct(lat, 0.50) * 1e3 if lat else math.nan,
                    "p99_ms": pct(lat, 0.99) * 1e3 if lat else math.nan,
                    "max_ms": max(lat) * 1e3 if lat else math.nan,
                }
            )
    window = max(last_applied, caught_up) - writes["started"]
    delivered = sum(w["changes"] for w in per_worker)
    busy = caught_up - wall0
    put_lat = list(writes["put_lat"])
    return {
        "layout": layout,
        "workers": args.workers,
        "processes": len(groups),
        "per_process": per_process,
        "rate": args.rate,
        "seconds": args.seconds,
        "writer_in_flight": args.in_flight,
        "writes": n,
        "start_head": start_head,
        "head": head,
        "writer": {
            "elapsed_s": writes["elapsed_s"],
            "achieved_rate": n / writes["elapsed_s"],
            "late_writes": len(writes["late"]),
            "max_late_ms": max(writes["late"], default=0.0) * 1e3,
            "put_p50_ms": pct(put_lat, 0.50) * 1e3,
            "put_p99_ms": pct(put_lat, 0.99) * 1e3,
            "put_max_ms": max(put_lat) * 1e3,
            "cpu_s": mycpu1 - mycpu0,
        },
        "latency_ms": {
            "p50": pct(all_lat, 0.50) * 1e3,
            "p99": pct(all_lat, 0.99) * 1e3,
            "p999": pct(all_lat, 0.999) * 1e3,
            "max": max(all_lat) * 1e3,
            "clamped_negative": negatives,
            "most_negative_ms": most_negative * 1e3,
        },
        "commit_to_applied_ms": {
            "p50": pct(all_commit_lat, 0.50) * 1e3,
            "p99": pct(all_commit_lat, 0.99) * 1e3,
            "max": max(all_commit_lat) * 1e3,
        },
        "delivered_changes": delivered,
        "delivery_window_s": window,
        "delivered_per_s": delivered / window,
        "catch_up_after_last_write_s": caught_up - wall_w,
        "controller": {
            "cpu_s": cpu1 - cpu0,
            "cpu_pct": (cpu1 - cpu0) / busy * 100,
            "cpu_s_during_writes": cpu_w - cpu0,
            "cpu_pct_during_writes": (cpu_w - cpu0) / (wall_w - wall0) * 100,
            "peak_rss_mb": peak_rss,
            "exit_code": exit_code,
        },
        "machine": machine_use,
        "other_processes_cpu_s": machine_use["busy_cpu_s"]
        - (cpu1 - cpu0)
        - (wcpu1 - wcpu0)
        - (mycpu1 - mycpu0),
        "profile": {name: prof.summary() for name, prof in profilers},
        "worker_processes_cpu_s": wcpu1 - wcpu0,
        "worker_processes_cpu_pct": (wcpu1 - wcpu0) / busy * 100,
        "measured_window_s": busy,
        "all_ok": not problems,
        "problems": problems,
        "per_worker": per_worker,
    }


def print_tables(res: dict[str, Any], console: Console) -> None:
    table = Table(
        title=f"Per worker: write-acknowledged-to-applied latency ({res['writes']:,} writes)"
    )
    for col in ("worker", "proc", "changes", "p50 ms", "p99 ms", "max ms", "reconn", "ok"):
        table.add_column(col, justify="left" if col == "worker" else "right")
    for w in res["per_worker"]:
        table.add_row(
            w["worker"],
            str(w["process"]),
            f"{w['changes']:,}",
            f"{w['p50_ms']:.2f}",
            f"{w['p99_ms']:.2f}",
            f"{w['max_ms']:.1f}",
            str(w["reconnects"]),
            "yes" if w["ok"] else "[red]NO[/red]",
        )
    lat = res["latency_ms"]
    table.add_section()
    table.add_row(
        "all",
        "",
        f"{res['delivered_changes']:,}",
        f"{lat['p50']:.2f}",
        f"{lat['p99']:.2f}",
        f"{lat['max']:.1f}",
        "",
        "yes" if res["all_ok"] else "[red]NO[/red]",
    )
    console.print(table)

    summary = Table(
        title=f"Fan-out: {res['layout']}, {res['rate']:g} writes/s x {res['seconds']:g} s"
    )
    summary.add_column("measure")
    summary.add_column("value", justify="right")
    wr = res["writer"]
    ctl = res["controller"]
    c2a = res["commit_to_applied_ms"]
    m = res["machine"]
    rows = [
        (
            "writes (1 put each)",
            f"{res['writes']:,} (revisions {res['start_head'] + 1}-{res['head']})",
        ),
        (
            "writer achieved rate",
            f"{wr['achieved_rate']:,.1f}/s ({wr['late_writes']:,} sent >1 ms late, "
            f"max {wr['max_late_ms']:.1f} ms; {res['writer_in_flight']} in flight)",
        ),
        (
            "writer put latency p50 / p99 / max",
            f"{wr['put_p50_ms']:.2f} / {wr['put_p99_ms']:.2f} / {wr['put_max_ms']:.1f} ms",
        ),
        (
            "ack-to-applied p50 / p99 / p99.9 / max",
            f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['p999']:.2f} / {lat['max']:.1f} ms",
        ),
        (
            "  negative (applied before ack) clamped to 0",
            f"{lat['clamped_negative']:,} (most negative {lat['most_negative_ms']:.2f} ms)",
        ),
        (
            "commit(ts_ms)-to-applied p50 / p99 / max",
            f"{c2a['p50']:.2f} / {c2a['p99']:.2f} / {c2a['max']:.1f} ms",
        ),
        (
            "changes delivered",
            f"{res['delivered_changes']:,} in {res['delivery_window_s']:.2f} s "
            f"= {res['delivered_per_s']:,.0f}/s",
        ),
        (
            "catch-up after the last write",
            f"{res['catch_up_after_last_write_s'] * 1e3:.0f} ms (status poll every 50 ms)",
        ),
        (
            "controller CPU (writes + catch-up)",
            f"{ctl['cpu_s']:.2f} s = {ctl['cpu_pct']:.0f}% of one core "
            f"over {res['measured_window_s']:.2f} s",
        ),
        ("controller CPU during writes only", f"{ctl['cpu_pct_during_writes']:.0f}% of one core"),
        ("controller peak RSS", f"{ctl['peak_rss_mb']:.0f} MiB"),
        (
            "worker processes CPU (all)",
            f"{res['worker_processes_cpu_s']:.2f} s "
            f"= {res['worker_processes_cpu_pct']:.0f}% of one core",
        ),
        ("writer process CPU", f"{wr['cpu_s']:.2f} s"),
        (
            "machine: busy / steal / idle (all cores)",
            f"{m['busy_pct']:.0f}% / {m['steal_pct']:.0f}% / {m['idle_pct']:.0f}% "
            f"of {m['cpus']} cores",
        ),
        (
            "  CPU used by other processes",
            f"{res['other_processes_cpu_s']:.1f} s (load avg before {m['loadavg_1m_before']:.1f})",
        ),
        (
            "every worker applied every write, applied_rev == head",
            "yes" if res["all_ok"] else "[red]NO[/red]",
        ),
        ("controller exit code after SIGTERM", str(ctl["exit_code"])),
    ]
    for k, v in rows:
        summary.add_row(k, v)
    console.print(summary)
    for p in res["problems"]:
        console.print(f"[red]{p}[/red]")
    for name, prof in res["profile"].items():
        if prof:
            console.print(
                f"py-spy, {name}: own time " + "; ".join(f"{k} {v}%" for k, v in prof["own"][:6])
            )
            console.print(
                f"py-spy, {name}: inclusive "
                + "; ".join(f"{k} {v}%" for k, v in prof["inclusive"][:8])
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=None, help="workers (default 32)")
    parser.add_argument("--rate", type=float, default=None, help="writes/s (default 500)")
    parser.add_argument("--seconds", type=float, default=None, help="writing time (default 10)")
    parser.add_argument(
        "--per-process", type=int, default=4, help="workers per OS process (default 4)"
    )
    parser.add_argument("--one-process-per-worker", action="store_true")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=8,
        help="writer threads sharing one Client: puts in flight at most (default 8)",
    )
    parser.add_argument("--quick", action="store_true", help="8 workers, 200 writes/s, 5 s")
    parser.add_argument("--dir", type=Path, default=None, help="where data dirs live")
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the controller and one worker process during the run into this directory",
    )
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default bench/results/fanout-DATE.json)",
    )
    args = parser.parse_args(argv)
    quick = {"workers": 8, "rate": 200.0, "seconds": 5.0}
    full = {"workers": 32, "rate": 500.0, "seconds": 10.0}
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.json is None:
        today = datetime.date.today().isoformat()
        args.json = Path(__file__).resolve().parent / "results" / f"fanout-{today}.json"

    console = Console(width=None if sys.stdout.isatty() else 110)
    base = Path(tempfile.mkdtemp(prefix="statesync-fanout-", dir=args.dir))
    try:
        res = run(args, base, console)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print_tables(res, console)
    cmd = "python bench/fanout.py " + " ".join(sys.argv[1:] if argv is None else argv)
    out = {
        "command": cmd.strip(),
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "git": git_describe(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        **res,
        "median_worker_p99_ms": statistics.median(w["p99_ms"] for w in res["per_worker"]),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_bytes(
        orjson.dumps(out, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY)
    )
    console.print(f"wrote {args.json}")
    return 0 if res["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
