//! Every change to a story's plan (its scenes and prompts) as pure functions over the whole
//! aggregate. Each adapter loads the aggregate inside its atomic step (a redb write transaction,
//! or a DynamoDB Query whose result the TransactWriteItems is conditioned on), applies one of these,
//! and writes the resulting change — so both backends enforce exactly the same rules.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use crate::domain::error::{Error, Result};
use crate::domain::ids::{Actor, PromptId, SceneId};
use crate::domain::prompt::{NewPrompt, PromptEdit, ScenePrompt};
use crate::domain::scene::{NewScene, Scene, SceneEdit, SceneStatus, check_scene_duration, renumber, sequence_scenes};
use crate::domain::state_machine::{Mover, StoryStatus};
use crate::domain::story::Story;
use crate::domain::transition::StoryStateTransition;
use crate::domain::values::Reason;

/// A story with its whole plan, as loaded in one consistent step.
#[derive(Debug, Clone)]
pub struct PlanState {
    /// The story.
    pub story: Story,
    /// Its scenes (any order on load; kept sorted by order here).
    pub scenes: Vec<Scene>,
    /// Every prompt of every scene.
    pub prompts: Vec<ScenePrompt>,
}

impl PlanState {
    /// One of its scenes.
    pub fn scene(&self, id: &SceneId) -> Result<Scene> {
        self.scenes.iter().find(|s| &s.id == id).cloned().ok_or(Error::NotFound)
    }

    /// One of its prompts.
    pub fn prompt(&self, id: &PromptId) -> Result<ScenePrompt> {
        self.prompts.iter().find(|p| &p.id == id).cloned().ok_or(Error::NotFound)
    }
}

/// What one edit wrote: the objects to put and to delete.
#[derive(Debug, Clone, Default)]
pub struct PlanChange {
    /// The story, when the edit moved it (`scenes/bulk` from DRAFT).
    pub story: Option<Story>,
    /// The history record of that move.
    pub transition: Option<StoryStateTransition>,
    /// Scenes to write.
    pub put_scenes: Vec<Scene>,
    /// Scenes to remove.
    pub delete_scenes: Vec<Scene>,
    /// Prompts to write.
    pub put_prompts: Vec<ScenePrompt>,
    /// Prompts to remove.
    pub delete_prompts: Vec<ScenePrompt>,
}

impl PlanChange {
    /// How many objects the change writes or removes (DynamoDB transactions hold at most 100).
    pub fn len(&self) -> usize {
        usize::from(self.story.is_some())
            + usize::from(self.transition.is_some())
            + self.put_scenes.len()
            + self.delete_scenes.len()
            + self.put_prompts.len()
            + self.delete_prompts.len()
    }

    /// True when nothing changes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn check_version(current: u64, expected: Option<u64>) -> Result<()> {
    match expected {
        Some(v) if v != current => Err(Error::VersionMismatch { current_version: current }),
        _ => Ok(()),
    }
}

/// An edit in progress over a loaded plan.
#[derive(Debug, Clone)]
pub struct PlanEdit {
    state: PlanState,
    put_scenes: BTreeSet<SceneId>,
    deleted_scenes: Vec<Scene>,
    put_prompts: BTreeSet<PromptId>,
    deleted_prompts: Vec<ScenePrompt>,
    moved: Option<(Story, StoryStateTransition)>,
}

impl PlanEdit {
    /// Starts editing `state`; refuses at once when the story is locked, rendering or archived.
    pub fn begin(mut state: PlanState) -> Result<Self> {
        state.story.ensure_plan_editable()?;
        sequence_scenes(&mut state.scenes);
        Ok(Self {
            state,
            put_scenes: BTreeSet::new(),
            deleted_scenes: Vec::new(),
            put_prompts: BTreeSet::new(),
            deleted_prompts: Vec::new(),
            moved: None,
        })
    }

    /// The plan as it stands now (scenes sorted, with `start_seconds`).
    pub fn state(&self) -> &PlanState {
        &self.state
    }

