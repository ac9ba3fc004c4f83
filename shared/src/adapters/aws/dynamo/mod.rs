//! The DynamoDB store: one table, every invariant a `ConditionExpression` or one
//! `TransactWriteItems`.
//!
//! | item | PK | SK | GSI1 (owner listing) | GSI2 (id lookup) | GSI3 (owner's children) |
//! |---|---|---|---|---|---|
//! | story | `STORY#<id>` | `STORY` | `OWNER#<owner>` / `STORY#<id>` | — | — |
//! | transition | `STORY#<id>` | `TRANSITION#<sequence>` | — | — | — |
//! | scene | `STORY#<story>` | `SCENE#<id>` | — | `SCENE#<id>` | `SCENES#<owner>` / `<id>` |
//! | prompt | `STORY#<story>` | `PROMPT#<scene>#<id>` | — | `PROMPT#<id>` | `PROMPTS#<owner>` / `<id>` |
//! | job | `STORY#<story>` | `JOB#<id>` | `JOBS#<owner>` / `JOB#<id>` | `JOB#<id>` | — |
//! | idempotency key | `IDEM#<owner>#<key>` | `IDEM` | — | — | — |
//!
//! GSI4 is sparse: `UNFINISHED_JOBS` / `<job id>` on a job until it finishes, and
//! `RENDERING_STORIES` / `<story id>` on a story while it renders — the sweep's reads.
//!
//! One Query on `STORY#<id>` returns a story with its scenes, prompts and history. Each story item
//! carries `version` (bumped by every write of the story) and `plan_version` (bumped by every write
//! of its scenes or prompts); every write of a story or of its plan is conditioned on both being
//! what was read, so a lock, a move or an edit that raced it makes it fail and re-evaluate.
//!
//! One file per aggregate: `stories` (stories, moves, locks, history), `plans` (scenes and
//! prompts), `jobs` (jobs and renders), `idempotency`, `providers`; this one holds the table's
//! keys, item shapes and the conditioned writes they share.

mod events;
mod idempotency;
mod jobs;
mod plans;
mod providers;
mod stories;
mod usage;
mod webhooks;

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
use crate::domain::prompt::ScenePrompt;
use crate::domain::scene::{Scene, plan_gaps, sequence_scenes};
use crate::domain::state_machine::{StoryStatus, move_rule};
use crate::domain::statistics::StoryStatistics;
use crate::domain::story::{Story, StoryEdit};
use crate::domain::transition::StoryStateTransition;
use crate::ports::{
    ChildOrdering, Committed, IdempotencyClaim, IdempotencyStore, JobFilter, JobStore, MoveRequest, PlanStore,
    PromptFilter, RenderBuilder, SceneFilter, StoredResponse, StoryEffect, StoryFilter, StoryPlan, StoryStore,
    prompt_listing_key, scene_listing_key,
};

/// Name of the owner index.
pub const GSI1: &str = "GSI1";
/// Name of the id index.
pub const GSI2: &str = "GSI2";
/// Name of the owner's children index (scenes and prompts in creation order).
pub const GSI3: &str = "GSI3";
/// Name of the sparse index of work under way (unfinished jobs, rendering stories) the sweep reads.
pub const GSI4: &str = "GSI4";
/// GSI4 key of an unfinished job.
const UNFINISHED_JOBS: &str = "UNFINISHED_JOBS";
/// GSI4 key of a rendering story.
const RENDERING_STORIES: &str = "RENDERING_STORIES";
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
    if story.status.is_rendering() {
        // Sparse: only while it renders, so the sweep reads just these.
        item.insert("GSI4PK".into(), s(RENDERING_STORIES));
        item.insert("GSI4SK".into(), s(story.id.to_string()));
    }
    item.insert("plan_version".into(), n(plan_version));
    Ok(item)
}

