//! Runway (`api.dev.runwayml.com`): `POST /v1/text_to_video` (or `image_to_video` when the prompt
//! has an `image_url`), then `GET /v1/tasks/{id}` until SUCCEEDED; every call carries
//! `X-Runway-Version: 2024-11-06`. Failures carry a dotted `failureCode`: `SAFETY.*` and
//! `INPUT_PREPROCESSING.SAFETY.*` are moderation refusals (never retried).

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::json;

use super::download::download;
use super::http::{Call, Wire, body_text, error_text};
use super::{
    ProviderSettings, extra_parameters, model_of, nearest_length, orientation, path_safe, prompt_text, secret_of,
};
use crate::domain::job::FailureCode;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

const VERSION: &str = "2024-11-06";

/// The Runway client.
#[derive(Debug)]
pub struct RunwayProvider {
    settings: ProviderSettings,
    wire: Wire,
}

fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    (None, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Task {
    status: String,
    progress: Option<f64>,
    #[serde(default)]
    output: Vec<String>,
    failure: Option<String>,
    failure_code: Option<String>,
}

/// Whether a failure code is worth another attempt: internal hiccups are, refusals are not.
/// Runway's `failureCode` families (`SAFETY.INPUT.*`, `SAFETY.OUTPUT.*`, `ASSET.INVALID`,
/// `INPUT_PREPROCESSING.*`, `INTERNAL.*`) as the job's failure code.
fn failure_of(code: &str) -> FailureCode {
    if code.starts_with("SAFETY.OUTPUT") {
        FailureCode::SafetyOutput
    } else if code.contains("SAFETY") {
        FailureCode::SafetyInput
    } else if code.starts_with("ASSET") || code == "INPUT_PREPROCESSING.INVALID" {
        FailureCode::InvalidRequest
    } else {
        FailureCode::ProviderError
    }
}

fn retryable_failure(code: &str) -> bool {
    code.starts_with("INTERNAL") || code == "INPUT_PREPROCESSING.INTERNAL" || code.starts_with("THIRD_PARTY")
}

impl RunwayProvider {
    /// A client with `settings`, its key read from `secrets`.
    pub fn new(settings: ProviderSettings, secrets: Arc<dyn SecretSource>) -> Result<Self, ProviderError> {
        let wire = Wire::new("Runway", settings.wire.clone(), secrets, parse_error)?;
        Ok(Self { settings, wire })
    }

    async fn authed(&self, call: Call, request: &ClipRequest) -> Result<Call, ProviderError> {
        let key = self.wire.key_named(secret_of(request, &self.settings)).await?;
        Ok(call.header("Authorization", format!("Bearer {key}")).header("X-Runway-Version", VERSION))
    }
}

#[async_trait]
impl VideoProvider for RunwayProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let model = model_of(request, "gen4.5");
        let veo = model.starts_with("veo");
        let duration = if veo {
            nearest_length(request.clip.duration_seconds, &[4, 6, 8])
        } else {
            nearest_length(request.clip.duration_seconds, &[2, 3, 4, 5, 6, 7, 8, 9, 10])
        };
        let ratio = match orientation(request) {
            std::cmp::Ordering::Less => "720:1280",
            _ => "1280:720",
        };
        let mut extra = extra_parameters(request);
        let image = extra.remove("image_url");
        let mut body = json!({
            "model": model,
            "promptText": prompt_text(request, 1000),
            "ratio": ratio,
            "duration": duration,
        });
        if let Some(obj) = body.as_object_mut() {
            for (k, v) in extra {
                obj.insert(k, v);
            }
            if veo && request.render.include_audio {
                obj.insert("audio".into(), json!(true));
            }
        }
        let path = match image {
            Some(image) => {
                if let Some(obj) = body.as_object_mut() {
                    obj.insert("promptImage".into(), image);
                }
                "image_to_video"
            }
            None => "text_to_video",
        };
        let call = Call::json(Method::POST, format!("{}/v1/{path}", self.settings.base_url), &body);
        let answer = self.wire.send(&self.authed(call, request).await?, false).await?;
        let created: Created = answer.json("Runway")?;
        Ok(created.id)
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        let call = Call::get(format!("{}/v1/tasks/{}", self.settings.base_url, path_safe(task_id)?));
        let task: Task = self.wire.send(&self.authed(call, request).await?, true).await?.json("Runway")?;
        Ok(match task.status.as_str() {
            "PENDING" | "THROTTLED" => TaskState::Queued,
            "RUNNING" => TaskState::Running { progress: (task.progress.unwrap_or(0.0).clamp(0.0, 1.0) * 100.0) as u8 },
            "SUCCEEDED" if !task.output.is_empty() => TaskState::Succeeded { outputs: task.output },
            "SUCCEEDED" => TaskState::Failed(ProviderError::retryable("Runway reported success without output.")),
            "CANCELLED" => TaskState::Cancelled,
            "FAILED" => {
                let code = task.failure_code.unwrap_or_else(|| "FAILED".into());
                let message = format!("Runway: {}", task.failure.unwrap_or_else(|| "the task failed".into()));
                let failure = failure_of(&code);
                TaskState::Failed(ProviderError {
                    retryable: retryable_failure(&code),
                    code: Some(code),
                    message,
                    failure,
                })
            }
            other => {
                TaskState::Failed(ProviderError::retryable(format!("Runway reported an unknown status {other:?}.")))
            }
        })
    }

    async fn fetch(&self, output: &str, _request: &ClipRequest, dest: &std::path::Path) -> Result<(), ProviderError> {
        // Output URLs are signed: no key goes with them.
        download(output, dest, &self.settings.download, &[]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moderation_codes_are_never_retried() {
        assert!(!retryable_failure("SAFETY.INPUT.TEXT"));
        assert!(!retryable_failure("INPUT_PREPROCESSING.SAFETY.TEXT"));
        assert!(!retryable_failure("ASSET.INVALID"));
        assert!(retryable_failure("INTERNAL.BAD_OUTPUT.CODE01"));
        assert!(retryable_failure("INPUT_PREPROCESSING.INTERNAL"));
        assert!(retryable_failure("THIRD_PARTY.UNAVAILABLE"));
    }
}
