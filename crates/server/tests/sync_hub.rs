//! Sync and WaitApplied served by the hub, on port 0 with a temporary store,
//! driven by raw tonic streams as a worker would: bootstrap, tail, ACKs and
//! digest agreement, progress, catch-up (also within the feed, past what it
//! holds in memory), queued snapshots, protocol errors,
//! drift localized by digest descent and repaired, and schema versions.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use statesync_core::command::{self as core_command, CONTRACTS_NAMESPACE};
use statesync_core::descent::{self, Trie};
use statesync_core::digest::{self, Hash, Node};
use statesync_core::engine::{KeyRecord, PlannedChange, ReadKey};
use statesync_core::error::CommandError;
use statesync_core::log::ChangeOp;
use statesync_core::sequencer::Gate;
use statesync_core::sync::controller::SyncSettings;
use statesync_server::feed::FeedLimits;
use statesync_server::proto::statesync_client::StatesyncClient;
use statesync_server::proto::{
    self, Ack, CommandRequest, ContractOp, DigestAnswer, Entry, Hello, NamespaceDigest, Op, PutOp, Resync,
    SchemaVersions, SyncReply, SyncRequest, WaitAppliedRequest, op, sync_reply, sync_request,
};
use statesync_server::{Code, Config, ErrorReporter, HubSettings, NativeError, Reported, RunningServer};
use statesync_store::{SqliteStore, StoreSettings};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

/// Names each failure's class after its variant (the binding asks Python).
struct Plain;

impl ErrorReporter for Plain {
    fn report(&self, error: NativeError) -> Reported {
        let (code, class) = match &error {
            NativeError::Protocol(_) => (Code::FailedPrecondition, "ProtocolError"),
            NativeError::InvalidInput(_) => (Code::InvalidArgument, "InvalidInputError"),
            NativeError::NoTranslationPath(_) => (Code::FailedPrecondition, "NoTranslationPathError"),
            _ => (Code::Internal, "StatesyncError"),
        };
        Reported {
            code,
            error: proto::Error {
                code: class.into(),
                message: error.to_string(),
                ..Default::default()
            },
        }
    }
}

/// A guard against a hung test, not a timing assertion.
const PATIENCE: Duration = Duration::from_secs(30);

struct Running {
    server: RunningServer,
    client: StatesyncClient<Channel>,
    store: Arc<SqliteStore>,
    _dir: tempfile::TempDir,
}

async fn start_with(settings: HubSettings, before: impl FnOnce(&SqliteStore)) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store =
        Arc::new(SqliteStore::open(dir.path().join("s.sqlite"), StoreSettings::default(), None).unwrap());
    before(&store);
    let config = Config {
        listen: "127.0.0.1:0".into(),
        // Nothing else is called: no control plane is needed.
        upstream: "127.0.0.1:9".into(),
        latency_bounds: vec![],
        sync: settings,
    };
    let server = RunningServer::start(config, store.clone(), Arc::new(Plain))
        .await
        .unwrap();
    let client = StatesyncClient::connect(format!("http://{}", server.local_addr()))
        .await
        .unwrap();
    Running {
        server,
        client,
        store,
        _dir: dir,
    }
}

fn settings() -> HubSettings {
    HubSettings {
        sync: SyncSettings {
            heartbeat: Duration::from_millis(50),
            ..SyncSettings::default()
        },
        ..HubSettings::default()
    }
}

