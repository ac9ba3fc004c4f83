//! Webhooks on the embedded store (SPEC §8.6). Pending deliveries are their own queue: an index
//! by due time (`due ms \0 webhook \0 event`), kept in the same transaction as every write of a
//! delivery, so a delivery is due exactly while it is pending and nobody's attempt holds it.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redb::{ReadableTable, WriteTransaction};

use super::store::{EmbeddedStore, Table, decode, encode, internal, key, scan_page, scan_prefix};
use crate::domain::error::{Error, Result};
use crate::domain::ids::{UserId, WebhookId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::webhooks::{AttemptOutcome, DeliveryAttempt, DeliveryKey, DeliveryState, Webhook, WebhookDelivery};
use crate::ports::{Handled, QueuedDelivery, WebhookQueue, WebhookStore};

/// `id` → `Webhook`.
pub(super) const WEBHOOKS: Table = redb::TableDefinition::new("webhooks");
/// `webhook \0 event` → `WebhookDelivery`.
pub(super) const WEBHOOK_DELIVERIES: Table = redb::TableDefinition::new("webhook_deliveries");
/// `due ms (20 digits) \0 webhook \0 event` → nothing: the pending deliveries by due time.
pub(super) const WEBHOOK_DUE: Table = redb::TableDefinition::new("webhook_due");
/// `webhook \0 attempt id` → `DeliveryAttempt`.
pub(super) const WEBHOOK_ATTEMPTS: Table = redb::TableDefinition::new("webhook_attempts");

fn millis(at: DateTime<Utc>) -> u64 {
    u64::try_from(at.timestamp_millis()).unwrap_or(0)
}

/// Where a delivery sits in the due index: pending ones only, at their next attempt or when the
/// attempt holding them lets go, whichever is later.
fn due_key(d: &WebhookDelivery) -> Option<String> {
    (d.state == DeliveryState::Pending).then(|| {
        let due = d.lease_until.map_or(d.next_attempt_at, |held| held.max(d.next_attempt_at));
        format!("{:020}\0{}\0{}", millis(due), d.webhook, d.event.id)
    })
}

fn delivery_key(k: &DeliveryKey) -> String {
    key(&[k.webhook.as_str(), &k.event])
}

fn read_webhook(txn: &WriteTransaction, id: &WebhookId) -> Result<Option<Webhook>> {
    let table = txn.open_table(WEBHOOKS).map_err(internal)?;
    let found = table.get(id.as_str()).map_err(internal)?;
    found.map(|bytes| decode(bytes.value())).transpose()
}

fn put_webhook(txn: &WriteTransaction, webhook: &Webhook) -> Result<()> {
    txn.open_table(WEBHOOKS)
        .map_err(internal)?
        .insert(webhook.id.as_str(), encode(webhook)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

fn read_delivery(txn: &WriteTransaction, k: &DeliveryKey) -> Result<Option<WebhookDelivery>> {
    let table = txn.open_table(WEBHOOK_DELIVERIES).map_err(internal)?;
    let found = table.get(delivery_key(k).as_str()).map_err(internal)?;
    found.map(|bytes| decode(bytes.value())).transpose()
}

/// Writes `new` over `old` (if any), moving it in the due index.
fn put_delivery(txn: &WriteTransaction, old: Option<&WebhookDelivery>, new: &WebhookDelivery) -> Result<()> {
    let mut due = txn.open_table(WEBHOOK_DUE).map_err(internal)?;
    if let Some(k) = old.and_then(due_key) {
        due.remove(k.as_str()).map_err(internal)?;
    }
    if let Some(k) = due_key(new) {
        due.insert(k.as_str(), [].as_slice()).map_err(internal)?;
    }
    txn.open_table(WEBHOOK_DELIVERIES)
        .map_err(internal)?
        .insert(delivery_key(&new.key()).as_str(), encode(new)?.as_slice())
        .map_err(internal)?;
    Ok(())
}

/// The delivery as stored, if it is still at `expected_version`.
fn current_delivery(txn: &WriteTransaction, k: &DeliveryKey, expected_version: u64) -> Result<WebhookDelivery> {
    let stored = read_delivery(txn, k)?.ok_or(Error::NotFound)?;
    if stored.version != expected_version {
        return Err(Error::VersionMismatch { current_version: stored.version });
    }
    Ok(stored)
}

/// At start-up: lets go of every delivery an attempt of the dead process held; how many.
pub(super) fn release_delivery_leases(txn: &WriteTransaction, now: DateTime<Utc>) -> Result<usize> {
    let held: Vec<WebhookDelivery> = {
        let table = txn.open_table(WEBHOOK_DELIVERIES).map_err(internal)?;
        let mut held = Vec::new();
        for entry in table.iter().map_err(internal)? {
            let (_, v) = entry.map_err(internal)?;
            let d: WebhookDelivery = decode(v.value())?;
            if d.state == DeliveryState::Pending && d.lease_until.is_some_and(|until| until > now) {
                held.push(d);
            }
        }
        held
    };
    for d in &held {
        let mut free = d.clone();
        free.lease_until = None;
        free.version += 1;
        put_delivery(txn, Some(d), &free)?;
    }
    Ok(held.len())
}

/// Forgets log entries and finished deliveries whose ids (ULIDs of their time) sort before
/// `horizon`, as the events they delivered are forgotten. Pending ones stay until they finish.
pub(super) fn forget_deliveries_before(txn: &WriteTransaction, horizon: &str) -> Result<()> {
    let old_id = |key: &str| key.rsplit('\0').next().is_some_and(|id| id.len() == 26 && id < horizon);
    let mut log = txn.open_table(WEBHOOK_ATTEMPTS).map_err(internal)?;
    let mut gone = Vec::new();
    for entry in log.iter().map_err(internal)? {
        let (k, _) = entry.map_err(internal)?;
        if old_id(k.value()) {
            gone.push(k.value().to_owned());
        }
    }
    for k in &gone {
        log.remove(k.as_str()).map_err(internal)?;
    }
    let mut deliveries = txn.open_table(WEBHOOK_DELIVERIES).map_err(internal)?;
    let mut finished = Vec::new();
    for entry in deliveries.iter().map_err(internal)? {
        let (k, v) = entry.map_err(internal)?;
        if old_id(k.value()) && decode::<WebhookDelivery>(v.value())?.state != DeliveryState::Pending {
            finished.push(k.value().to_owned());
        }
    }
    for k in &finished {
        deliveries.remove(k.as_str()).map_err(internal)?;
    }
    Ok(())
}

#[async_trait]
impl WebhookStore for EmbeddedStore {
    async fn create_webhook(&self, webhook: &Webhook, max: usize) -> Result<()> {
        let webhook = webhook.clone();
        self.write(move |txn| {
            let table = txn.open_table(WEBHOOKS).map_err(internal)?;
            let mut mine = 0;
            for entry in table.iter().map_err(internal)? {
                let (_, v) = entry.map_err(internal)?;
                if decode::<Webhook>(v.value())?.owner == webhook.owner {
                    mine += 1;
                }
            }
            drop(table);
            if mine >= max {
                return Err(Error::Conflict {
                    detail: format!("A user may have at most {max} webhook endpoints."),
                    current_status: None,
                });
            }
            put_webhook(txn, &webhook)
        })
        .await
    }

    async fn webhook(&self, owner: &UserId, id: &WebhookId) -> Result<Webhook> {
        let (owner, id) = (owner.clone(), id.clone());
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOKS).map_err(internal)?;
            let found = table.get(id.as_str()).map_err(internal)?;
            match found.map(|bytes| decode::<Webhook>(bytes.value())).transpose()? {
                Some(webhook) if webhook.owner == owner => Ok(webhook),
                _ => Err(Error::NotFound),
            }
        })
        .await
    }

    async fn owner_webhooks(&self, owner: &UserId) -> Result<Vec<Webhook>> {
        let owner = owner.clone();
        Ok(self.all_webhooks().await?.into_iter().filter(|w| w.owner == owner).collect())
    }

    async fn active_webhooks(&self) -> Result<Vec<Webhook>> {
        Ok(self.all_webhooks().await?.into_iter().filter(|w| w.is_active).collect())
    }

    async fn save_webhook(&self, webhook: &Webhook, expected_version: u64) -> Result<()> {
        let webhook = webhook.clone();
        self.write(move |txn| {
            let stored = read_webhook(txn, &webhook.id)?.ok_or(Error::NotFound)?;
            if stored.version != expected_version {
                return Err(Error::VersionMismatch { current_version: stored.version });
            }
            put_webhook(txn, &webhook)
        })
        .await
    }

    async fn delete_webhook(&self, owner: &UserId, id: &WebhookId) -> Result<()> {
        let (owner, id) = (owner.clone(), id.clone());
        self.write(move |txn| {
            match read_webhook(txn, &id)? {
                Some(webhook) if webhook.owner == owner => {}
                _ => return Err(Error::NotFound),
            }
            txn.open_table(WEBHOOKS).map_err(internal)?.remove(id.as_str()).map_err(internal)?;
            let deliveries: Vec<WebhookDelivery> =
                scan_prefix(&txn.open_table(WEBHOOK_DELIVERIES).map_err(internal)?, id.as_str())?;
            let mut table = txn.open_table(WEBHOOK_DELIVERIES).map_err(internal)?;
            let mut due = txn.open_table(WEBHOOK_DUE).map_err(internal)?;
            for d in &deliveries {
                table.remove(delivery_key(&d.key()).as_str()).map_err(internal)?;
                if let Some(k) = due_key(d) {
                    due.remove(k.as_str()).map_err(internal)?;
                }
            }
            let attempts: Vec<DeliveryAttempt> =
                scan_prefix(&txn.open_table(WEBHOOK_ATTEMPTS).map_err(internal)?, id.as_str())?;
            let mut log = txn.open_table(WEBHOOK_ATTEMPTS).map_err(internal)?;
            for a in &attempts {
                log.remove(key(&[id.as_str(), &a.id]).as_str()).map_err(internal)?;
            }
            Ok(())
        })
        .await
    }

    async fn add_deliveries(&self, deliveries: Vec<WebhookDelivery>) -> Result<Vec<WebhookDelivery>> {
        self.write(move |txn| {
            let mut waiting = Vec::new();
            for d in deliveries {
                match read_delivery(txn, &d.key())? {
                    None => {
                        put_delivery(txn, None, &d)?;
                        waiting.push(d);
                    }
                    Some(stored) if stored.state == DeliveryState::Pending && stored.attempts == 0 => {
                        waiting.push(stored);
                    }
                    Some(_) => {}
                }
            }
            Ok(waiting)
        })
        .await
    }

    async fn delivery(&self, k: &DeliveryKey) -> Result<WebhookDelivery> {
        let k = k.clone();
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOK_DELIVERIES).map_err(internal)?;
            let found = table.get(delivery_key(&k).as_str()).map_err(internal)?;
            found.map(|bytes| decode(bytes.value())).transpose()?.ok_or(Error::NotFound)
        })
        .await
    }

    async fn save_delivery(&self, delivery: &WebhookDelivery, expected_version: u64) -> Result<()> {
        let delivery = delivery.clone();
        self.write(move |txn| {
            let stored = current_delivery(txn, &delivery.key(), expected_version)?;
            put_delivery(txn, Some(&stored), &delivery)
        })
        .await
    }

    async fn finish_attempt(&self, outcome: AttemptOutcome, webhook_version: u64) -> Result<()> {
        self.write(move |txn| {
            let claimed_version = outcome.delivery.version - 1;
            let stored = current_delivery(txn, &outcome.delivery.key(), claimed_version)?;
            if let Some(webhook) = &outcome.webhook {
                match read_webhook(txn, &webhook.id)? {
                    Some(current) if current.version == webhook_version => put_webhook(txn, webhook)?,
                    Some(current) => return Err(Error::VersionMismatch { current_version: current.version }),
                    // Deleted while the attempt ran: the log goes with it.
                    None => return put_delivery(txn, Some(&stored), &outcome.delivery.abandoned()),
                }
            }
            put_delivery(txn, Some(&stored), &outcome.delivery)?;
            txn.open_table(WEBHOOK_ATTEMPTS)
                .map_err(internal)?
                .insert(
                    key(&[outcome.attempt.webhook.as_str(), &outcome.attempt.id]).as_str(),
                    encode(&outcome.attempt)?.as_slice(),
                )
                .map_err(internal)?;
            if let Some(event) = outcome.event {
                super::events::put(txn, vec![event])?;
            }
            Ok(())
        })
        .await
    }

    async fn attempts(&self, webhook: &WebhookId, page: &PageRequest) -> Result<Page<DeliveryAttempt>> {
        let (webhook, page) = (webhook.clone(), page.clone());
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOK_ATTEMPTS).map_err(internal)?;
            let scanned = scan_page(&table, webhook.as_str(), &page, |_, bytes| Ok(Some(decode(bytes)?)))?;
            Ok(Page::from_scan(scanned, &page))
        })
        .await
    }

    async fn attempt(&self, webhook: &WebhookId, id: &str) -> Result<DeliveryAttempt> {
        let k = key(&[webhook.as_str(), id]);
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOK_ATTEMPTS).map_err(internal)?;
            let found = table.get(k.as_str()).map_err(internal)?;
            found.map(|bytes| decode(bytes.value())).transpose()?.ok_or(Error::NotFound)
        })
        .await
    }
}

