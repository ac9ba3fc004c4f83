//! Scenes: the timed parts of a story, and what a plan needs before it counts as complete.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ids::{SceneId, StoryId};
use crate::domain::story::{RenderedMedia, Story};
use crate::domain::values::{Description, SceneTitle, choices};

choices!(
    /// A scene's role in the story.
    SceneKind {
        /// Opens the story (about 10 % of its time).
        Intro = "intro",
        /// The body.
        Main = "main",
        /// Closes the story (about 10 % of its time).
        Outro = "outro",
    }
);

choices!(
    /// Where a scene's clip is.
    SceneStatus {
        /// Not rendered.
        Pending = "pending",
        /// A job is rendering it.
        Generating = "generating",
        /// Its clip exists.
        Ready = "ready",
        /// Its last render failed.
        Failed = "failed",
    }
);

/// A scene's length in seconds: positive, finite, at most a story's longest duration.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct SceneDuration(f64);

impl SceneDuration {
    /// Longest scene (a story's longest duration).
    pub const MAX: f64 = 600.0;

    /// Checks the value.
    pub fn parse(value: f64) -> Result<Self, String> {
        if !value.is_finite() || value <= 0.0 {
            Err("Ensure this value is greater than 0.".to_owned())
        } else if value > Self::MAX {
            Err(format!("Ensure this value is less than or equal to {}.", Self::MAX))
        } else {
            Ok(Self(value))
        }
    }

    /// A duration of `frames` frames at `fps`.
    pub fn from_frames(frames: u32, fps: u32) -> Option<Self> {
        (fps > 0).then(|| f64::from(frames) / f64::from(fps)).and_then(|s| Self::parse(s).ok())
    }

    /// The seconds.
    pub fn seconds(self) -> f64 {
        self.0
    }

    /// The nearest whole number of frames at `fps`.
    pub fn frames(self, fps: u32) -> u64 {
        (self.0 * f64::from(fps)).round() as u64
    }
}

impl TryFrom<f64> for SceneDuration {
    type Error = String;
    fn try_from(value: f64) -> Result<Self, String> {
        Self::parse(value)
    }
}

impl From<SceneDuration> for f64 {
    fn from(value: SceneDuration) -> f64 {
        value.0
    }
}

/// A timed part of a story.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Server-issued id.
    pub id: SceneId,
    /// The story it belongs to.
    pub story: StoryId,
    /// 0-based position, unique within the story.
    pub order: u32,
    /// Intro, main or outro.
    pub kind: SceneKind,
    /// Short title.
    pub title: SceneTitle,
    /// What happens.
    pub description: Description,
    /// Derived from the orders and durations of the scenes before it.
    pub start_seconds: f64,
    /// Its length.
    pub duration_seconds: SceneDuration,
    /// Where its clip is.
    pub status: SceneStatus,
    /// Its rendered clip.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<RenderedMedia>,
    /// Increments on every write; the ETag.
    pub version: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// What a client sends to create a scene.
#[derive(Debug, Clone, PartialEq)]
pub struct NewScene {
    /// The story it joins.
    pub story: StoryId,
    /// Where to insert it (0-based); at the end when `None`. Later scenes move down one place.
    pub order: Option<u32>,
    /// Defaults to `main`.
    pub kind: SceneKind,
    /// Defaults to empty.
    pub title: SceneTitle,
    /// Defaults to empty.
    pub description: Description,
    /// Required.
    pub duration_seconds: SceneDuration,
}

/// A change to a scene's writable fields; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SceneEdit {
    /// New kind.
    pub kind: Option<SceneKind>,
    /// New title.
    pub title: Option<SceneTitle>,
    /// New description.
    pub description: Option<Description>,
    /// New length.
    pub duration_seconds: Option<SceneDuration>,
}

impl SceneEdit {
    /// True when the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == SceneEdit::default()
    }
}

