//! Stability AI (v2beta, multipart forms): text → image with `POST /v2beta/stable-image/generate/core`
//! (the image comes back at once), the image fitted with ffmpeg to one of the three sizes
//! image-to-video takes, then `POST /v2beta/image-to-video` → `{"id"}` and
//! `GET /v2beta/image-to-video/result/{id}`: 202 while rendering, 200 with the video. Refusals are
//! 403 `{"name": "content_moderation"}`, or a `finish-reason: CONTENT_FILTERED` header.

use std::sync::Arc;

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::Value;

use super::download::download;
use super::http::{Call, Wire, body_text, error_text, multipart};
use super::{ProviderSettings, orientation, path_safe, prompt_text, secret_of};
use crate::adapters::ffmpeg::Ffmpeg;
use crate::domain::job::FailureCode;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

/// The Stability AI client (needs ffmpeg to size the first frame).
#[derive(Debug)]
pub struct StabilityProvider {
    settings: ProviderSettings,
    wire: Wire,
    ffmpeg: Option<Ffmpeg>,
}

/// Stability's errors: `{"id", "name", "errors": [...]}`; `name` is the code.
fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let name = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_owned));
    (name, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Created {
    id: String,
}

fn filtered(headers: &reqwest::header::HeaderMap) -> bool {
    headers.get("finish-reason").and_then(|v| v.to_str().ok()) == Some("CONTENT_FILTERED")
}

fn moderated() -> ProviderError {
    ProviderError::permanent("content_moderation", "Stability AI's content filter refused the clip.")
}

impl StabilityProvider {
    /// A client with `settings`, its key read from `secrets`; `ffmpeg` sizes the first frame.
    pub fn new(
        settings: ProviderSettings,
        secrets: Arc<dyn SecretSource>,
        ffmpeg: Option<Ffmpeg>,
    ) -> Result<Self, ProviderError> {
        let wire = Wire::new("Stability AI", settings.wire.clone(), secrets, parse_error)?;
        Ok(Self { settings, wire, ffmpeg })
    }

    async fn bearer(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        Ok(format!("Bearer {}", self.wire.key_named(secret_of(request, &self.settings)).await?))
    }

    fn result_url(&self, task: &str) -> Result<String, ProviderError> {
        Ok(format!("{}/v2beta/image-to-video/result/{}", self.settings.base_url, path_safe(task)?))
    }
}

#[async_trait]
impl VideoProvider for StabilityProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let ffmpeg = self.ffmpeg.as_ref().ok_or_else(|| {
            ProviderError::permanent("not_configured", "The Stability AI client needs ffmpeg to size its first frame.")
        })?;
        let bearer = self.bearer(request).await?;
        let (aspect_ratio, (width, height)) = match orientation(request) {
            std::cmp::Ordering::Less => ("9:16", (576, 1024)),
            std::cmp::Ordering::Equal => ("1:1", (768, 768)),
            std::cmp::Ordering::Greater => ("16:9", (1024, 576)),
        };
        let mut fields = vec![
            ("prompt", prompt_text(request, 10_000)),
            ("aspect_ratio", aspect_ratio.to_owned()),
            ("output_format", "png".to_owned()),
        ];
        if let Some(negative) = &request.clip.negative_prompt {
            fields.push(("negative_prompt", negative.clone()));
        }
        let (body, content_type) = multipart(&fields, None);
        let image_call = Call {
            method: Method::POST,
            url: format!("{}/v2beta/stable-image/generate/core", self.settings.base_url),
            headers: vec![("Authorization".into(), bearer.clone()), ("Accept".into(), "image/*".into())],
            body: Some((body, content_type)),
        };
        let image = self.wire.send(&image_call, false).await.map_err(|e| {
            if e.code.as_deref() == Some("content_moderation") {
                ProviderError { retryable: false, ..e }.because(FailureCode::SafetyInput)
            } else {
                e
            }
        })?;
        if filtered(&image.headers) {
            return Err(moderated());
        }
        let scratch = tempfile::tempdir().map_err(|e| ProviderError::retryable(e.to_string()))?;
        let (raw, fitted) = (scratch.path().join("frame.png"), scratch.path().join("fitted.png"));
        tokio::fs::write(&raw, &image.body).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        ffmpeg
            .fit_image(&raw, width, height, &fitted)
            .await
            .map_err(|e| ProviderError::retryable(format!("The first frame could not be sized: {e}")))?;
        let frame = tokio::fs::read(&fitted).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        let seed = request.clip.parameters.get("seed").and_then(Value::as_u64).unwrap_or(0).to_string();
        let fields = [("seed", seed), ("cfg_scale", "1.8".to_owned()), ("motion_bucket_id", "127".to_owned())];
        let (body, content_type) = multipart(&fields, Some(("image", "frame.png", "image/png", &frame)));
        let video_call = Call {
            method: Method::POST,
            url: format!("{}/v2beta/image-to-video", self.settings.base_url),
            headers: vec![("Authorization".into(), bearer)],
            body: Some((body, content_type)),
        };
        let created: Created = self.wire.send(&video_call, false).await?.json("Stability AI")?;
        path_safe(&created.id).map(str::to_owned)
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        // Asked as JSON, so an unfinished render answers small; the finished video is fetched
        // by `fetch` as bytes.
        let call = Call::get(self.result_url(task_id)?)
            .header("Authorization", self.bearer(request).await?)
            .header("Accept", "application/json");
        let answer = match self.wire.send(&call, true).await {
            Ok(answer) => answer,
            // An error answer from the result endpoint (after the wire's retries) is the
            // generation's failure: this attempt ends, and the job's next one decides.
            Err(error) if error.code.is_some() => return Ok(TaskState::Failed(error)),
            Err(error) => return Err(error),
        };
        if answer.status == StatusCode::ACCEPTED {
            return Ok(TaskState::Running { progress: 0 });
        }
        let finish = serde_json::from_slice::<Value>(&answer.body)
            .ok()
            .and_then(|v| v.get("finish_reason").and_then(Value::as_str).map(str::to_owned));
        if finish.as_deref() == Some("CONTENT_FILTERED") || filtered(&answer.headers) {
            return Ok(TaskState::Failed(moderated()));
        }
        Ok(TaskState::Succeeded { outputs: vec![self.result_url(task_id)?] })
    }

    async fn fetch(&self, output: &str, request: &ClipRequest, dest: &std::path::Path) -> Result<(), ProviderError> {
        let headers =
            [("Authorization".to_owned(), self.bearer(request).await?), ("Accept".to_owned(), "video/*".to_owned())];
        download(output, dest, &self.settings.download, &headers).await.map(|_| ())
    }
}
