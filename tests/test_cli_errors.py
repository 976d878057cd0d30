"""Bad input, through the CLI and through the gRPC API: each is refused with
its documented exit code (or error type) and a message naming what was wrong
(namespace, key, JSON path, FILE:LINE), changes nothing, and leaves the
controller serving.

The CLI cases are independent, so they run concurrently once per module (a CLI
process mostly spends its time starting up); each case is still its own test.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from test_cli import Server, cli, cli_many, server

from statesync.client import Client
from statesync.core.commands import Command, Put
from statesync.core.errors import (
    CommandIdReusedError,
    ConflictError,
    FutureRevisionError,
    InvalidKeyError,
    InvalidNamespaceError,
    InvalidPatchError,
    InvalidValueError,
    NotFoundError,
    StatesyncError,
    UnavailableError,
    ValueTooLargeError,
)
from statesync.v1 import statesync_pb2_grpc as pb_grpc
from statesync.wire import error_from_rpc, pb

__all__ = ["server"]  # the module-scoped controller fixture

BIG = '"' + "x" * (1 << 20) + '"'  # 1 MiB + 2 canonical bytes
UNREACHABLE = "127.0.0.1:1"


@dataclass(frozen=True)
class Case:
    id: str
    args: tuple[str, ...]
    code: int
    says: tuple[str, ...]
    stdin: str | None = None


GOOD = '{"op":"put","ns":"loaded","key":"k%d","value":%d}\n'

# Files for the load cases, written by the fixture: name -> content.
LOAD_FILES = {
    "beyond-2-53.jsonl": GOOD % (1, 1)
    + GOOD % (2, 2)
    + GOOD % (3, 3)
    # line 4
    + '{"op":"put","ns":"loaded","key":"k4","value":{"n":9007199254740992}}\n',
    "bad-ns.jsonl": GOOD % (1, 1) + '{"op":"put","ns":"Bad NS","key":"k","value":1}\n',
    "not-json.jsonl": GOOD % (1, 1) + "\n" + "{not json\n",
}

CASES = [
    Case(
        "malformed-json", ("put", "errs", "k", '{"a": 1,'), 4, ("malformed JSON", "'errs'", "'k'")
    ),
    Case(
        "duplicate-key",
        ("put", "errs", "k", '{"a": {"b": 1, "b": 2}}'),
        4,
        ("duplicate object key 'b'", "namespace 'errs', key 'k', at JSON path '/a'"),
    ),
    Case(
        "nested-10000-deep",
        ("put", "errs", "k", "[" * 10_000 + "]" * 10_000),
        4,
        ("nest deeper than 128 levels", "namespace 'errs', key 'k'"),
    ),
    Case(
        "nested-300-deep",
        ("put", "errs", "k", '{"a":' * 300 + "1" + "}" * 300),
        4,
        ("nest deeper than 128 levels", "namespace 'errs', key 'k'"),
    ),
    Case("bad-namespace", ("put", "Bad NS", "k", "1"), 4, ("invalid namespace 'Bad NS'",)),
    Case("empty-key", ("put", "errs", "", "1"), 4, ("invalid key in namespace 'errs'", "empty")),
    Case(
        "oversize-value",
        ("put", "errs", "big", "-"),
        4,
        ("value too large", "namespace 'errs', key 'big'", "limit is 1048576"),
        stdin=BIG,
    ),
    Case(
        "integer-2**53",
        ("put", "errs", "k", '{"n": [1, 9007199254740992]}'),
        4,
        ("namespace 'errs', key 'k', at JSON path '/n/1'", "9007199254740992"),
    ),
    Case(
        "patch-missing-member",
        ("patch", "errs", "doc", '[{"op": "add", "path": "/a/b", "value": 1}]'),
        4,
        ("invalid patch", "namespace 'errs', key 'doc', at JSON path '/a/b'", "op #0"),
    ),
    Case(
        "patch-not-an-array",
        ("patch", "errs", "doc", '{"op": "add", "path": "/a", "value": 1}'),
        4,
        ("key 'doc'", "array"),
    ),
    Case(
        "patch-absent-key",
        ("patch", "errs", "absent", '[{"op": "add", "path": "/a", "value": 1}]'),
        1,
        ("not found: namespace 'errs', key 'absent'",),
    ),
    Case(
        "wrong-expected-revision",
        ("put", "errs", "doc", "2", "--expect-rev", "999"),
        3,
        ("conflict: errs/doc: expected mod_rev == 999, mod_rev is ",),
    ),
    Case(
        "reused-command-id",
        ("put", "errs", "idem", "2", "--id", "errs-1"),
        4,
        ("command_id 'errs-1' was already committed",),
    ),
    Case("get-absent", ("get", "errs", "nope"), 1, ("not found: namespace 'errs', key 'nope'",)),
    Case("get-future", ("get", "errs", "doc", "--rev", "99999"), 4, ("after the head revision",)),
    Case("watch-bad-namespace", ("watch", "errs", "Bad NS"), 4, ("invalid namespace 'Bad NS'",)),
    Case(
        "unknown-flag",
        ("put", "errs", "k", "1", "--bogus"),
        2,
        ("unrecognized arguments: --bogus",),
    ),
    Case("load-missing-file", ("load", "/nonexistent/ops.jsonl"), 4, ("cannot read",)),
    Case(
        "load-beyond-2-53",
        ("load", "{dir}/beyond-2-53.jsonl"),
        4,
        ("beyond-2-53.jsonl:4:", "'/value/n'", "namespace 'loaded', key 'k4'"),
    ),
    Case(
        "load-bad-namespace",
        ("load", "{dir}/bad-ns.jsonl"),
        4,
        ("bad-ns.jsonl:2:", "invalid namespace 'Bad NS'"),
    ),
    Case("load-not-json", ("load", "{dir}/not-json.jsonl"), 4, ("not-json.jsonl:3:", "malformed")),
    Case(
        "load-stdin-bad-line",
        ("load", "-"),
        4,
        ("<stdin>:2:", "duplicate object key 'value'"),
        stdin=GOOD % (1, 1) + '{"op":"put","ns":"loaded","key":"k","value":1,"value":2}\n',
    ),
    Case(
        "snapshot-bad-namespace",
        ("snapshot", "--out", "{dir}/never.jsonl", "--ns", "Bad NS"),
        4,
        ("invalid namespace 'Bad NS'",),
    ),
]


@dataclass
class Outcomes:
    results: dict[str, subprocess.CompletedProcess[str]]
    head_before: int
    head_after: int
    digests_before: dict[str, bytes]
    digests_after: dict[str, bytes]
    files: Path


def _state(address: str) -> tuple[int, dict[str, bytes]]:
    with Client(address) as client:
        status = client.status()
    return status.head_rev, {n.ns: n.root for n in status.namespaces}


@pytest.fixture(scope="module")
def outcomes(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outcomes]:
    files = tmp_path_factory.mktemp("load-files")
    for name, content in LOAD_FILES.items():
        (files / name).write_text(content)
    with Client(server.address) as client:
        client.put("errs", "doc", {})
        client.put("errs", "idem", 1, command_id="errs-1")
    head_before, digests_before = _state(server.address)

    def run(case: Case) -> subprocess.CompletedProcess[str]:
        args = tuple(a.replace("{dir}", str(files)) for a in case.args)
        return cli(server.address, *args, stdin=case.stdin)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip((c.id for c in CASES), pool.map(run, CASES), strict=True))
    head_after, digests_after = _state(server.address)  # also: the server is still up
    yield Outcomes(results, head_before, head_after, digests_before, digests_after, files)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_cli_input_is_refused_clearly(outcomes: Outcomes, case: Case) -> None:
    result = outcomes.results[case.id]
    assert result.returncode == case.code, result.stderr
    assert result.stdout == ""
    for text in case.says:
        assert text in result.stderr, f"{text!r} not in {result.stderr!r}"
    if case.code != 2:
        assert result.stderr.startswith("statesync: error: ")
        assert result.stderr.count("\n") == 1, "one line"
    else:
        assert "usage: statesync" in result.stderr


def test_bad_cli_input_changes_nothing(outcomes: Outcomes) -> None:
    assert outcomes.head_after == outcomes.head_before
    assert outcomes.digests_after == outcomes.digests_before
    assert "loaded" not in outcomes.digests_after, "a refused load file wrote nothing"
    assert not list(outcomes.files.glob("never.jsonl*")), "no snapshot file left behind"


def test_unreachable_server_exits_5_naming_the_address() -> None:
    results = cli_many(
        UNREACHABLE,  # as $STATESYNC_SERVER
        ("--server", UNREACHABLE, "put", "errs", "k", "1"),
        ("status", "--json"),
        ("watch", "errs"),
    )
    for result in results:
        assert result.returncode == 5, result.stderr
        assert result.stdout == ""
        assert result.stderr.startswith(f"statesync: error: server {UNREACHABLE} is unavailable")


def test_load_failing_on_the_server_names_the_lines(server: Server, tmp_path: Path) -> None:
    """A line can be well-formed and still fail on the server (a patch of an absent
    key): the message names the batch's lines; earlier batches stay committed."""
    ops = tmp_path / "ops.jsonl"
    ops.write_text(
        '{"op":"put","ns":"partial","key":"a","value":1}\n'
        '{"op":"put","ns":"partial","key":"b","value":2}\n'
        '{"op":"patch","ns":"partial","key":"absent","patch":[]}\n'
    )
    before, _ = _state(server.address)
    result = cli(server.address, "load", str(ops), "--batch", "2")
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert f"{ops}:3: not found: namespace 'partial', key 'absent'" in result.stderr
    assert "2 of 3 ops were committed" in result.stderr
    assert _state(server.address)[0] == before + 1


