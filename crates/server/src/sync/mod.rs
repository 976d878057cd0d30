//! Sync streams served natively: one task pair per worker around the core's
//! [`ControllerStream`] table, reading the shared [`Feed`], with per-worker
//! records for `status`, `WaitApplied` and `Reconcile`.
//!
//! The table decides; this module moves messages. A stream starts with a
//! snapshot (under a bounded number of slots; a stream waiting for one gets
//! `Heartbeat{snapshot_queued}` every heartbeat interval) or at the worker's
//! revision, catches up from the store's log while it is older than the feed,
//! then tails the feed. A worker whose ACKed digest of a namespace differs
//! from ours gets a digest descent and a repair over its stream ([`repair`]),
//! and one that fell behind or whose revision is compacted keeps its replica
//! and is reconciled (`SyncSettings::reconcile`). A worker that declared
//! schema versions is served each namespace in the newest one registered
//! ([`versions`]), and is re-sent the state when a contract change moves it.

mod repair;
mod stream;
mod versions;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use statesync_core::command::CONTRACTS_NAMESPACE;
use statesync_core::sync::controller::{ControllerStream, MAX_HELD_KEYS, StreamState, SyncSettings};
use statesync_store::{SqliteStore, StoreError};
use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;

use crate::error::{ErrorReporter, NativeError};
use crate::feed::{Deltas, Feed, FeedLimits};
use crate::proto::{
    self, ReconcileReply, ReconcileRequest, ReconcileResult, RepairRecord, WaitAppliedReply,
    WaitAppliedRequest, WorkerStatus,
};

pub(crate) use stream::serve;
pub use versions::NoTranslationPath;

/// Verified repairs whose detection-to-verification time the hub keeps.
const REPAIR_TIMES: usize = 1000;

/// How the hub serves streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubSettings {
    /// Timing and window of each stream.
    pub sync: SyncSettings,
    /// Snapshots streamed at once.
    pub snapshot_slots: usize,
    /// Catch-up reads of the store's log at once.
    pub catch_up_slots: usize,
    /// Keys per snapshot chunk.
    pub chunk_size: usize,
    /// What the shared feed keeps.
    pub feed: FeedLimits,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            sync: SyncSettings::default(),
            snapshot_slots: 4,
            catch_up_slots: 4,
            chunk_size: 2000,
            feed: FeedLimits::default(),
        }
    }
}

/// Whether a worker's digests agree with the controller's at its ACKed revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Agreement {
    /// No digests reported, or ours could not be read.
    Unknown,
    /// Every reported namespace agrees.
    Agree,
    /// At least one reported namespace differs.
    Differ,
}

impl Agreement {
    /// As `status` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unknown => "unknown",
            Self::Agree => "agree",
            Self::Differ => "differ",
        }
    }
}

/// One worker's stream as `status` sees it; kept after it disconnects.
pub(crate) struct WorkerRecord {
    peer: String,
    state: Mutex<RecordState>,
    /// Wakes the stream's sender: an ACK freed room, the worker left, or a
    /// newer stream of the same worker replaced this one.
    wake: Notify,
}

pub(crate) struct RecordState {
    pub(crate) stream: ControllerStream,
    pub(crate) connected: bool,
    pub(crate) digest: Agreement,
    pub(crate) repairs: repair::Repairs,
    /// The schema versions the worker declared, per namespace.
    pub(crate) declared: versions::Declared,
    /// The version each declared namespace is served in.
    pub(crate) targets: versions::Targets,
}

impl WorkerRecord {
    pub(crate) fn lock(&self) -> MutexGuard<'_, RecordState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn disconnect(&self) {
        self.lock().connected = false;
        self.wake.notify_one();
    }
}

