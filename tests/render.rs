//! The render pipeline end to end, on the backend the tests run on: a story becomes a preview and
//! a final video through the real worker, the `local` provider and ffmpeg, checked with ffprobe;
//! duplicate and concurrent deliveries, a worker killed mid-job, failing and flaky scenes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::adapters::ffmpeg::Ffmpeg;
use shared::adapters::local_provider::LocalProvider;
use shared::domain::values::AiProvider;
use shared::ports::{ClipRequest, ProviderError, TaskState, VideoProvider};
use support::{API, TestApp, planned_story, planning_story};

/// A 6 s, 24 fps, 640x360 story on the `local` provider.
fn lighthouse() -> Value {
    json!({"title": "Lighthouse", "description": "A keeper and a storm.", "duration_seconds": 6,
           "fps": 24, "resolution": "640x360", "ai_provider": "local"})
}

/// The bytes behind a media link: the embedded media route, or the presigned S3 URL.
async fn download(app: &TestApp, url: &str) -> Vec<u8> {
    if let Some(path) = url.strip_prefix("http://127.0.0.1:3000") {
        let reply = app.router.clone();
        let response =
            tower::ServiceExt::oneshot(reply, axum::http::Request::get(path).body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        return http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes().to_vec();
    }
    assert!(url.starts_with("http://127.0.0.1"), "only loopback is ever contacted: {url}");
    let response = reqwest::get(url).await.unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap().to_vec()
}

async fn probe(bytes: &[u8], dir: &Path, name: &str) -> shared::adapters::ffmpeg::Probe {
    let file = dir.join(name);
    std::fs::write(&file, bytes).unwrap();
    Ffmpeg::locate().unwrap().probe(&file).await.unwrap()
}

async fn transitions_to(app: &TestApp, story: &str, to: &str) -> usize {
    let reply = app.get(&format!("{API}/stories/{story}/transitions/?page_size=100"), "alice").await;
    reply.body["results"].as_array().unwrap().iter().filter(|t| t["to"] == to).count()
}

#[tokio::test]
async fn a_story_becomes_a_preview_then_a_final_video_that_ffprobe_accepts() {
    let app = TestApp::with_quick_worker().await;
    let story = planned_story(&app, "alice", lighthouse(), 3).await;
    let started = Instant::now();

    let preview = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(preview.status, StatusCode::ACCEPTED, "{:?}", preview.body);
    assert_eq!(preview.body["story"]["status"], "PREVIEWING");
    assert_eq!(preview.body["story"]["is_locked"], true);
    let jobs = preview.body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 4, "three scene jobs and the compose job");
    assert_eq!(jobs.iter().filter(|j| j["kind"] == "scene_preview").count(), 3);
    assert_eq!(jobs[3]["kind"], "preview_compose");
    assert_eq!(jobs[3]["waiting_for"], 3);
    // The plan is locked while rendering.
    let scenes = app.get(&format!("{API}/scenes/?story={story}"), "alice").await.body;
    let scene = scenes["results"][0]["id"].as_str().unwrap();
    assert_eq!(
        app.patch(&format!("{API}/scenes/{scene}/"), "alice", json!({"title": "x"})).await.status,
        StatusCode::CONFLICT
    );

    let ready = app.work_until(&app.worker, 1, &story, "PREVIEW_READY").await;
    assert_eq!(ready["is_locked"], true, "the previewed plan stays locked until the owner revises it");
    let dir = tempfile::tempdir().unwrap();
    let bytes = download(&app, ready["preview"]["url"].as_str().unwrap()).await;
    let watched = probe(&bytes, dir.path(), "preview.mp4").await;
    // A low-quality preview is half the story's size, the full length.
    assert_eq!((watched.width, watched.height), (320, 180));
    assert!((watched.duration_seconds - 6.0).abs() <= 1.0 / 24.0, "{watched:?}");

    let fin = app.post(&format!("{API}/stories/{story}/render_final/"), "alice", json!({"quality": "high"})).await;
    assert_eq!(fin.status, StatusCode::ACCEPTED, "{:?}", fin.body);
    assert_eq!(fin.body["story"]["status"], "FINALIZING");
    let done = app.work_until(&app.worker, 1, &story, "COMPLETED").await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(60), "took {elapsed:?}");

    let video = &done["final"];
    assert_eq!(
        (video["width"].as_u64(), video["height"].as_u64(), video["fps"].as_u64()),
        (Some(640), Some(360), Some(24))
    );
    assert!(video["expires_at"].is_string());
    let bytes = download(&app, video["url"].as_str().unwrap()).await;
    assert_eq!(bytes.len() as u64, video["size_bytes"].as_u64().unwrap());
    let watched = probe(&bytes, dir.path(), "final.mp4").await;
    assert!((watched.duration_seconds - 6.0).abs() <= 1.0 / 24.0, "6 s within a frame: {watched:?}");
    assert_eq!((watched.width, watched.height), (640, 360));
    assert!((watched.fps - 24.0).abs() < 0.01, "{watched:?}");
    assert_eq!(watched.codec, "h264");
    assert_eq!(watched.frames, 144);

    // Every job succeeded once; the figures add up.
    let jobs = app.jobs_of(&story).await;
    assert_eq!(jobs.len(), 8);
    assert!(jobs.iter().all(|j| j["status"] == "succeeded" && j["attempts"] == 1), "{jobs:#?}");
    let stats = app.get(&format!("{API}/jobs/statistics/"), "alice").await.body;
    assert_eq!(stats["by_status"]["succeeded"], 8);
    assert_eq!(stats["success_rate"], 1.0);
    assert!((stats["seconds_rendered"].as_f64().unwrap() - 12.0).abs() < 0.2, "{stats}");
    // Nobody else sees any of it.
    assert_eq!(app.get(&format!("{API}/stories/{story}/jobs/"), "mallory").await.status, StatusCode::NOT_FOUND);
    let job = jobs[0]["id"].as_str().unwrap();
    assert_eq!(app.get(&format!("{API}/jobs/{job}/"), "mallory").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("{API}/jobs/"), "mallory").await.body["results"], json!([]));
}

