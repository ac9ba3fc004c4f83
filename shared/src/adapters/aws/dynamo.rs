//! The DynamoDB store: one table, every invariant a `ConditionExpression` or one
//! `TransactWriteItems`.
//!
//! | item | PK | SK | GSI1 (owner listing) | GSI2 (id lookup) |
//! |---|---|---|---|---|
//! | story | `STORY#<id>` | `STORY` | `OWNER#<owner>` / `STORY#<id>` | — |
//! | transition | `STORY#<id>` | `TRANSITION#<sequence>` | — | — |
//! | scene | `STORY#<story>` | `SCENE#<id>` | — | `SCENE#<id>` |
//! | prompt | `STORY#<story>` | `PROMPT#<scene>#<id>` | — | `PROMPT#<id>` |
//! | job | `STORY#<story>` | `JOB#<id>` | `JOBS#<owner>` / `JOB#<id>` | `JOB#<id>` |
//! | idempotency key | `IDEM#<owner>#<key>` | `IDEM` | — | — |
//!
//! One Query on `STORY#<id>` returns a story with its scenes, prompts and history. Each story item
//! carries `version` (bumped by every write of the story) and `plan_version` (bumped by every write
//! of its scenes or prompts); every write of a story or of its plan is conditioned on both being
//! what was read, so a lock, a move or an edit that raced it makes it fail and re-evaluate.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::error::{Error, Result};
use crate::domain::ids::{JobId, PromptId, SceneId, StoryId, UserId};
use crate::domain::job::{Job, JobRefusal};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::plan_edits::{PlanChange, PlanEdit, PlanState};
use crate::domain::prompt::{NewPrompt, PromptEdit, ScenePrompt};
use crate::domain::scene::{NewScene, Scene, SceneEdit, plan_gaps, sequence_scenes};
use crate::domain::state_machine::{StoryStatus, move_rule};
use crate::domain::statistics::StoryStatistics;
use crate::domain::story::{Story, StoryEdit};
use crate::domain::transition::StoryStateTransition;
use crate::ports::{
    BulkPlan, ChildOrdering, Committed, IdempotencyClaim, IdempotencyStore, JobFilter, JobStore, MoveRequest,
    PlanStore, PromptFilter, RenderBuilder, SceneFilter, StoredResponse, StoryEffect, StoryFilter, StoryPlan,
    StoryStore, prompt_listing_key, scene_listing_key,
};

/// Name of the owner index.
pub const GSI1: &str = "GSI1";
/// Name of the id index.
pub const GSI2: &str = "GSI2";
/// How often a write that lost a race is re-evaluated before the client is told to retry. Each
/// lost race means another write won, so progress is guaranteed; the jittered pause between
/// attempts keeps a crowd of writers on one story from colliding in lockstep.
const ATTEMPTS: usize = 40;

/// A short random pause before attempt `attempt` (0-based) of a write that lost a race.
async fn back_off(attempt: usize) {
    if attempt == 0 {
        return;
    }
    let mut byte = [0u8; 1];
    let jitter = getrandom::fill(&mut byte).map(|()| u64::from(byte[0])).unwrap_or(128);
    let ceiling = (attempt as u64 * 4).min(40);
    tokio::time::sleep(std::time::Duration::from_millis(1 + jitter * ceiling / 255)).await;
}
/// DynamoDB's limit on items in one transaction.
const MAX_TRANSACTION_ITEMS: usize = 100;
/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_TTL_HOURS: i64 = 24;
/// How long an unfinished claim blocks its key.
const IDEMPOTENCY_CLAIM_LEASE_SECONDS: i64 = 120;

fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("dynamodb: {e}"))
}

/// A DynamoDB call's failure, its SDK error kept as the cause: throttling and unavailability
/// answer 503 with `Retry-After`, anything else 500.
fn sdk<E, R>(e: SdkError<E, R>) -> Error
where
    E: aws_smithy_types::error::metadata::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::aws_error("dynamodb", e)
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

type Item = HashMap<String, AttributeValue>;

fn to_item<T: Serialize>(value: &T) -> Result<Item> {
    serde_dynamo::to_item(value).map_err(internal)
}

fn from_item<T: DeserializeOwned>(item: Item) -> Result<T> {
    serde_dynamo::from_item(item).map_err(internal)
}

fn story_pk(id: &StoryId) -> String {
    format!("STORY#{id}")
}

fn text_of<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn number_of(item: &Item, name: &str) -> u64 {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok()).unwrap_or(0)
}

/// A story as stored, with the counter of its plan's writes.
#[derive(Debug, Clone)]
struct StoryRecord {
    story: Story,
    plan_version: u64,
}

impl StoryRecord {
    fn from_item(item: Item) -> Result<Self> {
        let plan_version = number_of(&item, "plan_version");
        Ok(Self { story: from_item(item)?, plan_version })
    }
}

fn story_item(story: &Story, plan_version: u64) -> Result<Item> {
    let mut item = to_item(story)?;
    item.insert("PK".into(), s(story_pk(&story.id)));
    item.insert("SK".into(), s("STORY"));
    item.insert("GSI1PK".into(), s(format!("OWNER#{}", story.owner)));
    item.insert("GSI1SK".into(), s(format!("STORY#{}", story.id)));
    item.insert("plan_version".into(), n(plan_version));
    Ok(item)
}

fn scene_item(scene: &Scene) -> Result<Item> {
    let mut item = to_item(scene)?;
    item.insert("PK".into(), s(story_pk(&scene.story)));
    item.insert("SK".into(), s(format!("SCENE#{}", scene.id)));
    item.insert("GSI2PK".into(), s(format!("SCENE#{}", scene.id)));
    Ok(item)
}

