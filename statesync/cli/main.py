"""The `statesync` command: the controller (`serve`) and its clients.

Every data command talks to a running controller over gRPC, at `--server`
(accepted before or after the command), else $STATESYNC_SERVER, else
127.0.0.1:7700. Data commands print JSON on stdout (one document, or JSON
lines for lists and streams); messages go to stderr as one line
`statesync: error: <message>`. Exit codes come from the error table in
`statesync.core.errors`, plus 2 for usage and 8 for `--wait-applied`.

`log show` and `log verify` read the embedded store in `--data DIR` offline,
while the controller is stopped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import orjson

from statesync.cli import contract_cmd, policy_cmd, rollback_cmd, worker_cmd
from statesync.cli.args import DATA_HELP as _DATA_HELP
from statesync.cli.args import SERVER_HELP as _SERVER_HELP
from statesync.cli.args import command as _command
from statesync.cli.args import revision as _revision
from statesync.core.canonical import parse_json
from statesync.core.commands import Command, Compare, Delete, Patch, Put, check
from statesync.core.errors import (
    InvalidInputError,
    InvalidPatchError,
    NotFoundError,
    StatesyncError,
    UnavailableError,
)
from statesync.core.model import KeyRecord, check_namespace

if TYPE_CHECKING:
    from rich.progress import Progress

    from statesync.client import Client
    from statesync.store.sqlite import SQLiteStore
    from statesync.v1 import statesync_pb2 as pb

__all__ = ["build_parser", "main"]

SNAPSHOT_FORMAT = "statesync.snapshot.v1"
DEFAULT_DATA = "statesync-data"
DEFAULT_LISTEN = "127.0.0.1:7700"
DEFAULT_HTTP = "127.0.0.1:7701"
DEFAULT_TIMEOUT_S = 30.0
MAX_BATCH = 10_000  # Limits.max_ops

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 5
EXIT_INCOMPLETE = 8

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_EXIT_CODES = """\
exit codes:
  0  ok
  1  not found; for contract check: the schema is incompatible
  2  usage: bad flags or arguments
  3  conflict: a compare (--expect-rev) failed; nothing was written
  4  invalid input: JSON, namespace, key, value, patch, size, reused --id;
     a value that breaks its schema; a schema version refused by its mode
  5  unavailable: the server cannot be reached (the message names the address);
     for serve and log: the address or the data directory is in use
  6  revision compacted: bootstrap from a snapshot
  7  storage or internal error
  8  written, but not every worker applied it before the timeout (--wait-applied)
"""

_EPILOG = (
    """\
examples:
  statesync serve --data ./statesync-data          # run the controller (gRPC :7700, HTTP :7701)
  statesync put routes web '{"upstream": "10.0.0.1:8080", "weight": 5}'
  statesync patch routes web '[{"op": "replace", "path": "/weight", "value": 7}]'
  statesync put routes web '{"weight": 9}' --expect-rev 2      # compare-and-swap
  statesync put routes web '{"weight": 9}' --wait-applied      # until every worker has it
  statesync get routes web --rev 1                             # read history
  statesync list routes --prefix w
  statesync watch routes                                       # follow changes as JSON lines
  statesync status                                             # revisions and every worker
  statesync snapshot --out routes.jsonl --ns routes
  statesync --server 10.0.0.5:7700 load routes.jsonl
  statesync schema register orders orders.v1.json --owner payments
  statesync contract check orders.v2.json --ns orders          # CI gate: exit 1 if breaking
  statesync log verify --data ./statesync-data                 # offline, controller stopped
  statesync demo                                               # a guided tour

The controller address is --server HOST:PORT (before or after the command),
else $STATESYNC_SERVER, else 127.0.0.1:7700.

"""
    + _EXIT_CODES
)


# ---------------------------------------------------------------- output


def _dump(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj).decode() + "\n")


def _error_line(message: str) -> None:
    one_line = message.replace("\r", " ").replace("\n", " ")
    print(f"statesync: error: {one_line}", file=sys.stderr, flush=True)


def _record_json(record: KeyRecord) -> dict[str, Any]:
    return {
        "key": record.key,
        "value": record.json(),
        "create_rev": record.create_rev,
        "mod_rev": record.mod_rev,
        "version": record.version,
    }


def _progress(description: str) -> Progress:
    from rich.console import Console
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
        console=Console(stderr=True),
        disable=not sys.stderr.isatty(),
    )


# ---------------------------------------------------------------- settings


def _server(args: argparse.Namespace) -> str:
    from statesync.client import default_server

    return getattr(args, "server", None) or default_server()


def _data(args: argparse.Namespace) -> Path:
    return Path(getattr(args, "data", None) or os.environ.get("STATESYNC_DATA") or DEFAULT_DATA)


def _client(args: argparse.Namespace) -> Client:
    from statesync.client import Client

    return Client(_server(args), timeout=getattr(args, "timeout", None) or DEFAULT_TIMEOUT_S)


def _json_arg(text: str) -> str | bytes:
    """VALUE_JSON / JSON_PATCH: JSON text, `-` for stdin, `@FILE` for a file's contents."""
    if text == "-":
        return sys.stdin.buffer.read()
    if text.startswith("@"):
        try:
            return Path(text[1:]).read_bytes()
        except OSError as exc:
            raise InvalidInputError(f"cannot read {text[1:]}: {exc.strerror}") from None
    return text


