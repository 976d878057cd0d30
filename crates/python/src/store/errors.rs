//! The one table from core and store refusals to the Python error tree.

use super::*;

pub(super) fn errors_class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
    let module = ERRORS.get_or_try_init(py, || py.import("statesync.core.errors").map(Bound::unbind))?;
    module.bind(py).getattr(name)
}

pub(crate) fn raise<'py>(py: Python<'py>, name: &str, args: impl pyo3::call::PyCallArgs<'py>) -> PyErr {
    match errors_class(py, name).and_then(|cls| cls.call1(args)) {
        Ok(instance) => PyErr::from_value(instance),
        Err(e) => e,
    }
}

/// The one table from a refusal to the Python error tree.
pub fn command_error(py: Python<'_>, error: CommandError) -> PyErr {
    match error {
        CommandError::InvalidNamespace { ns, reason } => raise(py, "InvalidNamespaceError", (ns, reason)),
        CommandError::InvalidKey { ns, key, reason } => raise(py, "InvalidKeyError", (ns, key, reason)),
        CommandError::InvalidValue {
            ns,
            key,
            path,
            reason,
        } => raise(py, "InvalidValueError", (ns, key, path, reason)),
        CommandError::InvalidPatch {
            ns,
            key,
            index,
            path,
            reason,
        } => raise(py, "InvalidPatchError", (ns, key, index, path, reason)),
        CommandError::InvalidCommand { reason, ns, key } => {
            let kwargs = PyDict::new(py);
            let _ = kwargs.set_item("namespace", ns);
            let _ = kwargs.set_item("key", key);
            match errors_class(py, "InvalidCommandError").and_then(|cls| cls.call((reason,), Some(&kwargs))) {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            }
        }
        CommandError::ValueTooLarge { ns, key, size, limit } => {
            raise(py, "ValueTooLargeError", (ns, key, size, limit))
        }
        CommandError::Conflict(failed) => {
            let compares: PyResult<Vec<Bound<'_, PyAny>>> = failed
                .into_iter()
                .map(|f| {
                    errors_class(py, "FailedCompare")?.call1((f.ns, f.key, f.expected, f.actual_mod_rev))
                })
                .collect();
            match compares {
                Ok(compares) => raise(py, "ConflictError", (compares,)),
                Err(e) => e,
            }
        }
        CommandError::NotFound { ns, key } => raise(py, "NotFoundError", (ns, key)),
        CommandError::CommandIdReused { command_id, rev } => {
            raise(py, "CommandIdReusedError", (command_id, rev))
        }
        CommandError::Gate(inner) => match inner.downcast::<PyErr>() {
            Ok(e) => *e,
            Err(inner) => match inner.downcast::<StoreError>() {
                Ok(e) => store_error(py, *e),
                Err(other) => raise(py, "StoreError", (other.to_string(),)),
            },
        },
    }
}

/// A store failure as the Python error tree names it.
pub fn store_error(py: Python<'_>, error: StoreError) -> PyErr {
    match error {
        StoreError::Closed => raise(py, "StoreClosedError", ()),
        StoreError::InUse { path, holder } => raise(py, "StoreInUseError", (path, holder)),
        StoreError::Corrupt(why) => raise(py, "StoreCorruptError", (why,)),
        StoreError::Failed(why) => raise(py, "StoreFailedError", (why,)),
        StoreError::Io(why) => raise(py, "StoreError", (why,)),
        StoreError::Compacted { rev, compacted } => raise(py, "CompactedError", (rev, compacted)),
        StoreError::FutureRevision { rev, head } => raise(py, "FutureRevisionError", (rev, head)),
        StoreError::Invalid(e) => command_error(py, e),
    }
}
