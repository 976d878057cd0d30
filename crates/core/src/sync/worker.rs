//! The worker end of one Sync stream: every state, every event and every legal
//! transition in [`TRANSITIONS`], and the rules a worker applies without
//! looking at its replica (the batch verdict, the reconnect delay, staleness).
//!
//! It holds no replica, socket or clock: the worker SDK feeds it what the
//! controller sent and the time it read, and acts on the answer. An event the
//! table does not allow in the current state is an [`IllegalEvent`] and changes
//! nothing; the SDK ends the stream on it (a protocol error).

use std::fmt;

/// Where a worker's stream stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StreamState {
    /// The hello is sent; the controller has not answered yet.
    Connecting,
    /// Following the log: batches, progress, repairs, descent queries.
    Tailing,
    /// A `Resync` arrived; its snapshot chunks are being received.
    Snapshotting,
    /// The stream ended; a new one starts with a new hello.
    Closed,
}

/// What happens to a worker's stream: a controller message arrived, or the
/// stream ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A `ChangeBatch`.
    Batch,
    /// A `Progress` notice.
    Progress,
    /// A `Resync` announcing a snapshot.
    Resync,
    /// A `Resync{reconcile: true}`: no snapshot follows.
    ReconcileResync,
    /// A `SnapshotChunk` that is not the last.
    Chunk,
    /// The last `SnapshotChunk`.
    LastChunk,
    /// A `DigestQuery`.
    Query,
    /// A `Repair`.
    Repair,
    /// A controller heartbeat.
    Heartbeat,
    /// The stream ended: closed by either side, stale, a gap, drift, or stop.
    End,
}

use Event as E;
use StreamState as S;

/// Every legal transition: (state, event) → next state. A pair that is not
/// listed is illegal.
pub const TRANSITIONS: &[(StreamState, Event, StreamState)] = &[
    (S::Connecting, E::Batch, S::Tailing),
    (S::Connecting, E::Progress, S::Tailing),
    (S::Connecting, E::Resync, S::Snapshotting),
    (S::Connecting, E::ReconcileResync, S::Tailing),
    (S::Connecting, E::Query, S::Tailing),
    (S::Connecting, E::Repair, S::Tailing),
    (S::Connecting, E::Heartbeat, S::Tailing),
    (S::Connecting, E::End, S::Closed),
    (S::Tailing, E::Batch, S::Tailing),
    (S::Tailing, E::Progress, S::Tailing),
    (S::Tailing, E::Resync, S::Snapshotting),
    (S::Tailing, E::ReconcileResync, S::Tailing),
    (S::Tailing, E::Query, S::Tailing),
    (S::Tailing, E::Repair, S::Tailing),
    (S::Tailing, E::Heartbeat, S::Tailing),
    (S::Tailing, E::End, S::Closed),
    // A worker receiving a snapshot ignores Progress; a new Resync restarts
    // the snapshot (the partial one is discarded).
    (S::Snapshotting, E::Progress, S::Snapshotting),
    (S::Snapshotting, E::Resync, S::Snapshotting),
    (S::Snapshotting, E::Chunk, S::Snapshotting),
    (S::Snapshotting, E::LastChunk, S::Tailing),
    (S::Snapshotting, E::Query, S::Snapshotting),
    (S::Snapshotting, E::Heartbeat, S::Snapshotting),
    (S::Snapshotting, E::End, S::Closed),
];

/// An event the table does not allow in the stream's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IllegalEvent {
    /// The state the stream was (and still is) in.
    pub state: StreamState,
    /// The refused event.
    pub event: Event,
}

impl fmt::Display for IllegalEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not allowed in state {:?}", self.event, self.state)
    }
}

impl std::error::Error for IllegalEvent {}

/// One stream's position in [`TRANSITIONS`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerStream {
    state: StreamState,
    established: bool,
}

impl Default for WorkerStream {
    fn default() -> Self {
        WorkerStream::new()
    }
}

impl WorkerStream {
    /// A stream whose hello was just sent.
    pub fn new() -> WorkerStream {
        WorkerStream {
            state: StreamState::Connecting,
            established: false,
        }
    }

    /// The current state.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// Whether the controller answered on this stream: the outage the
    /// reconnect delay grows with starts after an established stream ends
    /// ([`Backoff`]).
    pub fn established(&self) -> bool {
        self.established
    }

