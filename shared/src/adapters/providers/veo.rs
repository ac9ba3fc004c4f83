//! Google's video models on the Gemini API, with one key (`x-goog-api-key`), by model id:
//!
//! - **Gemini Omni Flash** (`gemini-omni-*`; `gemini-omni-flash-preview` is the default, as the
//!   Gemini API's video guide recommends it) speaks only the Interactions API: `POST
//!   /v1beta/interactions` with `background: true`, then `GET /v1beta/interactions/{id}` until its
//!   `status` is terminal. The video is the `video` content of the last `model_output` step, either
//!   as a `uri` (asked for with `response_format.delivery: "uri"`, so that polls stay small) or as
//!   base64 `data`; for inline data the output recorded is `interactions/{id}` and `fetch` reads
//!   the interaction again and decodes the video to the file in chunks. Failures come as the
//!   interaction's `errors` (string codes) or a model output's `error` (a google.rpc.Status).
//! - **Veo** (`veo-*`): `POST /v1beta/models/{model}:predictLongRunning`, then `GET /v1beta/{operation
//!   name}` until `done`; the video is at
//!   `response.generateVideoResponse.generatedSamples[0].video.uri`. Videos held back by Google's
//!   safety filters come back as `raiMediaFilteredCount` with no samples: a moderation refusal.
//!
//! Downloading a file needs the key: it is sent to the API's own host only, never to another host
//! a link (or a redirect) leads to.

use std::borrow::Cow;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::download::download;
use super::http::{Call, Wire, body_text, error_text};
use super::{ProviderSettings, model_of, nearest_length, orientation, passthrough, prompt_text, secret_of};
use crate::domain::job::FailureCode;
use crate::domain::provider::Quality;
use crate::ports::{ClipRequest, ProviderError, SecretSource, TaskState, VideoProvider};

/// The model when the render's terms name none: the one Google's video guide for the Gemini API
/// recommends as the default video model (Gemini Omni Flash).
const DEFAULT_MODEL: &str = crate::domain::provider::VEO_DEFAULT_MODEL;

/// Task ids (and inline outputs) of Interactions API tasks: `interactions/{id}`. Veo's are
/// operation names, `models/{model}/operations/{id}`, so a recorded task is polled the way it was
/// created whatever the model is now.
const INTERACTION: &str = "interactions/";

/// Omni Flash renders 3–10 s, in whole seconds (the model card: at most 10 s; fal and GMI Cloud
/// list 3–10 s in 1 s steps).
const OMNI_SECONDS: [u32; 8] = [3, 4, 5, 6, 7, 8, 9, 10];

/// Base64 characters decoded per write: a multiple of 4, so only the last chunk may be padded.
const BASE64_CHUNK: usize = 64 * 1024;

/// Proto JSON writes `bytes` as standard base64 with padding and readers accept the URL-safe
/// alphabet and missing padding too; so does this.
const BASE64_STANDARD: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);
const BASE64_URL_SAFE: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Whether `model` is served through the Interactions API (Gemini Omni) rather than
/// `predictLongRunning` (Veo).
pub fn uses_interactions(model: &str) -> bool {
    model.starts_with("gemini-omni")
}

/// The Veo client.
#[derive(Debug)]
pub struct VeoProvider {
    settings: ProviderSettings,
    wire: Wire,
}

/// predictLongRunning errors carry a google.rpc `status` (`RESOURCE_EXHAUSTED`); the Interactions
/// API's carry a string `code` (`invalid_request`).
fn parse_error(_: StatusCode, body: &[u8]) -> (Option<String>, String) {
    let code = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        let error = v.get("error")?;
        error
            .get("status")
            .and_then(Value::as_str)
            .or_else(|| error.get("code").and_then(Value::as_str))
            .map(str::to_owned)
    });
    (code, error_text(body).unwrap_or_else(|| body_text(body)))
}

#[derive(Deserialize)]
struct Operation {
    name: Option<String>,
    #[serde(default)]
    done: bool,
    error: Option<Status>,
    response: Option<Value>,
}

