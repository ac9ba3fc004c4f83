//! `ALLOWED_HOSTS`, as Django has it (SPEC §8.1): a request whose `Host` the operator did not allow
//! is refused with 400 `disallowed_host` before anything else, so no link the API writes (`next`,
//! `previous`) can name a host a client made up.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::http::error::ApiError;

/// The hosts requests may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHosts {
    /// Lower-case patterns: an exact host, `.example.com` (the domain and its subdomains) or `*`.
    patterns: Vec<String>,
}

impl AllowedHosts {
    /// `configured` (`AIVIDEO_ALLOWED_HOSTS`) plus what is always local: the bind address,
    /// `localhost`, `127.0.0.1` and `[::1]`.
    pub fn new(configured: &[String], bind: SocketAddr) -> Self {
        let bind_host = match bind {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        let mut patterns: Vec<String> = ["localhost", "127.0.0.1", "[::1]"].iter().map(|h| (*h).to_owned()).collect();
        patterns.push(bind_host);
        patterns.extend(configured.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()));
        Self { patterns }
    }

    /// Whether `host` (a `Host` header's value, with or without a port) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        self.patterns.iter().any(|pattern| {
            pattern == "*"
                || *pattern == name
                || pattern.strip_prefix('.').is_some_and(|domain| {
                    name == domain || name.strip_suffix(pattern.as_str()).is_some_and(|sub| !sub.is_empty())
                })
        })
    }
}

/// The host part of a `Host` value, lower case, without its port; `None` when it is no host at
/// all (Django's `split_domain_port` with its validity check).
fn host_name(host: &str) -> Option<String> {
    let host = host.trim().to_ascii_lowercase();
    let name = if host.starts_with('[') {
        let end = host.find(']')?;
        let (name, rest) = host.split_at(end + 1);
        if !(rest.is_empty() || rest.strip_prefix(':').is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))) {
            return None;
        }
        name.to_owned()
    } else {
        let (name, port) = host.rsplit_once(':').unwrap_or((&host, ""));
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        name.trim_end_matches('.').to_owned()
    };
    let valid = !name.is_empty()
        && name.len() <= 255
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'[' | b']' | b':'));
    valid.then_some(name)
}

/// The domain API Gateway served the request on (allowed: it is the operator's own).
fn api_gateway_domain(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match lambda_http::RequestExt::request_context_ref(request)? {
        RequestContext::ApiGatewayV2(ctx) => ctx.domain_name.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.domain_name.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Middleware: 400 `disallowed_host` unless the request's `Host` is allowed (or is the domain API
/// Gateway served it on). A request without `Host` (HTTP/1.0) names no host and is let through:
/// the links it gets are relative.
pub async fn require_allowed_host(State(hosts): State<Arc<AllowedHosts>>, request: Request, next: Next) -> Response {
    let Some(value) = request.headers().get(header::HOST) else {
        return next.run(request).await;
    };
    let host = value.to_str().unwrap_or("").to_owned();
    let gateway = api_gateway_domain(&request);
    let allowed = hosts.allows(&host)
        || gateway.is_some_and(|domain| host_name(&host).is_some_and(|name| name == domain.to_ascii_lowercase()));
    if allowed { next.run(request).await } else { ApiError::DisallowedHost(host).into_response() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(configured: &[&str]) -> AllowedHosts {
        let configured: Vec<String> = configured.iter().map(|h| (*h).to_owned()).collect();
        AllowedHosts::new(&configured, SocketAddr::from(([10, 0, 0, 5], 3000)))
    }

    #[test]
    fn local_names_and_the_bind_address_are_allowed_by_default_and_nothing_else() {
        let h = hosts(&[]);
        for ok in ["localhost", "localhost:3000", "127.0.0.1:3000", "[::1]:80", "10.0.0.5:3000", "LOCALHOST"] {
            assert!(h.allows(ok), "{ok}");
        }
        for bad in ["evil.example", "evil.example:3000", "127.0.0.2", "", "localhost:x", "a b", "[::1"] {
            assert!(!h.allows(bad), "{bad}");
        }
    }

    #[test]
    fn configured_hosts_work_as_djangos_exact_subdomain_and_any() {
        let h = hosts(&["api.example.com", ".example.org"]);
        assert!(h.allows("api.example.com:443"));
        assert!(!h.allows("www.example.com"));
        assert!(h.allows("example.org") && h.allows("a.b.example.org"));
        assert!(!h.allows("badexample.org"));
        assert!(hosts(&["*"]).allows("anything.example"));
    }
}
