//! Drift repair on the hub: what an ACK and a digest answer do to a stream's
//! descent, the records `status` shows, and the store reads a descent needs
//! (our trie, the keys in flight, the repair's values); the stream's sender
//! sends the queries and the repair.
//!
//! An ACK whose digest of a namespace differs from ours at its revision
//! starts a descent over the worker's stream (the core's `Descent`; its
//! states are the stream table's); the keys it finds, less those changed
//! since the worker's revision (the stream is delivering them), go down as
//! one `Repair` with our values at the revision the stream has reached; the
//! next ACK of the worker that applied it verifies it. Each divergence is
//! recorded (worker, keys, why, cost).

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use statesync_core::descent::{Descent, NodeAnswer, Trie};
use statesync_core::digest::{Hash, Node};
use statesync_core::sync::controller::{ProtocolError, RepairVerdict, StreamState};
use statesync_store::{SqliteStore, StoreError};
use tokio::sync::watch;

use super::{RecordState, SyncHub, WorkerRecord, unix_now};
use crate::proto::{self, DigestAnswer, KeyRef, RepairRecord};
use crate::service::entry;

/// Records of settled divergences kept per worker.
const HISTORY: usize = 20;
/// Keys of a divergence shown in its record.
const SHOWN_KEYS: usize = 20;
/// A worker further behind than this many changes is left to catch up first.
const MAX_WINDOW: usize = 100_000;

/// One namespace of the controller's store at its head, read as a digest trie.
pub(crate) struct StoreTrie<'a> {
    pub(crate) store: &'a SqliteStore,
    pub(crate) ns: &'a str,
}

impl Trie for StoreTrie<'_> {
    type Error = StoreError;

    fn node(&mut self, prefix: &str) -> Result<Node, StoreError> {
        self.store.digest_node(self.ns, prefix)
    }

    fn leaves(&mut self, prefix: &str) -> Result<Vec<(String, Hash)>, StoreError> {
        self.store.leaves(self.ns, prefix)
    }
}

/// The divergence being worked on for one worker (its record is the newest
/// in the history).
pub(crate) struct Active {
    pub(crate) descent: Descent,
    /// When it was detected, on the hub's clock.
    started: Duration,
    /// The worker's revision when it first answered: keys changed after it are in flight.
    pub(crate) from_rev: Option<i64>,
    /// Round trips and bytes of earlier attempts at this divergence.
    earlier_round_trips: u32,
    earlier_bytes: u64,
}

/// What `status` shows about one worker's divergences and repairs.
pub(crate) struct Repairs {
    pub(crate) divergences: u64,
    pub(crate) keys_repaired: u64,
    /// Each record with its serial number, oldest first.
    history: VecDeque<(u64, RepairRecord)>,
    pub(crate) active: Option<Active>,
    /// No new descent before this time: the last found only keys in flight.
    quiet_until: Duration,
    /// The serial number of the last record settled: `statesync reconcile` waits on it.
    settled: watch::Sender<u64>,
    serials: u64,
}

impl Default for Repairs {
    fn default() -> Self {
        Self {
            divergences: 0,
            keys_repaired: 0,
            history: VecDeque::new(),
            active: None,
            quiet_until: Duration::ZERO,
            settled: watch::Sender::new(0),
            serials: 0,
        }
    }
}

impl Repairs {
    /// The records, oldest first.
    pub(crate) fn history(&self) -> impl Iterator<Item = &RepairRecord> {
        self.history.iter().map(|(_, record)| record)
    }

    /// The record numbered `serial`, while it is kept.
    pub(crate) fn record_of(&self, serial: u64) -> Option<&RepairRecord> {
        self.history.iter().find(|(s, _)| *s == serial).map(|(_, r)| r)
    }

    /// The record numbered `serial` once it settled (None: under way, or no longer kept).
    pub(crate) fn settled(&self, serial: u64) -> Option<&RepairRecord> {
        let under_way = self.active.is_some() && self.history.back().is_some_and(|(s, _)| *s == serial);
        if under_way { None } else { self.record_of(serial) }
    }

