//! Webhooks (SPEC §8.6): the owner's endpoints and their log, and the dispatcher that turns the
//! event feed into deliveries and makes each attempt.
//!
//! The feed is the outbox. Every event is written in the atomic write of its change, so a
//! delivery derived from it later can be lost only if the feed is: the fan-out reads each active
//! endpoint's events past its cursor, adds one delivery per endpoint and event (a second add of the
//! same pair does nothing, so a fan-out that crashed half way is simply run again), and only then
//! moves the cursor. Where ids may be committed slightly out of order (DynamoDB, ids from several
//! processes) it reads back over the store's reorder window.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::domain::error::{Error, Result};
use crate::domain::events::{Event, EventType};
use crate::domain::ids::{UserId, WebhookId};
use crate::domain::pagination::{Page, PageRequest};
use crate::domain::webhooks::{
    DeliveryAttempt, DeliveryKey, DeliveryState, MAX_WEBHOOKS_PER_USER, NotNow, SECRET_BYTES, Webhook, WebhookDelivery,
    after_attempt, delivery_body, ping_event, signature,
};
use crate::ports::{Clock, EventFilter, EventStore, Handled, IdGenerator, WebhookQueue, WebhookSender, WebhookStore};

/// How the dispatcher paces itself.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebhookSettings {
    /// Multiplies the retry schedule (`AIVIDEO_WEBHOOK_RETRY_SCALE`, default 1; tests shrink it).
    pub retry_scale: f64,
    /// How long an attempt holds its delivery (longer than the send timeout).
    pub lease: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self { retry_scale: 1.0, lease: crate::domain::webhooks::DELIVERY_TIMEOUT + Duration::from_secs(20) }
    }
}

/// A new endpoint as asked for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookDraft {
    /// Where to deliver.
    pub url: String,
    /// What to deliver (empty: everything).
    pub event_types: Vec<EventType>,
    /// The owner's note.
    pub description: String,
}

/// A change to an endpoint (absent fields stay).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WebhookPatch {
    /// A new URL.
    pub url: Option<String>,
    /// New types.
    pub event_types: Option<Vec<EventType>>,
    /// A new note.
    pub description: Option<String>,
    /// On or off.
    pub is_active: Option<bool>,
}

/// The webhook use cases and the dispatcher.
#[derive(Clone)]
pub struct WebhookService {
    store: Arc<dyn WebhookStore>,
    events: Arc<dyn EventStore>,
    queue: Arc<dyn WebhookQueue>,
    sender: Arc<dyn WebhookSender>,
    clock: Arc<dyn Clock>,
    ids: Arc<dyn IdGenerator>,
    settings: WebhookSettings,
}

/// A delivery of a late event (before the cursor) waiting for its first attempt this long is taken
/// to have lost its message and is sent again by the next fan-out that reads it back.
const RESEND_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(10);
/// Times a write that lost a race is tried again.
const ATTEMPTS: usize = 8;

impl WebhookService {
    /// The service on its ports.
    pub fn new(
        store: Arc<dyn WebhookStore>,
        events: Arc<dyn EventStore>,
        queue: Arc<dyn WebhookQueue>,
        sender: Arc<dyn WebhookSender>,
        clock: Arc<dyn Clock>,
        ids: Arc<dyn IdGenerator>,
        settings: WebhookSettings,
    ) -> Self {
        Self { store, events, queue, sender, clock, ids, settings }
    }

    async fn check_url(&self, url: &str) -> Result<()> {
        self.sender.check(url).await.map_err(|reason| Error::field("url", reason))
    }

    /// Registers an endpoint: its URL checked as a delivery would be; the answer is the only
    /// place its secret is ever shown.
    pub async fn create(&self, owner: &UserId, draft: WebhookDraft) -> Result<Webhook> {
        self.check_url(&draft.url).await?;
        let mut random = [0u8; SECRET_BYTES];
        getrandom::fill(&mut random).map_err(Error::internal)?;
        let id = WebhookId::from_ulid(self.ids.new_id());
        let mut webhook = Webhook::new(id, owner.clone(), draft.url, &random, self.clock.now());
        webhook.event_types = draft.event_types;
        webhook.description = draft.description;
        self.store.create_webhook(&webhook, MAX_WEBHOOKS_PER_USER).await?;
        Ok(webhook)
    }