fn prompt_sk(prompt: &ScenePrompt) -> String {
    format!("PROMPT#{}#{}", prompt.scene, prompt.id)
}

fn prompt_item(prompt: &ScenePrompt) -> Result<Item> {
    let mut item = to_item(prompt)?;
    item.insert("PK".into(), s(story_pk(&prompt.story)));
    item.insert("SK".into(), s(prompt_sk(prompt)));
    item.insert("GSI2PK".into(), s(format!("PROMPT#{}", prompt.id)));
    Ok(item)
}

fn transition_item(record: &StoryStateTransition) -> Result<Item> {
    let mut item = to_item(record)?;
    item.insert("PK".into(), s(story_pk(&record.story)));
    item.insert("SK".into(), s(format!("TRANSITION#{:020}", record.sequence)));
    Ok(item)
}

fn key(pk: String, sk: String) -> Item {
    HashMap::from([("PK".to_owned(), s(pk)), ("SK".to_owned(), s(sk))])
}

/// The condition every write of a story item carries: nobody wrote the story or its plan since.
fn unchanged_since(record: &StoryRecord) -> (String, HashMap<String, String>, HashMap<String, AttributeValue>) {
    (
        "#version = :version AND #plan_version = :plan_version".to_owned(),
        HashMap::from([
            ("#version".to_owned(), "version".to_owned()),
            ("#plan_version".to_owned(), "plan_version".to_owned()),
        ]),
        HashMap::from([
            (":version".to_owned(), n(record.story.version)),
            (":plan_version".to_owned(), n(record.plan_version)),
        ]),
    )
}

/// How a conditional write ended.
enum Written {
    Done,
    /// A condition failed: someone else wrote first. Carries the story item as it was then, when
    /// DynamoDB returned it (`ReturnValuesOnConditionCheckFailure`), so the next decision needs no
    /// second read.
    Raced(Option<Box<StoryRecord>>),
}

/// Everything a story's partition holds.
struct Aggregate {
    record: StoryRecord,
    scenes: Vec<Scene>,
    prompts: Vec<ScenePrompt>,
    /// Sort keys of the other items (transitions), for deletes.
    other_keys: Vec<String>,
}

/// The DynamoDB adapter for the store ports.
#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish()
    }
}

