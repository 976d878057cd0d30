//! The server's life: bind, serve until told to stop, drain, close.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use statesync_store::SqliteStore;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

use crate::error::{ErrorReporter, ServerError};
use crate::feed::Feed;
use crate::metrics::CommitCounters;
use crate::proto::statesync_server::{SERVICE_NAME, StatesyncServer};
use crate::proxy::{self, Proxy};
use crate::service::DataPlane;
use crate::sync::{HubSettings, SyncHub};

/// The methods served natively; every other path goes to the control plane.
pub const NATIVE_METHODS: [&str; 8] = [
    "Commit",
    "CommitStream",
    "Get",
    "Range",
    "Snapshot",
    "Sync",
    "WaitApplied",
    "Reconcile",
];

/// The largest message received or sent (as the Python server allowed).
const MAX_MESSAGE_BYTES: usize = 64 * 1024 * 1024;
/// Idle connections are pinged this often, so dead clients are noticed.
const KEEPALIVE: Duration = Duration::from_secs(20);

/// Where to serve and where the rest of the service lives.
#[derive(Clone, Debug)]
pub struct Config {
    /// HOST:PORT to listen on (port 0 picks a free one).
    pub listen: String,
    /// HOST:PORT of the control plane's gRPC server (plaintext HTTP/2).
    pub upstream: String,
    /// Upper bounds (seconds) of the commit latency histogram.
    pub latency_bounds: Vec<f64>,
    /// How the sync hub serves Sync, WaitApplied and Reconcile.
    pub sync: HubSettings,
}

/// A running server; [`RunningServer::shutdown`] stops it.
pub struct RunningServer {
    local_addr: SocketAddr,
    counters: Arc<CommitCounters>,
    hub: Arc<SyncHub>,
    stop: CancellationToken,
    abandon: CancellationToken,
    task: JoinHandle<Result<(), ServerError>>,
}

impl RunningServer {
    /// Binds `config.listen` and serves in a task of the current runtime.
    pub async fn start(
        config: Config,
        store: Arc<SqliteStore>,
        reporter: Arc<dyn ErrorReporter>,
    ) -> Result<Self, ServerError> {
        let bind_error = |source| ServerError::Bind {
            address: config.listen.clone(),
            source,
        };
        let addr = tokio::net::lookup_host(&config.listen)
            .await
            .map_err(bind_error)?
            .next()
            .ok_or_else(|| bind_error(std::io::ErrorKind::AddrNotAvailable.into()))?;
        let incoming = TcpIncoming::bind(addr)
            .map_err(bind_error)?
            .with_nodelay(Some(true));
        let local_addr = incoming.local_addr().map_err(bind_error)?;
        let proxy = Proxy::new(&config.upstream)?;

        let counters = Arc::new(CommitCounters::new(config.latency_bounds));
        let abandon = CancellationToken::new();
        let feed = Feed::attach(&store, config.sync.feed);
        let hub = SyncHub::new(store.clone(), feed, reporter.clone(), config.sync);
        let plane = DataPlane::new(store, reporter, counters.clone(), abandon.clone(), hub.clone());
        let grpc = StatesyncServer::new(plane)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        let mut router = axum::Router::new();
        for method in NATIVE_METHODS {
            router = router.route_service(&format!("/{SERVICE_NAME}/{method}"), grpc.clone());
        }
        let router = router.fallback(proxy::forward).with_state(proxy);

        let stop = CancellationToken::new();
        let serving = Server::builder()
            .http2_keepalive_interval(Some(KEEPALIVE))
            .add_routes(Routes::from(router))
            .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());
        let task = tokio::spawn(async move { serving.await.map_err(ServerError::from) });
        Ok(RunningServer {
            local_addr,
            counters,
            hub,
            stop,
            abandon,
            task,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The commit counters.
    pub fn counters(&self) -> Arc<CommitCounters> {
        self.counters.clone()
    }

    /// The sync hub.
    pub fn hub(&self) -> Arc<SyncHub> {
        self.hub.clone()
    }

    /// Stops accepting, lets calls in flight finish for up to `grace`, then
    /// ends the rest.
    pub async fn shutdown(self, grace: Duration) -> Result<(), ServerError> {
        self.stop.cancel();
        // Sync streams never end by themselves: end them now.
        self.hub.close();
        let mut task = self.task;
        match tokio::time::timeout(grace, &mut task).await {
            Ok(joined) => joined.unwrap_or(Ok(())),
            Err(_) => {
                self.abandon.cancel();
                task.abort();
                Ok(())
            }
        }
    }
}