impl EmbeddedStore {
    async fn all_webhooks(&self) -> Result<Vec<Webhook>> {
        self.read(|txn| {
            let table = txn.open_table(WEBHOOKS).map_err(internal)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(internal)? {
                let (_, v) = entry.map_err(internal)?;
                out.push(decode(v.value())?);
            }
            Ok(out)
        })
        .await
    }
}

/// The embedded store's webhook queue: the due index, read on the system clock.
#[async_trait]
impl WebhookQueue for EmbeddedStore {
    async fn send(&self, _key: &DeliveryKey, _delay: Duration) -> Result<()> {
        // A pending delivery is in the due index from the write that made it pending.
        Ok(())
    }

    async fn receive(&self, max: u32, _visibility: Duration) -> Result<Vec<QueuedDelivery>> {
        // A claim moves a delivery past its lease in the same index: no hiding needed here.
        let now = millis(Utc::now());
        self.read(move |txn| {
            let table = txn.open_table(WEBHOOK_DUE).map_err(internal)?;
            let mut out = Vec::new();
            for entry in table.iter().map_err(internal)? {
                let (k, _) = entry.map_err(internal)?;
                let mut parts = k.value().splitn(3, '\0');
                let due: u64 = parts.next().and_then(|d| d.parse().ok()).unwrap_or(u64::MAX);
                if due > now || out.len() >= max as usize {
                    break;
                }
                if let (Some(webhook), Some(event)) = (parts.next().and_then(WebhookId::parse), parts.next()) {
                    out.push(QueuedDelivery { key: DeliveryKey { webhook, event: event.to_owned() }, message: None });
                }
            }
            Ok(out)
        })
        .await
    }

    async fn settle(&self, _delivery: &QueuedDelivery, _outcome: Handled) -> Result<()> {
        Ok(())
    }
}
