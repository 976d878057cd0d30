//! The worker's end of the Sync protocol, without I/O: controller messages in,
//! the worker's replies out, the replica changed on the way (docs/wire.md).
//!
//! A [`Session`] owns the replica and lives as long as the worker; each stream
//! starts with [`Session::hello`] and feeds every [`SyncReply`] to
//! [`Session::receive`], which answers with the messages to send and, when the
//! stream must end (a gap, drift, a protocol error), why. The stream's states
//! are the table in `statesync_core::sync::worker`; the user's [`Handler`] is
//! consulted for every change before it is applied.
//!
//! Every value a batch puts (a full value or a delta's result) and every
//! snapshot entry that changes the replica is validated before the handler
//! sees it, against two schemas when the namespace has them:
//!
//! - its local JSON Schema ([`Session::set_schema`]);
//! - the schema the controller registered for the version the value was
//!   served in ([`Session::set_registered_schemas`]; a value of a namespace
//!   served as stored, version 0, against the newest registered one held). The
//!   session does no I/O: its owner reads the contracts, at connect and
//!   whenever [`Session::stale_contracts`] names a namespace for a reply.
//!
//! A value that fails is refused like a handler's [`Reject`]:
//! a NACK naming namespace, key, the schema (and its version) and the first
//! violation, the last good value kept, the key held. A `Repair`'s entries are
//! applied as sent, unvalidated (docs/wire.md, "Held keys").

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, MutexGuard};

use statesync_core::NamespaceDigest;
use statesync_core::digest::{Hash, sha256};
use statesync_core::sync::worker::{BatchVerdict, Event, StreamState, WorkerStream, batch_verdict};
use statesync_core::validate::Schema;
use statesync_core::value::{Value, parse};
use statesync_proto::{
    Ack, ChangeBatch, DigestQuery, Hello, Nack, NamespaceDigest as PbDigest, Repair, Resync, SchemaVersions,
    SnapshotChunk, SyncReply, SyncRequest, change, sync_reply, sync_request,
};

use crate::ReplicaError;
use crate::answer::answer;
use crate::handler::{ChangeEvent, Handler, Interrupted, Op, Origin, Reject};
use crate::replica::{Changes, Entry, HeldKey, Replica, SharedReplica, Snapshot};

/// The reason a worker refuses a value whose SHA-256 is not its `value_hash`.
pub const HASH_MISMATCH: &str = "the value does not match its hash";

/// What a worker says in its hello, and how it asks to be served.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Options {
    /// The worker's stable id (the controller tracks it across reconnects).
    pub worker_id: String,
    /// The namespaces it follows, sorted, without duplicates.
    pub namespaces: Vec<String>,
    /// Ask for JSON Patch deltas where they are smaller than the value.
    pub deltas: bool,
    /// How often the worker sends a heartbeat, in seconds (told in the hello).
    pub heartbeat_s: f64,
    /// The schema versions the worker understands, per namespace (sorted,
    /// without duplicates): the controller serves each change in the newest
    /// of them, translated. A namespace not listed is served as stored.
    pub versions: BTreeMap<String, Vec<i32>>,
    /// Fault injection for tests of drift repair (default: none).
    pub chaos: Chaos,
}

/// Fault injection: a worker that loses or garbles some of what it applies,
/// as a buggy one would, so the controller's digest checks find drift. Drawn
/// for each change the worker accepts, after its handler: the handler sees
/// it, the replica does not get it (`drop`) or gets a wrong value, stored
/// with that value's hash so only the digest can tell (`corrupt`). Never in
/// production.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Chaos {
    /// The fraction of accepted changes not applied.
    pub drop: f64,
    /// The fraction of accepted puts stored with a wrong value.
    pub corrupt: f64,
    /// The seed of the draws (None: random).
    pub seed: Option<u64>,
}

/// What a session counts over its life (across streams).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Snapshots installed (the bootstrap included).
    pub resyncs: u64,
    /// Keys the controller repaired after a digest descent.
    pub keys_repaired: u64,
    /// Changes [`Chaos`] dropped.
    pub chaos_dropped: u64,
    /// Puts [`Chaos`] corrupted.
    pub chaos_corrupted: u64,
}

/// Why a stream ends, and so how the next one starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamEnd {
    /// What happened, for the log.
    pub reason: String,
    /// The replica may have drifted: the next hello asks for a snapshot
    /// (`from_rev = 0`); otherwise it resumes from the applied revision.
    pub resync: bool,
}

/// What the worker does after one controller message.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Step {
    /// The messages to send, in order (NACKs before the ACK that follows them).
    pub send: Vec<SyncRequest>,
    /// Set when the stream must end; nothing more is read from it.
    pub end: Option<StreamEnd>,
}

/// A snapshot being received: its `Resync` and the entries so far.
struct Pending {
    resync: Resync,
    /// Each namespace's (key, entry) pairs as the chunks brought them.
    entries: Keyed,
}

