//! The story state machine of SPEC §4 as pure functions: which moves exist, who may make them,
//! what they do to the lock, and what they require. Adapters call `plan_move` inside their one
//! atomic write, so the rules here are exactly the rules the store enforces.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a story is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StoryStatus {
    /// Just created; nothing planned.
    Draft,
    /// Scenes and prompts are being written.
    Planning,
    /// The plan is complete and checked.
    Planned,
    /// Preview clips are rendering (always locked).
    Previewing,
    /// The preview video exists.
    PreviewReady,
    /// Final clips are rendering (always locked).
    Finalizing,
    /// The final video exists.
    Completed,
    /// Rendering or planning failed; `failure_reason` says why.
    Failed,
    /// Put away by its owner; nothing moves it again.
    Archived,
}

impl StoryStatus {
    /// Every status, in the order of the happy path.
    pub const ALL: [StoryStatus; 9] = [
        StoryStatus::Draft,
        StoryStatus::Planning,
        StoryStatus::Planned,
        StoryStatus::Previewing,
        StoryStatus::PreviewReady,
        StoryStatus::Finalizing,
        StoryStatus::Completed,
        StoryStatus::Failed,
        StoryStatus::Archived,
    ];

    /// The wire name, e.g. `PREVIEW_READY`.
    pub fn as_str(self) -> &'static str {
        match self {
            StoryStatus::Draft => "DRAFT",
            StoryStatus::Planning => "PLANNING",
            StoryStatus::Planned => "PLANNED",
            StoryStatus::Previewing => "PREVIEWING",
            StoryStatus::PreviewReady => "PREVIEW_READY",
            StoryStatus::Finalizing => "FINALIZING",
            StoryStatus::Completed => "COMPLETED",
            StoryStatus::Failed => "FAILED",
            StoryStatus::Archived => "ARCHIVED",
        }
    }

    /// Parses a wire name.
    pub fn parse(raw: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| format!("\"{}\" is not a valid choice.", raw.chars().take(100).collect::<String>()))
    }

    /// Rendering is under way: the plan is locked and cannot be unlocked.
    pub fn is_rendering(self) -> bool {
        matches!(self, StoryStatus::Previewing | StoryStatus::Finalizing)
    }

    /// `lock` and `unlock` are allowed only while the plan may still change.
    pub fn allows_lock_changes(self) -> bool {
        matches!(self, StoryStatus::Planning | StoryStatus::Planned | StoryStatus::PreviewReady)
    }
}

impl fmt::Display for StoryStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who asks for a move. The HTTP `transition/` endpoint always asks as `User`; the enqueueing
/// endpoints and the worker have moves reserved for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mover {
    /// The owner, through `transition/` (or `scenes/bulk` for DRAFT → PLANNING).
    User,
    /// `generate_preview/`.
    GeneratePreview,
    /// `render_final/`.
    RenderFinal,
    /// The worker (system).
    Worker,
}

impl Mover {
    fn describe(self) -> &'static str {
        match self {
            Mover::User => "the owner",
            Mover::GeneratePreview => "generate_preview",
            Mover::RenderFinal => "render_final",
            Mover::Worker => "the worker",
        }
    }
}

/// What a move does to the story's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockEffect {
    /// Leaves `is_locked` as it is.
    Keep,
    /// Locks the plan (rendering starts).
    Lock,
    /// Unlocks the plan (re-plan, revise, recover).
    Unlock,
}

/// One row of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoveRule {
    /// Who may make the move.
    pub by: &'static [Mover],
    /// What it does to the lock.
    pub lock: LockEffect,
    /// PLANNING → PLANNED: the plan must be complete (checked against the scenes in the same write).
    pub requires_complete_plan: bool,
    /// Moves to FAILED must say why.
    pub requires_reason: bool,
}

const USER: &[Mover] = &[Mover::User];
const WORKER: &[Mover] = &[Mover::Worker];
const USER_OR_WORKER: &[Mover] = &[Mover::User, Mover::Worker];

const fn rule(by: &'static [Mover], lock: LockEffect) -> MoveRule {
    MoveRule { by, lock, requires_complete_plan: false, requires_reason: false }
}

