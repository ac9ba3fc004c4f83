//! The HTTP conventions of SPEC §6, shared by every function: routing under `/api/ai-video/`
//! (with and without the trailing slash), authentication, idempotency keys, DRF-shaped errors,
//! pagination, ETags, and request logging.

pub mod auth;
pub mod cors;
pub mod error;
pub mod etag;
pub mod events;
pub mod hosts;
pub mod idempotency;
pub mod jobs;
pub mod json;
pub mod openapi;
pub mod pagination;
pub mod routing;
pub mod views;
pub mod webhooks;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use tracing::Instrument;

use crate::domain::error::Error;
use crate::domain::story::Story;
use crate::ports::{Clock, IdGenerator, IdempotencyStore, MediaStore};
use crate::services::{JobService, PlanService, StoryService};

pub use auth::{Authenticator, Caller};
pub use pagination::{CursorCodec, Listing, QueryParams};

/// Every route lives under this prefix.
pub const API_PREFIX: &str = "/api/ai-video";

/// What every handler can reach: the API role's state, built once per cold start
/// (`runtime::build_api`). Nothing of the worker is in it.
#[derive(Clone)]
pub struct AppState {
    /// Story use cases.
    pub stories: StoryService,
    /// Scene, prompt and planning use cases.
    pub plans: PlanService,
    /// Token checking.
    pub auth: Arc<Authenticator>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Pagination cursors.
    pub cursors: CursorCodec,
    /// The time.
    pub clock: Arc<dyn Clock>,
    /// Id issuing (request ids).
    pub ids: Arc<dyn IdGenerator>,
    /// Job use cases.
    pub jobs: JobService,
    /// Provider configuration.
    pub providers: crate::services::ProviderService,
    /// Where rendered media lives; issues the download links.
    pub media: Arc<dyn MediaStore>,
    /// The hosts requests may name (links are written with the request's host).
    pub hosts: Arc<hosts::AllowedHosts>,
    /// The origins whose pages may call the API from a browser.
    pub cors: Arc<cors::CorsOrigins>,
    /// The event feed.
    pub events: Arc<dyn crate::ports::EventStore>,
    /// Webhook endpoints and their log (SPEC §8.6).
    pub webhooks: crate::services::WebhookService,
}

/// How long a download link handed to an owner works.
pub const MEDIA_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(3600);

impl AppState {
    /// Signed download links for `media`, by key (issued only in answers to their owner). A link
    /// that cannot be signed is left out (the view shows `url: null`) rather than failing the read.
    pub async fn links(&self, keys: Vec<String>) -> views::MediaLinks {
        let mut links = views::MediaLinks::new();
        for key in keys {
            if links.contains_key(&key) {
                continue;
            }
            match self.media.signed_url(&key, MEDIA_LINK_TTL).await {
                Ok(link) => {
                    links.insert(key, link);
                }
                Err(e) => tracing::warn!(key = %key, error = %e, "could not sign a media link"),
            }
        }
        links
    }
}

/// The media keys of stories (previews and finals), to sign before drawing them.
pub fn story_media_keys<'a>(stories: impl IntoIterator<Item = &'a Story>) -> Vec<String> {
    stories.into_iter().flat_map(|s| s.preview.iter().chain(s.final_video.iter())).map(|m| m.key.clone()).collect()
}

/// The media keys of jobs' results.
pub fn job_media_keys<'a>(jobs: impl IntoIterator<Item = &'a crate::domain::job::Job>) -> Vec<String> {
    jobs.into_iter().filter_map(|j| j.result.as_ref()).map(|m| m.key.clone()).collect()
}

/// Adds `path` (relative to the API prefix, written with its trailing slash) both with and without
/// the trailing slash, as DRF's router with `trailing_slash` optional does. Functions declare their
/// routes with [`routing::Routes`], which calls this.
pub fn route<S: Clone + Send + Sync + 'static>(router: Router<S>, path: &str, methods: MethodRouter<S>) -> Router<S> {
    let full = format!("{API_PREFIX}{path}");
    let bare = full.trim_end_matches('/').to_owned();
    router.route(&full, methods.clone()).route(&bare, methods)
}

/// Where the OpenAPI document is served (by every function's router; the template maps it to the
/// Stories function).
pub fn openapi_path() -> String {
    format!("{API_PREFIX}{}", openapi::PATH)
}

/// Where the API's root (its route groups' URLs) is served.
pub fn api_root_path() -> String {
    format!("{API_PREFIX}/")
}

/// The routes that need no token (the API's description and its root): served by every
/// function's router, mapped by the template to the Stories function.
pub fn public_paths() -> [String; 2] {
    [openapi_path(), api_root_path()]
}

