"""A reference descent over two digests, for tests: it shows that the digest
localizes differences at a cost that grows with their number, not with the
namespace size. The controller's descent runs over the wire (docs/digest.md,
crates/core/src/descent.rs, driven by crates/server/src/sync/repair.rs); this model runs
both sides in one process."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from statesync.core.digest import NamespaceDigest

Leaves = Callable[[str], Mapping[str, bytes]]


@dataclass(slots=True)
class DescentStats:
    """What a descent cost: node comparisons, levels (round trips) and leaf
    pairs exchanged."""

    nodes_compared: int = 0
    levels: int = 0
    leaves_exchanged: int = 0


def differing_keys(
    a: NamespaceDigest,
    a_leaves: Leaves,
    b: NamespaceDigest,
    b_leaves: Leaves,
    *,
    leaf_threshold: int = 16,
) -> tuple[set[str], DescentStats]:
    """Keys whose value differs between two holders, or that only one holds.

    `*_leaves(prefix)` returns the (key -> value_hash) pairs whose position
    starts with `prefix`. Descends only where fingerprints differ and lists a
    node's leaves once it holds at most `leaf_threshold` keys on both sides.
    """
    stats = DescentStats()
    found: set[str] = set()
    frontier = [""]
    while frontier:
        stats.levels += 1
        deeper = []
        for prefix in frontier:
            na, nb = a.node(prefix, a_leaves), b.node(prefix, b_leaves)
            stats.nodes_compared += 1
            if na == nb:
                continue
            if max(na.count, nb.count) <= leaf_threshold or len(prefix) == 64:
                la, lb = a_leaves(prefix), b_leaves(prefix)
                stats.leaves_exchanged += len(la) + len(lb)
                found.update(k for k in la.keys() | lb.keys() if la.get(k) != lb.get(k))
                continue
            deeper.extend(prefix + nibble for nibble in "0123456789abcdef")
        frontier = deeper
    return found, stats