impl DynamoStore {
    /// A store on `table` (created by `create_table` or the SAM template).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into() }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    async fn get_story(&self, id: &StoryId) -> Result<Option<StoryRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(story_pk(id), "STORY".into())))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        out.item.map(StoryRecord::from_item).transpose()
    }

    /// The story of `owner` (another owner's story is "not found").
    async fn owned(&self, owner: &UserId, id: &StoryId) -> Result<StoryRecord> {
        match self.get_story(id).await? {
            Some(record) if &record.story.owner == owner => Ok(record),
            _ => Err(Error::NotFound),
        }
    }

    /// One consistent Query of the story's partition: the story, its scenes, prompts and history.
    async fn aggregate(&self, owner: &UserId, id: &StoryId) -> Result<Aggregate> {
        let mut record = None;
        let mut scenes = Vec::new();
        let mut prompts = Vec::new();
        let mut other_keys = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk")
                .expression_attribute_values(":pk", s(story_pk(id)))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                let sk = text_of(&item, "SK").unwrap_or_default().to_owned();
                if sk == "STORY" {
                    record = Some(StoryRecord::from_item(item)?);
                } else if sk.starts_with("SCENE#") {
                    scenes.push(from_item(item)?);
                } else if sk.starts_with("PROMPT#") {
                    prompts.push(from_item(item)?);
                } else {
                    other_keys.push(sk);
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => break,
            }
        }
        let record = record.filter(|r| &r.story.owner == owner).ok_or(Error::NotFound)?;
        sequence_scenes(&mut scenes);
        Ok(Aggregate { record, scenes, prompts, other_keys })
    }

    /// The story id an item found through GSI2 (`SCENE#<id>` or `PROMPT#<id>`) belongs to.
    async fn home_of(&self, gsi2pk: String) -> Result<StoryId> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI2)
            .key_condition_expression("GSI2PK = :id")
            .expression_attribute_values(":id", s(gsi2pk))
            .limit(1)
            .send()
            .await
            .map_err(sdk)?;
        let item = out.items.unwrap_or_default().into_iter().next().ok_or(Error::NotFound)?;
        text_of(&item, "story").and_then(StoryId::parse).ok_or(Error::NotFound)
    }

    fn put_story_item(&self, record: &StoryRecord, next: &Story, plan_version: u64) -> Result<TransactWriteItem> {
        let (condition, names, values) = unchanged_since(record);
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(story_item(next, plan_version)?))
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn put_new(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .build()
            .map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn put_plain(&self, item: Item) -> Result<TransactWriteItem> {
        let put = Put::builder().table_name(&self.table).set_item(Some(item)).build().map_err(internal)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_plain(&self, pk: String, sk: String) -> Result<TransactWriteItem> {
        let delete = Delete::builder().table_name(&self.table).set_key(Some(key(pk, sk))).build().map_err(internal)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Runs one transaction; a failed condition is a lost race, not an error.
    async fn transact(&self, items: Vec<TransactWriteItem>) -> Result<Written> {
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(Error::Conflict {
                detail: format!(
                    "This change touches {} items, more than one atomic write can hold ({MAX_TRANSACTION_ITEMS}); delete some prompts first.",
                    items.len()
                ),
                current_status: None,
            });
        }
        match self.client.transact_write_items().set_transact_items(Some(items)).send().await {
            Ok(_) => Ok(Written::Done),
            Err(e) => {
                if let Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) =
                    e.as_service_error()
                {
                    let reasons = c.cancellation_reasons();
                    let raced = reasons
                        .iter()
                        .any(|r| matches!(r.code(), Some("ConditionalCheckFailed") | Some("TransactionConflict")));
                    if raced {
                        // The story item always comes first; its old value, when returned, is the current one.
                        let old = reasons
                            .first()
                            .filter(|r| r.code() == Some("ConditionalCheckFailed"))
                            .and_then(|r| r.item())
                            .filter(|item| text_of(item, "SK") == Some("STORY"))
                            .and_then(|item| StoryRecord::from_item(item.clone()).ok())
                            .map(Box::new);
                        return Ok(Written::Raced(old));
                    }
                    if reasons.iter().any(|r| r.code().is_some_and(super::is_transient_code)) {
                        // Cancelled because an item was throttled: busy, not broken.
                        return Err(Error::unavailable(
                            super::errors::RETRY_AFTER_SECONDS,
                            "dynamodb: TransactWriteItems (an item was throttled)",
                            e,
                        ));
                    }
                }
                Err(sdk(e))
            }
        }
    }

    /// Writes a new version of a story (and, for moves, its history record) if nobody wrote the
    /// story or its plan since `record` was read.
    async fn write_story(
        &self,
        record: &StoryRecord,
        next: &Story,
        history: Option<&StoryStateTransition>,
    ) -> Result<Written> {
        let mut items = vec![self.put_story_item(record, next, record.plan_version)?];
        if let Some(h) = history {
            items.push(self.put_new(transition_item(h)?)?);
        }
        if items.len() == 1 {
            // A single conditional Put is cheaper than a one-item transaction.
            let (condition, names, values) = unchanged_since(record);
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(story_item(next, record.plan_version)?))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            return match result {
                Ok(_) => Ok(Written::Done),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        let old = c
                            .item()
                            .filter(|item| !item.is_empty())
                            .and_then(|item| StoryRecord::from_item(item.clone()).ok())
                            .map(Box::new);
                        Ok(Written::Raced(old))
                    }
                    _ => Err(sdk(e)),
                },
            };
        }
        self.transact(items).await
    }

    /// Applies one plan edit to `owner`'s story atomically: loads the aggregate, runs the pure
    /// edit, and writes the change conditioned on the story and its plan being as read.
    async fn edit_plan<T>(
        &self,
        owner: &UserId,
        story: &StoryId,
        mut work: impl FnMut(&mut PlanEdit) -> Result<T>,
    ) -> Result<(T, PlanState)> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let aggregate = self.aggregate(owner, story).await?;
            let state = PlanState {
                story: aggregate.record.story.clone(),
                scenes: aggregate.scenes,
                prompts: aggregate.prompts,
            };
            let mut edit = PlanEdit::begin(state)?;
            let out = work(&mut edit)?;
            let (state, change) = edit.finish();
            if change.is_empty() {
                return Ok((out, state));
            }
            let items = self.plan_items(&aggregate.record, &change)?;
            match self.transact(items).await? {
                Written::Done => return Ok((out, state)),
                Written::Raced(_) => continue,
            }
        }
        Err(busy())
    }

    fn plan_items(&self, record: &StoryRecord, change: &PlanChange) -> Result<Vec<TransactWriteItem>> {
        let mut items = Vec::with_capacity(change.len() + 1);
        let next_plan_version = record.plan_version + 1;
        match &change.story {
            Some(next) => items.push(self.put_story_item(record, next, next_plan_version)?),
            None => {
                let (condition, mut names, mut values) = unchanged_since(record);
                names.insert("#plan_version".into(), "plan_version".into());
                values.insert(":next_plan_version".into(), n(next_plan_version));
                let update = Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(story_pk(&record.story.id), "STORY".into())))
                    .update_expression("SET #plan_version = :next_plan_version")
                    .condition_expression(condition)
                    .set_expression_attribute_names(Some(names))
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(internal)?;
                items.push(TransactWriteItem::builder().update(update).build());
            }
        }
        if let Some(record) = &change.transition {
            items.push(self.put_new(transition_item(record)?)?);
        }
        for prompt in &change.delete_prompts {
            items.push(self.delete_plain(story_pk(&prompt.story), prompt_sk(prompt))?);
        }
        for scene in &change.delete_scenes {
            items.push(self.delete_plain(story_pk(&scene.story), format!("SCENE#{}", scene.id))?);
        }
        for scene in &change.put_scenes {
            items.push(self.put_plain(scene_item(scene)?)?);
        }
        for prompt in &change.put_prompts {
            items.push(self.put_plain(prompt_item(prompt)?)?);
        }
        Ok(items)
    }

    /// Every story item of `owner`, page by page (for listings and figures).
    async fn owner_stories(
        &self,
        owner: &UserId,
        page: Option<&PageRequest>,
        filter: &StoryFilter,
    ) -> Result<(Vec<(String, Story)>, bool)> {
        let mut found = Vec::new();
        let mut start: Option<Item> = page.and_then(|p| p.position.as_ref()).map(|position| {
            HashMap::from([
                ("PK".to_owned(), s(format!("STORY#{position}"))),
                ("SK".to_owned(), s("STORY")),
                ("GSI1PK".to_owned(), s(format!("OWNER#{owner}"))),
                ("GSI1SK".to_owned(), s(format!("STORY#{position}"))),
            ])
        });
        let want = page.map(|p| p.limit + 1);
        loop {
            let mut query = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(GSI1)
                .key_condition_expression("GSI1PK = :owner")
                .expression_attribute_values(":owner", s(format!("OWNER#{owner}")))
                .set_exclusive_start_key(start.take());
            if let Some(p) = page {
                query = query.scan_index_forward(!p.scan_descending()).limit(((p.limit + 1) as i32).max(1));
            }
            let out = query.send().await.map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                let story: Story = from_item(item)?;
                if filter.admits(&story) {
                    found.push((story.id.to_string(), story));
                    if want.is_some_and(|w| found.len() >= w) {
                        return Ok((found, true));
                    }
                }
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok((found, false)),
            }
        }
    }
}

