//! The embedded work queue, in the same redb file as the store: durable (a message acknowledged by
//! `enqueue` survives `kill -9`), with priorities, delays, a visibility timeout per receive, receive
//! counts and a dead-letter table — the SQS semantics the worker relies on.
//!
//! Keys sort by (priority, visible-at, sequence), so a receive walks each priority's visible
//! messages in order; hiding or delaying a message re-keys it. Every delay and visibility timeout
//! is measured on the queue's `Clock` (`EmbeddedStore::queue`), so tests move a `ManualClock`
//! instead of sleeping.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};
use serde::{Deserialize, Serialize};

use super::store::{EmbeddedStore, decode, encode, internal};
use crate::domain::error::{Error, Result};
use crate::domain::job::JobPriority;
use crate::ports::{Clock, Delivery, Handled, JobInbox, JobMessage, JobQueue, SystemClock};

/// `rank \0 visible-at (ms, 20 digits) \0 sequence` → queued message.
pub(super) const QUEUE: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("queue");
/// Message id → message that was received too often.
pub(super) const DEAD_LETTERS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("dead_letters");

/// Receives after which a failing message is dead-lettered (as the SQS redrive policy says).
pub const MAX_RECEIVES: u32 = 5;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Queued {
    pub(super) id: String,
    pub(super) body: String,
    pub(super) receive_count: u32,
    /// Received and not settled yet: hidden by its visibility timeout, not by a delay. A process
    /// that restarts releases these at once (`recover_after_restart`).
    #[serde(default)]
    pub(super) in_flight: bool,
}

pub(super) fn rank(priority: JobPriority) -> u8 {
    match priority {
        JobPriority::High => 0,
        JobPriority::Normal => 1,
        JobPriority::Low => 2,
    }
}

pub(super) fn queue_key(rank: u8, visible_at_ms: u64, id: &str) -> String {
    format!("{rank}\0{visible_at_ms:020}\0{id}")
}

fn parse_key(key: &str) -> Option<(u8, u64, &str)> {
    let mut parts = key.splitn(3, '\0');
    let rank = parts.next()?.parse().ok()?;
    let at = parts.next()?.parse().ok()?;
    Some((rank, at, parts.next()?))
}

/// `delay` after `now_ms`, in milliseconds (saturating: a huge delay is "never", not a wrap).
pub(super) fn after(now_ms: u64, delay: Duration) -> u64 {
    now_ms.saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

/// The embedded store's work queue on a given clock: what `open_backend` hands the API (sending
/// side) and the in-process consumer (receiving side), both on the process's one clock.
#[derive(Clone)]
pub struct EmbeddedQueue {
    store: EmbeddedStore,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for EmbeddedQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmbeddedQueue").finish_non_exhaustive()
    }
}

impl EmbeddedStore {
    /// The store's work queue, timing delays and visibility timeouts on `clock`.
    pub fn queue(&self, clock: Arc<dyn Clock>) -> EmbeddedQueue {
        EmbeddedQueue { store: self.clone(), clock }
    }

    /// The work queue on the system clock (what the `JobQueue`/`JobInbox` impls of the store use).
    fn system_queue(&self) -> EmbeddedQueue {
        self.queue(Arc::new(SystemClock))
    }

    /// Bodies of the dead-lettered messages (oldest id first).
    pub async fn dead_letters(&self) -> Result<Vec<String>> {
        self.read(|txn| {
            let table = txn.open_table(DEAD_LETTERS).map_err(internal)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(internal)? {
                let (_, v) = entry.map_err(internal)?;
                out.push(decode::<Queued>(v.value())?.body);
            }
            Ok(out)
        })
        .await
    }

    /// Puts a raw body on the queue (messages from outside, e.g. a malformed one in tests), its
    /// delay timed on the system clock.
    pub async fn enqueue_raw(&self, body: String, priority: JobPriority, delay: Duration) -> Result<()> {
        self.system_queue().enqueue_raw(body, priority, delay).await
    }
}

