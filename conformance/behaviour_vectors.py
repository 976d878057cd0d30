"""The worker behaviour vectors (conformance/behaviour/vectors.json): scripted Sync exchanges.

Each vector starts a worker from a replica state and options, and feeds it controller
messages (`SyncReply`) one at a time; each step lists the worker's replies (`SyncRequest`s),
whether it ends the stream (and the `Hello` it reconnects with), and its replica afterwards.
`docs/wire.md` ("The sync stream" and below) is the normative text; where it is silent the
expectations follow the reference worker (`crates/worker/src/session.rs`).

Every expected result is written here by hand from those rules: the replica after each step
is spelled out, and the ACKs, hellos and descent answers are computed from that replica by the
small from-the-spec functions below (digests per `docs/digest.md`, descent answers per
`docs/wire.md` "Digest descent", canonical bytes from `rfc8785`), never by running a worker.
Messages are in the proto3 JSON mapping (`google.protobuf.json_format`, as Go's protojson).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import rfc8785
from google.protobuf import json_format

from statesync.v1 import statesync_pb2 as pb

NS = "routes"
OTHER = "flags"
HASH_REFUSED = "the value does not match its hash"
LEAF_LIMIT = 256


# -- the replica, as the vectors spell it ------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    value: Any
    create_rev: int
    mod_rev: int
    version: int

    @property
    def canonical(self) -> bytes:
        return bytes(rfc8785.dumps(self.value))

    @property
    def vhash(self) -> bytes:
        return hashlib.sha256(self.canonical).digest()


@dataclass(frozen=True)
class Held:
    rev: int
    reason: str
    refused: bytes  # the controller's hash of the refused value; b"": a refused delete


@dataclass
class State:
    applied_rev: int
    namespaces: tuple[str, ...]
    entries: dict[tuple[str, str], Entry] = field(default_factory=dict)
    held: dict[tuple[str, str], Held] = field(default_factory=dict)

    def copy(self, applied_rev: int | None = None) -> State:
        return State(
            self.applied_rev if applied_rev is None else applied_rev,
            self.namespaces,
            dict(self.entries),
            dict(self.held),
        )

    def counted(self, ns: str) -> dict[str, bytes]:
        """The authoritative view (docs/wire.md, Held keys): a held key counts with the
        controller's hash, a refused delete not at all."""
        out = {k: e.vhash for (n, k), e in self.entries.items() if n == ns}
        for (n, k), h in self.held.items():
            if n != ns:
                continue
            if h.refused:
                out[k] = h.refused
            else:
                out.pop(k, None)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "applied_rev": self.applied_rev,
            "entries": [
                {
                    "ns": ns,
                    "key": key,
                    "value": e.canonical.decode(),
                    "create_rev": e.create_rev,
                    "mod_rev": e.mod_rev,
                    "version": e.version,
                }
                for (ns, key), e in sorted(self.entries.items())
            ],
            "held": [
                {"ns": ns, "key": key, "rev": h.rev, "reason": h.reason, "refused": h.refused.hex()}
                for (ns, key), h in sorted(self.held.items())
            ],
        }


# -- digests and descent answers from docs/digest.md and docs/wire.md --------------------------


def _leaf(key: str, vhash: bytes) -> int:
    raw = key.encode()
    preimage = b"statesync.leaf.v1\x00" + len(raw).to_bytes(4, "big") + raw + vhash
    return int.from_bytes(hashlib.sha256(preimage).digest(), "big")


def _fingerprint(pairs: dict[str, bytes]) -> bytes:
    total = sum(_leaf(k, h) for k, h in pairs.items()) % 2**256
    body = b"statesync.node.v1\x00" + len(pairs).to_bytes(8, "big") + total.to_bytes(32, "big")
    return hashlib.sha256(body).digest()


def _under(pairs: dict[str, bytes], prefix: str) -> dict[str, bytes]:
    return {
        k: h for k, h in pairs.items() if hashlib.sha256(k.encode()).hexdigest().startswith(prefix)
    }


def _leaf4(key: str, vhash: bytes) -> bytes:
    return _leaf(key, vhash).to_bytes(32, "big")[:4]


