//! The Jobs Lambda: the owner's jobs, one job, retry, cancel and figures (SPEC §5, Jobs group),
//! what they spend against the monthly cap (`usage/`, SPEC §8.7), and the event feed (`events/`,
//! SPEC §8.5), and webhooks (`webhooks/`, SPEC §8.6).

mod webhooks;

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use shared::domain::ids::JobId;
use shared::domain::job::Job;
use shared::http::error::ApiResult;
use shared::http::etag::with_etag;
use shared::http::events::{EventQuery, event_query};
use shared::http::jobs::{accepted, job_filter, job_view};
use shared::http::json::JsonObject;
use shared::http::routing::{RouteSpec, Routes, get, post};
use shared::http::{AppState, Caller, Listing, QueryParams, api, job_media_keys, views};
use shared::{Error, FieldErrors};

/// The Jobs routes as declared: each path and its handler per method. `routes()` is built
/// from this and `route_table()` exports it, so the two cannot differ.
fn declared() -> Routes {
    Routes::new()
        .at("/jobs/", get(list))
        .at("/jobs/statistics/", get(statistics))
        .at("/jobs/{id}/", get(retrieve))
        .at("/jobs/{id}/retry/", post(retry))
        .at("/jobs/{id}/cancel/", post(cancel))
        .at("/usage/", get(my_usage))
        .at("/events/", get(events))
        .at("/usage/{user}/", get(user_usage).put(set_cap))
        .at("/webhooks/", get(webhooks::list).post(webhooks::create))
        .at("/webhooks/{id}/", get(webhooks::retrieve).patch(webhooks::update).delete(webhooks::destroy))
        .at("/webhooks/{id}/deliveries/", get(webhooks::deliveries))
        .at("/webhooks/{id}/deliveries/{delivery_id}/redeliver/", post(webhooks::redeliver))
        .at("/webhooks/{id}/ping/", post(webhooks::ping))
}

/// The Jobs routes.
pub fn routes() -> Router<AppState> {
    declared().into_router()
}

/// The Jobs routes as data: each path (under `/api/ai-video`, with its trailing slash) and
/// the methods it answers — the table `routes()` is built from.
pub fn route_table() -> Vec<RouteSpec> {
    declared().into_table()
}

/// The Jobs Lambda's whole router.
pub fn router(state: AppState) -> Router {
    api(routes(), state)
}

fn job_id(raw: &str) -> Result<JobId, Error> {
    JobId::parse(raw).ok_or(Error::NotFound)
}

async fn one(state: &AppState, job: &Job) -> Response {
    with_etag(job.version, axum::Json(job_view(state, job).await))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::from_uri(&uri);
    let mut errors = FieldErrors::new();
    let filter = job_filter(&query, &mut errors);
    let orderings = [("created_at", false), ("-created_at", true)];
    let (listing, _) = Listing::parse(&query, &state.cursors, &caller.user, "jobs".into(), &orderings, errors)?;
    let page = state.jobs.list(&caller.user, &filter, &listing.page).await?;
    let links = state.links(job_media_keys(&page.items)).await;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |j| views::job(&j, &links)))
}

async fn retrieve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(one(&state, &state.jobs.get(&caller.user, &job_id(&id)?).await?).await)
}

/// `retry/`: a failed or cancelled job queued again with fresh attempts; 202 with the job.
async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    let job = state.jobs.retry(&caller.user, &job_id(&id)?).await?;
    Ok(accepted(&state, None, &[job]).await)
}

/// `cancel/`: 200 with the cancelled job.
async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    Ok(one(&state, &state.jobs.cancel(&caller.user, &job_id(&id)?).await?).await)
}

async fn statistics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    Ok(axum::Json(state.jobs.statistics(&caller.user).await?).into_response())
}

/// `GET usage/`: the caller's month (`{user, month, spent_usd, reserved_usd, cap_usd,
/// remaining_usd}`).
async fn my_usage(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    Ok(axum::Json(state.jobs.usage(&caller.user).await?).into_response())
}

fn admin_only(caller: &Caller) -> Result<(), Error> {
    if caller.is_admin { Ok(()) } else { Err(Error::NotFound) }
}

fn user_id(raw: &str) -> Result<shared::domain::ids::UserId, Error> {
    shared::domain::ids::UserId::parse(raw).ok_or(Error::NotFound)
}

/// `GET usage/{user}/`: one user's month, for admins (404 for anyone else, as every object that
/// is not theirs).
async fn user_usage(State(state): State<AppState>, caller: Caller, Path(user): Path<String>) -> ApiResult<Response> {
    admin_only(&caller)?;
    Ok(axum::Json(state.jobs.usage(&user_id(&user)?).await?).into_response())
}

/// `PUT usage/{user}/` `{"cap_usd": n|null}`: sets one user's monthly cap (null: no cap); admins.
async fn set_cap(
    State(state): State<AppState>,
    caller: Caller,
    Path(user): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    admin_only(&caller)?;
    let user = user_id(&user)?;
    let mut f = shared::http::json::Fields::new(&body);
    // Present, and a number or null (null: no cap).
    let cap = f.nullable("cap_usd", |v| {
        let usd = shared::http::json::number(v)?;
        if (0.0..=1_000_000.0).contains(&usd) {
            Ok(shared::domain::pricing::round_usd(usd))
        } else {
            Err("Ensure this value is between 0 and 1000000.".to_owned())
        }
    });
    f.finish()?;
    let cap = cap.ok_or_else(|| Error::field("cap_usd", "This field is required."))?;
    Ok(axum::Json(state.jobs.set_monthly_cap(&user, cap).await?).into_response())
}

/// How often a waiting `events/` looks again: an event is answered within this of its write.
const WAIT_STEP: std::time::Duration = std::time::Duration::from_millis(50);

/// `GET events/`: the caller's events, oldest first, paginated; `after=<event id>` starts after
/// that event, `wait=N` (0–20 s) holds the request until at least one event exists or N seconds
/// pass, `type=` (repeatable or a comma list) and `story=` filter.
async fn events(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::from_uri(&uri);
    let mut errors = FieldErrors::new();
    let EventQuery { filter, after, wait } = event_query(&query, &mut errors);
    let orderings = [("created_at", false)];
    let (listing, _) = Listing::parse(&query, &state.cursors, &caller.user, "events".into(), &orderings, errors)?;
    let mut page = listing.page.clone();
    if page.position.is_none() {
        page.position = after;
    }
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let found = state.events.events(&caller.user, &filter, &page).await?;
        if !found.items.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(listing.respond(found, &state.cursors, &uri, &headers, |e| views::event(&e)));
        }
        tokio::time::sleep(WAIT_STEP).await;
    }
}
