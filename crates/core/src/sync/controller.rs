//! The controller's side of one sync stream: what it knows about the worker
//! and what it may send next, as one table of states and events.
//!
//! A [`ControllerStream`] takes events in (the worker's hello, ACK, NACK and
//! heartbeats; what the server sent; a resync decided elsewhere) and answers
//! the server loop's questions (how many changes may go out, is a progress
//! notice or a queue notice due, is the worker silent). Every legal
//! (state, event, next state) is listed in [`TRANSITIONS`]; an event the table
//! does not allow, or whose data contradicts what the stream sent, returns a
//! [`ProtocolError`] and changes nothing. Time is given by the caller (a
//! [`Duration`] since any fixed origin): this module reads no clock.
//!
//! The worker-facing rules are in `docs/wire.md`.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::time::Duration;

/// Most characters kept of a string a worker sends (a NACK reason): it is
/// stored in the worker's record and repeated in every status.
pub const MAX_PEER_TEXT: usize = 512;

/// Most characters kept of a namespace name a worker sends.
const MAX_PEER_NAMESPACE: usize = 64;

/// Most characters kept of a key a worker sends (the longest valid key).
const MAX_PEER_KEY: usize = 1024;

/// Most bytes kept of a held value's hash (a SHA-256).
const HASH_LEN: usize = 32;

/// Most held keys kept per worker (the first in key order): each is kept in
/// the worker's record and repeated in every status; the rest are counted
/// ([`ControllerStream::held_omitted`]).
pub const MAX_HELD_KEYS: usize = 1000;

/// `text` cut to `limit` characters (Unicode scalar values), with a marker
/// saying how much was cut.
pub fn bounded(text: &str, limit: usize) -> String {
    let total = text.chars().count();
    if total <= limit {
        return text.to_owned();
    }
    let head: String = text.chars().take(limit).collect();
    format!("{head}… [{} more characters]", total - limit)
}

/// A peer broke the sync protocol: the stream ends with `FAILED_PRECONDITION`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    message: String,
}

impl ProtocolError {
    /// A protocol error saying `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }

    /// What was wrong, for the status message and the log.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProtocolError {}

/// Timing and buffer limits of the controller's sync streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// Send a progress (or queue) notice after this long without sending anything.
    pub heartbeat: Duration,
    /// Drop a stream that sent nothing (ACK, heartbeat) for this long.
    pub silence: Duration,
    /// Most changes sent to one worker and not yet acknowledged.
    pub window: u64,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            heartbeat: Duration::from_secs(1),
            silence: Duration::from_secs(10),
            window: 4096,
        }
    }
}

/// A key a worker kept at its last good value after rejecting a change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldKey {
    /// Namespace.
    pub namespace: String,
    /// Key.
    pub key: String,
    /// The revision of the refused change.
    pub rev: i64,
    /// Why the worker refused it.
    pub reason: String,
    /// SHA-256 of the value kept; empty: the worker has no value.
    pub held_hash: Vec<u8>,
}

impl HeldKey {
    /// A held key as a worker reported it, every string bounded: a hostile or
    /// broken worker must not make `status` unanswerable.
    pub fn from_peer(namespace: &str, key: &str, rev: i64, reason: &str, held_hash: &[u8]) -> Self {
        Self {
            namespace: bounded(namespace, MAX_PEER_NAMESPACE),
            key: bounded(key, MAX_PEER_KEY),
            rev,
            reason: bounded(reason, MAX_PEER_TEXT),
            held_hash: held_hash[..held_hash.len().min(HASH_LEN)].to_vec(),
        }
    }
}

/// A namespace's digest as a worker reported it in an ACK.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportedDigest {
    /// The digest's root.
    pub root: Vec<u8>,
    /// How many keys it counts (informative).
    pub count: u64,
}

/// Where a stream is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StreamState {
    /// Opened; the worker's hello has not arrived.
    AwaitingHello,
    /// The worker must resync before anything else is sent; a snapshot waits
    /// here for a slot (the stream gets queue notices meanwhile).
    ResyncDue,
    /// A snapshot holds a slot and its chunks are going out.
    Snapshotting,
    /// Batches and progress notices follow the worker's revision.
    Tailing,
    /// Tailing, and a digest descent localizes where the worker's namespace
    /// differs: its next query, or the repair of what it found, is due.
    Localizing,
    /// Tailing, with a descent's query out: its answer is awaited.
    AwaitingAnswer,
    /// Tailing, with a repair out: the ACK of the worker that applied it
    /// verifies it by digest.
    Verifying,
    /// Ended; only [`ControllerStream::close`] is allowed again.
    Closed,
}

impl fmt::Display for StreamState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AwaitingHello => "AWAITING_HELLO",
            Self::ResyncDue => "RESYNC_DUE",
            Self::Snapshotting => "SNAPSHOTTING",
            Self::Tailing => "TAILING",
            Self::Localizing => "LOCALIZING",
            Self::AwaitingAnswer => "AWAITING_ANSWER",
            Self::Verifying => "VERIFYING",
            Self::Closed => "CLOSED",
        })
    }
}

/// What happened on a stream, as the table knows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Event {
    /// The worker's hello.
    Hello,
    /// A snapshot slot was granted to a stream that needs a snapshot.
    SlotGranted,
    /// The snapshot is out (set before its last chunk, which the worker may ACK at once).
    SnapshotSent,
    /// A resync by reconciliation is out (`Resync{reconcile}`).
    ReconcileSent,
    /// The worker's position left what the controller can tail from.
    FellBehind,
    /// The schema version a namespace of the worker is served in changed.
    ContractChanged,
    /// A change batch, a skip over revisions that hold nothing for the worker,
    /// or a progress notice went out.
    Sent,
    /// A notice that the stream waits for a snapshot slot went out.
    QueueNoticeSent,
    /// An ACK, a NACK, a heartbeat or any other sign of life from the worker.
    Heard,
    /// The worker's digest of a namespace differs from ours: a descent starts.
    DriftFound,
    /// A descent's query went out.
    QuerySent,
    /// The answer to the query out arrived.
    Answered,
    /// The descent found nothing to repair (or could not go on).
    DescentEnded,
    /// The repair of the keys a descent found went out.
    RepairSent,
    /// An ACK of the worker that applied the repair was compared.
    RepairChecked,
    /// The stream ended.
    Close,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hello => "a hello",
            Self::SlotGranted => "a snapshot slot",
            Self::SnapshotSent => "a snapshot sent",
            Self::ReconcileSent => "a reconcile resync sent",
            Self::FellBehind => "falling behind",
            Self::ContractChanged => "a contract change",
            Self::Sent => "sending changes or progress",
            Self::QueueNoticeSent => "a queue notice sent",
            Self::Heard => "a message from the worker",
            Self::DriftFound => "a drift found",
            Self::QuerySent => "a digest query sent",
            Self::Answered => "a digest answer",
            Self::DescentEnded => "the end of a descent",
            Self::RepairSent => "a repair sent",
            Self::RepairChecked => "a repair checked",
            Self::Close => "a close",
        })
    }
}

