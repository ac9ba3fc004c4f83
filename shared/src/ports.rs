//! The small traits the use cases need, named after what the product does. Each adapter holds
//! every invariant inside one atomic step (the embedded store's write transaction, DynamoDB's
//! conditional write or transaction), so the services never check-then-write.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::error::Result;
use crate::domain::ids::{Actor, JobId, PromptId, SceneId, StoryId, UserId};
use crate::domain::job::{FailureCode, Job, JobKind, JobPriority, JobRefusal, JobStatus};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::plan_edits::{PlanEdit, PlanState};
use crate::domain::prompt::{PromptType, ScenePrompt};
use crate::domain::render::RenderStage;
use crate::domain::scene::{Scene, SceneKind, SceneStatus};
use crate::domain::state_machine::{Mover, StoryStatus};
use crate::domain::statistics::StoryStatistics;
use crate::domain::story::{RenderedMedia, Story, StoryEdit};
use crate::domain::transition::StoryStateTransition;
use crate::domain::values::{AiProvider, Project, Reason};

/// Filters of `GET stories/`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoryFilter {
    /// Only stories in this status.
    pub status: Option<StoryStatus>,
    /// Only stories of this project.
    pub project: Option<Project>,
    /// Only stories rendered by this provider.
    pub ai_provider: Option<AiProvider>,
}

impl StoryFilter {
    /// Whether `story` passes the filter.
    pub fn admits(&self, story: &Story) -> bool {
        self.status.is_none_or(|s| s == story.status)
            && self.project.is_none_or(|p| story.project == Some(p))
            && self.ai_provider.is_none_or(|p| p == story.ai_provider)
    }
}

/// A request to move a story, carried out in one atomic step with its history record.
#[derive(Debug, Clone)]
pub struct MoveRequest {
    /// Whose story (another owner's story is "not found").
    pub owner: UserId,
    /// Which story.
    pub story: StoryId,
    /// Where to.
    pub to: StoryStatus,
    /// Who asks (decides which moves are allowed).
    pub mover: Mover,
    /// Recorded in the history.
    pub actor: Actor,
    /// Why; required for moves to FAILED.
    pub reason: Option<Reason>,
    /// `If-Match`: the version the caller last saw.
    pub expected_version: Option<u64>,
    /// When.
    pub at: DateTime<Utc>,
    /// The `Idempotency-Key` request asking for the move (its derived id), kept in the history.
    pub request: Option<String>,
}

impl MoveRequest {
    /// The move applied to `story` as a store read it inside its atomic step: the version checked,
    /// the move with its history record (which names the keyed request that asked for it).
    /// `plan_gaps` is asked only by a move that needs a complete plan.
    pub fn applied(
        &self,
        story: &Story,
        plan_gaps: impl FnOnce() -> Vec<String>,
    ) -> Result<(Story, StoryStateTransition)> {
        story.check_version(self.expected_version)?;
        let (next, mut record) =
            story.moved(self.to, self.mover, self.actor.clone(), self.reason.clone(), plan_gaps, self.at)?;
        record.request = self.request.clone();
        Ok((next, record))
    }

    /// A render's start (PLANNED → PREVIEWING, PREVIEW_READY → FINALIZING) applied to `story` as
    /// a store read it inside its atomic step: the version checked, the move with its history
    /// record. The plan's completeness is the render builder's to check, on the same read.
    pub fn render_start(&self, story: &Story) -> Result<(Story, StoryStateTransition)> {
        self.applied(story, Vec::new)
    }
}

/// Stories and their history. Every method answers `Error::NotFound` for a story that does not
/// exist or belongs to another owner.
#[async_trait]
pub trait StoryStore: Send + Sync {
    /// Stores a new story.
    async fn create_story(&self, story: &Story) -> Result<()>;

    /// One story of `owner`.
    async fn story(&self, owner: &UserId, id: &StoryId) -> Result<Story>;

    /// A page of `owner`'s stories in creation order.
    async fn list_stories(&self, owner: &UserId, filter: &StoryFilter, page: &PageRequest) -> Result<Page<Story>>;

