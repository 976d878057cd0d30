"""`statesync worker` and `statesync replica dump` (the worker side of the CLI)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import orjson

from statesync.client import default_server
from statesync.core.canonical import parse_json
from statesync.core.errors import InvalidInputError
from statesync.worker import ChangeEvent, Reject, Worker, WorkerSettings, read_offline

__all__ = ["add_parsers"]

log = logging.getLogger("statesync.worker")

EXIT_REJECT = 65
"""An --exec command that exits 65 (EX_DATAERR) refuses the change: NACK, keep the last value."""

_WORKER_EPILOG = """\
examples:
  statesync worker --id w1 --ns routes --state-dir ./w1
  statesync worker --id w2 --ns routes,flags --state-dir ./w2 --exec './apply.sh'
  statesync worker --id old --ns orders --state-dir ./old --versions orders=1
  statesync worker --id new --ns orders --state-dir ./new --schema orders@2=orders.v2.json

With --versions or --schema the worker declares the schema versions it
understands: the controller serves each change in the newest of them,
translated from the version it was written in. The worker checks every value
against that version's schema (its own file with --schema, else the one
registered) and NACKs what does not conform, keeping the last good value.

With --exec, CMD runs (through /bin/sh) once per applied change, with the change
as JSON on stdin and these variables set: STATESYNC_COMMAND_ID (an idempotency
key for side effects), STATESYNC_REV, STATESYNC_NS, STATESYNC_KEY, STATESYNC_OP
(put|delete), STATESYNC_WORKER_ID, and TRACEPARENT when the writer sent one.
The change is committed to the replica only after CMD succeeds: a failing CMD
is retried with backoff and logged, never skipped. Exit 65 refuses the change
(the worker NACKs it and keeps the key's last good value).
"""


def _exec_handler(command: str, worker_id: str) -> Callable[[ChangeEvent], Awaitable[None]]:
    async def run(event: ChangeEvent) -> None:
        env = dict(
            os.environ,
            STATESYNC_COMMAND_ID=event.command_id,
            STATESYNC_REV=str(event.rev),
            STATESYNC_NS=event.ns,
            STATESYNC_KEY=event.key,
            STATESYNC_OP=event.op,
            STATESYNC_WORKER_ID=worker_id,
        )
        if event.trace:
            env["TRACEPARENT"] = event.trace
        process = await asyncio.create_subprocess_shell(
            command, stdin=asyncio.subprocess.PIPE, env=env
        )
        await process.communicate(orjson.dumps(event.to_json()) + b"\n")
        if process.returncode == EXIT_REJECT:
            raise Reject(f"--exec command refused the change (exit {EXIT_REJECT})")
        if process.returncode != 0:
            raise RuntimeError(f"--exec command exited with status {process.returncode}")

    return run


def _versions(items: list[str]) -> dict[str, list[int]]:
    """--versions NS=V[,V...] (repeatable)."""
    out: dict[str, list[int]] = {}
    for item in items:
        ns, sep, numbers = item.partition("=")
        try:
            versions = [int(v.removeprefix("v")) for v in numbers.split(",") if v]
        except ValueError:
            versions = []
        if not sep or not versions or min(versions) < 1:
            raise InvalidInputError(f"--versions {item!r}: expected NS=V[,V...], e.g. orders=1,2")
        out.setdefault(ns, []).extend(versions)
    return out


def _schemas(items: list[str]) -> dict[str, dict[int, object]]:
    """--schema NS@V=FILE (repeatable)."""
    out: dict[str, dict[int, object]] = {}
    for item in items:
        target, sep, path = item.partition("=")
        ns, at, version = target.partition("@")
        if not sep or not at or not version.isdigit() or int(version) < 1:
            raise InvalidInputError(f"--schema {item!r}: expected NS@VERSION=FILE")
        try:
            text = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidInputError(
                f"--schema {item!r}: cannot read {path}: {exc.strerror}"
            ) from None
        out.setdefault(ns, {})[int(version)] = parse_json(text)
    return out


def cmd_worker(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    namespaces = [ns for part in args.ns for ns in part.split(",") if ns]
    try:
        worker = _worker(args, namespaces)
    except ValueError as exc:  # the SDK's argument checks
        raise InvalidInputError(str(exc)) from None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker.stop_soon)
        await worker.run()

    log.info(
        "worker %s: namespaces %s, state in %s, applied revision %d",
        args.id,
        ",".join(namespaces),
        args.state_dir,
        worker.applied_rev,
    )
    asyncio.run(main())
    return 0


def _worker(args: argparse.Namespace, namespaces: list[str]) -> Worker:
    return Worker(
        getattr(args, "server", None) or default_server(),
        worker_id=args.id,
        namespaces=namespaces,
        state_dir=args.state_dir,
        handler=_exec_handler(args.exec, args.id) if args.exec else None,
        settings=WorkerSettings(
            heartbeat_s=args.heartbeat,
            stale_after_s=args.stale_after,
            chaos_drop=args.chaos_drop,
            chaos_corrupt=args.chaos_corrupt,
            chaos_seed=args.chaos_seed,
        ),
        deltas=args.deltas,
        schemas=_schemas(args.schema),
        versions=_versions(args.versions),
    )


def cmd_replica_dump(args: argparse.Namespace) -> int:
    dump = read_offline(Path(args.state_dir))
    namespaces = dump["namespaces"]
    assert isinstance(namespaces, dict)
    dump["namespaces"] = {
        ns: {key: orjson.loads(value) for key, value in keyed.items()}
        for ns, keyed in namespaces.items()
    }
    sys.stdout.write(orjson.dumps(dump).decode() + "\n")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "worker",
        help="run a worker replica until SIGTERM",
        description="Keep a local replica of namespaces in step with the controller; "
        "optionally run a command for each applied change.",
        epilog=_WORKER_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--id", required=True, help="worker id, stable across restarts")
    p.add_argument(
        "--ns", required=True, action="append", help="namespaces, comma-separated (repeatable)"
    )
    p.add_argument("--state-dir", required=True, type=Path, help="where the replica is persisted")
    p.add_argument("--exec", metavar="CMD", help="run CMD for each applied change")
    p.add_argument(
        "--server",
        default=argparse.SUPPRESS,
        help="controller address (default: $STATESYNC_SERVER or 127.0.0.1:7700)",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=1.0,
        metavar="S",
        help="seconds between heartbeats (default 1)",
    )
    p.add_argument(
        "--stale-after",
        type=float,
        default=5.0,
        metavar="S",
        help="reconnect when nothing is heard for S seconds (default 5)",
    )
    p.add_argument(
        "--deltas",
        action="store_true",
        help="receive updates as JSON Patch deltas where smaller (checked by hash)",
    )
    p.add_argument(
        "--versions",
        action="append",
        default=[],
        metavar="NS=V[,V...]",
        help="schema versions of NS this worker understands (their schemas come from the "
        "registry); repeatable",
    )
    p.add_argument(
        "--schema",
        action="append",
        default=[],
        metavar="NS@V=FILE",
        help="check version V of NS against this local JSON Schema file (declares V); repeatable",
    )
    p.add_argument(
        "--chaos-drop",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fault injection: silently skip this fraction of changes, as a buggy worker "
        "would (0..1; default 0; logged loudly when on)",
    )
    p.add_argument(
        "--chaos-corrupt",
        type=float,
        default=0.0,
        metavar="RATE",
        help="fault injection: store a wrong value for this fraction of puts (0..1)",
    )
    p.add_argument("--chaos-seed", type=int, metavar="N", help="seed the fault injection")
    p.set_defaults(func=cmd_worker)

    replica = sub.add_parser(
        "replica",
        help="inspect a worker's replica offline",
        description="Read a worker's state directory without the worker or the controller.",
    )
    replica_sub = replica.add_subparsers(dest="replica_command", required=True)
    dump = replica_sub.add_parser(
        "dump",
        help="print the replica as JSON",
        description='Print {"worker_id", "applied_rev", "namespaces": {NS: {KEY: VALUE}}, '
        '"held": [...]} read from --state-dir.',
    )
    dump.add_argument("--state-dir", required=True, type=Path)
    dump.set_defaults(func=cmd_replica_dump)
