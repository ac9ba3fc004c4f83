//! The `providers` Lambda: builds the API state once per cold start (nothing of the worker) and
//! serves the Providers router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    shared::telemetry::init(shared::telemetry::default_format());
    let config = shared::config::Config::from_env()?;
    let state = shared::runtime::build_api(&config).await?;
    shared::runtime::run_function(providers::router(state), &config).await
}
