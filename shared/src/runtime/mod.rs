//! Start-up, per role: each function builds only what it serves. An API function builds its
//! services, the authenticator, the cursor codec and idempotency (`api`); the worker builds the
//! worker and its providers (`worker`, with the `render` feature); `aivideo serve` builds both on
//! one backend (`local`). Nothing here starts a child process or makes a network call that the
//! role's first request does not need.

mod api;
mod backend;
#[cfg(feature = "render")]
mod local;
mod webhooks;
#[cfg(feature = "render")]
mod worker;

use axum::Router;

pub use api::{api, build_api};
pub use backend::{Backend, Role, open_aws_backend, open_backend};
#[cfg(feature = "render")]
pub use local::{Local, build_local, build_local_on_aws};
pub use webhooks::{build_webhooks, dispatch, webhooks};
#[cfg(feature = "render")]
pub use worker::{JobConsumer, build_worker, worker};

use crate::adapters::embedded::load_or_create_secret;
use crate::config::Config;
use crate::domain::error::Result;

/// Name of the token secret (environment variable locally, secret name in production).
pub const JWT_SECRET_NAME: &str = "JWT_SECRET";

/// How long a secret read from Secrets Manager is trusted before it is read again.
pub const SECRET_TTL: std::time::Duration = std::time::Duration::from_secs(300);

/// The HS256 secret: `JWT_SECRET` when set, else one generated once into the data dir.
pub fn local_token_secret(config: &Config) -> Result<String> {
    match &config.auth.secret {
        Some(secret) => Ok(secret.clone()),
        None => load_or_create_secret(&config.data_dir, JWT_SECRET_NAME),
    }
}

/// Runs `router` under the Lambda runtime when inside Lambda, else serves it on `config.addr`
/// (`lambda_http::run` cannot start outside Lambda).
pub async fn run_function(router: Router, config: &Config) -> std::result::Result<(), lambda_http::Error> {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return lambda_http::run(router).await;
    }
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.addr))?;
    tracing::info!(addr = %config.addr, "not in Lambda: serving locally");
    axum::serve(listener, router).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
