//! DRF-style cursor pagination with opaque, tamper-proof cursors bound to their user and listing.
//!
//! A cursor is `base64url(payload) "." base64url(HMAC-SHA256(key, payload, user, listing))`, so a
//! modified cursor, or one issued to another user or for another listing, is refused with 400.

use axum::http::{HeaderMap, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::domain::error::{Error, FieldErrors, Result};
use crate::domain::ids::UserId;
use crate::domain::pagination::{DEFAULT_PAGE_SIZE, Direction, MAX_PAGE_SIZE, Page, PageRequest};
use crate::http::error::{ApiError, ApiResult};

/// Signs and checks cursors.
#[derive(Clone)]
pub struct CursorCodec {
    /// HMAC-SHA256 already keyed with the cursor key; cloned per use.
    keyed: Hmac<Sha256>,
}

impl std::fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CursorCodec")
    }
}

#[derive(Serialize, Deserialize)]
struct CursorPayload {
    /// Position (exclusive).
    p: String,
    /// `true` when reading backward.
    b: bool,
    /// `true` when the listing was in descending order.
    d: bool,
}

impl CursorCodec {
    /// A codec whose key is derived from `secret` (so it survives restarts and is shared by every
    /// instance that shares the secret).
    pub fn new(secret: &str) -> Result<Self> {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).map_err(Error::internal)?;
        derive.update(b"aivideo pagination cursor v1");
        let key = derive.finalize().into_bytes();
        Ok(Self { keyed: Hmac::<Sha256>::new_from_slice(&key).map_err(Error::internal)? })
    }

    fn mac(&self, payload: &[u8], user: &UserId, listing: &str) -> Hmac<Sha256> {
        let mut mac = self.keyed.clone();
        for part in [payload, user.as_str().as_bytes(), listing.as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac
    }

    /// A cursor for reading `listing` from `position` in `direction`.
    pub fn encode(
        &self,
        user: &UserId,
        listing: &str,
        position: &str,
        direction: Direction,
        descending: bool,
    ) -> String {
        let payload = CursorPayload { p: position.to_owned(), b: direction == Direction::Backward, d: descending };
        let bytes = serde_json::to_vec(&payload).unwrap_or_default();
        let tag = self.mac(&bytes, user, listing).finalize().into_bytes();
        format!("{}.{}", URL_SAFE_NO_PAD.encode(&bytes), URL_SAFE_NO_PAD.encode(tag))
    }

    /// Checks a cursor and returns its position and direction.
    pub fn decode(
        &self,
        user: &UserId,
        listing: &str,
        cursor: &str,
        descending: bool,
    ) -> ApiResult<(String, Direction)> {
        let invalid = || ApiError::InvalidCursor;
        let (payload_b64, tag_b64) = cursor.split_once('.').ok_or_else(invalid)?;
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| invalid())?;
        let tag = URL_SAFE_NO_PAD.decode(tag_b64).map_err(|_| invalid())?;
        self.mac(&payload, user, listing).verify_slice(&tag).map_err(|_| invalid())?;
        let parsed: CursorPayload = serde_json::from_slice(&payload).map_err(|_| invalid())?;
        if parsed.d != descending {
            return Err(ApiError::InvalidCursor);
        }
        Ok((parsed.p, if parsed.b { Direction::Backward } else { Direction::Forward }))
    }
}

/// The query string as name/value pairs.
#[derive(Debug, Clone, Default)]
pub struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// Parses `uri`'s query.
    pub fn from_uri(uri: &Uri) -> Self {
        let pairs = form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()).into_owned().collect();
        Self(pairs)
    }

    /// The last value of `name` (as Django's `QueryDict.get` does), without surrounding white
    /// space (as Django's form fields strip it).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.trim())
    }

    /// Every value of `name`, in order (Django's `QueryDict.getlist`).
    pub fn get_all(&self, name: &str) -> Vec<&str> {
        self.0.iter().filter(|(k, _)| k == name).map(|(_, v)| v.trim()).collect()
    }
}

/// A page size: digits (an optional `+`) naming 1 or more; sizes past any integer count as huge
/// (and are clamped), not as errors.
fn page_size(raw: &str) -> Option<usize> {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = digits.parse::<usize>().unwrap_or(usize::MAX);
    (n >= 1).then_some(n)
}

/// One listing's query: which page, which order.
#[derive(Debug, Clone)]
pub struct Listing {
    /// The page to read.
    pub page: PageRequest,
    /// What the cursor is bound to (e.g. `stories`, `transitions:<id>`).
    pub name: String,
    /// The caller.
    pub user: UserId,
}

