//! The API's OpenAPI 3.1 description, built from the code: every operation the functions' routers
//! serve (a test holds the two sets equal, and the template's), request schemas from the same
//! limits and choices the parsers enforce, response schemas beside the views that draw them
//! (`views::schemas`), and every error status the operation can answer with. Served at
//! `GET /api/ai-video/openapi.json` without a token; schemathesis runs against it in the test command.

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::job::{JobKind, JobPriority, JobStatus};
use crate::domain::planner::{MAX_SCENES, MIN_SCENES};
use crate::domain::prompt::{MAX_PARAMETERS_BYTES, PromptType};
use crate::domain::provider::Quality;
use crate::domain::render::VideoFormat;
use crate::domain::scene::{SceneDuration, SceneKind, SceneStatus};
use crate::domain::state_machine::StoryStatus;
use crate::domain::values::{
    AiProvider, Description, DurationSeconds, Fps, Project, PromptText, Reason, SceneTitle, StylePreset, Title,
};
use crate::http::{API_PREFIX, AppState, idempotency, views};

/// The document's path, under the API prefix.
pub const PATH: &str = "/openapi.json";

/// White space a parser trims from both ends of a text (Rust's `char::is_whitespace`).
const SPACE: &str = r"[\t\n\x0b\x0c\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// A character that is neither white space nor a control character: what a trimmed text starts
/// and ends with.
const VISIBLE: &str = r"[^\x00-\x20\x7f-\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]";
/// Inside a text: anything but control characters, except tab and line breaks.
const TEXT_INNER: &str = r"[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]";
/// Inside a one-line name: anything but control characters.
const LINE_INNER: &str = r"[^\x00-\x1f\x7f-\x9f]";

/// `core`, with any white space around it (the parsers trim it, as DRF's `CharField` does).
fn trimmed(core: &str) -> String {
    format!("^{SPACE}*(?:{core}){SPACE}*$")
}

/// A text of `min..=max` characters once trimmed, with `inner` characters between its ends.
fn text_pattern(min: usize, max: usize, inner: &str) -> String {
    let body = if max <= 1 { VISIBLE.to_owned() } else { format!("{VISIBLE}(?:{inner}{{0,{}}}{VISIBLE})?", max - 2) };
    if min == 0 { trimmed(&format!("(?:{body})?")) } else { trimmed(&body) }
}

/// The schema of a trimmed text field.
fn text(min: usize, max: usize, what: &str) -> Value {
    json!({
        "type": "string",
        "pattern": text_pattern(min, max, TEXT_INNER),
        "description": format!("{what}: {min}–{max} characters once surrounding white space is trimmed; no control characters but tab and line breaks."),
    })
}

/// A string choice, listing every value the parser accepts.
pub(crate) fn choice<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Value {
    json!({"type": "string", "enum": all.iter().map(|v| name(*v)).collect::<Vec<_>>()})
}

/// The same choice as a query filter, where an empty value means no filter.
fn choice_filter<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Value {
    let mut values: Vec<&str> = vec![""];
    values.extend(all.iter().map(|v| name(*v)));
    json!({"type": "string", "enum": values})
}

/// A server-issued id: a ULID in canonical form.
pub const ID_PATTERN: &str = "[0-7][0-9A-HJKMNP-TV-Z]{25}";

fn id() -> Value {
    json!({"type": "string", "pattern": format!("^{ID_PATTERN}$"), "description": "A ULID."})
}

/// An id in a query filter: trimmed, and empty means no filter.
fn id_filter() -> Value {
    json!({"type": "string", "pattern": trimmed(&format!("(?:{ID_PATTERN})?"))})
}

fn ai_provider() -> Value {
    choice(AiProvider::ALL, AiProvider::as_str)
}

/// An even number of pixels from 128 to 3840, with at most five digits (leading zeros allowed).
const SIDE: &str = "(?:0{0,2}(?:12[8]|1[3-9][02468]|[2-9][0-9][02468])|0?(?:[12][0-9]{2}[02468]|3[0-7][0-9][02468]|38[0-3][02468]|3840))";

fn resolution() -> Value {
    json!({
        "type": "string",
        "pattern": trimmed(&format!("{SIDE}x{SIDE}")),
        "description": "WIDTHxHEIGHT, both even, each 128–3840.",
        "examples": ["1920x1080"],
    })
}

