//! JSON Patch (RFC 6902): a patch document parsed into typed ops and applied
//! strictly to a [`Value`], one op at a time.
//!
//! Strict means: a pointer steps through objects and arrays only (never into
//! a string); an array index is a canonical decimal number (`01` is not one)
//! below the array's length, and `-` names the end of an array only where an
//! element is added; `test` compares with JSON equality ([`json_equal`]:
//! `true` is not `1`, `1` equals `1.0`); `add`, `replace`, `move` and `copy`
//! may target the whole document, `remove` may not; `move` never moves a value
//! into its own child. An op that fails changes nothing, and its error names
//! the op's index and path. A result nesting deeper than [`MAX_DEPTH`] is
//! refused at the op that would make it, so no value ever exceeds the limit
//! every other layer relies on.
//!
//! The messages are the ones statesync has always given (they come from the
//! Python engine this module replaced); `conformance/patch/vectors.json` holds
//! the outcomes every implementation must reproduce.

use std::fmt;

use crate::canonical::{canonical_len, string_len, write_string};
use crate::value::{MAX_DEPTH, Value, pointer_token, python_repr};

/// An RFC 6901 JSON Pointer: its text and its unescaped reference tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// Parses pointer text. The error is why it is not a pointer.
    pub fn parse(text: &str) -> Result<Pointer, String> {
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c == '~' {
                match chars.clone().next() {
                    Some('0' | '1') => {}
                    Some(next) => return Err(format!("Found invalid escape ~{next}")),
                    None => return Err("Found invalid escape ~".to_owned()),
                }
            }
        }
        if text.is_empty() {
            return Ok(Pointer::root());
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err("Location must start with /".to_owned());
        };
        let tokens = rest
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect();
        Ok(Pointer {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The pointer to the whole document, `""`.
    pub fn root() -> Pointer {
        Pointer {
            text: String::new(),
            tokens: Vec::new(),
        }
    }

    /// The pointer made of these reference tokens.
    pub fn from_tokens(tokens: Vec<String>) -> Pointer {
        let text = tokens.iter().map(|t| pointer_token(t)).collect();
        Pointer { text, tokens }
    }

    /// The pointer as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The unescaped reference tokens, from the root.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// Whether this is the whole document.
    pub fn is_root(&self) -> bool {
        self.tokens.is_empty()
    }
}

/// One JSON Patch operation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Add a member or insert an array element (or replace the whole document).
    Add {
        /// Where.
        path: Pointer,
        /// What.
        value: Value,
    },
    /// Remove a member or an array element.
    Remove {
        /// What.
        path: Pointer,
    },
    /// Replace an existing member, element or the whole document.
    Replace {
        /// Where.
        path: Pointer,
        /// The new value.
        value: Value,
    },
    /// Remove the value at `from` and add it at `path`.
    Move {
        /// The value moved.
        from: Pointer,
        /// Where it goes (read after the removal).
        path: Pointer,
    },
    /// Add a copy of the value at `from` at `path`.
    Copy {
        /// The value copied.
        from: Pointer,
        /// Where the copy goes.
        path: Pointer,
    },
    /// Check that the value at `path` equals `value` (JSON equality).
    Test {
        /// What is checked.
        path: Pointer,
        /// The value it must equal.
        value: Value,
    },
}

impl Op {
    /// The op's `path`.
    pub fn path(&self) -> &Pointer {
        match self {
            Op::Add { path, .. }
            | Op::Remove { path }
            | Op::Replace { path, .. }
            | Op::Move { path, .. }
            | Op::Copy { path, .. }
            | Op::Test { path, .. } => path,
        }
    }

    /// The op's name, as its `op` member spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Add { .. } => "add",
            Op::Remove { .. } => "remove",
            Op::Replace { .. } => "replace",
            Op::Move { .. } => "move",
            Op::Copy { .. } => "copy",
            Op::Test { .. } => "test",
        }
    }
}

/// Why a patch was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchErrorKind {
    /// The patch document is not an array.
    NotAnArray,
    /// An op is not an object.
    NotAnObject,
    /// An op's `op` is missing or is not one of the six.
    UnknownOp,
    /// `path` or `from` is missing, not a string or not a JSON Pointer.
    BadPointer,
    /// An op lacks the `value` or `from` its kind needs.
    MissingMember,
    /// An op member is not an I-JSON value (only a host language's objects can be).
    BadValue,
    /// A location the op needs does not exist (or is not an array index, or
    /// steps into a scalar).
    NotFound,
    /// A `test` op failed.
    TestFailed,
    /// The op cannot apply for another reason: removing the whole document,
    /// moving a value into its own child.
    Conflict,
    /// The result would nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// The result is larger than the caller's limit (in canonical bytes).
    TooLarge {
        /// The result's canonical size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl PatchErrorKind {
    /// The language-neutral code used in `conformance/patch/vectors.json`.
    pub fn code(self) -> &'static str {
        match self {
            PatchErrorKind::NotAnArray => "not_an_array",
            PatchErrorKind::NotAnObject => "not_an_object",
            PatchErrorKind::UnknownOp => "unknown_op",
            PatchErrorKind::BadPointer => "bad_pointer",
            PatchErrorKind::MissingMember => "missing_member",
            PatchErrorKind::BadValue => "bad_value",
            PatchErrorKind::NotFound => "not_found",
            PatchErrorKind::TestFailed => "test_failed",
            PatchErrorKind::Conflict => "conflict",
            PatchErrorKind::TooDeep => "too_deep",
            PatchErrorKind::TooLarge { .. } => "too_large",
        }
    }
}

