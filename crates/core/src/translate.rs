//! Translations between adjacent schema versions (`docs/translations.md`):
//! JSON data that takes a value written under schema N to N+1 (`up`) and back
//! (`down`).
//!
//! [`Translation::parse`] reads the data strictly (every refusal names the op
//! index and the JSON Pointer of the bad member), derives `down` when it is
//! absent, and keeps the canonical form ([`Translation::to_value`]).
//! [`Translation::apply`] runs one direction on an owned value; [`chain`] and
//! [`apply_chain`] go across several versions. Ops walk only along their own
//! paths, so any document depth is fine; a document is never partly
//! translated: an op that fails fails the whole application.
//!
//! The messages are the ones the Python implementation this module replaced
//! gave; `conformance/translate/vectors.json` holds the outcomes every
//! implementation must reproduce.

mod converters;

use std::fmt;

pub use converters::Converter;

use crate::patch::{Pointer, repr};
use crate::value::{
    ErrorKind, MAX_DEPTH, Token, Value, ValueError, check_float, check_int, pointer_token, python_repr,
};

/// The value of a translation's `format` member.
pub const FORMAT: &str = "statesync.translation/1";

/// Which way a translation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// From version N to N+1.
    Up,
    /// From version N+1 to N.
    Down,
}

impl Direction {
    /// `"up"` or `"down"`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Up => "up",
            Direction::Down => "down",
        }
    }
}

/// Why a translation was refused, or why it could not apply to a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationErrorKind {
    /// The translation is not an object, or an op is not an object.
    NotAnObject,
    /// A member the format or the op does not define.
    UnknownMember,
    /// `format` is missing or is not [`FORMAT`].
    BadFormat,
    /// `from` is not an integer >= 1, or `to` is not `from + 1`.
    BadVersions,
    /// A required member is missing (`up`, or an op's member).
    MissingMember,
    /// `up` or `down` is not an array.
    NotAnArray,
    /// An op's `op` is missing or is not one of the five.
    UnknownOp,
    /// A path is not a JSON Pointer to a member.
    BadPointer,
    /// A rename or move whose paths do not fit the op.
    BadPaths,
    /// A converter name that is not one of the eight.
    UnknownConverter,
    /// A `default` (or another member) that is not an I-JSON value.
    NotIJson,
    /// While applying: a value outside the converter's domain.
    Unconvertible,
    /// While applying: a move whose target path runs through a non-object.
    MoveIntoNonObject,
}

/// A refused translation, or a value it could not translate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslationError {
    /// The kind of fault.
    pub kind: TranslationErrorKind,
    /// The op at fault: its index in its list (None: a top-level member).
    pub op_index: Option<usize>,
    /// Parsing: the JSON Pointer of the bad member inside the translation
    /// (`""` for the translation itself). Applying: the document path the op
    /// touched (a convert's `path`, a move's `to`).
    pub field: String,
    /// The version the failing step started from, when known.
    pub from_version: Option<i64>,
    /// The version the failing step went to, when known.
    pub to_version: Option<i64>,
    /// A sentence for people.
    pub reason: String,
}

impl fmt::Display for TranslationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut place = Vec::new();
        if let (Some(from), Some(to)) = (self.from_version, self.to_version) {
            place.push(format!("v{from}->v{to}"));
        }
        if let Some(index) = self.op_index {
            place.push(format!("op #{index}"));
        }
        place.push(format!("field {}", python_repr(&self.field)));
        write!(f, "invalid translation ({}): {}", place.join(", "), self.reason)
    }
}

impl std::error::Error for TranslationError {}

/// A spec error before the versions are attached.
struct Fault {
    kind: TranslationErrorKind,
    op_index: Option<usize>,
    field: String,
    reason: String,
}

