"""`python -m bench`: set every system up, run the scenarios in rounds that
alternate between systems, write results.json, report.md and plots."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console

from bench._controller import MachineLoad, git_describe
from bench.suite import inprocess, report, scenarios
from bench.suite.report import WORKER_SDK_SYSTEMS
from bench.suite.scenarios import MODES, Context
from bench.suite.systems.base import System

SYSTEMS = ("statesync", "statesync-go", "statesync-rust", "etcd", "nats", "nats-sync", "nats-r3")
DATA_SYSTEMS = ("statesync", "statesync-go", "statesync-rust", "etcd", "nats")
"""Read-path scenarios (bootstrap, reconnect and cold storms, drift, memory) run on one
configuration per product: nats-sync and nats-r3 share nats's read path."""
SCENARIOS = ("writes", "fanout", "storm", "coldstorm", "bootstrap", "drift", "commit")
RESULTS = Path(__file__).resolve().parents[1] / "results"

EPILOG = """
modes:
  --smoke   under a minute, tiny sizes, one round: keeps the harness from rotting (CI)
  --quick   the issue's sizes, bootstrap 200,000 keys, drift over 200,000, 3 rounds
  --full    as --quick, plus bootstrap of 1,000,000 keys and drift over 1,000,000

Each round runs every system in turn (statesync, statesync-go, statesync-rust,
etcd, nats, nats-sync, nats-r3, then again), each on a fresh data directory.
statesync-go and statesync-rust are statesync's controller with the Go and Rust
SDK worker programs as watchers (fan-out, storm) and bootstrapping reader; they
are built once per run (go, cargo --release), before the rounds. The report quotes the median of
the rounds with min-max. etcd comes from Debian (apt-get install etcd-server);
without it, etcd is left out with a warning (in CI, that is an error).

examples:
  python -m bench --smoke
  python -m bench --full --profile          # the committed report
  python -m bench --quick --systems statesync,nats --scenarios writes,fanout
  python -m bench --quick --systems statesync --scenarios commit   # store only, ~1 minute
"""


def system_class(name: str) -> type[System]:
    if name == "statesync":
        from bench.suite.systems.statesync_sys import Statesync

        return Statesync
    if name in WORKER_SDK_SYSTEMS:
        from bench.suite.systems import sdk_workers

        return {
            "statesync-go": sdk_workers.StatesyncGo,
            "statesync-rust": sdk_workers.StatesyncRust,
        }[name]
    if name == "etcd":
        from bench.suite.systems.etcd_sys import Etcd

        return Etcd
    from bench.suite.systems import nats_sys

    return {"nats": nats_sys.Nats, "nats-sync": nats_sys.NatsSync, "nats-r3": nats_sys.NatsR3}[name]


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="statesync side by side with etcd and NATS JetStream, measured in one run "
        "on this machine: durable writes, fan-out, bootstrap, reconnect storm, drift, memory; "
        "and statesync's own in-process commit figures.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    mode = parser.add_mutually_exclusive_group()
    for name in MODES:
        mode.add_argument(f"--{name}", dest="mode", action="store_const", const=name)
    parser.set_defaults(mode="quick")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated")
    parser.add_argument("--repeats", type=int, default=None, help="rounds (default: 3; smoke 1)")
    parser.add_argument(
        "--out", type=Path, default=None, help="default bench/results/DATE (smoke: a temp dir)"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="data dirs (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep data directories and logs")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy the statesync controller (writes, fan-out)"
    )
    parser.add_argument("--no-plots", action="store_true")
    args = parser.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    args.scenarios = [s for s in args.scenarios.split(",") if s]
    for name in args.systems:
        if name not in SYSTEMS:
            parser.error(f"unknown system {name!r}; choose from {', '.join(SYSTEMS)}")
    for name in args.scenarios:
        if name not in SCENARIOS:
            parser.error(f"unknown scenario {name!r}; choose from {', '.join(SCENARIOS)}")
    return args


def available(names: list[str], console: Console, ci: bool) -> list[str]:
    if "etcd" in names and shutil.which("etcd") is None:
        message = "etcd is not installed (apt-get install etcd-server)"
        if ci:
            raise SystemExit(f"error: {message}; CI must cover etcd")
        console.print(f"[yellow]warning: {message}: leaving etcd out[/yellow]")
        names = [n for n in names if n != "etcd"]
    return names