/// The transition table of SPEC §4: `None` when `from → to` is not a move at all.
pub fn move_rule(from: StoryStatus, to: StoryStatus) -> Option<MoveRule> {
    use LockEffect::*;
    use StoryStatus::*;
    Some(match (from, to) {
        (Draft, Planning) => rule(USER, Keep),
        (Planning, Planned) => MoveRule { requires_complete_plan: true, ..rule(USER, Keep) },
        (Planned, Planning) => rule(USER, Unlock),
        (Planned, Previewing) => rule(&[Mover::GeneratePreview], Lock),
        (Previewing, PreviewReady) => rule(WORKER, Keep),
        (PreviewReady, Planning) => rule(USER, Unlock),
        (PreviewReady, Finalizing) => rule(&[Mover::RenderFinal], Lock),
        (Finalizing, Completed) => rule(WORKER, Keep),
        (Planning | Planned | Previewing | PreviewReady | Finalizing, Failed) => {
            MoveRule { requires_reason: true, ..rule(USER_OR_WORKER, Keep) }
        }
        (Failed, Planning) => rule(USER, Unlock),
        (Draft | Planned | PreviewReady | Completed | Failed, Archived) => rule(USER, Keep),
        _ => return None,
    })
}

/// Why a move was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MoveRefusal {
    /// `from → to` is not in the table.
    NotInTable { from: StoryStatus, to: StoryStatus },
    /// The move exists but belongs to someone else (e.g. only `generate_preview` starts a preview).
    ReservedFor { from: StoryStatus, to: StoryStatus, by: &'static [Mover] },
    /// A move to FAILED without a reason.
    ReasonRequired,
}

impl fmt::Display for MoveRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MoveRefusal::NotInTable { from, to } => {
                write!(f, "A story cannot move from {from} to {to}.")
            }
            MoveRefusal::ReservedFor { from, to, by } => {
                let names: Vec<&str> = by.iter().map(|m| m.describe()).collect();
                write!(f, "{from} → {to} is made by {} only.", names.join(" or "))
            }
            MoveRefusal::ReasonRequired => f.write_str("A reason is required to fail a story."),
        }
    }
}

/// Decides whether `mover` may move a story from `from` to `to`, and returns the table row.
pub fn plan_move(from: StoryStatus, to: StoryStatus, mover: Mover, has_reason: bool) -> Result<MoveRule, MoveRefusal> {
    let rule = move_rule(from, to).ok_or(MoveRefusal::NotInTable { from, to })?;
    if !rule.by.contains(&mover) {
        return Err(MoveRefusal::ReservedFor { from, to, by: rule.by });
    }
    if rule.requires_reason && !has_reason {
        return Err(MoveRefusal::ReasonRequired);
    }
    Ok(rule)
}