impl EmbeddedQueue {
    /// The store this queue lives in.
    pub fn store(&self) -> &EmbeddedStore {
        &self.store
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.clock.now().timestamp_millis()).unwrap_or(0)
    }

    /// Now on the queue's clock, in milliseconds.
    pub(super) fn now_ms_pub(&self) -> u64 {
        self.now_ms()
    }

    /// Now on the queue's clock.
    pub(super) fn clock_now(&self) -> chrono::DateTime<chrono::Utc> {
        self.clock.now()
    }

    /// Bodies of the dead-lettered messages (oldest id first).
    pub async fn dead_letters(&self) -> Result<Vec<String>> {
        self.store.dead_letters().await
    }

    /// Puts a raw body on the queue (messages from outside, e.g. a malformed one in tests).
    pub async fn enqueue_raw(&self, body: String, priority: JobPriority, delay: Duration) -> Result<()> {
        let id = ulid::Ulid::new().to_string();
        let visible = after(self.now_ms(), delay);
        self.store
            .write(move |txn| {
                let record = Queued { id: id.clone(), body, receive_count: 0, in_flight: false };
                txn.open_table(QUEUE)
                    .map_err(internal)?
                    .insert(queue_key(rank(priority), visible, &id).as_str(), encode(&record)?.as_slice())
                    .map_err(internal)?;
                Ok(())
            })
            .await
    }
}

#[async_trait]
impl JobQueue for EmbeddedQueue {
    async fn enqueue(&self, message: &JobMessage, priority: JobPriority, delay: Duration) -> Result<()> {
        let body = serde_json::to_string(message).map_err(Error::internal)?;
        self.enqueue_raw(body, priority, delay).await
    }
}

#[async_trait]
impl JobInbox for EmbeddedQueue {
    async fn receive_batch(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>> {
        let now = self.now_ms();
        let hidden_until = after(now, visibility);
        self.store
            .write(move |txn| {
                let mut queue = txn.open_table(QUEUE).map_err(internal)?;
                let mut dead = txn.open_table(DEAD_LETTERS).map_err(internal)?;
                let mut taken: Vec<(String, u8, Queued)> = Vec::new();
                for rank in 0u8..3 {
                    let start = queue_key(rank, 0, "");
                    let end = queue_key(rank, now, "\u{10FFFF}");
                    for entry in queue.range(start.as_str()..=end.as_str()).map_err(internal)? {
                        if taken.len() as u32 >= max {
                            break;
                        }
                        let (k, v) = entry.map_err(internal)?;
                        taken.push((k.value().to_owned(), rank, decode(v.value())?));
                    }
                }
                let mut batch = Vec::new();
                for (old_key, rank, mut record) in taken {
                    queue.remove(old_key.as_str()).map_err(internal)?;
                    record.receive_count += 1;
                    record.in_flight = true;
                    if record.receive_count > MAX_RECEIVES {
                        // Received too often without success: out of the way, kept for inspection.
                        dead.insert(record.id.as_str(), encode(&record)?.as_slice()).map_err(internal)?;
                        continue;
                    }
                    let new_key = queue_key(rank, hidden_until, &record.id);
                    queue.insert(new_key.as_str(), encode(&record)?.as_slice()).map_err(internal)?;
                    batch.push(Delivery {
                        message_id: record.id.clone(),
                        receipt: new_key,
                        body: record.body.clone(),
                        receive_count: record.receive_count,
                    });
                }
                Ok(batch)
            })
            .await
    }

    async fn settle(&self, delivery: &Delivery, outcome: Handled) -> Result<()> {
        let receipt = delivery.receipt.clone();
        let now = self.now_ms();
        self.store
            .write(move |txn| {
                let mut queue = txn.open_table(QUEUE).map_err(internal)?;
                let removed =
                    queue.remove(receipt.as_str()).map_err(internal)?.map(|bytes| decode::<Queued>(bytes.value()));
                let Some(record) = removed.transpose()? else {
                    // Settled already, or its visibility ran out and it was received again.
                    return Ok(());
                };
                if let Handled::Failed { retry_after } = outcome {
                    let mut record = record;
                    // Back on the queue after its delay: no longer held by anyone.
                    record.in_flight = false;
                    let (rank, _, id) = parse_key(&receipt).ok_or_else(|| internal("malformed receipt"))?;
                    let visible = after(now, retry_after);
                    queue
                        .insert(queue_key(rank, visible, id).as_str(), encode(&record)?.as_slice())
                        .map_err(internal)?;
                }
                Ok(())
            })
            .await
    }
}

/// The store itself is a work queue on the system clock; `EmbeddedStore::queue` chooses the clock.
#[async_trait]
impl JobQueue for EmbeddedStore {
    async fn enqueue(&self, message: &JobMessage, priority: JobPriority, delay: Duration) -> Result<()> {
        self.system_queue().enqueue(message, priority, delay).await
    }
}

#[async_trait]
impl JobInbox for EmbeddedStore {
    async fn receive_batch(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>> {
        self.system_queue().receive_batch(max, visibility).await
    }

    async fn settle(&self, delivery: &Delivery, outcome: Handled) -> Result<()> {
        self.system_queue().settle(delivery, outcome).await
    }
}
