//! Plan use cases: `scenes/bulk`, `generate-prompts`, and the Scenes and Prompts APIs.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::error::{Error, Result};
use crate::domain::ids::{Actor, PromptId, SceneId, StoryId, UserId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::planner::{DEFAULT_SCENES, PlanError, plan_scenes};
use crate::domain::pricing::{CostEstimate, estimate};
use crate::domain::prompt::{NewPrompt, PromptEdit, PromptType, ScenePrompt};
use crate::domain::prompt_templates::{SceneBrief, default_scene_title, write_prompt};
use crate::domain::scene::{NewScene, Scene, SceneDuration, SceneEdit, SceneKind, SceneStatus};
use crate::domain::story::Story;
use crate::domain::values::{Description, PromptText, SceneTitle};
use crate::ports::{BulkPlan, ChildOrdering, Clock, IdGenerator, PlanStore, PromptFilter, SceneFilter, StoryPlan};

/// Why an LLM prompt writer gave no prompts (shown to the client; the template result stands).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WriterError(pub String);

/// Writes one prompt text per scene with a language model.
#[async_trait]
pub trait PromptWriter: Send + Sync {
    /// One text per scene, in the scenes' order.
    async fn write_prompts(
        &self,
        story: &Story,
        scenes: &[Scene],
        prompt_type: PromptType,
    ) -> std::result::Result<Vec<PromptText>, WriterError>;
}

/// Which writer produced `generate-prompts`' prompts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterChoice {
    /// The deterministic template engine.
    Template,
    /// The configured LLM.
    Llm,
}

/// The answer of `generate-prompts`.
#[derive(Debug, Clone)]
pub struct GeneratedPrompts {
    /// Who wrote them.
    pub writer: WriterChoice,
    /// Why the LLM was not used, when it was asked for and failed.
    pub llm_error: Option<String>,
    /// The new (selected) prompts.
    pub prompts: Vec<ScenePrompt>,
}

/// Plan use cases.
#[derive(Clone)]
pub struct PlanService {
    store: Arc<dyn PlanStore>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    llm: Option<Arc<dyn PromptWriter>>,
}

fn brief(scene: &Scene, count: usize) -> SceneBrief<'_> {
    SceneBrief {
        kind: scene.kind,
        order: scene.order,
        scene_count: count as u32,
        title: scene.title.as_str(),
        description: scene.description.as_str(),
        seconds: scene.duration_seconds.seconds(),
    }
}

impl PlanService {
    /// Wires the use cases to their ports; `llm` is the optional LLM prompt writer.
    pub fn new(
        store: Arc<dyn PlanStore>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        llm: Option<Arc<dyn PromptWriter>>,
    ) -> Self {
        Self { store, clock, ids, llm }
    }

    fn new_prompt(
        &self,
        scene: &Scene,
        prompt_type: PromptType,
        text: PromptText,
        parameters: serde_json::Map<String, serde_json::Value>,
        at: DateTime<Utc>,
    ) -> ScenePrompt {
        ScenePrompt {
            id: PromptId::from_ulid(self.ids.new_id()),
            scene: scene.id.clone(),
            story: scene.story.clone(),
            prompt_type,
            text,
            parameters,
            is_selected: true,
            version: 1,
            created_at: at,
            updated_at: at,
        }
    }