/// The writable fields of a story.
fn story_fields() -> Map<String, Value> {
    let properties = json!({
        "title": text(Title::MIN, Title::MAX, "Title"),
        "project": {"type": ["integer", "null"], "minimum": 1, "maximum": Project::MAX, "description": "Client-side grouping."},
        "description": text(Description::MIN, Description::MAX, "Description"),
        "duration_seconds": {"type": "integer", "minimum": DurationSeconds::MIN, "maximum": DurationSeconds::MAX},
        "fps": {"type": "integer", "minimum": Fps::MIN, "maximum": Fps::MAX},
        "resolution": resolution(),
        "ai_provider": ai_provider(),
        "style_preset": text(StylePreset::MIN, StylePreset::MAX, "Visual style, e.g. cinematic, anime, documentary"),
        "budget_usd": {"type": ["number", "null"], "minimum": 0, "maximum": 1_000_000, "description": "The most this story's renders may cost (US dollars); null for no limit. A start that would pass it answers 409 budget_exceeded."},
    });
    properties.as_object().cloned().unwrap_or_default()
}

fn object(properties: Map<String, Value>, required: &[&str]) -> Value {
    json!({"type": "object", "properties": properties, "required": required})
}

fn render_options(stage: &str) -> Value {
    json!({
        "type": "object",
        "description": format!("Options of the {stage}; every one optional."),
        "properties": {
            "quality": choice(Quality::ALL, Quality::as_str),
            "include_audio": {"type": "boolean"},
            "watermark": {"type": "boolean"},
            "include_subtitles": {"type": "boolean"},
            "output_format": choice(VideoFormat::ALL, VideoFormat::as_str),
            "priority": choice(JobPriority::ALL, JobPriority::as_str),
        },
    })
}

fn scene_fields() -> Map<String, Value> {
    let properties = json!({
        "story": id(),
        "order": {"type": "integer", "minimum": 0, "maximum": u32::MAX},
        "kind": choice(SceneKind::ALL, SceneKind::as_str),
        "title": text(SceneTitle::MIN, SceneTitle::MAX, "Title"),
        "description": text(Description::MIN, Description::MAX, "Description"),
        "duration_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": SceneDuration::MAX},
    });
    properties.as_object().cloned().unwrap_or_default()
}

fn prompt_fields() -> Map<String, Value> {
    let properties = json!({
        "scene": id(),
        "prompt_type": choice(PromptType::ALL, PromptType::as_str),
        "text": text(PromptText::MIN, PromptText::MAX, "Prompt"),
        "parameters": {
            "type": "object",
            "description": format!("Seed, camera, motion, guidance… at most {MAX_PARAMETERS_BYTES} bytes of JSON."),

        },
    });
    properties.as_object().cloned().unwrap_or_default()
}

fn provider_fields() -> Map<String, Value> {
    let price = json!({"type": "number", "minimum": 0, "maximum": 100});
    let properties = json!({
        "enabled": {"type": "boolean"},
        "model": {"type": "string", "pattern": text_pattern(1, 200, LINE_INNER)},
        "price_per_second_usd": {
            "type": "object",
            "properties": {"low": price, "medium": price, "high": price},
            "required": ["low", "medium", "high"],
            "additionalProperties": false,
        },
        "max_clip_seconds": {"type": "integer", "minimum": 1, "maximum": 600},
        "rate_limit_per_minute": {"type": "integer", "minimum": 1, "maximum": 100_000},
        "secret_name": {"type": "string", "pattern": trimmed("[A-Za-z0-9/_+=.@-]{1,512}"), "description": "The Secrets Manager secret holding the provider's API key."},
        "default_parameters": {"type": "object",  "description": "At most 16 KiB of JSON."},
    });
    properties.as_object().cloned().unwrap_or_default()
}

const PROVIDER_REQUIRED: [&str; 5] =
    ["enabled", "model", "price_per_second_usd", "max_clip_seconds", "rate_limit_per_minute"];

