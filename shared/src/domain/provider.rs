//! AI provider configuration: what each provider costs and how to reach it.

use serde::{Deserialize, Serialize};

use crate::domain::values::{AiProvider, choices};

choices!(
    /// Render quality; prices differ per quality.
    Quality {
        /// Cheapest, fastest.
        Low = "low",
        /// The default.
        Medium = "medium",
        /// Best.
        High = "high",
    }
);

/// Price of one rendered second, per quality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PricePerSecond {
    /// At low quality.
    pub low: f64,
    /// At medium quality.
    pub medium: f64,
    /// At high quality.
    pub high: f64,
}

impl PricePerSecond {
    /// The price at `quality`.
    pub fn at(&self, quality: Quality) -> f64 {
        match quality {
            Quality::Low => self.low,
            Quality::Medium => self.medium,
            Quality::High => self.high,
        }
    }
}

/// How the product uses one provider; managed by admins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AiProviderConfig {
    /// Which provider.
    pub provider: AiProvider,
    /// Disabled providers cannot start renders.
    pub enabled: bool,
    /// The provider's model name.
    pub model: String,
    /// Price per rendered second, per quality.
    pub price_per_second_usd: PricePerSecond,
    /// Longest clip the provider renders in one task.
    pub max_clip_seconds: u32,
    /// Submissions allowed per minute.
    pub rate_limit_per_minute: u32,
    /// Name of the secret holding its API key (none for `local`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    /// Parameters sent with every task unless a prompt overrides them.
    pub default_parameters: serde_json::Map<String, serde_json::Value>,
    /// Bumped by every write (0: the seed, never stored).
    #[serde(default)]
    pub version: u64,
}
