//! Webhooks (SPEC §8.6, Standard Webhooks): endpoints a user registers, the deliveries of their
//! events to each, and the rules of a delivery's life — signing, the retry schedule, disabling an
//! endpoint that keeps failing. Pure: the stores write what these functions return, in one atomic
//! write each, and the sender adapter does the HTTP.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;

use crate::domain::events::{Event, EventDraft, EventType};
use crate::domain::ids::{UserId, WebhookId};

/// What every secret starts with (Standard Webhooks).
pub const SECRET_PREFIX: &str = "whsec_";
/// Random bytes in a secret (the format asks for 24 or more).
pub const SECRET_BYTES: usize = 32;
/// Failed deliveries in a row after which an endpoint is disabled.
pub const DISABLE_AFTER_FAILURES: u32 = 20;
/// How long a receiver has to answer.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// The most of a receiver's answer the log keeps.
pub const RESPONSE_EXCERPT_BYTES: usize = 1024;
/// The waits before each retry of a failed delivery: 8 attempts in all, over about 28 hours.
pub const RETRY_SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];
/// Longest URL accepted.
pub const MAX_URL_LENGTH: usize = 2048;
/// Longest description accepted.
pub const MAX_DESCRIPTION_LENGTH: usize = 500;
/// Endpoints one user may have.
pub const MAX_WEBHOOKS_PER_USER: usize = 20;

/// A registered endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    /// Its id.
    pub id: WebhookId,
    /// Whose.
    pub owner: UserId,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The types it receives; empty: all.
    pub event_types: Vec<EventType>,
    /// The owner's note.
    pub description: String,
    /// Whether deliveries are made.
    pub is_active: bool,
    /// Failed deliveries since the last success.
    pub consecutive_failures: u32,
    /// Why it was disabled, when the server disabled it.
    pub disabled_reason: Option<String>,
    /// `whsec_…`: shown once, in the creation answer.
    pub secret: String,
    /// The last event handed to it (the fan-out's position in the feed).
    pub cursor: Option<String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// Bumped by every write: writes are conditioned on it.
    pub version: u64,
}

impl Webhook {
    /// A new active endpoint with a fresh secret made of `random` (at least [`SECRET_BYTES`]).
    pub fn new(id: WebhookId, owner: UserId, url: String, random: &[u8], at: DateTime<Utc>) -> Self {
        Self {
            id,
            owner,
            url,
            event_types: Vec::new(),
            description: String::new(),
            is_active: true,
            consecutive_failures: 0,
            disabled_reason: None,
            secret: format!("{SECRET_PREFIX}{}", STANDARD.encode(random)),
            cursor: Some(ulid::Ulid::from_datetime(at.into()).to_string()),
            created_at: at,
            version: 1,
        }
    }

    /// Whether `event` goes to this endpoint: made since it was registered, of a type it takes.
    pub fn wants(&self, event: &Event) -> bool {
        event.created_at >= self.created_at && (self.event_types.is_empty() || self.event_types.contains(&event.kind))
    }

    /// `self` switched on or off by its owner: switching on clears what disabled it.
    pub fn set_active(mut self, active: bool) -> Self {
        if active && !self.is_active {
            self.consecutive_failures = 0;
            self.disabled_reason = None;
        }
        self.is_active = active;
        self
    }
}

/// Which delivery: one per endpoint and event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryKey {
    /// The endpoint.
    pub webhook: WebhookId,
    /// The event (also the `webhook-id` header).
    pub event: String,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Every attempt of the schedule failed.
    Failed,
    /// Its endpoint was disabled or deleted before it got through.
    Abandoned,
}

/// One event on its way to one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    /// The endpoint.
    pub webhook: WebhookId,
    /// Whose.
    pub owner: UserId,
    /// The event, as sent.
    pub event: Event,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far (all of them, redeliveries included).
    pub attempts: u32,
    /// Retries of the schedule used since it was (re)started.
    pub retries: u32,
    /// When it may next be attempted.
    pub next_attempt_at: DateTime<Utc>,
    /// Held by an attempt under way until then.
    pub lease_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Bumped by every write: writes are conditioned on it.
    pub version: u64,
}

/// Why a delivery cannot be attempted now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotNow {
    /// Not due, or held by another attempt, for this long still.
    Wait(Duration),
    /// Delivered, failed or abandoned: nothing more to do.
    Finished,
}

fn until(now: DateTime<Utc>, then: DateTime<Utc>) -> Duration {
    (then - now).to_std().unwrap_or(Duration::ZERO)
}

