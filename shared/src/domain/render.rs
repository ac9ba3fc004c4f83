//! Renders: a story's plan turned into scene jobs and one compose job that joins their clips.
//!
//! A render is fixed when it starts: each scene job carries a snapshot of what it renders (the plan
//! is locked while the story is PREVIEWING or FINALIZING), and the compose job counts the scene
//! jobs it still waits for. The last scene job to finish brings that count to zero in the same
//! atomic write that records its own success, so exactly one of them releases the compose job.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::error::{Error, Result};
use crate::domain::ids::{JobId, SceneId};
use crate::domain::job::{Job, JobKind, JobPriority};
use crate::domain::prompt::{PromptType, ScenePrompt};
use crate::domain::provider::Quality;
use crate::domain::scene::{Scene, SceneKind};
use crate::domain::state_machine::StoryStatus;
use crate::domain::story::Story;
use crate::domain::values::choices;

choices!(
    /// Which video a render produces.
    RenderStage {
        /// A quick, watermarked look at the plan.
        Preview = "preview",
        /// The finished video.
        Final = "final",
    }
);

choices!(
    /// Container of a composed video.
    VideoFormat {
        /// H.264 in MP4.
        Mp4 = "mp4",
        /// VP8 in WebM.
        Webm = "webm",
        /// Animated GIF.
        Gif = "gif",
    }
);

impl RenderStage {
    /// The story's status while this render runs.
    pub fn rendering_status(self) -> StoryStatus {
        match self {
            RenderStage::Preview => StoryStatus::Previewing,
            RenderStage::Final => StoryStatus::Finalizing,
        }
    }

    /// The story's status once this render is composed.
    pub fn done_status(self) -> StoryStatus {
        match self {
            RenderStage::Preview => StoryStatus::PreviewReady,
            RenderStage::Final => StoryStatus::Completed,
        }
    }

    fn scene_kind(self) -> JobKind {
        match self {
            RenderStage::Preview => JobKind::ScenePreview,
            RenderStage::Final => JobKind::SceneFinal,
        }
    }

    fn compose_kind(self) -> JobKind {
        match self {
            RenderStage::Preview => JobKind::PreviewCompose,
            RenderStage::Final => JobKind::FinalCompose,
        }
    }
}

/// How a render looks: the request's options with the story's size and rate, fixed at the start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RenderSpec {
    /// Preview or final (`generate`/`test` renders are previews of one clip).
    pub stage: RenderStage,
    /// Provider quality; the composed video is scaled by it.
    pub quality: Quality,
    /// Ask the provider for sound where it offers it.
    pub include_audio: bool,
    /// Draw a watermark over the composed preview.
    pub watermark: bool,
    /// Burn the `narration` prompts in as subtitles (finals).
    pub include_subtitles: bool,
    /// Container of the composed video.
    pub output_format: VideoFormat,
    /// The story's width.
    pub width: u32,
    /// The story's height.
    pub height: u32,
    /// The story's frame rate.
    pub fps: u32,
    /// The provider's terms when the render started.
    #[serde(default)]
    pub terms: ProviderTerms,
    /// The story's title when the render started (the `local` provider draws it).
    #[serde(default)]
    pub story_title: String,
}

/// What a render was started with from its provider's configuration: a later change by an admin
/// does not change a render under way, nor what its jobs cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderTerms {
    /// The provider's model.
    pub model: String,
    /// Price per rendered second at the render's quality.
    pub price_per_second_usd: f64,
    /// The secret holding the provider's API key (empty: the client's default).
    pub secret_name: String,
    /// Parameters sent with every task unless the prompt overrides them.
    pub default_parameters: serde_json::Map<String, serde_json::Value>,
    /// Submissions to the provider allowed per minute, across all workers (0: no limit).
    #[serde(default)]
    pub rate_limit_per_minute: u32,
}

