//! Canonical bytes (RFC 8785, JCS) of I-JSON values.
//!
//! Every hash in statesync is computed over these bytes, so every language that
//! follows RFC 8785 computes the same bytes and the same hashes;
//! `conformance/canonical/vectors.json` holds the cases that decide.

use std::cmp::Ordering;

use crate::value::Value;

/// The canonical bytes of `value`.
pub fn canonical_bytes(value: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical bytes of `value` to `out`.
pub fn write_canonical(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Int(n) => write_int(*n, out),
        Value::Float(x) => write_float(*x, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Value::Object(members) => {
            let mut sorted: Vec<&(String, Value)> = members.iter().collect();
            sorted.sort_by(|a, b| utf16_order(&a.0, &b.0));
            out.push(b'{');
            for (i, (key, item)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(key, out);
                out.push(b':');
                write_canonical(item, out);
            }
            out.push(b'}');
        }
    }
}

/// The length of the canonical bytes of `value`, without writing them: a
/// patch keeps its document's size up to date op by op with it.
pub fn canonical_len(value: &Value) -> usize {
    match value {
        Value::Null | Value::Bool(true) => 4,
        Value::Bool(false) => 5,
        Value::Int(n) => {
            let digits = n.unsigned_abs().checked_ilog10().map_or(1, |d| d as usize + 1);
            digits + usize::from(*n < 0)
        }
        Value::Float(x) if *x == 0.0 => 1,
        Value::Float(x) => ryu_js::Buffer::new().format_finite(*x).len(),
        Value::String(s) => string_len(s),
        Value::Array(items) => {
            2 + items.len().saturating_sub(1) + items.iter().map(canonical_len).sum::<usize>()
        }
        Value::Object(members) => {
            2 + members.len().saturating_sub(1)
                + members
                    .iter()
                    .map(|(k, v)| string_len(k) + 1 + canonical_len(v))
                    .sum::<usize>()
        }
    }
}

/// The length of a string in canonical form, quotes included (see [`write_string`]).
pub fn string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0x00..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// RFC 8785 orders object members by the UTF-16 code units of their keys.
/// UTF-8 byte order agrees except between U+E000..U+FFFF and supplementary
/// characters, so the UTF-16 comparison runs only when a key needs it.
pub fn utf16_order(a: &str, b: &str) -> Ordering {
    let needs_utf16 = |s: &str| s.bytes().any(|byte| byte >= 0xEE);
    if needs_utf16(a) && needs_utf16(b) {
        a.encode_utf16().cmp(b.encode_utf16())
    } else {
        a.as_bytes().cmp(b.as_bytes())
    }
}

/// Appends an integer in canonical form.
pub fn write_int(n: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(n.to_string().as_bytes());
}

/// Appends a finite double as ECMAScript's `Number.prototype.toString` prints it.
pub fn write_float(x: f64, out: &mut Vec<u8>) {
    if x == 0.0 {
        out.push(b'0'); // both zeros
        return;
    }
    let mut buffer = ryu_js::Buffer::new();
    out.extend_from_slice(buffer.format_finite(x).as_bytes());
}

/// Appends a JSON string: `"` and `\` escaped, the short escapes for
/// backspace, form feed, newline, carriage return and tab, other control
/// characters as `\u00xx`, everything else as UTF-8.
pub fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut run = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[run..i]);
                run = i + 1;
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]);
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[run..i]);
        out.extend_from_slice(escape);
        run = i + 1;
    }
    out.extend_from_slice(&bytes[run..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::parse;

    fn canon(text: &str) -> String {
        String::from_utf8(canonical_bytes(&parse(text.as_bytes()).unwrap())).unwrap()
    }

    #[test]
    fn numbers_print_as_ecmascript() {
        assert_eq!(
            canon("[1.0, -0.0, 1e21, 1e-7, 0.000001, 1E30, 4.50, 5e-324]"),
            "[1,0,1e+21,1e-7,0.000001,1e+30,4.5,5e-324]"
        );
    }

    #[test]
    fn strings_escape_the_minimum() {
        assert_eq!(
            canon(r#""\u0001\b\/\u007f\u2028é""#),
            "\"\\u0001\\b/\u{7f}\u{2028}é\""
        );
    }

    #[test]
    fn keys_sort_by_utf16() {
        assert_eq!(
            canon(r#"{"\uffff": 1, "\ud800\udc00": 2, "\ud7ff": 3, "b": 0, "a": 0}"#),
            "{\"a\":0,\"b\":0,\"\u{d7ff}\":3,\"\u{10000}\":2,\"\u{ffff}\":1}"
        );
    }
}
