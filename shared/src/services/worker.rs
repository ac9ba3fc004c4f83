//! The worker: handles one queue message at a time, the same way under the Lambda SQS event
//! source mapping and inside `aivideo serve`.
//!
//! Every step is a conditional write on the job (and, where it matters, its compose job and its
//! story), so duplicate and concurrent deliveries are harmless: a claim has one winner, a provider
//! task is submitted once and its id recorded before anything else can fail, a clip goes to one
//! media key per job, and the fan-in counter releases the compose job exactly once. The worker
//! never sleeps on a provider: it lets go of the job and sends itself a delayed message.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use crate::domain::error::{Error, Result};
use crate::domain::ids::Actor;
use crate::domain::job::{AfterFailure, FailureCode, Job, JobRefusal, JobStatus, MAX_DELAY_SECONDS, backoff};
use crate::domain::media::{Composition, Subtitle};
use crate::domain::pricing::clip_cost;
use crate::domain::provider::task_deadline;
use crate::domain::render::RenderStage;
use crate::domain::state_machine::Mover;
use crate::domain::story::RenderedMedia;
use crate::domain::values::AiProvider;
use crate::ports::{
    ClipRequest, Clock, Committed, Delivery, Handled, JobMessage, JobQueue, JobStore, MediaStore, ProviderError,
    StoryEffect, SubmitBudget, TaskState, VideoProvider, VideoTools,
};
use crate::services::fail_render;

/// How the worker paces itself.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// How long a claim holds a job; a worker that dies is replaced after it.
    pub lease: Duration,
    /// How long to wait before polling a provider again.
    pub poll_every: Duration,
    /// Scratch space for clips being fetched and composed.
    pub work_dir: PathBuf,
    /// Deliveries after which a message is given up (the DLQ's `maxReceiveCount`).
    pub max_receives: u32,
}

impl WorkerSettings {
    /// The production pacing in `work_dir`.
    pub fn new(work_dir: PathBuf) -> Self {
        Self { lease: Duration::from_secs(120), poll_every: Duration::from_secs(10), work_dir, max_receives: 5 }
    }
}

/// What the provider is asked for on this attempt of `job`: the same for every submission and
/// poll of the attempt.
fn clip_request(
    job: &Job,
    clip: crate::domain::render::ClipSpec,
    render: crate::domain::render::RenderSpec,
) -> ClipRequest {
    ClipRequest {
        clip,
        render,
        attempt: job.attempts,
        key: format!("{}-{}", job.id, job.attempts),
        since: job.submit_started_at.or(job.submitted_at).unwrap_or(job.queued_at),
    }
}

/// Polls in a row that may fail before the attempt is given up (and retried with a new task).
const MAX_POLL_FAILURES: u32 = 5;

/// How often a write that raced another one is decided again before the message is retried.
const RACE_ATTEMPTS: usize = 20;

/// Handles job messages.
#[derive(Clone)]
pub struct Worker {
    jobs: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    media: Arc<dyn MediaStore>,
    providers: HashMap<AiProvider, Arc<dyn VideoProvider>>,
    tools: Arc<dyn VideoTools>,
    clock: Arc<dyn Clock>,
    settings: WorkerSettings,
    /// The providers' shared per-minute budgets; none: no limit is enforced.
    budget: Option<Arc<dyn SubmitBudget>>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").field("providers", &self.providers.keys().collect::<Vec<_>>()).finish_non_exhaustive()
    }
}

fn lease_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::seconds(120))
}

impl Worker {
    /// A worker over these ports; `tools` conform clips and compose renders.
    pub fn new(
        jobs: Arc<dyn JobStore>,
        queue: Arc<dyn JobQueue>,
        media: Arc<dyn MediaStore>,
        providers: HashMap<AiProvider, Arc<dyn VideoProvider>>,
        tools: Arc<dyn VideoTools>,
        clock: Arc<dyn Clock>,
        settings: WorkerSettings,
    ) -> Self {
        Self { jobs, queue, media, providers, tools, clock, settings, budget: None }
    }

