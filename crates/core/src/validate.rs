//! JSON Schema (draft 2020-12) validation of values, `format` asserted.
//!
//! The controller validates every write with jsonschema-rs; a worker validates
//! every value it applies (docs/contracts.md). Both must accept and refuse the
//! same values, or a worker's NACKs would disagree with write-time validation,
//! so this module runs the same engine (the `jsonschema` crate at the version
//! under the controller's jsonschema-rs) with the same options, and reports
//! violations the way `conformance/validate/vectors.json` fixes them: each as
//! (JSON Pointer into the value, failing keyword), sorted by path then keyword.
//!
//! A schema is self-contained: `$ref` to anything but the schema itself (or
//! the draft's meta-schemas) is refused at [`Schema::compile`], since the core
//! reads no files and opens no sockets.

use std::fmt;

use jsonschema::error::ValidationErrorKind;
use jsonschema::paths::LocationSegment;

use crate::value::Value;

/// A compiled schema: compile once, validate many values.
pub struct Schema {
    validator: jsonschema::Validator,
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Schema").finish_non_exhaustive()
    }
}

/// One way a value fails its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The JSON Pointer of the offending member in the value (`""`: the root).
    pub path: String,
    /// The schema keyword that failed (`"false"` for a `false` subschema).
    pub keyword: String,
    /// What went wrong, in prose (for people; not compared across languages).
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(root)"
        } else {
            &self.path
        };
        write!(f, "{path}: {} ({})", self.message, self.keyword)
    }
}

/// A schema that cannot be compiled: not a valid 2020-12 schema, a bad
/// regular expression, or a reference that cannot be resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SchemaError {
    /// Why, as the engine says it.
    pub reason: String,
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a usable JSON Schema (draft 2020-12): {}", self.reason)
    }
}

impl std::error::Error for SchemaError {}

impl Schema {
    /// Compiles `schema` (a JSON Schema document; `true`/`false` included).
    pub fn compile(schema: &Value) -> Result<Schema, SchemaError> {
        let validator = jsonschema::draft202012::options()
            .should_validate_formats(true)
            .build(&to_json(schema))
            .map_err(|e| SchemaError {
                reason: e.to_string(),
            })?;
        Ok(Schema { validator })
    }

    /// Whether `value` conforms (faster than [`Schema::violations`]).
    pub fn is_valid(&self, value: &Value) -> bool {
        self.validator.is_valid(&to_json(value))
    }

    /// Every violation of `value`, sorted by path then keyword; empty when it
    /// conforms. A `required` that misses several members is reported once
    /// per member.
    pub fn violations(&self, value: &Value) -> Vec<Violation> {
        let instance = to_json(value);
        let mut found: Vec<Violation> = self
            .validator
            .iter_errors(&instance)
            .map(|error| {
                let keyword = if matches!(error.kind(), ValidationErrorKind::FalseSchema) {
                    // The schema path of a `false` subschema ends at the member's name.
                    "false".to_owned()
                } else {
                    match error.schema_path().segments().last() {
                        Some(LocationSegment::Property(name)) => name.into_owned(),
                        Some(LocationSegment::Index(index)) => index.to_string(),
                        None => String::new(),
                    }
                };
                Violation {
                    path: error.instance_path().as_str().to_owned(),
                    keyword,
                    message: error.to_string(),
                }
            })
            .collect();
        found.sort_by(|a, b| (&a.path, &a.keyword).cmp(&(&b.path, &b.keyword)));
        found
    }
}

