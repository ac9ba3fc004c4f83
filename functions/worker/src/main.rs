//! The `worker` Lambda: builds the worker once per cold start (nothing of the API) and handles
//! SQS batches. Outside Lambda it consumes the configured queue itself, as `aivideo serve` does.

use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init(shared::telemetry::default_format());
    let config = shared::config::Config::from_env()?;
    let consumer = shared::runtime::build_worker(&config).await?;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        tracing::info!("not in Lambda: consuming the job queue locally");
        consumer.recover_after_restart().await;
        let visibility = Duration::from_secs(config.worker.visibility_seconds);
        consumer.consume(visibility, shared::runtime::shutdown_signal()).await;
        return Ok(());
    }
    let worker = consumer.worker;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = worker.clone();
        async move { Ok::<SqsBatchResponse, lambda_runtime::Error>(worker::handle_batch(&worker, event.payload).await) }
    }))
    .await
}
