//! Digest descent: the core's `descent` (answers, names, the controller's
//! `Descent`), over tries the Python side reads through callables.
//!
//! A malformed query or answer, or a step out of order, is raised as
//! `DescentRefused(reason)`; an exception from a callable propagates as is.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyMapping, PySet};
use statesync_core::descent::{self as core, DescentError, NameQuery, Trie};
use statesync_core::digest::{Hash, Node, U256};

use crate::digest::{PyNamespaceDigest, hash_arg};

create_exception!(
    _native,
    DescentRefused,
    PyValueError,
    "A digest-descent query or answer that is malformed or out of order: args are (reason,)."
);

fn refused(err: DescentError<PyErr>) -> PyErr {
    match err {
        DescentError::Trie(e) => e,
        other => DescentRefused::new_err(other.to_string()),
    }
}

/// Where a trie's nodes come from: a digest's materialized levels (deeper
/// nodes summed from the leaves), a callable `node(prefix) -> Node`, or
/// nowhere (only leaves are read).
enum Nodes<'py> {
    Digest(PyRef<'py, PyNamespaceDigest>),
    Callable(Bound<'py, PyAny>),
    Summed,
}

/// A trie read through Python: `leaves(prefix)` maps key -> counted value hash.
struct PyTrie<'py> {
    nodes: Nodes<'py>,
    leaves: Bound<'py, PyAny>,
}

impl Trie for PyTrie<'_> {
    type Error = PyErr;

    fn node(&mut self, prefix: &str) -> PyResult<Node> {
        match &self.nodes {
            Nodes::Digest(digest) => {
                if let Some(node) = core::materialized(Some(digest.inner()), prefix) {
                    return Ok(node);
                }
            }
            Nodes::Callable(node) => {
                let node = node.call1((prefix,))?;
                let count: u64 = node.getattr("count")?.extract()?;
                let sum: Vec<u8> = node
                    .getattr("sum")?
                    .call_method1("to_bytes", (32, "big"))?
                    .extract()?;
                return Ok(Node {
                    count,
                    sum: U256::from_be_bytes(&hash_arg(&sum, "a node's sum")?),
                });
            }
            Nodes::Summed => {}
        }
        let leaves = self.leaves(prefix)?;
        Ok(Node::from_leaves(leaves.iter().map(|(k, h)| (k.as_str(), h))))
    }

    fn leaves(&mut self, prefix: &str) -> PyResult<Vec<(String, Hash)>> {
        let found = self.leaves.call1((prefix,))?;
        let mapping = found.cast::<PyMapping>()?;
        let mut pairs = Vec::with_capacity(mapping.len()?);
        for item in mapping.items()?.iter() {
            let (key, vhash): (String, Vec<u8>) = item.extract()?;
            pairs.push((key, hash_arg(&vhash, "a value hash")?));
        }
        Ok(pairs)
    }
}

/// One node as a worker describes it in a `DigestAnswer`.
#[pyclass(module = "statesync._native", name = "NodeAnswer", frozen, eq)]
#[derive(Clone, PartialEq, Eq)]
pub struct PyNodeAnswer {
    inner: core::NodeAnswer,
}

#[pymethods]
impl PyNodeAnswer {
    #[new]
    #[pyo3(signature = (prefix, children = Vec::new(), leaves = Vec::new(), is_leaves = false))]
    fn new(prefix: String, children: Vec<u8>, leaves: Vec<u8>, is_leaves: bool) -> Self {
        PyNodeAnswer {
            inner: core::NodeAnswer {
                prefix,
                children,
                leaves,
                is_leaves,
            },
        }
    }

    #[getter]
    fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    #[getter]
    fn children<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.children)
    }

    #[getter]
    fn leaves<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.leaves)
    }

    #[getter]
    fn is_leaves(&self) -> bool {
        self.inner.is_leaves
    }

    fn __repr__(&self) -> String {
        format!(
            "NodeAnswer(prefix={:?}, children=<{} bytes>, leaves=<{} bytes>, is_leaves={})",
            self.inner.prefix,
            self.inner.children.len(),
            self.inner.leaves.len(),
            if self.inner.is_leaves { "True" } else { "False" }
        )
    }
}