def _node_answer(pairs: dict[str, bytes], prefix: str) -> pb.NodeAnswer:
    under = _under(pairs, prefix)
    if len(under) <= LEAF_LIMIT or len(prefix) == 64:
        packed = b"".join(sorted(_leaf4(k, h) for k, h in under.items()))
        return pb.NodeAnswer(prefix=prefix, leaves=packed, is_leaves=True)
    children = b""
    for nibble in "0123456789abcdef":
        child = _under(under, prefix + nibble)
        children += len(child).to_bytes(4, "big") + _fingerprint(child)[:4]
    return pb.NodeAnswer(prefix=prefix, children=children)


# -- messages ----------------------------------------------------------------------------------


def _json(message: Any) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def ack(state: State, repaired: int = 0) -> pb.SyncRequest:
    digests = [
        pb.NamespaceDigest(
            ns=ns, root=_fingerprint(state.counted(ns)), count=len(state.counted(ns))
        )
        for ns in sorted(state.namespaces)
    ]
    return pb.SyncRequest(
        ack=pb.Ack(rev=state.applied_rev, digests=digests, held=_held(state), repaired=repaired)
    )


def _held(state: State) -> list[pb.HeldKey]:
    out = []
    for (ns, key), h in sorted(state.held.items()):
        kept = state.entries.get((ns, key))
        out.append(
            pb.HeldKey(
                ns=ns, key=key, rev=h.rev, reason=h.reason, held_hash=kept.vhash if kept else b""
            )
        )
    return out


def hello(state: State, *, from_rev: int | None = None, deltas: bool = False) -> pb.SyncRequest:
    return pb.SyncRequest(
        hello=pb.Hello(
            worker_id="w1",
            namespaces=sorted(state.namespaces),
            from_rev=state.applied_rev if from_rev is None else from_rev,
            deltas=deltas,
            heartbeat_s=1.0,
            held=_held(state),
        )
    )


def nack(rev: int, key: str, reason: str, ns: str = NS) -> pb.SyncRequest:
    return pb.SyncRequest(nack=pb.Nack(rev=rev, ns=ns, key=key, reason=reason))


def put(
    key: str, value: Any, *, create: int, version: int, ns: str = NS, prev: int = 0
) -> pb.Change:
    canonical = bytes(rfc8785.dumps(value))
    return pb.Change(
        ns=ns,
        key=key,
        value=canonical,
        value_hash=hashlib.sha256(canonical).digest(),
        prev_mod_rev=prev,
        create_rev=create,
        version=version,
    )


def delete(key: str, *, prev: int, ns: str = NS) -> pb.Change:
    return pb.Change(ns=ns, key=key, kind=pb.Change.DELETE, prev_mod_rev=prev)


def delta(
    key: str, patch: list[Any], result: Any, *, prev: int, create: int, version: int
) -> pb.Change:
    return pb.Change(
        ns=NS,
        key=key,
        patch=bytes(rfc8785.dumps(patch)),
        value_hash=hashlib.sha256(bytes(rfc8785.dumps(result))).digest(),
        prev_mod_rev=prev,
        create_rev=create,
        version=version,
    )


def batch(prev_rev: int, rev: int, *revisions: pb.Revision) -> pb.SyncReply:
    return pb.SyncReply(batch=pb.ChangeBatch(prev_rev=prev_rev, rev=rev, revisions=revisions))


def revision(rev: int, *changes: pb.Change) -> pb.Revision:
    return pb.Revision(rev=rev, command_id=f"cmd-{rev}", changes=changes)


def progress(rev: int) -> pb.SyncReply:
    return pb.SyncReply(progress=pb.Progress(rev=rev, head_rev=rev))


def pb_entry(ns: str, key: str, e: Entry) -> pb.Entry:
    return pb.Entry(
        ns=ns,
        key=key,
        value=e.canonical,
        create_rev=e.create_rev,
        mod_rev=e.mod_rev,
        version=e.version,
    )


def snapshot_digests(
    entries: dict[tuple[str, str], Entry], namespaces: tuple[str, ...]
) -> list[pb.NamespaceDigest]:
    out = []
    for ns in namespaces:
        pairs = {k: e.vhash for (n, k), e in entries.items() if n == ns}
        out.append(pb.NamespaceDigest(ns=ns, root=_fingerprint(pairs), count=len(pairs)))
    return out


