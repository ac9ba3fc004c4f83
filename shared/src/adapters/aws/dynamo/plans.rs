//! Scenes and prompts: every change is one `TransactWriteItems` conditioned on the story and its
//! plan being as read (`edit_plans`); reads are one Query per story.

use std::sync::Arc;

use super::*;
use crate::ports::{PlanTarget, PlanWork};

#[async_trait]
impl PlanStore for DynamoStore {
    async fn edit_plans(&self, owner: &UserId, targets: &[PlanTarget], work: Arc<PlanWork>) -> Result<Vec<PlanState>> {
        // Where each target lives never changes: found once, outside the retried step.
        let mut stories: Vec<StoryId> = Vec::with_capacity(targets.len());
        for target in targets {
            let story = match target {
                PlanTarget::Story(story) => story.clone(),
                PlanTarget::Scene(scene) => self.home_of(format!("SCENE#{scene}")).await?,
                PlanTarget::Prompt(prompt) => self.home_of(format!("PROMPT#{prompt}")).await?,
            };
            if !stories.contains(&story) {
                stories.push(story);
            }
        }
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let mut records = Vec::with_capacity(stories.len());
            let mut edits = Vec::with_capacity(stories.len());
            for story in &stories {
                let aggregate = self.aggregate(owner, story).await?;
                let state = PlanState {
                    story: aggregate.record.story.clone(),
                    scenes: aggregate.scenes,
                    prompts: aggregate.prompts,
                };
                edits.push(PlanEdit::begin(state)?);
                records.push(aggregate.record);
            }
            work(&mut edits)?;
            let mut items = Vec::new();
            let mut states = Vec::with_capacity(edits.len());
            for (record, edit) in records.iter().zip(edits) {
                let (state, change) = edit.finish();
                if !change.is_empty() {
                    // Conditioned on the story and its plan being as read.
                    items.extend(self.plan_items(record, &change)?);
                }
                states.push(state);
            }
            if items.is_empty() {
                return Ok(states);
            }
            if let Written::Done = self.transact(items).await? {
                return Ok(states);
            }
        }
        Err(busy())
    }

    async fn story_plan(&self, owner: &UserId, story: &StoryId) -> Result<StoryPlan> {
        let aggregate = self.aggregate(owner, story).await?;
        Ok(StoryPlan { story: aggregate.record.story, scenes: aggregate.scenes, prompts: aggregate.prompts })
    }

    async fn scene(&self, owner: &UserId, id: &SceneId) -> Result<Scene> {
        let story = self.home_of(format!("SCENE#{id}")).await?;
        let aggregate = self.aggregate(owner, &story).await?;
        aggregate.scenes.into_iter().find(|s| &s.id == id).ok_or(Error::NotFound)
    }

    async fn list_scenes(
        &self,
        owner: &UserId,
        filter: &SceneFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<Scene>> {
        let rows = |aggregate: Aggregate| -> Vec<(String, Scene)> {
            let scenes = aggregate.scenes.into_iter().filter(|s| filter.admits(s));
            scenes.map(|s| (scene_listing_key(&s, ordering), s)).collect()
        };
        let by_id = |item: Item| -> Result<Option<(String, Scene)>> {
            let scene: Scene = from_item(item)?;
            Ok(filter.admits(&scene).then(|| (scene.id.to_string(), scene)))
        };
        self.list_children(owner, filter.story.clone(), "SCENES", ordering, page, rows, by_id).await
    }

    async fn prompt(&self, owner: &UserId, id: &PromptId) -> Result<ScenePrompt> {
        let story = self.home_of(format!("PROMPT#{id}")).await?;
        let aggregate = self.aggregate(owner, &story).await?;
        aggregate.prompts.into_iter().find(|p| &p.id == id).ok_or(Error::NotFound)
    }

    async fn list_prompts(
        &self,
        owner: &UserId,
        filter: &PromptFilter,
        ordering: ChildOrdering,
        page: &PageRequest,
    ) -> Result<Page<ScenePrompt>> {
        // A scene's prompts live in its story's partition: GSI2 names the story.
        let story = match (&filter.story, &filter.scene) {
            (Some(story), _) => Some(story.clone()),
            (None, Some(scene)) => match self.home_of(format!("SCENE#{scene}")).await {
                Ok(story) => Some(story),
                Err(Error::NotFound) => return Ok(Page::from_sorted(Vec::new(), page)),
                Err(e) => return Err(e),
            },
            (None, None) => None,
        };
        let rows = |aggregate: Aggregate| -> Vec<(String, ScenePrompt)> {
            let prompts = aggregate.prompts.iter().filter(|p| filter.admits(p));
            prompts.map(|p| (prompt_listing_key(p, &aggregate.scenes, ordering), p.clone())).collect()
        };
        let by_id = |item: Item| -> Result<Option<(String, ScenePrompt)>> {
            let prompt: ScenePrompt = from_item(item)?;
            Ok(filter.admits(&prompt).then(|| (prompt.id.to_string(), prompt)))
        };
        self.list_children(owner, story, "PROMPTS", ordering, page, rows, by_id).await
    }
}