/// A google.rpc.Status (operations' and model outputs' errors).
#[derive(Deserialize)]
struct Status {
    code: Option<i64>,
    message: Option<String>,
    status: Option<String>,
    details: Option<Value>,
}

/// An Interaction, as much of it as the client reads. It borrows from the answer: the video's
/// base64 is never copied.
#[derive(Deserialize)]
struct Interaction<'a> {
    id: Option<String>,
    status: Option<String>,
    /// Faults recorded on the interaction (string codes, "a URI that identifies the error type").
    #[serde(default)]
    errors: Vec<InteractionError>,
    /// The turn's timeline; a GET starts it with the `user_input` step.
    #[serde(default, borrow)]
    steps: Vec<Step<'a>>,
    /// The shape before the May 2026 revision (the model's content, flat); read in case an
    /// answer still comes in it.
    #[serde(default, borrow)]
    outputs: Vec<Content<'a>>,
}

#[derive(Deserialize)]
struct InteractionError {
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
struct Step<'a> {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default, borrow)]
    content: Vec<Content<'a>>,
    /// How a model output that could not be made says why (added with video generation).
    error: Option<Status>,
}

#[derive(Deserialize)]
struct Content<'a> {
    #[serde(rename = "type", default)]
    kind: String,
    mime_type: Option<String>,
    uri: Option<String>,
    #[serde(borrow)]
    data: Option<Base64Text<'a>>,
    text: Option<String>,
}

/// Base64 text, borrowed from the answer unless JSON escapes forced a copy.
#[derive(Deserialize)]
struct Base64Text<'a>(#[serde(borrow)] Cow<'a, str>);

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

/// An Interactions error code (`invalid_request`, `RESOURCE_EXHAUSTED`, or a URI ending in one)
/// as the job's failure code, and whether another attempt may help.
fn failure_of_name(code: &str) -> (FailureCode, bool) {
    let code = code.to_ascii_lowercase();
    let has = |words: &[&str]| words.iter().any(|w| code.contains(w));
    if has(&["resource_exhausted", "rate_limit", "too_many", "quota"]) {
        (FailureCode::RateLimited, true)
    } else if has(&["deadline", "timeout", "timed_out"]) {
        (FailureCode::Timeout, true)
    } else if has(&["permission", "unauthenticated", "api_key"]) {
        (FailureCode::NotConfigured, false)
    } else if has(&["invalid", "not_found", "failed_precondition", "out_of_range", "unsupported"]) {
        (FailureCode::InvalidRequest, false)
    } else {
        (FailureCode::ProviderError, true)
    }
}

/// Whether an error or a model's words say the video was held back by Google's safety filters
/// (the Interactions API has no dedicated field for it; Veo's reasons cite the usage guidelines).
fn moderated(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    ["safety", "responsible ai", "usage guidelines", "prohibited", "blocked", "moderation", "content policy"]
        .iter()
        .any(|w| text.contains(w))
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

/// Interaction ids (`v1_…`) and file names go into a URL path: one segment of letters, digits, `-`,
/// `_`, `.`, `=`.
fn safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 512
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'='))
        && !id.starts_with('.')
}

/// `interactions/{id}` → `{id}`, when it is one this client issues.
fn interaction_id(task: &str) -> Result<&str, ProviderError> {
    task.strip_prefix(INTERACTION)
        .filter(|id| safe_id(id))
        .ok_or_else(|| ProviderError::permanent("unknown_task", "The recorded task is not a Gemini interaction."))
}

/// Whether `url` is on the API's own origin (scheme, host and port of `base`): only there does
/// the key go.
fn same_origin(url: &str, base: &str) -> bool {
    match (reqwest::Url::parse(url), reqwest::Url::parse(base)) {
        (Ok(url), Ok(base)) => {
            url.scheme() == base.scheme()
                && url.host_str().map(str::to_ascii_lowercase) == base.host_str().map(str::to_ascii_lowercase)
                && url.port_or_known_default() == base.port_or_known_default()
        }
        _ => false,
    }
}