/// The engine's form of a value. Object members keep their order; integers
/// stay integers (I-JSON integers fit an i64), other numbers are doubles.
fn to_json(value: &Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(*b),
        Value::Int(n) => serde_json::Value::from(*n),
        // A core Float is finite (the parser refuses the rest), so from_f64 succeeds.
        Value::Float(x) => {
            serde_json::Number::from_f64(*x).map_or(serde_json::Value::Null, serde_json::Value::Number)
        }
        Value::String(s) => serde_json::Value::String(s.clone()),
        Value::Array(items) => serde_json::Value::Array(items.iter().map(to_json).collect()),
        Value::Object(members) => {
            serde_json::Value::Object(members.iter().map(|(k, v)| (k.clone(), to_json(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::parse;
    use proptest::prelude::*;

    fn schema(text: &str) -> Schema {
        Schema::compile(&parse(text.as_bytes()).unwrap()).unwrap()
    }

    fn found(schema: &Schema, text: &str) -> Vec<(String, String)> {
        schema
            .violations(&parse(text.as_bytes()).unwrap())
            .into_iter()
            .map(|v| (v.path, v.keyword))
            .collect()
    }

    #[test]
    fn violations_name_path_and_keyword_in_order() {
        let s = schema(
            r#"{"type":"object","properties":{"a":{"type":"integer"},"b":{"minLength":2}},"required":["c","d"]}"#,
        );
        assert_eq!(
            found(&s, r#"{"b":"x","a":"no"}"#),
            [
                ("".into(), "required".into()),
                ("".into(), "required".into()),
                ("/a".into(), "type".into()),
                ("/b".into(), "minLength".into())
            ]
        );
        assert!(s.is_valid(&parse(br#"{"a":1,"c":0,"d":0}"#).unwrap()));
    }

    #[test]
    fn formats_are_asserted_and_false_is_its_own_keyword() {
        let s = schema(r#"{"properties":{"at":{"format":"date-time"},"no":false}}"#);
        assert_eq!(
            found(&s, r#"{"at":"yesterday","no":1}"#),
            [("/at".into(), "format".into()), ("/no".into(), "false".into())]
        );
    }

    #[test]
    fn an_unusable_schema_is_refused_with_the_reason() {
        let bad = Schema::compile(&parse(br#"{"type":"no-such-type"}"#).unwrap()).unwrap_err();
        assert!(bad.to_string().contains("no-such-type"), "{bad}");
        let remote = Schema::compile(&parse(br#"{"$ref":"https://example.com/s.json"}"#).unwrap());
        assert!(remote.is_err(), "a remote reference is not resolved");
    }

    #[test]
    fn internationalized_formats_are_asserted_as_the_controller_does() {
        // jsonschema-rs under the controller refuses these: the `idna` feature.
        let s = schema(r#"{"properties":{"host":{"format":"idn-hostname"},"mail":{"format":"idn-email"}}}"#);
        assert_eq!(
            found(&s, r#"{"host":"-bad-","mail":"not an email"}"#),
            [
                ("/host".into(), "format".into()),
                ("/mail".into(), "format".into())
            ]
        );
        let good = r#"{"host":"bücher.example","mail":"jörg@bücher.example"}"#;
        assert!(s.is_valid(&parse(good.as_bytes()).unwrap()));
    }

    #[test]
    fn the_draft_meta_schema_is_known_without_fetching_it() {
        let s = schema(r#"{"$schema":"https://json-schema.org/draft/2020-12/schema","type":"integer"}"#);
        assert_eq!(found(&s, "1.5"), [("".into(), "type".into())]);
    }

    /// Whether the JSON Pointer `path` names a location in `value`.
    fn resolves(value: &Value, path: &str) -> bool {
        let mut at = value;
        for token in path.split('/').skip(1) {
            let token = token.replace("~1", "/").replace("~0", "~");
            let next = match at {
                Value::Object(members) => members.iter().find(|(k, _)| *k == token).map(|(_, v)| v),
                Value::Array(items) => token.parse::<usize>().ok().and_then(|i| items.get(i)),
                _ => None,
            };
            match next {
                Some(next) => at = next,
                None => return false,
            }
        }
        true
    }

    fn json() -> impl Strategy<Value = Value> {
        let scalar = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..20).prop_map(Value::Int),
            (-2.0f64..2.0).prop_map(Value::Float),
            "[a-c/~@.0-9]{0,4}".prop_map(Value::String),
        ];
        scalar.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-c/~]{1,2}", inner, 0..4)
                    .prop_map(|members| Value::Object(members.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn violations_are_sorted_point_into_the_value_and_agree_with_is_valid(value in json()) {
            let s = schema(r#"{"type":"object","required":["a"],"additionalProperties":{"type":["integer","array"]},
                "properties":{"a":{"type":"string","format":"email"},"b":{"items":{"minimum":0}},"a/~":false}}"#);
            let found = s.violations(&value);
            prop_assert_eq!(s.is_valid(&value), found.is_empty());
            prop_assert!(found.windows(2).all(|w| (&w[0].path, &w[0].keyword) <= (&w[1].path, &w[1].keyword)));
            for v in &found {
                prop_assert!(resolves(&value, &v.path), "{} is not in the value", v.path);
                prop_assert!(!v.keyword.is_empty() && !v.message.is_empty());
            }
        }
    }

    #[test]
    fn pointers_escape_member_names() {
        let s = schema(r#"{"properties":{"a/b~c":{"type":"string"}}}"#);
        assert_eq!(found(&s, r#"{"a/b~c":1}"#), [("/a~1b~0c".into(), "type".into())]);
    }
}
