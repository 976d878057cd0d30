//! A Python `statesync.Command` read through `CommandSource`, in the order the
//! core checks it, so the first fault found is the same as for any source.

use super::errors::*;
use super::*;

pub(super) fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into())
}

/// A Python string as Rust text; a lone surrogate becomes U+FFFD, which no
/// name accepts, so the name's own check refuses it.
fn text(obj: &Bound<'_, PyAny>) -> Option<String> {
    obj.cast::<PyString>()
        .ok()
        .map(|s| s.to_string_lossy().into_owned())
}

fn is_unicode(obj: &Bound<'_, PyAny>) -> bool {
    obj.cast::<PyString>().is_ok_and(|s| s.to_str().is_ok())
}

fn exact_int(obj: &Bound<'_, PyAny>) -> Result<i64, String> {
    if obj.is_exact_instance_of::<pyo3::types::PyInt>() {
        obj.extract::<i64>().map_err(|_| repr(obj))
    } else {
        Err(repr(obj))
    }
}

/// A `statesync.Command` read through the order `prepare` checks it in.
pub(super) struct PyCommand<'py> {
    command: Bound<'py, PyAny>,
    ops: Vec<Bound<'py, PyAny>>,
    compares: Vec<Bound<'py, PyAny>>,
}

impl<'py> PyCommand<'py> {
    pub(super) fn new(command: &Bound<'py, PyAny>) -> PyResult<Self> {
        let seq = |name: &str| -> PyResult<Vec<Bound<'py, PyAny>>> {
            let items = command.getattr(name)?;
            if items.is_instance_of::<PyString>() {
                return Err(PyTypeError::new_err(format!("Command.{name} is a sequence")));
            }
            items.try_iter()?.collect()
        };
        Ok(PyCommand {
            command: command.clone(),
            ops: seq("ops")?,
            compares: seq("compares")?,
        })
    }

    fn op_attr(&self, i: usize, name: &str) -> PyResult<Bound<'py, PyAny>> {
        self.ops[i].getattr(name)
    }

    fn py(&self) -> Python<'py> {
        self.command.py()
    }
}

/// A JSON Pointer from path tokens, built in Python: a key that is not valid
/// Unicode stays as it was given.
fn pointer<'py>(py: Python<'py>, tokens: Vec<Py<PyAny>>) -> PyResult<Bound<'py, PyAny>> {
    static POINTER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    let f = POINTER.import(py, "statesync.core.canonical", "pointer")?;
    f.call1((PyList::new(py, tokens)?,))
}

/// A namespace argument as text, or the error naming it as given.
pub(super) fn namespace_arg(ns: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = ns.py();
    match text(ns) {
        None => Err(raise(
            py,
            "InvalidNamespaceError",
            (repr(ns), "a namespace is a string"),
        )),
        Some(name) if !is_unicode(ns) => match statesync_core::command::check_namespace(&name) {
            Err(CommandError::InvalidNamespace { reason, .. }) => {
                Err(raise(py, "InvalidNamespaceError", (ns, reason)))
            }
            _ => Ok(name),
        },
        Some(name) => Ok(name),
    }
}

/// A key argument as text, or the error naming it as given.
pub(super) fn key_arg(ns: &str, key: &Bound<'_, PyAny>) -> PyResult<String> {
    let py = key.py();
    match text(key) {
        None => Err(raise(py, "InvalidKeyError", (ns, repr(key), "a key is a string"))),
        Some(_) if !is_unicode(key) => Err(raise(
            py,
            "InvalidKeyError",
            (ns, key, "a key must be valid Unicode"),
        )),
        Some(k) => Ok(k),
    }
}

fn bad(reason: String) -> CommandError {
    CommandError::InvalidCommand {
        reason,
        ns: None,
        key: None,
    }
}

pub(super) fn py_failure(e: PyErr) -> CommandError {
    CommandError::Gate(Box::new(e))
}

