//! The `worker` Lambda: builds the worker once per cold start (nothing of the API) and handles
//! SQS batches and the scheduled sweep. Outside Lambda it consumes the configured queue itself,
//! as `aivideo serve` does.

use std::time::Duration;

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
    let consumer = std::sync::Arc::new(consumer);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let consumer = consumer.clone();
        async move { Ok::<serde_json::Value, lambda_runtime::Error>(worker::handle_event(&consumer, event.payload).await) }
    }))
    .await
}