fn fault(
    kind: TranslationErrorKind,
    op_index: Option<usize>,
    field: &str,
    reason: impl Into<String>,
) -> Fault {
    Fault {
        kind,
        op_index,
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Fault {
    fn with_versions(self, versions: Option<(i64, i64)>) -> TranslationError {
        TranslationError {
            kind: self.kind,
            op_index: self.op_index,
            field: self.field,
            from_version: versions.map(|v| v.0),
            to_version: versions.map(|v| v.1),
            reason: self.reason,
        }
    }
}

/// One op of a translation.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// Rename a member inside its object.
    Rename {
        /// The member renamed.
        from: Pointer,
        /// Its new name (same parent).
        to: Pointer,
    },
    /// Move a member anywhere, creating the target's objects and pruning the
    /// source's emptied ones.
    Move {
        /// The member moved.
        from: Pointer,
        /// Where it goes.
        to: Pointer,
    },
    /// Set a member that is absent, in an object that exists.
    Add {
        /// Where.
        path: Pointer,
        /// The value set.
        default: Value,
    },
    /// Delete a member.
    Remove {
        /// What.
        path: Pointer,
        /// What the inverse `add` restores (None: no inverse).
        default: Option<Value>,
    },
    /// Replace a member's value by a converter's result.
    Convert {
        /// Where.
        path: Pointer,
        /// How.
        converter: Converter,
    },
}

const OP_NAMES: [&str; 5] = ["add", "convert", "move", "remove", "rename"];

impl Op {
    /// The op's name, as its `op` member spells it.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Rename { .. } => "rename",
            Op::Move { .. } => "move",
            Op::Add { .. } => "add",
            Op::Remove { .. } => "remove",
            Op::Convert { .. } => "convert",
        }
    }

    /// The op in canonical form: members `op`, then `from`/`to` or `path`,
    /// then `default` or `converter`.
    pub fn to_value(&self) -> Value {
        let text =
            |name: &str, pointer: &Pointer| (name.to_owned(), Value::String(pointer.as_str().to_owned()));
        let mut members = vec![("op".to_owned(), Value::String(self.name().to_owned()))];
        match self {
            Op::Rename { from, to } | Op::Move { from, to } => {
                members.extend([text("from", from), text("to", to)]);
            }
            Op::Add { path, default } => {
                members.extend([text("path", path), ("default".to_owned(), default.clone())]);
            }
            Op::Remove { path, default } => {
                members.push(text("path", path));
                members.extend(default.iter().map(|d| ("default".to_owned(), d.clone())));
            }
            Op::Convert { path, converter } => {
                let name = Value::String(converter.name().to_owned());
                members.extend([text("path", path), ("converter".to_owned(), name)]);
            }
        }
        Value::Object(members)
    }

    /// The op that undoes this one (None: a remove without a default).
    pub fn inverse(&self) -> Option<Op> {
        Some(match self {
            Op::Rename { from, to } => Op::Rename {
                from: to.clone(),
                to: from.clone(),
            },
            Op::Move { from, to } => Op::Move {
                from: to.clone(),
                to: from.clone(),
            },
            Op::Add { path, default } => Op::Remove {
                path: path.clone(),
                default: Some(default.clone()),
            },
            Op::Remove { path, default } => Op::Add {
                path: path.clone(),
                default: default.clone()?,
            },
            Op::Convert { path, converter } => Op::Convert {
                path: path.clone(),
                converter: converter.inverse(),
            },
        })
    }

    /// The document path an error while applying names.
    fn field(&self) -> &str {
        match self {
            Op::Move { to, .. } => to.as_str(),
            Op::Rename { from, .. } => from.as_str(),
            Op::Add { path, .. } | Op::Remove { path, .. } | Op::Convert { path, .. } => path.as_str(),
        }
    }
}

/// The translation between schema versions `from` and `from + 1`.
#[derive(Clone, Debug, PartialEq)]
pub struct Translation {
    from: i64,
    up: Vec<Op>,
    down: Vec<Op>,
}

fn member<'a>(members: &'a [(String, Value)], name: &str) -> Option<&'a Value> {
    members.iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