    /// Moves by `event`; an illegal one is refused and changes nothing.
    pub fn on(&mut self, event: Event) -> Result<StreamState, IllegalEvent> {
        let next = next_state(self.state, event).ok_or(IllegalEvent {
            state: self.state,
            event,
        })?;
        if event != Event::End {
            self.established = true;
        }
        self.state = next;
        Ok(next)
    }
}

/// The state `event` leads to from `state`, None when it is illegal there.
pub fn next_state(state: StreamState, event: Event) -> Option<StreamState> {
    TRANSITIONS
        .iter()
        .find(|(from, on, _)| *from == state && *on == event)
        .map(|(_, _, to)| *to)
}

/// What a worker at applied revision `A` does with a batch `(prev_rev, rev]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchVerdict {
    /// Apply each revision after `A`, move to `rev`, ACK.
    Apply,
    /// Already applied: skip the batch and ACK `A`.
    Replay,
    /// The batch does not follow `A`: end the stream, reconnect from `A`.
    Gap,
}

/// A batch whose `rev` is before its `prev_rev`: a protocol error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BackwardBatch {
    /// The batch's `prev_rev`.
    pub prev_rev: i64,
    /// The batch's `rev`.
    pub rev: i64,
}

impl fmt::Display for BackwardBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "batch ({}, {}] goes backwards", self.prev_rev, self.rev)
    }
}

impl std::error::Error for BackwardBatch {}

/// The batch rule of docs/wire.md ("Batches") for a worker at `applied`.
pub fn batch_verdict(applied: i64, prev_rev: i64, rev: i64) -> Result<BatchVerdict, BackwardBatch> {
    if rev < prev_rev {
        Err(BackwardBatch { prev_rev, rev })
    } else if rev <= applied {
        Ok(BatchVerdict::Replay)
    } else if prev_rev > applied {
        Ok(BatchVerdict::Gap)
    } else {
        Ok(BatchVerdict::Apply)
    }
}

/// Reconnect delays that grow with the outage (docs/wire.md, "Reconnects"):
/// a fleet is back soon after a short one (a controller restart) and spreads
/// out over a long one.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Backoff {
    /// The smallest bound, in seconds.
    pub base_s: f64,
    /// The largest bound, in seconds.
    pub cap_s: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base_s: 0.05,
            cap_s: 1.0,
        }
    }
}

/// The bound is this fraction of the outage so far, so a worker is back
/// within about a quarter of the outage's length after the controller is.
const OUTAGE_FRACTION: f64 = 0.25;

impl Backoff {
    /// The delay before the next attempt, `outage_s` seconds after the last
    /// established stream ended (or the worker started), given `unit`, a
    /// uniform random number in [0, 1): uniform in [½, 1] × the bound,
    /// min(cap, max(base, outage / 4)). Half the bound at least, so attempts
    /// stay spaced; random, so a fleet's attempts spread out.
    pub fn delay_s(&self, outage_s: f64, unit: f64) -> f64 {
        let bound = (outage_s.max(0.0) * OUTAGE_FRACTION).clamp(self.base_s, self.cap_s.max(self.base_s));
        (0.5 + unit.clamp(0.0, 1.0) / 2.0) * bound
    }
}