    /// Told the serial number of each record that settles.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.settled.subscribe()
    }

    /// Whether a new divergence may be worked on now.
    pub(crate) fn may_start(&self, now: Duration) -> bool {
        self.active.is_none() && now >= self.quiet_until
    }

    /// A check of `ns` starts at `now` (`unix` on the wall clock): a
    /// divergence `detected` at an ACK, or one asked for. Returns its serial number.
    pub(crate) fn start(
        &mut self,
        ns: &str,
        reason: String,
        detected: bool,
        now: Duration,
        unix: f64,
    ) -> u64 {
        if detected {
            self.divergences += 1;
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.serials += 1;
        self.history.push_back((
            self.serials,
            RepairRecord {
                ns: ns.to_owned(),
                reason,
                detected_unix: unix,
                outcome: "localizing".to_owned(),
                ..RepairRecord::default()
            },
        ));
        self.active = Some(Active {
            descent: Descent::new(),
            started: now,
            from_rev: None,
            earlier_round_trips: 0,
            earlier_bytes: 0,
        });
        self.serials
    }

    fn record(&mut self) -> Option<&mut RepairRecord> {
        self.history.back_mut().map(|(_, record)| record)
    }

    /// The descent's cost so far, into the record.
    pub(crate) fn account(&mut self) {
        let Some(active) = &self.active else { return };
        let round_trips = i64::from(active.earlier_round_trips + active.descent.round_trips());
        let bytes = (active.earlier_bytes + active.descent.bytes_exchanged()) as i64;
        if let Some(record) = self.record() {
            record.round_trips = round_trips;
            record.bytes = bytes;
        }
    }

    /// The repair failed verification: descend again, keeping the cost so far.
    pub(crate) fn retry(&mut self) {
        let bytes = self.record().map_or(0, |r| r.bytes);
        let Some(active) = &mut self.active else { return };
        active.earlier_round_trips += active.descent.round_trips();
        active.earlier_bytes = u64::try_from(bytes).unwrap_or(0);
        active.descent = Descent::new();
        active.from_rev = None;
        if let Some(record) = self.record() {
            record.outcome = "localizing".to_owned();
        }
    }

    /// `keys` go down in a repair of `bytes` bytes.
    pub(crate) fn repairing(&mut self, keys: &[String], bytes: usize) {
        self.keys_repaired += keys.len() as u64;
        if let Some(record) = self.record() {
            let known: BTreeSet<String> = record.keys.iter().cloned().collect();
            let new = keys.iter().filter(|k| !known.contains(*k)).cloned();
            record.keys.extend(new);
            record.keys.truncate(SHOWN_KEYS);
            record.key_count += keys.len() as i64; // earlier attempts' keys were repaired too
            record.bytes += bytes as i64;
            record.outcome = "repairing".to_owned();
        }
    }

    /// The divergence is settled with `outcome` at `now`; `quiet` holds off the next.
    pub(crate) fn finish(&mut self, outcome: &str, now: Duration, quiet: Option<Duration>) {
        let Some(active) = self.active.take() else { return };
        if let Some(record) = self.record() {
            record.outcome = outcome.to_owned();
            record.seconds = now.saturating_sub(active.started).as_secs_f64();
        }
        if let Some(quiet) = quiet {
            self.quiet_until = now + quiet;
        }
        if let Some(&(serial, _)) = self.history.back() {
            self.settled.send_replace(serial);
        }
    }

    /// The worker's record of the divergence under way, for logs.
    pub(crate) fn current(&self) -> Option<&RepairRecord> {
        self.active
            .as_ref()
            .and(self.history.back().map(|(_, record)| record))
    }
}

/// An ACK was compared (`differing`: the namespaces whose digests differ):
/// verify the repair under way once the worker applied it (`repaired`), or
/// start a descent on a new divergence.
pub(super) fn on_ack(
    hub: &SyncHub,
    state: &mut RecordState,
    differing: &[String],
    repaired: u64,
) -> Result<(), ProtocolError> {
    let now = hub.now();
    let worker = state.stream.worker_id().to_owned();
    match state.stream.state() {
        StreamState::Verifying => {
            let ns = state
                .stream
                .descent()
                .map(|d| d.namespace.clone())
                .unwrap_or_default();
            match state.stream.repair_checked(repaired, !differing.contains(&ns))? {
                None => {}
                Some(RepairVerdict::Verified) => {
                    state.repairs.finish("verified", now, None);
                    if let Some(record) = state.repairs.history().last() {
                        hub.repair_verified(record.seconds);
                        log::info!(
                            "worker {worker}: repair of {ns:?} verified ({} key(s), {:.3} s after detection)",
                            record.key_count,
                            record.seconds
                        );
                    }
                }
                Some(RepairVerdict::Retry) => state.repairs.retry(),
                Some(RepairVerdict::GaveUp) => {
                    state.repairs.finish("gave up", now, None);
                    let reason = state
                        .stream
                        .resync()
                        .map(|r| r.reason.clone())
                        .unwrap_or_default();
                    log::error!("worker {worker}: {reason}: full resync");
                }
            }
        }
        StreamState::Tailing if state.repairs.may_start(now) => {
            if let Some(ns) = differing.first() {
                let rev = state.stream.acked_rev();
                log::warn!(
                    "worker {worker}: namespace {ns:?} differs from the controller at revision {rev}: localizing"
                );
                state.stream.drift_found(ns)?;
                let reason = format!("digest differs at revision {rev}");
                state.repairs.start(ns, reason, true, now, unix_now());
            }
        }
        _ => {}
    }
    Ok(())
}