def run_system(name: str, args: argparse.Namespace, ctx: Context, repeat: int) -> dict[str, Any]:
    """One system, one round: a live server for writes, fan-out and the storm,
    a fresh one for the cold storm, another for bootstrap and memory;
    statesync's drift cases."""
    cls = system_class(name)
    out: dict[str, Any] = {"system": name, "repeat": repeat, "errors": {}}
    live = [s for s in ("writes", "fanout", "storm") if s in args.scenarios]
    if name not in DATA_SYSTEMS:
        live = [s for s in live if s != "storm"]
    if name in WORKER_SDK_SYSTEMS:
        live = [s for s in live if s != "writes"]
    phases: list[tuple[str, list[str]]] = [("live", live)]
    if name in DATA_SYSTEMS and "coldstorm" in args.scenarios:
        phases.append(("cold", ["coldstorm"]))
    if name in DATA_SYSTEMS and {"bootstrap", "drift"} & set(args.scenarios):
        phases.append(("data", ["bootstrap"]))
    runners: dict[str, Callable[[System, Context], dict[str, Any]]] = {
        "writes": scenarios.durable_writes,
        "fanout": scenarios.fan_out,
        "storm": scenarios.reconnect_storm,
        "coldstorm": scenarios.cold_storm,
        "bootstrap": scenarios.bootstrap,
    }
    for phase, todo in phases:
        if not todo:
            continue
        workdir = ctx.workdir / f"r{repeat}-{name}-{phase}"
        workdir.mkdir(parents=True)
        system = cls(workdir)
        profiles = ctx.profile_dir and ctx.profile_dir / f"r{repeat}"
        if profiles:
            profiles.mkdir(parents=True, exist_ok=True)
        phase_ctx = Context(ctx.sizes, workdir, ctx.console, profiles)
        t0 = time.perf_counter()
        system.start()
        out[f"{phase}_start_s"] = time.perf_counter() - t0
        try:
            for scenario in todo:
                ctx.console.print(f"  {name}: {scenario}")
                t0 = time.perf_counter()
                try:
                    out[scenario] = runners[scenario](system, phase_ctx)
                except Exception:
                    out["errors"][scenario] = traceback.format_exc()
                    ctx.console.print(f"[red]  {name}: {scenario} failed[/red]")
                    ctx.console.print(out["errors"][scenario][-1500:], markup=False)
                out.setdefault("scenario_s", {})[scenario] = time.perf_counter() - t0
        finally:
            try:
                system.stop()
            except Exception:
                out["errors"][f"{phase}-stop"] = traceback.format_exc()
    if name == "statesync" and "commit" in args.scenarios:
        ctx.console.print("  statesync: in-process commit (no network)")
        workdir = ctx.workdir / f"r{repeat}-{name}-commit"
        workdir.mkdir(parents=True)
        try:
            out["commit"] = inprocess.commit(workdir, ctx.sizes.commit_commands)
        except Exception:
            out["errors"]["commit"] = traceback.format_exc()
            ctx.console.print(out["errors"]["commit"][-1500:], markup=False)
    if name == "statesync" and "drift" in args.scenarios:
        ctx.console.print("  statesync: drift and away (bench/suite/drift.py)")
        try:
            out["drift"] = scenarios.statesync_reconcile(ctx, repeat, seed=1)
        except Exception:
            out["errors"]["drift"] = traceback.format_exc()
            ctx.console.print(out["errors"]["drift"][-1500:], markup=False)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    console = Console(stderr=True)
    sizes = MODES[args.mode]
    if args.repeats is not None:
        sizes = dataclasses.replace(sizes, repeats=args.repeats)
    names = available(args.systems, console, ci=bool(os.environ.get("CI")))
    today = datetime.date.today().isoformat()
    out_dir = args.out or (
        Path(tempfile.mkdtemp(prefix="bench-smoke-")) if args.mode == "smoke" else RESULTS / today
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="statesync-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    profile_dir = out_dir / "profiles" if args.profile else None
    ctx = Context(sizes, workdir, console, profile_dir)
    command = "python -m bench " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict[str, Any] = {
        "command": command.strip(),
        "mode": args.mode,
        "date": today,
        "git": git_describe(),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sizes": sizes.__dict__,
        "systems": {},
        "runs": [],
    }
    for name in names:
        cls = system_class(name)
        results["systems"][name] = {
            "label": cls.label,
            "durability": cls.durability,
            "client": cls.client,
        }
        if name in WORKER_SDK_SYSTEMS:
            # Once per run, before the rounds: the build is not measured.
            console.print(f"building {name}'s worker program")
            bin_dir = workdir / "bin"
            bin_dir.mkdir(exist_ok=True)
            results["systems"][name]["build"] = cls.build(bin_dir)  # type: ignore[attr-defined]
    t_all, load = time.perf_counter(), MachineLoad()
    console.print(
        f"python -m bench --{args.mode}: {', '.join(names)}; {sizes.repeats} round(s); "
        f"data in {workdir}; results in {out_dir}"
    )
    try:
        for repeat in range(sizes.repeats):
            for name in names:
                console.print(f"[bold]round {repeat + 1}/{sizes.repeats}: {name}[/bold]")
                results["runs"].append(run_system(name, args, ctx, repeat))
                (out_dir / "results.json").write_bytes(
                    orjson.dumps(results, option=orjson.OPT_INDENT_2)
                )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    results["runtime_s"] = time.perf_counter() - t_all
    results["machine_load"] = load.finish()
    (out_dir / "results.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    report.write(results, out_dir, plots=not args.no_plots)
    console.print(f"report: {out_dir / 'report.md'} ({results['runtime_s']:.0f} s)")
    errors = [(r["system"], k, v) for r in results["runs"] for k, v in r["errors"].items()]
    for system, scenario, text in errors:
        console.print(f"[red]error: {system} {scenario}: {text.strip().splitlines()[-1]}[/red]")
    return 1 if errors else 0
