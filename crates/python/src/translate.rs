//! Translations between schema versions: the core's `translate`, converted at the edge.
//!
//! Refusals are raised as `TranslationRefused(reason, op index, field,
//! from_version, to_version)`, a chain with a missing step as
//! `TranslationMissing(reason)`; the Python package adds the namespace. A
//! document that is not JSON raises `ValueRefused`. Documents given as
//! Python objects are converted without recursion and at any depth (the ops
//! walk only their own paths), and their numbers as they are: a converter
//! refuses one outside the I-JSON range, naming the op and the path. Documents
//! given as bytes are parsed strictly, translated and returned canonical in one
//! call, without the GIL.

use std::collections::HashMap;
use std::sync::Arc;

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use statesync_core::canonical::canonical_bytes;
use statesync_core::translate::{
    self as core, ChainError, Converter, Direction, Translation, TranslationError, not_i_json,
};
use statesync_core::value::{self, ErrorKind, Token, Value, ValueError};

use crate::values::{Refused, to_python, to_value, value_refused};

create_exception!(
    _native,
    TranslationRefused,
    PyValueError,
    "A translation that is malformed or cannot apply: args are (reason, op index or None, field or None, from_version or None, to_version or None)."
);
create_exception!(
    _native,
    TranslationMissing,
    PyValueError,
    "A chain of translations with a step that is not registered: args are (reason,)."
);

fn refused(err: TranslationError) -> PyErr {
    TranslationRefused::new_err((
        err.reason,
        err.op_index,
        err.field,
        err.from_version,
        err.to_version,
    ))
}

fn chain_refused(err: ChainError) -> PyErr {
    match err {
        ChainError::Missing { .. } => TranslationMissing::new_err((err.to_string(),)),
        ChainError::Mismatch { .. } => PyValueError::new_err(err.to_string()),
    }
}

fn direction(name: &str) -> PyResult<Direction> {
    match name {
        "up" => Ok(Direction::Up),
        "down" => Ok(Direction::Down),
        other => Err(PyValueError::new_err(format!(
            "direction must be 'up' or 'down', not {}",
            value::python_repr(other)
        ))),
    }
}

/// A refusal's path as core tokens (a key that is not valid Unicode shows
/// replacement characters).
fn core_tokens(py: Python<'_>, refusal: &Refused) -> Vec<Token> {
    refusal
        .tokens
        .iter()
        .map(|t| {
            let t = t.bind(py);
            match t.extract::<usize>() {
                Ok(i) if t.is_instance_of::<PyInt>() => Token::Index(i),
                _ => Token::Key(
                    t.str()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                ),
            }
        })
        .collect()
}

/// The translation data as a value. Data holding something that is not
/// I-JSON is refused naming the op and member; `within` is the path of
/// `data` inside the translation.
fn translation_value(data: &Bound<'_, PyAny>, within: &[&str]) -> Result<Value, TranslationError> {
    to_value(data, 0).map_err(|refusal| {
        let mut tokens: Vec<Token> = within.iter().map(|k| Token::Key((*k).to_owned())).collect();
        tokens.extend(core_tokens(data.py(), &refusal));
        not_i_json(&ValueError {
            kind: refusal.kind,
            tokens,
            reason: refusal.reason().to_owned(),
        })
    })
}

/// A refusal of data that is not I-JSON carries the versions when both are
/// integers, as every refusal found after the versions were read does.
fn with_versions(
    mut err: TranslationError,
    from: Option<&Bound<'_, PyAny>>,
    to: Option<&Bound<'_, PyAny>>,
) -> TranslationError {
    let int = |v: Option<&Bound<'_, PyAny>>| {
        v.filter(|v| v.is_exact_instance_of::<PyInt>())
            .and_then(|v| v.extract::<i64>().ok())
    };
    if let (Some(from), Some(to)) = (int(from), int(to)) {
        (err.from_version, err.to_version) = (Some(from), Some(to));
    }
    err
}

/// A checked translation between versions `from_version` and `from_version + 1`.
#[pyclass(module = "statesync._native", name = "Translation", frozen)]
pub struct PyTranslation {
    inner: Arc<Translation>,
}

