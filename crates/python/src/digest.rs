//! Digests: hashes, positions, leaves and the incremental namespace digest.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyMapping};
use statesync_core::digest::{self as core, Hash, U256};

pub(crate) fn hash_arg(bytes: &[u8], what: &str) -> PyResult<Hash> {
    bytes
        .try_into()
        .map_err(|_| PyValueError::new_err(format!("{what} is 32 bytes, not {}", bytes.len())))
}

fn int_of(py: Python<'_>, n: U256) -> PyResult<Py<PyAny>> {
    let bytes = PyBytes::new(py, &n.to_be_bytes());
    Ok(py
        .get_type::<PyInt>()
        .call_method1("from_bytes", (bytes, "big"))?
        .unbind())
}

fn u256_of(total: &Bound<'_, PyAny>) -> PyResult<U256> {
    // int.to_bytes refuses a negative sum or one of 2**256 and more.
    let bytes: Vec<u8> = total.call_method1("to_bytes", (32, "big"))?.extract()?;
    Ok(U256::from_be_bytes(&hash_arg(&bytes, "a sum")?))
}

/// sha256(data) -> bytes
#[pyfunction]
fn sha256<'py>(py: Python<'py>, data: &[u8]) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &core::sha256(data))
}

/// position(key) -> bytes: SHA-256 of the UTF-8 key, its place in the trie.
#[pyfunction]
fn position<'py>(py: Python<'py>, key: &str) -> Bound<'py, PyBytes> {
    PyBytes::new(py, &core::position(key))
}

/// bucket_of(key) -> int: the first 16 bits of the key's position.
#[pyfunction]
fn bucket_of(key: &str) -> u16 {
    core::bucket_of(key)
}

/// leaf_value(key, value_hash) -> int: what the key adds to each node on its path.
#[pyfunction]
fn leaf_value(py: Python<'_>, key: &str, value_hash: &[u8]) -> PyResult<Py<PyAny>> {
    int_of(py, core::leaf_value(key, &hash_arg(value_hash, "a value hash")?))
}

/// fingerprint(count, total) -> bytes: a node's fingerprint.
#[pyfunction]
fn fingerprint<'py>(py: Python<'py>, count: u64, total: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, &core::fingerprint(count, u256_of(total)?)))
}

/// A trie node: how many keys lie under it and the sum of their leaves.
#[pyclass(module = "statesync._native", name = "Node", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyNode {
    count: u64,
    sum: U256,
}