# ---------------------------------------------------------------- writes


_KeyOp = Put | Patch | Delete  # the ops that name a key (a SetContract does not)


def _write(args: argparse.Namespace, op: _KeyOp) -> int:
    with _client(args) as client:
        committed = client.commit(
            Command([op], _compares(op, args.expect_rev), command_id=args.id)
            if args.id
            else Command([op], _compares(op, args.expect_rev))
        )
        out: dict[str, Any] = {
            "rev": committed.rev,
            "command_id": committed.command_id,
            "replayed": committed.replayed,
        }
        if not args.wait_applied:
            _dump(out)
            return EXIT_OK
        try:
            result = client.wait_applied(
                committed.rev, namespaces=[op.namespace], timeout=args.timeout
            )
        except StatesyncError as exc:
            _error_line(
                f"revision {committed.rev} is written, but waiting for workers failed: {exc}"
            )
            return exc.exit_code
    out["applied"] = result.applied
    out["pending"] = [
        {
            "worker_id": w.worker_id,
            "connected": w.connected,
            "applied_rev": w.applied_rev,
            "state": w.state,
        }
        for w in result.pending
    ]
    _dump(out)
    if result.pending:
        _error_line(
            f"revision {committed.rev} is written, but {len(result.pending)} worker(s) had not "
            f"applied it after {args.timeout:g} s: "
            + ", ".join(f"{w.worker_id} (at {w.applied_rev}, {w.state})" for w in result.pending)
        )
        return EXIT_INCOMPLETE
    return EXIT_OK


def _compares(op: _KeyOp, expect_rev: int | None) -> list[Compare]:
    if expect_rev is None:
        return []
    return [Compare.mod_rev_is(op.namespace, op.key, expect_rev)]


def cmd_put(args: argparse.Namespace) -> int:
    value = parse_json(_json_arg(args.value), namespace=args.ns, key=args.key)
    return _write(args, Put(args.ns, args.key, value, args.schema_version, args.base_rev))


def cmd_patch(args: argparse.Namespace) -> int:
    patch = parse_json(_json_arg(args.patch), namespace=args.ns, key=args.key)
    if not isinstance(patch, list):
        raise InvalidPatchError(args.ns, args.key, None, None, "a JSON Patch is an array of ops")
    # Each op is checked by the core (commands.check), which refuses a non-object op.
    return _write(args, Patch(args.ns, args.key, patch))  # type: ignore[arg-type]


def cmd_del(args: argparse.Namespace) -> int:
    return _write(args, Delete(args.ns, args.key))


# ---------------------------------------------------------------- reads


def cmd_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        record = client.get(args.ns, args.key, rev=args.rev)
    if record is None:
        raise NotFoundError(args.ns, args.key, args.rev)
    _dump(_record_json(record))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for record in client.range(args.ns, prefix=args.prefix, rev=args.rev):
            _dump(_record_json(record))
    return EXIT_OK


class _Stopped(Exception):
    """SIGTERM while watching."""


def _raise_stopped(signum: int, frame: object) -> NoReturn:
    raise _Stopped


def _change_lines(batch: pb.ChangeBatch) -> Iterator[dict[str, Any]]:
    from statesync.v1 import statesync_pb2 as pb

    for revision in batch.revisions:
        for change in revision.changes:
            line: dict[str, Any] = {"rev": revision.rev, "ns": change.ns, "key": change.key}
            if change.kind == pb.Change.DELETE:
                line["op"] = "delete"
                line["create_rev"] = line["version"] = None
            else:
                line["op"] = "put"
                line["value"] = orjson.loads(change.value)
                line["create_rev"] = change.create_rev
                line["version"] = change.version
            line["command_id"] = revision.command_id
            line["ts_ms"] = revision.ts_ms
            yield line


def _snapshot_lines(chunk: pb.SnapshotChunk) -> Iterator[dict[str, Any]]:
    for e in chunk.entries:
        yield {
            "rev": chunk.rev,
            "ns": e.ns,
            "key": e.key,
            "op": "put",
            "value": orjson.loads(e.value),
            "command_id": None,
            "create_rev": e.create_rev,
            "mod_rev": e.mod_rev,
            "version": e.version,
            "ts_ms": None,
            "snapshot": True,
        }