use Event as E;
use StreamState as S;

/// Every legal (state, event, next state). An event whose (state, event)
/// appears nowhere is a protocol error; where one pair has two next states,
/// the event's data decides (a hello that can tail or must resync; a
/// snapshot after which a contract change that arrived meanwhile is due).
pub const TRANSITIONS: &[(StreamState, Event, StreamState)] = &[
    (S::AwaitingHello, E::Hello, S::Tailing),
    (S::AwaitingHello, E::Hello, S::ResyncDue),
    (S::ResyncDue, E::SlotGranted, S::Snapshotting),
    (S::ResyncDue, E::ReconcileSent, S::Tailing),
    (S::ResyncDue, E::ContractChanged, S::ResyncDue),
    (S::ResyncDue, E::QueueNoticeSent, S::ResyncDue),
    (S::ResyncDue, E::Heard, S::ResyncDue),
    (S::Snapshotting, E::SnapshotSent, S::Tailing),
    (S::Snapshotting, E::SnapshotSent, S::ResyncDue),
    (S::Snapshotting, E::ContractChanged, S::Snapshotting),
    (S::Snapshotting, E::Heard, S::Snapshotting),
    (S::Tailing, E::Sent, S::Tailing),
    (S::Tailing, E::FellBehind, S::ResyncDue),
    (S::Tailing, E::ContractChanged, S::ResyncDue),
    (S::Tailing, E::Heard, S::Tailing),
    // A descent and its repair ride on a tailing stream: changes keep flowing,
    // and a resync abandons them.
    (S::Tailing, E::DriftFound, S::Localizing),
    (S::Localizing, E::QuerySent, S::AwaitingAnswer),
    (S::AwaitingAnswer, E::Answered, S::Localizing),
    (S::Localizing, E::DescentEnded, S::Tailing),
    (S::Localizing, E::RepairSent, S::Verifying),
    (S::Verifying, E::RepairChecked, S::Verifying),
    (S::Verifying, E::RepairChecked, S::Tailing),
    (S::Verifying, E::RepairChecked, S::Localizing),
    (S::Verifying, E::RepairChecked, S::ResyncDue),
    (S::Localizing, E::Sent, S::Localizing),
    (S::AwaitingAnswer, E::Sent, S::AwaitingAnswer),
    (S::Verifying, E::Sent, S::Verifying),
    (S::Localizing, E::Heard, S::Localizing),
    (S::AwaitingAnswer, E::Heard, S::AwaitingAnswer),
    (S::Verifying, E::Heard, S::Verifying),
    (S::Localizing, E::FellBehind, S::ResyncDue),
    (S::AwaitingAnswer, E::FellBehind, S::ResyncDue),
    (S::Verifying, E::FellBehind, S::ResyncDue),
    (S::Localizing, E::ContractChanged, S::ResyncDue),
    (S::AwaitingAnswer, E::ContractChanged, S::ResyncDue),
    (S::Verifying, E::ContractChanged, S::ResyncDue),
    (S::Localizing, E::Close, S::Closed),
    (S::AwaitingAnswer, E::Close, S::Closed),
    (S::Verifying, E::Close, S::Closed),
    (S::AwaitingHello, E::Close, S::Closed),
    (S::ResyncDue, E::Close, S::Closed),
    (S::Snapshotting, E::Close, S::Closed),
    (S::Tailing, E::Close, S::Closed),
    (S::Closed, E::Close, S::Closed),
];

/// Repairs of one divergence that may fail verification before the worker
/// is resynced from a snapshot.
pub const MAX_REPAIR_ATTEMPTS: u32 = 3;

/// The descent under way on a stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescentTrack {
    /// The namespace that differs.
    pub namespace: String,
    /// The id of the last query sent (and of the repair, which reuses it).
    pub query_id: u64,
    /// Repairs tried for this divergence, the one under way included.
    pub attempts: u32,
}

/// What an ACK of the worker that applied a repair says of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepairVerdict {
    /// The namespace's digests agree: repaired.
    Verified,
    /// They still differ: a new descent starts.
    Retry,
    /// They still differ after [`MAX_REPAIR_ATTEMPTS`] repairs: a snapshot is due.
    GaveUp,
}

/// How a worker that must resync gets back in step.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResyncKind {
    /// A full snapshot replaces the replica (it takes a snapshot slot).
    Snapshot,
    /// The worker keeps its replica and moves to the head; digest descent
    /// repairs what differs.
    Reconcile,
}

/// A resync the stream owes the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resync {
    /// Snapshot or reconciliation.
    pub kind: ResyncKind,
    /// Why, as the worker and the log are told.
    pub reason: String,
}

/// A worker's hello, as the server read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hello {
    /// The worker's id (empty only for an observer).
    pub worker_id: String,
    /// The namespaces it subscribes to.
    pub namespaces: BTreeSet<String>,
    /// Its applied revision.
    pub from_rev: i64,
    /// A watcher holding no replica (`statesync watch`).
    pub observer: bool,
    /// It accepts deltas.
    pub deltas: bool,
    /// The keys it holds back.
    pub held: Vec<HeldKey>,
    /// Namespaces whose replica is in another schema version than the one
    /// they are now served in, each described for the resync reason.
    pub stale_versions: Vec<String>,
}

/// The controller's log position when a hello arrives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogBounds {
    /// The last committed revision.
    pub head_rev: i64,
    /// History is kept after this revision.
    pub compacted_rev: i64,
}

