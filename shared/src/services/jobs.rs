//! Job use cases: start a render, render one scene or test one prompt, and follow, retry, cancel
//! and count jobs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::domain::error::{Error, Result};
use crate::domain::ids::{Actor, JobId, PromptId, SceneId, StoryId, UserId};
use crate::domain::job::{FailureCode, Job, JobKind, JobRefusal, JobStatus};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::planner::MAX_SCENES;
use crate::domain::pricing::round_usd;
use crate::domain::prompt::PromptType;
use crate::domain::render::{ClipSpec, ProviderTerms, RenderOptions, RenderStage, plan_render, single_clip_job};
use crate::domain::scene::plan_gaps;
use crate::domain::state_machine::Mover;
use crate::domain::story::Story;
use crate::domain::usage::{Limits, Usage, UsageKey, month_of, request_reservation};
use crate::domain::values::AiProvider;
use crate::ports::{
    Clock, Committed, IdGenerator, JobFilter, JobMessage, JobQueue, JobStore, MoveRequest, PlanStore, RequestIds,
    UsageStore,
};
use crate::services::providers::{disabled, retired};
use crate::services::{ProviderService, fail_render};

/// How often a write that raced another one is decided again before the client is told to retry.
const RACE_ATTEMPTS: usize = 20;

/// The Jobs use cases.
#[derive(Clone)]
pub struct JobService {
    jobs: Arc<dyn JobStore>,
    plans: Arc<dyn PlanStore>,
    queue: Arc<dyn JobQueue>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    providers: ProviderService,
    spend: SpendLimits,
}

/// Where paid starts are checked (SPEC §8.7): the counters and caps, and the cap of users an admin
/// set none for (`AIVIDEO_MONTHLY_CAP_USD`).
#[derive(Clone)]
pub struct SpendLimits {
    /// The counters and per-user caps.
    pub usage: Arc<dyn UsageStore>,
    /// The monthly cap of every user without one of their own (none: no cap).
    pub default_monthly_cap_usd: Option<f64>,
    /// Where a refused start is reported (`budget.exceeded`).
    pub events: Arc<dyn crate::ports::EventStore>,
}

fn refused(refusal: JobRefusal, action: &str) -> Error {
    let detail = match refusal {
        JobRefusal::NotIn(status) | JobRefusal::Finished(status) => {
            format!("A {status} job cannot be {action}.")
        }
        JobRefusal::Leased { .. } => format!("The job is being worked on and cannot be {action} now."),
        JobRefusal::Waiting(n) => format!("The job waits for {n} scene job(s) and cannot be {action} now."),
    };
    Error::Conflict { detail, current_status: None }
}

impl JobService {
    /// Wires the use cases to their ports.
    pub fn new(
        jobs: Arc<dyn JobStore>,
        plans: Arc<dyn PlanStore>,
        queue: Arc<dyn JobQueue>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        providers: ProviderService,
        spend: SpendLimits,
    ) -> Self {
        Self { jobs, plans, queue, clock, ids, providers, spend }
    }

    /// `result`, after reporting a refusal by a spend limit as a `budget.exceeded` event (the
    /// refusal wrote nothing else; a failure to report it is logged, not the answer).
    async fn reported<T>(&self, owner: &UserId, story: Option<&StoryId>, result: Result<T>) -> Result<T> {
        if let Err(Error::BudgetExceeded { limit, estimate_usd, remaining_usd }) = &result {
            let draft = crate::domain::events::EventDraft {
                owner: owner.clone(),
                kind: crate::domain::events::EventType::BudgetExceeded,
                story: story.cloned(),
                job: None,
                data: serde_json::json!({
                    "limit": limit.as_str(), "estimate_usd": estimate_usd, "remaining_usd": remaining_usd,
                }),
                at: self.clock.now(),
            };
            if let Err(e) = self.spend.events.append_event(draft).await {
                tracing::warn!(error = %e, "a budget.exceeded event could not be written");
            }
        }
        result
    }

    /// `owner`'s monthly cap: the one an admin set, else the default.
    pub async fn monthly_cap(&self, owner: &UserId) -> Result<Option<f64>> {
        Ok(match self.spend.usage.user_cap(owner).await? {
            Some(set) => set,
            None => self.spend.default_monthly_cap_usd,
        })
    }

