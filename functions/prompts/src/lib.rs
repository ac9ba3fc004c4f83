//! The Prompts Lambda (SPEC §5, Prompts group): prompt CRUD and `select/` (exactly one selected
//! prompt per scene and type, switched in one atomic write).

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use shared::domain::ids::{PromptId, SceneId, StoryId};
use shared::domain::prompt::{NewPrompt, PromptEdit, PromptType, ScenePrompt, check_parameters};
use shared::domain::render::RenderOptions;
use shared::domain::values::PromptText;
use shared::http::error::ApiResult;
use shared::http::etag::{IfMatch, with_etag};
use shared::http::idempotency::CreationId;
use shared::http::jobs::{accepted, render_options};
use shared::http::json::{Fields, JsonObject, string};
use shared::http::routing::{RouteSpec, Routes, get, post};
use shared::http::{API_PREFIX, AppState, Caller, Listing, QueryParams, api, created, views};
use shared::ports::{ChildOrdering, PromptFilter};
use shared::{Error, FieldErrors};

/// The Prompts routes as declared: each path and its handler per method. `routes()` is built
/// from this and `route_table()` exports it, so the two cannot differ.
fn declared() -> Routes {
    Routes::new()
        .at("/prompts/", get(list).post(create))
        .at("/prompts/{id}/", get(retrieve).put(replace).patch(update).delete(destroy))
        .at("/prompts/{id}/select/", post(select))
        .at("/prompts/{id}/test/", post(test))
}

/// The Prompts routes.
pub fn routes() -> Router<AppState> {
    declared().into_router()
}

/// The Prompts routes as data: each path (under `/api/ai-video`, with its trailing slash) and
/// the methods it answers — the table `routes()` is built from.
pub fn route_table() -> Vec<RouteSpec> {
    declared().into_table()
}

/// The Prompts Lambda's whole router.
pub fn router(state: AppState) -> Router {
    api(routes(), state)
}

fn prompt_id(raw: &str) -> Result<PromptId, Error> {
    PromptId::parse(raw).ok_or(Error::NotFound)
}

fn one(prompt: &ScenePrompt) -> Response {
    with_etag(prompt.version, axum::Json(views::prompt(prompt)))
}

fn scene_ref(v: &Value) -> Result<SceneId, String> {
    let raw = string(v)?.trim();
    SceneId::parse(raw)
        .ok_or_else(|| format!("Invalid pk \"{}\" - object does not exist.", raw.chars().take(64).collect::<String>()))
}
fn prompt_type(v: &Value) -> Result<PromptType, String> {
    PromptType::parse(string(v)?)
}
fn text(v: &Value) -> Result<PromptText, String> {
    PromptText::parse(string(v)?)
}

fn new_prompt(body: &Map<String, Value>) -> Result<NewPrompt, Error> {
    let mut f = Fields::new(body);
    let scene = f.required("scene", scene_ref);
    let kind = f.optional("prompt_type", prompt_type);
    let text = f.required("text", text);
    let parameters = f.optional("parameters", check_parameters);
    f.finish()?;
    match (scene, text) {
        (Some(scene), Some(text)) => Ok(NewPrompt {
            scene,
            prompt_type: kind.unwrap_or(PromptType::Video),
            text,
            parameters: parameters.unwrap_or_default(),
        }),
        _ => Err(Error::internal("required fields were checked")),
    }
}

/// PUT (`text` required) or PATCH. `scene` and `prompt_type` may be sent back unchanged, not changed.
fn prompt_edit(body: &Map<String, Value>, partial: bool, current: Option<&ScenePrompt>) -> Result<PromptEdit, Error> {
    let mut f = Fields::new(body);
    let edit = PromptEdit {
        text: if partial { f.optional("text", text) } else { f.required("text", text) },
        parameters: f.optional("parameters", check_parameters),
    };
    if let (Some(scene), Some(current)) = (f.optional("scene", scene_ref), current)
        && scene != current.scene
    {
        f.error("scene", "A prompt cannot move to another scene; create a new one.");
    }
    if let (Some(kind), Some(current)) = (f.optional("prompt_type", prompt_type), current)
        && kind != current.prompt_type
    {
        f.error("prompt_type", "A prompt's type cannot change; create a new one.");
    }
    f.finish()?;
    Ok(edit)
}

