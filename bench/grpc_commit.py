"""End-to-end commit throughput through gRPC against a real controller process.

The controller runs as its own process (started with `Controller.run`, fresh
data directory per run, stopped with SIGTERM and checked for exit code 0).
Clients run in separate processes (multiprocessing, spawn), each with one
`grpc.aio` event loop, so they never share a GIL with the controller. Every
command puts 100-byte canonical JSON values (bench/commit.py's `make_value`)
into namespace "bench", keys spread over 10,000 keys, unique command ids.

  unary-1        1 client, one `Commit` at a time
  unary-16       16 clients (own channel each) spread over the client
                 processes, one `Commit` in flight each
  stream-1put    1 client, `CommitStream`, 256 commands in flight, 1 put each
  stream-10put   the same with 10 puts per command
  store-async-16 bench/commit.py's in-process 16-writer scenario (no gRPC),
                 run in the same rounds so that ratios come from one run
  noop-unary-16  unary-16 against a no-op gRPC server (same stubs, no store):
  noop-stream    stream-1put likewise; together the ceiling of gRPC in Python
                 on this machine, whatever the controller does

Scenarios alternate within each round (A B C D E, A B C D E, ...); the table
shows the median with min-max. Every reply is checked (no error, own command
id, not replayed, revisions increasing on a stream) and the controller's head
revision must equal the number of commands sent. Controller CPU is read from
/proc/PID/stat (utime+stime) around the timed window, per thread as well.

    python bench/grpc_commit.py                # 3 rounds, a few minutes
    python bench/grpc_commit.py --quick        # small sizes, < 30 s
    python bench/grpc_commit.py --profile /tmp/prof   # py-spy on the controller

Other sessions may share the machine: before each run the benchmark waits (up
to --wait-quiet s) for the rest of the machine to go idle, and it reports the
CPU everything else used during each run ("other cores").

Diagnostics, through the environment of the controller process:
BENCH_TRACE=FILE writes per-group-commit sizes and times and per-command
service times (JSON) at exit; BENCH_SWITCH_INTERVAL=S sets the GIL switch
interval.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import importlib.util
import multiprocessing as mp
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
import traceback
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import orjson
from _controller import ChildProcess
from rich.console import Console
from rich.table import Table

from statesync import Command, Put, SQLiteStore
from statesync.client import Client
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import command_to_pb, pb

HERE = Path(__file__).resolve().parent
NAMESPACE = "bench"
KEYS = 10_000
WINDOW = 256
CLK_TCK = os.sysconf("SC_CLK_TCK")

CONTROLLER = """
import asyncio, os, sys
from pathlib import Path
from statesync.server.app import Controller, ServerSettings

if os.environ.get("BENCH_SWITCH_INTERVAL"):  # diagnostic: GIL hand-off latency
    sys.setswitchinterval(float(os.environ["BENCH_SWITCH_INTERVAL"]))

if os.environ.get("BENCH_TRACE"):  # diagnostic: where a commit's time goes, server side
    import atexit, json, time
    from statesync.server.service import StatesyncService
    from statesync.store.sqlite import SQLiteStore

    trace = {"group_commit": [], "write": [], "service_commit": []}

    def timed(name, fn):
        def wrapper(self, arg):
            started = time.perf_counter()
            try:
                return fn(self, arg)
            finally:
                n = len(arg) if name == "group_commit" else 1
                trace[name].append((n, time.perf_counter() - started))
        return wrapper

    async def service_commit(self, request, _orig=StatesyncService._commit):
        started = time.perf_counter()
        try:
            return await _orig(self, request)
        finally:
            trace["service_commit"].append((1, time.perf_counter() - started))

    SQLiteStore._group_commit = timed("group_commit", SQLiteStore._group_commit)
    SQLiteStore._write = timed("write", SQLiteStore._write)
    StatesyncService._commit = service_commit
    atexit.register(lambda: open(os.environ["BENCH_TRACE"], "w").write(json.dumps(trace)))

def ready(controller):
    print(controller.port, flush=True)