/// A refused patch: what is wrong, which op and which path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PatchError {
    /// The kind of fault.
    pub kind: PatchErrorKind,
    /// The index of the op at fault (None: the patch as a whole).
    pub index: Option<usize>,
    /// The pointer the error is about, as written (None: there is none to name).
    pub path: Option<String>,
    /// A sentence for people.
    pub reason: String,
}

impl PatchError {
    /// A new error.
    pub fn new(
        kind: PatchErrorKind,
        index: Option<usize>,
        path: Option<&str>,
        reason: impl Into<String>,
    ) -> Self {
        PatchError {
            kind,
            index,
            path: path.map(str::to_owned),
            reason: reason.into(),
        }
    }

    /// The patch document is not an array.
    pub fn not_an_array() -> Self {
        PatchError::new(
            PatchErrorKind::NotAnArray,
            None,
            None,
            "a JSON Patch is an array of ops",
        )
    }

    /// The op at `index` is not an object.
    pub fn not_an_object(index: usize) -> Self {
        PatchError::new(
            PatchErrorKind::NotAnObject,
            Some(index),
            None,
            "a patch op is an object",
        )
    }
}

impl fmt::Display for PatchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid patch")?;
        if let Some(index) = self.index {
            write!(f, " op #{index}")?;
        }
        if let Some(path) = &self.path {
            write!(f, " at {}", python_repr(path))?;
        }
        write!(f, ": {}", self.reason)
    }
}

impl std::error::Error for PatchError {}

/// Parses a patch document into ops, checking each op's shape in order.
pub fn parse(patch: &Value) -> Result<Vec<Op>, PatchError> {
    let Value::Array(ops) = patch else {
        return Err(PatchError::not_an_array());
    };
    ops.iter().enumerate().map(|(i, op)| parse_op(i, op)).collect()
}

/// Parses the op at `index` of a patch. Members other than the ones its kind
/// needs are ignored, as RFC 6902 says.
pub fn parse_op(index: usize, op: &Value) -> Result<Op, PatchError> {
    let Value::Object(members) = op else {
        return Err(PatchError::not_an_object(index));
    };
    let member = |name: &str| members.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let kind = match member("op") {
        Some(Value::String(kind))
            if matches!(
                kind.as_str(),
                "add" | "remove" | "replace" | "move" | "copy" | "test"
            ) =>
        {
            kind.as_str()
        }
        other => {
            let shown = other.map_or_else(|| "None".to_owned(), repr);
            return Err(PatchError::new(
                PatchErrorKind::UnknownOp,
                Some(index),
                None,
                format!("unknown patch op {shown}"),
            ));
        }
    };
    let path = pointer_member(index, "path", member("path"))?;
    let needs = |name: &str| {
        member(name).ok_or_else(|| {
            PatchError::new(
                PatchErrorKind::MissingMember,
                Some(index),
                Some(path.as_str()),
                format!("a {} op needs {}", python_repr(kind), python_repr(name)),
            )
        })
    };
    Ok(match kind {
        "add" => Op::Add {
            value: needs("value")?.clone(),
            path,
        },
        "replace" => Op::Replace {
            value: needs("value")?.clone(),
            path,
        },
        "test" => Op::Test {
            value: needs("value")?.clone(),
            path,
        },
        "move" => Op::Move {
            from: pointer_member(index, "from", Some(needs("from")?))?,
            path,
        },
        "copy" => Op::Copy {
            from: pointer_member(index, "from", Some(needs("from")?))?,
            path,
        },
        _ => Op::Remove { path },
    })
}

fn pointer_member(index: usize, name: &str, value: Option<&Value>) -> Result<Pointer, PatchError> {
    let Some(Value::String(text)) = value else {
        return Err(PatchError::new(
            PatchErrorKind::BadPointer,
            Some(index),
            None,
            format!("{} must be a JSON Pointer string", python_repr(name)),
        ));
    };
    Pointer::parse(text).map_err(|why| {
        PatchError::new(
            PatchErrorKind::BadPointer,
            Some(index),
            Some(text),
            format!("bad {}: {why}", python_repr(name)),
        )
    })
}

/// Writes the canonical bytes (RFC 8785) of a patch made of `ops`: members
/// in canonical order, ops in order.
pub fn write_canonical_patch(ops: &[Op], out: &mut Vec<u8>) {
    out.push(b'[');
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        if let Op::Move { from, .. } | Op::Copy { from, .. } = op {
            out.extend_from_slice(b"\"from\":");
            write_string(from.as_str(), out);
            out.push(b',');
        }
        out.extend_from_slice(b"\"op\":");
        write_string(op.name(), out);
        out.extend_from_slice(b",\"path\":");
        write_string(op.path().as_str(), out);
        if let Op::Add { value, .. } | Op::Replace { value, .. } | Op::Test { value, .. } = op {
            out.extend_from_slice(b",\"value\":");
            crate::canonical::write_canonical(value, out);
        }
        out.push(b'}');
    }
    out.push(b']');
}

