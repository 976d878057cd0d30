"""`statesync policy`: each namespace's conflict policy, and its shadow candidate."""

from __future__ import annotations

import argparse
import sys

import orjson

from statesync.cli.args import command
from statesync.client import Client, default_server
from statesync.contracts.registry import DEFAULT_MODE, Contract
from statesync.core.policy import ConflictPolicy

__all__ = ["add_parsers"]

_POLICIES = [p.value for p in ConflictPolicy]


def _client(args: argparse.Namespace) -> Client:
    return Client(getattr(args, "server", None) or default_server())


def cmd_policy_set(args: argparse.Namespace) -> int:
    with _client(args) as client:
        committed = client.configure_contract(
            args.ns, conflict_policy=args.policy, shadow_policy=args.shadow
        )
    out = {"namespace": args.ns, "conflict_policy": args.policy, "rev": committed.rev}
    if args.shadow is not None:
        out["shadow_policy"] = None if args.shadow == "none" else args.shadow
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


def cmd_policy_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        if args.ns:
            contract = client.contract(args.ns)
            contracts = [] if contract is None else [contract]
        else:
            contracts = client.contracts()
    if args.ns and not contracts:  # no contract: the defaults
        contracts = [Contract(args.ns, DEFAULT_MODE, {}, [])]
    for c in contracts:
        row = {
            "namespace": c.namespace,
            "conflict_policy": c.conflict_policy.value,
            "shadow_policy": None if c.shadow_policy is None else c.shadow_policy.value,
        }
        sys.stdout.write(orjson.dumps(row).decode() + "\n")
    return 0


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser(
        "policy",
        help="conflict policies for writes based on an old revision (put --base-rev)",
        description="A write that carries --base-rev R was derived from the key at revision "
        "R. If the key changed since, the namespace's policy decides: reject "
        "(compare-and-swap, the default; exit 3), last-durable-wins (the write is applied), "
        "or merge (a three-way JSON merge with the value at R from history; exit 3 listing "
        "each path both sides changed differently). A shadow policy runs beside the active "
        "one on every such write and only counts and logs where it would decide "
        "differently (metric statesync_shadow_disagreements_total), so a new policy can be "
        "proven before it is switched on.",
    )
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    p = command(
        policy_sub,
        "set",
        "set NS's conflict policy (and shadow candidate)",
        "Set the conflict policy of NS; --shadow POLICY evaluates a candidate beside it "
        "(none: off). A command with a revision, in the log.",
        [
            "statesync policy set carts merge",
            "statesync policy set carts reject --shadow merge    # prove merge first",
            "statesync policy set carts reject --shadow none",
        ],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("policy", choices=_POLICIES, metavar="POLICY", help=" | ".join(_POLICIES))
    p.add_argument("--shadow", choices=[*_POLICIES, "none"], metavar="POLICY")
    p.set_defaults(func=cmd_policy_set)
    p = command(
        policy_sub,
        "show",
        "the policies of NS, or of every namespace with a contract (JSON lines)",
        "Print {namespace, conflict_policy, shadow_policy} per namespace.",
        ["statesync policy show", "statesync policy show carts"],
    )
    p.add_argument("ns", metavar="NS", nargs="?")
    p.set_defaults(func=cmd_policy_show)