    /// The owner's endpoints, oldest first.
    pub async fn list(&self, owner: &UserId, page: &PageRequest) -> Result<Page<Webhook>> {
        let all = self.store.owner_webhooks(owner).await?;
        Ok(Page::from_sorted(all.into_iter().map(|w| (w.id.to_string(), w)).collect(), page))
    }

    /// One of the owner's endpoints.
    pub async fn get(&self, owner: &UserId, id: &WebhookId) -> Result<Webhook> {
        self.store.webhook(owner, id).await
    }

    /// Changes an endpoint; a new URL is checked first.
    pub async fn update(&self, owner: &UserId, id: &WebhookId, patch: WebhookPatch) -> Result<Webhook> {
        if let Some(url) = &patch.url {
            self.check_url(url).await?;
        }
        for _ in 0..ATTEMPTS {
            let current = self.store.webhook(owner, id).await?;
            let mut changed = current.clone();
            if let Some(url) = &patch.url {
                changed.url.clone_from(url);
            }
            if let Some(types) = &patch.event_types {
                changed.event_types.clone_from(types);
            }
            if let Some(description) = &patch.description {
                changed.description.clone_from(description);
            }
            if let Some(active) = patch.is_active {
                changed = changed.set_active(active);
            }
            changed.version += 1;
            match self.store.save_webhook(&changed, current.version).await {
                Ok(()) => return Ok(changed),
                Err(Error::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict { detail: "The webhook is changing too often; try again.".into(), current_status: None })
    }

    /// Deletes an endpoint with its deliveries and log.
    pub async fn delete(&self, owner: &UserId, id: &WebhookId) -> Result<()> {
        self.store.delete_webhook(owner, id).await
    }

    /// A page of an endpoint's delivery log.
    pub async fn log(&self, owner: &UserId, id: &WebhookId, page: &PageRequest) -> Result<Page<DeliveryAttempt>> {
        self.store.webhook(owner, id).await?;
        self.store.attempts(id, page).await
    }

    /// Sends the event of a logged attempt again (same `webhook-id`), with a fresh schedule.
    pub async fn redeliver(&self, owner: &UserId, id: &WebhookId, attempt: &str) -> Result<WebhookDelivery> {
        let webhook = self.store.webhook(owner, id).await?;
        let logged = self.store.attempt(id, attempt).await?;
        if !webhook.is_active {
            return Err(disabled());
        }
        let key = DeliveryKey { webhook: id.clone(), event: logged.event };
        for _ in 0..ATTEMPTS {
            let current = self.store.delivery(&key).await?;
            let now = self.clock.now();
            if current.state == DeliveryState::Pending && current.lease_until.is_some_and(|held| held > now) {
                // Restarting it now would make the attempt under way unable to record itself.
                return Err(Error::Conflict {
                    detail: "The delivery is being attempted; try again in a moment.".into(),
                    current_status: None,
                });
            }
            let again = current.restarted(now);
            match self.store.save_delivery(&again, current.version).await {
                Ok(()) => {
                    self.queue.send(&key, Duration::ZERO).await?;
                    return Ok(again);
                }
                Err(Error::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict { detail: "The delivery is being attempted; try again.".into(), current_status: None })
    }

    /// Sends a `webhook.ping` event to this endpoint only.
    pub async fn ping(&self, owner: &UserId, id: &WebhookId) -> Result<WebhookDelivery> {
        let webhook = self.store.webhook(owner, id).await?;
        if !webhook.is_active {
            return Err(disabled());
        }
        let now = self.clock.now();
        let event = ping_event(&webhook, self.ids.new_id().to_string(), now);
        let added = self.store.add_deliveries(vec![WebhookDelivery::new(&webhook, event, now)]).await?;
        for d in &added {
            self.queue.send(&d.key(), Duration::ZERO).await?;
        }
        added.into_iter().next().ok_or_else(|| Error::internal("the ping was not added"))
    }

    /// The same service delivering through `sender` (tests: a stricter address policy).
    pub fn with_sender(&self, sender: Arc<dyn WebhookSender>) -> Self {
        Self { sender, ..self.clone() }
    }

    /// Adds the deliveries of every active endpoint's new events; how many were sent.
    pub async fn fan_out_all(&self) -> Result<usize> {
        let mut sent = 0;
        for webhook in self.store.active_webhooks().await? {
            sent += self.fan_out(webhook).await?;
        }
        Ok(sent)
    }

    /// The same for one owner's endpoints (what a change in their feed triggers on AWS).
    pub async fn fan_out_owner(&self, owner: &UserId) -> Result<usize> {
        let mut sent = 0;
        for webhook in self.store.owner_webhooks(owner).await?.into_iter().filter(|w| w.is_active) {
            sent += self.fan_out(webhook).await?;
        }
        Ok(sent)
    }

    async fn fan_out(&self, webhook: Webhook) -> Result<usize> {
        let window = self.events.reorder_window();
        let start = webhook.cursor.as_deref().and_then(|c| c.parse::<ulid::Ulid>().ok()).map(|cursor| {
            if window.is_zero() {
                cursor.to_string()
            } else {
                let back = cursor.datetime().checked_sub(window).unwrap_or(std::time::UNIX_EPOCH);
                ulid::Ulid::from_parts(ulid::Ulid::from_datetime(back).timestamp_ms(), 0).to_string()
            }
        });
        let mut page = PageRequest { position: start, limit: 100, ..PageRequest::default() };
        let mut events: Vec<Event> = Vec::new();
        loop {
            let found = self.events.events(&webhook.owner, &EventFilter::default(), &page).await?;
            events.extend(found.items);
            match found.next {
                Some(next) => page.position = Some(next),
                None => break,
            }
        }
        let last = events.iter().map(|e| e.id.clone()).max();
        let now = self.clock.now();
        let wanted: Vec<WebhookDelivery> =
            events.into_iter().filter(|e| webhook.wants(e)).map(|e| WebhookDelivery::new(&webhook, e, now)).collect();
        let mut sent = 0;
        if !wanted.is_empty() {
            let added = self.store.add_deliveries(wanted).await?;
            crate::crash_point!("webhook.fanned_out");
            for d in added {
                // Sent unless a fan-out already did: the cursor moves only after the sends, so
                // one waiting past the cursor was added by a fan-out that died before sending (or
                // is sending beside this one: a second message is harmless, a claim has one
                // winner). One before the cursor (a late event read back over the reorder window)
                // is sent again only once it has waited long enough for its message to be lost.
                let past_cursor = webhook.cursor.as_ref().is_none_or(|c| &d.event.id > c);
                if d.created_at == now || past_cursor || d.created_at < now - RESEND_AFTER {
                    self.queue.send(&d.key(), Duration::ZERO).await?;
                    sent += 1;
                }
            }
        }
        if let Some(last) = last.filter(|last| webhook.cursor.as_ref().is_none_or(|c| last > c)) {
            let mut moved = webhook.clone();
            moved.cursor = Some(last);
            moved.version += 1;
            match self.store.save_webhook(&moved, webhook.version).await {
                // Changed meanwhile (an attempt, an edit): the next fan-out moves it, adding nothing twice.
                Ok(()) | Err(Error::VersionMismatch { .. } | Error::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sent)
    }

    /// One round of the in-process consumer: fan out, then attempt what is due; how many attempts.
    pub async fn run_once(&self) -> Result<usize> {
        if let Err(e) = self.fan_out_all().await {
            tracing::warn!(error = %e, "webhook fan-out failed; trying again next round");
        }
        let visibility = self.settings.lease + Duration::from_secs(5);
        let due = self.queue.receive(10, visibility).await?;
        let attempts = due.len();
        // Receivers are slow (up to the timeout each): a batch is attempted at once.
        let mut set = tokio::task::JoinSet::new();
        for queued in due {
            let service = self.clone();
            set.spawn(async move {
                let outcome = service.attempt(&queued.key).await;
                if let Err(e) = service.queue.settle(&queued, outcome).await {
                    tracing::warn!(error = %e, "settling a webhook message failed; it comes back");
                }
            });
        }
        while set.join_next().await.is_some() {}
        Ok(attempts)
    }

    /// [`Self::attempt`] for a message the Lambda event source mapping handed over: one that must
    /// wait is hidden until its next attempt (and left in the queue); a done one is left to the
    /// mapping to delete.
    pub async fn attempt_message(&self, queued: &crate::ports::QueuedDelivery) -> Handled {
        let outcome = self.attempt(&queued.key).await;
        if let Handled::Failed { .. } = outcome
            && let Err(e) = self.queue.settle(queued, outcome).await
        {
            tracing::warn!(error = %e, "could not delay a webhook message; it comes back after its visibility timeout");
        }
        outcome
    }

    /// Makes one attempt of a delivery if it is due: claim it, sign and POST it, record what
    /// happened (one write). What the queue should do with its message.
    pub async fn attempt(&self, key: &DeliveryKey) -> Handled {
        match self.try_attempt(key).await {
            Ok(outcome) => outcome,
            Err(e) => {
                tracing::warn!(webhook = %key.webhook, event = %key.event, error = %e, "webhook attempt failed on our side");
                Handled::Failed { retry_after: Duration::from_secs(5) }
            }
        }
    }

    async fn try_attempt(&self, key: &DeliveryKey) -> Result<Handled> {
        let delivery = match self.store.delivery(key).await {
            Ok(d) => d,
            Err(Error::NotFound) => return Ok(Handled::Done),
            Err(e) => return Err(e),
        };
        let now = self.clock.now();
        let claimed = match delivery.claim(now, self.settings.lease) {
            Ok(claimed) => claimed,
            Err(NotNow::Finished) => return Ok(Handled::Done),
            Err(NotNow::Wait(wait)) => return Ok(Handled::Failed { retry_after: wait.max(Duration::from_millis(1)) }),
        };
        let webhook = match self.store.webhook(&delivery.owner, &delivery.webhook).await {
            Ok(w) if w.is_active => w,
            Ok(_) | Err(Error::NotFound) => {
                // Switched off or deleted: this delivery will never be made.
                return match self.store.save_delivery(&delivery.abandoned(), delivery.version).await {
                    Ok(()) | Err(Error::NotFound | Error::VersionMismatch { .. }) => Ok(Handled::Done),
                    Err(e) => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        match self.store.save_delivery(&claimed, delivery.version).await {
            Ok(()) => {}
            // Another consumer claimed it first: theirs to make.
            Err(Error::VersionMismatch { .. } | Error::NotFound) => return Ok(Handled::Done),
            Err(e) => return Err(e),
        }
        crate::crash_point!("webhook.claimed");
        let timestamp = Utc::now().timestamp();
        let body = delivery_body(&claimed.event);
        let signed = signature(&webhook.secret, &claimed.event.id, timestamp, &body)
            .map_err(|_| Error::internal("a webhook secret is not base64"))?;
        let headers = vec![
            ("webhook-id".to_owned(), claimed.event.id.clone()),
            ("webhook-timestamp".to_owned(), timestamp.to_string()),
            ("webhook-signature".to_owned(), signed),
        ];
        let result = self.sender.send(&webhook.url, &headers, &body).await;
        crate::crash_point!("webhook.sent");
        let mut webhook = webhook;
        for _ in 0..ATTEMPTS {
            let done = after_attempt(
                &claimed,
                &webhook,
                &result,
                self.ids.new_id().to_string(),
                self.clock.now(),
                self.settings.retry_scale,
            );
            let next = (done.delivery.state == DeliveryState::Pending).then_some(done.delivery.next_attempt_at);
            match self.store.finish_attempt(done, webhook.version).await {
                Ok(()) => {
                    return Ok(match next {
                        Some(at) => Handled::Failed {
                            retry_after: (at - self.clock.now())
                                .to_std()
                                .unwrap_or_default()
                                .max(Duration::from_millis(1)),
                        },
                        None => Handled::Done,
                    });
                }
                Err(Error::VersionMismatch { .. }) => {
                    // The endpoint changed meanwhile (another delivery's attempt, an edit): count
                    // this attempt against what it is now — unless the delivery itself moved on.
                    if self.store.delivery(key).await?.version != claimed.version {
                        return Ok(Handled::Done);
                    }
                    webhook = match self.store.webhook(&delivery.owner, &delivery.webhook).await {
                        Ok(w) => w,
                        Err(Error::NotFound) => return Ok(Handled::Done),
                        Err(e) => return Err(e),
                    };
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::internal("the webhook kept changing while an attempt was recorded"))
    }
}

fn disabled() -> Error {
    Error::Conflict {
        detail: "The webhook is disabled; enable it first (is_active: true).".into(),
        current_status: None,
    }
}
