//! Values between Python objects and the core's [`Value`].

use pyo3::create_exception;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use statesync_core::canonical::write_canonical;
use statesync_core::value::{self, ErrorKind, MAX_DEPTH, Value, ValueError};

create_exception!(
    _native,
    ValueRefused,
    PyValueError,
    "A value outside the I-JSON domain: args are (kind, path tokens, reason)."
);

/// A refusal whose path tokens are Python objects: a key that is not valid
/// Unicode (a lone surrogate) cannot become a Rust string, yet names the place.
pub struct Refused {
    pub kind: ErrorKind,
    pub tokens: Vec<Py<PyAny>>,
    pub reason: String,
}

impl Refused {
    fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        Refused {
            kind,
            tokens: Vec::new(),
            reason: reason.into(),
        }
    }

    fn within(mut self, token: Py<PyAny>) -> Self {
        self.tokens.insert(0, token);
        self
    }

    fn into_pyerr(self, py: Python<'_>) -> PyErr {
        let tokens = PyList::new(py, self.tokens).expect("a list of objects");
        ValueRefused::new_err((self.kind.code(), tokens.unbind(), self.reason))
    }

    /// The JSON Pointer of the offending member, for a message (a key that is
    /// not valid Unicode shows replacement characters).
    pub fn pointer(&self, py: Python<'_>) -> String {
        self.tokens
            .iter()
            .map(|t| {
                value::pointer_token(
                    &t.bind(py)
                        .str()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                )
            })
            .collect()
    }

    /// Why the value was refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }

    fn from_core(py: Python<'_>, err: ValueError) -> Self {
        let tokens = err.tokens.iter().map(|t| t.to_object(py)).collect();
        Refused {
            kind: err.kind,
            tokens,
            reason: err.reason,
        }
    }
}

trait TokenObject {
    fn to_object(&self, py: Python<'_>) -> Py<PyAny>;
}

impl TokenObject for value::Token {
    fn to_object(&self, py: Python<'_>) -> Py<PyAny> {
        match self {
            value::Token::Key(k) => PyString::new(py, k).into_any().unbind(),
            value::Token::Index(i) => i.into_pyobject(py).expect("an int").into_any().unbind(),
        }
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// `repr(obj)`, for messages.
pub fn repr(obj: &Bound<'_, PyAny>) -> String {
    obj.repr().map(|r| r.to_string()).unwrap_or_else(|_| "?".into())
}

/// Converts a Python object into a checked [`Value`] that will sit `depth`
/// arrays and objects deep. Only the exact JSON types are accepted (a `str`
/// subclass such as an enum member is not JSON).
pub fn to_value(obj: &Bound<'_, PyAny>, depth: usize) -> Result<Value, Refused> {
    let py = obj.py();
    if obj.is_none() {
        return Ok(Value::Null);
    }
    if let Ok(s) = obj.cast_exact::<PyString>() {
        return string(s).map(Value::String);
    }
    if let Ok(b) = obj.cast_exact::<PyBool>() {
        return Ok(Value::Bool(b.is_true()));
    }
    if obj.is_exact_instance_of::<PyInt>() {
        return match obj.extract::<i64>() {
            Ok(n) => value::check_int(i128::from(n))
                .map(Value::Int)
                .map_err(|e| Refused::from_core(py, e)),
            Err(_) => Err(Refused::new(
                ErrorKind::IntegerOutOfRange,
                format!("integer {} is outside the I-JSON range ±(2**53-1)", repr(obj)),
            )),
        };
    }
    if let Ok(f) = obj.cast_exact::<PyFloat>() {
        return value::check_float(f.value())
            .map(Value::Float)
            .map_err(|e| Refused::from_core(py, e));
    }
    let too_deep = || {
        Refused::new(
            ErrorKind::TooDeep,
            format!("arrays and objects nest deeper than {MAX_DEPTH} levels"),
        )
    };
    if let Ok(d) = obj.cast_exact::<PyDict>() {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut members = Vec::with_capacity(d.len());
        for (k, v) in d.iter() {
            let Ok(key) = k.cast_exact::<PyString>() else {
                return Err(Refused::new(
                    ErrorKind::NotJson,
                    format!("object key {} is not a string", repr(&k)),
                ));
            };
            let name = string(key).map_err(|e| e.within(k.clone().unbind()))?;
            let item = to_value(&v, depth + 1).map_err(|e| e.within(k.clone().unbind()))?;
            members.push((name, item));
        }
        return Ok(Value::Object(members));
    }
    let sequence = |items: &mut dyn Iterator<Item = Bound<'_, PyAny>>, len: usize| {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut out = Vec::with_capacity(len);
        for (i, item) in items.enumerate() {
            let index = || i.into_pyobject(py).expect("an int").into_any().unbind();
            out.push(to_value(&item, depth + 1).map_err(|e| e.within(index()))?);
        }
        Ok(Value::Array(out))
    };
    if let Ok(l) = obj.cast_exact::<PyList>() {
        return sequence(&mut l.iter(), l.len());
    }
    if let Ok(t) = obj.cast_exact::<PyTuple>() {
        return sequence(&mut t.iter(), t.len());
    }
    Err(Refused::new(
        ErrorKind::NotJson,
        format!("{} is not a JSON type", type_name(obj)),
    ))
}

fn string(s: &Bound<'_, PyString>) -> Result<String, Refused> {
    match s.to_str() {
        Ok(text) => Ok(text.to_owned()),
        Err(_) => {
            // Where: the index of the first surrogate, as Python counts.
            let index = s
                .to_string_lossy()
                .chars()
                .position(|c| c == '\u{fffd}')
                .unwrap_or(0);
            Err(Refused::new(
                ErrorKind::LoneSurrogate,
                format!("string holds a lone surrogate at index {index}"),
            ))
        }
    }
}

/// Converts a checked [`Value`] into Python objects.
pub fn to_python(py: Python<'_>, value: &Value) -> PyResult<Py<PyAny>> {
    Ok(match value {
        Value::Null => py.None(),
        Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any().unbind(),
        Value::Int(n) => n.into_pyobject(py)?.into_any().unbind(),
        Value::Float(x) => PyFloat::new(py, *x).into_any().unbind(),
        Value::String(s) => PyString::new(py, s).into_any().unbind(),
        Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_python(py, item)?)?;
            }
            list.into_any().unbind()
        }
        Value::Object(members) => {
            let dict = PyDict::new(py);
            for (k, v) in members {
                dict.set_item(k, to_python(py, v)?)?;
            }
            dict.into_any().unbind()
        }
    })
}