impl ProviderTerms {
    /// The terms of `config` at `quality`.
    pub fn of(config: &crate::domain::provider::AiProviderConfig, quality: Quality) -> Self {
        Self {
            model: config.model.clone(),
            price_per_second_usd: config.price_per_second_usd.at(quality),
            secret_name: config.secret_name.clone().unwrap_or_default(),
            default_parameters: config.default_parameters.clone(),
            rate_limit_per_minute: config.rate_limit_per_minute,
        }
    }
}

impl RenderSpec {
    /// The spec of `stage` for `story` with the request's options.
    pub fn for_story(story: &Story, stage: RenderStage, options: RenderOptions) -> RenderSpec {
        RenderSpec {
            stage,
            quality: options.quality,
            include_audio: options.include_audio,
            watermark: options.watermark,
            include_subtitles: options.include_subtitles,
            output_format: options.output_format,
            width: story.resolution.width(),
            height: story.resolution.height(),
            fps: story.fps.get(),
            terms: ProviderTerms::default(),
            story_title: story.title.to_string(),
        }
    }

    /// How much the composed video is scaled down: full size at high quality.
    pub fn scale(&self) -> f64 {
        match self.quality {
            Quality::Low => 0.5,
            Quality::Medium => 0.75,
            Quality::High => 1.0,
        }
    }
}

/// What a client may choose when it starts a render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// Provider quality.
    pub quality: Quality,
    /// Sound where the provider offers it.
    pub include_audio: bool,
    /// Watermark on the preview.
    pub watermark: bool,
    /// Subtitles from `narration` prompts on the final.
    pub include_subtitles: bool,
    /// Container.
    pub output_format: VideoFormat,
    /// Which waiting work starts first.
    pub priority: JobPriority,
}

impl RenderOptions {
    /// `generate_preview` without options: a cheap, watermarked MP4.
    pub fn preview_defaults() -> Self {
        Self {
            quality: Quality::Low,
            include_audio: false,
            watermark: true,
            include_subtitles: false,
            output_format: VideoFormat::Mp4,
            priority: JobPriority::Normal,
        }
    }

    /// `render_final` without options: full quality MP4 without watermark or subtitles.
    pub fn final_defaults() -> Self {
        Self {
            quality: Quality::High,
            include_audio: false,
            watermark: false,
            include_subtitles: false,
            output_format: VideoFormat::Mp4,
            priority: JobPriority::Normal,
        }
    }
}

/// What one scene job renders, copied from the plan when the render starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipSpec {
    /// The scene's place in the story.
    pub order: u32,
    /// Intro, main or outro.
    pub kind: SceneKind,
    /// The scene's title.
    pub title: String,
    /// The selected `video` prompt.
    pub prompt: String,
    /// The selected `negative` prompt, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub negative_prompt: Option<String>,
    /// The video prompt's parameters (seed, camera, motion…, and `simulate` for `local`).
    #[serde(default)]
    pub parameters: serde_json::Map<String, serde_json::Value>,
    /// Where the clip starts in the story.
    pub start_seconds: f64,
    /// Its exact length in frames at the story's rate.
    pub frames: u64,
    /// Its length in seconds.
    pub duration_seconds: f64,
    /// The selected `narration` prompt (subtitles), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narration: Option<String>,
}

impl ClipSpec {
    /// The clip of `scene`, from its selected prompts. Refused when the scene has no selected
    /// `video` prompt.
    pub fn of_scene(scene: &Scene, prompts: &[ScenePrompt], fps: u32) -> Result<ClipSpec> {
        let selected =
            |kind: PromptType| prompts.iter().find(|p| p.scene == scene.id && p.is_selected && p.prompt_type == kind);
        let video = selected(PromptType::Video).ok_or_else(|| Error::InvalidTransition {
            detail: format!("Scene {} has no selected video prompt.", scene.order),
            current_status: StoryStatus::Planned,
        })?;
        Ok(ClipSpec {
            order: scene.order,
            kind: scene.kind,
            title: scene.title.as_str().to_owned(),
            prompt: video.text.as_str().to_owned(),
            negative_prompt: selected(PromptType::Negative).map(|p| p.text.as_str().to_owned()),
            parameters: video.parameters.clone(),
            start_seconds: scene.start_seconds,
            frames: scene.duration_seconds.frames(fps),
            duration_seconds: scene.duration_seconds.seconds(),
            narration: selected(PromptType::Narration).map(|p| p.text.as_str().to_owned()),
        })
    }
}

