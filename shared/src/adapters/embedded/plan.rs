//! Scenes and prompts in the embedded store. Every write runs in one redb write transaction that
//! also reads the story and checks its lock, so an edit can never land after a lock that won.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use super::store::{
    EmbeddedStore, OWNER_STORIES, PROMPT_INDEX, PROMPTS, SCENE_INDEX, SCENES, STORIES, TRANSITIONS, decode, encode,
    internal, key, owned_story, prefix_bounds, put_story, scan_prefix,
};
use crate::domain::error::{Error, Result};
use crate::domain::ids::{PromptId, SceneId, StoryId, UserId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::plan_edits::{PlanChange, PlanEdit, PlanState};
use crate::domain::prompt::{NewPrompt, PromptEdit, ScenePrompt};
use crate::domain::scene::{NewScene, Scene, SceneEdit, sequence_scenes};
use crate::ports::{
    BulkPlan, ChildOrdering, PlanStore, PromptFilter, SceneFilter, StoryPlan, prompt_listing_key, scene_listing_key,
};

/// A story's scenes, in order, with `start_seconds`.
fn scenes_of(table: &impl ReadableTable<&'static str, &'static [u8]>, story: &StoryId) -> Result<Vec<Scene>> {
    let mut scenes: Vec<Scene> = scan_prefix(table, story.as_str())?;
    sequence_scenes(&mut scenes);
    Ok(scenes)
}

/// The story a scene belongs to (`NotFound` when the scene does not exist).
fn scene_story(index: &impl ReadableTable<&'static str, &'static [u8]>, id: &SceneId) -> Result<StoryId> {
    let Some(value) = index.get(id.as_str()).map_err(internal)? else {
        return Err(Error::NotFound);
    };
    let raw = std::str::from_utf8(value.value()).map_err(internal)?;
    StoryId::parse(raw).ok_or_else(|| internal("corrupt scene index"))
}

/// The story and scene a prompt belongs to.
fn prompt_home(index: &impl ReadableTable<&'static str, &'static [u8]>, id: &PromptId) -> Result<(StoryId, SceneId)> {
    let Some(value) = index.get(id.as_str()).map_err(internal)? else {
        return Err(Error::NotFound);
    };
    let raw = std::str::from_utf8(value.value()).map_err(internal)?;
    let (story, scene) = raw.split_once('\0').ok_or_else(|| internal("corrupt prompt index"))?;
    match (StoryId::parse(story), SceneId::parse(scene)) {
        (Some(story), Some(scene)) => Ok((story, scene)),
        _ => Err(internal("corrupt prompt index")),
    }
}

fn load_prompt(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    story: &StoryId,
    scene: &SceneId,
    id: &PromptId,
) -> Result<ScenePrompt> {
    let k = key(&[story.as_str(), scene.as_str(), id.as_str()]);
    match table.get(k.as_str()).map_err(internal)? {
        Some(bytes) => decode(bytes.value()),
        None => Err(Error::NotFound),
    }
}

/// Loads the plan of `owner`'s story inside this write transaction.
pub(super) fn load_plan(txn: &WriteTransaction, owner: &UserId, story: &StoryId) -> Result<PlanState> {
    let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, owner, story)?;
    let scenes = scenes_of(&txn.open_table(SCENES).map_err(internal)?, &story.id)?;
    let prompts: Vec<ScenePrompt> = scan_prefix(&txn.open_table(PROMPTS).map_err(internal)?, story.id.as_str())?;
    Ok(PlanState { story, scenes, prompts })
}

fn put_scene(txn: &WriteTransaction, scene: &Scene) -> Result<()> {
    let k = key(&[scene.story.as_str(), scene.id.as_str()]);
    txn.open_table(SCENES).map_err(internal)?.insert(k.as_str(), encode(scene)?.as_slice()).map_err(internal)?;
    txn.open_table(SCENE_INDEX)
        .map_err(internal)?
        .insert(scene.id.as_str(), scene.story.as_str().as_bytes())
        .map_err(internal)?;
    Ok(())
}