#[pymethods]
impl PyTranslation {
    /// Translation(from_version, to_version, up, down): checked like
    /// `parse`, with `down` used as given.
    #[new]
    fn new(
        from_version: &Bound<'_, PyAny>,
        to_version: &Bound<'_, PyAny>,
        up: &Bound<'_, PyAny>,
        down: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        // A version that is not even I-JSON is as wrong as a string: the core says why.
        let version = |v: &Bound<'_, PyAny>| to_value(v, 0).unwrap_or(Value::Null);
        let ops = |list, name| {
            translation_value(list, &[name])
                .map_err(|e| refused(with_versions(e, Some(from_version), Some(to_version))))
        };
        let (up, down) = (ops(up, "up")?, ops(down, "down")?);
        let inner = Translation::from_parts(&version(from_version), &version(to_version), &up, &down)
            .map_err(refused)?;
        Ok(PyTranslation {
            inner: Arc::new(inner),
        })
    }

    /// parse(data) -> Translation: reads the JSON form (Python objects);
    /// derives `down` when it is absent.
    #[staticmethod]
    fn parse(data: &Bound<'_, PyAny>) -> PyResult<Self> {
        let parsed = if let Ok(dict) = data.cast_exact::<PyDict>() {
            let version = |name| dict.get_item(name).ok().flatten();
            translation_value(data, &[])
                .map_err(|e| with_versions(e, version("from").as_ref(), version("to").as_ref()))
                .and_then(|value| Translation::parse(&value))
        } else {
            // Not an object, whatever it holds.
            Translation::parse(&Value::Null)
        };
        parsed
            .map(|t| PyTranslation { inner: Arc::new(t) })
            .map_err(refused)
    }

    /// The older version.
    #[getter(from_version)]
    fn older(&self) -> i64 {
        self.inner.from_version()
    }

    /// The newer version.
    #[getter(to_version)]
    fn newer(&self) -> i64 {
        self.inner.to_version()
    }

    /// The `up` ops in canonical form, as a tuple of new dicts.
    #[getter]
    fn up<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        ops(py, self.inner.up())
    }

    /// The `down` ops in canonical form, as a tuple of new dicts.
    #[getter]
    fn down<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        ops(py, self.inner.down())
    }

    /// to_json() -> dict: the canonical form, with an explicit `down`.
    fn to_json(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        to_python(py, &self.inner.to_value())
    }

    /// apply(doc, direction) -> object: `doc` translated one step, as new objects.
    fn apply(&self, doc: &Bound<'_, PyAny>, direction: &str) -> PyResult<Py<PyAny>> {
        let direction = self::direction(direction)?;
        let translated = self.inner.apply(document(doc)?, direction).map_err(refused)?;
        document_to_python(doc.py(), &translated)
    }
}

fn ops<'py>(py: Python<'py>, ops: &[core::Op]) -> PyResult<Bound<'py, PyTuple>> {
    let items = ops
        .iter()
        .map(|op| to_python(py, &op.to_value()))
        .collect::<PyResult<Vec<_>>>()?;
    PyTuple::new(py, items)
}

/// The registered translations by older version, shared with the core.
fn registered(translations: &Bound<'_, PyDict>) -> PyResult<HashMap<i64, Arc<Translation>>> {
    translations
        .iter()
        .map(|(low, t)| Ok((low.extract()?, t.cast::<PyTranslation>()?.get().inner.clone())))
        .collect()
}

fn translated(
    doc: Value,
    from: i64,
    to: i64,
    translations: &HashMap<i64, Arc<Translation>>,
) -> PyResult<Value> {
    let (steps, direction) =
        core::chain(from, to, |low| translations.get(&low).map(Arc::as_ref)).map_err(chain_refused)?;
    core::apply_chain(doc, &steps, direction).map_err(refused)
}

/// translate(doc, from_version, to_version, translations) -> object: `doc`
/// taken from one version to another through `translations` (a dict of
/// Translation by older version), every step looked up before any runs.
#[pyfunction]
fn translate(
    doc: &Bound<'_, PyAny>,
    from_version: i64,
    to_version: i64,
    translations: &Bound<'_, PyDict>,
) -> PyResult<Py<PyAny>> {
    let registered = registered(translations)?;
    let result = translated(document(doc)?, from_version, to_version, &registered)?;
    document_to_python(doc.py(), &result)
}