/// The local provider, counting submissions and keeping their keys; unlike `local` it does not
/// say it deduplicates, as most paid providers do not.
struct Counting {
    inner: LocalProvider,
    submissions: AtomicUsize,
    keys: std::sync::Mutex<Vec<String>>,
}

impl Counting {
    fn new(inner: LocalProvider) -> Self {
        Counting { inner, submissions: AtomicUsize::new(0), keys: std::sync::Mutex::default() }
    }
}

#[async_trait]
impl VideoProvider for Counting {
    async fn submit(&self, request: &ClipRequest) -> Result<String, ProviderError> {
        self.submissions.fetch_add(1, Ordering::SeqCst);
        self.keys.lock().unwrap().push(request.key.clone());
        self.inner.submit(request).await
    }
    async fn poll(&self, task_id: &str, request: &ClipRequest) -> Result<TaskState, ProviderError> {
        self.inner.poll(task_id, request).await
    }
    async fn fetch(&self, output: &str, request: &ClipRequest, dest: &Path) -> Result<(), ProviderError> {
        self.inner.fetch(output, request, dest).await
    }
}

fn local(app: &TestApp) -> LocalProvider {
    LocalProvider::new(Ffmpeg::locate().unwrap(), &app.dir.path().join("provider-work"))
}

#[tokio::test]
async fn every_message_delivered_three_times_at_once_still_renders_and_charges_once() {
    let app = TestApp::with_quick_worker().await;
    let counting = Arc::new(Counting::new(local(&app)));
    let worker = app.worker.as_ref().clone().with_provider(AiProvider::Local, counting.clone());
    let story = planned_story(&app, "alice", lighthouse(), 3).await;

    assert_eq!(
        app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    app.work_until(&worker, 3, &story, "PREVIEW_READY").await;
    assert_eq!(
        app.post(&format!("{API}/stories/{story}/render_final/"), "alice", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    app.work_until(&worker, 3, &story, "COMPLETED").await;

    assert_eq!(counting.submissions.load(Ordering::SeqCst), 6, "one submission per clip job");
    let jobs = app.jobs_of(&story).await;
    let clips: Vec<_> = jobs.iter().filter(|j| j["kind"] == "scene_preview" || j["kind"] == "scene_final").collect();
    assert!(clips.iter().all(|j| j["attempts"] == 1 && j["status"] == "succeeded"));
    if support::backend() == "embedded" {
        let stored = std::fs::read_dir(app.dir.path().join(format!("media/clips/{story}"))).unwrap().count();
        assert_eq!(stored, 6, "one media object per clip");
    }
    assert_eq!(transitions_to(&app, &story, "PREVIEW_READY").await, 1);
    assert_eq!(transitions_to(&app, &story, "COMPLETED").await, 1);
}

/// A provider that never answers a submission: the worker holding the job is as good as dead.
struct Stalling;

#[async_trait]
impl VideoProvider for Stalling {
    async fn submit(&self, _: &ClipRequest) -> Result<String, ProviderError> {
        std::future::pending().await
    }
    async fn poll(&self, _: &str, _: &ClipRequest) -> Result<TaskState, ProviderError> {
        std::future::pending().await
    }
    async fn fetch(&self, _: &str, _: &ClipRequest, _: &Path) -> Result<(), ProviderError> {
        std::future::pending().await
    }
}

/// A previewing story whose first job's worker died inside the provider's create (its future
/// dropped, its message never settled): the story and the job it held.
async fn worker_died_in_a_submission(app: &TestApp) -> (String, Value) {
    let story = planned_story(app, "alice", lighthouse(), 3).await;
    assert_eq!(
        app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    let doomed = app.worker.as_ref().clone().with_provider(AiProvider::Local, Arc::new(Stalling));
    let taken = app.inbox.receive_batch(1, Duration::from_secs(1)).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(tokio::time::timeout(Duration::from_millis(500), doomed.handle(&taken[0])).await.is_err());
    let jobs = app.jobs_of(&story).await;
    let held: Vec<_> = jobs.iter().filter(|j| j["status"] == "running").collect();
    assert_eq!(held.len(), 1, "the dead worker's claim holds the job: {jobs:#?}");
    (story, held[0].clone())
}

#[tokio::test]
async fn a_job_whose_worker_died_mid_submission_is_never_sent_again_to_a_provider_that_does_not_deduplicate() {
    let app = TestApp::with_quick_worker().await;
    // Whether the provider took the clip the dead worker was submitting is unknown.
    let (story, held) = worker_died_in_a_submission(&app).await;

    let counting = Arc::new(Counting::new(local(&app)));
    let worker = app.worker.as_ref().clone().with_provider(AiProvider::Local, counting.clone());
    let failed = app.work_until(&worker, 1, &story, "FAILED").await;
    let job = app.jobs_of(&story).await.into_iter().find(|j| j["id"] == held["id"]).unwrap();
    assert_eq!(
        (job["status"].as_str(), job["failure_code"].as_str()),
        (Some("failed"), Some("ambiguous_submit")),
        "{job}"
    );
    assert_eq!(job["attempts"], 1);
    let id = held["id"].as_str().unwrap();
    assert!(
        counting.keys.lock().unwrap().iter().all(|key| !key.starts_with(id)),
        "the clip in doubt was not submitted again"
    );
    assert!(failed["failure_reason"].as_str().unwrap().contains("not sent again"), "{failed}");
    // Its owner may send it again, knowingly.
    assert_eq!(app.post(&format!("{API}/jobs/{id}/retry/"), "alice", json!({})).await.status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_job_whose_worker_died_completes_exactly_once_after_its_lease() {
    let app = TestApp::with_quick_worker().await;
    let (story, held) = worker_died_in_a_submission(&app).await;
    let held_id = held["id"].clone();

    app.work_until(&app.worker, 1, &story, "PREVIEW_READY").await;
    let jobs = app.jobs_of(&story).await;
    let job = jobs.iter().find(|j| j["id"] == held_id).unwrap();
    assert_eq!((job["status"].as_str(), job["attempts"].as_u64()), (Some("succeeded"), Some(1)), "{job:#?}");
    assert_eq!(transitions_to(&app, &story, "PREVIEW_READY").await, 1);
}

/// Sets `parameters` on the selected video prompt of the story's scene `order`.
async fn set_parameters(app: &TestApp, story: &str, order: u64, parameters: Value) {
    let scenes = app.get(&format!("{API}/scenes/?story={story}"), "alice").await.body;
    let scene = scenes["results"].as_array().unwrap().iter().find(|s| s["order"] == order).unwrap()["id"].clone();
    let prompts = app.get(&format!("{API}/prompts/?scene={}", scene.as_str().unwrap()), "alice").await.body;
    let prompt = prompts["results"][0]["id"].as_str().unwrap().to_owned();
    let reply = app.patch(&format!("{API}/prompts/{prompt}/"), "alice", json!({"parameters": parameters})).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

#[tokio::test]
async fn a_failing_scene_fails_the_story_with_a_reason_and_its_job_can_be_retried() {
    let app = TestApp::with_quick_worker().await;
    let story = json!({"title": "Storm", "duration_seconds": 6, "fps": 12, "resolution": "320x240"});
    let (id, _) = planning_story(&app, "alice", story, json!({"scene_count": 3})).await;
    set_parameters(&app, &id, 1, json!({"simulate": "fail"})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    assert_eq!(
        app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await.status,
        StatusCode::ACCEPTED
    );

    let story = app.work_until(&app.worker, 1, &id, "FAILED").await;
    let reason = story["failure_reason"].as_str().unwrap();
    assert!(reason.contains("Scene 2") && reason.contains("simulate: fail"), "{reason}");

    let jobs = app.jobs_of(&id).await;
    let failed: Vec<_> = jobs.iter().filter(|j| j["status"] == "failed").collect();
    assert_eq!(failed.len(), 1, "{jobs:#?}");
    assert!(failed[0]["error"].as_str().unwrap().contains("simulated_failure"));
    assert_eq!(failed[0]["attempts"], 1, "a permanent failure is not retried by the worker");
    let compose = jobs.iter().find(|j| j["kind"] == "preview_compose").unwrap();
    assert_eq!(compose["status"], "cancelled", "the render is called off");

    // The owner retries the job: queued again with fresh attempts (a succeeded one cannot be).
    let job = failed[0]["id"].as_str().unwrap();
    let retried = app.post(&format!("{API}/jobs/{job}/retry/"), "alice", json!({})).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{:?}", retried.body);
    assert_eq!(
        (retried.body["jobs"][0]["status"].as_str(), retried.body["jobs"][0]["attempts"].as_u64()),
        (Some("queued"), Some(0))
    );
    assert_eq!(app.post(&format!("{API}/jobs/{job}/retry/"), "alice", json!({})).await.status, StatusCode::CONFLICT);
    assert_eq!(app.post(&format!("{API}/jobs/{job}/retry/"), "mallory", json!({})).await.status, StatusCode::NOT_FOUND);
    let cancelled = app.post(&format!("{API}/jobs/{job}/cancel/"), "alice", json!({})).await;
    assert_eq!((cancelled.status, cancelled.body["status"].as_str()), (StatusCode::OK, Some("cancelled")));
    assert_eq!(app.post(&format!("{API}/jobs/{job}/cancel/"), "alice", json!({})).await.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn a_flaky_scene_is_retried_with_backoff_and_a_slow_one_is_polled_until_done() {
    let app = TestApp::with_quick_worker().await;
    let story = json!({"title": "Tide", "duration_seconds": 6, "fps": 12, "resolution": "320x240"});
    let (id, _) = planning_story(&app, "alice", story, json!({"scene_count": 3})).await;
    set_parameters(&app, &id, 0, json!({"simulate": "flaky"})).await;
    set_parameters(&app, &id, 2, json!({"simulate": "slow", "simulate_seconds": 1})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    assert_eq!(
        app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    app.work_until(&app.worker, 1, &id, "PREVIEW_READY").await;
    let jobs = app.jobs_of(&id).await;
    let attempts: Vec<_> =
        jobs.iter().filter(|j| j["kind"] == "scene_preview").map(|j| j["attempts"].as_u64().unwrap()).collect();
    assert_eq!(attempts, vec![2, 1, 1], "the flaky scene took a second attempt");
}

#[tokio::test]
async fn a_task_the_provider_never_finishes_times_out_at_its_deadline_and_fails_the_render_with_timeout() {
    use shared::ports::{Clock, ManualClock, SystemClock};
    let app = TestApp::with_quick_worker().await;
    let story = json!({"title": "Fog", "duration_seconds": 6, "fps": 12, "resolution": "320x240"});
    let (id, _) = planning_story(&app, "alice", story, json!({"scene_count": 3})).await;
    set_parameters(&app, &id, 1, json!({"simulate": "hang"})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    assert_eq!(
        app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await.status,
        StatusCode::ACCEPTED
    );
    // The worker's clock runs 16 minutes ahead at every round: each submitted task of the hung
    // scene is past the local provider's 15-minute deadline at its next poll.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let watched = app.worker.as_ref().clone().with_clock(clock.clone());
    let deadline = shared::domain::provider::task_deadline(AiProvider::Local);
    let started = Instant::now();
    let failed = loop {
        clock.advance((deadline + chrono::Duration::minutes(1)).to_std().unwrap());
        app.work_round(&watched, 1).await;
        let current = app.get(&format!("{API}/stories/{id}/"), "alice").await.body;
        if current["status"] != "PREVIEWING" {
            break current;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "still previewing: {current}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(failed["status"], "FAILED", "{failed}");
    let jobs = app.jobs_of(&id).await;
    let hung = jobs.iter().find(|j| j["status"] == "failed").expect("the hung scene's job failed");
    assert_eq!(hung["failure_code"], "timeout", "{hung}");
    assert_eq!(hung["attempts"], 3, "each attempt got a new task and its own deadline");
    assert!(hung["error"].as_str().unwrap().contains("15 minutes"), "{hung}");
    assert!(failed["failure_reason"].as_str().unwrap().contains("15 minutes"), "{failed}");
    // The rest of the render was called off, and says so; finished jobs carry no failure code.
    for job in &jobs {
        match job["status"].as_str().unwrap() {
            "cancelled" => assert_eq!(job["failure_code"], "cancelled", "{job}"),
            "succeeded" => assert_eq!(job["failure_code"], Value::Null, "{job}"),
            "failed" => {}
            other => panic!("a job left {other} in a failed render: {job}"),
        }
    }
}

#[tokio::test]
async fn renders_start_only_from_their_status_and_bad_options_are_named() {
    let app = TestApp::with_quick_worker().await;
    let id = app.create_story("alice", json!({"title": "Early"})).await;
    let early = app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await;
    assert_eq!((early.status, early.body["current_status"].as_str()), (StatusCode::CONFLICT, Some("DRAFT")));
    let story = planned_story(&app, "alice", lighthouse(), 3).await;
    let final_first = app.post(&format!("{API}/stories/{story}/render_final/"), "alice", json!({})).await;
    assert_eq!(final_first.status, StatusCode::CONFLICT);
    let bad = app
        .post(
            &format!("{API}/stories/{story}/generate_preview/"),
            "alice",
            json!({"quality": "ultra", "watermark": "yes"}),
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body["quality"].is_array() && bad.body["watermark"].is_array(), "{:?}", bad.body);
    assert_eq!(app.get(&format!("{API}/stories/{story}/"), "alice").await.body["status"], "PLANNED", "nothing written");
    assert_eq!(
        app.post(&format!("{API}/stories/{story}/generate_preview/"), "mallory", json!({})).await.status,
        StatusCode::NOT_FOUND
    );
    // Two at once: exactly one starts the render.
    let path = format!("{API}/stories/{story}/generate_preview/");
    let (a, b) = tokio::join!(app.post(&path, "alice", json!({})), app.post(&path, "alice", json!({})));
    let mut statuses = [a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, [StatusCode::ACCEPTED, StatusCode::CONFLICT]);
    assert_eq!(app.jobs_of(&story).await.len(), 4, "one render's jobs, not two");
}

#[tokio::test]
async fn a_scene_and_a_prompt_render_on_their_own() {
    let app = TestApp::with_quick_worker().await;
    let story = planned_story(&app, "alice", lighthouse(), 3).await;
    let scenes = app.get(&format!("{API}/scenes/?story={story}"), "alice").await.body;
    let scene = scenes["results"][1]["id"].as_str().unwrap().to_owned();
    let generated = app.post(&format!("{API}/scenes/{scene}/generate/"), "alice", json!({})).await;
    assert_eq!(generated.status, StatusCode::ACCEPTED, "{:?}", generated.body);
    assert_eq!(generated.body["jobs"][0]["kind"], "scene_generate");
    let prompts = app.get(&format!("{API}/prompts/?scene={scene}"), "alice").await.body;
    let prompt = prompts["results"][0]["id"].as_str().unwrap().to_owned();
    let tested = app.post(&format!("{API}/prompts/{prompt}/test/"), "alice", json!({})).await;
    assert_eq!(tested.status, StatusCode::ACCEPTED, "{:?}", tested.body);
    assert_eq!(
        app.post(&format!("{API}/prompts/{prompt}/test/"), "mallory", json!({})).await.status,
        StatusCode::NOT_FOUND
    );

    let started = Instant::now();
    loop {
        app.work_round(&app.worker, 1).await;
        let jobs = app.jobs_of(&story).await;
        if jobs.len() == 2 && jobs.iter().all(|j| j["status"] == "succeeded") {
            let url = jobs[0]["result"]["url"].as_str().unwrap().to_owned();
            let dir = tempfile::tempdir().unwrap();
            let clip = probe(&download(&app, &url).await, dir.path(), "clip.mp4").await;
            assert_eq!((clip.width, clip.height), (640, 360));
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{jobs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.get(&format!("{API}/stories/{story}/"), "alice").await.body["status"],
        "PLANNED",
        "the story did not move"
    );
}

#[tokio::test]
async fn a_prompt_the_provider_flagged_is_never_sent_again_unchanged() {
    let app = TestApp::with_quick_worker().await;
    let story = json!({"title": "Flag", "duration_seconds": 6, "fps": 12, "resolution": "320x240"});
    let (id, _) = planning_story(&app, "alice", story, json!({"scene_count": 3})).await;
    set_parameters(&app, &id, 1, json!({"simulate": "flagged"})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    let started = app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED);
    app.work_until(&app.worker, 1, &id, "FAILED").await;
    let jobs = app.jobs_of(&id).await;
    let flagged = jobs.iter().find(|j| j["status"] == "failed").unwrap();
    assert_eq!((flagged["failure_code"].as_str(), flagged["attempts"].as_u64()), (Some("safety_input"), Some(1)));
    let job = flagged["id"].as_str().unwrap();
    let again = app.post(&format!("{API}/jobs/{job}/retry/"), "alice", json!({})).await;
    assert_eq!((again.status, again.body["code"].as_str()), (StatusCode::CONFLICT, Some("unchanged_flagged_input")));
    assert_eq!(app.get(&format!("{API}/jobs/{job}/"), "alice").await.body["status"], "failed", "nothing queued");
    // The owner takes the story back to PLANNING (which unlocks its plan), rewords the scene's
    // prompt (and drops the switch): the retry sends the new one.
    assert_eq!(app.transition(&id, "alice", "PLANNING").await.status, StatusCode::OK);
    let scenes = app.results(&format!("{API}/scenes/?story={id}"), "alice").await;
    let scene = scenes.iter().find(|s| s["order"] == 1).unwrap()["id"].as_str().unwrap().to_owned();
    let prompts = app.results(&format!("{API}/prompts/?scene={scene}"), "alice").await;
    let prompt = prompts[0]["id"].as_str().unwrap();
    let reworded = json!({"text": "A calm harbour at dawn, boats at rest.", "parameters": {}});
    let edited = app.patch(&format!("{API}/prompts/{prompt}/"), "alice", reworded).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let retried = app.post(&format!("{API}/jobs/{job}/retry/"), "alice", json!({})).await;
    assert_eq!(retried.status, StatusCode::ACCEPTED, "{}", retried.body);
    app.work_round(&app.worker, 1).await;
    let done = app.get(&format!("{API}/jobs/{job}/"), "alice").await.body;
    assert_eq!(done["status"], "succeeded", "{done}");
}

/// `rate_limit_per_minute` is a budget shared by every worker (kept in the store): a 24-scene
/// render against a provider limited to 5 per minute never sends a 6th create within a minute;
/// the others wait in the queue (a delayed message, no worker time), their attempts not counted.
#[tokio::test]
async fn a_provider_limited_to_5_per_minute_never_gets_a_6th_create_within_a_minute() {
    use shared::ports::{Clock, ManualClock, SystemClock};
    let app = TestApp::with_quick_worker().await;
    let limited = app.patch(&format!("{API}/providers/local/"), "admin-ann", json!({"rate_limit_per_minute": 5})).await;
    assert_eq!(limited.status, StatusCode::OK, "{}", limited.body);
    let story = json!({"title": "Crowd", "duration_seconds": 48, "fps": 12, "resolution": "128x128"});
    let (id, _) = planning_story(&app, "alice", story, json!({"scene_count": 24})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    let started = app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);

    // Two workers (as two processes would be) on one clock that stands still within the minute.
    let clock = Arc::new(ManualClock::new(SystemClock.now()));
    let counting = Arc::new(Counting::new(local(&app)));
    let one = app.worker.as_ref().clone().with_clock(clock.clone()).with_provider(AiProvider::Local, counting.clone());
    let two = one.clone();
    for _ in 0..4 {
        tokio::join!(app.work_round(&one, 1), app.work_round(&two, 1));
    }
    assert_eq!(counting.submissions.load(Ordering::SeqCst), 5, "five creates in the first minute, not one more");
    let jobs = app.jobs_of(&id).await;
    let waiting: Vec<_> = jobs.iter().filter(|j| j["kind"] == "scene_preview" && j["status"] == "queued").collect();
    assert_eq!(waiting.len(), 19, "the others wait for the budget");
    assert!(waiting.iter().all(|j| j["attempts"] == 0), "waiting for the budget is no attempt");

    // A minute later the next five go (their delayed messages are due: the sweep sends them now).
    clock.advance(Duration::from_secs(61));
    let resent = app.sweeper.clone().with_clock(clock.clone()).sweep(Duration::ZERO).await.unwrap();
    assert_eq!(resent.jobs_resent, 19);
    for _ in 0..4 {
        tokio::join!(app.work_round(&one, 1), app.work_round(&two, 1));
    }
    assert_eq!(counting.submissions.load(Ordering::SeqCst), 10, "five more in the second minute");
}

/// A job queued before its provider was retired (here: a stability_ai job written straight to the
/// store, as one from before the retirement would be) fails with `provider_retired` and calls
/// nothing: no paid call that cannot finish the clip.
#[tokio::test]
async fn a_job_queued_before_its_provider_was_retired_fails_without_calling_it() {
    use shared::domain::ids::{JobId, StoryId, UserId};
    use shared::domain::job::JobKind;
    use shared::domain::render::{ClipSpec, RenderOptions, single_clip_job};
    use shared::ports::{JobMessage, JobQueue, JobStore, PlanStore};
    let app = TestApp::with_backend("embedded", &[], |c| c.worker.poll_ms = 100).await;
    let story = json!({"title": "Old", "duration_seconds": 6, "fps": 12, "resolution": "320x240",
                       "ai_provider": "stability_ai"});
    let id = planned_story(&app, "alice", story, 3).await;
    let queue = app.recovery.clone().expect("the embedded backend");
    let store = queue.store();
    let plan = store.story_plan(&UserId::parse("alice").unwrap(), &StoryId::parse(&id).unwrap()).await.unwrap();
    let clip = ClipSpec::of_scene(&plan.scenes[0], &plan.prompts, 12).unwrap();
    let job = single_clip_job(
        &plan.story,
        &plan.scenes[0].id,
        clip,
        JobKind::SceneGenerate,
        RenderOptions::preview_defaults(),
        JobId::from_ulid(ulid::Ulid::new()),
        chrono::Utc::now(),
    );
    store.create_job(&job).await.unwrap();
    let message = JobMessage { job_id: job.id.clone(), story_id: job.story.clone(), kind: job.kind };
    queue.enqueue(&message, job.priority, Duration::ZERO).await.unwrap();

    let counting = Arc::new(Counting::new(local(&app)));
    let worker = app.worker.as_ref().clone().with_provider(AiProvider::StabilityAi, counting.clone());
    app.work_round(&worker, 1).await;
    let failed = app.get(&format!("{API}/jobs/{}/", job.id), "alice").await.body;
    assert_eq!(
        (failed["status"].as_str(), failed["failure_code"].as_str()),
        (Some("failed"), Some("provider_retired"))
    );
    assert!(failed["error"].as_str().unwrap().contains("2025-07-24"), "{failed}");
    assert_eq!(counting.submissions.load(Ordering::SeqCst), 0, "nothing sent to a retired API");
}