def _watch_once(client: Client, namespaces: list[str], rev: int) -> Iterator[tuple[int, list[Any]]]:
    """One sync stream: yields (revision reached, lines to print) per message."""
    for reply in client.watch(namespaces, from_rev=rev):
        kind = reply.WhichOneof("msg")
        if kind == "batch":
            yield reply.batch.rev, list(_change_lines(reply.batch))
        elif kind == "progress":
            yield max(rev, reply.progress.rev), []
        elif kind == "resync":
            print(
                f"statesync: resync: {reply.resync.reason}; the state at revision "
                f"{reply.resync.rev} follows as snapshot lines",
                file=sys.stderr,
                flush=True,
            )
        elif kind == "chunk":
            # Until the last chunk, a new stream would have to start the snapshot over.
            yield (reply.chunk.rev if reply.chunk.last else rev), list(_snapshot_lines(reply.chunk))


def cmd_watch(args: argparse.Namespace) -> int:
    for ns in args.ns:
        check_namespace(ns)
    signal.signal(signal.SIGTERM, _raise_stopped)
    out = sys.stdout
    try:
        with _client(args) as client:
            rev = args.from_rev
            if rev is None:
                rev = client.status().head_rev
            while True:
                started = time.monotonic()
                for reached, lines in _watch_once(client, args.ns, rev):
                    for line in lines:
                        out.write(orjson.dumps(line).decode() + "\n")
                    out.flush()
                    rev = reached
                # The server ended the stream without an error: resume after the
                # last revision printed (an unreachable server raises and exits 5).
                logging.getLogger("statesync.cli").info("watch stream ended; resuming at %d", rev)
                if time.monotonic() - started < 1.0:
                    time.sleep(0.5)
    except (KeyboardInterrupt, _Stopped):
        return EXIT_OK


def _worker_json(w: pb.WorkerStatus, now: float) -> dict[str, Any]:
    return {
        "worker_id": w.worker_id,
        "connected": w.connected,
        "state": w.state,
        "namespaces": list(w.namespaces),
        "applied_rev": w.applied_rev,
        "lag_revisions": w.lag_revisions,
        "lag_seconds": round(w.lag_seconds, 3) if w.lag_seconds >= 0 else None,
        "last_ack_age_s": round(max(0.0, now - w.last_ack_unix), 3) if w.last_ack_unix else None,
        "digest": w.digest,
        "nacks": w.nacks,
        "resyncs": w.resyncs,
        "buffered": w.buffered,
        "peer": w.peer,
        "held": [{"ns": h.ns, "key": h.key, "rev": h.rev, "reason": h.reason} for h in w.held],
        "schema_versions": {s.ns: s.versions[0] for s in w.served if s.versions},
        "divergences": w.divergences,
        "keys_repaired": w.keys_repaired,
        "repairs": [
            {
                "ns": r.ns,
                "outcome": r.outcome,
                "keys": list(r.keys),
                "key_count": r.key_count,
                "reason": r.reason,
                "round_trips": r.round_trips,
                "bytes": r.bytes,
                "seconds": round(r.seconds, 3),
            }
            for r in w.repairs
        ],
    }


