//! `--create-resources`: the table (with its indexes and TTL), the queues with their dead-letter
//! queue, the bucket and the token secret, each created only when missing.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{AwsClients, GSI1, GSI2, GSI3, GSI4};
use crate::domain::error::{Error, Result};

/// The names of the AWS resources, from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsNames {
    /// `AIVIDEO_TABLE` (default `aivideo`).
    pub table: String,
    /// `AIVIDEO_QUEUE_PREFIX` (default `aivideo-jobs`): queues `<prefix>-high|normal|low|dlq`.
    pub queue_prefix: String,
    /// `AIVIDEO_BUCKET` (default `aivideo-media`).
    pub bucket: String,
    /// `AIVIDEO_JWT_SECRET_NAME` (default `aivideo/jwt-secret`).
    pub jwt_secret: String,
    /// `AIVIDEO_QUEUE_URL_HIGH`, `_NORMAL`, `_LOW`: the queues' URLs, as the template passes
    /// them, so a cold start need not look them up (three `GetQueueUrl` round trips).
    pub queue_urls: Option<QueueUrls>,
    /// `AIVIDEO_WEBHOOK_QUEUE_URL`: the webhook deliveries' queue (`<prefix>-webhooks`), as the
    /// template passes it; looked up by name when unset.
    pub webhook_queue_url: Option<String>,
}

/// The job queues' URLs by priority.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueUrls {
    /// `high` priority.
    pub high: String,
    /// `normal` priority.
    pub normal: String,
    /// `low` priority.
    pub low: String,
}

impl Default for AwsNames {
    fn default() -> Self {
        Self {
            table: "aivideo".into(),
            queue_prefix: "aivideo-jobs".into(),
            bucket: "aivideo-media".into(),
            jwt_secret: "aivideo/jwt-secret".into(),
            queue_urls: None,
            webhook_queue_url: None,
        }
    }
}

fn err(what: &str, e: impl std::fmt::Debug) -> Error {
    Error::internal(format!("cannot create {what}: {e:?}"))
}

fn attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(|e| err("table", e))
}

fn key(name: &str, kind: KeyType) -> Result<KeySchemaElement> {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().map_err(|e| err("table", e))
}

/// Creates whatever is missing; returns the queue URLs.
pub async fn create_resources(clients: &AwsClients, names: &AwsNames) -> Result<QueueUrls> {
    create_table(clients, &names.table).await?;
    let queues = create_queues(clients, &names.queue_prefix).await?;
    create_bucket(clients, &names.bucket).await?;
    create_secret(clients, &names.jwt_secret).await?;
    Ok(queues)
}

/// The URLs of existing queues, found by name.
pub async fn queue_urls(clients: &AwsClients, names: &AwsNames) -> Result<QueueUrls> {
    let url = |suffix: &'static str| {
        let name = format!("{}-{suffix}", names.queue_prefix);
        async move {
            let out = clients.sqs.get_queue_url().queue_name(&name).send().await.map_err(|e| {
                Error::internal(format!("SQS queue {name} is not reachable (missing, or no access): {e:?}"))
            })?;
            out.queue_url().map(str::to_owned).ok_or_else(|| Error::internal(format!("SQS queue {name} has no URL")))
        }
    };
    Ok(QueueUrls { high: url("high").await?, normal: url("normal").await?, low: url("low").await? })
}