    /// Applies `edit` if the story is editable and at `expected_version` (when given).
    async fn edit_story(
        &self,
        owner: &UserId,
        id: &StoryId,
        edit: StoryEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story>;

    /// Deletes the story with its history (and, once they exist, its scenes, prompts and jobs).
    async fn delete_story(&self, owner: &UserId, id: &StoryId, expected_version: Option<u64>) -> Result<()>;

    /// Moves the story through the state machine and appends the history record, atomically.
    async fn move_story(&self, request: MoveRequest) -> Result<Story>;

    /// Locks (`true`) or unlocks the story's plan.
    async fn set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story>;

    /// A page of the story's history, oldest first unless the request says otherwise.
    async fn transitions(&self, owner: &UserId, id: &StoryId, page: &PageRequest)
    -> Result<Page<StoryStateTransition>>;

    /// The owner's figures.
    async fn story_statistics(&self, owner: &UserId) -> Result<StoryStatistics>;

    /// Every story still rendering (PREVIEWING or FINALIZING), of every owner: what the sweep
    /// checks for a render that finished without moving its story.
    async fn rendering_stories(&self) -> Result<Vec<Story>>;
}

/// Filters of `GET scenes/`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneFilter {
    /// Only scenes of this story.
    pub story: Option<StoryId>,
    /// Only scenes of this kind.
    pub kind: Option<SceneKind>,
    /// Only scenes in this status.
    pub status: Option<SceneStatus>,
}

impl SceneFilter {
    /// Whether `scene` passes the filter.
    pub fn admits(&self, scene: &Scene) -> bool {
        self.story.as_ref().is_none_or(|s| *s == scene.story)
            && self.kind.is_none_or(|k| k == scene.kind)
            && self.status.is_none_or(|s| s == scene.status)
    }
}

/// Filters of `GET prompts/`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptFilter {
    /// Only prompts of this story.
    pub story: Option<StoryId>,
    /// Only prompts of this scene.
    pub scene: Option<SceneId>,
    /// Only prompts of this type.
    pub prompt_type: Option<PromptType>,
    /// Only selected (or only unselected) prompts.
    pub is_selected: Option<bool>,
}

impl PromptFilter {
    /// Whether `prompt` passes the filter.
    pub fn admits(&self, prompt: &ScenePrompt) -> bool {
        self.story.as_ref().is_none_or(|s| *s == prompt.story)
            && self.scene.as_ref().is_none_or(|s| *s == prompt.scene)
            && self.prompt_type.is_none_or(|t| t == prompt.prompt_type)
            && self.is_selected.is_none_or(|b| b == prompt.is_selected)
    }
}

/// How scenes and prompts are listed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildOrdering {
    /// By story, then scene order.
    Order,
    /// By creation.
    CreatedAt,
}

/// The sort key of a scene in a listing (so both adapters page identically).
pub fn scene_listing_key(scene: &Scene, ordering: ChildOrdering) -> String {
    match ordering {
        ChildOrdering::Order => format!("{}.{:05}.{}", scene.story, scene.order, scene.id),
        ChildOrdering::CreatedAt => scene.id.to_string(),
    }
}

/// The sort key of a prompt in a listing; `scenes` are its story's scenes.
pub fn prompt_listing_key(prompt: &ScenePrompt, scenes: &[Scene], ordering: ChildOrdering) -> String {
    match ordering {
        ChildOrdering::Order => {
            let order = scenes.iter().find(|s| s.id == prompt.scene).map_or(u32::MAX, |s| s.order);
            format!("{}.{order:05}.{}", prompt.story, prompt.id)
        }
        ChildOrdering::CreatedAt => prompt.id.to_string(),
    }
}

/// The object a plan edit is about; the edit runs on the plan of the story that holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanTarget {
    /// A story (its whole plan).
    Story(StoryId),
    /// A scene (the edit runs on its story's plan).
    Scene(SceneId),
    /// A prompt (the edit runs on its story's plan).
    Prompt(PromptId),
}

/// One edit of one or more plans, as pure domain work (`PlanEdit`, one per target, in the
/// targets' order). A store may run it more than once when its atomic step raced another writer,
/// so it must do the same thing every time.
pub type PlanWork = dyn Fn(&mut [PlanEdit]) -> Result<()> + Send + Sync;

/// A story with its whole plan, read in one consistent step.
#[derive(Debug, Clone)]
pub struct StoryPlan {
    /// The story.
    pub story: Story,
    /// Its scenes, in order, with `start_seconds`.
    pub scenes: Vec<Scene>,
    /// Every prompt of every scene.
    pub prompts: Vec<ScenePrompt>,
}