    /// Ends the edit: the plan after it, and what to write.
    pub fn finish(mut self) -> (PlanState, PlanChange) {
        sequence_scenes(&mut self.state.scenes);
        let put_scenes = self.state.scenes.iter().filter(|s| self.put_scenes.contains(&s.id)).cloned().collect();
        let put_prompts = self.state.prompts.iter().filter(|p| self.put_prompts.contains(&p.id)).cloned().collect();
        let (story, transition) = match self.moved {
            Some((story, record)) => {
                self.state.story = story.clone();
                (Some(story), Some(record))
            }
            None => (None, None),
        };
        let change = PlanChange {
            story,
            transition,
            put_scenes,
            delete_scenes: self.deleted_scenes,
            put_prompts,
            delete_prompts: self.deleted_prompts,
        };
        (self.state, change)
    }

    fn scene_index(&self, id: &SceneId) -> Result<usize> {
        self.state.scenes.iter().position(|s| &s.id == id).ok_or(Error::NotFound)
    }

    fn prompt_index(&self, id: &PromptId) -> Result<usize> {
        self.state.prompts.iter().position(|p| &p.id == id).ok_or(Error::NotFound)
    }

    fn renumber(&mut self, at: DateTime<Utc>) {
        for id in renumber(&mut self.state.scenes, at) {
            self.put_scenes.insert(id);
        }
    }

    /// Adds a scene at `new.order` (the end when `None`); later scenes move down one place.
    /// Creating by an id the plan already holds changes nothing: a keyed request retried after a
    /// crash names its scene by the same id, and finds it made.
    pub fn create_scene(&mut self, id: SceneId, new: NewScene, at: DateTime<Utc>) -> Result<SceneId> {
        if self.state.scenes.iter().any(|s| s.id == id) {
            return Ok(id);
        }
        check_scene_duration(new.duration_seconds, self.state.story.fps.get())?;
        let count = self.state.scenes.len() as u32;
        let order = new.order.unwrap_or(count);
        if order > count {
            return Err(Error::field(
                "order",
                format!("Ensure this value is less than or equal to {count} (the story has {count} scenes)."),
            ));
        }
        for scene in self.state.scenes.iter_mut().filter(|s| s.order >= order) {
            scene.order += 1;
            scene.touch(at);
            self.put_scenes.insert(scene.id.clone());
        }
        self.state.scenes.push(Scene {
            id: id.clone(),
            story: self.state.story.id.clone(),
            order,
            kind: new.kind,
            title: new.title,
            description: new.description,
            start_seconds: 0.0,
            duration_seconds: new.duration_seconds,
            status: SceneStatus::Pending,
            media: None,
            version: 1,
            created_at: at,
            updated_at: at,
        });
        sequence_scenes(&mut self.state.scenes);
        self.put_scenes.insert(id.clone());
        Ok(id)
    }

    /// Edits a scene's writable fields.
    pub fn edit_scene(
        &mut self,
        id: &SceneId,
        edit: SceneEdit,
        expected: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let i = self.scene_index(id)?;
        check_version(self.state.scenes[i].version, expected)?;
        if let Some(duration) = edit.duration_seconds {
            check_scene_duration(duration, self.state.story.fps.get())?;
        }
        self.state.scenes[i] = self.state.scenes[i].edited(edit, at);
        self.put_scenes.insert(id.clone());
        Ok(())
    }