/// `ValueRefused` for a core refusal.
pub fn value_refused(py: Python<'_>, err: ValueError) -> PyErr {
    Refused::from_core(py, err).into_pyerr(py)
}

/// Reads JSON text (`bytes` or `str`) strictly; raises `ValueRefused`.
pub fn parse_text(text: &Bound<'_, PyAny>) -> PyResult<Value> {
    let py = text.py();
    let parsed = if let Ok(b) = text.cast::<PyBytes>() {
        value::parse(b.as_bytes())
    } else if let Ok(s) = text.cast::<PyString>() {
        match s.to_str() {
            Ok(t) => value::parse(t.as_bytes()),
            Err(_) => return Err(string(s).map(|_| ()).unwrap_err().into_pyerr(py)),
        }
    } else {
        return Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "JSON text is bytes or str, not {}",
            type_name(text)
        )));
    };
    parsed.map_err(|e| value_refused(py, e))
}

/// Checks a Python object and converts it; raises `ValueRefused`.
pub fn from_python(obj: &Bound<'_, PyAny>) -> PyResult<Value> {
    to_value(obj, 0).map_err(|e| e.into_pyerr(obj.py()))
}

/// parse_json(text) -> object: strict I-JSON parsing of untrusted text.
#[pyfunction]
fn parse_json(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
    to_python(py, &parse_text(text)?)
}

/// canonical_bytes(value) -> bytes: the RFC 8785 bytes of an I-JSON value.
#[pyfunction]
fn canonical_bytes<'py>(value: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let checked = from_python(value)?;
    let mut out = Vec::with_capacity(64);
    write_canonical(&checked, &mut out);
    Ok(PyBytes::new(value.py(), &out))
}

/// canonical_json(text) -> bytes: strict parsing and canonical bytes in one step.
#[pyfunction]
fn canonical_json<'py>(text: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let parsed = parse_text(text)?;
    let mut out = Vec::with_capacity(64);
    write_canonical(&parsed, &mut out);
    Ok(PyBytes::new(text.py(), &out))
}

/// check_value(value) -> None: raises `ValueRefused` unless the value is I-JSON.
#[pyfunction]
fn check_value(value: &Bound<'_, PyAny>) -> PyResult<()> {
    from_python(value).map(drop)
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("ValueRefused", m.py().get_type::<ValueRefused>())?;
    m.add("MAX_DEPTH", MAX_DEPTH)?;
    m.add("MAX_SAFE_INTEGER", value::MAX_SAFE_INTEGER)?;
    m.add_function(wrap_pyfunction!(parse_json, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_bytes, m)?)?;
    m.add_function(wrap_pyfunction!(canonical_json, m)?)?;
    m.add_function(wrap_pyfunction!(check_value, m)?)?;
    Ok(())
}
