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
        // Not visible ASCII (obs-text, controls) is not an entity-tag list: 400, never "empty".
        let text = value
            .to_str()
            .map_err(|_| Error::field("If-Match", "Expected a list of entity tags, for example \"3\", or *."))?;
        parse_if_match(text).map(IfMatch)
    }
}

/// A version no object ever has: what a well-formed `If-Match` that names no current version asks
/// for, so the store's conditional write refuses it with 412.
const NO_VERSION: u64 = u64::MAX;

/// One entity tag of an `If-Match` list.
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a str,
}

/// Parses `1#entity-tag` (RFC 9110 §8.8.3): `"3"`, `W/"3"`, `"a", "b"`; `None` when the text is
/// not such a list at all.
fn entity_tags(text: &str) -> Option<Vec<EntityTag<'_>>> {
    let mut tags = Vec::new();
    let mut rest = text;
    loop {
        let (weak, after) = match rest.strip_prefix("W/") {
            Some(after) => (true, after),
            None => (false, rest),
        };
        let body = after.strip_prefix('"')?;
        let end = body.find('"')?;
        let opaque = &body[..end];
        // etagc = %x21 / %x23-7E (no quote, no space, no control).
        if !opaque.bytes().all(|b| b == 0x21 || (0x23..=0x7e).contains(&b)) {
            return None;
        }
        tags.push(EntityTag { weak, opaque });
        // Between tags: a comma with optional whitespace around it; nothing else.
        rest = body[end + 1..].trim_start_matches([' ', '\t']);
        if rest.is_empty() {
            return Some(tags);
        }
        rest = rest.strip_prefix(',')?.trim_start_matches([' ', '\t']);
    }
}

/// What `If-Match` asks for (RFC 9110 §13.1.1): `None` for `*` (any existing object), else the
/// version the write expects. A strong tag `"3"` names version 3; any other well-formed tag
/// (`"stale-value"`, a weak `W/"3"`, which never matches for `If-Match`) names no version, so the
/// write answers 412; only a header that is not an entity-tag list at all is 400.
pub fn parse_if_match(raw: &str) -> Result<Option<u64>> {
    let text = raw.trim();
    // `*` matches any existing object; an empty list (`#entity-tag` allows none) asks for
    // nothing, as Django reads it.
    if text == "*" || text.is_empty() {
        return Ok(None);
    }
    let tags = entity_tags(text)
        .ok_or_else(|| Error::field("If-Match", "Expected a list of entity tags, for example \"3\", or *."))?;
    let version = |tag: &EntityTag<'_>| {
        (!tag.weak && !tag.opaque.is_empty() && tag.opaque.bytes().all(|b| b.is_ascii_digit()))
            // A version past u64 names none that exists: 412, not a malformed header.
            .then(|| tag.opaque.parse::<u64>().unwrap_or(NO_VERSION))
    };
    // One expected version reaches the store's conditional write: of several version tags the
    // newest is taken. That can only err towards 412 (never a lost update); clients send one.
    Ok(Some(tags.iter().filter_map(version).max().unwrap_or(NO_VERSION)))
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
    fn a_strong_tag_names_its_version_and_star_matches_any() {
        assert_eq!(parse_if_match("\"3\"").unwrap(), Some(3));
        assert_eq!(parse_if_match(" \"3\" ").unwrap(), Some(3));
        assert_eq!(parse_if_match("*").unwrap(), None);
        assert_eq!(parse_if_match("\"2\", \"5\"").unwrap(), Some(5));
    }

    #[test]
    fn well_formed_tags_that_name_no_version_match_nothing_so_the_write_is_412() {
        for tag in ["\"stale-value\"", "W/\"3\"", "\"\"", "\"3a\"", "W/\"1\", \"x\"", "\"99999999999999999999999\""] {
            assert_eq!(parse_if_match(tag).unwrap(), Some(NO_VERSION), "{tag}");
        }
    }

    #[test]
    fn only_a_header_that_is_no_entity_tag_list_is_400() {
        assert_eq!(parse_if_match("").unwrap(), None, "an empty list asks for nothing, as Django reads it");
        assert_eq!(parse_if_match("  ").unwrap(), None);
        for garbage in ["3", "yesterday", "\"3", "\"3\" x", "W/3", "\"a b\"", "**", "\"3\";\"4\"", ",\"3\"", "\"3\","] {
            assert!(parse_if_match(garbage).is_err(), "{garbage:?}");
        }
    }
}