/// Scenes and prompts. Every change goes through one entry point, `edit_plans`, which runs the
/// domain's pure edit inside the store's atomic step (checking the story's lock and versions
/// there); the rest are reads. Every method answers `Error::NotFound` for objects of another owner.
#[async_trait]
pub trait PlanStore: Send + Sync {
    /// Loads the plans of the stories holding `targets` (each story once), runs `work` on them,
    /// and writes what it changed — all in one atomic step. Answers the plans as written, in the
    /// targets' order; `Error::NotFound` when a target is missing or another owner's.
    async fn edit_plans(
        &self,
        owner: &UserId,
        targets: &[PlanTarget],
        work: std::sync::Arc<PlanWork>,
    ) -> Result<Vec<PlanState>>;

    /// The story with its scenes and prompts.
    async fn story_plan(&self, owner: &UserId, story: &StoryId) -> Result<StoryPlan>;

    /// One scene.
    async fn scene(&self, owner: &UserId, id: &SceneId) -> Result<Scene>;

    /// A page of the owner's scenes.
    async fn list_scenes(
        &self,
        owner: &UserId,
        filter: &SceneFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<Scene>>;

    /// One prompt.
    async fn prompt(&self, owner: &UserId, id: &PromptId) -> Result<ScenePrompt>;

    /// A page of the owner's prompts.
    async fn list_prompts(
        &self,
        owner: &UserId,
        filter: &PromptFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<ScenePrompt>>;
}

/// Filters of `GET jobs/` and `stories/{id}/jobs/`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobFilter {
    /// Only jobs of this story.
    pub story: Option<StoryId>,
    /// Only jobs of this scene.
    pub scene: Option<SceneId>,
    /// Only jobs in this status.
    pub status: Option<JobStatus>,
    /// Only jobs of this kind.
    pub kind: Option<JobKind>,
}

impl JobFilter {
    /// Whether `job` passes the filter.
    pub fn admits(&self, job: &Job) -> bool {
        self.story.as_ref().is_none_or(|s| *s == job.story)
            && self.scene.as_ref().is_none_or(|s| job.scene.as_ref() == Some(s))
            && self.status.is_none_or(|s| s == job.status)
            && self.kind.is_none_or(|k| k == job.kind)
    }
}

/// The story change that goes with a job's change — a render composed, failed or cancelled —
/// written in the same atomic step. It applies only while the story is still `from`; a story
/// that moved on meanwhile (failed by its owner, say) is left as it is.
#[derive(Debug, Clone)]
pub struct StoryEffect {
    /// Whose story.
    pub owner: UserId,
    /// Which story.
    pub story: StoryId,
    /// The status the job expects the story in.
    pub from: StoryStatus,
    /// Where it goes.
    pub to: StoryStatus,
    /// Who moves it.
    pub mover: Mover,
    /// Recorded in the history.
    pub actor: Actor,
    /// Why (required for FAILED).
    pub reason: Option<Reason>,
    /// The composed video, stored on the story as its preview or final.
    pub media: Option<(RenderStage, RenderedMedia)>,
    /// When.
    pub at: DateTime<Utc>,
}

impl StoryEffect {
    /// The story after the effect and its history record, or `None` when the story is no longer
    /// where the effect expects it.
    pub fn apply(&self, story: &Story) -> Result<Option<(Story, StoryStateTransition)>> {
        if story.status != self.from || story.owner != self.owner {
            return Ok(None);
        }
        let (mut next, record) =
            story.moved(self.to, self.mover, self.actor.clone(), self.reason.clone(), Vec::new, self.at)?;
        match &self.media {
            Some((RenderStage::Preview, media)) => next.preview = Some(media.clone()),
            Some((RenderStage::Final, media)) => next.final_video = Some(media.clone()),
            None => {}
        }
        Ok(Some((next, record)))
    }
}

/// How a job write ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Committed {
    /// Written; with the story as it now is when the effect applied.
    Done(Option<Box<Story>>),
    /// A job or the story changed since it was read: read again and decide again.
    Raced,
}

/// Builds a render's jobs from the plan exactly as the adapter read it for the write.
pub type RenderBuilder = dyn Fn(&StoryPlan) -> Result<Vec<Job>> + Send + Sync;

