//! The webhooks role (SPEC §8.6): the dispatcher that turns the feed into deliveries and makes
//! each attempt. On AWS it is its own function (the deliveries' queue and the table's stream);
//! `aivideo serve` runs it in process. No provider, no ffmpeg, no token secret.

use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, Role, open_backend};
use crate::adapters::webhook_sender::HttpWebhookSender;
use crate::config::Config;
use crate::domain::error::Result;
use crate::ports::{IdGenerator, UlidGenerator};
use crate::services::{WebhookService, WebhookSettings};

/// Opens the configured backend and builds the dispatcher, once per cold start.
pub async fn build_webhooks(config: &Config) -> Result<WebhookService> {
    let backend = open_backend(config, Role::Worker).await?;
    Ok(webhooks(config, &backend, Arc::new(UlidGenerator::default())))
}

/// The webhook service on an open backend: the API's endpoints and the dispatcher share it.
pub fn webhooks(config: &Config, backend: &Backend, ids: Arc<dyn IdGenerator>) -> WebhookService {
    let timeout = Duration::from_millis(config.webhooks.timeout_ms);
    let sender = HttpWebhookSender { timeout, allow_loopback_http: config.webhooks.allow_loopback };
    WebhookService::new(
        backend.webhooks.clone(),
        backend.events.clone(),
        backend.webhook_queue.clone(),
        Arc::new(sender),
        backend.clock.clone(),
        ids,
        WebhookSettings { retry_scale: config.webhooks.retry_scale, lease: timeout + Duration::from_secs(20) },
    )
}

/// `aivideo serve`'s dispatcher: a round every `every` until `stop` resolves.
pub async fn dispatch(service: WebhookService, every: Duration, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        if let Err(e) = service.run_once().await {
            tracing::warn!(error = %e, "webhook round failed; trying again shortly");
        }
        tokio::select! {
            () = &mut stop => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}