fn scene_item(scene: &Scene, owner: &UserId) -> Result<Item> {
    let mut item = to_item(scene)?;
    item.insert("PK".into(), s(story_pk(&scene.story)));
    item.insert("SK".into(), s(format!("SCENE#{}", scene.id)));
    item.insert("GSI2PK".into(), s(format!("SCENE#{}", scene.id)));
    item.insert("GSI3PK".into(), s(format!("SCENES#{owner}")));
    item.insert("GSI3SK".into(), s(scene.id.to_string()));
    Ok(item)
}

fn prompt_sk(prompt: &ScenePrompt) -> String {
    format!("PROMPT#{}#{}", prompt.scene, prompt.id)
}

fn prompt_item(prompt: &ScenePrompt, owner: &UserId) -> Result<Item> {
    let mut item = to_item(prompt)?;
    item.insert("PK".into(), s(story_pk(&prompt.story)));
    item.insert("SK".into(), s(prompt_sk(prompt)));
    item.insert("GSI2PK".into(), s(format!("PROMPT#{}", prompt.id)));
    item.insert("GSI3PK".into(), s(format!("PROMPTS#{owner}")));
    item.insert("GSI3SK".into(), s(prompt.id.to_string()));
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
    /// How long an unfinished idempotency claim blocks its key (`Config::idempotency_claim_seconds`).
    claim_lease: ChronoDuration,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).finish()
    }
}

impl DynamoStore {
    /// Every item `query` answers, page after page, decoded.
    async fn query_all<T: DeserializeOwned>(
        &self,
        query: aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder,
    ) -> Result<Vec<T>> {
        let mut found = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = query.clone().set_exclusive_start_key(start.take()).send().await.map_err(sdk)?;
            for item in out.items.unwrap_or_default() {
                found.push(from_item(item)?);
            }
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(found),
            }
        }
    }

    /// Every item under `key` in the sparse GSI4, decoded.
    async fn under_way<T: DeserializeOwned>(&self, key: &str) -> Result<Vec<T>> {
        let query = self
            .client
            .query()
            .table_name(&self.table)
            .index_name(GSI4)
            .key_condition_expression("GSI4PK = :key")
            .expression_attribute_values(":key", s(key));
        self.query_all(query).await
    }

    /// A store on `table` (created by `create_table` or the SAM template).
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self { client, table: table.into(), claim_lease: ChronoDuration::seconds(120) }
    }

    /// This store taking over an unanswered idempotency claim after `seconds`.
    pub fn with_claim_lease(mut self, seconds: u64) -> Self {
        self.claim_lease = ChronoDuration::seconds(i64::try_from(seconds).unwrap_or(i64::MAX / 1000));
        self
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
        self.transact_counting(items, &[]).await
    }

    /// `transact` of `items` whose last ones are the Updates of `usage` (SPEC §8.7): a failed
    /// limit condition is the refusal `budget_exceeded`, not a race.
    async fn transact_counting(
        &self,
        items: Vec<TransactWriteItem>,
        usage: &[crate::domain::usage::UsageChange],
    ) -> Result<Written> {
        let count = items.len();
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
                    if let Some(refusal) = self.budget_refusal(reasons, count, usage).await? {
                        return Err(refusal);
                    }
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
            items.extend(self.move_items(next, h)?);
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
        if let Some(moved) = &change.transition {
            items.extend(self.move_items(change.story.as_ref().unwrap_or(&record.story), moved)?);
        }
        for prompt in &change.delete_prompts {
            items.push(self.delete_plain(story_pk(&prompt.story), prompt_sk(prompt))?);
        }
        for scene in &change.delete_scenes {
            items.push(self.delete_plain(story_pk(&scene.story), format!("SCENE#{}", scene.id))?);
        }
        for scene in &change.put_scenes {
            items.push(self.put_plain(scene_item(scene, &record.story.owner)?)?);
        }
        for prompt in &change.put_prompts {
            items.push(self.put_plain(prompt_item(prompt, &record.story.owner)?)?);
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
