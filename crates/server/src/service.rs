//! The native methods of `statesync.v1.Statesync`: Commit, CommitStream, Get,
//! Range and Snapshot, served on the store with the semantics the Python
//! servicer had (defaults, paging, validation, the errors returned); Sync,
//! WaitApplied and Reconcile, handed to the sync hub.

use std::sync::Arc;
use std::time::Instant;

use statesync_core::command::{CONTRACTS_NAMESPACE, prepare};
use statesync_core::engine::KeyRecord;
use statesync_core::sequencer::Outcome;
use statesync_store::{SqliteStore, StoreError};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status, Streaming};

use crate::command::{CommandIds, WireCommand};
use crate::error::{ErrorReporter, NativeError, Reported};
use crate::metrics::CommitCounters;
use crate::proto::statesync_server::Statesync;
use crate::proto::{
    CommandReply, CommandRequest, Entry, GetReply, GetRequest, NamespaceDigest, RangePage, RangeRequest,
    ReconcileReply, ReconcileRequest, SnapshotChunk, SnapshotRequest, SyncReply, SyncRequest,
    WaitAppliedReply, WaitAppliedRequest,
};
use crate::sync::SyncHub;

/// Commands of one CommitStream in flight before the server stops reading it.
const STREAM_DEPTH: usize = 256;
/// Pages (or snapshot chunks) read ahead of a client.
const READ_AHEAD: usize = 2;
/// Range pages and snapshot chunks when the request names no size.
const DEFAULT_PAGE: i32 = 1000;

/// The native half of the service, shared by every call.
#[derive(Clone)]
pub(crate) struct DataPlane {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<SqliteStore>,
    reporter: Arc<dyn ErrorReporter>,
    counters: Arc<CommitCounters>,
    ids: CommandIds,
    /// Cancelled when the grace period of a shutdown is over: streams stop reading.
    abandon: CancellationToken,
    /// Serves Sync, WaitApplied and Reconcile.
    hub: Arc<SyncHub>,
}

/// A command queued for a group commit (or refused before it was).
struct Pending {
    tag: u64,
    started: Instant,
    outcome: Result<oneshot::Receiver<Outcome>, NativeError>,
}

pub(crate) fn entry(r: KeyRecord) -> Entry {
    Entry {
        ns: r.ns,
        key: r.key,
        value: r.value,
        create_rev: r.create_rev,
        mod_rev: r.mod_rev,
        version: r.version,
        ..Entry::default()
    }
}

/// A revision argument: 0 is "the head".
fn rev_arg(rev: i64) -> Result<Option<i64>, NativeError> {
    if rev < 0 {
        return Err(NativeError::InvalidInput(format!(
            "a revision is an integer >= 0, got {rev}"
        )));
    }
    Ok((rev != 0).then_some(rev))
}

/// A page or chunk size argument: 0 is the default.
fn size_arg(size: i32) -> Result<usize, NativeError> {
    match size {
        0 => Ok(DEFAULT_PAGE as usize),
        n if n < 0 => Err(NativeError::InvalidInput(format!(
            "limit is an integer >= 1, got {n}"
        ))),
        n => Ok(n as usize),
    }
}

/// Runs a store call off the async threads (SQLite reads block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, NativeError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(NativeError::Store),
        Err(_) => Err(NativeError::Store(StoreError::Closed)),
    }
}

impl DataPlane {
    pub(crate) fn new(
        store: Arc<SqliteStore>,
        reporter: Arc<dyn ErrorReporter>,
        counters: Arc<CommitCounters>,
        abandon: CancellationToken,
        hub: Arc<SyncHub>,
    ) -> Self {
        DataPlane {
            inner: Arc::new(Inner {
                store,
                reporter,
                counters,
                ids: CommandIds::new(),
                abandon,
                hub,
            }),
        }
    }

    /// What the client receives for `error` (the reporter may block on the
    /// interpreter, so it runs on a blocking thread).
    async fn report(&self, error: NativeError) -> Reported {
        let reporter = self.inner.reporter.clone();
        let message = error.to_string();
        tokio::task::spawn_blocking(move || reporter.report(error))
            .await
            .unwrap_or_else(|_| Reported {
                code: tonic::Code::Internal,
                error: crate::proto::Error {
                    code: "StatesyncError".into(),
                    message,
                    ..Default::default()
                },
            })
    }

    async fn status(&self, error: NativeError) -> Status {
        self.report(error).await.into_status()
    }