def snapshot(
    rev: int, entries: dict[tuple[str, str], Entry], namespaces: tuple[str, ...], reason: str
) -> list[pb.SyncReply]:
    """A Resync and its chunks: the entries split over two chunks, the last with the digests."""
    digests = snapshot_digests(entries, namespaces)
    items = [pb_entry(ns, k, e) for (ns, k), e in sorted(entries.items())]
    half = len(items) // 2
    return [
        pb.SyncReply(resync=pb.Resync(reason=reason, rev=rev, digests=digests)),
        pb.SyncReply(chunk=pb.SnapshotChunk(rev=rev, entries=items[:half])),
        pb.SyncReply(
            chunk=pb.SnapshotChunk(rev=rev, entries=items[half:], digests=digests, last=True)
        ),
    ]


# -- vectors -----------------------------------------------------------------------------------


@dataclass
class Script:
    """A vector being written: the state it starts from and its steps."""

    name: str
    about: str
    state: State
    deltas: bool = False
    reject: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.initial = self.state.copy()

    def step(
        self,
        receive: pb.SyncReply,
        after: State,
        send: list[pb.SyncRequest] | None = None,
        *,
        reconnect_from: int | None = None,
        note: str = "",
    ) -> None:
        out: dict[str, Any] = {"receive": _json(receive), "send": [_json(m) for m in send or []]}
        if reconnect_from is not None:
            out["reconnect"] = _json(hello(after, from_rev=reconnect_from, deltas=self.deltas))
        out["replica"] = after.to_json()
        if note:
            out["note"] = note
        self.steps.append(out)
        self.state = after

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "about": self.about,
            "options": {
                "worker_id": "w1",
                "namespaces": sorted(self.initial.namespaces),
                "deltas": self.deltas,
                "heartbeat_s": 1.0,
                "reject": self.reject,
            },
            "initial": self.initial.to_json(),
            "hello": _json(hello(self.initial, deltas=self.deltas)),
            "steps": self.steps,
        }


def _reject(key: str, value: Any, reason: str, ns: str = NS) -> dict[str, Any]:
    """A handler rule: refuse a put of `value` (None: a delete) to `key`."""
    rule: dict[str, Any] = {"ns": ns, "key": key, "op": "delete" if value is None else "put"}
    if value is not None:
        rule["value"] = bytes(rfc8785.dumps(value)).decode()
    rule["reason"] = reason
    return rule


def _seeded(applied: int, namespaces: tuple[str, ...] = (NS,)) -> State:
    """A replica at `applied` holding routes/a (rev 2) and routes/b (rev 3)."""
    state = State(applied, namespaces)
    state.entries[(NS, "a")] = Entry({"port": 80}, 2, 2, 1)
    state.entries[(NS, "b")] = Entry({"port": 81}, 3, 3, 1)
    return state


def _bootstrap() -> Script:
    s = Script(
        "bootstrap_snapshot",
        "An empty replica says from_rev 0, receives a Resync and its chunks, verifies the "
        "digests, replaces its replica at Resync.rev and ACKs it once, after the last chunk.",
        State(0, (NS, OTHER)),
    )
    entries = {
        (NS, "a"): Entry({"port": 80}, 2, 2, 1),
        (NS, "b"): Entry({"port": 81}, 3, 4, 2),
        (OTHER, "dark-mode"): Entry(True, 5, 5, 1),
    }
    resync, first, last = snapshot(
        5, entries, (NS, OTHER), "an empty replica bootstraps from a snapshot"
    )
    s.step(resync, s.state.copy(), note="nothing is applied before the last chunk")
    s.step(first, s.state.copy())
    after = State(5, (NS, OTHER), dict(entries))
    s.step(last, after, [ack(after)])
    s.step(progress(8), after.copy(8), [ack(after.copy(8))])
    return s


def _resume_replay() -> Script:
    s = Script(
        "resume_replay",
        "A worker at 7 reconnects with from_rev 7. A batch wholly at or before 7 is a replay "
        "(skipped, ACK 7); a batch (5, 9] applies only revisions 8 and 9.",
        _seeded(7),
    )
    s.step(
        batch(3, 6, revision(4, put("a", {"port": 1}, create=2, version=2))),
        s.state.copy(),
        [ack(s.state)],
        note="replay: nothing changes",
    )
    after = s.state.copy(9)
    after.entries[(NS, "c")] = Entry({"port": 82}, 8, 8, 1)
    del after.entries[(NS, "b")]
    s.step(
        batch(
            5,
            9,
            revision(6, put("a", {"port": 6}, create=2, version=2)),
            revision(7, put("a", {"port": 7}, create=2, version=3)),
            revision(8, put("c", {"port": 82}, create=8, version=1)),
            revision(9, delete("b", prev=3)),
        ),
        after,
        [ack(after)],
        note="revisions 6 and 7 are already applied and skipped",
    )
    return s