/// The worker side of the protocol around a [`Replica`].
pub struct Session {
    options: Options,
    replica: SharedReplica,
    stream: WorkerStream,
    snapshot: Option<Pending>,
    /// The last refused value of each held key: a delta sent before the
    /// controller heard the NACK is based on it.
    refused: HashMap<(String, String), Entry>,
    /// The id of the last Repair received (applied or skipped).
    repaired: u64,
    /// The local schema of each namespace that has one.
    schemas: HashMap<String, Schema>,
    /// The controller's registered schemas of each declared namespace, by
    /// version (an empty map: the namespace has no contract).
    registered: HashMap<String, BTreeMap<i32, Arc<Schema>>>,
    /// Schemas the worker brings for declared versions: they stand in for
    /// the registered ones of those versions.
    pinned: HashMap<String, BTreeMap<i32, Arc<Schema>>>,
    /// The replica drifted: the next hello asks for a snapshot.
    resync_requested: bool,
    counters: Counters,
    /// The chaos draws (None: no fault injection).
    chaos: Option<fastrand::Rng>,
}

/// Why a revision was not applied, and so how the stream ends.
enum Halt {
    /// The replica drifted: the next stream asks for a snapshot.
    Drift(String),
    /// The handler could not decide (the worker is stopping).
    Interrupted(String),
}

impl From<Interrupted> for Halt {
    fn from(interrupted: Interrupted) -> Halt {
        Halt::Interrupted(interrupted.reason)
    }
}

/// A fault [`Chaos`] drew for one accepted change.
enum Fault {
    Drop,
    Corrupt,
}

impl Session {
    /// A session on `replica`; `options.namespaces` is sorted and deduplicated.
    pub fn new(replica: Replica, options: Options) -> Session {
        Session::shared(SharedReplica::new(replica), options)
    }

    /// A session on a replica others read too (see [`SharedReplica`]).
    pub fn shared(replica: SharedReplica, mut options: Options) -> Session {
        options.namespaces.sort();
        options.namespaces.dedup();
        for versions in options.versions.values_mut() {
            versions.sort_unstable();
            versions.dedup();
        }
        Session {
            replica,
            stream: WorkerStream::new(),
            snapshot: None,
            refused: HashMap::new(),
            repaired: 0,
            schemas: HashMap::new(),
            registered: HashMap::new(),
            pinned: HashMap::new(),
            resync_requested: false,
            counters: Counters::default(),
            chaos: chaos_draws(&options.chaos),
            options,
        }
    }

    /// Validates every value applied to `ns` against `schema` from now on
    /// (replacing an earlier one). Values already in the replica stay.
    pub fn set_schema(&mut self, ns: impl Into<String>, schema: Schema) {
        self.schemas.insert(ns.into(), schema);
    }

    /// Validates every value applied to `ns` against the controller's
    /// registered schema of the version it is served in, from now on:
    /// `schemas` holds those of the declared versions the contract has
    /// (replacing what was set before; empty: `ns` has no contract).
    pub fn set_registered_schemas(&mut self, ns: impl Into<String>, schemas: BTreeMap<i32, Schema>) {
        let ns = ns.into();
        let mut schemas: BTreeMap<i32, Arc<Schema>> =
            schemas.into_iter().map(|(v, s)| (v, Arc::new(s))).collect();
        if let Some(pinned) = self.pinned.get(&ns) {
            schemas.extend(pinned.iter().map(|(v, s)| (*v, Arc::clone(s))));
        }
        self.registered.insert(ns, schemas);
    }

    /// Validates values of `ns` served in `version` against `schema` instead
    /// of the schema registered for that version (a worker that brings its
    /// own schema of a version it declares).
    pub fn set_version_schema(&mut self, ns: impl Into<String>, version: i32, schema: Schema) {
        let ns = ns.into();
        let schema = Arc::new(schema);
        self.pinned
            .entry(ns.clone())
            .or_default()
            .insert(version, Arc::clone(&schema));
        self.registered.entry(ns).or_default().insert(version, schema);
    }

    /// The declared namespaces whose contract must be read again before
    /// `reply` is received: it carries a value served in a declared version
    /// the session has no registered schema for (registered since the last
    /// read).
    pub fn stale_contracts(&self, reply: &SyncReply) -> BTreeSet<String> {
        let served: Vec<(&str, i32)> = match &reply.msg {
            Some(sync_reply::Msg::Batch(batch)) => batch
                .revisions
                .iter()
                .flat_map(|r| &r.changes)
                .map(|c| (c.ns.as_str(), c.schema_version))
                .collect(),
            Some(sync_reply::Msg::Chunk(chunk)) => chunk
                .entries
                .iter()
                .map(|e| (e.ns.as_str(), e.schema_version))
                .collect(),
            _ => Vec::new(),
        };
        served
            .into_iter()
            .filter(|(ns, version)| {
                let declared = self
                    .options
                    .versions
                    .get(*ns)
                    .is_some_and(|d| d.contains(version));
                let known = self.registered.get(*ns).is_some_and(|r| r.contains_key(version));
                declared && !known
            })
            .map(|(ns, _)| ns.to_owned())
            .collect()
    }