fn busy() -> Error {
    Error::Conflict {
        detail: "The story is being changed by other requests right now; try again.".into(),
        current_status: None,
    }
}

#[async_trait]
impl StoryStore for DynamoStore {
    async fn create_story(&self, story: &Story) -> Result<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(story_item(story, 0)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e)
                if matches!(
                    e.as_service_error(),
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_))
                ) =>
            {
                Err(Error::Conflict { detail: "A story with this id exists.".into(), current_status: None })
            }
            Err(e) => Err(sdk(e)),
        }
    }

    async fn story(&self, owner: &UserId, id: &StoryId) -> Result<Story> {
        Ok(self.owned(owner, id).await?.story)
    }

    async fn list_stories(&self, owner: &UserId, filter: &StoryFilter, page: &PageRequest) -> Result<Page<Story>> {
        let (found, _) = self.owner_stories(owner, Some(page), filter).await?;
        Ok(Page::from_scan(found, page))
    }

    async fn edit_story(
        &self,
        owner: &UserId,
        id: &StoryId,
        edit: StoryEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story> {
        let mut known: Option<StoryRecord> = None;
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let record = match known.take() {
                Some(record) if &record.story.owner == owner => record,
                Some(_) => return Err(Error::NotFound),
                None => self.owned(owner, id).await?,
            };
            record.story.check_version(expected_version)?;
            let next = record.story.edited(edit.clone(), at)?;
            match self.write_story(&record, &next, None).await? {
                Written::Done => return Ok(next),
                Written::Raced(old) => known = old.map(|b| *b),
            }
        }
        Err(busy())
    }

    async fn delete_story(&self, owner: &UserId, id: &StoryId, expected_version: Option<u64>) -> Result<()> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let aggregate = self.aggregate(owner, id).await?;
            let story = &aggregate.record.story;
            story.check_version(expected_version)?;
            story.ensure_deletable()?;
            let (condition, names, values) = unchanged_since(&aggregate.record);
            let delete = Delete::builder()
                .table_name(&self.table)
                .set_key(Some(key(story_pk(id), "STORY".into())))
                .condition_expression(condition)
                .set_expression_attribute_names(Some(names))
                .set_expression_attribute_values(Some(values))
                .build()
                .map_err(internal)?;
            let mut children: Vec<String> = aggregate.scenes.iter().map(|s| format!("SCENE#{}", s.id)).collect();
            children.extend(aggregate.prompts.iter().map(prompt_sk));
            children.extend(aggregate.other_keys.iter().cloned());
            // The story goes in the first transaction, so once it commits nobody can reach the
            // rest; what does not fit is swept right after (unreachable, then gone).
            let first = children.len().min(MAX_TRANSACTION_ITEMS - 1);
            let mut items = vec![TransactWriteItem::builder().delete(delete).build()];
            for sk in &children[..first] {
                items.push(self.delete_plain(story_pk(id), sk.clone())?);
            }
            match self.transact(items).await? {
                Written::Raced(_) => continue,
                Written::Done => {
                    for chunk in children[first..].chunks(MAX_TRANSACTION_ITEMS) {
                        let items = chunk
                            .iter()
                            .map(|sk| self.delete_plain(story_pk(id), sk.clone()))
                            .collect::<Result<Vec<_>>>()?;
                        if let Written::Raced(_) = self.transact(items).await? {
                            tracing::warn!(story = %id, "leftover items of a deleted story changed while being swept");
                        }
                    }
                    return Ok(());
                }
            }
        }
        Err(busy())
    }

    async fn move_story(&self, request: MoveRequest) -> Result<Story> {
        let needs_plan =
            |record: &StoryRecord| move_rule(record.story.status, request.to).is_some_and(|r| r.requires_complete_plan);
        let mut known: Option<StoryRecord> = None;
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            // A move that needs the plan reads the story and its plan in one Query; others one GetItem.
            let (record, gaps) = if request.to == crate::domain::state_machine::StoryStatus::Planned {
                let aggregate = self.aggregate(&request.owner, &request.story).await?;
                let gaps = if needs_plan(&aggregate.record) {
                    plan_gaps(&aggregate.record.story, &aggregate.scenes, &aggregate.prompts)
                } else {
                    Vec::new()
                };
                (aggregate.record, gaps)
            } else {
                let record = match known.take() {
                    Some(record) if record.story.owner == request.owner => record,
                    Some(_) => return Err(Error::NotFound),
                    None => self.owned(&request.owner, &request.story).await?,
                };
                (record, Vec::new())
            };
            record.story.check_version(request.expected_version)?;
            let (next, history) = record.story.moved(
                request.to,
                request.mover,
                request.actor.clone(),
                request.reason.clone(),
                || gaps,
                request.at,
            )?;
            match self.write_story(&record, &next, Some(&history)).await? {
                Written::Done => return Ok(next),
                // The loser of a race decides again on the story as the winner left it.
                Written::Raced(old) => known = old.map(|b| *b),
            }
        }
        Err(busy())
    }

    /// One conditional UpdateItem: the lock changes only if the story is the owner's, in a status
    /// that allows it, not already so (and at the `If-Match` version). When the condition fails, the
    /// old item comes back with the failure and says why, so no second read is needed.
    async fn set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            match self.try_set_lock(owner, id, locked, expected_version, at).await? {
                Some(story) => return Ok(story),
                None => continue,
            }
        }
        Err(busy())
    }

    async fn transitions(
        &self,
        owner: &UserId,
        id: &StoryId,
        page: &PageRequest,
    ) -> Result<Page<StoryStateTransition>> {
        self.owned(owner, id).await?;
        let start = page.position.as_ref().map(|p| key(story_pk(id), format!("TRANSITION#{p}")));
        let mut found = Vec::new();
        let mut start = start;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("PK = :pk AND begins_with(SK, :t)")
                .expression_attribute_values(":pk", s(story_pk(id)))
                .expression_attribute_values(":t", s("TRANSITION#"))
                .scan_index_forward(!page.scan_descending())
                .limit((page.limit + 1) as i32)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                let record: StoryStateTransition = from_item(item)?;
                found.push((format!("{:020}", record.sequence), record));
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() && found.len() <= page.limit => start = Some(k),
                _ => break,
            }
        }
        found.truncate(page.limit + 1);
        Ok(Page::from_scan(found, page))
    }

    async fn story_statistics(&self, owner: &UserId) -> Result<StoryStatistics> {
        let (all, _) = self.owner_stories(owner, None, &StoryFilter::default()).await?;
        Ok(StoryStatistics::from_stories(all.iter().map(|(_, s)| s)))
    }
}

