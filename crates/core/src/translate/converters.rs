//! The named value converters of translations (docs/translations.md §6).
//!
//! Each converter is total on its domain and refuses everything else with a
//! sentence naming the value; the results are the same in every language:
//! integer arithmetic only, and `seconds_to_ms` works on the shortest decimal
//! of a double (what RFC 8785 prints), never on a floating-point product.

use std::fmt::Write as _;

use crate::patch::{float_repr, shortest_digits};
use crate::value::{MAX_SAFE_INTEGER, Value};

/// A named converter; each has a paired converter that undoes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Converter {
    /// RFC 3339 date-time string -> integer milliseconds since the epoch.
    Rfc3339ToUnixMs,
    /// Integer milliseconds since the epoch -> canonical date-time string.
    UnixMsToRfc3339,
    /// Number of seconds -> integer milliseconds (exact, half to even).
    SecondsToMs,
    /// Integer milliseconds -> number of seconds (the nearest double).
    MsToSeconds,
    /// Integer -> its canonical decimal string.
    IntToString,
    /// Canonical decimal integer string -> integer.
    StringToInt,
    /// String -> a one-element array holding it.
    StringToArray,
    /// A one-element array of a string -> that string.
    ArrayToString,
}

impl Converter {
    /// Every converter, in the order the spec lists them.
    pub const ALL: [Converter; 8] = [
        Converter::Rfc3339ToUnixMs,
        Converter::UnixMsToRfc3339,
        Converter::SecondsToMs,
        Converter::MsToSeconds,
        Converter::IntToString,
        Converter::StringToInt,
        Converter::StringToArray,
        Converter::ArrayToString,
    ];

    /// The converter's name, as translations spell it.
    pub fn name(self) -> &'static str {
        match self {
            Converter::Rfc3339ToUnixMs => "rfc3339_to_unix_ms",
            Converter::UnixMsToRfc3339 => "unix_ms_to_rfc3339",
            Converter::SecondsToMs => "seconds_to_ms",
            Converter::MsToSeconds => "ms_to_seconds",
            Converter::IntToString => "int_to_string",
            Converter::StringToInt => "string_to_int",
            Converter::StringToArray => "string_to_array",
            Converter::ArrayToString => "array_to_string",
        }
    }

    /// The converter with this name.
    pub fn from_name(name: &str) -> Option<Converter> {
        Converter::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The converter that undoes this one.
    pub fn inverse(self) -> Converter {
        match self {
            Converter::Rfc3339ToUnixMs => Converter::UnixMsToRfc3339,
            Converter::UnixMsToRfc3339 => Converter::Rfc3339ToUnixMs,
            Converter::SecondsToMs => Converter::MsToSeconds,
            Converter::MsToSeconds => Converter::SecondsToMs,
            Converter::IntToString => Converter::StringToInt,
            Converter::StringToInt => Converter::IntToString,
            Converter::StringToArray => Converter::ArrayToString,
            Converter::ArrayToString => Converter::StringToArray,
        }
    }

    /// One line saying what the converter takes and gives.
    pub fn summary(self) -> &'static str {
        match self {
            Converter::Rfc3339ToUnixMs => {
                "RFC 3339 date-time string -> integer milliseconds since 1970-01-01T00:00:00Z"
            }
            Converter::UnixMsToRfc3339 => "integer milliseconds since the epoch -> YYYY-MM-DDTHH:MM:SS.mmmZ",
            Converter::SecondsToMs => "number of seconds -> integer milliseconds (exact, half to even)",
            Converter::MsToSeconds => "integer milliseconds -> number of seconds (the nearest double)",
            Converter::IntToString => "integer -> its canonical decimal string",
            Converter::StringToInt => "canonical decimal integer string -> integer",
            Converter::StringToArray => "string -> a one-element array holding it",
            Converter::ArrayToString => "a one-element array of a string -> that string",
        }
    }

    /// The converted value, or why `value` is outside the converter's domain.
    pub fn convert(self, value: &Value) -> Result<Value, String> {
        match self {
            Converter::Rfc3339ToUnixMs => rfc3339_to_unix_ms(value).map(Value::Int),
            Converter::UnixMsToRfc3339 => unix_ms_to_rfc3339(value).map(Value::String),
            Converter::SecondsToMs => seconds_to_ms(value).map(Value::Int),
            Converter::MsToSeconds => ms_to_seconds(value),
            Converter::IntToString => integer(value).map(|n| Value::String(n.to_string())),
            Converter::StringToInt => string_to_int(value).map(Value::Int),
            Converter::StringToArray => match value {
                Value::String(s) => Ok(Value::Array(vec![Value::String(s.clone())])),
                other => Err(format!("{} is not a string", show(other))),
            },
            Converter::ArrayToString => match value {
                Value::Array(items) if matches!(items.as_slice(), [Value::String(_)]) => Ok(items[0].clone()),
                other => Err(format!("{} is not an array of exactly one string", show(other))),
            },
        }
    }
}