    /// This worker drawing each submission from `budget` (a provider's `rate_limit_per_minute`).
    pub fn with_submit_budget(mut self, budget: Arc<dyn SubmitBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// This worker with `provider` rendering for `name` (a provider switched on, or wrapped).
    pub fn with_provider(mut self, name: AiProvider, provider: Arc<dyn VideoProvider>) -> Self {
        self.providers.insert(name, provider);
        self
    }

    /// This worker reading the time from `clock` (a test moves it past a provider's deadline).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Handles one delivery. A body that is not a job message fails (and, after
    /// `max_receives`, is dead-lettered by the queue); so does a step that could not be written.
    pub async fn handle(&self, delivery: &Delivery) -> Handled {
        let message: JobMessage = match serde_json::from_str(&delivery.body) {
            Ok(message) => message,
            Err(e) => {
                tracing::warn!(message_id = %delivery.message_id, error = %e, "not a job message; left for the dead-letter queue");
                // It will never parse: no point waiting long between the deliveries that take it
                // to the dead-letter queue (never dropped: someone must see it).
                return Handled::Failed { retry_after: Duration::from_secs(1) };
            }
        };
        let span =
            tracing::info_span!("job", job_id = %message.job_id, story_id = %message.story_id, kind = %message.kind);
        async {
            match self.run(&message).await {
                Ok(()) => Handled::Done,
                Err(e) => {
                    tracing::warn!(error = %e, receive_count = delivery.receive_count, "job step failed; the message will be retried");
                    if delivery.receive_count >= self.settings.max_receives {
                        self.give_up(&message, &e).await;
                    } else {
                        self.release(&message).await;
                    }
                    Handled::Failed { retry_after: backoff(delivery.receive_count) }
                }
            }
        }
        .instrument(span)
        .await
    }

    async fn enqueue(&self, job: &Job, delay: Duration) -> Result<()> {
        let message = JobMessage { job_id: job.id.clone(), story_id: job.story.clone(), kind: job.kind };
        self.queue.enqueue(&message, job.priority, delay.min(Duration::from_secs(MAX_DELAY_SECONDS))).await
    }

    async fn run(&self, message: &JobMessage) -> Result<()> {
        let now = self.clock.now();
        let job =
            match self.jobs.claim_job(&message.story_id, &message.job_id, now, lease_of(self.settings.lease)).await {
                Ok(Ok(job)) => job,
                Ok(Err(JobRefusal::Leased { until })) => {
                    // Another worker holds it. Come back when its lease ends (if it died, this copy
                    // takes over); a fresh message, so duplicates never pile up receive counts.
                    let wait = (until - now).to_std().unwrap_or_default() + Duration::from_secs(1);
                    let job = self.jobs.story_job(&message.story_id, &message.job_id).await?;
                    tracing::info!(?wait, "job is held by another worker; checking again after its lease");
                    return self.enqueue(&job, wait).await;
                }
                Ok(Err(JobRefusal::Finished(JobStatus::Succeeded))) => {
                    // A duplicate of finished work. If the worker that finished it died before
                    // releasing the compose job, release it now (enqueueing twice is harmless).
                    let job = self.jobs.story_job(&message.story_id, &message.job_id).await?;
                    return self.release_compose_if_ready(&job).await;
                }
                Ok(Err(refusal)) => {
                    tracing::info!(?refusal, "nothing to do for this message");
                    return Ok(());
                }
                // The job went with its story.
                Err(Error::NotFound) => {
                    tracing::info!("job no longer exists");
                    return Ok(());
                }
                Err(e) => return Err(e),
            };
        tracing::info!(attempt = job.attempts, "claimed");
        crate::crash_point!("worker.after_claim");
        if job.composes() {
            self.compose(job).await
        } else if job.renders_a_clip() {
            self.render_clip(job).await
        } else {
            let error = ProviderError::permanent("unsupported", format!("The worker does not run {} jobs.", job.kind));
            self.attempt_failed(job, error).await
        }
    }

    async fn release_compose_if_ready(&self, job: &Job) -> Result<()> {
        let Some(compose_id) = &job.compose_job else {
            return Ok(());
        };
        let compose = self.jobs.story_job(&job.story, compose_id).await?;
        if compose.status == JobStatus::Queued && compose.waiting_for == 0 {
            self.enqueue(&compose, Duration::ZERO).await?;
        }
        Ok(())
    }

    /// Writes `jobs` (and `effect`); `Ok(false)` when another writer got there first.
    async fn commit(&self, jobs: Vec<Job>, effect: Option<StoryEffect>) -> Result<bool> {
        Ok(matches!(self.jobs.commit_jobs(jobs, effect).await?, Committed::Done(_)))
    }

    async fn reread(&self, job: &Job) -> Result<Job> {
        self.jobs.story_job(&job.story, &job.id).await
    }

    async fn render_clip(&self, mut job: Job) -> Result<()> {
        let Some(provider) = self.providers.get(&job.provider).cloned() else {
            let error = ProviderError::permanent(
                "provider_unavailable",
                format!("The {} provider is not configured on this worker.", job.provider),
            );
            return self.attempt_failed(job, error).await;
        };
        let (Some(clip), Some(render)) = (job.clip.clone(), job.render.clone()) else {
            return self
                .attempt_failed(job, ProviderError::permanent("invalid_job", "The job has no clip to render."))
                .await;
        };
        // A job queued before its provider (or model) was retired: no paid call that cannot
        // finish the clip (renders of it are refused at their start).
        if job.provider_task_id.is_none()
            && let Some(retired) = crate::domain::provider::retirement(job.provider, &render.terms.model)
        {
            let error =
                ProviderError::permanent("provider_retired", format!("{} {}", retired.detail, retired.alternative));
            return self.attempt_failed(job, error).await;
        }
        let task = match job.provider_task_id.clone() {
            Some(task) => {
                // The watchdog: a task the provider holds past its maximum is not polled forever.
                let deadline = task_deadline(job.provider);
                if job.past_deadline(self.clock.now(), deadline) {
                    let error = ProviderError::retryable(format!(
                        "{} gave no result within {} minutes of the submission (its maximum).",
                        job.provider,
                        deadline.num_minutes()
                    ))
                    .because(FailureCode::Timeout);
                    return self.attempt_failed(job, error).await;
                }
                task
            }
            None => match self.submit(job, provider.as_ref(), &clip, &render).await? {
                Some((submitted, task)) => {
                    job = submitted;
                    task
                }
                // Failed, or left to whoever changed the job meanwhile.
                None => return Ok(()),
            },
        };
        let request = clip_request(&job, clip, render);
        match provider.poll(&task, &request).await {
            Ok(TaskState::Succeeded { outputs }) => {
                self.clip_succeeded(job, provider.as_ref(), &request, &outputs).await
            }
            Ok(TaskState::Queued) => self.still_rendering(job, 0).await,
            Ok(TaskState::Running { progress }) => self.still_rendering(job, progress).await,
            Ok(TaskState::Failed(error)) => self.attempt_failed(job, error).await,
            Ok(TaskState::Cancelled) => {
                self.attempt_failed(job, ProviderError::permanent("cancelled", "The provider cancelled the task."))
                    .await
            }
            // A poll that did not get through: poll again later, same task, same attempt — a
            // few times; a status endpoint that keeps failing ends the attempt.
            Err(error) if error.retryable && job.poll_failures + 1 < MAX_POLL_FAILURES => {
                tracing::warn!(%error, failures = job.poll_failures + 1, "poll failed; polling again later");
                let due = self.clock.now() + lease_of(self.settings.poll_every);
                let Ok(next) = job.poll_failed(due) else {
                    return Ok(());
                };
                if self.commit(vec![next.clone()], None).await? {
                    self.enqueue(&next, self.settings.poll_every).await?;
                }
                Ok(())
            }
            Err(error) => self.attempt_failed(job, error).await,
        }
    }

    /// Submits this attempt's clip and records its task: the job with the task id, or `None` when
    /// the attempt failed or the job changed meanwhile. The intent to submit is written first, so
    /// a worker that dies between the provider's answer and the record leaves a trace: the next
    /// holder resubmits only to a provider that deduplicates (the same key names the same task),
    /// and otherwise ends the attempt with `ambiguous_submit` rather than pay twice.
    async fn submit(
        &self,
        job: Job,
        provider: &dyn VideoProvider,
        clip: &crate::domain::render::ClipSpec,
        render: &crate::domain::render::RenderSpec,
    ) -> Result<Option<(Job, String)>> {
        // The provider's per-minute budget, shared by every worker: when it is spent the job goes
        // back to the queue with a message due when the next submission may go — waiting costs
        // no worker time, and the attempt is not counted.
        let limit = job.render.as_ref().map_or(0, |r| r.terms.rate_limit_per_minute);
        if limit > 0
            && !job.submission_in_doubt()
            && let Some(budget) = &self.budget
        {
            let now = self.clock.now();
            if let Some(free_at) = budget.take_submission(job.provider, limit, now).await? {
                let Ok(next) = job.deferred(free_at) else {
                    return Ok(None);
                };
                if self.commit(vec![next.clone()], None).await? {
                    let wait = (free_at - now).to_std().unwrap_or_default();
                    tracing::info!(?wait, limit, "the provider's minute budget is spent; submitting later");
                    self.enqueue(&next, wait).await?;
                }
                return Ok(None);
            }
        }
        let job = if job.submission_in_doubt() {
            if !provider.submit_is_idempotent() {
                let error = ProviderError::permanent(
                    "ambiguous_submit",
                    format!(
                        "The worker stopped while submitting this clip to {provider}; whether {provider} took it is \
                         unknown, so it was not sent again (it could be billed twice). Retry the job to submit it again.",
                        provider = job.provider
                    ),
                );
                self.attempt_failed(job, error).await?;
                return Ok(None);
            }
            job
        } else {
            let Ok(next) = job.submitting(self.clock.now()) else {
                return Ok(None);
            };
            if !self.commit(vec![next.clone()], None).await? {
                tracing::info!("job changed before submitting; left to its new state");
                return Ok(None);
            }
            next
        };
        let submitted = provider.submit(&clip_request(&job, clip.clone(), render.clone())).await;
        crate::crash_point!("worker.after_submit");
        let task = match submitted {
            Ok(task) => task,
            Err(error) => {
                self.attempt_failed(job, error).await?;
                return Ok(None);
            }
        };
        let Ok(next) = job.submitted(&task, self.clock.now(), lease_of(self.settings.lease)) else {
            return Ok(None);
        };
        if !self.commit(vec![next.clone()], None).await? {
            // Cancelled (or taken over) meanwhile: the task's result will not be used.
            tracing::warn!(task, "job changed while submitting; the task is abandoned");
            return Ok(None);
        }
        tracing::info!(task, "submitted");
        crate::crash_point!("worker.after_task_recorded");
        Ok(Some((next, task)))
    }

    async fn still_rendering(&self, job: Job, progress: u8) -> Result<()> {
        let due = self.clock.now() + lease_of(self.settings.poll_every);
        let Ok(next) = job.still_rendering(progress, due) else {
            return Ok(());
        };
        if self.commit(vec![next.clone()], None).await? {
            self.enqueue(&next, self.settings.poll_every).await?;
        }
        Ok(())
    }

    async fn clip_succeeded(
        &self,
        job: Job,
        provider: &dyn VideoProvider,
        request: &ClipRequest,
        outputs: &[String],
    ) -> Result<()> {
        let output = outputs.first().ok_or_else(|| Error::internal("the provider reported success without output"))?;
        tokio::fs::create_dir_all(&self.settings.work_dir).await.map_err(Error::internal)?;
        let scratch = tempfile::tempdir_in(&self.settings.work_dir).map_err(Error::internal)?;
        let file = scratch.path().join("clip.mp4");
        if let Err(error) = provider.fetch(output, request, &file).await {
            if error.retryable {
                return Err(Error::internal(format!("fetching the clip failed: {error}")));
            }
            return self.attempt_failed(job, error).await;
        }
        crate::crash_point!("worker.after_fetch");
        let (clip, render) = (job.clip.clone(), job.render.clone());
        let (clip, render) = clip.zip(render).ok_or_else(|| Error::internal("clip job without clip"))?;
        let mut media = RenderedMedia {
            // One key per job: a duplicate delivery overwrites the same object, never adds one.
            key: format!("clips/{}/{}.mp4", job.story, job.id),
            duration_seconds: clip.duration_seconds,
            width: render.width,
            height: render.height,
            fps: render.fps,
            format: "mp4".into(),
            size_bytes: 0,
        };
        let mut file = file;
        let Ok(mut probe) = self.tools.probe(&file).await else {
            let error = ProviderError::retryable("The provider's result is not a readable video.");
            return self.attempt_failed(job, error).await;
        };
        // What the provider rendered (and bills), before it is fitted to the scene: a provider that
        // offers 5 or 10 s renders 5 s for a 3.2 s scene.
        let rendered_seconds = probe.duration_seconds;
        let exact = probe.width == render.width
            && probe.height == render.height
            && probe.frames == clip.frames
            && (probe.fps - f64::from(render.fps)).abs() < 0.01
            && probe.codec == "h264";
        if !exact {
            // Another provider's length, size or rate: fit it to the scene, frame-exact.
            let fitted = scratch.path().join("fitted.mp4");
            let frames = u32::try_from(clip.frames).unwrap_or(u32::MAX);
            if let Err(e) = self.tools.conform(&file, render.width, render.height, render.fps, frames, &fitted).await {
                let error = ProviderError::retryable(format!("The provider's result could not be used: {e}"));
                return self.attempt_failed(job, error).await;
            }
            file = fitted;
            probe = self.tools.probe(&file).await.map_err(|e| Error::internal(format!("probing the clip: {e}")))?;
        }
        media.duration_seconds = probe.duration_seconds;
        media.width = probe.width;
        media.height = probe.height;
        media.size_bytes = self.media.put_file(&media.key, &file, "video/mp4").await?;
        crate::crash_point!("worker.after_clip_stored");
        // None of the clients' providers reports usage in its task answer (Replicate's `metrics`
        // is run time, not price): the cost is the rendered length at the render's price.
        let cost = clip_cost(rendered_seconds, render.terms.price_per_second_usd);

        let mut current = job;
        for _ in 0..RACE_ATTEMPTS {
            let done = match current.succeeded(media.clone(), cost, self.clock.now()) {
                Ok(done) => done,
                Err(refusal) => {
                    tracing::info!(?refusal, "late result discarded");
                    return Ok(());
                }
            };
            let finished = done.clone();
            let mut writes = vec![done];
            let mut released = None;
            if let Some(compose_id) = &current.compose_job {
                let compose = self.jobs.story_job(&current.story, compose_id).await?;
                if let Ok(next) = compose.scene_finished() {
                    if next.waiting_for == 0 {
                        released = Some(next.clone());
                    }
                    writes.push(next);
                }
            }
            if self.commit(writes, None).await? {
                tracing::info!(key = %media.key, cost, "clip stored");
                crate::crash_point!("worker.after_fan_in");
                crate::metrics::job_finished(&finished, "succeeded");
                if let Some(compose) = released {
                    tracing::info!(compose_job = %compose.id, "last clip of the render: composing");
                    self.enqueue(&compose, Duration::ZERO).await?;
                }
                return Ok(());
            }
            // Another scene finished at the same moment (or the job was cancelled): decide again.
            current = self.reread(&current).await?;
        }
        Err(Error::internal("the job kept changing while its result was recorded"))
    }

    /// An attempt failed: retried with backoff while attempts remain and the error allows it;
    /// otherwise the job fails, and with it its render and its story.
    async fn attempt_failed(&self, job: Job, error: ProviderError) -> Result<()> {
        tracing::warn!(%error, retryable = error.retryable, "attempt failed");
        let mut current = job;
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now();
            match current.attempt_failed(&error.to_string(), error.failure, error.retryable, now) {
                Err(_) => return Ok(()),
                Ok(AfterFailure::Retry { job, delay }) => {
                    if self.commit(vec![job.clone()], None).await? {
                        return self.enqueue(&job, delay).await;
                    }
                }
                Ok(AfterFailure::Failed(job)) => {
                    let finished = job.clone();
                    let (writes, effect) = self.failure_writes(job, &error.to_string()).await?;
                    if self.commit(writes, effect).await? {
                        crate::metrics::job_finished(&finished, "failed");
                        return Ok(());
                    }
                }
            }
            current = self.reread(&current).await?;
        }
        Err(Error::internal("the job kept changing while its failure was recorded"))
    }