/// A digest answer: compared with our trie if it answers the query out
/// (off the runtime: it reads the store), else ignored.
pub(super) async fn on_answer(
    hub: &Arc<SyncHub>,
    record: &Arc<WorkerRecord>,
    answer: DigestAnswer,
) -> Result<(), ProtocolError> {
    let taken = {
        let mut state = record.lock();
        let awaited = state.stream.awaited_answer() == Some(answer.id);
        match (&state.repairs.active, state.stream.descent()) {
            (Some(active), Some(track)) if awaited => Some((active.descent.clone(), track.namespace.clone())),
            _ => {
                state.stream.heard(hub.now())?;
                None
            }
        }
    };
    let Some((mut descent, ns)) = taken else {
        return Ok(());
    };
    let nodes: Vec<NodeAnswer> = answer
        .nodes
        .into_iter()
        .map(|n| NodeAnswer {
            prefix: n.prefix,
            children: n.children,
            leaves: n.leaves,
            is_leaves: n.is_leaves,
        })
        .collect();
    let store = hub.store.clone();
    let names = answer.names;
    let compared = tokio::task::spawn_blocking(move || {
        let result = descent.receive(
            &nodes,
            &names,
            &mut StoreTrie {
                store: &store,
                ns: &ns,
            },
        );
        result.map(|()| descent).map_err(|e| e.to_string())
    })
    .await
    .unwrap_or_else(|_| Err("the comparison with our digest failed".to_owned()));
    let now = hub.now();
    let mut state = record.lock();
    if !state.stream.answered(answer.id, now)? {
        return Ok(()); // the stream moved on (a resync) meanwhile
    }
    match compared {
        Ok(descent) => {
            if let Some(active) = &mut state.repairs.active {
                active.descent = descent;
                active.from_rev.get_or_insert(answer.rev);
            }
            state.repairs.account();
        }
        Err(why) => {
            log::warn!(
                "worker {}: digest answer {}: {why}",
                state.stream.worker_id(),
                answer.id
            );
            state.repairs.finish(&format!("gave up ({why})"), now, None);
            state.stream.descent_ended()?;
        }
    }
    record.wake.notify_one();
    Ok(())
}

/// Keys of `ns` changed after `rev` (None: too many to tell).
pub(crate) fn changed_since(
    store: &SqliteStore,
    ns: &str,
    mut rev: i64,
) -> Result<Option<BTreeSet<String>>, StoreError> {
    let namespaces = [ns.to_owned()];
    let mut keys = BTreeSet::new();
    let mut changes = 0;
    loop {
        let batch = store.changes(rev, 1000, Some(&namespaces))?;
        let Some(last) = batch.last() else {
            return Ok(Some(keys));
        };
        rev = last.rev;
        changes += batch.len();
        keys.extend(batch.into_iter().map(|c| c.key));
        if changes > MAX_WINDOW {
            return Ok(None);
        }
    }
}

/// The `Repair` of `keys` of `ns`: our values (or deletions) at `rev`.
pub(crate) fn repair_message(
    store: &Arc<SqliteStore>,
    id: u64,
    ns: &str,
    keys: &[String],
    rev: i64,
    reason: &str,
) -> Result<proto::Repair, StoreError> {
    let mut repair = proto::Repair {
        id,
        rev,
        reason: reason.to_owned(),
        ..proto::Repair::default()
    };
    for key in keys {
        match store.get(ns, key, Some(rev))? {
            Some(record) => repair.entries.push(entry(record)),
            None => repair.deletes.push(KeyRef {
                ns: ns.to_owned(),
                key: key.clone(),
            }),
        }
    }
    Ok(repair)
}