/// A value for a message: compact JSON, ASCII only, cut to 40 characters.
pub(crate) fn show(value: &Value) -> String {
    let mut text = String::new();
    write_shown(value, &mut text);
    if text.len() <= 40 {
        text
    } else {
        // ASCII only, so byte offsets are character offsets.
        format!("{}...", &text[..37])
    }
}

fn write_shown(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n) => out.push_str(&n.to_string()),
        Value::Float(x) => out.push_str(&float_repr(*x)),
        Value::String(s) => write_shown_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_shown(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            out.push('{');
            for (i, (key, item)) in members.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_shown_string(key, out);
                out.push_str(": ");
                write_shown(item, out);
            }
            out.push('}');
        }
    }
}

fn write_shown_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

fn in_range(n: i128) -> Result<i64, String> {
    if n.unsigned_abs() > MAX_SAFE_INTEGER as u128 {
        return Err(format!("{n} is outside the I-JSON integer range +-(2**53-1)"));
    }
    Ok(n as i64)
}

/// An integer within the I-JSON range; an integral double counts (1.0 is 1 in JSON).
fn integer(value: &Value) -> Result<i64, String> {
    match value {
        Value::Int(n) => in_range(i128::from(*n)),
        Value::Float(x) if x.is_finite() && x.fract() == 0.0 => {
            if x.abs() < 1e30 {
                in_range(*x as i128)
            } else {
                // Far outside the range: the exact integer, as Python prints it.
                Err(format!("{x:.0} is outside the I-JSON integer range +-(2**53-1)"))
            }
        }
        other => Err(format!("{} is not an integer", show(other))),
    }
}

const DAY_MS: i64 = 86_400_000;
/// 0000-01-01T00:00:00.000Z.
const MIN_MS: i64 = -62_167_219_200_000;
/// 9999-12-31T23:59:59.999Z.
const MAX_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let doy = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// The fields of an RFC 3339 date-time, as written (no range checks yet).
struct DateTime<'a> {
    date: [i64; 3],
    time: [i64; 3],
    fraction: &'a str,
    /// Sign, hours and minutes of a numeric offset (None: `Z`).
    offset: Option<(i64, i64, i64)>,
}

/// Reads `YYYY-MM-DDThh:mm:ss[.f+](Z|+hh:mm|-hh:mm)` with ASCII digits, `T`
/// and `Z` in either case, nothing before or after.
fn read_date_time(text: &str) -> Option<DateTime<'_>> {
    let bytes = text.as_bytes();
    let number = |at: usize, len: usize| -> Option<i64> {
        let digits = bytes.get(at..at + len)?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| digits.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let at = |i: usize| bytes.get(i).copied();
    let separators = [(4, b'-'), (7, b'-'), (13, b':'), (16, b':')];
    if separators.iter().any(|&(i, c)| at(i) != Some(c)) || !matches!(at(10), Some(b'T' | b't')) {
        return None;
    }
    let date = [number(0, 4)?, number(5, 2)?, number(8, 2)?];
    let time = [number(11, 2)?, number(14, 2)?, number(17, 2)?];
    let mut i = 19;
    let mut fraction = "";
    if at(i) == Some(b'.') {
        let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
        if digits == 0 {
            return None;
        }
        fraction = &text[i + 1..i + 1 + digits];
        i += 1 + digits;
    }
    let offset = match at(i)? {
        b'Z' | b'z' if i + 1 == bytes.len() => None,
        sign @ (b'+' | b'-') if i + 6 == bytes.len() && at(i + 3) == Some(b':') => {
            let sign = if sign == b'+' { 1 } else { -1 };
            Some((sign, number(i + 1, 2)?, number(i + 4, 2)?))
        }
        _ => return None,
    };
    Some(DateTime {
        date,
        time,
        fraction,
        offset,
    })
}

fn rfc3339_to_unix_ms(value: &Value) -> Result<i64, String> {
    let parsed = match value {
        Value::String(text) => read_date_time(text),
        _ => None,
    };
    let Some(DateTime {
        date: [year, month, day],
        time: [hour, minute, second],
        fraction,
        offset,
    }) = parsed
    else {
        return Err(format!("{} is not an RFC 3339 date-time", show(value)));
    };
    let mut offset_minutes = 0;
    if let Some((sign, hours, minutes)) = offset {
        if hours > 23 || minutes > 59 {
            return Err(format!("{} has an invalid UTC offset", show(value)));
        }
        offset_minutes = sign * (hours * 60 + minutes);
    }
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&month) || !(1..=month_days[month as usize - 1]).contains(&day) {
        return Err(format!("{} is not a valid calendar date", show(value)));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(format!("{} is not a valid time of day", show(value)));
    }
    // Digits after the third are dropped: the floor on the time line.
    let millis = fraction
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0, |n, d| n * 10 + i64::from(d - b'0'));
    let minutes = (days_from_civil(year, month, day) * 24 + hour) * 60 + minute - offset_minutes;
    let ms = (minutes * 60 + second) * 1000 + millis;
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(format!("{} is outside years 0000-9999 UTC", show(value)));
    }
    Ok(ms)
}

