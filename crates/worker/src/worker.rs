//! The Sync client: a tokio task that keeps a [`Session`] connected to the
//! controller (tonic), with heartbeats, stale detection and reconnects with
//! delays that grow with the outage (docs/wire.md, "Liveness" and "Reconnects").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prost::Message;
use statesync_core::command::CONTRACTS_NAMESPACE;
use statesync_core::sync::worker::Backoff;
use statesync_core::validate::Schema;
use statesync_proto::statesync_client::StatesyncClient;
use statesync_proto::{ERROR_METADATA_KEY, Heartbeat, SyncRequest, sync_request};
use tokio::runtime::{Handle, RuntimeFlavor};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Endpoint;

use crate::client::{Client, endpoint};
use crate::contract::registered_schemas;

use crate::handler::{AcceptAll, Handler};
use crate::replica::{SharedReplica, open_or_set_aside};
use crate::session::{Chaos, Counters, Options, Session};
use crate::{Replica, ReplicaError};

/// The largest controller message accepted (a snapshot chunk).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;

/// Why a worker could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The builder is missing something or holds a bad value.
    #[error("invalid worker configuration: {0}")]
    Config(String),
    /// The replica could not be opened or written.
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    /// The worker stopped before the awaited revision was applied.
    #[error("the worker stopped")]
    Stopped,
}

/// What a running worker reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// The last revision applied.
    pub applied_rev: i64,
    /// Whether a stream is established.
    pub connected: bool,
    /// Why the last stream ended (None: none ended yet).
    pub last_end: Option<String>,
    /// The error of the last stream the controller (or the transport) ended
    /// with a gRPC status (None: none did yet).
    pub last_error: Option<StreamError>,
    /// How many times the worker reconnected.
    pub reconnects: u64,
    /// Snapshots installed, keys repaired, chaos faults.
    pub counters: Counters,
    /// The encoded size of every controller message received.
    pub bytes_received: u64,
}

/// A stream that ended with a gRPC status: its code and message, and the
/// statesync error the controller attached (an encoded `statesync.v1.Error`,
/// docs/errors.md), if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamError {
    /// The gRPC status code.
    pub code: i32,
    /// The status message.
    pub message: String,
    /// The `statesync-error-bin` trailer: an encoded `statesync.v1.Error`.
    pub error: Option<Vec<u8>>,
}

impl StreamError {
    fn of(status: &tonic::Status) -> StreamError {
        StreamError {
            code: status.code() as i32,
            message: status.message().to_owned(),
            error: status
                .metadata()
                .get_bin(ERROR_METADATA_KEY)
                .and_then(|v| v.to_bytes().ok())
                .map(|b| b.to_vec()),
        }
    }
}

/// Configures and starts a [`Worker`].
pub struct WorkerBuilder {
    address: String,
    worker_id: String,
    data_dir: Option<PathBuf>,
    namespaces: Vec<String>,
    handler: Box<dyn Handler>,
    deltas: bool,
    heartbeat: Duration,
    stale_after: Duration,
    backoff: Backoff,
    versions: BTreeMap<String, Vec<i32>>,
    schemas: BTreeMap<String, Schema>,
    version_schemas: Vec<(String, i32, Schema)>,
    replica: Option<SharedReplica>,
    chaos: Chaos,
}

impl WorkerBuilder {
    /// The worker's stable id (required).
    pub fn worker_id(mut self, id: impl Into<String>) -> Self {
        self.worker_id = id.into();
        self
    }

    /// Keep the replica in `dir` (resumed after a restart); without it the
    /// replica lives in memory and every start bootstraps from a snapshot.
    pub fn data_dir(mut self, dir: impl AsRef<Path>) -> Self {
        self.data_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Follow namespace `ns` (at least one is required).
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespaces.push(ns.into());
        self
    }

    /// Consult `handler` before each change is applied (default: accept all).
    pub fn handler(mut self, handler: impl Handler + 'static) -> Self {
        self.handler = Box::new(handler);
        self
    }

