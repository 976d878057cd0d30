//! The native worker (`statesync-worker`) under the Python `Worker`.
//!
//! The sync stream, the replica, the checks and the ACKs are the Rust
//! worker's; Python is entered only to run the user's code: once per
//! revision, snapshot or repair, with all its changes, when there is a
//! validator or handler (`decide`), and once after they are applied, with
//! the accepted ones, when there are callbacks (`applied`). Workers share one tokio runtime per
//! process; a handler that blocks (or waits for the user's asyncio loop)
//! holds up only its own worker (`block_in_place`).

use std::collections::BTreeMap;
use std::sync::{Mutex, OnceLock};

use prost::Message;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use statesync_core::validate::Schema;
use statesync_core::value::parse;
use statesync_proto::SyncReply;
use statesync_worker::{
    ChangeEvent, Chaos, Handler, Interrupted, Options, Origin, Reject, Session, Status, Worker, WorkerError,
};
use tokio::runtime::Runtime;
use tokio::sync::watch;

use crate::replica::{PyReplica, to_pyerr};
use crate::server::seconds;

/// Threads of the workers' runtime: the streams are I/O-bound, and a
/// handler that blocks moves the others off its thread.
const RUNTIME_THREADS: usize = 2;

fn runtime() -> PyResult<&'static Runtime> {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    if let Some(runtime) = RUNTIME.get() {
        return Ok(runtime);
    }
    let built = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(RUNTIME_THREADS)
        .thread_name("statesync-worker")
        .enable_all()
        .build()
        .map_err(|e| PyRuntimeError::new_err(format!("cannot start the worker runtime: {e}")))?;
    Ok(RUNTIME.get_or_init(|| built))
}

/// The user's code, in Python: `decide(events) -> [None | reason]` and
/// `applied(events)`. An exception from `decide` interrupts the stream (the
/// Python side raises one only when the worker stops during a handler's
/// retries).
struct PyHandler {
    decide: Option<Py<PyAny>>,
    applied: Option<Py<PyAny>>,
    /// The accepted changes of the last decision, for `applied`.
    accepted: Vec<Event>,
}

impl PyHandler {
    fn new(decide: Option<Py<PyAny>>, applied: Option<Py<PyAny>>) -> PyHandler {
        PyHandler {
            decide,
            applied,
            accepted: Vec::new(),
        }
    }

    /// The verdicts of `decide` on `events`.
    fn decided(decide: &Py<PyAny>, events: &[Event]) -> Result<Vec<Result<(), Reject>>, Interrupted> {
        Python::attach(|py| {
            let rows = events
                .iter()
                .map(|e| e.to_tuple(py))
                .collect::<PyResult<Vec<_>>>()?;
            let verdicts = decide.call1(py, (PyList::new(py, rows)?,))?;
            verdicts
                .bind(py)
                .try_iter()?
                .map(|verdict| {
                    let reason: Option<String> = verdict?.extract()?;
                    Ok(reason.map_or(Ok(()), |r| Err(Reject::new(r))))
                })
                .collect::<PyResult<Vec<_>>>()
        })
        .map_err(|err: PyErr| Interrupted {
            reason: Python::attach(|py| format!("the handler stopped: {}", err.value(py))),
        })
    }
}

/// A change, owned: kept from the decision until it is applied.
struct Event {
    rev: i64,
    ns: String,
    key: String,
    value: Option<Vec<u8>>,
    command_id: String,
    trace: String,
    create_rev: i64,
    version: i64,
    schema_version: i32,
    origin: u8,
}

impl Event {
    fn of(e: &ChangeEvent<'_>) -> Event {
        Event {
            rev: e.rev,
            ns: e.ns.to_owned(),
            key: e.key.to_owned(),
            value: e.value.map(<[u8]>::to_vec),
            command_id: e.command_id.to_owned(),
            trace: e.trace.to_owned(),
            create_rev: e.create_rev,
            version: e.version,
            schema_version: e.schema_version,
            origin: match e.origin {
                Origin::Command => 0,
                Origin::Snapshot => 1,
                Origin::Repair => 2,
            },
        }
    }

    /// The change as the Python worker receives it: (rev, ns, key, value
    /// bytes or None for a delete, command_id, trace, create_rev, version,
    /// schema_version, origin: 0 command, 1 snapshot, 2 repair).
    fn to_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let value = self.value.as_deref().map(|v| PyBytes::new(py, v));
        (
            self.rev,
            self.ns.as_str(),
            self.key.as_str(),
            value,
            self.command_id.as_str(),
            self.trace.as_str(),
            self.create_rev,
            self.version,
            self.schema_version,
            self.origin,
        )
            .into_pyobject(py)
    }
}