/// The request bodies, by component name. `llm`: whether an LLM prompt writer is configured.
fn request_schemas(llm: bool) -> Map<String, Value> {
    let writers: &[&str] = if llm { &["template", "llm"] } else { &["template"] };
    // Fixed once created: sent back unchanged they are accepted, changed they are refused (400).
    let fixed = |mut fields: Map<String, Value>, names: &[&str]| {
        for name in names {
            fields.remove(*name);
        }
        fields
    };
    let mut provider_create = provider_fields();
    provider_create.insert("provider".into(), ai_provider());
    let mut provider_required = PROVIDER_REQUIRED.to_vec();
    provider_required.push("provider");
    let provider_edit = provider_fields();
    let schemas = json!({
        "StoryCreate": object(story_fields(), &["title"]),
        "StoryReplace": object(story_fields(), &["title"]),
        "StoryPatch": object(story_fields(), &[]),
        "TransitionRequest": {
            "type": "object",
            "properties": {
                "to": choice(&StoryStatus::ALL, StoryStatus::as_str),
                "reason": {"oneOf": [{"type": "null"}, text(Reason::MIN, Reason::MAX, "Why")]},
            },
            "required": ["to"],
            // Failing a story needs a reason.
            "if": {"properties": {"to": {"const": "FAILED"}}, "required": ["to"]},
            "then": {"properties": {"reason": text(1, Reason::MAX, "Why it failed")}, "required": ["reason"]},
        },
        "ScenesBulk": {
            "type": "object",
            "properties": {
                "scene_count": {"type": "integer", "minimum": MIN_SCENES, "maximum": MAX_SCENES},
                "replace": {"type": "boolean", "description": "Replace the story's scenes (409 without it when it has some)."},
            },
        },
        "GeneratePrompts": {
            "type": "object",
            "properties": {
                "prompt_type": choice(PromptType::ALL, PromptType::as_str),
                "writer": {"type": "string", "enum": writers, "description": "`llm` only where an LLM prompt writer is configured."},
            },
        },
        "PreviewOptions": render_options("preview"),
        "FinalOptions": render_options("final render"),
        "SceneCreate": object(scene_fields(), &["story", "duration_seconds"]),
        "SceneReplace": object(fixed(scene_fields(), &["story", "order"]), &["duration_seconds"]),
        "ScenePatch": object(fixed(scene_fields(), &["story", "order"]), &[]),
        "ScenesBulkCreate": {
            "description": "A list of scenes, or an object holding it under `scenes`; created all or none.",
            "oneOf": [
                {"type": "array", "items": {"$ref": "#/components/schemas/SceneCreate"}, "minItems": 1, "maxItems": 100},
                {
                    "type": "object",
                    "properties": {"scenes": {"type": "array", "items": {"$ref": "#/components/schemas/SceneCreate"}, "minItems": 1, "maxItems": 100}},
                    "required": ["scenes"],
                },
            ],
        },
        "Reorder": object(json!({"order": {"type": "integer", "minimum": 0, "maximum": u32::MAX}}).as_object().cloned().unwrap_or_default(), &["order"]),
        "PromptCreate": object(prompt_fields(), &["scene", "text"]),
        "PromptReplace": object(fixed(prompt_fields(), &["scene", "prompt_type"]), &["text"]),
        "PromptPatch": object(fixed(prompt_fields(), &["scene", "prompt_type"]), &[]),
        "ProviderCreate": object(provider_create, &provider_required),
        "ProviderReplace": object(provider_edit.clone(), &PROVIDER_REQUIRED),
        "ProviderPatch": object(provider_edit, &[]),
        "Empty": {"type": "object", "description": "No fields are read; an empty body is `{}`."},
        "WebhookCreate": object(webhook_fields(false), &["url"]),
        "WebhookPatch": object(webhook_fields(true), &[]),
        "UsageCap": object(
            json!({"cap_usd": {"type": ["number", "null"], "minimum": 0, "maximum": 1_000_000, "description": "The user's monthly cap in US dollars; null for no cap."}})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            &["cap_usd"],
        ),
    });
    schemas.as_object().cloned().unwrap_or_default()
}

/// The fields a webhook endpoint is written with (`is_active` only when changing one).
fn webhook_fields(changing: bool) -> Map<String, Value> {
    let types: Vec<&str> = crate::domain::events::EventType::ALL.iter().map(|t| t.as_str()).collect();
    let mut fields = json!({
        "url": {"type": "string", "minLength": 1, "maxLength": crate::domain::webhooks::MAX_URL_LENGTH, "pattern": "^https://", "description": "Where deliveries are POSTed: https, to a public address (checked now and at every attempt)."},
        "event_types": {"type": "array", "items": {"type": "string", "enum": types}, "description": "The types to deliver; empty: all."},
        "description": {"type": "string", "maxLength": crate::domain::webhooks::MAX_DESCRIPTION_LENGTH},
    });
    if changing {
        fields["is_active"] = json!({"type": "boolean", "description": "Off: nothing is delivered. Switching it on again clears `consecutive_failures` and `disabled_reason`."});
    }
    fields.as_object().cloned().unwrap_or_default()
}

/// The error body: `detail` or field errors, always a `code`.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "description": "DRF-shaped: `detail`, or one list of messages per field (`non_field_errors` for the body as a whole, `0.title` inside lists), and always `code`.",
        "properties": {
            "code": {"type": "string", "enum": crate::http::error::CODES},
            "detail": {"type": "string"},
            "current_status": choice(&StoryStatus::ALL, StoryStatus::as_str),
            "current_version": {"type": "integer", "minimum": 0},
            "alternative": {"type": "string", "description": "With `provider_retired`: what renders instead."},
        },
        "required": ["code"],
        "additionalProperties": {"type": "array", "items": {"type": "string"}},
    })
}