/// Wraps the routes of one or more functions into the API: authentication and idempotency on
/// every route, JSON 404/405 for everything else, and one log line per request.
pub fn api(routes: Router<AppState>, state: AppState) -> Router {
    routes
        .route_layer(from_fn_with_state(state.clone(), idempotency::idempotent))
        .route_layer(from_fn_with_state(state.auth.clone(), auth::require_caller))
        // Added after the layers above: the API's description and its root need no token.
        .route(&openapi_path(), axum::routing::get(openapi::serve))
        .route(&api_root_path(), axum::routing::get(api_root))
        .route(API_PREFIX, axum::routing::get(api_root))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
        .layer(from_fn_with_state(state.hosts.clone(), hosts::require_allowed_host))
        // Outside the host check, so a page on an allowed origin can read even that refusal.
        .layer(from_fn_with_state(state.cors.clone(), cors::cors))
        .layer(from_fn_with_state(state.ids.clone(), trace_requests))
        .with_state(state)
}

/// A 201 answer with `Location`, `ETag` and the created object(s).
pub fn created(location: &str, version: u64, body: serde_json::Value) -> Response {
    let mut response = etag::with_etag(version, (axum::http::StatusCode::CREATED, axum::Json(body)));
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(axum::http::header::LOCATION, value);
    }
    response
}

/// The route groups this API serves, as `GET /api/ai-video/` lists them (DRF's router root).
pub const ROUTE_GROUPS: [&str; 7] = ["stories", "scenes", "prompts", "jobs", "providers", "usage", "events"];

/// `GET /api/ai-video/`: where each route group and the API's description live, as DRF's
/// `DefaultRouter` answers its root. Public, like the description: it holds no one's data.
async fn api_root(headers: axum::http::HeaderMap) -> Response {
    let base = format!("{}{API_PREFIX}", pagination::request_origin(&headers).unwrap_or_default());
    let mut links = serde_json::Map::new();
    for group in ROUTE_GROUPS {
        links.insert(group.to_owned(), format!("{base}/{group}/").into());
    }
    links.insert("openapi".to_owned(), format!("{base}{}", openapi::PATH).into());
    axum::Json(serde_json::Value::Object(links)).into_response()
}

async fn not_found() -> Response {
    Error::NotFound.into_response()
}

async fn method_not_allowed(method: Method) -> Response {
    error::ApiError::MethodNotAllowed(method.to_string()).into_response()
}

/// One span per request (request id, method, path, user, and the story or job in the path) and
/// one line when it ends.
async fn trace_requests(
    axum::extract::State(ids): axum::extract::State<Arc<dyn IdGenerator>>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = api_gateway_request_id(&request)
        .or_else(|| lambda_http::RequestExt::lambda_context_ref(&request).map(|c| c.request_id.clone()))
        .or_else(|| {
            request.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(|v| v.chars().take(64).collect())
        })
        .unwrap_or_else(|| ids.new_id().to_string());
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
        user = tracing::field::Empty,
        story_id = tracing::field::Empty,
        job_id = tracing::field::Empty,
    );
    // The story or job a request is about, from its path, so its lines join the worker's.
    if let Some((kind, id)) = object_in_path(request.uri().path()) {
        span.record(kind, id);
    }
    async move {
        let started = Instant::now();
        let mut response = next.run(request).await;
        let status = response.status().as_u16();
        let elapsed_ms = (started.elapsed().as_secs_f64() * 1_000_000.0).round() / 1000.0;
        tracing::info!(status, elapsed_ms, "handled");
        if let Ok(value) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", value);
        }
        response
    }
    .instrument(span)
    .await
}

/// `("story_id", id)` for `/api/ai-video/stories/<id>/…`, `("job_id", id)` for jobs.
fn object_in_path(path: &str) -> Option<(&'static str, &str)> {
    let mut parts = path.strip_prefix(API_PREFIX)?.trim_start_matches('/').split('/');
    let field = match parts.next()? {
        "stories" => "story_id",
        "jobs" => "job_id",
        _ => return None,
    };
    let id = parts.next()?;
    crate::domain::ids::StoryId::parse(id).is_some().then_some((field, id))
}

/// The request id API Gateway gave the request (the one its access logs show).
fn api_gateway_request_id(request: &Request) -> Option<String> {
    use lambda_http::request::RequestContext;
    match lambda_http::RequestExt::request_context_ref(request)? {
        RequestContext::ApiGatewayV2(ctx) => ctx.request_id.clone(),
        RequestContext::ApiGatewayV1(ctx) => ctx.request_id.clone(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::object_in_path;

    #[test]
    fn request_lines_name_the_story_or_job_in_their_path() {
        let id = "01JCZ5T8Y9E6K3W7QX4M2N1P0R";
        assert_eq!(object_in_path(&format!("/api/ai-video/stories/{id}/lock/")), Some(("story_id", id)));
        assert_eq!(object_in_path(&format!("/api/ai-video/jobs/{id}")), Some(("job_id", id)));
        assert_eq!(object_in_path("/api/ai-video/stories/statistics/"), None);
        assert_eq!(object_in_path(&format!("/api/ai-video/scenes/{id}/")), None);
    }
}
