//! Per-user figures computed from the stored records.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::domain::state_machine::StoryStatus;
use crate::domain::story::Story;

/// What `stories/statistics/` reports about one user's stories.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoryStatistics {
    /// How many stories the user has.
    pub total_stories: u64,
    /// Count per status (every status present, zeros included).
    pub by_status: BTreeMap<&'static str, u64>,
    /// Count per provider (only providers in use).
    pub by_provider: BTreeMap<&'static str, u64>,
    /// Sum of the stories' planned durations.
    pub planned_seconds: u64,
    /// Stories with a preview video.
    pub previews_rendered: u64,
    /// Stories with a final video.
    pub finals_rendered: u64,
    /// Seconds of preview and final video rendered.
    pub seconds_rendered: f64,
    /// Stories currently locked.
    pub locked_stories: u64,
}

impl StoryStatistics {
    /// Folds the user's stories into the figures.
    pub fn from_stories<'a>(stories: impl IntoIterator<Item = &'a Story>) -> Self {
        let mut stats = StoryStatistics {
            total_stories: 0,
            by_status: StoryStatus::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
            by_provider: BTreeMap::new(),
            planned_seconds: 0,
            previews_rendered: 0,
            finals_rendered: 0,
            seconds_rendered: 0.0,
            locked_stories: 0,
        };
        for story in stories {
            stats.total_stories += 1;
            *stats.by_status.entry(story.status.as_str()).or_default() += 1;
            *stats.by_provider.entry(story.ai_provider.as_str()).or_default() += 1;
            stats.planned_seconds += u64::from(story.duration_seconds.get());
            stats.locked_stories += u64::from(story.is_locked);
            if let Some(preview) = &story.preview {
                stats.previews_rendered += 1;
                stats.seconds_rendered += preview.duration_seconds;
            }
            if let Some(video) = &story.final_video {
                stats.finals_rendered += 1;
                stats.seconds_rendered += video.duration_seconds;
            }
        }
        stats
    }
}