# ---------------------------------------------------------------- the same through the API


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[Client]:
    with Client(server.address) as c:
        yield c


def _raw_put(server: Server, value: bytes, ns: str = "errs", key: str = "k") -> StatesyncError:
    """Send bytes the Python client would never produce, straight to the wire."""
    request = pb.CommandRequest(ops=[pb.Op(put=pb.PutOp(ns=ns, key=key, value=value))])
    with grpc.insecure_channel(server.address) as channel:
        try:
            pb_grpc.StatesyncStub(channel).Commit(request, timeout=10)
        except grpc.RpcError as exc:
            return error_from_rpc(exc, server.address)
    pytest.fail("the server accepted it")


def test_an_oversized_command_is_refused_by_count(server: Server) -> None:
    ops = [pb.Op(delete=pb.DeleteOp(ns="errs", key=f"k{i}")) for i in range(10_001)]
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
        pb_grpc.StatesyncStub(channel).Commit(pb.CommandRequest(ops=ops), timeout=10)
    error = error_from_rpc(info.value, server.address)
    assert "at most 10000 ops" in str(error), error


def test_api_refuses_bad_values_naming_where(server: Server, client: Client) -> None:
    before = _state(server.address)

    malformed = _raw_put(server, b'{"a": 1,')
    assert isinstance(malformed, InvalidValueError)
    assert (malformed.namespace, malformed.key, malformed.path) == ("errs", "k", "")
    assert "malformed JSON" in str(malformed)

    duplicate = _raw_put(server, b'{"a": {"b": 1, "b": 2}}')
    assert isinstance(duplicate, InvalidValueError) and duplicate.path == "/a"
    assert "duplicate object key 'b'" in duplicate.reason

    for depth in (129, 300, 50_000):  # over the wire, as JSON text nobody checked
        deep = _raw_put(server, b"[" * depth + b"]" * depth)
        assert isinstance(deep, InvalidValueError), deep
        assert (deep.namespace, deep.key) == ("errs", "k")
        assert "nest deeper than 128 levels" in deep.reason
    nested: object = 1
    for _ in range(5_000):  # through the client, as Python objects
        nested = [nested]
    with pytest.raises(InvalidValueError, match="nest deeper than 128") as deep_object:
        client.put("errs", "k", nested)
    assert (deep_object.value.namespace, deep_object.value.key) == ("errs", "k")

    with pytest.raises(InvalidValueError) as beyond:
        client.put("errs", "k", {"n": [1, 2**53]})
    assert (beyond.value.namespace, beyond.value.key, beyond.value.path) == ("errs", "k", "/n/1")

    with pytest.raises(InvalidNamespaceError) as bad_ns:
        client.put("Bad NS", "k", 1)
    assert bad_ns.value.namespace == "Bad NS"

    with pytest.raises(InvalidKeyError) as empty:
        client.put("errs", "", 1)
    assert (empty.value.namespace, empty.value.key) == ("errs", "")

    with pytest.raises(ValueTooLargeError) as big:
        client.put("errs", "big", "x" * (1 << 20))
    assert (big.value.namespace, big.value.key) == ("errs", "big")
    assert big.value.size > big.value.limit == 1 << 20

    with pytest.raises(InvalidPatchError) as patch:
        client.patch("errs", "doc", [{"op": "add", "path": "/a/b", "value": 1}])
    assert (patch.value.namespace, patch.value.key, patch.value.path) == ("errs", "doc", "/a/b")
    assert patch.value.op_index == 0

    assert _state(server.address) == before


