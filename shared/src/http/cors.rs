//! Cross-origin use by browsers (SPEC §8.4): a page on an allowed origin (a frontend's dev server,
//! the deployed app, the console served from elsewhere) may call the API; any other origin gets no
//! `Access-Control-Allow-*` header, so the browser keeps the answer from it. Bearer tokens only,
//! never credentials mode: the API sets no cookie a browser could send on its own.
//!
//! On AWS, API Gateway answers preflights itself from the template's `CorsConfiguration`; this
//! layer is what `aivideo serve` (and a function run outside API Gateway) does.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// What a preflight may ask for. Kept here once; the template's `CorsConfiguration` lists the same
/// (a test compares them).
pub const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
/// The request headers the API reads.
pub const ALLOW_HEADERS: &str = "Authorization, Content-Type, If-Match, Idempotency-Key";
/// The answer headers a page needs: the version for `If-Match`, where a created object lives,
/// whether a keyed answer is a replay, and when to come back.
pub const EXPOSE_HEADERS: &str = "ETag, Location, Idempotent-Replayed, Retry-After";
/// How long a browser may reuse a preflight's answer (Chromium caps it at 2 h).
pub const MAX_AGE_SECONDS: u32 = 600;

/// The origins allowed to call the API from a browser, exactly as configured.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsOrigins {
    origins: Vec<String>,
}

impl CorsOrigins {
    /// `origins`, each already checked by [`parse_origin`].
    pub fn new(origins: Vec<String>) -> Self {
        Self { origins }
    }

    /// Whether no origin is allowed (the default: same-origin use only).
    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// The allowed origin a request names in its `Origin` header, if it names one.
    fn allowed<'a>(&self, headers: &'a HeaderMap) -> Option<&'a HeaderValue> {
        let origin = headers.get(header::ORIGIN)?;
        let text = origin.to_str().ok()?;
        self.origins.iter().any(|o| o == text).then_some(origin)
    }
}

/// An origin as a browser sends it: `scheme://host[:port]`, lower case, no path, query or
/// trailing slash (`https://app.example.com`, `http://127.0.0.1:5173`). `None` for anything else,
/// so a typo in the setting is refused at start-up instead of silently matching nothing.
pub fn parse_origin(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let (scheme, rest) = raw.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return None;
    }
    let valid = rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:[]".contains(&b));
    let url = reqwest::Url::parse(raw).ok()?;
    let canonical = url.origin().ascii_serialization();
    (valid && canonical == raw).then(|| raw.to_owned())
}

/// The layer: answers an allowed origin's preflight with 204, adds the CORS headers to every other
/// answer to an allowed origin, and marks every answer `Vary: Origin` (it depends on it).
pub async fn cors(State(origins): State<Arc<CorsOrigins>>, request: Request, next: Next) -> Response {
    if origins.is_empty() {
        return next.run(request).await;
    }
    let allowed = origins.allowed(request.headers()).cloned();
    let preflight =
        request.method() == Method::OPTIONS && request.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    let mut response = match (&allowed, preflight) {
        (Some(_), true) => {
            let mut answer = StatusCode::NO_CONTENT.into_response();
            let headers = answer.headers_mut();
            headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(ALLOW_METHODS));
            headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static(ALLOW_HEADERS));
            headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(MAX_AGE_SECONDS));
            answer
        }
        _ => next.run(request).await,
    };
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if !preflight {
            headers.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, HeaderValue::from_static(EXPOSE_HEADERS));
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::parse_origin;

    #[test]
    fn origins_are_taken_exactly_as_browsers_send_them() {
        for good in ["http://127.0.0.1:5173", "https://app.example.com", "http://localhost:3000", "http://[::1]:8080"] {
            assert_eq!(parse_origin(good).as_deref(), Some(good), "{good}");
        }
        for bad in [
            "app.example.com",
            "https://app.example.com/",
            "https://app.example.com/path",
            "https://App.example.com",
            "ftp://example.com",
            "https://example.com:443",
            "*",
            "null",
            "https://",
            "https://a.com?x=1",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad}");
        }
    }
}
