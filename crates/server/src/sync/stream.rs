//! One worker's stream: a receiver task feeding the worker's messages to its
//! table, and a sender loop asking the table what to send next.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use statesync_core::sync::controller::{
    ControllerStream, HeldKey, Hello, LogBounds, ProtocolError, ReportedDigest, ResyncKind, StreamState,
};
use statesync_store::StoreError;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tonic::{Status, Streaming};

use super::repair;
use super::versions::{Declared, Targets};
use super::{Agreement, RecordState, SyncHub, WorkerRecord, unix_now};
use crate::error::NativeError;
use crate::feed::{Read, Slice, catch_up};
use crate::proto::{
    self, ChangeBatch, DigestQuery, NameQuery, NamespaceDigest, Progress, Resync, SnapshotChunk, SyncReply,
    SyncRequest, sync_reply, sync_request,
};
use crate::service::entry;

/// Replies queued ahead of a slow worker before the sender waits for it:
/// few, so a snapshot holds its slot until the transport took its chunks,
/// and a stream's memory stays about two messages.
const REPLY_DEPTH: usize = 2;

/// Why a sender loop stopped early.
enum Stop {
    /// The worker went away: nothing more to say.
    Gone,
    /// The stream ends with this error.
    Failed(NativeError),
}

impl From<ProtocolError> for Stop {
    fn from(error: ProtocolError) -> Self {
        Stop::Failed(NativeError::Protocol(error))
    }
}

impl From<NativeError> for Stop {
    fn from(error: NativeError) -> Self {
        Stop::Failed(error)
    }
}

type Replies = mpsc::Sender<Result<SyncReply, Status>>;

async fn send(out: &Replies, msg: sync_reply::Msg) -> Result<(), Stop> {
    out.send(Ok(SyncReply { msg: Some(msg) }))
        .await
        .map_err(|_| Stop::Gone)
}

/// Serves one Sync call: the replies stream back through the returned receiver.
pub(crate) fn serve(
    hub: Arc<SyncHub>,
    peer: String,
    inbound: Streaming<SyncRequest>,
) -> mpsc::Receiver<Result<SyncReply, Status>> {
    let (out, replies) = mpsc::channel(REPLY_DEPTH);
    tokio::spawn(async move {
        if let Err(Stop::Failed(error)) = run(&hub, peer, inbound, &out).await {
            let status = hub.report(error).await;
            let _ = out.send(Err(status)).await;
        }
    });
    replies
}

fn request_kind(request: &SyncRequest) -> &'static str {
    match &request.msg {
        Some(sync_request::Msg::Hello(_)) => "hello",
        Some(sync_request::Msg::Ack(_)) => "ack",
        Some(sync_request::Msg::Nack(_)) => "nack",
        Some(sync_request::Msg::Heartbeat(_)) => "heartbeat",
        Some(sync_request::Msg::Answer(_)) => "answer",
        None => "an unknown message",
    }
}

async fn run(
    hub: &Arc<SyncHub>,
    peer: String,
    mut inbound: Streaming<SyncRequest>,
    out: &Replies,
) -> Result<(), Stop> {
    let first = tokio::select! {
        () = hub.closing.cancelled() => return Ok(()),
        first = tokio::time::timeout(hub.settings.sync.silence, inbound.message()) => first,
    };
    let hello = match first {
        Ok(Ok(Some(SyncRequest {
            msg: Some(sync_request::Msg::Hello(hello)),
        }))) => hello,
        Ok(Ok(Some(other))) => {
            return Err(ProtocolError::new(format!(
                "the first message must be a hello, got {}",
                request_kind(&other)
            ))
            .into());
        }
        _ => return Ok(()),
    };
    let (record, generation) = open(hub, peer, hello).await?;
    let receiver = tokio::spawn(receive(hub.clone(), record.clone(), inbound));
    let result = Sender::new(hub, &record, receiver, out, generation).run().await;
    let (worker, rev) = {
        let mut state = record.lock();
        state.connected = false;
        state.stream.close();
        state.repairs.finish("abandoned (disconnected)", hub.now(), None);
        (shown_id(&state.stream).to_owned(), state.stream.acked_rev())
    };
    match &result {
        Err(Stop::Failed(error)) => log::warn!("sync stream of worker {worker} ended: {error}"),
        _ => log::info!("worker {worker} disconnected at revision {rev}"),
    }
    result
}