fn put(key: &str, value: &str) -> Op {
    Op {
        op: Some(op::Op::Put(PutOp {
            ns: "routes".into(),
            key: key.into(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

async fn commit(client: &mut StatesyncClient<Channel>, ops: Vec<Op>) -> i64 {
    let request = CommandRequest {
        ops,
        ..Default::default()
    };
    client.commit(request).await.unwrap().into_inner().rev
}

struct Worker {
    requests: mpsc::Sender<SyncRequest>,
    replies: Streaming<SyncReply>,
}

impl Worker {
    async fn connect(client: &StatesyncClient<Channel>, hello: Hello) -> Worker {
        let (requests, outgoing) = mpsc::channel(16);
        requests
            .send(message(sync_request::Msg::Hello(hello)))
            .await
            .unwrap();
        let replies = client
            .clone()
            .sync(ReceiverStream::new(outgoing))
            .await
            .unwrap()
            .into_inner();
        Worker { requests, replies }
    }

    async fn next(&mut self) -> sync_reply::Msg {
        let reply = tokio::time::timeout(PATIENCE, self.replies.message())
            .await
            .expect("a reply in time");
        reply.unwrap().expect("the stream goes on").msg.unwrap()
    }

    /// The next reply that is not a progress notice or a heartbeat.
    async fn next_news(&mut self) -> sync_reply::Msg {
        loop {
            match self.next().await {
                sync_reply::Msg::Progress(_) | sync_reply::Msg::Heartbeat(_) => {}
                other => return other,
            }
        }
    }

    async fn ack(&self, rev: i64, digests: Vec<NamespaceDigest>) {
        let ack = Ack {
            rev,
            digests,
            ..Default::default()
        };
        self.requests
            .send(message(sync_request::Msg::Ack(ack)))
            .await
            .unwrap();
    }

    async fn failure(&mut self) -> tonic::Status {
        loop {
            match tokio::time::timeout(PATIENCE, self.replies.message())
                .await
                .expect("an end in time")
            {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the stream ended without an error"),
                Err(status) => return status,
            }
        }
    }
}

fn message(msg: sync_request::Msg) -> SyncRequest {
    SyncRequest { msg: Some(msg) }
}

fn hello(worker_id: &str, from_rev: i64) -> Hello {
    Hello {
        worker_id: worker_id.into(),
        namespaces: vec!["routes".into()],
        from_rev,
        ..Default::default()
    }
}

fn routes_digest(store: &SqliteStore, rev: i64) -> Vec<NamespaceDigest> {
    vec![NamespaceDigest {
        ns: "routes".into(),
        root: store.digest("routes", Some(rev)).unwrap().to_vec(),
        count: 0,
    }]
}

#[tokio::test]
async fn an_empty_worker_bootstraps_then_tails_and_its_acks_are_checked() {
    let mut running = start_with(settings(), |_| {}).await;
    let client = &mut running.client;
    commit(client, vec![put("a", "1"), put("b", "2")]).await;
    let r2 = commit(client, vec![put("c", "3")]).await;

    let mut worker = Worker::connect(client, hello("w1", 0)).await;
    let sync_reply::Msg::Resync(resync) = worker.next_news().await else {
        panic!("a resync first")
    };
    assert_eq!((resync.rev, resync.reconcile), (r2, false));
    assert_eq!(resync.reason, "an empty replica bootstraps from a snapshot");
    let mut keys = Vec::new();
    loop {
        let sync_reply::Msg::Chunk(chunk) = worker.next_news().await else {
            panic!("chunks")
        };
        keys.extend(chunk.entries.into_iter().map(|e| e.key));
        if chunk.last {
            assert_eq!(chunk.digests, resync.digests);
            break;
        }
    }
    assert_eq!(keys, ["a", "b", "c"]);
    worker.ack(r2, routes_digest(&running.store, r2)).await;

    let r3 = commit(client, vec![put("a", "10")]).await;
    let sync_reply::Msg::Batch(batch) = worker.next_news().await else {
        panic!("a batch")
    };
    assert_eq!((batch.prev_rev, batch.rev), (r2, r3));
    assert_eq!(batch.revisions[0].changes[0].value, b"10");
    // A wrong digest: the worker shows as differing.
    worker
        .ack(
            r3,
            vec![NamespaceDigest {
                ns: "routes".into(),
                root: vec![0; 32],
                count: 3,
            }],
        )
        .await;
    let waited = client
        .wait_applied(WaitAppliedRequest {
            rev: r3,
            namespaces: vec!["routes".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(waited.complete);
    assert_eq!(waited.applied, ["w1"]);
    let hub = running.server.hub();
    let status = &hub.worker_statuses()[0];
    assert_eq!(
        (status.applied_rev, status.state.as_str(), status.digest.as_str()),
        (r3, "TAILING", "differ")
    );
    assert_eq!(status.resyncs, 1);

    worker.ack(r3, routes_digest(&running.store, r3)).await;
    let pending = client
        .wait_applied(WaitAppliedRequest {
            rev: r3 + 1,
            workers: vec!["w1".into(), "ghost".into()],
            timeout_s: 0.01,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!pending.complete);
    let states: Vec<(&str, &str)> = pending
        .pending
        .iter()
        .map(|s| (s.worker_id.as_str(), s.state.as_str()))
        .collect();
    assert_eq!(states, [("ghost", "UNKNOWN"), ("w1", "TAILING")]);
    assert_eq!(pending.pending[1].digest, "agree");
}

#[tokio::test]
async fn an_idle_stream_gets_progress() {
    let mut running = start_with(settings(), |_| {}).await;
    let client = &mut running.client;
    let r1 = commit(client, vec![put("a", "1")]).await;
    let mut worker = Worker::connect(client, hello("w1", r1)).await;
    let sync_reply::Msg::Progress(progress) = worker.next().await else {
        panic!("progress when idle")
    };
    assert_eq!((progress.rev, progress.head_rev), (r1, r1));
}

#[tokio::test]
async fn a_worker_older_than_the_feed_catches_up_from_the_log() {
    let mut first = start_with(settings(), |_| {}).await;
    for i in 0..5 {
        commit(&mut first.client, vec![put(&format!("k{i}"), "1")]).await;
    }
    // A new server on the same store: its feed starts at revision 5.
    let Running {
        server, store, _dir, ..
    } = first;
    server.shutdown(Duration::from_secs(1)).await.unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        upstream: "127.0.0.1:9".into(),
        latency_bounds: vec![],
        sync: HubSettings {
            sync: SyncSettings {
                window: 2,
                ..settings().sync
            },
            ..settings()
        },
    };
    let server = RunningServer::start(config, store.clone(), Arc::new(Plain))
        .await
        .unwrap();
    let client = StatesyncClient::connect(format!("http://{}", server.local_addr()))
        .await
        .unwrap();
    let mut worker = Worker::connect(&client, hello("w1", 1)).await;
    let sync_reply::Msg::Batch(batch) = worker.next_news().await else {
        panic!("a batch from the log")
    };
    let revs: Vec<i64> = batch.revisions.iter().map(|r| r.rev).collect();
    assert_eq!(
        (batch.prev_rev, batch.rev, revs),
        (1, 3, vec![2, 3]),
        "the window is 2 changes"
    );
    worker.ack(3, vec![]).await;
    let sync_reply::Msg::Batch(batch) = worker.next_news().await else {
        panic!("the rest")
    };
    assert_eq!((batch.prev_rev, batch.rev), (3, 5));
}

#[tokio::test]
async fn a_worker_in_the_feed_but_older_than_its_memory_reads_the_log_and_tails_on() {
    let only_the_newest = HubSettings {
        sync: SyncSettings {
            window: 2,
            ..settings().sync
        },
        feed: FeedLimits {
            max_memory: 1,
            ..FeedLimits::default()
        },
        ..settings()
    };
    let mut running = start_with(only_the_newest, |_| {}).await;
    let client = &mut running.client;
    for i in 0..5 {
        commit(client, vec![put(&format!("k{i}"), "1")]).await;
    }
    let mut worker = Worker::connect(client, hello("w1", 1)).await;
    let mut batches = Vec::new();
    for _ in 0..2 {
        let sync_reply::Msg::Batch(batch) = worker.next_news().await else {
            panic!("a batch, not a resync")
        };
        worker.ack(batch.rev, vec![]).await;
        batches.push((batch.prev_rev, batch.rev));
    }
    assert_eq!(batches, vec![(1, 3), (3, 5)], "from the log, 2 changes at a time");
    let r6 = commit(client, vec![put("k5", "1")]).await;
    let sync_reply::Msg::Batch(batch) = worker.next_news().await else {
        panic!("the new revision")
    };
    assert_eq!((batch.prev_rev, batch.rev), (5, r6));
}

#[tokio::test]
async fn a_stream_waiting_for_a_snapshot_slot_is_told_it_is_queued() {
    let one_slot = HubSettings {
        snapshot_slots: 1,
        chunk_size: 10,
        ..settings()
    };
    let mut running = start_with(one_slot, |_| {}).await;
    let client = &mut running.client;
    let big = format!("\"{}\"", "x".repeat(4000));
    for batch in 0..10 {
        let ops = (0..100).map(|i| put(&format!("k{batch}-{i}"), &big)).collect();
        commit(client, ops).await;
    }
    // Holds the only slot: it reads nothing, so its 4 MB snapshot stalls.
    let stalled = Worker::connect(client, hello("stalled", 0)).await;
    let mut waiting = Worker::connect(client, hello("waiting", 0)).await;
    // Whichever stream got the slot, the other is queued; make `waiting` the queued one
    // by reading until it is told so or gets its resync.
    match waiting.next().await {
        sync_reply::Msg::Heartbeat(beat) => {
            assert!(beat.snapshot_queued);
            drop(stalled);
            let sync_reply::Msg::Resync(resync) = waiting.next_news().await else {
                panic!("then its resync")
            };
            assert_eq!(resync.rev, 10);
        }
        sync_reply::Msg::Resync(_) => {
            // `waiting` won the slot: `stalled` must be queued instead.
            let mut stalled = stalled;
            let mut heard = false;
            while !heard {
                if let sync_reply::Msg::Heartbeat(beat) = stalled.next().await {
                    heard = beat.snapshot_queued;
                }
            }
        }
        other => panic!("unexpected {other:?}"),
    }
}

#[tokio::test]
async fn protocol_errors_end_the_stream_with_failed_precondition() {
    let mut running = start_with(settings(), |_| {}).await;
    let client = &mut running.client;
    let r1 = commit(client, vec![put("a", "1")]).await;
    let mut worker = Worker::connect(client, hello("w1", r1)).await;
    worker.ack(r1 + 5, vec![]).await;
    let status = worker.failure().await;
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        status.message(),
        format!("ACK of revision {}, but only {r1} was sent", r1 + 5)
    );

    let (requests, outgoing) = mpsc::channel(4);
    requests
        .send(message(sync_request::Msg::Ack(Ack::default())))
        .await
        .unwrap();
    let mut replies = client
        .clone()
        .sync(ReceiverStream::new(outgoing))
        .await
        .unwrap()
        .into_inner();
    let status = replies.message().await.unwrap_err();
    assert_eq!(status.message(), "the first message must be a hello, got ack");
}

/// A worker's replica of "routes" as plain (key, canonical value) pairs.
struct Replica(BTreeMap<String, String>);

impl Replica {
    fn hashes(&self) -> Vec<(String, Hash)> {
        self.0
            .iter()
            .map(|(k, v)| (k.clone(), digest::value_hash(v.as_bytes())))
            .collect()
    }

    fn digest(&self) -> Vec<NamespaceDigest> {
        let hashes = self.hashes();
        let built =
            digest::NamespaceDigest::from_items(hashes.iter().map(|(k, h)| (k.as_str(), h)), |_, _| {});
        vec![NamespaceDigest {
            ns: "routes".into(),
            root: built.root().to_vec(),
            count: self.0.len() as i64,
        }]
    }
}

impl Trie for Replica {
    type Error = Infallible;

    fn node(&mut self, prefix: &str) -> Result<Node, Infallible> {
        let leaves = self.leaves(prefix)?;
        Ok(Node::from_leaves(leaves.iter().map(|(k, h)| (k.as_str(), h))))
    }

    fn leaves(&mut self, prefix: &str) -> Result<Vec<(String, Hash)>, Infallible> {
        let under = |key: &str| {
            let hex: String = digest::position(key).iter().map(|b| format!("{b:02x}")).collect();
            hex.starts_with(prefix)
        };
        Ok(self.hashes().into_iter().filter(|(k, _)| under(k)).collect())
    }
}

#[tokio::test]
async fn drift_is_localized_by_descent_repaired_and_verified() {
    let mut running = start_with(settings(), |_| {}).await;
    let client = &mut running.client;
    let rev = commit(client, vec![put("a", "1"), put("b", "2"), put("c", "3")]).await;
    // The worker says it is at the head, but holds b wrongly, lacks c and has x.
    let mut replica = Replica(
        [("a", "1"), ("b", "20"), ("x", "9")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
    );
    let mut worker = Worker::connect(client, hello("w1", rev)).await;
    worker.ack(rev, replica.digest()).await;
    let mut repairs = 0;
    let mut queries = 0;
    let ours: BTreeMap<String, String> = [("a", "1"), ("b", "2"), ("c", "3")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    while replica.0 != ours {
        match worker.next_news().await {
            sync_reply::Msg::Query(query) => {
                queries += 1;
                assert_eq!(query.ns, "routes");
                let nodes = descent::describe(&mut replica, &query.prefixes).unwrap();
                let names: Vec<descent::NameQuery> = query
                    .names
                    .iter()
                    .map(|n| descent::NameQuery {
                        prefix: n.prefix.clone(),
                        leaves: n.leaves.clone(),
                    })
                    .collect();
                let names = descent::name(&mut replica, &names).unwrap();
                let answer = DigestAnswer {
                    id: query.id,
                    ns: query.ns,
                    rev,
                    nodes: nodes
                        .into_iter()
                        .map(|n| proto::NodeAnswer {
                            prefix: n.prefix,
                            children: n.children,
                            leaves: n.leaves,
                            is_leaves: n.is_leaves,
                        })
                        .collect(),
                    names,
                };
                worker
                    .requests
                    .send(message(sync_request::Msg::Answer(answer)))
                    .await
                    .unwrap();
            }
            sync_reply::Msg::Repair(repair) => {
                repairs += 1;
                assert_eq!(repair.rev, rev);
                for entry in repair.entries {
                    replica
                        .0
                        .insert(entry.key, String::from_utf8(entry.value).unwrap());
                }
                for deleted in repair.deletes {
                    replica.0.remove(&deleted.key);
                }
                let ack = Ack {
                    rev,
                    digests: replica.digest(),
                    repaired: repair.id,
                    ..Default::default()
                };
                worker
                    .requests
                    .send(message(sync_request::Msg::Ack(ack)))
                    .await
                    .unwrap();
            }
            other => panic!("a digest query or a repair, not {other:?}"),
        }
    }
    assert_eq!(
        replica.digest()[0].root,
        routes_digest(&running.store, rev)[0].root
    );
    // b and c first (x's leaf passes for b's other value), then x, named by the worker.
    assert_eq!(repairs, 2);
    assert!(
        queries >= 3,
        "a descent, then one more with a name query: {queries}"
    );
    let hub = running.server.hub();
    let verified =
        |status: &proto::WorkerStatus| status.repairs.last().is_some_and(|r| r.outcome == "verified");
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !verified(&hub.worker_statuses()[0]) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            hub.worker_statuses()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let status = &hub.worker_statuses()[0];
    assert_eq!(
        (status.divergences, status.keys_repaired, status.digest.as_str()),
        (1, 3, "agree")
    );
    let record = &status.repairs[0];
    assert_eq!((record.ns.as_str(), record.key_count), ("routes", 3));
    assert_eq!(record.keys, ["b", "c", "x"]);
    assert_eq!(record.reason, format!("digest differs at revision {rev}"));
    assert!(record.round_trips >= 3 && record.bytes > 0);
    assert_eq!(status.resyncs, 0, "repaired, not resynced");
    // The hub's figures for /metrics: its one verified repair, and the one revision fed.
    assert_eq!(hub.repair_seconds(), [record.seconds]);
    let (revisions, bytes) = hub.feed_size();
    assert_eq!(revisions, 1);
    assert!(bytes > 0);
}

/// Stores each contract request as the governed namespace's contract record,
/// as the control plane's gate does once it checked the request.
struct RecordContracts;

impl Gate for RecordContracts {
    fn rebase(&mut self, _read: &mut ReadKey<'_>, record: &KeyRecord) -> Result<Vec<u8>, CommandError> {
        Ok(record.value.clone())
    }

    fn admit(
        &mut self,
        command: &core_command::Command,
        mut planned: Vec<PlannedChange>,
        _read: &mut ReadKey<'_>,
        rev: i64,
        _now_ms: i64,
    ) -> Result<Vec<PlannedChange>, CommandError> {
        for op in &command.ops {
            if let core_command::Op::Contract { governed, request } = op {
                planned.push(PlannedChange {
                    ns: CONTRACTS_NAMESPACE.to_owned(),
                    key: governed.clone(),
                    op: ChangeOp::Put,
                    before: None,
                    record: Some(KeyRecord {
                        ns: CONTRACTS_NAMESPACE.to_owned(),
                        key: governed.clone(),
                        value: request.clone(),
                        create_rev: rev,
                        mod_rev: rev,
                        version: 1,
                    }),
                });
            }
        }
        Ok(planned)
    }
}

/// routes' contract record with versions 1..=n, version k registered at
/// `since[k - 1]`: v2 renames /a to /b, the others are identities.
fn routes_contract(since: &[i64]) -> Op {
    let rename = r#"{"format":"statesync.translation/1","from":1,"to":2,"up":[{"op":"rename","from":"/a","to":"/b"}]}"#;
    let versions: Vec<String> = since
        .iter()
        .enumerate()
        .map(|(i, rev)| {
            let translation = if i == 1 { rename } else { "null" };
            format!(
                r#"{{"version":{},"schema":true,"since_rev":{rev},"translation":{translation}}}"#,
                i + 1
            )
        })
        .collect();
    let record = format!(r#"{{"namespace":"routes","versions":[{}]}}"#, versions.join(","));
    Op {
        op: Some(op::Op::Contract(ContractOp {
            ns: "routes".into(),
            request: record.into_bytes(),
        })),
    }
}

fn declaring(worker_id: &str, from_rev: i64, versions: &[i32], replica_version: i32) -> Hello {
    Hello {
        versions: vec![SchemaVersions {
            ns: "routes".into(),
            versions: versions.to_vec(),
            replica_version,
        }],
        ..hello(worker_id, from_rev)
    }
}

impl Worker {
    /// A resync and its snapshot's entries.
    async fn snapshot(&mut self) -> (Resync, Vec<Entry>) {
        let sync_reply::Msg::Resync(resync) = self.next_news().await else {
            panic!("a resync")
        };
        let mut entries = Vec::new();
        loop {
            let sync_reply::Msg::Chunk(chunk) = self.next_news().await else {
                panic!("chunks")
            };
            entries.extend(chunk.entries);
            if chunk.last {
                return (resync, entries);
            }
        }
    }
}

/// (key, value, schema version, source hash) of each entry.
fn served(entries: &[Entry]) -> Vec<(&str, &str, i32, Vec<u8>)> {
    entries
        .iter()
        .map(|e| {
            let value = std::str::from_utf8(&e.value).unwrap();
            (e.key.as_str(), value, e.schema_version, e.source_hash.clone())
        })
        .collect()
}

fn hash(value: &str) -> Vec<u8> {
    digest::sha256(value.as_bytes()).to_vec()
}

#[tokio::test]
async fn each_worker_is_served_the_version_it_declares_and_re_sent_the_state_when_it_moves() {
    let mut running = start_with(settings(), |store| store.set_gate(Box::new(RecordContracts))).await;
    let client = &mut running.client;
    let r1 = commit(client, vec![routes_contract(&[0])]).await;
    let r2 = commit(client, vec![put("k1", r#"{"a":1}"#)]).await;
    commit(client, vec![routes_contract(&[r1, r2 + 1])]).await;
    let r4 = commit(client, vec![put("k2", r#"{"b":2}"#)]).await;

    let mut old = Worker::connect(client, declaring("old", 0, &[1], -1)).await;
    let (_, entries) = old.snapshot().await;
    assert_eq!(
        served(&entries),
        [
            ("k1", r#"{"a":1}"#, 1, vec![]),
            ("k2", r#"{"a":2}"#, 1, hash(r#"{"b":2}"#))
        ]
    );
    old.ack(r4, routes_digest(&running.store, r4)).await;
    let mut new = Worker::connect(client, declaring("new", 0, &[1, 2, 3], -1)).await;
    let (_, entries) = new.snapshot().await;
    assert_eq!(
        served(&entries),
        [
            ("k1", r#"{"b":1}"#, 2, hash(r#"{"a":1}"#)),
            ("k2", r#"{"b":2}"#, 2, vec![])
        ]
    );
    new.ack(r4, routes_digest(&running.store, r4)).await;

    let r5 = commit(client, vec![put("k3", r#"{"b":3}"#)]).await;
    let sync_reply::Msg::Batch(batch) = old.next_news().await else {
        panic!("a batch")
    };
    let change = &batch.revisions[0].changes[0];
    assert_eq!(change.value, br#"{"a":3}"#);
    assert_eq!(change.value_hash, hash(r#"{"a":3}"#));
    assert_eq!(
        (change.schema_version, &change.source_hash),
        (1, &hash(r#"{"b":3}"#))
    );
    let sync_reply::Msg::Batch(batch) = new.next_news().await else {
        panic!("a batch")
    };
    let change = &batch.revisions[0].changes[0];
    assert_eq!(
        (change.value.as_slice(), change.schema_version),
        (&br#"{"b":3}"#[..], 2)
    );
    // The worker's digest counts the stored values: agreement needs nothing else.
    old.ack(r5, routes_digest(&running.store, r5)).await;
    new.ack(r5, routes_digest(&running.store, r5)).await;

    let mut future = Worker::connect(client, declaring("future", 0, &[3], -1)).await;
    let refused = future.failure().await;
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "no translation path in namespace 'routes' from schema v2 to any of [3]: the registered versions are 1..2"
    );
    // A replica kept in v1 while the worker is now served v2 is re-sent.
    let mut upgraded = Worker::connect(client, declaring("upgraded", r5, &[1, 2], 1)).await;
    let (resync, entries) = upgraded.snapshot().await;
    assert_eq!(
        (resync.reason.as_str(), resync.reconcile),
        (
            "schema version changed: routes (replica in v1, now served in v2)",
            false
        )
    );
    assert_eq!(entries.len(), 3);

    // v3 is registered: the worker that declared it is re-sent the state in it.
    let r6 = commit(client, vec![routes_contract(&[r1, r2 + 1, r5 + 1])]).await;
    let (resync, entries) = new.snapshot().await;
    assert_eq!(resync.reason, "now served in routes v3: re-sending the state");
    assert_eq!(
        served(&entries),
        [
            ("k1", r#"{"b":1}"#, 3, hash(r#"{"a":1}"#)),
            ("k2", r#"{"b":2}"#, 3, hash(r#"{"b":2}"#)),
            ("k3", r#"{"b":3}"#, 3, hash(r#"{"b":3}"#))
        ]
    );
    new.ack(r6, routes_digest(&running.store, r6)).await;
    let r7 = commit(client, vec![put("k4", r#"{"b":4}"#)]).await;
    let sync_reply::Msg::Batch(batch) = old.next_news().await else {
        panic!("the old worker keeps tailing in v1")
    };
    assert_eq!(
        (batch.rev, batch.revisions[0].changes[0].value.as_slice()),
        (r7, &br#"{"a":4}"#[..])
    );
    let sync_reply::Msg::Batch(batch) = new.next_news().await else {
        panic!("a batch in v3")
    };
    assert_eq!(batch.revisions[0].changes[0].schema_version, 3);

    let hub = running.server.hub();
    let mut shown: Vec<(String, Vec<i32>, String)> = hub
        .worker_statuses()
        .into_iter()
        .filter(|s| s.connected)
        .map(|s| {
            let versions = s.served.iter().flat_map(|v| v.versions.clone()).collect();
            (s.worker_id, versions, s.digest)
        })
        .collect();
    shown.sort();
    assert_eq!(
        shown,
        [
            ("new".to_owned(), vec![3], "agree".to_owned()),
            ("old".to_owned(), vec![1], "agree".to_owned()),
            ("upgraded".to_owned(), vec![2], "unknown".to_owned()),
        ]
    );
}