def _gap() -> Script:
    s = Script(
        "gap",
        "A batch whose prev_rev is after the applied revision is a gap: the worker applies "
        "nothing, ends the stream and reconnects with from_rev = its applied revision.",
        _seeded(7),
    )
    s.step(
        batch(8, 9, revision(9, put("a", {"port": 9}, create=2, version=2))),
        s.state.copy(),
        reconnect_from=7,
    )
    after = s.state.copy(9)
    after.entries[(NS, "a")] = Entry({"port": 9}, 2, 9, 2)
    s.step(
        batch(7, 9, revision(9, put("a", {"port": 9}, create=2, version=2))),
        after,
        [ack(after)],
        note="on the new stream",
    )
    return s


def _protocol_errors() -> Script:
    s = Script(
        "protocol_errors",
        "A batch that goes backwards (rev < prev_rev), a chunk without a Resync, and a batch "
        "in the middle of a snapshot each end the stream; the worker reconnects from its "
        "applied revision and has changed nothing (the partial snapshot is discarded).",
        _seeded(7),
    )
    s.step(batch(9, 8), s.state.copy(), reconnect_from=7)
    s.step(pb.SyncReply(chunk=pb.SnapshotChunk(rev=9, last=True)), s.state.copy(), reconnect_from=7)
    entries = {(NS, "z"): Entry(1, 9, 9, 1)}
    resync, first, _ = snapshot(9, entries, (NS,), "compacted")
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    s.step(batch(7, 8), s.state.copy(), reconnect_from=7)
    return s


def _compacted_resync() -> Script:
    state = _seeded(3)
    state.held[(NS, "b")] = Held(3, "port out of range", hashlib.sha256(b'{"port":99999}').digest())
    s = Script(
        "compacted_resync",
        "A worker behind the compacted history gets Resync and a snapshot: keys absent from "
        "it are deleted, earlier holds are released, a key refused in the snapshot is held "
        "again at the snapshot's revision (its last good value kept, NACKed), ACK Resync.rev.",
        state,
        reject=[_reject("d", {"port": -1}, "port out of range")],
    )
    entries = {
        (NS, "a"): Entry({"port": 80}, 2, 2, 1),
        (NS, "b"): Entry({"port": 88}, 3, 12, 2),
        (NS, "c"): Entry({"port": 82}, 15, 15, 1),
        (NS, "d"): Entry({"port": -1}, 16, 16, 1),
    }
    resync, first, last = snapshot(
        20, entries, (NS,), "revision 3 is compacted (history starts after 10)"
    )
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    after = State(20, (NS,), {k: v for k, v in entries.items() if k[1] != "d"})
    after.held[(NS, "d")] = Held(20, "port out of range", entries[(NS, "d")].vhash)
    s.step(last, after, [nack(20, "d", "port out of range"), ack(after)])
    return s


def _snapshot_bad_digest() -> Script:
    s = Script(
        "snapshot_bad_digest",
        "A snapshot whose entries do not match Resync.digests is discarded: the worker keeps "
        "its replica and requests a resync (reconnects with from_rev 0).",
        _seeded(3),
    )
    entries = {(NS, "a"): Entry({"port": 80}, 2, 2, 1)}
    resync, first, last = snapshot(20, entries, (NS,), "compacted")
    wrong = snapshot_digests({(NS, "a"): Entry({"port": 8080}, 2, 2, 1)}, (NS,))
    for message in (resync.resync, last.chunk):
        message.ClearField("digests")
        message.digests.extend(wrong)
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    s.step(last, s.state.copy(), reconnect_from=0)
    return s


