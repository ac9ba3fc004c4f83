//! Jobs: asynchronous work (rendering, composing, prompt writing) and its accounting.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ids::{JobId, SceneId, StoryId, UserId};
use crate::domain::render::{ClipSpec, RenderSpec};
use crate::domain::story::RenderedMedia;
use crate::domain::values::{AiProvider, choices};

choices!(
    /// What a job does.
    JobKind {
        /// Writes prompts for every scene.
        GeneratePrompts = "generate_prompts",
        /// Renders one scene's preview clip.
        ScenePreview = "scene_preview",
        /// Joins preview clips into the preview video.
        PreviewCompose = "preview_compose",
        /// Renders one scene's final clip.
        SceneFinal = "scene_final",
        /// Joins final clips into the final video.
        FinalCompose = "final_compose",
        /// Renders one scene on demand.
        SceneGenerate = "scene_generate",
        /// Renders a prompt as a test.
        PromptTest = "prompt_test",
    }
);

choices!(
    /// Where a job is.
    JobStatus {
        /// Waiting in the queue.
        Queued = "queued",
        /// Claimed by a worker.
        Running = "running",
        /// Submitted; the provider is rendering.
        WaitingProvider = "waiting_provider",
        /// Done.
        Succeeded = "succeeded",
        /// Gave up.
        Failed = "failed",
        /// Cancelled by its owner.
        Cancelled = "cancelled",
    }
);

choices!(
    /// Which waiting work starts first.
    JobPriority {
        /// Before everything else.
        High = "high",
        /// The default.
        Normal = "normal",
        /// After everything else.
        Low = "low",
    }
);

choices!(
    /// Why a job failed or was cancelled (SPEC §8.3), beside its human `error`: what a client can
    /// act on without parsing text.
    FailureCode {
        /// The provider refused the prompt or the input image (moderation).
        SafetyInput = "safety_input",
        /// The provider refused what it rendered (moderation of the output).
        SafetyOutput = "safety_output",
        /// The account's quota or credits are spent: retrying now only burns time.
        QuotaExhausted = "quota_exhausted",
        /// The provider kept answering "too many requests".
        RateLimited = "rate_limited",
        /// The provider failed (5xx, a failed task, an unreadable result).
        ProviderError = "provider_error",
        /// The job outlived its provider's documented maximum.
        Timeout = "timeout",
        /// A create whose answer was lost: whether the provider took it is unknown.
        AmbiguousSubmit = "ambiguous_submit",
        /// The provider is not set up here (no key, switched off).
        NotConfigured = "not_configured",
        /// The provider retired the endpoint or the model.
        ProviderRetired = "provider_retired",
        /// The provider refused the request as malformed or out of range.
        InvalidRequest = "invalid_request",
        /// A spend limit would be exceeded.
        BudgetExceeded = "budget_exceeded",
        /// Cancelled by its owner, or with the rest of a failed render.
        Cancelled = "cancelled",
    }
);

impl FailureCode {
    /// The kind of a permanent failure named by one of the worker's or the clients' own codes
    /// (a provider's documented vocabulary is mapped by its client, which knows it).
    pub fn for_code(code: &str) -> FailureCode {
        match code {
            "content_moderation" | "safety_input" => FailureCode::SafetyInput,
            "safety_output" => FailureCode::SafetyOutput,
            "quota_exhausted" | "402" => FailureCode::QuotaExhausted,
            "rate_limited" | "429" => FailureCode::RateLimited,
            "timeout" => FailureCode::Timeout,
            "not_configured" | "provider_unavailable" | "401" | "403" => FailureCode::NotConfigured,
            "provider_retired" | "410" => FailureCode::ProviderRetired,
            "invalid_model" | "invalid_job" | "unsupported" | "invalid_request" | "400" | "404" | "422" => {
                FailureCode::InvalidRequest
            }
            "ambiguous_submit" => FailureCode::AmbiguousSubmit,
            "budget_exceeded" => FailureCode::BudgetExceeded,
            "cancelled" => FailureCode::Cancelled,
            _ => FailureCode::ProviderError,
        }
    }
}

impl JobStatus {
    /// No further change happens to a job in this status (until a retry).
    pub fn is_terminal(self) -> bool {
        matches!(self, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Cancelled)
    }
}