fn filter(query: &QueryParams, errors: &mut FieldErrors) -> PromptFilter {
    let mut filter = PromptFilter::default();
    if let Some(raw) = query.get("story").filter(|s| !s.is_empty()) {
        match StoryId::parse(raw) {
            Some(id) => filter.story = Some(id),
            None => errors.add("story", "Enter a valid id."),
        }
    }
    if let Some(raw) = query.get("scene").filter(|s| !s.is_empty()) {
        match SceneId::parse(raw) {
            Some(id) => filter.scene = Some(id),
            None => errors.add("scene", "Enter a valid id."),
        }
    }
    if let Some(raw) = query.get("prompt_type").filter(|s| !s.is_empty()) {
        match PromptType::parse(raw) {
            Ok(t) => filter.prompt_type = Some(t),
            Err(m) => errors.add("prompt_type", m),
        }
    }
    if let Some(raw) = query.get("is_selected").filter(|s| !s.is_empty()) {
        match raw {
            "true" | "True" | "1" => filter.is_selected = Some(true),
            "false" | "False" | "0" => filter.is_selected = Some(false),
            _ => errors.add("is_selected", "Must be a valid boolean."),
        }
    }
    filter
}

async fn list(
    State(state): State<AppState>,
    caller: Caller,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let query = QueryParams::from_uri(&uri);
    let mut errors = FieldErrors::new();
    let filter = filter(&query, &mut errors);
    let orderings = [("created_at", false), ("-created_at", true), ("order", false), ("-order", true)];
    let (listing, index) = Listing::parse(&query, &state.cursors, &caller.user, "prompts".into(), &orderings, errors)?;
    let ordering = if index < 2 { ChildOrdering::CreatedAt } else { ChildOrdering::Order };
    let page = state.plans.prompts(&caller.user, &filter, ordering, &listing.page).await?;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |p| views::prompt(&p)))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let prompt = state.plans.create_prompt(&caller.user, new_prompt(&body)?, keyed.map(|k| k.0.0)).await?;
    Ok(created(&format!("{API_PREFIX}/prompts/{}/", prompt.id), prompt.version, views::prompt(&prompt)))
}

async fn retrieve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(one(&state.plans.prompt(&caller.user, &prompt_id(&id)?).await?))
}

async fn edit(
    state: &AppState,
    caller: &Caller,
    id: &str,
    expected: Option<u64>,
    body: &Map<String, Value>,
    partial: bool,
) -> ApiResult<Response> {
    let id = prompt_id(id)?;
    // Only a body that names `scene` or `prompt_type` needs the current prompt to compare against.
    let current = if body.contains_key("scene") || body.contains_key("prompt_type") {
        Some(state.plans.prompt(&caller.user, &id).await?)
    } else {
        None
    };
    let edit = prompt_edit(body, partial, current.as_ref())?;
    Ok(one(&state.plans.edit_prompt(&caller.user, &id, edit, expected).await?))
}

async fn replace(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    edit(&state, &caller, &id, expected, &body, false).await
}

async fn update(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    edit(&state, &caller, &id, expected, &body, true).await
}

async fn destroy(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
) -> ApiResult<Response> {
    state.plans.delete_prompt(&caller.user, &prompt_id(&id)?, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn select(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(_): JsonObject,
) -> ApiResult<Response> {
    Ok(one(&state.plans.select_prompt(&caller.user, &prompt_id(&id)?, expected).await?))
}

/// `prompts/{id}/test/`: renders this prompt (selected or not) as its scene's clip; 202 with the job.
async fn test(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = prompt_id(&id)?;
    let options = render_options(&body, RenderOptions::preview_defaults())?;
    // With an Idempotency-Key the job's id comes from the key: a retry finds it again.
    let job = state.jobs.test_prompt(&caller.user, &id, options, keyed.map(|k| k.0.0)).await?;
    Ok(accepted(&state, None, &[job]).await)
}