    /// The replica, locked (keep the guard short: the session waits for it).
    pub fn replica(&self) -> MutexGuard<'_, Replica> {
        self.replica.lock()
    }

    /// Another handle to the replica, for readers.
    pub fn shared_replica(&self) -> SharedReplica {
        self.replica.clone()
    }

    /// What the session counted so far.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The options the session was made with.
    pub fn options(&self) -> &Options {
        &self.options
    }

    /// The state of the current stream.
    pub fn state(&self) -> StreamState {
        self.stream.state()
    }

    /// Whether the controller answered on the current stream.
    pub fn established(&self) -> bool {
        self.stream.established()
    }

    /// Starts a new stream: the hello to send first.
    pub fn hello(&mut self) -> SyncRequest {
        self.stream = WorkerStream::new();
        self.snapshot = None;
        let from_rev = if self.resync_requested {
            0
        } else {
            self.replica.lock().applied_rev()
        };
        request(sync_request::Msg::Hello(Hello {
            worker_id: self.options.worker_id.clone(),
            namespaces: self.options.namespaces.clone(),
            from_rev,
            deltas: self.options.deltas,
            heartbeat_s: self.options.heartbeat_s,
            held: self.held(),
            versions: self.declared(),
            ..Hello::default()
        }))
    }

    /// The declared schema versions of the followed namespaces, each with the
    /// version the replica holds its values in (-1: no values).
    fn declared(&self) -> Vec<SchemaVersions> {
        self.options
            .versions
            .iter()
            .filter(|(ns, _)| self.options.namespaces.contains(ns))
            .map(|(ns, versions)| SchemaVersions {
                ns: ns.clone(),
                versions: versions.clone(),
                replica_version: self.replica.lock().schema_version(ns).unwrap_or(-1),
            })
            .collect()
    }

    /// The stream ended from outside (closed, stale, stopped).
    pub fn end(&mut self) {
        if self.stream.state() != StreamState::Closed {
            let _ = self.stream.on(Event::End);
        }
        self.snapshot = None;
    }

    /// Handles one controller message. Err only when the replica could not be
    /// written (nothing of that write was applied; end the stream and retry).
    pub fn receive(&mut self, reply: SyncReply, handler: &mut dyn Handler) -> Result<Step, ReplicaError> {
        // A reply kind this worker does not know is skipped (evolution rules).
        let Some(msg) = reply.msg else {
            return Ok(Step::default());
        };
        let event = match &msg {
            sync_reply::Msg::Batch(_) => Event::Batch,
            sync_reply::Msg::Progress(_) => Event::Progress,
            sync_reply::Msg::Resync(r) if r.reconcile => Event::ReconcileResync,
            sync_reply::Msg::Resync(_) => Event::Resync,
            sync_reply::Msg::Chunk(c) if c.last => Event::LastChunk,
            sync_reply::Msg::Chunk(_) => Event::Chunk,
            sync_reply::Msg::Heartbeat(_) => Event::Heartbeat,
            sync_reply::Msg::Query(_) => Event::Query,
            sync_reply::Msg::Repair(_) => Event::Repair,
        };
        let before = self.stream.state();
        if let Err(illegal) = self.stream.on(event) {
            return Ok(self.ending(format!("protocol error: {illegal}"), false));
        }
        let step = match msg {
            sync_reply::Msg::Batch(batch) => self.batch(batch, handler)?,
            sync_reply::Msg::Progress(progress) => {
                if before == StreamState::Snapshotting {
                    Step::default()
                } else {
                    self.replica.lock().advance(progress.rev)?;
                    self.acked()
                }
            }
            sync_reply::Msg::Resync(resync) if resync.reconcile => {
                let from = self.replica.lock().applied_rev();
                log::info!(
                    "worker {}: moving from revision {from} to {}, keeping the replica: {} (digest descent repairs what differs)",
                    self.options.worker_id,
                    resync.rev,
                    resync.reason
                );
                self.replica.lock().advance(resync.rev)?;
                self.acked()
            }
            sync_reply::Msg::Resync(resync) => {
                log::info!(
                    "worker {}: resync at revision {}: {}",
                    self.options.worker_id,
                    resync.rev,
                    resync.reason
                );
                self.snapshot = Some(Pending {
                    resync,
                    entries: Keyed::new(),
                });
                Step::default()
            }
            sync_reply::Msg::Chunk(chunk) => self.chunk(chunk, handler)?,
            sync_reply::Msg::Heartbeat(_) => Step::default(),
            sync_reply::Msg::Query(query) => self.query(&query),
            sync_reply::Msg::Repair(repair) => self.repair(repair, handler)?,
        };
        Ok(step)
    }

    // ------------------------------------------------------------ batches

    fn batch(&mut self, batch: ChangeBatch, handler: &mut dyn Handler) -> Result<Step, ReplicaError> {
        let applied = self.replica.lock().applied_rev();
        match batch_verdict(applied, batch.prev_rev, batch.rev) {
            Err(backward) => Ok(self.ending(format!("protocol error: {backward}"), false)),
            Ok(BatchVerdict::Replay) => Ok(self.acked()),
            Ok(BatchVerdict::Gap) => Ok(self.ending(
                format!(
                    "gap: the batch follows revision {}, the last applied is {applied}",
                    batch.prev_rev
                ),
                false,
            )),
            Ok(BatchVerdict::Apply) => {
                let mut send = Vec::new();
                for revision in batch.revisions.iter().filter(|r| r.rev > applied) {
                    if let Err(halt) = self.revision(revision, handler, &mut send)? {
                        let mut step = match halt {
                            Halt::Drift(reason) => self.ending(reason, true),
                            Halt::Interrupted(reason) => self.ending(reason, false),
                        };
                        send.append(&mut step.send);
                        step.send = send;
                        return Ok(step);
                    }
                }
                self.replica.lock().advance(batch.rev)?;
                send.push(self.ack());
                Ok(Step { send, end: None })
            }
        }
    }

    /// Applies one revision: each change checked, the ones that pass offered
    /// to the handler together, refused ones NACKed and held, the rest
    /// applied atomically.
    fn revision(
        &mut self,
        revision: &statesync_proto::Revision,
        handler: &mut dyn Handler,
        send: &mut Vec<SyncRequest>,
    ) -> Result<Result<(), Halt>, ReplicaError> {
        // What each change would apply (None: a delete), and its checks' verdict.
        let mut candidates: Vec<(Option<Entry>, Result<(), String>)> =
            Vec::with_capacity(revision.changes.len());
        for c in &revision.changes {
            if c.kind == change::Kind::Delete as i32 {
                candidates.push((None, Ok(())));
                continue;
            }
            let value = if c.patch.is_empty() {
                c.value.clone()
            } else {
                match self.resolve_delta(c) {
                    Ok(value) => value,
                    Err(drift) => return Ok(Err(drift)),
                }
            };
            let entry = Entry {
                vhash: sha256(&value),
                value,
                create_rev: c.create_rev,
                mod_rev: revision.rev,
                version: c.version,
                schema_version: c.schema_version,
                source_hash: hash_of(&c.source_hash),
            };
            let verdict = checked(&entry, &c.value_hash)
                .and_then(|value| self.conforms(&c.ns, &c.key, c.schema_version, &value));
            candidates.push((Some(entry), verdict));
        }
        let events: Vec<ChangeEvent<'_>> = revision
            .changes
            .iter()
            .zip(&candidates)
            .filter(|(_, (_, verdict))| verdict.is_ok())
            .map(|(c, (entry, _))| match entry {
                Some(entry) => event(revision, c, Op::Put, Some(&entry.value)),
                None => event(revision, c, Op::Delete, None),
            })
            .collect();
        let offered = events.len();
        let decided = match decide(handler, &events) {
            Ok(decided) => decided,
            Err(halt) => return Ok(Err(halt)),
        };
        let mut decided = decided.into_iter();
        let mut changes = Changes::default();
        let mut nacks = Vec::new();
        for (c, (entry, checked)) in revision.changes.iter().zip(candidates) {
            let verdict = checked.and_then(|()| decided.next().expect("one verdict per offered change"));
            let slot = (c.ns.clone(), c.key.clone());
            match verdict {
                Ok(()) => {
                    self.refused.remove(&slot);
                    match (self.fault(), entry) {
                        (Some(Fault::Drop), _) => {}
                        (Some(Fault::Corrupt), Some(entry)) => {
                            changes.puts.push((slot.0, slot.1, corrupted(&entry)))
                        }
                        (_, Some(entry)) => changes.puts.push((slot.0, slot.1, entry)),
                        (_, None) => changes.deletes.push(slot),
                    }
                }
                Err(reason) => {
                    log::warn!(
                        "worker {}: NACK revision {} {}/{}: {reason}",
                        self.options.worker_id,
                        revision.rev,
                        c.ns,
                        c.key
                    );
                    nacks.push(nack(revision.rev, &c.ns, &c.key, &reason));
                    let counted = entry
                        .as_ref()
                        .and_then(|_| hash_of(&c.source_hash).or_else(|| hash_of(&c.value_hash)));
                    changes
                        .rejected
                        .push(held(&c.ns, &c.key, revision.rev, reason, counted));
                    if let Some(entry) = entry {
                        self.refused.insert(slot, entry);
                    }
                }
            }
        }
        self.replica.lock().apply(revision.rev, changes)?;
        if offered > 0 {
            handler.applied();
        }
        send.append(&mut nacks);
        Ok(Ok(()))
    }

    /// The fault [`Chaos`] draws for one accepted change (None: apply it).
    fn fault(&mut self) -> Option<Fault> {
        let draw = self.chaos.as_mut()?.f64();
        let chaos = &self.options.chaos;
        if draw < chaos.drop {
            self.counters.chaos_dropped += 1;
            Some(Fault::Drop)
        } else if draw < chaos.drop + chaos.corrupt {
            self.counters.chaos_corrupted += 1;
            Some(Fault::Corrupt)
        } else {
            None
        }
    }

    /// The full value of a delta, from the value at `prev_mod_rev` (the
    /// refused one when a NACK crossed the delta on the wire).
    fn resolve_delta(&self, c: &statesync_proto::Change) -> Result<Vec<u8>, Halt> {
        let replica = self.replica.lock();
        let refused = self
            .refused
            .get(&(c.ns.clone(), c.key.clone()))
            .filter(|e| e.mod_rev == c.prev_mod_rev);
        let base = refused.or_else(|| replica.get(&c.ns, &c.key));
        let Some(base) = base.filter(|b| b.mod_rev == c.prev_mod_rev) else {
            let have = match replica.get(&c.ns, &c.key) {
                None => "no value".to_owned(),
                Some(e) => format!("mod_rev {}", e.mod_rev),
            };
            return Err(Halt::Drift(format!(
                "delta for {}/{} is based on mod_rev {}, the replica has {have}",
                c.ns, c.key, c.prev_mod_rev
            )));
        };
        statesync_core::delta::apply(&base.value, &c.patch, &c.value_hash)
            .map_err(|e| Halt::Drift(format!("delta for {}/{}: {e}", c.ns, c.key)))
    }

    // ------------------------------------------------------------ snapshots

    fn chunk(&mut self, chunk: SnapshotChunk, handler: &mut dyn Handler) -> Result<Step, ReplicaError> {
        let Some(pending) = self.snapshot.as_mut() else {
            return Ok(self.ending("protocol error: a snapshot chunk without a resync".into(), false));
        };
        if chunk.rev != pending.resync.rev {
            let reason = format!(
                "a snapshot chunk at revision {} in the snapshot at {}",
                chunk.rev, pending.resync.rev
            );
            return Ok(self.ending(reason, true));
        }
        for e in chunk.entries {
            let (ns, key, entry) = entry_of(e);
            pending.entries.push(ns, key, entry);
        }
        if !chunk.last {
            return Ok(Step::default());
        }
        let pending = self.snapshot.take().expect("checked above");
        self.install(pending, handler)
    }

    /// Verifies a whole snapshot against its digests, offers what it changes to
    /// the handler (all at once), and replaces the replica with it.
    fn install(&mut self, pending: Pending, handler: &mut dyn Handler) -> Result<Step, ReplicaError> {
        let Pending { resync, entries } = pending;
        let mut entries = entries.into_maps();
        let mut digests = HashMap::new();
        for expected in &resync.digests {
            let keyed = entries.get(&expected.ns);
            let items = keyed.into_iter().flatten().map(|(k, e)| (k.as_str(), *e.leaf()));
            let digest = NamespaceDigest::from_items(items, |_, _| {});
            if digest.root().as_slice() != expected.root.as_slice() {
                let reason = format!(
                    "the snapshot of namespace {:?} does not match its digest",
                    expected.ns
                );
                return Ok(self.ending(reason, true));
            }
            digests.insert(expected.ns.clone(), digest);
        }
        let rev = resync.rev;
        // What the snapshot changes, in namespace and key order (puts, then
        // each namespace's deletes), with the verdict of the schema checks.
        let mut offers: Vec<Offer> = Vec::new();
        let mut kept = Keyed::new();
        let mut old: HashMap<String, BTreeMap<String, Entry>> = HashMap::new();
        for ns in self.options.namespaces.clone() {
            let before: BTreeMap<String, Entry> = self
                .replica
                .lock()
                .range(&ns, "")
                .map(|(k, e)| (k.to_owned(), e.clone()))
                .collect();
            let new = entries.remove(&ns).unwrap_or_default();
            let mut deletes: Vec<Offer> = before
                .keys()
                .filter(|k| !new.contains_key(*k))
                .map(|key| Offer {
                    ns: ns.clone(),
                    key: key.clone(),
                    entry: None,
                    checked: Ok(()),
                })
                .collect();
            for (key, entry) in new {
                if before.get(&key).is_some_and(|o| o.vhash == entry.vhash) {
                    kept.push_ns(&ns, key, entry);
                    continue;
                }
                let checked = self.entry_conforms(&ns, &key, &entry);
                offers.push(Offer {
                    ns: ns.clone(),
                    key,
                    entry: Some(entry),
                    checked,
                });
            }
            offers.append(&mut deletes);
            old.insert(ns, before);
        }
        let events: Vec<ChangeEvent<'_>> = offers
            .iter()
            .filter(|o| o.checked.is_ok())
            .map(|o| state_event(rev, &o.ns, &o.key, o.entry.as_ref(), Origin::Snapshot))
            .collect();
        let offered = events.len();
        let decided = match decide(handler, &events) {
            Ok(decided) => decided,
            Err(Halt::Interrupted(reason) | Halt::Drift(reason)) => return Ok(self.ending(reason, false)),
        };
        let mut decided = decided.into_iter();
        let mut send = Vec::new();
        let mut rejected = Vec::new();
        // The snapshot releases every earlier hold; its own refused entries are
        // the bases of deltas sent before the controller hears their NACKs.
        let mut refused = HashMap::new();
        for offer in offers {
            let verdict = offer
                .checked
                .and_then(|()| decided.next().expect("one verdict per offered change"));
            let Offer { ns, key, entry, .. } = offer;
            let reason = match verdict {
                Ok(()) => {
                    if let Some(entry) = entry {
                        kept.push(ns, key, entry);
                    }
                    continue;
                }
                Err(reason) => reason,
            };
            // Refused: the key keeps its last good value, and is held.
            if let Some(last_good) = old.get(&ns).and_then(|o| o.get(&key)) {
                kept.push(ns.clone(), key.clone(), last_good.clone());
            }
            log::warn!(
                "worker {}: NACK revision {rev} {ns}/{key}: {reason}",
                self.options.worker_id
            );
            send.push(nack(rev, &ns, &key, &reason));
            let counted = entry.as_ref().map(|e| *e.leaf());
            rejected.push(held(&ns, &key, rev, reason, counted));
            if let Some(entry) = entry {
                refused.insert((ns, key), entry);
            }
        }
        let keys = kept.len();
        let kept = kept.into_maps();
        self.replica.lock().replace(
            rev,
            Snapshot {
                entries: kept,
                rejected,
                digests: Some(digests),
            },
        )?;
        if offered > 0 {
            handler.applied();
        }
        log::info!(
            "worker {}: replica replaced by the snapshot at revision {rev} ({keys} keys)",
            self.options.worker_id
        );
        self.refused = refused;
        self.resync_requested = false;
        self.counters.resyncs += 1;
        send.push(self.ack());
        Ok(Step { send, end: None })
    }

    // ------------------------------------------------------------ validation

    /// Ok when `value`, served in `version` of `ns`, conforms to the local
    /// schema and to the registered schema of that version (each when there
    /// is one); otherwise the NACK reason, naming the key, the schema and
    /// its first violation.
    fn conforms(&self, ns: &str, key: &str, version: i32, value: &Value) -> Result<(), String> {
        if let Some(schema) = self.schemas.get(ns) {
            first_violation(schema, value)
                .map_err(|v| format!("{ns}/{key} does not conform to the local schema: {v}"))?;
        }
        let Some(registered) = self.registered.get(ns).filter(|r| !r.is_empty()) else {
            return Ok(());
        };
        // Version 0: served as stored, in no registered version; the newest held applies.
        let version = match version {
            0 => *registered.keys().next_back().expect("checked non-empty"),
            v => v,
        };
        let Some(schema) = registered.get(&version) else {
            return Err(format!(
                "{ns}/{key} is served in schema v{version}, which this worker has no registered schema for"
            ));
        };
        first_violation(schema, value)
            .map_err(|v| format!("{ns}/{key} does not conform to schema v{version}: {v}"))
    }

    /// [`Session::conforms`] for a snapshot entry, parsed only when its
    /// namespace has a schema (the snapshot's digest already vouches for it).
    fn entry_conforms(&self, ns: &str, key: &str, entry: &Entry) -> Result<(), String> {
        let registered = self.registered.get(ns).is_some_and(|r| !r.is_empty());
        if !registered && !self.schemas.contains_key(ns) {
            return Ok(());
        }
        let value = parse(&entry.value).map_err(|e| format!("{ns}/{key}: {e}"))?;
        self.conforms(ns, key, entry.schema_version, &value)
    }

    // ------------------------------------------------------------ reconciliation

    fn query(&mut self, query: &DigestQuery) -> Step {
        let answered = answer(&mut self.replica.lock(), query);
        match answered {
            Ok(answer) => Step {
                send: vec![request(sync_request::Msg::Answer(answer))],
                end: None,
            },
            Err(err) => self.ending(format!("protocol error: digest query {}: {err}", query.id), false),
        }
    }

    fn repair(&mut self, repair: Repair, handler: &mut dyn Handler) -> Result<Step, ReplicaError> {
        self.repaired = repair.id;
        if repair.rev != self.replica.lock().applied_rev() {
            // Another revision: skipped; the next digest check decides again.
            return Ok(self.acked());
        }
        let puts: Vec<(String, String, Entry)> = repair.entries.into_iter().map(entry_of).collect();
        let deletes: Vec<(String, String)> = repair.deletes.into_iter().map(|d| (d.ns, d.key)).collect();
        let events: Vec<ChangeEvent<'_>> = puts
            .iter()
            .map(|(ns, key, entry)| state_event(repair.rev, ns, key, Some(entry), Origin::Repair))
            .chain(
                deletes
                    .iter()
                    .map(|(ns, key)| state_event(repair.rev, ns, key, None, Origin::Repair)),
            )
            .collect();
        // Applied as sent: the handler is told, its refusals do not apply.
        if let Err(interrupted) = handler.on_changes(&events) {
            return Ok(self.ending(interrupted.reason, false));
        }
        let repaired = events.len() as u64;
        for (ns, key) in puts
            .iter()
            .map(|(ns, key, _)| (ns, key))
            .chain(deletes.iter().map(|(ns, key)| (ns, key)))
        {
            self.refused.remove(&(ns.clone(), key.clone()));
        }
        self.replica.lock().apply(
            repair.rev,
            Changes {
                puts,
                deletes,
                rejected: Vec::new(),
            },
        )?;
        if repaired > 0 {
            handler.applied();
        }
        log::warn!(
            "worker {}: repaired {repaired} drifted key(s) at revision {}: {}",
            self.options.worker_id,
            repair.rev,
            repair.reason
        );
        self.counters.keys_repaired += repaired;
        Ok(self.acked())
    }

    // ------------------------------------------------------------ replies

    /// An ACK of the applied revision with every subscribed namespace's digest
    /// and the held keys.
    pub fn ack(&self) -> SyncRequest {
        let digests = self
            .options
            .namespaces
            .iter()
            .map(|ns| {
                let (root, count) = match self.replica.lock().digest(ns) {
                    Some(d) => (d.root(), d.count()),
                    None => (NamespaceDigest::new().root(), 0),
                };
                PbDigest {
                    ns: ns.clone(),
                    root: root.to_vec(),
                    count: count as i64,
                }
            })
            .collect();
        // Not inside the message's expression: its temporaries (a lock guard)
        // would live until `held` locks the replica again.
        let rev = self.replica.lock().applied_rev();
        request(sync_request::Msg::Ack(Ack {
            rev,
            digests,
            held: self.held(),
            repaired: self.repaired,
        }))
    }

    fn acked(&self) -> Step {
        Step {
            send: vec![self.ack()],
            end: None,
        }
    }

    fn ending(&mut self, reason: String, resync: bool) -> Step {
        self.end();
        self.resync_requested |= resync;
        Step {
            send: Vec::new(),
            end: Some(StreamEnd { reason, resync }),
        }
    }

    fn held(&self) -> Vec<statesync_proto::HeldKey> {
        let replica = self.replica.lock();
        replica
            .held()
            .map(|h| statesync_proto::HeldKey {
                held_hash: replica
                    .get(&h.namespace, &h.key)
                    .map(|e| e.vhash.to_vec())
                    .unwrap_or_default(),
                ns: h.namespace,
                key: h.key,
                rev: h.rev,
                reason: h.reason,
            })
            .collect()
    }
}

