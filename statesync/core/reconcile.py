"""Localizing drift: a digest descent between two holders of a namespace.

The descent (docs/wire.md "Digest descent" is the normative text,
docs/reconciliation.md §2 the why, conformance/descent the vectors) and its
implementation live in the native core (crates/core/src/descent.rs):

- the worker side, `describe(digest, leaves, prefixes)`: each queried node of
  its trie by its 16 children (count and a 4-byte fingerprint each) when it
  holds more than `LEAF_LIMIT` keys, else by its 4-byte truncated leaves; and
  `name(leaves, prefix, wanted)`: the keys behind truncated leaves;
- the controller side, `Descent`: `query()` gives the next round trip (prefixes
  to describe, `(prefix, packed leaves)` to name), `receive(nodes, named,
  node, leaves)` compares the worker's answer with our trie; when `done`,
  `differing` holds every key whose value differs.

Tries are read through callables: `leaves(prefix)` maps each key under a hex
prefix to the value hash its digest counts; `node(prefix)` is its `Node`. A
malformed query or answer, or a step out of order, raises `DescentRefused`
and changes nothing. Truncated values can collide (2^-32 per comparison); the
caller checks the full 32-byte roots again after the repair.
"""

from __future__ import annotations

import statesync._native as _native

__all__ = ["LEAF_LIMIT", "Descent", "DescentRefused", "NodeAnswer", "describe", "name"]

LEAF_LIMIT: int = _native.LEAF_LIMIT
Descent = _native.Descent
DescentRefused = _native.DescentRefused
NodeAnswer = _native.NodeAnswer
describe = _native.describe
name = _native.name