/// Jobs. The worker reaches a job by story and id (messages carry both); owners by id.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Stores a new job (a single clip job; renders start with `start_render`).
    async fn create_job(&self, job: &Job) -> Result<()>;

    /// One job of a story.
    async fn story_job(&self, story: &StoryId, id: &JobId) -> Result<Job>;

    /// Every job of a story (the worker's view; no owner check).
    async fn story_jobs(&self, story: &StoryId) -> Result<Vec<Job>>;

    /// One job of `owner`.
    async fn job(&self, owner: &UserId, id: &JobId) -> Result<Job>;

    /// A page of `owner`'s jobs in creation order.
    async fn list_jobs(&self, owner: &UserId, filter: &JobFilter, page: &PageRequest) -> Result<Page<Job>>;

    /// Every job of `owner` (for the figures).
    async fn owner_jobs(&self, owner: &UserId) -> Result<Vec<Job>>;

    /// Every job not finished yet, of every owner: what the sweep checks for work without a
    /// message or an owner.
    async fn unfinished_jobs(&self) -> Result<Vec<Job>>;

    /// Starts a render in one atomic step: moves the story (PLANNED → PREVIEWING or
    /// PREVIEW_READY → FINALIZING, which locks it) with its history record and stores the jobs
    /// `build` makes from the plan read in that same step.
    async fn start_render(
        &self,
        request: MoveRequest,
        build: std::sync::Arc<RenderBuilder>,
    ) -> Result<(Story, Vec<Job>)>;

    /// Writes jobs — new ones (`version` 1, refused if they exist) and next versions (written only
    /// if the stored one is `version - 1`) — and the story effect, all or nothing.
    async fn commit_jobs(&self, jobs: Vec<Job>, effect: Option<StoryEffect>) -> Result<Committed>;

    /// Claims a job for a worker with one conditional write: a queued job, or one whose lease ran
    /// out. Of many concurrent claims (duplicate deliveries) exactly one wins; the others get the
    /// refusal, and do nothing.
    async fn claim_job(
        &self,
        story: &StoryId,
        id: &JobId,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<std::result::Result<Job, JobRefusal>>;
}

/// Filters of `GET events/`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Only events of these types (none: all).
    pub types: Vec<crate::domain::events::EventType>,
    /// Only events about this story.
    pub story: Option<StoryId>,
}

impl EventFilter {
    /// Whether `event` passes the filter.
    pub fn admits(&self, event: &crate::domain::events::Event) -> bool {
        (self.types.is_empty() || self.types.contains(&event.kind))
            && self.story.as_ref().is_none_or(|s| event.story.as_ref() == Some(s))
    }
}

