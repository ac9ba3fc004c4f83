//! SQS as the job queue: one queue per priority (high, normal, low), each with the dead-letter
//! queue behind it; messages carry ids only.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::error::{Error, Result};
use crate::domain::job::JobPriority;
use crate::ports::{Delivery, Handled, JobInbox, JobMessage, JobQueue};

/// The longest delay SQS accepts.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

/// Enqueues jobs on SQS.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    high: String,
    normal: String,
    low: String,
}

impl SqsQueue {
    /// A queue set from its three queue URLs.
    pub fn new(client: aws_sdk_sqs::Client, high: String, normal: String, low: String) -> Self {
        Self { client, high, normal, low }
    }

    /// The URL of the queue for `priority`.
    pub fn url(&self, priority: JobPriority) -> &str {
        match priority {
            JobPriority::High => &self.high,
            JobPriority::Normal => &self.normal,
            JobPriority::Low => &self.low,
        }
    }
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn enqueue(&self, message: &JobMessage, priority: JobPriority, delay: Duration) -> Result<()> {
        let body = serde_json::to_string(message).map_err(Error::internal)?;
        let delay = delay.min(MAX_DELAY).as_secs() as i32;
        self.client
            .send_message()
            .queue_url(self.url(priority))
            .message_body(body)
            .delay_seconds(delay)
            .send()
            .await
            .map_err(|e| super::aws_error("sqs", e))?;
        Ok(())
    }
}

#[async_trait]
impl JobInbox for SqsQueue {
    /// Receives up to `max` (1–10) messages the way the Lambda event source mapping batches them,
    /// taking from the high queue first, then normal, then low.
    async fn receive_batch(&self, max: u32, visibility: Duration) -> Result<Vec<Delivery>> {
        let max = max.min(10) as i32;
        let mut batch = Vec::new();
        for url in [&self.high, &self.normal, &self.low] {
            let room = max - batch.len() as i32;
            if room <= 0 {
                break;
            }
            let out = self
                .client
                .receive_message()
                .queue_url(url)
                .max_number_of_messages(room.clamp(1, 10))
                .visibility_timeout(visibility.as_secs() as i32)
                .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                .send()
                .await
                .map_err(|e| super::aws_error("sqs", e))?;
            for message in out.messages.unwrap_or_default() {
                let receive_count = message
                    .attributes()
                    .and_then(|a| a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                batch.push(Delivery {
                    message_id: message.message_id().unwrap_or_default().to_owned(),
                    receipt: format!("{url} {}", message.receipt_handle().unwrap_or_default()),
                    body: message.body().unwrap_or_default().to_owned(),
                    receive_count,
                });
            }
        }
        Ok(batch)
    }

    /// Deletes a handled message; makes a failed one visible again after its delay (SQS counts the
    /// receive, so a message that always fails ends in the dead-letter queue).
    async fn settle(&self, delivery: &Delivery, outcome: Handled) -> Result<()> {
        let (queue_url, receipt_handle) =
            delivery.receipt.split_once(' ').ok_or_else(|| Error::internal("malformed receipt"))?;
        match outcome {
            Handled::Done => {
                self.client
                    .delete_message()
                    .queue_url(queue_url)
                    .receipt_handle(receipt_handle)
                    .send()
                    .await
                    .map_err(|e| super::aws_error("sqs", e))?;
            }
            Handled::Failed { retry_after } => {
                self.client
                    .change_message_visibility()
                    .queue_url(queue_url)
                    .receipt_handle(receipt_handle)
                    .visibility_timeout(retry_after.min(MAX_DELAY).as_secs() as i32)
                    .send()
                    .await
                    .map_err(|e| super::aws_error("sqs", e))?;
            }
        }
        Ok(())
    }
}

/// The longest a received webhook message may stay hidden (SQS's visibility limit is 12 hours):
/// a delivery waiting for a later retry comes back once per this at most.
pub const MAX_WEBHOOK_WAIT: Duration = Duration::from_secs(11 * 3600);

/// The webhook deliveries' own SQS queue: a message names a delivery; one whose retry is due
/// later is hidden until then (its visibility), so no second message is ever needed.
#[derive(Debug, Clone)]
pub struct SqsWebhookQueue {
    client: aws_sdk_sqs::Client,
    /// Known from the start (the template passes it), or looked up by `name` when first needed,
    /// so a cold start that never touches webhooks makes no call for it.
    url: std::sync::Arc<tokio::sync::OnceCell<String>>,
    name: String,
}

impl SqsWebhookQueue {
    /// The queue at `url`, or named `name` (looked up on first use).
    pub fn new(client: aws_sdk_sqs::Client, url: Option<String>, name: String) -> Self {
        let cell = match url {
            Some(url) => tokio::sync::OnceCell::new_with(Some(url)),
            None => tokio::sync::OnceCell::new(),
        };
        Self { client, url: std::sync::Arc::new(cell), name }
    }