    /// A failed job with the rest of its render called off and its story failed.
    async fn failure_writes(&self, failed: Job, error: &str) -> Result<(Vec<Job>, Option<StoryEffect>)> {
        let Some(render) = failed.render.clone().filter(|_| failed.compose_job.is_some() || failed.composes()) else {
            return Ok((vec![failed], None));
        };
        let siblings = self.jobs.story_jobs(&failed.story).await?;
        let what = match (&failed.clip, render.stage) {
            (Some(clip), _) => format!("Scene {} ({}) could not be rendered", clip.order + 1, clip.title),
            (None, RenderStage::Preview) => "The preview could not be composed".to_owned(),
            (None, RenderStage::Final) => "The final video could not be composed".to_owned(),
        };
        let now = self.clock.now();
        Ok(fail_render(failed, &siblings, Mover::Worker, Actor::System, &format!("{what}: {error}"), now))
    }

    /// Lets go of the job's lease after a failed step, so the retry need not wait for it to run out.
    async fn release(&self, message: &JobMessage) {
        let released = async {
            let job = self.jobs.story_job(&message.story_id, &message.job_id).await?;
            match job.released() {
                Ok(next) => self.commit(vec![next], None).await.map(|_| ()),
                Err(_) => Ok(()),
            }
        }
        .await;
        if let Err(e) = released {
            tracing::warn!(error = %e, "could not let go of the job's lease; it runs out on its own");
        }
    }