/// Whether a stream that last heard from the controller at `last_heard_s` is
/// stale at `now_s` (both on the caller's monotonic clock).
pub fn is_stale(last_heard_s: f64, now_s: f64, stale_after_s: f64) -> bool {
    now_s - last_heard_s >= stale_after_s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const STATES: [StreamState; 4] = [S::Connecting, S::Tailing, S::Snapshotting, S::Closed];
    const EVENTS: [Event; 10] = [
        E::Batch,
        E::Progress,
        E::Resync,
        E::ReconcileResync,
        E::Chunk,
        E::LastChunk,
        E::Query,
        E::Repair,
        E::Heartbeat,
        E::End,
    ];

    #[test]
    fn the_table_has_one_entry_per_pair() {
        for (i, (s, e, _)) in TRANSITIONS.iter().enumerate() {
            assert!(
                TRANSITIONS[i + 1..].iter().all(|(s2, e2, _)| (s2, e2) != (s, e)),
                "({s:?}, {e:?}) is listed twice"
            );
        }
    }

    #[test]
    fn a_chunk_without_a_resync_and_a_batch_inside_a_snapshot_are_illegal() {
        let mut stream = WorkerStream::new();
        assert_eq!(
            stream.on(E::Chunk),
            Err(IllegalEvent {
                state: S::Connecting,
                event: E::Chunk
            })
        );
        assert!(!stream.established(), "a refused event establishes nothing");
        stream.on(E::Resync).unwrap();
        assert!(stream.on(E::Batch).is_err());
        assert_eq!(stream.state(), S::Snapshotting);
        assert_eq!(stream.on(E::LastChunk), Ok(S::Tailing));
    }

    #[test]
    fn batch_verdicts_follow_the_wire_examples() {
        // docs/wire.md: at A = 7, (5, 9] applies, (8, 9] is a gap, (3, 6] a replay.
        assert_eq!(batch_verdict(7, 5, 9), Ok(BatchVerdict::Apply));
        assert_eq!(batch_verdict(7, 8, 9), Ok(BatchVerdict::Gap));
        assert_eq!(batch_verdict(7, 3, 6), Ok(BatchVerdict::Replay));
        assert_eq!(batch_verdict(7, 7, 7), Ok(BatchVerdict::Replay));
        assert_eq!(batch_verdict(7, 9, 8), Err(BackwardBatch { prev_rev: 9, rev: 8 }));
    }

    #[test]
    fn backoff_grows_with_the_outage_up_to_the_cap() {
        let backoff = Backoff::default();
        assert_eq!(backoff.delay_s(0.0, 0.0), 0.025);
        assert_eq!(backoff.delay_s(0.1, 1.0), 0.05);
        assert_eq!(backoff.delay_s(0.4, 1.0), 0.1);
        assert_eq!(backoff.delay_s(2.0, 0.0), 0.25);
        assert_eq!(backoff.delay_s(3600.0, 1.0), 1.0);
        assert_eq!(backoff.delay_s(-1.0, 2.0), 0.05);
    }

    proptest! {
        #[test]
        fn backoff_stays_within_its_bounds(outage in 0.0f64..1e6, unit in 0.0f64..1.0) {
            let backoff = Backoff::default();
            let delay = backoff.delay_s(outage, unit);
            prop_assert!(delay >= backoff.base_s / 2.0 && delay <= backoff.cap_s);
            // Back within a quarter of the outage after the controller is.
            prop_assert!(delay <= (outage / 4.0).max(backoff.base_s));
        }
    }

    #[test]
    fn staleness_is_measured_from_the_last_message() {
        assert!(!is_stale(10.0, 14.9, 5.0));
        assert!(is_stale(10.0, 15.0, 5.0));
    }

    proptest! {
        #[test]
        fn random_events_keep_the_table_invariants(events in prop::collection::vec(0..EVENTS.len(), 0..64)) {
            let mut stream = WorkerStream::new();
            for index in events {
                let event = EVENTS[index];
                let before = stream.clone();
                match stream.on(event) {
                    Ok(next) => {
                        prop_assert_eq!(Some(next), next_state(before.state(), event));
                        prop_assert_eq!(stream.state(), next);
                        prop_assert!(before.state() != S::Closed, "nothing leaves Closed");
                    }
                    Err(illegal) => {
                        prop_assert_eq!(&stream, &before, "an illegal event changes nothing");
                        prop_assert_eq!(illegal.state, before.state());
                        prop_assert_eq!(next_state(before.state(), event), None);
                    }
                }
                // A batch never lands inside a snapshot; a chunk only inside one.
                prop_assert!(!(before.state() == S::Snapshotting && event == E::Batch && stream.state() != S::Snapshotting));
                if event == E::Chunk && before.state() != S::Snapshotting {
                    prop_assert_eq!(&stream, &before);
                }
            }
        }

        #[test]
        fn every_pair_is_legal_or_refused(state in 0..STATES.len(), event in 0..EVENTS.len()) {
            let (state, event) = (STATES[state], EVENTS[event]);
            let legal = next_state(state, event);
            if state == S::Closed {
                prop_assert_eq!(legal, None);
            } else if event == E::End {
                prop_assert_eq!(legal, Some(S::Closed));
            }
        }

        #[test]
        fn verdicts_partition_every_batch(applied in 0i64..50, prev in 0i64..50, len in -5i64..50) {
            let rev = prev + len;
            match batch_verdict(applied, prev, rev) {
                Err(_) => prop_assert!(rev < prev),
                Ok(BatchVerdict::Replay) => prop_assert!(rev <= applied),
                Ok(BatchVerdict::Gap) => prop_assert!(prev > applied && rev > applied),
                Ok(BatchVerdict::Apply) => prop_assert!(prev <= applied && applied < rev),
            }
        }
    }
}
