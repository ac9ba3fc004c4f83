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

/// The submissions made to one provider in the last minute, oldest first: the budget behind its
/// `rate_limit_per_minute`, kept in the store so that every worker, in every process, draws
/// from the same one (a sliding minute: never more than the limit in any 60 s).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SubmitWindow {
    /// When each recent submission was let through.
    pub stamps: Vec<chrono::DateTime<chrono::Utc>>,
    /// Bumped by every write; the store's write is conditioned on it.
    #[serde(default)]
    pub version: u64,
}

impl SubmitWindow {
    /// One more submission at `now` if fewer than `per_minute` went in the minute before it;
    /// otherwise when the next one may go.
    pub fn take(
        &self,
        per_minute: u32,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<SubmitWindow, chrono::DateTime<chrono::Utc>> {
        let minute = chrono::Duration::seconds(60);
        // A stamp ahead of `now` (another worker's clock) still counts.
        let mut recent: Vec<_> = self.stamps.iter().copied().filter(|t| now - *t < minute).collect();
        recent.sort();
        let limit = per_minute as usize;
        if limit == 0 || recent.len() >= limit {
            let oldest = recent.get(recent.len().saturating_sub(limit.max(1))).copied().unwrap_or(now);
            return Err(oldest + minute);
        }
        recent.push(now);
        Ok(SubmitWindow { stamps: recent, version: self.version + 1 })
    }
}

/// The `veo` provider's model when none is configured: Gemini Omni Flash, which Google's video
/// guide for the Gemini API recommends as the default video model (served through the
/// Interactions API; the Veo 3.1 ids are still served through `predictLongRunning`). The id is the
/// one Google's Omni guide for the Gemini API uses; the `-preview` id is deprecated on Vertex
/// since 2026-11-06 and still accepted here.
pub const VEO_DEFAULT_MODEL: &str = "gemini-omni-1.1-flash";

/// Why a provider, or one of its models, can no longer render a clip (SPEC §8.8): a render with it
/// is refused at its start (409 `provider_retired`), before any paid call; an admin cannot
/// configure a retired model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    /// What was retired, when, by whom.
    pub detail: String,
    /// What renders instead.
    pub alternative: String,
}

/// The retirement of `provider` or of its `model`, if the provider retired it.
pub fn retirement(provider: AiProvider, model: &str) -> Option<Retirement> {
    match provider {
        AiProvider::StabilityAi => Some(Retirement {
            detail: "Stability AI discontinued its Stable Video (image-to-video) API on 2025-07-24; a render with \
                     stability_ai could not finish its clips."
                .into(),
            alternative: "Stable Video Diffusion is still served by fal and Replicate: set the story's ai_provider to \
                          fal or replicate, with a Stable Video Diffusion model in that provider's configuration."
                .into(),
        }),
        AiProvider::Veo => match model.trim() {
            "veo-2.0-generate-001" | "veo-3.0-generate-001" | "veo-3.0-fast-generate-001" => Some(Retirement {
                detail: format!("Google shut down the Veo model {model} on the Gemini API on 2026-06-30."),
                alternative: "Configure a current Veo model from Google's video guide for the Gemini API.".into(),
            }),
            vertex if vertex.starts_with("veo-3.1") && vertex.ends_with("-001") => Some(Retirement {
                detail: format!(
                    "{model} is a Vertex AI model id; the Gemini API (the host this client calls) does not serve it."
                ),
                alternative: "Configure a Gemini API Veo model id (Google's video guide for the Gemini API).".into(),
            }),
            _ => None,
        },
        _ => None,
    }
}

/// How long a provider may hold one submitted task before the watchdog ends the attempt with
/// `failure_code: "timeout"` (and the job is retried with a new task while attempts remain).
/// Where the provider documents a maximum it is that plus the queueing it does before the clock
/// starts; where it documents none, a bound well past its slowest documented render.
pub fn task_deadline(provider: AiProvider) -> chrono::Duration {
    let minutes = match provider {
        // Renders on this machine; `simulate: slow` runs at most a few minutes.
        AiProvider::Local => 15,
        // "Predictions time out after running for 30 minutes" (Replicate, prediction lifecycle);
        // a prediction may wait in `starting` before that clock runs.
        AiProvider::Replicate => 40,
        // The Gemini API's video guide: Veo takes from seconds to about 6 minutes; Omni Flash
        // about half a minute for a 10 s clip (third parties' measurements).
        AiProvider::Veo => 20,
        // No documented maximum (Runway tasks, Luma generations, fal queue requests): renders of
        // 5–10 s clips take minutes; half an hour means the task is lost.
        AiProvider::Runway | AiProvider::Luma | AiProvider::Fal | AiProvider::StabilityAi => 30,
    };
    chrono::Duration::minutes(minutes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_lets_per_minute_submissions_through_in_any_sixty_seconds_and_says_when_the_next_may_go() {
        let start = chrono::Utc::now();
        let mut window = SubmitWindow::default();
        for i in 0..5 {
            window = window.take(5, start + chrono::Duration::seconds(i * 10)).unwrap();
        }
        // The sixth within the minute waits until the first is a minute old.
        let at = start + chrono::Duration::seconds(45);
        assert_eq!(window.take(5, at), Err(start + chrono::Duration::seconds(60)));
        let later = window.take(5, start + chrono::Duration::seconds(60)).unwrap();
        assert_eq!(later.stamps.len(), 5, "the first stamp left the window");
        assert_eq!(later.version, window.version + 1);
        // Every stamp within any 60 s: never more than 5.
        assert!(later.stamps.windows(5).all(|w| w[4] - w[0] < chrono::Duration::seconds(60)));
    }

    #[test]
    fn stability_ai_is_retired_with_an_alternative_and_veo_refuses_shut_down_and_vertex_ids() {
        let stability = retirement(AiProvider::StabilityAi, "stable-video-diffusion").unwrap();
        assert!(stability.detail.contains("2025-07-24") && stability.alternative.contains("fal"));
        assert!(retirement(AiProvider::Veo, "veo-3.0-generate-001").is_some());
        assert!(retirement(AiProvider::Veo, "veo-3.1-fast-generate-001").is_some());
        // Third parties report the 3.1 preview ids shut down on 2026-10-22; Google has not said so.
        assert!(retirement(AiProvider::Veo, "veo-3.1-fast-generate-preview").is_none());
        assert!(retirement(AiProvider::Veo, VEO_DEFAULT_MODEL).is_none());
        assert!(retirement(AiProvider::Runway, "gen4.5").is_none());
    }

    #[test]
    fn every_provider_has_a_deadline_longer_than_its_slowest_render_and_replicates_is_past_its_30_minutes() {
        for provider in AiProvider::ALL {
            assert!(task_deadline(*provider) >= chrono::Duration::minutes(15), "{provider}");
        }
        assert!(task_deadline(AiProvider::Replicate) > chrono::Duration::minutes(30));
    }
}
