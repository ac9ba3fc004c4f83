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
        "created_at": s.created_at,
        "updated_at": s.updated_at,
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
        "result": media(j.result.as_ref(), links),
        "waiting_for": j.waiting_for,
        "render": j.render,
        "queued_at": j.queued_at,
        "started_at": j.started_at,
        "finished_at": j.finished_at,
        "version": j.version,
    })
}
