//! The contract gate, implemented in Python and called by the committer.

use super::errors::*;
use super::source::*;
use super::*;

/// The contract gate, implemented in Python (`statesync.store.sqlite._GateAdapter`):
/// consulted only for commands that need it (see `Sequencer`).
pub(super) struct PyGate {
    pub(super) adapter: Py<PyAny>,
}

fn planned_tuple<'py>(py: Python<'py>, p: &PlannedChange) -> PyResult<Bound<'py, PyAny>> {
    Ok(PyTuple::new(
        py,
        [
            PyString::new(py, &p.ns).into_any(),
            PyString::new(py, &p.key).into_any(),
            PyString::new(py, p.op.as_str()).into_any(),
            record_tuple(py, p.before.as_ref())?,
            record_tuple(py, p.record.as_ref())?,
        ],
    )?
    .into_any())
}

fn record_from_py(obj: &Bound<'_, PyAny>) -> PyResult<Option<KeyRecord>> {
    if obj.is_none() {
        return Ok(None);
    }
    Ok(Some(KeyRecord {
        ns: obj.getattr("namespace")?.extract()?,
        key: obj.getattr("key")?.extract()?,
        value: obj.getattr("value")?.extract()?,
        create_rev: obj.getattr("create_rev")?.extract()?,
        mod_rev: obj.getattr("mod_rev")?.extract()?,
        version: obj.getattr("version")?.extract()?,
    }))
}

impl PyGate {
    fn contracts<'py>(
        py: Python<'py>,
        read: &mut ReadKey<'_>,
        namespaces: &[&str],
    ) -> PyResult<Bound<'py, PyDict>> {
        let view = PyDict::new(py);
        for ns in namespaces {
            view.set_item(*ns, record_tuple(py, read(CONTRACTS_NAMESPACE, ns).as_ref())?)?;
        }
        Ok(view)
    }
}

impl Gate for PyGate {
    fn rebase(&mut self, read: &mut ReadKey<'_>, record: &KeyRecord) -> Result<Vec<u8>, CommandError> {
        Python::attach(|py| {
            let contracts = Self::contracts(py, read, &[&record.ns])?;
            self.adapter
                .bind(py)
                .call_method1("rebase", (contracts, key_record(py, record)?))?
                .extract()
        })
        .map_err(py_failure)
    }

    fn admit(
        &mut self,
        command: &Command,
        planned: Vec<PlannedChange>,
        read: &mut ReadKey<'_>,
        rev: i64,
        now_ms: i64,
    ) -> Result<Vec<PlannedChange>, CommandError> {
        Python::attach(|py| -> PyResult<Vec<PlannedChange>> {
            let mut namespaces: Vec<&str> = command.ops.iter().map(|op| op.ns()).collect();
            namespaces.extend(
                command
                    .ops
                    .iter()
                    .filter(|op| op.kind() == "contract")
                    .map(|op| op.key()),
            );
            let contracts = Self::contracts(py, read, &namespaces)?;
            let ops = PyList::empty(py);
            for op in &command.ops {
                let (schema_version, base_rev) = match op {
                    statesync_core::command::Op::Put {
                        schema_version,
                        base_rev,
                        ..
                    } => (*schema_version, *base_rev),
                    _ => (0, 0),
                };
                ops.append((op.kind(), op.ns(), op.key(), schema_version, base_rev))?;
            }
            let planned_py = PyList::empty(py);
            for p in &planned {
                planned_py.append(planned_tuple(py, p)?)?;
            }
            let admitted = self
                .adapter
                .bind(py)
                .call_method1("admit", (ops, planned_py, contracts, rev, now_ms))?;
            let mut out = Vec::new();
            for item in admitted.try_iter()? {
                let item = item?;
                let (ns, key, op, before, record): (
                    String,
                    String,
                    String,
                    Bound<'_, PyAny>,
                    Bound<'_, PyAny>,
                ) = item.extract()?;
                out.push(PlannedChange {
                    ns,
                    key,
                    op: ChangeOp::parse(&op)
                        .ok_or_else(|| PyTypeError::new_err(format!("change op {op:?}")))?,
                    before: record_from_py(&before)?,
                    record: record_from_py(&record)?,
                });
            }
            Ok(out)
        })
        .map_err(|e| Python::attach(|py| unwrap_gate_error(py, e)))
    }
}

/// A statesync error raised by the gate stays itself; anything else is a bug in
/// the gate and fails this command only, as a store error.
fn unwrap_gate_error(py: Python<'_>, e: PyErr) -> CommandError {
    let statesync_error = errors_class(py, "StatesyncError").ok();
    match statesync_error {
        Some(cls) if e.is_instance(py, &cls) => py_failure(e),
        _ => {
            let wrapped = raise(py, "StoreError", (format!("contract gate failed: {e}"),));
            wrapped.set_cause(py, Some(e));
            py_failure(wrapped)
        }
    }
}