/// One unit of asynchronous work.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Job {
    /// Server-issued id.
    pub id: JobId,
    /// Owner of the story.
    pub owner: UserId,
    /// The story.
    pub story: StoryId,
    /// The scene, for scene jobs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scene: Option<SceneId>,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub status: JobStatus,
    /// Which waiting work starts first.
    pub priority: JobPriority,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts allowed (default 3).
    pub max_attempts: u32,
    /// 0–100.
    pub progress: u8,
    /// The provider that renders it.
    pub provider: AiProvider,
    /// The provider's id of the submitted task, recorded before anything else can fail.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_task_id: Option<String>,
    /// When that task was submitted: the watchdog's deadline counts from here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submitted_at: Option<DateTime<Utc>>,
    /// When this attempt's submission began, recorded before the provider is called: a holder
    /// that finds it set without a task id knows a submission may have reached the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub submit_started_at: Option<DateTime<Utc>>,
    /// What it cost.
    pub cost_usd: f64,
    /// The last error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Why it failed or was cancelled (§8.3); none while it may still succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_code: Option<FailureCode>,
    /// The rendered media.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<RenderedMedia>,
    /// When a worker's claim runs out, so another may take over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease_until: Option<DateTime<Utc>>,
    /// When its next message is due (the next poll, or a retry after its backoff): until then a
    /// job waiting for no worker is not stranded, so the sweep sends it nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub due_at: Option<DateTime<Utc>>,
    /// Enqueued at.
    pub queued_at: DateTime<Utc>,
    /// First claimed at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<DateTime<Utc>>,
    /// Finished at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
    /// How the render this job belongs to looks (render and clip jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub render: Option<RenderSpec>,
    /// What this job renders (clip jobs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<ClipSpec>,
    /// The compose job this scene job's clip goes into.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose_job: Option<JobId>,
    /// Scene jobs a compose job still waits for; it is released when this reaches zero.
    #[serde(default)]
    pub waiting_for: u32,
    /// Increments on every stored write; conditional writes compare it.
    #[serde(default)]
    pub version: u64,
    /// Polls in a row that did not get through (reset by one that did): a provider whose status
    /// endpoint keeps failing ends the attempt instead of being polled forever.
    #[serde(default)]
    pub poll_failures: u32,
    /// What this paid job holds against its story's budget and its owner's month (SPEC §8.7);
    /// none for unpaid work (compose jobs, free providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservation: Option<crate::domain::usage::Reservation>,
    /// What the job was before the change this value carries (set by every change below, never
    /// stored): the store writes the change's events from it (`domain::events::job_changed`).
    #[serde(skip)]
    pub changed_from: Option<crate::domain::events::JobBefore>,
}

impl Job {
    /// Attempts allowed unless configured otherwise.
    pub const DEFAULT_MAX_ATTEMPTS: u32 = 3;
}

/// Why a job cannot be taken or changed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRefusal {
    /// Another worker holds a lease that has not run out.
    Leased { until: DateTime<Utc> },
    /// The job is finished (succeeded, failed or cancelled).
    Finished(JobStatus),
    /// The move does not apply in this status (e.g. retrying a queued job).
    NotIn(JobStatus),
    /// A compose job whose scene jobs have not all finished.
    Waiting(u32),
}

/// What happens after an attempt failed.
#[derive(Debug, Clone, PartialEq)]
pub enum AfterFailure {
    /// Queued again, to be delivered after `delay`.
    Retry { job: Job, delay: std::time::Duration },
    /// Out of attempts, or the error is permanent: the job failed.
    Failed(Job),
}

/// The longest wait SQS allows for a delayed message; backoff never asks for more.
pub const MAX_DELAY_SECONDS: u64 = 900;

/// The wait before attempt `attempt` (1-based) is tried again: 5 s, 10 s, 20 s … up to 15 min.
pub fn backoff(attempt: u32) -> std::time::Duration {
    let seconds = 5u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(20));
    std::time::Duration::from_secs(seconds.min(MAX_DELAY_SECONDS))
}