/// The moves a user can ask for from `from` through `transition/`, for error messages and docs.
pub fn user_moves_from(from: StoryStatus) -> Vec<StoryStatus> {
    StoryStatus::ALL
        .into_iter()
        .filter(|to| move_rule(from, *to).is_some_and(|r| r.by.contains(&Mover::User)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::StoryStatus::*;
    use super::*;

    /// SPEC §4 written out independently of `move_rule`: (from, to, who).
    const SPEC_TABLE: &[(StoryStatus, StoryStatus, &[Mover])] = &[
        (Draft, Planning, &[Mover::User]),
        (Planning, Planned, &[Mover::User]),
        (Planned, Planning, &[Mover::User]),
        (Planned, Previewing, &[Mover::GeneratePreview]),
        (Previewing, PreviewReady, &[Mover::Worker]),
        (PreviewReady, Planning, &[Mover::User]),
        (PreviewReady, Finalizing, &[Mover::RenderFinal]),
        (Finalizing, Completed, &[Mover::Worker]),
        (Planning, Failed, &[Mover::User, Mover::Worker]),
        (Planned, Failed, &[Mover::User, Mover::Worker]),
        (Previewing, Failed, &[Mover::User, Mover::Worker]),
        (PreviewReady, Failed, &[Mover::User, Mover::Worker]),
        (Finalizing, Failed, &[Mover::User, Mover::Worker]),
        (Failed, Planning, &[Mover::User]),
        (Draft, Archived, &[Mover::User]),
        (Planned, Archived, &[Mover::User]),
        (PreviewReady, Archived, &[Mover::User]),
        (Completed, Archived, &[Mover::User]),
        (Failed, Archived, &[Mover::User]),
    ];

    const MOVERS: [Mover; 4] = [Mover::User, Mover::GeneratePreview, Mover::RenderFinal, Mover::Worker];

    #[test]
    fn every_from_to_pair_matches_the_spec_table_for_every_mover() {
        let mut checked = 0;
        for from in StoryStatus::ALL {
            for to in StoryStatus::ALL {
                let spec = SPEC_TABLE.iter().find(|(f, t, _)| *f == from && *t == to);
                for mover in MOVERS {
                    let expected = spec.is_some_and(|(_, _, by)| by.contains(&mover));
                    let actual = plan_move(from, to, mover, true).is_ok();
                    assert_eq!(actual, expected, "{from} → {to} by {mover:?}");
                    checked += 1;
                }
                assert_eq!(move_rule(from, to).is_some(), spec.is_some(), "{from} → {to} exists");
            }
        }
        assert_eq!(checked, 81 * 4);
    }

    #[test]
    fn rejects_transition_from_draft_to_completed() {
        assert_eq!(
            plan_move(Draft, Completed, Mover::User, false),
            Err(MoveRefusal::NotInTable { from: Draft, to: Completed })
        );
    }

    #[test]
    fn only_generate_preview_starts_a_preview_and_it_locks() {
        assert!(matches!(plan_move(Planned, Previewing, Mover::User, false), Err(MoveRefusal::ReservedFor { .. })));
        assert_eq!(plan_move(Planned, Previewing, Mover::GeneratePreview, false).unwrap().lock, LockEffect::Lock);
        assert_eq!(plan_move(PreviewReady, Finalizing, Mover::RenderFinal, false).unwrap().lock, LockEffect::Lock);
    }

    #[test]
    fn only_the_worker_finishes_a_render() {
        assert!(plan_move(Previewing, PreviewReady, Mover::User, false).is_err());
        assert!(plan_move(Finalizing, Completed, Mover::User, false).is_err());
        assert!(plan_move(Finalizing, Completed, Mover::Worker, false).is_ok());
    }

    #[test]
    fn replanning_revising_and_recovering_unlock() {
        for from in [Planned, PreviewReady, Failed] {
            assert_eq!(plan_move(from, Planning, Mover::User, false).unwrap().lock, LockEffect::Unlock, "{from}");
        }
        assert_eq!(plan_move(Draft, Planning, Mover::User, false).unwrap().lock, LockEffect::Keep);
    }

    #[test]
    fn failing_a_story_requires_a_reason() {
        assert_eq!(plan_move(Planning, Failed, Mover::User, false), Err(MoveRefusal::ReasonRequired));
        assert!(plan_move(Planning, Failed, Mover::User, true).is_ok());
    }

    #[test]
    fn planning_to_planned_requires_a_complete_plan() {
        assert!(plan_move(Planning, Planned, Mover::User, false).unwrap().requires_complete_plan);
        assert!(!plan_move(Draft, Planning, Mover::User, false).unwrap().requires_complete_plan);
    }

    #[test]
    fn archived_is_final() {
        assert!(user_moves_from(Archived).is_empty());
        assert_eq!(user_moves_from(Draft), vec![Planning, Archived]);
    }

    #[test]
    fn lock_changes_are_allowed_only_while_planning_or_reviewing() {
        let allowed: Vec<_> = StoryStatus::ALL.into_iter().filter(|s| s.allows_lock_changes()).collect();
        assert_eq!(allowed, vec![Planning, Planned, PreviewReady]);
        assert!(Previewing.is_rendering() && Finalizing.is_rendering());
    }

    #[test]
    fn status_wire_names_round_trip() {
        for s in StoryStatus::ALL {
            assert_eq!(StoryStatus::parse(s.as_str()), Ok(s));
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert!(StoryStatus::parse("draft").is_err());
    }
}
