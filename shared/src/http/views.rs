//! How objects look on the wire (the response shapes, kept apart from domain and stored types).

use serde_json::{Value, json};

use crate::domain::job::Job;
use crate::domain::prompt::ScenePrompt;
use crate::domain::scene::Scene;
use crate::domain::story::{RenderedMedia, Story};
use crate::domain::transition::StoryStateTransition;
use crate::ports::SignedUrl;

/// Signed download links by media key, issued before the view is drawn.
pub type MediaLinks = std::collections::HashMap<String, SignedUrl>;

fn media(media: Option<&RenderedMedia>, links: &MediaLinks) -> Value {
    // Null until a video exists, as SPEC §3 says; the link is signed per read, for the owner.
    media.map_or(Value::Null, |m| {
        let link = links.get(&m.key);
        json!({
            "url": link.map(|l| l.url.clone()),
            "expires_at": link.map(|l| l.expires_at),
            "duration_seconds": m.duration_seconds,
            "width": m.width,
            "height": m.height,
            "fps": m.fps,
            "format": m.format,
            "size_bytes": m.size_bytes,
        })
    })
}

/// A story as the API returns it.
pub fn story(s: &Story, links: &MediaLinks) -> Value {
    json!({
        "id": s.id,
        "owner": s.owner,
        "project": s.project,
        "title": s.title,
        "description": s.description,
        "duration_seconds": s.duration_seconds,
        "fps": s.fps,
        "resolution": s.resolution,
        "ai_provider": s.ai_provider,
        "style_preset": s.style_preset,
        "status": s.status,
        "is_locked": s.is_locked,
        "locked_at": s.locked_at,
        "version": s.version,
        "preview": media(s.preview.as_ref(), links),
        "final": media(s.final_video.as_ref(), links),
        "failure_reason": s.failure_reason,
        "budget_usd": s.budget_usd,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// One event of the feed.
pub fn event(e: &crate::domain::events::Event) -> Value {
    json!({
        "id": e.id,
        "type": e.kind.as_str(),
        "created_at": e.created_at,
        "story": e.story,
        "job": e.job,
        "data": e.data,
    })
}

/// A webhook endpoint; `with_secret` only in the answer that creates it.
pub fn webhook(w: &crate::domain::webhooks::Webhook, with_secret: bool) -> Value {
    let mut view = json!({
        "id": w.id,
        "url": w.url,
        "event_types": w.event_types.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
        "description": w.description,
        "is_active": w.is_active,
        "created_at": w.created_at,
        "consecutive_failures": w.consecutive_failures,
        "disabled_reason": w.disabled_reason,
    });
    if with_secret && let Some(object) = view.as_object_mut() {
        object.insert("secret".into(), json!(w.secret));
    }
    view
}

/// One entry of a webhook's delivery log.
pub fn delivery_attempt(a: &crate::domain::webhooks::DeliveryAttempt) -> Value {
    json!({
        "id": a.id,
        "event": a.event,
        "event_type": a.event_type.as_str(),
        "attempt": a.attempt,
        "status_code": a.status_code,
        "duration_ms": a.duration_ms,
        "response_excerpt": a.response_excerpt,
        "error": a.error,
        "created_at": a.created_at,
    })
}

/// A delivery on its way (the answer of `redeliver/` and `ping/`).
pub fn webhook_delivery(d: &crate::domain::webhooks::WebhookDelivery) -> Value {
    json!({
        "webhook": d.webhook,
        "event": event(&d.event),
        "state": d.state,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
    })
}

/// One history record.
pub fn transition(t: &StoryStateTransition) -> Value {
    json!({
        "story": t.story,
        "sequence": t.sequence,
        "from": t.from,
        "to": t.to,
        "actor": t.actor,
        "reason": t.reason,
        "at": t.at,
    })
}

/// A scene as the API returns it.
pub fn scene(s: &Scene) -> Value {
    json!({
        "id": s.id,
        "story": s.story,
        "order": s.order,
        "kind": s.kind,
        "title": s.title,
        "description": s.description,
        "start_seconds": s.start_seconds,
        "duration_seconds": s.duration_seconds,
        "status": s.status,
        "media": media(s.media.as_ref(), &MediaLinks::new()),
        "version": s.version,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
    })
}

/// A prompt as the API returns it.
pub fn prompt(p: &ScenePrompt) -> Value {
    json!({
        "id": p.id,
        "scene": p.scene,
        "story": p.story,
        "prompt_type": p.prompt_type,
        "text": p.text,
        "parameters": p.parameters,
        "is_selected": p.is_selected,
        "version": p.version,
        "created_at": p.created_at,
        "updated_at": p.updated_at,
    })
}

/// A job as the API returns it.
pub fn job(j: &Job, links: &MediaLinks) -> Value {
    json!({
        "id": j.id,
        "owner": j.owner,
        "story": j.story,
        "scene": j.scene,
        "kind": j.kind,
        "status": j.status,
        "priority": j.priority,
        "attempts": j.attempts,
        "max_attempts": j.max_attempts,
        "progress": j.progress,
        "provider": j.provider,
        "provider_task_id": j.provider_task_id,
        "cost_usd": j.cost_usd,
        "error": j.error,
        "failure_code": j.failure_code,
        "result": media(j.result.as_ref(), links),
        "waiting_for": j.waiting_for,
        "render": j.render.as_ref().map(render_spec),
        "queued_at": j.queued_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "version": j.version,
    })
}

/// A render's spec as its owner sees it: the provider's terms without the secret's name, which
/// only admins see.
fn render_spec(spec: &crate::domain::render::RenderSpec) -> Value {
    let mut v = serde_json::to_value(spec).unwrap_or(Value::Null);
    if let Some(terms) = v.get_mut("terms").and_then(Value::as_object_mut) {
        terms.remove("secret_name");
    }
    v
}

/// The JSON Schemas of the views above (and of the answers built from them), by component name,
/// for the OpenAPI document. Kept beside the views so the two change together; a test validates
/// real answers against them, and every object is closed (`additionalProperties: false`) so a
/// field added to a view without its schema fails that test.
pub fn schemas() -> serde_json::Map<String, Value> {
    use crate::domain::job::FailureCode;
    use crate::domain::job::{JobKind, JobPriority, JobStatus};
    use crate::domain::prompt::PromptType;
    use crate::domain::provider::Quality;
    use crate::domain::render::{RenderStage, VideoFormat};
    use crate::domain::scene::{SceneKind, SceneStatus};
    use crate::domain::state_machine::StoryStatus;
    use crate::domain::values::AiProvider;

    use crate::http::openapi::choice;
    /// A closed object whose every property is always present.
    fn closed(properties: Value) -> Value {
        let required: Vec<String> = properties.as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }
    fn reference(name: &str) -> Value {
        json!({"$ref": format!("#/components/schemas/{name}")})
    }
    fn nullable(name: &str) -> Value {
        json!({"oneOf": [reference(name), {"type": "null"}]})
    }
    fn list_of(name: &str) -> Value {
        closed(json!({
            "next": {"type": ["string", "null"], "description": "The next page's link."},
            "previous": {"type": ["string", "null"], "description": "The previous page's link."},
            "results": {"type": "array", "items": reference(name)},
        }))
    }
    fn counts() -> Value {
        json!({"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}})
    }
    let id = json!({"type": "string"});
    let time = json!({"type": "string", "format": "date-time"});
    let maybe_time = json!({"type": ["string", "null"], "format": "date-time"});
    let count = json!({"type": "integer", "minimum": 0});
    let money = json!({"type": "number", "minimum": 0});
    let maybe_text = json!({"type": ["string", "null"]});
    let webhook_properties = json!({
        "id": id, "url": {"type": "string"},
        "event_types": {"type": "array", "items": {"type": "string"}},
        "description": {"type": "string"}, "is_active": {"type": "boolean"}, "created_at": time,
        "consecutive_failures": count, "disabled_reason": maybe_text,
    });
    let prices = closed(json!({"low": money, "medium": money, "high": money}));
    let quality_cost = closed(json!({"quality": choice(Quality::ALL, Quality::as_str), "cost_usd": money}));

    let mut provider = closed(json!({
        "provider": choice(AiProvider::ALL, AiProvider::as_str),
        "enabled": {"type": "boolean"},
        "model": {"type": "string"},
        "price_per_second_usd": prices,
        "max_clip_seconds": count,
        "rate_limit_per_minute": count,
        "default_parameters": {"type": "object"},
        "version": count,
    }));
    // Admins only: present for them, absent for everyone else.
    provider["properties"]["secret_name"] = json!({"type": ["string", "null"]});

    let mut accepted =
        closed(json!({"jobs": {"type": "array", "items": reference("Job")}, "story": reference("Story")}));
    accepted["required"] = json!(["jobs"]);

    let scene_properties = json!({
        "id": id, "story": id, "order": count,
        "kind": choice(SceneKind::ALL, SceneKind::as_str),
        "title": {"type": "string"}, "description": {"type": "string"},
        "start_seconds": {"type": "number", "minimum": 0},
        "duration_seconds": {"type": "number", "exclusiveMinimum": 0},
        "status": choice(SceneStatus::ALL, SceneStatus::as_str),
        "media": nullable("Media"),
        "version": count, "created_at": time, "updated_at": time,
    });
    let mut scene_with_prompts = scene_properties.clone();
    scene_with_prompts["prompts"] = json!({"type": "array", "items": reference("Prompt")});

    let schemas = json!({
        "Media": closed(json!({
            "url": {"type": ["string", "null"], "description": "A signed link for the owner, issued on every read."},
            "expires_at": maybe_time,
            "duration_seconds": {"type": "number", "minimum": 0},
            "width": count, "height": count, "fps": count,
            "format": {"type": "string"},
            "size_bytes": count,
        })),
        "Story": closed(json!({
            "id": id, "owner": {"type": "string"},
            "project": {"type": ["integer", "null"]},
            "title": {"type": "string"}, "description": {"type": "string"},
            "duration_seconds": count, "fps": count, "resolution": {"type": "string"},
            "ai_provider": choice(AiProvider::ALL, AiProvider::as_str),
            "style_preset": {"type": "string"},
            "status": choice(&StoryStatus::ALL, StoryStatus::as_str),
            "is_locked": {"type": "boolean"}, "locked_at": maybe_time,
            "version": count,
            "preview": nullable("Media"), "final": nullable("Media"),
            "failure_reason": maybe_text,
            "budget_usd": {"type": ["number", "null"], "minimum": 0},
            "created_at": time, "updated_at": time,
        })),
        "Transition": closed(json!({
            "story": id, "sequence": count,
            "from": choice(&StoryStatus::ALL, StoryStatus::as_str),
            "to": choice(&StoryStatus::ALL, StoryStatus::as_str),
            "actor": {"type": "string", "description": "A user id, or `system`."},
            "reason": {"type": "string"}, "at": time,
        })),
        "Scene": closed(scene_properties),
        "SceneWithPrompts": closed(scene_with_prompts),
        "SceneArray": {"type": "array", "items": reference("Scene")},
        "Prompt": closed(json!({
            "id": id, "scene": id, "story": id,
            "prompt_type": choice(PromptType::ALL, PromptType::as_str),
            "text": {"type": "string"}, "parameters": {"type": "object"},
            "is_selected": {"type": "boolean"},
            "version": count, "created_at": time, "updated_at": time,
        })),
        "RenderSpec": closed(json!({
            "stage": choice(RenderStage::ALL, RenderStage::as_str),
            "quality": choice(Quality::ALL, Quality::as_str),
            "include_audio": {"type": "boolean"}, "watermark": {"type": "boolean"},
            "include_subtitles": {"type": "boolean"},
            "output_format": choice(VideoFormat::ALL, VideoFormat::as_str),
            "width": count, "height": count, "fps": count,
            "story_title": {"type": "string"},
            "terms": closed(json!({
                "model": {"type": "string"},
                "price_per_second_usd": money,
                "default_parameters": {"type": "object"},
                "rate_limit_per_minute": count,
            })),
        })),
        "Job": closed(json!({
            "id": id, "owner": {"type": "string"}, "story": id,
            "scene": {"type": ["string", "null"]},
            "kind": choice(JobKind::ALL, JobKind::as_str),
            "status": choice(JobStatus::ALL, JobStatus::as_str),
            "priority": choice(JobPriority::ALL, JobPriority::as_str),
            "attempts": count, "max_attempts": count,
            "progress": {"type": "integer", "minimum": 0, "maximum": 100},
            "provider": choice(AiProvider::ALL, AiProvider::as_str),
            "provider_task_id": maybe_text,
            "cost_usd": money,
            "error": maybe_text,
            "failure_code": {"oneOf": [choice(FailureCode::ALL, FailureCode::as_str), {"type": "null"}]},
            "result": nullable("Media"),
            "waiting_for": count,
            "render": nullable("RenderSpec"),
            "queued_at": time, "started_at": maybe_time, "finished_at": maybe_time,
            "version": count,
        })),
        "Provider": provider,
        "StoryList": list_of("Story"),
        "TransitionList": list_of("Transition"),
        "SceneList": list_of("Scene"),
        "PromptList": list_of("Prompt"),
        "JobList": list_of("Job"),
        "EventList": list_of("Event"),
        "ProviderList": {
            "type": "object",
            "properties": {"count": count, "next": {"type": "null"}, "previous": {"type": "null"}, "results": {"type": "array", "items": reference("Provider")}},
            "required": ["count", "next", "previous", "results"],
            "additionalProperties": false,
        },
        "Accepted": accepted,
        "ScenePlan": closed(json!({
            "story": reference("Story"),
            "scenes": {"type": "array", "items": reference("SceneWithPrompts")},
        })),
        "GeneratedPrompts": closed(json!({
            "writer": {"type": "string", "enum": ["template", "llm"]},
            "llm_error": maybe_text,
            "prompts": {"type": "array", "items": reference("Prompt")},
        })),
        "StoryStatistics": closed(json!({
            "total_stories": count, "by_status": counts(), "by_provider": counts(),
            "planned_seconds": count, "previews_rendered": count, "finals_rendered": count,
            "seconds_rendered": {"type": "number", "minimum": 0}, "locked_stories": count,
        })),
        "JobStatistics": closed(json!({
            "total_jobs": count, "by_status": counts(), "by_kind": counts(), "by_provider": counts(),
            "seconds_rendered": {"type": "number", "minimum": 0}, "cost_usd": money,
            "success_rate": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "mean_processing_seconds": {"type": ["number", "null"], "minimum": 0},
        })),
        "Event": closed(json!({
            "id": {"type": "string"},
            // `webhook.ping` only in the answers of `ping/` and in deliveries, never in the feed.
            "type": {"type": "string", "enum": crate::domain::events::EventType::ALL.iter().chain([&crate::domain::events::EventType::WebhookPing]).map(|t| t.as_str()).collect::<Vec<_>>()},
            "created_at": time,
            "story": {"type": ["string", "null"]},
            "job": {"type": ["string", "null"]},
            "data": {"type": "object"},
        })),
        "Usage": closed(json!({
            "user": {"type": "string"},
            "month": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
            "spent_usd": money, "reserved_usd": money,
            "cap_usd": {"type": ["number", "null"], "minimum": 0},
            "remaining_usd": {"type": ["number", "null"], "minimum": 0},
        })),
        "CostEstimate": closed(json!({
            "story": id,
            "provider": choice(AiProvider::ALL, AiProvider::as_str),
            "model": {"type": "string"},
            "seconds": count,
            "preview": {"type": "array", "items": quality_cost},
            "final": {"type": "array", "items": quality_cost},
            "total_usd": money,
            "estimated_render_seconds": {"type": "number", "minimum": 0},
        })),
    });
    // Webhooks (SPEC §8.6), apart: one `json!` of every schema is past the macro's recursion limit.
    let webhooks = json!({
        "WebhookList": list_of("Webhook"),
        "DeliveryAttemptList": list_of("DeliveryAttempt"),
        "Webhook": closed(webhook_properties.clone()),
        "WebhookCreated": closed({
            let mut created = webhook_properties;
            created["secret"] = json!({"type": "string", "pattern": "^whsec_[A-Za-z0-9+/=]{32,}$", "description": "Signs every delivery (Standard Webhooks); shown only here."});
            created
        }),
        "DeliveryAttempt": closed(json!({
            "id": id,
            "event": {"type": "string", "description": "The event's id (the `webhook-id` header)."},
            "event_type": {"type": "string"},
            "attempt": {"type": "integer", "minimum": 1},
            "status_code": {"type": ["integer", "null"]},
            "duration_ms": count,
            "response_excerpt": {"type": "string", "maxLength": 1024},
            "error": maybe_text,
            "created_at": time,
        })),
        "WebhookDelivery": closed(json!({
            "webhook": id,
            "event": reference("Event"),
            "state": {"type": "string", "enum": ["pending", "delivered", "failed", "abandoned"]},
            "attempts": count,
            "next_attempt_at": time,
        })),
    });
    let mut all = schemas.as_object().cloned().unwrap_or_default();
    all.extend(webhooks.as_object().cloned().unwrap_or_default());
    all
}
