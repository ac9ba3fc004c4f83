//! `providers/`: every user lists the enabled providers with their prices; admins see and change
//! all of them; a disabled provider cannot start a render; estimates use the stored prices.
//! Runs on the embedded store, and on DynamoDB with `AIVIDEO_TEST_BACKEND=aws`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API, TestApp, planned_story, spawn_all};

fn names(list: &Value) -> Vec<String> {
    list["results"].as_array().unwrap().iter().map(|p| p["provider"].as_str().unwrap().to_owned()).collect()
}

/// A 10 s, 12 fps, 256x144 story on `provider`.
fn priced(provider: &str) -> Value {
    json!({"title": "Priced", "duration_seconds": 10, "fps": 12, "resolution": "256x144", "ai_provider": provider})
}

#[tokio::test]
async fn users_see_enabled_providers_with_prices_and_admins_see_all() {
    let app = TestApp::new().await;
    let list = app.get(&format!("{API}/providers/"), "alice").await;
    assert_eq!(list.status, StatusCode::OK);
    let listed = names(&list.body);
    assert!(listed.contains(&"local".to_owned()) && listed.contains(&"runway".to_owned()), "{listed:?}");
    assert!(!listed.contains(&"stability_ai".to_owned()), "disabled in the seed: {listed:?}");
    let runway = list.body["results"].as_array().unwrap().iter().find(|p| p["provider"] == "runway").unwrap();
    assert_eq!(runway["price_per_second_usd"]["high"], 0.12);
    assert!(runway.get("secret_name").is_none(), "secret names are for admins");

    let all = app.get(&format!("{API}/providers/"), "admin-ann").await;
    assert_eq!(names(&all.body).len(), 7);
    let runway = all.body["results"].as_array().unwrap().iter().find(|p| p["provider"] == "runway").unwrap();
    assert_eq!(runway["secret_name"], "RUNWAY_API_KEY");

    assert_eq!(app.get(&format!("{API}/providers/stability_ai/"), "alice").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("{API}/providers/stability_ai/"), "admin-ann").await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{API}/providers/nonsense/"), "admin-ann").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn only_admins_change_providers() {
    let app = TestApp::new().await;
    let attempts = [
        (Method::PATCH, format!("{API}/providers/runway/"), json!({"enabled": false})),
        (Method::POST, format!("{API}/providers/runway/disable/"), json!({})),
        (Method::POST, format!("{API}/providers/"), json!({"provider": "runway"})),
    ];
    for (method, path, body) in attempts {
        let reply = app.send(method.clone(), &path, Some("alice"), Some(&body.to_string()), &[]).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{method} {path}: {}", reply.body);
        assert_eq!(reply.body["code"], "permission_denied");
    }
    let runway = app.get(&format!("{API}/providers/runway/"), "alice").await;
    assert_eq!((runway.body["enabled"].as_bool(), runway.body["version"].as_u64()), (Some(true), Some(0)));
}

#[tokio::test]
async fn a_disabled_provider_cannot_start_a_render_until_enabled_again() {
    let app = TestApp::new().await;
    let story = planned_story(&app, "alice", priced("runway"), 3).await;
    let reply = app.post(&format!("{API}/providers/runway/disable/"), "admin-ann", json!({})).await;
    assert_eq!((reply.status, reply.body["enabled"].as_bool()), (StatusCode::OK, Some(false)));

    let refused = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert!(refused.body["detail"].as_str().unwrap().contains("runway provider is disabled"), "{}", refused.body);
    let after = app.get(&format!("{API}/stories/{story}/"), "alice").await;
    assert_eq!(after.body["status"], "PLANNED", "nothing moved");
    let jobs = app.get(&format!("{API}/stories/{story}/jobs/"), "alice").await;
    assert_eq!(jobs.body["results"].as_array().unwrap().len(), 0, "no job written");
    let scene = app.get(&format!("{API}/scenes/?story={story}"), "alice").await.body["results"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let single = app.post(&format!("{API}/scenes/{scene}/generate/"), "alice", json!({})).await;
    assert_eq!(single.status, StatusCode::CONFLICT);

    app.post(&format!("{API}/providers/runway/enable/"), "admin-ann", json!({})).await;
    let started = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    // The render carries the provider's terms at its start: cost follows them, later changes do not.
    let job = &started.body["jobs"][0];
    assert_eq!(job["provider"], "runway");
}

#[tokio::test]
async fn estimates_follow_the_stored_prices_and_the_story_s_provider() {
    let app = TestApp::new().await;
    let story = planned_story(&app, "alice", priced("runway"), 3).await;
    let before = estimate(&app, &story).await;
    let before_high = high(&before);
    assert!((before_high - 1.2).abs() < 1e-9, "10 s × $0.12: {before}");

    let prices = json!({"price_per_second_usd": {"low": 0.01, "medium": 0.02, "high": 0.5}});
    let reply = app.patch(&format!("{API}/providers/runway/"), "admin-ann", prices).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["version"], 1);
    let after = estimate(&app, &story).await;
    assert!((high(&after) - 5.0).abs() < 1e-9, "{after}");

    // Switching the story's provider switches its prices.
    app.patch(&format!("{API}/stories/{story}/"), "alice", json!({"ai_provider": "local"})).await;
    let local = estimate(&app, &story).await;
    assert_eq!(high(&local), 0.0, "{local}");
    assert_eq!(local["provider"], "local", "{local}");
}

