//! The ports one backend provides, opened once per cold start for one role.

use std::path::PathBuf;
use std::sync::Arc;

use crate::adapters::aws::{
    AwsClients, DynamoStore, S3Media, SecretsManagerSource, SqsQueue, create_resources, queue_urls,
};
use crate::adapters::embedded::{EmbeddedStore, LocalMedia, LocalSecrets};
use crate::config::{Backend as ConfigBackend, Config, JwtAlgorithm};
use crate::domain::error::{Error, Result};
use crate::ports::{
    Clock, IdempotencyStore, JobInbox, JobQueue, JobStore, MediaStore, PlanStore, ProviderConfigStore, SecretSource,
    StoryStore, SystemClock,
};

/// Which function a process is: it decides what start-up may cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// An API function (stories, scenes, prompts, jobs, providers): needs the token secret.
    Api,
    /// The queue consumer: needs no token secret.
    Worker,
    /// `aivideo serve`: everything, and says at start-up when the table is missing.
    Local,
}

/// The ports of the configured backend.
#[derive(Clone)]
pub struct Backend {
    /// Stories and their history.
    pub stories: Arc<dyn StoryStore>,
    /// Scenes and prompts.
    pub plans: Arc<dyn PlanStore>,
    /// Idempotency records.
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Jobs.
    pub jobs: Arc<dyn JobStore>,
    /// The sending side of the job queue.
    pub queue: Arc<dyn JobQueue>,
    /// The consuming side of the job queue.
    pub inbox: Arc<dyn JobInbox>,
    /// Provider configurations.
    pub providers: Arc<dyn ProviderConfigStore>,
    /// The providers' shared submission budgets (`rate_limit_per_minute`).
    pub submit_budget: Arc<dyn crate::ports::SubmitBudget>,
    /// The spend counters and caps (SPEC §8.7).
    pub usage: Arc<dyn crate::ports::UsageStore>,
    /// The event feed (SPEC §8.5).
    pub events: Arc<dyn crate::ports::EventStore>,
    /// Webhook endpoints, deliveries and their log (SPEC §8.6).
    pub webhooks: Arc<dyn crate::ports::WebhookStore>,
    /// The webhook deliveries' queue.
    pub webhook_queue: Arc<dyn crate::ports::WebhookQueue>,
    /// Secrets by name.
    pub secrets: Arc<dyn SecretSource>,
    /// Where rendered media lives.
    pub media: Arc<dyn MediaStore>,
    /// The embedded backend's media folder, whose signed links `aivideo serve` answers.
    pub local_media: Option<Arc<LocalMedia>>,
    /// The HS256 token secret (API roles), also the default cursor secret.
    pub token_secret: Option<String>,
    /// Scratch space for clips being fetched and composed.
    pub work_dir: PathBuf,
    /// The embedded queue, whose owner releases what a dead process held and sweeps for work
    /// without a message (`None` on AWS, where other workers may be alive).
    pub recovery: Option<Arc<crate::adapters::embedded::EmbeddedQueue>>,
    /// The process's one clock: the adapters above time delays, visibility, link expiry and
    /// caches on it, and the roles built on this backend use it too.
    pub clock: Arc<dyn Clock>,
}

/// Opens the configured backend for `role`.
pub async fn open_backend(config: &Config, role: Role) -> Result<Backend> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match config.backend {
        ConfigBackend::Embedded => open_embedded(config, clock),
        ConfigBackend::Aws => open_aws_backend_on(config, AwsClients::from_env().await, role, clock).await,
    }
}