impl Translation {
    /// Reads the JSON form of a translation; derives `down` when it is absent.
    pub fn parse(data: &Value) -> Result<Translation, TranslationError> {
        let Value::Object(members) = data else {
            return Err(fault(
                TranslationErrorKind::NotAnObject,
                None,
                "",
                "a translation must be a JSON object",
            )
            .with_versions(None));
        };
        let top = |fault: Fault| fault.with_versions(None);
        const TOP_MEMBERS: [&str; 5] = ["format", "from", "to", "up", "down"];
        if let Some((name, _)) = members.iter().find(|(k, _)| !TOP_MEMBERS.contains(&k.as_str())) {
            let reason = format!("unknown member {}", python_repr(name));
            return Err(top(fault(
                TranslationErrorKind::UnknownMember,
                None,
                &pointer_token(name),
                reason,
            )));
        }
        if !matches!(member(members, "format"), Some(Value::String(f)) if f == FORMAT) {
            let reason = format!("format must be {}", python_repr(FORMAT));
            return Err(top(fault(
                TranslationErrorKind::BadFormat,
                None,
                "/format",
                reason,
            )));
        }
        let (from, to) = (member(members, "from"), member(members, "to"));
        let known = known_versions(from, to);
        let from = check_versions(from, to).map_err(|f| f.with_versions(known))?;
        let parsed = (|| {
            let up = ops(member(members, "up"), "up")?;
            let down = match member(members, "down") {
                Some(down) => ops(Some(down), "down")?,
                None => up.iter().rev().filter_map(Op::inverse).collect(),
            };
            Ok(Translation { from, up, down })
        })();
        parsed.map_err(|f: Fault| f.with_versions(known))
    }

    /// Reads a translation from JSON text: [`crate::value::parse`], then
    /// [`Translation::parse`]; text that is not I-JSON is refused by
    /// [`not_i_json`].
    pub fn parse_json(text: &[u8]) -> Result<Translation, TranslationError> {
        let data = crate::value::parse(text).map_err(|e| not_i_json(&e))?;
        Translation::parse(&data)
    }

    /// A translation from its parts, checked like [`Translation::parse`]
    /// checks them; `down` is used as given (never derived).
    pub fn from_parts(
        from: &Value,
        to: &Value,
        up: &Value,
        down: &Value,
    ) -> Result<Translation, TranslationError> {
        let known = known_versions(Some(from), Some(to));
        let parsed = (|| {
            let from = check_versions(Some(from), Some(to))?;
            let up = ops(Some(up), "up")?;
            let down = ops(Some(down), "down")?;
            Ok(Translation { from, up, down })
        })();
        parsed.map_err(|f: Fault| f.with_versions(known))
    }

    /// The translation with no ops, between `from` and `from + 1`.
    pub fn identity(from: i64) -> Translation {
        Translation {
            from,
            up: Vec::new(),
            down: Vec::new(),
        }
    }

    /// The older version.
    pub fn from_version(&self) -> i64 {
        self.from
    }

    /// The newer version.
    pub fn to_version(&self) -> i64 {
        self.from + 1
    }

    /// The ops that take a version-N document to N+1.
    pub fn up(&self) -> &[Op] {
        &self.up
    }

    /// The ops that take a version-N+1 document to N (derived or as written).
    pub fn down(&self) -> &[Op] {
        &self.down
    }

    /// The canonical form: all five members, `down` explicit.
    pub fn to_value(&self) -> Value {
        let ops = |ops: &[Op]| Value::Array(ops.iter().map(Op::to_value).collect());
        Value::Object(vec![
            ("format".to_owned(), Value::String(FORMAT.to_owned())),
            ("from".to_owned(), Value::Int(self.from)),
            ("to".to_owned(), Value::Int(self.from + 1)),
            ("up".to_owned(), ops(&self.up)),
            ("down".to_owned(), ops(&self.down)),
        ])
    }

    /// `doc` translated one step in `direction`. When an op fails there is no
    /// result: the error names the op's index in its list and the document
    /// path, with the versions in the direction of travel.
    pub fn apply(&self, mut doc: Value, direction: Direction) -> Result<Value, TranslationError> {
        let (ops, versions) = match direction {
            Direction::Up => (&self.up, (self.from, self.from + 1)),
            Direction::Down => (&self.down, (self.from + 1, self.from)),
        };
        for (index, op) in ops.iter().enumerate() {
            run(&mut doc, op).map_err(|(kind, why)| TranslationError {
                kind,
                op_index: Some(index),
                field: op.field().to_owned(),
                from_version: Some(versions.0),
                to_version: Some(versions.1),
                reason: format!("{} {}: {why}", direction.name(), op.name()),
            })?;
        }
        Ok(doc)
    }
}

