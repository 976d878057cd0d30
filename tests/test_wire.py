"""The wire contract: generated code is current, values are checked, errors keep their type."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statesync.core.canonical import parse_json
from statesync.core.commands import Command, Compare, Delete, Patch, Put
from statesync.core.errors import (
    ConflictError,
    FailedCompare,
    InvalidValueError,
    NotFoundError,
    RemoteError,
    StatesyncError,
)
from statesync.v1 import statesync_pb2
from statesync.wire import (
    command_to_pb,
    error_from_pb,
    error_to_pb,
    pb,
)

ROOT = Path(__file__).resolve().parent.parent


def test_generated_code_matches_the_proto(tmp_path: Path) -> None:
    """Compare descriptors, not bytes, so a newer grpcio-tools does not count as stale."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    out = tmp_path / "set.pb"
    include = Path(protoc.__file__).parent / "_proto"
    rc = protoc.main(
        [
            "protoc",
            f"-I{ROOT / 'proto'}",
            f"-I{include}",
            f"--descriptor_set_out={out}",
            "statesync/v1/statesync.proto",
        ]
    )
    assert rc == 0

    fresh = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file[0]
    for message in fresh.message_type:  # the Python generator leaves json_name out
        for f in message.field:
            f.ClearField("json_name")
        for nested in message.nested_type:
            for f in nested.field:
                f.ClearField("json_name")
    checked_in = descriptor_pb2.FileDescriptorProto.FromString(
        statesync_pb2.DESCRIPTOR.serialized_pb
    )
    assert fresh == checked_in, "proto changed: run `python proto/generate.py` and commit"
    grpc_code = (ROOT / "statesync/v1/statesync_pb2_grpc.py").read_text()
    for method in fresh.service[0].method:
        assert f"/statesync.v1.Statesync/{method.name}" in grpc_code, (
            f"{method.name} missing from statesync_pb2_grpc.py: run `python proto/generate.py`"
        )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(value=json_values, mod_rev=st.integers(0, 2**40))
def test_command_round_trips(value: object, mod_rev: int) -> None:
    command = Command(
        [
            Put("routes", "web", value),
            Patch("routes", "api", [{"op": "add", "path": "/x", "value": value}]),
            Delete("flags", "old"),
        ],
        [
            Compare.mod_rev_is("routes", "web", mod_rev),
            Compare.exists("routes", "api"),
            Compare.absent("flags", "new"),
        ],
        command_id="id-1",
        trace="00-abc-def-01",
    )
    request = pb.CommandRequest.FromString(command_to_pb(command).SerializeToString())
    assert (request.command_id, request.trace) == ("id-1", "00-abc-def-01")
    put, patch, delete = request.ops
    assert (put.put.ns, put.put.key, parse_json(put.put.value)) == ("routes", "web", value)
    assert parse_json(patch.patch.patch) == [{"op": "add", "path": "/x", "value": value}]
    assert (delete.delete.ns, delete.delete.key) == ("flags", "old")
    assert [(c.ns, c.key, c.WhichOneof("target")) for c in request.compares] == [
        ("routes", "web", "mod_rev"),
        ("routes", "api", "exists"),
        ("flags", "new", "exists"),
    ]
    assert [request.compares[0].mod_rev, request.compares[1].exists] == [mod_rev, True]
    assert not request.compares[2].exists  # absent


@pytest.mark.parametrize(
    "error",
    [
        ConflictError([FailedCompare("routes", "web", "mod_rev == 3", 7)]),
        NotFoundError("routes", "web", 4),
        InvalidValueError("routes", "web", "/a/0", "integer out of range"),
    ],
)
def test_errors_keep_type_fields_and_exit_code(error: StatesyncError) -> None:
    back = error_from_pb(pb.Error.FromString(error_to_pb(error).SerializeToString()))
    assert type(back) is type(error)
    assert str(back) == str(error)
    assert back.exit_code == error.exit_code
    assert back.to_dict() == error.to_dict()


def test_unknown_error_types_from_a_newer_server_stay_readable() -> None:
    back = error_from_pb(pb.Error(code="QuotaError", message="over quota", detail=b'{"n": 1}'))
    assert isinstance(back, RemoteError)
    assert (back.code, str(back), back.detail) == ("QuotaError", "over quota", {"n": 1})