/// What an operation reads and answers.
#[derive(Clone, Copy)]
struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    id: &'static str,
    summary: &'static str,
    /// The request body's component, if the operation reads one.
    body: Option<&'static str>,
    /// The success status and its body's component (`None`: no body).
    ok: (u16, Option<&'static str>),
    /// Answers carry the object's `ETag`.
    etag: bool,
    /// Honours `If-Match`.
    if_match: bool,
    /// Can be refused by the state machine, a lock or a concurrent write.
    conflict: bool,
    /// Admins only.
    admin: bool,
    /// Query parameters (lists and filters).
    query: Query,
}

#[derive(Clone, Copy, PartialEq)]
enum Query {
    None,
    Stories,
    Scenes,
    Prompts,
    Jobs,
    Transitions,
    Events,
    Webhooks,
    Deliveries,
}

const fn op(method: &'static str, path: &'static str, id: &'static str, summary: &'static str) -> Op {
    Op {
        method,
        path,
        tag: "",
        id,
        summary,
        body: None,
        ok: (200, None),
        etag: false,
        if_match: false,
        conflict: false,
        admin: false,
        query: Query::None,
    }
}

/// Every operation of the API, by function.
fn operations() -> Vec<Op> {
    let mut ops = Vec::new();
    let mut group = |tag: &'static str, list: Vec<Op>| ops.extend(list.into_iter().map(|o| Op { tag, ..o }));
    let one = |o: Op, schema: &'static str| Op { ok: (200, Some(schema)), etag: true, ..o };
    let write = |o: Op, body: &'static str, schema: &'static str| Op {
        body: Some(body),
        ok: (200, Some(schema)),
        etag: true,
        if_match: true,
        conflict: true,
        ..o
    };
    let delete = |o: Op| Op { ok: (204, None), if_match: true, conflict: true, ..o };
    let create = |o: Op, body: &'static str, schema: &'static str| Op {
        body: Some(body),
        ok: (201, Some(schema)),
        etag: true,
        conflict: true,
        ..o
    };
    let action = |o: Op, body: &'static str, status: u16, schema: &'static str| Op {
        body: Some(body),
        ok: (status, Some(schema)),
        conflict: true,
        ..o
    };
    let list = |o: Op, query: Query, schema: &'static str| Op { ok: (200, Some(schema)), query, ..o };

    group(
        "stories",
        vec![
            list(op("get", "/stories/", "stories_list", "The caller's stories"), Query::Stories, "StoryList"),
            create(op("post", "/stories/", "stories_create", "Create a story (DRAFT)"), "StoryCreate", "Story"),
            Op {
                ok: (200, Some("StoryStatistics")),
                ..op("get", "/stories/statistics/", "stories_statistics", "Figures over the caller's stories")
            },
            one(op("get", "/stories/{id}/", "stories_retrieve", "One story"), "Story"),
            write(op("put", "/stories/{id}/", "stories_update", "Replace a story's fields"), "StoryReplace", "Story"),
            write(
                op("patch", "/stories/{id}/", "stories_partial_update", "Change some of a story's fields"),
                "StoryPatch",
                "Story",
            ),
            delete(op("delete", "/stories/{id}/", "stories_destroy", "Delete a story with its scenes and prompts")),
            write(
                op("post", "/stories/{id}/lock/", "stories_lock", "Freeze the story's scenes and prompts"),
                "Empty",
                "Story",
            ),
            write(op("post", "/stories/{id}/unlock/", "stories_unlock", "Unfreeze them"), "Empty", "Story"),
            write(
                op("post", "/stories/{id}/transition/", "stories_transition", "Move the story along its state machine"),
                "TransitionRequest",
                "Story",
            ),
            list(
                op("get", "/stories/{id}/transitions/", "stories_transitions", "The story's history"),
                Query::Transitions,
                "TransitionList",
            ),
            Op {
                ok: (201, Some("ScenePlan")),
                etag: true,
                ..action(
                    op(
                        "post",
                        "/stories/{id}/scenes/bulk/",
                        "stories_scenes_bulk",
                        "Plan the story's scenes (DRAFT → PLANNING)",
                    ),
                    "ScenesBulk",
                    201,
                    "ScenePlan",
                )
            },
            action(
                op(
                    "post",
                    "/stories/{id}/generate-prompts/",
                    "stories_generate_prompts",
                    "Write new prompts for every scene",
                ),
                "GeneratePrompts",
                200,
                "GeneratedPrompts",
            ),
            Op {
                ok: (200, Some("CostEstimate")),
                ..op(
                    "get",
                    "/stories/{id}/cost_estimate/",
                    "stories_cost_estimate",
                    "What a preview and a final would cost",
                )
            },
            Op {
                if_match: true,
                ..action(
                    op(
                        "post",
                        "/stories/{id}/generate_preview/",
                        "stories_generate_preview",
                        "Render the preview (PLANNED → PREVIEWING)",
                    ),
                    "PreviewOptions",
                    202,
                    "Accepted",
                )
            },
            Op {
                if_match: true,
                ..action(
                    op(
                        "post",
                        "/stories/{id}/render_final/",
                        "stories_render_final",
                        "Render the final (PREVIEW_READY → FINALIZING)",
                    ),
                    "FinalOptions",
                    202,
                    "Accepted",
                )
            },
            list(op("get", "/stories/{id}/jobs/", "stories_jobs", "The story's jobs"), Query::Jobs, "JobList"),
        ],
    );
    group(
        "scenes",
        vec![
            list(op("get", "/scenes/", "scenes_list", "The caller's scenes"), Query::Scenes, "SceneList"),
            create(op("post", "/scenes/", "scenes_create", "Add a scene to a story"), "SceneCreate", "Scene"),
            Op {
                etag: false,
                ..create(
                    op("post", "/scenes/bulk_create/", "scenes_bulk_create", "Add several scenes at once"),
                    "ScenesBulkCreate",
                    "SceneArray",
                )
            },
            one(op("get", "/scenes/{id}/", "scenes_retrieve", "One scene"), "Scene"),
            write(op("put", "/scenes/{id}/", "scenes_update", "Replace a scene's fields"), "SceneReplace", "Scene"),
            write(
                op("patch", "/scenes/{id}/", "scenes_partial_update", "Change some of a scene's fields"),
                "ScenePatch",
                "Scene",
            ),
            delete(op("delete", "/scenes/{id}/", "scenes_destroy", "Delete a scene and its prompts")),
            write(
                op("post", "/scenes/{id}/reorder/", "scenes_reorder", "Move a scene to another place"),
                "Reorder",
                "Scene",
            ),
            action(
                op("post", "/scenes/{id}/generate/", "scenes_generate", "Render the scene's clip on its own"),
                "PreviewOptions",
                202,
                "Accepted",
            ),
        ],
    );
    group(
        "prompts",
        vec![
            list(op("get", "/prompts/", "prompts_list", "The caller's prompts"), Query::Prompts, "PromptList"),
            create(op("post", "/prompts/", "prompts_create", "Add a prompt to a scene"), "PromptCreate", "Prompt"),
            one(op("get", "/prompts/{id}/", "prompts_retrieve", "One prompt"), "Prompt"),
            write(
                op("put", "/prompts/{id}/", "prompts_update", "Replace a prompt's fields"),
                "PromptReplace",
                "Prompt",
            ),
            write(
                op("patch", "/prompts/{id}/", "prompts_partial_update", "Change some of a prompt's fields"),
                "PromptPatch",
                "Prompt",
            ),
            delete(op("delete", "/prompts/{id}/", "prompts_destroy", "Delete a prompt")),
            write(
                op(
                    "post",
                    "/prompts/{id}/select/",
                    "prompts_select",
                    "Make it its scene's selected prompt of its type",
                ),
                "Empty",
                "Prompt",
            ),
            action(
                op("post", "/prompts/{id}/test/", "prompts_test", "Render this prompt as a test clip"),
                "PreviewOptions",
                202,
                "Accepted",
            ),
        ],
    );
    group(
        "jobs",
        vec![
            list(op("get", "/jobs/", "jobs_list", "The caller's jobs"), Query::Jobs, "JobList"),
            Op {
                ok: (200, Some("JobStatistics")),
                ..op("get", "/jobs/statistics/", "jobs_statistics", "Figures over the caller's jobs")
            },
            one(op("get", "/jobs/{id}/", "jobs_retrieve", "One job"), "Job"),
            action(
                op("post", "/jobs/{id}/retry/", "jobs_retry", "Queue a failed or cancelled job again"),
                "Empty",
                202,
                "Accepted",
            ),
            Op {
                etag: true,
                ..action(
                    op("post", "/jobs/{id}/cancel/", "jobs_cancel", "Cancel a queued, running or waiting job"),
                    "Empty",
                    200,
                    "Job",
                )
            },
            Op { ok: (200, Some("Usage")), ..op("get", "/usage/", "usage_retrieve", "The caller's spend this month") },
            list(op("get", "/events/", "events_list", "The caller's events, oldest first"), Query::Events, "EventList"),
            Op {
                ok: (200, Some("Usage")),
                admin: true,
                ..op("get", "/usage/{user}/", "usage_user_retrieve", "One user's spend this month (admins)")
            },
            Op {
                ok: (200, Some("Usage")),
                admin: true,
                body: Some("UsageCap"),
                ..op("put", "/usage/{user}/", "usage_user_update", "Set one user's monthly cap (admins)")
            },
            list(
                op("get", "/webhooks/", "webhooks_list", "The caller's webhook endpoints"),
                Query::Webhooks,
                "WebhookList",
            ),
            Op {
                body: Some("WebhookCreate"),
                ok: (201, Some("WebhookCreated")),
                conflict: true,
                ..op("post", "/webhooks/", "webhooks_create", "Register an endpoint (its secret is shown this once)")
            },
            Op { ok: (200, Some("Webhook")), ..op("get", "/webhooks/{id}/", "webhooks_retrieve", "One endpoint") },
            Op {
                body: Some("WebhookPatch"),
                ok: (200, Some("Webhook")),
                conflict: true,
                ..op(
                    "patch",
                    "/webhooks/{id}/",
                    "webhooks_partial_update",
                    "Change an endpoint, or switch it on or off",
                )
            },
            Op {
                ok: (204, None),
                ..op("delete", "/webhooks/{id}/", "webhooks_destroy", "Delete an endpoint with its deliveries and log")
            },
            list(
                op(
                    "get",
                    "/webhooks/{id}/deliveries/",
                    "webhooks_deliveries",
                    "The endpoint's delivery log, newest first",
                ),
                Query::Deliveries,
                "DeliveryAttemptList",
            ),
            action(
                op(
                    "post",
                    "/webhooks/{id}/deliveries/{delivery_id}/redeliver/",
                    "webhooks_redeliver",
                    "Send a logged attempt's event again (same webhook-id)",
                ),
                "Empty",
                202,
                "WebhookDelivery",
            ),
            action(
                op("post", "/webhooks/{id}/ping/", "webhooks_ping", "Send a webhook.ping event to this endpoint only"),
                "Empty",
                202,
                "WebhookDelivery",
            ),
        ],
    );
    group(
        "providers",
        vec![
            Op {
                ok: (200, Some("ProviderList")),
                ..op(
                    "get",
                    "/providers/",
                    "providers_list",
                    "Enabled providers with prices (admins: all, with secret names)",
                )
            },
            Op {
                admin: true,
                ..create(
                    op("post", "/providers/", "providers_create", "Store a provider's configuration"),
                    "ProviderCreate",
                    "Provider",
                )
            },
            one(op("get", "/providers/{provider}/", "providers_retrieve", "One provider's configuration"), "Provider"),
            Op {
                admin: true,
                ..write(
                    op("put", "/providers/{provider}/", "providers_update", "Replace a provider's configuration"),
                    "ProviderReplace",
                    "Provider",
                )
            },
            Op {
                admin: true,
                ..write(
                    op(
                        "patch",
                        "/providers/{provider}/",
                        "providers_partial_update",
                        "Change some of a provider's configuration",
                    ),
                    "ProviderPatch",
                    "Provider",
                )
            },
            Op {
                admin: true,
                etag: true,
                ..action(
                    op("post", "/providers/{provider}/disable/", "providers_disable", "Stop a provider from rendering"),
                    "Empty",
                    200,
                    "Provider",
                )
            },
            Op {
                admin: true,
                etag: true,
                ..action(
                    op("post", "/providers/{provider}/enable/", "providers_enable", "Let a provider render again"),
                    "Empty",
                    200,
                    "Provider",
                )
            },
        ],
    );
    ops
}

