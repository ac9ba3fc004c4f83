//! The embedded store: one redb database file in the data dir.
//!
//! Why redb: it is a pure-Rust, ACID, copy-on-write B-tree store whose commits are fsynced
//! (`Durability::Immediate`, its default) and checksummed, so a crash (even `kill -9` or power
//! loss) leaves either the old or the new state, never half of a write. Its write transactions are
//! serialised, which makes each one the single critical section in which this adapter checks and
//! applies an invariant, exactly as the DynamoDB adapter does with one conditional write.

use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use redb::{Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use serde::{Serialize, de::DeserializeOwned};

use crate::domain::error::{Error, Result};
use crate::domain::ids::{StoryId, UserId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::prompt::ScenePrompt;
use crate::domain::scene::{Scene, plan_gaps};
use crate::domain::state_machine::move_rule;
use crate::domain::statistics::StoryStatistics;
use crate::domain::story::{Story, StoryEdit};
use crate::domain::transition::StoryStateTransition;
use crate::ports::{IdempotencyClaim, IdempotencyStore, MoveRequest, StoredResponse, StoryFilter, StoryStore};

pub(super) type Table = TableDefinition<'static, &'static str, &'static [u8]>;

/// Story id → story.
pub(super) const STORIES: Table = TableDefinition::new("stories");
/// `owner \0 story id` → nothing: the owner's stories in creation order (ids are ULIDs).
pub(super) const OWNER_STORIES: Table = TableDefinition::new("owner_stories");
/// `story id \0 sequence` → transition: the append-only history.
pub(super) const TRANSITIONS: Table = TableDefinition::new("transitions");
/// `story id \0 scene id` → scene.
pub(super) const SCENES: Table = TableDefinition::new("scenes");
/// `story id \0 scene id \0 prompt id` → prompt.
pub(super) const PROMPTS: Table = TableDefinition::new("prompts");
/// `owner \0 key` → idempotency record.
const IDEMPOTENCY: Table = TableDefinition::new("idempotency");
/// `story id \0 job id` → job.
pub(super) const JOBS: Table = TableDefinition::new("jobs");
/// Job id → story id: a job resolves to its story in one step.
pub(super) const JOB_INDEX: Table = TableDefinition::new("job_index");
/// `owner \0 job id` → story id: the owner's jobs in creation order.
pub(super) const OWNER_JOBS: Table = TableDefinition::new("owner_jobs");
/// Scene id → story id: a scene resolves to its story in one step.
pub(super) const SCENE_INDEX: Table = TableDefinition::new("scene_index");
/// Prompt id → `story id \0 scene id`.
pub(super) const PROMPT_INDEX: Table = TableDefinition::new("prompt_index");

/// How long an `Idempotency-Key` is remembered.
const IDEMPOTENCY_TTL_HOURS: i64 = 24;
/// How long an unfinished claim blocks its key (a crashed request must not block it for a day).
const IDEMPOTENCY_CLAIM_LEASE_SECONDS: i64 = 120;

/// The composite-key separator. User ids and idempotency keys cannot hold control characters and
/// the other parts are ULIDs or digits, so it never occurs inside a part.
const SEP: char = '\0';

pub(super) fn key(parts: &[&str]) -> String {
    parts.join("\0")
}

/// The half-open range of keys that start with `prefix` followed by the separator.
pub(super) fn prefix_bounds(prefix: &str) -> (String, String) {
    (format!("{prefix}{SEP}"), format!("{prefix}\u{1}"))
}

pub(super) fn internal(e: impl std::fmt::Display) -> Error {
    Error::internal(format!("embedded store: {e}"))
}

pub(super) fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(internal)
}

pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(internal)
}

/// The embedded store: stories, history, scenes, prompts and idempotency records.
#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
}