/// The controller's state for one worker stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerStream {
    settings: SyncSettings,
    state: StreamState,
    worker_id: String,
    namespaces: BTreeSet<String>,
    observer: bool,
    deltas: bool,
    sent_rev: i64,
    cursor: i64,
    acked_rev: i64,
    acked_at: Duration,
    last_heard: Duration,
    last_sent: Duration,
    nacks: u64,
    resyncs: u64,
    resync: Option<Resync>,
    /// A contract change that arrived during a snapshot: due right after it.
    resync_after_snapshot: Option<String>,
    held: BTreeMap<(String, String), HeldKey>,
    /// Held keys the worker reported beyond [`MAX_HELD_KEYS`].
    held_omitted: u64,
    acked_digests: BTreeMap<String, ReportedDigest>,
    /// (revision, changes) of each batch sent and not yet ACKed, ascending.
    unacked: VecDeque<(i64, u64)>,
    buffered: u64,
    /// The descent under way (in the localizing, awaiting-answer and verifying states).
    descent: Option<DescentTrack>,
}

impl ControllerStream {
    /// A stream opened at `now`, awaiting the worker's hello.
    pub fn new(settings: SyncSettings, now: Duration) -> Self {
        Self {
            settings,
            state: StreamState::AwaitingHello,
            worker_id: String::new(),
            namespaces: BTreeSet::new(),
            observer: false,
            deltas: false,
            sent_rev: 0,
            cursor: 0,
            acked_rev: 0,
            acked_at: now,
            last_heard: now,
            last_sent: now,
            nacks: 0,
            resyncs: 0,
            resync: None,
            resync_after_snapshot: None,
            held: BTreeMap::new(),
            held_omitted: 0,
            acked_digests: BTreeMap::new(),
            unacked: VecDeque::new(),
            buffered: 0,
            descent: None,
        }
    }

    /// An error unless the table allows `event` in the current state.
    fn allowed(&self, event: Event) -> Result<(), ProtocolError> {
        if TRANSITIONS
            .iter()
            .any(|&(from, on, _)| from == self.state && on == event)
        {
            Ok(())
        } else {
            Err(ProtocolError::new(format!(
                "{event} is not allowed in state {}",
                self.state
            )))
        }
    }

    /// Enter `to` on `event`; the caller checked [`Self::allowed`] and chose a
    /// target the table lists.
    fn enter(&mut self, event: Event, to: StreamState) {
        debug_assert!(TRANSITIONS.contains(&(self.state, event, to)));
        self.state = to;
    }

    // ------------------------------------------------------------ events in

    /// The worker's hello. Afterwards the stream tails from `from_rev`, or
    /// owes a resync ([`Self::resync`] says which and why).
    pub fn hello(&mut self, hello: Hello, bounds: LogBounds, now: Duration) -> Result<(), ProtocolError> {
        if self.state != StreamState::AwaitingHello {
            return Err(ProtocolError::new(format!(
                "a second hello on a stream in state {}",
                self.state
            )));
        }
        self.allowed(Event::Hello)?;
        if hello.worker_id.is_empty() && !hello.observer {
            return Err(ProtocolError::new("hello has no worker_id"));
        }
        let from_rev = hello.from_rev;
        if from_rev < 0 {
            return Err(ProtocolError::new(format!(
                "hello has a negative from_rev {from_rev}"
            )));
        }
        let LogBounds {
            head_rev,
            compacted_rev,
        } = bounds;
        let position_reason = if from_rev > head_rev {
            Some(format!(
                "the worker is at revision {from_rev}, after the controller's head {head_rev}"
            ))
        } else if from_rev == 0 && head_rev > 0 && !hello.observer {
            Some("an empty replica bootstraps from a snapshot".to_owned())
        } else if (0 < from_rev && from_rev < compacted_rev) || (from_rev == 0 && 0 < compacted_rev) {
            Some(format!(
                "revision {from_rev} is compacted (history starts after {compacted_rev})"
            ))
        } else {
            None
        };
        // Watchers hold no replica to reconcile, empty replicas have nothing to
        // keep, a replica in another schema version cannot be patched into the
        // served one, and a replica from after the head (the controller was
        // restored from an older copy) cannot move back by reconciliation.
        let full = !hello.stale_versions.is_empty() || from_rev == 0 || hello.observer || from_rev > head_rev;
        // A stale schema version alone resyncs from the worker's own revision:
        // its position is good, only its values are in the wrong version.
        let tails_first = position_reason.is_none();
        let reason = position_reason.or_else(|| {
            (!hello.stale_versions.is_empty())
                .then(|| format!("schema version changed: {}", hello.stale_versions.join(", ")))
        });
        self.worker_id = hello.worker_id;
        self.namespaces = hello.namespaces;
        self.observer = hello.observer;
        self.deltas = hello.deltas;
        (self.held, self.held_omitted) = keyed(hello.held);
        self.last_heard = now;
        if tails_first {
            self.sent_rev = from_rev;
            self.cursor = from_rev;
            self.acked_rev = from_rev;
            self.acked_at = now;
        }
        match reason {
            None => self.enter(Event::Hello, StreamState::Tailing),
            Some(reason) => {
                let kind = if full {
                    ResyncKind::Snapshot
                } else {
                    ResyncKind::Reconcile
                };
                self.resync = Some(Resync { kind, reason });
                self.enter(Event::Hello, StreamState::ResyncDue);
            }
        }
        Ok(())
    }

    /// A snapshot slot was granted: the snapshot's chunks start.
    pub fn slot_granted(&mut self) -> Result<(), ProtocolError> {
        self.allowed(Event::SlotGranted)?;
        if self.resync_kind() != Some(ResyncKind::Snapshot) {
            return Err(ProtocolError::new(
                "a resync by reconciliation takes no snapshot slot",
            ));
        }
        self.enter(Event::SlotGranted, StreamState::Snapshotting);
        Ok(())
    }

