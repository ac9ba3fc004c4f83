//! The event feed (SPEC §8.5): one event per state change, derived here from the change itself and
//! written by the stores in the same atomic write as the change — so a change and its event exist
//! together or not at all, and a duplicate delivery (whose write is refused by its version
//! condition) adds none.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::domain::ids::{JobId, StoryId, UserId};
use crate::domain::job::{Job, JobStatus};
use crate::domain::state_machine::StoryStatus;
use crate::domain::story::{RenderedMedia, Story};
use crate::domain::transition::StoryStateTransition;

/// How long events are kept.
pub const EVENT_RETENTION_DAYS: i64 = 7;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    /// A story moved (`{from, to, reason}`).
    #[serde(rename = "story.status_changed")]
    StoryStatusChanged,
    /// A job's status changed (`{from, to, failure_code}`).
    #[serde(rename = "job.status_changed")]
    JobStatusChanged,
    /// A job's progress passed a 10 % step (`{progress}`).
    #[serde(rename = "job.progress")]
    JobProgress,
    /// A preview or final video is ready (`{stage, media}`).
    #[serde(rename = "render.finished")]
    RenderFinished,
    /// A render failed (`{stage, reason}`).
    #[serde(rename = "render.failed")]
    RenderFailed,
    /// A paid start was refused by a limit (`{limit, estimate_usd, remaining_usd}`).
    #[serde(rename = "budget.exceeded")]
    BudgetExceeded,
    /// A webhook endpoint was disabled after failing too often (`{webhook, reason}`).
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled,
    /// A test delivery asked for with `ping/`, sent to that endpoint only and never listed.
    #[serde(rename = "webhook.ping")]
    WebhookPing,
}

impl EventType {
    /// Every type the feed lists (and webhooks subscribe to); `webhook.ping` is not one.
    pub const ALL: &'static [EventType] = &[
        EventType::StoryStatusChanged,
        EventType::JobStatusChanged,
        EventType::JobProgress,
        EventType::RenderFinished,
        EventType::RenderFailed,
        EventType::BudgetExceeded,
        EventType::WebhookDisabled,
    ];

    /// The API's name.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::StoryStatusChanged => "story.status_changed",
            EventType::JobStatusChanged => "job.status_changed",
            EventType::JobProgress => "job.progress",
            EventType::RenderFinished => "render.finished",
            EventType::RenderFailed => "render.failed",
            EventType::BudgetExceeded => "budget.exceeded",
            EventType::WebhookDisabled => "webhook.disabled",
            EventType::WebhookPing => "webhook.ping",
        }
    }

    /// Parses the API's name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        EventType::ALL
            .iter()
            .copied()
            .find(|t| t.as_str() == raw)
            .ok_or_else(|| format!("\"{raw}\" is not a valid choice."))
    }
}

/// An event before the store gives it its id.
#[derive(Debug, Clone, PartialEq)]
pub struct EventDraft {
    /// Whose.
    pub owner: UserId,
    /// What.
    pub kind: EventType,
    /// The story it is about.
    pub story: Option<StoryId>,
    /// The job it is about.
    pub job: Option<JobId>,
    /// The details.
    pub data: Value,
    /// When it happened.
    pub at: DateTime<Utc>,
}

/// An event as stored and listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Sorts in order of creation (a ULID).
    pub id: String,
    /// Whose.
    pub owner: UserId,
    /// What (`type` in the API).
    #[serde(rename = "type")]
    pub kind: EventType,
    /// When.
    pub created_at: DateTime<Utc>,
    /// The story it is about.
    pub story: Option<StoryId>,
    /// The job it is about.
    pub job: Option<JobId>,
    /// The details.
    pub data: Value,
}

impl Event {
    /// `draft` with the id the store gave it.
    pub fn of(id: String, draft: EventDraft) -> Self {
        Self {
            id,
            owner: draft.owner,
            kind: draft.kind,
            created_at: draft.at,
            story: draft.story,
            job: draft.job,
            data: draft.data,
        }
    }

    /// When it may be forgotten.
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.created_at + chrono::Duration::days(EVENT_RETENTION_DAYS)
    }
}

/// A video's figures, without the link (links expire; the story's read issues a fresh one).
fn media_data(media: Option<&RenderedMedia>) -> Value {
    match media {
        Some(m) => json!({
            "duration_seconds": m.duration_seconds, "width": m.width, "height": m.height,
            "fps": m.fps, "format": m.format, "size_bytes": m.size_bytes,
        }),
        None => Value::Null,
    }
}

/// The events of one story move: `story.status_changed`, and `render.finished` or `render.failed`
/// when the move ends a render.
pub fn story_moved(story: &Story, record: &StoryStateTransition) -> Vec<EventDraft> {
    let draft = |kind, data| EventDraft {
        owner: story.owner.clone(),
        kind,
        story: Some(story.id.clone()),
        job: None,
        data,
        at: record.at,
    };
    let mut events = vec![draft(
        EventType::StoryStatusChanged,
        json!({"from": record.from, "to": record.to, "reason": record.reason}),
    )];
    let stage = match record.from {
        StoryStatus::Previewing => Some("preview"),
        StoryStatus::Finalizing => Some("final"),
        _ => None,
    };
    if let Some(stage) = stage {
        match record.to {
            StoryStatus::PreviewReady => events.push(draft(
                EventType::RenderFinished,
                json!({"stage": stage, "media": media_data(story.preview.as_ref())}),
            )),
            StoryStatus::Completed => events.push(draft(
                EventType::RenderFinished,
                json!({"stage": stage, "media": media_data(story.final_video.as_ref())}),
            )),
            StoryStatus::Failed => {
                events.push(draft(EventType::RenderFailed, json!({"stage": stage, "reason": record.reason})));
            }
            _ => {}
        }
    }
    events
}

/// What a job was before the change being written (set by every change of `Job`, never stored).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobBefore {
    /// Its status then.
    pub status: JobStatus,
    /// Its progress then.
    pub progress: u8,
}

/// The events of one job write: `job.status_changed` when its status changed, `job.progress` when
/// its progress entered a new 10 % step while it renders. None for a new job or a write that was
/// not a change of the job.
pub fn job_changed(job: &Job, at: DateTime<Utc>) -> Vec<EventDraft> {
    let Some(before) = job.changed_from else {
        return Vec::new();
    };
    let draft = |kind, data| EventDraft {
        owner: job.owner.clone(),
        kind,
        story: Some(job.story.clone()),
        job: Some(job.id.clone()),
        data,
        at,
    };
    let mut events = Vec::new();
    if before.status != job.status {
        events.push(draft(
            EventType::JobStatusChanged,
            json!({"from": before.status, "to": job.status, "failure_code": job.failure_code}),
        ));
    }
    if !job.status.is_terminal() && job.progress / 10 > before.progress / 10 {
        events.push(draft(EventType::JobProgress, json!({"progress": job.progress})));
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_round_trip_through_their_names() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Ok(*t));
            assert_eq!(serde_json::to_value(t).unwrap(), json!(t.as_str()));
        }
        assert!(EventType::parse("story.moved").is_err());
    }
}
