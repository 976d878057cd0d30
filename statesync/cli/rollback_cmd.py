"""`statesync rollback`: restore keys to an earlier revision with one new command."""

from __future__ import annotations

import argparse
import sys

import orjson

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


def _revision(text: str) -> int:
    try:
        rev = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a revision: {text!r}") from None
    if rev < 0:
        raise argparse.ArgumentTypeError(f"a revision is >= 0, got {rev}")
    return rev


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "rollback",
        help="restore keys to their values at an earlier revision (one new command)",
        description="Restore every key of the chosen namespaces (all of them by default), "
        "or one --key, to its value at --to-rev: changed keys get their old value back, "
        "keys created since are deleted, keys deleted since are recreated. Prints the diff "
        'as JSON lines ({"ns", "key", "action", "current", "target", ...}), then writes '
        "it as ONE new command guarded by every key's current mod_rev, so a write in "
        "between fails it (exit 3) rather than being overwritten. History is never "
        "rewritten. A compacted --to-rev is refused (exit 6).",
        epilog="examples:\n"
        "  statesync rollback --to-rev 41 --ns routes --dry-run   # show what would change\n"
        "  statesync rollback --to-rev 41 --ns routes\n"
        "  statesync rollback --to-rev 41 --ns routes --key web --id undo-deploy-42\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--to-rev", type=_revision, required=True, metavar="R")
    p.add_argument("--ns", action="append", metavar="NS", help="namespace (repeatable)")
    p.add_argument("--key", metavar="K", help="only this key (with one --ns)")
    p.add_argument("--dry-run", action="store_true", help="print the diff, write nothing")
    p.add_argument("--id", metavar="CMD_ID", help="command id, for a safe retry")
    p.add_argument(
        "--server",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help="controller address (default: $STATESYNC_SERVER or 127.0.0.1:7700)",
    )
    p.set_defaults(func=cmd_rollback)