/// The versions an error carries: both, when both are integers.
fn known_versions(from: Option<&Value>, to: Option<&Value>) -> Option<(i64, i64)> {
    match (from, to) {
        (Some(Value::Int(from)), Some(Value::Int(to))) => Some((*from, *to)),
        _ => None,
    }
}

fn check_versions(from: Option<&Value>, to: Option<&Value>) -> Result<i64, Fault> {
    let from = match from {
        Some(Value::Int(n)) if *n >= 1 => *n,
        _ => {
            return Err(fault(
                TranslationErrorKind::BadVersions,
                None,
                "/from",
                "from must be an integer >= 1",
            ));
        }
    };
    let next = i128::from(from) + 1;
    match to {
        Some(Value::Int(to)) if i128::from(*to) == next => Ok(from),
        _ => Err(fault(
            TranslationErrorKind::BadVersions,
            None,
            "/to",
            format!("to must be from + 1 = {next}"),
        )),
    }
}

fn ops(list: Option<&Value>, name: &str) -> Result<Vec<Op>, Fault> {
    let field = format!("/{name}");
    match list {
        None => Err(fault(
            TranslationErrorKind::MissingMember,
            None,
            &field,
            format!("{name} is required"),
        )),
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .map(|(index, op)| parse_op(op, index, &format!("{field}/{index}")))
            .collect(),
        Some(_) => Err(fault(
            TranslationErrorKind::NotAnArray,
            None,
            &field,
            format!("{name} must be an array of ops"),
        )),
    }
}

/// The members each op defines besides `op`: required, then optional.
fn op_members(kind: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match kind {
        "rename" | "move" => (&["from", "to"], &[]),
        "add" => (&["path", "default"], &[]),
        "remove" => (&["path"], &["default"]),
        _ => (&["path", "converter"], &[]),
    }
}

fn parse_op(raw: &Value, index: usize, at: &str) -> Result<Op, Fault> {
    let at_member = |name: &str| format!("{at}{}", pointer_token(name));
    let bad = |kind, name: &str, reason: String| fault(kind, Some(index), &at_member(name), reason);
    let Value::Object(members) = raw else {
        return Err(fault(
            TranslationErrorKind::NotAnObject,
            Some(index),
            at,
            "an op must be a JSON object",
        ));
    };
    let kind = match member(members, "op") {
        Some(Value::String(kind)) if OP_NAMES.contains(&kind.as_str()) => kind.as_str(),
        other => {
            let shown = other.map_or_else(|| "None".to_owned(), repr);
            let reason = format!("unknown op {shown} (known: {})", OP_NAMES.join(", "));
            return Err(bad(TranslationErrorKind::UnknownOp, "op", reason));
        }
    };
    let (required, optional) = op_members(kind);
    for (name, _) in members {
        if name != "op" && !required.contains(&name.as_str()) && !optional.contains(&name.as_str()) {
            let reason = format!("unknown member {} in a {kind} op", python_repr(name));
            return Err(bad(TranslationErrorKind::UnknownMember, name, reason));
        }
    }
    if let Some(name) = required.iter().find(|name| member(members, name).is_none()) {
        let reason = format!("a {kind} op needs {}", python_repr(name));
        return Err(bad(TranslationErrorKind::MissingMember, name, reason));
    }
    let mut pointers = Vec::new();
    for name in ["from", "to", "path"] {
        if let Some(text) = member(members, name) {
            let pointer =
                parse_pointer(text).map_err(|why| bad(TranslationErrorKind::BadPointer, name, why))?;
            pointers.push(pointer);
        }
    }
    let default = member(members, "default").cloned();
    if let Some(value) = &default {
        check_default(value).map_err(|e| {
            let reason = format!("default is not I-JSON: {}", value_error_text(&e));
            bad(TranslationErrorKind::NotIJson, "default", reason)
        })?;
    }
    let mut pointers = pointers.into_iter();
    let mut next = || pointers.next().expect("every required pointer was checked");
    match kind {
        "rename" | "move" => {
            let (from, to) = (next(), next());
            let (src, dst) = (from.tokens(), to.tokens());
            if kind == "rename" && (src[..src.len() - 1] != dst[..dst.len() - 1] || src == dst) {
                let reason = "rename changes the last token only; use move to change objects";
                return Err(bad(TranslationErrorKind::BadPaths, "to", reason.to_owned()));
            }
            if dst.starts_with(src) || src.starts_with(dst) {
                let reason = "from and to must not contain one another";
                return Err(bad(TranslationErrorKind::BadPaths, "to", reason.to_owned()));
            }
            Ok(if kind == "rename" {
                Op::Rename { from, to }
            } else {
                Op::Move { from, to }
            })
        }
        "add" => Ok(Op::Add {
            path: next(),
            default: default.expect("add requires a default"),
        }),
        "remove" => Ok(Op::Remove {
            path: next(),
            default,
        }),
        _ => {
            let path = next();
            let name = member(members, "converter").expect("convert requires a converter");
            let converter = match name {
                Value::String(name) => Converter::from_name(name),
                _ => None,
            };
            let Some(converter) = converter else {
                let known: Vec<&str> = Converter::ALL.iter().map(|c| c.name()).collect();
                let reason = format!("unknown converter {} (known: {})", repr(name), known.join(", "));
                return Err(bad(TranslationErrorKind::UnknownConverter, "converter", reason));
            };
            Ok(Op::Convert { path, converter })
        }
    }
}

