"""The scenarios: each takes a started `System` and returns plain figures.

Every client runs in an `Agent` process. Latencies across processes use one
clock (`time.time()` on the same machine)."""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench._controller import Profiler, cpu_seconds, pct, rss_mb
from bench.suite.agents import Agent, close_all, gather, key_name
from bench.suite.systems.base import System


@dataclass(frozen=True)
class Sizes:
    seq_seconds: float
    parallel_seconds: float
    clients: int
    window_puts: int
    window: int
    batches: int
    batch_size: int
    batch_window: int
    fan_rate: float
    fan_seconds: float
    fan_watchers: int
    storm_workers: int
    cold_workers: int
    cold_keys: int
    bootstrap_keys: tuple[int, ...]
    drift_keys: int
    drift_k: tuple[int, ...]
    away_keys: int
    commit_commands: int
    agent_processes: int
    repeats: int


SMOKE = Sizes(
    seq_seconds=0.5,
    parallel_seconds=0.5,
    clients=16,
    window_puts=500,
    window=256,
    batches=20,
    batch_size=100,
    batch_window=8,
    fan_rate=200,
    fan_seconds=1,
    fan_watchers=4,
    storm_workers=8,
    cold_workers=8,
    cold_keys=2_000,
    bootstrap_keys=(2_000,),
    drift_keys=2_000,
    drift_k=(1, 10),
    away_keys=2_000,
    commit_commands=400,
    agent_processes=2,
    repeats=1,
)
QUICK = Sizes(
    seq_seconds=3,
    parallel_seconds=5,
    clients=16,
    window_puts=20_000,
    window=256,
    batches=400,
    batch_size=100,
    batch_window=8,
    fan_rate=2000,
    fan_seconds=10,
    fan_watchers=32,
    storm_workers=200,
    cold_workers=200,
    cold_keys=20_000,
    bootstrap_keys=(200_000,),
    drift_keys=200_000,
    drift_k=(1, 10, 1000),
    away_keys=200_000,
    commit_commands=5_000,
    agent_processes=8,
    repeats=3,
)
FULL = dataclasses.replace(QUICK, bootstrap_keys=(200_000, 1_000_000), drift_keys=1_000_000)
MODES = {"smoke": SMOKE, "quick": QUICK, "full": FULL}


class Context:
    """What a scenario needs besides the system: sizes, where files go, output."""

    def __init__(
        self, sizes: Sizes, workdir: Path, console: Console, profile_dir: Path | None
    ) -> None:
        self.sizes = sizes
        self.workdir = workdir
        self.console = console
        self.profile_dir = profile_dir
        self._next_key = 0
        self._agents = 0

    def keys(self, count: int) -> int:
        """A fresh block of key numbers, so no scenario overwrites another's keys."""
        first = 10_000_000 + self._next_key
        self._next_key += count + 1
        return first

    def agents(self, system: System, count: int, role: str) -> list[Agent]:
        out = []
        for _ in range(count):
            self._agents += 1
            name = f"{system.name}-{role}-{self._agents}"
            out.append(Agent(system.spec(), system.endpoint(), name, self.workdir / f"{name}.log"))
        return out

    def profiler(self, system: System, tag: str, pid: int | None = None) -> Profiler | None:
        """py-spy on statesync's controller (or on `pid`, a worker), with --profile."""
        if self.profile_dir is None or system.name != "statesync":
            return None
        return Profiler(pid or system.server_pids()[0], self.profile_dir / f"{tag}.txt")


def server_cpu(system: System) -> float:
    return sum(cpu_seconds(pid) for pid in system.server_pids())


def server_rss(system: System, field: str = "VmRSS") -> float:
    return sum(rss_mb(pid, field) for pid in system.server_pids())


def latency_summary(latencies: list[float], elapsed: float) -> dict[str, Any]:
    return {
        "ops": len(latencies),
        "ops_per_s": len(latencies) / elapsed,
        "p50_ms": pct(latencies, 0.50) * 1e3,
        "p99_ms": pct(latencies, 0.99) * 1e3,
        "max_ms": max(latencies) * 1e3,
        "cdf_ms": sorted_sample(latencies, 200),
    }