def _nack_and_release_by_put() -> Script:
    s = Script(
        "nack_then_release_by_put",
        "The handler refuses a put: the worker NACKs it, keeps the last good value, applies "
        "the rest of the revision, ACKs with the key in held (held_hash: the value kept) and "
        "a digest that counts the controller's value_hash. A later put it refuses again "
        "moves the hold to the new revision and reason; a later put it accepts releases it.",
        _seeded(5),
        reject=[
            _reject("a", {"port": 99999}, "port out of range"),
            _reject("a", {"port": 0}, "port zero"),
        ],
    )
    bad = put("a", {"port": 99999}, create=2, version=2)
    after = s.state.copy(6)
    after.entries[(NS, "b")] = Entry({"port": 90}, 3, 6, 2)
    after.held[(NS, "a")] = Held(6, "port out of range", bad.value_hash)
    s.step(
        batch(5, 6, revision(6, bad, put("b", {"port": 90}, create=3, version=2))),
        after,
        [nack(6, "a", "port out of range"), ack(after)],
    )
    again = put("a", {"port": 0}, create=2, version=3)
    after = s.state.copy(7)
    after.held[(NS, "a")] = Held(7, "port zero", again.value_hash)
    s.step(batch(6, 7, revision(7, again)), after, [nack(7, "a", "port zero"), ack(after)])
    after = s.state.copy(8)
    del after.held[(NS, "a")]
    after.entries[(NS, "a")] = Entry({"port": 443}, 2, 8, 4)
    s.step(
        batch(7, 8, revision(8, put("a", {"port": 443}, create=2, version=4))), after, [ack(after)]
    )
    return s


def _release_by_delete() -> Script:
    s = Script(
        "held_released_by_delete",
        "A refused put holds a key that had no value (held_hash empty); a later delete "
        "releases it. A refused delete keeps the value and is not counted in the digest.",
        _seeded(5),
        reject=[_reject("n", {"port": 1}, "no new routes"), _reject("b", None, "b is pinned")],
    )
    refused = put("n", {"port": 1}, create=6, version=1)
    after = s.state.copy(6)
    after.held[(NS, "n")] = Held(6, "no new routes", refused.value_hash)
    s.step(batch(5, 6, revision(6, refused)), after, [nack(6, "n", "no new routes"), ack(after)])
    after = s.state.copy(7)
    del after.held[(NS, "n")]
    s.step(batch(6, 7, revision(7, delete("n", prev=6))), after, [ack(after)])
    after = s.state.copy(8)
    after.held[(NS, "b")] = Held(8, "b is pinned", b"")
    s.step(
        batch(7, 8, revision(8, delete("b", prev=3))),
        after,
        [nack(8, "b", "b is pinned"), ack(after)],
    )
    return s


def _release_by_repair() -> Script:
    state = _seeded(9)
    state.held[(NS, "a")] = Held(8, "port out of range", hashlib.sha256(b'{"port":99999}').digest())
    s = Script(
        "repair",
        "A Repair at the applied revision is applied as sent (not validated: the handler's "
        "refusal does not apply), releases holds on its keys, and is named in Ack.repaired; "
        "a Repair for another revision is skipped but still named.",
        state,
        reject=[_reject("a", {"port": 99999}, "port out of range")],
    )
    fixed = Entry({"port": 99999}, 2, 8, 2)
    repair = pb.Repair(
        id=3,
        rev=9,
        entries=[pb_entry(NS, "a", fixed)],
        deletes=[pb.KeyRef(ns=NS, key="b")],
        reason="2 drifted keys",
    )
    after = s.state.copy()
    after.entries[(NS, "a")] = fixed
    del after.held[(NS, "a")]
    del after.entries[(NS, "b")]
    s.step(pb.SyncReply(repair=repair), after, [ack(after, repaired=3)])
    stale = pb.Repair(id=4, rev=8, entries=[pb_entry(NS, "z", Entry(1, 8, 8, 1))], reason="late")
    s.step(pb.SyncReply(repair=stale), s.state.copy(), [ack(s.state, repaired=4)])
    return s


def _release_by_snapshot() -> Script:
    state = _seeded(5)
    state.held[(NS, "a")] = Held(5, "port out of range", hashlib.sha256(b'{"port":99999}').digest())
    s = Script(
        "held_released_by_snapshot",
        "A snapshot replaces the replica and releases every earlier hold; its entries are "
        "validated (here all accepted).",
        state,
    )
    entries = {(NS, "a"): Entry({"port": 99999}, 2, 5, 2)}
    resync, first, last = snapshot(12, entries, (NS,), "the worker fell out of the buffer")
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    after = State(12, (NS,), dict(entries))
    s.step(last, after, [ack(after)])
    return s