impl<'a> Interaction<'a> {
    fn parse(body: &'a [u8]) -> Result<Self, ProviderError> {
        serde_json::from_slice(body).map_err(|e| {
            ProviderError::retryable(format!("Gemini answered with malformed JSON ({e}) for an interaction"))
        })
    }

    /// The model outputs, last first (a GET's timeline starts with the input it echoes).
    fn model_outputs(&self) -> impl Iterator<Item = &Step<'a>> {
        self.steps.iter().rev().filter(|s| s.kind == "model_output")
    }

    /// The video the interaction produced: the last one of its last model outputs.
    fn video(&self) -> Option<&Content<'a>> {
        self.model_outputs()
            .flat_map(|s| s.content.iter().rev())
            .chain(self.outputs.iter().rev())
            .find(|c| c.kind == "video" && (c.uri.is_some() || c.data.is_some()))
    }

    /// What the model said instead of a video, if anything.
    fn said(&self) -> String {
        let texts = self.model_outputs().flat_map(|s| s.content.iter()).chain(self.outputs.iter());
        let said: Vec<&str> = texts.filter_map(|c| c.text.as_deref()).collect();
        said.join(" ").chars().take(300).collect()
    }

    /// Why the interaction ended without a video, as the job's error.
    fn failure(&self) -> ProviderError {
        let step_error = self.model_outputs().find_map(|s| s.error.as_ref());
        let mut words: Vec<String> = Vec::new();
        if let Some(status) = step_error {
            words.extend(status.status.clone());
            words.extend(status.message.clone());
            words.extend(status.details.as_ref().map(Value::to_string));
        }
        for error in &self.errors {
            words.extend(error.code.clone());
            words.extend(error.message.clone());
        }
        let said = self.said();
        words.push(said.clone());
        let all = words.join(" ");
        let message = |fallback: &str| {
            let text: Vec<&str> = step_error
                .and_then(|s| s.message.as_deref())
                .into_iter()
                .chain(self.errors.iter().filter_map(|e| e.message.as_deref()))
                .collect();
            if text.is_empty() { fallback.to_owned() } else { text.join("; ") }
        };
        if moderated(&all) {
            return ProviderError::permanent(
                "content_moderation",
                format!("Gemini held the video back: {}", message(&said)),
            );
        }
        if let Some(status) = step_error {
            let code = status.code.unwrap_or(2);
            return ProviderError {
                code: Some(status.status.clone().unwrap_or_else(|| code.to_string())),
                message: format!("Gemini: {}", message("the model output failed")),
                retryable: retryable_code(code),
                failure: failure_of(code),
            };
        }
        if let Some(code) = self.errors.iter().find_map(|e| e.code.as_deref()) {
            let (failure, retryable) = failure_of_name(code);
            return ProviderError {
                code: Some(code.to_owned()),
                message: format!("Gemini: {}", message("the interaction failed")),
                retryable,
                failure,
            };
        }
        ProviderError::retryable(format!(
            "Gemini ended the interaction {} without a video{}",
            self.status.as_deref().unwrap_or("(no status)"),
            if said.is_empty() { String::new() } else { format!(": {said}") }
        ))
    }

    /// The task's state under Interactions' status vocabulary.
    fn state(&self, task: &str) -> TaskState {
        let Some(status) = self.status.as_deref() else {
            return TaskState::Failed(ProviderError::retryable("Gemini answered an interaction without its status."));
        };
        match status {
            "queued" => TaskState::Queued,
            "in_progress" => TaskState::Running { progress: 0 },
            "completed" => match self.video() {
                Some(Content { uri: Some(uri), .. }) => TaskState::Succeeded { outputs: vec![uri.clone()] },
                // Inline: the bytes are read again by `fetch` rather than carried in the state.
                Some(_) => TaskState::Succeeded { outputs: vec![task.to_owned()] },
                None => TaskState::Failed(self.failure()),
            },
            "failed" | "incomplete" => TaskState::Failed(self.failure()),
            "cancelled" => TaskState::Cancelled,
            "budget_exceeded" => TaskState::Failed(ProviderError::permanent(
                "budget_exceeded",
                "Gemini stopped the interaction: its budget is exceeded.",
            )),
            // No tools are declared, so there is nothing to answer with: a new attempt starts over.
            "requires_action" => TaskState::Failed(ProviderError::permanent(
                "unsupported",
                "Gemini asked for an action (a tool result) that a video render cannot give.",
            )),
            other => {
                // A status this client does not know yet: keep polling (the watchdog bounds it)
                // rather than abandon a task that may still deliver.
                tracing::warn!(status = other, "Gemini interaction in an unknown status; polling on");
                TaskState::Running { progress: 0 }
            }
        }
    }
}

