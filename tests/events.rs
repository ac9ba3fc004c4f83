//! Every `events/*.json` (API Gateway HTTP API v2 events, usable with `sam local invoke -e`) is
//! turned into a request by `lambda_http` exactly as in Lambda and pushed through its function's
//! real router.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use axum::Router;
use axum::http::StatusCode;
use chrono::Utc;
use shared::adapters::embedded::EmbeddedStore;
use shared::config::{AuthConfig, Config};
use shared::domain::ids::{Actor, JobId, PromptId, SceneId, StoryId, UserId};
use shared::domain::job::JobKind;
use shared::domain::prompt::{NewPrompt, PromptType};
use shared::domain::render::{ClipSpec, RenderOptions, single_clip_job};
use shared::domain::scene::{NewScene, SceneDuration, SceneKind};
use shared::domain::state_machine::Mover;
use shared::domain::state_machine::StoryStatus;
use shared::domain::story::{NewStory, Story};
use shared::domain::values::{Description, DurationSeconds, PromptText, Resolution, SceneTitle, Title};
use shared::ports::{JobStore, MoveRequest, PlanStore, StoryStore};
use tower::ServiceExt;

/// The secret the events' tokens are signed with (also in `events/env.json` for `sam local`).
const EVENT_SECRET: &str = "local-dev-secret";
/// The objects the events name.
const EVENT_STORY: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P0R";
const EVENT_SCENE: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P1S";
const EVENT_PROMPT: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P2T";
const EVENT_JOB: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P3V";

/// What the store holds before an event arrives.
#[derive(Clone, Copy)]
enum Seed {
    /// The story alone, in this status.
    Story(StoryStatus),
    /// The story in PLANNING with one scene and its selected video prompt.
    Plan,
    /// That plan, moved on to this status (through the real moves).
    PlanIn(StoryStatus),
    /// The plan with one queued job (`scenes/{id}/generate`).
    Job,
    /// The plan with that job cancelled.
    CancelledJob,
}

/// (event, seed, expected HTTP status).
const EXPECTED: &[(&str, Seed, u16)] = &[
    ("stories-create", Seed::Story(StoryStatus::Draft), 201),
    ("stories-list", Seed::Story(StoryStatus::Draft), 200),
    ("stories-get", Seed::Story(StoryStatus::Draft), 200),
    ("stories-update", Seed::Story(StoryStatus::Draft), 200),
    ("stories-replace", Seed::Story(StoryStatus::Draft), 200),
    ("stories-delete", Seed::Story(StoryStatus::Draft), 204),
    ("stories-transition", Seed::Story(StoryStatus::Draft), 200),
    ("stories-lock", Seed::Story(StoryStatus::Planning), 200),
    ("stories-unlock", Seed::Story(StoryStatus::Planning), 200),
    ("stories-transitions", Seed::Story(StoryStatus::Draft), 200),
    ("stories-statistics", Seed::Story(StoryStatus::Draft), 200),
    ("stories-unauthenticated", Seed::Story(StoryStatus::Draft), 401),
    ("stories-invalid", Seed::Story(StoryStatus::Draft), 400),
    ("stories-bulk-scenes", Seed::Story(StoryStatus::Draft), 201),
    ("stories-generate-prompts", Seed::Plan, 200),
    ("stories-cost-estimate", Seed::Plan, 200),
    ("scenes-list", Seed::Plan, 200),
    ("scenes-create", Seed::Plan, 201),
    ("scenes-bulk-create", Seed::Plan, 201),
    ("scenes-get", Seed::Plan, 200),
    ("scenes-update", Seed::Plan, 200),
    ("scenes-replace", Seed::Plan, 200),
    ("scenes-delete", Seed::Plan, 204),
    ("scenes-reorder", Seed::Plan, 200),
    ("prompts-list", Seed::Plan, 200),
    ("prompts-create", Seed::Plan, 201),
    ("prompts-get", Seed::Plan, 200),
    ("prompts-update", Seed::Plan, 200),
    ("prompts-replace", Seed::Plan, 200),
    ("prompts-delete", Seed::Plan, 204),
    ("prompts-select", Seed::Plan, 200),
    ("prompts-test", Seed::Plan, 202),
    ("scenes-generate", Seed::Plan, 202),
    ("stories-generate-preview", Seed::PlanIn(StoryStatus::Planned), 202),
    ("stories-render-final", Seed::PlanIn(StoryStatus::PreviewReady), 202),
    ("stories-jobs", Seed::Job, 200),
    ("jobs-list", Seed::Job, 200),
    ("jobs-get", Seed::Job, 200),
    ("jobs-statistics", Seed::Job, 200),
    ("jobs-cancel", Seed::Job, 200),
    ("jobs-retry", Seed::CancelledJob, 202),
    ("usage-get", Seed::Job, 200),
    ("events-list", Seed::Job, 200),
    // A public address literal: checked without a lookup, contacted only when delivering.
    ("webhooks-create", Seed::Story(StoryStatus::Draft), 201),
    ("webhooks-list", Seed::Story(StoryStatus::Draft), 200),
    ("providers-list", Seed::Story(StoryStatus::Draft), 200),
    // The events' user is not an admin.
    ("providers-disable-forbidden", Seed::Story(StoryStatus::Draft), 403),
];