    async fn url(&self) -> Result<&str> {
        self.url
            .get_or_try_init(|| async {
                let out = self.client.get_queue_url().queue_name(&self.name).send().await.map_err(|e| {
                    Error::internal(format!("SQS queue {} is not reachable (missing, or no access): {e:?}", self.name))
                })?;
                out.queue_url().map(str::to_owned).ok_or_else(|| Error::internal("the webhook queue has no URL"))
            })
            .await
            .map(String::as_str)
    }

    /// A received message as a queued delivery (`None`: not one of ours).
    fn queued(message_id: &str, receipt_handle: &str, body: &str) -> Option<crate::ports::QueuedDelivery> {
        let key = serde_json::from_str(body).ok()?;
        Some(crate::ports::QueuedDelivery {
            key,
            message: Some(Delivery {
                message_id: message_id.to_owned(),
                receipt: receipt_handle.to_owned(),
                body: body.to_owned(),
                receive_count: 1,
            }),
        })
    }
}

#[async_trait]
impl crate::ports::WebhookQueue for SqsWebhookQueue {
    async fn send(&self, key: &crate::domain::webhooks::DeliveryKey, delay: Duration) -> Result<()> {
        let body = serde_json::to_string(key).map_err(Error::internal)?;
        self.client
            .send_message()
            .queue_url(self.url().await?)
            .message_body(body)
            .delay_seconds(delay.min(MAX_DELAY).as_secs() as i32)
            .send()
            .await
            .map_err(|e| super::aws_error("sqs", e))?;
        Ok(())
    }

    async fn receive(&self, max: u32, visibility: Duration) -> Result<Vec<crate::ports::QueuedDelivery>> {
        let url = self.url().await?;
        let out = self
            .client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(max.clamp(1, 10) as i32)
            .visibility_timeout(visibility.as_secs() as i32)
            .send()
            .await
            .map_err(|e| super::aws_error("sqs", e))?;
        let mut batch = Vec::new();
        for message in out.messages.unwrap_or_default() {
            let (id, receipt, body) = (
                message.message_id().unwrap_or_default(),
                message.receipt_handle().unwrap_or_default(),
                message.body().unwrap_or_default(),
            );
            match Self::queued(id, receipt, body) {
                Some(queued) => batch.push(queued),
                None => {
                    tracing::warn!(body, "a webhook message that names no delivery: deleted");
                    self.client
                        .delete_message()
                        .queue_url(url)
                        .receipt_handle(receipt)
                        .send()
                        .await
                        .map_err(|e| super::aws_error("sqs", e))?;
                }
            }
        }
        Ok(batch)
    }

    async fn settle(&self, delivery: &crate::ports::QueuedDelivery, outcome: Handled) -> Result<()> {
        let Some(message) = &delivery.message else { return Ok(()) };
        match outcome {
            Handled::Done => {
                self.client
                    .delete_message()
                    .queue_url(self.url().await?)
                    .receipt_handle(&message.receipt)
                    .send()
                    .await
                    .map_err(|e| super::aws_error("sqs", e))?;
            }
            Handled::Failed { retry_after } => {
                // Rounded up: a retry due in 300 ms is looked at in a second, not at once.
                let seconds = retry_after.min(MAX_WEBHOOK_WAIT).as_secs_f64().ceil() as i32;
                self.client
                    .change_message_visibility()
                    .queue_url(self.url().await?)
                    .receipt_handle(&message.receipt)
                    .visibility_timeout(seconds.max(1))
                    .send()
                    .await
                    .map_err(|e| super::aws_error("sqs", e))?;
            }
        }
        Ok(())
    }
}
