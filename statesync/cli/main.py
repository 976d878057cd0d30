"""The `statesync` command.

Data commands print JSON on stdout (one document, or JSON lines for lists);
messages go to stderr. Exit codes come from the error table in
`statesync.core.errors`: 0 ok, 1 not found, 2 usage, 3 conflict, 4 invalid
input, 5 unavailable, 6 revision compacted, 7 internal/storage error.

Every command here works on the embedded store in `--data DIR` (default
./statesync-data, or $STATESYNC_DATA), opened for the duration of the command.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import orjson

from statesync.core.canonical import parse_json
from statesync.core.commands import Command, Compare, Delete, Patch, Put
from statesync.core.errors import InvalidInputError, StatesyncError
from statesync.core.model import KeyRecord
from statesync.store.sqlite import SQLiteStore

__all__ = ["main"]

DB_FILE = "statesync.sqlite"
SNAPSHOT_FORMAT = "statesync.snapshot.v1"
EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE = 0, 1, 2

_EPILOG = """\
examples:
  statesync put routes web '{"upstream": "10.0.0.1:8080", "weight": 5}'
  statesync patch routes web '[{"op": "replace", "path": "/weight", "value": 7}]'
  statesync put routes web '{"weight": 9}' --expect-rev 2     # compare-and-swap
  statesync get routes web --rev 1                             # read history
  statesync list routes --prefix w
  statesync log show --after 0 --ns routes                     # the change log
  statesync snapshot --out routes.jsonl --ns routes && statesync load routes.jsonl
  statesync status
  statesync demo                                               # a guided tour

exit codes: 0 ok, 1 not found, 2 usage, 3 conflict, 4 invalid input,
            5 unavailable, 6 revision compacted, 7 storage error
