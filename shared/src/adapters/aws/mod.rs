//! The production adapters: DynamoDB, SQS, S3 and Secrets Manager. Clients are built once per cold
//! start from one `aws_config` load; `AWS_ENDPOINT_URL` points them at an emulator.

mod dynamo;
pub(crate) mod errors;
mod media;
mod queue;
mod resources;
mod secrets;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;

pub use dynamo::{DynamoStore, GSI1, GSI2, GSI3, GSI4};
pub use errors::{aws_error, is_transient_code};
pub use media::S3Media;
pub use queue::{SqsQueue, SqsWebhookQueue};
pub use resources::{AwsNames, QueueUrls, create_resources, queue_urls};
pub use secrets::SecretsManagerSource;

/// Counts the requests each AWS service receives, by operation (retries included), so tests can
/// publish round trips per API call.
#[derive(Debug, Clone, Default)]
pub struct CallCounter {
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl CallCounter {
    /// Calls so far, `service.Operation` → count.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.calls.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets the counts.
    pub fn reset(&self) {
        if let Ok(mut c) = self.calls.lock() {
            c.clear();
        }
    }

    /// Total calls so far.
    pub fn total(&self) -> u64 {
        self.snapshot().values().sum()
    }

    fn interceptor(&self, service: &'static str) -> CountingInterceptor {
        CountingInterceptor { service, counter: self.clone() }
    }
}

#[derive(Debug)]
struct CountingInterceptor {
    service: &'static str,
    counter: CallCounter,
}

impl Intercept for CountingInterceptor {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        // DynamoDB and Secrets Manager name the operation in X-Amz-Target; SQS too (JSON protocol).
        let operation = context
            .request()
            .headers()
            .get("x-amz-target")
            .and_then(|t| t.rsplit('.').next())
            .map(str::to_owned)
            .unwrap_or_else(|| context.request().method().to_owned());
        if let Ok(mut calls) = self.counter.calls.lock() {
            *calls.entry(format!("{}.{operation}", self.service)).or_default() += 1;
        }
        Ok(())
    }
}

/// The four clients, built once.
#[derive(Clone, Debug)]
pub struct AwsClients {
    /// DynamoDB.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// SQS.
    pub sqs: aws_sdk_sqs::Client,
    /// S3 (path-style addressing when an endpoint is configured, as emulators need).
    pub s3: aws_sdk_s3::Client,
    /// Secrets Manager.
    pub secrets: aws_sdk_secretsmanager::Client,
    /// Requests made through these clients.
    pub calls: CallCounter,
}

impl AwsClients {
    /// Loads the standard AWS environment (region, credentials, `AWS_ENDPOINT_URL`) once.
    pub async fn from_env() -> Self {
        let shared = aws_config::defaults(aws_config::BehaviorVersion::latest()).load().await;
        Self::from_config(&shared)
    }

    /// Clients from an already loaded configuration.
    pub fn from_config(shared: &aws_config::SdkConfig) -> Self {
        let calls = CallCounter::default();
        let dynamodb =
            aws_sdk_dynamodb::config::Builder::from(shared).interceptor(calls.interceptor("dynamodb")).build();
        let sqs = aws_sdk_sqs::config::Builder::from(shared).interceptor(calls.interceptor("sqs")).build();
        let s3 = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(shared.endpoint_url().is_some())
            .interceptor(calls.interceptor("s3"))
            .build();
        let secrets = aws_sdk_secretsmanager::config::Builder::from(shared)
            .interceptor(calls.interceptor("secretsmanager"))
            .build();
        Self {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb),
            sqs: aws_sdk_sqs::Client::from_conf(sqs),
            s3: aws_sdk_s3::Client::from_conf(s3),
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets),
            calls,
        }
    }
}