    /// Ask for JSON Patch deltas where they are smaller than the value.
    pub fn deltas(mut self, deltas: bool) -> Self {
        self.deltas = deltas;
        self
    }

    /// How often to send a heartbeat (default 1 s).
    pub fn heartbeat(mut self, every: Duration) -> Self {
        self.heartbeat = every;
        self
    }

    /// Reconnect after hearing nothing for this long (default 5 s).
    pub fn stale_after(mut self, after: Duration) -> Self {
        self.stale_after = after;
        self
    }

    /// Declare the schema versions of `ns` this worker understands (each at
    /// least 1; repeated calls add to the list). The controller serves the
    /// namespace in the newest of them that is registered, translated; a
    /// worker none of whose versions is registered is refused at its hello.
    /// Every value applied to `ns` is validated against the schema the
    /// controller registered for the version it is served in (read from the
    /// namespace's contract at connect, and again when a value arrives in a
    /// declared version registered since); one that fails is NACKed and its
    /// key held, as with [`WorkerBuilder::schema`].
    pub fn versions(mut self, ns: impl Into<String>, versions: impl IntoIterator<Item = i32>) -> Self {
        self.versions.entry(ns.into()).or_default().extend(versions);
        self
    }

    /// Validate every value applied to `ns` against `schema` (compiled with
    /// [`Schema::compile`]), whatever version it is served in, before its
    /// registered schema: one that fails is NACKed with the first
    /// violation, its key held at the last good value (docs/wire.md, "Held
    /// keys"). Repairs are applied as sent, unvalidated.
    pub fn schema(mut self, ns: impl Into<String>, schema: Schema) -> Self {
        self.schemas.insert(ns.into(), schema);
        self
    }

    /// Validate values of `ns` served in schema version `version` against
    /// `schema` instead of the schema the controller registered for it (the
    /// version counts as declared, as with [`WorkerBuilder::versions`]).
    pub fn version_schema(mut self, ns: impl Into<String>, version: i32, schema: Schema) -> Self {
        let ns = ns.into();
        self.versions.entry(ns.clone()).or_default().push(version);
        self.version_schemas.push((ns, version, schema));
        self
    }

    /// Sync this replica (opened by the caller, who may keep reading it)
    /// instead of one the builder opens; `data_dir` is then not used.
    pub fn replica(mut self, replica: SharedReplica) -> Self {
        self.replica = Some(replica);
        self
    }

    /// Reconnect delays: uniform in [½, 1] × min(cap, max(base, outage / 4)),
    /// the outage counted from when the last established stream ended (or
    /// the worker started). Default 0.05 s base, 1 s cap: back within about
    /// 0.1 s of a controller that restarts in 0.4 s, about 1 s apart over a
    /// long outage.
    pub fn backoff(mut self, base: Duration, cap: Duration) -> Self {
        self.backoff = Backoff {
            base_s: base.as_secs_f64(),
            cap_s: cap.as_secs_f64(),
        };
        self
    }

    /// Inject faults (tests of drift repair only; see [`Chaos`]).
    pub fn chaos(mut self, chaos: Chaos) -> Self {
        self.chaos = chaos;
        self
    }