/// The event feed (SPEC §8.5). State changes write their events themselves, inside the stores'
/// atomic writes (`domain::events`); this port reads the feed and appends the events that report
/// no stored change (a refused start).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// A page of `owner`'s events in id order (oldest first unless the page says otherwise).
    async fn events(
        &self,
        owner: &UserId,
        filter: &EventFilter,
        page: &PageRequest,
    ) -> Result<Page<crate::domain::events::Event>>;

    /// Appends one event on its own.
    async fn append_event(&self, draft: crate::domain::events::EventDraft) -> Result<crate::domain::events::Event>;

    /// Forgets events created before `before` (where the store has no TTL of its own); how many.
    async fn forget_events_before(&self, before: DateTime<Utc>) -> Result<usize>;

    /// How far out of id order events may be committed: a reader resuming from a position looks
    /// this far back (zero where ids are issued in commit order, as on the embedded store).
    fn reorder_window(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Webhook endpoints, their deliveries and the delivery log (SPEC §8.6). Every write that
/// changes a delivery is conditioned on the version read, so two attempts of one delivery cannot
/// both record; an attempt's outcome is one atomic write.
#[async_trait]
pub trait WebhookStore: Send + Sync {
    /// Registers `webhook`, refusing (409) an owner who already has `max` endpoints.
    async fn create_webhook(&self, webhook: &crate::domain::webhooks::Webhook, max: usize) -> Result<()>;

    /// `owner`'s endpoint (not found for anyone else's).
    async fn webhook(
        &self,
        owner: &UserId,
        id: &crate::domain::ids::WebhookId,
    ) -> Result<crate::domain::webhooks::Webhook>;

    /// `owner`'s endpoints.
    async fn owner_webhooks(&self, owner: &UserId) -> Result<Vec<crate::domain::webhooks::Webhook>>;

    /// Every active endpoint (what the fan-out runs over).
    async fn active_webhooks(&self) -> Result<Vec<crate::domain::webhooks::Webhook>>;

    /// Writes `webhook` if it is still at `expected_version` (else `VersionMismatch`).
    async fn save_webhook(&self, webhook: &crate::domain::webhooks::Webhook, expected_version: u64) -> Result<()>;

    /// Deletes `owner`'s endpoint with its deliveries and log.
    async fn delete_webhook(&self, owner: &UserId, id: &crate::domain::ids::WebhookId) -> Result<()>;

    /// Stores the deliveries not stored yet (one per endpoint and event, whoever adds it first);
    /// returns the ones that still wait for a first attempt (the new ones, and any a crash kept
    /// from being sent).
    async fn add_deliveries(
        &self,
        deliveries: Vec<crate::domain::webhooks::WebhookDelivery>,
    ) -> Result<Vec<crate::domain::webhooks::WebhookDelivery>>;

    /// One delivery.
    async fn delivery(
        &self,
        key: &crate::domain::webhooks::DeliveryKey,
    ) -> Result<crate::domain::webhooks::WebhookDelivery>;

    /// Writes `delivery` if it is still at `expected_version` (else `VersionMismatch`).
    async fn save_delivery(
        &self,
        delivery: &crate::domain::webhooks::WebhookDelivery,
        expected_version: u64,
    ) -> Result<()>;

    /// Records a finished attempt in one write: the delivery (conditioned on the claimed copy's
    /// version), the endpoint (conditioned on the version it was read at), the log entry and the
    /// `webhook.disabled` event if the attempt disabled it.
    async fn finish_attempt(
        &self,
        outcome: crate::domain::webhooks::AttemptOutcome,
        webhook_version: u64,
    ) -> Result<()>;

    /// A page of an endpoint's log, newest first unless the page says otherwise.
    async fn attempts(
        &self,
        webhook: &crate::domain::ids::WebhookId,
        page: &PageRequest,
    ) -> Result<Page<crate::domain::webhooks::DeliveryAttempt>>;

    /// One log entry.
    async fn attempt(
        &self,
        webhook: &crate::domain::ids::WebhookId,
        id: &str,
    ) -> Result<crate::domain::webhooks::DeliveryAttempt>;
}

/// One delivery received from the webhook queue, with what settles it.
#[derive(Debug, Clone)]
pub struct QueuedDelivery {
    /// Which delivery.
    pub key: crate::domain::webhooks::DeliveryKey,
    /// The queue's own message, when it has one (SQS), to settle.
    pub message: Option<Delivery>,
}

/// The webhook deliveries' queue (SQS on AWS: its own queue; on the embedded store the pending
/// deliveries themselves, by due time).
#[async_trait]
pub trait WebhookQueue: Send + Sync {
    /// Asks for an attempt of `key` after `delay`.
    async fn send(&self, key: &crate::domain::webhooks::DeliveryKey, delay: std::time::Duration) -> Result<()>;

    /// Up to `max` deliveries that are due, each hidden from other consumers for `visibility`.
    async fn receive(&self, max: u32, visibility: std::time::Duration) -> Result<Vec<QueuedDelivery>>;

    /// Done with one (deleted), or to be looked at again after a while.
    async fn settle(&self, delivery: &QueuedDelivery, outcome: Handled) -> Result<()>;
}

/// The outbound side of webhooks: checks a target and POSTs a delivery to it.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Whether `url` may be delivered to now: its form and every address its host resolves to
    /// (SPEC §8.6: the download policy's). The reason, phrased for the `url` field, if not.
    async fn check(&self, url: &str) -> std::result::Result<(), String>;

    /// POSTs `body` with `headers` to `url` (checked again, connected to the checked address, no
    /// redirects followed) and reports what came back.
    async fn send(&self, url: &str, headers: &[(String, String)], body: &str)
    -> crate::domain::webhooks::AttemptResult;
}

/// The spend counters (SPEC §8.7). The writes that start and end paid jobs change them in their
/// own atomic step (`start_render`, `create_job`, `commit_jobs`, through `domain::usage::advance`);
/// this port reads them and keeps the per-user caps admins set.
#[async_trait]
pub trait UsageStore: Send + Sync {
    /// A counter as it is now (zero when never written).
    async fn counters(&self, key: &crate::domain::usage::UsageKey) -> Result<crate::domain::usage::Counters>;

    /// The cap an admin set for `owner`: `None` when none was set (the default applies),
    /// `Some(None)` for "no cap".
    async fn user_cap(&self, owner: &UserId) -> Result<Option<Option<f64>>>;