    /// Prepares a command and queues it now, so commands arriving together
    /// share a group commit.
    fn submit(&self, mut request: CommandRequest) -> Pending {
        let started = Instant::now();
        let tag = request.tag;
        let store = &self.inner.store;
        let outcome = if store.is_closed() {
            Err(NativeError::Store(StoreError::Closed))
        } else {
            self.inner.ids.assign(&mut request);
            match prepare(&WireCommand(&request), &store.settings().limits) {
                Ok(command) => {
                    let (tx, rx) = oneshot::channel();
                    store.submit(vec![(
                        command,
                        Box::new(move |outcome| {
                            let _ = tx.send(outcome);
                        }),
                    )]);
                    Ok(rx)
                }
                Err(e) => Err(NativeError::Command(e)),
            }
        };
        Pending {
            tag,
            started,
            outcome,
        }
    }

    /// Waits for a queued command's outcome and counts it.
    async fn settle(&self, pending: Pending) -> Result<CommandReply, Reported> {
        let outcome = match pending.outcome {
            Ok(rx) => match rx.await {
                Ok(Ok(committed)) => Ok(committed),
                Ok(Err(e)) => Err(NativeError::Command(e)),
                Err(_) => Err(NativeError::Store(StoreError::Closed)),
            },
            Err(e) => Err(e),
        };
        match outcome {
            Ok(c) => {
                self.inner.counters.committed(pending.started.elapsed());
                Ok(CommandReply {
                    rev: c.rev,
                    command_id: c.command_id,
                    ts_ms: c.ts_ms,
                    replayed: c.replayed,
                    tag: pending.tag,
                    error: None,
                })
            }
            Err(e) => {
                let reported = self.report(e).await;
                self.inner.counters.refused(&reported.error.code);
                Err(reported)
            }
        }
    }

    async fn range_pages(
        self,
        request: RangeRequest,
        rev: i64,
        page_size: usize,
        out: mpsc::Sender<Result<RangePage, Status>>,
    ) {
        let request = Arc::new(request);
        let mut start_after: Option<String> = None;
        loop {
            let store = self.inner.store.clone();
            let (req, after) = (request.clone(), start_after.clone());
            let read =
                blocking(move || store.range(&req.ns, &req.prefix, Some(rev), after.as_deref(), page_size));
            let records = match read.await {
                Ok(records) => records,
                Err(e) => {
                    let _ = out.send(Err(self.status(e).await)).await;
                    return;
                }
            };
            let full = records.len() == page_size;
            let last_key = records.last().map(|r| r.key.clone());
            if !records.is_empty() || start_after.is_none() {
                let page = RangePage {
                    entries: records.into_iter().map(entry).collect(),
                    rev,
                };
                if out.send(Ok(page)).await.is_err() {
                    return;
                }
            }
            if !full {
                return;
            }
            start_after = last_key;
        }
    }

    async fn snapshot_chunks(
        self,
        mut snapshot: statesync_store::Snapshot,
        every: bool,
        out: mpsc::Sender<Result<SnapshotChunk, Status>>,
    ) {
        // "Every namespace" means the user's: contracts are exported by naming them.
        let keep = move |ns: &str| !(every && ns == CONTRACTS_NAMESPACE);
        let rev = snapshot.rev;
        loop {
            let read = tokio::task::spawn_blocking(move || {
                let chunk = snapshot.next_chunk();
                (snapshot, chunk)
            });
            let chunk = match read.await {
                Ok((back, Ok(chunk))) => {
                    snapshot = back;
                    chunk
                }
                Ok((_, Err(e))) => {
                    let _ = out.send(Err(self.status(NativeError::Store(e)).await)).await;
                    return;
                }
                Err(_) => return,
            };
            if chunk.is_empty() {
                break;
            }
            let entries: Vec<Entry> = chunk.into_iter().filter(|r| keep(&r.ns)).map(entry).collect();
            if !entries.is_empty()
                && out
                    .send(Ok(SnapshotChunk {
                        rev,
                        entries,
                        ..Default::default()
                    }))
                    .await
                    .is_err()
            {
                return;
            }
        }
        let digests = snapshot
            .digests
            .iter()
            .filter(|(ns, _, _)| keep(ns))
            .map(|(ns, root, count)| NamespaceDigest {
                ns: ns.clone(),
                root: root.to_vec(),
                count: *count as i64,
            })
            .collect();
        let last = SnapshotChunk {
            rev,
            digests,
            last: true,
            ..Default::default()
        };
        let _ = out.send(Ok(last)).await;
    }
}

#[tonic::async_trait]
impl Statesync for DataPlane {
    async fn commit(&self, request: Request<CommandRequest>) -> Result<Response<CommandReply>, Status> {
        let mut request = request.into_inner();
        request.tag = 0; // unary replies carry no tag
        let pending = self.submit(request);
        match self.settle(pending).await {
            Ok(reply) => Ok(Response::new(reply)),
            Err(reported) => Err(reported.into_status()),
        }
    }