    /// Opens the replica and starts syncing on the current tokio runtime.
    pub fn start(self) -> Result<Worker, WorkerError> {
        if self.worker_id.is_empty() {
            return Err(WorkerError::Config("a worker needs a worker_id".into()));
        }
        if self.namespaces.is_empty() {
            return Err(WorkerError::Config(
                "a worker follows at least one namespace".into(),
            ));
        }
        if self.heartbeat.is_zero() || self.stale_after <= self.heartbeat {
            return Err(WorkerError::Config(format!(
                "stale_after ({:?}) must exceed a non-zero heartbeat ({:?})",
                self.stale_after, self.heartbeat
            )));
        }
        for (what, ns) in self
            .versions
            .keys()
            .map(|ns| ("versions", ns))
            .chain(self.schemas.keys().map(|ns| ("a schema", ns)))
        {
            if !self.namespaces.contains(ns) {
                return Err(WorkerError::Config(format!(
                    "{what} for namespace {ns:?}, which the worker does not follow"
                )));
            }
        }
        if let Some((ns, bad)) = self
            .versions
            .iter()
            .find_map(|(ns, versions)| versions.iter().find(|v| **v < 1).map(|v| (ns, v)))
        {
            return Err(WorkerError::Config(format!(
                "schema version {bad} of namespace {ns:?}: versions start at 1"
            )));
        }
        if self.chaos.drop > 0.0 || self.chaos.corrupt > 0.0 {
            log::warn!(
                "worker {}: CHAOS ON: silently dropping {:.1}% of changes and corrupting {:.1}% of values (fault injection; never in production)",
                self.worker_id,
                100.0 * self.chaos.drop,
                100.0 * self.chaos.corrupt
            );
        }
        let address = self.address.clone();
        let endpoint = endpoint(&self.address)
            .map_err(WorkerError::Config)?
            .connect_timeout(self.stale_after);
        let replica = match (self.replica, &self.data_dir) {
            (Some(shared), _) => shared,
            (None, Some(dir)) => SharedReplica::new(open_or_set_aside(dir, &self.worker_id)?.0),
            (None, None) => SharedReplica::new(Replica::in_memory(&self.worker_id)),
        };
        let options = Options {
            worker_id: self.worker_id,
            namespaces: self.namespaces,
            deltas: self.deltas,
            heartbeat_s: self.heartbeat.as_secs_f64(),
            versions: self.versions,
            chaos: self.chaos,
        };
        let mut session = Session::shared(replica, options);
        for (ns, schema) in self.schemas {
            session.set_schema(ns, schema);
        }
        for (ns, version, schema) in self.version_schemas {
            session.set_version_schema(ns, version, schema);
        }
        let (status_tx, status) = watch::channel(Status {
            applied_rev: session.replica().applied_rev(),
            ..Status::default()
        });
        let (stop, stop_rx) = watch::channel(false);
        let run = Run {
            session,
            handler: self.handler,
            address,
            endpoint,
            heartbeat: self.heartbeat,
            stale_after: self.stale_after,
            backoff: self.backoff,
            status: status_tx,
            stop: stop_rx,
        };
        let task = tokio::spawn(run.run());
        Ok(Worker { status, stop, task })
    }
}

/// A running worker: a tokio task syncing its replica with the controller.
pub struct Worker {
    status: watch::Receiver<Status>,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), WorkerError>>,
}

impl Worker {
    /// A builder for a worker of the controller at `address` (`host:port` or
    /// `http://host:port`).
    pub fn builder(address: impl Into<String>) -> WorkerBuilder {
        WorkerBuilder {
            address: address.into(),
            worker_id: String::new(),
            data_dir: None,
            namespaces: Vec::new(),
            handler: Box::new(AcceptAll),
            deltas: false,
            heartbeat: Duration::from_secs(1),
            stale_after: Duration::from_secs(5),
            backoff: Backoff::default(),
            versions: BTreeMap::new(),
            schemas: BTreeMap::new(),
            version_schemas: Vec::new(),
            replica: None,
            chaos: Chaos::default(),
        }
    }

    /// The last revision applied.
    pub fn applied_rev(&self) -> i64 {
        self.status.borrow().applied_rev
    }

    /// The worker's current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change.
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Waits until revision `rev` is applied; returns the applied revision.
    pub async fn wait_for(&self, rev: i64) -> Result<i64, WorkerError> {
        let mut status = self.status.clone();
        let reached = status.wait_for(|s| s.applied_rev >= rev).await;
        reached.map(|s| s.applied_rev).map_err(|_| WorkerError::Stopped)
    }

    /// Ends the stream, closes the replica and waits for the task.
    pub async fn stop(self) -> Result<(), WorkerError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| WorkerError::Config(format!("the worker task failed: {e}")))?
    }
}