    /// Sets `owner`'s cap (`None`: no cap).
    async fn set_user_cap(&self, owner: &UserId, cap_usd: Option<f64>) -> Result<()>;
}

/// Provider configurations written by admins. Providers never configured use their seed
/// (`domain::pricing::seed_provider_config`).
#[async_trait]
pub trait ProviderConfigStore: Send + Sync {
    /// Every stored configuration.
    async fn stored_provider_configs(&self) -> Result<Vec<crate::domain::provider::AiProviderConfig>>;

    /// Writes `config` (its `version` already bumped) if the stored one still has version
    /// `expected` — 0 meaning that none is stored yet; otherwise `Error::VersionMismatch` with the
    /// stored version.
    async fn put_provider_config(
        &self,
        config: &crate::domain::provider::AiProviderConfig,
        expected: u64,
    ) -> Result<()>;
}

/// A response kept for an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StoredResponse {
    /// HTTP status.
    pub status: u16,
    /// Headers worth replaying (`content-type`, `etag`, `location`).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

/// What claiming an idempotency key found.
#[derive(Debug, Clone, PartialEq)]
pub enum IdempotencyClaim {
    /// First use (or the earlier record expired), or a claim whose holder died before answering
    /// (taken over): do the work, then `complete`. `first_claimed_at` is when the key was first
    /// claimed — the same for every retry of an unanswered request, so an object it creates can
    /// be named by an id derived from it and found again (`http::idempotency::creation_id`).
    Fresh {
        /// When the key was first claimed for this request.
        first_claimed_at: DateTime<Utc>,
    },
    /// Same key, same request: answer with this.
    Replay(StoredResponse),
    /// Same key, another request.
    Mismatch,
    /// Same key, same request, still being worked on.
    InProgress,
}

/// Remembers `Idempotency-Key`s per user for 24 h.
#[async_trait]
pub trait IdempotencyStore: Send + Sync {
    /// Claims `key` for the request with `fingerprint`, atomically.
    async fn claim(&self, owner: &UserId, key: &str, fingerprint: &str, now: DateTime<Utc>)
    -> Result<IdempotencyClaim>;

    /// Stores the response of a claimed key.
    async fn complete(&self, owner: &UserId, key: &str, response: &StoredResponse, now: DateTime<Utc>) -> Result<()>;

    /// Gives a claimed key back (the work failed on our side; the client may try again).
    async fn release(&self, owner: &UserId, key: &str) -> Result<()>;
}

/// The message a job's queue carries: ids only (SQS messages are small).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct JobMessage {
    /// The job.
    pub job_id: crate::domain::ids::JobId,
    /// Its story.
    pub story_id: StoryId,
    /// What it does.
    pub kind: JobKind,
}

/// The work queue the worker consumes (SQS in production, in-process locally).
#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Enqueues `message`, visible after `delay`, ahead of lower priorities.
    async fn enqueue(&self, message: &JobMessage, priority: JobPriority, delay: Duration) -> Result<()>;
}

/// One message received from the work queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The message's id (what a partial batch response names).
    pub message_id: String,
    /// The queue's handle to settle this delivery.
    pub receipt: String,
    /// The body (a `JobMessage` as JSON, or whatever a sender put there).
    pub body: String,
    /// How many times it has been received (1 on the first delivery).
    pub receive_count: u32,
}

/// What the handler of one message says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Done: delete it.
    Done,
    /// Failed: deliver it again after `retry_after`; once received too often it is dead-lettered.
    Failed {
        /// When to try again.
        retry_after: Duration,
    },
}

