//! Typed request bodies: a JSON object read into a struct by serde, where a field that does not
//! fit answers 400 `invalid_request_error` whose message and `param` name it. The `/key/*` and
//! `/v1/rag/*` bodies are read this way (the HTTP layer's `Typed` extractor calls [`read`]);
//! LLM bodies stay JSON maps ([`super::fields`]), since their unknown fields pass through to the
//! provider.
//!
//! Serde knows where a field is (`documents[2].text`, through `serde_path_to_error`); the
//! field's deserializer knows what is wrong with it. A deserializer that makes its error with
//! [`field_error`] gets its message written after the field's path; any other message is kept
//! as it is. A request type can read its fields in the order it declares them ([`in_order`]),
//! so that a body with several wrong fields always gets the error of the same one, and can word
//! its errors its own way ([`RequestBody::rejection`]).

use std::fmt::Display;

use serde::de::{self, DeserializeOwned, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::{Map, Value};
use serde_path_to_error::{Path, Segment};

use crate::error::ApiError;

/// A request body read by [`read`].
pub trait RequestBody: DeserializeOwned {
    /// Readies the body before it is read (e.g. [`in_order`]); by default nothing.
    fn prepare(_body: &mut Map<String, Value>) {}

    /// The 400 for a body that did not read; by default [`BodyError::into_api_error`].
    fn rejection(error: BodyError, _body: &Map<String, Value>) -> ApiError {
        error.into_api_error()
    }
}

/// Reads a JSON object as `T`.
pub fn read<T: RequestBody>(mut body: Map<String, Value>) -> Result<T, ApiError> {
    T::prepare(&mut body);
    serde_path_to_error::deserialize(&body).map_err(|error| {
        let path = error.path().clone();
        let message = error.into_inner().to_string();
        T::rejection(BodyError { path, message }, &body)
    })
}

/// Marks a message to be written after the path of its field.
const AFTER_PATH: char = '\u{1}';

/// The error of a field deserializer about its own field: `field_error("must be a string.")`
/// reads `'query' must be a string.` for `query` and `'documents[2].text' must be a string.`
/// for the text of a list's third document.
pub fn field_error<E: de::Error>(rest: impl Display) -> E {
    E::custom(format_args!("{AFTER_PATH}{rest}"))
}

/// Why a body did not read: where, and serde's (or the field deserializer's) message.
#[derive(Debug)]
pub struct BodyError {
    path: Path,
    message: String,
}

impl BodyError {
    /// The message as serde gave it (for [`field_error`]s, without the field's path).
    pub fn message(&self) -> &str {
        self.message
            .strip_prefix(AFTER_PATH)
            .unwrap_or(&self.message)
    }

    /// The top-level field at fault, if the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self.path.iter().next() {
            Some(Segment::Map { key }) => Some(key),
            _ => None,
        }
    }

    /// 400 `invalid_request_error`: the message ([`field_error`]s after the quoted path of
    /// their field), and as `param` the field's path, where an element of a list names the list
    /// (`ids`, not `ids[3]`), or `body` when the error is about no field.
    pub fn into_api_error(self) -> ApiError {
        let mut param = String::new();
        let mut segments: Vec<&Segment> = self.path.iter().collect();
        while matches!(segments.last(), Some(Segment::Seq { .. })) {
            segments.pop();
        }
        for segment in segments {
            match segment {
                Segment::Seq { index } => param.push_str(&format!("[{index}]")),
                other => {
                    if !param.is_empty() {
                        param.push('.');
                    }
                    param.push_str(&other.to_string());
                }
            }
        }
        let message = match self.message.strip_prefix(AFTER_PATH) {
            Some(rest) => format!("'{}' {rest}", self.path),
            None => self.message,
        };
        if param.is_empty() {
            param.push_str("body");
        }
        ApiError::invalid(message, param)
    }
}

/// Puts `fields` first in `body`, in this order, an absent field as `null`; the rest follows.
/// Serde reads a struct's fields in the order the body has them: after this, a body with
/// several wrong fields gets the error of the first in `fields`, and a deserializer for a
/// required field sees its absence as a `null` it can name. The struct's fields must read
/// `null` as absent (an `Option`, or a deserializer that does).
pub fn in_order(body: &mut Map<String, Value>, fields: &[&str]) {
    let mut rest = std::mem::take(body);
    for field in fields {
        let value = rest.remove(*field).unwrap_or(Value::Null);
        body.insert((*field).to_string(), value);
    }
    body.extend(rest);
}

