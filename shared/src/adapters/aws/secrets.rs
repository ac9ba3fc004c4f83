//! Secrets Manager as the secret source: each secret is read once, then refreshed after a TTL,
//! never per request.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use crate::domain::error::{Error, Result};
use crate::ports::{Clock, SecretSource, SystemClock};

/// Reads secrets by name, caching each for `ttl` (measured on its `Clock`).
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    clock: Arc<dyn Clock>,
    cache: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
}

impl std::fmt::Debug for SecretsManagerSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names and values stay out of logs.
        f.debug_struct("SecretsManagerSource").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl SecretsManagerSource {
    /// A source whose values are trusted for `ttl` before they are read again (rotation).
    pub fn new(client: aws_sdk_secretsmanager::Client, ttl: Duration) -> Self {
        Self::with_clock(client, ttl, Arc::new(SystemClock))
    }

    /// Like `new`, with the TTL measured on `clock`.
    pub fn with_clock(client: aws_sdk_secretsmanager::Client, ttl: Duration, clock: Arc<dyn Clock>) -> Self {
        Self { client, ttl, clock, cache: Mutex::new(HashMap::new()) }
    }

    /// Whether a value read at `read_at` is still trusted at `now`. A clock that went back since
    /// counts as no time passed.
    fn fresh(&self, read_at: DateTime<Utc>, now: DateTime<Utc>) -> bool {
        (now - read_at).to_std().unwrap_or(Duration::ZERO) < self.ttl
    }
}

#[async_trait]
impl SecretSource for SecretsManagerSource {
    async fn secret(&self, name: &str) -> Result<String> {
        let mut cache = self.cache.lock().await;
        let now = self.clock.now();
        if let Some((value, read_at)) = cache.get(name)
            && self.fresh(*read_at, now)
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
                cache.insert(name.to_owned(), (value.clone(), now));
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