/// The final render's cost at high quality.
fn high(estimate: &Value) -> f64 {
    let finals = estimate["final"].as_array().unwrap();
    finals.iter().find(|q| q["quality"] == "high").unwrap()["cost_usd"].as_f64().unwrap()
}

async fn estimate(app: &TestApp, story: &str) -> Value {
    app.get(&format!("{API}/stories/{story}/cost_estimate/"), "alice").await.body
}

#[tokio::test]
async fn ugly_provider_writes_name_the_field_and_change_nothing() {
    let app = TestApp::new().await;
    let path = format!("{API}/providers/luma/");
    let cases = [
        (json!({"price_per_second_usd": {"low": -1, "medium": 0, "high": 0}}), "price_per_second_usd"),
        (json!({"price_per_second_usd": {"low": 0.1}}), "price_per_second_usd"),
        (json!({"price_per_second_usd": "cheap"}), "price_per_second_usd"),
        (json!({"model": ""}), "model"),
        (json!({"model": 42}), "model"),
        (json!({"enabled": "yes please"}), "enabled"),
        (json!({"max_clip_seconds": 0}), "max_clip_seconds"),
        (json!({"rate_limit_per_minute": 1e12}), "rate_limit_per_minute"),
        (json!({"secret_name": "has spaces"}), "secret_name"),
        (json!({"default_parameters": [1, 2]}), "default_parameters"),
        (json!({"provider": "runway"}), "provider"),
    ];
    for (body, field) in cases {
        let reply = app.patch(&path, "admin-ann", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
        assert!(reply.body.get(field).is_some(), "{body} names {field}: {}", reply.body);
    }
    let whole = app.send(Method::PUT, &path, Some("admin-ann"), Some(r#"{"model": "ray-2"}"#), &[]).await;
    assert_eq!(whole.status, StatusCode::BAD_REQUEST, "PUT needs every field: {}", whole.body);
    let create = app.post(&format!("{API}/providers/"), "admin-ann", json!({"provider": "sora"})).await;
    assert_eq!(create.status, StatusCode::BAD_REQUEST);
    assert!(create.body.get("provider").is_some());
    let malformed = app.send(Method::PATCH, &path, Some("admin-ann"), Some("{\"model\": "), &[]).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);

    let luma = app.get(&path, "admin-ann").await;
    assert_eq!((luma.body["version"].as_u64(), luma.body["model"].as_str()), (Some(0), Some("ray-2")), "unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_provider_is_created_once_and_concurrent_admin_edits_with_if_match_have_one_winner() {
    let app = Arc::new(TestApp::new().await);
    let body = json!({
        "provider": "replicate", "enabled": true, "model": "minimax/video-01",
        "price_per_second_usd": {"low": 0.08, "medium": 0.08, "high": 0.08},
        "max_clip_seconds": 6, "rate_limit_per_minute": 600, "secret_name": "REPLICATE_API_TOKEN"
    });
    let creates = spawn_all((0..6).map(|_| {
        let (app, body) = (app.clone(), body.clone());
        async move { app.post(&format!("{API}/providers/"), "admin-ann", body).await.status }
    }))
    .await;
    assert_eq!(creates.iter().filter(|s| **s == StatusCode::CREATED).count(), 1, "{creates:?}");
    assert!(creates.iter().all(|s| *s == StatusCode::CREATED || *s == StatusCode::CONFLICT), "{creates:?}");
    let listed = app.get(&format!("{API}/providers/"), "alice").await;
    assert!(names(&listed.body).contains(&"replicate".to_owned()), "enabled now");

    let edits = spawn_all((0..8).map(|i| {
        let app = app.clone();
        async move {
            let body = json!({"model": format!("owner/model-{i}")}).to_string();
            let path = format!("{API}/providers/replicate/");
            app.send(Method::PATCH, &path, Some("admin-ann"), Some(&body), &[("if-match", "\"1\"")]).await.status
        }
    }))
    .await;
    assert_eq!(edits.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{edits:?}");
    assert!(edits.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::PRECONDITION_FAILED), "{edits:?}");
    let stored = app.get(&format!("{API}/providers/replicate/"), "admin-ann").await;
    assert_eq!(stored.body["version"], 2, "one write landed");
}
