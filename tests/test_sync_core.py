"""The worker's end of the sans-IO sync protocol: the replica cursor.

The controller's end is the core's table in Rust, tested there
(crates/core/src/sync/controller.rs and crates/core/tests/controller_stream.rs)."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statesync.core.errors import ProtocolError
from statesync.core.sync import BatchVerdict, ReplicaCursor


def test_replica_cursor_verdicts() -> None:
    cursor = ReplicaCursor(5)
    assert cursor.check(5, 8) is BatchVerdict.APPLY
    assert cursor.check(3, 5) is BatchVerdict.REPLAY
    assert cursor.check(6, 8) is BatchVerdict.GAP
    assert cursor.check(3, 8) is BatchVerdict.APPLY  # overlaps: applied revisions are skipped
    with pytest.raises(ProtocolError):
        cursor.check(8, 3)
    with pytest.raises(ProtocolError):
        cursor.advance(4)


@given(
    cuts=st.lists(st.integers(1, 60), min_size=1, max_size=12, unique=True),
    deliveries=st.lists(st.integers(0, 11), max_size=40),
)
def test_whatever_arrives_the_cursor_applies_revisions_once_and_in_order(
    cuts: list[int], deliveries: list[int]
) -> None:
    """Batches cut the log at arbitrary points and arrive duplicated, reordered or
    lost: every APPLY continues exactly where the replica is, so applied
    revisions never repeat and never skip."""
    bounds = [0, *sorted(cuts)]
    batches = list(itertools.pairwise(bounds))
    cursor = ReplicaCursor(0)
    applied: list[int] = []
    for i in deliveries:
        prev_rev, rev = batches[i % len(batches)]
        verdict = cursor.check(prev_rev, rev)
        if verdict is BatchVerdict.APPLY:
            applied.extend(r for r in range(prev_rev + 1, rev + 1) if r > cursor.applied_rev)
            cursor.advance(rev)
        elif verdict is BatchVerdict.GAP:
            assert prev_rev > cursor.applied_rev
    assert applied == list(range(1, cursor.applied_rev + 1))
