//! The worker's replica (`statesync-worker`) for the Python worker.
//!
//! SQLite work (open, apply, replace, close) and anything that walks a whole
//! namespace run with the GIL released, so the worker's asyncio loop and other
//! threads keep running. The replica is a [`SharedReplica`] (the native
//! worker syncs the same one): a short read takes its lock without releasing
//! the GIL when it is free, and no thread ever waits for it while holding the
//! GIL (the worker never calls Python while it holds it), so the two locks
//! cannot deadlock. Refusals are
//! raised as `ReplicaCorrupt(path, reason)` and `ReplicaInUse(path)`; the
//! Python package turns them into its typed errors.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList};
use statesync_core::digest::{Hash, NamespaceDigest};
use statesync_worker::{
    Changes, Entry, HeldKey, REPLICA_FILE, Replica, ReplicaError, SharedReplica, Snapshot,
};

use crate::digest::{PyNamespaceDigest, hash_arg};

create_exception!(
    _native,
    ReplicaCorrupt,
    PyException,
    "The replica cannot be trusted: args are (path, reason)."
);
create_exception!(
    _native,
    ReplicaInUse,
    PyException,
    "Another process holds the state directory: args are (path,)."
);

pub(crate) fn to_pyerr(err: ReplicaError) -> PyErr {
    match err {
        ReplicaError::Corrupt { path, reason } => {
            ReplicaCorrupt::new_err((path.display().to_string(), reason))
        }
        ReplicaError::InUse { path } => ReplicaInUse::new_err((path.display().to_string(),)),
        // OSError(errno, strerror, filename) becomes the matching subclass.
        ReplicaError::Io { path, source } => match source.raw_os_error() {
            Some(errno) => PyOSError::new_err((errno, source.to_string(), path.display().to_string())),
            None => PyOSError::new_err(format!("{}: {source}", path.display())),
        },
        err @ ReplicaError::Write { .. } => PyOSError::new_err(err.to_string()),
        err @ (ReplicaError::Closed | ReplicaError::InvalidPrefix(_)) => {
            PyValueError::new_err(err.to_string())
        }
    }
}

fn optional_hash(bytes: &[u8], what: &str) -> PyResult<Option<Hash>> {
    if bytes.is_empty() {
        Ok(None)
    } else {
        hash_arg(bytes, what).map(Some)
    }
}

fn bytes_of(hash: Option<&Hash>) -> &[u8] {
    hash.map_or(&[], |h| &h[..])
}

/// One key's value as the replica holds it (immutable).
#[pyclass(module = "statesync._native", name = "Entry", frozen, eq, hash)]
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PyEntry(Entry);

#[pymethods]
impl PyEntry {
    #[new]
    #[pyo3(signature = (value, create_rev, mod_rev, version, vhash, schema_version = 0, source_hash = b"".as_slice()))]
    fn new(
        value: &[u8],
        create_rev: i64,
        mod_rev: i64,
        version: i64,
        vhash: &[u8],
        schema_version: i32,
        source_hash: &[u8],
    ) -> PyResult<Self> {
        Ok(PyEntry(Entry {
            value: value.to_vec(),
            create_rev,
            mod_rev,
            version,
            vhash: hash_arg(vhash, "a value hash")?,
            schema_version,
            source_hash: optional_hash(source_hash, "a source hash")?,
        }))
    }

    /// The canonical JSON value.
    #[getter]
    fn value<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.value)
    }

    #[getter]
    fn create_rev(&self) -> i64 {
        self.0.create_rev
    }

    #[getter]
    fn mod_rev(&self) -> i64 {
        self.0.mod_rev
    }

    #[getter]
    fn version(&self) -> i64 {
        self.0.version
    }

    /// SHA-256 of the value.
    #[getter]
    fn vhash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.0.vhash)
    }

    #[getter]
    fn schema_version(&self) -> i32 {
        self.0.schema_version
    }

    /// The controller's value hash when the value is a translation (else b"").
    #[getter]
    fn source_hash<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, bytes_of(self.0.source_hash.as_ref()))
    }

    /// The hash the digest counts: the controller's value, as stored there.
    #[getter]
    fn leaf<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, self.0.leaf())
    }

    fn __repr__(&self) -> String {
        let e = &self.0;
        format!(
            "Entry(value={:?}, create_rev={}, mod_rev={}, version={}, schema_version={})",
            String::from_utf8_lossy(&e.value),
            e.create_rev,
            e.mod_rev,
            e.version,
            e.schema_version
        )
    }
}

