//! Values: JSON documents in the I-JSON domain (RFC 7493).
//!
//! [`parse`] reads untrusted JSON text strictly. It is written here rather than
//! taken from `serde_json` because statesync must refuse what a general parser
//! accepts or cannot tell apart, and say where: duplicate object keys, lone
//! surrogates in `\u` escapes, integer literals outside ±(2^53−1) (serde_json
//! turns a large one into a double silently), numbers overflowing a double,
//! and nesting deeper than [`MAX_DEPTH`]. Every error names the JSON Pointer of
//! the offending member, so the caller can report namespace, key and path.

use std::collections::HashSet;
use std::fmt;

/// The largest integer magnitude I-JSON carries exactly: 2^53 − 1.
pub const MAX_SAFE_INTEGER: i64 = (1 << 53) - 1;

/// RFC 8785 prints a double below 1e21 with no exponent, so an integral double
/// at or above 2^53 and below 1e21 would print as an integer literal outside
/// the I-JSON range: such numbers are refused.
const JCS_EXPONENT_FROM: f64 = 1e21;

/// How many arrays and objects a value may nest. Deeper values are refused
/// with [`ErrorKind::TooDeep`]: every layer (the schema validator, the Python
/// conversion, other languages' decoders) walks values recursively, and 128 is
/// the default limit of serde_json and of many other decoders.
pub const MAX_DEPTH: usize = 128;

/// A JSON value. Object members keep the order they were written in; the
/// canonical form sorts them.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// `null`
    Null,
    /// `true` or `false`
    Bool(bool),
    /// An integer literal within ±(2^53−1).
    Int(i64),
    /// A number with a fraction or an exponent (finite).
    Float(f64),
    /// A string of Unicode scalar values.
    String(String),
    /// An array.
    Array(Vec<Value>),
    /// An object: members in document order, keys unique.
    Object(Vec<(String, Value)>),
}

/// Why a value is not in the I-JSON domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not JSON text at all (syntax).
    Malformed,
    /// The text is not UTF-8.
    InvalidUtf8,
    /// An object has the same key twice (after unescaping).
    DuplicateKey,
    /// An integer outside ±(2^53−1), or a double that prints as one.
    IntegerOutOfRange,
    /// A number that overflows a double, or NaN / infinity.
    NumberOutOfRange,
    /// A string holds a lone UTF-16 surrogate.
    LoneSurrogate,
    /// Arrays and objects nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Something that has no JSON type (from a host language's object).
    NotJson,
}

impl ErrorKind {
    /// The language-neutral code used in `conformance/canonical/vectors.json`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::InvalidUtf8 => "invalid_utf8",
            ErrorKind::DuplicateKey => "duplicate_key",
            ErrorKind::IntegerOutOfRange => "integer_out_of_range",
            ErrorKind::NumberOutOfRange => "number_out_of_range",
            ErrorKind::LoneSurrogate => "lone_surrogate",
            ErrorKind::TooDeep => "too_deep",
            ErrorKind::NotJson => "not_json",
        }
    }
}

/// One step of a JSON Pointer: an object key or an array index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    /// An object member.
    Key(String),
    /// An array element.
    Index(usize),
}

/// A refused value: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError {
    /// The kind of fault.
    pub kind: ErrorKind,
    /// Where, from the root: the JSON Pointer's reference tokens.
    pub tokens: Vec<Token>,
    /// A sentence for people.
    pub reason: String,
}

impl ValueError {
    /// A new error at the root; containers prepend their token as it propagates.
    pub fn new(kind: ErrorKind, reason: impl Into<String>) -> Self {
        ValueError {
            kind,
            tokens: Vec::new(),
            reason: reason.into(),
        }
    }

    /// Prefix the path with one reference token. Syntax errors keep the root
    /// path: broken text is located by line and column, not by members.
    pub fn within(mut self, token: Token) -> Self {
        if self.kind != ErrorKind::Malformed {
            self.tokens.insert(0, token);
        }
        self
    }

    /// The JSON Pointer (RFC 6901) of the offending member, "" for the root.
    pub fn pointer(&self) -> String {
        self.tokens
            .iter()
            .map(|t| match t {
                Token::Key(k) => pointer_token(k),
                Token::Index(i) => format!("/{i}"),
            })
            .collect()
    }
}

impl fmt::Display for ValueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at JSON path '{}'", self.reason, self.pointer())
    }
}

impl std::error::Error for ValueError {}

/// One RFC 6901 reference token, with its leading `/`.
pub fn pointer_token(token: &str) -> String {
    format!("/{}", token.replace('~', "~0").replace('/', "~1"))
}

