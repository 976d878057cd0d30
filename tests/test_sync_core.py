"""The sans-IO sync protocol: the state table, the controller's session, the worker's cursor."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from statesync.core.errors import ProtocolError
from statesync.core.sync import (
    TRANSITIONS,
    BatchVerdict,
    HeldKey,
    ReplicaCursor,
    StreamState,
    SyncSettings,
    WorkerSession,
)

SETTINGS = SyncSettings(heartbeat_s=1.0, silence_s=10.0, window=100)


def session(
    from_rev: int = 5, head: int = 10, compacted: int = 0, observer: bool = False
) -> tuple[WorkerSession, bool]:
    s = WorkerSession(SETTINGS, now=0.0)
    needs = s.hello(
        worker_id="" if observer else "w1",
        namespaces=["routes"],
        from_rev=from_rev,
        observer=observer,
        held=[],
        head_rev=head,
        compacted_rev=compacted,
        now=0.0,
    )
    return s, needs


def test_every_state_but_closed_can_close_and_closed_is_final() -> None:
    for state in StreamState:
        outgoing = {event for (source, event) in TRANSITIONS if source is state}
        assert bool(outgoing) == (state is not StreamState.CLOSED)


@pytest.mark.parametrize(
    ("from_rev", "head", "compacted", "snapshot", "why"),
    [
        (5, 10, 0, False, ""),
        (10, 10, 0, False, ""),
        (0, 0, 0, False, ""),
        (0, 10, 0, True, "empty replica"),
        (3, 10, 4, True, "compacted"),
        (11, 10, 0, True, "after the controller's head"),
    ],
)
def test_hello_decides_between_tailing_and_a_snapshot(
    from_rev: int, head: int, compacted: int, snapshot: bool, why: str
) -> None:
    s, needs = session(from_rev, head, compacted)
    assert needs is snapshot
    assert s.state is (StreamState.SNAPSHOTTING if snapshot else StreamState.TAILING)
    assert why in s.resync_reason
    if not snapshot:
        assert s.sent_rev == s.cursor == s.acked_rev == from_rev


def test_illegal_events_raise_and_change_nothing() -> None:
    s, _ = session()
    before = (s.state, s.sent_rev, s.acked_rev)
    with pytest.raises(ProtocolError, match="second hello"):
        s.hello(
            worker_id="w1",
            namespaces=[],
            from_rev=1,
            observer=False,
            held=[],
            head_rev=10,
            compacted_rev=0,
            now=1.0,
        )
    with pytest.raises(ProtocolError, match="does not follow"):
        s.sent(prev_rev=4, rev=8, changes=1, now=1.0)
    with pytest.raises(ProtocolError, match="only 5 was sent"):
        s.ack(9, {}, now=1.0)
    with pytest.raises(ProtocolError, match="not allowed"):
        s.snapshot_sent(12, now=1.0)
    assert (s.state, s.sent_rev, s.acked_rev) == before
    fresh = WorkerSession(SETTINGS, now=0.0)
    with pytest.raises(ProtocolError):
        fresh.sent(prev_rev=0, rev=1, changes=1, now=0.0)
    with pytest.raises(ProtocolError, match="worker_id"):
        fresh.hello(
            worker_id="",
            namespaces=[],
            from_rev=0,
            observer=False,
            held=[],
            head_rev=0,
            compacted_rev=0,
            now=0.0,
        )


def test_the_window_bounds_unacknowledged_changes() -> None:
    s, _ = session()
    s.sent(prev_rev=5, rev=7, changes=60, now=1.0)
    s.sent(prev_rev=7, rev=9, changes=40, now=1.0)
    assert (s.buffered, s.room()) == (100, 0)
    s.ack(7, {"routes": (b"r", 3)}, now=2.0)
    assert (s.buffered, s.room(), s.acked_rev) == (40, 60, 7)
    s.ack(6, {}, now=2.5)  # an older ACK arriving late changes nothing
    assert (s.acked_rev, s.acked_digests) == (7, {"routes": (b"r", 3)})
    s.ack(9, {}, now=3.0)
    assert (s.buffered, s.room()) == (0, 100)


def test_skipped_revisions_reach_the_worker_as_progress() -> None:
    s, _ = session()
    s.skip(12)
    assert (s.cursor, s.sent_rev) == (12, 5)
    assert not s.progress_due(0.5)
    assert s.progress_due(1.0)
    assert s.progress_sent(1.0) == 12
    assert s.sent_rev == 12
    s.sent(prev_rev=12, rev=13, changes=1, now=1.5)


def test_silence_is_measured_from_the_last_message_heard() -> None:
    s, _ = session()
    assert not s.silent(10.0)
    assert s.silent(10.5)
    s.heard(10.4)
    assert not s.silent(20.0)


def test_a_slow_worker_moves_back_to_snapshotting() -> None:
    s, _ = session()
    s.fell_behind("fell behind the sync buffer")
    assert s.state is StreamState.SNAPSHOTTING
    s.snapshot_sent(40, now=3.0)
    assert (s.state, s.sent_rev, s.cursor, s.buffered, s.resyncs) == (
        StreamState.TAILING,
        40,
        40,
        0,
        1,
    )


def test_nacks_hold_keys_until_the_worker_reports_them_released() -> None:
    s, _ = session()
    s.nack(HeldKey("routes", "web", 6, "bad"), now=1.0)
    assert s.nacked and s.nacks == 1
    s.set_held([])
    assert not s.nacked and s.nacks == 1


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
