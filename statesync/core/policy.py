"""Conflict policies: what a write based on an old revision does.

A writer sends `base_rev`, the revision it read the key at. When the key's
mod_rev is still `base_rev` (or it was absent then and is now), the write is
plain. When the key changed since, the namespace's policy decides:

- `reject` (default): compare-and-swap; a `ConflictError` names the revisions.
- `last-durable-wins`: the write is applied as sent; the later commit wins.
- `merge`: a three-way merge of the writer's value with the current value,
  using the value at `base_rev` from history as the common ancestor; a
  `MergeConflictError` lists every path both sides changed differently.

The decision runs per key inside the group commit, in the Rust core's write
gate (crates/core/src/gate: `policy.rs`, `merge.rs`); this module names the
policies for contracts, the CLI and status.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["ConflictPolicy"]


class ConflictPolicy(StrEnum):
    REJECT = "reject"
    LAST_DURABLE_WINS = "last-durable-wins"
    MERGE = "merge"