/// Every sync stream of one controller.
pub struct SyncHub {
    store: Arc<SqliteStore>,
    feed: Arc<Feed>,
    reporter: Arc<dyn ErrorReporter>,
    settings: HubSettings,
    /// The origin of the times given to the streams' tables.
    origin: Instant,
    workers: Mutex<BTreeMap<String, Arc<WorkerRecord>>>,
    snapshot_slots: Arc<Semaphore>,
    catch_up_slots: Arc<Semaphore>,
    deltas: Arc<Deltas>,
    versions: Arc<versions::Versions>,
    /// Bumped at every ACK: `WaitApplied` looks again.
    acks: watch::Sender<u64>,
    /// The last digest query id given out: ids are unique across streams, so
    /// a worker's `Ack.repaired` from an earlier stream never matches a new repair.
    query_ids: AtomicU64,
    /// Detection to verified repair (seconds) of the last [`REPAIR_TIMES`] repairs.
    repair_seconds: Mutex<VecDeque<f64>>,
    closing: CancellationToken,
}

fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl SyncHub {
    /// A hub serving `store`'s commits from `feed`.
    pub fn new(
        store: Arc<SqliteStore>,
        feed: Arc<Feed>,
        reporter: Arc<dyn ErrorReporter>,
        settings: HubSettings,
    ) -> Arc<Self> {
        let versions = Arc::new(versions::Versions::default());
        let forget = versions.clone();
        // On the committer thread, before the batch's head is published: a
        // stream woken by it sees the new generation.
        feed.on_contracts(Arc::new(move |namespaces| forget.changed(namespaces)));
        Arc::new(Self {
            store,
            feed,
            reporter,
            origin: Instant::now(),
            workers: Mutex::new(BTreeMap::new()),
            snapshot_slots: Arc::new(Semaphore::new(settings.snapshot_slots.max(1))),
            catch_up_slots: Arc::new(Semaphore::new(settings.catch_up_slots.max(1))),
            deltas: Arc::new(Deltas::default()),
            versions,
            acks: watch::Sender::new(0),
            query_ids: AtomicU64::new(0),
            repair_seconds: Mutex::new(VecDeque::with_capacity(REPAIR_TIMES)),
            closing: CancellationToken::new(),
            settings,
        })
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn next_query_id(&self) -> u64 {
        self.query_ids.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn workers(&self) -> MutexGuard<'_, BTreeMap<String, Arc<WorkerRecord>>> {
        self.workers.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reads a namespace's contract record (blocks on SQLite: call it off the
    /// async threads).
    fn contract_reader(&self) -> impl Fn(&str) -> Result<Option<Vec<u8>>, StoreError> + Send + 'static {
        let store = self.store.clone();
        move |ns| {
            Ok(store
                .get(CONTRACTS_NAMESPACE, ns, None)?
                .map(|record| record.value))
        }
    }

    /// The version each namespace of `declared` is served in.
    async fn targets(&self, declared: &versions::Declared) -> Result<versions::Targets, NativeError> {
        if declared.is_empty() {
            return Ok(versions::Targets::new());
        }
        let (versions, load, declared) = (self.versions.clone(), self.contract_reader(), declared.clone());
        let targets = tokio::task::spawn_blocking(move || versions.targets(&declared, &load))
            .await
            .unwrap_or(Err(StoreError::Closed))?;
        Ok(targets?)
    }

    /// Revisions and encoded bytes the shared feed holds.
    pub fn feed_size(&self) -> (usize, usize) {
        (self.feed.size_revisions(), self.feed.size_bytes())
    }

    /// Detection to verified repair, in seconds, of the last 1000 repairs of
    /// every worker, oldest first.
    pub fn repair_seconds(&self) -> Vec<f64> {
        self.repair_seconds
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .copied()
            .collect()
    }

    fn repair_verified(&self, seconds: f64) {
        let mut times = self.repair_seconds.lock().unwrap_or_else(PoisonError::into_inner);
        if times.len() == REPAIR_TIMES {
            times.pop_front();
        }
        times.push_back(seconds);
    }

    /// Ends every stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.cancel();
    }

    /// What the client receives for `error`.
    async fn report(&self, error: NativeError) -> tonic::Status {
        let reporter = self.reporter.clone();
        let message = error.to_string();
        match tokio::task::spawn_blocking(move || reporter.report(error)).await {
            Ok(reported) => reported.into_status(),
            Err(_) => tonic::Status::internal(message),
        }
    }

    /// A worker's new stream replaces its older one, and carries its counters
    /// and repair records.
    fn register(&self, record: &Arc<WorkerRecord>) {
        let worker_id = record.lock().stream.worker_id().to_owned();
        let mut workers = self.workers();
        if let Some(old) = workers.get(&worker_id) {
            let (previous, connected) = {
                let state = old.lock();
                (state.stream.clone(), state.connected)
            };
            if connected {
                log::warn!("worker {worker_id} connected again: closing its older stream");
            }
            old.disconnect();
            let mut repairs = std::mem::take(&mut old.lock().repairs);
            // A descent belongs to its stream: the new one starts without.
            repairs.finish("abandoned (reconnected)", self.now(), None);
            let mut state = record.lock();
            state.stream.inherit_counters(&previous);
            state.repairs = repairs;
        }
        {
            let state = record.lock();
            let namespaces: Vec<&str> = state.stream.namespaces().iter().map(String::as_str).collect();
            log::info!(
                "worker {worker_id} connected from {}: namespaces {}, from revision {}",
                record.peer,
                namespaces.join(","),
                state.stream.acked_rev()
            );
        }
        workers.insert(worker_id, record.clone());
    }

    /// Every worker's status, by worker id.
    pub fn worker_statuses(&self) -> Vec<WorkerStatus> {
        let records: Vec<Arc<WorkerRecord>> = self.workers().values().cloned().collect();
        records.iter().map(|record| self.status_of(record)).collect()
    }

    fn status_of(&self, record: &WorkerRecord) -> WorkerStatus {
        let now = self.now();
        let unix = unix_now();
        let head = self.store.head_rev();
        let state = record.lock();
        let stream = &state.stream;
        let lag = (head - stream.acked_rev()).max(0);
        let lag_seconds = if lag == 0 {
            0.0
        } else {
            self.feed
                .commit_time_ms(stream.acked_rev())
                .map_or(-1.0, |ms| (unix - ms as f64 / 1000.0).max(0.0))
        };
        let shown = if !state.connected {
            "DISCONNECTED"
        } else if stream.nacked() {
            "NACKED"
        } else {
            match stream.state() {
                StreamState::Tailing
                | StreamState::Localizing
                | StreamState::AwaitingAnswer
                | StreamState::Verifying => "TAILING",
                StreamState::ResyncDue | StreamState::Snapshotting => "SNAPSHOTTING",
                StreamState::AwaitingHello => "AWAITING_HELLO",
                StreamState::Closed => "DISCONNECTED",
            }
        };
        WorkerStatus {
            worker_id: stream.worker_id().to_owned(),
            connected: state.connected,
            namespaces: stream.namespaces().iter().cloned().collect(),
            applied_rev: stream.acked_rev(),
            lag_revisions: lag,
            lag_seconds,
            last_ack_unix: unix - now.saturating_sub(stream.acked_at()).as_secs_f64(),
            digest: state.digest.as_str().to_owned(),
            nacks: stream.nacks() as i64,
            resyncs: stream.resyncs() as i64,
            state: shown.to_owned(),
            held: stream
                .held()
                .values()
                .map(|h| proto::HeldKey {
                    ns: h.namespace.clone(),
                    key: h.key.clone(),
                    rev: h.rev,
                    reason: h.reason.clone(),
                    held_hash: h.held_hash.clone(),
                })
                .chain(omitted_marker(stream.held_omitted()))
                .collect(),
            peer: record.peer.clone(),
            buffered: stream.buffered() as i64,
            divergences: state.repairs.divergences as i64,
            keys_repaired: state.repairs.keys_repaired as i64,
            repairs: state.repairs.history().cloned().collect(),
            served: state
                .declared
                .keys()
                .map(|ns| proto::SchemaVersions {
                    ns: ns.clone(),
                    versions: vec![state.targets.get(ns).copied().unwrap_or(0)],
                    ..proto::SchemaVersions::default()
                })
                .collect(),
        }
    }

    /// `statesync reconcile`: a full check now (after any under way) of each
    /// namespace of the wanted workers (every connected one when none is
    /// named): descend, repair, verify; one result per worker and namespace.
    pub async fn reconcile(self: &Arc<Self>, request: ReconcileRequest) -> ReconcileReply {
        let deadline = deadline_of(request.timeout_s);
        let wanted: BTreeSet<String> = request.workers.into_iter().collect();
        let only: BTreeSet<String> = request.namespaces.into_iter().collect();
        let records: Vec<(String, Arc<WorkerRecord>)> = self
            .workers()
            .iter()
            .map(|(id, r)| (id.clone(), r.clone()))
            .collect();
        let mut results: Vec<ReconcileResult> = wanted
            .iter()
            .filter(|id| !records.iter().any(|(known, _)| known == *id))
            .map(|id| settled_as(id, "", "unknown worker"))
            .collect();
        let mut checks = tokio::task::JoinSet::new();
        for (worker_id, record) in records {
            if !wanted.is_empty() && !wanted.contains(&worker_id) {
                continue;
            }
            let namespaces: Vec<String> = {
                let state = record.lock();
                if !state.connected {
                    results.push(settled_as(&worker_id, "", "not connected"));
                    continue;
                }
                let subscribed = state.stream.namespaces().iter();
                subscribed
                    .filter(|ns| only.is_empty() || only.contains(*ns))
                    .cloned()
                    .collect()
            };
            let hub = self.clone();
            checks.spawn(async move {
                let mut checked = Vec::new();
                for ns in namespaces {
                    checked.push(hub.check(&record, &ns, deadline).await);
                }
                (worker_id, checked)
            });
        }
        let mut checked = checks.join_all().await;
        checked.sort_by(|a, b| a.0.cmp(&b.0));
        for (worker_id, records) in checked {
            results.extend(records.into_iter().map(|record| ReconcileResult {
                worker_id: worker_id.clone(),
                record: Some(record),
            }));
        }
        ReconcileReply { results }
    }

    /// One check of `ns` on a worker: started once no other is under way (and
    /// its stream tails), then followed until it settles or `deadline` passes.
    async fn check(&self, record: &WorkerRecord, ns: &str, deadline: tokio::time::Instant) -> RepairRecord {
        let reason = "requested by statesync reconcile";
        let timed_out = |mut record: RepairRecord| {
            record.outcome += " (timed out)";
            record
        };
        let mut acks = self.acks.subscribe();
        let (serial, mut settled) = loop {
            let (started, mut settled) = {
                let mut guard = record.lock();
                let state = &mut *guard;
                if !state.connected {
                    return settled_as("", ns, "not connected").record.unwrap_or_default();
                }
                let idle = state.stream.state() == StreamState::Tailing && state.repairs.active.is_none();
                let started = (idle && state.stream.drift_found(ns).is_ok()).then(|| {
                    state
                        .repairs
                        .start(ns, reason.to_owned(), false, self.now(), unix_now())
                });
                (started, state.repairs.subscribe())
            };
            if let Some(serial) = started {
                record.wake.notify_one();
                break (serial, settled);
            }
            // Another check, a repair or a resync is under way: look again when it settles.
            let waited = tokio::time::timeout_at(deadline, async {
                tokio::select! {
                    _ = settled.changed() => {}
                    _ = acks.changed() => {}
                }
            });
            if waited.await.is_err() {
                let mut record = settled_as("", ns, "localizing").record.unwrap_or_default();
                record.reason = reason.to_owned();
                return timed_out(record);
            }
        };
        loop {
            {
                let state = record.lock();
                if let Some(done) = state.repairs.settled(serial) {
                    return done.clone();
                }
            }
            let changed = tokio::time::timeout_at(deadline, settled.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let state = record.lock();
                let shown = state.repairs.record_of(serial).cloned().unwrap_or_default();
                return timed_out(shown);
            }
        }
    }

    /// Waits until every wanted worker ACKed `request.rev`: the named
    /// workers, or else every connected worker subscribed to one of the
    /// namespaces. Answers with who applied it and who is still pending.
    pub async fn wait_applied(&self, request: WaitAppliedRequest) -> WaitAppliedReply {
        let deadline = deadline_of(request.timeout_s);
        let named: BTreeSet<String> = request.workers.into_iter().collect();
        let namespaces: BTreeSet<String> = request.namespaces.into_iter().collect();
        let mut acks = self.acks.subscribe();
        loop {
            acks.borrow_and_update();
            let records: Vec<(String, Arc<WorkerRecord>)> = self
                .workers()
                .iter()
                .map(|(id, r)| (id.clone(), r.clone()))
                .collect();
            let mut applied = Vec::new();
            let mut pending: Vec<(String, Option<Arc<WorkerRecord>>)> = named
                .iter()
                .filter(|id| !records.iter().any(|(known, _)| known == *id))
                .map(|id| (id.clone(), None))
                .collect();
            for (worker_id, record) in records {
                let (wanted, done) = {
                    let state = record.lock();
                    let wanted = if named.is_empty() {
                        state.connected && !state.stream.namespaces().is_disjoint(&namespaces)
                    } else {
                        named.contains(&worker_id)
                    };
                    (wanted, state.connected && state.stream.acked_rev() >= request.rev)
                };
                if !wanted {
                    continue;
                }
                if done {
                    applied.push(worker_id);
                } else {
                    pending.push((worker_id, Some(record)));
                }
            }
            let expired = tokio::time::Instant::now() >= deadline;
            if pending.is_empty() || expired {
                applied.sort();
                pending.sort_by(|a, b| a.0.cmp(&b.0));
                return WaitAppliedReply {
                    applied,
                    complete: pending.is_empty(),
                    pending: pending
                        .into_iter()
                        .map(|(worker_id, record)| match record {
                            Some(record) => self.status_of(&record),
                            None => WorkerStatus {
                                worker_id,
                                state: "UNKNOWN".to_owned(),
                                ..WorkerStatus::default()
                            },
                        })
                        .collect(),
                };
            }
            let _ = tokio::time::timeout_at(deadline, acks.changed()).await;
        }
    }
}

/// The deadline of a request's `timeout_s` (0: 30 seconds).
fn deadline_of(timeout_s: f64) -> tokio::time::Instant {
    let timeout = if timeout_s > 0.0 { timeout_s } else { 30.0 };
    tokio::time::Instant::now() + Duration::from_secs_f64(timeout.min(1e9))
}

/// A result that needed no check.
fn settled_as(worker_id: &str, ns: &str, outcome: &str) -> ReconcileResult {
    ReconcileResult {
        worker_id: worker_id.to_owned(),
        record: Some(RepairRecord {
            ns: ns.to_owned(),
            outcome: outcome.to_owned(),
            ..RepairRecord::default()
        }),
    }
}

/// The marker that ends a worker's held keys in its status when it holds more
/// than the controller keeps: no namespace, no key, and how many are not shown.
fn omitted_marker(omitted: u64) -> Option<proto::HeldKey> {
    (omitted > 0).then(|| proto::HeldKey {
        reason: format!(
            "… {omitted} more held key(s) not shown: the controller keeps the first {MAX_HELD_KEYS} per worker"
        ),
        ..proto::HeldKey::default()
    })
}
