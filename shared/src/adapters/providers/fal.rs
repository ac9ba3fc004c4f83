//! fal.ai's queue (`queue.fal.run`): `POST /{model}` with the input as the body and
//! `Authorization: Key …`, then `GET /{owner}/{name}/requests/{id}/status` through `IN_QUEUE`,
//! `IN_PROGRESS` and `COMPLETED`; the result (or the error) comes from
//! `GET /{owner}/{name}/requests/{id}` — COMPLETED alone does not mean success. Status and result
//! URLs drop the model's subpath, as fal documents.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::download::download;
use super::http::{Call, Wire, body_text, error_text};
use super::{
    ProviderSettings, extra_parameters, model_of, nearest_length, orientation, passthrough, path_safe, prompt_text,
    secret_of,
};
use crate::domain::job::FailureCode;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

/// The fal.ai client.
#[derive(Debug)]
pub struct FalProvider {
    settings: ProviderSettings,
    wire: Wire,
}

/// fal's error type: `detail[0].type` for model errors, `error_type` for infrastructure ones.
fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let value: Option<Value> = serde_json::from_slice(body).ok();
    let code = value.as_ref().and_then(|v| {
        v.pointer("/detail/0/type").or_else(|| v.get("error_type")).and_then(Value::as_str).map(str::to_owned)
    });
    (code, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Submitted {
    request_id: String,
}

#[derive(Deserialize)]
struct Status {
    status: String,
    queue_position: Option<u64>,
}

/// The inputs fal's model pages define for the endpoints this client is configured with by
/// default, beside the ones it sets itself.
const KNOWN_INPUTS: &[(&str, &[&str])] = &[
    ("fal-ai/kling-video/v2.5-turbo/pro/text-to-video", &["cfg_scale"]),
    ("fal-ai/kling-video/v2.5-turbo/pro/image-to-video", &["cfg_scale", "image_url", "tail_image_url"]),
];

/// Endpoint namespaces whose ids carry one more segment (`workflows/<owner>/<alias>/…`), as
/// fal's client parses them.
const NAMESPACES: &[&str] = &["workflows", "comfy"];

/// The model's app (`owner/alias`, or `namespace/owner/alias`), which status and result URLs use.
fn app_of(model: &str) -> Result<String, ProviderError> {
    let parts: Vec<&str> = model.split('/').collect();
    let app_len = if parts.first().is_some_and(|p| NAMESPACES.contains(p)) { 3 } else { 2 };
    let valid = parts.len() >= app_len
        && parts.iter().all(|p| {
            !p.is_empty() && *p != ".." && p.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if !valid {
        return Err(ProviderError::permanent("invalid_model", format!("{model:?} is not a fal model id.")));
    }
    Ok(parts[..app_len].join("/"))
}

impl FalProvider {
    /// A client with `settings`, its key read from `secrets`.
    pub fn new(settings: ProviderSettings, secrets: Arc<dyn SecretSource>) -> Result<Self, ProviderError> {
        let wire = Wire::new("fal.ai", settings.wire.clone(), secrets, parse_error)?;
        Ok(Self { settings, wire })
    }

    async fn key(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        Ok(format!("Key {}", self.wire.key_named(secret_of(request, &self.settings)).await?))
    }

    fn model<'a>(&self, request: &'a ClipRequest) -> &'a str {
        model_of(request, "fal-ai/kling-video/v2.5-turbo/pro/text-to-video")
    }
}

#[async_trait]
impl VideoProvider for FalProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let model = self.model(request);
        app_of(model)?;
        let aspect_ratio = match orientation(request) {
            std::cmp::Ordering::Less => "9:16",
            std::cmp::Ordering::Equal => "1:1",
            std::cmp::Ordering::Greater => "16:9",
        };
        let mut input = json!({
            "prompt": prompt_text(request, 2500),
            "duration": nearest_length(request.clip.duration_seconds, &[5, 10]).to_string(),
            "aspect_ratio": aspect_ratio,
        });
        if let Some(obj) = input.as_object_mut() {
            if let Some(negative) = &request.clip.negative_prompt {
                obj.insert("negative_prompt".into(), json!(negative));
            }
            // Kling's inputs are known; another endpoint's are its own (sent as given).
            match KNOWN_INPUTS.iter().find(|(endpoint, _)| *endpoint == model) {
                Some((_, fields)) => obj.extend(passthrough(request, fields)),
                None => obj.extend(extra_parameters(request)),
            }
        }
        let call = Call::json(Method::POST, format!("{}/{model}", self.settings.base_url), &input)
            .header("Authorization", self.key(request).await?);
        let submitted: Submitted = self.wire.send(&call, false).await?.json("fal.ai")?;
        path_safe(&submitted.request_id).map(str::to_owned)
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        let base =
            format!("{}/{}/requests/{}", self.settings.base_url, app_of(self.model(request))?, path_safe(task_id)?);
        let key = self.key(request).await?;
        let status: Status = self
            .wire
            .send(&Call::get(format!("{base}/status")).header("Authorization", key.clone()), true)
            .await?
            .json("fal.ai")?;
        match status.status.as_str() {
            "IN_QUEUE" => return Ok(TaskState::Queued),
            "IN_PROGRESS" => {
                return Ok(TaskState::Running { progress: if status.queue_position.is_some() { 0 } else { 50 } });
            }
            "COMPLETED" => {}
            other => {
                return Ok(TaskState::Failed(ProviderError::retryable(format!(
                    "fal.ai reported an unknown status {other:?}."
                ))));
            }
        }
        // COMPLETED: the result call says whether it worked. A failed result is this attempt's
        // failure, not a reason to poll again.
        let result = match self.wire.send(&Call::get(base).header("Authorization", key), true).await {
            Ok(answer) => answer.json::<Value>("fal.ai")?,
            Err(error) => {
                let moderation = error.code.as_deref().is_some_and(|c| c.contains("content_policy"));
                let error = if moderation {
                    ProviderError { retryable: false, ..error }.because(FailureCode::SafetyInput)
                } else {
                    error
                };
                return Ok(TaskState::Failed(error));
            }
        };
        let url = result
            .pointer("/video/url")
            .or_else(|| result.pointer("/videos/0/url"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        Ok(match url {
            Some(url) => TaskState::Succeeded { outputs: vec![url] },
            None => TaskState::Failed(ProviderError::retryable("fal.ai finished without a video URL.")),
        })
    }

    async fn fetch(&self, output: &str, _request: &ClipRequest, dest: &std::path::Path) -> Result<(), ProviderError> {
        // fal's media URLs are public: no key goes with them.
        download(output, dest, &self.settings.download, &[]).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_urls_use_the_app_without_its_subpath() {
        assert_eq!(app_of("fal-ai/kling-video/v2.5-turbo/pro/text-to-video").unwrap(), "fal-ai/kling-video");
        assert!(app_of("single").is_err());
        assert!(app_of("fal-ai/../x").is_err());
    }
}