    /// `owner`'s figures for the current month (`usage/`).
    pub async fn usage(&self, owner: &UserId) -> Result<Usage> {
        let month = month_of(self.clock.now());
        let counters = self.spend.usage.counters(&UsageKey::Monthly(owner.clone(), month.clone())).await?;
        Ok(Usage::of(owner.clone(), month, counters, self.monthly_cap(owner).await?))
    }

    /// Sets `user`'s monthly cap (`None`: no cap); admins only (checked by the caller's route).
    pub async fn set_monthly_cap(&self, user: &UserId, cap_usd: Option<f64>) -> Result<Usage> {
        self.spend.usage.set_user_cap(user, cap_usd).await?;
        self.usage(user).await
    }

    async fn enqueue(&self, job: &Job) -> Result<()> {
        let message = JobMessage { job_id: job.id.clone(), story_id: job.story.clone(), kind: job.kind };
        self.queue.enqueue(&message, job.priority, Duration::ZERO).await
    }

    /// `generate_preview` (PLANNED → PREVIEWING) or `render_final` (PREVIEW_READY → FINALIZING):
    /// the story moves, locks, and gets its jobs in one atomic step; then the scene jobs are queued.
    /// `request` is the id a keyed request (`Idempotency-Key`) derives: the render's jobs take
    /// successive ids from it, so a retry whose first answer was lost to a crash finds the render
    /// it started and answers with it, instead of 409 (and never starts a second one).
    pub async fn start_render(
        &self,
        owner: &UserId,
        story: &StoryId,
        stage: RenderStage,
        options: RenderOptions,
        expected_version: Option<u64>,
        request: Option<ulid::Ulid>,
    ) -> Result<(Story, Vec<Job>)> {
        let started = self.begin_render(owner, story, stage, options, expected_version, request).await;
        let started = self.reported(owner, Some(story), started).await;
        match started {
            Err(refused @ (Error::InvalidTransition { .. } | Error::VersionMismatch { .. })) => match request {
                Some(first) => self.render_started_by(owner, story, first).await?.ok_or(refused),
                None => Err(refused),
            },
            started => started,
        }
    }