/// (namespace, key, rev, reason, refused hash or b"") as Python passes it.
type HeldTuple = (String, String, i64, String, Vec<u8>);

fn held_of((namespace, key, rev, reason, refused): HeldTuple) -> PyResult<HeldKey> {
    Ok(HeldKey {
        namespace,
        key,
        rev,
        reason,
        refused: optional_hash(&refused, "a refused value's hash")?,
    })
}

fn entries_of(items: &Bound<'_, PyAny>) -> PyResult<Vec<(String, String, Entry)>> {
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let (ns, key, entry): (String, String, Bound<'_, PyEntry>) = item?.extract()?;
        out.push((ns, key, entry.get().0.clone()));
    }
    Ok(out)
}

/// Entries by namespace and key, the held-back keys, and the applied revision,
/// persisted in a state directory (or in memory only, without one).
#[pyclass(module = "statesync._native", name = "Replica", frozen)]
pub struct PyReplica {
    inner: SharedReplica,
}

impl PyReplica {
    /// Another handle to the replica (for the native worker).
    pub(crate) fn shared(&self) -> SharedReplica {
        self.inner.clone()
    }

    /// A short read: under the GIL when the replica is free (releasing the GIL
    /// costs more than the read), else waiting for it with the GIL released.
    fn read<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Replica) -> R + Send) -> PyResult<R> {
        match self.inner.try_lock() {
            Some(mut replica) => Ok(f(&mut replica)),
            None => self.detached(py, f),
        }
    }

    /// Writes and long reads, with the GIL released.
    fn detached<R: Send>(&self, py: Python<'_>, f: impl FnOnce(&mut Replica) -> R + Send) -> PyResult<R> {
        Ok(py.detach(|| f(&mut self.inner.lock())))
    }
}

#[pymethods]
impl PyReplica {
    /// Replica(state_dir, worker_id=""): opens (or creates) the replica in
    /// `state_dir`, locked and checked; None keeps it in memory only.
    #[new]
    #[pyo3(signature = (state_dir, worker_id = ""))]
    fn new(py: Python<'_>, state_dir: Option<PathBuf>, worker_id: &str) -> PyResult<Self> {
        let replica = match state_dir {
            None => Replica::in_memory(worker_id),
            Some(dir) => py.detach(|| Replica::open(dir, worker_id)).map_err(to_pyerr)?,
        };
        Ok(PyReplica {
            inner: SharedReplica::new(replica),
        })
    }

    /// The last revision applied (0: none yet).
    #[getter]
    fn applied_rev(&self, py: Python<'_>) -> PyResult<i64> {
        self.read(py, |r| r.applied_rev())
    }

    /// get(ns, key) -> Entry | None
    fn get(&self, py: Python<'_>, ns: &str, key: &str) -> PyResult<Option<PyEntry>> {
        self.read(py, |r| r.get(ns, key).cloned().map(PyEntry))
    }