"""


def _dump(obj: Any, out: TextIO = sys.stdout) -> None:
    out.write(orjson.dumps(obj).decode() + "\n")


def _record_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "ns": record.namespace,
        "key": record.key,
        "value": record.json(),
        "create_rev": record.create_rev,
        "mod_rev": record.mod_rev,
        "version": record.version,
    }


def _open(args: argparse.Namespace) -> SQLiteStore:
    return SQLiteStore(Path(args.data) / DB_FILE)


def _write_command(args: argparse.Namespace, op: Put | Patch | Delete) -> Command:
    compares = []
    if args.expect_rev is not None:
        compares.append(Compare.mod_rev_is(op.namespace, op.key, args.expect_rev))
    if args.id:
        return Command([op], compares, command_id=args.id)
    return Command([op], compares)


def _commit_one(args: argparse.Namespace, op: Put | Patch | Delete) -> int:
    with _open(args) as store:
        committed = store.commit(_write_command(args, op))
    _dump(
        {"rev": committed.rev, "command_id": committed.command_id, "replayed": committed.replayed}
    )
    return EXIT_OK


def cmd_put(args: argparse.Namespace) -> int:
    value = parse_json(args.value, namespace=args.ns, key=args.key)
    return _commit_one(args, Put(args.ns, args.key, value))


def cmd_patch(args: argparse.Namespace) -> int:
    patch = parse_json(args.patch, namespace=args.ns, key=args.key)
    return _commit_one(args, Patch(args.ns, args.key, patch))  # type: ignore[arg-type]


def cmd_del(args: argparse.Namespace) -> int:
    return _commit_one(args, Delete(args.ns, args.key))


def cmd_get(args: argparse.Namespace) -> int:
    with _open(args) as store:
        record = store.get(args.ns, args.key, rev=args.rev)
    if record is None:
        at = "" if args.rev is None else f" at revision {args.rev}"
        print(f"statesync: not found: namespace {args.ns!r}, key {args.key!r}{at}", file=sys.stderr)
        return EXIT_NOT_FOUND
    _dump({k: v for k, v in _record_json(record).items() if k != "ns"})
    return EXIT_OK


def _iter_range(store: SQLiteStore, ns: str, prefix: str, rev: int) -> Iterator[KeyRecord]:
    after = None
    while page := store.range(ns, prefix=prefix, rev=rev, start_after=after, limit=1000):
        yield from page
        after = page[-1].key


def cmd_list(args: argparse.Namespace) -> int:
    with _open(args) as store:
        rev = store.head_rev if args.rev is None else args.rev
        for record in _iter_range(store, args.ns, args.prefix, rev):
            _dump({k: v for k, v in _record_json(record).items() if k != "ns"})
    return EXIT_OK


def cmd_log_show(args: argparse.Namespace) -> int:
    with _open(args) as store:
        after = store.compacted_rev if args.after is None else args.after
        while changes := store.changes(after, limit=1000, namespaces=args.ns):
            for change in changes:
                _dump(change.to_json())
            after = changes[-1].rev
    return EXIT_OK


def cmd_log_verify(args: argparse.Namespace) -> int:
    with _open(args) as store:
        report = store.verify_chain()
    _dump(
        {
            "ok": True,
            "from_rev": report.from_rev,
            "to_rev": report.to_rev,
            "changes_verified": report.changes,
            "head_hash": report.head_hash.hex(),
        }
    )
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    with _open(args) as store:
        store.compact(args.rev)
        _dump({"compacted_rev": store.compacted_rev, "head_rev": store.head_rev})
    return EXIT_OK


def _progress(description: str, total: int | None):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_stderr_console(),
        disable=not sys.stderr.isatty(),
        transient=False,
    )


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


def cmd_snapshot(args: argparse.Namespace) -> int:
    out_path = Path(args.out)
    tmp = out_path.with_name(out_path.name + ".partial")
    with _open(args) as store:
        namespaces = args.ns or store.namespaces()
        with store.snapshot(namespaces, rev=args.rev) as snap, tmp.open("wb") as out:
            total = sum(snap.counts.values())
            out.write(
                orjson.dumps(
                    {
                        "format": SNAPSHOT_FORMAT,
                        "rev": snap.rev,
                        "namespaces": list(snap.namespaces),
                        "digests": {ns: d.hex() for ns, d in snap.digests.items()},
                    }
                )
                + b"\n"
            )
            count = 0
            with _progress("snapshot", total) as progress:
                task = progress.add_task("snapshot", total=total)
                for chunk in snap.chunks():
                    for r in chunk:
                        out.write(
                            orjson.dumps({"op": "put", "ns": r.namespace, "key": r.key})[:-1]
                            + b',"value":'
                            + r.value
                            + b"}\n"
                        )
                    count += len(chunk)
                    progress.update(task, advance=len(chunk))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, out_path)
        _dump(
            {
                "rev": snap.rev,
                "keys": count,
                "out": str(out_path),
                "digests": {ns: d.hex() for ns, d in snap.digests.items()},
            }
        )
    return EXIT_OK


def _parse_op_line(line: bytes, lineno: int, source: str) -> Put | Patch | Delete | None:
    where = f"{source}:{lineno}"
    try:
        doc = parse_json(line)
    except InvalidInputError as exc:
        raise InvalidInputError(f"{where}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInputError(f"{where}: each line is a JSON object")
    if doc.get("format") == SNAPSHOT_FORMAT:
        return None  # a snapshot's header line
    op, ns, key = doc.get("op"), doc.get("ns"), doc.get("key")
    if op == "put" and "value" in doc:
        return Put(ns, key, doc["value"])  # type: ignore[arg-type]
    if op == "patch" and "patch" in doc:
        return Patch(ns, key, doc["patch"])  # type: ignore[arg-type]
    if op in ("del", "delete"):
        return Delete(ns, key)  # type: ignore[arg-type]
    raise InvalidInputError(
        f'{where}: expected {{"op": "put"|"patch"|"del", "ns", "key", '
        f'"value"|"patch"}}, got {line[:80]!r}'
    )


def _read_ops(lines: Iterator[bytes], source: str) -> list[Put | Patch | Delete]:
    ops = []
    for lineno, line in enumerate(lines, 1):
        if line.strip():
            op = _parse_op_line(line, lineno, source)
            if op is not None:
                ops.append(op)
    return ops


def cmd_load(args: argparse.Namespace) -> int:
    """Check every line first, so that a malformed file changes nothing; then
    commit in batches of --batch ops, one command (one revision) per batch."""
    source = "<stdin>" if args.file == "-" else args.file
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InvalidInputError(f"cannot read {source}: {exc.strerror}") from None
    with stream:
        ops = _read_ops(iter(stream), source)
    last_rev = None
    with _open(args) as store, _progress("load", len(ops)) as progress:
        task = progress.add_task("load", total=len(ops))
        batch: list[Put | Patch | Delete] = []
        keys: set[tuple[str, str]] = set()
        for op in [*ops, None]:
            full = op is None or len(batch) >= args.batch or (op.namespace, op.key) in keys
            if full and batch:
                last_rev = store.commit(Command(batch)).rev
                progress.update(task, advance=len(batch))
                batch, keys = [], set()
            if op is not None:
                batch.append(op)
                keys.add((op.namespace, op.key))
    _dump({"rev": last_rev, "ops": len(ops)})
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with _open(args) as store, store.snapshot() as snap:
        namespaces = [
            {"ns": ns, "keys": snap.counts[ns], "digest": snap.digests[ns].hex()}
            for ns in snap.namespaces
            if snap.counts[ns]
        ]
        status = {
            "data": str(store.path),
            "head_rev": snap.rev,
            "compacted_rev": store.compacted_rev,
            "namespaces": namespaces,
        }
    if args.json:
        _dump(status)
        return EXIT_OK
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{status['data']}[/]  head revision [bold]{status['head_rev']}[/]"
        f"  compacted at {status['compacted_rev']}"
    )
    table = Table("namespace", "keys", "digest")
    for n in namespaces:
        table.add_row(n["ns"], str(n["keys"]), n["digest"][:16] + "…")
    console.print(table)
    return EXIT_OK


def cmd_demo(args: argparse.Namespace) -> int:
    from statesync.cli.demo import run_demo

    return run_demo(Path(args.data))


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 on usage errors, as we do
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"statesync: usage error: {message}\n")


def _add_write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--expect-rev",
        type=int,
        metavar="N",
        help="write only if the key's mod_rev is N (0: only if absent); else exit 3",
    )
    p.add_argument(
        "--id",
        metavar="CMD_ID",
        help="command id for idempotent retries (default: a new random id)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="statesync",
        description="Durable, versioned state for a fleet of workers: write commands, "
        "read any retained revision, snapshot, compact and verify the hash-chained log.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        default=os.environ.get("STATESYNC_DATA", "statesync-data"),
        help="data directory of the embedded store (default: ./statesync-data, or $STATESYNC_DATA)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the store does")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )

    p = sub.add_parser("put", help="set a key to a JSON value")
    p.add_argument("ns", help="namespace, e.g. routes")
    p.add_argument("key")
    p.add_argument("value", help="the value as JSON text, e.g. '{\"weight\": 5}'")
    _add_write_options(p)
    p.set_defaults(run=cmd_put)

    p = sub.add_parser("patch", help="apply an RFC 6902 JSON Patch to a key")
    p.add_argument("ns")
    p.add_argument("key")
    p.add_argument("patch", help='JSON Patch text, e.g. \'[{"op":"add","path":"/a","value":1}]\'')
    _add_write_options(p)
    p.set_defaults(run=cmd_patch)

    p = sub.add_parser("del", help="delete a key")
    p.add_argument("ns")
    p.add_argument("key")
    _add_write_options(p)
    p.set_defaults(run=cmd_del)

    p = sub.add_parser("get", help="read a key (exit 1 if absent)")
    p.add_argument("ns")
    p.add_argument("key")
    p.add_argument("--rev", type=int, metavar="N", help="read at revision N (default: head)")
    p.set_defaults(run=cmd_get)

    p = sub.add_parser("list", help="list a namespace's keys as JSON lines")
    p.add_argument("ns")
    p.add_argument("--prefix", default="", help="only keys starting with this")
    p.add_argument("--rev", type=int, metavar="N", help="list at revision N (default: head)")
    p.set_defaults(run=cmd_list)

    p = sub.add_parser("log", help="show or verify the hash-chained change log")
    log_sub = p.add_subparsers(
        dest="log_command", required=True, metavar="ACTION", parser_class=_Parser
    )
    q = log_sub.add_parser("show", help="changes after a revision, as JSON lines")
    q.add_argument(
        "--after",
        type=int,
        metavar="REV",
        help="start after this revision (default: the oldest retained)",
    )
    q.add_argument("--ns", action="append", help="only this namespace (repeatable)")
    q.set_defaults(run=cmd_log_show)
    q = log_sub.add_parser("verify", help="recompute the hash chain; exit 7 if it was altered")
    q.set_defaults(run=cmd_log_verify)

    p = sub.add_parser("compact", help="drop history at or below a revision")
    p.add_argument("rev", type=int, metavar="REV")
    p.set_defaults(run=cmd_compact)

    p = sub.add_parser("snapshot", help="write a consistent snapshot as JSON lines")
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument("--ns", action="append", help="namespace to include (repeatable; default: all)")
    p.add_argument("--rev", type=int, metavar="N", help="snapshot at revision N (default: head)")
    p.set_defaults(run=cmd_snapshot)

    p = sub.add_parser("load", help="commit JSON lines of ops (or a snapshot file) in batches")
    p.add_argument(
        "file",
        metavar="FILE|-",
        help='lines like {"op":"put","ns":..,"key":..,'
        '"value":..}, {"op":"patch",..,"patch":[..]}, {"op":"del",..}',
    )
    p.add_argument("--batch", type=int, default=1000, help="ops per command (default 1000)")
    p.set_defaults(run=cmd_load)

    p = sub.add_parser("status", help="head and compacted revisions, namespaces, digests")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")
    p.set_defaults(run=cmd_status)

    p = sub.add_parser("demo", help="a guided tour of the core on a fresh store")
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.run(args)
    except StatesyncError as exc:
        print(f"statesync: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
