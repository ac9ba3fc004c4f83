//! Clients of the AI video providers, over one wire layer (`http`) and one safe downloader
//! (`download`). Each speaks its provider's published protocol and maps it onto the one life
//! cycle of `ports::TaskState`; the worker does the rest (records the task id, polls through
//! delayed messages, retries with backoff, fails the story on a permanent refusal).

pub mod download;
mod fal;
pub mod http;
mod luma;
mod replicate;
mod runway;
mod stability;
mod veo;

use std::collections::HashMap;
use std::sync::Arc;

pub use download::DownloadPolicy;
pub use fal::FalProvider;
pub use http::WirePolicy;
pub use luma::LumaProvider;
pub use replicate::ReplicateProvider;
pub use runway::RunwayProvider;
pub use stability::StabilityProvider;
pub use veo::VeoProvider;

use crate::adapters::ffmpeg::Ffmpeg;
use crate::domain::pricing::seed_provider_config;
use crate::domain::values::AiProvider;
use crate::ports::{ClipRequest, ProviderError, SecretSource, VideoProvider};

/// Where one provider is and how it is talked to.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// The API's base URL (no trailing slash), e.g. `https://api.dev.runwayml.com`.
    pub base_url: String,
    /// The secret with the API key when the render's terms name none.
    pub secret_name: String,
    /// Timeouts and retries of API calls.
    pub wire: WirePolicy,
    /// Where results may be downloaded from, and how much.
    pub download: DownloadPolicy,
}

impl ProviderSettings {
    /// The production settings of `provider` (`None` for `local`), with `base_url` overriding
    /// the published one (its host is then allowed for downloads too).
    pub fn published(provider: AiProvider, base_url: Option<&str>) -> Option<Self> {
        let (base, hosts): (&str, &[&str]) = match provider {
            AiProvider::Local => return None,
            // Task outputs are signed CloudFront URLs.
            AiProvider::Runway => ("https://api.dev.runwayml.com", &["runwayml.com", "cloudfront.net"]),
            AiProvider::Luma => ("https://api.lumalabs.ai", &["cdn-luma.com", "lumalabs.ai"]),
            // Files API downloads redirect to Google's content hosts.
            AiProvider::Veo => (
                "https://generativelanguage.googleapis.com",
                &["generativelanguage.googleapis.com", "googleusercontent.com"],
            ),
            AiProvider::Replicate => ("https://api.replicate.com", &["replicate.delivery", "replicate.com"]),
            AiProvider::Fal => ("https://queue.fal.run", &["fal.media", "fal.run", "fal.ai"]),
            AiProvider::StabilityAi => ("https://api.stability.ai", &["api.stability.ai"]),
        };
        let base_url = base_url.unwrap_or(base).trim_end_matches('/').to_owned();
        let mut download = DownloadPolicy::for_hosts(hosts);
        if let Some(host) = reqwest::Url::parse(&base_url).ok().and_then(|u| u.host_str().map(str::to_owned)) {
            download.hosts.push(host);
        }
        let secret_name = seed_provider_config(provider).secret_name.unwrap_or_default();
        Some(Self { base_url, secret_name, wire: WirePolicy::default(), download })
    }
}

/// The clients of every provider in `settings`, keyed by provider.
pub fn clients(
    settings: &HashMap<AiProvider, ProviderSettings>,
    secrets: &Arc<dyn SecretSource>,
    ffmpeg: Option<&Ffmpeg>,
) -> Result<HashMap<AiProvider, Arc<dyn VideoProvider>>, ProviderError> {
    let mut clients: HashMap<AiProvider, Arc<dyn VideoProvider>> = HashMap::new();
    for (provider, s) in settings {
        let s = s.clone();
        let secrets = secrets.clone();
        let client: Arc<dyn VideoProvider> = match provider {
            AiProvider::Local => continue,
            AiProvider::Runway => Arc::new(RunwayProvider::new(s, secrets)?),
            AiProvider::Luma => Arc::new(LumaProvider::new(s, secrets)?),
            AiProvider::Veo => Arc::new(VeoProvider::new(s, secrets)?),
            AiProvider::Replicate => Arc::new(ReplicateProvider::new(s, secrets)?),
            AiProvider::Fal => Arc::new(FalProvider::new(s, secrets)?),
            AiProvider::StabilityAi => Arc::new(StabilityProvider::new(s, secrets, ffmpeg.cloned())?),
        };
        clients.insert(*provider, client);
    }
    Ok(clients)
}

