//! The server on port 0 with a temporary store, driven by a tonic client:
//! native commits and reads, their errors' status and metadata, and calls
//! proxied to a stand-in control plane (a second tonic server).

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use statesync_server::proto::statesync_client::StatesyncClient;
use statesync_server::proto::statesync_server::{Statesync, StatesyncServer};
use statesync_server::proto::{
    self, CommandReply, CommandRequest, DeleteOp, GetRequest, Op, PutOp, RangeRequest, SnapshotRequest,
    StatusReply, StatusRequest, compare, op,
};
use statesync_server::{
    Code, CommitCounters, Config, ERROR_METADATA_KEY, ErrorReporter, HubSettings, NativeError, Reported,
    RunningServer,
};
use statesync_store::{SqliteStore, StoreSettings};
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// Names each failure after its variant (the binding asks Python instead).
struct Plain;

impl ErrorReporter for Plain {
    fn report(&self, error: NativeError) -> Reported {
        let (code, class) = match &error {
            NativeError::Command(statesync_core::error::CommandError::Conflict(_)) => {
                (Code::Aborted, "ConflictError")
            }
            NativeError::Command(_) => (Code::InvalidArgument, "InvalidCommandError"),
            NativeError::Store(statesync_store::StoreError::Invalid(_)) => {
                (Code::InvalidArgument, "InvalidNamespaceError")
            }
            NativeError::Store(_) => (Code::Unavailable, "StoreError"),
            NativeError::InvalidInput(_) => (Code::InvalidArgument, "InvalidInputError"),
            NativeError::Protocol(_) => (Code::FailedPrecondition, "ProtocolError"),
            NativeError::NoTranslationPath(_) => (Code::FailedPrecondition, "NoTranslationPathError"),
        };
        Reported {
            code,
            error: proto::Error {
                code: class.into(),
                message: error.to_string(),
                detail: b"{}".to_vec(),
                retryable: false,
            },
        }
    }
}

/// A stand-in control plane: Status answers a fixed head and the caller's
/// address it was given.
struct ControlPlane;

#[tonic::async_trait]
impl Statesync for ControlPlane {
    async fn status(&self, request: Request<StatusRequest>) -> Result<Response<StatusReply>, Status> {
        let peer = request
            .metadata()
            .get(statesync_server::PEER_METADATA_KEY)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        Ok(Response::new(StatusReply {
            head_rev: 42,
            data: peer,
            ..Default::default()
        }))
    }
}

struct Running {
    server: RunningServer,
    client: StatesyncClient<Channel>,
    counters: Arc<CommitCounters>,
    _dir: tempfile::TempDir,
}

async fn start() -> Running {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.sqlite"), StoreSettings::default(), None).unwrap();
    let upstream = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream_addr = upstream.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(StatesyncServer::new(ControlPlane))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(upstream)),
    );
    let config = Config {
        listen: "127.0.0.1:0".into(),
        upstream: upstream_addr.to_string(),
        latency_bounds: vec![0.001, 0.01, 1.0],
        sync: HubSettings::default(),
    };
    let server = RunningServer::start(config, Arc::new(store), Arc::new(Plain))
        .await
        .unwrap();
    let client = StatesyncClient::connect(format!("http://{}", server.local_addr()))
        .await
        .unwrap();
    let counters = server.counters();
    Running {
        server,
        client,
        counters,
        _dir: dir,
    }
}

fn put(ns: &str, key: &str, value: &str) -> Op {
    Op {
        op: Some(op::Op::Put(PutOp {
            ns: ns.into(),
            key: key.into(),
            value: value.as_bytes().to_vec(),
            ..Default::default()
        })),
    }
}

fn command(ops: Vec<Op>) -> CommandRequest {
    CommandRequest {
        ops,
        ..Default::default()
    }
}

fn error_of(status: &Status) -> proto::Error {
    let bytes = status
        .metadata()
        .get_bin(ERROR_METADATA_KEY)
        .expect("error metadata");
    proto::Error::decode(bytes.to_bytes().unwrap()).unwrap()
}