/// A path: a JSON Pointer to a member, never the whole document.
fn parse_pointer(text: &Value) -> Result<Pointer, String> {
    let Value::String(text) = text else {
        return Err("a JSON Pointer must be a string".to_owned());
    };
    let bad = |why: &str| format!("bad JSON Pointer {}: {why}", python_repr(text));
    if !text.starts_with('/') {
        return Err(bad(if text.is_empty() {
            "the document root cannot be a path"
        } else {
            "must start with '/'"
        }));
    }
    Pointer::parse(text).map_err(|_| bad("'~' not followed by 0 or 1"))
}

/// Checks that a value built outside [`crate::value::parse`] is I-JSON.
fn check_default(value: &Value) -> Result<(), ValueError> {
    fn walk(value: &Value, depth: usize) -> Result<(), ValueError> {
        let nested = |depth: usize| {
            if depth > MAX_DEPTH {
                Err(ValueError::new(
                    ErrorKind::TooDeep,
                    format!("arrays and objects nest deeper than {MAX_DEPTH} levels"),
                ))
            } else {
                Ok(())
            }
        };
        match value {
            Value::Int(n) => check_int(i128::from(*n)).map(drop),
            Value::Float(x) => check_float(*x).map(drop),
            Value::Array(items) => {
                nested(depth + 1)?;
                for (i, item) in items.iter().enumerate() {
                    walk(item, depth + 1).map_err(|e| e.within(Token::Index(i)))?;
                }
                Ok(())
            }
            Value::Object(members) => {
                nested(depth + 1)?;
                for (key, item) in members {
                    walk(item, depth + 1).map_err(|e| e.within(Token::Key(key.clone())))?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    walk(value, 0)
}

/// A translation holding something that is not I-JSON (an integer beyond
/// ±(2^53 − 1), say): the error names the op and its member, and the reason
/// says where inside that member.
pub fn not_i_json(err: &ValueError) -> TranslationError {
    let tokens = &err.tokens;
    let op_index = match tokens.get(..2) {
        Some([Token::Key(list), Token::Index(i)]) if list == "up" || list == "down" => Some(*i),
        _ => None,
    };
    let depth = if op_index.is_some() {
        3.min(tokens.len())
    } else {
        1.min(tokens.len())
    };
    let within = ValueError {
        kind: err.kind,
        tokens: tokens[depth..].to_vec(),
        reason: err.reason.clone(),
    };
    let at = ValueError {
        tokens: tokens[..depth].to_vec(),
        ..within.clone()
    };
    let name = match tokens[..depth].last() {
        Some(Token::Key(name)) => name.clone(),
        Some(Token::Index(_)) => "an op".to_owned(),
        None => "a translation".to_owned(),
    };
    TranslationError {
        kind: TranslationErrorKind::NotIJson,
        op_index,
        field: at.pointer(),
        from_version: None,
        to_version: None,
        reason: format!("{name} is not I-JSON: {}", value_error_text(&within)),
    }
}

/// A value refusal as the Python package words it (`InvalidValueError`).
pub fn value_error_text(err: &ValueError) -> String {
    let pointer = err.pointer();
    let at = if pointer.is_empty() {
        "at the document root".to_owned()
    } else {
        format!("at JSON path {}", python_repr(&pointer))
    };
    format!("invalid value ({at}): {}", err.reason)
}

type Refusal = (TranslationErrorKind, String);

/// The object holding the last token of `path`, if there is one.
fn parent_mut<'a>(doc: &'a mut Value, tokens: &[String]) -> Option<&'a mut Vec<(String, Value)>> {
    let mut node = doc;
    for token in &tokens[..tokens.len() - 1] {
        let Value::Object(members) = node else {
            return None;
        };
        node = members.iter_mut().find(|(k, _)| k == token).map(|(_, v)| v)?;
    }
    match node {
        Value::Object(members) => Some(members),
        _ => None,
    }
}

fn position(members: &[(String, Value)], key: &str) -> Option<usize> {
    members.iter().position(|(k, _)| k == key)
}

/// Sets `key` in an object, replacing a present value in place.
fn set(members: &mut Vec<(String, Value)>, key: &str, value: Value) {
    match position(members, key) {
        Some(at) => members[at].1 = value,
        None => members.push((key.to_owned(), value)),
    }
}

fn run(doc: &mut Value, op: &Op) -> Result<(), Refusal> {
    if let Op::Move { from, to } = op {
        return run_move(doc, from.tokens(), to.tokens());
    }
    let tokens = match op {
        Op::Rename { from: path, .. }
        | Op::Add { path, .. }
        | Op::Remove { path, .. }
        | Op::Convert { path, .. } => path.tokens(),
        Op::Move { .. } => unreachable!("handled above"),
    };
    let Some(parent) = parent_mut(doc, tokens) else {
        return Ok(());
    };
    let key = &tokens[tokens.len() - 1];
    let found = position(parent, key);
    match (op, found) {
        (Op::Add { default, .. }, None) => parent.push((key.clone(), default.clone())),
        (_, None) | (Op::Add { .. }, Some(_)) => {}
        (Op::Rename { to, .. }, Some(at)) => {
            let (_, value) = parent.remove(at);
            set(parent, &to.tokens()[to.tokens().len() - 1], value);
        }
        (Op::Remove { .. }, Some(at)) => {
            parent.remove(at);
        }
        (Op::Convert { converter, .. }, Some(at)) => {
            let converted = converter.convert(&parent[at].1).map_err(|why| {
                (
                    TranslationErrorKind::Unconvertible,
                    format!("{}: {why}", converter.name()),
                )
            })?;
            parent[at].1 = converted;
        }
        (Op::Move { .. }, Some(_)) => unreachable!("handled above"),
    }
    Ok(())
}

fn run_move(doc: &mut Value, src: &[String], dst: &[String]) -> Result<(), Refusal> {
    if parent_mut(doc, src).is_none_or(|p| position(p, &src[src.len() - 1]).is_none()) {
        return Ok(());
    }
    // Check the target first: the move either happens whole or fails.
    let mut node: &Value = doc;
    for (depth, token) in dst[..dst.len() - 1].iter().enumerate() {
        let Value::Object(members) = node else {
            unreachable!("the walk stops at non-objects");
        };
        let Some(next) = member(members, token) else {
            break;
        };
        if !matches!(next, Value::Object(_)) {
            let walked = Pointer::from_tokens(dst[..=depth].to_vec());
            let reason = format!("cannot move into {}: not an object", walked.as_str());
            return Err((TranslationErrorKind::MoveIntoNonObject, reason));
        }
        node = next;
    }
    let parent = parent_mut(doc, src).expect("checked above");
    let at = position(parent, &src[src.len() - 1]).expect("checked above");
    let (_, value) = parent.remove(at);
    // Prune the objects on the source side that the move left empty, innermost first.
    for depth in (1..src.len()).rev() {
        let holder = parent_mut(doc, &src[..depth]).expect("an ancestor of the source");
        let at = position(holder, &src[depth - 1]).expect("an ancestor of the source");
        if !matches!(&holder[at].1, Value::Object(m) if m.is_empty()) {
            break;
        }
        holder.remove(at);
    }
    let mut node = doc;
    for token in &dst[..dst.len() - 1] {
        let Value::Object(members) = node else {
            unreachable!("the target path was checked");
        };
        let at = match position(members, token) {
            Some(at) => at,
            None => {
                members.push((token.clone(), Value::Object(Vec::new())));
                members.len() - 1
            }
        };
        node = &mut members[at].1;
    }
    let Value::Object(members) = node else {
        unreachable!("the target path was checked");
    };
    set(members, &dst[dst.len() - 1], value);
    Ok(())
}

/// Why a chain of translations cannot be built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChainError {
    /// No translation is registered between `low` and `low + 1`.
    Missing {
        /// The older version of the missing step.
        low: i64,
    },
    /// The translation found for `low` translates from another version.
    Mismatch {
        /// The version it was looked up for.
        low: i64,
        /// The version it translates from.
        found: i64,
    },
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Missing { low } => {
                write!(f, "no translation is registered between v{low} and v{}", low + 1)
            }
            ChainError::Mismatch { low, found } => {
                write!(f, "translations[{low}] translates from v{found}")
            }
        }
    }
}

