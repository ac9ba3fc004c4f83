//! The worker Lambda: an SQS batch in, a partial batch response out. Each record is parsed and
//! handled on its own, so one bad record never fails its neighbours; only the records that failed
//! are reported, and SQS delivers those again (and dead-letters them after `maxReceiveCount`).

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use shared::ports::{Delivery, Handled};
use shared::services::Worker;

/// The delivery an SQS record stands for.
fn delivery(record: &aws_lambda_events::event::sqs::SqsMessage) -> Delivery {
    Delivery {
        message_id: record.message_id.clone().unwrap_or_default(),
        receipt: record.receipt_handle.clone().unwrap_or_default(),
        body: record.body.clone().unwrap_or_default(),
        receive_count: record.attributes.get("ApproximateReceiveCount").and_then(|c| c.parse().ok()).unwrap_or(1),
    }
}

/// Handles every record of `event`; the answer names the ones that failed.
pub async fn handle_batch(worker: &Worker, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in &event.records {
        let delivery = delivery(record);
        if let Handled::Failed { .. } = worker.handle(&delivery).await {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = delivery.message_id.clone();
            response.batch_item_failures.push(failure);
        }
    }
    tracing::info!(records = event.records.len(), failed = response.batch_item_failures.len(), "batch handled");
    response
}

/// How long work may wait before the scheduled sweep sends it a message (it runs every minute,
/// so nothing waits more than about two).
pub const SWEEP_PATIENCE: std::time::Duration = std::time::Duration::from_secs(60);

/// One invocation of the worker Lambda: an SQS batch (its partial batch response), or the
/// template's scheduled event (EventBridge, every minute), which runs the sweep.
pub async fn handle_event(consumer: &shared::runtime::JobConsumer, event: serde_json::Value) -> serde_json::Value {
    if event.get("Records").is_some() {
        let batch: SqsEvent = match serde_json::from_value(event) {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "an event with Records that is no SQS batch");
                return serde_json::json!({"batchItemFailures": []});
            }
        };
        let response = handle_batch(&consumer.worker, batch).await;
        return serde_json::to_value(response).unwrap_or_else(|_| serde_json::json!({"batchItemFailures": []}));
    }
    if event.get("detail-type").and_then(|d| d.as_str()) == Some("Scheduled Event") {
        return match consumer.sweeper.sweep(SWEEP_PATIENCE).await {
            Ok(report) => {
                tracing::info!(?report, "sweep done");
                serde_json::json!({"swept": report})
            }
            Err(e) => {
                tracing::error!(error = %e, "sweep failed; the next one runs in a minute");
                serde_json::json!({"swept": null})
            }
        };
    }
    tracing::warn!("an event the worker does not handle; ignored");
    serde_json::Value::Null
}