#[tokio::test]
async fn commits_and_reads_natively() {
    let mut r = start().await;
    let reply = r
        .client
        .commit(command(vec![put("app", "a", r#"{"b":1, "a":2}"#)]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.rev, 1);
    assert!(!reply.command_id.is_empty(), "the server assigns a command id");

    let got = r
        .client
        .get(GetRequest {
            ns: "app".into(),
            key: "a".into(),
            rev: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.rev, 1);
    let entry = got.entry.unwrap();
    assert_eq!(entry.value, br#"{"a":2,"b":1}"#, "values are stored canonical");
    assert_eq!((entry.create_rev, entry.mod_rev, entry.version), (1, 1, 1));

    for i in 0..5 {
        r.client
            .commit(command(vec![put("app", &format!("k{i}"), "[]")]))
            .await
            .unwrap();
    }
    let pages: Vec<_> = r
        .client
        .range(RangeRequest {
            ns: "app".into(),
            prefix: "k".into(),
            rev: 0,
            page_size: 2,
        })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    let sizes: Vec<usize> = pages.iter().map(|p| p.entries.len()).collect();
    assert_eq!(sizes, [2, 2, 1]);
    assert!(
        pages.iter().all(|p| p.rev == 6),
        "every page reads the revision of the first"
    );

    let chunks: Vec<_> = r
        .client
        .snapshot(SnapshotRequest {
            namespaces: vec![],
            rev: 0,
            chunk_size: 4,
        })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    let last = chunks.last().unwrap();
    assert!(last.last && last.entries.is_empty());
    assert_eq!(chunks.iter().map(|c| c.entries.len()).sum::<usize>(), 6);
    assert_eq!(last.digests.len(), 1);
    assert_eq!((last.digests[0].ns.as_str(), last.digests[0].count), ("app", 6));
    assert_eq!(r.counters.snapshot().commits, 6);
    r.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn a_stream_answers_in_order_with_errors_in_replies() {
    let mut r = start().await;
    let (tx, rx) = mpsc::channel(8);
    let mut replies = r
        .client
        .commit_stream(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    for tag in 1..=20u64 {
        let mut request = command(vec![put("app", &format!("k{tag}"), "1")]);
        if tag == 7 {
            request.ops[0] = put("app", "bad", "{\"a\":1,\"a\":2}");
        }
        request.tag = tag;
        tx.send(request).await.unwrap();
    }
    drop(tx);
    let mut got: Vec<CommandReply> = Vec::new();
    while let Some(reply) = replies.next().await {
        got.push(reply.unwrap());
    }
    let tags: Vec<u64> = got.iter().map(|r| r.tag).collect();
    assert_eq!(tags, (1..=20).collect::<Vec<_>>());
    let bad = &got[6];
    assert_eq!(bad.error.as_ref().unwrap().code, "InvalidCommandError");
    assert!(
        bad.error.as_ref().unwrap().message.contains("duplicate"),
        "{bad:?}"
    );
    let revs: Vec<i64> = got.iter().filter(|r| r.error.is_none()).map(|r| r.rev).collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]), "{revs:?}");
    let stats = r.counters.snapshot();
    assert_eq!(
        (stats.commits, stats.errors.get("InvalidCommandError").copied()),
        (19, Some(1))
    );
    assert_eq!(stats.buckets.iter().sum::<u64>(), 19);
    r.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn errors_carry_status_and_metadata() {
    let mut r = start().await;
    r.client
        .commit(command(vec![put("app", "a", "1")]))
        .await
        .unwrap();
    let mut cas = command(vec![Op {
        op: Some(op::Op::Delete(DeleteOp {
            ns: "app".into(),
            key: "a".into(),
        })),
    }]);
    cas.compares.push(proto::Compare {
        ns: "app".into(),
        key: "a".into(),
        target: Some(compare::Target::ModRev(9)),
    });
    let status = r.client.commit(cas).await.unwrap_err();
    assert_eq!(status.code(), Code::Aborted);
    let error = error_of(&status);
    assert_eq!(error.code, "ConflictError");
    assert_eq!(status.message(), error.message);

    let status = r
        .client
        .get(GetRequest {
            ns: "app".into(),
            key: "a".into(),
            rev: -1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(error_of(&status).message, "a revision is an integer >= 0, got -1");

    let mut stream = r
        .client
        .range(RangeRequest {
            ns: "Bad Name".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let status = stream.next().await.unwrap().unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(error_of(&status).message.contains("Bad Name"));

    let too_many = command(
        (0..10_001)
            .map(|i| put("app", &format!("k{i}"), "not json"))
            .collect(),
    );
    let status = r.client.commit(too_many).await.unwrap_err();
    assert!(
        error_of(&status).message.contains("at most 10000 ops"),
        "refused by count, values unread"
    );
    assert_eq!(
        r.counters.snapshot().errors.get("ConflictError").copied(),
        Some(1)
    );
    r.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn other_calls_are_proxied() {
    let mut r = start().await;
    let status = r.client.status(StatusRequest {}).await.unwrap().into_inner();
    assert_eq!(status.head_rev, 42);
    assert!(
        status.data.starts_with("ipv4:127.0.0.1:"),
        "the caller's address is passed on: {status:?}"
    );
    r.server.shutdown(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn an_unreachable_control_plane_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("s.sqlite"), StoreSettings::default(), None).unwrap();
    // A port bound and closed again: nothing listens there.
    let upstream = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = Config {
        listen: "127.0.0.1:0".into(),
        upstream: upstream.to_string(),
        latency_bounds: vec![],
        sync: HubSettings::default(),
    };
    let server = RunningServer::start(config, Arc::new(store), Arc::new(Plain))
        .await
        .unwrap();
    let mut client = StatesyncClient::connect(format!("http://{}", server.local_addr()))
        .await
        .unwrap();
    let status = client.status(StatusRequest {}).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    server.shutdown(Duration::from_secs(5)).await.unwrap();
}