/// The model a request renders with, or the provider's default.
fn model_of<'a>(request: &'a ClipRequest, default: &'a str) -> &'a str {
    let model = request.render.terms.model.trim();
    if model.is_empty() { default } else { model }
}

/// The secret to read the key from for `request`.
fn secret_of<'a>(request: &'a ClipRequest, settings: &'a ProviderSettings) -> &'a str {
    let name = request.render.terms.secret_name.trim();
    if name.is_empty() { &settings.secret_name } else { name }
}

/// The clip's parameters for the provider: the configuration's defaults, then the prompt's own,
/// without the `local` provider's `simulate*` switches.
fn extra_parameters(request: &ClipRequest) -> serde_json::Map<String, serde_json::Value> {
    let mut out = request.render.terms.default_parameters.clone();
    for (k, v) in &request.clip.parameters {
        if !k.starts_with("simulate") {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// The clip's parameters the provider's API defines among `allowed` (its published request
/// fields that the client does not set itself). A prompt's other parameters — the template
/// engine's `camera`, `motion`, `guidance`, another provider's `seed` — would make the provider
/// refuse the request (its schemas allow no other field), so they are left out, and said so in
/// the log.
fn passthrough(request: &ClipRequest, allowed: &[&str]) -> serde_json::Map<String, serde_json::Value> {
    let (kept, dropped): (serde_json::Map<_, _>, serde_json::Map<_, _>) =
        extra_parameters(request).into_iter().partition(|(k, _)| allowed.contains(&k.as_str()));
    if !dropped.is_empty() {
        let names: Vec<&String> = dropped.keys().collect();
        tracing::debug!(?names, "parameters this provider's API does not define are not sent");
    }
    kept
}

/// The nearest length a provider offers (the clip is conformed to the scene's exact length
/// afterwards): the shortest one at least as long as the scene, else the longest.
fn nearest_length(seconds: f64, offered: &[u32]) -> u32 {
    offered.iter().copied().find(|o| f64::from(*o) + 1e-6 >= seconds).or_else(|| offered.last().copied()).unwrap_or(5)
}

/// Landscape, portrait or square, as the provider writes it.
fn orientation(request: &ClipRequest) -> std::cmp::Ordering {
    request.render.width.cmp(&request.render.height)
}

/// A prompt no longer than `max` characters (providers refuse longer ones).
fn prompt_text(request: &ClipRequest, max: usize) -> String {
    request.clip.prompt.chars().take(max).collect()
}

/// A task id that can go into a URL path: providers' ids are letters, digits and `-`/`_`.
fn path_safe(task: &str) -> Result<&str, ProviderError> {
    if !task.is_empty()
        && task.len() <= 200
        && task.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(task)
    } else {
        Err(ProviderError::permanent("unknown_task", "The recorded task id is not one this provider issues."))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_round_up_to_what_the_provider_offers() {
        assert_eq!(nearest_length(3.2, &[5, 10]), 5);
        assert_eq!(nearest_length(5.0, &[5, 10]), 5);
        assert_eq!(nearest_length(7.5, &[4, 6, 8]), 8);
        assert_eq!(nearest_length(30.0, &[5, 9]), 9);
    }

    #[test]
    fn task_ids_never_name_other_paths() {
        assert!(path_safe("a1b2-c3_d4").is_ok());
        for bad in ["", "../x", "a/b", "a?b", "a%2f"] {
            assert!(path_safe(bad).is_err(), "{bad}");
        }
    }
}