/// The consuming side of the work queue, as the Lambda event source mapping sees SQS: batches,
/// a visibility timeout per receive, per-message settlement, dead-lettering.
#[async_trait]
pub trait JobInbox: Send + Sync {
    /// Up to `max` visible messages, higher priorities first, each hidden for `visibility`.
    async fn receive_batch(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>>;

    /// Deletes a handled message, or makes a failed one visible again after its delay.
    async fn settle(&self, delivery: &Delivery, outcome: Handled) -> Result<()>;
}

/// One round of the in-process consumer: receive a batch, handle every message on its own, one
/// after the other (one bad message never fails its neighbours), settle each. Returns the ids that
/// failed — what a Lambda partial batch response reports.
pub async fn consume_once<F, Fut>(
    inbox: &dyn JobInbox,
    max: u32,
    visibility: Duration,
    handler: F,
) -> Result<Vec<String>>
where
    F: Fn(Delivery) -> Fut,
    Fut: std::future::Future<Output = Handled>,
{
    let batch = inbox.receive_batch(max, visibility).await?;
    let mut failed = Vec::new();
    for delivery in batch {
        let outcome = handler(delivery.clone()).await;
        if let Handled::Failed { .. } = outcome {
            failed.push(delivery.message_id.clone());
        }
        inbox.settle(&delivery, outcome).await?;
    }
    Ok(failed)
}

/// A signed, expiring download link.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedUrl {
    /// The link.
    pub url: String,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// Where rendered media lives (S3 in production, a folder locally). Keys are chosen by the server.
#[async_trait]
pub trait MediaStore: Send + Sync {
    /// Stores the file at `path` under `key`; returns its size.
    async fn put_file(&self, key: &str, path: &std::path::Path, content_type: &str) -> Result<u64>;

    /// A download link for `key`, valid for `ttl`.
    async fn signed_url(&self, key: &str, ttl: Duration) -> Result<SignedUrl>;

    /// Copies the object `key` to the file `dest` (the compose job reads the clips back).
    async fn get_file(&self, key: &str, dest: &std::path::Path) -> Result<()>;
}

/// Secrets by name (Secrets Manager in production, environment or data dir locally).
#[async_trait]
pub trait SecretSource: Send + Sync {
    /// The secret's value.
    async fn secret(&self, name: &str) -> Result<String>;
}

/// The shared budget behind each provider's `rate_limit_per_minute` (in the store, so every
/// worker in every process draws from the same one).
#[async_trait]
pub trait SubmitBudget: Send + Sync {
    /// Takes one of `per_minute` submissions to `provider` at `now`: `None` when taken, else when
    /// the next one may go. Atomic: concurrent takers never overshoot the limit.
    async fn take_submission(
        &self,
        provider: crate::domain::values::AiProvider,
        per_minute: u32,
        now: DateTime<Utc>,
    ) -> Result<Option<DateTime<Utc>>>;
}

/// The time, so tests can hold it still.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;
}

/// Issues ids (ULIDs, so they sort by creation time).
pub trait IdGenerator: Send + Sync {
    /// A fresh id.
    fn new_id(&self) -> ulid::Ulid;
}

/// The ids of the objects one request makes: successive ids from a keyed request's derived id
/// (`http::idempotency::creation_id`), so a retry of it names the same objects and finds them;
/// fresh ones otherwise (and past the end of the id space, where no retry can follow anyway).
pub struct RequestIds<'a> {
    next: Option<ulid::Ulid>,
    fresh: &'a dyn IdGenerator,
}

impl<'a> RequestIds<'a> {
    /// From `keyed`, else from `fresh`.
    pub fn new(keyed: Option<ulid::Ulid>, fresh: &'a dyn IdGenerator) -> Self {
        Self { next: keyed, fresh }
    }

    /// The next object's id.
    pub fn next_id(&mut self) -> ulid::Ulid {
        match self.next {
            Some(id) => {
                self.next = id.increment();
                id
            }
            None => self.fresh.new_id(),
        }
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// ULIDs that increase strictly even within one millisecond, so listing order is creation order.
#[derive(Default)]
pub struct UlidGenerator(std::sync::Mutex<ulid::Generator>);

impl std::fmt::Debug for UlidGenerator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("UlidGenerator")
    }
}

impl IdGenerator for UlidGenerator {
    fn new_id(&self) -> ulid::Ulid {
        let mut generator = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Overflow needs 2^80 ids in one millisecond; a fresh random id is then still unique.
        generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
    }
}

/// What a provider is asked to render: one clip of a job, with the render's look.
#[derive(Debug, Clone, PartialEq)]
pub struct ClipRequest {
    /// The clip (prompt, parameters, exact length).
    pub clip: crate::domain::render::ClipSpec,
    /// The render's look (size, rate, quality, audio).
    pub render: crate::domain::render::RenderSpec,
    /// Which attempt of the job this is (1-based).
    pub attempt: u32,
    /// The same for every submission of this attempt (the job's id and the attempt): a provider
    /// that deduplicates by it gives a resubmission the task the first one made.
    pub key: String,
    /// When this attempt's submission first began (the same for a resubmission).
    pub since: DateTime<Utc>,
}

