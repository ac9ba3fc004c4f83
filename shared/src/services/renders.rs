//! What happens to a render when one of its jobs fails or is cancelled, decided once for the
//! worker (a scene that gave up) and the Jobs API (an owner's `cancel/`).

use chrono::{DateTime, Utc};

use crate::domain::ids::Actor;
use crate::domain::job::Job;
use crate::domain::render::called_off;
use crate::domain::state_machine::{Mover, StoryStatus};
use crate::domain::values::Reason;
use crate::ports::StoryEffect;

/// A failure reason that fits the story's `failure_reason` (control characters blanked, cut to
/// the field's limit).
pub fn failure_reason(text: &str) -> Option<Reason> {
    let clean: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).take(1000).collect();
    Reason::parse(&clean).ok()
}

/// The writes that fail a render: `ended` (a job of the render, already failed or cancelled),
/// the render's other jobs that have not started called off, and the story moved to FAILED with
/// `reason`. A job that belongs to no render (a single scene or prompt test) ends alone.
pub fn fail_render(
    ended: Job,
    story_jobs: &[Job],
    mover: Mover,
    actor: Actor,
    reason: &str,
    now: DateTime<Utc>,
) -> (Vec<Job>, Option<StoryEffect>) {
    let Some(render) = ended.render.clone().filter(|_| ended.compose_job.is_some() || ended.composes()) else {
        return (vec![ended], None);
    };
    let effect = StoryEffect {
        owner: ended.owner.clone(),
        story: ended.story.clone(),
        from: render.stage.rendering_status(),
        to: StoryStatus::Failed,
        mover,
        actor,
        reason: failure_reason(reason),
        media: None,
        at: now,
    };
    let mut writes = called_off(&ended, story_jobs, now);
    writes.insert(0, ended);
    (writes, Some(effect))
}