/// The worker's hello: its record, registered unless it is a watcher, and
/// the contracts' generation its targets were computed at.
async fn open(
    hub: &Arc<SyncHub>,
    peer: String,
    hello: proto::Hello,
) -> Result<(Arc<WorkerRecord>, u64), Stop> {
    let declared: Declared = hello
        .versions
        .iter()
        .map(|v| (v.ns.clone(), v.versions.clone()))
        .collect();
    let generation = hub.versions.generation();
    let targets = hub.targets(&declared).await?;
    // A replica in another version than the one it is now served in is re-sent.
    let stale_versions = hello
        .versions
        .iter()
        .filter_map(|v| {
            let target = *targets.get(&v.ns)?;
            let stale = v.replica_version != -1 && v.replica_version != target;
            stale.then(|| {
                format!(
                    "{} (replica in v{}, now served in v{target})",
                    v.ns, v.replica_version
                )
            })
        })
        .collect();
    let mut stream = ControllerStream::new(hub.settings.sync, hub.now());
    let bounds = LogBounds {
        head_rev: hub.feed.head_rev(),
        compacted_rev: hub.store.compacted_rev(),
    };
    let held = hello.held.iter().map(held_from_peer).collect();
    let greeting = Hello {
        worker_id: hello.worker_id,
        namespaces: hello.namespaces.into_iter().collect(),
        from_rev: hello.from_rev,
        observer: hello.observer,
        deltas: hello.deltas,
        held,
        stale_versions,
    };
    stream.hello(greeting, bounds, hub.now())?;
    if let Some(resync) = stream.resync() {
        log::info!("worker {}: {}", shown_id(&stream), resync.reason);
    }
    let observer = stream.observer();
    let record = Arc::new(WorkerRecord {
        peer,
        state: std::sync::Mutex::new(RecordState {
            stream,
            connected: true,
            digest: Agreement::Unknown,
            repairs: repair::Repairs::default(),
            declared,
            targets,
        }),
        wake: Notify::new(),
    });
    if !observer {
        hub.register(&record);
    }
    Ok((record, generation))
}

/// A worker's id as logs show it (a watcher has none).
fn shown_id(stream: &ControllerStream) -> &str {
    if stream.worker_id().is_empty() {
        "(watch)"
    } else {
        stream.worker_id()
    }
}

fn held_from_peer(held: &proto::HeldKey) -> HeldKey {
    HeldKey::from_peer(&held.ns, &held.key, held.rev, &held.reason, &held.held_hash)
}

/// Feeds the worker's messages to its table until the worker half-closes.
async fn receive(
    hub: Arc<SyncHub>,
    record: Arc<WorkerRecord>,
    mut inbound: Streaming<SyncRequest>,
) -> Result<(), Stop> {
    loop {
        let request = match inbound.message().await {
            Ok(Some(request)) => request,
            Ok(None) | Err(_) => break,
        };
        let now = hub.now();
        match request.msg {
            Some(sync_request::Msg::Ack(ack)) => {
                let digests: BTreeMap<String, ReportedDigest> = ack
                    .digests
                    .into_iter()
                    .map(|d| {
                        let count = u64::try_from(d.count).unwrap_or(0);
                        (d.ns, ReportedDigest { root: d.root, count })
                    })
                    .collect();
                let held = ack.held.iter().map(held_from_peer).collect();
                let acked = {
                    let mut state = record.lock();
                    state.stream.ack(ack.rev, digests, held, now)?;
                    (state.stream.acked_rev(), state.stream.acked_digests().clone())
                };
                let (digest, differing) = agreement(&hub, acked.0, &acked.1).await;
                {
                    let mut state = record.lock();
                    if state.stream.acked_rev() == acked.0 {
                        state.digest = digest;
                    }
                    repair::on_ack(&hub, &mut state, &differing, ack.repaired)?;
                }
                record.wake.notify_one();
                hub.acks.send_modify(|count| *count += 1);
            }
            Some(sync_request::Msg::Nack(nack)) => {
                let held = HeldKey::from_peer(&nack.ns, &nack.key, nack.rev, &nack.reason, b"");
                let mut state = record.lock();
                log::warn!(
                    "worker {} NACKed revision {} ({}/{}): {}",
                    state.stream.worker_id(),
                    held.rev,
                    held.namespace,
                    held.key,
                    held.reason
                );
                state.stream.nack(held, now)?;
            }
            Some(sync_request::Msg::Hello(_)) => {
                let worker_id = record.lock().stream.worker_id().to_owned();
                return Err(ProtocolError::new(format!("a second hello from worker {worker_id}")).into());
            }
            Some(sync_request::Msg::Answer(answer)) => repair::on_answer(&hub, &record, answer).await?,
            // A heartbeat, or a kind from a newer worker: it is alive.
            _ => record.lock().stream.heard(now)?,
        }
    }
    let observer = record.lock().stream.observer();
    if !observer {
        // A watcher half-closes after its hello and keeps reading.
        record.disconnect();
    }
    Ok(())
}