impl Scene {
    /// The scene after `edit`, with its version bumped.
    pub fn edited(&self, edit: SceneEdit, now: DateTime<Utc>) -> Scene {
        let mut next = self.clone();
        if let Some(kind) = edit.kind {
            next.kind = kind;
        }
        if let Some(title) = edit.title {
            next.title = title;
        }
        if let Some(description) = edit.description {
            next.description = description;
        }
        if let Some(duration) = edit.duration_seconds {
            next.duration_seconds = duration;
        }
        next.touch(now);
        next
    }

    /// Records a write.
    pub fn touch(&mut self, now: DateTime<Utc>) {
        self.version += 1;
        self.updated_at = now;
    }
}

/// Refuses a scene shorter than one frame of the story (it could not be rendered).
pub fn check_scene_duration(duration: SceneDuration, fps: u32) -> Result<(), crate::domain::error::Error> {
    if duration.frames(fps) == 0 {
        return Err(crate::domain::error::Error::field(
            "duration_seconds",
            format!("Ensure this value is at least one frame ({:.3} s at {fps} fps).", 1.0 / f64::from(fps.max(1))),
        ));
    }
    Ok(())
}

/// Sorts a story's scenes by order and derives each one's `start_seconds` from the durations of
/// the scenes before it (computed on read, so it can never go stale).
pub fn sequence_scenes(scenes: &mut [Scene]) {
    scenes.sort_by_key(|s| s.order);
    let mut start = 0.0;
    for scene in scenes.iter_mut() {
        scene.start_seconds = (start * 1000.0_f64).round() / 1000.0;
        start += scene.duration_seconds.seconds();
    }
}

/// Renumbers a story's scenes 0, 1, 2… in their current order; returns those whose order changed.
pub fn renumber(scenes: &mut [Scene], now: DateTime<Utc>) -> Vec<SceneId> {
    scenes.sort_by_key(|s| s.order);
    let mut changed = Vec::new();
    for (i, scene) in scenes.iter_mut().enumerate() {
        let order = i as u32;
        if scene.order != order {
            scene.order = order;
            scene.touch(now);
            changed.push(scene.id.clone());
        }
    }
    changed
}

/// What the plan of `story` still lacks (empty when complete): at least one scene, durations
/// summing to the story's duration (compared in whole frames), and a selected `video` prompt on
/// every scene. The one rule behind PLANNING → PLANNED and a render's start, on both stores.
pub fn plan_gaps(story: &Story, scenes: &[Scene], prompts: &[crate::domain::prompt::ScenePrompt]) -> Vec<String> {
    let with_video: HashSet<SceneId> = prompts
        .iter()
        .filter(|p| p.is_selected && p.prompt_type == crate::domain::prompt::PromptType::Video)
        .map(|p| p.scene.clone())
        .collect();
    gaps_given(story, scenes, &with_video)
}

