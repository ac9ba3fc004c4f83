//! The story: an AI video project that moves through the state machine.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::error::{Error, Result};
use crate::domain::ids::{Actor, StoryId, UserId};
use crate::domain::state_machine::{LockEffect, MoveRefusal, Mover, StoryStatus, plan_move};
use crate::domain::transition::StoryStateTransition;
use crate::domain::values::{
    AiProvider, Description, DurationSeconds, Fps, Project, Reason, Resolution, StylePreset, Title,
};

/// A rendered video kept in the media store. The download URL is signed per read and is not stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderedMedia {
    /// Key in the media store, chosen by the server.
    pub key: String,
    /// Length of the video.
    pub duration_seconds: f64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Container format (`mp4`, `webm`, `gif`).
    pub format: String,
    /// Size of the file.
    pub size_bytes: u64,
}

/// An AI video project.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Story {
    /// Server-issued id.
    pub id: StoryId,
    /// The JWT `sub` of its creator; nobody else ever sees it.
    pub owner: UserId,
    /// Optional client-side grouping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<Project>,
    /// 1–200 characters.
    pub title: Title,
    /// At most 5000 characters.
    pub description: Description,
    /// Total length in whole seconds.
    pub duration_seconds: DurationSeconds,
    /// Frames per second.
    pub fps: Fps,
    /// Frame size.
    pub resolution: Resolution,
    /// Which provider renders it.
    pub ai_provider: AiProvider,
    /// Visual style.
    pub style_preset: StylePreset,
    /// Where it is in the state machine.
    pub status: StoryStatus,
    /// Whether its scenes and prompts are frozen.
    pub is_locked: bool,
    /// When it was locked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locked_at: Option<DateTime<Utc>>,
    /// Increments on every write; the ETag.
    pub version: u64,
    /// The preview video, once rendered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview: Option<RenderedMedia>,
    /// The final video, once rendered.
    #[serde(default, rename = "final", skip_serializing_if = "Option::is_none")]
    pub final_video: Option<RenderedMedia>,
    /// Why it failed, while FAILED.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    /// The most its renders may cost, in US dollars (SPEC §8.7); none: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget_usd: Option<f64>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// What a client may set when creating a story; everything else is the server's.
#[derive(Debug, Clone, PartialEq)]
pub struct NewStory {
    /// Optional grouping.
    pub project: Option<Project>,
    /// Required.
    pub title: Title,
    /// Defaults to empty.
    pub description: Option<Description>,
    /// Defaults to 60.
    pub duration_seconds: Option<DurationSeconds>,
    /// Defaults to 24.
    pub fps: Option<Fps>,
    /// Defaults to 1920x1080.
    pub resolution: Option<Resolution>,
    /// Defaults to `local`.
    pub ai_provider: Option<AiProvider>,
    /// Defaults to `cinematic`.
    pub style_preset: Option<StylePreset>,
    /// Defaults to none (no limit).
    pub budget_usd: Option<f64>,
}

/// A change to a story's writable fields; `None` leaves a field as it is. `project` is doubly
/// optional because a client may clear it with `null`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoryEdit {
    /// `Some(None)` clears the project.
    pub project: Option<Option<Project>>,
    /// New title.
    pub title: Option<Title>,
    /// New description.
    pub description: Option<Description>,
    /// New length.
    pub duration_seconds: Option<DurationSeconds>,
    /// New frame rate.
    pub fps: Option<Fps>,
    /// New frame size.
    pub resolution: Option<Resolution>,
    /// New provider.
    pub ai_provider: Option<AiProvider>,
    /// New style.
    pub style_preset: Option<StylePreset>,
    /// `Some(None)` removes the budget.
    pub budget_usd: Option<Option<f64>>,
}

impl NewStory {
    /// A story with this title and every other field at its default.
    pub fn titled(title: Title) -> Self {
        NewStory {
            project: None,
            title,
            description: None,
            duration_seconds: None,
            fps: None,
            resolution: None,
            ai_provider: None,
            style_preset: None,
            budget_usd: None,
        }
    }
}

impl StoryEdit {
    /// True when the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == StoryEdit::default()
    }
}

impl Story {
    /// A new, unlocked DRAFT story owned by `owner`, at version 1.
    pub fn create(id: StoryId, owner: UserId, new: NewStory, now: DateTime<Utc>) -> Story {
        Story {
            id,
            owner,
            project: new.project,
            title: new.title,
            description: new.description.unwrap_or_default(),
            duration_seconds: new.duration_seconds.unwrap_or_default(),
            fps: new.fps.unwrap_or_default(),
            resolution: new.resolution.unwrap_or_default(),
            ai_provider: new.ai_provider.unwrap_or_default(),
            style_preset: new.style_preset.unwrap_or_default(),
            status: StoryStatus::Draft,
            is_locked: false,
            locked_at: None,
            version: 1,
            preview: None,
            final_video: None,
            failure_reason: None,
            budget_usd: new.budget_usd,
            created_at: now,
            updated_at: now,
        }
    }