    /// `scenes/bulk`: plans `scene_count` scenes (default 12) in whole frames, each with a
    /// selected default `video` prompt, and moves DRAFT → PLANNING, all in one atomic write.
    pub async fn bulk(
        &self,
        owner: &UserId,
        story: &StoryId,
        scene_count: Option<u32>,
        replace: bool,
    ) -> Result<StoryPlan> {
        let current = self.store.story_plan(owner, story).await?;
        let story = current.story;
        // Checked again inside the atomic write; this only gives the clearer answer early.
        story.ensure_plan_editable()?;
        let count = scene_count.unwrap_or(DEFAULT_SCENES);
        let fps = story.fps.get();
        let planned = plan_scenes(story.duration_seconds.frames(story.fps), count).map_err(|e| match e {
            PlanError::CountOutOfRange(_) | PlanError::TooFewFrames { .. } => {
                Error::field("scene_count", e.to_string())
            }
        })?;
        let at = self.clock.now();
        let mains = planned.iter().filter(|p| p.kind == SceneKind::Main).count();
        let mut scenes = Vec::with_capacity(planned.len());
        for (order, part) in planned.iter().enumerate() {
            let title = default_scene_title(part.kind, order as u32, mains as u32);
            let duration = SceneDuration::from_frames(part.frames, fps)
                .ok_or_else(|| Error::internal("planner produced an empty scene"))?;
            scenes.push(Scene {
                id: SceneId::from_ulid(self.ids.new_id()),
                story: story.id.clone(),
                order: order as u32,
                kind: part.kind,
                title: SceneTitle::parse(&title).map_err(Error::internal)?,
                description: Description::default(),
                start_seconds: 0.0,
                duration_seconds: duration,
                status: SceneStatus::Pending,
                media: None,
                version: 1,
                created_at: at,
                updated_at: at,
            });
        }
        let mut prompts = Vec::with_capacity(scenes.len());
        for scene in &scenes {
            let (text, parameters) = write_prompt(&story, &brief(scene, scenes.len()), PromptType::Video)?;
            prompts.push(self.new_prompt(scene, PromptType::Video, text, parameters, at));
        }
        self.store
            .write_bulk_plan(BulkPlan {
                owner: owner.clone(),
                story: story.id.clone(),
                planned_from_version: story.version,
                replace,
                scenes,
                prompts,
                actor: Actor::User(owner.clone()),
                at,
            })
            .await
    }

    /// Whether an LLM prompt writer is configured.
    pub fn has_llm(&self) -> bool {
        self.llm.is_some()
    }

