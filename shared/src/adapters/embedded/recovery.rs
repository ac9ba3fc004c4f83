//! After a crash, on the embedded backend: the restarted process owns the data dir alone (redb's
//! file lock says so), so nothing the dead process held needs to wait out a timeout — its messages
//! in flight and its job leases are released at once (SPEC §8.2). The sweep, run then and every
//! minute by `aivideo serve`, makes sure no job waits without a message (an enqueue lost between
//! its commit and its send) and no story stays rendering with every job of its render finished.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use redb::ReadableTable;

use super::queue::{EmbeddedQueue, QUEUE, Queued, queue_key, rank};
use super::store::{JOBS, STORIES, decode, encode, internal, owned_story};
use crate::domain::error::Result;
use crate::domain::ids::{Actor, StoryId};
use crate::domain::job::{Job, JobStatus};
use crate::domain::state_machine::{Mover, StoryStatus};
use crate::ports::JobMessage;

/// What a recovery or a sweep did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Messages the dead process had received and not settled, visible again now.
    pub messages_released: usize,
    /// Job leases the dead process held, let go.
    pub leases_released: usize,
    /// Jobs that waited with no message and got one.
    pub jobs_resent: usize,
    /// Stories left rendering with every job of their render finished, failed with a reason.
    pub stories_failed: usize,
}

impl EmbeddedQueue {
    /// At start-up, before the consumer runs: releases what the previous process held, then
    /// sweeps. Only for the process that owns the data dir (the embedded backend's only one).
    pub async fn recover_after_restart(&self) -> Result<Recovered> {
        let now = self.clock_now();
        let now_ms = self.now_ms_pub();
        let released = self
            .store()
            .write(move |txn| {
                let mut queue = txn.open_table(QUEUE).map_err(internal)?;
                let mut held: Vec<(String, Queued)> = Vec::new();
                for entry in queue.iter().map_err(internal)? {
                    let (k, v) = entry.map_err(internal)?;
                    let record: Queued = decode(v.value())?;
                    if record.in_flight {
                        held.push((k.value().to_owned(), record));
                    }
                }
                let messages = held.len();
                for (old, mut record) in held {
                    queue.remove(old.as_str()).map_err(internal)?;
                    let rank = old.split('\0').next().and_then(|r| r.parse().ok()).unwrap_or(1);
                    record.in_flight = false;
                    queue
                        .insert(queue_key(rank, now_ms, &record.id).as_str(), encode(&record)?.as_slice())
                        .map_err(internal)?;
                }
                let mut jobs = txn.open_table(JOBS).map_err(internal)?;
                let mut leased: Vec<(String, Job)> = Vec::new();
                for entry in jobs.iter().map_err(internal)? {
                    let (k, v) = entry.map_err(internal)?;
                    let job: Job = decode(v.value())?;
                    if job.lease_until.is_some_and(|until| until > now) {
                        leased.push((k.value().to_owned(), job));
                    }
                }
                let mut leases = 0;
                for (k, job) in leased {
                    // The same change as a worker letting go after a failed step.
                    if let Ok(next) = job.released() {
                        jobs.insert(k.as_str(), encode(&next)?.as_slice()).map_err(internal)?;
                        leases += 1;
                    }
                }
                // Keyed requests the dead process never answered: their retries take over now
                // (and find what the first try created, by its derived id).
                let claims = super::store::abandon_unanswered_claims(txn)?;
                if claims > 0 {
                    tracing::info!(claims, "idempotency claims of the previous process released");
                }
                // Webhook deliveries the dead process was attempting: due again now (the
                // receiver may get one twice, with the same webhook-id, as Standard Webhooks allows).
                let deliveries = super::webhooks::release_delivery_leases(txn, now)?;
                if deliveries > 0 {
                    tracing::info!(deliveries, "webhook deliveries of the previous process released");
                }
                Ok((messages, leases + deliveries))
            })
            .await?;
        let swept = self.sweep(Duration::ZERO).await?;
        Ok(Recovered { messages_released: released.0, leases_released: released.1, ..swept })
    }