/// Compares the worker's digests with ours at the revision it ACKed; the
/// namespaces that differ.
async fn agreement(
    hub: &Arc<SyncHub>,
    rev: i64,
    digests: &BTreeMap<String, ReportedDigest>,
) -> (Agreement, Vec<String>) {
    if digests.is_empty() {
        return (Agreement::Unknown, Vec::new());
    }
    let mut differing = Vec::new();
    for (ns, reported) in digests {
        let ours = match hub.feed.root_at(ns, rev) {
            Some(root) => root,
            None => {
                let store = hub.store.clone();
                let ns = ns.clone();
                match tokio::task::spawn_blocking(move || store.digest(&ns, Some(rev))).await {
                    Ok(Ok(root)) => root,
                    _ => return (Agreement::Unknown, Vec::new()),
                }
            }
        };
        if ours[..] != reported.root[..] {
            differing.push(ns.clone());
        }
    }
    if differing.is_empty() {
        (Agreement::Agree, differing)
    } else {
        (Agreement::Differ, differing)
    }
}

/// What the sender knows of its stream for its whole life.
struct Sender<'a> {
    hub: &'a Arc<SyncHub>,
    record: &'a Arc<WorkerRecord>,
    receiver: Option<JoinHandle<Result<(), Stop>>>,
    out: &'a Replies,
    namespaces: BTreeSet<String>,
    observer: bool,
    deltas: bool,
    /// The schema versions the worker declared, per namespace.
    declared: Declared,
    /// The version each declared namespace is served in.
    targets: Targets,
    /// The contracts' generation `targets` were computed at.
    contracts_seen: u64,
    /// Served from the feed at least once since the last resync: falling out
    /// of it now means falling behind, not reconnecting late.
    fed: bool,
}

impl<'a> Sender<'a> {
    fn new(
        hub: &'a Arc<SyncHub>,
        record: &'a Arc<WorkerRecord>,
        receiver: JoinHandle<Result<(), Stop>>,
        out: &'a Replies,
        contracts_seen: u64,
    ) -> Self {
        let state = record.lock();
        Self {
            hub,
            record,
            receiver: Some(receiver),
            out,
            namespaces: state.stream.namespaces().clone(),
            observer: state.stream.observer(),
            deltas: state.stream.deltas(),
            declared: state.declared.clone(),
            targets: state.targets.clone(),
            contracts_seen,
            fed: false,
        }
    }

    async fn run(mut self) -> Result<(), Stop> {
        let result = self.serve().await;
        if let Some(receiver) = self.receiver.take() {
            receiver.abort();
        }
        result
    }