/// translate_json(text, from_version, to_version, translations) -> bytes:
/// like `translate`, on JSON text, strictly parsed; the result is canonical.
/// The work runs without the GIL.
#[pyfunction]
fn translate_json<'py>(
    py: Python<'py>,
    text: &[u8],
    from_version: i64,
    to_version: i64,
    translations: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyBytes>> {
    let registered = registered(translations)?;
    let outcome = py.detach(|| {
        let doc = value::parse(text).map_err(Detached::Value)?;
        let (steps, direction) = core::chain(from_version, to_version, |low| {
            registered.get(&low).map(Arc::as_ref)
        })
        .map_err(Detached::Chain)?;
        let result = core::apply_chain(doc, &steps, direction).map_err(Detached::Translation)?;
        Ok(canonical_bytes(&result))
    });
    match outcome {
        Ok(bytes) => Ok(PyBytes::new(py, &bytes)),
        Err(Detached::Value(e)) => Err(value_refused(py, e)),
        Err(Detached::Chain(e)) => Err(chain_refused(e)),
        Err(Detached::Translation(e)) => Err(refused(e)),
    }
}

/// A failure found without the GIL, raised once it is held again.
enum Detached {
    Value(ValueError),
    Chain(ChainError),
    Translation(TranslationError),
}

/// converters() -> list of (name, inverse, summary), in the spec's order.
#[pyfunction]
fn converters() -> Vec<(&'static str, &'static str, &'static str)> {
    Converter::ALL
        .iter()
        .map(|c| (c.name(), c.inverse().name(), c.summary()))
        .collect()
}

/// convert(name, value) -> object: one converter applied to one value;
/// raises `TranslationRefused` when the value is outside its domain.
#[pyfunction]
fn convert(name: &str, value: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    let converter = Converter::from_name(name)
        .ok_or_else(|| PyValueError::new_err(format!("unknown converter {}", value::python_repr(name))))?;
    let converted = converter
        .convert(&crate::values::from_python(value)?)
        .map_err(|why| {
            let none = None::<i64>;
            TranslationRefused::new_err((format!("{name}: {why}"), none, none, none, none))
        })?;
    to_python(value.py(), &converted)
}

/// A container being converted from Python: its value so far and the
/// children still to convert.
struct FromPython<'py> {
    children: std::vec::IntoIter<(Token, Bound<'py, PyAny>)>,
    built: Value,
    /// The token of the child being converted.
    at: Option<Token>,
}

/// A part of a document that is not I-JSON: why, and where below the
/// containers being converted.
struct Fault {
    kind: ErrorKind,
    reason: String,
    tokens: Vec<Token>,
}

impl Fault {
    fn of(py: Python<'_>, refusal: &Refused, mut tokens: Vec<Token>) -> Fault {
        tokens.extend(core_tokens(py, refusal));
        Fault {
            kind: refusal.kind,
            reason: refusal.reason().to_owned(),
            tokens,
        }
    }
}

/// The children of a dict, list or tuple (None: `obj` is not one of them).
fn children<'py>(obj: &Bound<'py, PyAny>) -> Result<Option<FromPython<'py>>, Fault> {
    let (children, built) = if let Ok(dict) = obj.cast_exact::<PyDict>() {
        let mut members = Vec::with_capacity(dict.len());
        for (k, v) in dict.iter() {
            if !k.is_exact_instance_of::<PyString>() {
                return Err(Fault {
                    kind: ErrorKind::NotJson,
                    reason: format!("object key {} is not a string", crate::values::repr(&k)),
                    tokens: Vec::new(),
                });
            }
            let key = match to_value(&k, 0) {
                Ok(Value::String(key)) => key,
                Ok(_) => unreachable!("a str converts to a string"),
                Err(refusal) => {
                    let lossy = k
                        .str()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    return Err(Fault::of(obj.py(), &refusal, vec![Token::Key(lossy)]));
                }
            };
            members.push((Token::Key(key), v));
        }
        (members, Value::Object(Vec::with_capacity(dict.len())))
    } else if let Ok(list) = obj.cast_exact::<PyList>() {
        let items: Vec<_> = list
            .iter()
            .enumerate()
            .map(|(i, v)| (Token::Index(i), v))
            .collect();
        let len = items.len();
        (items, Value::Array(Vec::with_capacity(len)))
    } else if let Ok(tuple) = obj.cast_exact::<PyTuple>() {
        let items: Vec<_> = tuple
            .iter()
            .enumerate()
            .map(|(i, v)| (Token::Index(i), v))
            .collect();
        let len = items.len();
        (items, Value::Array(Vec::with_capacity(len)))
    } else {
        return Ok(None);
    };
    Ok(Some(FromPython {
        children: children.into_iter(),
        built,
        at: None,
    }))
}

