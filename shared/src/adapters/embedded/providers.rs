//! Provider configurations in the embedded store: one table keyed by provider, each write one
//! transaction that checks the version it replaces.

use async_trait::async_trait;
use redb::{ReadableTable, TableDefinition};

use super::store::{EmbeddedStore, decode, encode, internal};
use crate::domain::error::{Error, Result};
use crate::domain::provider::AiProviderConfig;
use crate::ports::ProviderConfigStore;

/// provider → configuration.
pub(super) const PROVIDERS: TableDefinition<'static, &'static str, &'static [u8]> = TableDefinition::new("providers");

#[async_trait]
impl ProviderConfigStore for EmbeddedStore {
    async fn stored_provider_configs(&self) -> Result<Vec<AiProviderConfig>> {
        self.read(|txn| {
            let table = txn.open_table(PROVIDERS).map_err(internal)?;
            let mut configs = Vec::new();
            for entry in table.iter().map_err(internal)? {
                let (_, value) = entry.map_err(internal)?;
                configs.push(decode(value.value())?);
            }
            Ok(configs)
        })
        .await
    }

    async fn put_provider_config(&self, config: &AiProviderConfig, expected: u64) -> Result<()> {
        let config = config.clone();
        self.write(move |txn| {
            let mut table = txn.open_table(PROVIDERS).map_err(internal)?;
            let stored: Option<AiProviderConfig> = match table.get(config.provider.as_str()).map_err(internal)? {
                Some(bytes) => Some(decode(bytes.value())?),
                None => None,
            };
            let current = stored.map_or(0, |c| c.version);
            if current != expected {
                return Err(Error::VersionMismatch { current_version: current });
            }
            table.insert(config.provider.as_str(), encode(&config)?.as_slice()).map_err(internal)?;
            Ok(())
        })
        .await
    }
}

/// provider → its submissions of the last minute (`SubmitWindow`).
pub(super) const SUBMIT_WINDOWS: TableDefinition<'static, &'static str, &'static [u8]> =
    TableDefinition::new("submit_windows");

#[async_trait]
impl crate::ports::SubmitBudget for EmbeddedStore {
    async fn take_submission(
        &self,
        provider: crate::domain::values::AiProvider,
        per_minute: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<Option<chrono::DateTime<chrono::Utc>>> {
        // One write transaction: of concurrent takers, each sees the one before it.
        self.write(move |txn| {
            let mut table = txn.open_table(SUBMIT_WINDOWS).map_err(internal)?;
            let window: crate::domain::provider::SubmitWindow = match table.get(provider.as_str()).map_err(internal)? {
                Some(bytes) => decode(bytes.value())?,
                None => crate::domain::provider::SubmitWindow::default(),
            };
            match window.take(per_minute, now) {
                Ok(next) => {
                    table.insert(provider.as_str(), encode(&next)?.as_slice()).map_err(internal)?;
                    Ok(None)
                }
                Err(free_at) => Ok(Some(free_at)),
            }
        })
        .await
    }
}