def _snapshot_refusals() -> Script:
    s = Script(
        "snapshot_refusals",
        "A snapshot's changes go to the handler like any other (docs/wire.md, Held keys): a "
        "refused new value keeps the key's last good value, a refused removal (a key the "
        "snapshot no longer has) keeps the key; each is NACKed at the snapshot's revision "
        "(puts, then removals, each by key) and held, the digest counting the controller's "
        "view (the refused value's hash; a refused removal not at all).",
        _seeded(5),
        reject=[
            _reject("a", {"port": 99999}, "port out of range"),
            _reject("b", None, "b is pinned"),
        ],
    )
    entries = {
        (NS, "a"): Entry({"port": 99999}, 2, 10, 2),
        (NS, "c"): Entry({"port": 82}, 11, 11, 1),
    }
    resync, first, last = snapshot(12, entries, (NS,), "the worker fell out of the buffer")
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    after = s.state.copy(12)
    after.entries[(NS, "c")] = entries[(NS, "c")]
    after.held[(NS, "a")] = Held(12, "port out of range", entries[(NS, "a")].vhash)
    after.held[(NS, "b")] = Held(12, "b is pinned", b"")
    s.step(
        last,
        after,
        [nack(12, "a", "port out of range"), nack(12, "b", "b is pinned"), ack(after)],
    )
    return s


def _bad_hash() -> Script:
    s = Script(
        "bad_value_hash",
        "A full value whose SHA-256 is not value_hash is refused like any value: NACK with "
        "the reason 'the value does not match its hash', hold the key (counted with the "
        "value_hash sent); the stream goes on.",
        _seeded(5),
    )
    wrong = put("a", {"port": 8080}, create=2, version=2)
    wrong.value_hash = hashlib.sha256(b'{"port":8081}').digest()
    after = s.state.copy(6)
    after.held[(NS, "a")] = Held(6, HASH_REFUSED, wrong.value_hash)
    s.step(batch(5, 6, revision(6, wrong)), after, [nack(6, "a", HASH_REFUSED), ack(after)])
    after = s.state.copy(7)
    after.entries[(NS, "c")] = Entry(3, 7, 7, 1)
    s.step(batch(6, 7, revision(7, put("c", 3, create=7, version=1))), after, [ack(after)])
    return s


def _deltas() -> Script:
    s = Script(
        "delta_wrong_base",
        "With deltas on, a patch on the value at prev_mod_rev applies; a patch whose base has "
        "another mod_rev is drift: the revisions of the batch before it stay applied, that "
        "revision and the rest are not, and the worker reconnects with from_rev 0.",
        _seeded(5),
        deltas=True,
    )
    after = s.state.copy(6)
    after.entries[(NS, "a")] = Entry({"port": 80, "tls": True}, 2, 6, 2)
    s.step(
        batch(
            5,
            6,
            revision(
                6,
                delta(
                    "a",
                    [{"op": "add", "path": "/tls", "value": True}],
                    {"port": 80, "tls": True},
                    prev=2,
                    create=2,
                    version=2,
                ),
            ),
        ),
        after,
        [ack(after)],
    )
    after = s.state.copy(7)
    after.entries[(NS, "c")] = Entry(1, 7, 7, 1)
    s.step(
        batch(
            6,
            9,
            revision(7, put("c", 1, create=7, version=1)),
            revision(
                8,
                delta(
                    "b",
                    [{"op": "replace", "path": "/port", "value": 1}],
                    {"port": 1},
                    prev=2,
                    create=3,
                    version=2,
                ),
            ),
            revision(9, put("c", 2, create=7, version=2)),
        ),
        after,
        reconnect_from=0,
        note="routes/b is at mod_rev 3, the delta is based on 2",
    )
    return s


def _delta_bad_hash() -> Script:
    s = Script(
        "delta_bad_result_hash",
        "A delta whose result does not hash to value_hash is drift too: resync (from_rev 0).",
        _seeded(5),
        deltas=True,
    )
    change = delta(
        "a",
        [{"op": "replace", "path": "/port", "value": 1}],
        {"port": 2},
        prev=2,
        create=2,
        version=2,
    )
    s.step(batch(5, 6, revision(6, change)), s.state.copy(), reconnect_from=0)
    return s


