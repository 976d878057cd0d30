"""`statesync rollback` (restore keys to an earlier revision with one new command) and
`statesync reconcile` (check workers now: find, repair and verify drift)."""

from __future__ import annotations

import argparse
import sys

import orjson

from statesync.cli.args import command, revision
from statesync.client import Client, default_server
from statesync.core.commands import Limits
from statesync.core.errors import InvalidInputError
from statesync.core.model import CONTRACTS_NAMESPACE, check_namespace

__all__ = ["add_parsers"]


def _dump(obj: object) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def cmd_rollback(args: argparse.Namespace) -> int:
    namespaces = [ns for part in args.ns or () for ns in part.split(",") if ns]
    for ns in namespaces:
        check_namespace(ns)
    if args.key is not None and len(namespaces) != 1:
        raise InvalidInputError("--key needs exactly one --ns")
    with Client(getattr(args, "server", None) or default_server()) as client:
        if not namespaces:
            namespaces = [n.ns for n in client.status().namespaces if n.ns != CONTRACTS_NAMESPACE]
        head, steps = client.rollback_plan(args.to_rev, namespaces, key=args.key)
        for step in steps:
            _dump(step.to_json())
        limit = Limits().max_ops
        if len(steps) > limit:
            raise InvalidInputError(
                f"rolling back to revision {args.to_rev} changes {len(steps)} keys; one "
                f"command holds at most {limit}: narrow it with --ns or --key"
            )
        summary = {"to_rev": args.to_rev, "head_rev": head, "keys": len(steps)}
        if args.dry_run or not steps:
            _dump({**summary, "written": False})
            return 0
        committed = client.rollback(steps, command_id=args.id)
    _dump({**summary, "written": True, "rev": committed.rev, "command_id": committed.command_id})
    return 0


EXIT_INCOMPLETE = 8
_SETTLED = {"verified", "no drift", "nothing to repair"}


def cmd_reconcile(args: argparse.Namespace) -> int:
    namespaces = [ns for part in args.ns or () for ns in part.split(",") if ns]
    workers = [w for part in args.worker or () for w in part.split(",") if w]
    with Client(getattr(args, "server", None) or default_server()) as client:
        results = client.reconcile(workers=workers, namespaces=namespaces, timeout=args.timeout)
    unsettled = 0
    for result in results:
        r = result.record
        unsettled += r.outcome not in _SETTLED
        _dump(
            {
                "worker": result.worker_id,
                "ns": r.ns,
                "outcome": r.outcome,
                "keys_repaired": r.key_count,
                "keys": list(r.keys),
                "round_trips": r.round_trips,
                "bytes": r.bytes,
                "seconds": round(r.seconds, 3),
            }
        )
    if not results:
        sys.stderr.write("statesync: no worker is connected\n")
    if unsettled:
        sys.stderr.write(
            f"statesync: error: {unsettled} check(s) did not end verified or without drift\n"
        )
        return EXIT_INCOMPLETE
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = command(
        sub,
        "rollback",
        "restore keys to their values at an earlier revision (one new command)",
        "Restore every key of the chosen namespaces (all of them by default), "
        "or one --key, to its value at --to-rev: changed keys get their old value back, "
        "keys created since are deleted, keys deleted since are recreated. Prints the diff "
        'as JSON lines ({"ns", "key", "action", "current", "target", ...}), then writes '
        "it as ONE new command guarded by every key's current mod_rev, so a write in "
        "between fails it (exit 3) rather than being overwritten. History is never "
        "rewritten. A compacted --to-rev is refused (exit 6).",
        [
            "statesync rollback --to-rev 41 --ns routes --dry-run   # show what would change",
            "statesync rollback --to-rev 41 --ns routes",
            "statesync rollback --to-rev 41 --ns routes --key web --id undo-deploy-42",
        ],
    )
    p.add_argument("--to-rev", type=revision, required=True, metavar="R")
    p.add_argument("--ns", action="append", metavar="NS", help="namespace (repeatable)")
    p.add_argument("--key", metavar="K", help="only this key (with one --ns)")
    p.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    p.add_argument("--id", metavar="CMD_ID", help="command id, for a safe retry")
    p.set_defaults(func=cmd_rollback)

    p = command(
        sub,
        "reconcile",
        "check workers now: find drifted keys by digest, repair and verify them",
        "Workers are checked at every ACK (their digest against the "
        "controller's at the same revision) and drift is repaired automatically; this "
        "forces a full check now. For each connected worker (or --worker) and namespace "
        "(or --ns): a digest descent over the worker's stream finds exactly the keys it "
        "has wrong, lacks or has extra; those are repaired with the controller's values "
        "and the next digest verifies it. Prints one JSON line per (worker, namespace): "
        '{"worker", "ns", "outcome" (no drift | verified | gave up...), "keys_repaired", '
        '"keys", "round_trips", "bytes", "seconds"}. Exit 8 if a check did not settle '
        "before --timeout.",
        ["statesync reconcile", "statesync reconcile --worker edge-1 --ns routes"],
    )
    p.add_argument("--worker", action="append", metavar="ID", help="worker id (repeatable)")
    p.add_argument("--ns", action="append", metavar="NS", help="namespace (repeatable)")
    p.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds (default 30)")
    p.set_defaults(func=cmd_reconcile)
