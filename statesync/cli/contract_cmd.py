"""`statesync contract check` (a CI gate) and `statesync schema ...` (the registry)."""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from statesync.cli.args import command
from statesync.client import Client, default_server
from statesync.contracts.compat import Mode, Verdict, check, check_schema, diff
from statesync.contracts.registry import DEFAULT_MODE, Contract
from statesync.core.canonical import parse_json
from statesync.core.errors import (
    IncompatibleSchemaError,
    InvalidInputError,
    NotFoundError,
    StatesyncError,
)

__all__ = ["add_parsers"]

EXIT_COMPATIBLE = 0
EXIT_INCOMPATIBLE = 1

_MODES = [m.value for m in Mode]


def _load_json(path: str, what: str) -> Any:
    try:
        text = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {what} {path}: {exc.strerror}") from None
    try:
        return parse_json(text)
    except StatesyncError as exc:
        raise InvalidInputError(f"{what} {path} is not valid JSON: {exc}") from None


def _schema_file(path: str, namespace: str | None = None) -> Any:
    schema = _load_json(path, "schema")
    check_schema(schema, namespace)
    return schema


def _client(args: argparse.Namespace) -> Client:
    return Client(getattr(args, "server", None) or default_server())


def _contract(client: Client, ns: str) -> Contract:
    contract = client.contract(ns)
    if contract is None or not contract.versions:
        raise NotFoundError("_contracts", ns)
    return contract


def _who() -> str:
    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except (KeyError, OSError):
        return socket.gethostname()


def _print_verdict(verdict: Verdict, *, label: str) -> None:
    out = sys.stdout
    if verdict.compatible:
        versions = ", ".join(f"v{v}" for v in verdict.checked_against) or "nothing"
        out.write(f"compatible: {label} against {versions} under {verdict.mode.value}\n")
    else:
        out.write(
            f"INCOMPATIBLE: {label} breaks {verdict.mode.value} with "
            f"{len(verdict.breaking)} breaking change(s):\n"
        )
        for b in verdict.breaking:
            out.write(
                f"  {b.path or '(root)'}\n    {b.rule} ({b.direction}, against "
                f"v{b.against_version}): {b.message}\n"
            )
    if verdict.notes:
        out.write("notes (not breaking):\n")
        for n in verdict.notes:
            out.write(f"  {n.path or '(root)'}: {n.rule}: {n.message}\n")


def cmd_contract_check(args: argparse.Namespace) -> int:
    new = _schema_file(args.schema, args.ns)
    if args.against:
        previous = [_schema_file(path) for path in args.against]
        mode = args.mode or DEFAULT_MODE.value
    else:
        with _client(args) as client:
            contract = _contract(client, args.ns)
        previous = [v.schema for v in contract.versions]
        mode = args.mode or contract.mode.value
    verdict = check(new, previous, mode, strict=args.strict)
    if args.json:
        sys.stdout.write(orjson.dumps(verdict.to_dict()).decode() + "\n")
    else:
        _print_verdict(verdict, label=f"{args.schema} (as v{verdict.version})")
    return EXIT_COMPATIBLE if verdict.compatible else EXIT_INCOMPATIBLE


def cmd_schema_register(args: argparse.Namespace) -> int:
    schema = _schema_file(args.schema, args.ns)
    translation = None if args.translation is None else _load_json(args.translation, "translation")
    if args.force and not args.reason:
        raise InvalidInputError("--force needs --reason TEXT (it is recorded with the version)")
    owner = None
    if args.owner or args.contact:
        owner = {"team": args.owner or "", "contact": args.contact or ""}
    with _client(args) as client:
        try:
            committed = client.register_schema(
                args.ns,
                schema,
                mode=args.mode,
                owner=owner,
                translation=translation,
                force=args.force,
                reason=args.reason or "",
                by=_who(),
            )
        except IncompatibleSchemaError as exc:
            sys.stderr.write(f"statesync: error: {exc}\n")
            return exc.exit_code
        contract = _contract(client, args.ns)
    latest = contract.versions[-1]
    out = {
        "namespace": args.ns,
        "version": latest.version,
        "rev": committed.rev,
        "mode": contract.mode.value,
        "forced": latest.forced,
    }
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0


def cmd_schema_set(args: argparse.Namespace) -> int:
    if args.mode is None and args.owner is None and args.contact is None:
        raise InvalidInputError("nothing to set: give --mode, --owner or --contact")
    with _client(args) as client:
        owner = None
        if args.owner is not None or args.contact is not None:
            current = client.contract(args.ns)
            owner = dict(current.owner) if current is not None else {}
            if args.owner is not None:
                owner["team"] = args.owner
            if args.contact is not None:
                owner["contact"] = args.contact
        committed = client.configure_contract(args.ns, mode=args.mode, owner=owner, by=_who())
    sys.stdout.write(orjson.dumps({"namespace": args.ns, "rev": committed.rev}).decode() + "\n")
    return 0


