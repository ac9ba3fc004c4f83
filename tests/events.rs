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
use shared::domain::ids::{PromptId, SceneId, StoryId, UserId};
use shared::domain::prompt::{NewPrompt, PromptType};
use shared::domain::scene::{NewScene, SceneDuration, SceneKind};
use shared::domain::state_machine::StoryStatus;
use shared::domain::story::{NewStory, Story};
use shared::domain::values::{Description, PromptText, SceneTitle, Title};
use shared::ports::{PlanStore, StoryStore};
use tower::ServiceExt;

/// The secret the events' tokens are signed with (also in `events/env.json` for `sam local`).
const EVENT_SECRET: &str = "local-dev-secret";
/// The objects the events name.
const EVENT_STORY: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P0R";
const EVENT_SCENE: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P1S";
const EVENT_PROMPT: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P2T";

/// What the store holds before an event arrives.
#[derive(Clone, Copy)]
enum Seed {
    /// The story alone, in this status.
    Story(StoryStatus),
    /// The story in PLANNING with one scene and its selected video prompt.
    Plan,
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
];

async fn seed(dir: &Path, seed: Seed) {
    let store = EmbeddedStore::open(dir).unwrap();
    let owner = UserId::parse("demo-user").unwrap();
    let mut story = Story::create(
        StoryId::parse(EVENT_STORY).unwrap(),
        owner.clone(),
        NewStory::titled(Title::parse("Seeded").unwrap()),
        Utc::now(),
    );
    story.status = match seed {
        Seed::Story(status) => status,
        Seed::Plan => StoryStatus::Planning,
    };
    store.create_story(&story).await.unwrap();
    if let Seed::Plan = seed {
        let scene = NewScene {
            story: story.id.clone(),
            order: None,
            kind: SceneKind::Main,
            title: SceneTitle::parse("Seeded scene").unwrap(),
            description: Description::default(),
            duration_seconds: SceneDuration::parse(5.0).unwrap(),
        };
        store.create_scenes(&owner, vec![(SceneId::parse(EVENT_SCENE).unwrap(), scene)], Utc::now()).await.unwrap();
        let prompt = NewPrompt {
            scene: SceneId::parse(EVENT_SCENE).unwrap(),
            prompt_type: PromptType::Video,
            text: PromptText::parse("A fox.").unwrap(),
            parameters: serde_json::Map::new(),
        };
        store.create_prompt(&owner, PromptId::parse(EVENT_PROMPT).unwrap(), prompt, Utc::now()).await.unwrap();
    }
}

/// The router of the function an event file belongs to (by its name's prefix).
async fn function_router(event: &str, data_dir: &Path) -> Router {
    let config = Config {
        data_dir: data_dir.to_path_buf(),
        auth: AuthConfig { secret: Some(EVENT_SECRET.to_owned()), ..AuthConfig::default() },
        ..Config::default()
    };
    let state = shared::runtime::build_state(&config).await.unwrap();
    match event.split('-').next().unwrap() {
        "stories" => stories::router(state),
        "scenes" => scenes::router(state),
        "prompts" => prompts::router(state),
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
        .filter(|n| n.ends_with(".json") && n != "env.json")
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