def _delta_on_refused() -> Script:
    s = Script(
        "delta_on_refused_value",
        "A delta sent before the controller heard a NACK is based on the refused change: the "
        "worker applies it to the refused value (its mod_rev matches) and, accepted, "
        "releases the hold.",
        _seeded(5),
        deltas=True,
        reject=[_reject("a", {"port": 99999}, "port out of range")],
    )
    bad = put("a", {"port": 99999}, create=2, version=2)
    after = s.state.copy(6)
    after.held[(NS, "a")] = Held(6, "port out of range", bad.value_hash)
    s.step(batch(5, 6, revision(6, bad)), after, [nack(6, "a", "port out of range"), ack(after)])
    after = s.state.copy(7)
    del after.held[(NS, "a")]
    after.entries[(NS, "a")] = Entry({"port": 443}, 2, 7, 3)
    change = delta(
        "a",
        [{"op": "replace", "path": "/port", "value": 443}],
        {"port": 443},
        prev=6,
        create=2,
        version=3,
    )
    s.step(batch(6, 7, revision(7, change)), after, [ack(after)])
    return s


def _delta_on_refused_snapshot_entry() -> Script:
    s = Script(
        "delta_on_refused_snapshot_entry",
        "A snapshot entry the handler refuses is a refused change like any other: a delta "
        "sent before the controller heard that NACK is based on it (its mod_rev matches), "
        "and the worker applies it to the refused value.",
        _seeded(5),
        deltas=True,
        reject=[_reject("a", {"port": 99999}, "port out of range")],
    )
    entries = {
        (NS, "a"): Entry({"port": 99999}, 2, 6, 2),
        (NS, "b"): Entry({"port": 81}, 3, 3, 1),
    }
    resync, first, last = snapshot(8, entries, (NS,), "the worker fell out of the buffer")
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    after = s.state.copy(8)
    after.held[(NS, "a")] = Held(8, "port out of range", entries[(NS, "a")].vhash)
    s.step(last, after, [nack(8, "a", "port out of range"), ack(after)])
    after = s.state.copy(9)
    del after.held[(NS, "a")]
    after.entries[(NS, "a")] = Entry({"port": 443}, 2, 9, 3)
    change = delta(
        "a",
        [{"op": "replace", "path": "/port", "value": 443}],
        {"port": 443},
        prev=6,
        create=2,
        version=3,
    )
    s.step(batch(8, 9, revision(9, change)), after, [ack(after)])
    return s


def _delta_after_release() -> Script:
    s = Script(
        "delta_after_hold_released",
        "Once a hold is released (here by a snapshot), the refused value is no base for a "
        "delta any more: a delta based on its mod_rev does not match the replica's value, "
        "which is drift (resync, from_rev 0).",
        _seeded(5),
        deltas=True,
        reject=[_reject("a", {"port": 99999}, "port out of range")],
    )
    stale = delta(
        "a",
        [{"op": "replace", "path": "/port", "value": 8443}],
        {"port": 8443},
        prev=6,
        create=2,
        version=4,
    )
    bad = put("a", {"port": 99999}, create=2, version=2)
    after = s.state.copy(6)
    after.held[(NS, "a")] = Held(6, "port out of range", bad.value_hash)
    s.step(batch(5, 6, revision(6, bad)), after, [nack(6, "a", "port out of range"), ack(after)])
    entries = {
        (NS, "a"): Entry({"port": 443}, 2, 7, 3),
        (NS, "b"): Entry({"port": 81}, 3, 3, 1),
    }
    resync, first, last = snapshot(8, entries, (NS,), "the worker fell out of the buffer")
    s.step(resync, s.state.copy())
    s.step(first, s.state.copy())
    after = State(8, (NS,), dict(entries))
    s.step(last, after, [ack(after)], note="the snapshot releases the hold")
    s.step(batch(8, 9, revision(9, stale)), s.state.copy(), reconnect_from=0)
    return s