impl std::fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedStore").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// Opens (or creates) the store in `data_dir`, creating the directory. Fails with a one-line
    /// reason when the directory cannot be written or another process holds the database.
    pub fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::internal(format!("cannot create data dir {}: {e}", data_dir.display())))?;
        let path = data_dir.join("aivideo.redb");
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                Error::internal(format!("data dir {} is in use by another aivideo process", data_dir.display()))
            }
            other => Error::internal(format!("cannot open {}: {other}", path.display())),
        })?;
        let store = Self { db: Arc::new(db) };
        let tables = [
            STORIES,
            OWNER_STORIES,
            TRANSITIONS,
            SCENES,
            PROMPTS,
            IDEMPOTENCY,
            SCENE_INDEX,
            PROMPT_INDEX,
            JOBS,
            JOB_INDEX,
            OWNER_JOBS,
            super::queue::QUEUE,
            super::queue::DEAD_LETTERS,
            super::providers::PROVIDERS,
            super::providers::SUBMIT_WINDOWS,
            super::usage::USAGE,
            super::usage::USER_CAPS,
            super::events::EVENTS,
            super::events::EVENT_CLOCK,
            super::webhooks::WEBHOOKS,
            super::webhooks::WEBHOOK_DELIVERIES,
            super::webhooks::WEBHOOK_DUE,
            super::webhooks::WEBHOOK_ATTEMPTS,
        ];
        // Create every table once, so readers never meet a missing table — only when one is
        // missing: a cold start on an existing data dir reads, it does not write (and fsync).
        let read = store.db.begin_read().map_err(internal)?;
        let missing = tables.iter().any(|table| read.open_table(*table).is_err());
        drop(read);
        if missing {
            let mut txn = store.db.begin_write().map_err(internal)?;
            txn.set_quick_repair(true);
            for table in tables {
                txn.open_table(table).map_err(internal)?;
            }
            txn.commit().map_err(internal)?;
        }
        Ok(store)
    }

    /// Runs `work` in one write transaction on a blocking thread and commits it (fsynced) only if
    /// it succeeds: the critical section that holds every invariant.
    ///
    /// Every commit is a quick-repair commit (redb saves its allocator state with it, in a
    /// two-phase commit): the next open after a `kill -9` then loads that state instead of reading
    /// and checksumming the whole file. A Lambda sandbox is always killed, never closed, so
    /// without it every cold start on the embedded backend would repair a file that grows with
    /// every write (measured with `scripts/bench-cold`: the stories function's init grew to 2.5 ms
    /// over the floor on a 6.7 MB file); a restarted `aivideo serve` resumes sooner for the same
    /// reason.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&WriteTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let mut txn = db.begin_write().map_err(internal)?;
            txn.set_quick_repair(true);
            match work(&txn) {
                Ok(value) => {
                    txn.commit().map_err(internal)?;
                    Ok(value)
                }
                Err(e) => {
                    txn.abort().map_err(internal)?;
                    Err(e)
                }
            }
        })
        .await
    }

    /// Runs `work` on a consistent snapshot.
    pub(super) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&ReadTransaction) -> Result<T> + Send + 'static,
    {
        let db = self.db.clone();
        blocking(move || {
            let txn = db.begin_read().map_err(internal)?;
            work(&txn)
        })
        .await
    }
}

/// Runs the store's blocking `work` (file I/O, fsync) where it does not stall other tasks. On a
/// multi-threaded runtime (the functions, `serve`) it runs on this very thread, the runtime
/// handing this thread's other tasks to another one: no handoff to the blocking pool and back,
/// which was most of a warm invoke's store time (two thread wake-ups per call). On a
/// current-thread runtime (most tests) `block_in_place` is not allowed: the blocking pool.
async fn blocking<T, F>(work: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T> + Send + 'static,
{
    let multi_threaded = tokio::runtime::Handle::try_current()
        .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    if multi_threaded {
        tokio::task::block_in_place(work)
    } else {
        tokio::task::spawn_blocking(work).await.map_err(internal)?
    }
}

/// Reads a story of `owner` inside any transaction; another owner's story is "not found".
pub(super) fn owned_story(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    owner: &UserId,
    id: &StoryId,
) -> Result<Story> {
    let story: Story = match table.get(id.as_str()).map_err(internal)? {
        Some(bytes) => decode(bytes.value())?,
        None => return Err(Error::NotFound),
    };
    if &story.owner != owner {
        return Err(Error::NotFound);
    }
    Ok(story)
}

pub(super) fn put_story(txn: &WriteTransaction, story: &Story) -> Result<()> {
    let mut stories = txn.open_table(STORIES).map_err(internal)?;
    stories.insert(story.id.as_str(), encode(story)?.as_slice()).map_err(internal)?;
    Ok(())
}

pub(super) fn scan_prefix<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
) -> Result<Vec<T>> {
    let (start, end) = prefix_bounds(prefix);
    let mut out = Vec::new();
    for entry in table.range(start.as_str()..end.as_str()).map_err(internal)? {
        let (_, value) = entry.map_err(internal)?;
        out.push(decode(value.value())?);
    }
    Ok(out)
}