impl Handler for PyHandler {
    fn on_change(&mut self, change: &ChangeEvent<'_>) -> Result<(), Reject> {
        match self.on_changes(std::slice::from_ref(change)) {
            Ok(mut verdicts) => verdicts.pop().unwrap_or(Ok(())),
            Err(Interrupted { reason }) => Err(Reject::new(reason)),
        }
    }

    fn on_changes(&mut self, changes: &[ChangeEvent<'_>]) -> Result<Vec<Result<(), Reject>>, Interrupted> {
        self.accepted.clear();
        if self.decide.is_none() && self.applied.is_none() {
            return Ok(vec![Ok(()); changes.len()]);
        }
        let events: Vec<Event> = changes.iter().map(Event::of).collect();
        let verdicts = match &self.decide {
            Some(decide) => PyHandler::decided(decide, &events)?,
            None => vec![Ok(()); events.len()],
        };
        if self.applied.is_some() {
            self.accepted = events
                .into_iter()
                .zip(&verdicts)
                .filter(|(_, verdict)| verdict.is_ok())
                .map(|(event, _)| event)
                .collect();
        }
        Ok(verdicts)
    }

    fn applied(&mut self) {
        let Some(applied) = &self.applied else {
            return;
        };
        let accepted = std::mem::take(&mut self.accepted);
        if accepted.is_empty() {
            return;
        }
        Python::attach(|py| {
            let called = accepted
                .iter()
                .map(|e| e.to_tuple(py))
                .collect::<PyResult<Vec<_>>>()
                .and_then(|rows| PyList::new(py, rows))
                .and_then(|rows| applied.call1(py, (rows,)));
            if let Err(err) = called {
                err.write_unraisable(py, None);
            }
        });
    }
}

fn compile(ns: &str, version: i32, schema: &[u8]) -> PyResult<Schema> {
    let value =
        parse(schema).map_err(|e| PyValueError::new_err(format!("schema v{version} of {ns}: {e}")))?;
    Schema::compile(&value).map_err(|e| PyValueError::new_err(format!("schema v{version} of {ns}: {e}")))
}

/// A running native worker. `decide` and `applied` are the Python worker's
/// hooks (None: accept every change without entering Python).
#[pyclass(module = "statesync._native", name = "Worker", frozen)]
pub struct PyWorker {
    running: Mutex<Option<Worker>>,
    status: watch::Receiver<Status>,
}

#[pymethods]
impl PyWorker {
    #[new]
    #[pyo3(signature = (
        address, worker_id, namespaces, replica, *, deltas, heartbeat_s, stale_after_s,
        backoff_base_s, backoff_cap_s, versions, schemas, chaos, decide, applied,
    ))]
    #[allow(clippy::too_many_arguments)] // the worker's settings, by keyword
    fn new(
        address: String,
        worker_id: String,
        namespaces: Vec<String>,
        replica: &PyReplica,
        deltas: bool,
        heartbeat_s: f64,
        stale_after_s: f64,
        backoff_base_s: f64,
        backoff_cap_s: f64,
        versions: BTreeMap<String, Vec<i32>>,
        schemas: Vec<(String, i32, Vec<u8>)>,
        chaos: (f64, f64, Option<u64>),
        decide: Option<Py<PyAny>>,
        applied: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        crate::server::forward_logs();
        let mut builder = Worker::builder(address)
            .worker_id(worker_id)
            .replica(replica.shared())
            .deltas(deltas)
            .heartbeat(seconds("heartbeat_s", heartbeat_s)?)
            .stale_after(seconds("stale_after_s", stale_after_s)?)
            .backoff(
                seconds("backoff_base_s", backoff_base_s)?,
                seconds("backoff_cap_s", backoff_cap_s)?,
            )
            .chaos(Chaos {
                drop: chaos.0,
                corrupt: chaos.1,
                seed: chaos.2,
            })
            .handler(PyHandler::new(decide, applied));
        for ns in namespaces {
            builder = builder.namespace(ns);
        }
        for (ns, declared) in versions {
            builder = builder.versions(ns, declared);
        }
        for (ns, version, schema) in schemas {
            let compiled = compile(&ns, version, &schema)?;
            builder = builder.version_schema(ns, version, compiled);
        }
        let _entered = runtime()?.enter();
        let worker = builder.start().map_err(|e| match e {
            WorkerError::Replica(err) => to_pyerr(err),
            other => PyValueError::new_err(other.to_string()),
        })?;
        Ok(PyWorker {
            status: worker.watch(),
            running: Mutex::new(Some(worker)),
        })
    }

    /// The last revision applied.
    #[getter]
    fn applied_rev(&self) -> i64 {
        self.status.borrow().applied_rev
    }

    /// (applied_rev, connected, reconnects, resyncs, keys_repaired,
    /// chaos_dropped, chaos_corrupted, bytes_received, last_end or None)
    #[allow(clippy::type_complexity)] // a plain record for Python
    fn status(&self) -> (i64, bool, u64, u64, u64, u64, u64, u64, Option<String>) {
        let s = self.status.borrow();
        let c = s.counters;
        (
            s.applied_rev,
            s.connected,
            s.reconnects,
            c.resyncs,
            c.keys_repaired,
            c.chaos_dropped,
            c.chaos_corrupted,
            s.bytes_received,
            s.last_end.clone(),
        )
    }

    /// The last stream's gRPC failure: (code, message, encoded
    /// statesync.v1.Error or None), or None.
    fn last_error<'py>(&self, py: Python<'py>) -> Option<(i32, String, Option<Bound<'py, PyBytes>>)> {
        let s = self.status.borrow();
        s.last_error.as_ref().map(|e| {
            (
                e.code,
                e.message.clone(),
                e.error.as_deref().map(|b| PyBytes::new(py, b)),
            )
        })
    }

    /// wait_for(rev, timeout_s=None) -> bool: blocks (without the GIL) until
    /// `rev` is applied; False on timeout or when the worker stopped first.
    #[pyo3(signature = (rev, timeout_s = None))]
    fn wait_for(&self, py: Python<'_>, rev: i64, timeout_s: Option<f64>) -> PyResult<bool> {
        self.wait_until(py, timeout_s, move |s| s.applied_rev >= rev)
    }

    /// wait_for_error(timeout_s=None) -> bool: blocks until a stream failed
    /// with a gRPC status (see `last_error`).
    #[pyo3(signature = (timeout_s = None))]
    fn wait_for_error(&self, py: Python<'_>, timeout_s: Option<f64>) -> PyResult<bool> {
        self.wait_until(py, timeout_s, |s| s.last_error.is_some())
    }

    /// Ends the stream, closes the replica and waits for the worker (without
    /// the GIL: the handler may need it to finish). Idempotent.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let worker = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let Some(worker) = worker else {
            return Ok(());
        };
        let runtime = runtime()?;
        py.detach(|| runtime.block_on(worker.stop()))
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))
    }
}

