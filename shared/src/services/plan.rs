//! Plan use cases: `scenes/bulk`, `generate-prompts`, and the Scenes and Prompts APIs.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::domain::error::{Error, Result};
use crate::domain::ids::{Actor, PromptId, SceneId, StoryId, UserId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::plan_edits::{PlanEdit, PlanState};
use crate::domain::planner::{DEFAULT_SCENES, PlanError, plan_scenes};
use crate::domain::pricing::{CostEstimate, estimate};
use crate::domain::prompt::{NewPrompt, PromptEdit, PromptType, ScenePrompt};
use crate::domain::prompt_templates::{SceneBrief, default_scene_title, write_prompt};
use crate::domain::scene::{NewScene, Scene, SceneDuration, SceneEdit, SceneKind, SceneStatus};
use crate::domain::story::Story;
use crate::domain::values::{Description, PromptText, SceneTitle};
use crate::ports::{
    ChildOrdering, Clock, IdGenerator, PlanStore, PlanTarget, PromptFilter, RequestIds, SceneFilter, StoryPlan,
};

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
        let (planned_from, actor) = (story.version, Actor::User(owner.clone()));
        let state = self
            .edit_one(owner, PlanTarget::Story(story.id.clone()), move |plan| {
                plan.replace_plan(planned_from, replace, scenes.clone(), prompts.clone(), actor.clone(), at)
            })
            .await?;
        Ok(StoryPlan { story: state.story, scenes: state.scenes, prompts: state.prompts })
    }

    /// Runs one edit on the plan of the story holding `target`, in the store's atomic step.
    async fn edit_one(
        &self,
        owner: &UserId,
        target: PlanTarget,
        work: impl Fn(&mut PlanEdit) -> Result<()> + Send + Sync + 'static,
    ) -> Result<PlanState> {
        let work = Arc::new(move |edits: &mut [PlanEdit]| match edits {
            [edit] => work(edit),
            _ => Err(Error::internal("a plan edit of one target got several plans")),
        });
        let mut states = self.store.edit_plans(owner, std::slice::from_ref(&target), work).await?;
        states.pop().ok_or_else(|| Error::internal("a plan edit answered no plan"))
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
        keyed: Option<ulid::Ulid>,
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
        let mut prompts: Vec<ScenePrompt> = plan
            .scenes
            .iter()
            .zip(written)
            .map(|(scene, (text, parameters))| self.new_prompt(scene, prompt_type, text, parameters, at))
            .collect();
        // With `keyed` (the id an `Idempotency-Key` derives) the prompts are named from it in
        // order, so a retry after a crash finds the ones its first try made instead of writing a
        // second set.
        if keyed.is_some() {
            let mut ids = RequestIds::new(keyed, self.ids.as_ref());
            for prompt in &mut prompts {
                prompt.id = PromptId::from_ulid(ids.next_id());
            }
        }
        let ids: Vec<PromptId> = prompts.iter().map(|p| p.id.clone()).collect();
        let state = self
            .edit_one(owner, PlanTarget::Story(story.clone()), move |plan| {
                plan.add_selected_prompts(prompts.clone(), at)
            })
            .await?;
        let prompts = ids.iter().map(|id| state.prompt(id)).collect::<Result<Vec<_>>>()?;
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

    /// Creates scenes (one, or several for `bulk_create/`, possibly of several stories), all or
    /// none. Errors name the item's position when there are several.
    ///
    /// With `keyed` (the id an `Idempotency-Key` derives) the scenes are named from it in order, so
    /// the scenes an earlier try of the same request created are the answer: never second ones.
    pub async fn create_scenes(
        &self,
        owner: &UserId,
        scenes: Vec<NewScene>,
        keyed: Option<ulid::Ulid>,
    ) -> Result<Vec<Scene>> {
        let at = self.clock.now();
        let many = scenes.len() > 1;
        let position = move |i: usize| many.then_some(i);
        let mut ids = RequestIds::new(keyed, self.ids.as_ref());
        let mut with_ids: Vec<(SceneId, NewScene)> = Vec::with_capacity(scenes.len());
        for scene in scenes {
            with_ids.push((SceneId::from_ulid(ids.next_id()), scene));
        }
        let mut stories: Vec<StoryId> = Vec::new();
        for (_, new) in &with_ids {
            if !stories.contains(&new.story) {
                stories.push(new.story.clone());
            }
        }
        let targets: Vec<PlanTarget> = stories.iter().cloned().map(PlanTarget::Story).collect();
        let planned = with_ids.clone();
        let work = Arc::new(move |edits: &mut [PlanEdit]| {
            for (i, (id, new)) in planned.iter().enumerate() {
                let edit = edits
                    .iter_mut()
                    .find(|e| e.state().story.id == new.story)
                    .ok_or_else(|| Error::internal("no plan loaded for a scene's story"))?;
                edit.create_scene(id.clone(), new.clone(), at).map_err(|e| e.at_position(position(i)))?;
            }
            Ok(())
        });
        let states = match self.store.edit_plans(owner, &targets, work).await {
            Err(Error::NotFound) => return Err(self.missing_story(owner, &with_ids, position).await),
            other => other?,
        };
        with_ids
            .iter()
            .map(|(id, _)| {
                states.iter().find_map(|s| s.scenes.iter().find(|x| &x.id == id)).cloned().ok_or(Error::NotFound)
            })
            .collect()
    }

    /// The field error for the first scene whose story does not exist (or is another owner's).
    async fn missing_story(
        &self,
        owner: &UserId,
        scenes: &[(SceneId, NewScene)],
        position: impl Fn(usize) -> Option<usize>,
    ) -> Error {
        for (i, (_, new)) in scenes.iter().enumerate() {
            match self.store.story_plan(owner, &new.story).await {
                Err(Error::NotFound) => {
                    return Error::field("story", format!("Invalid pk \"{}\" - object does not exist.", new.story))
                        .at_position(position(i));
                }
                Err(other) => return other,
                Ok(_) => {}
            }
        }
        Error::NotFound
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
        let (at, scene) = (self.clock.now(), id.clone());
        let state = self
            .edit_one(owner, PlanTarget::Scene(id.clone()), move |plan| {
                plan.edit_scene(&scene, edit.clone(), expected_version, at)
            })
            .await?;
        state.scene(id)
    }

    /// Deletes a scene.
    pub async fn delete_scene(&self, owner: &UserId, id: &SceneId, expected_version: Option<u64>) -> Result<()> {
        let (at, scene) = (self.clock.now(), id.clone());
        self.edit_one(owner, PlanTarget::Scene(id.clone()), move |plan| plan.delete_scene(&scene, expected_version, at))
            .await
            .map(|_| ())
    }

    /// Moves a scene.
    pub async fn reorder_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        order: u32,
        expected_version: Option<u64>,
    ) -> Result<Scene> {
        let (at, scene) = (self.clock.now(), id.clone());
        let state = self
            .edit_one(owner, PlanTarget::Scene(id.clone()), move |plan| {
                plan.reorder_scene(&scene, order, expected_version, at)
            })
            .await?;
        state.scene(id)
    }

    /// Creates a prompt.
    ///
    /// With `keyed` (the id an `Idempotency-Key` derives) the prompt an earlier try of the same
    /// request created is the answer: never a second one.
    pub async fn create_prompt(
        &self,
        owner: &UserId,
        new: NewPrompt,
        keyed: Option<ulid::Ulid>,
    ) -> Result<ScenePrompt> {
        let (id, at) = (PromptId::from_ulid(keyed.unwrap_or_else(|| self.ids.new_id())), self.clock.now());
        let missing = || Error::field("scene", format!("Invalid pk \"{}\" - object does not exist.", new.scene));
        let (prompt, scene) = (new.clone(), new.scene.clone());
        let created = self
            .edit_one(owner, PlanTarget::Scene(scene), {
                let id = id.clone();
                move |plan| plan.create_prompt(id.clone(), prompt.clone(), at).map(|_| ())
            })
            .await;
        match created {
            Err(Error::NotFound) => Err(missing()),
            other => other?.prompt(&id),
        }
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
        let (at, prompt) = (self.clock.now(), id.clone());
        let state = self
            .edit_one(owner, PlanTarget::Prompt(id.clone()), move |plan| {
                plan.edit_prompt(&prompt, edit.clone(), expected_version, at)
            })
            .await?;
        state.prompt(id)
    }

    /// Deletes a prompt.
    pub async fn delete_prompt(&self, owner: &UserId, id: &PromptId, expected_version: Option<u64>) -> Result<()> {
        let prompt = id.clone();
        self.edit_one(owner, PlanTarget::Prompt(id.clone()), move |plan| plan.delete_prompt(&prompt, expected_version))
            .await
            .map(|_| ())
    }

    /// Selects a prompt.
    pub async fn select_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        expected_version: Option<u64>,
    ) -> Result<ScenePrompt> {
        let (at, prompt) = (self.clock.now(), id.clone());
        let state = self
            .edit_one(owner, PlanTarget::Prompt(id.clone()), move |plan| {
                plan.select_prompt(&prompt, expected_version, at)
            })
            .await?;
        state.prompt(id)
    }
}
