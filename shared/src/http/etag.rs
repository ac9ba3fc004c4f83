//! Optimistic concurrency: `ETag` carries an object's version, `If-Match` names the version a
//! write expects (412 when it is no longer current).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::domain::error::{Error, Result};

/// The version a write expects, from `If-Match` (`None`: no header, or `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        let Some(value) = parts.headers.get(header::IF_MATCH) else {
            return Ok(IfMatch(None));
        };
        parse_if_match(value.to_str().unwrap_or("")).map(IfMatch)
    }
}

/// Parses `"3"`, `W/"3"`, `3` or `*`.
pub fn parse_if_match(raw: &str) -> Result<Option<u64>> {
    let text = raw.trim();
    if text == "*" {
        return Ok(None);
    }
    let bare = text.strip_prefix("W/").unwrap_or(text).trim_matches('"');
    if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::field("If-Match", "Expected the ETag of the object, for example \"3\"."));
    }
    // A version past u64 names none that exists: 412, not a malformed header.
    Ok(Some(bare.parse::<u64>().unwrap_or(u64::MAX)))
}

/// The `ETag` of an object at `version`.
pub fn etag(version: u64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{version}\"")).unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
}

/// A response with the object's `ETag`.
pub fn with_etag(version: u64, response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response.headers_mut().insert(header::ETAG, etag(version));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_match_accepts_strong_weak_bare_and_any() {
        assert_eq!(parse_if_match("\"3\"").unwrap(), Some(3));
        assert_eq!(parse_if_match("W/\"3\"").unwrap(), Some(3));
        assert_eq!(parse_if_match("3").unwrap(), Some(3));
        assert_eq!(parse_if_match("*").unwrap(), None);
        assert!(parse_if_match("\"abc\"").is_err());
        assert!(parse_if_match("").is_err());
    }
}