#[async_trait]
impl PlanStore for DynamoStore {
    async fn write_bulk_plan(&self, plan: BulkPlan) -> Result<StoryPlan> {
        let ((), state) = self
            .edit_plan(&plan.owner, &plan.story, |edit| {
                edit.replace_plan(
                    plan.planned_from_version,
                    plan.replace,
                    plan.scenes.clone(),
                    plan.prompts.clone(),
                    plan.actor.clone(),
                    plan.at,
                )
            })
            .await?;
        Ok(StoryPlan { story: state.story, scenes: state.scenes, prompts: state.prompts })
    }

    async fn story_plan(&self, owner: &UserId, story: &StoryId) -> Result<StoryPlan> {
        let aggregate = self.aggregate(owner, story).await?;
        Ok(StoryPlan { story: aggregate.record.story, scenes: aggregate.scenes, prompts: aggregate.prompts })
    }

    async fn create_scenes(
        &self,
        owner: &UserId,
        scenes: Vec<(SceneId, NewScene)>,
        at: DateTime<Utc>,
    ) -> Result<Vec<Scene>> {
        let many = scenes.len() > 1;
        let position = |i: usize| many.then_some(i);
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let mut edits: Vec<(StoryRecord, PlanEdit)> = Vec::new();
            let mut created = Vec::new();
            for (i, (id, new)) in scenes.iter().cloned().enumerate() {
                let slot = match edits.iter().position(|(r, _)| r.story.id == new.story) {
                    Some(slot) => slot,
                    None => {
                        let aggregate = self.aggregate(owner, &new.story).await.map_err(|e| match e {
                            Error::NotFound => {
                                Error::field("story", format!("Invalid pk \"{}\" - object does not exist.", new.story))
                                    .at_position(position(i))
                            }
                            other => other,
                        })?;
                        let state = PlanState {
                            story: aggregate.record.story.clone(),
                            scenes: aggregate.scenes,
                            prompts: aggregate.prompts,
                        };
                        edits.push((aggregate.record, PlanEdit::begin(state)?));
                        edits.len() - 1
                    }
                };
                created.push(edits[slot].1.create_scene(id, new, at).map_err(|e| e.at_position(position(i)))?);
            }
            let mut items = Vec::new();
            let mut states = Vec::new();
            for (record, edit) in edits {
                let (state, change) = edit.finish();
                items.extend(self.plan_items(&record, &change)?);
                states.push(state);
            }
            if let Written::Done = self.transact(items).await? {
                return created
                    .iter()
                    .map(|id| {
                        states
                            .iter()
                            .find_map(|s| s.scenes.iter().find(|x| &x.id == id))
                            .cloned()
                            .ok_or(Error::NotFound)
                    })
                    .collect();
            }
        }
        Err(busy())
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
        let mut items = Vec::new();
        for aggregate in self.listed_aggregates(owner, filter.story.as_ref()).await? {
            for scene in aggregate.scenes.into_iter().filter(|s| filter.admits(s)) {
                items.push((scene_listing_key(&scene, ordering), scene));
            }
        }
        Ok(Page::from_sorted(items, page))
    }

    async fn edit_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        edit: SceneEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Scene> {
        let story = self.home_of(format!("SCENE#{id}")).await?;
        let ((), state) =
            self.edit_plan(owner, &story, |plan| plan.edit_scene(id, edit.clone(), expected_version, at)).await?;
        state.scene(id)
    }

    async fn delete_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let story = self.home_of(format!("SCENE#{id}")).await?;
        self.edit_plan(owner, &story, |plan| plan.delete_scene(id, expected_version, at)).await.map(|_| ())
    }

    async fn reorder_scene(
        &self,
        owner: &UserId,
        id: &SceneId,
        order: u32,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Scene> {
        let story = self.home_of(format!("SCENE#{id}")).await?;
        let ((), state) =
            self.edit_plan(owner, &story, |plan| plan.reorder_scene(id, order, expected_version, at)).await?;
        state.scene(id)
    }

    async fn create_prompt(
        &self,
        owner: &UserId,
        id: PromptId,
        new: NewPrompt,
        at: DateTime<Utc>,
    ) -> Result<ScenePrompt> {
        let missing = || Error::field("scene", format!("Invalid pk \"{}\" - object does not exist.", new.scene));
        let story = self
            .home_of(format!("SCENE#{}", new.scene))
            .await
            .map_err(|e| if matches!(e, Error::NotFound) { missing() } else { e })?;
        let result = self.edit_plan(owner, &story, |plan| plan.create_prompt(id.clone(), new.clone(), at)).await;
        let (id, state) = match result {
            Err(Error::NotFound) => return Err(missing()),
            other => other?,
        };
        state.prompt(&id)
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
        let mut items = Vec::new();
        for aggregate in self.listed_aggregates(owner, filter.story.as_ref()).await? {
            for prompt in aggregate.prompts.iter().filter(|p| filter.admits(p)) {
                items.push((prompt_listing_key(prompt, &aggregate.scenes, ordering), prompt.clone()));
            }
        }
        Ok(Page::from_sorted(items, page))
    }

    async fn edit_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        edit: PromptEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<ScenePrompt> {
        let story = self.home_of(format!("PROMPT#{id}")).await?;
        let ((), state) =
            self.edit_plan(owner, &story, |plan| plan.edit_prompt(id, edit.clone(), expected_version, at)).await?;
        state.prompt(id)
    }

    async fn delete_prompt(&self, owner: &UserId, id: &PromptId, expected_version: Option<u64>) -> Result<()> {
        let story = self.home_of(format!("PROMPT#{id}")).await?;
        self.edit_plan(owner, &story, |plan| plan.delete_prompt(id, expected_version)).await.map(|_| ())
    }

    async fn select_prompt(
        &self,
        owner: &UserId,
        id: &PromptId,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<ScenePrompt> {
        let story = self.home_of(format!("PROMPT#{id}")).await?;
        let ((), state) = self.edit_plan(owner, &story, |plan| plan.select_prompt(id, expected_version, at)).await?;
        state.prompt(id)
    }

    async fn add_selected_prompts(
        &self,
        owner: &UserId,
        story: &StoryId,
        prompts: Vec<ScenePrompt>,
        at: DateTime<Utc>,
    ) -> Result<Vec<ScenePrompt>> {
        let ids: Vec<PromptId> = prompts.iter().map(|p| p.id.clone()).collect();
        let ((), state) = self.edit_plan(owner, story, |plan| plan.add_selected_prompts(prompts.clone(), at)).await?;
        ids.iter().map(|id| state.prompt(id)).collect()
    }
}

impl DynamoStore {
    /// The aggregates a child listing covers: one story (if it is the owner's) or all of theirs.
    async fn listed_aggregates(&self, owner: &UserId, only: Option<&StoryId>) -> Result<Vec<Aggregate>> {
        let stories = match only {
            Some(story) => vec![story.clone()],
            None => self
                .owner_stories(owner, None, &StoryFilter::default())
                .await?
                .0
                .into_iter()
                .map(|(_, s)| s.id)
                .collect(),
        };
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

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        owner: &UserId,
        key_text: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyClaim> {
        let pk = format!("IDEM#{owner}#{key_text}");
        let expired = (now - ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp();
        let abandoned = (now - ChronoDuration::seconds(IDEMPOTENCY_CLAIM_LEASE_SECONDS)).timestamp();
        let item = HashMap::from([
            ("PK".to_owned(), s(pk.clone())),
            ("SK".to_owned(), s("IDEM")),
            ("fingerprint".to_owned(), s(fingerprint)),
            ("claimed_at".to_owned(), AttributeValue::N(now.timestamp().to_string())),
            (
                "expires_at".to_owned(),
                AttributeValue::N((now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp().to_string()),
            ),
        ]);
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression(
                "attribute_not_exists(PK) OR claimed_at < :expired OR (attribute_not_exists(#response) AND claimed_at < :abandoned)",
            )
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":expired", AttributeValue::N(expired.to_string()))
            .expression_attribute_values(":abandoned", AttributeValue::N(abandoned.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(IdempotencyClaim::Fresh),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    let old = c.item().cloned().unwrap_or_default();
                    if text_of(&old, "fingerprint") != Some(fingerprint) {
                        return Ok(IdempotencyClaim::Mismatch);
                    }
                    match text_of(&old, "response") {
                        Some(stored) => Ok(IdempotencyClaim::Replay(serde_json::from_str(stored).map_err(internal)?)),
                        None => Ok(IdempotencyClaim::InProgress),
                    }
                }
                _ => Err(sdk(e)),
            },
        }
    }

    async fn complete(
        &self,
        owner: &UserId,
        key_text: &str,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let stored = serde_json::to_string(response).map_err(internal)?;
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("IDEM#{owner}#{key_text}"), "IDEM".into())))
            .update_expression("SET #response = :r, claimed_at = :now, expires_at = :ttl")
            .condition_expression("attribute_exists(PK)")
            .expression_attribute_names("#response", "response")
            .expression_attribute_values(":r", s(stored))
            .expression_attribute_values(":now", AttributeValue::N(now.timestamp().to_string()))
            .expression_attribute_values(
                ":ttl",
                AttributeValue::N((now + ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS)).timestamp().to_string()),
            )
            .send()
            .await
            .map(|_| ())
            .or_else(|e| match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(_)) => {
                    Ok(())
                }
                _ => Err(sdk(e)),
            })
    }

    async fn release(&self, owner: &UserId, key_text: &str) -> Result<()> {
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("IDEM#{owner}#{key_text}"), "IDEM".into())))
            .send()
            .await
            .map(|_| ())
            .map_err(sdk)
    }
}