impl Job {
    /// A queued job.
    #[allow(clippy::too_many_arguments)]
    pub fn queued(
        id: JobId,
        owner: UserId,
        story: StoryId,
        scene: Option<SceneId>,
        kind: JobKind,
        priority: JobPriority,
        provider: AiProvider,
        now: DateTime<Utc>,
    ) -> Job {
        Job {
            id,
            owner,
            story,
            scene,
            kind,
            status: JobStatus::Queued,
            priority,
            attempts: 0,
            max_attempts: Job::DEFAULT_MAX_ATTEMPTS,
            progress: 0,
            provider,
            provider_task_id: None,
            submitted_at: None,
            submit_started_at: None,
            cost_usd: 0.0,
            error: None,
            failure_code: None,
            result: None,
            lease_until: None,
            due_at: None,
            queued_at: now,
            started_at: None,
            finished_at: None,
            render: None,
            clip: None,
            compose_job: None,
            waiting_for: 0,
            version: 1,
            poll_failures: 0,
            reservation: None,
            changed_from: None,
        }
    }

    /// What this job is now, as the "before" of its next change.
    fn before(&self) -> crate::domain::events::JobBefore {
        crate::domain::events::JobBefore { status: self.status, progress: self.progress }
    }

    fn lease_expired(&self, now: DateTime<Utc>) -> bool {
        self.lease_until.is_none_or(|until| until <= now)
    }

