"""Localizing drift: a digest descent between two holders of a namespace, sans-IO.

The controller (`Descent`) asks about prefixes of the 16-ary digest trie; the
worker (`answer`) describes each: a node with more than `LEAF_LIMIT` keys by
its 16 children (count and a 4-byte fingerprint each), a smaller one by its
leaves (4-byte truncated leaf values). The controller compares with its own
trie, asks again about the children that differ, and collects the keys whose
leaves differ: keys the worker has wrong or lacks (named by the controller)
and, when the worker has more unknown leaves than the controller has wrong
keys in a node, the keys it holds that the controller lacks (named by the
worker on request: `names`). Round trips grow with the depth,
log16(namespace size / LEAF_LIMIT) + 1, and bytes with the number of
differing keys: a 1,000,000-key namespace with one wrong key costs 4 round
trips and about 1.5 KB.

Truncated fingerprints can collide (2^-32 per comparison); the caller checks
the full 32-byte roots again after the repair and descends again if they still
differ.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from statesync.core.digest import NamespaceDigest, Node, leaf_value

__all__ = [
    "LEAF_LIMIT",
    "Answer",
    "Descent",
    "answer",
    "names",
    "short_fingerprint",
    "short_leaf",
]

LEAF_LIMIT = 256
"""A node with at most this many keys is described by its leaves (4 bytes each)."""
NIBBLES = "0123456789abcdef"
_SHORT = 4

Leaves = Callable[[str], Mapping[str, bytes]]
"""The (key -> value hash) pairs whose position starts with a prefix."""


def short_fingerprint(node: Node) -> bytes:
    return node.fingerprint[:_SHORT]


def short_leaf(key: str, vhash: bytes) -> bytes:
    return leaf_value(key, vhash).to_bytes(32, "big")[:_SHORT]


@dataclass(frozen=True, slots=True)
class Answer:
    """The worker's description of the node at `prefix`."""

    prefix: str
    children: bytes = b""  # 16 x (u32 count, 4-byte fingerprint), when not leaves
    leaves: bytes = b""  # sorted 4-byte truncated leaf values, when `is_leaves`
    is_leaves: bool = False

    @property
    def size(self) -> int:
        return len(self.prefix) + len(self.children) + len(self.leaves) + 1


def answer(digest: NamespaceDigest, leaves: Leaves, prefixes: Iterable[str]) -> list[Answer]:
    """The worker side: describe each queried node of its trie."""
    answers = []
    for prefix in prefixes:
        node = digest.node(prefix, leaves)
        if node.count <= LEAF_LIMIT or len(prefix) == 64:
            packed = b"".join(sorted(short_leaf(k, h) for k, h in leaves(prefix).items()))
            answers.append(Answer(prefix, leaves=packed, is_leaves=True))
            continue
        children = []
        for nibble in NIBBLES:
            child = digest.node(prefix + nibble, leaves)
            children.append(child.count.to_bytes(4, "big") + short_fingerprint(child))
        answers.append(Answer(prefix, children=b"".join(children)))
    return answers


def names(leaves: Leaves, prefix: str, wanted: Iterable[bytes]) -> list[str]:
    """The worker side: the keys under `prefix` whose truncated leaf is `wanted`."""
    wanted = set(wanted)
    return sorted(k for k, h in leaves(prefix).items() if short_leaf(k, h) in wanted)


@dataclass(slots=True)
class Descent:
    """The controller side of one namespace's descent against one worker.

    `query()` gives the prefixes to ask about (and the names to ask for);
    feed the answers to `receive`; when `done`, `differing` holds every key
    whose value differs, and `unknown` the worker's leaves to be named first.
    """

    namespace: str
    pending: list[str] = field(default_factory=lambda: [""])
    differing: set[str] = field(default_factory=set)
    unknown: dict[str, list[bytes]] = field(default_factory=dict)
    round_trips: int = 0
    bytes_exchanged: int = 0

    @property
    def done(self) -> bool:
        return not self.pending and not self.unknown

    def query(self) -> tuple[list[str], dict[str, list[bytes]]]:
        """The next round trip: prefixes to describe, and leaves to name."""
        self.round_trips += 1
        prefixes, unknown = self.pending, self.unknown
        self.pending, self.unknown = [], {}
        self.bytes_exchanged += sum(len(p) + 1 for p in prefixes)
        self.bytes_exchanged += sum(len(p) + 4 * len(v) for p, v in unknown.items())
        return prefixes, unknown

    def receive(
        self, answers: Iterable[Answer], our_node: Callable[[str], Node], our_leaves: Leaves
    ) -> None:
        """Compare the worker's answers with our trie (`our_node(prefix)`)."""
        for a in answers:
            self.bytes_exchanged += a.size
            if a.is_leaves:
                self._compare_leaves(a, our_leaves(a.prefix))
                continue
            for i, nibble in enumerate(NIBBLES):
                theirs = a.children[8 * i : 8 * i + 8]
                mine = our_node(a.prefix + nibble)
                if theirs != mine.count.to_bytes(4, "big") + short_fingerprint(mine):
                    self.pending.append(a.prefix + nibble)

    def _compare_leaves(self, a: Answer, mine: Mapping[str, bytes]) -> None:
        theirs = {a.leaves[i : i + _SHORT] for i in range(0, len(a.leaves), _SHORT)}
        ours = {short_leaf(k, h): k for k, h in mine.items()}
        wrong = [k for leaf, k in ours.items() if leaf not in theirs]
        self.differing.update(wrong)
        extra = sorted(theirs - ours.keys())
        # As many unknown leaves as wrong keys: most likely the same keys with other
        # values, which sending ours repairs. More: the worker holds keys we lack.
        if len(extra) > len(wrong):
            self.unknown[a.prefix] = extra

    def named(self, keys: Iterable[str]) -> None:
        """The worker named the leaves we did not know: they differ too."""
        named = list(keys)
        self.bytes_exchanged += sum(len(k.encode()) + 2 for k in named)
        self.differing.update(named)
