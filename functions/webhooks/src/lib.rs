//! The webhooks Lambda's events (SPEC §8.6):
//! - its SQS queue: each record names one delivery; it is attempted, and one that must wait for
//!   a later retry is hidden until then and reported as a batch item failure (so the queue keeps
//!   it); the others are deleted by the event source mapping;
//! - the table's stream (new items whose key is an owner's event partition): the owner's active
//!   endpoints get their deliveries — the stream retries a batch that fails, and adding a delivery
//!   twice adds it once;
//! - the scheduled event: the same fan-out over every active endpoint, should a stream batch have
//!   been given up on.

use serde_json::{Value, json};
use shared::domain::ids::UserId;
use shared::ports::{Delivery, Handled, QueuedDelivery};
use shared::services::WebhookService;

fn failure(id: &str) -> Value {
    json!({"itemIdentifier": id})
}

/// One SQS record: attempted; its identifier if it stays in the queue.
async fn delivery_record(service: &WebhookService, record: &Value) -> Option<String> {
    let text = |name: &str| record.get(name).and_then(Value::as_str).unwrap_or_default().to_owned();
    let message_id = text("messageId");
    let Ok(key) = serde_json::from_str(&text("body")) else {
        tracing::warn!(message_id, "a webhook message that names no delivery: dropped");
        return None;
    };
    let queued = QueuedDelivery {
        key,
        message: Some(Delivery {
            message_id: message_id.clone(),
            receipt: text("receiptHandle"),
            body: text("body"),
            receive_count: 1,
        }),
    };
    match service.attempt_message(&queued).await {
        Handled::Done => None,
        Handled::Failed { .. } => Some(message_id),
    }
}

/// The owner whose feed a stream record's new item belongs to.
fn stream_owner(record: &Value) -> Option<UserId> {
    let pk = record.pointer("/dynamodb/Keys/PK/S")?.as_str()?;
    UserId::parse(pk.strip_prefix("EVENTS#")?)
}

/// One invocation.
pub async fn handle_event(service: &WebhookService, event: Value) -> Value {
    if let Some(records) = event.get("Records").and_then(Value::as_array) {
        let mut failures = Vec::new();
        let mut owners: Vec<(UserId, String)> = Vec::new();
        // A batch's attempts run at once: each waits up to 10 s for its receiver.
        let mut attempts = tokio::task::JoinSet::new();
        for record in records {
            match record.get("eventSource").and_then(Value::as_str) {
                Some("aws:sqs") => {
                    let (service, record) = (service.clone(), record.clone());
                    attempts.spawn(async move { delivery_record(&service, &record).await });
                }
                Some("aws:dynamodb") => {
                    let sequence =
                        record.pointer("/dynamodb/SequenceNumber").and_then(Value::as_str).unwrap_or_default();
                    if let Some(owner) = stream_owner(record)
                        && !owners.iter().any(|(o, _)| o == &owner)
                    {
                        owners.push((owner, sequence.to_owned()));
                    }
                }
                other => tracing::warn!(source = ?other, "a record the webhooks function does not handle"),
            }
        }
        while let Some(done) = attempts.join_next().await {
            match done {
                Ok(Some(id)) => failures.push(failure(&id)),
                Ok(None) => {}
                Err(e) => tracing::error!(error = %e, "a webhook attempt panicked; its message comes back"),
            }
        }
        for (owner, first_sequence) in owners {
            if let Err(e) = service.fan_out_owner(&owner).await {
                tracing::error!(error = %e, "fan-out failed; the stream delivers the batch again");
                // From this owner's first record on, the stream retries the batch.
                failures.push(failure(&first_sequence));
                break;
            }
        }
        return json!({"batchItemFailures": failures});
    }
    if event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event") {
        return match service.fan_out_all().await {
            Ok(sent) => json!({"sent": sent}),
            Err(e) => {
                tracing::error!(error = %e, "scheduled fan-out failed; the next one runs in a minute");
                json!({"sent": null})
            }
        };
    }
    tracing::warn!("an event the webhooks function does not handle; ignored");
    Value::Null
}