    /// The story and the render a keyed request started, if it did: its jobs' ids run from `first`.
    async fn render_started_by(
        &self,
        owner: &UserId,
        story: &StoryId,
        first: ulid::Ulid,
    ) -> Result<Option<(Story, Vec<Job>)>> {
        let plan = self.plans.story_plan(owner, story).await?;
        let first_id = JobId::from_ulid(first);
        match self.jobs.story_job(story, &first_id).await {
            Ok(_) => {}
            Err(Error::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        }
        // The ids the render's jobs took: at most one job per scene and its compose job.
        let mut keyed = RequestIds::new(Some(first), self.ids.as_ref());
        let ids: Vec<JobId> = (0..=MAX_SCENES).map(|_| JobId::from_ulid(keyed.next_id())).collect();
        let jobs = self.jobs.story_jobs(story).await?;
        let render = jobs.into_iter().filter(|j| ids.contains(&j.id)).collect();
        Ok(Some((plan.story, render)))
    }

    async fn begin_render(
        &self,
        owner: &UserId,
        story: &StoryId,
        stage: RenderStage,
        options: RenderOptions,
        expected_version: Option<u64>,
        request: Option<ulid::Ulid>,
    ) -> Result<(Story, Vec<Job>)> {
        let now = self.clock.now();
        let ids = self.ids.clone();
        // Read before the atomic step (the story's provider is only known inside it); a provider
        // disabled in between still renders the render that started before.
        let configs = self.providers.all().await?;
        let cap = self.monthly_cap(owner).await?;
        let build = Arc::new(move |plan: &crate::ports::StoryPlan| {
            let config = configs
                .iter()
                .find(|c| c.provider == plan.story.ai_provider)
                .ok_or_else(|| Error::internal("no configuration for the story's provider"))?;
            // Refused before anything is written or any paid call is made.
            if let Some(refusal) = retired(config) {
                return Err(refusal);
            }
            if !config.enabled {
                return Err(disabled(plan.story.ai_provider));
            }
            // The plan must still be complete: PLANNED stories can be edited while unlocked.
            let gaps = plan_gaps(&plan.story, &plan.scenes, &plan.prompts);
            if !gaps.is_empty() {
                return Err(Error::InvalidTransition {
                    detail: format!("The plan is not complete: {}", gaps.join("; ")),
                    current_status: plan.story.status,
                });
            }
            let mut job_ids = RequestIds::new(request, ids.as_ref());
            let mut jobs = plan_render(
                &plan.story,
                &plan.scenes,
                &plan.prompts,
                stage,
                options,
                || JobId::from_ulid(job_ids.next_id()),
                now,
            )?;
            // Each paid job reserves its estimate in the write that starts the render.
            let limits = Limits { story_budget_usd: plan.story.budget_usd, monthly_cap_usd: cap };
            for job in &mut jobs {
                if let Some(render) = job.render.as_mut() {
                    render.terms = ProviderTerms::of(config, options.quality);
                }
                request_reservation(job, &limits, now);
            }
            Ok(jobs)
        });
        let request = MoveRequest {
            owner: owner.clone(),
            story: story.clone(),
            to: stage.rendering_status(),
            mover: match stage {
                RenderStage::Preview => Mover::GeneratePreview,
                RenderStage::Final => Mover::RenderFinal,
            },
            actor: Actor::User(owner.clone()),
            reason: None,
            expected_version,
            at: now,
            request: request.map(|r| r.to_string()),
        };
        let (story, jobs) = self.jobs.start_render(request, build).await?;
        // Committed, not yet sent: the sweep sends what a crash here leaves without a message.
        crate::crash_point!("render.before_enqueue");
        for job in jobs.iter().filter(|j| j.renders_a_clip()) {
            self.enqueue(job).await?;
        }
        Ok((story, jobs))
    }

    /// `scenes/{id}/generate`: renders one scene's selected prompts on its own.
    /// `request`: a keyed request's derived id, which the job takes (see `single`).
    pub async fn generate_scene(
        &self,
        owner: &UserId,
        scene: &SceneId,
        options: RenderOptions,
        request: Option<ulid::Ulid>,
    ) -> Result<Job> {
        let scene = self.plans.scene(owner, scene).await?;
        let plan = self.plans.story_plan(owner, &scene.story).await?;
        let scene = plan.scenes.iter().find(|s| s.id == scene.id).ok_or(Error::NotFound)?;
        let clip = ClipSpec::of_scene(scene, &plan.prompts, plan.story.fps.get())?;
        self.single(&plan.story, &scene.id, clip, JobKind::SceneGenerate, options, request).await
    }

    /// `prompts/{id}/test`: renders one prompt (selected or not) as its scene's clip.
    /// `request`: a keyed request's derived id, which the job takes (see `single`).
    pub async fn test_prompt(
        &self,
        owner: &UserId,
        prompt: &PromptId,
        options: RenderOptions,
        request: Option<ulid::Ulid>,
    ) -> Result<Job> {
        let prompt = self.plans.prompt(owner, prompt).await?;
        let plan = self.plans.story_plan(owner, &prompt.story).await?;
        let scene = plan.scenes.iter().find(|s| s.id == prompt.scene).ok_or(Error::NotFound)?;
        if !matches!(prompt.prompt_type, PromptType::Video | PromptType::Image) {
            return Err(Error::Conflict {
                detail: format!(
                    "A {} prompt cannot be rendered on its own; test a video or image prompt.",
                    prompt.prompt_type
                ),
                current_status: None,
            });
        }
        let mut prompts: Vec<_> = plan.prompts.iter().filter(|p| p.id != prompt.id).cloned().collect();
        // Rendered as if it were the scene's selected video prompt.
        let mut as_video = prompt.clone();
        as_video.prompt_type = PromptType::Video;
        as_video.is_selected = true;
        prompts.retain(|p| !(p.scene == scene.id && p.prompt_type == PromptType::Video && p.is_selected));
        prompts.push(as_video);
        let clip = ClipSpec::of_scene(scene, &prompts, plan.story.fps.get())?;
        self.single(&plan.story, &scene.id, clip, JobKind::PromptTest, options, request).await
    }

    async fn single(
        &self,
        story: &Story,
        scene: &SceneId,
        clip: ClipSpec,
        kind: JobKind,
        options: RenderOptions,
        request: Option<ulid::Ulid>,
    ) -> Result<Job> {
        let config = self.providers.for_render(story.ai_provider).await?;
        // A keyed request's job takes the id derived from its key: a retry whose first answer was
        // lost finds the job it made (the create is conditional) instead of rendering again.
        let id = JobId::from_ulid(request.unwrap_or_else(|| self.ids.new_id()));
        let now = self.clock.now();
        let mut job = single_clip_job(story, scene, clip, kind, options, id, now);
        if let Some(render) = job.render.as_mut() {
            render.terms = ProviderTerms::of(&config, options.quality);
        }
        let limits =
            Limits { story_budget_usd: story.budget_usd, monthly_cap_usd: self.monthly_cap(&story.owner).await? };
        request_reservation(&mut job, &limits, now);
        let created = self.jobs.create_job(&job).await;
        match self.reported(&story.owner, Some(&story.id), created).await {
            Ok(()) => {}
            Err(Error::Conflict { .. }) if request.is_some() => {
                let made = self.jobs.story_job(&story.id, &job.id).await?;
                // Its message may have been lost with the answer: a duplicate is harmless.
                if made.status == JobStatus::Queued {
                    self.enqueue(&made).await?;
                }
                return Ok(made);
            }
            Err(e) => return Err(e),
        }
        // Committed, not yet sent: the sweep sends what a crash here leaves without a message.
        self.enqueue(&job).await?;
        Ok(job)
    }

    /// One of `owner`'s jobs.
    pub async fn get(&self, owner: &UserId, id: &JobId) -> Result<Job> {
        self.jobs.job(owner, id).await
    }

    /// A page of `owner`'s jobs.
    pub async fn list(&self, owner: &UserId, filter: &JobFilter, page: &PageRequest) -> Result<Page<Job>> {
        self.jobs.list_jobs(owner, filter, page).await
    }

    /// Queues a failed or cancelled job again, with a fresh set of attempts.
    pub async fn retry(&self, owner: &UserId, id: &JobId) -> Result<Job> {
        for _ in 0..RACE_ATTEMPTS {
            let job = self.jobs.job(owner, id).await?;
            let now = self.clock.now();
            let mut next = job.retried(now).map_err(|r| refused(r, "retried"))?;
            if job.failure_code == Some(FailureCode::SafetyInput) {
                next.clip = Some(self.reworded_clip(owner, &job).await?);
            }
            // A retry is paid work again: it reserves its estimate under today's limits.
            let story = self.plans.story_plan(owner, &job.story).await?.story;
            let limits = Limits { story_budget_usd: story.budget_usd, monthly_cap_usd: self.monthly_cap(owner).await? };
            request_reservation(&mut next, &limits, now);
            let committed = self.jobs.commit_jobs(vec![next.clone()], None).await;
            if let Committed::Done(_) = self.reported(owner, Some(&job.story), committed).await? {
                if next.waiting_for == 0 {
                    self.enqueue(&next).await?;
                }
                return Ok(next);
            }
        }
        Err(busy())
    }

    /// The clip of a job its provider refused for its input, as the scene's prompts are now: a
    /// flagged prompt is never sent again unchanged (409 `unchanged_flagged_input` until it is).
    async fn reworded_clip(&self, owner: &UserId, job: &Job) -> Result<ClipSpec> {
        let unchanged = |detail: &str| Error::UnchangedFlaggedInput { detail: detail.to_owned() };
        let (Some(old), Some(scene)) = (&job.clip, &job.scene) else {
            return Err(unchanged("The provider refused this job's input; start a new render instead."));
        };
        if job.kind == JobKind::PromptTest {
            return Err(unchanged(
                "The provider refused this prompt. Change it, then test it again with prompts/{id}/test/.",
            ));
        }
        let plan = self.plans.story_plan(owner, &job.story).await?;
        let scene = plan.scenes.iter().find(|s| &s.id == scene).ok_or(Error::NotFound)?;
        let fresh = ClipSpec::of_scene(scene, &plan.prompts, plan.story.fps.get())?;
        if fresh.prompt == old.prompt && fresh.negative_prompt == old.negative_prompt {
            return Err(unchanged(
                "The provider refused this scene's prompt; change the scene's selected video prompt before retrying.",
            ));
        }
        Ok(ClipSpec {
            prompt: fresh.prompt,
            negative_prompt: fresh.negative_prompt,
            parameters: fresh.parameters,
            ..old.clone()
        })
    }

    /// Cancels a queued, running or waiting job. A render job takes its render down with it: the
    /// render's other queued jobs are cancelled and the story fails with the reason.
    pub async fn cancel(&self, owner: &UserId, id: &JobId) -> Result<Job> {
        for _ in 0..RACE_ATTEMPTS {
            let now = self.clock.now();
            let job = self.jobs.job(owner, id).await?;
            let cancelled = job.cancelled(now).map_err(|r| refused(r, "cancelled"))?;
            let story_jobs = if job.compose_job.is_some() || job.composes() {
                self.jobs.story_jobs(&job.story).await?
            } else {
                Vec::new()
            };
            let stage = job.render.as_ref().map_or("", |r| r.stage.as_str());
            let reason = format!("The {stage} render was cancelled (job {}).", job.id);
            let (writes, effect) =
                fail_render(cancelled.clone(), &story_jobs, Mover::User, Actor::User(owner.clone()), &reason, now);
            if let Committed::Done(_) = self.jobs.commit_jobs(writes, effect).await? {
                return Ok(cancelled);
            }
        }
        Err(busy())
    }

    /// `owner`'s figures.
    pub async fn statistics(&self, owner: &UserId) -> Result<JobStatistics> {
        Ok(JobStatistics::from_jobs(&self.jobs.owner_jobs(owner).await?))
    }
}

fn busy() -> Error {
    Error::Conflict {
        detail: "The job is being changed by other requests right now; try again.".into(),
        current_status: None,
    }
}

/// What `jobs/statistics/` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobStatistics {
    /// How many jobs.
    pub total_jobs: u64,
    /// Count per status (every status, zeros included).
    pub by_status: BTreeMap<&'static str, u64>,
    /// Count per kind (kinds in use).
    pub by_kind: BTreeMap<&'static str, u64>,
    /// Count per provider (providers in use).
    pub by_provider: BTreeMap<&'static str, u64>,
    /// Seconds of clips rendered by succeeded clip jobs.
    pub seconds_rendered: f64,
    /// Money spent: the recorded cost of every job.
    pub cost_usd: f64,
    /// Succeeded ÷ (succeeded + failed); null before any job finished.
    pub success_rate: Option<f64>,
    /// Mean time from start to finish of succeeded jobs, in seconds; null before any.
    pub mean_processing_seconds: Option<f64>,
}