/// `plan_gaps`, with the scenes that have a selected video prompt already known.
fn gaps_given(story: &Story, scenes: &[Scene], scenes_with_selected_video: &HashSet<SceneId>) -> Vec<String> {
    if scenes.is_empty() {
        return vec!["the story has no scenes".to_owned()];
    }
    let mut gaps = Vec::new();
    let fps = story.fps.get();
    let planned: u64 = scenes.iter().map(|s| s.duration_seconds.frames(fps)).sum();
    let expected = u64::from(story.duration_seconds.frames(story.fps));
    if planned != expected {
        gaps.push(format!(
            "scene durations sum to {:.3} s, the story lasts {} s",
            planned as f64 / f64::from(fps),
            story.duration_seconds.get()
        ));
    }
    let mut missing: Vec<u32> =
        scenes.iter().filter(|s| !scenes_with_selected_video.contains(&s.id)).map(|s| s.order).collect();
    missing.sort_unstable();
    if !missing.is_empty() {
        let orders: Vec<String> = missing.iter().map(u32::to_string).collect();
        gaps.push(format!("no selected video prompt on the scenes at order {}", orders.join(", ")));
    }
    gaps
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::UserId;
    use crate::domain::story::NewStory;
    use crate::domain::values::{DurationSeconds, Fps, Title};

    fn story(seconds: i64, fps: i64) -> Story {
        let new = NewStory {
            duration_seconds: Some(DurationSeconds::parse(seconds).unwrap()),
            fps: Some(Fps::parse(fps).unwrap()),
            ..NewStory::titled(Title::parse("t").unwrap())
        };
        Story::create(StoryId::from_ulid(ulid::Ulid::new()), UserId::parse("u").unwrap(), new, Utc::now())
    }

    fn scene(story: &Story, order: u32, seconds: f64) -> Scene {
        Scene {
            id: SceneId::from_ulid(ulid::Ulid::new()),
            story: story.id.clone(),
            order,
            kind: SceneKind::Main,
            title: SceneTitle::parse("").unwrap(),
            description: Description::default(),
            start_seconds: 0.0,
            duration_seconds: SceneDuration::parse(seconds).unwrap(),
            status: SceneStatus::Pending,
            media: None,
            version: 1,
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    #[test]
    fn a_plan_without_scenes_is_incomplete() {
        assert_eq!(gaps_given(&story(10, 24), &[], &HashSet::new()), vec!["the story has no scenes"]);
    }

    #[test]
    fn durations_must_sum_to_the_story_in_whole_frames() {
        let s = story(10, 24);
        let scenes = vec![scene(&s, 0, 4.0), scene(&s, 1, 5.0)];
        let all: HashSet<_> = scenes.iter().map(|x| x.id.clone()).collect();
        assert_eq!(gaps_given(&s, &scenes, &all).len(), 1);
        let scenes = vec![scene(&s, 0, 4.0), scene(&s, 1, 6.0)];
        let all: HashSet<_> = scenes.iter().map(|x| x.id.clone()).collect();
        assert!(gaps_given(&s, &scenes, &all).is_empty());
    }

    #[test]
    fn every_scene_needs_a_selected_video_prompt() {
        let s = story(10, 24);
        let scenes = vec![scene(&s, 0, 5.0), scene(&s, 1, 5.0)];
        let one: HashSet<_> = [scenes[0].id.clone()].into();
        assert_eq!(gaps_given(&s, &scenes, &one), vec!["no selected video prompt on the scenes at order 1"]);
    }

    #[test]
    fn start_seconds_follow_order_and_durations() {
        let s = story(10, 24);
        let mut scenes = vec![scene(&s, 2, 3.0), scene(&s, 0, 2.5), scene(&s, 1, 4.5)];
        sequence_scenes(&mut scenes);
        let starts: Vec<f64> = scenes.iter().map(|x| x.start_seconds).collect();
        assert_eq!(starts, vec![0.0, 2.5, 7.0]);
    }

    #[test]
    fn renumbering_closes_gaps_in_order() {
        let s = story(10, 24);
        let mut scenes = vec![scene(&s, 5, 3.0), scene(&s, 0, 2.5), scene(&s, 2, 4.5)];
        let changed = renumber(&mut scenes, Utc::now());
        assert_eq!(scenes.iter().map(|x| x.order).collect::<Vec<_>>(), vec![0, 1, 2]);
        assert_eq!(changed.len(), 2);
    }

    #[test]
    fn a_scene_must_last_at_least_one_frame() {
        assert!(check_scene_duration(SceneDuration::parse(0.01).unwrap(), 24).is_err());
        assert!(check_scene_duration(SceneDuration::parse(0.05).unwrap(), 24).is_ok());
    }

    #[test]
    fn scene_duration_must_be_positive_and_finite() {
        assert!(SceneDuration::parse(0.0).is_err());
        assert!(SceneDuration::parse(-1.0).is_err());
        assert!(SceneDuration::parse(f64::NAN).is_err());
        assert!(SceneDuration::parse(f64::INFINITY).is_err());
        assert!(SceneDuration::parse(0.5).is_ok());
        assert_eq!(SceneDuration::from_frames(36, 24).unwrap().seconds(), 1.5);
    }
}