async def noop_server():
    # The same service doing nothing: what gRPC itself costs per call here.
    import signal
    from types import SimpleNamespace
    import grpc
    from statesync.v1 import statesync_pb2_grpc as pb_grpc
    from statesync.wire import pb

    class Noop(pb_grpc.StatesyncServicer):
        rev = 0

        async def Commit(self, request, context):
            self.rev += 1
            return pb.CommandReply(rev=self.rev, command_id=request.command_id)

        async def CommitStream(self, requests, context):
            async for request in requests:
                self.rev += 1
                yield pb.CommandReply(rev=self.rev, command_id=request.command_id, tag=request.tag)

        async def Status(self, request, context):
            return pb.StatusReply(head_rev=self.rev)

    server = grpc.aio.server()
    pb_grpc.add_StatesyncServicer_to_server(Noop(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    ready(SimpleNamespace(port=port))
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


if sys.argv[2:] == ["noop"]:
    asyncio.run(noop_server())
else:
    settings = ServerSettings(data=Path(sys.argv[1]), listen="127.0.0.1:0", http=None)
    asyncio.run(Controller(settings).run(on_ready=ready))
"""

_store_bench: ModuleType | None = None


def store_bench() -> ModuleType:
    """bench/commit.py, imported by path (bench/ is not a package)."""
    global _store_bench
    if _store_bench is None:
        spec = importlib.util.spec_from_file_location("bench_commit", HERE / "commit.py")
        assert spec is not None and spec.loader is not None
        _store_bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(_store_bench)
    return _store_bench


# ---------------------------------------------------------------- controller


class ControllerProcess(ChildProcess):
    def __init__(self, data: Path, log: Path, *, noop: bool = False) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.log = log
        self._stderr = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CONTROLLER, str(data), *(["noop"] if noop else [])],
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.isdigit():
            self.proc.kill()
            self.proc.wait()
            raise RuntimeError(f"controller did not start: {line!r}\n{log.read_text()[-2000:]}")
        self.pid = self.proc.pid
        self.port = int(line)
        self.address = f"127.0.0.1:{self.port}"
        self._names: dict[int, str] | None = None

    def thread_names(self) -> dict[int, str]:
        """Python thread names by OS thread id (from `py-spy dump`, when available)."""
        if self._names is None:
            self._names = {}
            if shutil.which("py-spy"):
                dump = subprocess.run(
                    ["py-spy", "dump", "--pid", str(self.pid)], capture_output=True, text=True
                ).stdout
                for tid, name in re.findall(r'^Thread (\d+) \(\w+\): "(.*)"$', dump, re.M):
                    self._names[int(tid)] = name
        return self._names

    def threads_cpu(self) -> dict[int, tuple[str, float]]:
        """CPU seconds (user+system) of each thread: tid -> (name, seconds)."""
        out = {}
        for task in Path(f"/proc/{self.pid}/task").iterdir():
            try:
                stat = (task / "stat").read_text()
            except FileNotFoundError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            out[int(task.name)] = (name, (int(fields[11]) + int(fields[12])) / CLK_TCK)
        return out


def thread_breakdown(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    pid: int,
    names: dict[int, str],
) -> dict[str, float]:
    """CPU seconds per thread during the window; the main thread runs the event loop,
    gRPC's C-core threads keep their OS names, others are named by Python."""
    out: Counter[str] = Counter()
    for tid, (name, cpu) in after.items():
        spent = cpu - before.get(tid, (name, 0.0))[1]
        if spent <= 0:
            continue
        if tid == pid:
            label = "event loop (main)"
        elif tid in names:
            label = names[tid].split(":")[0]
        else:
            label = name
        out[label] += spent
    return {k: round(v, 3) for k, v in out.most_common()}


def system_busy() -> float:
    """CPU seconds all CPUs spent busy since boot (/proc/stat), to spot interference."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def wait_quiet(max_wait: float, threshold: float = 0.3) -> float:
    """Wait (up to max_wait s) until the rest of the machine uses < threshold cores
    over one second; other sessions share this VM. Returns the seconds waited."""
    started = time.perf_counter()
    while time.perf_counter() - started < max_wait:
        busy = system_busy()
        time.sleep(1.0)
        if system_busy() - busy < threshold:
            break
    return time.perf_counter() - started


# ---------------------------------------------------------------- clients


def build_requests(prefix: str, n: int, puts: int, seed: int) -> list[pb.CommandRequest]:
    make_value = store_bench().make_value
    rng = random.Random(seed)
    out = []
    for i in range(n):
        if puts == 1:
            keys: range | list[int] = [rng.randrange(KEYS)]
        else:  # distinct keys within one command
            base = rng.randrange(KEYS // puts) * puts
            keys = range(base, base + puts)
        ops = [Put(NAMESPACE, f"key-{k:05d}", make_value(i * puts + j)) for j, k in enumerate(keys)]
        out.append(command_to_pb(Command(ops, command_id=f"{prefix}-{i}"), tag=i))
    return out


class Tally:
    def __init__(self) -> None:
        self.errors = 0
        self.first_error = ""

    def fail(self, message: str) -> None:
        self.errors += 1
        self.first_error = self.first_error or message


async def unary_client(
    stub: pb_grpc.StatesyncStub, requests: list[pb.CommandRequest], tally: Tally
) -> list[float]:
    lat = []
    for request in requests:
        started = time.perf_counter()
        try:
            reply = await stub.Commit(request, timeout=60)
        except grpc.aio.AioRpcError as exc:
            tally.fail(f"{exc.code().name}: {exc.details()}")
            continue
        lat.append(time.perf_counter() - started)
        if reply.command_id != request.command_id or reply.replayed or reply.rev <= 0:
            tally.fail(f"unexpected reply {reply}")
    return lat


async def stream_client(
    stub: pb_grpc.StatesyncStub, requests: list[pb.CommandRequest], window: int, tally: Tally
) -> list[float]:
    call = stub.CommitStream()
    slots = asyncio.Semaphore(window)
    sent = [0.0] * len(requests)

    async def write() -> None:
        for i, request in enumerate(requests):
            await slots.acquire()
            sent[i] = time.perf_counter()
            await call.write(request)
        await call.done_writing()

    writer = asyncio.create_task(write())
    lat = []
    expected = 0
    last_rev = 0
    try:
        async for reply in call:
            now = time.perf_counter()
            slots.release()
            if reply.tag != expected:
                tally.fail(f"reply tag {reply.tag}, expected {expected}")
            elif reply.HasField("error"):
                tally.fail(f"{reply.error.code}: {reply.error.message}")
            elif (
                reply.rev <= last_rev
                or reply.replayed
                or reply.command_id != requests[reply.tag].command_id
            ):
                tally.fail(f"unexpected reply {reply}")
            else:
                lat.append(now - sent[reply.tag])
                last_rev = reply.rev
            expected += 1
    except grpc.aio.AioRpcError as exc:
        tally.fail(f"stream failed: {exc.code().name}: {exc.details()}")
    await writer
    if expected != len(requests):
        tally.fail(f"{expected} replies to {len(requests)} commands")
    return lat


async def client_job(job: dict[str, Any], in_q: mp.Queue, out_q: mp.Queue, wid: int) -> dict:
    per_client = [
        build_requests(f"{job['prefix']}-c{c}", job["per_client"], job["puts"], seed=c)
        for c in job["client_ids"]
    ]
    # Own connection per client: a local subchannel pool stops channels sharing one.
    options = [("grpc.use_local_subchannel_pool", 1)]
    channels = [grpc.aio.insecure_channel(job["address"], options=options) for _ in per_client]
    tally = Tally()
    try:
        stubs = [pb_grpc.StatesyncStub(ch) for ch in channels]
        for stub in stubs:  # connect and warm up without writing
            await stub.Status(pb.StatusRequest(), timeout=30, wait_for_ready=True)
        out_q.put(("ready", wid, None))
        assert in_q.get() == "go"
        started, cpu0 = time.perf_counter(), time.process_time()
        if job["kind"] == "unary":
            lats = await asyncio.gather(
                *(unary_client(s, r, tally) for s, r in zip(stubs, per_client, strict=True))
            )
        else:
            lats = [await stream_client(stubs[0], per_client[0], job["window"], tally)]
        ended, cpu1 = time.perf_counter(), time.process_time()
    finally:
        for ch in channels:
            await ch.close()
    return {
        "start": started,
        "end": ended,
        "cpu_s": cpu1 - cpu0,
        "latencies": [x for lat in lats for x in lat],
        "commands": sum(len(r) for r in per_client),
        "errors": tally.errors,
        "first_error": tally.first_error,
    }


def client_process(wid: int, in_q: mp.Queue, out_q: mp.Queue) -> None:
    while (job := in_q.get()) is not None:
        try:
            result = asyncio.run(client_job(job, in_q, out_q, wid))
        except BaseException:
            out_q.put(("error", wid, traceback.format_exc()))
        else:
            out_q.put(("done", wid, result))


class ClientPool:
    def __init__(self, processes: int) -> None:
        ctx = mp.get_context("spawn")  # never fork a process that has used gRPC
        self.out_q: mp.Queue = ctx.Queue()
        self.in_qs: list[mp.Queue] = [ctx.Queue() for _ in range(processes)]
        self.procs = [
            ctx.Process(target=client_process, args=(w, q, self.out_q), daemon=True)
            for w, q in enumerate(self.in_qs)
        ]
        for p in self.procs:
            p.start()

    def _get(self, kind: str) -> tuple[int, Any]:
        tag, wid, payload = self.out_q.get(timeout=600)
        if tag == "error":
            raise RuntimeError(f"client process {wid} failed:\n{payload}")
        assert tag == kind, (tag, kind)
        return wid, payload

    def run(self, jobs: list[dict[str, Any]], on_go: Any) -> list[dict]:
        """Give jobs[i] to process i; once all are connected call on_go() and start them."""
        for q, job in zip(self.in_qs, jobs, strict=False):
            q.put(job)
        for _ in jobs:
            self._get("ready")
        on_go()
        for q in self.in_qs[: len(jobs)]:
            q.put("go")
        results: dict[int, dict] = {}
        for _ in jobs:
            wid, result = self._get("done")
            results[wid] = result
        return [results[w] for w in sorted(results)]

    def close(self) -> None:
        for q in self.in_qs:
            q.put(None)
        for p in self.procs:
            p.join(timeout=10)


# ---------------------------------------------------------------- scenarios


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Profiler:
    """py-spy record on the controller for the timed window (raw collapsed stacks)."""

    def __init__(self, pid: int, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen(
            [
                *("py-spy", "record", "--pid", str(pid), "--rate", "200", "--threads"),
                *("--format", "raw", "--output", str(out)),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # let it attach

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)


def run_grpc(
    name: str, spec: dict[str, Any], pool: ClientPool, base: Path, r: int, args: argparse.Namespace
) -> dict[str, Any]:
    data = base / f"{name}-{r}"
    ctl = ControllerProcess(data, base / f"{name}-{r}.log", noop=spec.get("noop", False))
    profiler: Profiler | None = None
    try:
        clients, procs = spec["clients"], min(spec["clients"], len(pool.procs))
        per_client = spec["commands"] // clients
        ids = list(range(clients))
        jobs = [
            {
                "kind": spec["kind"],
                "address": ctl.address,
                "puts": spec["puts"],
                "per_client": per_client,
                "client_ids": ids[p::procs],
                "window": WINDOW,
                "prefix": f"{name}-r{r}",
            }
            for p in range(procs)
        ]
        marks: dict[str, Any] = {}

        def on_go() -> None:
            nonlocal profiler
            ctl.thread_names()  # before py-spy record attaches: one tracer at a time
            if args.profile:
                profiler = Profiler(ctl.pid, args.profile / f"{name}-r{r}.txt")
            marks["load"] = os.getloadavg()[0]
            marks["threads"], marks["cpu"], marks["busy"] = (
                ctl.threads_cpu(),
                ctl.cpu(),
                system_busy(),
            )

        results = pool.run(jobs, on_go)
        cpu_after, threads_after, busy_after = ctl.cpu(), ctl.threads_cpu(), system_busy()
        if profiler:
            profiler.stop()
        with Client(ctl.address) as client:
            head = client.status().head_rev
    finally:
        rc = ctl.stop()
    sent = sum(x["commands"] for x in results)
    errors = sum(x["errors"] for x in results)
    if errors:
        first = next(x["first_error"] for x in results if x["errors"])
        raise RuntimeError(f"{name}: {errors} failed commands, first: {first}")
    if head != sent:
        raise RuntimeError(f"{name}: head revision {head} after {sent} commands")
    if rc != 0:
        raise RuntimeError(f"{name}: controller exited {rc}\n{ctl.log.read_text()[-2000:]}")
    shutil.rmtree(data)
    ctl.log.unlink()
    wall = max(x["end"] for x in results) - min(x["start"] for x in results)
    lat = [v for x in results for v in x["latencies"]]
    ctl_cpu = cpu_after - marks["cpu"]
    client_cpu = sum(x["cpu_s"] for x in results)
    other = busy_after - marks["busy"] - ctl_cpu - client_cpu
    return {
        "commands": sent,
        "ops": sent * spec["puts"],
        "wall_s": wall,
        "ops_s": sent * spec["puts"] / wall,
        "commands_s": sent / wall,
        "p50_ms": pct(lat, 0.50) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "max_ms": max(lat) * 1e3,
        "client_processes": procs,
        "clients": clients,
        "client_cpu_s": [x["cpu_s"] for x in results],
        "client_cores": client_cpu / wall,
        "controller_cpu_s": ctl_cpu,
        "controller_cores": ctl_cpu / wall,
        "controller_threads_cpu_s": thread_breakdown(
            marks["threads"], threads_after, ctl.pid, ctl.thread_names()
        ),
        "other_cores": max(0.0, other) / wall,
        "loadavg_1m": marks["load"],
        "head_rev": head,
        "controller_exit": rc,
    }


def run_store(n: int, base: Path, r: int) -> dict[str, Any]:
    """bench/commit.py's async-16 scenario: 16 asyncio writers in this process."""
    path = base / f"store-{r}.sqlite"
    with SQLiteStore(path) as store:
        load = os.getloadavg()[0]
        cpu0, busy0 = time.process_time(), system_busy()
        ops, lat = store_bench().run_async(store, n)
        cpu, busy = time.process_time() - cpu0, system_busy() - busy0
        head = store.head_rev
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    sent = n // 16 * 16
    if head != sent:
        raise RuntimeError(f"store-async-16: head revision {head} after {sent} commands")
    wall = sent / ops
    return {
        "commands": sent,
        "ops": sent,
        "wall_s": wall,
        "ops_s": ops,
        "commands_s": ops,
        "p50_ms": pct(lat, 0.50) * 1e3,
        "p99_ms": pct(lat, 0.99) * 1e3,
        "max_ms": max(lat) * 1e3,
        "client_processes": 0,
        "clients": 16,
        "controller_cpu_s": cpu,  # the store's process does everything
        "controller_cores": cpu / wall,
        "other_cores": max(0.0, busy - cpu) / wall,
        "loadavg_1m": load,
        "head_rev": head,
    }


def scenarios(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    n, single = args.commands, args.single_commands
    return {
        "unary-1": {"kind": "unary", "clients": 1, "puts": 1, "commands": single},
        "unary-16": {"kind": "unary", "clients": 16, "puts": 1, "commands": n},
        "stream-1put": {"kind": "stream", "clients": 1, "puts": 1, "commands": n},
        "stream-10put": {"kind": "stream", "clients": 1, "puts": 10, "commands": n},
        "store-async-16": {"kind": "store", "clients": 16, "puts": 1, "commands": n},
        "noop-unary-16": {"kind": "unary", "clients": 16, "puts": 1, "commands": n, "noop": True},
        "noop-stream": {"kind": "stream", "clients": 1, "puts": 1, "commands": n, "noop": True},
    }


LABELS = {
    "unary-1": "gRPC Commit, 1 client",
    "unary-16": "gRPC Commit, 16 clients",
    "stream-1put": f"CommitStream, {WINDOW} in flight, 1 put",
    "stream-10put": f"CommitStream, {WINDOW} in flight, 10 puts",
    "store-async-16": "store in-process, 16 writers (commit.py)",
    "noop-unary-16": "no-op gRPC server, Commit, 16 clients",
    "noop-stream": f"no-op gRPC server, CommitStream, {WINDOW} in flight",
}


def summarize_profile(path: Path, top: int = 8) -> list[str]:
    """Per thread: share of samples and the functions where they were (self time),
    from py-spy's raw (collapsed) output. Time inside gRPC's Cython code shows
    as self time of its Python caller (Handle._run on the event loop)."""
    own: dict[str, Counter[str]] = {}
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        thread = next((f for f in frames if f.startswith("thread ")), "?")
        thread = thread.split(": ", 1)[-1].split(":")[0]
        threads[thread] += n
        funcs = [f for f in frames if not f.startswith(("thread ", "process "))]
        if funcs:
            leaf = funcs[-1]
            name = leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0] + ")"
            own.setdefault(thread, Counter())[name] += n
    if not total:
        return [f"{path}: no samples"]
    lines = [f"{path.name}: {total} samples"]
    for thread, count in threads.most_common(3):
        lines.append(f"  {thread}: {count / total:.0%}")
        mine = own.get(thread, Counter()).most_common(top)
        lines += [f"    {c / total:5.1%} {f}" for f, c in mine]
    return lines


def git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
        ).stdout.strip()
    except OSError:
        return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--commands", type=int, default=20_000, help="commands per multi-client/stream run"
    )
    parser.add_argument(
        "--single-commands", type=int, default=3_000, help="commands per unary-1 run"
    )
    parser.add_argument("--client-procs", type=int, default=2, help="client processes (2)")
    parser.add_argument("--quick", action="store_true", help="1 round of small runs, < 30 s")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument("--dir", type=Path, default=None, help="where stores live (a real disk)")
    parser.add_argument(
        "--json",
        type=Path,
        default=None,
        help="results file (default bench/results/grpc-commit-DATE.json; none with --quick)",
    )
    parser.add_argument("--profile", type=Path, default=None, help="py-spy the controller here")
    parser.add_argument(
        "--wait-quiet",
        type=float,
        default=60.0,
        help="before each run, wait up to this many s for other load to stop (60)",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.rounds, args.commands, args.single_commands = 1, 1_500, 400
        args.wait_quiet = 0.0
    if args.json is None and not args.quick:
        args.json = HERE / "results" / f"grpc-commit-{datetime.date.today().isoformat()}.json"
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)

    specs = scenarios(args)
    if args.only:
        specs = {k: v for k, v in specs.items() if k in args.only.split(",")}
    console = Console(stderr=True, width=200)
    base = Path(tempfile.mkdtemp(prefix="statesync-grpc-bench-", dir=args.dir or Path.cwd()))
    fsync_s = store_bench().fsync_cost(base)
    console.print(f"raw fsync on {base}: {fsync_s * 1e3:.3f} ms; {os.cpu_count()} cpus")
    pool = ClientPool(args.client_procs)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in specs}
    started = time.perf_counter()
    try:
        for r in range(args.rounds):
            for name, spec in specs.items():  # alternate scenarios within each round
                waited = wait_quiet(args.wait_quiet) if args.wait_quiet > 0 else 0.0
                if waited >= args.wait_quiet > 0:
                    console.print(f"[yellow]machine still busy after {waited:.0f} s; running")
                if spec["kind"] == "store":
                    res = run_store(spec["commands"], base, r)
                else:
                    res = run_grpc(name, spec, pool, base, r, args)
                res["waited_quiet_s"] = waited
                results[name].append(res)
                console.print(
                    f"round {r + 1}/{args.rounds} {name}: {res['commands_s']:,.0f} commands/s, "
                    f"{res['ops_s']:,.0f} puts/s, p99 {res['p99_ms']:.1f} ms, controller "
                    f"{res['controller_cpu_s']:.1f} CPU s ({res['controller_cores']:.2f} cores), "
                    f"others {res['other_cores']:.2f} cores"
                )
    finally:
        pool.close()
        shutil.rmtree(base, ignore_errors=True)
    elapsed = time.perf_counter() - started

    def cell(runs: list[dict[str, Any]], field: str, fmt: str) -> str:
        vals = [x[field] for x in runs]
        return f"{statistics.median(vals):{fmt}} ({min(vals):{fmt}}-{max(vals):{fmt}})"

    table = Table(
        title=f"Commit through gRPC, fsync on, 100-byte values, {args.rounds} rounds "
        "(median, min-max)"
    )
    cols = ("scenario", "procs x clients", "commands/s", "puts/s", "p50 ms", "p99 ms")
    for col in (*cols, "server CPU s", "server cores", "client cores", "other cores"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    summary: dict[str, dict[str, float]] = {}
    for name, runs in results.items():
        first = runs[0]
        shape = (
            f"{first['client_processes']} x {first['clients']}"
            if specs[name]["kind"] != "store"
            else "in-process x 16"
        )
        table.add_row(
            LABELS[name],
            shape,
            cell(runs, "commands_s", ",.0f"),
            cell(runs, "ops_s", ",.0f"),
            cell(runs, "p50_ms", ".2f"),
            cell(runs, "p99_ms", ".1f"),
            cell(runs, "controller_cpu_s", ".1f"),
            cell(runs, "controller_cores", ".2f"),
            cell(runs, "client_cores", ".2f") if "client_cores" in first else "-",
            cell(runs, "other_cores", ".2f"),
        )
        keys = (
            "commands_s",
            "ops_s",
            "p50_ms",
            "p99_ms",
            "controller_cpu_s",
            "controller_cores",
            "other_cores",
        )
        summary[name] = {k: statistics.median(x[k] for x in runs) for k in keys}
        if "client_cores" in first:
            summary[name]["client_cores"] = statistics.median(x["client_cores"] for x in runs)
    Console(width=220).print(table)
    ratios = {}
    if "store-async-16" in summary:
        store = summary["store-async-16"]["commands_s"]
        for name in ("unary-16", "stream-1put", "stream-10put"):
            if name in summary:
                ratios[f"{name}/store-async-16"] = summary[name]["commands_s"] / store
    for name, noop in (("unary-16", "noop-unary-16"), ("stream-1put", "noop-stream")):
        if name in summary and noop in summary:
            ratios[f"{name}/{noop}"] = summary[name]["commands_s"] / summary[noop]["commands_s"]
    if ratios:
        print(
            "ratios of median commands/s: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
        )
    print(
        "server CPU = controller process utime+stime over the timed window "
        "(store row: the whole in-process benchmark); cores = CPU s / wall s; other cores = "
        "busy CPU of everything else on the machine (interference)"
    )
    for name, runs in results.items():
        if "controller_threads_cpu_s" in runs[0]:
            mid = sorted(runs, key=lambda x: x["commands_s"])[len(runs) // 2]
            top = list(mid["controller_threads_cpu_s"].items())[:4]
            print(f"  {name} threads: " + ", ".join(f"{t} {s:.1f}s" for t, s in top))
    print(
        f"raw fsync: {fsync_s * 1e3:.3f} ms; python {sys.version.split()[0]}; grpc "
        f"{grpc.__version__}; {os.cpu_count()} cpus; {args.client_procs} client processes; "
        f"{elapsed:.0f} s"
    )
    if args.profile:
        for path in sorted(args.profile.glob("*.txt")):
            print("\n".join(summarize_profile(path)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_bytes(
            orjson.dumps(
                {
                    "date": datetime.date.today().isoformat(),
                    "git": git_commit(),
                    "python": sys.version.split()[0],
                    "grpc": grpc.__version__,
                    "cpus": os.cpu_count(),
                    "fsync_ms": fsync_s * 1e3,
                    "client_processes": args.client_procs,
                    "window": WINDOW,
                    "profiled": bool(args.profile),
                    "rounds": results,
                    "median": summary,
                    "ratios": ratios,
                },
                option=orjson.OPT_INDENT_2,
            )
        )
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
