//! Scenes and prompts in the embedded store. Every write runs in one redb write transaction that
//! also reads the story and checks its lock, so an edit can never land after a lock that won.

use std::sync::Arc;

use async_trait::async_trait;
use redb::{ReadableTable, WriteTransaction};

use super::store::{
    EmbeddedStore, OWNER_STORIES, PROMPT_INDEX, PROMPTS, SCENE_INDEX, SCENES, STORIES, decode, encode, internal, key,
    owned_story, prefix_bounds, put_story, scan_prefix,
};
use crate::domain::error::{Error, Result};
use crate::domain::ids::{PromptId, SceneId, StoryId, UserId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::plan_edits::{PlanChange, PlanEdit, PlanState};
use crate::domain::prompt::ScenePrompt;
use crate::domain::scene::{Scene, sequence_scenes};
use crate::ports::{
    ChildOrdering, PlanStore, PlanTarget, PlanWork, PromptFilter, SceneFilter, StoryPlan, prompt_listing_key,
    scene_listing_key,
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
    if let (Some(record), Some(story)) = (&change.transition, &change.story) {
        super::events::record_move(txn, story, record)?;
    }
    Ok(())
}

/// Runs one edit on the plans of the stories holding `targets` (each story once), and writes
/// what it changed, all inside this transaction: the one way a plan changes on this backend.
fn edit_plans(
    txn: &WriteTransaction,
    owner: &UserId,
    targets: &[PlanTarget],
    work: &PlanWork,
) -> Result<Vec<PlanState>> {
    let mut stories: Vec<StoryId> = Vec::with_capacity(targets.len());
    for target in targets {
        let story = match target {
            PlanTarget::Story(story) => story.clone(),
            PlanTarget::Scene(scene) => scene_home(txn, scene)?,
            PlanTarget::Prompt(prompt) => prompt_story(txn, prompt)?,
        };
        if !stories.contains(&story) {
            stories.push(story);
        }
    }
    let mut edits = Vec::with_capacity(stories.len());
    for story in &stories {
        edits.push(PlanEdit::begin(load_plan(txn, owner, story)?)?);
    }
    work(&mut edits)?;
    let mut states = Vec::with_capacity(edits.len());
    for edit in edits {
        let (state, change) = edit.finish();
        apply(txn, &change)?;
        states.push(state);
    }
    Ok(states)
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
    async fn edit_plans(&self, owner: &UserId, targets: &[PlanTarget], work: Arc<PlanWork>) -> Result<Vec<PlanState>> {
        let (owner, targets) = (owner.clone(), targets.to_vec());
        self.write(move |txn| edit_plans(txn, &owner, &targets, work.as_ref())).await
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
}