    /// Gives every job that waits for a worker (queued and not waiting for scenes, or started
    /// with no lease) a message if none is queued for it, once it has waited `min_age` (work
    /// committed a moment ago is about to be sent by its request); and fails, with a reason, the
    /// stories still rendering whose render's jobs have all finished without composing.
    pub async fn sweep(&self, min_age: Duration) -> Result<Recovered> {
        let now = self.clock_now();
        let now_ms = self.now_ms_pub();
        let min_age = chrono::Duration::from_std(min_age).unwrap_or(chrono::Duration::zero());
        self.store()
            .write(move |txn| {
                let mut queue = txn.open_table(QUEUE).map_err(internal)?;
                let mut messaged: HashSet<String> = HashSet::new();
                for entry in queue.iter().map_err(internal)? {
                    let (_, v) = entry.map_err(internal)?;
                    let record: Queued = decode(v.value())?;
                    if let Ok(message) = serde_json::from_str::<JobMessage>(&record.body) {
                        messaged.insert(message.job_id.to_string());
                    }
                }
                let mut by_story: BTreeMap<StoryId, Vec<Job>> = BTreeMap::new();
                for entry in txn.open_table(JOBS).map_err(internal)?.iter().map_err(internal)? {
                    let (_, v) = entry.map_err(internal)?;
                    let job: Job = decode(v.value())?;
                    by_story.entry(job.story.clone()).or_default().push(job);
                }
                let mut outcome = Recovered::default();
                for job in by_story.values().flatten() {
                    let waiting = match job.status {
                        JobStatus::Queued => job.waiting_for == 0 && now - job.queued_at >= min_age,
                        JobStatus::Running | JobStatus::WaitingProvider => {
                            job.lease_until.is_none_or(|until| until <= now)
                        }
                        _ => false,
                    };
                    if waiting && !messaged.contains(job.id.as_str()) {
                        let message =
                            JobMessage { job_id: job.id.clone(), story_id: job.story.clone(), kind: job.kind };
                        let id = ulid::Ulid::new().to_string();
                        let body = serde_json::to_string(&message).map_err(internal)?;
                        let record = Queued { id: id.clone(), body, receive_count: 0, in_flight: false };
                        queue
                            .insert(queue_key(rank(job.priority), now_ms, &id).as_str(), encode(&record)?.as_slice())
                            .map_err(internal)?;
                        tracing::warn!(job_id = %job.id, status = %job.status, "job had no message; sent one");
                        outcome.jobs_resent += 1;
                    }
                }
                drop(queue);
                for (story_id, jobs) in &by_story {
                    let Some(owner) = jobs.first().map(|j| j.owner.clone()) else { continue };
                    let story = {
                        let table = txn.open_table(STORIES).map_err(internal)?;
                        match owned_story(&table, &owner, story_id) {
                            Ok(story) => story,
                            Err(_) => continue,
                        }
                    };
                    if !story.status.is_rendering() {
                        continue;
                    }
                    // The render under way is named by its newest compose job.
                    let Some(compose) = jobs.iter().filter(|j| j.composes()).max_by(|a, b| a.id.cmp(&b.id)) else {
                        continue;
                    };
                    let render: Vec<&Job> = jobs
                        .iter()
                        .filter(|j| j.id == compose.id || j.compose_job.as_ref() == Some(&compose.id))
                        .collect();
                    if compose.status == JobStatus::Succeeded || !render.iter().all(|j| j.status.is_terminal()) {
                        continue;
                    }
                    let stopped = render
                        .iter()
                        .find(|j| j.status != JobStatus::Succeeded)
                        .map_or_else(|| compose.id.to_string(), |j| format!("job {} is {}", j.id, j.status));
                    let reason = crate::services::failure_reason(&format!(
                        "The render stopped without finishing ({stopped}); start it again."
                    ));
                    let (next, record) =
                        story.moved(StoryStatus::Failed, Mover::Worker, Actor::System, reason, Vec::new, now)?;
                    super::jobs::put_moved(txn, &next, &record)?;
                    tracing::warn!(story_id = %story_id, "story was left rendering with its render finished; failed");
                    outcome.stories_failed += 1;
                }
                Ok(outcome)
            })
            .await
    }
}
