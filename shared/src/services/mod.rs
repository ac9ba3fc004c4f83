//! The use cases, written once against the ports.

mod jobs;
mod plan;
mod providers;
mod renders;
mod stories;
mod sweep;
mod webhooks;
#[cfg(feature = "render")]
mod worker;

pub use jobs::{JobService, JobStatistics, SpendLimits};
pub use plan::{GeneratedPrompts, PlanService, PromptWriter, WriterChoice, WriterError};
pub use providers::{ProviderEdit, ProviderService};
pub use renders::{fail_render, failure_reason};
pub use stories::StoryService;
pub use sweep::{SweepReport, Sweeper};
pub use webhooks::{WebhookDraft, WebhookPatch, WebhookService, WebhookSettings};
#[cfg(feature = "render")]
pub use worker::{Worker, WorkerSettings};
