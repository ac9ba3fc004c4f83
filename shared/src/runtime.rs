//! Start-up: builds the state once per cold start from the configuration, and runs a router
//! either under the Lambda runtime or as a plain local server.

use std::sync::Arc;

use axum::Router;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::adapters::aws::{
    AwsClients, DynamoStore, S3Media, SecretsManagerSource, SqsQueue, create_resources, queue_urls,
};
use crate::adapters::embedded::{EmbeddedStore, LocalMedia, LocalSecrets, MAX_RECEIVES, load_or_create_secret};
use crate::adapters::ffmpeg::Ffmpeg;
use crate::adapters::llm::ChatCompletionsWriter;
use crate::adapters::local_provider::LocalProvider;
use crate::adapters::providers::{ProviderSettings, clients as provider_clients};
use crate::config::{Backend as ConfigBackend, Config, JwtAlgorithm};
use crate::domain::error::{Error, Result};
use crate::domain::values::AiProvider;
use crate::http::{AppState, Authenticator, CursorCodec};
use crate::ports::{
    Clock, IdGenerator, IdempotencyStore, JobInbox, JobQueue, JobStore, MediaStore, PlanStore, ProviderConfigStore,
    SecretSource, StoryStore, SystemClock, UlidGenerator, VideoProvider,
};
use crate::services::{JobService, PlanService, PromptWriter, ProviderService, StoryService};
use crate::worker::{Worker, WorkerSettings};

/// Name of the token secret (environment variable locally, secret name in production).
pub const JWT_SECRET_NAME: &str = "JWT_SECRET";

/// The HS256 secret: `JWT_SECRET` when set, else one generated once into the data dir.
pub fn local_token_secret(config: &Config) -> Result<String> {
    match &config.auth.secret {
        Some(secret) => Ok(secret.clone()),
        None => load_or_create_secret(&config.data_dir, JWT_SECRET_NAME),
    }
}

/// The ports one backend provides.
struct Backend {
    stories: Arc<dyn StoryStore>,
    plans: Arc<dyn PlanStore>,
    idempotency: Arc<dyn IdempotencyStore>,
    jobs: Arc<dyn JobStore>,
    queue: Arc<dyn JobQueue>,
    inbox: Arc<dyn JobInbox>,
    /// Set on the embedded backend (its signing key comes from the cursor secret).
    local_media: bool,
    media: Option<Arc<dyn MediaStore>>,
    work_dir: PathBuf,
    providers: Arc<dyn ProviderConfigStore>,
}

/// Builds everything the handlers need, once.
pub async fn build_state(config: &Config) -> Result<AppState> {
    match config.backend {
        ConfigBackend::Embedded => {
            let store = Arc::new(EmbeddedStore::open(&config.data_dir)?);
            let secret = match config.auth.algorithm {
                JwtAlgorithm::Hs256 => Some(local_token_secret(config)?),
                JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => None,
            };
            let secrets: Arc<dyn SecretSource> = Arc::new(LocalSecrets::new(&config.data_dir));
            let backend = Backend {
                providers: store.clone(),
                stories: store.clone(),
                plans: store.clone(),
                idempotency: store.clone(),
                jobs: store.clone(),
                queue: store.clone(),
                inbox: store,
                local_media: true,
                media: None,
                work_dir: config.data_dir.join("work"),
            };
            assemble(config, backend, secrets, secret).await
        }
        ConfigBackend::Aws => build_aws_state(config, AwsClients::from_env().await).await,
    }
}

/// Builds the state on the AWS adapters with clients already made (tests pass emulator clients).
pub async fn build_aws_state(config: &Config, clients: AwsClients) -> Result<AppState> {
    let (high, normal, low) = if config.create_resources {
        create_resources(&clients, &config.aws).await?
    } else if clients.dynamodb.describe_table().table_name(&config.aws.table).send().await.is_err() {
        // Said once at start-up, in one line, rather than as a 500 on every request.
        return Err(Error::internal(format!(
            "DynamoDB table {} is not reachable (missing, or no access): create it (aivideo serve --create-resources, or the SAM template) or set AIVIDEO_TABLE",
            config.aws.table
        )));
    } else {
        queue_urls(&clients, &config.aws).await?
    };
    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), config.aws.table.clone()));
    let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), high, normal, low));
    let secrets: Arc<dyn SecretSource> = Arc::new(SecretsManagerSource::new(clients.secrets.clone(), SECRET_TTL));
    let secret = match (config.auth.algorithm, &config.auth.secret) {
        (JwtAlgorithm::Rs256 | JwtAlgorithm::Es256, _) => None,
        (JwtAlgorithm::Hs256, Some(secret)) => Some(secret.clone()),
        (JwtAlgorithm::Hs256, None) => Some(secrets.secret(&config.aws.jwt_secret).await?),
    };
    let backend = Backend {
        providers: store.clone(),
        stories: store.clone(),
        plans: store.clone(),
        idempotency: store.clone(),
        jobs: store,
        queue: queue.clone(),
        inbox: queue,
        local_media: false,
        media: Some(Arc::new(S3Media::new(clients.s3.clone(), config.aws.bucket.clone()))),
        // Lambda's only writable folder.
        work_dir: std::env::temp_dir().join("aivideo-work"),
    };
    assemble(config, backend, secrets, secret).await
}