    /// Refuses when the version a client expects (`If-Match`) is not the current one.
    pub fn check_version(&self, expected: Option<u64>) -> Result<()> {
        match expected {
            Some(v) if v != self.version => Err(Error::VersionMismatch { current_version: self.version }),
            _ => Ok(()),
        }
    }

    /// Refuses while the plan is frozen: locked (which includes rendering and completed stories)
    /// or archived. Scenes, prompts and the story's own fields all obey this.
    pub fn ensure_plan_editable(&self) -> Result<()> {
        if self.is_locked || self.status.is_rendering() {
            return Err(Error::Locked {
                detail: "The story is locked; unlock it (or re-plan) before changing it.".to_owned(),
                current_status: self.status,
            });
        }
        if self.status == StoryStatus::Archived {
            return Err(Error::Conflict {
                detail: "An archived story cannot be changed.".to_owned(),
                current_status: Some(self.status),
            });
        }
        Ok(())
    }

    /// Refuses to delete a story while its clips are rendering (its jobs would be orphaned).
    pub fn ensure_deletable(&self) -> Result<()> {
        if self.status.is_rendering() {
            return Err(Error::Conflict {
                detail: format!("A story cannot be deleted while {}.", self.status),
                current_status: Some(self.status),
            });
        }
        Ok(())
    }

    /// The story after `edit`, with its version bumped.
    pub fn edited(&self, edit: StoryEdit, now: DateTime<Utc>) -> Result<Story> {
        self.ensure_plan_editable()?;
        let mut next = self.clone();
        if let Some(project) = edit.project {
            next.project = project;
        }
        if let Some(budget) = edit.budget_usd {
            next.budget_usd = budget;
        }
        macro_rules! set {
            ($($field:ident),*) => { $(if let Some(v) = edit.$field { next.$field = v; })* };
        }
        set!(title, description, duration_seconds, fps, resolution, ai_provider, style_preset);
        next.touch(now);
        Ok(next)
    }

    /// The story after `lock` (`true`) or `unlock` (`false`); `None` when it already is so
    /// (no write, no new version).
    pub fn with_lock(&self, locked: bool, now: DateTime<Utc>) -> Result<Option<Story>> {
        if !self.status.allows_lock_changes() {
            let verb = if locked { "locked" } else { "unlocked" };
            let why = if self.status.is_rendering() { " while rendering" } else { "" };
            return Err(Error::Conflict {
                detail: format!("A {} story cannot be {verb}{why}.", self.status),
                current_status: Some(self.status),
            });
        }
        if self.is_locked == locked {
            return Ok(None);
        }
        let mut next = self.clone();
        next.is_locked = locked;
        next.locked_at = locked.then_some(now);
        next.touch(now);
        Ok(Some(next))
    }

    /// Applies one move of the state machine: returns the story after it and its history record.
    /// `plan_gaps` is asked only for PLANNING → PLANNED; it lists what the plan still lacks and is
    /// computed by the adapter from the scenes it reads in the same atomic step.
    pub fn moved(
        &self,
        to: StoryStatus,
        mover: Mover,
        actor: Actor,
        reason: Option<Reason>,
        plan_gaps: impl FnOnce() -> Vec<String>,
        now: DateTime<Utc>,
    ) -> Result<(Story, StoryStateTransition)> {
        let reason = reason.filter(|r| !r.as_str().is_empty());
        let rule = plan_move(self.status, to, mover, reason.is_some()).map_err(|refusal| match refusal {
            MoveRefusal::ReasonRequired => Error::field("reason", "A reason is required to fail a story."),
            other => Error::InvalidTransition { detail: other.to_string(), current_status: self.status },
        })?;
        if rule.requires_complete_plan {
            let gaps = plan_gaps();
            if !gaps.is_empty() {
                return Err(Error::InvalidTransition {
                    detail: format!("The plan is not complete: {}", gaps.join("; ")),
                    current_status: self.status,
                });
            }
        }
        let mut next = self.clone();
        next.status = to;
        match rule.lock {
            LockEffect::Keep => {}
            LockEffect::Lock => {
                next.is_locked = true;
                next.locked_at = Some(now);
            }
            LockEffect::Unlock => {
                next.is_locked = false;
                next.locked_at = None;
            }
        }
        next.failure_reason = match to {
            StoryStatus::Failed => reason.as_ref().map(|r| r.as_str().to_owned()),
            _ => None,
        };
        next.touch(now);
        let record = StoryStateTransition {
            story: self.id.clone(),
            sequence: next.version,
            from: self.status,
            to,
            actor,
            reason: reason.map(String::from).unwrap_or_default(),
            at: now,
            request: None,
        };
        Ok((next, record))
    }

