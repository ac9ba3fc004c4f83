//! Replicate: `POST /v1/models/{owner}/{name}/predictions` with `{"input": …}`, then
//! `GET /v1/predictions/{id}` through `starting`, `processing` (progress from the tqdm lines of
//! `logs`), `succeeded` (`output`: a URL, a list of them, or an object holding one), `failed`,
//! `canceled` or `aborted`. Output files need the token, sent to Replicate's hosts only.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::download::download;
use super::http::{Call, Wire, body_text, error_text};
use super::{ProviderSettings, extra_parameters, model_of, path_safe, prompt_text, secret_of};
use crate::domain::job::FailureCode;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

/// The Replicate client.
#[derive(Debug)]
pub struct ReplicateProvider {
    settings: ProviderSettings,
    wire: Wire,
}

fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let title = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("title").and_then(Value::as_str).map(str::to_owned));
    (title, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Prediction {
    id: String,
    status: String,
    #[serde(default)]
    output: Value,
    error: Option<Value>,
    logs: Option<String>,
}

/// The last percentage of a tqdm progress line in the logs (` 50%|█████     | 5/10`).
fn progress_of(logs: &str) -> Option<u8> {
    logs.lines().rev().find_map(|line| {
        let (before, _) = line.split_once("%|")?;
        before.trim().rsplit(' ').next()?.parse::<u8>().ok().map(|p| p.min(100))
    })
}

/// The first URL in an output of any shape.
fn first_url(output: &Value) -> Option<String> {
    match output {
        Value::String(s) if s.starts_with("http") => Some(s.clone()),
        Value::Array(items) => items.iter().find_map(first_url),
        Value::Object(map) => ["video", "url", "output"].iter().filter_map(|k| map.get(*k)).find_map(first_url),
        _ => None,
    }
}

/// Replicate's safety checker refusal (error code E005).
fn moderation(error: &str) -> bool {
    error.contains("E005") || error.to_ascii_lowercase().contains("flagged as sensitive") || error.contains("NSFW")
}

impl ReplicateProvider {
    /// A client with `settings`, its token read from `secrets`.
    pub fn new(settings: ProviderSettings, secrets: Arc<dyn SecretSource>) -> Result<Self, ProviderError> {
        let wire = Wire::new("Replicate", settings.wire.clone(), secrets, parse_error)?;
        Ok(Self { settings, wire })
    }

    async fn token(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        Ok(format!("Bearer {}", self.wire.key_named(secret_of(request, &self.settings)).await?))
    }
}

#[async_trait]
impl VideoProvider for ReplicateProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let model = model_of(request, "");
        // `owner/name` runs an official model; `owner/name:version` any model, by its version.
        let (name, version) = match model.split_once(':') {
            Some((name, version)) => (name, Some(version)),
            None => (model, None),
        };
        let part = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        let valid = name.split('/').count() == 2
            && name.split('/').all(part)
            && version.is_none_or(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_hexdigit()));
        if !valid {
            return Err(ProviderError::permanent(
                "invalid_model",
                format!(
                    "Replicate needs a model as owner/name (an official model) or owner/name:version in the \
                     provider configuration, not {model:?}."
                ),
            ));
        }
        let mut input = json!({"prompt": prompt_text(request, 5000)});
        if let Some(obj) = input.as_object_mut() {
            if let Some(negative) = &request.clip.negative_prompt {
                obj.insert("negative_prompt".into(), json!(negative));
            }
            obj.extend(extra_parameters(request));
        }
        let (url, body) = match version {
            // Official models only are served at /v1/models/…; any other runs by its version.
            None => (format!("{}/v1/models/{name}/predictions", self.settings.base_url), json!({"input": input})),
            Some(version) => {
                (format!("{}/v1/predictions", self.settings.base_url), json!({"version": version, "input": input}))
            }
        };
        let call = Call::json(Method::POST, url, &body).header("Authorization", self.token(request).await?);
        let prediction: Prediction = self.wire.send(&call, false).await?.json("Replicate")?;
        path_safe(&prediction.id).map(str::to_owned)
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        let call = Call::get(format!("{}/v1/predictions/{}", self.settings.base_url, path_safe(task_id)?))
            .header("Authorization", self.token(request).await?);
        let prediction: Prediction = self.wire.send(&call, true).await?.json("Replicate")?;
        Ok(match prediction.status.as_str() {
            "starting" => TaskState::Queued,
            "processing" => {
                TaskState::Running { progress: prediction.logs.as_deref().and_then(progress_of).unwrap_or(0) }
            }
            "succeeded" => match first_url(&prediction.output) {
                Some(url) => TaskState::Succeeded { outputs: vec![url] },
                None => TaskState::Failed(ProviderError::retryable("Replicate finished without an output URL.")),
            },
            "canceled" | "aborted" => TaskState::Cancelled,
            "failed" => {
                let error = match prediction.error {
                    Some(Value::String(s)) => s,
                    Some(other) => other.to_string(),
                    None => "the prediction failed".into(),
                };
                if moderation(&error) {
                    TaskState::Failed(ProviderError::permanent("content_moderation", format!("Replicate: {error}")))
                } else {
                    TaskState::Failed(ProviderError {
                        code: Some("failed".into()),
                        message: format!("Replicate: {error}"),
                        retryable: true,
                        failure: FailureCode::ProviderError,
                    })
                }
            }
            other => {
                TaskState::Failed(ProviderError::retryable(format!("Replicate reported an unknown status {other:?}.")))
            }
        })
    }

    async fn fetch(&self, output: &str, request: &ClipRequest, dest: &std::path::Path) -> Result<(), ProviderError> {
        let token = self.token(request).await?;
        download(output, dest, &self.settings.download, &[("Authorization".into(), token)]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_comes_from_tqdm_lines() {
        assert_eq!(progress_of("loading\n 50%|█████     | 5/10 [00:01<00:01]"), Some(50));
        assert_eq!(progress_of("10%|█| 1/10\n 90%|█████████ | 9/10"), Some(90));
        assert_eq!(progress_of("no progress here"), None);
    }

    #[test]
    fn outputs_of_every_shape_give_their_url() {
        assert_eq!(
            first_url(&json!("https://replicate.delivery/a.mp4")).as_deref(),
            Some("https://replicate.delivery/a.mp4")
        );
        assert_eq!(first_url(&json!(["https://x/1.mp4", "https://x/2.mp4"])).as_deref(), Some("https://x/1.mp4"));
        assert_eq!(first_url(&json!({"video": "https://x/v.mp4"})).as_deref(), Some("https://x/v.mp4"));
        assert_eq!(first_url(&json!(null)), None);
    }
}
