//! The data-plane server (crates/server), started from Python.
//!
//! It runs on its own tokio runtime (background threads) and shares the
//! store of a `Store`. Failures are reported to clients exactly as the Python
//! servicer reported them: the binding builds the Python exception with the
//! same table as the store (`command_error`, `store_error`) and lets
//! `statesync.wire` turn it into a status and a `statesync.v1.Error`. The
//! interpreter is entered only on that error path.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prost::Message;
use pyo3::exceptions::{PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use statesync_core::sync::controller::SyncSettings;
use statesync_server::feed::FeedLimits;
use statesync_server::proto;
use statesync_server::{
    Code, CommitCounters, Config, ErrorReporter, HubSettings, NativeError, Reported, RunningServer,
    ServerError, SyncHub,
};
use tokio::runtime::Runtime;

use crate::store::{PyStore, command_error, raise, store_error};

/// Threads of the server's runtime: the machine's cores are shared with the
/// interpreter and the committer, and the work per call is small.
const WORKER_THREADS: usize = 2;

/// Builds the Python error and asks `statesync.wire` how it travels.
struct PyReporter;

fn wire_report(py: Python<'_>, error: &PyErr) -> PyResult<Reported> {
    static WIRE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let wire = WIRE.get_or_try_init(py, || py.import("statesync.wire").map(Bound::unbind))?;
    let wire = wire.bind(py);
    let value = error.value(py);
    let encoded: Vec<u8> = wire
        .call_method1("error_to_pb", (value,))?
        .call_method0("SerializeToString")?
        .extract()?;
    let code: i32 = wire
        .call_method1("status_code", (value,))?
        .getattr("value")?
        .get_item(0)?
        .extract()?;
    let error = proto::Error::decode(encoded.as_slice())
        .map_err(|e| PyRuntimeError::new_err(format!("statesync.wire.error_to_pb: {e}")))?;
    Ok(Reported {
        code: Code::from_i32(code),
        error,
    })
}

impl ErrorReporter for PyReporter {
    fn report(&self, error: NativeError) -> Reported {
        Python::attach(|py| {
            let exception = match error {
                NativeError::Command(e) => command_error(py, e),
                NativeError::Store(e) => store_error(py, e),
                NativeError::InvalidInput(reason) => raise(py, "InvalidInputError", (reason,)),
                NativeError::Protocol(e) => raise(py, "ProtocolError", (e.message().to_owned(),)),
                NativeError::NoTranslationPath(e) => raise(
                    py,
                    "NoTranslationPathError",
                    (e.namespace, e.from_version, e.supported, e.reason),
                ),
            };
            // Not a statesync error (a bug in a gate): reported as gRPC reports
            // an unexpected exception in a handler, with the error's own text.
            wire_report(py, &exception).unwrap_or_else(|_| Reported {
                code: Code::Unknown,
                error: proto::Error {
                    code: exception
                        .get_type(py)
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default(),
                    message: exception.to_string(),
                    ..Default::default()
                },
            })
        })
    }
}

/// Forwards the data plane's log records to Python logging (`statesync.sync`
/// for sync streams, `statesync.server` otherwise), where the controller's
/// other logs go. Records are rare (connects, resyncs, drops): one
/// interpreter round trip each is fine.
struct PyLogBridge;

impl ::log::Log for PyLogBridge {
    fn enabled(&self, metadata: &::log::Metadata<'_>) -> bool {
        metadata.target().starts_with("statesync_server") || metadata.target().starts_with("statesync_worker")
    }

    fn log(&self, record: &::log::Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let name = if record.target().starts_with("statesync_server::sync") {
            "statesync.sync"
        } else if record.target().starts_with("statesync_worker") {
            "statesync.worker"
        } else {
            "statesync.server"
        };
        let level = match record.level() {
            ::log::Level::Error => 40,
            ::log::Level::Warn => 30,
            ::log::Level::Info => 20,
            ::log::Level::Debug | ::log::Level::Trace => 10,
        };
        let message = record.args().to_string();
        Python::attach(|py| {
            let logged = py
                .import("logging")
                .and_then(|logging| logging.call_method1("getLogger", (name,)))
                .and_then(|logger| logger.call_method1("log", (level, message)));
            if let Err(e) = logged {
                e.write_unraisable(py, None);
            }
        });
    }

    fn flush(&self) {}
}

/// Installs [`PyLogBridge`] once per process (later calls keep it).
pub(crate) fn forward_logs() {
    if ::log::set_logger(&PyLogBridge).is_ok() {
        ::log::set_max_level(::log::LevelFilter::Info);
    }
}

fn server_error(error: ServerError) -> PyErr {
    match error {
        ServerError::Bind { .. } => PyOSError::new_err(error.to_string()),
        ServerError::Upstream(_) => PyValueError::new_err(error.to_string()),
        ServerError::Transport(_) => PyRuntimeError::new_err(error.to_string()),
    }
}

/// A running data-plane server.
#[pyclass(module = "statesync._native", name = "DataPlaneServer", frozen)]
pub struct PyServer {
    port: u16,
    counters: Arc<CommitCounters>,
    hub: Arc<SyncHub>,
    running: Mutex<Option<(Runtime, RunningServer)>>,
}

impl PyServer {
    fn take(&self) -> Option<(Runtime, RunningServer)> {
        self.running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[pymethods]
impl PyServer {
    /// The port bound.
    #[getter]
    fn port(&self) -> u16 {
        self.port
    }

    /// (commits, {error class: refusals}, per-bucket commit counts (the last
    /// is +Inf, not cumulative), total commit seconds)
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<(u64, Bound<'py, PyDict>, Vec<u64>, f64)> {
        let stats = self.counters.snapshot();
        let errors = PyDict::new(py);
        for (code, n) in &stats.errors {
            errors.set_item(code, n)?;
        }
        Ok((stats.commits, errors, stats.buckets, stats.seconds))
    }

    /// Every worker's `statesync.v1.WorkerStatus`, serialized.
    fn worker_statuses(&self, py: Python<'_>) -> Vec<Vec<u8>> {
        py.detach(|| {
            self.hub
                .worker_statuses()
                .iter()
                .map(Message::encode_to_vec)
                .collect()
        })
    }

    /// (revisions in the sync feed, bytes in the sync feed, detection-to-verified
    /// seconds of the last 1000 drift repairs)
    fn sync_stats(&self) -> (usize, usize, Vec<f64>) {
        let (revisions, bytes) = self.hub.feed_size();
        (revisions, bytes, self.hub.repair_seconds())
    }

    /// Stops accepting, lets calls in flight finish for up to `grace_s`
    /// seconds, ends the rest and stops the runtime. Idempotent.
    fn shutdown(&self, py: Python<'_>, grace_s: f64) -> PyResult<()> {
        let Some((runtime, server)) = self.take() else {
            return Ok(());
        };
        let grace = Duration::try_from_secs_f64(grace_s.max(0.0)).unwrap_or(Duration::MAX);
        // Without the interpreter: draining calls may need it to report errors.
        py.detach(move || {
            let stopped = runtime.block_on(server.shutdown(grace));
            runtime.shutdown_timeout(Duration::from_secs(1));
            stopped
        })
        .map_err(server_error)
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        // Never shut down: its threads end without waiting (and without
        // blocking a thread that may hold the interpreter).
        if let Some((runtime, _server)) = self.take() {
            runtime.shutdown_background();
        }
    }
}

/// How the sync hub serves streams (`serve(..., sync=...)`).
#[derive(FromPyObject)]
struct PySyncSettings {
    heartbeat_s: f64,
    silence_s: f64,
    window: u64,
}

pub(crate) fn seconds(name: &str, value: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(value)
        .map_err(|_| PyValueError::new_err(format!("{name} must be seconds >= 0, got {value}")))
}

/// serve(store, listen, upstream, latency_bounds, *, sync, snapshot_slots=4,
/// feed_revisions=100000, feed_bytes=64 MiB, feed_memory=8 MiB) -> DataPlaneServer: serves
/// statesync.v1 on `listen` (HOST:PORT) on background threads, natively for
/// commits, reads and the worker streams (Sync, WaitApplied and Reconcile, as
/// `sync`, a `SyncSettings`, says), and proxies every other call to `upstream`
/// (HOST:PORT).
#[pyfunction]
#[pyo3(signature = (store, listen, upstream, latency_bounds, *, sync, snapshot_slots=4, feed_revisions=100_000, feed_bytes=64 * 1024 * 1024, feed_memory=8 * 1024 * 1024))]
#[allow(clippy::too_many_arguments)]
fn serve(
    py: Python<'_>,
    store: &PyStore,
    listen: String,
    upstream: String,
    latency_bounds: Vec<f64>,
    sync: PySyncSettings,
    snapshot_slots: usize,
    feed_revisions: usize,
    feed_bytes: usize,
    feed_memory: usize,
) -> PyResult<PyServer> {
    forward_logs();
    let store = store.shared();
    let hub = HubSettings {
        sync: SyncSettings {
            heartbeat: seconds("heartbeat_s", sync.heartbeat_s)?,
            silence: seconds("silence_s", sync.silence_s)?,
            window: sync.window,
        },
        snapshot_slots,
        feed: FeedLimits {
            max_revisions: feed_revisions,
            max_bytes: feed_bytes,
            max_memory: feed_memory,
        },
        ..HubSettings::default()
    };
    let config = Config {
        listen,
        upstream,
        latency_bounds,
        sync: hub,
    };
    py.detach(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(WORKER_THREADS)
            .thread_name("statesync-server")
            .enable_all()
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start the server's runtime: {e}")))?;
        let started = runtime.block_on(RunningServer::start(config, store, Arc::new(PyReporter)));
        match started {
            Ok(server) => Ok(PyServer {
                port: server.local_addr().port(),
                counters: server.counters(),
                hub: server.hub(),
                running: Mutex::new(Some((runtime, server))),
            }),
            Err(e) => {
                runtime.shutdown_background();
                Err(server_error(e))
            }
        }
    })
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(serve, m)?)?;
    m.add_class::<PyServer>()?;
    Ok(())
}