impl Listing {
    /// Reads `page_size`, `ordering` and `cursor`, adding their errors to the filters' `errors`
    /// (so a client learns of every bad parameter at once). `orderings` lists the accepted
    /// `ordering` values as (name, descending); the first is the default.
    pub fn parse(
        query: &QueryParams,
        codec: &CursorCodec,
        user: &UserId,
        name: String,
        orderings: &[(&str, bool)],
        mut errors: FieldErrors,
    ) -> ApiResult<(Self, usize)> {
        let limit = match query.get("page_size") {
            None | Some("") => DEFAULT_PAGE_SIZE,
            Some(raw) => match page_size(raw) {
                // DRF clamps to max_page_size rather than refusing.
                Some(n) => n.min(MAX_PAGE_SIZE),
                None => {
                    errors.add("page_size", "A valid integer greater than or equal to 1 is required.");
                    DEFAULT_PAGE_SIZE
                }
            },
        };
        let (ordering_index, descending) = match query.get("ordering") {
            None | Some("") => (0, orderings.first().is_some_and(|(_, d)| *d)),
            Some(raw) => match orderings.iter().position(|(n, _)| *n == raw) {
                Some(i) => (i, orderings[i].1),
                None => {
                    let names: Vec<&str> = orderings.iter().map(|(n, _)| *n).collect();
                    errors.add("ordering", format!("Select one of: {}.", names.join(", ")));
                    (0, false)
                }
            },
        };
        // The cursor is bound to the ordering's name too, so it cannot be replayed under another.
        let bound_name = format!("{name}|{}", orderings.get(ordering_index).map_or("", |(n, _)| *n));
        let mut position = None;
        let mut direction = Direction::Forward;
        let mut cursor_error = None;
        if let Some(cursor) = query.get("cursor").filter(|c| !c.is_empty()) {
            match codec.decode(user, &bound_name, cursor, descending) {
                Ok((p, d)) => {
                    position = Some(p);
                    direction = d;
                }
                Err(e) => cursor_error = Some(e),
            }
        }
        errors.into_result()?;
        // Only once the other parameters are well formed: a cursor this list did not issue is 404.
        if let Some(e) = cursor_error {
            return Err(e);
        }
        let page = PageRequest { position, direction, descending, limit };
        Ok((Listing { page, name: bound_name, user: user.clone() }, ordering_index))
    }

    /// The DRF answer `{"next", "previous", "results"}` with absolute links where the host is known.
    pub fn respond<T>(
        &self,
        page: Page<T>,
        codec: &CursorCodec,
        uri: &Uri,
        headers: &HeaderMap,
        view: impl Fn(T) -> Value,
    ) -> Response {
        axum::Json(self.body(page, codec, uri, headers, view)).into_response()
    }

    /// The DRF body `{"next", "previous", "results"}` with absolute links where the host is known.
    pub fn body<T>(
        &self,
        page: Page<T>,
        codec: &CursorCodec,
        uri: &Uri,
        headers: &HeaderMap,
        view: impl Fn(T) -> Value,
    ) -> Value {
        let link = |position: Option<String>, direction| {
            position.map(|p| {
                let cursor = codec.encode(&self.user, &self.name, &p, direction, self.page.descending);
                page_link(uri, headers, &cursor)
            })
        };
        let next = link(page.next, Direction::Forward);
        let previous = link(page.previous, Direction::Backward);
        let results: Vec<Value> = page.items.into_iter().map(view).collect();
        json!({"next": next, "previous": previous, "results": results})
    }
}

/// The request's URL with `cursor` replaced.
fn page_link(uri: &Uri, headers: &HeaderMap, cursor: &str) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if k != "cursor" {
            query.append_pair(&k, &v);
        }
    }
    query.append_pair("cursor", cursor);
    let path_and_query = format!("{}?{}", uri.path(), query.finish());
    format!("{}{path_and_query}", request_origin(headers).unwrap_or_default())
}

/// `scheme://host` of the request as its client addressed it (the `Host` the host check let in;
/// `X-Forwarded-Proto` from API Gateway), for the absolute links the API writes; `None` without a
/// usable `Host`, when links stay relative.
pub fn request_origin(headers: &HeaderMap) -> Option<String> {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).filter(|h| valid_host(h))?;
    let scheme = headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .filter(|p| *p == "https" || *p == "http")
        .unwrap_or("http");
    Some(format!("{scheme}://{host}"))
}

fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alice() -> UserId {
        UserId::parse("alice").unwrap()
    }

    #[test]
    fn a_cursor_round_trips_for_its_user_and_listing() {
        let codec = CursorCodec::new("secret").unwrap();
        let c = codec.encode(&alice(), "stories", "01J", Direction::Forward, true);
        assert_eq!(codec.decode(&alice(), "stories", &c, true).unwrap(), ("01J".to_owned(), Direction::Forward));
    }

    #[test]
    fn a_cursor_is_refused_for_another_user_listing_or_ordering() {
        let codec = CursorCodec::new("secret").unwrap();
        let c = codec.encode(&alice(), "stories", "01J", Direction::Forward, true);
        assert!(codec.decode(&UserId::parse("bob").unwrap(), "stories", &c, true).is_err());
        assert!(codec.decode(&alice(), "transitions:x", &c, true).is_err());
        assert!(codec.decode(&alice(), "stories", &c, false).is_err());
        assert!(CursorCodec::new("other").unwrap().decode(&alice(), "stories", &c, true).is_err());
    }

    #[test]
    fn a_modified_cursor_is_refused() {
        let codec = CursorCodec::new("secret").unwrap();
        let c = codec.encode(&alice(), "stories", "01J", Direction::Forward, false);
        let (payload, tag) = c.split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode(br#"{"p":"ZZZ","b":false,"d":false}"#);
        assert!(codec.decode(&alice(), "stories", &format!("{forged_payload}.{tag}"), false).is_err());
        assert!(codec.decode(&alice(), "stories", payload, false).is_err());
        assert!(codec.decode(&alice(), "stories", "%%%", false).is_err());
    }

    #[test]
    fn links_keep_the_filters_and_replace_the_cursor() {
        let uri: Uri = "/api/ai-video/stories/?status=DRAFT&cursor=old".parse().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "api.example.com".parse().unwrap());
        headers.insert("x-forwarded-proto", "https".parse().unwrap());
        assert_eq!(
            page_link(&uri, &headers, "new"),
            "https://api.example.com/api/ai-video/stories/?status=DRAFT&cursor=new"
        );
    }
}