impl PyWorker {
    fn wait_until(
        &self,
        py: Python<'_>,
        timeout_s: Option<f64>,
        done: impl Fn(&Status) -> bool + Send + Sync,
    ) -> PyResult<bool> {
        let timeout = timeout_s.map(|t| seconds("timeout", t)).transpose()?;
        let mut status = self.status.clone();
        let runtime = runtime()?;
        Ok(py.detach(|| {
            runtime.block_on(async {
                let reached = status.wait_for(|s| done(s));
                match timeout {
                    Some(t) => matches!(tokio::time::timeout(t, reached).await, Ok(Ok(_))),
                    None => reached.await.is_ok(),
                }
            })
        }) || done(&self.status.borrow()))
    }
}

/// The worker's end of the protocol without a network, for the behaviour
/// vectors: `hello() -> bytes` and `receive(reply, decide) -> (requests,
/// (reason, resync) or None)`, messages as encoded protobuf.
#[pyclass(module = "statesync._native", name = "WorkerSession")]
pub struct PyWorkerSession {
    session: Session,
}

#[pymethods]
impl PyWorkerSession {
    #[new]
    #[pyo3(signature = (replica, worker_id, namespaces, *, deltas, heartbeat_s))]
    fn new(
        replica: &PyReplica,
        worker_id: String,
        namespaces: Vec<String>,
        deltas: bool,
        heartbeat_s: f64,
    ) -> Self {
        let options = Options {
            worker_id,
            namespaces,
            deltas,
            heartbeat_s,
            ..Options::default()
        };
        PyWorkerSession {
            session: Session::shared(replica.shared(), options),
        }
    }

    /// A new stream's hello.
    fn hello<'py>(&mut self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.session.hello().encode_to_vec())
    }

    /// Handles one encoded SyncReply; `decide` is the Python worker's hook.
    #[allow(clippy::type_complexity)] // a plain record for Python
    fn receive<'py>(
        &mut self,
        py: Python<'py>,
        reply: &[u8],
        decide: Option<Py<PyAny>>,
    ) -> PyResult<(Vec<Bound<'py, PyBytes>>, Option<(String, bool)>)> {
        let reply =
            SyncReply::decode(reply).map_err(|e| PyValueError::new_err(format!("not a SyncReply: {e}")))?;
        let mut handler = PyHandler::new(decide, None);
        let session = &mut self.session;
        let step = py
            .detach(|| session.receive(reply, &mut handler))
            .map_err(to_pyerr)?;
        let sent = step
            .send
            .iter()
            .map(|m| PyBytes::new(py, &m.encode_to_vec()))
            .collect();
        Ok((sent, step.end.map(|end| (end.reason, end.resync))))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyWorker>()?;
    m.add_class::<PyWorkerSession>()?;
    Ok(())
}
