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