/// The jobs of one render: a scene job per scene, in order, then the compose job waiting for them.
pub fn plan_render(
    story: &Story,
    scenes: &[Scene],
    prompts: &[ScenePrompt],
    stage: RenderStage,
    options: RenderOptions,
    mut new_id: impl FnMut() -> JobId,
    now: DateTime<Utc>,
) -> Result<Vec<Job>> {
    if scenes.is_empty() {
        return Err(Error::InvalidTransition {
            detail: "The story has no scenes to render.".into(),
            current_status: story.status,
        });
    }
    let spec = RenderSpec::for_story(story, stage, options);
    let fps = story.fps.get();
    let compose_id = new_id();
    let mut jobs = Vec::with_capacity(scenes.len() + 1);
    for scene in scenes {
        let mut job = Job::queued(
            new_id(),
            story.owner.clone(),
            story.id.clone(),
            Some(scene.id.clone()),
            stage.scene_kind(),
            options.priority,
            story.ai_provider,
            now,
        );
        job.render = Some(spec.clone());
        job.clip = Some(ClipSpec::of_scene(scene, prompts, fps)?);
        job.compose_job = Some(compose_id.clone());
        jobs.push(job);
    }
    let mut compose = Job::queued(
        compose_id,
        story.owner.clone(),
        story.id.clone(),
        None,
        stage.compose_kind(),
        options.priority,
        story.ai_provider,
        now,
    );
    compose.render = Some(spec);
    compose.waiting_for = scenes.len() as u32;
    jobs.push(compose);
    Ok(jobs)
}

/// A job that renders one scene on its own (`scenes/{id}/generate`, `prompts/{id}/test`): a
/// preview-quality clip, not part of a render.
pub fn single_clip_job(
    story: &Story,
    scene_id: &SceneId,
    clip: ClipSpec,
    kind: JobKind,
    options: RenderOptions,
    id: JobId,
    now: DateTime<Utc>,
) -> Job {
    let mut job = Job::queued(
        id,
        story.owner.clone(),
        story.id.clone(),
        Some(scene_id.clone()),
        kind,
        options.priority,
        story.ai_provider,
        now,
    );
    job.render = Some(RenderSpec::for_story(story, RenderStage::Preview, options));
    job.clip = Some(clip);
    job
}