impl DynamoStore {
    /// One attempt of `set_lock`; `None` when it lost a race and should be decided again.
    async fn try_set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Option<Story>> {
        let now = serde_json::to_value(at).map_err(internal)?.as_str().unwrap_or_default().to_owned();
        let (statuses, status_values) = lock_change_statuses();
        let mut condition = format!("#owner = :owner AND #status IN ({statuses}) AND #is_locked = :was");
        if expected_version.is_some() {
            condition.push_str(" AND #version = :expected");
        }
        let update = if locked {
            "SET #is_locked = :locked, #locked_at = :now, #updated_at = :now, #version = #version + :one"
        } else {
            "SET #is_locked = :locked, #updated_at = :now, #version = #version + :one REMOVE #locked_at"
        };
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(story_pk(id), "STORY".into())))
            .update_expression(update)
            .condition_expression(condition)
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#is_locked", "is_locked")
            .expression_attribute_names("#locked_at", "locked_at")
            .expression_attribute_names("#updated_at", "updated_at")
            .expression_attribute_names("#version", "version")
            .expression_attribute_values(":owner", s(owner.as_str()))
            .expression_attribute_values(":was", AttributeValue::Bool(!locked))
            .expression_attribute_values(":locked", AttributeValue::Bool(locked))
            .expression_attribute_values(":now", s(now))
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some(v) = expected_version {
            request = request.expression_attribute_values(":expected", n(v));
        }
        for (name, value) in status_values {
            request = request.expression_attribute_values(name, value);
        }
        match request.send().await {
            Ok(out) => Ok(Some(StoryRecord::from_item(out.attributes.unwrap_or_default())?.story)),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    // The old item tells which rule refused; the same domain rules decide the answer.
                    let old = match c.item() {
                        Some(item) if !item.is_empty() => StoryRecord::from_item(item.clone())?.story,
                        _ => return Err(Error::NotFound),
                    };
                    if &old.owner != owner {
                        return Err(Error::NotFound);
                    }
                    old.check_version(expected_version)?;
                    match old.with_lock(locked, at)? {
                        // Already so: nothing to write; answer with the story as it is.
                        None => Ok(Some(old)),
                        // The rules allow it, so the story changed in between: decide again.
                        Some(_) => Ok(None),
                    }
                }
                _ => Err(sdk(e)),
            },
        }
    }
}

