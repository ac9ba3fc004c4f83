//! The Stories Lambda: stories, their state machine, locks and history, and the plan actions
//! `scenes/bulk` and `generate-prompts` (SPEC §5, Stories group). Handlers stay thin:
//! parse → call the service → render.

mod requests;

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use shared::domain::ids::StoryId;
use shared::domain::render::{RenderOptions, RenderStage};
use shared::domain::story::Story;
use shared::http::error::ApiResult;
use shared::http::etag::{IfMatch, with_etag};
use shared::http::idempotency::CreationId;
use shared::http::jobs::{accepted, job_filter, render_options, story_view};
use shared::http::json::JsonObject;
use shared::http::routing::{RouteSpec, Routes, get, post};
use shared::http::{
    API_PREFIX, AppState, Caller, Listing, QueryParams, api, created, job_media_keys, story_media_keys, views,
};
use shared::services::WriterChoice;
use shared::{Error, FieldErrors};

/// The Stories routes as declared: each path and its handler per method. `routes()` is built
/// from this and `route_table()` exports it, so the two cannot differ.
fn declared() -> Routes {
    Routes::new()
        .at("/stories/", get(list).post(create))
        .at("/stories/statistics/", get(statistics))
        .at("/stories/{id}/", get(retrieve).put(replace).patch(update).delete(destroy))
        .at("/stories/{id}/lock/", post(lock))
        .at("/stories/{id}/unlock/", post(unlock))
        .at("/stories/{id}/transition/", post(transition))
        .at("/stories/{id}/transitions/", get(transitions))
        .at("/stories/{id}/scenes/bulk/", post(bulk_scenes))
        .at("/stories/{id}/generate-prompts/", post(generate_prompts))
        .at("/stories/{id}/cost_estimate/", get(cost_estimate))
        .at("/stories/{id}/generate_preview/", post(generate_preview))
        .at("/stories/{id}/render_final/", post(render_final))
        .at("/stories/{id}/jobs/", get(story_jobs))
}

/// The Stories routes, to be wrapped by `shared::http::api` (alone, or with other functions').
pub fn routes() -> Router<AppState> {
    declared().into_router()
}

/// The Stories routes as data: each path (under `/api/ai-video`, with its trailing slash) and
/// the methods it answers — the table `routes()` is built from.
pub fn route_table() -> Vec<RouteSpec> {
    declared().into_table()
}

/// The Stories Lambda's whole router.
pub fn router(state: AppState) -> Router {
    api(routes(), state)
}

/// An id in a path that is not even well-formed names nothing: 404, like any other unknown id.
fn story_id(raw: &str) -> Result<StoryId, Error> {
    StoryId::parse(raw).ok_or(Error::NotFound)
}

async fn one(state: &AppState, story: &Story) -> Response {
    with_etag(story.version, axum::Json(story_view(state, story).await))
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::from_uri(&uri);
    let mut errors = FieldErrors::new();
    let filter = requests::story_filter(&query, &mut errors);
    let orderings = [("-created_at", true), ("created_at", false)];
    let (listing, _) = Listing::parse(&query, &state.cursors, &caller.user, "stories".into(), &orderings, errors)?;
    let page = state.stories.list(&caller.user, &filter, &listing.page).await?;
    let links = state.links(story_media_keys(&page.items)).await;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |s| views::story(&s, &links)))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let new = requests::new_story(&body)?;
    // With an Idempotency-Key the story's id comes from the key: a retry finds it again.
    let story = state.stories.create(&caller.user, new, keyed.map(|k| k.0.0)).await?;
    Ok(created(&format!("{API_PREFIX}/stories/{}/", story.id), story.version, story_view(&state, &story).await))
}

async fn retrieve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(one(&state, &state.stories.get(&caller.user, &story_id(&id)?).await?).await)
}

async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let edit = requests::story_edit(&body, false)?;
    Ok(one(&state, &state.stories.edit(&caller.user, &id, edit, expected).await?).await)
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let edit = requests::story_edit(&body, true)?;
    Ok(one(&state, &state.stories.edit(&caller.user, &id, edit, expected).await?).await)
}

async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> ApiResult<Response> {
    state.stories.delete(&caller.user, &story_id(&id)?, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn lock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    Ok(one(&state, &state.stories.set_lock(&caller.user, &story_id(&id)?, true, expected).await?).await)
}

async fn unlock(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    Ok(one(&state, &state.stories.set_lock(&caller.user, &story_id(&id)?, false, expected).await?).await)
}

async fn transition(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let (to, reason) = requests::transition(&body)?;
    // With an Idempotency-Key the move is recorded under the key: a retry finds it made.
    let request = keyed.map(|k| k.0.0.to_string());
    Ok(one(&state, &state.stories.transition(&caller.user, &id, to, reason, expected, request).await?).await)
}

async fn transitions(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let query = QueryParams::from_uri(&uri);
    let orderings = [("at", false), ("-at", true), ("created_at", false), ("-created_at", true)];
    let name = format!("transitions:{id}");
    let (listing, _) = Listing::parse(&query, &state.cursors, &caller.user, name, &orderings, FieldErrors::new())?;
    let page = state.stories.history(&caller.user, &id, &listing.page).await?;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |t| views::transition(&t)))
}