/// Reads the contracts of `namespaces` (declared ones) and hands the session
/// the registered schemas of their declared versions (docs/contracts.md §3);
/// a namespace without a contract has none. Err: why, for the stream's end.
async fn read_contracts(
    session: &mut Session,
    client: &Client,
    namespaces: BTreeSet<String>,
) -> Result<(), String> {
    for ns in namespaces {
        let declared = session.options().versions.get(&ns).cloned().unwrap_or_default();
        let record = client
            .get(CONTRACTS_NAMESPACE, &ns)
            .await
            .map_err(|e| format!("reading the contract of {ns:?}: {e}"))?;
        let schemas = match record {
            Some(record) => registered_schemas(&ns, &record.value, &declared)?,
            None => BTreeMap::new(),
        };
        session.set_registered_schemas(ns, schemas);
    }
    Ok(())
}

/// How one stream ended.
enum Ended {
    Stopped,
    Because(String),
    Failed(String, StreamError),
}

impl From<String> for Ended {
    fn from(reason: String) -> Ended {
        Ended::Because(reason)
    }
}

struct Run {
    session: Session,
    handler: Box<dyn Handler>,
    address: String,
    endpoint: Endpoint,
    heartbeat: Duration,
    stale_after: Duration,
    backoff: Backoff,
    status: watch::Sender<Status>,
    stop: watch::Receiver<bool>,
}