impl WebhookDelivery {
    /// A new delivery of `event` to `webhook`, due at once.
    pub fn new(webhook: &Webhook, event: Event, now: DateTime<Utc>) -> Self {
        Self {
            webhook: webhook.id.clone(),
            owner: webhook.owner.clone(),
            event,
            state: DeliveryState::Pending,
            attempts: 0,
            retries: 0,
            next_attempt_at: now,
            lease_until: None,
            created_at: now,
            version: 1,
        }
    }

    /// Which delivery this is.
    pub fn key(&self) -> DeliveryKey {
        DeliveryKey { webhook: self.webhook.clone(), event: self.event.id.clone() }
    }

    /// `self` held for an attempt for `lease`, if it is due and nobody holds it.
    pub fn claim(&self, now: DateTime<Utc>, lease: Duration) -> Result<Self, NotNow> {
        if self.state != DeliveryState::Pending {
            return Err(NotNow::Finished);
        }
        if self.next_attempt_at > now {
            return Err(NotNow::Wait(until(now, self.next_attempt_at)));
        }
        if let Some(held) = self.lease_until.filter(|held| *held > now) {
            return Err(NotNow::Wait(until(now, held)));
        }
        let mut claimed = self.clone();
        claimed.lease_until = Some(now + chrono::Duration::from_std(lease).unwrap_or_default());
        claimed.version += 1;
        Ok(claimed)
    }

    /// `self` started over (`redeliver/`): due now, with the whole schedule ahead of it.
    pub fn restarted(&self, now: DateTime<Utc>) -> Self {
        let mut again = self.clone();
        again.state = DeliveryState::Pending;
        again.retries = 0;
        again.next_attempt_at = now;
        again.lease_until = None;
        again.version += 1;
        again
    }

    /// `self` given up because its endpoint is off or gone.
    pub fn abandoned(&self) -> Self {
        let mut gone = self.clone();
        gone.state = DeliveryState::Abandoned;
        gone.lease_until = None;
        gone.version += 1;
        gone
    }
}

/// What one attempt got back.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttemptResult {
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// How long the attempt took.
    pub duration_ms: u64,
    /// The start of the receiver's answer (≤ 1 KiB).
    pub response_excerpt: String,
    /// Why it failed without an answer, or was not made (an address refused).
    pub error: Option<String>,
}

impl AttemptResult {
    /// A 2xx answer.
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}

/// One attempt in the delivery log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// Its id (a ULID: the log sorts by it).
    pub id: String,
    /// The endpoint.
    pub webhook: WebhookId,
    /// The event's id.
    pub event: String,
    /// The event's type.
    pub event_type: EventType,
    /// Which attempt of this event at this endpoint (1 for the first).
    pub attempt: u32,
    /// The receiver's status, if it answered.
    pub status_code: Option<u16>,
    /// How long it took.
    pub duration_ms: u64,
    /// The start of the answer.
    pub response_excerpt: String,
    /// Why it failed without an answer.
    pub error: Option<String>,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

/// Everything one finished attempt changes, written at once: the delivery, its endpoint's failure
/// count (and, at the limit, the endpoint disabled with its `webhook.disabled` event), the log.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptOutcome {
    /// The delivery after the attempt (the claimed copy's version + 1).
    pub delivery: WebhookDelivery,
    /// The endpoint after the attempt, when it changed.
    pub webhook: Option<Webhook>,
    /// The log entry.
    pub attempt: DeliveryAttempt,
    /// `webhook.disabled`, when this attempt disabled the endpoint.
    pub event: Option<EventDraft>,
}

/// The waits of the schedule, multiplied by `scale` (tests shrink them).
pub fn retry_delay(retries_used: u32, scale: f64) -> Option<Duration> {
    RETRY_SCHEDULE.get(retries_used as usize).map(|d| d.mul_f64(scale.max(0.0)))
}