def _progress_and_reconcile() -> Script:
    s = Script(
        "progress_and_reconcile",
        "Progress later than the applied revision moves it and is ACKed; an older one is "
        "ACKed at the applied revision. Resync{reconcile} keeps the replica, moves to its "
        "rev and ACKs. A heartbeat needs no answer.",
        _seeded(5),
    )
    s.step(progress(9), s.state.copy(9), [ack(s.state.copy(9))])
    s.step(progress(4), s.state.copy(), [ack(s.state)])
    s.step(pb.SyncReply(heartbeat=pb.Heartbeat(sent_unix=1.5)), s.state.copy())
    resync = pb.SyncReply(
        resync=pb.Resync(reason="compacted; reconciling by digest", rev=30, reconcile=True)
    )
    s.step(resync, s.state.copy(30), [ack(s.state.copy(30))])
    return s


def _progress_in_snapshot() -> Script:
    s = Script(
        "progress_during_snapshot",
        "A worker receiving a snapshot ignores Progress (no ACK, no move).",
        State(0, (NS,)),
    )
    entries = {(NS, "a"): Entry(1, 4, 4, 1)}
    resync, first, last = snapshot(4, entries, (NS,), "an empty replica bootstraps from a snapshot")
    s.step(resync, s.state.copy())
    s.step(progress(6), s.state.copy())
    s.step(first, s.state.copy())
    after = State(4, (NS,), dict(entries))
    s.step(last, after, [ack(after)])
    return s


def _unknown_replies() -> Script:
    s = Script(
        "unknown_reply_skipped",
        "A reply kind the worker does not know (here: no kind set, which is how a decoder "
        "sees a newer oneof member) and a controller heartbeat need no answer and change "
        "nothing, while tailing and in the middle of a snapshot (docs/wire.md, Evolution rules).",
        _seeded(5),
    )
    heartbeat = pb.SyncReply(heartbeat=pb.Heartbeat(sent_unix=1.5))
    s.step(pb.SyncReply(), s.state.copy(), note="tailing: skipped")
    entries = {(NS, "a"): Entry({"port": 80}, 2, 2, 1)}
    resync, first, last = snapshot(9, entries, (NS,), "the worker fell out of the buffer")
    s.step(resync, s.state.copy())
    s.step(pb.SyncReply(), s.state.copy(), note="in a snapshot: skipped, the snapshot goes on")
    s.step(heartbeat, s.state.copy())
    s.step(first, s.state.copy())
    after = State(9, (NS,), dict(entries))
    s.step(last, after, [ack(after)])
    return s


def _digest_query() -> Script:
    state = _seeded(9)
    state.entries[(NS, "c")] = Entry({"port": 82}, 4, 4, 1)
    state.held[(NS, "c")] = Held(9, "port out of range", hashlib.sha256(b'{"port":99999}').digest())
    s = Script(
        "digest_query",
        "A DigestQuery is answered at the applied revision over the authoritative view (a "
        "held key counts with the controller's hash): each prefix in query order, then the "
        "names behind the asked leaves. No ACK follows.",
        state,
    )
    pairs = state.counted(NS)
    wanted = _leaf4("c", pairs["c"]) + _leaf4("a", pairs["a"]) + bytes(4)
    query = pb.DigestQuery(
        id=7, ns=NS, prefixes=["", "0"], names=[pb.NameQuery(prefix="", leaves=wanted)]
    )
    answer = pb.DigestAnswer(
        id=7,
        ns=NS,
        rev=9,
        nodes=[_node_answer(pairs, ""), _node_answer(pairs, "0")],
        names=sorted(["a", "c"]),
    )
    s.step(pb.SyncReply(query=query), s.state.copy(), [pb.SyncRequest(answer=answer)])
    return s


def build() -> dict[str, Any]:
    scripts = [
        _bootstrap(),
        _resume_replay(),
        _gap(),
        _protocol_errors(),
        _compacted_resync(),
        _snapshot_bad_digest(),
        _nack_and_release_by_put(),
        _release_by_delete(),
        _release_by_repair(),
        _release_by_snapshot(),
        _snapshot_refusals(),
        _bad_hash(),
        _deltas(),
        _delta_bad_hash(),
        _delta_on_refused(),
        _delta_on_refused_snapshot_entry(),
        _delta_after_release(),
        _progress_and_reconcile(),
        _progress_in_snapshot(),
        _unknown_replies(),
        _digest_query(),
    ]
    return {
        "description": "Worker behaviour: scripted Sync exchanges (docs/wire.md)",
        "format_version": 1,
        "vectors": [s.to_json() for s in scripts],
    }