async fn seed(dir: &Path, seed: Seed) {
    let store = EmbeddedStore::open(dir).unwrap();
    let owner = UserId::parse("demo-user").unwrap();
    let mut new_story = NewStory::titled(Title::parse("Seeded").unwrap());
    new_story.duration_seconds = Some(DurationSeconds::parse(5).unwrap());
    new_story.resolution = Some(Resolution::parse("256x144").unwrap());
    let mut story = Story::create(StoryId::parse(EVENT_STORY).unwrap(), owner.clone(), new_story, Utc::now());
    story.status = match seed {
        Seed::Story(status) => status,
        _ => StoryStatus::Planning,
    };
    store.create_story(&story).await.unwrap();
    if let Seed::Story(_) = seed {
        return;
    }
    let scene = NewScene {
        story: story.id.clone(),
        order: None,
        kind: SceneKind::Main,
        title: SceneTitle::parse("Seeded scene").unwrap(),
        description: Description::default(),
        duration_seconds: SceneDuration::parse(5.0).unwrap(),
    };
    let prompt = NewPrompt {
        scene: SceneId::parse(EVENT_SCENE).unwrap(),
        prompt_type: PromptType::Video,
        text: PromptText::parse("A fox.").unwrap(),
        parameters: serde_json::Map::new(),
    };
    // The scene and its prompt at the ids the event files name, in one plan edit.
    let now = Utc::now();
    let seed_plan = std::sync::Arc::new(move |plans: &mut [shared::domain::plan_edits::PlanEdit]| {
        plans[0].create_scene(SceneId::parse(EVENT_SCENE).unwrap(), scene.clone(), now)?;
        plans[0].create_prompt(PromptId::parse(EVENT_PROMPT).unwrap(), prompt.clone(), now).map(|_| ())
    });
    store.edit_plans(&owner, &[shared::ports::PlanTarget::Story(story.id.clone())], seed_plan).await.unwrap();
    let moves: &[(StoryStatus, Mover)] = match seed {
        Seed::PlanIn(StoryStatus::Planned) => &[(StoryStatus::Planned, Mover::User)],
        Seed::PlanIn(StoryStatus::PreviewReady) => &[
            (StoryStatus::Planned, Mover::User),
            (StoryStatus::Previewing, Mover::GeneratePreview),
            (StoryStatus::PreviewReady, Mover::Worker),
        ],
        Seed::PlanIn(other) => panic!("no seed for {other}"),
        _ => &[],
    };
    for (to, mover) in moves {
        let request = MoveRequest {
            owner: owner.clone(),
            story: story.id.clone(),
            to: *to,
            mover: *mover,
            actor: Actor::User(owner.clone()),
            reason: None,
            expected_version: None,
            at: Utc::now(),
            request: None,
        };
        store.move_story(request).await.unwrap();
    }
    if let Seed::Job | Seed::CancelledJob = seed {
        let plan = store.story_plan(&owner, &story.id).await.unwrap();
        let clip = ClipSpec::of_scene(&plan.scenes[0], &plan.prompts, 24).unwrap();
        let mut job = single_clip_job(
            &plan.story,
            &plan.scenes[0].id,
            clip,
            JobKind::SceneGenerate,
            RenderOptions::preview_defaults(),
            JobId::parse(EVENT_JOB).unwrap(),
            Utc::now(),
        );
        store.create_job(&job).await.unwrap();
        if let Seed::CancelledJob = seed {
            job = job.cancelled(Utc::now()).unwrap();
            store.commit_jobs(vec![job], None).await.unwrap();
        }
    }
}

