//! The sweep (SPEC §8.2) where the queue cannot be looked into (SQS): every minute, work under way
//! is checked against the store. A job that waits for a worker longer than it should (queued, or
//! started with its lease run out) gets a message — a duplicate is harmless, a claim has one
//! winner — and a story still rendering whose render's jobs have all finished without composing is
//! failed with a reason. On the embedded backend `EmbeddedQueue::sweep` does the same exactly
//! (it sees which jobs have a message).

use std::sync::Arc;
use std::time::Duration;

use crate::domain::error::Result;
use crate::domain::ids::Actor;
use crate::domain::job::{Job, JobStatus};
use crate::domain::state_machine::{Mover, StoryStatus};
use crate::ports::{Clock, Committed, JobMessage, JobQueue, JobStore, StoryEffect, StoryStore};
use crate::services::failure_reason;

/// What one sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Jobs that waited too long and were sent a message.
    pub jobs_resent: usize,
    /// Stories left rendering with their render finished, failed with a reason.
    pub stories_failed: usize,
    /// Events older than their 7 days, forgotten (on stores without a TTL of their own).
    pub events_forgotten: usize,
}

/// The sweep's use case.
#[derive(Clone)]
pub struct Sweeper {
    jobs: Arc<dyn JobStore>,
    stories: Arc<dyn StoryStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    events: Option<Arc<dyn crate::ports::EventStore>>,
}

impl Sweeper {
    /// A sweep over these ports.
    pub fn new(
        jobs: Arc<dyn JobStore>,
        stories: Arc<dyn StoryStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self { jobs, stories, queue, clock, events: None }
    }

    /// This sweep also forgetting events past their retention (SPEC §8.5: kept 7 days).
    pub fn with_events(mut self, events: Arc<dyn crate::ports::EventStore>) -> Self {
        self.events = Some(events);
        self
    }

    /// This sweep reading the time from `clock` (a test looks at the work from later on).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Resends what has waited longer than `patience` (work committed a moment ago is being sent
    /// by its request; a message in flight is being handled) and fails stuck stories.
    pub async fn sweep(&self, patience: Duration) -> Result<SweepReport> {
        let now = self.clock.now();
        let patience = chrono::Duration::from_std(patience).unwrap_or(chrono::Duration::zero());
        let mut report = SweepReport::default();
        if let Some(events) = &self.events {
            let horizon = now - chrono::Duration::days(crate::domain::events::EVENT_RETENTION_DAYS);
            report.events_forgotten = events.forget_events_before(horizon).await?;
        }
        for job in self.jobs.unfinished_jobs().await? {
            // A job whose next message is not yet due (a poll, a retry's backoff) has one coming.
            let overdue = job.due_at.is_none_or(|due| now - due >= patience);
            let stranded = overdue
                && match job.status {
                    JobStatus::Queued => job.waiting_for == 0 && now - job.queued_at >= patience,
                    JobStatus::Running | JobStatus::WaitingProvider => {
                        job.lease_until.is_none_or(|until| now - until >= patience)
                            && job.started_at.is_none_or(|at| now - at >= patience)
                    }
                    _ => false,
                };
            if stranded {
                let message = JobMessage { job_id: job.id.clone(), story_id: job.story.clone(), kind: job.kind };
                self.queue.enqueue(&message, job.priority, Duration::ZERO).await?;
                tracing::warn!(job_id = %job.id, status = %job.status, "job waited too long; sent it a message");
                report.jobs_resent += 1;
            }
        }
        for story in self.stories.rendering_stories().await? {
            let jobs = self.jobs.story_jobs(&story.id).await?;
            // The render under way is named by its newest compose job.
            let Some(compose) = jobs.iter().filter(|j| j.composes()).max_by(|a, b| a.id.cmp(&b.id)) else {
                continue;
            };
            let render: Vec<&Job> =
                jobs.iter().filter(|j| j.id == compose.id || j.compose_job.as_ref() == Some(&compose.id)).collect();
            if compose.status == JobStatus::Succeeded || !render.iter().all(|j| j.status.is_terminal()) {
                continue;
            }
            let stopped = render
                .iter()
                .find(|j| j.status != JobStatus::Succeeded)
                .map_or(String::new(), |j| format!("job {} is {}", j.id, j.status));
            let effect = StoryEffect {
                owner: story.owner.clone(),
                story: story.id.clone(),
                from: story.status,
                to: StoryStatus::Failed,
                mover: Mover::Worker,
                actor: Actor::System,
                reason: failure_reason(&format!("The render stopped without finishing ({stopped}); start it again.")),
                media: None,
                at: now,
            };
            if let Committed::Done(Some(_)) = self.jobs.commit_jobs(Vec::new(), Some(effect)).await? {
                tracing::warn!(story_id = %story.id, "story was left rendering with its render finished; failed");
                report.stories_failed += 1;
            }
        }
        Ok(report)
    }
}
