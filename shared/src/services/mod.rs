//! The use cases, written once against the ports.

mod jobs;
mod plan;
mod providers;
mod stories;

pub use jobs::{JobService, JobStatistics};
pub use plan::{GeneratedPrompts, PlanService, PromptWriter, WriterChoice, WriterError};
pub use providers::{ProviderEdit, ProviderService};
pub use stories::StoryService;