    /// values(ns, prefix="") -> [(key, canonical value)], sorted by key.
    #[pyo3(signature = (ns, prefix = ""))]
    fn values<'py>(&self, py: Python<'py>, ns: &str, prefix: &str) -> PyResult<Bound<'py, PyList>> {
        let values: Vec<(String, Vec<u8>)> = self.detached(py, |r| {
            r.range(ns, prefix)
                .map(|(k, e)| (k.to_owned(), e.value.clone()))
                .collect()
        })?;
        let items = values.iter().map(|(k, v)| (k.as_str(), PyBytes::new(py, v)));
        PyList::new(py, items)
    }

    /// value_hashes(ns) -> {key: value hash} of the entries stored.
    fn value_hashes<'py>(&self, py: Python<'py>, ns: &str) -> PyResult<Bound<'py, PyDict>> {
        let hashes: Vec<(String, Hash)> = self.detached(py, |r| {
            r.range(ns, "").map(|(k, e)| (k.to_owned(), e.vhash)).collect()
        })?;
        let out = PyDict::new(py);
        for (key, hash) in &hashes {
            out.set_item(key, PyBytes::new(py, hash))?;
        }
        Ok(out)
    }

    /// schema_version(ns) -> int: the version ns's values were served in; -1: none.
    fn schema_version(&self, py: Python<'_>, ns: &str) -> PyResult<i64> {
        self.read(py, |r| r.schema_version(ns).map_or(-1, i64::from))
    }

    /// root(ns) -> bytes: the namespace digest.
    fn root<'py>(&self, py: Python<'py>, ns: &str) -> PyResult<Bound<'py, PyBytes>> {
        let root = self.read(py, |r| {
            r.digest(ns)
                .map_or_else(|| NamespaceDigest::new().root(), |d| d.root())
        })?;
        Ok(PyBytes::new(py, &root))
    }

    /// count(ns) -> int: the number of keys the digest counts.
    fn count(&self, py: Python<'_>, ns: &str) -> PyResult<u64> {
        self.read(py, |r| r.digest(ns).map_or(0, NamespaceDigest::count))
    }

    /// digest(ns) -> NamespaceDigest: a copy, for a descent.
    fn digest(&self, py: Python<'_>, ns: &str) -> PyResult<PyNamespaceDigest> {
        let digest = self.detached(py, |r| r.digest(ns).cloned().unwrap_or_default())?;
        Ok(PyNamespaceDigest::from(digest))
    }

    /// leaves(ns, prefix) -> {key: counted hash} under a hex prefix.
    fn leaves<'py>(&self, py: Python<'py>, ns: &str, prefix: &str) -> PyResult<Bound<'py, PyDict>> {
        let leaves = self.detached(py, |r| r.leaves(ns, prefix))?.map_err(to_pyerr)?;
        let out = PyDict::new(py);
        for (key, hash) in &leaves {
            out.set_item(key, PyBytes::new(py, hash))?;
        }
        Ok(out)
    }

    /// held() -> [(ns, key, rev, reason, hash of the value kept or b"")].
    fn held<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let held: Vec<(HeldKey, Option<Hash>)> = self.read(py, |r| {
            r.held()
                .map(|h| {
                    let kept = r.get(&h.namespace, &h.key).map(|e| e.vhash);
                    (h, kept)
                })
                .collect()
        })?;
        let items = held.iter().map(|(h, kept)| {
            (
                h.namespace.as_str(),
                h.key.as_str(),
                h.rev,
                h.reason.as_str(),
                PyBytes::new(py, bytes_of(kept.as_ref())),
            )
        });
        PyList::new(py, items)
    }

    /// apply(rev, puts, deletes, rejected): one revision, atomically. `puts`
    /// are (ns, key, Entry), `deletes` (ns, key), `rejected` (ns, key, rev,
    /// reason, hash of the refused value or b"" for a delete).
    fn apply(
        &self,
        py: Python<'_>,
        rev: i64,
        puts: &Bound<'_, PyAny>,
        deletes: Vec<(String, String)>,
        rejected: Vec<HeldTuple>,
    ) -> PyResult<()> {
        let changes = Changes {
            puts: entries_of(puts)?,
            deletes,
            rejected: rejected.into_iter().map(held_of).collect::<PyResult<_>>()?,
        };
        self.detached(py, |r| r.apply(rev, changes))?.map_err(to_pyerr)
    }

    /// advance(rev): nothing changed for this replica through `rev`.
    fn advance(&self, py: Python<'_>, rev: i64) -> PyResult<()> {
        // After each batch the revision is usually applied already: nothing to
        // write, so no reason to release the GIL.
        if self.read(py, |r| rev <= r.applied_rev())? {
            return Ok(());
        }
        self.detached(py, |r| r.advance(rev))?.map_err(to_pyerr)
    }

    /// replace(rev, entries, rejected, digests=None): the replica becomes a
    /// snapshot; `digests` are the caller's, built over the snapshot as sent.
    #[pyo3(signature = (rev, entries, rejected, digests = None))]
    fn replace(
        &self,
        py: Python<'_>,
        rev: i64,
        entries: &Bound<'_, PyDict>,
        rejected: Vec<HeldTuple>,
        digests: Option<HashMap<String, PyRef<'_, PyNamespaceDigest>>>,
    ) -> PyResult<()> {
        let mut by_ns = BTreeMap::new();
        for (ns, keyed) in entries.iter() {
            let mut out = BTreeMap::new();
            for (key, entry) in keyed.cast::<PyDict>()?.iter() {
                out.insert(key.extract::<String>()?, entry.cast::<PyEntry>()?.get().0.clone());
            }
            by_ns.insert(ns.extract::<String>()?, out);
        }
        let snapshot = Snapshot {
            entries: by_ns,
            rejected: rejected.into_iter().map(held_of).collect::<PyResult<_>>()?,
            digests: digests.map(|given| given.into_iter().map(|(ns, d)| (ns, d.inner().clone())).collect()),
        };
        self.detached(py, |r| r.replace(rev, snapshot))?.map_err(to_pyerr)
    }

    /// close(): closes the file and releases the lock; reads still work.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.detached(py, Replica::close)
    }
}

