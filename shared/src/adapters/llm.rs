//! An LLM prompt writer speaking the OpenAI-compatible chat-completions protocol
//! (`POST {base}/chat/completions`), as OpenAI, Azure OpenAI, OpenRouter, vLLM and Ollama serve it.

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::json;

use crate::domain::prompt::PromptType;
use crate::domain::scene::Scene;
use crate::domain::story::Story;
use crate::domain::values::PromptText;
use crate::services::{PromptWriter, WriterError};

/// The LLM writer; built once per cold start.
pub struct ChatCompletionsWriter {
    client: reqwest::Client,
    endpoint: String,
    model: String,
    api_key: String,
}

impl std::fmt::Debug for ChatCompletionsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("ChatCompletionsWriter").field("endpoint", &self.endpoint).field("model", &self.model).finish()
    }
}

/// How long one call may take: generate-prompts answers synchronously behind API Gateway's 30 s.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);
/// The longest `Retry-After` honoured before giving up on the one retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3);

#[derive(Deserialize)]
struct Completion {
    choices: Vec<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    message: Message,
}

#[derive(Deserialize)]
struct Message {
    content: Option<String>,
}

#[derive(Deserialize)]
struct ApiErrorBody {
    error: ApiError,
}

#[derive(Deserialize)]
struct ApiError {
    message: String,
    #[serde(default)]
    code: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Written {
    prompts: Vec<WrittenPrompt>,
}

#[derive(Deserialize)]
struct WrittenPrompt {
    order: u32,
    text: String,
}

impl ChatCompletionsWriter {
    /// A writer for `base_url` (e.g. `https://api.openai.com/v1`) and `model`.
    pub fn new(base_url: &str, model: &str, api_key: String) -> Result<Self, WriterError> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| WriterError(e.to_string()))?;
        Ok(Self {
            client,
            endpoint: format!("{}/chat/completions", base_url.trim_end_matches('/')),
            model: model.to_owned(),
            api_key,
        })
    }

    fn request_body(&self, story: &Story, scenes: &[Scene], prompt_type: PromptType) -> serde_json::Value {
        let scene_lines: Vec<serde_json::Value> = scenes
            .iter()
            .map(|s| {
                json!({"order": s.order, "kind": s.kind, "title": s.title, "description": s.description,
                       "duration_seconds": s.duration_seconds.seconds()})
            })
            .collect();
        let system = "You write prompts for AI video generation. Answer with a JSON object \
                      {\"prompts\": [{\"order\": <scene order>, \"text\": <prompt>}]} with exactly one prompt per scene, \
                      each at most 1000 characters, vivid and concrete, consistent in style across scenes.";
        let user = json!({
            "prompt_type": prompt_type,
            "story": {"title": story.title, "description": story.description, "style_preset": story.style_preset,
                      "duration_seconds": story.duration_seconds, "resolution": story.resolution},
            "scenes": scene_lines,
        });
        json!({
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user.to_string()}],
            "temperature": 0.7,
            "response_format": {"type": "json_object"},
        })
    }

    async fn call(&self, body: &serde_json::Value) -> Result<Completion, (WriterError, Option<Duration>)> {
        let response =
            self.client.post(&self.endpoint).bearer_auth(&self.api_key).json(body).send().await.map_err(|e| {
                let why = if e.is_timeout() {
                    "the LLM did not answer in time".to_owned()
                } else {
                    format!("could not reach the LLM: {e}")
                };
                (WriterError(why), e.is_timeout().then_some(Duration::ZERO))
            })?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes =
            response.bytes().await.map_err(|e| (WriterError(format!("the LLM's answer broke off: {e}")), None))?;
        if !status.is_success() {
            let detail = serde_json::from_slice::<ApiErrorBody>(&bytes)
                .map(|b| match b.error.code {
                    Some(code) => format!("{} ({code})", b.error.message),
                    None => b.error.message,
                })
                .unwrap_or_else(|_| "no error message".to_owned());
            let retryable = status.as_u16() == 429 || status.is_server_error();
            let wait = retryable.then(|| retry_after.unwrap_or(Duration::from_millis(500)));
            return Err((WriterError(format!("the LLM answered {}: {detail}", status.as_u16())), wait));
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| (WriterError(format!("the LLM's answer is not a chat completion: {e}")), None))
    }
}

#[async_trait]
impl PromptWriter for ChatCompletionsWriter {
    async fn write_prompts(
        &self,
        story: &Story,
        scenes: &[Scene],
        prompt_type: PromptType,
    ) -> Result<Vec<PromptText>, WriterError> {
        let body = self.request_body(story, scenes, prompt_type);
        let completion = match self.call(&body).await {
            Ok(c) => c,
            // One retry for 429/5xx/timeouts, honouring a short Retry-After.
            Err((_, Some(wait))) if wait <= MAX_RETRY_AFTER => {
                tokio::time::sleep(wait).await;
                self.call(&body).await.map_err(|(e, _)| e)?
            }
            Err((e, _)) => return Err(e),
        };
        let content = completion
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.message.content)
            .ok_or_else(|| WriterError("the LLM's answer has no message".into()))?;
        let written: Written = serde_json::from_str(&content)
            .map_err(|e| WriterError(format!("the LLM's message is not the JSON asked for: {e}")))?;
        scenes
            .iter()
            .map(|scene| {
                let text = written.prompts.iter().find(|p| p.order == scene.order).ok_or_else(|| {
                    WriterError(format!("the LLM wrote no prompt for the scene at order {}", scene.order))
                })?;
                PromptText::parse(&text.text).map_err(|why| {
                    WriterError(format!("the LLM's prompt for order {} is unusable: {why}", scene.order))
                })
            })
            .collect()
    }
}

/// The LLM writer of an API function, built at its first use: `generate-prompts` with
/// `writer: "llm"` is rare, so no cold start pays for its HTTP client or its key's secret read.
pub struct LazyChatCompletionsWriter {
    config: crate::config::LlmConfig,
    secrets: std::sync::Arc<dyn crate::ports::SecretSource>,
    writer: tokio::sync::OnceCell<ChatCompletionsWriter>,
}

impl std::fmt::Debug for LazyChatCompletionsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LazyChatCompletionsWriter").field("base_url", &self.config.base_url).finish_non_exhaustive()
    }
}

impl LazyChatCompletionsWriter {
    /// A writer for `config` whose key is read from `secrets` when it is first asked for prompts.
    pub fn new(config: crate::config::LlmConfig, secrets: std::sync::Arc<dyn crate::ports::SecretSource>) -> Self {
        Self { config, secrets, writer: tokio::sync::OnceCell::new() }
    }

    async fn writer(&self) -> Result<&ChatCompletionsWriter, WriterError> {
        self.writer
            .get_or_try_init(|| async {
                let key = self.secrets.secret(&self.config.api_key_secret).await.map_err(|e| {
                    tracing::error!(error = %e, secret = %self.config.api_key_secret, "cannot read the LLM's API key");
                    WriterError("the LLM's API key could not be read".to_owned())
                })?;
                ChatCompletionsWriter::new(&self.config.base_url, &self.config.model, key)
            })
            .await
    }
}

#[async_trait]
impl PromptWriter for LazyChatCompletionsWriter {
    async fn write_prompts(
        &self,
        story: &Story,
        scenes: &[Scene],
        prompt_type: PromptType,
    ) -> Result<Vec<PromptText>, WriterError> {
        self.writer().await?.write_prompts(story, scenes, prompt_type).await
    }
}
