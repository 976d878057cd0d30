//! JSON Patch and deltas: the core's `patch` and `delta`, converted at the edge.
//!
//! Refusals are raised as `PatchRefused(kind, op index, path, reason)`, a
//! result over the size limit as `ValueTooLarge(size, limit)` and a delta
//! whose result has another hash as `DeltaMismatch`; the Python package adds
//! the namespace and key. Values that are not I-JSON raise `ValueRefused`.

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use statesync_core::canonical::canonical_bytes;
use statesync_core::delta::{self, DeltaError};
use statesync_core::patch::{self, PatchError, PatchErrorKind};
use statesync_core::value::{self, Value, python_repr};

use crate::values::{from_python, repr, to_value, value_refused};

create_exception!(
    _native,
    PatchRefused,
    PyValueError,
    "A JSON Patch that is malformed or does not apply: args are (kind, op index or None, path or None, reason)."
);
create_exception!(
    _native,
    ValueTooLarge,
    PyValueError,
    "A patch result over the size limit: args are (size, limit)."
);
create_exception!(
    _native,
    DeltaMismatch,
    PyValueError,
    "A delta whose result does not have the hash sent with it."
);

fn refused(err: PatchError) -> PyErr {
    match err.kind {
        PatchErrorKind::TooLarge { size, limit } => ValueTooLarge::new_err((size, limit)),
        kind => PatchRefused::new_err((kind.code(), err.index, err.path, err.reason)),
    }
}

/// The arrays and objects around an op member in a patch: the patch and the op.
/// Members nest at most `MAX_DEPTH - 2` deep, so the patch's canonical bytes
/// parse again.
const MEMBER_DEPTH: usize = 2;

/// Checks a patch given as Python objects (a list or tuple of dicts) op by op
/// and returns it as a value (every member kept, for the fingerprint).
pub fn checked_patch(patch: &Bound<'_, PyAny>) -> Result<Value, PatchError> {
    let items: Vec<Bound<'_, PyAny>> = if let Ok(list) = patch.cast::<PyList>() {
        list.iter().collect()
    } else if let Ok(tuple) = patch.cast::<PyTuple>() {
        tuple.iter().collect()
    } else {
        return Err(PatchError::not_an_array());
    };
    let ops = items
        .iter()
        .enumerate()
        .map(|(index, item)| check_op(index, item))
        .collect::<Result<Vec<Value>, PatchError>>()?;
    Ok(Value::Array(ops))
}

/// check_patch(patch) -> bytes: checks a patch given as Python objects (a list
/// or tuple of dicts) op by op, and returns its canonical bytes.
#[pyfunction]
fn check_patch<'py>(patch: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let checked = checked_patch(patch).map_err(refused)?;
    Ok(PyBytes::new(patch.py(), &canonical_bytes(&checked)))
}

/// The op at `index` as a checked value. Its `value` is checked after its
/// shape, so a malformed op is reported as such even when its value is bad too.
fn check_op(index: usize, op: &Bound<'_, PyAny>) -> Result<Value, PatchError> {
    let Ok(dict) = op.cast::<PyDict>() else {
        return Err(PatchError::not_an_object(index));
    };
    let fault = |kind, path: Option<&str>, reason: String| PatchError::new(kind, Some(index), path, reason);
    let mut members = Vec::with_capacity(dict.len());
    let mut bad_value = None;
    for (key, member) in dict.iter() {
        let Some(name) = key
            .cast_exact::<PyString>()
            .ok()
            .and_then(|k| k.to_str().ok().map(str::to_owned))
        else {
            let reason = format!("a patch op is an object with string keys, not {}", repr(&key));
            return Err(fault(PatchErrorKind::NotAnObject, None, reason));
        };
        match to_value(&member, MEMBER_DEPTH) {
            Ok(checked) => members.push((name, checked)),
            Err(refusal) => {
                let at = refusal.pointer(op.py());
                let at = if at.is_empty() { "its root" } else { &at };
                let reason = format!("bad {} (at {at}): {}", python_repr(&name), refusal.reason());
                if name != "value" {
                    return Err(fault(PatchErrorKind::BadValue, None, reason));
                }
                bad_value = Some(reason);
                members.push((name, Value::Null));
            }
        }
    }
    let checked = Value::Object(members);
    let parsed = patch::parse_op(index, &checked)?;
    match bad_value {
        Some(reason) => Err(fault(
            PatchErrorKind::BadValue,
            Some(parsed.path().as_str()),
            reason,
        )),
        None => Ok(checked),
    }
}

/// apply_patch(base, patch, limit) -> bytes: applies a checked patch (the
/// bytes `check_patch` returned) to canonical `base`; the result is canonical
/// and at most `limit` bytes after every op.
#[pyfunction]
fn apply_patch<'py>(
    py: Python<'py>,
    base: &[u8],
    patch: &[u8],
    limit: usize,
) -> PyResult<Bound<'py, PyBytes>> {
    let doc = value::parse(base).map_err(|e| value_refused(py, e))?;
    let ops = patch::parse(&value::parse(patch).map_err(|e| value_refused(py, e))?).map_err(refused)?;
    let result = patch::apply(doc, &ops, limit).map_err(refused)?;
    Ok(PyBytes::new(py, &canonical_bytes(&result)))
}

/// json_equal(a, b) -> bool: JSON equality (true is not 1, 1 equals 1.0).
#[pyfunction]
fn json_equal(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(patch::json_equal(&from_python(a)?, &from_python(b)?))
}

/// make_delta(old, new) -> bytes | None: the delta from canonical `old` to
/// canonical `new`, or None when the full value is better.
#[pyfunction]
fn make_delta<'py>(py: Python<'py>, old: &[u8], new: &[u8]) -> PyResult<Option<Bound<'py, PyBytes>>> {
    let made = delta::make(old, new).map_err(|e| value_refused(py, e))?;
    Ok(made.map(|d| PyBytes::new(py, &d)))
}

/// apply_delta(base, delta, value_hash) -> bytes: the canonical result of a
/// delta, checked against its SHA-256.
#[pyfunction]
fn apply_delta<'py>(
    py: Python<'py>,
    base: &[u8],
    delta: &[u8],
    value_hash: &[u8],
) -> PyResult<Bound<'py, PyBytes>> {
    match delta::apply(base, delta, value_hash) {
        Ok(value) => Ok(PyBytes::new(py, &value)),
        Err(DeltaError::Base(e) | DeltaError::Delta(e)) => Err(value_refused(py, e)),
        Err(DeltaError::Patch(e)) => Err(refused(e)),
        Err(DeltaError::HashMismatch) => Err(DeltaMismatch::new_err(())),
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("PatchRefused", py.get_type::<PatchRefused>())?;
    m.add("ValueTooLarge", py.get_type::<ValueTooLarge>())?;
    m.add("DeltaMismatch", py.get_type::<DeltaMismatch>())?;
    m.add_function(wrap_pyfunction!(check_patch, m)?)?;
    m.add_function(wrap_pyfunction!(apply_patch, m)?)?;
    m.add_function(wrap_pyfunction!(json_equal, m)?)?;
    m.add_function(wrap_pyfunction!(make_delta, m)?)?;
    m.add_function(wrap_pyfunction!(apply_delta, m)?)?;
    Ok(())
}