impl CommandSource for PyCommand<'_> {
    fn command_id(&self) -> Result<String, CommandError> {
        let id = self.command.getattr("command_id").map_err(py_failure)?;
        match text(&id) {
            None => Err(bad("command_id must be a string of 1 to 256 characters".into())),
            Some(_) if !is_unicode(&id) => Err(bad(format!("command_id {} is not valid Unicode", repr(&id)))),
            Some(t) => Ok(t),
        }
    }

    fn op_count(&self) -> usize {
        self.ops.len()
    }

    fn compare_count(&self) -> usize {
        self.compares.len()
    }

    fn op_kind(&self, i: usize) -> Result<OpKind, CommandError> {
        let py = self.py();
        let op = &self.ops[i];
        let kinds = [
            (py_class!(py, "statesync.core.commands", "Put"), OpKind::Put),
            (py_class!(py, "statesync.core.commands", "Patch"), OpKind::Patch),
            (py_class!(py, "statesync.core.commands", "Delete"), OpKind::Delete),
            (
                py_class!(py, "statesync.core.commands", "SetContract"),
                OpKind::Contract,
            ),
        ];
        for (cls, kind) in kinds {
            if op.is_instance(&cls).unwrap_or(false) {
                return Ok(kind);
            }
        }
        Err(bad(format!(
            "unknown op {}: use Put, Patch, Delete or SetContract",
            repr(op)
        )))
    }

    fn op_ns(&self, i: usize) -> Result<String, CommandError> {
        let ns = self.op_attr(i, "namespace").map_err(py_failure)?;
        namespace_arg(&ns).map_err(py_failure)
    }

    fn op_key(&self, i: usize, ns: &str) -> Result<String, CommandError> {
        let key = self.op_attr(i, "key").map_err(py_failure)?;
        key_arg(ns, &key).map_err(py_failure)
    }

    fn op_value(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        let py = self.py();
        let name = if self.ops[i].hasattr("request").unwrap_or(false) {
            "request"
        } else {
            "value"
        };
        let value = self.op_attr(i, name).map_err(py_failure)?;
        values::to_value(&value, 0).map_err(|refused| {
            let path = match pointer(py, refused.tokens) {
                Ok(path) => path,
                Err(e) => return py_failure(e),
            };
            py_failure(raise(py, "InvalidValueError", (ns, key, path, refused.reason)))
        })
    }

    fn op_versions(&self, i: usize) -> (Result<i64, String>, Result<i64, String>) {
        let read = |name: &str| match self.op_attr(i, name) {
            Ok(v) => exact_int(&v),
            Err(_) => Err("<missing>".into()),
        };
        (read("schema_version"), read("base_rev"))
    }

    fn op_patch(&self, i: usize, ns: &str, key: &str) -> Result<Value, CommandError> {
        let patch = self.op_attr(i, "patch").map_err(py_failure)?;
        crate::patch::checked_patch(&patch).map_err(|e| statesync_core::command::patch_refusal(ns, key, e))
    }

    fn compare(&self, i: usize) -> Result<(String, String, String, Result<i64, String>), CommandError> {
        let py = self.py();
        let c = &self.compares[i];
        let compare_cls = py_class!(py, "statesync.core.commands", "Compare");
        if !c.is_instance(&compare_cls).unwrap_or(false) {
            return Err(bad(format!("unknown compare {}: use Compare", repr(c))));
        }
        let ns = namespace_arg(&c.getattr("namespace").map_err(py_failure)?).map_err(py_failure)?;
        statesync_core::command::check_namespace(&ns)?;
        let key = key_arg(&ns, &c.getattr("key").map_err(py_failure)?).map_err(py_failure)?;
        let kind_obj = c.getattr("kind").map_err(py_failure)?;
        let kind = text(&kind_obj).unwrap_or_else(|| repr(&kind_obj));
        let mod_rev = c
            .getattr("mod_rev")
            .map_err(|_| "<missing>".to_owned())
            .and_then(|v| exact_int(&v));
        Ok((ns, key, kind, mod_rev))
    }

    fn trace(&self) -> Result<Option<String>, CommandError> {
        let trace = self.command.getattr("trace").map_err(py_failure)?;
        if trace.is_none() {
            return Ok(None);
        }
        match text(&trace) {
            None => Err(bad("trace must be a string (W3C traceparent)".into())),
            Some(_) if !is_unicode(&trace) => Err(bad(format!(
                "trace must be valid Unicode of at most {} characters",
                statesync_core::command::MAX_TRACE_CHARS
            ))),
            Some(t) => Ok(Some(t)),
        }
    }
}
