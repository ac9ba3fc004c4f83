//! The `webhooks` Lambda: builds the dispatcher once per cold start (no provider, no ffmpeg, no
//! token secret). Outside Lambda it runs the dispatcher's rounds itself, as `aivideo serve` does.

use std::time::Duration;

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    shared::telemetry::init(shared::telemetry::default_format());
    let config = shared::config::Config::from_env()?;
    let service = shared::runtime::build_webhooks(&config).await?;
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_none() {
        tracing::info!("not in Lambda: dispatching webhooks locally");
        shared::runtime::dispatch(service, Duration::from_millis(500), shared::runtime::shutdown_signal()).await;
        return Ok(());
    }
    let service = std::sync::Arc::new(service);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let service = service.clone();
        async move { Ok::<serde_json::Value, lambda_runtime::Error>(webhooks::handle_event(&service, event.payload).await) }
    }))
    .await
}
