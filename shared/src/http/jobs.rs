//! What the job-starting routes share across functions: the render options a client may send,
//! the job filters, and the 202 answer with the jobs.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::FieldErrors;
use crate::domain::error::Result;
use crate::domain::ids::{SceneId, StoryId};
use crate::domain::job::{Job, JobKind, JobPriority, JobStatus};
use crate::domain::provider::Quality;
use crate::domain::render::{RenderOptions, VideoFormat};
use crate::domain::story::Story;
use crate::http::json::{Fields, boolean, string};
use crate::http::{AppState, QueryParams, views};
use crate::ports::JobFilter;

/// Reads `quality`, `include_audio`, `watermark`, `include_subtitles`, `output_format` and
/// `priority` over `defaults`, naming every wrong field at once.
pub fn render_options(body: &Map<String, Value>, defaults: RenderOptions) -> Result<RenderOptions> {
    let mut f = Fields::new(body);
    let mut options = defaults;
    if let Some(q) = f.optional("quality", |v| Quality::parse(string(v)?)) {
        options.quality = q;
    }
    if let Some(b) = f.optional("include_audio", boolean) {
        options.include_audio = b;
    }
    if let Some(b) = f.optional("watermark", boolean) {
        options.watermark = b;
    }
    if let Some(b) = f.optional("include_subtitles", boolean) {
        options.include_subtitles = b;
    }
    if let Some(format) = f.optional("output_format", |v| VideoFormat::parse(string(v)?)) {
        options.output_format = format;
    }
    if let Some(p) = f.optional("priority", |v| JobPriority::parse(string(v)?)) {
        options.priority = p;
    }
    f.finish()?;
    Ok(options)
}

/// The filters of `GET jobs/` (`story`, `scene`, `status`, `kind`).
pub fn job_filter(query: &QueryParams, errors: &mut FieldErrors) -> JobFilter {
    let mut filter = JobFilter::default();
    let read = |name: &str| query.get(name).filter(|s| !s.is_empty()).map(str::to_owned);
    if let Some(raw) = read("story") {
        match StoryId::parse(&raw) {
            Some(id) => filter.story = Some(id),
            None => errors
                .add("story", format!("\"{}\" is not a valid story id.", raw.chars().take(100).collect::<String>())),
        }
    }
    if let Some(raw) = read("scene") {
        match SceneId::parse(&raw) {
            Some(id) => filter.scene = Some(id),
            None => errors
                .add("scene", format!("\"{}\" is not a valid scene id.", raw.chars().take(100).collect::<String>())),
        }
    }
    if let Some(raw) = read("status") {
        match JobStatus::parse(&raw) {
            Ok(s) => filter.status = Some(s),
            Err(m) => errors.add("status", m),
        }
    }
    if let Some(raw) = read("kind") {
        match JobKind::parse(&raw) {
            Ok(k) => filter.kind = Some(k),
            Err(m) => errors.add("kind", m),
        }
    }
    filter
}

/// A job with its result's download link.
pub async fn job_view(state: &AppState, job: &Job) -> Value {
    let links = state.links(crate::http::job_media_keys([job])).await;
    views::job(job, &links)
}

/// A story with its preview's and final's download links.
pub async fn story_view(state: &AppState, story: &Story) -> Value {
    let links = state.links(crate::http::story_media_keys([story])).await;
    views::story(story, &links)
}

/// `202 Accepted` with the queued jobs (and the story, when it moved).
pub async fn accepted(state: &AppState, story: Option<&Story>, jobs: &[Job]) -> Response {
    let mut views_of_jobs = Vec::with_capacity(jobs.len());
    for job in jobs {
        views_of_jobs.push(job_view(state, job).await);
    }
    let mut body = json!({ "jobs": views_of_jobs });
    if let Some(story) = story {
        body["story"] = story_view(state, story).await;
    }
    (StatusCode::ACCEPTED, axum::Json(body)).into_response()
}