/// Decodes base64 `data` into `dest` chunk by chunk, refusing more than `max_bytes`.
async fn write_base64(data: &str, dest: &Path, max_bytes: u64) -> Result<u64, ProviderError> {
    let data = data.trim();
    if (data.len() as u64 / 4).saturating_mul(3) > max_bytes {
        return Err(ProviderError::permanent(
            "unsafe_download",
            format!("The result is larger than {max_bytes} bytes."),
        ));
    }
    let engine = if data.contains(['-', '_']) { &BASE64_URL_SAFE } else { &BASE64_STANDARD };
    let mut file = tokio::fs::File::create(dest).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
    let mut written: u64 = 0;
    for chunk in data.as_bytes().chunks(BASE64_CHUNK) {
        let bytes = match engine.decode(chunk) {
            Ok(bytes) => bytes,
            Err(e) => {
                drop(file);
                let _ = tokio::fs::remove_file(dest).await;
                return Err(ProviderError::retryable(format!("Gemini's inline video is not base64: {e}")));
            }
        };
        written += bytes.len() as u64;
        file.write_all(&bytes).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
    }
    file.flush().await.map_err(|e| ProviderError::retryable(e.to_string()))?;
    file.sync_all().await.map_err(|e| ProviderError::retryable(e.to_string()))?;
    if written == 0 {
        return Err(ProviderError::retryable("Gemini's inline video is empty."));
    }
    Ok(written)
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

    /// `POST /v1beta/interactions`, in the background: the interaction's id as `interactions/{id}`.
    async fn create_interaction(&self, model: &str, request: &ClipRequest) -> Result<String, ProviderError> {
        // 3–10 s in whole seconds: the shortest at least as long as the scene (the clip is fitted
        // to the scene afterwards), so no frame has to be held.
        let seconds = nearest_length(request.clip.duration_seconds, &OMNI_SECONDS);
        let aspect_ratio = match orientation(request) {
            std::cmp::Ordering::Less => "9:16",
            _ => "16:9",
        };
        let mut input = prompt_text(request, 4000);
        // Omni has no negative-prompt field; Google's prompting advice is to say it in the prompt.
        if let Some(negative) = request.clip.negative_prompt.as_deref().map(str::trim).filter(|n| !n.is_empty()) {
            input = format!("{input}\n\nAvoid: {negative}");
        }
        // The Interactions API defines none of a prompt's parameters (its own are set here):
        // they are left out, and said so in the log.
        let _ = passthrough(request, &[]);
        let body = json!({
            "model": model,
            "input": input,
            "background": true,
            "store": true,
            // 720p is the default and the only resolution the preview offers, so it is not sent.
            // A URI keeps every poll small; an inline answer is handled too.
            "response_format": {
                "type": "video",
                "aspect_ratio": aspect_ratio,
                "duration": format!("{seconds}s"),
                "delivery": "uri",
            },
        });
        let url = format!("{}/v1beta/interactions", self.settings.base_url);
        let call = Call::json(Method::POST, url, &body).header("x-goog-api-key", self.key(request).await?);
        let answer = self.wire.send(&call, false).await?;
        let created = Interaction::parse(&answer.body)?;
        created
            .id
            .filter(|id| safe_id(id))
            .map(|id| format!("{INTERACTION}{id}"))
            .ok_or_else(|| ProviderError::retryable("Gemini answered without a valid interaction id."))
    }

    /// The interaction `id`, read (whole: the API has no smaller view of it).
    async fn get_interaction(&self, id: &str, key: String) -> Result<super::http::Answer, ProviderError> {
        let call =
            Call::get(format!("{}/v1beta/interactions/{id}", self.settings.base_url)).header("x-goog-api-key", key);
        self.wire.send(&call, true).await
    }

    /// Downloads a file the API links to; the key goes along only to the API's own host.
    async fn download_file(&self, link: &str, key: String, dest: &Path) -> Result<(), ProviderError> {
        // A Files API resource name rather than a URL.
        let url = match link.strip_prefix("files/") {
            Some(name) if safe_id(name) => {
                format!("{}/v1beta/files/{name}:download?alt=media", self.settings.base_url)
            }
            _ => link.to_owned(),
        };
        let headers =
            if same_origin(&url, &self.settings.base_url) { vec![("x-goog-api-key".to_owned(), key)] } else { vec![] };
        download(&url, dest, &self.settings.download, &headers).await.map(|_| ())
    }
}

