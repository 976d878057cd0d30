//! The embedded store: Python commands in, Python records and futures out.
//!
//! Every call that may wait on the store's locks or disk releases the
//! interpreter first: the committer takes the interpreter (once per batch) to
//! answer futures and run the contract gate, so holding it while waiting on
//! the store would deadlock.

//!
//! Its parts: `errors` (the one table from core and store refusals to the
//! Python error tree), `source` (a Python `Command` read in the order the core
//! checks it), `gate` (what the Rust write gate asks of the Python product)
//! and `records` (Rust records as Python ones).

use std::sync::Arc;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple, PyType};
use statesync_core::command::{CommandSource, OpKind, prepare};
use statesync_core::engine::KeyRecord;
use statesync_core::error::CommandError;
use statesync_core::gate::{ContractGate, SharedShadowStats};
use statesync_core::log::Change;
use statesync_core::sequencer::Outcome;
use statesync_core::value::Value;
use statesync_store::{SqliteStore, StoreError, StoreSettings};

use crate::values;

fn class<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> Bound<'py, PyType> {
    cell.import(py, module, name).expect("a statesync class").clone()
}

macro_rules! py_class {
    ($py:expr, $module:literal, $name:literal) => {{
        static CELL: PyOnceLock<Py<PyType>> = PyOnceLock::new();
        class($py, &CELL, $module, $name)
    }};
}

mod errors;
mod gate;
mod records;
mod source;

pub(crate) use errors::raise;
pub use errors::{command_error, store_error};
use gate::PyContractHost;
use records::*;
use source::{PyCommand, key_arg, namespace_arg};

/// The embedded store (the Rust `SqliteStore`); `statesync.store.sqlite.SQLiteStore`
/// is its typed Python face.
#[pyclass(module = "statesync._native", name = "Store", frozen)]
pub struct PyStore {
    inner: Arc<SqliteStore>,
    /// The write gate's shadow-policy counts (None: the store has no gate).
    shadow: Option<SharedShadowStats>,
}

fn settings_from(obj: &Bound<'_, PyAny>) -> PyResult<StoreSettings> {
    let limits = obj.getattr("limits")?;
    Ok(StoreSettings {
        limits: statesync_core::command::Limits {
            max_value_bytes: limits.getattr("max_value_bytes")?.extract()?,
            max_ops: limits.getattr("max_ops")?.extract()?,
        },
        idempotency_retention_s: obj.getattr("idempotency_retention_s")?.extract()?,
        history_retention_revisions: obj.getattr("history_retention_revisions")?.extract()?,
        history_retention_s: obj.getattr("history_retention_s")?.extract()?,
        maintenance_interval_s: obj.getattr("maintenance_interval_s")?.extract()?,
        max_batch: obj.getattr("max_batch")?.extract::<usize>()?.max(1),
        max_batch_ops: obj.getattr("max_batch_ops")?.extract()?,
    })
}

fn hash_bytes<'py>(py: Python<'py>, h: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, h)
}

impl PyStore {
    /// The Rust store, shared with the data-plane server.
    pub(crate) fn shared(&self) -> Arc<SqliteStore> {
        self.inner.clone()
    }
}

#[pymethods]
impl PyStore {
    /// Store(path, settings, clock=None, registrar=None): opens the store.
    /// `clock()` returns seconds since the epoch; with `registrar` (the
    /// function that turns a contract request into the namespace's new
    /// contract record) every group commit runs the write gate.
    #[new]
    #[pyo3(signature = (path, settings, clock = None, registrar = None))]
    fn new(
        py: Python<'_>,
        path: std::path::PathBuf,
        settings: &Bound<'_, PyAny>,
        clock: Option<Py<PyAny>>,
        registrar: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let settings = settings_from(settings)?;
        let clock: Option<statesync_store::sqlite::Clock> = clock.map(|clock| {
            Arc::new(move || {
                Python::attach(|py| clock.bind(py).call0().and_then(|t| t.extract()).unwrap_or(0.0))
            }) as statesync_store::sqlite::Clock
        });
        let store = py
            .detach(|| SqliteStore::open(&path, settings, clock))
            .map_err(|e| store_error(py, e))?;
        store.set_scope(Arc::new(|f: &mut dyn FnMut()| Python::attach(|_| f())));
        let store = Arc::new(store);
        let shadow = registrar.map(|registrar| {
            let gate = ContractGate::new(Box::new(PyContractHost {
                registrar,
                store: Arc::downgrade(&store),
            }));
            let shadow = gate.shadow_stats();
            store.set_gate(Box::new(gate));
            shadow
        });
        Ok(PyStore { inner: store, shadow })
    }

