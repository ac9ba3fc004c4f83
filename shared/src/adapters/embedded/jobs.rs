//! Jobs in the embedded store: each change is one write transaction that reads what it depends
//! on, applies the rules and writes back, so of concurrent writers exactly one wins and the others
//! see `Committed::Raced` (or a refusal) and decide again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use super::plan::load_plan;
use super::store::{
    EmbeddedStore, JOB_INDEX, JOBS, OWNER_JOBS, STORIES, decode, encode, internal, key, owned_story, prefix_bounds,
    put_story, scan_page, scan_prefix,
};
use crate::domain::error::{Error, Result};
use crate::domain::ids::{JobId, StoryId, UserId};
use crate::domain::job::{Job, JobRefusal};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::story::Story;
use crate::domain::usage;
use crate::ports::{Committed, JobFilter, JobStore, MoveRequest, RenderBuilder, StoryEffect, StoryPlan};

fn read_job(txn: &WriteTransaction, story: &StoryId, id: &JobId) -> Result<Option<Job>> {
    let table = txn.open_table(JOBS).map_err(internal)?;
    let found = table.get(key(&[story.as_str(), id.as_str()]).as_str()).map_err(internal)?;
    found.map(|bytes| decode(bytes.value())).transpose()
}

/// Writes a job and, for a new one, its indexes.
fn put_job(txn: &WriteTransaction, job: &Job, new: bool) -> Result<()> {
    txn.open_table(JOBS)
        .map_err(internal)?
        .insert(key(&[job.story.as_str(), job.id.as_str()]).as_str(), encode(job)?.as_slice())
        .map_err(internal)?;
    if new {
        txn.open_table(JOB_INDEX)
            .map_err(internal)?
            .insert(job.id.as_str(), job.story.as_str().as_bytes())
            .map_err(internal)?;
        txn.open_table(OWNER_JOBS)
            .map_err(internal)?
            .insert(key(&[job.owner.as_str(), job.id.as_str()]).as_str(), job.story.as_str().as_bytes())
            .map_err(internal)?;
    }
    Ok(())
}

/// Writes `story` and its history record.
pub(super) fn put_moved(
    txn: &WriteTransaction,
    story: &Story,
    record: &crate::domain::transition::StoryStateTransition,
) -> Result<()> {
    put_story(txn, story)?;
    super::events::record_move(txn, story, record)
}

#[async_trait]
impl JobStore for EmbeddedStore {
    async fn create_job(&self, job: &Job) -> Result<()> {
        let job = job.clone();
        self.write(move |txn| {
            if read_job(txn, &job.story, &job.id)?.is_some() {
                return Err(Error::Conflict { detail: "A job with this id exists.".into(), current_status: None });
            }
            let mut jobs = [job];
            super::usage::apply(txn, &usage::advance(&mut jobs))?;
            let [job] = jobs;
            put_job(txn, &job, true)
        })
        .await
    }

    async fn story_job(&self, story: &StoryId, id: &JobId) -> Result<Job> {
        let k = key(&[story.as_str(), id.as_str()]);
        self.read(move |txn| match txn.open_table(JOBS).map_err(internal)?.get(k.as_str()).map_err(internal)? {
            Some(bytes) => decode(bytes.value()),
            None => Err(Error::NotFound),
        })
        .await
    }

    async fn story_jobs(&self, story: &StoryId) -> Result<Vec<Job>> {
        let story = story.clone();
        self.read(move |txn| scan_prefix(&txn.open_table(JOBS).map_err(internal)?, story.as_str())).await
    }