/// What PLANNING → PLANNED still lacks, read from the scenes and prompts in the same transaction
/// as the move, so an edit cannot slip in between the check and the write.
pub(super) fn plan_gaps_in(txn: &WriteTransaction, story: &Story) -> Result<Vec<String>> {
    let scenes: Vec<Scene> = scan_prefix(&txn.open_table(SCENES).map_err(internal)?, story.id.as_str())?;
    let prompts: Vec<ScenePrompt> = scan_prefix(&txn.open_table(PROMPTS).map_err(internal)?, story.id.as_str())?;
    Ok(plan_gaps(story, &scenes, &prompts))
}

/// Reads up to `limit + 1` entries strictly past the request's position under `prefix`, in scan
/// order, keeping those `keep` admits. Keys are returned without the prefix.
pub(super) fn scan_page<T>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    prefix: &str,
    request: &PageRequest,
    mut keep: impl FnMut(&str, &[u8]) -> Result<Option<T>>,
) -> Result<Vec<(String, T)>> {
    let (start, end) = prefix_bounds(prefix);
    let position = request.position.as_ref().map(|p| key(&[prefix, p]));
    let descending = request.scan_descending();
    let lower = match (&position, descending) {
        (Some(p), false) => Bound::Excluded(p.as_str()),
        _ => Bound::Included(start.as_str()),
    };
    let upper = match (&position, descending) {
        (Some(p), true) => Bound::Excluded(p.as_str()),
        _ => Bound::Excluded(end.as_str()),
    };
    let range = table.range::<&str>((lower, upper)).map_err(internal)?;
    let entries: Box<dyn Iterator<Item = _>> = if descending { Box::new(range.rev()) } else { Box::new(range) };
    let mut out = Vec::new();
    for entry in entries {
        let (k, v) = entry.map_err(internal)?;
        let full = k.value();
        let short = full.get(start.len()..).unwrap_or_default().to_owned();
        if let Some(item) = keep(&short, v.value())? {
            out.push((short, item));
            if out.len() > request.limit {
                break;
            }
        }
    }
    Ok(out)
}

#[async_trait]
impl StoryStore for EmbeddedStore {
    async fn create_story(&self, story: &Story) -> Result<()> {
        let story = story.clone();
        self.write(move |txn| {
            let mut stories = txn.open_table(STORIES).map_err(internal)?;
            if stories.get(story.id.as_str()).map_err(internal)?.is_some() {
                return Err(Error::Conflict { detail: "A story with this id exists.".into(), current_status: None });
            }
            stories.insert(story.id.as_str(), encode(&story)?.as_slice()).map_err(internal)?;
            let mut index = txn.open_table(OWNER_STORIES).map_err(internal)?;
            index.insert(key(&[story.owner.as_str(), story.id.as_str()]).as_str(), &[][..]).map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn story(&self, owner: &UserId, id: &StoryId) -> Result<Story> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |txn| owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &id)).await
    }

    async fn list_stories(&self, owner: &UserId, filter: &StoryFilter, page: &PageRequest) -> Result<Page<Story>> {
        let (owner, filter, page) = (owner.clone(), filter.clone(), page.clone());
        self.read(move |txn| {
            let index = txn.open_table(OWNER_STORIES).map_err(internal)?;
            let stories = txn.open_table(STORIES).map_err(internal)?;
            let scanned = scan_page(&index, owner.as_str(), &page, |id, _| {
                let story: Story = match stories.get(id).map_err(internal)? {
                    Some(bytes) => decode(bytes.value())?,
                    None => return Ok(None),
                };
                Ok(filter.admits(&story).then_some(story))
            })?;
            Ok(Page::from_scan(scanned, &page))
        })
        .await
    }