    /// The snapshot at `rev` is out (called before its last chunk is sent,
    /// since the worker may ACK that chunk at once).
    pub fn snapshot_sent(&mut self, rev: i64, now: Duration) -> Result<(), ProtocolError> {
        self.allowed(Event::SnapshotSent)?;
        if rev < self.acked_rev {
            return Err(ProtocolError::new(format!(
                "a snapshot at revision {rev} would move the worker back from revision {}",
                self.acked_rev
            )));
        }
        self.restart_at(rev, now);
        self.resyncs += 1;
        match self.resync_after_snapshot.take() {
            None => self.enter(Event::SnapshotSent, StreamState::Tailing),
            Some(reason) => {
                self.resync = Some(Resync {
                    kind: ResyncKind::Snapshot,
                    reason,
                });
                self.enter(Event::SnapshotSent, StreamState::ResyncDue);
            }
        }
        Ok(())
    }

    /// `Resync{reconcile}` at `rev` is out: the worker keeps its replica and
    /// moves to `rev`; digest descent repairs what differs.
    pub fn reconcile_sent(&mut self, rev: i64, now: Duration) -> Result<(), ProtocolError> {
        self.allowed(Event::ReconcileSent)?;
        if self.resync_kind() != Some(ResyncKind::Reconcile) {
            return Err(ProtocolError::new(
                "the worker needs a snapshot, not a resync by reconciliation",
            ));
        }
        if rev < self.sent_rev {
            return Err(ProtocolError::new(format!(
                "a resync to revision {rev} would move the worker back from revision {}",
                self.sent_rev
            )));
        }
        self.restart_at(rev, now);
        self.enter(Event::ReconcileSent, StreamState::Tailing);
        Ok(())
    }

    fn restart_at(&mut self, rev: i64, now: Duration) {
        self.sent_rev = rev;
        self.cursor = rev;
        self.unacked.clear();
        self.buffered = 0;
        self.last_sent = now;
        self.resync = None;
        self.descent = None;
    }

    /// The worker's position left what the controller can tail from (the
    /// shared buffer, or compacted history): it resyncs by reconciliation.
    pub fn fell_behind(&mut self, reason: &str) -> Result<(), ProtocolError> {
        self.allowed(Event::FellBehind)?;
        self.resync = Some(Resync {
            kind: ResyncKind::Reconcile,
            reason: reason.to_owned(),
        });
        self.descent = None;
        self.enter(Event::FellBehind, StreamState::ResyncDue);
        Ok(())
    }

    /// A namespace of the worker is now served in another schema version:
    /// the state is re-sent in it from a snapshot (after the one in flight,
    /// if any).
    pub fn contract_changed(&mut self, reason: &str) -> Result<(), ProtocolError> {
        self.allowed(Event::ContractChanged)?;
        if self.state == StreamState::Snapshotting {
            self.resync_after_snapshot = Some(reason.to_owned());
            self.enter(Event::ContractChanged, StreamState::Snapshotting);
        } else {
            self.resync = Some(Resync {
                kind: ResyncKind::Snapshot,
                reason: reason.to_owned(),
            });
            self.descent = None;
            self.enter(Event::ContractChanged, StreamState::ResyncDue);
        }
        Ok(())
    }

    /// A batch `(prev_rev, rev]` holding `changes` changes went out.
    pub fn batch_sent(
        &mut self,
        prev_rev: i64,
        rev: i64,
        changes: u64,
        now: Duration,
    ) -> Result<(), ProtocolError> {
        self.allowed(Event::Sent)?;
        if prev_rev != self.sent_rev || rev < prev_rev {
            return Err(ProtocolError::new(format!(
                "batch ({prev_rev}, {rev}] does not follow revision {}",
                self.sent_rev
            )));
        }
        if changes > 0 && rev == prev_rev {
            return Err(ProtocolError::new(format!(
                "batch ({prev_rev}, {rev}] is empty yet holds {changes} changes"
            )));
        }
        self.sent_rev = rev;
        self.cursor = self.cursor.max(rev);
        self.last_sent = now;
        if changes > 0 {
            self.unacked.push_back((rev, changes));
            self.buffered += changes;
        }
        self.enter(Event::Sent, self.state);
        Ok(())
    }

    /// Revisions through `rev` hold nothing for this worker.
    pub fn skipped(&mut self, rev: i64) -> Result<(), ProtocolError> {
        self.allowed(Event::Sent)?;
        self.cursor = self.cursor.max(rev);
        self.enter(Event::Sent, self.state);
        Ok(())
    }

    /// A progress notice for the scanned position went out; returns its revision.
    pub fn progress_sent(&mut self, now: Duration) -> Result<i64, ProtocolError> {
        self.allowed(Event::Sent)?;
        self.sent_rev = self.cursor;
        self.last_sent = now;
        self.enter(Event::Sent, self.state);
        Ok(self.sent_rev)
    }

    /// A notice that the stream waits for a snapshot slot went out: without
    /// it, a worker hears nothing while queued and calls its stream stale.
    pub fn queue_notice_sent(&mut self, now: Duration) -> Result<(), ProtocolError> {
        self.allowed(Event::QueueNoticeSent)?;
        self.last_sent = now;
        self.enter(Event::QueueNoticeSent, StreamState::ResyncDue);
        Ok(())
    }

    /// An ACK of `rev` with the worker's digests and its complete list of held keys.
    pub fn ack(
        &mut self,
        rev: i64,
        digests: BTreeMap<String, ReportedDigest>,
        held: Vec<HeldKey>,
        now: Duration,
    ) -> Result<(), ProtocolError> {
        self.allowed(Event::Heard)?;
        if rev > self.sent_rev {
            return Err(ProtocolError::new(format!(
                "ACK of revision {rev}, but only {} was sent",
                self.sent_rev
            )));
        }
        self.last_heard = now;
        // An ACK older than an earlier one is harmless and changes nothing else.
        if rev >= self.acked_rev {
            self.acked_rev = rev;
            self.acked_at = now;
            self.acked_digests = digests;
        }
        while let Some(&(batch_rev, changes)) = self.unacked.front() {
            if batch_rev > rev {
                break;
            }
            self.unacked.pop_front();
            self.buffered -= changes;
        }
        (self.held, self.held_omitted) = keyed(held);
        self.enter(Event::Heard, self.state);
        Ok(())
    }