/// Checks an integer against the I-JSON range.
pub fn check_int(n: i128) -> Result<i64, ValueError> {
    if n.unsigned_abs() > MAX_SAFE_INTEGER as u128 {
        return Err(ValueError::new(
            ErrorKind::IntegerOutOfRange,
            format!("integer {n} is outside the I-JSON range ±(2**53-1)"),
        ));
    }
    Ok(n as i64)
}

/// Checks a double: finite, and not an integral double that RFC 8785 would
/// print as an integer outside the I-JSON range.
pub fn check_float(x: f64) -> Result<f64, ValueError> {
    if !x.is_finite() {
        return Err(ValueError::new(
            ErrorKind::NumberOutOfRange,
            format!("number {x} is not finite"),
        ));
    }
    let magnitude = x.abs();
    if magnitude > MAX_SAFE_INTEGER as f64 && magnitude < JCS_EXPONENT_FROM {
        return Err(ValueError::new(
            ErrorKind::IntegerOutOfRange,
            format!("number {x:?} is an integer outside the I-JSON range ±(2**53-1) in canonical form"),
        ));
    }
    Ok(x)
}

/// Parses untrusted JSON text strictly into an I-JSON [`Value`].
pub fn parse(text: &[u8]) -> Result<Value, ValueError> {
    let text = std::str::from_utf8(text).map_err(|e| {
        ValueError::new(
            ErrorKind::InvalidUtf8,
            format!("not valid UTF-8 at byte {}", e.valid_up_to()),
        )
    })?;
    let mut parser = Parser {
        text: text.as_bytes(),
        at: 0,
    };
    parser.skip_whitespace();
    let value = parser.value(0)?;
    parser.skip_whitespace();
    if parser.at != parser.text.len() {
        return Err(parser.malformed("extra data after the value"));
    }
    Ok(value)
}

struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn malformed(&self, what: &str) -> ValueError {
        let at = self.at.min(self.text.len());
        let before = &self.text[..at];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let column = before.iter().rev().take_while(|&&b| b != b'\n').count() + 1;
        let near: String = String::from_utf8_lossy(&self.text[at..])
            .chars()
            .take(16)
            .collect();
        let near = if near.is_empty() {
            "the end".to_owned()
        } else {
            python_repr(&near)
        };
        ValueError::new(
            ErrorKind::Malformed,
            format!("malformed JSON: {what} at line {line} column {column} (byte {at}), near {near}"),
        )
    }

    fn peek(&self) -> Option<u8> {
        self.text.get(self.at).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect_literal(&mut self, literal: &[u8], value: Value) -> Result<Value, ValueError> {
        if self.text[self.at..].starts_with(literal) {
            self.at += literal.len();
            Ok(value)
        } else {
            Err(self.malformed("expected a value"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, ValueError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Value::String(self.string()?)),
            Some(b't') => self.expect_literal(b"true", Value::Bool(true)),
            Some(b'f') => self.expect_literal(b"false", Value::Bool(false)),
            Some(b'n') => self.expect_literal(b"null", Value::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.malformed("expected a value")),
        }
    }

    fn too_deep() -> ValueError {
        ValueError::new(
            ErrorKind::TooDeep,
            format!("arrays and objects nest deeper than {MAX_DEPTH} levels"),
        )
    }

    fn array(&mut self, depth: usize) -> Result<Value, ValueError> {
        if depth > MAX_DEPTH {
            return Err(Self::too_deep());
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_whitespace();
        if self.peek() == Some(b']') {
            self.at += 1;
            return Ok(Value::Array(items));
        }
        loop {
            self.skip_whitespace();
            let item = self
                .value(depth)
                .map_err(|e| e.within(Token::Index(items.len())))?;
            items.push(item);
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b']') => {
                    self.at += 1;
                    return Ok(Value::Array(items));
                }
                _ => return Err(self.malformed("expected ',' or ']'")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<Value, ValueError> {
        if depth > MAX_DEPTH {
            return Err(Self::too_deep());
        }
        self.at += 1;
        let mut members: Vec<(String, Value)> = Vec::new();
        // Small objects are checked for duplicates by scanning; large ones by a set.
        let mut seen: Option<HashSet<String>> = None;
        self.skip_whitespace();
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(Value::Object(members));
        }
        loop {
            self.skip_whitespace();
            if self.peek() != Some(b'"') {
                return Err(self.malformed("expected a string for an object key"));
            }
            let key_at = self.at;
            let key = self.string().map_err(|e| match e.kind {
                // The key cannot be a string: name it as the text spells it.
                ErrorKind::LoneSurrogate => e.within(Token::Key(self.spelling(key_at))),
                _ => e,
            })?;
            let duplicate = match &mut seen {
                Some(set) => !set.insert(key.clone()),
                None => members.iter().any(|(k, _)| *k == key),
            };
            if duplicate {
                return Err(ValueError::new(
                    ErrorKind::DuplicateKey,
                    format!("duplicate object key {}", python_repr(&key)),
                ));
            }
            self.skip_whitespace();
            if self.peek() != Some(b':') {
                return Err(self.malformed("expected ':' after an object key"));
            }
            self.at += 1;
            self.skip_whitespace();
            let value = self.value(depth).map_err(|e| e.within(Token::Key(key.clone())))?;
            if seen.is_none() && members.len() >= 16 {
                seen = Some(members.iter().map(|(k, _)| k.clone()).collect());
            }
            if let Some(set) = &mut seen {
                set.insert(key.clone());
            }
            members.push((key, value));
            self.skip_whitespace();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(Value::Object(members));
                }
                _ => return Err(self.malformed("expected ',' or '}'")),
            }
        }
    }

    /// The text of the string literal starting at `start`, between its quotes.
    fn spelling(&self, start: usize) -> String {
        let mut end = start + 1;
        while end < self.text.len() && self.text[end] != b'"' {
            end += if self.text[end] == b'\\' { 2 } else { 1 };
        }
        String::from_utf8_lossy(&self.text[start + 1..end.min(self.text.len())]).into_owned()
    }

    fn hex4(&mut self) -> Result<u32, ValueError> {
        let digits = self
            .text
            .get(self.at..self.at + 4)
            .ok_or_else(|| self.malformed("bad \\u escape"))?;
        let mut code = 0u32;
        for &d in digits {
            let nibble = (d as char)
                .to_digit(16)
                .ok_or_else(|| self.malformed("bad \\u escape"))?;
            code = code * 16 + nibble;
        }
        self.at += 4;
        Ok(code)
    }

    fn string(&mut self) -> Result<String, ValueError> {
        self.at += 1; // the opening quote
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            // The text is valid UTF-8 and the run stops at ASCII bytes only.
            out.push_str(std::str::from_utf8(&self.text[start..self.at]).expect("UTF-8 run"));
            match self.peek() {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escape = self.peek().ok_or_else(|| self.malformed("unterminated string"))?;
                    self.at += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => {
                            self.at -= 1;
                            return Err(self.malformed("invalid escape"));
                        }
                    }
                }
                Some(_) => return Err(self.malformed("raw control character in a string")),
                None => return Err(self.malformed("unterminated string")),
            }
        }
    }

    fn unicode_escape(&mut self) -> Result<char, ValueError> {
        let first = self.hex4()?;
        let lone = |code: u32| {
            ValueError::new(
                ErrorKind::LoneSurrogate,
                format!("string holds a lone surrogate \\u{code:04x}"),
            )
        };
        match first {
            0xD800..=0xDBFF => {
                if !self.text[self.at..].starts_with(b"\\u") {
                    return Err(lone(first));
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(lone(first));
                }
                let code = 0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00);
                Ok(char::from_u32(code).expect("a surrogate pair is a scalar value"))
            }
            0xDC00..=0xDFFF => Err(lone(first)),
            _ => Ok(char::from_u32(first).expect("a non-surrogate BMP code is a scalar value")),
        }
    }

    fn number(&mut self) -> Result<Value, ValueError> {
        let start = self.at;
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        match self.peek() {
            Some(b'0') => self.at += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => {
                self.at = start;
                return Err(self.malformed("expected a value"));
            }
        }
        if matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.malformed("leading zeros are not allowed"));
        }
        let mut integral = true;
        if self.peek() == Some(b'.') {
            integral = false;
            self.at += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.malformed("expected a digit after '.'"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            integral = false;
            self.at += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.at += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.malformed("expected a digit in the exponent"));
            }
            self.digits();
        }
        let literal = std::str::from_utf8(&self.text[start..self.at]).expect("ASCII digits");
        if integral {
            // More than 16 digits is beyond 2^53 whatever they are.
            let digits = literal.trim_start_matches('-');
            if digits.len() > 16 {
                return Err(ValueError::new(
                    ErrorKind::IntegerOutOfRange,
                    format!("integer {literal} is outside the I-JSON range ±(2**53-1)"),
                ));
            }
            let n: i128 = literal.parse().expect("a checked integer literal");
            return check_int(n).map(Value::Int);
        }
        let x: f64 = literal.parse().expect("a checked number literal");
        if x.is_infinite() {
            return Err(ValueError::new(
                ErrorKind::NumberOutOfRange,
                format!("number {literal} is not finite as a double"),
            ));
        }
        check_float(x).map(Value::Float)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.at += 1;
        }
    }
}