fn error_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    })
}

fn query_parameters(query: Query) -> Vec<Value> {
    let param = |name: &str, schema: Value, description: &str| json!({"name": name, "in": "query", "required": false, "schema": schema, "description": description});
    let (orderings, mut filters): (&[&str], Vec<Value>) = match query {
        Query::None => return Vec::new(),
        Query::Stories => (
            &["", "-created_at", "created_at"],
            vec![
                param("status", choice_filter(&StoryStatus::ALL, StoryStatus::as_str), "Only stories in this status."),
                param(
                    "project",
                    json!({"type": "string", "pattern": trimmed("(?:[+]?0*[1-9][0-9]{0,14})?")}),
                    "Only stories of this project.",
                ),
                param(
                    "ai_provider",
                    choice_filter(AiProvider::ALL, AiProvider::as_str),
                    "Only stories rendered by this provider.",
                ),
            ],
        ),
        Query::Scenes => (
            &["", "order", "-order", "created_at", "-created_at"],
            vec![
                param("story", id_filter(), "Only this story's scenes."),
                param("kind", choice_filter(SceneKind::ALL, SceneKind::as_str), "Only scenes of this kind."),
                param("status", choice_filter(SceneStatus::ALL, SceneStatus::as_str), "Only scenes in this status."),
            ],
        ),
        Query::Prompts => (
            &["", "created_at", "-created_at", "order", "-order"],
            vec![
                param("story", id_filter(), "Only this story's prompts."),
                param("scene", id_filter(), "Only this scene's prompts."),
                param("prompt_type", choice_filter(PromptType::ALL, PromptType::as_str), "Only prompts of this type."),
                param(
                    "is_selected",
                    json!({"type": "string", "enum": ["", "true", "True", "1", "false", "False", "0"]}),
                    "Only selected (or unselected) prompts.",
                ),
            ],
        ),
        Query::Jobs => (
            &["", "created_at", "-created_at"],
            vec![
                param("story", id_filter(), "Only this story's jobs."),
                param("scene", id_filter(), "Only this scene's jobs."),
                param("status", choice_filter(JobStatus::ALL, JobStatus::as_str), "Only jobs in this status."),
                param("kind", choice_filter(JobKind::ALL, JobKind::as_str), "Only jobs of this kind."),
            ],
        ),
        Query::Transitions => (&["", "at", "-at", "created_at", "-created_at"], Vec::new()),
        Query::Events => (
            &["", "created_at"],
            vec![
                param(
                    "after",
                    json!({"type": "string", "pattern": trimmed("(?:[0-9A-Za-z]{26})?")}),
                    "Only events after this event id.",
                ),
                param(
                    "wait",
                    json!({"type": "string", "pattern": trimmed("(?:[+]?0*(?:[0-9]|1[0-9]|20))?")}),
                    "Hold the request up to this many seconds (0–20) until an event exists (long poll).",
                ),
                param(
                    "type",
                    json!({"type": "string"}),
                    "Only events of these types (a comma list of story.status_changed, job.status_changed, job.progress, render.finished, render.failed, budget.exceeded, webhook.disabled).",
                ),
                param("story", id_filter(), "Only events about this story."),
            ],
        ),
        Query::Webhooks => (&["", "created_at"], Vec::new()),
        Query::Deliveries => (&["", "-created_at", "created_at"], Vec::new()),
    };
    filters.push(param("ordering", json!({"type": "string", "enum": orderings}), "Sort order."));
    filters.push(param(
        "page_size",
        json!({"type": "string", "pattern": trimmed("(?:[+]?[0-9]*[1-9][0-9]*)?")}),
        "Results per page, 1 and up (more than 100 counts as 100).",
    ));
    filters.push(param(
        "cursor",
        json!({"type": "string"}),
        "A page's position, from `next` or `previous`; one that was not issued for this list is 404.",
    ));
    filters
}