fn open_embedded(config: &Config, clock: Arc<dyn Clock>) -> Result<Backend> {
    let store = Arc::new(EmbeddedStore::open(&config.data_dir)?);
    let queue = Arc::new(store.queue(clock.clone()));
    // The media links' signing key comes from the cursor secret, else the token secret (read from
    // the data dir: no network).
    let token_secret = match config.auth.algorithm {
        JwtAlgorithm::Hs256 => Some(super::local_token_secret(config)?),
        JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => None,
    };
    let signing = config
        .cursor_secret
        .clone()
        .or_else(|| token_secret.clone())
        .ok_or_else(|| Error::internal("no secret to sign media links with"))?;
    let local_media = Arc::new(LocalMedia::with_clock(
        &config.data_dir,
        &format!("http://{}", config.addr),
        &signing,
        clock.clone(),
    )?);
    Ok(Backend {
        stories: store.clone(),
        plans: store.clone(),
        idempotency: store.clone(),
        jobs: store.clone(),
        queue: queue.clone(),
        inbox: queue.clone(),
        recovery: Some(queue),
        providers: store.clone(),
        submit_budget: store.clone(),
        usage: store.clone(),
        events: store.clone(),
        webhooks: store.clone(),
        webhook_queue: store,
        secrets: Arc::new(LocalSecrets::new(&config.data_dir)),
        media: local_media.clone(),
        local_media: Some(local_media),
        token_secret,
        work_dir: config.data_dir.join("work"),
        clock,
    })
}

/// Opens the AWS backend with clients already made (tests pass emulator clients). An API
/// function's start-up makes at most one call (the token secret), the worker's none: the
/// template passes the queue URLs in the environment, and only `aivideo serve` checks the table.
pub async fn open_aws_backend(config: &Config, clients: AwsClients, role: Role) -> Result<Backend> {
    open_aws_backend_on(config, clients, role, Arc::new(SystemClock)).await
}

async fn open_aws_backend_on(
    config: &Config,
    clients: AwsClients,
    role: Role,
    clock: Arc<dyn Clock>,
) -> Result<Backend> {
    let queues = if config.create_resources {
        create_resources(&clients, &config.aws).await?
    } else {
        if role == Role::Local && clients.dynamodb.describe_table().table_name(&config.aws.table).send().await.is_err()
        {
            // Said once at start-up, in one line, rather than as a 500 on every request.
            return Err(Error::internal(format!(
                "DynamoDB table {} is not reachable (missing, or no access): create it (aivideo serve --create-resources, or the SAM template) or set AIVIDEO_TABLE",
                config.aws.table
            )));
        }
        match &config.aws.queue_urls {
            Some(urls) => urls.clone(),
            None => queue_urls(&clients, &config.aws).await?,
        }
    };
    let store = Arc::new(
        DynamoStore::new(clients.dynamodb.clone(), config.aws.table.clone())
            .with_claim_lease(config.idempotency_claim_seconds),
    );
    let queue = Arc::new(SqsQueue::new(clients.sqs.clone(), queues.high, queues.normal, queues.low));
    let secrets: Arc<dyn SecretSource> =
        Arc::new(SecretsManagerSource::with_clock(clients.secrets.clone(), super::SECRET_TTL, clock.clone()));
    let token_secret = match (role, config.auth.algorithm, &config.auth.secret) {
        (_, JwtAlgorithm::Rs256 | JwtAlgorithm::Es256, _) => None,
        (_, JwtAlgorithm::Hs256, Some(secret)) => Some(secret.clone()),
        (Role::Worker, JwtAlgorithm::Hs256, None) => None,
        (Role::Api | Role::Local, JwtAlgorithm::Hs256, None) => Some(secrets.secret(&config.aws.jwt_secret).await?),
    };
    Ok(Backend {
        stories: store.clone(),
        plans: store.clone(),
        idempotency: store.clone(),
        jobs: store.clone(),
        queue: queue.clone(),
        inbox: queue,
        recovery: None,
        providers: store.clone(),
        submit_budget: store.clone(),
        usage: store.clone(),
        events: store.clone(),
        webhooks: store,
        webhook_queue: Arc::new(crate::adapters::aws::SqsWebhookQueue::new(
            clients.sqs.clone(),
            config.aws.webhook_queue_url.clone(),
            format!("{}-webhooks", config.aws.queue_prefix),
        )),
        secrets,
        media: Arc::new(S3Media::with_clock(clients.s3.clone(), config.aws.bucket.clone(), clock.clone())),
        local_media: None,
        token_secret,
        // Lambda's only writable folder.
        work_dir: std::env::temp_dir().join("aivideo-work"),
        clock,
    })
}
