//! The scene planner of `scenes/bulk`: splits a story into scenes in whole frames, so the scene
//! durations always sum exactly to the story's duration.

use crate::domain::scene::SceneKind;

/// Fewest scenes `scenes/bulk` makes.
pub const MIN_SCENES: u32 = 3;
/// Most scenes `scenes/bulk` makes.
pub const MAX_SCENES: u32 = 24;
/// Scenes when the client does not say: 1 intro, 10 main, 1 outro.
pub const DEFAULT_SCENES: u32 = 12;

/// One planned scene: its kind and its length in frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlannedScene {
    /// Intro, main or outro.
    pub kind: SceneKind,
    /// Length in whole frames.
    pub frames: u32,
}

/// Why a plan cannot be made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// `scene_count` outside 3–24.
    CountOutOfRange(u32),
    /// Fewer frames than scenes: some scene would last zero frames.
    TooFewFrames { frames: u32, scenes: u32 },
}

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PlanError::CountOutOfRange(_) => {
                write!(f, "Ensure this value is between {MIN_SCENES} and {MAX_SCENES}.")
            }
            PlanError::TooFewFrames { frames, scenes } => write!(
                f,
                "The story has {frames} frames, fewer than the {scenes} scenes asked for; ask for fewer scenes or a longer story."
            ),
        }
    }
}

/// Splits `frames` into `count` scenes: the intro and the outro get about 10 % each (at least one
/// frame, and never so much that a main scene would be left without one), the main scenes split
/// the rest evenly, the remainder spread one frame at a time over the first main scenes.
pub fn plan_scenes(frames: u32, count: u32) -> Result<Vec<PlannedScene>, PlanError> {
    if !(MIN_SCENES..=MAX_SCENES).contains(&count) {
        return Err(PlanError::CountOutOfRange(count));
    }
    if frames < count {
        return Err(PlanError::TooFewFrames { frames, scenes: count });
    }
    let mains = count - 2;
    // Round-half-up of 10 %; capped so each main scene keeps at least one frame.
    let tenth = (frames + 5) / 10;
    let cap = (frames - mains) / 2;
    let edge = tenth.clamp(1, cap.max(1));
    let main_total = frames - 2 * edge;
    let (base, remainder) = (main_total / mains, main_total % mains);
    let mut plan = Vec::with_capacity(count as usize);
    plan.push(PlannedScene { kind: SceneKind::Intro, frames: edge });
    for i in 0..mains {
        plan.push(PlannedScene { kind: SceneKind::Main, frames: base + u32::from(i < remainder) });
    }
    plan.push(PlannedScene { kind: SceneKind::Outro, frames: edge });
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_default_plan_is_one_intro_ten_mains_and_one_outro() {
        let plan = plan_scenes(60 * 24, DEFAULT_SCENES).unwrap();
        assert_eq!(plan.len(), 12);
        assert_eq!(plan[0], PlannedScene { kind: SceneKind::Intro, frames: 144 });
        assert_eq!(plan[11], PlannedScene { kind: SceneKind::Outro, frames: 144 });
        assert!(plan[1..11].iter().all(|s| s.kind == SceneKind::Main && (s.frames == 115 || s.frames == 116)));
        assert_eq!(plan.iter().map(|s| s.frames).sum::<u32>(), 1440);
    }

    #[test]
    fn fewer_frames_than_scenes_is_refused() {
        assert_eq!(plan_scenes(11, 12), Err(PlanError::TooFewFrames { frames: 11, scenes: 12 }));
        assert!(plan_scenes(12, 12).is_ok());
    }

    #[test]
    fn scene_count_must_be_between_3_and_24() {
        assert!(plan_scenes(1000, 2).is_err());
        assert!(plan_scenes(1000, 25).is_err());
        assert!(plan_scenes(1000, 3).is_ok());
        assert!(plan_scenes(1000, 24).is_ok());
    }

    #[test]
    fn a_tight_story_still_gives_every_scene_a_frame() {
        let plan = plan_scenes(24, 24).unwrap();
        assert!(plan.iter().all(|s| s.frames == 1));
    }

    proptest! {
        #[test]
        fn durations_always_sum_exactly_and_mains_differ_by_at_most_one_frame(
            seconds in 5u32..=600, fps in 1u32..=60, count in MIN_SCENES..=MAX_SCENES
        ) {
            let frames = seconds * fps;
            match plan_scenes(frames, count) {
                Err(PlanError::TooFewFrames { .. }) => prop_assert!(frames < count),
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
                Ok(plan) => {
                    prop_assert_eq!(plan.len() as u32, count);
                    prop_assert_eq!(plan.iter().map(|s| s.frames).sum::<u32>(), frames);
                    prop_assert!(plan.iter().all(|s| s.frames >= 1));
                    prop_assert_eq!(plan[0].kind, SceneKind::Intro);
                    prop_assert_eq!(plan[plan.len() - 1].kind, SceneKind::Outro);
                    prop_assert_eq!(plan[0].frames, plan[plan.len() - 1].frames);
                    let mains: Vec<u32> = plan[1..plan.len() - 1].iter().map(|s| s.frames).collect();
                    let (lo, hi) = (mains.iter().min().copied().unwrap_or(0), mains.iter().max().copied().unwrap_or(0));
                    prop_assert!(hi - lo <= 1);
                    // About 10 %: within one frame of a tenth unless the cap had to shrink it.
                    let cap = (frames - (count - 2)) / 2;
                    let tenth = f64::from(frames) / 10.0;
                    if ((frames + 5) / 10) <= cap {
                        prop_assert!((f64::from(plan[0].frames) - tenth).abs() <= 1.0);
                    }
                }
            }
        }
    }
}