def test_api_conflicts_and_revisions(server: Server, client: Client) -> None:
    committed = client.put("errs", "cas", 1)
    before = _state(server.address)
    with pytest.raises(ConflictError) as conflict:
        client.put("errs", "cas", 2, expect_rev=committed.rev + 1000)
    [failed] = conflict.value.failed
    assert (failed.namespace, failed.key) == ("errs", "cas")
    assert failed.expected == f"mod_rev == {committed.rev + 1000}"
    assert failed.actual_mod_rev == committed.rev

    with pytest.raises(CommandIdReusedError) as reused:
        client.put("errs", "cas", 3, command_id=committed.command_id)
    assert reused.value.committed_rev == committed.rev

    with pytest.raises(NotFoundError):
        client.patch("errs", "absent", [{"op": "add", "path": "/a", "value": 1}])
    with pytest.raises(FutureRevisionError):
        client.get("errs", "cas", rev=before[0] + 1000)
    assert client.get("errs", "nope") is None
    assert _state(server.address) == before


def test_api_commit_stream_reports_each_failure_in_place(server: Server, client: Client) -> None:
    before, _ = _state(server.address)
    results = list(
        client.commit_stream(
            iter(
                [
                    Command([Put("stream", "a", 1)]),
                    Command([Put("stream", "b", {"n": 2**53})]),
                    Command([Put("stream", "c", 3)]),
                ]
            )
        )
    )
    assert isinstance(results[1], InvalidValueError) and results[1].path == "/n"
    assert [r.rev for r in (results[0], results[2])] == [before + 1, before + 2]  # type: ignore[union-attr]


def test_api_unreachable_server() -> None:
    with Client(UNREACHABLE, timeout=10) as c, pytest.raises(UnavailableError) as unavailable:
        c.status()
    assert unavailable.value.address == UNREACHABLE
    assert unavailable.value.exit_code == 5 and unavailable.value.retryable


def test_api_patch_that_is_not_an_array(client: Client) -> None:
    with pytest.raises(InvalidPatchError) as patch:
        client.patch("errs", "doc", {"op": "add", "path": "/a", "value": 1})  # type: ignore[arg-type]
    assert "array" in str(patch.value) and patch.value.op_index is None