    /// shadow_stats() -> [(namespace, active, candidate, compared, disagreed)]:
    /// per namespace, the stale writes a shadow policy was evaluated on and on
    /// how many it disagreed with the active policy.
    fn shadow_stats(&self) -> Vec<(String, &'static str, &'static str, u64, u64)> {
        let Some(shadow) = &self.shadow else {
            return Vec::new();
        };
        let stats = shadow.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        stats
            .iter()
            .map(|(ns, s)| {
                (
                    ns.clone(),
                    s.active.name(),
                    s.candidate.name(),
                    s.compared,
                    s.disagreed,
                )
            })
            .collect()
    }

    /// The last durable revision.
    #[getter]
    fn head_rev(&self) -> i64 {
        self.inner.head_rev()
    }

    /// History at or below this revision is gone.
    #[getter]
    fn compacted_rev(&self) -> i64 {
        self.inner.compacted_rev()
    }

    /// Why the store stopped acknowledging writes (None: it did not).
    #[getter]
    fn failure(&self) -> Option<String> {
        self.inner.failure()
    }

    /// submit(commands, futures): prepares each command now and resolves its
    /// `concurrent.futures.Future` when its group commit is durable. The
    /// commands are queued together: one group commit takes all or none.
    fn submit(
        &self,
        py: Python<'_>,
        commands: Vec<Bound<'_, PyAny>>,
        futures: Vec<Py<PyAny>>,
    ) -> PyResult<()> {
        if self.inner.is_closed() {
            return Err(store_error(py, StoreError::Closed));
        }
        let limits = self.inner.settings().limits;
        let mut jobs = Vec::with_capacity(commands.len());
        for (command, future) in commands.iter().zip(futures) {
            let prepared = PyCommand::new(command).map(|source| prepare(&source, &limits));
            let command = match prepared {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    future
                        .bind(py)
                        .call_method1("set_exception", (command_error(py, e).into_value(py),))?;
                    continue;
                }
                Err(e) => {
                    future
                        .bind(py)
                        .call_method1("set_exception", (e.into_value(py),))?;
                    continue;
                }
            };
            let reply: statesync_store::sqlite::Reply = Box::new(move |outcome: Outcome| {
                Python::attach(|py| {
                    let future = future.bind(py);
                    let _ = match committed(py, outcome) {
                        Ok(result) => future.call_method1("set_result", (result,)),
                        Err(e) => future.call_method1("set_exception", (e.into_value(py),)),
                    };
                })
            });
            jobs.push((command, reply));
        }
        let inner = self.inner.clone();
        py.detach(move || inner.submit(jobs));
        Ok(())
    }

    /// get(namespace, key, rev=None) -> KeyRecord | None
    #[pyo3(signature = (namespace, key, rev = None))]
    fn get<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        key: &Bound<'py, PyAny>,
        rev: Option<i64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let namespace = namespace_arg(namespace)?;
        let key = key_arg(&namespace, key)?;
        let found = py
            .detach(|| self.inner.get(&namespace, &key, rev))
            .map_err(|e| store_error(py, e))?;
        record_tuple(py, found.as_ref())
    }

    /// range(namespace, prefix, rev, start_after, limit) -> list[KeyRecord]
    fn range<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        prefix: String,
        rev: Option<i64>,
        start_after: Option<String>,
        limit: usize,
    ) -> PyResult<Bound<'py, PyList>> {
        let namespace = namespace_arg(namespace)?;
        let found = py
            .detach(|| {
                self.inner
                    .range(&namespace, &prefix, rev, start_after.as_deref(), limit)
            })
            .map_err(|e| store_error(py, e))?;
        let out = PyList::empty(py);
        for r in &found {
            out.append(key_record(py, r)?)?;
        }
        Ok(out)
    }

    /// changes(after_rev, limit, namespaces) -> list[Change]
    fn changes<'py>(
        &self,
        py: Python<'py>,
        after_rev: i64,
        limit: usize,
        namespaces: Option<Vec<Bound<'py, PyAny>>>,
    ) -> PyResult<Bound<'py, PyList>> {
        let namespaces = namespaces
            .map(|names| names.iter().map(namespace_arg).collect::<PyResult<Vec<_>>>())
            .transpose()?;
        let found = py
            .detach(|| self.inner.changes(after_rev, limit, namespaces.as_deref()))
            .map_err(|e| store_error(py, e))?;
        let out = PyList::empty(py);
        for c in &found {
            out.append(change(py, c)?)?;
        }
        Ok(out)
    }

    /// snapshot(namespaces, rev, chunk_size) -> Snapshot
    fn snapshot(
        &self,
        py: Python<'_>,
        namespaces: Option<Vec<Bound<'_, PyAny>>>,
        rev: Option<i64>,
        chunk_size: usize,
    ) -> PyResult<PySnapshot> {
        let namespaces = namespaces
            .map(|names| names.iter().map(namespace_arg).collect::<PyResult<Vec<_>>>())
            .transpose()?;
        let snapshot = py
            .detach(|| self.inner.snapshot(namespaces, rev, chunk_size))
            .map_err(|e| store_error(py, e))?;
        Ok(PySnapshot {
            inner: std::sync::Mutex::new(Some(snapshot)),
        })
    }

    /// The namespaces that hold keys at the head.
    fn namespaces(&self, py: Python<'_>) -> Vec<String> {
        py.detach(|| self.inner.namespaces())
    }

    /// digest(namespace, rev=None) -> bytes
    #[pyo3(signature = (namespace, rev = None))]
    fn digest<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        rev: Option<i64>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let namespace = namespace_arg(namespace)?;
        let root = py
            .detach(|| self.inner.digest(&namespace, rev))
            .map_err(|e| store_error(py, e))?;
        Ok(hash_bytes(py, &root))
    }

    /// digest_node(namespace, prefix) -> (count, sum as 32 bytes)
    fn digest_node<'py>(
        &self,
        py: Python<'py>,
        namespace: &Bound<'py, PyAny>,
        prefix: String,
    ) -> PyResult<(u64, Bound<'py, PyBytes>)> {
        let namespace = namespace_arg(namespace)?;
        let node = py
            .detach(|| self.inner.digest_node(&namespace, &prefix))
            .map_err(|e| store_error(py, e))?;
        Ok((node.count, hash_bytes(py, &node.sum.to_be_bytes())))
    }

    /// verify_chain() -> (from_rev, to_rev, changes, head_hash)
    fn verify_chain<'py>(&self, py: Python<'py>) -> PyResult<(i64, i64, u64, Bound<'py, PyBytes>)> {
        let report = py
            .detach(|| self.inner.verify_chain())
            .map_err(|e| store_error(py, e))?;
        Ok((
            report.from_rev,
            report.to_rev,
            report.changes,
            hash_bytes(py, &report.head_hash),
        ))
    }

    /// Drops history at or below `rev`.
    fn compact(&self, py: Python<'_>, rev: i64) -> PyResult<()> {
        py.detach(|| self.inner.compact(rev))
            .map_err(|e| store_error(py, e))
    }

    /// Applies retention now.
    fn maintain(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.inner.maintain())
            .map_err(|e| store_error(py, e))
    }

    /// Finishes queued commits, then closes. Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| self.inner.close());
    }
}

