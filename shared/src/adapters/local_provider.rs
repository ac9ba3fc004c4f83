//! The built-in `local` provider: renders each clip offline with ffmpeg as a title card (the
//! scene's kind, order, title and prompt) at the render's exact size, rate and length.
//!
//! It keeps no state of its own, so any worker instance can poll any task: the task id is a ULID
//! (its time is the submission time) and the clip comes with every poll. A prompt's
//! `parameters.simulate` makes it misbehave on purpose, so frontends can meet every job state:
//! `fail` (a permanent refusal), `flagged` (a moderation refusal of the prompt: `safety_input`), `flaky` (the first attempt fails with a retryable error),
//! `slow` (running for `parameters.simulate_seconds`, default 20 s, with progress), `hang` (running
//! forever, until the watchdog ends the attempt with `timeout`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;

use crate::adapters::ffmpeg::{Ffmpeg, TitleCard};
use crate::ports::{ClipRequest, Clock, ProviderError, SystemClock, TaskState, VideoProvider};

/// How long `slow` takes unless the prompt says.
const SLOW_SECONDS: f64 = 20.0;
/// The longest `simulate_seconds` honoured.
const SLOW_SECONDS_MAX: f64 = 600.0;

/// The offline renderer.
#[derive(Clone)]
pub struct LocalProvider {
    ffmpeg: Ffmpeg,
    work_dir: PathBuf,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for LocalProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalProvider").field("ffmpeg", &self.ffmpeg).field("work_dir", &self.work_dir).finish()
    }
}

impl LocalProvider {
    /// Renders with `ffmpeg` into `work_dir` (a scratch folder; results are fetched from it).
    pub fn new(ffmpeg: Ffmpeg, work_dir: &Path) -> Self {
        Self::with_clock(ffmpeg, work_dir, Arc::new(SystemClock))
    }

    /// Like `new`, with `slow` tasks timed on `clock`.
    pub fn with_clock(ffmpeg: Ffmpeg, work_dir: &Path, clock: Arc<dyn Clock>) -> Self {
        Self { ffmpeg, work_dir: work_dir.to_path_buf(), clock }
    }

    fn output_of(&self, task_id: &str) -> PathBuf {
        self.work_dir.join(format!("{task_id}.mp4"))
    }
}

fn simulate(request: &ClipRequest) -> Option<&str> {
    request.clip.parameters.get("simulate").and_then(|v| v.as_str())
}

fn slow_seconds(request: &ClipRequest) -> f64 {
    request
        .clip
        .parameters
        .get("simulate_seconds")
        .and_then(serde_json::Value::as_f64)
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(SLOW_SECONDS, |s| s.min(SLOW_SECONDS_MAX))
}

/// 80 bits from `key` (FNV-1a, twice with different seeds): the same key, the same task id.
fn key_bits(key: &str) -> u128 {
    let fnv =
        |seed: u64| key.bytes().fold(seed, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3));
    let (high, low) = (fnv(0xcbf2_9ce4_8422_2325), fnv(0x8422_2325_cbf2_9ce4));
    ((u128::from(high) << 64) | u128::from(low)) & ((1u128 << 80) - 1)
}

/// Task ids are `local-<ulid>`: valid ones only, so a task id never names a path.
fn parse_task(task_id: &str) -> Option<ulid::Ulid> {
    task_id.strip_prefix("local-").and_then(|u| ulid::Ulid::from_string(u).ok())
}

#[async_trait]
impl VideoProvider for LocalProvider {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        match simulate(request) {
            Some("fail") => {
                return Err(ProviderError::permanent(
                    "simulated_failure",
                    "The local provider refused this clip (simulate: fail).",
                ));
            }
            Some("flagged") => {
                return Err(ProviderError::permanent(
                    "content_moderation",
                    "The local provider's content filter refused this prompt (simulate: flagged).",
                ));
            }
            Some("flaky") if request.attempt <= 1 => {
                return Err(ProviderError::retryable("The local provider failed this attempt (simulate: flaky)."));
            }
            _ => {}
        }
        // The id's time is when the attempt's submission began (what `slow` measures from); its
        // random part comes from the request's key, so a resubmission names the same task.
        let since = std::time::SystemTime::from(request.since);
        let millis = since.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
        let digest = key_bits(&request.key);
        Ok(format!("local-{}", ulid::Ulid::from_parts(millis, digest)))
    }

    fn submit_is_idempotent(&self) -> bool {
        true
    }

    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        let submitted =
            parse_task(task_id).ok_or_else(|| ProviderError::permanent("unknown_task", "No such local task."))?;
        if simulate(request) == Some("hang") {
            return Ok(TaskState::Running { progress: 0 });
        }
        if simulate(request) == Some("slow") {
            let elapsed = (self.clock.now().timestamp_millis() - submitted.timestamp_ms() as i64) as f64 / 1000.0;
            let needed = slow_seconds(request);
            if elapsed < needed {
                let progress = ((elapsed / needed) * 100.0).clamp(0.0, 99.0) as u8;
                return Ok(TaskState::Running { progress });
            }
        }
        let out = self.output_of(task_id);
        if tokio::fs::metadata(&out).await.is_err() {
            tokio::fs::create_dir_all(&self.work_dir).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
            let clip = &request.clip;
            let card = TitleCard {
                width: request.render.width,
                height: request.render.height,
                fps: request.render.fps,
                frames: u32::try_from(clip.frames).unwrap_or(u32::MAX),
                title: request.render.story_title.clone(),
                heading: format!(
                    "Scene {} · {} · {:.1} s · {}",
                    clip.order + 1,
                    clip.kind.as_str(),
                    clip.duration_seconds,
                    clip.title
                ),
                body: clip.prompt.clone(),
            };
            // Rendered under a temporary name, then renamed: a poll never sees half a clip.
            let partial = self.work_dir.join(format!("{task_id}.partial.mp4"));
            self.ffmpeg
                .title_card(&card, &partial)
                .await
                .map_err(|e| ProviderError::permanent("render_failed", e.to_string()))?;
            tokio::fs::rename(&partial, &out).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        }
        Ok(TaskState::Succeeded { outputs: vec![task_id.to_owned()] })
    }

    async fn fetch(&self, output: &str, _request: &ClipRequest, dest: &Path) -> Result<(), ProviderError> {
        // Outputs are task ids, never paths: nothing outside the work dir can be fetched.
        parse_task(output).ok_or_else(|| ProviderError::permanent("unknown_task", "No such local output."))?;
        tokio::fs::copy(self.output_of(output), dest).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        // The scratch copy has served its purpose.
        let _ = tokio::fs::remove_file(self.output_of(output)).await;
        Ok(())
    }
}
