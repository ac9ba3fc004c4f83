//! Reading request bodies: one extractor turns every way a body can be wrong into the API's error
//! shape (413 over 1 MiB, 415 for non-JSON, 400 `parse_error` for broken JSON, 400 naming the field
//! for wrong types), and `Fields` reads typed values field by field, collecting every error as DRF
//! does.

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, header};
use serde_json::{Map, Value};

use crate::domain::error::{Error, FieldErrors};
use crate::http::error::{ApiError, ApiResult};

/// Largest body the API accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Reads a body of at most `MAX_BODY_BYTES`.
pub async fn read_body(headers: &HeaderMap, body: Body) -> ApiResult<Bytes> {
    let declared =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > MAX_BODY_BYTES as u64) {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|e| {
        // Over the limit is the client's doing; a broken connection is nobody's fault worth a 500.
        let source = std::error::Error::source(&e).map(ToString::to_string).unwrap_or_default();
        if source.contains("length limit") || e.to_string().contains("length limit") {
            ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES }
        } else {
            ApiError::MalformedJson(format!("could not read the body: {e}"))
        }
    })
}

fn check_content_type(headers: &HeaderMap) -> ApiResult<()> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(());
    };
    let text = value.to_str().unwrap_or("").to_ascii_lowercase();
    let media = text.split(';').next().unwrap_or("").trim().to_owned();
    if media == "application/json" || (media.starts_with("application/") && media.ends_with("+json")) {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(media.chars().take(100).collect()))
    }
}

/// Parses a JSON body that must be an object; an empty body counts as `{}`.
pub fn parse_object(bytes: &[u8]) -> ApiResult<Map<String, Value>> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(Error::field(
            "non_field_errors",
            format!("Invalid data. Expected a dictionary, but got {}.", json_kind(&other)),
        )
        .into()),
        Err(e) => Err(ApiError::MalformedJson(e.to_string())),
    }
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// A request body that is a JSON object.
#[derive(Debug, Clone, Default)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> ApiResult<Self> {
        let JsonBody(bytes) = JsonBody::from_request(req, state).await?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// A request body checked for size and media type, not yet parsed (for bodies that may be a list).
#[derive(Debug, Clone, Default)]
pub struct JsonBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> ApiResult<Self> {
        let (parts, body) = req.into_parts();
        let bytes = read_body(&parts.headers, body).await?;
        if !bytes.iter().all(u8::is_ascii_whitespace) {
            check_content_type(&parts.headers)?;
        }
        Ok(JsonBody(bytes))
    }
}

/// Parses a JSON body of any shape (an empty body is `{}`).
pub fn parse_value(bytes: &[u8]) -> ApiResult<Value> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(bytes).map_err(|e| ApiError::MalformedJson(e.to_string()))
}

/// Reads typed fields out of a JSON object, collecting DRF-style messages.
#[derive(Debug)]
pub struct Fields<'a> {
    object: &'a Map<String, Value>,
    errors: FieldErrors,
}

/// Turns one JSON value into a typed value, or the message for its field.
pub type Parse<T> = fn(&Value) -> std::result::Result<T, String>;

impl<'a> Fields<'a> {
    /// Starts reading `object`.
    pub fn new(object: &'a Map<String, Value>) -> Self {
        Self { object, errors: FieldErrors::new() }
    }

    fn parse<T>(&mut self, name: &str, value: &Value, parse: Parse<T>) -> Option<T> {
        match parse(value) {
            Ok(v) => Some(v),
            Err(message) => {
                self.errors.add(name, message);
                None
            }
        }
    }

    /// A field that must be present and not null.
    pub fn required<T>(&mut self, name: &str, parse: Parse<T>) -> Option<T> {
        match self.object.get(name) {
            None => {
                self.errors.add(name, "This field is required.");
                None
            }
            Some(Value::Null) => {
                self.errors.add(name, "This field may not be null.");
                None
            }
            Some(value) => self.parse(name, value, parse),
        }
    }