/// The length of one op in canonical form (as [`write_canonical_patch`] writes it).
pub fn op_len(op: &Op) -> usize {
    // {"op":<name>,"path":<path>} and ,"from":<from> or ,"value":<value>
    let mut len = 2 + 5 + string_len(op.name()) + 1 + 7 + string_len(op.path().as_str());
    match op {
        Op::Move { from, .. } | Op::Copy { from, .. } => len += 1 + 7 + string_len(from.as_str()),
        Op::Add { value, .. } | Op::Replace { value, .. } | Op::Test { value, .. } => {
            len += 1 + 8 + canonical_len(value)
        }
        Op::Remove { .. } => {}
    }
    len
}

/// JSON equality (RFC 6902 §4.6): same type and value, where numbers compare
/// by value (`1` equals `1.0`) and `true` is not `1`; objects compare member by
/// member, whatever their order.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Int(n), Value::Float(x)) | (Value::Float(x), Value::Int(n)) => int_equals_float(*n, *x),
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => objects_equal(x, y),
        _ => false,
    }
}

fn int_equals_float(n: i64, x: f64) -> bool {
    // Exact, as Python compares int and float: no rounding of either side.
    const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;
    x.fract() == 0.0 && (-TWO_POW_63..TWO_POW_63).contains(&x) && x as i64 == n
}

fn objects_equal(x: &[(String, Value)], y: &[(String, Value)]) -> bool {
    if x.len() != y.len() {
        return false;
    }
    if x.len() <= 8 {
        return x
            .iter()
            .all(|(k, a)| y.iter().any(|(j, b)| k == j && json_equal(a, b)));
    }
    // Large objects: pair members up by sorting, not by a quadratic scan.
    let mut xs: Vec<&(String, Value)> = x.iter().collect();
    let mut ys: Vec<&(String, Value)> = y.iter().collect();
    xs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    ys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    xs.iter()
        .zip(&ys)
        .all(|(a, b)| a.0 == b.0 && json_equal(&a.1, &b.1))
}

/// How many arrays and objects nest in `value` (0 for a scalar).
fn nesting(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(nesting).max().unwrap_or(0),
        Value::Object(members) => 1 + members.iter().map(|(_, v)| nesting(v)).max().unwrap_or(0),
        _ => 0,
    }
}

/// Applies `ops` to `doc` in order. Fails at the first op that does not apply,
/// and at the first op after which the document's canonical form is longer
/// than `limit` bytes.
pub fn apply(doc: Value, ops: &[Op], limit: usize) -> Result<Value, PatchError> {
    let mut doc = Document::new(doc);
    for (index, op) in ops.iter().enumerate() {
        doc.apply_op(index, op)?;
        if doc.size > limit {
            return Err(PatchError::new(
                PatchErrorKind::TooLarge {
                    size: doc.size,
                    limit,
                },
                Some(index),
                Some(op.path().as_str()),
                format!("the result is {} canonical bytes, the limit is {limit}", doc.size),
            ));
        }
    }
    Ok(doc.value)
}

/// A document under a patch: its value and its canonical size, which each op
/// keeps up to date from what it adds and removes (never by re-encoding).
#[derive(Clone, Debug)]
pub struct Document {
    value: Value,
    size: usize,
}

impl Document {
    /// Wraps a value.
    pub fn new(value: Value) -> Self {
        let size = canonical_len(&value);
        Document { value, size }
    }

    /// The current value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The length of the current value's canonical bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Applies one op (the `index`-th of its patch, which errors name). When
    /// it fails, the document is unchanged.
    pub fn apply_op(&mut self, index: usize, op: &Op) -> Result<(), PatchError> {
        match step(&mut self.value, self.size, op) {
            Ok(size) => {
                self.size = size;
                Ok(())
            }
            Err(Failure(kind, reason)) => Err(PatchError::new(
                kind,
                Some(index),
                Some(op.path().as_str()),
                reason,
            )),
        }
    }
}

/// Why one op failed (the caller adds the op's index and path).
struct Failure(PatchErrorKind, String);

fn not_found(reason: String) -> Failure {
    Failure(PatchErrorKind::NotFound, reason)
}

/// Applies `op` to `doc`, whose canonical size is `size`; returns the new size.
fn step(doc: &mut Value, size: usize, op: &Op) -> Result<usize, Failure> {
    let Some((last, parent)) = op.path().tokens().split_last() else {
        return whole_document(doc, size, op);
    };
    let change = match op {
        Op::Test { path, value } => {
            test(doc, path, value)?;
            Resize::default()
        }
        Op::Add { value, .. } => add(doc, parent, last, value.clone())?,
        Op::Replace { value, .. } => replace(doc, parent, last, value)?,
        Op::Remove { .. } => remove(doc, parent, last)?.resize,
        Op::Copy { from, .. } => {
            container(doc, parent)?;
            let value = resolve(doc, from.tokens()).map_err(not_found)?.clone();
            add(doc, parent, last, value)?
        }
        Op::Move { from, path } => {
            container(doc, parent)?;
            move_value(doc, from, path, (last, parent))?
        }
    };
    Ok(size + change.added - change.removed)
}