/// A number as given: the document is not checked against the I-JSON range
/// here, a converter refuses what it cannot take (with the op and the path).
fn leaf(obj: &Bound<'_, PyAny>) -> Option<Value> {
    if obj.is_exact_instance_of::<PyInt>() {
        return obj.extract::<i64>().ok().map(Value::Int);
    }
    let x = obj.cast_exact::<PyFloat>().ok()?.value();
    x.is_finite().then_some(Value::Float(x))
}

/// A document given as Python objects, at any depth (a loop, not recursion).
fn document(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = obj.py();
    let mut stack: Vec<FromPython<'_>> = Vec::new();
    let mut next = obj.clone();
    let fail = |stack: &[FromPython<'_>], fault: Fault| {
        let mut tokens: Vec<Token> = stack.iter().filter_map(|f| f.at.clone()).collect();
        tokens.extend(fault.tokens);
        value_refused(
            py,
            ValueError {
                kind: fault.kind,
                tokens,
                reason: fault.reason,
            },
        )
    };
    loop {
        let mut done = match children(&next) {
            Ok(Some(frame)) => {
                stack.push(frame);
                None
            }
            Ok(None) => match leaf(&next) {
                Some(number) => Some(number),
                None => Some(to_value(&next, 0).map_err(|r| fail(&stack, Fault::of(py, &r, Vec::new())))?),
            },
            Err(fault) => return Err(fail(&stack, fault)),
        };
        loop {
            let Some(top) = stack.last_mut() else {
                return Ok(done.expect("the root was converted"));
            };
            if let Some(value) = done.take() {
                match (&mut top.built, top.at.take()) {
                    (Value::Object(members), Some(Token::Key(key))) => members.push((key, value)),
                    (Value::Array(items), Some(Token::Index(_))) => items.push(value),
                    _ => unreachable!("a child goes back to its own container"),
                }
            }
            match top.children.next() {
                Some((token, child)) => {
                    top.at = Some(token);
                    next = child;
                    break;
                }
                None => done = stack.pop().map(|frame| frame.built),
            }
        }
    }
}

/// A container being filled in Python and the children still to convert.
enum IntoPython<'py, 'v> {
    Object(Bound<'py, PyDict>, std::slice::Iter<'v, (String, Value)>),
    Array(Bound<'py, PyList>, std::slice::Iter<'v, Value>),
}

/// A new empty Python container for an object or array (None: a scalar).
fn open<'py, 'v>(py: Python<'py>, value: &'v Value) -> Option<(Py<PyAny>, IntoPython<'py, 'v>)> {
    match value {
        Value::Object(members) => {
            let dict = PyDict::new(py);
            Some((
                dict.clone().into_any().unbind(),
                IntoPython::Object(dict, members.iter()),
            ))
        }
        Value::Array(items) => {
            let list = PyList::empty(py);
            Some((
                list.clone().into_any().unbind(),
                IntoPython::Array(list, items.iter()),
            ))
        }
        _ => None,
    }
}

/// A document as new Python objects, at any depth (a loop, not recursion).
fn document_to_python(py: Python<'_>, doc: &Value) -> PyResult<Py<PyAny>> {
    let Some((root, frame)) = open(py, doc) else {
        return to_python(py, doc);
    };
    let mut stack = vec![frame];
    while let Some(top) = stack.last_mut() {
        let (key, child) = match top {
            IntoPython::Object(_, members) => match members.next() {
                Some((key, child)) => (Some(key), child),
                None => {
                    stack.pop();
                    continue;
                }
            },
            IntoPython::Array(_, items) => match items.next() {
                Some(child) => (None, child),
                None => {
                    stack.pop();
                    continue;
                }
            },
        };
        let (object, frame) = match open(py, child) {
            Some((object, frame)) => (object, Some(frame)),
            None => (to_python(py, child)?, None),
        };
        match (top, key) {
            (IntoPython::Object(dict, _), Some(key)) => dict.set_item(key, object)?,
            (IntoPython::Array(list, _), None) => list.append(object)?,
            _ => unreachable!("a child goes into its own container"),
        }
        stack.extend(frame);
    }
    Ok(root)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("TranslationRefused", py.get_type::<TranslationRefused>())?;
    m.add("TranslationMissing", py.get_type::<TranslationMissing>())?;
    m.add("TRANSLATION_FORMAT", core::FORMAT)?;
    m.add_class::<PyTranslation>()?;
    m.add_function(wrap_pyfunction!(translate, m)?)?;
    m.add_function(wrap_pyfunction!(translate_json, m)?)?;
    m.add_function(wrap_pyfunction!(converters, m)?)?;
    m.add_function(wrap_pyfunction!(convert, m)?)?;
    Ok(())
}