/// What an attempt of `claimed` (to `webhook`, as read before the attempt) that got `result`
/// leads to. `attempt_id` names the log entry.
pub fn after_attempt(
    claimed: &WebhookDelivery,
    webhook: &Webhook,
    result: &AttemptResult,
    attempt_id: String,
    now: DateTime<Utc>,
    scale: f64,
) -> AttemptOutcome {
    let mut delivery = claimed.clone();
    delivery.attempts += 1;
    delivery.lease_until = None;
    delivery.version += 1;
    let attempt = DeliveryAttempt {
        id: attempt_id,
        webhook: claimed.webhook.clone(),
        event: claimed.event.id.clone(),
        event_type: claimed.event.kind,
        attempt: delivery.attempts,
        status_code: result.status_code,
        duration_ms: result.duration_ms,
        response_excerpt: result.response_excerpt.clone(),
        error: result.error.clone(),
        created_at: now,
    };
    let mut changed = webhook.clone();
    changed.version += 1;
    let mut event = None;
    if result.succeeded() {
        delivery.state = DeliveryState::Delivered;
        changed.consecutive_failures = 0;
    } else {
        // An attempt already under way when another one disabled the endpoint is logged, but
        // does not count: the count says why it was disabled.
        if changed.is_active {
            changed.consecutive_failures += 1;
        }
        if changed.is_active && changed.consecutive_failures >= DISABLE_AFTER_FAILURES {
            let reason = format!("Disabled after {DISABLE_AFTER_FAILURES} consecutive failed deliveries.");
            changed.is_active = false;
            changed.disabled_reason = Some(reason.clone());
            event = Some(EventDraft {
                owner: webhook.owner.clone(),
                kind: EventType::WebhookDisabled,
                story: None,
                job: None,
                data: json!({"webhook": webhook.id, "url": webhook.url, "reason": reason}),
                at: now,
            });
        }
        if !changed.is_active {
            delivery.state = DeliveryState::Abandoned;
        } else if let Some(wait) = retry_delay(claimed.retries, scale) {
            delivery.retries += 1;
            delivery.next_attempt_at = now + chrono::Duration::from_std(wait).unwrap_or_default();
        } else {
            delivery.state = DeliveryState::Failed;
        }
    }
    let webhook_changed = changed.consecutive_failures != webhook.consecutive_failures || event.is_some();
    AttemptOutcome { delivery, webhook: webhook_changed.then_some(changed), attempt, event }
}

/// The `webhook.ping` event `ping/` sends to one endpoint (never in the feed).
pub fn ping_event(webhook: &Webhook, id: String, now: DateTime<Utc>) -> Event {
    Event {
        id,
        owner: webhook.owner.clone(),
        kind: EventType::WebhookPing,
        created_at: now,
        story: None,
        job: None,
        data: json!({"webhook": webhook.id}),
    }
}

/// Why a secret cannot sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadSecret;