/// An op whose path is the whole document (RFC 6902 §4.1, §4.3).
fn whole_document(doc: &mut Value, size: usize, op: &Op) -> Result<usize, Failure> {
    let new = match op {
        Op::Test { path, value } => {
            test(doc, path, value)?;
            return Ok(size);
        }
        Op::Remove { .. } => {
            return Err(Failure(
                PatchErrorKind::Conflict,
                "cannot remove the whole document".to_owned(),
            ));
        }
        Op::Add { value, .. } | Op::Replace { value, .. } => value.clone(),
        Op::Move { from, .. } | Op::Copy { from, .. } => {
            resolve(doc, from.tokens()).map_err(not_found)?.clone()
        }
    };
    check_depth(0, &new)?;
    *doc = new;
    Ok(canonical_len(doc))
}

fn test(doc: &mut Value, path: &Pointer, value: &Value) -> Result<(), Failure> {
    let actual = resolve(doc, path.tokens())
        .map_err(|why| Failure(PatchErrorKind::TestFailed, format!("test failed: {why}")))?;
    if json_equal(actual, value) {
        return Ok(());
    }
    Err(Failure(
        PatchErrorKind::TestFailed,
        format!(
            "test failed: value at {} is not {}",
            python_repr(path.as_str()),
            repr(value)
        ),
    ))
}

/// What an op changed in a document's canonical size.
#[derive(Default)]
struct Resize {
    added: usize,
    removed: usize,
}

/// Follows reference tokens through objects and arrays only.
fn resolve<'v>(mut node: &'v mut Value, tokens: &[String]) -> Result<&'v mut Value, String> {
    for token in tokens {
        node = match node {
            Value::Object(members) => match members.iter_mut().find(|(k, _)| k == token) {
                Some((_, child)) => child,
                None => return Err(format!("member {} not found", python_repr(token))),
            },
            Value::Array(items) => {
                let len = items.len();
                match strict_index(token).filter(|&i| i < len) {
                    Some(i) => &mut items[i],
                    None => return Err(format!("no array index {}", python_repr(token))),
                }
            }
            scalar => {
                return Err(format!(
                    "cannot point inside a {} at {}",
                    type_name(scalar),
                    python_repr(token)
                ));
            }
        };
    }
    Ok(node)
}

/// An object or an array, borrowed from a document.
enum Container<'v> {
    Object(&'v mut Vec<(String, Value)>),
    Array(&'v mut Vec<Value>),
}

/// The container at `tokens`: the parent of an op's target.
fn container<'v>(doc: &'v mut Value, tokens: &[String]) -> Result<Container<'v>, Failure> {
    match resolve(doc, tokens).map_err(not_found)? {
        Value::Object(members) => Ok(Container::Object(members)),
        Value::Array(items) => Ok(Container::Array(items)),
        scalar => Err(not_found(format!("cannot point inside a {}", type_name(scalar)))),
    }
}

/// An array index as RFC 6901 writes it: `0` or digits without a leading zero.
/// Too large to be an index of any array reads as `usize::MAX`.
fn strict_index(token: &str) -> Option<usize> {
    let canonical = token == "0"
        || (!token.is_empty() && !token.starts_with('0') && token.bytes().all(|b| b.is_ascii_digit()));
    canonical.then(|| token.parse().unwrap_or(usize::MAX))
}

/// The index of an element an op acts on (`-` is handled by the caller).
fn element_index(token: &str) -> Result<usize, Failure> {
    strict_index(token).ok_or_else(|| not_found(format!("'{token}' is not a valid sequence index")))
}

fn check_depth(steps: usize, value: &Value) -> Result<(), Failure> {
    if steps + nesting(value) > MAX_DEPTH {
        return Err(Failure(
            PatchErrorKind::TooDeep,
            format!("the result would nest arrays and objects deeper than {MAX_DEPTH} levels"),
        ));
    }
    Ok(())
}

/// The separator a container gains or loses with one more or one fewer element.
fn comma(others: usize) -> usize {
    usize::from(others > 0)
}

fn add(doc: &mut Value, parent: &[String], last: &str, value: Value) -> Result<Resize, Failure> {
    insert(doc, parent, last, value).map_err(|(failure, _)| failure)
}

/// Adds `value` as `last` in the container at `parent`; a failure hands the
/// value back, so that a move can put it where it was.
fn insert(doc: &mut Value, parent: &[String], last: &str, value: Value) -> Result<Resize, (Failure, Value)> {
    let depth = parent.len() + 1;
    let container = match container(doc, parent) {
        Ok(container) => container,
        Err(failure) => return Err((failure, value)),
    };
    match container {
        Container::Object(members) => {
            if let Err(failure) = check_depth(depth, &value) {
                return Err((failure, value));
            }
            let added = canonical_len(&value);
            if let Some((_, slot)) = members.iter_mut().find(|(k, _)| k == last) {
                let removed = canonical_len(slot);
                *slot = value;
                return Ok(Resize { added, removed });
            }
            let added = added + string_len(last) + 1 + comma(members.len());
            members.push((last.to_owned(), value));
            Ok(Resize { added, removed: 0 })
        }
        Container::Array(items) => {
            let at = match last {
                "-" => items.len(),
                _ => match element_index(last) {
                    Ok(at) => at,
                    Err(failure) => return Err((failure, value)),
                },
            };
            if at > items.len() {
                return Err((not_found("can't insert outside of list".to_owned()), value));
            }
            if let Err(failure) = check_depth(depth, &value) {
                return Err((failure, value));
            }
            let added = canonical_len(&value) + comma(items.len());
            items.insert(at, value);
            Ok(Resize { added, removed: 0 })
        }
    }
}