#[async_trait]
impl VideoProvider for VeoProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        let model = model_of(request, DEFAULT_MODEL);
        if !model.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') {
            return Err(ProviderError::permanent(
                "invalid_model",
                format!("{model:?} is not a Gemini API model name."),
            ));
        }
        if uses_interactions(model) {
            return self.create_interaction(model, request).await;
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
        if task_id.starts_with(INTERACTION) {
            let id = interaction_id(task_id)?;
            let answer = self.get_interaction(id, self.key(request).await?).await?;
            return Ok(Interaction::parse(&answer.body)?.state(task_id));
        }
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

    async fn fetch(&self, output: &str, request: &ClipRequest, dest: &Path) -> Result<(), ProviderError> {
        let key = self.key(request).await?;
        if !output.starts_with(INTERACTION) {
            return self.download_file(output, key, dest).await;
        }
        // An inline video: read the interaction again and decode its video to the file.
        let answer = self.get_interaction(interaction_id(output)?, key.clone()).await?;
        let interaction = Interaction::parse(&answer.body)?;
        let video = interaction
            .video()
            .ok_or_else(|| ProviderError::retryable("The Gemini interaction no longer holds its video."))?;
        if let Some(mime) = video.mime_type.as_deref().filter(|m| !m.starts_with("video/")) {
            return Err(ProviderError::permanent("unsafe_download", format!("The result is {mime}, not a video.")));
        }
        match (&video.data, &video.uri) {
            (Some(Base64Text(data)), _) => write_base64(data, dest, self.settings.download.max_bytes).await.map(|_| ()),
            (None, Some(uri)) => self.download_file(uri, key, dest).await,
            (None, None) => Err(ProviderError::retryable("The Gemini interaction no longer holds its video.")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(answer: Value) -> TaskState {
        let body = serde_json::to_vec(&answer).unwrap();
        Interaction::parse(&body).unwrap().state("interactions/v1_abc")
    }

    fn failed(answer: Value) -> ProviderError {
        match state(answer) {
            TaskState::Failed(error) => error,
            other => panic!("not a failure: {other:?}"),
        }
    }

    #[test]
    fn only_operation_names_are_polled() {
        assert!(valid_operation("models/veo-3.1-generate-001/operations/abc123"));
        for bad in ["models/x/operations/../../files", "files/abc", "models/x/operations/a?b", "https://evil/x"] {
            assert!(!valid_operation(bad), "{bad}");
        }
    }

    #[test]
    fn only_interaction_ids_are_polled() {
        assert_eq!(interaction_id("interactions/v1_ChdQa-x.y=").unwrap(), "v1_ChdQa-x.y=");
        for bad in ["interactions/", "interactions/a/b", "interactions/..", "interactions/a?b", "interactions/a%2f"] {
            assert!(interaction_id(bad).is_err(), "{bad}");
        }
        assert!(interaction_id("models/x/operations/y").is_err());
    }

    #[test]
    fn omni_models_use_interactions_and_veo_models_do_not() {
        assert!(uses_interactions(DEFAULT_MODEL));
        assert!(uses_interactions("gemini-omni-1.1-flash"));
        assert!(!uses_interactions("veo-3.1-fast-generate-preview"));
        assert!(!uses_interactions("gemini-3-flash-preview"));
    }

    #[test]
    fn omni_clips_are_three_to_ten_whole_seconds_at_least_as_long_as_the_scene() {
        let seconds = |scene: f64| nearest_length(scene, &OMNI_SECONDS);
        assert_eq!([seconds(0.5), seconds(3.0), seconds(5.2), seconds(10.0), seconds(14.0)], [3, 3, 6, 10, 10]);
    }

    #[test]
    fn interaction_statuses_map_onto_the_life_cycle() {
        assert_eq!(state(json!({"id": "v1_abc", "status": "queued"})), TaskState::Queued);
        assert_eq!(state(json!({"id": "v1_abc", "status": "in_progress"})), TaskState::Running { progress: 0 });
        assert_eq!(state(json!({"status": "cancelled"})), TaskState::Cancelled);
        assert_eq!(state(json!({"status": "something_new"})), TaskState::Running { progress: 0 });
        assert!(matches!(state(json!({"id": "v1_abc"})), TaskState::Failed(ProviderError { retryable: true, .. })));
        let uri = "https://generativelanguage.googleapis.com/v1beta/files/abc:download?alt=media";
        let completed = json!({"status": "completed", "steps": [
            {"type": "user_input", "content": [{"type": "text", "text": "a harbour"}]},
            {"type": "thought", "signature": "c2ln"},
            {"type": "model_output", "content": [{"type": "video", "mime_type": "video/mp4", "uri": uri}]},
        ]});
        assert_eq!(state(completed), TaskState::Succeeded { outputs: vec![uri.to_owned()] });
        // Inline bytes stay with the provider: the output names the interaction to read again.
        let inline = json!({"status": "completed", "steps": [
            {"type": "model_output", "content": [{"type": "video", "mime_type": "video/mp4", "data": "AAAA"}]},
        ]});
        assert_eq!(state(inline), TaskState::Succeeded { outputs: vec!["interactions/v1_abc".to_owned()] });
        // The shape before the May 2026 revision.
        let legacy = json!({"status": "completed", "outputs": [{"type": "video", "uri": uri}]});
        assert_eq!(state(legacy), TaskState::Succeeded { outputs: vec![uri.to_owned()] });
    }

    #[test]
    fn interaction_failures_map_onto_failure_codes() {
        // A model output held back by the safety filters: a refusal, never retried.
        let error = failed(json!({"status": "failed", "steps": [{"type": "model_output", "error": {
            "code": 3, "message": "The prompt was blocked by our safety filters."}}]}));
        assert_eq!(
            (error.code.as_deref(), error.failure, error.retryable),
            (Some("content_moderation"), FailureCode::SafetyInput, false)
        );
        assert!(error.message.contains("blocked by our safety filters"), "{}", error.message);
        // Completed with words instead of a video, saying why.
        let error = failed(json!({"status": "completed", "steps": [{"type": "model_output", "content": [
            {"type": "text", "text": "I can't make that video: it violates the usage guidelines."}]}]}));
        assert_eq!(error.failure, FailureCode::SafetyInput);
        // Quota and rate limits are retried, as 429s are.
        let error = failed(
            json!({"status": "failed", "errors": [{"code": "RESOURCE_EXHAUSTED", "message": "Quota exceeded."}]}),
        );
        assert_eq!((error.failure, error.retryable), (FailureCode::RateLimited, true));
        let error = failed(
            json!({"status": "failed", "steps": [{"type": "model_output", "error": {"code": 8, "message": "Try later."}}]}),
        );
        assert_eq!(
            (error.code.as_deref(), error.failure, error.retryable),
            (Some("8"), FailureCode::RateLimited, true)
        );
        let error =
            failed(json!({"status": "failed", "errors": [{"code": "deadline_exceeded", "message": "Too slow."}]}));
        assert_eq!((error.failure, error.retryable), (FailureCode::Timeout, true));
        let error =
            failed(json!({"status": "failed", "errors": [{"code": "invalid_request", "message": "Bad duration."}]}));
        assert_eq!((error.failure, error.retryable), (FailureCode::InvalidRequest, false));
        let error = failed(json!({"status": "failed", "errors": [{"code": "internal", "message": "Internal error."}]}));
        assert_eq!((error.failure, error.retryable), (FailureCode::ProviderError, true));
        assert_eq!(error.message, "Gemini: Internal error.");
        let error = failed(json!({"status": "incomplete"}));
        assert_eq!((error.failure, error.retryable), (FailureCode::ProviderError, true));
        let error = failed(json!({"status": "budget_exceeded"}));
        assert_eq!((error.failure, error.retryable), (FailureCode::BudgetExceeded, false));
        let error = failed(json!({"status": "requires_action"}));
        assert_eq!((error.failure, error.retryable), (FailureCode::InvalidRequest, false));
        let error = failed(json!({"status": "completed", "steps": [{"type": "model_output", "content": []}]}));
        assert_eq!((error.failure, error.retryable), (FailureCode::ProviderError, true));
    }

    #[test]
    fn error_bodies_of_both_apis_give_their_codes() {
        let (code, message) = parse_error(
            StatusCode::TOO_MANY_REQUESTS,
            br#"{"error":{"code":429,"message":"Resource has been exhausted.","status":"RESOURCE_EXHAUSTED"}}"#,
        );
        assert_eq!((code.as_deref(), message.as_str()), (Some("RESOURCE_EXHAUSTED"), "Resource has been exhausted."));
        let (code, message) =
            parse_error(StatusCode::BAD_REQUEST, br#"{"error":{"code":"invalid_request","message":"Bad input."}}"#);
        assert_eq!((code.as_deref(), message.as_str()), (Some("invalid_request"), "Bad input."));
    }

    #[test]
    fn the_key_goes_to_the_api_s_own_origin_only() {
        let base = "https://generativelanguage.googleapis.com";
        assert!(same_origin("https://generativelanguage.googleapis.com/v1beta/files/a:download?alt=media", base));
        assert!(same_origin("https://GenerativeLanguage.googleapis.com:443/v1beta/files/a", base));
        for other in [
            "https://lh3.googleusercontent.com/video",
            "http://generativelanguage.googleapis.com/v1beta/files/a",
            "https://generativelanguage.googleapis.com:8443/x",
            "https://generativelanguage.googleapis.com.evil.net/x",
            "files/abc",
        ] {
            assert!(!same_origin(other, base), "{other}");
        }
    }

    #[tokio::test]
    async fn inline_videos_are_decoded_in_chunks_under_the_size_cap() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("clip.mp4");
        // More than one chunk, in both alphabets, padded or not.
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for engine in [&base64::engine::general_purpose::STANDARD, &base64::engine::general_purpose::URL_SAFE_NO_PAD] {
            let text = engine.encode(&bytes);
            assert_eq!(write_base64(&text, &dest, 1 << 20).await.unwrap(), bytes.len() as u64);
            assert_eq!(tokio::fs::read(&dest).await.unwrap(), bytes);
        }
        let text = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let error = write_base64(&text, &dest, 1000).await.unwrap_err();
        assert_eq!((error.code.as_deref(), error.retryable), (Some("unsafe_download"), false));
        let error = write_base64("not base64!", &dest, 1000).await.unwrap_err();
        assert!(error.retryable && !dest.exists(), "{error:?}");
        // Borrowed from the answer: the base64 is not copied when it has no JSON escapes.
        let body = format!(
            r#"{{"status":"completed","steps":[{{"type":"model_output","content":[{{"type":"video","data":"{text}"}}]}}]}}"#
        );
        let interaction = Interaction::parse(body.as_bytes()).unwrap();
        let data = interaction.video().and_then(|v| v.data.as_ref()).unwrap();
        assert!(matches!(data.0, Cow::Borrowed(_)));
    }
}
