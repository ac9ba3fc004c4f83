//! The Scenes Lambda (SPEC §5, Scenes group): scene CRUD, `bulk_create/` and `reorder/`.
//! Every write is refused while the scene's story is locked, checked in the same atomic write.

use axum::Router;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use shared::domain::ids::{SceneId, StoryId};
use shared::domain::render::RenderOptions;
use shared::domain::scene::{NewScene, Scene, SceneDuration, SceneEdit, SceneKind, SceneStatus};
use shared::domain::values::{Description, SceneTitle};
use shared::http::error::ApiResult;
use shared::http::etag::{IfMatch, with_etag};
use shared::http::idempotency::CreationId;
use shared::http::jobs::{accepted, render_options};
use shared::http::json::{Fields, JsonBody, JsonObject, integer, number, parse_value, string};
use shared::http::routing::{RouteSpec, Routes, get, post};
use shared::http::{API_PREFIX, AppState, Caller, Listing, QueryParams, api, created, views};
use shared::ports::{ChildOrdering, SceneFilter};
use shared::{Error, FieldErrors};

/// Most scenes one `bulk_create/` accepts.
const MAX_BULK: usize = 100;

/// The Scenes routes as declared: each path and its handler per method. `routes()` is built
/// from this and `route_table()` exports it, so the two cannot differ.
fn declared() -> Routes {
    Routes::new()
        .at("/scenes/", get(list).post(create))
        .at("/scenes/bulk_create/", post(bulk_create))
        .at("/scenes/{id}/", get(retrieve).put(replace).patch(update).delete(destroy))
        .at("/scenes/{id}/reorder/", post(reorder))
        .at("/scenes/{id}/generate/", post(generate))
}

/// The Scenes routes.
pub fn routes() -> Router<AppState> {
    declared().into_router()
}

/// The Scenes routes as data: each path (under `/api/ai-video`, with its trailing slash) and
/// the methods it answers — the table `routes()` is built from.
pub fn route_table() -> Vec<RouteSpec> {
    declared().into_table()
}

/// The Scenes Lambda's whole router.
pub fn router(state: AppState) -> Router {
    api(routes(), state)
}

fn scene_id(raw: &str) -> Result<SceneId, Error> {
    SceneId::parse(raw).ok_or(Error::NotFound)
}

fn one(scene: &Scene) -> Response {
    with_etag(scene.version, axum::Json(views::scene(scene)))
}

fn story_ref(v: &Value) -> Result<StoryId, String> {
    let raw = string(v)?.trim();
    StoryId::parse(raw)
        .ok_or_else(|| format!("Invalid pk \"{}\" - object does not exist.", raw.chars().take(64).collect::<String>()))
}
fn kind(v: &Value) -> Result<SceneKind, String> {
    SceneKind::parse(string(v)?)
}
fn title(v: &Value) -> Result<SceneTitle, String> {
    SceneTitle::parse(string(v)?)
}
fn description(v: &Value) -> Result<Description, String> {
    Description::parse(string(v)?)
}
fn duration(v: &Value) -> Result<SceneDuration, String> {
    SceneDuration::parse(number(v)?)
}
fn order(v: &Value) -> Result<u32, String> {
    let n = integer(v)?;
    u32::try_from(n).map_err(|_| "Ensure this value is greater than or equal to 0.".to_owned())
}

fn new_scene(body: &Map<String, Value>) -> Result<NewScene, Error> {
    let mut f = Fields::new(body);
    let story = f.required("story", story_ref);
    let order = f.optional("order", order);
    let kind = f.optional("kind", kind);
    let title = f.optional("title", title);
    let description = f.optional("description", description);
    let duration = f.required("duration_seconds", duration);
    f.finish()?;
    match (story, duration) {
        (Some(story), Some(duration_seconds)) => Ok(NewScene {
            story,
            order,
            kind: kind.unwrap_or(SceneKind::Main),
            title: title.unwrap_or_default(),
            description: description.unwrap_or_default(),
            duration_seconds,
        }),
        _ => Err(Error::internal("required fields were checked")),
    }
}

/// PUT (`partial = false`: `duration_seconds` required) or PATCH. `story` and `order` may be sent
/// back unchanged (as a client that GETs, edits and PUTs does) but not changed here.
fn scene_edit(body: &Map<String, Value>, partial: bool, current: Option<&Scene>) -> Result<SceneEdit, Error> {
    let mut f = Fields::new(body);
    let edit = SceneEdit {
        kind: f.optional("kind", kind),
        title: f.optional("title", title),
        description: f.optional("description", description),
        duration_seconds: if partial {
            f.optional("duration_seconds", duration)
        } else {
            f.required("duration_seconds", duration)
        },
    };
    if let (Some(story), Some(current)) = (f.optional("story", story_ref), current)
        && story != current.story
    {
        f.error("story", "A scene cannot move to another story.");
    }
    if let (Some(order), Some(current)) = (f.optional("order", order), current)
        && order != current.order
    {
        f.error("order", "Use POST scenes/{id}/reorder/ to move a scene.");
    }
    f.finish()?;
    Ok(edit)
}

