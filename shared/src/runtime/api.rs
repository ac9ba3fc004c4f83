//! The API role: services, authenticator, cursor codec and idempotency. No child process, no
//! provider client; the LLM writer is built at its first use.

use std::sync::Arc;

use super::backend::{Backend, Role, open_backend};
use crate::adapters::llm::LazyChatCompletionsWriter;
use crate::config::Config;
use crate::domain::error::{Error, Result};
use crate::http::{AppState, Authenticator, CursorCodec};
use crate::ports::{IdGenerator, UlidGenerator};
use crate::services::{JobService, PlanService, PromptWriter, ProviderService, StoryService};

/// Opens the configured backend and builds an API function's state, once per cold start.
pub async fn build_api(config: &Config) -> Result<AppState> {
    let backend = open_backend(config, Role::Api).await?;
    api(config, &backend)
}

/// The API's state on an open backend.
pub fn api(config: &Config, backend: &Backend) -> Result<AppState> {
    let clock = backend.clock.clone();
    let auth = Arc::new(Authenticator::with_clock(&config.auth, backend.token_secret.as_deref(), clock.clone())?);
    let cursor_secret = config
        .cursor_secret
        .clone()
        .or_else(|| backend.token_secret.clone())
        .ok_or_else(|| Error::internal("no secret to sign pagination cursors with"))?;
    let ids: Arc<dyn IdGenerator> = Arc::new(UlidGenerator::default());
    let llm: Option<Arc<dyn PromptWriter>> = config
        .llm
        .clone()
        .map(|llm| Arc::new(LazyChatCompletionsWriter::new(llm, backend.secrets.clone())) as Arc<dyn PromptWriter>);
    let providers = ProviderService::new(backend.providers.clone());
    let webhooks = super::webhooks(config, backend, ids.clone());
    Ok(AppState {
        stories: StoryService::new(backend.stories.clone(), clock.clone(), ids.clone()),
        plans: PlanService::new(backend.plans.clone(), clock.clone(), ids.clone(), llm),
        jobs: JobService::new(
            backend.jobs.clone(),
            backend.plans.clone(),
            backend.queue.clone(),
            clock.clone(),
            ids.clone(),
            providers.clone(),
            crate::services::SpendLimits {
                usage: backend.usage.clone(),
                default_monthly_cap_usd: config.monthly_cap_usd,
                events: backend.events.clone(),
            },
        ),
        providers,
        auth,
        idempotency: backend.idempotency.clone(),
        cursors: CursorCodec::new(&cursor_secret)?,
        clock,
        ids,
        media: backend.media.clone(),
        hosts: Arc::new(crate::http::hosts::AllowedHosts::new(&config.allowed_hosts, config.addr)),
        cors: Arc::new(crate::http::cors::CorsOrigins::new(config.cors_origins.clone())),
        events: backend.events.clone(),
        webhooks,
    })
}