async fn create_table(clients: &AwsClients, table: &str) -> Result<()> {
    let exists = clients.dynamodb.describe_table().table_name(table).send().await.is_ok();
    if exists {
        return Ok(());
    }
    let index = |name: &str, hash: &str, range: Option<&str>| -> Result<GlobalSecondaryIndex> {
        let mut builder = GlobalSecondaryIndex::builder()
            .index_name(name)
            .key_schema(key(hash, KeyType::Hash)?)
            .projection(Projection::builder().projection_type(ProjectionType::All).build());
        if let Some(range) = range {
            builder = builder.key_schema(key(range, KeyType::Range)?);
        }
        builder.build().map_err(|e| err("index", e))
    };
    clients
        .dynamodb
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("PK")?)
        .attribute_definitions(attribute("SK")?)
        .attribute_definitions(attribute("GSI1PK")?)
        .attribute_definitions(attribute("GSI1SK")?)
        .attribute_definitions(attribute("GSI2PK")?)
        .attribute_definitions(attribute("GSI3PK")?)
        .attribute_definitions(attribute("GSI3SK")?)
        .attribute_definitions(attribute("GSI4PK")?)
        .attribute_definitions(attribute("GSI4SK")?)
        .key_schema(key("PK", KeyType::Hash)?)
        .key_schema(key("SK", KeyType::Range)?)
        .global_secondary_indexes(index(GSI1, "GSI1PK", Some("GSI1SK"))?)
        .global_secondary_indexes(index(GSI2, "GSI2PK", None)?)
        .global_secondary_indexes(index(GSI3, "GSI3PK", Some("GSI3SK"))?)
        .global_secondary_indexes(index(GSI4, "GSI4PK", Some("GSI4SK"))?)
        .send()
        .await
        .map_err(|e| err("table", e))?;
    let ttl = TimeToLiveSpecification::builder()
        .enabled(true)
        .attribute_name("expires_at")
        .build()
        .map_err(|e| err("ttl", e))?;
    clients
        .dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(ttl)
        .send()
        .await
        .map_err(|e| err("ttl", e))?;
    Ok(())
}

async fn queue_url(
    clients: &AwsClients,
    name: &str,
    attributes: &[(aws_sdk_sqs::types::QueueAttributeName, String)],
) -> Result<String> {
    let mut request = clients.sqs.create_queue().queue_name(name);
    for (k, v) in attributes {
        request = request.attributes(k.clone(), v);
    }
    let out = request.send().await.map_err(|e| err("queue", e))?;
    out.queue_url().map(str::to_owned).ok_or_else(|| err("queue", "no URL"))
}

async fn create_queues(clients: &AwsClients, prefix: &str) -> Result<QueueUrls> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let dlq = queue_url(clients, &format!("{prefix}-dlq"), &[(A::MessageRetentionPeriod, "1209600".into())]).await?;
    let dlq_arn = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .map_err(|e| err("queue", e))?
        .attributes()
        .and_then(|a| a.get(&A::QueueArn).cloned())
        .ok_or_else(|| err("queue", "no ARN"))?;
    let redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string();
    let attributes = [(A::RedrivePolicy, redrive), (A::VisibilityTimeout, "360".into())];
    let high = queue_url(clients, &format!("{prefix}-high"), &attributes).await?;
    let normal = queue_url(clients, &format!("{prefix}-normal"), &attributes).await?;
    let low = queue_url(clients, &format!("{prefix}-low"), &attributes).await?;
    // Webhook deliveries: their own queue. A delivery waiting for a retry hours away comes back
    // every 11 hours at most, and a receiver's answer takes 10 s: a message is received a few
    // dozen times in a delivery's life, never near this count unless something is broken.
    let webhook_redrive = serde_json::json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "100"}).to_string();
    queue_url(
        clients,
        &format!("{prefix}-webhooks"),
        &[(A::RedrivePolicy, webhook_redrive), (A::VisibilityTimeout, "60".into())],
    )
    .await?;
    Ok(QueueUrls { high, normal, low })
}

async fn create_bucket(clients: &AwsClients, bucket: &str) -> Result<()> {
    if clients.s3.head_bucket().bucket(bucket).send().await.is_ok() {
        return Ok(());
    }
    clients.s3.create_bucket().bucket(bucket).send().await.map_err(|e| err("bucket", e))?;
    Ok(())
}

async fn create_secret(clients: &AwsClients, name: &str) -> Result<()> {
    if clients.secrets.describe_secret().secret_id(name).send().await.is_ok() {
        return Ok(());
    }
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| err("secret", e))?;
    let value = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, bytes);
    clients.secrets.create_secret().name(name).secret_string(value).send().await.map_err(|e| err("secret", e))?;
    Ok(())
}
