//! Scene prompts: what a provider is asked to render.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::ids::{PromptId, SceneId, StoryId};
use crate::domain::values::{PromptText, choices};

choices!(
    /// What a prompt is for. At most one prompt per (scene, type) is selected.
    PromptType {
        /// The video generation prompt.
        Video = "video",
        /// A still image prompt (for image-to-video providers).
        Image = "image",
        /// What to avoid.
        Negative = "negative",
        /// Narration text, burnt in as subtitles on finals when asked.
        Narration = "narration",
    }
);

/// A prompt of one scene.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenePrompt {
    /// Server-issued id.
    pub id: PromptId,
    /// The scene it belongs to.
    pub scene: SceneId,
    /// The scene's story, kept so a prompt resolves to its story in one step.
    pub story: StoryId,
    /// What it is for.
    pub prompt_type: PromptType,
    /// 1–4000 characters.
    pub text: PromptText,
    /// Provider parameters: seed, camera, motion, guidance…
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Whether it is the one used for its (scene, type); changed only through `select`.
    pub is_selected: bool,
    /// Increments on every write.
    pub version: u64,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Last write.
    pub updated_at: DateTime<Utc>,
}

/// What a client sends to create a prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPrompt {
    /// The scene it belongs to.
    pub scene: SceneId,
    /// What it is for (default `video`).
    pub prompt_type: PromptType,
    /// Required.
    pub text: PromptText,
    /// Defaults to `{}`.
    pub parameters: serde_json::Map<String, serde_json::Value>,
}

/// A change to a prompt's writable fields (its scene and type are fixed once created).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptEdit {
    /// New text.
    pub text: Option<PromptText>,
    /// New parameters (replacing the old ones).
    pub parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

impl PromptEdit {
    /// True when the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == PromptEdit::default()
    }
}

impl ScenePrompt {
    /// The prompt after `edit`, with its version bumped.
    pub fn edited(&self, edit: PromptEdit, now: DateTime<Utc>) -> ScenePrompt {
        let mut next = self.clone();
        if let Some(text) = edit.text {
            next.text = text;
        }
        if let Some(parameters) = edit.parameters {
            next.parameters = parameters;
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

/// Largest `parameters` object accepted, serialised.
pub const MAX_PARAMETERS_BYTES: usize = 16 * 1024;

/// Checks a client's `parameters`: an object of at most 16 KiB.
pub fn check_parameters(value: &serde_json::Value) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let object = value.as_object().ok_or_else(|| "Expected a JSON object.".to_owned())?;
    let size = serde_json::to_vec(object).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_PARAMETERS_BYTES {
        return Err(format!("Ensure the parameters take no more than {MAX_PARAMETERS_BYTES} bytes."));
    }
    Ok(object.clone())
}