    async fn job(&self, owner: &UserId, id: &JobId) -> Result<Job> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |txn| {
            let index = txn.open_table(JOB_INDEX).map_err(internal)?;
            let story = match index.get(id.as_str()).map_err(internal)? {
                Some(bytes) => String::from_utf8_lossy(bytes.value()).into_owned(),
                None => return Err(Error::NotFound),
            };
            let jobs = txn.open_table(JOBS).map_err(internal)?;
            let job: Job = match jobs.get(key(&[story.as_str(), id.as_str()]).as_str()).map_err(internal)? {
                Some(bytes) => decode(bytes.value())?,
                None => return Err(Error::NotFound),
            };
            if job.owner != owner {
                return Err(Error::NotFound);
            }
            Ok(job)
        })
        .await
    }

    async fn list_jobs(&self, owner: &UserId, filter: &JobFilter, page: &PageRequest) -> Result<Page<Job>> {
        let (owner, filter, page) = (owner.clone(), filter.clone(), page.clone());
        self.read(move |txn| {
            let index = txn.open_table(OWNER_JOBS).map_err(internal)?;
            let jobs = txn.open_table(JOBS).map_err(internal)?;
            let scanned = scan_page(&index, owner.as_str(), &page, |id, story| {
                let story = String::from_utf8_lossy(story).into_owned();
                let job: Job = match jobs.get(key(&[story.as_str(), id]).as_str()).map_err(internal)? {
                    Some(bytes) => decode(bytes.value())?,
                    None => return Ok(None),
                };
                Ok(filter.admits(&job).then_some(job))
            })?;
            Ok(Page::from_scan(scanned, &page))
        })
        .await
    }

    async fn unfinished_jobs(&self) -> Result<Vec<Job>> {
        self.read(|txn| {
            let mut jobs = Vec::new();
            for entry in txn.open_table(JOBS).map_err(internal)?.iter().map_err(internal)? {
                let (_, v) = entry.map_err(internal)?;
                let job: Job = decode(v.value())?;
                if !job.status.is_terminal() {
                    jobs.push(job);
                }
            }
            Ok(jobs)
        })
        .await
    }

    async fn owner_jobs(&self, owner: &UserId) -> Result<Vec<Job>> {
        let owner = owner.clone();
        self.read(move |txn| {
            let index = txn.open_table(OWNER_JOBS).map_err(internal)?;
            let jobs = txn.open_table(JOBS).map_err(internal)?;
            let (start, end) = prefix_bounds(owner.as_str());
            let mut all = Vec::new();
            for entry in index.range(start.as_str()..end.as_str()).map_err(internal)? {
                let (k, story) = entry.map_err(internal)?;
                let id = k.value().get(start.len()..).unwrap_or_default().to_owned();
                let story = String::from_utf8_lossy(story.value()).into_owned();
                if let Some(bytes) = jobs.get(key(&[story.as_str(), id.as_str()]).as_str()).map_err(internal)? {
                    all.push(decode::<Job>(bytes.value())?);
                }
            }
            Ok(all)
        })
        .await
    }

    async fn start_render(&self, request: MoveRequest, build: Arc<RenderBuilder>) -> Result<(Story, Vec<Job>)> {
        self.write(move |txn| {
            let state = load_plan(txn, &request.owner, &request.story)?;
            let (next, record) = request.render_start(&state.story)?;
            let plan = StoryPlan { story: state.story.clone(), scenes: state.scenes, prompts: state.prompts };
            let mut jobs = build(&plan)?;
            // The estimate is reserved in this same write, or nothing is written.
            super::usage::apply(txn, &usage::advance(&mut jobs))?;
            put_moved(txn, &next, &record)?;
            for job in &jobs {
                if read_job(txn, &job.story, &job.id)?.is_some() {
                    return Err(Error::Conflict { detail: "A job with this id exists.".into(), current_status: None });
                }
                put_job(txn, job, true)?;
            }
            Ok((next, jobs))
        })
        .await
    }

    async fn commit_jobs(&self, mut jobs: Vec<Job>, effect: Option<StoryEffect>) -> Result<Committed> {
        self.write(move |txn| {
            // Reservations of restarted jobs and settlements of ended ones, in this same write.
            let changes = usage::advance(&mut jobs);
            for job in &jobs {
                let stored = read_job(txn, &job.story, &job.id)?;
                let expected = job.version.checked_sub(1).filter(|v| *v > 0);
                match (stored.map(|j| j.version), expected) {
                    (None, None) => put_job(txn, job, true)?,
                    (Some(current), Some(previous)) if current == previous => put_job(txn, job, false)?,
                    // Someone wrote it first; redb gives nothing back to undo, so abort the lot.
                    _ => return Err(Error::Conflict { detail: RACED.into(), current_status: None }),
                }
            }
            super::usage::apply(txn, &changes)?;
            super::events::record_job_changes(txn, &jobs, Utc::now())?;
            let mut moved = None;
            if let Some(effect) = &effect {
                let story = owned_story(&txn.open_table(STORIES).map_err(internal)?, &effect.owner, &effect.story)?;
                if let Some((next, record)) = effect.apply(&story)? {
                    put_moved(txn, &next, &record)?;
                    moved = Some(next);
                }
            }
            Ok(Committed::Done(moved.map(Box::new)))
        })
        .await
        .or_else(|e| match e {
            Error::Conflict { detail, .. } if detail == RACED => Ok(Committed::Raced),
            other => Err(other),
        })
    }

    async fn claim_job(
        &self,
        story: &StoryId,
        id: &JobId,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<std::result::Result<Job, JobRefusal>> {
        let (story, id) = (story.clone(), id.clone());
        self.write(move |txn| {
            let job = read_job(txn, &story, &id)?.ok_or(Error::NotFound)?;
            match job.claimed(now, lease) {
                Ok(mut next) => {
                    next.version = job.version + 1;
                    put_job(txn, &next, false)?;
                    super::events::record_job_changes(txn, std::slice::from_ref(&next), now)?;
                    Ok(Ok(next))
                }
                Err(refusal) => Ok(Err(refusal)),
            }
        })
        .await
    }
}

/// The marker of a lost race inside a transaction (turned into `Committed::Raced`).
const RACED: &str = "embedded job write lost a race";