/// The router of the function an event file belongs to (by its name's prefix).
async fn function_router(event: &str, data_dir: &Path) -> Router {
    let config = Config {
        data_dir: data_dir.to_path_buf(),
        auth: AuthConfig { secret: Some(EVENT_SECRET.to_owned()), ..AuthConfig::default() },
        ..Config::default()
    };
    // As each Lambda builds it: the API role only.
    let state = shared::runtime::build_api(&config).await.unwrap();
    match event.split('-').next().unwrap() {
        "stories" => stories::router(state),
        "scenes" => scenes::router(state),
        "prompts" => prompts::router(state),
        // `usage/`, `events/` and `webhooks/` are served by the Jobs function.
        "jobs" | "usage" | "events" | "webhooks" => jobs::router(state),
        "providers" => providers::router(state),
        other => panic!("no function for events named {other}-*"),
    }
}

async fn invoke(event: &str, data_dir: &Path) -> support::Reply {
    let json = std::fs::read_to_string(format!("events/{event}.json")).unwrap();
    let request = lambda_http::request::from_str(&json).expect("a valid API Gateway event");
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    support::reply(function_router(event, data_dir).await.oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn every_event_file_runs_through_its_functions_router() {
    let mut files: Vec<String> = std::fs::read_dir("events")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| {
            n.ends_with(".json") && n != "env.json" && !n.starts_with("worker-") && !n.starts_with("dispatcher-")
        })
        .collect();
    files.sort();
    let mut expected: Vec<String> = EXPECTED.iter().map(|(n, _, _)| format!("{n}.json")).collect();
    expected.sort();
    assert_eq!(files, expected, "every event has an expectation, and every expectation a file");

    for (name, seeded, status) in EXPECTED {
        let dir = tempfile::tempdir().unwrap();
        seed(dir.path(), *seeded).await;
        let reply = invoke(name, dir.path()).await;
        assert_eq!(reply.status, StatusCode::from_u16(*status).unwrap(), "{name}: {}", reply.body);
        if reply.status.is_client_error() {
            assert!(reply.body.get("code").is_some(), "{name}: errors carry a code");
        }
        assert_eq!(
            reply.headers["x-request-id"],
            format!("req-{name}").as_str(),
            "{name}: the API Gateway request id is echoed"
        );
    }
}

#[tokio::test]
async fn list_links_use_the_api_gateway_host() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), Seed::Story(StoryStatus::Draft)).await;
    invoke("stories-create", dir.path()).await;
    let list = std::fs::read_to_string("events/stories-list.json")
        .unwrap()
        .replace("page_size=10", "page_size=1")
        .replace("\"10\"", "\"1\"");
    let list_path = dir.path().join("list.json");
    std::fs::write(&list_path, list).unwrap();
    let request = lambda_http::request::from_str(&std::fs::read_to_string(&list_path).unwrap()).unwrap();
    let (parts, body) = request.into_parts();
    let request = axum::http::Request::from_parts(parts, axum::body::Body::from(body.to_vec()));
    let reply = support::reply(function_router("stories-list", dir.path()).await.oneshot(request).await.unwrap()).await;
    let next = reply.body["next"].as_str().unwrap();
    assert!(next.starts_with("https://api.example.com/api/ai-video/stories/?"), "{next}");
}