/// A key as Python's `repr` shows it, so messages read the same in every layer.
pub fn python_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(text: &str) -> ErrorKind {
        parse(text.as_bytes()).unwrap_err().kind
    }

    #[test]
    fn depth_limit_is_exact() {
        let ok = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(ok.as_bytes()).is_ok());
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        let err = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep);
        assert_eq!(err.pointer(), "/0".repeat(MAX_DEPTH));
    }

    #[test]
    fn very_deep_text_is_refused_without_recursing_into_it() {
        let deep = "{\"a\":".repeat(100_000);
        let err = parse(deep.as_bytes()).unwrap_err();
        assert_eq!(err.kind, ErrorKind::TooDeep);
    }

    #[test]
    fn errors_name_the_member() {
        let err = parse(br#"{"a/b": [0, {"c~d": 9007199254740992}]}"#).unwrap_err();
        assert_eq!(err.kind, ErrorKind::IntegerOutOfRange);
        assert_eq!(err.pointer(), "/a~1b/1/c~0d");
        let err = parse(br#"{"x": {"b": 1, "b": 2}}"#).unwrap_err();
        assert_eq!(
            (err.kind, err.pointer().as_str()),
            (ErrorKind::DuplicateKey, "/x")
        );
        assert_eq!(err.reason, "duplicate object key 'b'");
        let err = parse(br#"{"x": {"a\\\"\udc00": 1}}"#).unwrap_err();
        assert_eq!(
            (err.kind, err.pointer().as_str()),
            (ErrorKind::LoneSurrogate, r#"/x/a\\\"\udc00"#)
        );
        let err = parse(b"[1, {\"a\": NaN}]").unwrap_err();
        assert_eq!((err.kind, err.pointer().as_str()), (ErrorKind::Malformed, ""));
        assert!(err.reason.ends_with("near 'NaN}]'"), "{}", err.reason);
    }

    #[test]
    fn duplicates_are_found_in_large_objects() {
        let mut text = String::from("{");
        for i in 0..40 {
            text.push_str(&format!("\"k{i}\": {i},"));
        }
        text.push_str("\"k3\": 0}");
        assert_eq!(kind(&text), ErrorKind::DuplicateKey);
    }

    #[test]
    fn integer_literals_are_checked_exactly() {
        assert_eq!(
            parse(b"-9007199254740991").unwrap(),
            Value::Int(-MAX_SAFE_INTEGER)
        );
        assert_eq!(kind("9007199254740992"), ErrorKind::IntegerOutOfRange);
        assert_eq!(kind("10000000000000000000000000"), ErrorKind::IntegerOutOfRange);
        assert_eq!(parse(b"-0").unwrap(), Value::Int(0));
        assert_eq!(parse(b"1e25").unwrap(), Value::Float(1e25));
        assert_eq!(kind("1e400"), ErrorKind::NumberOutOfRange);
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = parse(b"{\n  \"a\": 1,\n}").unwrap_err();
        assert_eq!(err.kind, ErrorKind::Malformed);
        assert!(err.reason.contains("line 3 column 1"), "{}", err.reason);
        for bad in [
            "",
            "[1] [2]",
            "[01]",
            "{'a': 1}",
            "\"a\tb\"",
            "NaN",
            "[-Infinity]",
            "\u{feff}{}",
            "\"\\x\"",
            "[1,]",
            "tru",
        ] {
            assert_eq!(kind(bad), ErrorKind::Malformed, "{bad:?}");
        }
    }

    #[test]
    fn surrogates() {
        assert_eq!(
            parse(br#""\ud83d\ude00""#).unwrap(),
            Value::String("\u{1F600}".into())
        );
        for bad in [r#""\ud800""#, r#""\udc00""#, r#""\ud800a""#, r#""\ud800\u0041""#] {
            assert_eq!(kind(bad), ErrorKind::LoneSurrogate, "{bad}");
        }
        assert_eq!(parse(b"\"\xff\"").unwrap_err().kind, ErrorKind::InvalidUtf8);
    }

    #[test]
    fn python_repr_matches() {
        assert_eq!(python_repr("b"), "'b'");
        assert_eq!(python_repr("it's"), "\"it's\"");
        assert_eq!(python_repr("a'\"b"), "'a\\'\"b'");
        assert_eq!(python_repr("\u{1}\n"), "'\\x01\\n'");
    }
}