#[pymethods]
impl PyNode {
    #[new]
    fn new(count: u64, sum: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyNode {
            count,
            sum: u256_of(sum)?,
        })
    }

    #[getter]
    fn count(&self) -> u64 {
        self.count
    }

    #[getter]
    fn sum(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        int_of(py, self.sum)
    }

    #[getter]
    fn fingerprint<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &core::fingerprint(self.count, self.sum))
    }

    fn __repr__(&self) -> String {
        format!(
            "Node(count={}, sum=0x{})",
            self.count,
            hex(&self.sum.to_be_bytes())
        )
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl From<core::Node> for PyNode {
    fn from(node: core::Node) -> Self {
        PyNode {
            count: node.count,
            sum: node.sum,
        }
    }
}

/// The root and the top levels of one namespace's digest trie (keys not held).
#[pyclass(module = "statesync._native", name = "NamespaceDigest")]
#[derive(Clone, Default)]
pub struct PyNamespaceDigest {
    inner: core::NamespaceDigest,
}

impl From<core::NamespaceDigest> for PyNamespaceDigest {
    fn from(inner: core::NamespaceDigest) -> Self {
        PyNamespaceDigest { inner }
    }
}

impl PyNamespaceDigest {
    pub(crate) fn inner(&self) -> &core::NamespaceDigest {
        &self.inner
    }
}

#[pymethods]
impl PyNamespaceDigest {
    #[new]
    fn new() -> Self {
        Self::default()
    }

    /// from_items(items, on_bucket=None): the digest of (key, value hash) pairs;
    /// `on_bucket(key, bucket)` lets a caller index keys without hashing them again.
    #[classmethod]
    #[pyo3(signature = (items, on_bucket = None))]
    fn from_items(
        _cls: &Bound<'_, pyo3::types::PyType>,
        items: &Bound<'_, PyAny>,
        on_bucket: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let mut pairs: Vec<(String, Hash)> = Vec::new();
        for item in items.try_iter()? {
            let (key, vhash): (String, Vec<u8>) = item?.extract()?;
            let vhash = hash_arg(&vhash, "a value hash")?;
            pairs.push((key, vhash));
        }
        let mut failure: Option<PyErr> = None;
        let inner = core::NamespaceDigest::from_items(pairs, |key, bucket| {
            if let (Some(callback), None) = (on_bucket, &failure)
                && let Err(e) = callback.call1((key, bucket))
            {
                failure = Some(e);
            }
        });
        match failure {
            Some(e) => Err(e),
            None => Ok(PyNamespaceDigest { inner }),
        }
    }

    /// update(key, old, new, bucket=None): `key` changed from value hash `old`
    /// to `new` (None: absent); `bucket` is `bucket_of(key)` if known.
    #[pyo3(signature = (key, old, new, *, bucket = None))]
    fn update(
        &mut self,
        key: &str,
        old: Option<&[u8]>,
        new: Option<&[u8]>,
        bucket: Option<u16>,
    ) -> PyResult<()> {
        let old = old.map(|h| hash_arg(h, "the old value hash")).transpose()?;
        let new = new.map(|h| hash_arg(h, "the new value hash")).transpose()?;
        let bucket = bucket.unwrap_or_else(|| core::bucket_of(key));
        self.inner
            .update_in_bucket(key, bucket, old.as_ref(), new.as_ref());
        Ok(())
    }

    /// The number of keys.
    #[getter]
    fn count(&self) -> u64 {
        self.inner.count()
    }

    /// The namespace digest: the root's fingerprint.
    fn root<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.root())
    }

    /// node(prefix, leaves=None): the node at a hex prefix; deeper than the
    /// materialized levels it is summed from `leaves(prefix)`, a mapping of
    /// key to value hash.
    #[pyo3(signature = (prefix, leaves = None))]
    fn node(&self, prefix: &str, leaves: Option<&Bound<'_, PyAny>>) -> PyResult<PyNode> {
        if core::parse_prefix(prefix).is_none() && prefix.len() <= core::MATERIALIZED_LEVELS {
            return Err(PyValueError::new_err(format!(
                "prefix {prefix:?} is not hex nibbles"
            )));
        }
        if let Some(node) = self.inner.materialized_node(prefix) {
            return Ok(node.into());
        }
        let Some(leaves) = leaves else {
            return Err(PyValueError::new_err(format!(
                "prefix {prefix:?} is deeper than the materialized levels"
            )));
        };
        let mapping = leaves.call1((prefix,))?;
        let mapping = mapping.cast::<PyMapping>()?;
        let mut pairs: Vec<(String, Hash)> = Vec::new();
        for item in mapping.items()?.iter() {
            let (key, vhash): (String, Vec<u8>) = item.extract()?;
            pairs.push((key, hash_arg(&vhash, "a value hash")?));
        }
        Ok(core::Node::from_leaves(pairs.iter().map(|(k, h)| (k.as_str(), h))).into())
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("MATERIALIZED_LEVELS", core::MATERIALIZED_LEVELS)?;
    m.add_class::<PyNode>()?;
    m.add_class::<PyNamespaceDigest>()?;
    m.add_function(wrap_pyfunction!(sha256, m)?)?;
    m.add_function(wrap_pyfunction!(position, m)?)?;
    m.add_function(wrap_pyfunction!(bucket_of, m)?)?;
    m.add_function(wrap_pyfunction!(leaf_value, m)?)?;
    m.add_function(wrap_pyfunction!(fingerprint, m)?)?;
    Ok(())
}