fn operation(o: &Op, all: &[Op]) -> Value {
    let mut parameters = Vec::new();
    if o.path.contains("{id}") {
        parameters.push(json!({"name": "id", "in": "path", "required": true, "schema": id()}));
    }
    if o.path.contains("{delivery_id}") {
        parameters.push(json!({"name": "delivery_id", "in": "path", "required": true, "schema": id(), "description": "A delivery log entry's id."}));
    }
    if o.path.contains("{user}") {
        parameters.push(json!({"name": "user", "in": "path", "required": true, "schema": {"type": "string", "minLength": 1, "maxLength": 255}}));
    }
    if o.path.contains("{provider}") {
        parameters.push(json!({"name": "provider", "in": "path", "required": true, "schema": ai_provider()}));
    }
    parameters.extend(query_parameters(o.query));
    if o.if_match {
        parameters.push(json!({
            "name": "If-Match", "in": "header", "required": false,
            "schema": {"type": "string", "pattern": trimmed("(?:\\*|(?:W/)?\"[!#-~]*\"(?:[ \\t]*,[ \\t]*(?:W/)?\"[!#-~]*\")*)?")},
            "description": "`*` or a list of entity tags (RFC 9110): a strong tag naming the current version matches; any other well-formed tag (weak tags included) answers 412.",
        }));
    }
    if o.method == "post" {
        parameters.push(json!({
            "name": "Idempotency-Key", "in": "header", "required": false,
            "schema": {"type": "string", "pattern": format!("^[!-~]{{1,{}}}$", idempotency::MAX_KEY_LEN)},
            "description": "The same key with the same request within 24 h answers the first response again; with another request, 422.",
        }));
    }

    let mut responses = Map::new();
    let (status, schema) = o.ok;
    let mut ok = json!({"description": match status {
        201 => "Created.",
        202 => "Accepted: the work is queued.",
        204 => "Deleted.",
        _ => "OK.",
    }});
    if let Some(schema) = schema {
        ok["content"] = json!({"application/json": {"schema": {"$ref": format!("#/components/schemas/{schema}")}}});
    }
    let mut headers = Map::new();
    if o.etag {
        headers.insert(
            "ETag".into(),
            json!({"schema": {"type": "string"}, "required": true, "description": "The object's version."}),
        );
    }
    if status == 201 && o.etag && o.tag != "providers" {
        headers.insert("Location".into(), json!({"schema": {"type": "string"}, "required": true}));
    }
    if !headers.is_empty() {
        ok["headers"] = Value::Object(headers);
    }
    // What a creation answers leads to everything done with the object it created (the
    // `/x/{id}/…` operations of its collection `/x/`): links for clients and for stateful tests.
    if status == 201 && o.path.matches('/').count() == 2 {
        let links: Map<String, Value> = all
            .iter()
            .filter(|other| other.path.starts_with(&format!("{}{{id}}/", o.path)))
            .map(|other| {
                (other.id.to_owned(), json!({"operationId": other.id, "parameters": {"id": "$response.body#/id"}}))
            })
            .collect();
        ok["links"] = Value::Object(links);
    }
    responses.insert(status.to_string(), ok);

    let has_body = o.body.is_some();
    let bad_request = has_body || o.query != Query::None || o.if_match || o.method == "post";
    if bad_request {
        responses.insert(
            "400".into(),
            error_response("Invalid: field errors (`invalid`) or a body that is not JSON (`parse_error`)."),
        );
    }
    responses.insert("401".into(), error_response("No token, or one that is not valid or has expired."));
    if o.admin {
        responses.insert("403".into(), error_response("Only admins may do this."));
    }
    let names_something = o.path.contains('{') || o.body.is_some() || o.query != Query::None;
    if names_something {
        responses.insert(
            "404".into(),
            error_response("No such object, or not the caller's; or a cursor not issued for this list."),
        );
    }
    if o.conflict || o.method == "post" {
        responses.insert(
            "409".into(),
            error_response("Refused by the state machine, a lock or the current state (`current_status` tells it), or an Idempotency-Key still in progress."),
        );
    }
    if o.if_match {
        responses.insert(
            "412".into(),
            error_response("`If-Match` names an older version (`current_version` tells the current one)."),
        );
    }
    if has_body {
        responses.insert("413".into(), error_response("A body over 1 MiB."));
        responses.insert("415".into(), error_response("A body that is not JSON."));
    }
    if o.method == "post" {
        responses.insert("422".into(), error_response("An Idempotency-Key used before with another request."));
    }

    let mut operation = json!({
        "operationId": o.id,
        "summary": o.summary,
        "tags": [o.tag],
        "parameters": parameters,
        "responses": responses,
    });
    if let Some(body) = o.body {
        operation["requestBody"] = json!({
            // An empty body counts as `{}`: optional where every field is.
            "required": o.method != "patch" && !matches!(body, "Empty" | "PreviewOptions" | "FinalOptions" | "ScenesBulk" | "GeneratePrompts"),
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{body}")}}},
        });
    }
    operation
}