fn put_prompt(txn: &WriteTransaction, prompt: &ScenePrompt) -> Result<()> {
    let k = key(&[prompt.story.as_str(), prompt.scene.as_str(), prompt.id.as_str()]);
    txn.open_table(PROMPTS).map_err(internal)?.insert(k.as_str(), encode(prompt)?.as_slice()).map_err(internal)?;
    let home = key(&[prompt.story.as_str(), prompt.scene.as_str()]);
    txn.open_table(PROMPT_INDEX).map_err(internal)?.insert(prompt.id.as_str(), home.as_bytes()).map_err(internal)?;
    Ok(())
}

/// Writes what a plan edit changed, in this transaction.
fn apply(txn: &WriteTransaction, change: &PlanChange) -> Result<()> {
    for prompt in &change.delete_prompts {
        let k = key(&[prompt.story.as_str(), prompt.scene.as_str(), prompt.id.as_str()]);
        txn.open_table(PROMPTS).map_err(internal)?.remove(k.as_str()).map_err(internal)?;
        txn.open_table(PROMPT_INDEX).map_err(internal)?.remove(prompt.id.as_str()).map_err(internal)?;
    }
    for scene in &change.delete_scenes {
        let k = key(&[scene.story.as_str(), scene.id.as_str()]);
        txn.open_table(SCENES).map_err(internal)?.remove(k.as_str()).map_err(internal)?;
        txn.open_table(SCENE_INDEX).map_err(internal)?.remove(scene.id.as_str()).map_err(internal)?;
    }
    for scene in &change.put_scenes {
        put_scene(txn, scene)?;
    }
    for prompt in &change.put_prompts {
        put_prompt(txn, prompt)?;
    }
    if let Some(story) = &change.story {
        put_story(txn, story)?;
    }
    if let Some(record) = &change.transition {
        let seq = format!("{:020}", record.sequence);
        txn.open_table(TRANSITIONS)
            .map_err(internal)?
            .insert(key(&[record.story.as_str(), &seq]).as_str(), encode(record)?.as_slice())
            .map_err(internal)?;
    }
    Ok(())
}

/// Runs one plan edit on the story that holds `locate`'s object, all inside this transaction.
fn edit_plan<T>(
    txn: &WriteTransaction,
    owner: &UserId,
    story: &StoryId,
    work: impl FnOnce(&mut PlanEdit) -> Result<T>,
) -> Result<(T, PlanState)> {
    let mut edit = PlanEdit::begin(load_plan(txn, owner, story)?)?;
    let out = work(&mut edit)?;
    let (state, change) = edit.finish();
    apply(txn, &change)?;
    Ok((out, state))
}

/// The story a scene of `owner` belongs to.
fn scene_home(txn: &WriteTransaction, id: &SceneId) -> Result<StoryId> {
    scene_story(&txn.open_table(SCENE_INDEX).map_err(internal)?, id)
}

/// The story a prompt belongs to.
fn prompt_story(txn: &WriteTransaction, id: &PromptId) -> Result<StoryId> {
    prompt_home(&txn.open_table(PROMPT_INDEX).map_err(internal)?, id).map(|(story, _)| story)
}

/// Stories of `owner` a listing covers: one (if it is theirs) or all of them.
fn listed_stories(txn: &redb::ReadTransaction, owner: &UserId, only: Option<&StoryId>) -> Result<Vec<StoryId>> {
    if let Some(story) = only {
        return match owned_story(&txn.open_table(STORIES).map_err(internal)?, owner, story) {
            Ok(_) => Ok(vec![story.clone()]),
            Err(Error::NotFound) => Ok(Vec::new()),
            Err(e) => Err(e),
        };
    }
    let index = txn.open_table(OWNER_STORIES).map_err(internal)?;
    let (start, end) = prefix_bounds(owner.as_str());
    let mut ids = Vec::new();
    for entry in index.range(start.as_str()..end.as_str()).map_err(internal)? {
        let (k, _) = entry.map_err(internal)?;
        if let Some(id) = k.value().get(start.len()..).and_then(StoryId::parse) {
            ids.push(id);
        }
    }
    Ok(ids)
}