impl std::error::Error for ChainError {}

/// The steps from version `from` to `to`, every one looked up before any runs:
/// `lookup(n)` is the translation between n and n + 1. Apply them with
/// [`apply_chain`] and the direction (`Up` when `from < to`).
pub fn chain<'a>(
    from: i64,
    to: i64,
    mut lookup: impl FnMut(i64) -> Option<&'a Translation>,
) -> Result<(Vec<&'a Translation>, Direction), ChainError> {
    let (lows, direction): (Vec<i64>, _) = if from <= to {
        ((from..to).collect(), Direction::Up)
    } else {
        ((to..from).rev().collect(), Direction::Down)
    };
    let steps = lows
        .into_iter()
        .map(|low| match lookup(low) {
            None => Err(ChainError::Missing { low }),
            Some(found) if found.from != low => Err(ChainError::Mismatch {
                low,
                found: found.from,
            }),
            Some(found) => Ok(found),
        })
        .collect::<Result<_, _>>()?;
    Ok((steps, direction))
}

/// `doc` taken through `steps` (from [`chain`]) in `direction`.
pub fn apply_chain(
    doc: Value,
    steps: &[&Translation],
    direction: Direction,
) -> Result<Value, TranslationError> {
    steps.iter().try_fold(doc, |doc, step| step.apply(doc, direction))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::parse;

    fn translation(text: &str) -> Result<Translation, TranslationError> {
        Translation::parse_json(text.as_bytes())
    }

    fn up(ops: &str) -> Result<Translation, TranslationError> {
        translation(&format!(
            r#"{{"format": "statesync.translation/1", "from": 1, "to": 2, "up": [{ops}]}}"#
        ))
    }

    #[test]
    fn refusals_name_the_op_the_member_and_why() {
        let err = up(r#"{"op": "rename", "from": "/a"}, {"op": ["x"]}"#).unwrap_err();
        assert_eq!((err.op_index, err.field.as_str()), (Some(0), "/up/0/to"));
        assert_eq!(err.reason, "a rename op needs 'to'");
        let err = up(r#"{"op": ["x"]}"#).unwrap_err();
        assert_eq!(err.kind, TranslationErrorKind::UnknownOp);
        assert_eq!(
            err.reason,
            "unknown op ['x'] (known: add, convert, move, remove, rename)"
        );
        assert_eq!(
            err.to_string(),
            "invalid translation (v1->v2, op #0, field '/up/0/op'): unknown op ['x'] (known: add, convert, move, remove, rename)"
        );
        let err = up(r#"{"op": "remove", "path": "/a~2"}"#).unwrap_err();
        assert_eq!(err.reason, "bad JSON Pointer '/a~2': '~' not followed by 0 or 1");
        let err = up(r#"{"op": "add", "path": "/a", "default": 9007199254740992}"#).unwrap_err();
        assert_eq!(
            (err.kind, err.field.as_str()),
            (TranslationErrorKind::NotIJson, "/up/0/default")
        );
        let err = translation(r#"{"format": "statesync.translation/1", "from": 2, "to": 4, "up": []}"#)
            .unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.reason.as_str()),
            ("/to", "to must be from + 1 = 3")
        );
        assert_eq!((err.from_version, err.to_version), (Some(2), Some(4)));
        let err = translation(r#"{"a/b": 1}"#).unwrap_err();
        assert_eq!((err.field.as_str(), err.from_version), ("/a~1b", None));
    }

    #[test]
    fn canonical_form_orders_members_and_derives_down() {
        let t = up(
            r#"{"default": 0, "path": "/legacy", "op": "remove"}, {"to": "/b", "op": "move", "from": "/a"}"#,
        )
        .unwrap();
        let text = String::from_utf8(crate::canonical_bytes(&t.to_value())).unwrap();
        assert!(text.contains(
            r#""down":[{"from":"/b","op":"move","to":"/a"},{"default":0,"op":"add","path":"/legacy"}]"#
        ));
        let Value::Object(members) = &t.down()[0].to_value() else {
            panic!("an op is an object")
        };
        let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["op", "from", "to"]);
        assert_eq!(Translation::parse(&t.to_value()).unwrap(), t);
    }

    #[test]
    fn a_failing_op_names_its_index_path_and_the_direction_of_travel() {
        let t =
            up(r#"{"op": "add", "path": "/x", "default": 1}, {"op": "move", "from": "/c", "to": "/a/b/c"}"#)
                .unwrap();
        let doc = parse(br#"{"c": 1, "a": {"b": "s"}}"#).unwrap();
        let err = t.apply(doc, Direction::Up).unwrap_err();
        assert_eq!((err.op_index, err.field.as_str()), (Some(1), "/a/b/c"));
        assert_eq!(err.reason, "up move: cannot move into /a/b: not an object");
        // Down: the move back prunes the objects it emptied.
        let back = t.apply(parse(br#"{"a": {"b": {"c": 1}}}"#).unwrap(), Direction::Down);
        assert_eq!(crate::canonical_bytes(&back.unwrap()), br#"{"c":1}"#);
    }

    #[test]
    fn chains_look_every_step_up_first() {
        let one = up(r#"{"op": "rename", "from": "/a", "to": "/b"}"#).unwrap();
        let two = Translation::identity(2);
        let lookup = |n| {
            [(1, &one), (2, &two)]
                .into_iter()
                .find(|(k, _)| *k == n)
                .map(|(_, t)| t)
        };
        let (steps, direction) = chain(3, 1, lookup).unwrap();
        assert_eq!((steps.len(), direction), (2, Direction::Down));
        let back = apply_chain(parse(br#"{"b": 1}"#).unwrap(), &steps, direction).unwrap();
        assert_eq!(crate::canonical_bytes(&back), br#"{"a":1}"#);
        assert_eq!(chain(1, 4, lookup).unwrap_err(), ChainError::Missing { low: 3 });
        assert_eq!(
            chain(2, 3, |_| Some(&one)).unwrap_err().to_string(),
            "translations[2] translates from v1"
        );
        assert!(chain(2, 2, lookup).unwrap().0.is_empty());
    }
}
