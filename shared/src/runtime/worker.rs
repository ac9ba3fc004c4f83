//! The worker role: the queue consumer with its providers and video tools; nothing of the API.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::backend::{Backend, Role, open_backend};
use crate::adapters::embedded::MAX_RECEIVES;
use crate::adapters::ffmpeg::Ffmpeg;
use crate::adapters::local_provider::LocalProvider;
use crate::adapters::providers::{ProviderSettings, clients as provider_clients};
use crate::config::Config;
use crate::domain::error::{Error, Result};
use crate::domain::values::AiProvider;
use crate::ports::{JobInbox, VideoProvider, VideoTools};
use crate::services::{Worker, WorkerSettings};

/// The worker and the queue it consumes.
#[derive(Clone)]
pub struct JobConsumer {
    /// Handles one message at a time.
    pub worker: Arc<Worker>,
    /// The consuming side of the job queue.
    pub inbox: Arc<dyn JobInbox>,
    /// On the embedded backend: releases what a dead process held, and sweeps.
    pub recovery: Option<Arc<crate::adapters::embedded::EmbeddedQueue>>,
    /// The sweep against the store (what the scheduled event runs on AWS).
    pub sweeper: crate::services::Sweeper,
}

/// How often the in-process consumer sweeps for work without a message (SPEC §8.2: within 2 min).
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Work committed this recently is about to be sent by its request: the sweep leaves it alone.
const SWEEP_MIN_AGE: Duration = Duration::from_secs(30);

/// Opens the configured backend and builds the worker, once per cold start.
pub async fn build_worker(config: &Config) -> Result<JobConsumer> {
    let backend = open_backend(config, Role::Worker).await?;
    worker(config, &backend, Ffmpeg::configured())
}

/// The worker on an open backend, rendering with `ffmpeg` (not run until a job needs it).
pub fn worker(config: &Config, backend: &Backend, ffmpeg: Ffmpeg) -> Result<JobConsumer> {
    let clock = backend.clock.clone();
    let mut providers: HashMap<AiProvider, Arc<dyn VideoProvider>> = HashMap::new();
    providers.insert(
        AiProvider::Local,
        Arc::new(LocalProvider::with_clock(ffmpeg.clone(), &backend.work_dir.join("local"), clock.clone())),
    );
    // Every real provider has a client; one without its API key in the secrets fails its jobs
    // with `not_configured`, and admins disable providers they do not use.
    let settings: HashMap<AiProvider, ProviderSettings> = AiProvider::ALL
        .iter()
        .filter_map(|p| {
            let mut settings = ProviderSettings::published(*p, config.provider_base_urls.get(p).map(String::as_str))?;
            settings.download.allow_loopback_http = config.allow_loopback_downloads;
            Some((*p, settings))
        })
        .collect();
    providers.extend(
        provider_clients(&settings, &backend.secrets, Some(&ffmpeg)).map_err(|e| Error::internal(e.to_string()))?,
    );
    let settings = WorkerSettings {
        lease: Duration::from_secs(config.worker.lease_seconds),
        poll_every: Duration::from_millis(config.worker.poll_ms),
        work_dir: backend.work_dir.clone(),
        max_receives: MAX_RECEIVES,
    };
    let tools: Arc<dyn VideoTools> = Arc::new(ffmpeg);
    let worker = Worker::new(
        backend.jobs.clone(),
        backend.queue.clone(),
        backend.media.clone(),
        providers,
        tools,
        clock,
        settings,
    )
    .with_submit_budget(backend.submit_budget.clone());
    let sweeper = crate::services::Sweeper::new(
        backend.jobs.clone(),
        backend.stories.clone(),
        backend.queue.clone(),
        backend.clock.clone(),
    )
    .with_events(backend.events.clone());
    Ok(JobConsumer {
        worker: Arc::new(worker),
        inbox: backend.inbox.clone(),
        recovery: backend.recovery.clone(),
        sweeper,
    })
}

impl JobConsumer {
    /// On the embedded backend, before serving: this process owns the data dir alone, so what a
    /// crashed one held (messages in flight, job leases, unanswered idempotency claims) is free at
    /// once. Nothing to do on AWS, where other workers may be alive.
    pub async fn recover_after_restart(&self) {
        if let Some(queue) = &self.recovery {
            match queue.recover_after_restart().await {
                Ok(done) => tracing::info!(?done, "recovered the previous process's work"),
                Err(e) => {
                    tracing::error!(error = %e, "recovery after restart failed; leases and visibility run out on their own");
                }
            }
        }
    }

    /// The in-process consumer of `aivideo serve` (and of the worker binary outside Lambda):
    /// receives batches from the job queue the way the Lambda event source mapping does (batch of
    /// 10, visibility timeout, per-message settlement) and hands each message to the worker,
    /// until `stop` resolves.
    pub async fn consume(&self, visibility: Duration, stop: impl std::future::Future<Output = ()>) {
        tokio::pin!(stop);
        let mut last_sweep = tokio::time::Instant::now();
        loop {
            if let Some(queue) = &self.recovery
                && last_sweep.elapsed() >= SWEEP_EVERY
            {
                last_sweep = tokio::time::Instant::now();
                match queue.sweep(SWEEP_MIN_AGE).await {
                    Ok(done) if done != Default::default() => tracing::warn!(?done, "sweep found stranded work"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "sweep failed; trying again next round"),
                }
            }
            let worker = self.worker.clone();
            let round = crate::ports::consume_once(self.inbox.as_ref(), 10, visibility, |delivery| {
                let worker = worker.clone();
                async move { worker.handle(&delivery).await }
            });
            let idle = tokio::select! {
                () = &mut stop => return,
                outcome = round => match outcome {
                    Ok(_) => false,
                    Err(e) => {
                        tracing::warn!(error = %e, "receiving jobs failed; trying again shortly");
                        true
                    }
                },
            };
            // An empty queue is polled again shortly (SQS long polling waits on its own).
            let pause = if idle { Duration::from_secs(1) } else { Duration::from_millis(200) };
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
