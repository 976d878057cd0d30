//! Change records and the hash chain.

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use statesync_core::log::{self as core, ChangeOp};

/// change_canonical_bytes(...) -> bytes: the RFC 8785 bytes of a change record.
#[pyfunction]
#[pyo3(signature = (*, rev, seq, namespace, key, op, value, prev_mod_rev, create_rev, version, command_id, ts_ms, trace))]
#[allow(clippy::too_many_arguments)] // the record's fields, by keyword
fn change_canonical_bytes<'py>(
    py: Python<'py>,
    rev: i64,
    seq: i64,
    namespace: String,
    key: String,
    op: &str,
    value: Option<Vec<u8>>,
    prev_mod_rev: i64,
    create_rev: i64,
    version: i64,
    command_id: String,
    ts_ms: i64,
    trace: Option<String>,
) -> PyResult<Bound<'py, PyBytes>> {
    let op = ChangeOp::parse(op)
        .ok_or_else(|| pyo3::exceptions::PyValueError::new_err(format!("unknown change op {op:?}")))?;
    let change = core::Change {
        rev,
        seq,
        ns: namespace,
        key,
        op,
        value,
        prev_mod_rev,
        create_rev,
        version,
        command_id,
        ts_ms,
        trace,
        hash: [0; 32],
    };
    Ok(PyBytes::new(py, &change.canonical()))
}

/// chain_hash(prev_hash, canonical_change) -> bytes
#[pyfunction]
fn chain_hash<'py>(
    py: Python<'py>,
    prev_hash: &[u8],
    canonical_change: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    let prev: [u8; 32] = prev_hash
        .try_into()
        .map_err(|_| pyo3::exceptions::PyValueError::new_err("prev_hash is 32 bytes"))?;
    Ok(PyBytes::new(py, &core::chain_hash(&prev, canonical_change)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(change_canonical_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(chain_hash, m)?)?;
    Ok(())
}