/// When a render fails (a scene job gave up or was cancelled), the rest of it is called off:
/// its compose job and the scene jobs that have not started yet are cancelled, so nothing more
/// is paid for a video that will not be composed. Jobs already at the provider finish on their own.
pub fn called_off(failed: &Job, story_jobs: &[Job], now: DateTime<Utc>) -> Vec<Job> {
    // A render is named by its compose job.
    let compose = match (&failed.compose_job, failed.composes()) {
        (Some(compose), _) => compose,
        (None, true) => &failed.id,
        (None, false) => return Vec::new(),
    };
    story_jobs
        .iter()
        .filter(|j| j.id != failed.id && j.status == crate::domain::job::JobStatus::Queued)
        .filter(|j| &j.id == compose || j.compose_job.as_ref() == Some(compose))
        .filter_map(|j| j.cancelled(now).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{PromptId, StoryId, UserId};
    use crate::domain::job::JobStatus;
    use crate::domain::story::NewStory;
    use crate::domain::values::Title;

    fn new_id() -> JobId {
        JobId::from_ulid(ulid::Ulid::new())
    }

    fn planned() -> (Story, Vec<Scene>, Vec<ScenePrompt>) {
        let now = Utc::now();
        let story = Story::create(
            StoryId::from_ulid(ulid::Ulid::new()),
            UserId::parse("alice").unwrap(),
            NewStory::titled(Title::parse("A film").unwrap()),
            now,
        );
        // Four scenes filling the story's default 60 s.
        let lengths = [6.0, 18.0, 24.0, 12.0];
        assert_eq!(story.duration_seconds.get(), 60);
        let mut start = 0.0;
        let mut scenes = Vec::new();
        let mut prompts = Vec::new();
        for (order, length) in lengths.iter().enumerate() {
            let scene: Scene = serde_json::from_value(serde_json::json!({
                "id": SceneId::from_ulid(ulid::Ulid::new()), "story": story.id, "order": order,
                "kind": "main", "title": format!("Scene {order}"), "description": "",
                "start_seconds": start, "duration_seconds": length, "status": "pending",
                "version": 1, "created_at": now, "updated_at": now,
            }))
            .unwrap();
            start += length;
            prompts.push(
                serde_json::from_value(serde_json::json!({
                    "id": PromptId::from_ulid(ulid::Ulid::new()), "scene": scene.id, "story": story.id,
                    "prompt_type": "video", "text": format!("shot {order}"), "parameters": {},
                    "is_selected": true, "version": 1, "created_at": now, "updated_at": now,
                }))
                .unwrap(),
            );
            scenes.push(scene);
        }
        (story, scenes, prompts)
    }

    #[test]
    fn a_render_is_one_job_per_scene_in_order_and_a_compose_job_waiting_for_all_of_them() {
        let (story, scenes, prompts) = planned();
        let jobs = plan_render(
            &story,
            &scenes,
            &prompts,
            RenderStage::Preview,
            RenderOptions::preview_defaults(),
            new_id,
            Utc::now(),
        )
        .unwrap();
        assert_eq!(jobs.len(), 5);
        let compose = jobs.last().unwrap();
        assert_eq!((compose.kind, compose.waiting_for), (JobKind::PreviewCompose, 4));
        for (i, job) in jobs[..4].iter().enumerate() {
            assert_eq!(job.kind, JobKind::ScenePreview);
            assert_eq!(job.compose_job.as_ref(), Some(&compose.id));
            assert_eq!(job.clip.as_ref().unwrap().order, i as u32);
        }
        let frames: u64 = jobs[..4].iter().map(|j| j.clip.as_ref().unwrap().frames).sum();
        assert_eq!(frames, 60 * u64::from(story.fps.get()));
    }

    #[test]
    fn a_scene_without_a_selected_video_prompt_cannot_be_rendered() {
        let (story, scenes, mut prompts) = planned();
        prompts.pop();
        let refused = plan_render(
            &story,
            &scenes,
            &prompts,
            RenderStage::Final,
            RenderOptions::final_defaults(),
            new_id,
            Utc::now(),
        );
        assert!(matches!(refused, Err(Error::InvalidTransition { .. })));
    }

    #[test]
    fn the_compose_job_is_released_by_exactly_the_last_scene() {
        let (story, scenes, prompts) = planned();
        let jobs = plan_render(
            &story,
            &scenes,
            &prompts,
            RenderStage::Preview,
            RenderOptions::preview_defaults(),
            new_id,
            Utc::now(),
        )
        .unwrap();
        let mut compose = jobs.last().unwrap().clone();
        for _ in 0..4 {
            compose = compose.scene_finished().unwrap();
        }
        assert_eq!(compose.waiting_for, 0);
        assert!(compose.scene_finished().is_err(), "a fifth finish (a duplicate) counts for nothing");
        let mut cancelled = jobs.last().unwrap().clone();
        cancelled.status = JobStatus::Cancelled;
        assert!(cancelled.scene_finished().is_err());
    }
}