/// The fields a struct deriving `Deserialize` declares, in declaration order (serde's own list,
/// with any renames), for [`in_order`]; empty for anything but such a struct.
pub fn declared_fields<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut fields: &'static [&'static str] = &[];
    // Always an error: the probe only records what the struct asks for.
    let _ = T::deserialize(FieldsProbe(&mut fields));
    fields
}

/// A deserializer that records the fields a derived struct asks it for, and gives nothing.
struct FieldsProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> de::Deserializer<'de> for FieldsProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

/// A boolean query parameter as clients write it: `true`/`false` in any case (Python's
/// `True`), or `1`/`0`. For `#[serde(default, deserialize_with = "query_bool")]` on an
/// `Option<bool>`.
pub fn query_bool<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<bool>, D::Error> {
    let text: Option<String> = serde::Deserialize::deserialize(deserializer)?;
    match text.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.eq_ignore_ascii_case("true") || t == "1" => Ok(Some(true)),
        Some(t) if t.eq_ignore_ascii_case("false") || t == "0" => Ok(Some(false)),
        Some(t) => Err(de::Error::custom(format!(
            "expected true or false, got '{t}'"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Deserializer};
    use serde_json::json;

    use super::*;

    fn short<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        match Value::deserialize(d)? {
            Value::Null => Ok(None),
            Value::String(s) if s.len() < 4 => Ok(Some(s)),
            _ => Err(field_error("must be a short string.")),
        }
    }

    #[derive(Debug, Deserialize)]
    struct Item {
        #[serde(default, deserialize_with = "short")]
        name: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    struct Body {
        #[serde(default, deserialize_with = "short")]
        first: Option<String>,
        #[serde(default)]
        items: Option<Vec<Item>>,
        #[serde(default)]
        count: Option<u32>,
    }

    impl RequestBody for Body {
        fn prepare(body: &mut Map<String, Value>) {
            in_order(body, declared_fields::<Self>());
        }
    }

    fn object(body: Value) -> Map<String, Value> {
        let Value::Object(map) = body else {
            panic!("not an object")
        };
        map
    }

    fn error(body: Value) -> ApiError {
        read::<Body>(object(body)).unwrap_err()
    }

    #[test]
    fn a_body_that_fits_reads() {
        let body: Body = read(object(
            json!({"items": [{"name": "a"}], "count": 2, "other": true}),
        ))
        .unwrap();
        assert_eq!(body.first, None);
        let items = body.items.unwrap();
        assert_eq!(items[0].name.as_deref(), Some("a"));
        assert_eq!(body.count, Some(2));
    }

    #[test]
    fn errors_name_their_field() {
        let e = error(json!({"first": "toolong"}));
        assert_eq!(e.message, "'first' must be a short string.");
        assert_eq!(e.param.as_deref(), Some("first"));
        let e = error(json!({"items": [{}, {"name": "toolong"}]}));
        assert_eq!(e.message, "'items[1].name' must be a short string.");
        assert_eq!(e.param.as_deref(), Some("items[1].name"));
        // serde's own messages are kept; an element of a list names the list.
        let e = error(json!({"items": [1]}));
        assert_eq!(e.param.as_deref(), Some("items"));
        assert!(e.message.starts_with("invalid type: integer `1`"), "{e}");
        let e = error(json!({"count": -1}));
        assert_eq!(e.param.as_deref(), Some("count"));
    }

    #[test]
    fn fields_are_read_in_declaration_order() {
        assert_eq!(declared_fields::<Body>(), ["first", "items", "count"]);
        assert!(declared_fields::<u32>().is_empty());
        let e = error(json!({"count": "x", "first": "toolong"}));
        assert_eq!(e.param.as_deref(), Some("first"));
        let mut body = Map::new();
        body.insert("other".into(), json!(1));
        body.insert("count".into(), json!(2));
        in_order(&mut body, &["first", "count"]);
        assert_eq!(
            Value::Object(body).to_string(),
            r#"{"first":null,"count":2,"other":1}"#
        );
    }
}