/// The `webhook-signature` header of `body` sent as message `id` at `timestamp` (Unix seconds):
/// `v1,` + base64 HMAC-SHA256 of `"{id}.{timestamp}.{body}"` keyed with the secret's bytes.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &str) -> Result<String, BadSecret> {
    let key = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).map_err(|_| BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The body of a delivery: the event as the feed shows it.
pub fn delivery_body(event: &Event) -> String {
    json!({
        "id": event.id, "type": event.kind, "created_at": event.created_at,
        "story": event.story, "job": event.job, "data": event.data,
    })
    .to_string()
}

/// At most [`RESPONSE_EXCERPT_BYTES`] of `text`, cut at a character boundary.
pub fn excerpt(text: &str) -> String {
    let mut end = text.len().min(RESPONSE_EXCERPT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    fn hook() -> Webhook {
        Webhook::new(
            WebhookId::from_ulid(ulid::Ulid::new()),
            UserId::parse("alice").unwrap(),
            "https://example.com/hooks".into(),
            &[7u8; SECRET_BYTES],
            at(0),
        )
    }

    fn delivery(webhook: &Webhook) -> WebhookDelivery {
        let event = ping_event(webhook, ulid::Ulid::new().to_string(), at(1));
        WebhookDelivery::new(webhook, event, at(1))
    }

    fn failed() -> AttemptResult {
        AttemptResult { status_code: Some(500), ..AttemptResult::default() }
    }

    #[test]
    fn signs_as_the_standard_webhooks_example_does() {
        // The example of the Standard Webhooks specification (and of its libraries' tests).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(signature("whsec_not base64!", "m", 1, "b"), Err(BadSecret));
    }

    #[test]
    fn a_secret_is_whsec_and_base64_of_its_random_bytes() {
        let secret = hook().secret;
        let bytes = STANDARD.decode(secret.strip_prefix(SECRET_PREFIX).unwrap()).unwrap();
        assert_eq!(bytes, vec![7u8; SECRET_BYTES]);
    }

    #[test]
    fn a_failing_delivery_follows_the_schedule_then_fails() {
        let webhook = hook();
        let mut d = delivery(&webhook).claim(at(1), Duration::from_secs(30)).unwrap();
        let mut now = at(1);
        let mut waits = Vec::new();
        loop {
            let out = after_attempt(&d, &webhook, &failed(), "A".into(), now, 1.0);
            if out.delivery.state != DeliveryState::Pending {
                assert_eq!(out.delivery.state, DeliveryState::Failed);
                assert_eq!(out.delivery.attempts, 8, "the first attempt and 7 retries");
                break;
            }
            waits.push((out.delivery.next_attempt_at - now).num_seconds());
            now = out.delivery.next_attempt_at;
            assert_eq!(
                out.delivery.claim(now - chrono::Duration::seconds(1), Duration::from_secs(30)).err().map(|_| ()),
                Some(())
            );
            d = out.delivery.claim(now, Duration::from_secs(30)).unwrap();
        }
        assert_eq!(waits, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(retry_delay(0, 0.001), Some(Duration::from_millis(5)));
    }

    #[test]
    fn twenty_failures_in_a_row_disable_the_endpoint_once_and_a_success_resets_the_count() {
        let mut webhook = hook();
        let d = delivery(&webhook).claim(at(1), Duration::from_secs(30)).unwrap();
        let ok = AttemptResult { status_code: Some(204), ..AttemptResult::default() };
        webhook.consecutive_failures = 5;
        let out = after_attempt(&d, &webhook, &ok, "A".into(), at(2), 1.0);
        assert_eq!(out.delivery.state, DeliveryState::Delivered);
        assert_eq!(out.webhook.unwrap().consecutive_failures, 0);

        webhook.consecutive_failures = DISABLE_AFTER_FAILURES - 2;
        let out = after_attempt(&d, &webhook, &failed(), "A".into(), at(2), 1.0);
        assert!(out.event.is_none() && out.webhook.as_ref().unwrap().is_active);
        let webhook = out.webhook.unwrap();
        let out = after_attempt(&d, &webhook, &failed(), "B".into(), at(3), 1.0);
        let disabled = out.webhook.unwrap();
        assert!(!disabled.is_active);
        assert_eq!(disabled.disabled_reason.as_deref(), Some("Disabled after 20 consecutive failed deliveries."));
        assert_eq!(out.event.unwrap().kind, EventType::WebhookDisabled);
        assert_eq!(out.delivery.state, DeliveryState::Abandoned);
        // Already off: a late failure (an attempt under way meanwhile) is logged, not counted, and
        // does not disable (or announce) it again.
        let out = after_attempt(&d, &disabled, &failed(), "C".into(), at(4), 1.0);
        assert!(out.event.is_none() && out.webhook.is_none());
        assert_eq!(out.attempt.id, "C");
        let on = disabled.set_active(true);
        assert_eq!((on.consecutive_failures, on.disabled_reason), (0, None));
    }

    #[test]
    fn a_held_delivery_is_not_claimed_twice_until_its_lease_runs_out() {
        let webhook = hook();
        let held = delivery(&webhook).claim(at(1), Duration::from_secs(30)).unwrap();
        assert_eq!(held.claim(at(2), Duration::from_secs(30)), Err(NotNow::Wait(Duration::from_secs(29))));
        assert!(held.claim(at(31), Duration::from_secs(30)).is_ok());
        let done = after_attempt(
            &held,
            &webhook,
            &AttemptResult { status_code: Some(200), ..Default::default() },
            "A".into(),
            at(2),
            1.0,
        );
        assert_eq!(done.delivery.claim(at(40), Duration::from_secs(30)), Err(NotNow::Finished));
        let again = done.delivery.restarted(at(50));
        assert!(again.claim(at(50), Duration::from_secs(30)).is_ok());
    }

    #[test]
    fn an_endpoint_takes_its_types_made_since_it_was_registered() {
        let mut webhook = hook();
        let event = |kind, s| Event {
            id: "X".into(),
            owner: webhook.owner.clone(),
            kind,
            created_at: at(s),
            story: None,
            job: None,
            data: json!({}),
        };
        assert!(webhook.wants(&event(EventType::JobProgress, 1)));
        assert!(!webhook.wants(&event(EventType::JobProgress, -1)));
        webhook.event_types = vec![EventType::RenderFinished];
        assert!(!webhook.wants(&event(EventType::JobProgress, 1)));
        assert!(webhook.wants(&event(EventType::RenderFinished, 1)));
    }

    #[test]
    fn an_excerpt_is_cut_at_a_character_boundary() {
        assert_eq!(excerpt(&"é".repeat(600)).len(), 1024);
    }
}
