//! The `providers` Lambda: builds the state once per cold start and serves the Providers router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init(shared::telemetry::default_format());
    let config = shared::config::Config::from_env()?;
    let state = shared::runtime::build_state(&config).await?;
    shared::runtime::run_function(providers::router(state), &config).await
}
