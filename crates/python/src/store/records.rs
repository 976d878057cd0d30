//! Rust records as the Python package's records (`KeyRecord`, `Change`, `Committed`).

use super::errors::*;
use super::*;

pub(super) fn key_record<'py>(py: Python<'py>, r: &KeyRecord) -> PyResult<Bound<'py, PyAny>> {
    py_class!(py, "statesync.core.model", "KeyRecord").call1((
        &r.ns,
        &r.key,
        PyBytes::new(py, &r.value),
        r.create_rev,
        r.mod_rev,
        r.version,
    ))
}

pub(super) fn record_tuple<'py>(py: Python<'py>, r: Option<&KeyRecord>) -> PyResult<Bound<'py, PyAny>> {
    match r {
        None => Ok(py.None().into_bound(py)),
        Some(r) => key_record(py, r),
    }
}

pub(super) fn change<'py>(py: Python<'py>, c: &Change) -> PyResult<Bound<'py, PyAny>> {
    let op = py_class!(py, "statesync.core.model", "ChangeOp").call1((c.op.as_str(),))?;
    let args = PyTuple::new(
        py,
        [
            c.rev.into_pyobject(py)?.into_any(),
            c.seq.into_pyobject(py)?.into_any(),
            PyString::new(py, &c.ns).into_any(),
            PyString::new(py, &c.key).into_any(),
            op,
            match &c.value {
                Some(v) => PyBytes::new(py, v).into_any(),
                None => py.None().into_bound(py),
            },
            c.prev_mod_rev.into_pyobject(py)?.into_any(),
            c.create_rev.into_pyobject(py)?.into_any(),
            c.version.into_pyobject(py)?.into_any(),
            PyString::new(py, &c.command_id).into_any(),
            c.ts_ms.into_pyobject(py)?.into_any(),
            match &c.trace {
                Some(t) => PyString::new(py, t).into_any(),
                None => py.None().into_bound(py),
            },
            PyBytes::new(py, &c.hash).into_any(),
        ],
    )?;
    py_class!(py, "statesync.core.model", "Change").call1(args)
}

pub(super) fn committed<'py>(py: Python<'py>, outcome: Outcome) -> Result<Bound<'py, PyAny>, PyErr> {
    match outcome {
        Ok(c) => py_class!(py, "statesync.core.commands", "Committed").call1((
            c.rev,
            c.command_id,
            c.ts_ms,
            c.replayed,
        )),
        Err(e) => Err(command_error(py, e)),
    }
}