    /// The message was delivered `max_receives` times without success: before it goes to the
    /// dead-letter queue, the job is marked failed (and its story with it), so nothing waits forever.
    async fn give_up(&self, message: &JobMessage, error: &Error) {
        let outcome = async {
            let job = self.jobs.story_job(&message.story_id, &message.job_id).await?;
            let Ok(failed) = job.given_up(self.settings.max_receives, &error.to_string(), self.clock.now()) else {
                return Ok(());
            };
            let text = failed.error.clone().unwrap_or_default();
            let (writes, effect) = self.failure_writes(failed, &text).await?;
            self.commit(writes, effect).await.map(|_| ())
        }
        .await;
        if let Err(e) = outcome {
            tracing::error!(error = %e, "could not mark the job failed before dead-lettering its message");
        }
    }

    async fn compose(&self, job: Job) -> Result<()> {
        let Some(render) = job.render.clone() else {
            return self.attempt_failed(job, ProviderError::permanent("invalid_job", "The job has no render.")).await;
        };
        let mut scenes: Vec<Job> = self
            .jobs
            .story_jobs(&job.story)
            .await?
            .into_iter()
            .filter(|j| j.compose_job.as_ref() == Some(&job.id))
            .collect();
        scenes.sort_by_key(|j| j.clip.as_ref().map_or(u32::MAX, |c| c.order));
        if let Some(missing) = scenes.iter().find(|j| j.status != JobStatus::Succeeded || j.result.is_none()) {
            let error = ProviderError::permanent(
                "scene_unfinished",
                format!("Scene job {} is {}, not succeeded.", missing.id, missing.status),
            );
            return self.attempt_failed(job, error).await;
        }
        tokio::fs::create_dir_all(&self.settings.work_dir).await.map_err(Error::internal)?;
        let scratch = tempfile::tempdir_in(&self.settings.work_dir).map_err(Error::internal)?;
        let mut clips = Vec::with_capacity(scenes.len());
        let mut subtitles = Vec::new();
        for (i, scene) in scenes.iter().enumerate() {
            let path = scratch.path().join(format!("clip-{i:03}.mp4"));
            let key = scene.result.as_ref().map(|r| r.key.clone()).unwrap_or_default();
            self.media.get_file(&key, &path).await?;
            clips.push(path);
            if let Some(clip) = &scene.clip
                && let Some(text) = &clip.narration
            {
                subtitles.push(Subtitle {
                    start: clip.start_seconds,
                    end: clip.start_seconds + clip.duration_seconds,
                    text: text.clone(),
                });
            }
        }
        let format = render.output_format;
        let composition = Composition {
            width: render.width,
            height: render.height,
            fps: render.fps,
            scale: render.scale(),
            format,
            watermark: (render.watermark && render.stage == RenderStage::Preview).then(|| "PREVIEW".to_owned()),
            subtitles: if render.include_subtitles { subtitles } else { Vec::new() },
        };
        let out = scratch.path().join(format!("{}.{}", render.stage, format.extension()));
        if let Err(e) = self.tools.compose(&clips, &composition, &out).await {
            return self.attempt_failed(job, ProviderError::retryable(format!("composing failed: {e}"))).await;
        }
        let probe = self.tools.probe(&out).await.map_err(|e| Error::internal(format!("probing the video: {e}")))?;
        // Previews live under `previews/`, finals under `stories/`: the bucket's lifecycle rule
        // expires previews and clips, never finals.
        let key = match render.stage {
            RenderStage::Preview => format!("previews/{}/{}.{}", job.story, job.id, format.extension()),
            RenderStage::Final => format!("stories/{}/final-{}.{}", job.story, job.id, format.extension()),
        };
        let size_bytes = self.media.put_file(&key, &out, format.content_type()).await?;
        crate::crash_point!("worker.after_composed_stored");
        let media = RenderedMedia {
            key,
            duration_seconds: probe.duration_seconds,
            width: probe.width,
            height: probe.height,
            fps: render.fps,
            format: format.extension().to_owned(),
            size_bytes,
        };
        let mut current = job;
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now();
            let Ok(done) = current.succeeded(media.clone(), 0.0, now) else {
                tracing::info!("compose result discarded: the job was cancelled");
                return Ok(());
            };
            let effect = StoryEffect {
                owner: current.owner.clone(),
                story: current.story.clone(),
                from: render.stage.rendering_status(),
                to: render.stage.done_status(),
                mover: Mover::Worker,
                actor: Actor::System,
                reason: None,
                media: Some((render.stage, media.clone())),
                at: now,
            };
            let finished = done.clone();
            match self.jobs.commit_jobs(vec![done], Some(effect)).await? {
                Committed::Done(story) => {
                    crate::crash_point!("worker.after_story_moved");
                    crate::metrics::job_finished(&finished, "succeeded");
                    match story {
                        Some(story) => tracing::info!(status = %story.status, key = %media.key, "render composed"),
                        None => tracing::warn!("render composed, but the story had moved on; it stays where it is"),
                    }
                    return Ok(());
                }
                Committed::Raced => current = self.reread(&current).await?,
            }
        }
        Err(Error::internal("the job kept changing while its result was recorded"))
    }
}
