"""The digest descent finds exactly the differing keys, at a cost set by the drift."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from statesync.core.digest import NamespaceDigest, Node, position, value_hash
from statesync.core.reconcile import LEAF_LIMIT, Descent, describe, name


class Holder:
    """A namespace's contents with a digest and a by-prefix leaf lookup."""

    def __init__(self, items: Mapping[str, bytes]) -> None:
        self.hashes = {k: value_hash(v) for k, v in items.items()}
        self.digest = NamespaceDigest.from_items(self.hashes.items())
        self.positions = {k: position(k).hex() for k in self.hashes}

    def node(self, prefix: str) -> Node:
        return self.digest.node(prefix, self.leaves)

    def leaves(self, prefix: str) -> dict[str, bytes]:
        return {k: h for k, h in self.hashes.items() if self.positions[k].startswith(prefix)}


def descend(controller: Holder, worker: Holder) -> Descent:
    descent = Descent("ns")
    while not descent.done:
        prefixes, unknown = descent.query()
        answers = describe(worker.digest, worker.leaves, prefixes)
        named = [key for prefix, leaves in unknown for key in name(worker.leaves, prefix, leaves)]
        descent.receive(answers, named, controller.node, controller.leaves)
    return descent


def truly_differing(a: Mapping[str, bytes], b: Mapping[str, bytes]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


values = st.binary(min_size=1, max_size=3)


@settings(max_examples=60, deadline=None)
@given(
    base=st.dictionaries(st.text(min_size=1, max_size=4), values, max_size=600),
    changes=st.dictionaries(st.text(min_size=1, max_size=4), st.none() | values, max_size=20),
)
def test_the_descent_finds_exactly_the_differing_keys(
    base: dict[str, bytes], changes: dict[str, bytes | None]
) -> None:
    drifted = dict(base)
    for key, value in changes.items():
        if value is None:
            drifted.pop(key, None)
        else:
            drifted[key] = value
    controller, worker = Holder(base), Holder(drifted)
    for _ in range(3):  # a repair round converges; an extra key may take a second one
        descent = descend(controller, worker)
        differing = truly_differing(base, drifted)
        assert descent.differing <= differing
        for key in descent.differing:  # repair: the controller's value, or delete
            if key in base:
                drifted[key] = base[key]
            else:
                drifted.pop(key, None)
        worker = Holder(drifted)
    assert drifted == base


def test_identical_holders_cost_one_round_trip() -> None:
    items = {f"k{i}": b"v" for i in range(5000)}
    descent = descend(Holder(items), Holder(items))
    assert descent.differing == set() and descent.round_trips == 1


def test_one_wrong_key_costs_round_trips_of_the_depth_and_little_data() -> None:
    n = 20_000  # depth: 20,000 / 16**2 = 78 keys per depth-2 node, <= LEAF_LIMIT
    items = {f"key-{i:06d}": str(i).encode() for i in range(n)}
    drifted = {**items, "key-000042": b"wrong"}
    descent = descend(Holder(items), Holder(drifted))
    assert descent.differing == {"key-000042"}
    assert n / 16**2 <= LEAF_LIMIT and descent.round_trips == 3
    assert descent.bytes_exchanged < 1000


def test_extra_keys_on_the_worker_are_named_and_found() -> None:
    items = {f"k{i}": b"v" for i in range(3000)}
    extra = {**items, "only-on-the-worker": b"x", "another": b"y"}
    descent = descend(Holder(items), Holder(extra))
    assert descent.differing == {"only-on-the-worker", "another"}