/// The worker's events (`events/worker-*.json`, SQS batches as the event source mapping sends
/// them) through the worker Lambda's handler on a seeded store.
async fn run_worker_event(name: &str) -> (Vec<String>, shared::domain::job::Job) {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path(), Seed::Job).await;
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        auth: AuthConfig { secret: Some(EVENT_SECRET.to_owned()), ..AuthConfig::default() },
        ..Config::default()
    };
    // As the worker Lambda builds it: the worker role only.
    let consumer = shared::runtime::build_worker(&config).await.unwrap();
    let event: aws_lambda_events::event::sqs::SqsEvent =
        serde_json::from_str(&std::fs::read_to_string(format!("events/{name}.json")).unwrap()).unwrap();
    let response = worker::handle_batch(&consumer.worker, event).await;
    let failed = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    // The data dir has one user at a time: the worker lets go of it before the API reads it.
    drop(consumer);
    let state = shared::runtime::build_api(&config).await.unwrap();
    let job = state.jobs.get(&UserId::parse("demo-user").unwrap(), &JobId::parse(EVENT_JOB).unwrap()).await.unwrap();
    (failed, job)
}

#[tokio::test]
async fn the_worker_batch_event_renders_its_job() {
    let (failed, job) = run_worker_event("worker-batch").await;
    assert!(failed.is_empty(), "{failed:?}");
    assert_eq!((job.status.to_string().as_str(), job.attempts), ("succeeded", 1), "{job:?}");
    assert!(job.result.is_some());
}

#[tokio::test]
async fn the_mixed_worker_batch_reports_only_its_poison_record() {
    // The job twice (SQS delivers at least once), a record that is not a job message, and a
    // message for a job that no longer exists.
    let (failed, job) = run_worker_event("worker-mixed-batch").await;
    assert_eq!(failed, vec!["msg-2".to_owned()]);
    assert_eq!((job.status.to_string().as_str(), job.attempts), ("succeeded", 1), "rendered once: {job:?}");
}

#[tokio::test]
async fn the_scheduled_event_runs_the_sweep_through_the_worker_handler() {
    let dir = tempfile::tempdir().unwrap();
    // A queued job whose message is gone (the seed writes the job and sends nothing), queued
    // five minutes ago: longer than the sweep's patience.
    seed(dir.path(), Seed::Job).await;
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let story = shared::domain::ids::StoryId::parse(EVENT_STORY).unwrap();
        let mut job = store.story_job(&story, &JobId::parse(EVENT_JOB).unwrap()).await.unwrap();
        job.queued_at -= chrono::Duration::minutes(5);
        job.version += 1;
        store.commit_jobs(vec![job], None).await.unwrap();
    }
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        auth: AuthConfig { secret: Some(EVENT_SECRET.to_owned()), ..AuthConfig::default() },
        ..Config::default()
    };
    let consumer = shared::runtime::build_worker(&config).await.unwrap();
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("events/worker-schedule.json").unwrap()).unwrap();
    let answer = worker::handle_event(&consumer, event).await;
    assert_eq!(answer["swept"]["jobs_resent"], 1, "{answer}");
    // And an SQS batch goes through the same entry point as before.
    let batch: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string("events/worker-batch.json").unwrap()).unwrap();
    let answer = worker::handle_event(&consumer, batch).await;
    assert_eq!(answer, serde_json::json!({"batchItemFailures": []}));
}
