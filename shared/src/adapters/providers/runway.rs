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
    ProviderSettings, extra_parameters, model_of, nearest_length, orientation, passthrough, path_safe, secret_of,
};
use crate::domain::job::FailureCode;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

const VERSION: &str = "2024-11-06";

/// `promptText` is limited to 1000 UTF-16 code units (an emoji counts twice).
const PROMPT_UTF16_MAX: usize = 1000;

/// What a Runway model accepts (API reference, version 2024-11-06; the SDK's request types).
struct ModelTerms {
    /// The `duration` values it takes.
    durations: &'static [u32],
    /// Whether it has an `audio` field.
    audio: bool,
    /// Whether it has a `negativePrompt` field.
    negative_prompt: bool,
    /// The prompt's parameters it defines (sent as given).
    passthrough: &'static [&'static str],
}

fn model_terms(model: &str) -> ModelTerms {
    match model {
        // Veo 3 through Runway: 8 s only, always with sound, no `audio` field.
        "veo3" => ModelTerms { durations: &[8], audio: false, negative_prompt: true, passthrough: &[] },
        "veo3.1" | "veo3.1_fast" => {
            ModelTerms { durations: &[4, 6, 8], audio: true, negative_prompt: true, passthrough: &[] }
        }
        "gemini_omni_flash" => {
            ModelTerms { durations: &[3, 4, 5, 6, 7, 8, 9, 10], audio: false, negative_prompt: false, passthrough: &[] }
        }
        seedance if seedance.starts_with("seedance2") => ModelTerms {
            durations: &[4, 5, 6, 7, 8, 9, 10],
            audio: true,
            negative_prompt: false,
            passthrough: &["references", "referenceAudio", "referenceVideos"],
        },
        _ => ModelTerms {
            durations: &[2, 3, 4, 5, 6, 7, 8, 9, 10],
            audio: false,
            negative_prompt: false,
            passthrough: &["seed", "contentModeration"],
        },
    }
}

/// The longest prefix of `text` within `max` UTF-16 code units, cut between characters.
fn utf16_prefix(text: &str, max: usize) -> String {
    let mut units = 0;
    text.chars()
        .take_while(|c| {
            units += c.len_utf16();
            units <= max
        })
        .collect()
}

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
        // Over-concurrency shows as a THROTTLED task; a 429 means the daily quota is spent.
        let wire = Wire::new("Runway", settings.wire.clone(), secrets, parse_error)?.too_many_means_quota();
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
        let terms = model_terms(model);
        let duration = nearest_length(request.clip.duration_seconds, terms.durations);
        let ratio = match orientation(request) {
            std::cmp::Ordering::Less => "720:1280",
            _ => "1280:720",
        };
        let image = extra_parameters(request).remove("image_url");
        let extra = passthrough(request, terms.passthrough);
        let mut body = json!({
            "model": model,
            "promptText": utf16_prefix(&request.clip.prompt, PROMPT_UTF16_MAX),
            "ratio": ratio,
            "duration": duration,
        });
        if let Some(obj) = body.as_object_mut() {
            for (k, v) in extra {
                obj.insert(k, v);
            }
            // Only the models with an `audio` field get one; `veo3` has none (always with sound).
            if terms.audio {
                obj.insert("audio".into(), json!(request.render.include_audio));
            }
            if terms.negative_prompt
                && let Some(negative) = request.clip.negative_prompt.as_deref().filter(|n| !n.trim().is_empty())
            {
                obj.insert("negativePrompt".into(), json!(negative));
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

    #[test]
    fn moderation_codes_say_whether_the_input_or_the_output_was_refused() {
        assert_eq!(failure_of("SAFETY.INPUT.TEXT"), FailureCode::SafetyInput);
        assert_eq!(failure_of("INPUT_PREPROCESSING.SAFETY.TEXT"), FailureCode::SafetyInput);
        assert_eq!(failure_of("SAFETY.OUTPUT.VIDEO"), FailureCode::SafetyOutput);
        assert_eq!(failure_of("ASSET.INVALID"), FailureCode::InvalidRequest);
        assert_eq!(failure_of("INTERNAL.BAD_OUTPUT.CODE01"), FailureCode::ProviderError);
    }

    #[test]
    fn the_prompt_is_cut_at_1000_utf16_units_where_an_emoji_counts_twice() {
        let ascii = "a".repeat(1200);
        assert_eq!(utf16_prefix(&ascii, PROMPT_UTF16_MAX).len(), 1000);
        let emoji = "\u{1F30A}".repeat(600); // two units each
        let cut = utf16_prefix(&emoji, PROMPT_UTF16_MAX);
        assert_eq!(cut.chars().count(), 500);
        assert_eq!(cut.encode_utf16().count(), 1000);
        let odd = format!("a{}", "\u{1F30A}".repeat(600));
        assert_eq!(utf16_prefix(&odd, PROMPT_UTF16_MAX).encode_utf16().count(), 999, "never half a pair");
    }

    #[test]
    fn veo3_takes_only_8_seconds_and_no_audio_field_and_veo3_1_takes_4_6_8_with_audio() {
        assert_eq!((model_terms("veo3").durations, model_terms("veo3").audio), (&[8u32][..], false));
        assert_eq!(model_terms("veo3.1_fast").durations, &[4, 6, 8]);
        assert!(model_terms("veo3.1").audio);
        assert!(!model_terms("gen4.5").audio);
    }
}