/// describe(digest, leaves, prefixes) -> list[NodeAnswer]: the worker's
/// description of each queried node of its trie, in query order.
#[pyfunction]
fn describe<'py>(
    digest: PyRef<'py, PyNamespaceDigest>,
    leaves: Bound<'py, PyAny>,
    prefixes: Vec<String>,
) -> PyResult<Vec<PyNodeAnswer>> {
    let mut trie = PyTrie {
        nodes: Nodes::Digest(digest),
        leaves,
    };
    let nodes = core::describe(&mut trie, &prefixes).map_err(refused)?;
    Ok(nodes.into_iter().map(|inner| PyNodeAnswer { inner }).collect())
}

/// name(leaves, prefix, wanted) -> list[str]: the keys under `prefix` whose
/// truncated leaf is one of `wanted` (packed 4-byte values), sorted.
#[pyfunction]
fn name(leaves: Bound<'_, PyAny>, prefix: String, wanted: Vec<u8>) -> PyResult<Vec<String>> {
    let mut trie = PyTrie {
        nodes: Nodes::Summed,
        leaves,
    };
    core::name(
        &mut trie,
        &[NameQuery {
            prefix,
            leaves: wanted,
        }],
    )
    .map_err(refused)
}

/// The controller's side of one namespace's descent against one worker.
#[pyclass(module = "statesync._native", name = "Descent")]
pub struct PyDescent {
    namespace: String,
    inner: core::Descent,
}

#[pymethods]
impl PyDescent {
    #[new]
    fn new(namespace: String) -> Self {
        PyDescent {
            namespace,
            inner: core::Descent::new(),
        }
    }

    /// The namespace being descended.
    #[getter]
    fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Whether every differing key has been found.
    #[getter]
    fn done(&self) -> bool {
        self.inner.is_done()
    }

    /// The keys found to differ so far.
    #[getter]
    fn differing<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PySet>> {
        PySet::new(py, self.inner.differing())
    }

    /// Queries sent so far.
    #[getter]
    fn round_trips(&self) -> u32 {
        self.inner.round_trips()
    }

    /// Bytes of the queries and answers so far.
    #[getter]
    fn bytes_exchanged(&self) -> u64 {
        self.inner.bytes_exchanged()
    }

    /// query() -> (prefixes, [(prefix, packed leaves to name)]): the next round trip.
    #[allow(clippy::type_complexity)] // the tuple is the Python signature
    fn query<'py>(&mut self, py: Python<'py>) -> PyResult<(Vec<String>, Vec<(String, Bound<'py, PyBytes>)>)> {
        let query = self
            .inner
            .query()
            .map_err(|e| DescentRefused::new_err(e.to_string()))?;
        let names = query
            .names
            .into_iter()
            .map(|n| (n.prefix, PyBytes::new(py, &n.leaves)))
            .collect();
        Ok((query.prefixes, names))
    }

    /// receive(nodes, named, node, leaves): the worker's answer to the query
    /// out, compared with our trie (`node(prefix) -> Node`, `leaves(prefix)`).
    fn receive<'py>(
        &mut self,
        nodes: Vec<PyRef<'py, PyNodeAnswer>>,
        named: Vec<String>,
        node: Bound<'py, PyAny>,
        leaves: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        let nodes: Vec<core::NodeAnswer> = nodes.iter().map(|n| n.inner.clone()).collect();
        let mut trie = PyTrie {
            nodes: Nodes::Callable(node),
            leaves,
        };
        self.inner.receive(&nodes, &named, &mut trie).map_err(refused)
    }

    fn __repr__(&self) -> String {
        format!(
            "Descent(namespace={:?}, done={}, differing={}, round_trips={})",
            self.namespace,
            self.inner.is_done(),
            self.inner.differing().len(),
            self.inner.round_trips()
        )
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("LEAF_LIMIT", core::LEAF_LIMIT)?;
    m.add("DescentRefused", m.py().get_type::<DescentRefused>())?;
    m.add_class::<PyNodeAnswer>()?;
    m.add_class::<PyDescent>()?;
    m.add_function(wrap_pyfunction!(describe, m)?)?;
    m.add_function(wrap_pyfunction!(name, m)?)?;
    Ok(())
}