impl JobStatistics {
    /// Folds jobs into the figures.
    pub fn from_jobs(jobs: &[Job]) -> Self {
        let mut stats = JobStatistics {
            total_jobs: jobs.len() as u64,
            by_status: JobStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
            by_kind: BTreeMap::new(),
            by_provider: BTreeMap::new(),
            seconds_rendered: 0.0,
            cost_usd: 0.0,
            success_rate: None,
            mean_processing_seconds: None,
        };
        let (mut succeeded, mut failed, mut busy_seconds) = (0u64, 0u64, 0.0);
        for job in jobs {
            *stats.by_status.entry(job.status.as_str()).or_default() += 1;
            *stats.by_kind.entry(job.kind.as_str()).or_default() += 1;
            *stats.by_provider.entry(AiProvider::as_str(job.provider)).or_default() += 1;
            stats.cost_usd += job.cost_usd;
            match job.status {
                JobStatus::Succeeded => {
                    succeeded += 1;
                    if job.renders_a_clip() {
                        stats.seconds_rendered += job.result.as_ref().map_or(0.0, |m| m.duration_seconds);
                    }
                    if let (Some(start), Some(end)) = (job.started_at, job.finished_at) {
                        busy_seconds += (end - start).num_milliseconds() as f64 / 1000.0;
                    }
                }
                JobStatus::Failed => failed += 1,
                _ => {}
            }
        }
        stats.cost_usd = round_usd(stats.cost_usd);
        stats.seconds_rendered = (stats.seconds_rendered * 1000.0).round() / 1000.0;
        if succeeded + failed > 0 {
            stats.success_rate = Some(succeeded as f64 / (succeeded + failed) as f64);
        }
        if succeeded > 0 {
            stats.mean_processing_seconds = Some(((busy_seconds / succeeded as f64) * 1000.0).round() / 1000.0);
        }
        stats
    }
}