fn unix_ms_to_rfc3339(value: &Value) -> Result<String, String> {
    let ms = integer(value)?;
    if !(MIN_MS..=MAX_MS).contains(&ms) {
        return Err(format!("{ms} ms is outside years 0000-9999 UTC"));
    }
    let (year, month, day) = civil_from_days(ms.div_euclid(DAY_MS));
    let rest = ms.rem_euclid(DAY_MS);
    let (hour, minute) = (rest / 3_600_000, rest / 60_000 % 60);
    let (second, milli) = (rest / 1000 % 60, rest % 1000);
    Ok(format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{milli:03}Z"
    ))
}

fn seconds_to_ms(value: &Value) -> Result<i64, String> {
    let x = match value {
        Value::Int(n) => return in_range(i128::from(*n) * 1000),
        Value::Float(x) if x.is_finite() => *x,
        other => return Err(format!("{} is not a number", show(other))),
    };
    if x.abs() > 1e16 {
        // Far outside the range; keeps the exact arithmetic small.
        return Err(format!(
            "{} seconds is outside the I-JSON integer range in ms",
            float_repr(x)
        ));
    }
    if x == 0.0 {
        return Ok(0);
    }
    // x = digits × 10^(point − len): times 1000, rounded half to even.
    let (digits, point) = shortest_digits(x.abs());
    let mantissa: i128 = digits.parse().expect("at most 17 decimal digits");
    let exponent = point - digits.len() as i32 + 3;
    let magnitude = if exponent >= 0 {
        mantissa * 10i128.pow(exponent.unsigned_abs())
    } else if exponent < -30 {
        0 // below 10^-13 ms: rounds to zero
    } else {
        let scale = 10i128.pow(exponent.unsigned_abs());
        let (whole, rest) = (mantissa / scale, mantissa % scale);
        let half = scale / 2;
        whole + i128::from(rest > half || (rest == half && whole % 2 == 1))
    };
    in_range(if x < 0.0 { -magnitude } else { magnitude })
}

fn ms_to_seconds(value: &Value) -> Result<Value, String> {
    let ms = integer(value)?;
    Ok(if ms % 1000 == 0 {
        Value::Int(ms / 1000)
    } else {
        // Both exact as doubles (|ms| <= 2^53): IEEE division rounds correctly.
        Value::Float(ms as f64 / 1000.0)
    })
}

fn string_to_int(value: &Value) -> Result<i64, String> {
    let canonical = |s: &str| {
        let digits = s.strip_prefix('-').unwrap_or(s);
        let well_formed = !digits.is_empty()
            && digits.len() <= 16
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'));
        well_formed && s != "-0"
    };
    match value {
        Value::String(s) if canonical(s) => in_range(s.parse().expect("at most 16 digits")),
        other => Err(format!(
            "{} is not a canonical decimal integer string",
            show(other)
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_round_trips_at_the_edges() {
        for ms in [MIN_MS, MAX_MS, -1, 0, 951_782_400_000] {
            let text = unix_ms_to_rfc3339(&Value::Int(ms)).unwrap();
            assert_eq!(rfc3339_to_unix_ms(&Value::String(text)).unwrap(), ms);
        }
        assert_eq!(days_from_civil(0, 1, 1) * DAY_MS, MIN_MS);
        assert_eq!(days_from_civil(10_000, 1, 1) * DAY_MS - 1, MAX_MS);
    }

    #[test]
    fn shown_values_are_python_json() {
        assert_eq!(
            show(&Value::String("é\u{1F600}\"".into())),
            r#""\u00e9\ud83d\ude00\"""#
        );
        assert_eq!(show(&Value::Float(1e16)), "1e+16");
        let long = Value::String("1".repeat(50));
        assert_eq!(show(&long), format!("\"{}...", "1".repeat(36)));
        let object = Value::Object(vec![(
            "a".into(),
            Value::Array(vec![Value::Null, Value::Bool(true)]),
        )]);
        assert_eq!(show(&object), r#"{"a": [null, true]}"#);
    }

    #[test]
    fn big_integral_doubles_are_named_exactly() {
        let err = integer(&Value::Float(1e21)).unwrap_err();
        assert_eq!(
            err,
            "1000000000000000000000 is outside the I-JSON integer range +-(2**53-1)"
        );
    }
}