/// A provider task, in one life cycle whatever the provider calls its states.
#[derive(Debug, Clone, PartialEq)]
pub enum TaskState {
    /// Accepted, not started.
    Queued,
    /// Rendering.
    Running {
        /// 0–100, when the provider says.
        progress: u8,
    },
    /// Done: where to fetch the result.
    Succeeded {
        /// The outputs (URLs, or files for `local`).
        outputs: Vec<String>,
    },
    /// The provider gave up.
    Failed(ProviderError),
    /// Cancelled at the provider.
    Cancelled,
}

/// A provider's refusal or failure, normalised.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderError {
    /// The provider's code (e.g. `content_moderation`, `429`), when it gave one.
    pub code: Option<String>,
    /// What went wrong, for the job's `error`.
    pub message: String,
    /// Whether trying again may help (429, 5xx, timeouts), as opposed to a refusal.
    pub retryable: bool,
    /// What kind of failure it is (SPEC §8.3): the job's `failure_code` if it ends the job.
    pub failure: FailureCode,
}

impl ProviderError {
    /// A failure worth another attempt (the provider's or the network's).
    pub fn retryable(message: impl Into<String>) -> Self {
        Self { code: None, message: message.into(), retryable: true, failure: FailureCode::ProviderError }
    }

    /// A failure no retry fixes; its kind follows from `code` (`FailureCode::for_code`).
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let failure = FailureCode::for_code(&code);
        Self { code: Some(code), message: message.into(), retryable: false, failure }
    }

    /// This error, of another kind.
    pub fn because(self, failure: FailureCode) -> Self {
        Self { failure, ..self }
    }
}

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// An AI video provider: submit once, poll until done, fetch the result. The worker never waits
/// on a provider: between polls the job's message sleeps in the queue.
#[async_trait]
pub trait VideoProvider: Send + Sync {
    /// Submits the clip; the task id it returns is recorded before anything else can fail.
    async fn submit(&self, request: &ClipRequest) -> std::result::Result<String, ProviderError>;

    /// Whether submitting the same `ClipRequest::key` again yields the same task (never a second,
    /// billed one). Only then does a worker that finds a submission in doubt submit again;
    /// otherwise the attempt ends with `ambiguous_submit` and its owner decides.
    fn submit_is_idempotent(&self) -> bool {
        false
    }

    /// Where the task is. `request` is the one submitted (a provider that keeps no state of its
    /// own, like `local`, needs it).
    async fn poll(&self, task_id: &str, request: &ClipRequest) -> std::result::Result<TaskState, ProviderError>;

    /// Copies one of the task's outputs to the local file `dest` (`request` is the one submitted:
    /// some providers' result URLs need the API key).
    async fn fetch(
        &self,
        output: &str,
        request: &ClipRequest,
        dest: &std::path::Path,
    ) -> std::result::Result<(), ProviderError>;
}

/// The video work the worker needs done on files (ffmpeg in production). The worker speaks in
/// scenes and compositions; which tool does it, and how, stays behind this port.
#[async_trait]
pub trait VideoTools: Send + Sync {
    /// What a video file holds (size, rate, frames, codec).
    async fn probe(&self, file: &std::path::Path) -> std::result::Result<crate::domain::media::Probe, MediaError>;

    /// Fits a clip of any length, size or rate to its scene: exactly `frames` frames of
    /// `width`×`height` at `fps`, H.264.
    async fn conform(
        &self,
        input: &std::path::Path,
        width: u32,
        height: u32,
        fps: u32,
        frames: u32,
        out: &std::path::Path,
    ) -> std::result::Result<(), MediaError>;

    /// Joins clips into one video as `spec` says (watermark, subtitles, scale, format).
    async fn compose(
        &self,
        clips: &[std::path::PathBuf],
        spec: &crate::domain::media::Composition,
        out: &std::path::Path,
    ) -> std::result::Result<(), MediaError>;
}

pub use crate::domain::media::MediaError;

/// A clock that stands still until a test moves it: queues, links and caches read their time from
/// the `Clock` they were given, so a test advances this one instead of sleeping.
#[derive(Debug)]
pub struct ManualClock(std::sync::Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock showing `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        Self(std::sync::Mutex::new(start))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now = now.checked_add_signed(by).unwrap_or(DateTime::<Utc>::MAX_UTC);
    }

    /// Sets the clock to `at` (forward or back).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