    async fn edit_story(
        &self,
        owner: &UserId,
        id: &StoryId,
        edit: StoryEdit,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &id)?;
            story.check_version(expected_version)?;
            let next = story.edited(edit, at)?;
            put_story(txn, &next)?;
            Ok(next)
        })
        .await
    }

    async fn delete_story(&self, owner: &UserId, id: &StoryId, expected_version: Option<u64>) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &id)?;
            story.check_version(expected_version)?;
            story.ensure_deletable()?;
            txn.open_table(STORIES).map_err(internal)?.remove(id.as_str()).map_err(internal)?;
            txn.open_table(OWNER_STORIES)
                .map_err(internal)?
                .remove(key(&[owner.as_str(), id.as_str()]).as_str())
                .map_err(internal)?;
            let scenes: Vec<Scene> = scan_prefix(&txn.open_table(SCENES).map_err(internal)?, id.as_str())?;
            let prompts: Vec<ScenePrompt> = scan_prefix(&txn.open_table(PROMPTS).map_err(internal)?, id.as_str())?;
            let mut scene_index = txn.open_table(SCENE_INDEX).map_err(internal)?;
            for scene in &scenes {
                scene_index.remove(scene.id.as_str()).map_err(internal)?;
            }
            let mut prompt_index = txn.open_table(PROMPT_INDEX).map_err(internal)?;
            for prompt in &prompts {
                prompt_index.remove(prompt.id.as_str()).map_err(internal)?;
            }
            let jobs: Vec<crate::domain::job::Job> =
                scan_prefix(&txn.open_table(JOBS).map_err(internal)?, id.as_str())?;
            let mut job_index = txn.open_table(JOB_INDEX).map_err(internal)?;
            let mut owner_jobs = txn.open_table(OWNER_JOBS).map_err(internal)?;
            for job in &jobs {
                job_index.remove(job.id.as_str()).map_err(internal)?;
                owner_jobs.remove(key(&[owner.as_str(), job.id.as_str()]).as_str()).map_err(internal)?;
            }
            let (start, end) = prefix_bounds(id.as_str());
            for table in [TRANSITIONS, SCENES, PROMPTS, JOBS] {
                txn.open_table(table)
                    .map_err(internal)?
                    .retain_in(start.as_str()..end.as_str(), |_, _| false)
                    .map_err(internal)?;
            }
            Ok(())
        })
        .await
    }

    async fn move_story(&self, request: MoveRequest) -> Result<Story> {
        self.write(move |txn| {
            let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, &request.owner, &request.story)?;
            story.check_version(request.expected_version)?;
            // Only PLANNING → PLANNED needs the plan; read it inside this same transaction.
            let gaps = if move_rule(story.status, request.to).is_some_and(|r| r.requires_complete_plan) {
                plan_gaps_in(txn, &story)?
            } else {
                Vec::new()
            };
            let (next, record) = request.applied(&story, || gaps)?;
            put_story(txn, &next)?;
            super::events::record_move(txn, &next, &record)?;
            Ok(next)
        })
        .await
    }

    async fn set_lock(
        &self,
        owner: &UserId,
        id: &StoryId,
        locked: bool,
        expected_version: Option<u64>,
        at: DateTime<Utc>,
    ) -> Result<Story> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &id)?;
            story.check_version(expected_version)?;
            match story.with_lock(locked, at)? {
                Some(next) => {
                    put_story(txn, &next)?;
                    Ok(next)
                }
                None => Ok(story),
            }
        })
        .await
    }

    async fn transitions(
        &self,
        owner: &UserId,
        id: &StoryId,
        page: &PageRequest,
    ) -> Result<Page<StoryStateTransition>> {
        let (owner, id, page) = (owner.clone(), id.clone(), page.clone());
        self.read(move |txn| {
            owned_story(&txn.open_table(STORIES).map_err(internal)?, &owner, &id)?;
            let history = txn.open_table(TRANSITIONS).map_err(internal)?;
            let scanned = scan_page(&history, id.as_str(), &page, |_, bytes| decode(bytes).map(Some))?;
            Ok(Page::from_scan(scanned, &page))
        })
        .await
    }

    async fn rendering_stories(&self) -> Result<Vec<Story>> {
        self.read(|txn| {
            let mut stories = Vec::new();
            for entry in txn.open_table(STORIES).map_err(internal)?.iter().map_err(internal)? {
                let (_, v) = entry.map_err(internal)?;
                let story: Story = decode(v.value())?;
                if story.status.is_rendering() {
                    stories.push(story);
                }
            }
            Ok(stories)
        })
        .await
    }

    async fn story_statistics(&self, owner: &UserId) -> Result<StoryStatistics> {
        let owner = owner.clone();
        self.read(move |txn| {
            let index = txn.open_table(OWNER_STORIES).map_err(internal)?;
            let stories = txn.open_table(STORIES).map_err(internal)?;
            let (start, end) = prefix_bounds(owner.as_str());
            let mut all = Vec::new();
            for entry in index.range(start.as_str()..end.as_str()).map_err(internal)? {
                let (k, _) = entry.map_err(internal)?;
                let id = k.value().get(start.len()..).unwrap_or_default().to_owned();
                if let Some(bytes) = stories.get(id.as_str()).map_err(internal)? {
                    all.push(decode::<Story>(bytes.value())?);
                }
            }
            Ok(StoryStatistics::from_stories(&all))
        })
        .await
    }
}