def _summary(contract: Contract) -> dict[str, Any]:
    latest = contract.versions[-1] if contract.versions else None
    return {
        "namespace": contract.namespace,
        "owner": contract.owner,
        "mode": contract.mode.value,
        "current": contract.current,
        "versions": [
            {k: v for k, v in version.to_json().items() if k not in ("schema", "translation")}
            for version in contract.versions
        ],
        "updated_ms": latest.registered_at_ms if latest else 0,
    }


def cmd_schema_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        contracts = client.contracts()
    if args.json:
        for contract in contracts:
            sys.stdout.write(orjson.dumps(_summary(contract)).decode() + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table("namespace", "owner", "mode", "current", "last registered", "by")
    for contract in contracts:
        latest = contract.versions[-1] if contract.versions else None
        when = (
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(latest.registered_at_ms / 1000))
            if latest
            else "-"
        )
        owner = " ".join(
            v for v in (contract.owner.get("team"), contract.owner.get("contact")) if v
        )
        table.add_row(
            contract.namespace,
            owner or "-",
            contract.mode.value,
            f"v{contract.current}" + (" (forced)" if latest and latest.forced else ""),
            when,
            latest.registered_by if latest else "-",
        )
    Console().print(table)
    return 0


def cmd_schema_show(args: argparse.Namespace) -> int:
    with _client(args) as client:
        contract = _contract(client, args.ns)
    number = args.version or contract.current
    if not 1 <= number <= contract.current:
        raise NotFoundError("_contracts", f"{args.ns} v{number}")
    version = contract.versions[number - 1]
    if args.json:
        out = {**_summary(contract), "version": version.to_json()}
        sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return 0
    owner = ", ".join(f"{k}: {v}" for k, v in contract.owner.items() if v) or "-"
    sys.stdout.write(
        f"namespace {contract.namespace}   owner {owner}   mode {contract.mode.value}\n"
        f"v{version.version} of {contract.current}: registered by {version.registered_by or '-'} "
        f"at revision {version.since_rev}"
        + (f", FORCED: {version.reason}" if version.forced else "")
        + (f", reason: {version.reason}" if version.reason and not version.forced else "")
        + "\n"
    )
    for note in version.notes:
        sys.stdout.write(f"  note: {note}\n")
    if version.translation is not None:
        sys.stdout.write("translation from the previous version:\n")
        sys.stdout.write(orjson.dumps(version.translation, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    sys.stdout.write("schema:\n")
    sys.stdout.write(orjson.dumps(version.schema, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


def cmd_schema_diff(args: argparse.Namespace) -> int:
    with _client(args) as client:
        contract = _contract(client, args.ns)
    for number in (args.a, args.b):
        if not 1 <= number <= contract.current:
            raise NotFoundError("_contracts", f"{args.ns} v{number}")
    old = contract.versions[args.a - 1].schema
    new = contract.versions[args.b - 1].schema
    differences = diff(old, new, strict=args.strict)
    if args.json:
        for d in differences:
            out = {"path": d.path, "rule": d.rule, "breaks": sorted(d.breaks), "message": d.message}
            sys.stdout.write(orjson.dumps(out).decode() + "\n")
        return 0
    if not differences:
        sys.stdout.write(f"{args.ns}: v{args.a} and v{args.b} are structurally identical\n")
    for d in differences:
        breaks = ", ".join(f"breaks {b}" for b in sorted(d.breaks)) or "compatible"
        sys.stdout.write(f"{d.path or '(root)'}\n  {d.rule} ({breaks}): {d.message}\n")
    return 0


def _version(text: str) -> int:
    try:
        number = int(text.removeprefix("v"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a schema version: {text!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"versions start at 1, got {text!r}")
    return number


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    contract = sub.add_parser(
        "contract",
        help="check a schema against older versions (a CI gate, like `buf breaking`)",
        description="Contract checks that need no write access.",
    )
    contract_sub = contract.add_subparsers(dest="contract_command", required=True, metavar="ACTION")
    p = command(
        contract_sub,
        "check",
        "exit 0 if NEW_SCHEMA is compatible, 1 if it breaks the mode",
        "Compare NEW_SCHEMA structurally with the versions before it: either local files "
        "(--against, oldest first) or the versions registered for --ns on the controller. "
        "Prints every breaking change with its JSON-Schema path and the rule it breaks, and "
        "notes on differences that do not break. Exit 0: compatible; 1: incompatible; "
        "4: a schema is not valid JSON Schema 2020-12; 5: the controller is unreachable.\n\n"
        "Modes (as Confluent Schema Registry): BACKWARD = readers of the new version read "
        "data written with the old; FORWARD = readers of the old read data written with the "
        "new; FULL = both; *_TRANSITIVE = against every earlier version, not only the last. "
        "Adding an optional property to an open content model is accepted both ways unless "
        "--strict (the strict open-content-model reading).",
        [
            "statesync contract check orders.v2.json --against orders.v1.json",
            "statesync contract check orders.v3.json --ns orders --mode FULL_TRANSITIVE",
            "statesync contract check orders.v2.json --ns orders --json | jq .breaking",
        ],
    )
    p.add_argument("schema", metavar="NEW_SCHEMA.json", help="the candidate schema (- for stdin)")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--against",
        action="append",
        metavar="OLD_SCHEMA.json",
        help="an earlier version (repeat, oldest first, for the transitive modes)",
    )
    source.add_argument("--ns", metavar="NS", help="check against NS's registered versions")
    p.add_argument(
        "--mode",
        type=str.upper,
        choices=_MODES,
        help="compatibility mode (default: the namespace's mode, or BACKWARD with --against)",
    )
    p.add_argument("--strict", action="store_true", help="strict open-content-model reading")
    p.add_argument("--json", action="store_true", help="print the verdict as one JSON object")
    p.set_defaults(func=cmd_contract_check)

    schema = sub.add_parser(
        "schema",
        help="the schema registry: register, list, show, diff, set",
        description="Each namespace may carry JSON Schema (2020-12) versions, an owner and a "
        "compatibility mode. Registering is a command with a revision, in the log.",
    )
    schema_sub = schema.add_subparsers(dest="schema_command", required=True, metavar="ACTION")
    p = command(
        schema_sub,
        "register",
        "register SCHEMA.json as NS's next version (exit 4 with every reason if refused)",
        "Register SCHEMA.json as the next version of NS. The controller checks it against "
        "the earlier versions under the namespace's mode and refuses a breaking version "
        "(exit 4, every breaking change listed) unless --force --reason TEXT, which is "
        "recorded with the version. --translation FILE gives the declarative translation "
        "from the previous version (docs/translations.md); without one, values pass "
        "unchanged between the two versions. Prints "
        '{"namespace", "version", "rev", "mode", "forced"}.',
        [
            "statesync schema register orders orders.v1.json --owner payments --contact '#pay'",
            "statesync schema register orders orders.v2.json --translation v1-v2.json",
            "statesync schema register orders orders.v3.json --force --reason 'INC-42 hotfix'",
        ],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("schema", metavar="SCHEMA.json")
    p.add_argument("--mode", type=str.upper, choices=_MODES, help="set the mode (default BACKWARD)")
    p.add_argument("--owner", metavar="TEAM", help="owning team")
    p.add_argument("--contact", metavar="CONTACT", help="how to reach the owner")
    p.add_argument("--translation", metavar="FILE", help="translation from the previous version")
    p.add_argument("--force", action="store_true", help="register even if it breaks the mode")
    p.add_argument("--reason", metavar="TEXT", help="why (required with --force; recorded)")
    p.set_defaults(func=cmd_schema_register)

    p = command(
        schema_sub,
        "set",
        "change NS's compatibility mode or owner",
        "Change the mode or owner of NS without a new version (a command, in the log).",
        ["statesync schema set orders --mode FULL_TRANSITIVE --owner payments"],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("--mode", type=str.upper, choices=_MODES)
    p.add_argument("--owner", metavar="TEAM")
    p.add_argument("--contact", metavar="CONTACT")
    p.set_defaults(func=cmd_schema_set)

    p = command(
        schema_sub,
        "list",
        "every namespace with a contract: owner, mode, current version",
        "List the contracts: a table, or JSON lines with --json.",
        ["statesync schema list", "statesync schema list --json"],
    )
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_schema_list)

    p = command(
        schema_sub,
        "show",
        "a version's schema, translation, who registered it and why",
        "Show NS's current version (or --version N): the schema, its translation from the "
        "previous version, who registered it, at which revision, and the checker's notes.",
        ["statesync schema show orders", "statesync schema show orders --version 1 --json"],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("--version", type=_version, metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_schema_show)

    p = command(
        schema_sub,
        "diff",
        "structural differences between two versions of NS",
        "Every structural difference between versions A and B of NS, with its JSON-Schema "
        "path, the rule, and which direction (backward, forward) it breaks.",
        ["statesync schema diff orders 1 2", "statesync schema diff orders 1 3 --json"],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("a", type=_version, metavar="A")
    p.add_argument("b", type=_version, metavar="B")
    p.add_argument("--strict", action="store_true", help="strict open-content-model reading")
    p.add_argument("--json", action="store_true", help="JSON lines")
    p.set_defaults(func=cmd_schema_diff)