def _wait_status(client: Client, wait_s: float, workers: int) -> Any:
    """Poll until the controller answers and `workers` workers are connected at the head."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            reply = client.status()
            ready = sum(1 for w in reply.workers if w.connected and w.applied_rev >= reply.head_rev)
            if ready >= workers or time.monotonic() >= deadline:
                return reply
        except UnavailableError:
            if time.monotonic() >= deadline:
                raise
        time.sleep(0.1)


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        reply = _wait_status(client, args.wait, args.workers)
        address = client.address
    now = time.time()
    status = {
        "server": address,
        "data": reply.data,
        "head_rev": reply.head_rev,
        "compacted_rev": reply.compacted_rev,
        "uptime_s": round(max(0.0, now - reply.started_unix), 3),
        "namespaces": [
            {"ns": n.ns, "keys": n.count, "digest": n.root.hex()} for n in reply.namespaces
        ],
        "workers": [_worker_json(w, now) for w in reply.workers],
    }
    if args.json:
        _dump(status)
        return EXIT_OK
    _print_status(status)
    return EXIT_OK


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m"
    return f"{seconds / 3600:.1f}h"


def _print_status(status: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(
        f"[bold]{status['server']}[/]  data {status['data']}  head revision "
        f"[bold]{status['head_rev']}[/]  compacted at {status['compacted_rev']}  "
        f"up {_age(status['uptime_s'])}"
    )
    if status["namespaces"]:
        table = Table("namespace", "keys", "digest", title="namespaces", title_justify="left")
        for n in status["namespaces"]:
            table.add_row(n["ns"], f"{n['keys']:,}", n["digest"][:16] + "…")
        console.print(table)
    if not status["workers"]:
        console.print("no worker has connected since the controller started")
        return
    table = Table(
        "worker",
        "connected",
        "state",
        "applied",
        "lag (revs)",
        "lag",
        "last ack",
        "digest",
        "nacks",
        "repaired",
        "held keys",
        title="workers",
        title_justify="left",
    )
    colors = {"agree": "green", "differ": "red"}
    for w in status["workers"]:
        held = (
            "\n".join(
                # The controller ends a long list with a marker without a key.
                f"{h['ns']}/{h['key']}: {h['reason']}" if h["key"] else h["reason"]
                for h in w["held"]
            )
            or "-"
        )
        digest = w["digest"]
        table.add_row(
            w["worker_id"],
            "yes" if w["connected"] else "[red]no[/]",
            w["state"],
            str(w["applied_rev"]),
            str(w["lag_revisions"]),
            _age(w["lag_seconds"]),
            _age(w["last_ack_age_s"]),
            f"[{colors[digest]}]{digest}[/]" if digest in colors else digest,
            str(w["nacks"]),
            f"{w['keys_repaired']} keys" if w["divergences"] else "-",
            held,
        )
    console.print(table)
    repairs = [(w["worker_id"], r) for w in status["workers"] for r in w["repairs"]]
    if repairs:
        table = Table("worker", "ns", "outcome", "keys", "cost", "time", title="repairs")
        for worker_id, r in repairs[-10:]:
            keys = ", ".join(r["keys"][:3]) + (" ..." if r["key_count"] > 3 else "")
            table.add_row(
                worker_id,
                r["ns"],
                r["outcome"],
                f"{r['key_count']}: {keys}" if r["key_count"] else "-",
                f"{r['round_trips']} round trips, {r['bytes']} B",
                f"{r['seconds']:.3f}s",
            )
        console.print(table)


# ---------------------------------------------------------------- bulk


def _parse_op_line(line: bytes) -> _KeyOp | None:
    doc = parse_json(line)
    if not isinstance(doc, dict):
        raise InvalidInputError("each line is a JSON object")
    if "format" in doc:
        if doc["format"] != SNAPSHOT_FORMAT:
            raise InvalidInputError(f"unknown snapshot format {doc['format']!r}")
        return None  # a snapshot's header line
    op, ns, key = doc.get("op"), doc.get("ns"), doc.get("key")
    # ns, key and the patch are untrusted JSON here: _read_ops runs check() on each op,
    # which refuses a missing or mistyped namespace, key or patch op with its own error.
    if op == "put" and "value" in doc:
        return Put(ns, key, doc["value"])  # type: ignore[arg-type]
    if op == "patch" and "patch" in doc:
        return Patch(ns, key, doc["patch"])  # type: ignore[arg-type]
    if op in ("del", "delete"):
        return Delete(ns, key)  # type: ignore[arg-type]
    raise InvalidInputError(
        'expected {"op": "put"|"patch"|"del", "ns", "key", "value"|"patch"}, '
        f"got {line[:80].decode('utf-8', 'replace').strip()!r}"
    )


def _line_names(line: bytes) -> str:
    """For a line refused as a whole: the namespace and key it was about, if readable."""
    try:
        doc = json.loads(line)
    except ValueError:
        return ""
    if isinstance(doc, dict) and isinstance(doc.get("ns"), str) and isinstance(doc.get("key"), str):
        return f" (in the op on namespace {doc['ns']!r}, key {doc['key']!r})"
    return ""


def _read_ops(lines: Iterable[bytes], source: str) -> list[tuple[int, _KeyOp]]:
    """Every line is checked completely (names, values, patch shape, size)
    before anything is sent: a bad line refuses the whole file."""
    ops = []
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            op = _parse_op_line(line)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}:{lineno}: {exc}{_line_names(line)}") from None
        try:
            if op is not None:
                check(Command([op]))  # names the namespace and key itself
        except InvalidInputError as exc:
            raise InvalidInputError(f"{source}:{lineno}: {exc}") from None
        if op is not None:
            ops.append((lineno, op))
    return ops


def _batches(ops: list[tuple[int, _KeyOp]], size: int) -> list[list[tuple[int, _KeyOp]]]:
    """Consecutive ops, at most `size` per batch and each key at most once."""
    batches: list[list[tuple[int, _KeyOp]]] = []
    batch: list[tuple[int, _KeyOp]] = []
    keys: set[tuple[str, str]] = set()
    for lineno, op in ops:
        k = (op.namespace, op.key)
        if len(batch) >= size or k in keys:
            batches.append(batch)
            batch, keys = [], set()
        batch.append((lineno, op))
        keys.add(k)
    if batch:
        batches.append(batch)
    return batches


def cmd_load(args: argparse.Namespace) -> int:
    source = "<stdin>" if args.file == "-" else args.file
    try:
        stream = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    except OSError as exc:
        raise InvalidInputError(f"cannot read {source}: {exc.strerror}") from None
    with stream:
        ops = _read_ops(stream, source)
    batches = _batches(ops, args.batch)
    stop = threading.Event()

    def commands() -> Iterator[Command]:
        for batch in batches:
            if stop.is_set():
                return
            yield Command([op for _, op in batch])

    last_rev: int | None = None
    done = 0
    failure: tuple[int, StatesyncError] | None = None
    if batches:
        with _client(args) as client, _progress("load") as progress:
            task = progress.add_task("load", total=len(ops))
            for i, result in enumerate(client.commit_stream(commands())):
                if isinstance(result, StatesyncError):
                    if failure is None:
                        failure = (i, result)
                        stop.set()
                    continue
                last_rev = max(last_rev or 0, result.rev)
                done += len(batches[i])
                progress.update(task, advance=len(batches[i]))
    if failure is not None:
        i, error = failure
        first, last = batches[i][0][0], batches[i][-1][0]
        lines = f"{first}" if first == last else f"{first}-{last}"
        _error_line(
            f"{source}:{lines}: {error} (this batch was not written; "
            f"{done} of {len(ops)} ops were committed"
            + (f", the last at revision {last_rev})" if last_rev else ")")
        )
        return error.exit_code
    _dump({"rev": last_rev, "ops": len(ops)})
    return EXIT_OK


def cmd_snapshot(args: argparse.Namespace) -> int:
    out_path = Path(args.out)
    body_path = out_path.with_name(out_path.name + ".body.partial")
    tmp_path = out_path.with_name(out_path.name + ".partial")
    count = 0
    last: pb.SnapshotChunk | None = None
    try:
        with _client(args) as client, body_path.open("wb") as body, _progress("snapshot") as bar:
            task = bar.add_task("snapshot", total=None)
            for chunk in client.snapshot(args.ns or (), rev=args.rev):
                for e in chunk.entries:
                    body.write(
                        b'{"op":"put","ns":'
                        + orjson.dumps(e.ns)
                        + b',"key":'
                        + orjson.dumps(e.key)
                        + b',"value":'
                        + e.value
                        + b"}\n"
                    )
                count += len(chunk.entries)
                bar.update(task, advance=len(chunk.entries))
                if chunk.last:
                    last = chunk
            if last is None:
                raise UnavailableError(client.address, "the snapshot stream ended early")
        header = {
            "format": SNAPSHOT_FORMAT,
            "rev": last.rev,
            "namespaces": [d.ns for d in last.digests],
            "digests": {d.ns: d.root.hex() for d in last.digests},
            "counts": {d.ns: d.count for d in last.digests},
        }
        with tmp_path.open("wb") as out, body_path.open("rb") as body:
            out.write(orjson.dumps(header) + b"\n")
            shutil.copyfileobj(body, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_path, out_path)
    finally:
        body_path.unlink(missing_ok=True)
        tmp_path.unlink(missing_ok=True)
    _dump(
        {
            "rev": header["rev"],
            "keys": count,
            "out": str(out_path),
            "digests": header["digests"],
            "counts": header["counts"],
        }
    )
    return EXIT_OK


def cmd_compact(args: argparse.Namespace) -> int:
    with _client(args) as client:
        _dump({"compacted_rev": client.compact(args.rev)})
    return EXIT_OK


# ---------------------------------------------------------------- offline log


def _offline_store(args: argparse.Namespace) -> SQLiteStore:
    from statesync.server.app import DB_FILE
    from statesync.store.sqlite import SQLiteStore

    path = _data(args) / DB_FILE
    if not path.exists():
        raise InvalidInputError(f"no statesync store in {_data(args)} (looked for {path})")
    return SQLiteStore(path)


def cmd_log_show(args: argparse.Namespace) -> int:
    with _offline_store(args) as store:
        after = store.compacted_rev if args.after is None else args.after
        while changes := store.changes(after, limit=1000, namespaces=args.ns):
            for change in changes:
                _dump(change.to_json())
            after = changes[-1].rev
    return EXIT_OK


def cmd_log_verify(args: argparse.Namespace) -> int:
    with _offline_store(args) as store:
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


# ---------------------------------------------------------------- serve


def _write_ready_file(path: Path, info: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(orjson.dumps(info) + b"\n")
    os.replace(tmp, path)


def _check_free(address: str) -> None:
    """Refuse an address something already listens on, with a clear message,
    before the store is opened (gRPC's own bind error is terse, and the HTTP
    port is bound only after the store and gRPC are up)."""
    host, _, port = address.rpartition(":")
    if int(port) == 0:
        return
    try:
        infos = socket.getaddrinfo(
            host.strip("[]"), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except OSError:
        return  # let the server report the bad host
    for family, kind, proto, _, sockaddr in infos:
        with socket.socket(family, kind, proto) as probe:
            # As servers do: connections of an earlier process in TIME_WAIT do not count.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(sockaddr)
            except OSError as exc:
                raise _AddressInUse(address, exc.strerror or str(exc)) from None


class _AddressInUse(Exception):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(f"cannot listen on {address}: {reason}")


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from statesync.server.app import Controller, ServerSettings, SyncSettings
    from statesync.server.heap import return_freed_memory

    logging.basicConfig(level=args.log_level, format=_LOG_FORMAT, stream=sys.stderr, force=True)
    return_freed_memory()
    settings = ServerSettings(
        data=_data(args),
        listen=args.listen,
        http=args.http,
        feed_revisions=args.feed_revisions,
        sync=SyncSettings(heartbeat_s=args.heartbeat, silence_s=args.silence, window=args.window),
    )
    try:
        for address in (args.listen, args.http):
            if address:
                _check_free(address)
    except _AddressInUse as exc:
        _error_line(f"{exc} (is another controller running? choose another address)")
        return EXIT_UNAVAILABLE
    controller = Controller(settings)
    ready = False
    ready_file = Path(args.ready_file) if args.ready_file else None

    def on_ready(c: Controller) -> None:
        nonlocal ready
        ready = True
        if ready_file is not None:
            _write_ready_file(
                ready_file, {"grpc": c.port, "http": c.http_port or None, "pid": os.getpid()}
            )

    try:
        asyncio.run(controller.run(on_ready=on_ready))
    except (OSError, RuntimeError) as exc:
        if ready:
            raise
        store = getattr(controller, "store", None)
        if store is not None:
            store.close()
        where = f"--listen {args.listen}" + (f" / --http {args.http}" if args.http else "")
        _error_line(f"cannot serve on {where}: {exc} (is the address in use?)")
        return EXIT_UNAVAILABLE
    finally:
        if ready_file is not None and ready:
            ready_file.unlink(missing_ok=True)
    return EXIT_OK


# ---------------------------------------------------------------- demo


def cmd_demo(args: argparse.Namespace) -> int:
    from statesync.cli.demo import run_demo

    return run_demo()


# ---------------------------------------------------------------- parser


def _address(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _http_address(text: str) -> str | None:
    return None if text.lower() == "none" else _address(text)


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _batch_size(text: str) -> int:
    try:
        size = int(text)
    except ValueError:
        size = 0
    if not 1 <= size <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"expected 1 to {MAX_BATCH} ops, got {text!r}")
    return size


def _add_write_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("ns", metavar="NS", help="namespace, e.g. routes")
    p.add_argument("key", metavar="KEY")
    p.add_argument(
        "--expect-rev",
        type=_revision,
        metavar="N",
        help="write only if the key's mod_rev is N (0: only if absent); else exit 3",
    )
    p.add_argument(
        "--id",
        metavar="CMD_ID",
        help="command id for idempotent retries: the same id and content again returns "
        'the first revision with "replayed": true (default: a new random id)',
    )
    p.add_argument(
        "--wait-applied",
        action="store_true",
        help="after writing, wait until every connected worker subscribed to NS has applied "
        "the revision; exit 8 if some have not within --timeout",
    )
    p.add_argument(
        "--timeout",
        type=_positive,
        default=DEFAULT_TIMEOUT_S,
        metavar="S",
        help="seconds to wait for the server and for --wait-applied (default 30)",
    )


_WRITE_OUTPUT = (
    'Prints {"rev": N, "command_id": ID, "replayed": BOOL}; with --wait-applied also '
    '"applied" (worker ids) and "pending" ([{"worker_id", "connected", "applied_rev", '
    '"state"}]).'
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statesync",
        description="Keep a fleet of workers exactly in step with a controller. `serve` runs "
        "the controller; the other commands write, read, watch and inspect it over gRPC.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--server", metavar="HOST:PORT", help=_SERVER_HELP)
    parser.add_argument("--data", metavar="DIR", help=_DATA_HELP + " (serve, log)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more to stderr")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(
        sub,
        "serve",
        "run the controller until SIGTERM or SIGINT",
        "Run the controller: the durable store in --data, the gRPC API on --listen, and "
        "/healthz, /readyz and /metrics on --http. Logs go to stderr. SIGTERM or SIGINT "
        "shuts down gracefully: sync streams close, in-flight calls finish, the store is "
        "closed. A data directory or address already in use exits 5.",
        [
            "statesync serve",
            "statesync serve --data /var/lib/statesync --listen 0.0.0.0:7700 --http none",
            "statesync serve --listen 127.0.0.1:0 --http 127.0.0.1:0 --ready-file ready.json",
        ],
        server=False,
        data=True,
    )
    p.add_argument(
        "--listen",
        type=_address,
        default=DEFAULT_LISTEN,
        metavar="HOST:PORT",
        help="gRPC address (default 127.0.0.1:7700; port 0 picks a free port)",
    )
    p.add_argument(
        "--http",
        type=_http_address,
        default=DEFAULT_HTTP,
        metavar="HOST:PORT|none",
        help="HTTP address for /healthz, /readyz, /metrics (default 127.0.0.1:7701; none: no HTTP)",
    )
    p.add_argument(
        "--feed-revisions",
        type=int,
        default=100_000,
        metavar="N",
        help="revisions kept in memory for sync streams; a worker that falls further behind "
        "resyncs by reconciliation (default 100000)",
    )
    p.add_argument(
        "--heartbeat",
        type=float,
        default=1.0,
        metavar="S",
        help="progress notice to idle workers every S seconds (default 1)",
    )
    p.add_argument(
        "--silence",
        type=float,
        default=10.0,
        metavar="S",
        help="mark a worker disconnected after S seconds without a message (default 10)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=4096,
        metavar="N",
        help="most changes sent to one worker and not yet ACKed (default 4096)",
    )
    p.add_argument(
        "--ready-file",
        metavar="PATH",
        help='once serving, write {"grpc": PORT, "http": PORT, "pid": PID} to PATH '
        "(atomically; removed on shutdown)",
    )
    p.add_argument(
        "--log-level",
        type=str.upper,
        default="INFO",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="default INFO",
    )
    p.set_defaults(func=cmd_serve)

    p = _command(
        sub,
        "put",
        "set a key to a JSON value",
        "Set KEY in namespace NS to a JSON value, at one new revision. The value must be "
        "I-JSON: no duplicate keys, integers within ±(2^53-1), at most 1 MiB canonical. "
        + _WRITE_OUTPUT,
        [
            """statesync put routes web '{"upstream": "10.0.0.1:8080", "weight": 5}'""",
            """statesync put routes web '{"weight": 9}' --expect-rev 2   # compare-and-swap""",
            """statesync put routes api '{"w": 1}' --id deploy-42          # safe to retry""",
            """statesync put routes web @web.json --wait-applied --timeout 10""",
            """generate-config | statesync put routes web -""",
        ],
    )
    _add_write_options(p)
    p.add_argument(
        "value",
        metavar="VALUE_JSON",
        help="the value as JSON text; - reads it from stdin, @FILE from a file",
    )
    p.add_argument(
        "--schema-version",
        type=int,
        default=0,
        metavar="N",
        help="the value is written in schema version N of NS (translated forward to the "
        "current version and checked against both; default: the current version)",
    )
    p.add_argument(
        "--base-rev",
        type=_revision,
        default=0,
        metavar="R",
        help="the value was derived from the key at revision R: if the key changed since, "
        "NS's conflict policy decides (reject: exit 3; last-durable-wins; merge: a "
        "three-way merge, exit 3 listing each conflicting path)",
    )
    p.set_defaults(func=cmd_put)

    p = _command(
        sub,
        "patch",
        "apply an RFC 6902 JSON Patch to a key",
        "Apply a JSON Patch (RFC 6902) to KEY's current value, at one new revision. A key "
        "that does not exist exits 1; a patch that does not apply exits 4 naming the op "
        "and its JSON path. " + _WRITE_OUTPUT,
        [
            """statesync patch routes web '[{"op": "replace", "path": "/weight", "value": 7}]'""",
            """statesync patch routes web '[{"op": "add", "path": "/tls", "value": true}]' """
            """--expect-rev 3""",
        ],
    )
    _add_write_options(p)
    p.add_argument(
        "patch",
        metavar="JSON_PATCH",
        help="the patch as JSON text (an array of ops); - reads stdin, @FILE a file",
    )
    p.set_defaults(func=cmd_patch)

    p = _command(
        sub,
        "del",
        "delete a key",
        "Delete KEY from namespace NS (deleting an absent key is allowed). " + _WRITE_OUTPUT,
        ["statesync del routes web", "statesync del routes web --expect-rev 7 --wait-applied"],
    )
    _add_write_options(p)
    p.set_defaults(func=cmd_del)

    p = _command(
        sub,
        "get",
        "read a key (exit 1 if absent)",
        'Print {"key", "value", "create_rev", "mod_rev", "version"} for KEY, at the head or '
        "at any retained revision. Absent: exit 1. Compacted revision: exit 6.",
        ["statesync get routes web", "statesync get routes web --rev 1"],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--rev", type=_revision, metavar="N", help="read at revision N (default: head)")
    p.set_defaults(func=cmd_get)

    p = _command(
        sub,
        "list",
        "list a namespace's keys as JSON lines",
        'Print one {"key", "value", "create_rev", "mod_rev", "version"} line per key, in key '
        "order, consistent at one revision.",
        ["statesync list routes", "statesync list routes --prefix w --rev 12"],
    )
    p.add_argument("ns", metavar="NS")
    p.add_argument("--prefix", default="", help="only keys starting with this")
    p.add_argument("--rev", type=_revision, metavar="N", help="list at revision N (default: head)")
    p.set_defaults(func=cmd_list)

    p = _command(
        sub,
        "watch",
        "print changes to namespaces as JSON lines until interrupted",
        'Print one line per change: {"rev", "ns", "key", "op": "put"|"delete", "value" (put), '
        '"command_id", "create_rev", "version", "ts_ms"}. If --from-rev is compacted, the '
        'current state is printed first as {"op": "put", ..., "snapshot": true} lines, then '
        "changes continue. Runs until SIGINT, SIGTERM or a closed pipe (exit 0).",
        [
            "statesync watch routes",
            "statesync watch routes flags --from-rev 0      # all retained history, then follow",
            "statesync watch routes | jq -c 'select(.key == \"web\")'",
        ],
    )
    p.add_argument("ns", metavar="NS", nargs="+", help="namespaces to follow")
    p.add_argument(
        "--from-rev",
        type=_revision,
        metavar="N",
        help="print changes after revision N (default: the head, i.e. only new changes)",
    )
    p.set_defaults(func=cmd_watch)

    p = _command(
        sub,
        "status",
        "head and compacted revisions, namespaces, and every worker",
        "Show the controller's head and compacted revisions, each namespace's digest and "
        "every worker seen since it started: connected, state, applied revision, lag in "
        "revisions and seconds, last ACK age, digest agreement, NACKs and held keys.",
        [
            "statesync status",
            "statesync status --json | jq '.workers[] | select(.lag_revisions > 0)'",
        ],
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of tables")
    p.add_argument(
        "--wait",
        type=float,
        default=0.0,
        metavar="S",
        help="wait up to S seconds for the controller to answer (and for --workers)",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="with --wait: also wait until N workers are connected and at the head",
    )
    p.set_defaults(func=cmd_status)

    p = _command(
        sub,
        "load",
        "commit JSON lines of ops (or a snapshot file) in batches",
        'Commit lines like {"op": "put", "ns", "key", "value"}, {"op": "patch", "ns", "key", '
        '"patch": [...]} or {"op": "del", "ns", "key"}, one command (one revision) per batch '
        "of ops, pipelined. Every line is checked first: one bad line refuses the whole file, "
        "naming FILE:LINE, and nothing is written. A snapshot file loads as is (its header "
        'line is skipped). Prints {"rev": LAST, "ops": N}.',
        [
            "statesync load ops.jsonl",
            "statesync --server 10.0.0.5:7700 load routes.jsonl",
            "zcat big.jsonl.gz | statesync load - --batch 2000",
        ],
    )
    p.add_argument("file", metavar="FILE|-", help="JSON lines file, or - for stdin")
    p.add_argument(
        "--batch",
        type=_batch_size,
        default=500,
        metavar="N",
        help="ops per command (default 500; a key appears at most once per command)",
    )
    p.set_defaults(func=cmd_load)

    p = _command(
        sub,
        "snapshot",
        "write a consistent snapshot as JSON lines",
        'Write a snapshot consistent at one revision: a header line {"format": '
        f'"{SNAPSHOT_FORMAT}", "rev", "namespaces", "digests", "counts"}} then one '
        '{"op": "put", "ns", "key", "value"} line per key. `statesync load FILE` restores it '
        "into an empty controller with equal digests. The file is replaced atomically.",
        [
            "statesync snapshot --out all.jsonl",
            "statesync snapshot --out routes.jsonl --ns routes --ns flags",
        ],
    )
    p.add_argument("--out", required=True, metavar="FILE")
    p.add_argument(
        "--ns", action="append", metavar="NS", help="namespace to include (repeatable; default all)"
    )
    p.add_argument("--rev", type=_revision, metavar="N", help="at revision N (default: head)")
    p.set_defaults(func=cmd_snapshot)

    p = _command(
        sub,
        "compact",
        "drop history at or below a revision",
        "Drop history at or below REV. Reads at REV and later keep working; older reads exit "
        '6. Prints {"compacted_rev": N}.',
        ["statesync compact 1000"],
    )
    p.add_argument("rev", type=_revision, metavar="REV")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser(
        "log",
        help="show or verify the hash-chained change log (offline)",
        description="Read the change log of the store in --data directly. The controller "
        "must be stopped: while it has the store open, these commands exit 5 (store in use).",
    )
    log_sub = p.add_subparsers(dest="log_command", required=True, metavar="ACTION")
    q = _command(
        log_sub,
        "show",
        "changes after a revision, as JSON lines (offline)",
        "Print the change log of the store in --data, one JSON line per change. Offline: "
        "stop the controller first, else exit 5 (store in use).",
        ["statesync log show --data ./statesync-data --ns routes --after 10"],
        server=False,
        data=True,
    )
    q.add_argument(
        "--after", type=_revision, metavar="REV", help="start after REV (default: oldest retained)"
    )
    q.add_argument("--ns", action="append", metavar="NS", help="only this namespace (repeatable)")
    q.set_defaults(func=cmd_log_show)
    q = _command(
        log_sub,
        "verify",
        "recompute the hash chain; exit 7 if it was altered (offline)",
        "Recompute the hash chain of the store in --data and name the first altered "
        "revision (exit 7). Offline: stop the controller first, else exit 5 (store in use).",
        ["statesync log verify --data ./statesync-data"],
        server=False,
        data=True,
    )
    q.set_defaults(func=cmd_log_verify)

    p = _command(
        sub,
        "demo",
        "a guided tour: a controller in-process on a temporary store",
        "Start a controller in this process on free ports and a temporary data directory, "
        "write, read and conflict through the gRPC client, show the status, and stop.",
        ["statesync demo"],
        server=False,
    )
    p.set_defaults(func=cmd_demo)

    worker_cmd.add_parsers(sub)
    contract_cmd.add_parsers(sub)
    rollback_cmd.add_parsers(sub)
    policy_cmd.add_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.INFO, format=_LOG_FORMAT, stream=sys.stderr)
    try:
        code: int = args.func(args)
        sys.stdout.flush()
        return code
    except StatesyncError as exc:
        _error_line(str(exc))
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Whoever read our output stopped (| head): not an error. Keep the
        # interpreter from complaining while it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