    fn touch(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> Story {
        let now = Utc::now();
        Story::create(
            StoryId::from_ulid(ulid::Ulid::new()),
            UserId::parse("alice").unwrap(),
            NewStory::titled(Title::parse("A film").unwrap()),
            now,
        )
    }

    fn alice() -> Actor {
        Actor::User(UserId::parse("alice").unwrap())
    }

    #[test]
    fn a_new_story_is_an_unlocked_draft_with_the_documented_defaults() {
        let s = draft();
        assert_eq!(s.status, StoryStatus::Draft);
        assert!(!s.is_locked);
        assert_eq!(s.version, 1);
        assert_eq!(s.duration_seconds.get(), 60);
        assert_eq!(s.fps.get(), 24);
        assert_eq!(s.resolution.to_string(), "1920x1080");
        assert_eq!(s.ai_provider, AiProvider::Local);
        assert_eq!(s.style_preset.as_str(), "cinematic");
    }

    #[test]
    fn a_move_bumps_the_version_and_records_history() {
        let s = draft();
        let (next, record) = s.moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, Utc::now()).unwrap();
        assert_eq!(next.status, StoryStatus::Planning);
        assert_eq!(next.version, 2);
        assert_eq!((record.from, record.to, record.sequence), (StoryStatus::Draft, StoryStatus::Planning, 2));
    }

    #[test]
    fn planning_to_planned_is_refused_while_the_plan_has_gaps() {
        let (planning, _) =
            draft().moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, Utc::now()).unwrap();
        let err = planning
            .moved(StoryStatus::Planned, Mover::User, alice(), None, || vec!["no scenes".into()], Utc::now())
            .unwrap_err();
        assert!(matches!(err, Error::InvalidTransition { current_status: StoryStatus::Planning, .. }));
        assert!(planning.moved(StoryStatus::Planned, Mover::User, alice(), None, Vec::new, Utc::now()).is_ok());
    }

    #[test]
    fn failing_keeps_the_reason_and_recovering_clears_it_and_unlocks() {
        let now = Utc::now();
        let (planning, _) = draft().moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, now).unwrap();
        let locked = planning.with_lock(true, now).unwrap().unwrap();
        let reason = Reason::parse("provider down").unwrap();
        let (failed, _) = locked.moved(StoryStatus::Failed, Mover::User, alice(), Some(reason), Vec::new, now).unwrap();
        assert_eq!(failed.failure_reason.as_deref(), Some("provider down"));
        assert!(failed.is_locked);
        let (recovered, _) = failed.moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, now).unwrap();
        assert_eq!(recovered.failure_reason, None);
        assert!(!recovered.is_locked);
    }

    #[test]
    fn a_blank_reason_does_not_count_as_a_reason() {
        let now = Utc::now();
        let (planning, _) = draft().moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, now).unwrap();
        let blank = Reason::parse("   ").unwrap();
        let err = planning.moved(StoryStatus::Failed, Mover::User, alice(), Some(blank), Vec::new, now).unwrap_err();
        assert!(matches!(err, Error::Validation(_)));
    }

    #[test]
    fn lock_is_refused_in_draft_and_unlock_while_rendering() {
        let now = Utc::now();
        assert!(matches!(draft().with_lock(true, now), Err(Error::Conflict { .. })));
        let mut rendering = draft();
        rendering.status = StoryStatus::Previewing;
        rendering.is_locked = true;
        assert!(matches!(rendering.with_lock(false, now), Err(Error::Conflict { .. })));
    }

    #[test]
    fn locking_twice_writes_nothing_the_second_time() {
        let now = Utc::now();
        let (planning, _) = draft().moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, now).unwrap();
        let locked = planning.with_lock(true, now).unwrap().unwrap();
        assert_eq!(locked.version, planning.version + 1);
        assert!(locked.with_lock(true, now).unwrap().is_none());
    }

    #[test]
    fn a_locked_story_cannot_be_edited() {
        let now = Utc::now();
        let (planning, _) = draft().moved(StoryStatus::Planning, Mover::User, alice(), None, Vec::new, now).unwrap();
        let locked = planning.with_lock(true, now).unwrap().unwrap();
        let edit = StoryEdit { title: Some(Title::parse("New").unwrap()), ..StoryEdit::default() };
        assert!(matches!(locked.edited(edit.clone(), now), Err(Error::Locked { .. })));
        assert_eq!(planning.edited(edit, now).unwrap().title.as_str(), "New");
    }

    #[test]
    fn if_match_must_name_the_current_version() {
        let s = draft();
        assert!(s.check_version(None).is_ok());
        assert!(s.check_version(Some(1)).is_ok());
        assert!(matches!(s.check_version(Some(2)), Err(Error::VersionMismatch { current_version: 1 })));
    }

    #[test]
    fn a_rendering_story_cannot_be_deleted() {
        let mut s = draft();
        assert!(s.ensure_deletable().is_ok());
        s.status = StoryStatus::Finalizing;
        assert!(s.ensure_deletable().is_err());
    }
}