fn replace(doc: &mut Value, parent: &[String], last: &str, value: &Value) -> Result<Resize, Failure> {
    let depth = parent.len() + 1;
    let slot = match container(doc, parent)? {
        Container::Object(members) => match members.iter_mut().find(|(k, _)| k == last) {
            Some((_, slot)) => slot,
            None => return Err(not_found(format!("can't replace a non-existent object '{last}'"))),
        },
        Container::Array(items) => {
            if last == "-" {
                return Err(not_found(
                    "'path' with '-' can't be applied to 'replace' operation".to_owned(),
                ));
            }
            match items.get_mut(element_index(last)?) {
                Some(slot) => slot,
                None => return Err(not_found("can't replace outside of list".to_owned())),
            }
        }
    };
    check_depth(depth, value)?;
    let resize = Resize {
        added: canonical_len(value),
        removed: canonical_len(slot),
    };
    *slot = value.clone();
    Ok(resize)
}

/// A value taken out of its container, with what it takes to put it back.
struct Taken {
    value: Value,
    key: Option<String>,
    position: usize,
    resize: Resize,
}

fn remove(doc: &mut Value, parent: &[String], last: &str) -> Result<Taken, Failure> {
    match container(doc, parent)? {
        Container::Object(members) => {
            let Some(position) = members.iter().position(|(k, _)| k == last) else {
                return Err(not_found(format!("can't remove a non-existent object '{last}'")));
            };
            let (key, value) = members.remove(position);
            let removed = string_len(&key) + 1 + canonical_len(&value) + comma(members.len());
            Ok(Taken {
                value,
                key: Some(key),
                position,
                resize: Resize { added: 0, removed },
            })
        }
        Container::Array(items) => {
            if last == "-" {
                return Err(not_found("invalid array index '-'".to_owned()));
            }
            let position = element_index(last)?;
            if position >= items.len() {
                return Err(not_found(format!("can't remove a non-existent object '{last}'")));
            }
            let value = items.remove(position);
            let removed = canonical_len(&value) + comma(items.len());
            Ok(Taken {
                value,
                key: None,
                position,
                resize: Resize { added: 0, removed },
            })
        }
    }
}

fn move_value(
    doc: &mut Value,
    from: &Pointer,
    path: &Pointer,
    (last, parent): (&String, &[String]),
) -> Result<Resize, Failure> {
    resolve(doc, from.tokens()).map_err(not_found)?;
    let (to, source) = (path.tokens(), from.tokens());
    // The root is a prefix of every path: moving it anywhere but onto itself
    // is moving it into its own child.
    let own_child = to.len() > source.len() && to.starts_with(source);
    let Some((from_last, from_parent)) = source.split_last().filter(|_| !own_child) else {
        return Err(Failure(
            PatchErrorKind::Conflict,
            format!(
                "cannot move {} into its own child {}",
                python_repr(from.as_str()),
                python_repr(path.as_str())
            ),
        ));
    };
    if to == source {
        return Ok(Resize::default());
    }
    let Taken {
        value,
        key,
        position,
        resize: taken,
    } = remove(doc, from_parent, from_last)?;
    // `path` is read after the removal (RFC 6902 §4.4), so it may no longer apply.
    match insert(doc, parent, last, value) {
        Ok(added) => Ok(Resize {
            added: added.added,
            removed: added.removed + taken.removed,
        }),
        Err((failure, value)) => {
            put_back(doc, from_parent, key, position, value);
            Err(failure)
        }
    }
}

/// Undoes a removal. Removing inside `parent` left the way to it as it was,
/// so it resolves again.
fn put_back(doc: &mut Value, parent: &[String], key: Option<String>, position: usize, value: Value) {
    match (resolve(doc, parent), key) {
        (Ok(Value::Object(members)), Some(key)) => {
            members.insert(position.min(members.len()), (key, value));
        }
        (Ok(Value::Array(items)), None) => items.insert(position.min(items.len()), value),
        _ => debug_assert!(false, "a removal's parent no longer resolves"),
    }
}

/// The name Python gives the value's type; messages have always used them.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Int(_) => "int",
        Value::Float(_) => "float",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A value as Python's `repr` shows it, so messages read as they always have.
pub(crate) fn repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(value, &mut out);
    out
}

