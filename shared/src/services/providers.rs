//! Provider configuration: what each provider costs, which model it runs and whether it may start
//! renders. Providers an admin never configured run on their seed (the published prices).

use std::sync::Arc;

use crate::domain::error::{Error, Result};
use crate::domain::pricing::seed_provider_config;
use crate::domain::provider::{AiProviderConfig, PricePerSecond};
use crate::domain::values::AiProvider;
use crate::ports::ProviderConfigStore;

/// How often an update that raced another admin's is decided again.
const RACE_ATTEMPTS: usize = 10;

/// The refusal of a render whose provider is disabled.
/// 409 `provider_retired`: the provider (or its model) can no longer finish a clip.
pub(crate) fn retired(config: &AiProviderConfig) -> Option<Error> {
    crate::domain::provider::retirement(config.provider, &config.model)
        .map(|r| Error::ProviderRetired { detail: r.detail, alternative: r.alternative })
}

/// 409 `provider_retired` for an edit that would set a retired model or switch a retired
/// provider on (a well-formed request the provider's state refuses, as a render start is).
fn refuse_retired(edit: &ProviderEdit, next: &AiProviderConfig) -> Result<()> {
    if edit.model.is_none() && edit.enabled != Some(true) {
        return Ok(());
    }
    retired(next).map_or(Ok(()), Err)
}

pub(crate) fn disabled(provider: AiProvider) -> Error {
    Error::Conflict {
        detail: format!(
            "The {provider} provider is disabled, so this story cannot be rendered; choose another ai_provider or ask \
             an admin to enable it."
        ),
        current_status: None,
    }
}

/// A change to a configuration; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProviderEdit {
    /// Whether renders may start.
    pub enabled: Option<bool>,
    /// The model.
    pub model: Option<String>,
    /// Prices per second.
    pub price_per_second_usd: Option<PricePerSecond>,
    /// Longest clip per task.
    pub max_clip_seconds: Option<u32>,
    /// Submissions per minute.
    pub rate_limit_per_minute: Option<u32>,
    /// The secret holding the API key.
    pub secret_name: Option<String>,
    /// Parameters sent with every task.
    pub default_parameters: Option<serde_json::Map<String, serde_json::Value>>,
}

impl ProviderEdit {
    /// `config` with the edit applied.
    pub fn apply(&self, config: &AiProviderConfig) -> AiProviderConfig {
        let mut next = config.clone();
        if let Some(v) = self.enabled {
            next.enabled = v;
        }
        if let Some(v) = &self.model {
            next.model.clone_from(v);
        }
        if let Some(v) = self.price_per_second_usd {
            next.price_per_second_usd = v;
        }
        if let Some(v) = self.max_clip_seconds {
            next.max_clip_seconds = v;
        }
        if let Some(v) = self.rate_limit_per_minute {
            next.rate_limit_per_minute = v;
        }
        if let Some(v) = &self.secret_name {
            next.secret_name = Some(v.clone());
        }
        if let Some(v) = &self.default_parameters {
            next.default_parameters.clone_from(v);
        }
        next
    }
}

/// The provider configuration use cases.
#[derive(Clone)]
pub struct ProviderService {
    store: Arc<dyn ProviderConfigStore>,
}

impl ProviderService {
    /// Over `store`.
    pub fn new(store: Arc<dyn ProviderConfigStore>) -> Self {
        Self { store }
    }

    /// Every provider's configuration: the stored one, or the seed.
    pub async fn all(&self) -> Result<Vec<AiProviderConfig>> {
        let stored = self.store.stored_provider_configs().await?;
        Ok(AiProvider::ALL
            .iter()
            .map(|p| stored.iter().find(|c| c.provider == *p).cloned().unwrap_or_else(|| seed_provider_config(*p)))
            .collect())
    }

    /// One provider's configuration.
    pub async fn get(&self, provider: AiProvider) -> Result<AiProviderConfig> {
        let stored = self.store.stored_provider_configs().await?;
        Ok(stored.into_iter().find(|c| c.provider == provider).unwrap_or_else(|| seed_provider_config(provider)))
    }

    /// The configuration a render of `provider` may start with: 409 when it is disabled.
    pub async fn for_render(&self, provider: AiProvider) -> Result<AiProviderConfig> {
        let config = self.get(provider).await?;
        if let Some(refusal) = retired(&config) {
            return Err(refusal);
        }
        if !config.enabled {
            return Err(disabled(provider));
        }
        Ok(config)
    }

    /// Stores a first configuration for a provider that has none stored (409 otherwise).
    pub async fn create(&self, config: AiProviderConfig) -> Result<AiProviderConfig> {
        let whole = ProviderEdit {
            model: Some(config.model.clone()),
            enabled: Some(config.enabled),
            ..ProviderEdit::default()
        };
        refuse_retired(&whole, &config)?;
        let mut config = config;
        config.version = 1;
        match self.store.put_provider_config(&config, 0).await {
            Ok(()) => Ok(config),
            Err(Error::VersionMismatch { .. }) => Err(Error::Conflict {
                detail: format!("The {} provider is configured already; change it with PATCH.", config.provider),
                current_status: None,
            }),
            Err(e) => Err(e),
        }
    }

    /// Applies `edit`; with `expected_version` (If-Match) only to that version (412 otherwise).
    pub async fn update(
        &self,
        provider: AiProvider,
        edit: &ProviderEdit,
        expected_version: Option<u64>,
    ) -> Result<AiProviderConfig> {
        for _ in 0..RACE_ATTEMPTS {
            let current = self.get(provider).await?;
            if let Some(expected) = expected_version
                && expected != current.version
            {
                return Err(Error::VersionMismatch { current_version: current.version });
            }
            let mut next = edit.apply(&current);
            refuse_retired(edit, &next)?;
            next.version = current.version + 1;
            match self.store.put_provider_config(&next, current.version).await {
                Ok(()) => return Ok(next),
                Err(Error::VersionMismatch { current_version }) if expected_version.is_some() => {
                    return Err(Error::VersionMismatch { current_version });
                }
                Err(Error::VersionMismatch { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::Conflict {
            detail: "The provider is being changed by other requests right now; try again.".into(),
            current_status: None,
        })
    }
}
