//! Google Veo through the Gemini API: `POST /v1beta/models/{model}:predictLongRunning` with
//! `x-goog-api-key`, then `GET /v1beta/{operation name}` until `done`; the video is at
//! `response.generateVideoResponse.generatedSamples[0].video.uri` and downloading it needs the
//! key (sent to Google's host only, never to a redirect's). Videos held back by Google's safety
//! filters come back as `raiMediaFilteredCount` with no samples: a moderation refusal.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::download::download;
use super::http::{Call, Wire, body_text, error_text};
use super::{ProviderSettings, model_of, nearest_length, orientation, passthrough, prompt_text, secret_of};
use crate::domain::job::FailureCode;
use crate::domain::provider::Quality;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

/// The Veo client.
#[derive(Debug)]
pub struct VeoProvider {
    settings: ProviderSettings,
    wire: Wire,
}

fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let status = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/error/status").and_then(Value::as_str).map(str::to_owned));
    (status, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Operation {
    name: Option<String>,
    #[serde(default)]
    done: bool,
    error: Option<Status>,
    response: Option<Value>,
}

#[derive(Deserialize)]
struct Status {
    code: Option<i64>,
    message: Option<String>,
    status: Option<String>,
}

/// google.rpc codes worth another attempt: CANCELLED-by-server, UNKNOWN, DEADLINE_EXCEEDED,
/// RESOURCE_EXHAUSTED, ABORTED, INTERNAL, UNAVAILABLE.
/// google.rpc.Code as the job's failure code.
fn failure_of(code: i64) -> FailureCode {
    match code {
        3 | 5 | 9 | 11 => FailureCode::InvalidRequest,
        7 | 16 => FailureCode::NotConfigured,
        8 => FailureCode::RateLimited,
        4 => FailureCode::Timeout,
        _ => FailureCode::ProviderError,
    }
}

fn retryable_code(code: i64) -> bool {
    matches!(code, 2 | 4 | 8 | 10 | 13 | 14)
}

/// Operation names look like `models/<model>/operations/<id>`; nothing else goes into a URL.
fn valid_operation(name: &str) -> bool {
    let parts: Vec<&str> = name.split('/').collect();
    parts.len() == 4
        && parts[0] == "models"
        && parts[2] == "operations"
        && [parts[1], parts[3]].iter().all(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        })
        && !name.contains("..")
}

impl VeoProvider {
    /// A client with `settings`, its key read from `secrets`.
    pub fn new(settings: ProviderSettings, secrets: Arc<dyn SecretSource>) -> Result<Self, ProviderError> {
        let wire = Wire::new("Veo", settings.wire.clone(), secrets, parse_error)?;
        Ok(Self { settings, wire })
    }

    async fn key(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        self.wire.key_named(secret_of(request, &self.settings)).await
    }
}

#[async_trait]
impl VideoProvider for VeoProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let model = model_of(request, "veo-3.1-fast-generate-preview");
        if !model.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            return Err(ProviderError::permanent("invalid_model", format!("{model:?} is not a Veo model name.")));
        }
        let resolution = if request.render.quality == Quality::High { "1080p" } else { "720p" };
        // 1080p is offered for 8 s clips only.
        let duration =
            if resolution == "1080p" { 8 } else { nearest_length(request.clip.duration_seconds, &[4, 6, 8]) };
        let aspect_ratio = match orientation(request) {
            std::cmp::Ordering::Less => "9:16",
            _ => "16:9",
        };
        let mut parameters =
            json!({"aspectRatio": aspect_ratio, "durationSeconds": duration, "resolution": resolution});
        if let Some(obj) = parameters.as_object_mut() {
            if let Some(negative) = &request.clip.negative_prompt {
                obj.insert("negativePrompt".into(), json!(negative));
            }
            // Only what the Gemini API defines: it refuses Vertex-only parameters (`seed`,
            // `generateAudio`…; the genai SDK raises for them outside Vertex) and unknown ones.
            obj.extend(passthrough(request, &["personGeneration", "sampleCount", "enhancePrompt"]));
        }
        let body = json!({"instances": [{"prompt": prompt_text(request, 4000)}], "parameters": parameters});
        let url = format!("{}/v1beta/models/{model}:predictLongRunning", self.settings.base_url);
        let call = Call::json(Method::POST, url, &body).header("x-goog-api-key", self.key(request).await?);
        let operation: Operation = self.wire.send(&call, false).await?.json("Veo")?;
        operation
            .name
            .filter(|n| valid_operation(n))
            .ok_or_else(|| ProviderError::retryable("Veo answered without a valid operation name."))
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        if !valid_operation(task_id) {
            return Err(ProviderError::permanent("unknown_task", "The recorded operation is not a Veo operation."));
        }
        let call = Call::get(format!("{}/v1beta/{task_id}", self.settings.base_url))
            .header("x-goog-api-key", self.key(request).await?);
        let operation: Operation = self.wire.send(&call, true).await?.json("Veo")?;
        if !operation.done {
            return Ok(TaskState::Running { progress: 0 });
        }
        if let Some(error) = operation.error {
            let code = error.code.unwrap_or(2);
            return Ok(TaskState::Failed(ProviderError {
                code: Some(error.status.unwrap_or_else(|| code.to_string())),
                message: format!("Veo: {}", error.message.unwrap_or_else(|| "the operation failed".into())),
                retryable: retryable_code(code),
                failure: failure_of(code),
            }));
        }
        let response = operation.response.unwrap_or(Value::Null);
        let video = response.pointer("/generateVideoResponse/generatedSamples/0/video/uri").and_then(Value::as_str);
        if let Some(uri) = video {
            return Ok(TaskState::Succeeded { outputs: vec![uri.to_owned()] });
        }
        let filtered = response.pointer("/generateVideoResponse/raiMediaFilteredCount").and_then(Value::as_u64);
        if filtered.unwrap_or(0) > 0 {
            let reasons = response
                .pointer("/generateVideoResponse/raiMediaFilteredReasons")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; "))
                .unwrap_or_default();
            return Ok(TaskState::Failed(ProviderError::permanent(
                "content_moderation",
                format!("Veo held the video back: {reasons}"),
            )));
        }
        Ok(TaskState::Failed(ProviderError::retryable("Veo finished without a video.")))
    }

    async fn fetch(&self, output: &str, request: &ClipRequest, dest: &std::path::Path) -> Result<(), ProviderError> {
        let key = self.key(request).await?;
        download(output, dest, &self.settings.download, &[("x-goog-api-key".into(), key)]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_operation_names_are_polled() {
        assert!(valid_operation("models/veo-3.1-generate-001/operations/abc123"));
        for bad in ["models/x/operations/../../files", "files/abc", "models/x/operations/a?b", "https://evil/x"] {
            assert!(!valid_operation(bad), "{bad}");
        }
    }
}