    /// Removes a scene with its prompts and closes the gap in the orders.
    pub fn delete_scene(&mut self, id: &SceneId, expected: Option<u64>, at: DateTime<Utc>) -> Result<()> {
        let i = self.scene_index(id)?;
        check_version(self.state.scenes[i].version, expected)?;
        let scene = self.state.scenes.remove(i);
        let (gone, kept): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.state.prompts).into_iter().partition(|p| p.scene == scene.id);
        self.state.prompts = kept;
        for prompt in gone {
            self.put_prompts.remove(&prompt.id);
            self.deleted_prompts.push(prompt);
        }
        self.put_scenes.remove(&scene.id);
        self.deleted_scenes.push(scene);
        self.renumber(at);
        Ok(())
    }

    /// Moves a scene to `order`; every other scene is renumbered.
    pub fn reorder_scene(&mut self, id: &SceneId, order: u32, expected: Option<u64>, at: DateTime<Utc>) -> Result<()> {
        let i = self.scene_index(id)?;
        check_version(self.state.scenes[i].version, expected)?;
        let last = self.state.scenes.len() as u32 - 1;
        if order > last {
            return Err(Error::field("order", format!("Ensure this value is less than or equal to {last}.")));
        }
        let moving = self.state.scenes.remove(i);
        self.state.scenes.insert(order as usize, moving);
        for (position, scene) in self.state.scenes.iter_mut().enumerate() {
            if scene.order != position as u32 {
                scene.order = position as u32;
                scene.touch(at);
                self.put_scenes.insert(scene.id.clone());
            }
        }
        sequence_scenes(&mut self.state.scenes);
        Ok(())
    }

    /// Adds a prompt; it is selected when it is the first selected of its scene and type.
    /// Creating by an id the plan already holds changes nothing (a keyed retry finds its prompt).
    pub fn create_prompt(&mut self, id: PromptId, new: NewPrompt, at: DateTime<Utc>) -> Result<PromptId> {
        if !self.state.scenes.iter().any(|s| s.id == new.scene) {
            return Err(Error::NotFound);
        }
        if self.state.prompts.iter().any(|p| p.id == id) {
            return Ok(id);
        }
        let first = !self
            .state
            .prompts
            .iter()
            .any(|p| p.scene == new.scene && p.prompt_type == new.prompt_type && p.is_selected);
        self.state.prompts.push(ScenePrompt {
            id: id.clone(),
            scene: new.scene,
            story: self.state.story.id.clone(),
            prompt_type: new.prompt_type,
            text: new.text,
            parameters: new.parameters,
            is_selected: first,
            version: 1,
            created_at: at,
            updated_at: at,
        });
        self.put_prompts.insert(id.clone());
        Ok(id)
    }

    /// Edits a prompt's text or parameters.
    pub fn edit_prompt(
        &mut self,
        id: &PromptId,
        edit: PromptEdit,
        expected: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let i = self.prompt_index(id)?;
        check_version(self.state.prompts[i].version, expected)?;
        self.state.prompts[i] = self.state.prompts[i].edited(edit, at);
        self.put_prompts.insert(id.clone());
        Ok(())
    }

    /// Removes a prompt.
    pub fn delete_prompt(&mut self, id: &PromptId, expected: Option<u64>) -> Result<()> {
        let i = self.prompt_index(id)?;
        check_version(self.state.prompts[i].version, expected)?;
        let prompt = self.state.prompts.remove(i);
        self.put_prompts.remove(&prompt.id);
        self.deleted_prompts.push(prompt);
        Ok(())
    }

    fn select(&mut self, i: usize, at: DateTime<Utc>) {
        let (scene, kind, id) = {
            let p = &self.state.prompts[i];
            (p.scene.clone(), p.prompt_type, p.id.clone())
        };
        for other in self.state.prompts.iter_mut() {
            if other.id != id && other.scene == scene && other.prompt_type == kind && other.is_selected {
                other.is_selected = false;
                other.touch(at);
                self.put_prompts.insert(other.id.clone());
            }
        }
        let prompt = &mut self.state.prompts[i];
        if !prompt.is_selected {
            prompt.is_selected = true;
            prompt.touch(at);
            self.put_prompts.insert(id);
        }
    }

    /// Makes a prompt the one selected prompt of its scene and type.
    pub fn select_prompt(&mut self, id: &PromptId, expected: Option<u64>, at: DateTime<Utc>) -> Result<()> {
        let i = self.prompt_index(id)?;
        check_version(self.state.prompts[i].version, expected)?;
        self.select(i, at);
        Ok(())
    }

    /// Adds prompts that become the selected ones of their scene and type (`generate-prompts`).
    pub fn add_selected_prompts(&mut self, prompts: Vec<ScenePrompt>, at: DateTime<Utc>) -> Result<()> {
        for prompt in &prompts {
            if prompt.story != self.state.story.id || !self.state.scenes.iter().any(|s| s.id == prompt.scene) {
                return Err(Error::Conflict {
                    detail: "The story's scenes changed while its prompts were written; try again.".into(),
                    current_status: Some(self.state.story.status),
                });
            }
        }
        for mut prompt in prompts {
            // A keyed retry whose first try committed: that prompt is there already (its id is
            // the key's), and the retry leaves it as it is now.
            if self.state.prompts.iter().any(|p| p.id == prompt.id) {
                continue;
            }
            prompt.is_selected = false;
            self.put_prompts.insert(prompt.id.clone());
            self.state.prompts.push(prompt);
            let i = self.state.prompts.len() - 1;
            self.select(i, at);
        }
        Ok(())
    }

    /// Replaces the whole plan (`scenes/bulk`) and moves DRAFT → PLANNING.
    pub fn replace_plan(
        &mut self,
        planned_from_version: u64,
        replace: bool,
        scenes: Vec<Scene>,
        prompts: Vec<ScenePrompt>,
        actor: Actor,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let story = &self.state.story;
        if !matches!(story.status, StoryStatus::Draft | StoryStatus::Planning) {
            return Err(Error::Conflict {
                detail: format!(
                    "scenes/bulk plans a DRAFT or PLANNING story; this one is {} (move it back to PLANNING first).",
                    story.status
                ),
                current_status: Some(story.status),
            });
        }
        if story.version != planned_from_version {
            return Err(Error::Conflict {
                detail: "The story changed while its scenes were planned; try again.".into(),
                current_status: Some(story.status),
            });
        }
        if !self.state.scenes.is_empty() && !replace {
            return Err(Error::Conflict {
                detail: format!(
                    "The story already has {} scenes; send {{\"replace\": true}} to replace them.",
                    self.state.scenes.len()
                ),
                current_status: Some(story.status),
            });
        }
        for scene in std::mem::take(&mut self.state.scenes) {
            self.put_scenes.remove(&scene.id);
            self.deleted_scenes.push(scene);
        }
        for prompt in std::mem::take(&mut self.state.prompts) {
            self.put_prompts.remove(&prompt.id);
            self.deleted_prompts.push(prompt);
        }
        self.put_scenes.extend(scenes.iter().map(|s| s.id.clone()));
        self.put_prompts.extend(prompts.iter().map(|p| p.id.clone()));
        self.state.scenes = scenes;
        self.state.prompts = prompts;
        sequence_scenes(&mut self.state.scenes);
        if story.status == StoryStatus::Draft {
            let reason = Reason::parse("scenes/bulk").ok();
            self.moved = Some(story.moved(StoryStatus::Planning, Mover::User, actor, reason, Vec::new, at)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{StoryId, UserId};
    use crate::domain::prompt::PromptType;
    use crate::domain::scene::{SceneDuration, SceneKind};
    use crate::domain::story::NewStory;
    use crate::domain::values::{Description, PromptText, SceneTitle, Title};

    #[test]
    fn creating_by_an_id_the_plan_already_holds_changes_nothing() {
        let story = Story::create(
            StoryId::from_ulid(ulid::Ulid::new()),
            UserId::parse("alice").unwrap(),
            NewStory::titled(Title::parse("T").unwrap()),
            Utc::now(),
        );
        let state = PlanState { story: story.clone(), scenes: Vec::new(), prompts: Vec::new() };
        let mut edit = PlanEdit::begin(state).unwrap();
        let scene = SceneId::from_ulid(ulid::Ulid::new());
        let new = NewScene {
            story: story.id.clone(),
            order: None,
            kind: SceneKind::Main,
            title: SceneTitle::parse("Once").unwrap(),
            description: Description::default(),
            duration_seconds: SceneDuration::parse(5.0).unwrap(),
        };
        edit.create_scene(scene.clone(), new.clone(), Utc::now()).unwrap();
        edit.create_scene(scene.clone(), new, Utc::now()).unwrap();
        let prompt = PromptId::from_ulid(ulid::Ulid::new());
        let text = NewPrompt {
            scene: scene.clone(),
            prompt_type: PromptType::Video,
            text: PromptText::parse("A fox.").unwrap(),
            parameters: serde_json::Map::new(),
        };
        edit.create_prompt(prompt.clone(), text.clone(), Utc::now()).unwrap();
        edit.create_prompt(prompt, text, Utc::now()).unwrap();
        let (state, _) = edit.finish();
        assert_eq!(state.scenes.len(), 1, "one scene for one id");
        assert_eq!(state.prompts.len(), 1, "one prompt for one id");
    }
}