async fn statistics(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    let stats = state.stories.statistics(&caller.user).await?;
    Ok(axum::Json(stats).into_response())
}

/// `scenes/bulk`: 201 with the story (now PLANNING) and its scenes, each with its prompts.
async fn bulk_scenes(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let (scene_count, replace) = requests::bulk(&body)?;
    let plan = state.plans.bulk(&caller.user, &id, scene_count, replace).await?;
    let scenes: Vec<_> = plan
        .scenes
        .iter()
        .map(|scene| {
            let mut view = views::scene(scene);
            let prompts: Vec<_> = plan.prompts.iter().filter(|p| p.scene == scene.id).map(views::prompt).collect();
            view["prompts"] = json!(prompts);
            view
        })
        .collect();
    let body = json!({"story": story_view(&state, &plan.story).await, "scenes": scenes});
    Ok(created(&format!("{API_PREFIX}/scenes/?story={id}"), plan.story.version, body))
}

/// `generate-prompts`: 200 with the new (selected) prompts and which writer made them.
async fn generate_prompts(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let (prompt_type, writer) = requests::generate_prompts(&body)?;
    let use_llm = match writer {
        Some(WriterChoice::Llm) => true,
        Some(WriterChoice::Template) => false,
        None => state.plans.has_llm(),
    };
    let generated = state.plans.generate_prompts(&caller.user, &id, prompt_type, use_llm, keyed.map(|k| k.0.0)).await?;
    let writer = match generated.writer {
        WriterChoice::Llm => "llm",
        WriterChoice::Template => "template",
    };
    let prompts: Vec<_> = generated.prompts.iter().map(views::prompt).collect();
    Ok(axum::Json(json!({"writer": writer, "llm_error": generated.llm_error, "prompts": prompts})).into_response())
}

/// `cost_estimate/`: the story's seconds × its provider's price per quality, preview and final,
/// with a rough render time (scenes render in parallel: the longest scene bounds it).
async fn cost_estimate(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    let plan = state.plans.story_plan(&caller.user, &story_id(&id)?).await?;
    let config = state.providers.get(plan.story.ai_provider).await?;
    let estimate = state.plans.cost_estimate(&plan, &config);
    let mut body = serde_json::to_value(estimate).map_err(Error::internal)?;
    body["story"] = json!(plan.story.id);
    Ok(axum::Json(body).into_response())
}

/// `generate_preview/`: PLANNED → PREVIEWING (locked), one job per scene and a compose job; 202.
async fn generate_preview(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let options = render_options(&body, RenderOptions::preview_defaults())?;
    // With an Idempotency-Key the render's jobs take their ids from the key: a retry finds them.
    let request = keyed.map(|k| k.0.0);
    let (story, jobs) =
        state.jobs.start_render(&caller.user, &id, RenderStage::Preview, options, expected, request).await?;
    Ok(accepted(&state, Some(&story), &jobs).await)
}

/// `render_final/`: PREVIEW_READY → FINALIZING (locked), the final's jobs; 202.
async fn render_final(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    let options = render_options(&body, RenderOptions::final_defaults())?;
    // With an Idempotency-Key the render's jobs take their ids from the key: a retry finds them.
    let request = keyed.map(|k| k.0.0);
    let (story, jobs) =
        state.jobs.start_render(&caller.user, &id, RenderStage::Final, options, expected, request).await?;
    Ok(accepted(&state, Some(&story), &jobs).await)
}

/// `stories/{id}/jobs/`: the story's jobs, with the filters of `jobs/`.
async fn story_jobs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let id = story_id(&id)?;
    // Another owner's (or no) story is 404, not an empty list.
    state.stories.get(&caller.user, &id).await?;
    let query = QueryParams::from_uri(&uri);
    let mut errors = FieldErrors::new();
    let mut filter = job_filter(&query, &mut errors);
    filter.story = Some(id.clone());
    let orderings = [("created_at", false), ("-created_at", true)];
    let name = format!("story-jobs:{id}");
    let (listing, _) = Listing::parse(&query, &state.cursors, &caller.user, name, &orderings, errors)?;
    let page = state.jobs.list(&caller.user, &filter, &listing.page).await?;
    let links = state.links(job_media_keys(&page.items)).await;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |j| views::job(&j, &links)))
}
