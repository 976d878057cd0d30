"""The Python worker against the behaviour vectors (conformance/behaviour).

Each vector is a scripted Sync exchange, driven without a network through the
binding the Python `Worker` runs on: the native worker session
(`statesync._native.WorkerSession`) over a replica in a temporary directory,
with the Python worker's own decision hook (`Worker._decide`, which runs the
validator and handler) as its handler. Its replies, the stream ends (and the
hello of the next stream) and its replica after each step must be exactly the
vector's (conformance/README.md says how to run them;
crates/worker/tests/behaviour.rs runs the same file against the Rust crate).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import json_format

import statesync._native as _native
from statesync.core.canonical import canonical_bytes
from statesync.wire import pb
from statesync.worker.replica import Entry, HeldKey, Replica
from statesync.worker.worker import ChangeEvent, Reject, Worker, WorkerSettings

VECTORS = Path(__file__).resolve().parent.parent / "conformance" / "behaviour" / "vectors.json"


def _load() -> list[dict[str, Any]]:
    file = json.loads(VECTORS.read_text())
    assert file["format_version"] == 1, "unknown format_version"
    vectors: list[dict[str, Any]] = file["vectors"]
    assert len(vectors) >= 10, "the behaviour vectors are missing"
    return vectors


ALL = _load()


def _seed(state_dir: Path, worker_id: str, state: dict[str, Any]) -> None:
    """Write the vector's replica (`initial`) into `state_dir`."""
    replica = Replica(state_dir, worker_id=worker_id)
    puts = []
    for e in state["entries"]:
        value = e["value"].encode()
        entry = Entry(
            value, e["create_rev"], e["mod_rev"], e["version"], hashlib.sha256(value).digest()
        )
        puts.append((e["ns"], e["key"], entry))
    rejected = [
        (HeldKey(h["ns"], h["key"], h["rev"], h["reason"]), bytes.fromhex(h["refused"]))
        for h in state["held"]
    ]
    replica.apply(state["applied_rev"], puts, [], rejected)
    replica.close()


def _state(replica: Replica, namespaces: list[str]) -> dict[str, Any]:
    """The replica as the vectors spell it; a held key's `refused` is the hash
    its digest counts (what the leaves of a descent show)."""
    entries = []
    for ns in namespaces:
        for key, value in replica.values(ns):
            entry = replica.get(ns, key)
            assert entry is not None
            entries.append(
                {
                    "ns": ns,
                    "key": key,
                    "value": value.decode(),
                    "create_rev": entry.create_rev,
                    "mod_rev": entry.mod_rev,
                    "version": entry.version,
                }
            )
    held = []
    for h in replica.held():
        counted = replica.leaves(h.namespace, "").get(h.key, b"")
        held.append(
            {
                "ns": h.namespace,
                "key": h.key,
                "rev": h.rev,
                "reason": h.reason,
                "refused": counted.hex(),
            }
        )
    return {"applied_rev": replica.applied_rev, "entries": entries, "held": held}


def _handler(rules: list[dict[str, Any]]) -> Any:
    """The vector's handler: refuse the listed puts (of exactly that value) and deletes."""

    def handle(event: ChangeEvent) -> None:
        for rule in rules:
            if (rule["ns"], rule["key"], rule["op"]) != (event.ns, event.key, event.op):
                continue
            if "value" in rule and canonical_bytes(event.value) != rule["value"].encode():
                continue
            raise Reject(rule["reason"])

    return handle


def _request(message: dict[str, Any]) -> pb.SyncRequest:
    return json_format.ParseDict(message, pb.SyncRequest())


def _show(messages: list[pb.SyncRequest]) -> list[Any]:
    return [json_format.MessageToDict(m) for m in messages]


def _run(vector: dict[str, Any], tmp_path: Path) -> None:
    name = vector["name"]
    options = vector["options"]
    namespaces: list[str] = options["namespaces"]
    state_dir = tmp_path / "replica"
    _seed(state_dir, options["worker_id"], vector["initial"])
    worker = Worker(
        "unused:0",
        worker_id=options["worker_id"],
        namespaces=namespaces,
        handler=_handler(options["reject"]),
        settings=WorkerSettings(heartbeat_s=options["heartbeat_s"]),
        deltas=options["deltas"],
    )
    replica = Replica(state_dir, worker_id=options["worker_id"])
    session = _native.WorkerSession(
        replica.native,
        options["worker_id"],
        namespaces,
        deltas=options["deltas"],
        heartbeat_s=options["heartbeat_s"],
    )

    def hello() -> pb.SyncRequest:
        return pb.SyncRequest.FromString(session.hello())

    try:
        assert hello() == _request(vector["hello"]), f"{name}: hello"
        for i, step in enumerate(vector["steps"]):
            reply = json_format.ParseDict(step["receive"], pb.SyncReply())
            encoded, ended = session.receive(reply.SerializeToString(), worker._decide)
            sent = [pb.SyncRequest.FromString(m) for m in encoded]
            expected = [_request(m) for m in step["send"]]
            assert sent == expected, f"{name} step {i}: replies {_show(sent)}"
            if "reconnect" in step:
                assert ended is not None, f"{name} step {i}: the stream must end"
                again = hello()
                assert again == _request(step["reconnect"]), (
                    f"{name} step {i}: reconnect hello {json_format.MessageToDict(again)}"
                )
            else:
                assert ended is None, f"{name} step {i}: the stream must go on, ended: {ended}"
            assert _state(replica, namespaces) == step["replica"], f"{name} step {i}: replica"
    finally:
        replica.close()


@pytest.mark.parametrize("vector", ALL, ids=[v["name"] for v in ALL])
def test_behaviour_vector(vector: dict[str, Any], tmp_path: Path) -> None:
    _run(vector, tmp_path)