def sorted_sample(values: list[float], points: int) -> list[float]:
    """`points` evenly spaced quantiles (ms), enough to draw a CDF."""
    ordered = sorted(values)
    if not ordered:
        return []
    n = len(ordered)
    return [ordered[min(n - 1, int(i * n / points))] * 1e3 for i in range(points)] + [
        ordered[-1] * 1e3
    ]


# ---------------------------------------------------------------- durable writes


def durable_writes(system: System, ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    out: dict[str, Any] = {}
    [single] = ctx.agents(system, 1, "writer")
    per_agent = max(1, s.clients // 2)
    parallel = ctx.agents(system, 2, "writers")
    try:
        r = single.request("put_seq", seconds=s.seq_seconds, first=ctx.keys(10**6))
        out["sequential"] = latency_summary(r["latencies"], r["elapsed"])
        prof = ctx.profiler(system, "writes-parallel")
        cpu0 = server_cpu(system)
        runs = gather(
            parallel,
            "put_parallel",
            clients=per_agent,
            seconds=s.parallel_seconds,
            first=ctx.keys(10**8),
        )
        lat = [x for r in runs for x in r["latencies"]]
        out["parallel"] = latency_summary(lat, max(r["elapsed"] for r in runs))
        out["parallel"]["clients"] = per_agent * len(parallel)
        out["parallel"]["server_cpu_s"] = server_cpu(system) - cpu0
        if prof is not None:
            prof.stop()
            out["parallel"]["profile"] = prof.summary()
        r = single.request(
            "put_window", count=s.window_puts, window=s.window, first=ctx.keys(s.window_puts)
        )
        out["window"] = latency_summary(r["latencies"], r["elapsed"])
        out["window"]["window"] = s.window
        r = single.request(
            "put_batches",
            batches=s.batches,
            size=s.batch_size,
            window=s.batch_window,
            first=ctx.keys(s.batches * s.batch_size),
        )
        if r is not None:
            out["batched"] = latency_summary(r["latencies"], r["elapsed"])
            out["batched"]["puts_per_s"] = s.batches * s.batch_size / r["elapsed"]
    finally:
        close_all([single, *parallel])
    return out


# ---------------------------------------------------------------- fan-out


def watching(system: System, ctx: Context, count: int, role: str) -> tuple[list[Agent], Agent]:
    """`count` watchers at the head, spread over the agent processes, and a writer."""
    procs = min(ctx.sizes.agent_processes, count)
    watchers = ctx.agents(system, procs, role)
    [writer] = ctx.agents(system, 1, f"{role}-writer")
    try:
        head = writer.request("head")
        gather(watchers, "watch", watchers=count // procs, from_revision=head)
    except BaseException:
        close_all([*watchers, writer])
        raise
    return watchers, writer


def fan_out(system: System, ctx: Context) -> dict[str, Any]:
    s = ctx.sizes
    watchers, writer = watching(system, ctx, s.fan_watchers, "watchers")
    try:
        prof = ctx.profiler(system, "fanout")
        cpu0, t0 = server_cpu(system), time.perf_counter()
        first = ctx.keys(int(s.fan_rate * s.fan_seconds))
        written = writer.request("put_rate", rate=s.fan_rate, seconds=s.fan_seconds, first=first)
        # Every acknowledged write, not just the last one sent: concurrent puts
        # may commit in another order than they were sent.
        gather(watchers, "wait_seen", keys=[k for k, _, _ in written["acked"]], within=60)
        cpu = server_cpu(system) - cpu0
        wall = time.perf_counter() - t0
        if prof is not None:
            prof.stop()
        seen = [w for per_agent in gather(watchers, "collect") for w in per_agent]
    finally:
        close_all([*watchers, writer])
    # Latency runs from the moment the writer sent each write: measured from its
    # acknowledgement it reads 0 whenever the writer itself is the bottleneck.
    acked = {key: (t_sent, t_ack) for key, t_sent, t_ack in written["acked"]}
    latencies: list[float] = []
    after_ack: list[float] = []
    missing = early = 0
    for view in seen:
        for key, (t_sent, t_ack) in acked.items():
            t = view.get(key)
            if t is None:
                missing += 1
                continue
            if t < t_ack:
                early += 1
            latencies.append(max(0.0, t - t_sent))
            after_ack.append(max(0.0, t - t_ack))
    delivered = sum(len(v) for v in seen)
    out = latency_summary(latencies, written["elapsed"])
    del out["ops_per_s"]
    out["after_ack"] = {
        "p50_ms": pct(after_ack, 0.50) * 1e3,
        "p99_ms": pct(after_ack, 0.99) * 1e3,
    }
    out.update(
        writes=len(acked),
        write_errors=len(written["errors"]),
        first_write_error=written["errors"][0] if written["errors"] else "",
        writes_per_s=len(acked) / written["elapsed"],
        writes_sent_late=written["late"],
        put_p99_ms=pct([t_ack - t_sent for _, t_sent, t_ack in written["acked"]], 0.99) * 1e3,
        watchers=len(seen),
        events_delivered=delivered,
        events_per_s=delivered / wall,
        missing=missing,
        applied_before_ack=early,
        server_cpu_s=cpu,
        server_cpu_pct=cpu / wall * 100,
    )
    if prof is not None:
        out["profile"] = prof.summary()
    return out


# ---------------------------------------------------------------- reconnect storm


def reconnect_storm(system: System, ctx: Context) -> dict[str, Any]:
    t0 = time.perf_counter()
    watchers, writer = watching(system, ctx, ctx.sizes.storm_workers, "storm")
    connect_s = time.perf_counter() - t0
    try:
        stopped = time.time()
        system.restart()
        ready = time.time()
        marker = key_name(ctx.keys(1))
        writer.request("put_keys", keys=[marker])
        seen = [t for per in gather(watchers, "wait_seen", keys=[marker], within=120) for t in per]
        peak = server_rss(system, "VmHWM")
    finally:
        close_all([*watchers, writer])
    late = [t for t in seen if t is not None]
    return {
        "workers": len(seen),
        "caught_up": len(late),
        "initial_connect_s": connect_s,
        "restart_s": ready - stopped,
        "restart_to_all_at_head_s": (max(late) - stopped) if late else float("nan"),
        "ready_to_all_at_head_s": (max(late) - ready) if late else float("nan"),
        "ready_to_median_at_head_s": (pct(late, 0.5) - ready) if late else float("nan"),
        "server_peak_rss_mb": peak,
    }


# ---------------------------------------------------------------- cold storm


def cold_storm(system: System, ctx: Context) -> dict[str, Any]:
    """Empty readers all connecting at once to a loaded namespace, until each is
    at the head; each should take one full transfer and no reconnect."""
    s = ctx.sizes
    [loader] = ctx.agents(system, 1, "cold-loader")
    try:
        head = loader.request("load", first=0, count=s.cold_keys, timeout=3600)
    finally:
        close_all([loader])
    procs = min(s.agent_processes, s.cold_workers)
    readers = ctx.agents(system, procs, "cold")
    try:
        rss0 = server_rss(system)
        # Every agent has its request and its imports done before the start.
        start_at = time.time() + 2.0
        joined = [
            r
            for per in gather(
                readers,
                "join",
                timeout=3600,
                readers=s.cold_workers // procs,
                head=head,
                start_at=start_at,
            )
            for r in per
        ]
        peak = server_rss(system, "VmHWM")
    finally:
        close_all(readers)
    at = [r["at"] - start_at for r in joined]

    def total(field: str) -> int | None:
        counts = [r[field] for r in joined]
        return None if None in counts else sum(counts)

    keys = [r["keys"] for r in joined if r["keys"] is not None]
    if any(k != s.cold_keys for k in keys):
        raise RuntimeError(f"{system.name}: a reader holds {min(keys)} keys, not {s.cold_keys}")
    return {
        "workers": len(joined),
        "keys": s.cold_keys,
        "all_at_head_s": max(at),
        "half_at_head_s": pct(at, 0.5),
        "first_at_head_s": min(at),
        "transfers": total("transfers"),
        "reconnects": total("reconnects"),
        "server_rss_before_mb": rss0,
        "server_peak_rss_mb": peak,
    }


# ---------------------------------------------------------------- bootstrap, memory


def bootstrap(system: System, ctx: Context) -> dict[str, Any]:
    """Load keys in steps up to each size; at each, a fresh reader reaches the head."""
    out: dict[str, Any] = {"sizes": []}
    [loader] = ctx.agents(system, 1, "loader")
    try:
        rss_empty = server_rss(system)
        loaded = 0
        for size in ctx.sizes.bootstrap_keys:
            t0 = time.perf_counter()
            head = loader.request("load", first=loaded, count=size - loaded, timeout=3600)
            load_s = time.perf_counter() - t0
            loaded = size
            [reader] = ctx.agents(system, 1, "reader")
            try:
                rss0 = reader.request("rss")["rss_mb"]
                if system.bootstraps_a_worker:
                    state = ctx.workdir / f"boot-{size}-{time.monotonic_ns()}"
                    prof = ctx.profiler(system, f"bootstrap-{size}-worker", reader.pid)
                    r = reader.request("bootstrap", state_dir=str(state), expect=size)
                    rss0 = r.pop("reader_rss_empty_mb", rss0)
                    if prof is not None:
                        prof.stop()
                        r["profile"] = prof.summary()
                else:
                    r = reader.request("list_all", expect=size)
                    if r["differ"]:
                        raise RuntimeError(f"{system.name}: {r['differ']} keys listed wrong")
            finally:
                close_all([reader])
            r.update(
                keys=size,
                head=head,
                load_s=load_s,
                server_rss_mb=server_rss(system),
                server_rss_empty_mb=rss_empty,
                reader_rss_empty_mb=rss0,
            )
            r["server_mb_per_million_keys"] = (r["server_rss_mb"] - rss_empty) / size * 1e6
            r["reader_mb_per_million_keys"] = (r["peak_rss_mb"] - rss0) / size * 1e6
            out["sizes"].append(r)
            received = "bytes not counted" if r["bytes"] is None else f"{r['bytes']:,} bytes"
            ctx.console.print(
                f"    {size:,} keys: {r['seconds']:.2f} s, {received} (loaded in {load_s:.1f} s)"
            )
    finally:
        close_all([loader])
    return out


# ---------------------------------------------------------------- drift


def statesync_reconcile(ctx: Context, repeat: int, seed: int) -> dict[str, Any]:
    """k drifted keys found and repaired by descent, and a worker away while 1%
    changed and history was compacted (bench/suite/drift.py)."""
    from bench.suite import drift as reconcile

    s = ctx.sizes
    base = ctx.workdir / "statesync-reconcile"
    base.mkdir(exist_ok=True)
    args = argparse.Namespace(
        keys=s.drift_keys,
        k=list(s.drift_k),
        single=["wrong"],
        rounds=1,
        away_keys=s.away_keys,
        away_fraction=0.01,
        case_timeout=120,
        retry_silence=60,
        seed=seed + repeat,
        reuse=True,
    )
    quiet = Console(file=open(base / "reconcile.log", "a"))  # noqa: SIM115 - lives with the run
    drift = reconcile.run_drift(args, base, quiet)
    away_base = base / f"away-{repeat}"
    away_base.mkdir(exist_ok=True)
    away = reconcile.run_away(args, away_base, quiet)
    cases = {}
    for run in drift["runs"]:
        if run["converged"]:
            cases[str(run["k"])] = {
                "bytes": run["bytes"],
                "seconds": run["repair_seconds"],
                "round_trips": run["round_trips"],
                "worker_peak_rss_mb": run["worker_peak_rss_mb"],
                "problems": run["problems"],
            }
    back = away["reconcile"]
    return {
        "keys": s.drift_keys,
        "cases": cases,
        "relist": drift["relist"][-1],
        "away": {
            "keys": s.away_keys,
            "changed": away["changes"]["keys"],
            "bytes": back["bytes"],
            "seconds": back["repair_seconds"],
            "start_to_agree_s": back["start_to_agree_s"],
            "snapshot_bytes": away["snapshot"]["bytes"],
            "snapshot_seconds": away["snapshot"]["seconds"],
        },
    }