    /// Commands are submitted as they arrive (sharing group commits) and
    /// answered in order; a bounded queue pushes back on a fast client.
    async fn commit_stream(
        &self,
        request: Request<Streaming<CommandRequest>>,
    ) -> Result<Response<BoxStream<CommandReply>>, Status> {
        let mut inbound = request.into_inner();
        let (queued, pending) = mpsc::channel::<Result<Pending, Status>>(STREAM_DEPTH);
        let reader = self.clone();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    () = reader.inner.abandon.cancelled() => return,
                    message = inbound.message() => match message {
                        Ok(Some(request)) => Ok(reader.submit(request)),
                        Ok(None) => return,
                        Err(status) => Err(status),
                    },
                };
                let failed = item.is_err();
                if queued.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        let answerer = self.clone();
        let replies = ReceiverStream::new(pending).then(move |item| {
            let answerer = answerer.clone();
            async move {
                let pending = item?;
                let tag = pending.tag;
                Ok(match answerer.settle(pending).await {
                    Ok(reply) => reply,
                    Err(reported) => CommandReply {
                        tag,
                        error: Some(reported.error),
                        ..Default::default()
                    },
                })
            }
        });
        Ok(Response::new(Box::pin(replies)))
    }

    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetReply>, Status> {
        let request = request.into_inner();
        let rev = match rev_arg(request.rev) {
            Ok(rev) => rev,
            Err(e) => return Err(self.status(e).await),
        };
        let store = self.inner.store.clone();
        let found = blocking(move || store.get(&request.ns, &request.key, rev)).await;
        match found {
            Ok(record) => Ok(Response::new(GetReply {
                entry: record.map(entry),
                rev: rev.unwrap_or_else(|| self.inner.store.head_rev()),
            })),
            Err(e) => Err(self.status(e).await),
        }
    }

    async fn range(&self, request: Request<RangeRequest>) -> Result<Response<BoxStream<RangePage>>, Status> {
        let request = request.into_inner();
        let checked = rev_arg(request.rev).and_then(|rev| Ok((rev, size_arg(request.page_size)?)));
        let (rev, page_size) = match checked {
            Ok(args) => args,
            Err(e) => return Err(self.status(e).await),
        };
        // Pinned at the first page: every page reads the same revision.
        let rev = rev.unwrap_or_else(|| self.inner.store.head_rev());
        let (out, pages) = mpsc::channel(READ_AHEAD);
        tokio::spawn(self.clone().range_pages(request, rev, page_size, out));
        Ok(Response::new(Box::pin(ReceiverStream::new(pages))))
    }

    async fn snapshot(
        &self,
        request: Request<SnapshotRequest>,
    ) -> Result<Response<BoxStream<SnapshotChunk>>, Status> {
        let request = request.into_inner();
        let store = self.inner.store.clone();
        let checked = rev_arg(request.rev).and_then(|rev| {
            if store.is_closed() {
                return Err(NativeError::Store(StoreError::Closed));
            }
            Ok((rev, size_arg(request.chunk_size)?))
        });
        let (rev, chunk_size) = match checked {
            Ok(args) => args,
            Err(e) => return Err(self.status(e).await),
        };
        let every = request.namespaces.is_empty();
        let namespaces = (!every).then_some(request.namespaces);
        let opened = blocking(move || store.snapshot(namespaces, rev, chunk_size)).await;
        let snapshot = match opened {
            Ok(snapshot) => snapshot,
            Err(e) => return Err(self.status(e).await),
        };
        let (out, chunks) = mpsc::channel(READ_AHEAD);
        tokio::spawn(self.clone().snapshot_chunks(snapshot, every, out));
        Ok(Response::new(Box::pin(ReceiverStream::new(chunks))))
    }

    async fn wait_applied(
        &self,
        request: Request<WaitAppliedRequest>,
    ) -> Result<Response<WaitAppliedReply>, Status> {
        Ok(Response::new(
            self.inner.hub.wait_applied(request.into_inner()).await,
        ))
    }

    async fn reconcile(
        &self,
        request: Request<ReconcileRequest>,
    ) -> Result<Response<ReconcileReply>, Status> {
        Ok(Response::new(
            self.inner.hub.reconcile(request.into_inner()).await,
        ))
    }

    async fn sync(
        &self,
        request: Request<Streaming<SyncRequest>>,
    ) -> Result<Response<BoxStream<SyncReply>>, Status> {
        let peer = peer_of(&request);
        let replies = crate::sync::serve(self.inner.hub.clone(), peer, request.into_inner());
        Ok(Response::new(Box::pin(ReceiverStream::new(replies))))
    }
}

/// The caller's address in gRPC's `ipv4:HOST:PORT` form (from the
/// connection: a client's own `statesync-peer` metadata is not believed).
fn peer_of<T>(request: &Request<T>) -> String {
    match request.remote_addr() {
        Some(std::net::SocketAddr::V4(addr)) => format!("ipv4:{addr}"),
        Some(std::net::SocketAddr::V6(addr)) => format!("ipv6:{addr}"),
        None => "unknown".to_owned(),
    }
}