/// read_replica(state_dir) -> (worker_id, applied_rev, {ns: {key: value}},
/// [(ns, key, rev, reason)]): the replica file read without a lock or checks.
/// open_worker_replica(state_dir, worker_id) -> (Replica, (aside, reason) | None):
/// a worker's replica; a corrupt one is moved aside (to `aside`, because of
/// `reason`) and an empty one opened in its place, to be bootstrapped.
#[pyfunction]
fn open_worker_replica(
    py: Python<'_>,
    state_dir: PathBuf,
    worker_id: &str,
) -> PyResult<(PyReplica, Option<(String, String)>)> {
    let (replica, aside) = py
        .detach(|| statesync_worker::open_or_set_aside(&state_dir, worker_id))
        .map_err(to_pyerr)?;
    let replica = PyReplica {
        inner: SharedReplica::new(replica),
    };
    Ok((
        replica,
        aside.map(|(path, reason)| (path.display().to_string(), reason)),
    ))
}

#[pyfunction]
fn read_replica<'py>(py: Python<'py>, state_dir: PathBuf) -> PyResult<Bound<'py, PyAny>> {
    let dump = py
        .detach(|| statesync_worker::read_offline(state_dir))
        .map_err(to_pyerr)?;
    let namespaces = PyDict::new(py);
    for (ns, keyed) in &dump.namespaces {
        let values = PyDict::new(py);
        for (key, value) in keyed {
            values.set_item(key, PyBytes::new(py, value))?;
        }
        namespaces.set_item(ns, values)?;
    }
    let held: Vec<_> = dump
        .held
        .into_iter()
        .map(|h| (h.namespace, h.key, h.rev, h.reason))
        .collect();
    Ok((dump.worker_id, dump.applied_rev, namespaces, held)
        .into_pyobject(py)?
        .into_any())
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("REPLICA_FILE", REPLICA_FILE)?;
    m.add("ReplicaCorrupt", m.py().get_type::<ReplicaCorrupt>())?;
    m.add("ReplicaInUse", m.py().get_type::<ReplicaInUse>())?;
    m.add_class::<PyEntry>()?;
    m.add_class::<PyReplica>()?;
    m.add_function(wrap_pyfunction!(read_replica, m)?)?;
    m.add_function(wrap_pyfunction!(open_worker_replica, m)?)?;
    Ok(())
}
