//! The one table from core and store refusals to the Python error tree.

use statesync_core::gate::policy::conflict_value;

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
        CommandError::SchemaViolation {
            ns,
            key,
            schema_version,
            violations,
        } => {
            let found: PyResult<Vec<Bound<'_, PyAny>>> = violations
                .into_iter()
                .map(|v| errors_class(py, "SchemaViolation")?.call1((v.path, v.keyword, v.message)))
                .collect();
            match found {
                Ok(found) => raise(py, "SchemaViolationError", (ns, key, schema_version, found)),
                Err(e) => e,
            }
        }
        CommandError::MergeConflict {
            ns,
            key,
            base_rev,
            current_mod_rev,
            conflicts,
        } => {
            let described: PyResult<Vec<Py<PyAny>>> = conflicts
                .iter()
                .map(|c| crate::values::to_python(py, &conflict_value(c)))
                .collect();
            match described {
                Ok(described) => raise(
                    py,
                    "MergeConflictError",
                    (ns, key, base_rev, current_mod_rev, described),
                ),
                Err(e) => e,
            }
        }
        CommandError::NoTranslationPath {
            ns,
            from_version,
            to_version,
            reason,
        } => raise(
            py,
            "NoTranslationPathError",
            (ns, from_version, vec![to_version], reason),
        ),
        CommandError::Translation { ns, error } => {
            let kwargs = PyDict::new(py);
            let set = [
                kwargs.set_item("namespace", ns),
                kwargs.set_item("from_version", error.from_version),
                kwargs.set_item("to_version", error.to_version),
                kwargs.set_item("op_index", error.op_index),
                kwargs.set_item("field", &error.field),
            ];
            match set
                .into_iter()
                .collect::<PyResult<()>>()
                .and_then(|()| errors_class(py, "InvalidTranslationError"))
                .and_then(|cls| cls.call((&error.reason,), Some(&kwargs)))
            {
                Ok(instance) => PyErr::from_value(instance),
                Err(e) => e,
            }
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