    /// `generate-prompts`: new prompts of `prompt_type` for every scene, selected; the old ones
    /// stay. With `use_llm` the configured LLM writes them; if it fails, the template result
    /// stands and the answer says why.
    pub async fn generate_prompts(
        &self,
        owner: &UserId,
        story: &StoryId,
        prompt_type: PromptType,
        use_llm: bool,
    ) -> Result<GeneratedPrompts> {
        let plan = self.store.story_plan(owner, story).await?;
        plan.story.ensure_plan_editable()?;
        if plan.scenes.is_empty() {
            return Err(Error::Conflict {
                detail: "The story has no scenes; create them first (scenes/bulk/).".into(),
                current_status: Some(plan.story.status),
            });
        }
        let count = plan.scenes.len();
        let mut written = Vec::with_capacity(count);
        for scene in &plan.scenes {
            written.push(write_prompt(&plan.story, &brief(scene, count), prompt_type)?);
        }
        let mut writer = WriterChoice::Template;
        let mut llm_error = None;
        if use_llm {
            let llm = self.llm.as_ref().ok_or_else(|| Error::field("writer", "No LLM prompt writer is configured."))?;
            match llm.write_prompts(&plan.story, &plan.scenes, prompt_type).await {
                Ok(texts) if texts.len() == count => {
                    for (slot, text) in written.iter_mut().zip(texts) {
                        slot.0 = text;
                    }
                    writer = WriterChoice::Llm;
                }
                Ok(texts) => {
                    llm_error = Some(format!("the LLM wrote {} prompts for {count} scenes", texts.len()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LLM prompt writer failed; keeping the template prompts");
                    llm_error = Some(e.0);
                }
            }
        }
        let at = self.clock.now();
        let prompts: Vec<ScenePrompt> = plan
            .scenes
            .iter()
            .zip(written)
            .map(|(scene, (text, parameters))| self.new_prompt(scene, prompt_type, text, parameters, at))
            .collect();
        let prompts = self.store.add_selected_prompts(owner, story, prompts, at).await?;
        Ok(GeneratedPrompts { writer, llm_error, prompts })
    }

    /// What rendering the story costs with its provider (`config`: its current configuration),
    /// per quality.
    pub fn cost_estimate(&self, plan: &StoryPlan, config: &crate::domain::provider::AiProviderConfig) -> CostEstimate {
        let story = &plan.story;
        let longest = plan
            .scenes
            .iter()
            .map(|s| s.duration_seconds.seconds())
            .fold(None, |max: Option<f64>, d| Some(max.map_or(d, |m| m.max(d))))
            .unwrap_or(f64::from(story.duration_seconds.get()));
        estimate(config, story.duration_seconds.get(), longest)
    }

    /// The story with its scenes and prompts.
    pub async fn story_plan(&self, owner: &UserId, story: &StoryId) -> Result<StoryPlan> {
        self.store.story_plan(owner, story).await
    }

    /// Creates scenes (one, or several for `bulk_create/`), all or none.
    pub async fn create_scenes(&self, owner: &UserId, scenes: Vec<NewScene>) -> Result<Vec<Scene>> {
        let with_ids = scenes.into_iter().map(|s| (SceneId::from_ulid(self.ids.new_id()), s)).collect();
        self.store.create_scenes(owner, with_ids, self.clock.now()).await
    }

    /// One scene.
    pub async fn scene(&self, owner: &UserId, id: &SceneId) -> Result<Scene> {
        self.store.scene(owner, id).await
    }

    /// A page of scenes.
    pub async fn scenes(
        &self,
        owner: &UserId,
        filter: &SceneFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<Scene>> {
        self.store.list_scenes(owner, filter, ordering, page).await
    }

    /// Edits a scene.
    pub async fn edit_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        edit: SceneEdit,
        expected_version: Option<u64>,
    ) -> Result<Scene> {
        if edit.is_empty() {
            let scene = self.store.scene(owner, id).await?;
            return match expected_version {
                Some(v) if v != scene.version => Err(Error::VersionMismatch { current_version: scene.version }),
                _ => Ok(scene),
            };
        }
        self.store.edit_scene(owner, id, edit, expected_version, self.clock.now()).await
    }

    /// Deletes a scene.
    pub async fn delete_scene(&self, owner: &UserId, id: &SceneId, expected_version: Option<u64>) -> Result<()> {
        self.store.delete_scene(owner, id, expected_version, self.clock.now()).await
    }

    /// Moves a scene.
    pub async fn reorder_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        order: u32,
        expected_version: Option<u64>,
    ) -> Result<Scene> {
        self.store.reorder_scene(owner, id, order, expected_version, self.clock.now()).await
    }

    /// Creates a prompt.
    pub async fn create_prompt(&self, owner: &UserId, new: NewPrompt) -> Result<ScenePrompt> {
        self.store.create_prompt(owner, PromptId::from_ulid(self.ids.new_id()), new, self.clock.now()).await
    }

    /// One prompt.
    pub async fn prompt(&self, owner: &UserId, id: &PromptId) -> Result<ScenePrompt> {
        self.store.prompt(owner, id).await
    }

    /// A page of prompts.
    pub async fn prompts(
        &self,
        owner: &UserId,
        filter: &PromptFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<ScenePrompt>> {
        self.store.list_prompts(owner, filter, ordering, page).await
    }

    /// Edits a prompt.
    pub async fn edit_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        edit: PromptEdit,
        expected_version: Option<u64>,
    ) -> Result<ScenePrompt> {
        if edit.is_empty() {
            let prompt = self.store.prompt(owner, id).await?;
            return match expected_version {
                Some(v) if v != prompt.version => Err(Error::VersionMismatch { current_version: prompt.version }),
                _ => Ok(prompt),
            };
        }
        self.store.edit_prompt(owner, id, edit, expected_version, self.clock.now()).await
    }

    /// Deletes a prompt.
    pub async fn delete_prompt(&self, owner: &UserId, id: &PromptId, expected_version: Option<u64>) -> Result<()> {
        self.store.delete_prompt(owner, id, expected_version).await
    }

    /// Selects a prompt.
    pub async fn select_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        expected_version: Option<u64>,
    ) -> Result<ScenePrompt> {
        self.store.select_prompt(owner, id, expected_version, self.clock.now()).await
    }
}