/// One remembered `Idempotency-Key`.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
struct IdempotencyRecord {
    fingerprint: String,
    claimed_at: DateTime<Utc>,
    #[serde(default)]
    response: Option<StoredResponse>,
    /// When the key was first claimed for this request (kept when a dead claim is taken over).
    #[serde(default)]
    first_claimed_at: Option<DateTime<Utc>>,
    /// Claimed by a process that is gone (set at restart): taken over at once.
    #[serde(default)]
    abandoned: bool,
}

/// At start-up of the process that owns the data dir: the claims the dead process held without
/// answering are taken over at once by their retries, not after the claim lease.
pub(super) fn abandon_unanswered_claims(txn: &WriteTransaction) -> Result<usize> {
    let mut table = txn.open_table(IDEMPOTENCY).map_err(internal)?;
    let mut held: Vec<(String, IdempotencyRecord)> = Vec::new();
    for entry in table.iter().map_err(internal)? {
        let (k, v) = entry.map_err(internal)?;
        let record: IdempotencyRecord = decode(v.value())?;
        if record.response.is_none() && !record.abandoned {
            held.push((k.value().to_owned(), record));
        }
    }
    let count = held.len();
    for (k, mut record) in held {
        record.abandoned = true;
        table.insert(k.as_str(), encode(&record)?.as_slice()).map_err(internal)?;
    }
    Ok(count)
}

#[async_trait]
impl IdempotencyStore for EmbeddedStore {
    async fn claim(
        &self,
        owner: &UserId,
        key_text: &str,
        fingerprint: &str,
        now: DateTime<Utc>,
    ) -> Result<IdempotencyClaim> {
        let record_key = key(&[owner.as_str(), key_text]);
        let fingerprint = fingerprint.to_owned();
        self.write(move |txn| {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(internal)?;
            let existing: Option<IdempotencyRecord> = match table.get(record_key.as_str()).map_err(internal)? {
                Some(bytes) => Some(decode(bytes.value())?),
                None => None,
            };
            let mut first_claimed_at = now;
            if let Some(record) = existing {
                let age = now - record.claimed_at;
                let expired = age > ChronoDuration::hours(IDEMPOTENCY_TTL_HOURS);
                if !expired {
                    if record.fingerprint != fingerprint {
                        return Ok(IdempotencyClaim::Mismatch);
                    }
                    if let Some(response) = record.response {
                        return Ok(IdempotencyClaim::Replay(response));
                    }
                    let abandoned = record.abandoned || age > ChronoDuration::seconds(IDEMPOTENCY_CLAIM_LEASE_SECONDS);
                    if !abandoned {
                        return Ok(IdempotencyClaim::InProgress);
                    }
                    // Taken over: the same request, so the same first claim (and derived ids).
                    first_claimed_at = record.first_claimed_at.unwrap_or(record.claimed_at);
                }
            }
            let record = IdempotencyRecord {
                fingerprint,
                claimed_at: now,
                response: None,
                first_claimed_at: Some(first_claimed_at),
                abandoned: false,
            };
            table.insert(record_key.as_str(), encode(&record)?.as_slice()).map_err(internal)?;
            Ok(IdempotencyClaim::Fresh { first_claimed_at })
        })
        .await
    }

    async fn complete(
        &self,
        owner: &UserId,
        key_text: &str,
        response: &StoredResponse,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let record_key = key(&[owner.as_str(), key_text]);
        let response = response.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(IDEMPOTENCY).map_err(internal)?;
            let mut record: IdempotencyRecord = match table.get(record_key.as_str()).map_err(internal)? {
                Some(bytes) => decode(bytes.value())?,
                None => return Ok(()),
            };
            // The 24 h start when the answer exists, not when the work began.
            record.claimed_at = now;
            record.response = Some(response);
            table.insert(record_key.as_str(), encode(&record)?.as_slice()).map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn release(&self, owner: &UserId, key_text: &str) -> Result<()> {
        let record_key = key(&[owner.as_str(), key_text]);
        self.write(move |txn| {
            txn.open_table(IDEMPOTENCY).map_err(internal)?.remove(record_key.as_str()).map_err(internal)?;
            Ok(())
        })
        .await
    }
}
