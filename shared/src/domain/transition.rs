//! The append-only history of a story's moves.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ids::{Actor, StoryId};
use crate::domain::state_machine::StoryStatus;

/// One move of a story, written in the same atomic step as the move itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoryStateTransition {
    /// The story that moved.
    pub story: StoryId,
    /// The story's version after the move: unique per story and increasing, so it orders history.
    pub sequence: u64,
    /// Status before.
    pub from: StoryStatus,
    /// Status after.
    pub to: StoryStatus,
    /// Who moved it: a user id or `system`.
    pub actor: Actor,
    /// Why (may be empty, except for moves to FAILED).
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
    /// The `Idempotency-Key` request that made the move (the id derived from its key), so a retry
    /// whose first answer was lost finds the move made instead of being refused by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
}