fn write_repr(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Float(x) => out.push_str(&float_repr(*x)),
        Value::String(s) => out.push_str(&python_repr(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&python_repr(key));
                out.push_str(": ");
                write_repr(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's `repr` of a float: the shortest digits that read back exactly,
/// in fixed notation when the decimal exponent is in [-4, 16), else as
/// `d.ddde±XX`.
pub(crate) fn float_repr(x: f64) -> String {
    let sign = if x.is_sign_negative() { "-" } else { "" };
    if x == 0.0 {
        return format!("{sign}0.0");
    }
    // ECMAScript and Python choose the same shortest round-tripping digits,
    // a tie going to the even digit (Rust's `{:e}` does not break ties so);
    // only the layout differs.
    let (digits, point) = shortest_digits(x.abs());
    let exponent = point - 1;
    let body = if -4 < point && point <= 16 {
        let point = point as isize;
        let len = digits.len() as isize;
        if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs()))
        } else if point >= len {
            format!("{digits}{}.0", "0".repeat((point - len) as usize))
        } else {
            let (whole, fraction) = digits.split_at(point as usize);
            format!("{whole}.{fraction}")
        }
    } else {
        let (first, rest) = digits.split_at(1);
        let mantissa = if rest.is_empty() {
            first.to_owned()
        } else {
            format!("{first}.{rest}")
        };
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.unsigned_abs())
    };
    format!("{sign}{body}")
}