/// The whole document. `llm`: whether an LLM prompt writer is configured (it adds a choice).
pub fn document(llm: bool) -> Value {
    let mut paths = Map::new();
    let all = operations();
    for o in &all {
        let path = format!("{API_PREFIX}{}", o.path);
        let item = paths.entry(path).or_insert_with(|| json!({}));
        item[o.method] = operation(o, &all);
    }
    let mut schemas = request_schemas(llm);
    schemas.extend(views::schemas());
    schemas.insert("Error".into(), error_schema());
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "AI Video Generation API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Story → 12 timed scenes → prompts → preview render → final render. Every path also answers without its trailing slash. Writes to the same object race safely: every state change is one conditional write.",
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "tags": [
            {"name": "stories"}, {"name": "scenes"}, {"name": "prompts"}, {"name": "jobs"}, {"name": "providers"},
        ],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "`sub` is the user; role `admin` from `roles` or `cognito:groups`."},
            },
            "schemas": schemas,
        },
    })
}

/// The (method, path) of every documented operation, paths with the API prefix.
pub fn documented_routes() -> Vec<(String, String)> {
    operations().iter().map(|o| (o.method.to_uppercase(), format!("{API_PREFIX}{}", o.path))).collect()
}

/// `GET /api/ai-video/openapi.json`: the document for this process's configuration (built per
/// request: a fraction of a millisecond, and rarely asked for).
pub async fn serve(State(state): State<AppState>) -> Response {
    axum::Json(document(state.plans.has_llm())).into_response()
}
