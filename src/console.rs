//! The web console (SPEC §8.4): static files under `console/`, embedded at compile time so that
//! `cargo run -- serve` needs no Node.js and no build step. The console uses only the public API
//! (its base URL is a setting), so the same files work from any static host against a deployed
//! API. Plus, on the embedded backend and a loopback address only, a way to get a token for a
//! user name without a terminal.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, header};
use axum::middleware::from_fn_with_state;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use shared::config::{Backend, Config};
use shared::runtime::Local;

/// The console's files: name, type, content.
const FILES: [(&str, &str, &str); 4] = [
    ("index.html", "text/html; charset=utf-8", include_str!("../console/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../console/app.js")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../console/api.js")),
    ("style.css", "text/css; charset=utf-8", include_str!("../console/style.css")),
];

/// Scripts and styles from the console's own origin only; calls and media may go to the API's
/// origin, which a setting may put elsewhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self' http: https:; media-src 'self' http: https: blob:; \
     frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// How long a token from the console's local sign-in lasts.
const LOCAL_TOKEN_TTL: Duration = Duration::from_secs(12 * 3600);

#[derive(Clone)]
struct ConsoleState {
    config: Arc<Config>,
    /// Whether `POST /console/token` may issue tokens: the embedded backend on a loopback address,
    /// where whoever reaches the server could read the data dir's secret anyway.
    local_tokens: bool,
}

/// `GET /` (to the console), `GET /console/…` and `POST /console/token`, with the API's CORS
/// policy (a console served from another origin signs in here).
pub fn router(local: &Local, config: &Config) -> Router {
    let state = ConsoleState {
        config: Arc::new(config.clone()),
        local_tokens: config.backend == Backend::Embedded && config.addr.ip().is_loopback(),
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/console/") }))
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(|| async { file("index.html") }))
        .route("/console/token", post(local_token))
        .route("/console/{name}", get(|Path(name): Path<String>| async move { file(&name) }))
        .with_state(state)
        .layer(from_fn_with_state(local.api.cors.clone(), shared::http::cors::cors))
}

fn file(name: &str) -> Response {
    let Some((_, content_type, body)) = FILES.iter().find(|(n, _, _)| *n == name) else {
        return shared::Error::NotFound.into_response();
    };
    let mut response = (*body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Always the files of the running build, never a stale cached copy.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[derive(Deserialize)]
struct TokenRequest {
    user: String,
    #[serde(default)]
    admin: bool,
}

/// `POST /console/token` `{"user": NAME, "admin": false}` → `{"token": …}`: what `aivideo token`
/// prints, for a person in a browser. 404 where it is not offered (another backend, or a server
/// listening beyond loopback).
async fn local_token(State(state): State<ConsoleState>, body: axum::body::Bytes) -> Response {
    if !state.local_tokens {
        return shared::Error::NotFound.into_response();
    }
    let request: TokenRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => return field_error("user", "Send a JSON object with a user name: {\"user\": \"alice\"}."),
    };
    if shared::domain::ids::UserId::parse(&request.user).is_none() {
        return field_error("user", "Use letters, digits and . _ @ - (at most 128 characters).");
    }
    match crate::token(&state.config, &request.user, request.admin, LOCAL_TOKEN_TTL).await {
        Ok(token) => axum::Json(serde_json::json!({"token": token, "user": request.user})).into_response(),
        Err(e) => shared::Error::internal(format!("the console's local token: {e}")).into_response(),
    }
}

fn field_error(field: &str, message: &str) -> Response {
    shared::Error::field(field, message).into_response()
}
