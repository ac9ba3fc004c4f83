//! Secrets Manager as the secret source: each secret is read once, then refreshed after a TTL,
//! never per request.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use crate::domain::error::{Error, Result};
use crate::ports::SecretSource;

/// Reads secrets by name, caching each for `ttl`.
#[derive(Debug)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, (String, Instant)>>,
}

impl SecretsManagerSource {
    /// A source whose values are trusted for `ttl` before they are read again (rotation).
    pub fn new(client: aws_sdk_secretsmanager::Client, ttl: Duration) -> Self {
        Self { client, ttl, cache: Mutex::new(HashMap::new()) }
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secret(&self, name: &str) -> Result<String> {
        let mut cache = self.cache.lock().await;
        if let Some((value, read_at)) = cache.get(name)
            && read_at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let fetched = self.client.get_secret_value().secret_id(name).send().await;
        match fetched {
            Ok(out) => {
                let value = out
                    .secret_string()
                    .map(str::to_owned)
                    .ok_or_else(|| Error::internal(format!("secret {name} has no string value")))?;
                cache.insert(name.to_owned(), (value.clone(), Instant::now()));
                Ok(value)
            }
            Err(e) => match cache.get(name) {
                // Keep serving the last value if a refresh fails; the error is logged.
                Some((value, _)) => {
                    tracing::warn!(secret = name, error = ?e, "secret refresh failed; keeping the cached value");
                    Ok(value.clone())
                }
                None => Err(super::aws_error(&format!("secretsmanager: cannot read secret {name}"), e)),
            },
        }
    }
}