#[async_trait]
impl PlanStore for EmbeddedStore {
    async fn write_bulk_plan(&self, plan: BulkPlan) -> Result<StoryPlan> {
        self.write(move |txn| {
            let ((), state) = edit_plan(txn, &plan.owner, &plan.story, |edit| {
                edit.replace_plan(
                    plan.planned_from_version,
                    plan.replace,
                    plan.scenes,
                    plan.prompts,
                    plan.actor,
                    plan.at,
                )
            })?;
            Ok(StoryPlan { story: state.story, scenes: state.scenes, prompts: state.prompts })
        })
        .await
    }

    async fn story_plan(&self, owner: &UserId, story: &StoryId) -> Result<StoryPlan> {
        let (owner, id) = (owner.clone(), story.clone());
        self.read(move |txn| {
            let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &id)?;
            let scenes = scenes_of(&txn.open_table(SCENES).map_err(internal)?, &id)?;
            let prompts: Vec<ScenePrompt> = scan_prefix(&txn.open_table(PROMPTS).map_err(internal)?, id.as_str())?;
            Ok(StoryPlan { story, scenes, prompts })
        })
        .await
    }

    async fn create_scenes(
        &self,
        owner: &UserId,
        scenes: Vec<(SceneId, NewScene)>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Scene>> {
        let owner = owner.clone();
        self.write(move |txn| {
            let many = scenes.len() > 1;
            let position = move |i: usize| many.then_some(i);
            let mut edits: Vec<PlanEdit> = Vec::new();
            let mut created = Vec::new();
            for (i, (id, new)) in scenes.into_iter().enumerate() {
                let slot = match edits.iter().position(|e| e.state().story.id == new.story) {
                    Some(slot) => slot,
                    None => {
                        let state = load_plan(txn, &owner, &new.story).map_err(|e| match e {
                            Error::NotFound => {
                                Error::field("story", format!("Invalid pk \"{}\" - object does not exist.", new.story))
                                    .at_position(position(i))
                            }
                            other => other,
                        })?;
                        edits.push(PlanEdit::begin(state)?);
                        edits.len() - 1
                    }
                };
                created.push(edits[slot].create_scene(id, new, at).map_err(|e| e.at_position(position(i)))?);
            }
            let mut states = Vec::new();
            for edit in edits {
                let (state, change) = edit.finish();
                apply(txn, &change)?;
                states.push(state);
            }
            created
                .iter()
                .map(|id| {
                    states.iter().find_map(|s| s.scenes.iter().find(|x| &x.id == id)).cloned().ok_or(Error::NotFound)
                })
                .collect()
        })
        .await
    }

    async fn scene(&self, owner: &UserId, id: &SceneId) -> Result<Scene> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |txn| {
            let story_id = scene_story(&txn.open_table(SCENE_INDEX).map_err(internal)?, &id)?;
            owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &story_id)?;
            let scenes = scenes_of(&txn.open_table(SCENES).map_err(internal)?, &story_id)?;
            scenes.into_iter().find(|s| s.id == id).ok_or(Error::NotFound)
        })
        .await
    }

    async fn list_scenes(
        &self,
        owner: &UserId,
        filter: &SceneFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<Scene>> {
        let (owner, filter, page) = (owner.clone(), filter.clone(), page.clone());
        self.read(move |txn| {
            let table = txn.open_table(SCENES).map_err(internal)?;
            let mut items = Vec::new();
            for story in listed_stories(txn, &owner, filter.story.as_ref())? {
                for scene in scenes_of(&table, &story)? {
                    if filter.admits(&scene) {
                        items.push((scene_listing_key(&scene, ordering), scene));
                    }
                }
            }
            Ok(Page::from_sorted(items, &page))
        })
        .await
    }

    async fn edit_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        edit: SceneEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Scene> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = scene_home(txn, &id)?;
            let ((), state) = edit_plan(txn, &owner, &story, |plan| plan.edit_scene(&id, edit, expected_version, at))?;
            state.scene(&id)
        })
        .await
    }

    async fn delete_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = scene_home(txn, &id)?;
            edit_plan(txn, &owner, &story, |plan| plan.delete_scene(&id, expected_version, at)).map(|_| ())
        })
        .await
    }

    async fn reorder_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        order: u32,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Scene> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = scene_home(txn, &id)?;
            let ((), state) =
                edit_plan(txn, &owner, &story, |plan| plan.reorder_scene(&id, order, expected_version, at))?;
            state.scene(&id)
        })
        .await
    }

    async fn create_prompt(
        &self,
        owner: &UserId,
        id: PromptId,
        new: NewPrompt,
        at: DateTime<Utc>,
    ) -> Result<ScenePrompt> {
        let owner = owner.clone();
        self.write(move |txn| {
            let missing = || Error::field("scene", format!("Invalid pk \"{}\" - object does not exist.", new.scene));
            let story =
                scene_home(txn, &new.scene).map_err(|e| if matches!(e, Error::NotFound) { missing() } else { e })?;
            let (id, state) = match edit_plan(txn, &owner, &story, |plan| plan.create_prompt(id, new.clone(), at)) {
                Err(Error::NotFound) => return Err(missing()),
                other => other?,
            };
            state.prompt(&id)
        })
        .await
    }

    async fn prompt(&self, owner: &UserId, id: &PromptId) -> Result<ScenePrompt> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |txn| {
            let (story, scene) = prompt_home(&txn.open_table(PROMPT_INDEX).map_err(internal)?, &id)?;
            owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &story)?;
            load_prompt(&txn.open_table(PROMPTS).map_err(internal)?, &story, &scene, &id)
        })
        .await
    }

    async fn list_prompts(
        &self,
        owner: &UserId,
        filter: &PromptFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<ScenePrompt>> {
        let (owner, filter, page) = (owner.clone(), filter.clone(), page.clone());
        self.read(move |txn| {
            let prompts_table = txn.open_table(PROMPTS).map_err(internal)?;
            let scenes_table = txn.open_table(SCENES).map_err(internal)?;
            let mut items = Vec::new();
            for story in listed_stories(txn, &owner, filter.story.as_ref())? {
                let scenes = scenes_of(&scenes_table, &story)?;
                let prompts: Vec<ScenePrompt> = scan_prefix(&prompts_table, story.as_str())?;
                for prompt in prompts.into_iter().filter(|p| filter.admits(p)) {
                    items.push((prompt_listing_key(&prompt, &scenes, ordering), prompt));
                }
            }
            Ok(Page::from_sorted(items, &page))
        })
        .await
    }

    async fn edit_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        edit: PromptEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<ScenePrompt> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = prompt_story(txn, &id)?;
            let ((), state) = edit_plan(txn, &owner, &story, |plan| plan.edit_prompt(&id, edit, expected_version, at))?;
            state.prompt(&id)
        })
        .await
    }

    async fn delete_prompt(&self, owner: &UserId, id: &PromptId, expected_version: Option<u64>) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = prompt_story(txn, &id)?;
            edit_plan(txn, &owner, &story, |plan| plan.delete_prompt(&id, expected_version)).map(|_| ())
        })
        .await
    }

    async fn select_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<ScenePrompt> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = prompt_story(txn, &id)?;
            let ((), state) = edit_plan(txn, &owner, &story, |plan| plan.select_prompt(&id, expected_version, at))?;
            state.prompt(&id)
        })
        .await
    }

    async fn add_selected_prompts(
        &self,
        owner: &UserId,
        story: &StoryId,
        prompts: Vec<ScenePrompt>,
        at: DateTime<Utc>,
    ) -> Result<Vec<ScenePrompt>> {
        let (owner, story) = (owner.clone(), story.clone());
        self.write(move |txn| {
            let ids: Vec<PromptId> = prompts.iter().map(|p| p.id.clone()).collect();
            let ((), state) = edit_plan(txn, &owner, &story, |plan| plan.add_selected_prompts(prompts, at))?;
            ids.iter().map(|id| state.prompt(id)).collect()
        })
        .await
    }
}