/// One change a snapshot offers the handler: a put (`entry`) or a delete,
/// with the verdict of the checks before the handler.
struct Offer {
    ns: String,
    key: String,
    entry: Option<Entry>,
    checked: Result<(), String>,
}

/// The handler's verdicts on `events`, one per event; a handler that cannot
/// decide (or miscounts) halts the stream without applying anything.
fn decide(handler: &mut dyn Handler, events: &[ChangeEvent<'_>]) -> Result<Vec<Result<(), String>>, Halt> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let verdicts = handler.on_changes(events)?;
    if verdicts.len() != events.len() {
        return Err(Halt::Interrupted(format!(
            "the handler gave {} verdicts for {} changes",
            verdicts.len(),
            events.len()
        )));
    }
    Ok(verdicts
        .into_iter()
        .map(|v| v.map_err(|Reject { reason }| reason))
        .collect())
}

fn chaos_draws(chaos: &Chaos) -> Option<fastrand::Rng> {
    if chaos.drop <= 0.0 && chaos.corrupt <= 0.0 {
        return None;
    }
    Some(
        chaos
            .seed
            .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
    )
}

/// A wrong value stored with its own hash, so only the digest can tell.
fn corrupted(entry: &Entry) -> Entry {
    let hex: String = entry.vhash[..8].iter().map(|b| format!("{b:02x}")).collect();
    let value = format!(r#"{{"statesync_chaos":"corrupted","was":"{hex}"}}"#).into_bytes();
    Entry {
        vhash: sha256(&value),
        value,
        source_hash: None,
        ..entry.clone()
    }
}

fn request(msg: sync_request::Msg) -> SyncRequest {
    SyncRequest { msg: Some(msg) }
}

fn nack(rev: i64, ns: &str, key: &str, reason: &str) -> SyncRequest {
    request(sync_request::Msg::Nack(Nack {
        rev,
        ns: ns.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    }))
}

fn held(ns: &str, key: &str, rev: i64, reason: String, refused: Option<Hash>) -> HeldKey {
    HeldKey {
        namespace: ns.to_owned(),
        key: key.to_owned(),
        rev,
        reason,
        refused,
    }
}

/// Entries by namespace, kept as lists until they are complete: a map built
/// at once from a sorted list (a snapshot's entries are) costs far less than
/// inserting its keys one by one.
#[derive(Default)]
struct Keyed {
    lists: BTreeMap<String, Vec<(String, Entry)>>,
}

impl Keyed {
    fn new() -> Self {
        Self::default()
    }

    fn push(&mut self, ns: String, key: String, entry: Entry) {
        match self.lists.last_entry() {
            Some(mut last) if *last.key() == ns => last.get_mut().push((key, entry)),
            _ => self.lists.entry(ns).or_default().push((key, entry)),
        }
    }

    fn push_ns(&mut self, ns: &str, key: String, entry: Entry) {
        match self.lists.get_mut(ns) {
            Some(list) => list.push((key, entry)),
            None => self.push(ns.to_owned(), key, entry),
        }
    }

    fn len(&self) -> usize {
        self.lists.values().map(Vec::len).sum()
    }

    /// Each namespace's entries by key; a key given twice keeps the later.
    fn into_maps(self) -> BTreeMap<String, BTreeMap<String, Entry>> {
        self.lists
            .into_iter()
            .map(|(ns, list)| (ns, list.into_iter().collect()))
            .collect()
    }
}

/// A snapshot's or a repair's entry as the replica keeps it, with its key.
fn entry_of(e: statesync_proto::Entry) -> (String, String, Entry) {
    let entry = Entry {
        vhash: sha256(&e.value),
        value: e.value,
        create_rev: e.create_rev,
        mod_rev: e.mod_rev,
        version: e.version,
        schema_version: e.schema_version,
        source_hash: hash_of(&e.source_hash),
    };
    (e.ns, e.key, entry)
}

/// A 32-byte hash from the wire; None for an empty (or malformed) field.
fn hash_of(bytes: &[u8]) -> Option<Hash> {
    Hash::try_from(bytes).ok()
}

/// Ok when `value` conforms to `schema`; otherwise its first violation (and
/// how many more there are), for a NACK.
fn first_violation(schema: &Schema, value: &Value) -> Result<(), String> {
    if schema.is_valid(value) {
        return Ok(());
    }
    let violations = schema.violations(value);
    let Some(first) = violations.first() else {
        return Err("the value is refused".to_owned());
    };
    let at = if first.path.is_empty() {
        "(root)"
    } else {
        &first.path
    };
    let more = match violations.len() - 1 {
        0 => String::new(),
        n => format!(" (and {n} more)"),
    };
    Err(format!("{at} fails {}: {}{more}", first.keyword, first.message))
}

/// A full value is accepted only when it hashes to `value_hash` and is
/// I-JSON; the parsed value, for validation.
fn checked(entry: &Entry, value_hash: &[u8]) -> Result<Value, String> {
    if entry.vhash.as_slice() != value_hash {
        return Err(HASH_MISMATCH.to_owned());
    }
    parse(&entry.value).map_err(|e| e.to_string())
}

fn event<'a>(
    revision: &'a statesync_proto::Revision,
    c: &'a statesync_proto::Change,
    op: Op,
    value: Option<&'a [u8]>,
) -> ChangeEvent<'a> {
    ChangeEvent {
        rev: revision.rev,
        ns: &c.ns,
        key: &c.key,
        op,
        value,
        command_id: &revision.command_id,
        trace: &revision.trace,
        create_rev: c.create_rev,
        version: c.version,
        schema_version: c.schema_version,
        origin: Origin::Command,
    }
}

/// A change a snapshot or a repair makes (no command behind it).
fn state_event<'a>(
    rev: i64,
    ns: &'a str,
    key: &'a str,
    entry: Option<&'a Entry>,
    origin: Origin,
) -> ChangeEvent<'a> {
    ChangeEvent {
        rev,
        ns,
        key,
        op: if entry.is_some() { Op::Put } else { Op::Delete },
        value: entry.map(|e| e.value.as_slice()),
        command_id: "",
        trace: "",
        create_rev: entry.map_or(0, |e| e.create_rev),
        version: entry.map_or(0, |e| e.version),
        schema_version: entry.map_or(0, |e| e.schema_version),
        origin,
    }
}