/// How long a secret read from Secrets Manager is trusted before it is read again.
pub const SECRET_TTL: std::time::Duration = std::time::Duration::from_secs(300);

async fn assemble(
    config: &Config,
    backend: Backend,
    secrets: Arc<dyn SecretSource>,
    token_secret: Option<String>,
) -> Result<AppState> {
    let auth = Arc::new(Authenticator::new(&config.auth, token_secret.as_deref())?);
    let cursor_secret = config
        .cursor_secret
        .clone()
        .or(token_secret)
        .ok_or_else(|| Error::internal("no secret to sign pagination cursors with"))?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let ids: Arc<dyn IdGenerator> = Arc::new(UlidGenerator::default());
    let llm = prompt_writer(config, secrets.as_ref()).await?;
    let local_media = if backend.local_media {
        Some(Arc::new(LocalMedia::new(&config.data_dir, &format!("http://{}", config.addr), &cursor_secret)?))
    } else {
        None
    };
    let media: Arc<dyn MediaStore> = match (&local_media, backend.media) {
        (Some(local), _) => local.clone(),
        (None, Some(media)) => media,
        (None, None) => return Err(Error::internal("no media store configured")),
    };
    // ffmpeg is optional for the API functions; `aivideo serve` and the worker check it at start.
    let ffmpeg = Ffmpeg::locate().ok();
    let mut providers: HashMap<AiProvider, Arc<dyn VideoProvider>> = HashMap::new();
    if let Some(ffmpeg) = &ffmpeg {
        providers
            .insert(AiProvider::Local, Arc::new(LocalProvider::new(ffmpeg.clone(), &backend.work_dir.join("local"))));
    }
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
    providers
        .extend(provider_clients(&settings, &secrets, ffmpeg.as_ref()).map_err(|e| Error::internal(e.to_string()))?);
    let provider_configs = ProviderService::new(backend.providers);
    let settings = WorkerSettings {
        lease: Duration::from_secs(config.worker.lease_seconds),
        poll_every: Duration::from_millis(config.worker.poll_ms),
        work_dir: backend.work_dir.clone(),
        max_receives: MAX_RECEIVES,
    };
    let worker = Worker::new(
        backend.jobs.clone(),
        backend.queue.clone(),
        media.clone(),
        providers,
        ffmpeg,
        clock.clone(),
        settings,
    );
    Ok(AppState {
        stories: StoryService::new(backend.stories, clock.clone(), ids.clone()),
        plans: PlanService::new(backend.plans.clone(), clock.clone(), ids.clone(), llm),
        jobs: JobService::new(
            backend.jobs,
            backend.plans,
            backend.queue,
            clock.clone(),
            ids.clone(),
            provider_configs.clone(),
        ),
        providers: provider_configs,
        auth,
        idempotency: backend.idempotency,
        cursors: CursorCodec::new(&cursor_secret)?,
        clock,
        ids,
        media,
        worker: Arc::new(worker),
        inbox: backend.inbox,
        local_media,
    })
}

/// The in-process consumer of `aivideo serve`: receives batches from the job queue the way the
/// Lambda event source mapping does (batch of 10, visibility timeout, per-message settlement)
/// and hands each message to the worker, until `stop` resolves.
pub async fn consume_jobs(state: AppState, visibility: Duration, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        let worker = state.worker.clone();
        let round = crate::ports::consume_once(state.inbox.as_ref(), 10, visibility, |delivery| {
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

/// The LLM prompt writer, when configured; its key is read from the secret source once.
async fn prompt_writer(config: &Config, secrets: &dyn SecretSource) -> Result<Option<Arc<dyn PromptWriter>>> {
    let Some(llm) = &config.llm else {
        return Ok(None);
    };
    let key = secrets.secret(&llm.api_key_secret).await?;
    let writer = ChatCompletionsWriter::new(&llm.base_url, &llm.model, key).map_err(|e| Error::internal(e.0))?;
    Ok(Some(Arc::new(writer)))
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