    /// A NACK: the worker holds `held` back.
    pub fn nack(&mut self, held: HeldKey, now: Duration) -> Result<(), ProtocolError> {
        self.allowed(Event::Heard)?;
        self.last_heard = now;
        self.nacks += 1;
        let slot = (held.namespace.clone(), held.key.clone());
        if self.held.len() < MAX_HELD_KEYS || self.held.contains_key(&slot) {
            self.held.insert(slot, held);
        } else {
            self.held_omitted += 1;
        }
        self.enter(Event::Heard, self.state);
        Ok(())
    }

    /// A heartbeat, a digest answer, or a message kind from a newer worker: it is alive.
    pub fn heard(&mut self, now: Duration) -> Result<(), ProtocolError> {
        self.allowed(Event::Heard)?;
        self.last_heard = now;
        self.enter(Event::Heard, self.state);
        Ok(())
    }

    /// The worker's digest of `namespace` differs from ours at its ACKed
    /// revision: a descent starts (one at a time).
    pub fn drift_found(&mut self, namespace: &str) -> Result<(), ProtocolError> {
        self.allowed(Event::DriftFound)?;
        self.descent = Some(DescentTrack {
            namespace: namespace.to_owned(),
            query_id: 0,
            attempts: 1,
        });
        self.enter(Event::DriftFound, StreamState::Localizing);
        Ok(())
    }

    /// The descent's query `id` went out (ids grow: an answer names its query).
    pub fn query_sent(&mut self, id: u64, now: Duration) -> Result<(), ProtocolError> {
        self.allowed(Event::QuerySent)?;
        let descent = self.descent.as_mut().expect("a descent in the localizing state");
        if id <= descent.query_id {
            return Err(ProtocolError::new(format!(
                "digest query {id} does not follow query {}",
                descent.query_id
            )));
        }
        descent.query_id = id;
        self.last_sent = now;
        self.enter(Event::QuerySent, StreamState::AwaitingAnswer);
        Ok(())
    }

    /// The query out, if one is: the only answer taken in (any other is
    /// ignored, `docs/wire.md`).
    pub fn awaited_answer(&self) -> Option<u64> {
        match (self.state, &self.descent) {
            (StreamState::AwaitingAnswer, Some(descent)) => Some(descent.query_id),
            _ => None,
        }
    }

    /// A digest answer to query `id` arrived and was taken in; true if it was
    /// the awaited one (the descent goes on), false if it is ignored.
    pub fn answered(&mut self, id: u64, now: Duration) -> Result<bool, ProtocolError> {
        self.heard(now)?;
        if self.awaited_answer() != Some(id) {
            return Ok(false);
        }
        self.enter(Event::Answered, StreamState::Localizing);
        Ok(true)
    }

    /// The descent ended without a repair (nothing differs, what differs is in
    /// flight, or the worker's answer was refused).
    pub fn descent_ended(&mut self) -> Result<(), ProtocolError> {
        self.allowed(Event::DescentEnded)?;
        self.descent = None;
        self.enter(Event::DescentEnded, StreamState::Tailing);
        Ok(())
    }

    /// The repair of what the descent found went out; returns its id.
    pub fn repair_sent(&mut self, now: Duration) -> Result<u64, ProtocolError> {
        self.allowed(Event::RepairSent)?;
        let id = self.descent.as_ref().map_or(0, |d| d.query_id);
        if id == 0 {
            return Err(ProtocolError::new("a repair before any digest query"));
        }
        self.last_sent = now;
        self.enter(Event::RepairSent, StreamState::Verifying);
        Ok(id)
    }

    /// An ACK saying the worker last applied repair `repaired` was compared:
    /// `agrees` is whether the repaired namespace's digests now agree. None
    /// while the worker has not applied the repair under way (nothing changes).
    pub fn repair_checked(
        &mut self,
        repaired: u64,
        agrees: bool,
    ) -> Result<Option<RepairVerdict>, ProtocolError> {
        self.allowed(Event::RepairChecked)?;
        let Some(descent) = self.descent.as_mut() else {
            return Err(ProtocolError::new("verifying without a descent"));
        };
        if repaired != descent.query_id {
            // An ACK sent before the repair arrived.
            self.enter(Event::RepairChecked, StreamState::Verifying);
            return Ok(None);
        }
        let verdict = if agrees {
            self.descent = None;
            self.enter(Event::RepairChecked, StreamState::Tailing);
            RepairVerdict::Verified
        } else if descent.attempts >= MAX_REPAIR_ATTEMPTS {
            let reason = format!(
                "namespace {:?} still differs after {MAX_REPAIR_ATTEMPTS} repairs",
                descent.namespace
            );
            self.descent = None;
            self.resync = Some(Resync {
                kind: ResyncKind::Snapshot,
                reason,
            });
            self.enter(Event::RepairChecked, StreamState::ResyncDue);
            RepairVerdict::GaveUp
        } else {
            descent.attempts += 1;
            self.enter(Event::RepairChecked, StreamState::Localizing);
            RepairVerdict::Retry
        };
        Ok(Some(verdict))
    }

    /// The stream ended (closing a closed stream is harmless).
    pub fn close(&mut self) {
        self.enter(Event::Close, StreamState::Closed);
        self.resync = None;
        self.resync_after_snapshot = None;
        self.descent = None;
    }

    /// Carry the counters of this worker's previous stream over (`status`
    /// shows totals per worker, not per connection).
    pub fn inherit_counters(&mut self, previous: &Self) {
        self.nacks += previous.nacks;
        self.resyncs += previous.resyncs;
    }

    // ------------------------------------------------------------ decisions out

    /// How many more changes may be sent before the worker ACKs (a watcher
    /// does not ACK: it always gets a full window).
    pub fn room(&self) -> u64 {
        if self.observer {
            self.settings.window
        } else {
            self.settings.window.saturating_sub(self.buffered)
        }
    }

    /// Nothing was sent for a heartbeat interval to a tailing stream.
    pub fn progress_due(&self, now: Duration) -> bool {
        self.tailing() && self.quiet_for(now)
    }

    /// Changes follow the worker's revision (with or without a descent under way).
    pub fn tailing(&self) -> bool {
        matches!(
            self.state,
            StreamState::Tailing
                | StreamState::Localizing
                | StreamState::AwaitingAnswer
                | StreamState::Verifying
        )
    }

    /// The descent under way, if any.
    pub fn descent(&self) -> Option<&DescentTrack> {
        self.descent.as_ref()
    }