/// (rev, namespaces, [(namespace, digest root, key count)])
type SnapshotHeader<'py> = (i64, Vec<String>, Vec<(String, Bound<'py, PyBytes>, u64)>);

/// A consistent view at one revision, read in chunks.
#[pyclass(module = "statesync._native", name = "Snapshot", frozen)]
pub struct PySnapshot {
    inner: std::sync::Mutex<Option<statesync_store::Snapshot>>,
}

#[pymethods]
impl PySnapshot {
    /// (rev, namespaces, [(namespace, root, count)])
    fn header<'py>(&self, py: Python<'py>) -> PyResult<SnapshotHeader<'py>> {
        let guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let s = guard
            .as_ref()
            .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("the snapshot is closed"))?;
        let digests = s
            .digests
            .iter()
            .map(|(ns, root, count)| (ns.clone(), hash_bytes(py, root), *count))
            .collect();
        Ok((s.rev, s.namespaces.clone(), digests))
    }

    /// The next chunk of KeyRecords; empty at the end.
    fn next_chunk<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let chunk = py.detach(|| {
            let mut guard = self
                .inner
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match guard.as_mut() {
                Some(s) => s.next_chunk(),
                None => Err(StoreError::Closed),
            }
        });
        let chunk = chunk.map_err(|e| store_error(py, e))?;
        let out = PyList::empty(py);
        for r in &chunk {
            out.append(key_record(py, r)?)?;
        }
        Ok(out)
    }

    /// Ends the read transaction.
    fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
    }
}

/// check_command(command, max_value_bytes, max_ops): raises what committing
/// `command` would raise for its shape, names or values (nothing is written).
#[pyfunction]
fn check_command(
    py: Python<'_>,
    command: &Bound<'_, PyAny>,
    max_value_bytes: usize,
    max_ops: usize,
) -> PyResult<()> {
    let source = PyCommand::new(command)?;
    let limits = statesync_core::command::Limits {
        max_value_bytes,
        max_ops,
    };
    prepare(&source, &limits)
        .map(drop)
        .map_err(|e| command_error(py, e))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(check_command, m)?)?;
    m.add_class::<PyStore>()?;
    m.add_class::<PySnapshot>()?;
    Ok(())
}
