//! Plain data and rules: no I/O, no AWS types, synchronous.

pub mod error;
pub mod events;
pub mod ids;
pub mod job;
pub mod media;
pub mod pagination;
pub mod plan_edits;
pub mod planner;
pub mod pricing;
pub mod prompt;
pub mod prompt_templates;
pub mod provider;
pub mod render;
pub mod scene;
pub mod state_machine;
pub mod statistics;
pub mod story;
pub mod transition;
pub mod usage;
pub mod values;
pub mod webhooks;