impl DynamoStore {
    /// A page of the owner's scenes or prompts (`kind` `SCENES` / `PROMPTS`): of one story, one
    /// Query of its partition (`rows` of its aggregate); of every story, in creation order one
    /// Query of GSI3 (`by_id` per item), in (story, order) order the story-by-story walk.
    #[allow(clippy::too_many_arguments)]
    async fn list_children<T>(
        &self,
        owner: &UserId,
        story: Option<StoryId>,
        kind: &str,
        ordering: ChildOrdering,
        page: &PageRequest,
        rows: impl Fn(Aggregate) -> Vec<(String, T)>,
        by_id: impl Fn(Item) -> Result<Option<(String, T)>>,
    ) -> Result<Page<T>> {
        if let Some(story) = story {
            let mut items = Vec::new();
            for aggregate in self.listed_aggregates(owner, Some(&story)).await? {
                items.extend(rows(aggregate));
            }
            return Ok(Page::from_sorted(items, page));
        }
        let scanned = match ordering {
            ChildOrdering::CreatedAt => self.children_by_id(&format!("{kind}#{owner}"), page, by_id).await?,
            ChildOrdering::Order => self.children_by_story(owner, page, rows).await?,
        };
        Ok(Page::from_scan(scanned, page))
    }

    /// The owner's scenes or prompts (`index_pk` `SCENES#<owner>` / `PROMPTS#<owner>` on GSI3) in
    /// id order from the page's position, `limit + 1` of those `keep` admits: reads in proportion
    /// to the page, not to the number of stories.
    async fn children_by_id<T>(
        &self,
        index_pk: &str,
        page: &PageRequest,
        keep: impl Fn(Item) -> Result<Option<(String, T)>>,
    ) -> Result<Vec<(String, T)>> {
        let descending = page.scan_descending();
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI3)
            .expression_attribute_names("#pk", "GSI3PK")
            .expression_attribute_values(":pk", s(index_pk))
            .scan_index_forward(!descending)
            .limit(((page.limit + 1) as i32).max(1));
        query = match &page.position {
            Some(position) => query
                .key_condition_expression(if descending {
                    "#pk = :pk AND #sk < :at"
                } else {
                    "#pk = :pk AND #sk > :at"
                })
                .expression_attribute_names("#sk", "GSI3SK")
                .expression_attribute_values(":at", s(position.as_str())),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query.clone().set_exclusive_start_key(start.take()).send().await.map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                if let Some(kept) = keep(item)? {
                    found.push(kept);
                    if found.len() > page.limit {
                        return Ok(found);
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// The owner's scenes or prompts in (story, order) order: the owner's stories are walked in id
    /// order from the page position's story, one Query each, until the page is full — reads in
    /// proportion to the page (and the stories it spans), not to all of the owner's stories.
    async fn children_by_story<T>(
        &self,
        owner: &UserId,
        page: &PageRequest,
        rows: impl Fn(Aggregate) -> Vec<(String, T)>,
    ) -> Result<Vec<(String, T)>> {
        let descending = page.scan_descending();
        // Listing keys start with the story id: `<story>.<order>.<id>`.
        let from_story = page.position.as_deref().and_then(|p| p.split('.').next()).map(str::to_owned);
        let beyond = |key: &str| match &page.position {
            None => true,
            Some(position) if descending => key < position.as_str(),
            Some(position) => key > position.as_str(),
        };
        let mut query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI1)
            .expression_attribute_names("#pk", "GSI1PK")
            .expression_attribute_values(":pk", s(format!("OWNER#{owner}")))
            .scan_index_forward(!descending)
            .limit(10);
        query = match &from_story {
            Some(story) => query
                .key_condition_expression(if descending {
                    "#pk = :pk AND #sk <= :at"
                } else {
                    "#pk = :pk AND #sk >= :at"
                })
                .expression_attribute_names("#sk", "GSI1SK")
                .expression_attribute_values(":at", s(format!("STORY#{story}"))),
            None => query.key_condition_expression("#pk = :pk"),
        };
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query.clone().set_exclusive_start_key(start.take()).send().await.map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                let story: Story = from_item(item)?;
                let aggregate = match self.aggregate(owner, &story.id).await {
                    Ok(aggregate) => aggregate,
                    // Deleted since it was listed: nothing to show.
                    Err(Error::NotFound) => continue,
                    Err(e) => return Err(e),
                };
                let mut rows: Vec<(String, T)> = rows(aggregate).into_iter().filter(|(k, _)| beyond(k)).collect();
                rows.sort_by(|a, b| if descending { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
                for row in rows {
                    found.push(row);
                    if found.len() > page.limit {
                        return Ok(found);
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// The aggregate a one-story child listing covers (none if it is not the owner's).
    async fn listed_aggregates(&self, owner: &UserId, only: Option<&StoryId>) -> Result<Vec<Aggregate>> {
        let stories: Vec<StoryId> = only.into_iter().cloned().collect();
        let mut aggregates = Vec::with_capacity(stories.len());
        for story in stories {
            match self.aggregate(owner, &story).await {
                Ok(aggregate) => aggregates.push(aggregate),
                // Another owner's story, or one deleted since it was listed: nothing to show.
                Err(Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(aggregates)
    }
}