    /// A worker takes the job for `lease`: a queued job, or one whose worker's lease ran out (it
    /// died mid-job). A duplicate delivery while the lease holds is refused, so it does nothing.
    pub fn claimed(&self, now: DateTime<Utc>, lease: chrono::Duration) -> Result<Job, JobRefusal> {
        match self.status {
            JobStatus::Queued if self.waiting_for > 0 => return Err(JobRefusal::Waiting(self.waiting_for)),
            JobStatus::Queued => {}
            JobStatus::Running | JobStatus::WaitingProvider if self.lease_expired(now) => {}
            JobStatus::Running | JobStatus::WaitingProvider => {
                return Err(JobRefusal::Leased { until: self.lease_until.unwrap_or(now) });
            }
            finished => return Err(JobRefusal::Finished(finished)),
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        // A job already submitted keeps its status: the new holder polls, it never submits again.
        if next.status == JobStatus::Queued {
            next.status = JobStatus::Running;
            next.attempts += 1;
        }
        next.started_at = next.started_at.or(Some(now));
        next.lease_until = Some(now + lease);
        Ok(next)
    }

    /// The holder may not submit yet (its provider's minute budget is spent): the job goes back
    /// to the queue, its attempt not counted, its next message due at `due`.
    pub fn deferred(&self, due: DateTime<Utc>) -> Result<Job, JobRefusal> {
        if self.status != JobStatus::Running || self.provider_task_id.is_some() || self.submit_started_at.is_some() {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.status = JobStatus::Queued;
        next.attempts = self.attempts.saturating_sub(1);
        next.lease_until = None;
        next.due_at = Some(due);
        Ok(next)
    }

    /// The holder is about to submit: written before the provider is called, so that whoever holds
    /// the job next knows whether a submission may already have reached the provider.
    pub fn submitting(&self, now: DateTime<Utc>) -> Result<Job, JobRefusal> {
        if self.status != JobStatus::Running || self.provider_task_id.is_some() {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.submit_started_at = Some(now);
        Ok(next)
    }

    /// Whether an earlier holder began this attempt's submission and never recorded its task:
    /// the provider may or may not have the task.
    pub fn submission_in_doubt(&self) -> bool {
        self.status == JobStatus::Running && self.provider_task_id.is_none() && self.submit_started_at.is_some()
    }

    /// The provider accepted the task: its id is kept before anything else can fail, so a retry
    /// or a second delivery polls the same task instead of paying for a new one.
    pub fn submitted(&self, task_id: &str, now: DateTime<Utc>, lease: chrono::Duration) -> Result<Job, JobRefusal> {
        if self.status != JobStatus::Running {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.status = JobStatus::WaitingProvider;
        next.provider_task_id = Some(task_id.to_owned());
        next.submitted_at = Some(now);
        next.lease_until = Some(now + lease);
        next.poll_failures = 0;
        Ok(next)
    }

    /// The provider is still rendering: the progress is kept and the lease let go, so whichever
    /// worker the next (delayed) message reaches can poll again, `due` then.
    pub fn still_rendering(&self, progress: u8, due: DateTime<Utc>) -> Result<Job, JobRefusal> {
        if self.status != JobStatus::WaitingProvider {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.progress = progress.min(99);
        next.lease_until = None;
        next.due_at = Some(due);
        next.poll_failures = 0;
        Ok(next)
    }

    /// Whether the provider task has outlived `deadline` (its provider's maximum) at `now`: the
    /// watchdog ends such an attempt with `timeout` instead of polling it forever.
    pub fn past_deadline(&self, now: DateTime<Utc>, deadline: chrono::Duration) -> bool {
        self.status == JobStatus::WaitingProvider && self.submitted_at.is_some_and(|at| now - at > deadline)
    }

    /// A poll that did not get through: polled again later, counted.
    pub fn poll_failed(&self, due: DateTime<Utc>) -> Result<Job, JobRefusal> {
        let mut next = self.still_rendering(self.progress, due)?;
        next.poll_failures = self.poll_failures + 1;
        Ok(next)
    }

    /// The holder's step failed on our side (store, media, network): the lease is let go so the
    /// message's next delivery carries on at once, with the same attempt and provider task.
    pub fn released(&self) -> Result<Job, JobRefusal> {
        if !matches!(self.status, JobStatus::Running | JobStatus::WaitingProvider) || self.lease_until.is_none() {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.lease_until = None;
        Ok(next)
    }

    /// Success: the result and its cost are recorded. A cancelled job's late result is refused.
    pub fn succeeded(&self, result: RenderedMedia, cost_usd: f64, now: DateTime<Utc>) -> Result<Job, JobRefusal> {
        match self.status {
            JobStatus::Running | JobStatus::WaitingProvider => {}
            other if other.is_terminal() => return Err(JobRefusal::Finished(other)),
            other => return Err(JobRefusal::NotIn(other)),
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.status = JobStatus::Succeeded;
        next.progress = 100;
        next.result = Some(result);
        next.cost_usd = cost_usd;
        next.error = None;
        next.failure_code = None;
        next.lease_until = None;
        next.finished_at = Some(now);
        Ok(next)
    }

    /// An attempt failed: a retryable error queues the job again with backoff while attempts
    /// remain; a permanent one (or the last attempt) fails it with `failure`.
    pub fn attempt_failed(
        &self,
        error: &str,
        failure: FailureCode,
        retryable: bool,
        now: DateTime<Utc>,
    ) -> Result<AfterFailure, JobRefusal> {
        match self.status {
            JobStatus::Running | JobStatus::WaitingProvider => {}
            other if other.is_terminal() => return Err(JobRefusal::Finished(other)),
            other => return Err(JobRefusal::NotIn(other)),
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.error = Some(error.chars().take(2000).collect());
        next.lease_until = None;
        if retryable && self.attempts < self.max_attempts {
            next.status = JobStatus::Queued;
            // A retried attempt submits afresh: the failed task is not polled again.
            next.provider_task_id = None;
            next.submitted_at = None;
            next.submit_started_at = None;
            let delay = backoff(self.attempts);
            next.due_at = Some(now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::zero()));
            return Ok(AfterFailure::Retry { job: next, delay });
        }
        next.status = JobStatus::Failed;
        next.failure_code = Some(failure);
        next.finished_at = Some(now);
        Ok(AfterFailure::Failed(next))
    }

    /// The owner cancels a queued, running or waiting job; its late result will be discarded.
    pub fn cancelled(&self, now: DateTime<Utc>) -> Result<Job, JobRefusal> {
        if self.status.is_terminal() {
            return Err(JobRefusal::Finished(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.status = JobStatus::Cancelled;
        next.failure_code = Some(FailureCode::Cancelled);
        next.lease_until = None;
        next.finished_at = Some(now);
        Ok(next)
    }

    /// The owner retries a failed or cancelled job: queued again with a fresh set of attempts.
    pub fn retried(&self, now: DateTime<Utc>) -> Result<Job, JobRefusal> {
        if !matches!(self.status, JobStatus::Failed | JobStatus::Cancelled) {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.status = JobStatus::Queued;
        next.attempts = 0;
        next.progress = 0;
        next.error = None;
        next.failure_code = None;
        next.provider_task_id = None;
        next.submitted_at = None;
        next.submit_started_at = None;
        next.lease_until = None;
        next.queued_at = now;
        next.finished_at = None;
        Ok(next)
    }
}

impl Job {
    /// Whether this job renders one clip (as opposed to composing or writing prompts).
    pub fn renders_a_clip(&self) -> bool {
        matches!(self.kind, JobKind::ScenePreview | JobKind::SceneFinal | JobKind::SceneGenerate | JobKind::PromptTest)
    }

    /// Whether this job joins clips.
    pub fn composes(&self) -> bool {
        matches!(self.kind, JobKind::PreviewCompose | JobKind::FinalCompose)
    }

    /// The compose job after one of its scene jobs succeeded: one fewer to wait for. Refused once
    /// the compose job is no longer waiting (cancelled with its failed render, say).
    pub fn scene_finished(&self) -> Result<Job, JobRefusal> {
        if self.status != JobStatus::Queued || self.waiting_for == 0 {
            return Err(JobRefusal::NotIn(self.status));
        }
        let mut next = self.clone();
        next.waiting_for -= 1;
        next.version += 1;
        next.changed_from = Some(self.before());
        Ok(next)
    }

    /// The job's message was delivered as often as the queue allows without a step getting
    /// through: before the message goes to the dead-letter queue the job fails, so nothing waits
    /// for it forever.
    pub fn given_up(&self, deliveries: u32, cause: &str, now: DateTime<Utc>) -> Result<Job, JobRefusal> {
        if self.status.is_terminal() {
            return Err(JobRefusal::Finished(self.status));
        }
        let mut next = self.clone();
        // Every change is a new stored version; the write is conditioned on the one before.
        next.version += 1;
        next.changed_from = Some(self.before());
        next.status = JobStatus::Failed;
        next.failure_code = Some(FailureCode::ProviderError);
        next.error = Some(format!("Gave up after {deliveries} deliveries: {cause}").chars().take(2000).collect());
        next.lease_until = None;
        next.finished_at = Some(now);
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_given_up_fails_with_the_cause_and_a_finished_job_is_left_alone() {
        let now = Utc::now();
        let running = job().claimed(now, lease()).unwrap();
        let failed = running.given_up(5, "store unreachable", now).unwrap();
        assert_eq!(failed.status, JobStatus::Failed);
        assert_eq!(failed.version, running.version + 1);
        assert_eq!(failed.lease_until, None);
        assert!(failed.error.as_deref().unwrap().contains("Gave up after 5 deliveries: store unreachable"));
        assert_eq!(failed.given_up(5, "again", now), Err(JobRefusal::Finished(JobStatus::Failed)));
    }

    fn job() -> Job {
        Job::queued(
            JobId::from_ulid(ulid::Ulid::new()),
            UserId::parse("alice").unwrap(),
            StoryId::from_ulid(ulid::Ulid::new()),
            None,
            JobKind::ScenePreview,
            JobPriority::Normal,
            AiProvider::Local,
            Utc::now(),
        )
    }

    fn lease() -> chrono::Duration {
        chrono::Duration::seconds(60)
    }

    fn media() -> RenderedMedia {
        RenderedMedia {
            key: "k".into(),
            duration_seconds: 1.0,
            width: 2,
            height: 2,
            fps: 24,
            format: "mp4".into(),
            size_bytes: 1,
        }
    }

    #[test]
    fn duplicate_delivery_while_leased_does_nothing() {
        let now = Utc::now();
        let running = job().claimed(now, lease()).unwrap();
        assert_eq!((running.status, running.attempts), (JobStatus::Running, 1));
        assert!(matches!(running.claimed(now, lease()), Err(JobRefusal::Leased { .. })));
    }

    #[test]
    fn a_task_is_past_its_deadline_only_while_the_provider_holds_it_and_counted_from_its_submission() {
        let now = Utc::now();
        let deadline = chrono::Duration::minutes(30);
        let running = job().claimed(now, lease()).unwrap();
        assert!(!running.past_deadline(now + chrono::Duration::hours(5), deadline), "not submitted yet");
        let later = now + chrono::Duration::minutes(10);
        let waiting = running.submitted("task-1", later, lease()).unwrap();
        assert!(!waiting.past_deadline(later + deadline, deadline));
        assert!(waiting.past_deadline(later + deadline + chrono::Duration::seconds(1), deadline));
        // A timed-out attempt that is retried submits afresh, with a fresh deadline.
        let AfterFailure::Retry { job: retry, .. } =
            waiting.attempt_failed("no result", FailureCode::Timeout, true, later).unwrap()
        else {
            panic!("attempts remain");
        };
        assert_eq!((retry.provider_task_id, retry.submitted_at), (None, None));
    }

    #[test]
    fn a_dead_workers_job_is_taken_over_after_its_lease_without_a_new_attempt_or_submission() {
        let now = Utc::now();
        let waiting = job().claimed(now, lease()).unwrap().submitted("task-1", now, lease()).unwrap();
        let later = now + chrono::Duration::seconds(61);
        let taken = waiting.claimed(later, lease()).unwrap();
        assert_eq!(taken.status, JobStatus::WaitingProvider);
        assert_eq!(taken.provider_task_id.as_deref(), Some("task-1"), "the new holder polls the same task");
        assert_eq!(taken.attempts, 1);
    }

    #[test]
    fn retryable_failures_back_off_until_attempts_run_out() {
        let now = Utc::now();
        let mut current = job();
        let mut delays = Vec::new();
        loop {
            let running = current.claimed(now, lease()).unwrap();
            match running.attempt_failed("429 Too Many Requests", FailureCode::RateLimited, true, now).unwrap() {
                AfterFailure::Retry { job, delay } => {
                    assert_eq!(job.status, JobStatus::Queued);
                    delays.push(delay.as_secs());
                    current = job;
                }
                AfterFailure::Failed(job) => {
                    assert_eq!((job.status, job.attempts), (JobStatus::Failed, 3));
                    assert_eq!(job.error.as_deref(), Some("429 Too Many Requests"));
                    assert_eq!(job.failure_code, Some(FailureCode::RateLimited));
                    break;
                }
            }
        }
        assert_eq!(delays, vec![5, 10]);
    }

    #[test]
    fn a_permanent_failure_fails_at_once() {
        let now = Utc::now();
        let running = job().claimed(now, lease()).unwrap();
        let AfterFailure::Failed(failed) =
            running.attempt_failed("content refused", FailureCode::SafetyInput, false, now).unwrap()
        else {
            panic!("a permanent failure is not retried");
        };
        assert_eq!(failed.failure_code, Some(FailureCode::SafetyInput));
        // A retry by its owner starts clean.
        let again = failed.retried(now).unwrap();
        assert_eq!((again.failure_code, again.error), (None, None));
    }

    #[test]
    fn a_cancelled_jobs_late_result_is_refused() {
        let now = Utc::now();
        let running = job().claimed(now, lease()).unwrap();
        let cancelled = running.cancelled(now).unwrap();
        assert_eq!(cancelled.failure_code, Some(FailureCode::Cancelled));
        assert_eq!(cancelled.succeeded(media(), 1.0, now), Err(JobRefusal::Finished(JobStatus::Cancelled)));
        assert!(cancelled.claimed(now, lease()).is_err());
    }

    #[test]
    fn only_failed_or_cancelled_jobs_are_retried_and_only_unfinished_ones_cancelled() {
        let now = Utc::now();
        assert!(job().retried(now).is_err());
        let done = job().claimed(now, lease()).unwrap().succeeded(media(), 0.5, now).unwrap();
        assert_eq!((done.status, done.progress, done.cost_usd), (JobStatus::Succeeded, 100, 0.5));
        assert!(done.cancelled(now).is_err());
        assert!(done.retried(now).is_err());
        let cancelled = job().cancelled(now).unwrap();
        let again = cancelled.retried(now).unwrap();
        assert_eq!((again.status, again.attempts), (JobStatus::Queued, 0));
    }

    #[test]
    fn backoff_doubles_and_never_exceeds_the_sqs_delay_limit() {
        assert_eq!(backoff(1).as_secs(), 5);
        assert_eq!(backoff(2).as_secs(), 10);
        assert_eq!(backoff(3).as_secs(), 20);
        assert_eq!(backoff(40).as_secs(), MAX_DELAY_SECONDS);
    }
}