    /// Nothing was sent for a heartbeat interval to a stream waiting for a resync.
    pub fn queue_notice_due(&self, now: Duration) -> bool {
        self.state == StreamState::ResyncDue && self.quiet_for(now)
    }

    fn quiet_for(&self, now: Duration) -> bool {
        now.saturating_sub(self.last_sent) >= self.settings.heartbeat
    }

    /// The worker sent nothing for longer than the silence limit (a watcher
    /// half-closes after its hello: it is never silent).
    pub fn silent(&self, now: Duration) -> bool {
        !self.observer && now.saturating_sub(self.last_heard) > self.settings.silence
    }

    // ------------------------------------------------------------ records

    /// Where the stream is.
    pub fn state(&self) -> StreamState {
        self.state
    }

    /// The resync the stream owes, while it owes one.
    pub fn resync(&self) -> Option<&Resync> {
        match self.state {
            StreamState::ResyncDue | StreamState::Snapshotting => self.resync.as_ref(),
            _ => None,
        }
    }

    fn resync_kind(&self) -> Option<ResyncKind> {
        self.resync().map(|resync| resync.kind)
    }

    /// The worker's id (empty for an observer).
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// The namespaces the worker subscribes to.
    pub fn namespaces(&self) -> &BTreeSet<String> {
        &self.namespaces
    }

    /// A watcher holding no replica.
    pub fn observer(&self) -> bool {
        self.observer
    }

    /// The worker accepts deltas.
    pub fn deltas(&self) -> bool {
        self.deltas
    }

    /// The worker was told everything through this revision (batches,
    /// progress, resync): the next batch's `prev_rev`.
    pub fn sent_rev(&self) -> i64 {
        self.sent_rev
    }

    /// The feed was scanned through this revision (at or after [`Self::sent_rev`]).
    pub fn cursor(&self) -> i64 {
        self.cursor
    }

    /// The last revision the worker ACKed.
    pub fn acked_rev(&self) -> i64 {
        self.acked_rev
    }

    /// When it ACKed it (or the hello's time).
    pub fn acked_at(&self) -> Duration {
        self.acked_at
    }

    /// When the worker was last heard from.
    pub fn last_heard(&self) -> Duration {
        self.last_heard
    }

    /// NACKs received (with the worker's earlier streams').
    pub fn nacks(&self) -> u64 {
        self.nacks
    }

    /// Snapshots sent (with the worker's earlier streams').
    pub fn resyncs(&self) -> u64 {
        self.resyncs
    }

    /// The keys the worker holds back, by (namespace, key).
    pub fn held(&self) -> &BTreeMap<(String, String), HeldKey> {
        &self.held
    }

    /// Held keys the worker reported beyond the [`MAX_HELD_KEYS`] kept (in
    /// its last ACK or hello, and NACKs since).
    pub fn held_omitted(&self) -> u64 {
        self.held_omitted
    }

    /// The worker holds at least one key back.
    pub fn nacked(&self) -> bool {
        !self.held.is_empty()
    }

    /// The digests of the worker's last ACK, by namespace, at [`Self::acked_rev`].
    pub fn acked_digests(&self) -> &BTreeMap<String, ReportedDigest> {
        &self.acked_digests
    }

    /// Changes sent and not yet ACKed.
    pub fn buffered(&self) -> u64 {
        self.buffered
    }

    /// The revisions of the batches sent and not yet ACKed, oldest first.
    pub fn unacked_revs(&self) -> impl Iterator<Item = i64> + '_ {
        self.unacked.iter().map(|&(rev, _)| rev)
    }
}