fn filter(query: &QueryParams, errors: &mut FieldErrors) -> SceneFilter {
    let mut filter = SceneFilter::default();
    if let Some(raw) = query.get("story").filter(|s| !s.is_empty()) {
        match StoryId::parse(raw) {
            Some(id) => filter.story = Some(id),
            None => errors.add("story", "Enter a valid id."),
        }
    }
    if let Some(raw) = query.get("kind").filter(|s| !s.is_empty()) {
        match SceneKind::parse(raw) {
            Ok(k) => filter.kind = Some(k),
            Err(m) => errors.add("kind", m),
        }
    }
    if let Some(raw) = query.get("status").filter(|s| !s.is_empty()) {
        match SceneStatus::parse(raw) {
            Ok(s) => filter.status = Some(s),
            Err(m) => errors.add("status", m),
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
    let orderings = [("order", false), ("-order", true), ("created_at", false), ("-created_at", true)];
    let (listing, index) = Listing::parse(&query, &state.cursors, &caller.user, "scenes".into(), &orderings, errors)?;
    let ordering = if index < 2 { ChildOrdering::Order } else { ChildOrdering::CreatedAt };
    let page = state.plans.scenes(&caller.user, &filter, ordering, &listing.page).await?;
    Ok(listing.respond(page, &state.cursors, &uri, &headers, |s| views::scene(&s)))
}

async fn create(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let new = new_scene(&body)?;
    let mut scenes = state.plans.create_scenes(&caller.user, vec![new], keyed.map(|k| k.0.0)).await?;
    let scene = scenes.pop().ok_or_else(|| Error::internal("no scene created"))?;
    Ok(created(&format!("{API_PREFIX}/scenes/{}/", scene.id), scene.version, views::scene(&scene)))
}

/// `bulk_create/`: a list of scenes (or `{"scenes": [...]}`), created all or none.
async fn bulk_create(
    State(state): State<AppState>,
    caller: Caller,
    keyed: Option<axum::Extension<CreationId>>,
    JsonBody(bytes): JsonBody,
) -> ApiResult<Response> {
    let value = parse_value(&bytes)?;
    let items = match value {
        Value::Array(items) => items,
        Value::Object(mut object) => match object.remove("scenes") {
            Some(Value::Array(items)) => items,
            Some(_) => return Err(Error::field("scenes", "Expected a list of items.").into()),
            None => return Err(Error::field("scenes", "This field is required.").into()),
        },
        _ => {
            return Err(Error::field("non_field_errors", "Expected a list of scenes.").into());
        }
    };
    if items.is_empty() {
        return Err(Error::field("non_field_errors", "This list may not be empty.").into());
    }
    if items.len() > MAX_BULK {
        return Err(Error::field("non_field_errors", format!("Ensure this list has at most {MAX_BULK} scenes.")).into());
    }
    let mut errors = FieldErrors::new();
    let mut scenes = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let Some(object) = item.as_object() else {
            errors.add(&format!("{i}.non_field_errors"), "Expected a dictionary.");
            continue;
        };
        match new_scene(object) {
            Ok(scene) => scenes.push(scene),
            Err(e @ Error::Validation(_)) => {
                if let Error::Validation(named) = e.at_position(Some(i)) {
                    for (field, messages) in named.0 {
                        for m in messages {
                            errors.add(&field, m);
                        }
                    }
                }
            }
            Err(other) => return Err(other.into()),
        }
    }
    errors.into_result()?;
    let created_scenes = state.plans.create_scenes(&caller.user, scenes, keyed.map(|k| k.0.0)).await?;
    let body: Vec<Value> = created_scenes.iter().map(views::scene).collect();
    Ok((StatusCode::CREATED, axum::Json(json!(body))).into_response())
}

async fn retrieve(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> ApiResult<Response> {
    Ok(one(&state.plans.scene(&caller.user, &scene_id(&id)?).await?))
}

async fn edit(
    state: &AppState,
    caller: &Caller,
    id: &str,
    expected: Option<u64>,
    body: &Map<String, Value>,
    partial: bool,
) -> ApiResult<Response> {
    let id = scene_id(id)?;
    // Only a body that names `story` or `order` needs the current scene to compare against.
    let current = if body.contains_key("story") || body.contains_key("order") {
        Some(state.plans.scene(&caller.user, &id).await?)
    } else {
        None
    };
    let edit = scene_edit(body, partial, current.as_ref())?;
    Ok(one(&state.plans.edit_scene(&caller.user, &id, edit, expected).await?))
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
    state.plans.delete_scene(&caller.user, &scene_id(&id)?, expected).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `reorder/`: `{"order": n}`; the story's other scenes are renumbered in the same write.
async fn reorder(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    IfMatch(expected): IfMatch,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = scene_id(&id)?;
    let mut f = Fields::new(&body);
    let target = f.required("order", order);
    f.finish()?;
    let target = target.ok_or_else(|| Error::field("order", "This field is required."))?;
    Ok(one(&state.plans.reorder_scene(&caller.user, &id, target, expected).await?))
}

/// `scenes/{id}/generate/`: renders the scene's selected prompts on its own (a preview-quality
/// clip, not part of a render); 202 with the job.
async fn generate(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    keyed: Option<axum::Extension<CreationId>>,
    JsonObject(body): JsonObject,
) -> ApiResult<Response> {
    let id = scene_id(&id)?;
    let options = render_options(&body, RenderOptions::preview_defaults())?;
    // With an Idempotency-Key the job's id comes from the key: a retry finds it again.
    let job = state.jobs.generate_scene(&caller.user, &id, options, keyed.map(|k| k.0.0)).await?;
    Ok(accepted(&state, None, &[job]).await)
}