    /// A field that may be absent, but not null.
    pub fn optional<T>(&mut self, name: &str, parse: Parse<T>) -> Option<T> {
        match self.object.get(name) {
            None => None,
            Some(Value::Null) => {
                self.errors.add(name, "This field may not be null.");
                None
            }
            Some(value) => self.parse(name, value, parse),
        }
    }

    /// A field that may be absent (`None`) or null (`Some(None)`).
    pub fn nullable<T>(&mut self, name: &str, parse: Parse<T>) -> Option<Option<T>> {
        match self.object.get(name) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(value) => self.parse(name, value, parse).map(Some),
        }
    }

    /// Records an error found by the caller.
    pub fn error(&mut self, name: &str, message: impl Into<String>) {
        self.errors.add(name, message);
    }

    /// `Ok` when every field read was valid.
    pub fn finish(self) -> crate::domain::error::Result<()> {
        self.errors.into_result()
    }
}

/// A JSON string, as DRF's `CharField` accepts it (numbers are not strings here).
pub fn string(value: &Value) -> std::result::Result<&str, String> {
    value.as_str().ok_or_else(|| "Not a valid string.".to_owned())
}

/// A JSON integer (an integral float such as `5.0` counts, as JSON Schema counts it). Strings of
/// digits are not integers: the API's description says which fields are numbers, and the parser
/// accepts exactly that.
pub fn integer(value: &Value) -> std::result::Result<i64, String> {
    let invalid = || "A valid integer is required.".to_owned();
    match value {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && f.abs() < 1e15).map(|f| f as i64))
            .ok_or_else(invalid),
        _ => Err(invalid()),
    }
}

/// A JSON boolean.
pub fn boolean(value: &Value) -> std::result::Result<bool, String> {
    value.as_bool().ok_or_else(|| "Must be a valid boolean.".to_owned())
}

/// A JSON number.
pub fn number(value: &Value) -> std::result::Result<f64, String> {
    match value {
        Value::Number(n) => {
            n.as_f64().filter(|f| f.is_finite()).ok_or_else(|| "A valid number is required.".to_owned())
        }
        _ => Err("A valid number is required.".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_body_is_an_empty_object() {
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b"  \n").unwrap().is_empty());
    }

    #[test]
    fn broken_json_is_a_parse_error_and_a_list_is_refused() {
        assert!(matches!(parse_object(b"{\"a\":"), Err(ApiError::MalformedJson(_))));
        assert!(matches!(parse_object(b"[1]"), Err(ApiError::Domain(Error::Validation(_)))));
        assert!(matches!(parse_object(b"\"x\""), Err(ApiError::Domain(Error::Validation(_)))));
    }

    #[test]
    fn fields_collect_every_error() {
        let object = json!({"a": null, "b": "x", "c": true}).as_object().unwrap().clone();
        let mut fields = Fields::new(&object);
        assert!(fields.required("a", integer).is_none());
        assert!(fields.required("b", integer).is_none());
        assert!(fields.optional("c", |v| string(v).map(str::to_owned)).is_none());
        assert!(fields.required("missing", integer).is_none());
        let Err(Error::Validation(errors)) = fields.finish() else { panic!("expected errors") };
        assert_eq!(errors.0.len(), 4);
        assert_eq!(errors.0["missing"], vec!["This field is required."]);
        assert_eq!(errors.0["a"], vec!["This field may not be null."]);
    }

    #[test]
    fn integers_are_json_integers() {
        assert_eq!(integer(&json!(5)), Ok(5));
        assert_eq!(integer(&json!(5.0)), Ok(5));
        assert!(integer(&json!("5")).is_err());
        assert!(integer(&json!(5.5)).is_err());
        assert!(integer(&json!("five")).is_err());
        assert!(integer(&json!(1e300)).is_err());
        assert!(integer(&json!([5])).is_err());
    }
}
