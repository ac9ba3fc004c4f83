//! Luma Dream Machine (`api.lumalabs.ai/dream-machine/v1`): `POST /generations`, then
//! `GET /generations/{id}` through `queued`, `dreaming`, `completed` (`assets.video`) or `failed`
//! with a free-text `failure_reason`; moderation refusals are recognised by their wording.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::download::download;
use super::http::{Call, Wire, body_text, error_text};
use super::{ProviderSettings, model_of, nearest_length, orientation, passthrough, path_safe, prompt_text, secret_of};
use crate::domain::job::FailureCode;
use crate::domain::provider::Quality;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

/// The Luma client.
#[derive(Debug)]
pub struct LumaProvider {
    settings: ProviderSettings,
    wire: Wire,
}

fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    (None, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Generation {
    id: String,
    state: Option<String>,
    failure_reason: Option<String>,
    assets: Option<Assets>,
}

#[derive(Deserialize)]
struct Assets {
    video: Option<String>,
}

/// Luma's documented moderation refusals ("Frame moderation failed", "Contains blacklisted
/// words", "Advanced prompt moderation failed" …).
fn moderation(reason: &str) -> bool {
    let r = reason.to_ascii_lowercase();
    r.contains("moderation") || r.contains("blacklisted")
}

impl LumaProvider {
    /// A client with `settings`, its key read from `secrets`.
    pub fn new(settings: ProviderSettings, secrets: Arc<dyn SecretSource>) -> Result<Self, ProviderError> {
        let wire = Wire::new("Luma", settings.wire.clone(), secrets, parse_error)?;
        Ok(Self { settings, wire })
    }

    async fn authed(&self, call: Call, request: &ClipRequest) -> Result<Call, ProviderError> {
        let key = self.wire.key_named(secret_of(request, &self.settings)).await?;
        Ok(call.header("Authorization", format!("Bearer {key}")))
    }
}

#[async_trait]
impl VideoProvider for LumaProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let aspect_ratio = match orientation(request) {
            std::cmp::Ordering::Less => "9:16",
            std::cmp::Ordering::Equal => "1:1",
            std::cmp::Ordering::Greater => "16:9",
        };
        let resolution = match request.render.quality {
            Quality::Low => "540p",
            Quality::Medium => "720p",
            Quality::High => "1080p",
        };
        let mut body = json!({
            "prompt": prompt_text(request, 5000),
            "model": model_of(request, "ray-2"),
            "aspect_ratio": aspect_ratio,
            "resolution": resolution,
            "duration": format!("{}s", nearest_length(request.clip.duration_seconds, &[5, 9])),
        });
        if let Some(obj) = body.as_object_mut() {
            // Of the request fields Luma defines, those a prompt may set.
            obj.extend(passthrough(request, &["loop", "keyframes", "concepts"]));
        }
        // Videos are created at `/generations/video` (the current spec and SDK; the older
        // `/generations` page is stale).
        let url = format!("{}/dream-machine/v1/generations/video", self.settings.base_url);
        let call = Call::json(Method::POST, url, &body);
        let created: Generation = self.wire.send(&self.authed(call, request).await?, false).await?.json("Luma")?;
        Ok(created.id)
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        let url = format!("{}/dream-machine/v1/generations/{}", self.settings.base_url, path_safe(task_id)?);
        let generation: Generation =
            self.wire.send(&self.authed(Call::get(url), request).await?, true).await?.json("Luma")?;
        Ok(match generation.state.as_deref().unwrap_or("queued") {
            "queued" => TaskState::Queued,
            "dreaming" => TaskState::Running { progress: 50 },
            "completed" => match generation.assets.and_then(|a| a.video) {
                Some(video) => TaskState::Succeeded { outputs: vec![video] },
                None => TaskState::Failed(ProviderError::retryable("Luma reported completion without a video.")),
            },
            "failed" => {
                let reason = generation.failure_reason.unwrap_or_else(|| "the generation failed".into());
                if moderation(&reason) {
                    TaskState::Failed(ProviderError::permanent("content_moderation", format!("Luma: {reason}")))
                } else {
                    TaskState::Failed(ProviderError {
                        code: Some("failed".into()),
                        message: format!("Luma: {reason}"),
                        retryable: true,
                        failure: FailureCode::ProviderError,
                    })
                }
            }
            other => TaskState::Failed(ProviderError::retryable(format!("Luma reported an unknown state {other:?}."))),
        })
    }

    async fn fetch(&self, output: &str, _request: &ClipRequest, dest: &std::path::Path) -> Result<(), ProviderError> {
        download(output, dest, &self.settings.download, &[]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moderation_is_recognised_by_its_wording() {
        assert!(moderation("Advanced prompt moderation failed"));
        assert!(moderation("Contains blacklisted words"));
        assert!(!moderation("Job failed"));
    }
}