/// The statuses in which `lock`/`unlock` may write, as a condition's `IN (…)` list and its values:
/// derived from the domain's rule (`allows_lock_changes`), never written out a second time.
fn lock_change_statuses() -> (String, Item) {
    let allowed: Vec<StoryStatus> = StoryStatus::ALL.into_iter().filter(|s| s.allows_lock_changes()).collect();
    let names: Vec<String> = (0..allowed.len()).map(|i| format!(":lockable{i}")).collect();
    let values = names.iter().zip(&allowed).map(|(name, status)| (name.clone(), s(status.as_str()))).collect();
    (names.join(", "), values)
}

fn job_key(story: &StoryId, id: &JobId) -> Item {
    key(story_pk(story), format!("JOB#{id}"))
}

/// A job lives in its story's partition (so a story's Query and delete reach it), is listed per
/// owner on GSI1 under `JOBS#<owner>` (apart from the owner's stories) and found by id on GSI2.
fn job_item(job: &Job) -> Result<Item> {
    let mut item = to_item(job)?;
    item.insert("PK".into(), s(story_pk(&job.story)));
    item.insert("SK".into(), s(format!("JOB#{}", job.id)));
    item.insert("GSI1PK".into(), s(format!("JOBS#{}", job.owner)));
    item.insert("GSI1SK".into(), s(format!("JOB#{}", job.id)));
    item.insert("GSI2PK".into(), s(format!("JOB#{}", job.id)));
    Ok(item)
}

impl DynamoStore {
    /// A Put of `job`: new (`version` 1, must not exist) or conditioned on the version before.
    fn job_put(&self, job: &Job) -> Result<TransactWriteItem> {
        let mut put = Put::builder().table_name(&self.table).set_item(Some(job_item(job)?));
        put = if job.version <= 1 {
            put.condition_expression("attribute_not_exists(PK)")
        } else {
            put.condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(job.version - 1))
        };
        Ok(TransactWriteItem::builder().put(put.build().map_err(internal)?).build())
    }

    /// Every job item of one story (`SK` starting with `JOB#`), or of one owner on GSI1.
    async fn query_jobs(&self, story: Option<&StoryId>, owner: Option<&UserId>) -> Result<Vec<Job>> {
        let mut jobs = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut query = self.client.query().table_name(&self.table).set_exclusive_start_key(start.take());
            query = match (story, owner) {
                (Some(story), _) => query
                    .key_condition_expression("PK = :pk AND begins_with(SK, :job)")
                    .expression_attribute_values(":pk", s(story_pk(story)))
                    .expression_attribute_values(":job", s("JOB#"))
                    .consistent_read(true),
                (None, Some(owner)) => query
                    .index_name(GSI1)
                    .key_condition_expression("GSI1PK = :owner")
                    .expression_attribute_values(":owner", s(format!("JOBS#{owner}"))),
                (None, None) => return Ok(jobs),
            };
            let out = query.send().await.map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                jobs.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(jobs),
            }
        }
    }
}