impl Run {
    async fn run(mut self) -> Result<(), WorkerError> {
        // When the worker last had a stream (or started): the outage the
        // reconnect delay grows with.
        let mut outage_since = Instant::now();
        let result = loop {
            let ended = self.stream().await;
            self.session.end();
            let established = self.session.established();
            let (reason, error) = match ended {
                Ok(Ended::Stopped) => break Ok(()),
                Ok(Ended::Because(reason)) => (reason, None),
                Ok(Ended::Failed(reason, error)) => (reason, Some(error)),
                // A replica that cannot be written: retrying may help (a full
                // disk freed); nothing of the failed write was applied.
                Err(err) => (err.to_string(), None),
            };
            let worker_id = &self.session.options().worker_id;
            if established {
                log::warn!("worker {worker_id}: {reason}; reconnecting");
            } else {
                log::info!("worker {worker_id}: no stream: {reason}; reconnecting");
            }
            if established {
                outage_since = Instant::now();
            }
            let counters = self.session.counters();
            self.status.send_modify(|s| {
                s.connected = false;
                s.last_end = Some(reason);
                if error.is_some() {
                    s.last_error = error;
                }
                s.reconnects += 1;
                s.counters = counters;
            });
            let outage = outage_since.elapsed().as_secs_f64();
            let delay = Duration::from_secs_f64(self.backoff.delay_s(outage, fastrand::f64()));
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = self.stop.wait_for(|stop| *stop) => break Ok(()),
            }
        };
        let applied_rev = {
            let mut replica = self.session.replica();
            replica.close();
            replica.applied_rev()
        };
        log::info!(
            "worker {} stopped at revision {applied_rev}",
            self.session.options().worker_id
        );
        self.status.send_modify(|s| s.connected = false);
        result
    }

    /// One stream, from the hello to its end.
    async fn stream(&mut self) -> Result<Ended, ReplicaError> {
        if *self.stop.borrow() {
            return Ok(Ended::Stopped);
        }
        let (outgoing, requests) = mpsc::unbounded_channel::<SyncRequest>();
        let _ = outgoing.send(self.session.hello());
        let opened = async {
            let channel = self.endpoint.connect().await.map_err(|e| {
                let unavailable = tonic::Status::unavailable(format!("connect: {e}"));
                Ended::Failed(format!("connect: {e}"), StreamError::of(&unavailable))
            })?;
            let contracts = Client::on_channel(channel.clone(), &self.address, self.stale_after);
            let declared: BTreeSet<String> = self.session.options().versions.keys().cloned().collect();
            read_contracts(&mut self.session, &contracts, declared).await?;
            let mut client = StatesyncClient::new(channel).max_decoding_message_size(MAX_MESSAGE_BYTES);
            let response = client
                .sync(UnboundedReceiverStream::new(requests))
                .await
                .map_err(|status| Ended::Failed(format!("sync: {status}"), StreamError::of(&status)))?;
            Ok::<_, Ended>((response.into_inner(), contracts))
        };
        let (mut inbound, contracts) = tokio::select! {
            opened = tokio::time::timeout(self.stale_after, opened) => match opened {
                Ok(Ok(opened)) => opened,
                Ok(Err(ended)) => return Ok(ended),
                Err(_) => return Ok(Ended::Because("the controller did not answer the hello".into())),
            },
            _ = self.stop.wait_for(|stop| *stop) => return Ok(Ended::Stopped),
        };
        // Heartbeats go out from their own task, so they keep going while a
        // handler decides (the controller would call a silent worker stale).
        let heartbeats = tokio::spawn(heartbeats(outgoing.clone(), self.heartbeat));
        let _stop_heartbeats = AbortOnDrop(heartbeats);
        let mut last_heard = Instant::now();
        let mut announced = false;
        loop {
            let reply = tokio::select! {
                _ = self.stop.wait_for(|stop| *stop) => return Ok(Ended::Stopped),
                () = tokio::time::sleep_until(last_heard + self.stale_after) => {
                    return Ok(Ended::Because(format!(
                        "stream is stale (nothing from the controller for {:.1} s)",
                        self.stale_after.as_secs_f64()
                    )));
                }
                message = inbound.message() => match message {
                    Ok(Some(reply)) => reply,
                    Ok(None) => return Ok(Ended::Because("the controller closed the stream".into())),
                    Err(status) => return Ok(Ended::Failed(format!("the stream failed: {status}"), StreamError::of(&status))),
                },
            };
            // Awaited outside the select: its branches hold a non-Send guard.
            let stale = self.session.stale_contracts(&reply);
            if !stale.is_empty()
                && let Err(reason) = read_contracts(&mut self.session, &contracts, stale).await
            {
                return Ok(Ended::Because(reason));
            }
            if !announced {
                announced = true;
                // The revision it resumes from, before the first reply moves it.
                log::info!(
                    "worker {}: connected to {} at revision {}",
                    self.session.options().worker_id,
                    self.address,
                    self.session.replica().applied_rev()
                );
            }
            let size = reply.encoded_len() as u64;
            let step = receive(&mut self.session, self.handler.as_mut(), reply)?;
            // Silence is measured while waiting, not while the handler ran.
            last_heard = Instant::now();
            for message in step.send {
                let _ = outgoing.send(message);
            }
            let applied_rev = self.session.replica().applied_rev();
            let counters = self.session.counters();
            self.status.send_if_modified(|s| {
                let changed = s.applied_rev != applied_rev || !s.connected || s.counters != counters;
                s.applied_rev = applied_rev;
                s.connected = true;
                s.counters = counters;
                s.bytes_received += size;
                changed
            });
            if let Some(end) = step.end {
                return Ok(Ended::Because(end.reason));
            }
        }
    }
}

/// Hands one reply to the session. On a multi-threaded runtime the handler
/// may block (it may be another language's code): `block_in_place` moves the
/// runtime's other tasks (heartbeats, other workers) off this thread first.
fn receive(
    session: &mut Session,
    handler: &mut dyn Handler,
    reply: statesync_proto::SyncReply,
) -> Result<crate::Step, ReplicaError> {
    if Handle::current().runtime_flavor() == RuntimeFlavor::MultiThread {
        tokio::task::block_in_place(|| session.receive(reply, handler))
    } else {
        session.receive(reply, handler)
    }
}

/// Sends a heartbeat every `every` until the stream's requests are dropped.
async fn heartbeats(outgoing: mpsc::UnboundedSender<SyncRequest>, every: Duration) {
    let mut beat = tokio::time::interval_at(Instant::now() + every, every);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        beat.tick().await;
        let sent_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let heartbeat = sync_request::Msg::Heartbeat(Heartbeat {
            sent_unix,
            snapshot_queued: false,
        });
        if outgoing.send(SyncRequest { msg: Some(heartbeat) }).is_err() {
            return;
        }
    }
}

/// Aborts a task when the stream that started it ends.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