/// The held keys a worker reported, by (namespace, key): the first
/// [`MAX_HELD_KEYS`] in key order, and how many more there were.
fn keyed(held: Vec<HeldKey>) -> (BTreeMap<(String, String), HeldKey>, u64) {
    let mut keyed: BTreeMap<(String, String), HeldKey> = held
        .into_iter()
        .map(|h| ((h.namespace.clone(), h.key.clone()), h))
        .collect();
    let omitted = keyed.len().saturating_sub(MAX_HELD_KEYS);
    if omitted > 0 {
        let first_omitted = keyed
            .keys()
            .nth(MAX_HELD_KEYS)
            .cloned()
            .expect("more than the bound");
        keyed.split_off(&first_omitted);
    }
    (keyed, omitted as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn hello(worker_id: &str, from_rev: i64) -> Hello {
        Hello {
            worker_id: worker_id.to_owned(),
            namespaces: ["routes".to_owned()].into(),
            from_rev,
            ..Hello::default()
        }
    }

    fn bounds(head_rev: i64, compacted_rev: i64) -> LogBounds {
        LogBounds {
            head_rev,
            compacted_rev,
        }
    }

    #[test]
    fn a_descent_queries_repairs_and_gives_up_after_three_failed_repairs() {
        let mut stream = tailing_at(5);
        assert!(stream.query_sent(1, at(0)).is_err(), "no descent yet");
        stream.drift_found("routes").unwrap();
        assert!(stream.drift_found("routes").is_err(), "one descent at a time");
        stream.query_sent(1, at(1)).unwrap();
        assert_eq!(stream.awaited_answer(), Some(1));
        assert!(stream.query_sent(2, at(1)).is_err(), "one query out at a time");
        assert_eq!(
            stream.answered(7, at(2)),
            Ok(false),
            "not the awaited answer: ignored"
        );
        assert_eq!(stream.state(), StreamState::AwaitingAnswer);
        assert_eq!(stream.answered(1, at(2)), Ok(true));
        assert!(stream.query_sent(1, at(2)).is_err(), "query ids grow");
        for attempt in 1..=MAX_REPAIR_ATTEMPTS {
            let id = u64::from(attempt) * 10;
            stream.query_sent(id, at(3)).unwrap();
            stream.answered(id, at(3)).unwrap();
            assert_eq!(stream.repair_sent(at(4)), Ok(id));
            assert_eq!(
                stream.repair_checked(id - 1, true),
                Ok(None),
                "an ACK from before the repair"
            );
            assert_eq!(stream.state(), StreamState::Verifying);
            let verdict = stream.repair_checked(id, false).unwrap();
            if attempt < MAX_REPAIR_ATTEMPTS {
                assert_eq!(verdict, Some(RepairVerdict::Retry));
                assert_eq!(stream.descent().map(|d| d.attempts), Some(attempt + 1));
            } else {
                assert_eq!(verdict, Some(RepairVerdict::GaveUp));
            }
        }
        assert_eq!(stream.state(), StreamState::ResyncDue);
        assert_eq!(stream.resync().map(|r| r.kind), Some(ResyncKind::Snapshot));
        assert!(stream.descent().is_none());
    }

    #[test]
    fn a_verified_repair_returns_to_tailing_and_a_resync_abandons_a_descent() {
        let mut stream = tailing_at(5);
        stream.drift_found("routes").unwrap();
        stream.query_sent(3, at(1)).unwrap();
        stream.batch_sent(5, 6, 1, at(1)).unwrap();
        assert_eq!(
            stream.state(),
            StreamState::AwaitingAnswer,
            "changes flow during a descent"
        );
        stream.answered(3, at(2)).unwrap();
        assert_eq!(stream.repair_sent(at(2)), Ok(3));
        assert_eq!(stream.repair_checked(3, true), Ok(Some(RepairVerdict::Verified)));
        assert_eq!(stream.state(), StreamState::Tailing);
        stream.drift_found("routes").unwrap();
        stream.fell_behind("fell behind").unwrap();
        assert!(stream.descent().is_none() && stream.state() == StreamState::ResyncDue);
    }

    fn tailing_at(rev: i64) -> ControllerStream {
        let mut stream = ControllerStream::new(SyncSettings::default(), at(0));
        stream.hello(hello("w1", rev), bounds(rev, 0), at(0)).unwrap();
        stream
    }

    #[test]
    fn a_worker_in_history_tails_from_its_revision() {
        let stream = tailing_at(7);
        assert_eq!(stream.state(), StreamState::Tailing);
        assert_eq!(
            (stream.sent_rev(), stream.cursor(), stream.acked_rev()),
            (7, 7, 7)
        );
        assert_eq!(stream.resync(), None);
    }

    #[test]
    fn hello_decides_snapshot_or_reconcile_and_says_why() {
        let cases = [
            (
                0,
                false,
                bounds(5, 0),
                vec![],
                ResyncKind::Snapshot,
                "an empty replica",
            ),
            (
                9,
                false,
                bounds(5, 0),
                vec![],
                ResyncKind::Snapshot,
                "after the controller's head 5",
            ),
            (
                3,
                false,
                bounds(9, 4),
                vec![],
                ResyncKind::Reconcile,
                "revision 3 is compacted",
            ),
            (
                0,
                true,
                bounds(9, 4),
                vec![],
                ResyncKind::Snapshot,
                "revision 0 is compacted",
            ),
            (
                5,
                false,
                bounds(9, 0),
                vec!["routes (replica in v1, now served in v2)".to_owned()],
                ResyncKind::Snapshot,
                "schema version changed: routes (replica in v1",
            ),
        ];
        for (from_rev, observer, log, stale, kind, reason) in cases {
            let mut stream = ControllerStream::new(SyncSettings::default(), at(0));
            let mut greeting = hello("w1", from_rev);
            greeting.observer = observer;
            greeting.stale_versions = stale;
            stream.hello(greeting, log, at(0)).unwrap();
            assert_eq!(stream.state(), StreamState::ResyncDue, "from {from_rev}");
            let resync = stream.resync().unwrap();
            assert_eq!(resync.kind, kind, "from {from_rev}");
            assert!(resync.reason.contains(reason), "{}", resync.reason);
        }
    }

    #[test]
    fn an_observer_on_an_uncompacted_log_tails_from_zero() {
        let mut stream = ControllerStream::new(SyncSettings::default(), at(0));
        let mut greeting = hello("", 0);
        greeting.observer = true;
        stream.hello(greeting, bounds(9, 0), at(0)).unwrap();
        assert_eq!(stream.state(), StreamState::Tailing);
        assert!(!stream.silent(at(1_000_000)));
    }

    #[test]
    fn bad_hellos_are_refused_and_change_nothing() {
        let mut stream = ControllerStream::new(SyncSettings::default(), at(0));
        let before = stream.clone();
        let error = stream.hello(hello("", 0), bounds(0, 0), at(1)).unwrap_err();
        assert_eq!(error.message(), "hello has no worker_id");
        let error = stream.hello(hello("w", -1), bounds(0, 0), at(1)).unwrap_err();
        assert!(error.message().contains("negative from_rev -1"));
        assert_eq!(stream, before);
        let mut tailing = tailing_at(3);
        let error = tailing.hello(hello("w", 3), bounds(3, 0), at(1)).unwrap_err();
        assert_eq!(error.message(), "a second hello on a stream in state TAILING");
    }

    #[test]
    fn the_window_fills_with_batches_and_empties_with_acks() {
        let settings = SyncSettings {
            window: 10,
            ..SyncSettings::default()
        };
        let mut stream = ControllerStream::new(settings, at(0));
        stream.hello(hello("w1", 0), bounds(0, 0), at(0)).unwrap();
        stream.batch_sent(0, 3, 6, at(1)).unwrap();
        stream.batch_sent(3, 5, 4, at(2)).unwrap();
        assert_eq!(stream.room(), 0);
        stream.ack(3, BTreeMap::new(), vec![], at(3)).unwrap();
        assert_eq!((stream.room(), stream.acked_rev()), (6, 3));
        let error = stream.ack(6, BTreeMap::new(), vec![], at(4)).unwrap_err();
        assert_eq!(error.message(), "ACK of revision 6, but only 5 was sent");
        stream.ack(2, BTreeMap::new(), vec![], at(5)).unwrap();
        assert_eq!(stream.acked_rev(), 3, "an older ACK does not move back");
    }

    #[test]
    fn a_batch_must_follow_what_was_sent() {
        let mut stream = tailing_at(4);
        let error = stream.batch_sent(3, 6, 1, at(1)).unwrap_err();
        assert_eq!(error.message(), "batch (3, 6] does not follow revision 4");
        assert!(stream.batch_sent(4, 4, 1, at(1)).is_err());
        stream.batch_sent(4, 4, 0, at(1)).unwrap();
    }

    #[test]
    fn progress_is_due_after_a_quiet_heartbeat_and_reports_the_scan() {
        let mut stream = tailing_at(4);
        assert!(!stream.progress_due(at(999)));
        assert!(stream.progress_due(at(1000)));
        stream.skipped(9).unwrap();
        assert_eq!(stream.progress_sent(at(1000)).unwrap(), 9);
        assert!(!stream.progress_due(at(1500)));
        assert_eq!(stream.sent_rev(), 9);
    }

    #[test]
    fn a_queued_snapshot_gets_notices_then_a_slot() {
        let mut stream = ControllerStream::new(SyncSettings::default(), at(0));
        stream.hello(hello("w1", 0), bounds(5, 0), at(0)).unwrap();
        assert!(!stream.progress_due(at(5000)), "no progress before the snapshot");
        assert!(stream.queue_notice_due(at(1000)));
        stream.queue_notice_sent(at(1000)).unwrap();
        assert!(!stream.queue_notice_due(at(1999)));
        stream.slot_granted().unwrap();
        assert!(!stream.queue_notice_due(at(9000)));
        stream.snapshot_sent(5, at(9000)).unwrap();
        assert_eq!(
            (stream.state(), stream.sent_rev(), stream.resyncs()),
            (StreamState::Tailing, 5, 1)
        );
        stream.ack(5, BTreeMap::new(), vec![], at(9001)).unwrap();
    }

    #[test]
    fn falling_behind_resyncs_by_reconciliation_without_a_slot() {
        let mut stream = tailing_at(4);
        stream.batch_sent(4, 8, 3, at(1)).unwrap();
        stream.fell_behind("fell behind the sync buffer").unwrap();
        assert!(stream.slot_granted().is_err());
        assert!(stream.reconcile_sent(7, at(2)).is_err(), "never back");
        stream.ack(8, BTreeMap::new(), vec![], at(2)).unwrap();
        stream.reconcile_sent(20, at(3)).unwrap();
        assert_eq!(
            (stream.state(), stream.sent_rev(), stream.buffered()),
            (StreamState::Tailing, 20, 0)
        );
        assert_eq!(stream.resyncs(), 0, "no snapshot was sent");
    }

    #[test]
    fn a_contract_change_during_a_snapshot_resyncs_right_after_it() {
        let mut stream = ControllerStream::new(SyncSettings::default(), at(0));
        stream.hello(hello("w1", 0), bounds(5, 0), at(0)).unwrap();
        stream.slot_granted().unwrap();
        stream.contract_changed("now served in routes v2").unwrap();
        stream.snapshot_sent(5, at(1)).unwrap();
        assert_eq!(stream.state(), StreamState::ResyncDue);
        let resync = stream.resync().unwrap();
        assert_eq!(resync.kind, ResyncKind::Snapshot);
        assert_eq!(resync.reason, "now served in routes v2");
    }

    #[test]
    fn acks_replace_held_keys_and_nacks_add_them() {
        let mut stream = tailing_at(1);
        stream.batch_sent(1, 2, 1, at(1)).unwrap();
        stream
            .nack(HeldKey::from_peer("routes", "a", 2, "bad", b""), at(2))
            .unwrap();
        assert!(stream.nacked());
        assert_eq!(stream.nacks(), 1);
        stream.ack(2, BTreeMap::new(), vec![], at(3)).unwrap();
        assert!(!stream.nacked(), "an ACK without held keys means none");
    }

    #[test]
    fn held_keys_are_bounded_per_worker() {
        let mut stream = tailing_at(1);
        stream.batch_sent(1, 2, 1, at(1)).unwrap();
        let many: Vec<HeldKey> = (0..MAX_HELD_KEYS + 500)
            .map(|i| HeldKey::from_peer("routes", &format!("k{i:05}"), 2, "bad", b""))
            .collect();
        stream.ack(2, BTreeMap::new(), many, at(2)).unwrap();
        assert_eq!(stream.held().len(), MAX_HELD_KEYS);
        assert_eq!(stream.held_omitted(), 500);
        let last = stream.held().keys().next_back().unwrap();
        assert_eq!(
            last.1,
            format!("k{:05}", MAX_HELD_KEYS - 1),
            "the first in key order are kept"
        );
        // A NACK of a kept key replaces it; of another key, it is counted.
        stream
            .nack(HeldKey::from_peer("routes", "k00000", 2, "worse", b""), at(3))
            .unwrap();
        stream
            .nack(HeldKey::from_peer("routes", "zzz", 2, "bad", b""), at(3))
            .unwrap();
        assert_eq!(stream.held()[&("routes".into(), "k00000".into())].reason, "worse");
        assert_eq!((stream.held().len(), stream.held_omitted()), (MAX_HELD_KEYS, 501));
        stream.ack(2, BTreeMap::new(), vec![], at(4)).unwrap();
        assert_eq!((stream.held().len(), stream.held_omitted()), (0, 0));
    }

    #[test]
    fn peer_strings_are_bounded() {
        let held = HeldKey::from_peer("n".repeat(100).as_str(), "k", 1, &"é".repeat(600), &[7; 40]);
        assert_eq!(held.reason, format!("{}… [88 more characters]", "é".repeat(512)));
        assert_eq!(
            held.namespace.chars().count(),
            64 + "… [36 more characters]".chars().count()
        );
        assert_eq!(held.held_hash.len(), 32);
        assert_eq!(bounded("short", 512), "short");
    }

    #[test]
    fn silence_is_measured_from_the_last_message_heard() {
        let mut stream = tailing_at(1);
        assert!(!stream.silent(at(10_000)));
        assert!(stream.silent(at(10_001)));
        stream.heard(at(10_001)).unwrap();
        assert!(!stream.silent(at(20_001)));
    }

    #[test]
    fn a_closed_stream_accepts_nothing_but_close() {
        let mut stream = tailing_at(1);
        stream.close();
        let before = stream.clone();
        assert!(stream.heard(at(1)).is_err());
        assert!(stream.progress_sent(at(1)).is_err());
        assert_eq!(
            stream
                .ack(0, BTreeMap::new(), vec![], at(1))
                .unwrap_err()
                .message(),
            "a message from the worker is not allowed in state CLOSED"
        );
        stream.close();
        assert_eq!(stream, before);
    }
}