#[async_trait]
impl JobStore for DynamoStore {
    async fn create_job(&self, job: &Job) -> Result<()> {
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(job_item(job)?))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::Conflict { detail: "A job with this id exists.".into(), current_status: None })
                }
                _ => Err(sdk(e)),
            },
        }
    }

    async fn story_job(&self, story: &StoryId, id: &JobId) -> Result<Job> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(job_key(story, id)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        from_item(out.item.ok_or(Error::NotFound)?)
    }

    async fn story_jobs(&self, story: &StoryId) -> Result<Vec<Job>> {
        self.query_jobs(Some(story), None).await
    }

    /// GSI2 finds the job's story, then one consistent GetItem reads it (the index is eventually
    /// consistent; the item is not).
    async fn job(&self, owner: &UserId, id: &JobId) -> Result<Job> {
        let story = self.home_of(format!("JOB#{id}")).await?;
        let job = self.story_job(&story, id).await?;
        if &job.owner != owner {
            return Err(Error::NotFound);
        }
        Ok(job)
    }

    async fn list_jobs(&self, owner: &UserId, filter: &JobFilter, page: &PageRequest) -> Result<Page<Job>> {
        let listed: Vec<(String, Job)> = self
            .query_jobs(None, Some(owner))
            .await?
            .into_iter()
            .filter(|j| filter.admits(j))
            .map(|j| (j.id.to_string(), j))
            .collect();
        Ok(Page::from_sorted(listed, page))
    }

    async fn owner_jobs(&self, owner: &UserId) -> Result<Vec<Job>> {
        self.query_jobs(None, Some(owner)).await
    }

    async fn start_render(
        &self,
        request: MoveRequest,
        build: std::sync::Arc<RenderBuilder>,
    ) -> Result<(Story, Vec<Job>)> {
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let aggregate = self.aggregate(&request.owner, &request.story).await?;
            let record = &aggregate.record;
            record.story.check_version(request.expected_version)?;
            let (next, history) = record.story.moved(
                request.to,
                request.mover,
                request.actor.clone(),
                request.reason.clone(),
                Vec::new,
                request.at,
            )?;
            let plan = StoryPlan {
                story: record.story.clone(),
                scenes: aggregate.scenes.clone(),
                prompts: aggregate.prompts.clone(),
            };
            let jobs = build(&plan)?;
            // Conditioned on the story and its plan as read: the jobs snapshot exactly this plan.
            let mut items = vec![
                self.put_story_item(record, &next, record.plan_version)?,
                self.put_new(transition_item(&history)?)?,
            ];
            for job in &jobs {
                items.push(self.job_put(job)?);
            }
            match self.transact(items).await? {
                Written::Done => return Ok((next, jobs)),
                Written::Raced(_) => continue,
            }
        }
        Err(busy())
    }

    async fn commit_jobs(&self, jobs: Vec<Job>, effect: Option<StoryEffect>) -> Result<Committed> {
        let mut items = Vec::with_capacity(jobs.len() + 2);
        let mut moved = None;
        if let Some(effect) = &effect {
            let record = self.owned(&effect.owner, &effect.story).await?;
            if let Some((next, history)) = effect.apply(&record.story)? {
                items.push(self.put_story_item(&record, &next, record.plan_version)?);
                items.push(self.put_new(transition_item(&history)?)?);
                moved = Some(next);
            }
        }
        for job in &jobs {
            items.push(self.job_put(job)?);
        }
        match items.len() {
            0 => Ok(Committed::Done(None)),
            _ => match self.transact(items).await? {
                Written::Done => Ok(Committed::Done(moved.map(Box::new))),
                Written::Raced(_) => Ok(Committed::Raced),
            },
        }
    }

    /// GetItem, the job's rules, then a PutItem conditioned on the version read: of concurrent
    /// claims exactly one writes; a loser is answered from the item its failed condition returns.
    async fn claim_job(
        &self,
        story: &StoryId,
        id: &JobId,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<std::result::Result<Job, JobRefusal>> {
        let mut current = self.story_job(story, id).await?;
        for attempt in 0..ATTEMPTS {
            back_off(attempt).await;
            let mut next = match current.claimed(now, lease) {
                Ok(next) => next,
                Err(refusal) => return Ok(Err(refusal)),
            };
            next.version = current.version + 1;
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(job_item(&next)?))
                .condition_expression("#version = :version")
                .expression_attribute_names("#version", "version")
                .expression_attribute_values(":version", n(current.version))
                .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
                .send()
                .await;
            match result {
                Ok(_) => return Ok(Ok(next)),
                Err(e) => match e.as_service_error() {
                    Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                        current = match c.item() {
                            Some(item) if !item.is_empty() => from_item(item.clone())?,
                            _ => self.story_job(story, id).await?,
                        };
                    }
                    _ => return Err(sdk(e)),
                },
            }
        }
        Err(busy())
    }
}

/// Provider configurations share one partition, so one Query lists them all.
const PROVIDERS_PK: &str = "PROVIDERS";

fn provider_item(config: &crate::domain::provider::AiProviderConfig) -> Result<Item> {
    let mut item = to_item(config)?;
    item.insert("PK".into(), s(PROVIDERS_PK));
    item.insert("SK".into(), s(format!("PROVIDER#{}", config.provider)));
    Ok(item)
}

#[async_trait]
impl crate::ports::ProviderConfigStore for DynamoStore {
    async fn stored_provider_configs(&self) -> Result<Vec<crate::domain::provider::AiProviderConfig>> {
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", s(PROVIDERS_PK))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk)?;
        out.items.unwrap_or_default().into_iter().map(from_item).collect()
    }

    async fn put_provider_config(
        &self,
        config: &crate::domain::provider::AiProviderConfig,
        expected: u64,
    ) -> Result<()> {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(provider_item(config)?))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        put = if expected == 0 {
            put.condition_expression("attribute_not_exists(PK)")
        } else {
            put.condition_expression("version = :expected").expression_attribute_values(":expected", n(expected))
        };
        match put.send().await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(failed)) => {
                    let current = failed.item().map_or(0, |item| number_of(item, "version"));
                    Err(Error::VersionMismatch { current_version: current })
                }
                _ => Err(sdk(e)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_condition_admits_exactly_the_statuses_the_domain_allows_lock_changes_in() {
        let (list, values) = lock_change_statuses();
        let admitted: Vec<StoryStatus> =
            list.split(", ").map(|name| StoryStatus::parse(values[name].as_s().unwrap()).unwrap()).collect();
        for status in StoryStatus::ALL {
            assert_eq!(admitted.contains(&status), status.allows_lock_changes(), "{status}");
        }
    }
}