/// The shortest round-tripping digits of a positive finite `x`, and where the
/// point goes: `x` = 0.d1d2... × 10^point.
pub(crate) fn shortest_digits(x: f64) -> (String, i32) {
    let mut buffer = ryu_js::Buffer::new();
    let text = buffer.format_finite(x);
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let mut digits = format!("{whole}{fraction}");
    let mut point = whole.len() as i32 + exponent;
    while digits.starts_with('0') && digits.len() > 1 {
        digits.remove(0);
        point -= 1;
    }
    while digits.ends_with('0') && digits.len() > 1 {
        digits.pop();
    }
    (digits, point)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::canonical::canonical_bytes;
    use crate::value::parse as parse_json;

    fn value(text: &str) -> Value {
        parse_json(text.as_bytes()).unwrap()
    }

    fn ops(text: &str) -> Vec<Op> {
        parse(&value(text)).unwrap()
    }

    fn run(doc: &str, patch: &str) -> Result<String, PatchError> {
        let result = apply(value(doc), &ops(patch), usize::MAX)?;
        Ok(String::from_utf8(canonical_bytes(&result)).unwrap())
    }

    fn refusal(doc: &str, patch: &str) -> (PatchErrorKind, Option<usize>, String) {
        let err = run(doc, patch).unwrap_err();
        (err.kind, err.index, err.reason)
    }

    #[test]
    fn pointers_parse_as_rfc_6901_says() {
        let p = Pointer::parse("/a~1b/~0/~01/").unwrap();
        assert_eq!(p.tokens(), ["a/b", "~", "~1", ""]);
        assert!(Pointer::parse("").unwrap().is_root());
        assert_eq!(Pointer::parse("a").unwrap_err(), "Location must start with /");
        assert_eq!(Pointer::parse("/a~2").unwrap_err(), "Found invalid escape ~2");
        assert_eq!(Pointer::parse("/a~").unwrap_err(), "Found invalid escape ~");
        // Escapes are checked before the leading slash.
        assert_eq!(Pointer::parse("x~").unwrap_err(), "Found invalid escape ~");
        let built = Pointer::from_tokens(vec!["a/b".into(), "~".into()]);
        assert_eq!(built, Pointer::parse("/a~1b/~0").unwrap());
    }

    #[test]
    fn malformed_ops_say_what_is_wrong() {
        let err = |text: &str| parse(&value(text)).unwrap_err();
        assert_eq!(err(r#"{"op": "add"}"#), PatchError::not_an_array());
        assert_eq!(err(r#"["add"]"#), PatchError::not_an_object(0));
        let e = err(r#"[{"op": "test", "path": "/a", "value": 1}, {"op": "frob", "path": "/a"}]"#);
        assert_eq!(
            (e.kind, e.index, e.reason.as_str()),
            (PatchErrorKind::UnknownOp, Some(1), "unknown patch op 'frob'")
        );
        assert_eq!(err(r#"[{"path": "/a"}]"#).reason, "unknown patch op None");
        assert_eq!(err(r#"[{"op": ["add"]}]"#).reason, "unknown patch op ['add']");
        let e = err(r#"[{"op": "remove", "path": 5}]"#);
        assert_eq!(
            (e.path, e.reason.as_str()),
            (None, "'path' must be a JSON Pointer string")
        );
        let e = err(r#"[{"op": "replace", "path": "/a~2", "value": 1}]"#);
        assert_eq!(
            (e.path.as_deref(), e.reason.as_str()),
            (Some("/a~2"), "bad 'path': Found invalid escape ~2")
        );
        let e = err(r#"[{"op": "add", "path": "/x"}]"#);
        assert_eq!(
            (e.kind, e.path.as_deref()),
            (PatchErrorKind::MissingMember, Some("/x"))
        );
        assert_eq!(e.reason, "a 'add' op needs 'value'");
        let e = err(r#"[{"op": "copy", "path": "/x", "from": "/a~"}]"#);
        assert_eq!(
            (e.path.as_deref(), e.reason.as_str()),
            (Some("/a~"), "bad 'from': Found invalid escape ~")
        );
        assert_eq!(
            err(r#"[{"op": "move", "path": "/x", "from": null}]"#).reason,
            "'from' must be a JSON Pointer string"
        );
    }

    #[test]
    fn ops_apply_as_rfc_6902_says() {
        let doc = r#"{"a": [1, 2], "o": {"k": "v"}, "n": 1}"#;
        let cases = [
            (
                r#"[{"op": "add", "path": "/a/1", "value": 1.0}]"#,
                r#"{"a":[1,1,2],"n":1,"o":{"k":"v"}}"#,
            ),
            (
                r#"[{"op": "add", "path": "/a/-", "value": 3}]"#,
                r#"{"a":[1,2,3],"n":1,"o":{"k":"v"}}"#,
            ),
            (
                r#"[{"op": "add", "path": "/a/2", "value": 3}]"#,
                r#"{"a":[1,2,3],"n":1,"o":{"k":"v"}}"#,
            ),
            (r#"[{"op": "add", "path": "", "value": [true]}]"#, "[true]"),
            (
                r#"[{"op": "remove", "path": "/a/0"}]"#,
                r#"{"a":[2],"n":1,"o":{"k":"v"}}"#,
            ),
            (
                r#"[{"op": "replace", "path": "/o/k", "value": null}]"#,
                r#"{"a":[1,2],"n":1,"o":{"k":null}}"#,
            ),
            (
                r#"[{"op": "move", "from": "/a/0", "path": "/a/1"}]"#,
                r#"{"a":[2,1],"n":1,"o":{"k":"v"}}"#,
            ),
            (r#"[{"op": "move", "from": "/o", "path": ""}]"#, r#"{"k":"v"}"#),
            (
                r#"[{"op": "move", "from": "/o", "path": "/o"}]"#,
                r#"{"a":[1,2],"n":1,"o":{"k":"v"}}"#,
            ),
            (
                r#"[{"op": "copy", "from": "", "path": "/o/self"}]"#,
                r#"{"a":[1,2],"n":1,"o":{"k":"v","self":{"a":[1,2],"n":1,"o":{"k":"v"}}}}"#,
            ),
            (
                r#"[{"op": "test", "path": "/n", "value": 1.0}, {"op": "test", "path": "", "value": {"n": 1, "o": {"k": "v"}, "a": [1, 2]}}]"#,
                r#"{"a":[1,2],"n":1,"o":{"k":"v"}}"#,
            ),
        ];
        for (patch, expected) in cases {
            assert_eq!(run(doc, patch).unwrap(), expected, "{patch}");
        }
    }

    #[test]
    fn ops_that_do_not_apply_say_why() {
        use PatchErrorKind::*;
        let doc = r#"{"a": [1, 2], "s": "text", "n": 1, "t": true}"#;
        let cases = [
            (
                r#"[{"op": "replace", "path": "/zz", "value": 1}]"#,
                NotFound,
                "can't replace a non-existent object 'zz'",
            ),
            (
                r#"[{"op": "remove", "path": "/zz"}]"#,
                NotFound,
                "can't remove a non-existent object 'zz'",
            ),
            (
                r#"[{"op": "remove", "path": "/a/5"}]"#,
                NotFound,
                "can't remove a non-existent object '5'",
            ),
            (
                r#"[{"op": "remove", "path": "/a/-"}]"#,
                NotFound,
                "invalid array index '-'",
            ),
            (
                r#"[{"op": "add", "path": "/a/3", "value": 1}]"#,
                NotFound,
                "can't insert outside of list",
            ),
            (
                r#"[{"op": "add", "path": "/a/01", "value": 1}]"#,
                NotFound,
                "'01' is not a valid sequence index",
            ),
            (
                r#"[{"op": "replace", "path": "/a/-", "value": 1}]"#,
                NotFound,
                "'path' with '-' can't be applied to 'replace' operation",
            ),
            (
                r#"[{"op": "replace", "path": "/a/2", "value": 1}]"#,
                NotFound,
                "can't replace outside of list",
            ),
            (
                r#"[{"op": "add", "path": "/n/x", "value": 1}]"#,
                NotFound,
                "cannot point inside a int",
            ),
            (
                r#"[{"op": "remove", "path": "/s/0"}]"#,
                NotFound,
                "cannot point inside a str",
            ),
            (
                r#"[{"op": "add", "path": "/no/x", "value": 1}]"#,
                NotFound,
                "member 'no' not found",
            ),
            (
                r#"[{"op": "add", "path": "/a/01/x", "value": 1}]"#,
                NotFound,
                "no array index '01'",
            ),
            (
                r#"[{"op": "copy", "from": "/s/0", "path": "/x"}]"#,
                NotFound,
                "cannot point inside a str at '0'",
            ),
            (
                r#"[{"op": "remove", "path": ""}]"#,
                Conflict,
                "cannot remove the whole document",
            ),
            (
                r#"[{"op": "move", "from": "/a", "path": "/a/0"}]"#,
                Conflict,
                "cannot move '/a' into its own child '/a/0'",
            ),
            (
                r#"[{"op": "move", "from": "", "path": "/x"}]"#,
                Conflict,
                "cannot move '' into its own child '/x'",
            ),
            (
                r#"[{"op": "test", "path": "/t", "value": 1}]"#,
                TestFailed,
                "test failed: value at '/t' is not 1",
            ),
            (
                r#"[{"op": "test", "path": "/n", "value": true}]"#,
                TestFailed,
                "test failed: value at '/n' is not True",
            ),
            (
                r#"[{"op": "test", "path": "/zz", "value": 1}]"#,
                TestFailed,
                "test failed: member 'zz' not found",
            ),
            (
                r#"[{"op": "test", "path": "/a", "value": {"x": [null, 1.5, "it's"]}}]"#,
                TestFailed,
                "test failed: value at '/a' is not {'x': [None, 1.5, \"it's\"]}",
            ),
        ];
        for (patch, kind, reason) in cases {
            assert_eq!(refusal(doc, patch), (kind, Some(0), reason.to_owned()), "{patch}");
        }
        let second = r#"[{"op": "add", "path": "/b", "value": 1}, {"op": "remove", "path": "/b/c"}]"#;
        assert_eq!(refusal(doc, second).1, Some(1));
    }

    #[test]
    fn a_move_whose_target_is_gone_after_the_removal_changes_nothing() {
        // /a/1 exists before /a/0 is removed, not after.
        let mut doc = Document::new(value(r#"{"a": [{"x": 1}, {"y": 2}]}"#));
        let before = doc.value().clone();
        let op = &ops(r#"[{"op": "move", "from": "/a/0", "path": "/a/1/z"}]"#)[0];
        let err = doc.apply_op(0, op).unwrap_err();
        assert_eq!(err.reason, "no array index '1'");
        assert_eq!(doc.value(), &before);
        assert_eq!(doc.size(), canonical_len(&before));
    }

    #[test]
    fn results_never_nest_deeper_than_the_limit() {
        let copy = r#"{"op": "copy", "from": "", "path": "/a"}"#;
        let patch = format!("[{}]", vec![copy; MAX_DEPTH].join(","));
        let err = run("{}", &patch).unwrap_err();
        assert_eq!(
            (err.kind, err.index),
            (PatchErrorKind::TooDeep, Some(MAX_DEPTH - 1))
        );
        let deep = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        let whole = Op::Replace {
            path: Pointer::root(),
            value: value(&deep),
        };
        let mut doc = Document::new(value("{}"));
        doc.apply_op(0, &whole).unwrap();
        assert_eq!(canonical_bytes(doc.value()), deep.as_bytes());
        let inside = Op::Add {
            path: Pointer::parse("/x").unwrap(),
            value: value(&deep),
        };
        let err = Document::new(value("{}")).apply_op(0, &inside).unwrap_err();
        assert_eq!(err.kind, PatchErrorKind::TooDeep);
    }

    #[test]
    fn the_size_limit_is_checked_after_every_op() {
        let patch =
            ops(r#"[{"op": "add", "path": "/pad", "value": "xxxxxxxx"}, {"op": "remove", "path": "/pad"}]"#);
        let err = apply(value("{}"), &patch, 10).unwrap_err();
        assert_eq!(err.kind, PatchErrorKind::TooLarge { size: 18, limit: 10 });
        assert_eq!(err.index, Some(0));
        assert!(apply(value("{}"), &patch, 18).is_ok());
    }

    #[test]
    fn json_equality() {
        let eq = |a: &str, b: &str| json_equal(&value(a), &value(b));
        assert!(eq("1", "1.0") && eq("[1, {\"a\": 0.5}]", "[1.0, {\"a\": 5e-1}]"));
        assert!(!eq("true", "1") && !eq("0", "false") && !eq("null", "0") && !eq("\"1\"", "1"));
        assert!(eq(r#"{"a": 1, "b": 2}"#, r#"{"b": 2, "a": 1}"#));
        assert!(!eq(r#"{"a": 1}"#, r#"{"a": 1, "b": 2}"#) && !eq("[1]", "[1, 1]"));
        let big: Vec<String> = (0..20).map(|i| format!("\"k{i}\": {i}")).collect();
        let mut reversed = big.clone();
        reversed.reverse();
        assert!(eq(
            &format!("{{{}}}", big.join(",")),
            &format!("{{{}}}", reversed.join(","))
        ));
        assert!(!int_equals_float(i64::MAX, 9_223_372_036_854_775_807.0));
        assert!(!int_equals_float(3, 3.5) && int_equals_float(-3, -3.0));
    }

    #[test]
    fn floats_repr_as_python() {
        let cases = [
            (1.0, "1.0"),
            (-0.0, "-0.0"),
            (0.1, "0.1"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123.456, "123.456"),
            (1.2345678901234568e17, "1.2345678901234568e+17"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            // Two shortest candidates (.2 and .3) round-trip; the even one wins.
            (562949953421312.2, "562949953421312.2"),
        ];
        for (x, expected) in cases {
            assert_eq!(float_repr(x), expected);
        }
    }

    #[test]
    fn canonical_patches_parse_back() {
        let patch = ops(
            r#"[{"op": "move", "from": "/a~1b", "path": "/c"}, {"op": "test", "path": "", "value": {"z": 1, "a": [0.5]}}, {"op": "remove", "path": "/\u00e9"}]"#,
        );
        let mut out = Vec::new();
        write_canonical_patch(&patch, &mut out);
        assert_eq!(canonical_bytes(&value(std::str::from_utf8(&out).unwrap())), out);
        let mut again = Vec::new();
        write_canonical_patch(
            &parse(&value(std::str::from_utf8(&out).unwrap())).unwrap(),
            &mut again,
        );
        assert_eq!(again, out);
        let lens: usize = patch.iter().map(op_len).sum::<usize>() + 2 + patch.len() - 1;
        assert_eq!(lens, out.len());
    }
}
