//! `Idempotency-Key` on POST (SPEC §6): the same key with the same request within 24 h answers
//! with the first response without doing the work again; with another request → 422. Keys are
//! scoped per user. The claim is one atomic step in the store, so two concurrent requests with the
//! same key cannot both do the work (the second gets 409 while the first is in progress).

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use crate::domain::error::Error;
use crate::http::AppState;
use crate::http::auth::Caller;
use crate::http::error::ApiError;
use crate::http::json::read_body;
use crate::ports::{IdempotencyClaim, StoredResponse};

/// The request header.
pub const HEADER: &str = "idempotency-key";
/// Set on a replayed response.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";
/// Longest key accepted.
pub const MAX_KEY_LEN: usize = 255;

/// Headers kept with a stored response.
const KEPT_HEADERS: [&str; 3] = ["content-type", "etag", "location"];

fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY_LEN && key.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn fingerprint(method: &Method, uri: &axum::http::Uri, body: &[u8]) -> String {
    let mut hash = Sha256::new();
    for part in [method.as_str().as_bytes(), uri.to_string().as_bytes(), body] {
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn replay(stored: StoredResponse) -> Response {
    let mut response = Response::new(Body::from(stored.body));
    *response.status_mut() = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK);
    for (name, value) in stored.headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name), HeaderValue::try_from(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response.headers_mut().insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    response
}

/// The id an `Idempotency-Key` request gives the object it creates: the same for every retry of
/// the request, so a retry after a crash that came between the object's commit and the stored
/// answer finds the object again instead of making a second one (SPEC §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreationId(pub ulid::Ulid);

/// The ULID of the object created by `key` of `owner`: its time is the key's first claim (so it
/// sorts where the object was first asked for) and its randomness a hash of the owner and the key.
pub fn creation_id(
    owner: &crate::domain::ids::UserId,
    key: &str,
    first_claimed_at: chrono::DateTime<chrono::Utc>,
) -> ulid::Ulid {
    let mut hash = Sha256::new();
    hash.update(b"aivideo creation id v1\0");
    hash.update(owner.as_str().as_bytes());
    hash.update([0]);
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes[6..].copy_from_slice(&digest[..10]);
    let random = u128::from_be_bytes(bytes);
    ulid::Ulid::from_parts(u64::try_from(first_claimed_at.timestamp_millis()).unwrap_or(0), random)
}

/// Middleware for the authenticated routes.
pub async fn idempotent(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let Some(raw) = request.headers().get(HEADER) else {
        return next.run(request).await;
    };
    let key = match raw.to_str() {
        Ok(k) if valid_key(k) => k.to_owned(),
        _ => {
            return Error::field("Idempotency-Key", "Use 1 to 255 visible ASCII characters.").into_response();
        }
    };
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return Error::NotAuthenticated.into_response();
    };
    let (parts, body) = request.into_parts();
    let bytes = match read_body(&parts.headers, body).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let print = fingerprint(&parts.method, &parts.uri, &bytes);
    let store = state.idempotency.clone();
    match store.claim(&caller.user, &key, &print, state.clock.now()).await {
        Err(e) => e.into_response(),
        Ok(IdempotencyClaim::Mismatch) => ApiError::IdempotencyKeyReused.into_response(),
        Ok(IdempotencyClaim::InProgress) => ApiError::IdempotencyInProgress.into_response(),
        Ok(IdempotencyClaim::Replay(stored)) => replay(stored),
        Ok(IdempotencyClaim::Fresh { first_claimed_at }) => {
            let mut parts = parts;
            parts.extensions.insert(CreationId(creation_id(&caller.user, &key, first_claimed_at)));
            let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
            let (head, body) = response.into_parts();
            let body = match axum::body::to_bytes(body, usize::MAX).await {
                Ok(body) => body,
                Err(e) => {
                    if let Err(release) = store.release(&caller.user, &key).await {
                        tracing::warn!(error = %release, "could not release an idempotency key");
                    }
                    return Error::internal(e).into_response();
                }
            };
            // The effect is committed, its answer not yet kept: the crash that made duplicates.
            crate::crash_point!("idempotency.before_answer_kept");
            let status = head.status;
            let keep = !(status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS);
            let outcome = if keep {
                let headers = KEPT_HEADERS
                    .iter()
                    .filter_map(|name| {
                        head.headers
                            .get(*name)
                            .and_then(|v| v.to_str().ok())
                            .map(|v| ((*name).to_owned(), v.to_owned()))
                    })
                    .collect();
                let stored = StoredResponse { status: status.as_u16(), headers, body: body.to_vec() };
                store.complete(&caller.user, &key, &stored, state.clock.now()).await
            } else {
                // Our failure, not the client's: let the same key try again.
                store.release(&caller.user, &key).await
            };
            if let Err(e) = outcome {
                tracing::warn!(error = %e, "could not record an idempotency key's outcome");
            }
            Response::from_parts(head, Body::from(body))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_visible_ascii_of_bounded_length() {
        assert!(valid_key("a-b_c.123"));
        assert!(!valid_key(""));
        assert!(!valid_key("with space"));
        assert!(!valid_key(&"k".repeat(256)));
        assert!(!valid_key("é"));
    }

    #[test]
    fn a_creation_id_is_the_same_for_every_retry_and_differs_by_owner_and_key() {
        let alice = crate::domain::ids::UserId::parse("alice").unwrap();
        let bob = crate::domain::ids::UserId::parse("bob").unwrap();
        let at = chrono::DateTime::from_timestamp_millis(1_700_000_000_123).unwrap();
        let id = creation_id(&alice, "k1", at);
        assert_eq!(id, creation_id(&alice, "k1", at));
        assert_eq!(id.timestamp_ms(), 1_700_000_000_123, "sorts where it was first asked for");
        assert_ne!(id, creation_id(&bob, "k1", at));
        assert_ne!(id, creation_id(&alice, "k2", at));
    }

    #[test]
    fn the_fingerprint_covers_method_path_and_body() {
        let uri: axum::http::Uri = "/a".parse().unwrap();
        let other: axum::http::Uri = "/b".parse().unwrap();
        let base = fingerprint(&Method::POST, &uri, b"{}");
        assert_eq!(base, fingerprint(&Method::POST, &uri, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, &other, b"{}"));
        assert_ne!(base, fingerprint(&Method::POST, &uri, b"{ }"));
    }
}