    async fn serve(&mut self) -> Result<(), Stop> {
        let mut heads = self.hub.feed.subscribe();
        loop {
            if self.hub.closing.is_cancelled() || !self.record.lock().connected {
                return Ok(());
            }
            if !self.declared.is_empty()
                && self.hub.versions.generation() != self.contracts_seen
                && !self.retarget().await?
            {
                return Ok(());
            }
            if self.receiver.as_ref().is_some_and(JoinHandle::is_finished) {
                if let Some(receiver) = self.receiver.take()
                    && let Ok(Err(stop)) = receiver.await
                {
                    return Err(stop);
                }
                if !self.observer {
                    return Ok(());
                }
            }
            let now = self.hub.now();
            let head = *heads.borrow_and_update();
            let (state, resync) = {
                let state = self.record.lock();
                if state.stream.silent(now) {
                    log::warn!(
                        "worker {}: nothing heard for {:.1} s: marking it disconnected",
                        state.stream.worker_id(),
                        now.saturating_sub(state.stream.last_heard()).as_secs_f64()
                    );
                    return Ok(());
                }
                (state.stream.state(), state.stream.resync().cloned())
            };
            if state == StreamState::ResyncDue {
                self.record.lock().repairs.finish("abandoned (resync)", now, None);
            }
            match (state, resync) {
                (StreamState::ResyncDue, Some(resync)) if resync.kind == ResyncKind::Snapshot => {
                    self.snapshot().await?;
                }
                (StreamState::ResyncDue, Some(resync)) => {
                    let head = self.hub.feed.head_rev();
                    self.record.lock().stream.reconcile_sent(head, now)?;
                    self.fed = false;
                    let reason = format!("{}; reconciling instead of a snapshot", resync.reason);
                    let worker = self.record.lock().stream.worker_id().to_owned();
                    log::info!("worker {worker}: {reason} (moving it to revision {head})");
                    send(
                        self.out,
                        sync_reply::Msg::Resync(Resync {
                            reason,
                            rev: head,
                            reconcile: true,
                            ..Resync::default()
                        }),
                    )
                    .await?;
                }
                (StreamState::Localizing, _) if self.reconcile().await? => {}
                (
                    StreamState::Tailing
                    | StreamState::Localizing
                    | StreamState::AwaitingAnswer
                    | StreamState::Verifying,
                    _,
                ) => {
                    if self.tail(head).await? {
                        self.idle(&mut heads).await;
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// A contract changed: the targets again, and when they moved, the state
    /// re-sent in them. False when none of the versions the worker declared
    /// for a namespace is registered any more: its stream ends.
    async fn retarget(&mut self) -> Result<bool, Stop> {
        let generation = self.hub.versions.generation();
        let worker = shown_id(&self.record.lock().stream).to_owned();
        let targets = match self.hub.targets(&self.declared).await {
            Ok(targets) => targets,
            Err(NativeError::NoTranslationPath(refusal)) => {
                log::error!("worker {worker}: {refusal}; closing its stream");
                return Ok(false);
            }
            Err(error) => return Err(error.into()),
        };
        self.contracts_seen = generation;
        if targets == self.targets {
            return Ok(true);
        }
        let changed: Vec<String> = targets.iter().map(|(ns, v)| format!("{ns} v{v}")).collect();
        let reason = format!("now served in {}: re-sending the state", changed.join(", "));
        {
            let mut state = self.record.lock();
            state.targets = targets.clone();
            state.stream.contract_changed(&reason)?;
        }
        log::info!("worker {worker} {reason}");
        self.targets = targets;
        Ok(true)
    }

    /// The descent's next step: its next query, or once it is done, the repair
    /// of what it found (or its end). True when a message went out.
    async fn reconcile(&mut self) -> Result<bool, Stop> {
        let now = self.hub.now();
        let (ns, next) = {
            let mut guard = self.record.lock();
            let state = &mut *guard;
            let ns = state
                .stream
                .descent()
                .map(|d| d.namespace.clone())
                .unwrap_or_default();
            let Some(active) = &mut state.repairs.active else {
                state.stream.descent_ended()?;
                return Ok(false);
            };
            if active.descent.is_done() {
                (ns, Err((active.descent.differing().clone(), active.from_rev)))
            } else {
                let query = active
                    .descent
                    .query()
                    .map_err(|e| ProtocolError::new(e.to_string()))?;
                let id = self.hub.next_query_id();
                state.stream.query_sent(id, now)?;
                state.repairs.account();
                (ns, Ok((id, query)))
            }
        };
        match next {
            Ok((id, query)) => {
                let query = DigestQuery {
                    id,
                    ns,
                    prefixes: query.prefixes,
                    names: query
                        .names
                        .into_iter()
                        .map(|n| NameQuery {
                            prefix: n.prefix,
                            leaves: n.leaves,
                        })
                        .collect(),
                };
                send(self.out, sync_reply::Msg::Query(query)).await?;
                Ok(true)
            }
            Err((differing, from_rev)) => self.localized(ns, differing, from_rev).await,
        }
    }

    /// The descent found `differing`: repair what is not in flight.
    async fn localized(
        &mut self,
        ns: String,
        differing: BTreeSet<String>,
        from_rev: Option<i64>,
    ) -> Result<bool, Stop> {
        let worker = self.record.lock().stream.worker_id().to_owned();
        let end = |this: &Self, outcome: &str, quiet: Option<std::time::Duration>| -> Result<bool, Stop> {
            let mut state = this.record.lock();
            state.repairs.finish(outcome, this.hub.now(), quiet);
            state.stream.descent_ended()?;
            Ok(false)
        };
        if differing.is_empty() {
            return end(self, "no drift", None);
        }
        let store = self.hub.store.clone();
        let from_rev = from_rev.unwrap_or_else(|| self.record.lock().stream.acked_rev());
        let namespace = ns.clone();
        let in_flight =
            tokio::task::spawn_blocking(move || repair::changed_since(&store, &namespace, from_rev))
                .await
                .unwrap_or(Err(StoreError::Closed))
                .unwrap_or_else(|error| {
                    log::warn!("worker {worker}: {error}");
                    None
                });
        let keys: Vec<String> = match &in_flight {
            Some(in_flight) => differing.difference(in_flight).cloned().collect(),
            None => Vec::new(),
        };
        if keys.is_empty() {
            // Nothing to repair outside what the stream is delivering: look again later.
            let quiet = 2 * self.hub.settings.sync.heartbeat;
            return end(self, "nothing to repair", Some(quiet));
        }
        let (id, rev, reason) = {
            let state = self.record.lock();
            let id = state.stream.descent().map_or(0, |d| d.query_id);
            let reason = state
                .repairs
                .current()
                .map(|r| r.reason.clone())
                .unwrap_or_default();
            (id, state.stream.sent_rev(), reason)
        };
        let (store, versions, load) = (
            self.hub.store.clone(),
            self.hub.versions.clone(),
            self.hub.contract_reader(),
        );
        let (namespace, repair_keys, targets) = (ns.clone(), keys.clone(), self.targets.clone());
        let message = tokio::task::spawn_blocking(move || {
            let mut message = repair::repair_message(&store, id, &namespace, &repair_keys, rev, &reason)?;
            message.entries = std::mem::take(&mut message.entries)
                .into_iter()
                .map(|entry| versions.entry(entry, &targets, &load))
                .collect::<Result<_, _>>()?;
            Ok(message)
        })
        .await
        .unwrap_or(Err(StoreError::Closed))
        .map_err(NativeError::Store)?;
        let bytes = prost::Message::encoded_len(&message);
        let (round_trips, descent_bytes) = {
            let mut state = self.record.lock();
            if state.stream.repair_sent(self.hub.now())? != id {
                return Err(ProtocolError::new("a repair does not carry the id of its descent").into());
            }
            state.repairs.repairing(&keys, bytes);
            // This attempt's descent (the record adds earlier attempts and the repairs).
            let descent = state.repairs.active.as_ref().map(|a| &a.descent);
            (
                descent.map_or(0, |d| d.round_trips()),
                descent.map_or(0, |d| d.bytes_exchanged()),
            )
        };
        let shown: Vec<&str> = keys.iter().take(5).map(String::as_str).collect();
        log::warn!(
            "worker {worker}: repairing {} key(s) of {ns:?} at revision {rev} ({round_trips} round trips, {descent_bytes} bytes): {}{}",
            keys.len(),
            shown.join(", "),
            if keys.len() > 5 { ", ..." } else { "" }
        );
        send(self.out, sync_reply::Msg::Repair(message)).await?;
        Ok(true)
    }

    /// One step of tailing; true when there is nothing to send until woken.
    async fn tail(&mut self, head: i64) -> Result<bool, Stop> {
        let now = self.hub.now();
        let (room, cursor, sent_rev) = {
            let state = self.record.lock();
            (
                state.stream.room(),
                state.stream.cursor(),
                state.stream.sent_rev(),
            )
        };
        let mut slice = None;
        if room > 0 && cursor < head {
            match self.hub.feed.read(cursor, &self.namespaces, room) {
                Read::Slice(read) => {
                    self.fed = true;
                    slice = Some(read);
                }
                Read::Behind if self.fed => {
                    let reason = format!(
                        "fell behind the sync buffer ({} revisions): at revision {cursor}, head {head}",
                        self.hub.feed.size_revisions()
                    );
                    let mut state = self.record.lock();
                    log::warn!("worker {} {reason}", state.stream.worker_id());
                    state.stream.fell_behind(&reason)?;
                    return Ok(false);
                }
                read @ (Read::Log | Read::Behind) => {
                    // Older than the messages in memory: from the log. A cursor
                    // in the buffer is served from it all the same (falling out
                    // later is falling behind); one before it is a late reconnect.
                    self.fed |= read == Read::Log;
                    match self.catch_up(cursor, room).await {
                        Ok(read) => slice = Some(read),
                        Err(error @ StoreError::Compacted { .. }) => {
                            self.record.lock().stream.fell_behind(&error.to_string())?;
                            return Ok(false);
                        }
                        Err(error) => return Err(NativeError::Store(error).into()),
                    }
                }
            }
        }
        if let Some(slice) = slice {
            if !slice.revisions.is_empty() {
                let revisions = self.served(slice.revisions).await?;
                self.record
                    .lock()
                    .stream
                    .batch_sent(sent_rev, slice.rev, slice.changes, now)?;
                let batch = ChangeBatch {
                    prev_rev: sent_rev,
                    rev: slice.rev,
                    revisions: revisions.iter().map(|r| (**r).clone()).collect(),
                };
                send(self.out, sync_reply::Msg::Batch(batch)).await?;
                return Ok(false);
            }
            self.record.lock().stream.skipped(slice.rev)?;
        }
        let progress = {
            let mut state = self.record.lock();
            if state.stream.progress_due(now) {
                Some(state.stream.progress_sent(now)?)
            } else {
                None
            }
        };
        if let Some(rev) = progress {
            let head_rev = self.hub.feed.head_rev();
            send(self.out, sync_reply::Msg::Progress(Progress { rev, head_rev })).await?;
        }
        let state = self.record.lock();
        Ok(state.stream.cursor() >= self.hub.feed.head_rev() || state.stream.room() == 0)
    }

    /// Waits for a new head, an ACK, the worker leaving, or the next heartbeat.
    async fn idle(&self, heads: &mut tokio::sync::watch::Receiver<i64>) {
        tokio::select! {
            _ = heads.changed() => {}
            () = self.record.wake.notified() => {}
            () = tokio::time::sleep(self.hub.settings.sync.heartbeat) => {}
            () = self.hub.closing.cancelled() => {}
        }
    }

    async fn catch_up(&self, cursor: i64, room: u64) -> Result<Slice, StoreError> {
        let Ok(_permit) = self.hub.catch_up_slots.clone().acquire_owned().await else {
            return Err(StoreError::Closed);
        };
        let store = self.hub.store.clone();
        let namespaces = self.namespaces.clone();
        tokio::task::spawn_blocking(move || catch_up(&store, cursor, room, &namespaces))
            .await
            .unwrap_or(Err(StoreError::Closed))
    }

    /// The revisions as this worker is served them: in its schema versions,
    /// as deltas where it asked for them.
    async fn served(&self, revisions: Vec<Arc<proto::Revision>>) -> Result<Vec<Arc<proto::Revision>>, Stop> {
        if !self.deltas && self.targets.is_empty() {
            return Ok(revisions);
        }
        // Never a delta for a held key or a translated namespace: the
        // worker's base is not the stored value.
        let held: BTreeSet<(String, String)> = if self.deltas {
            self.record.lock().stream.held().keys().cloned().collect()
        } else {
            BTreeSet::new()
        };
        let (store, deltas, versions, load) = (
            self.hub.store.clone(),
            self.hub.deltas.clone(),
            self.hub.versions.clone(),
            self.hub.contract_reader(),
        );
        let (targets, with_deltas) = (self.targets.clone(), self.deltas);
        let served = tokio::task::spawn_blocking(move || {
            revisions
                .iter()
                .map(|r| {
                    let r = versions.revision(r, &targets, &load)?;
                    if !with_deltas {
                        return Ok(r);
                    }
                    Ok(deltas.apply(&store, &r, |ns, key| {
                        targets.contains_key(ns) || held.contains(&(ns.to_owned(), key.to_owned()))
                    }))
                })
                .collect::<Result<Vec<_>, StoreError>>()
        });
        let served = served.await.unwrap_or(Err(StoreError::Closed));
        Ok(served.map_err(NativeError::Store)?)
    }

    /// Waits for a snapshot slot (telling the worker it is queued every
    /// heartbeat interval), then streams the snapshot: Resync, chunks, last chunk.
    async fn snapshot(&mut self) -> Result<(), Stop> {
        let acquire = self.hub.snapshot_slots.clone().acquire_owned();
        tokio::pin!(acquire);
        let _permit = loop {
            let now = self.hub.now();
            let notice = {
                let mut state = self.record.lock();
                if !state.connected || state.stream.silent(now) {
                    return Ok(());
                }
                if state.stream.queue_notice_due(now) {
                    state.stream.queue_notice_sent(now)?;
                    true
                } else {
                    false
                }
            };
            if notice {
                let beat = proto::Heartbeat {
                    sent_unix: unix_now(),
                    snapshot_queued: true,
                };
                send(self.out, sync_reply::Msg::Heartbeat(beat)).await?;
            }
            tokio::select! {
                permit = &mut acquire => match permit {
                    Ok(permit) => break permit,
                    Err(_) => return Ok(()),
                },
                () = tokio::time::sleep(self.hub.settings.sync.heartbeat) => {}
                () = self.record.wake.notified() => {}
                () = self.hub.closing.cancelled() => return Ok(()),
            }
        };
        let reason = {
            let mut state = self.record.lock();
            state.stream.slot_granted()?;
            state
                .stream
                .resync()
                .map(|r| r.reason.clone())
                .unwrap_or_default()
        };
        let store = self.hub.store.clone();
        let namespaces: Vec<String> = self.namespaces.iter().cloned().collect();
        let chunk_size = self.hub.settings.chunk_size;
        let opened = tokio::task::spawn_blocking(move || store.snapshot(Some(namespaces), None, chunk_size))
            .await
            .unwrap_or(Err(StoreError::Closed));
        let mut snapshot = opened.map_err(NativeError::Store)?;
        let rev = snapshot.rev;
        let digests: Vec<NamespaceDigest> = snapshot
            .digests
            .iter()
            .map(|(ns, root, count)| NamespaceDigest {
                ns: ns.clone(),
                root: root.to_vec(),
                count: *count as i64,
            })
            .collect();
        let resync = Resync {
            reason,
            rev,
            digests: digests.clone(),
            ..Resync::default()
        };
        send(self.out, sync_reply::Msg::Resync(resync)).await?;
        loop {
            let (versions, load, targets) = (
                self.hub.versions.clone(),
                self.hub.contract_reader(),
                self.targets.clone(),
            );
            let read = tokio::task::spawn_blocking(move || {
                let entries = snapshot.next_chunk().and_then(|chunk| {
                    chunk
                        .into_iter()
                        .map(|record| versions.entry(entry(record), &targets, &load))
                        .collect::<Result<Vec<_>, _>>()
                });
                (snapshot, entries)
            });
            let (back, entries) = read.await.map_err(|_| NativeError::Store(StoreError::Closed))?;
            snapshot = back;
            let entries = entries.map_err(NativeError::Store)?;
            if entries.is_empty() {
                break;
            }
            send(
                self.out,
                sync_reply::Msg::Chunk(SnapshotChunk {
                    rev,
                    entries,
                    ..SnapshotChunk::default()
                }),
            )
            .await?;
        }
        // Before the last chunk goes out: the worker may ACK it at once.
        self.record.lock().stream.snapshot_sent(rev, self.hub.now())?;
        self.fed = false;
        let summary: Vec<String> = digests
            .iter()
            .map(|d| format!("{}: {} keys", d.ns, d.count))
            .collect();
        let last = SnapshotChunk {
            rev,
            digests,
            last: true,
            ..SnapshotChunk::default()
        };
        send(self.out, sync_reply::Msg::Chunk(last)).await?;
        let worker = shown_id(&self.record.lock().stream).to_owned();
        let summary = if summary.is_empty() {
            "no keys".to_owned()
        } else {
            summary.join(", ")
        };
        log::info!("worker {worker}: snapshot at revision {rev} sent ({summary})");
        Ok(())
    }
}
