//! Spend limits (SPEC §8.7), on the test backend (`AIVIDEO_TEST_BACKEND=aws`: DynamoDB on moto):
//! a story's budget and a monthly cap per user; every paid start reserves its estimate in the write
//! that starts it, or is refused with 409 `budget_exceeded` having written and queued nothing; a
//! job that ends settles its reservation to its actual cost.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{API, TestApp, join_all, planned_story};

/// The `local` provider at a price, so that its renders are paid work: $0.01 per second.
async fn paid_local(app: &TestApp) {
    let prices = json!({"price_per_second_usd": {"low": 0.01, "medium": 0.01, "high": 0.01}});
    let reply = app.patch(&format!("{API}/providers/local/"), "admin-ann", prices).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

/// A 6 s, 3-scene story on `local`: its preview is estimated at about 6 s × $0.01 (each clip's
/// whole frames at the price).
fn short(title: &str) -> Value {
    json!({"title": title, "duration_seconds": 6, "fps": 24, "resolution": "640x360", "ai_provider": "local"})
}

/// `PUT usage/alice/` as `user`.
async fn put_cap(app: &TestApp, user: &str, body: Value) -> support::Reply {
    let path = format!("{API}/usage/alice/");
    app.send(axum::http::Method::PUT, &path, Some(user), Some(&body.to_string()), &[]).await
}

async fn usage(app: &TestApp, user: &str) -> Value {
    let reply = app.get(&format!("{API}/usage/"), user).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

#[tokio::test]
async fn twenty_concurrent_previews_against_a_cap_for_three_start_exactly_three_and_settle_to_their_cost() {
    let app = TestApp::with_quick_worker().await;
    paid_local(&app).await;
    let mut stories = Vec::new();
    for i in 0..20 {
        stories.push(planned_story(&app, "alice", short(&format!("Story {i}")), 3).await);
    }
    // A cap of 0 refuses any paid start, and says what one preview would reserve.
    assert_eq!(put_cap(&app, "admin-ann", json!({"cap_usd": 0})).await.status, StatusCode::OK);
    let probe = app.post(&format!("{API}/stories/{}/generate_preview/", stories[0]), "alice", json!({})).await;
    assert_eq!(probe.status, StatusCode::CONFLICT, "{}", probe.body);
    let estimate = probe.body["estimate_usd"].as_f64().unwrap();
    assert!((0.059..=0.061).contains(&estimate), "about 6 s at $0.01: {estimate}");
    let cap = put_cap(&app, "admin-ann", json!({"cap_usd": 3.0 * estimate})).await;
    assert_eq!(cap.status, StatusCode::OK, "{}", cap.body);
    let paths: Vec<String> = stories.iter().map(|s| format!("{API}/stories/{s}/generate_preview/")).collect();
    let replies = join_all(paths.iter().map(|p| app.post(p, "alice", json!({})))).await;
    let started: Vec<&String> =
        stories.iter().zip(&replies).filter(|(_, r)| r.status == StatusCode::ACCEPTED).map(|(s, _)| s).collect();
    let refused: Vec<&Value> = replies.iter().filter(|r| r.status == StatusCode::CONFLICT).map(|r| &r.body).collect();
    assert_eq!(
        started.len(),
        3,
        "exactly the three that fit: {:?}",
        replies.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert_eq!(refused.len(), 17);
    for body in &refused {
        assert_eq!(body["code"], "budget_exceeded", "{body}");
        assert_eq!(body["limit"], "monthly", "{body}");
        assert!(close(&body["estimate_usd"], estimate), "{body}");
        assert!(close(&body["remaining_usd"], 0.0), "{body}");
    }
    let now = usage(&app, "alice").await;
    assert!(close(&now["reserved_usd"], 3.0 * estimate), "{now}");
    assert!(close(&now["spent_usd"], 0.0), "{now}");
    assert!(close(&now["remaining_usd"], 0.0), "{now}");

    // Refused: nothing written, nothing queued.
    for story in stories.iter().filter(|s| !started.contains(s)) {
        let current = app.get(&format!("{API}/stories/{story}/"), "alice").await.body;
        assert_eq!(current["status"], "PLANNED");
        assert_eq!(current["is_locked"], false);
        assert!(app.jobs_of(story).await.is_empty(), "{story} has no jobs");
    }

    // Finished: the reservations became the jobs' actual costs.
    for story in &started {
        app.work_until(&app.worker, 1, story, "PREVIEW_READY").await;
    }
    let mut cost = 0.0;
    for story in &started {
        cost += app.jobs_of(story).await.iter().map(|j| j["cost_usd"].as_f64().unwrap()).sum::<f64>();
    }
    assert!(cost > 0.0);
    let after = usage(&app, "alice").await;
    assert!(close(&after["spent_usd"], (cost * 10_000.0).round() / 10_000.0), "{after} vs {cost}");
    assert!(close(&after["reserved_usd"], 0.0), "{after}");
}

#[tokio::test]
async fn a_story_s_budget_refuses_a_render_that_would_pass_it_and_admits_it_once_raised() {
    let app = TestApp::with_quick_worker().await;
    paid_local(&app).await;
    let story = planned_story(&app, "alice", short("Budgeted"), 3).await;
    let patched = app.patch(&format!("{API}/stories/{story}/"), "alice", json!({"budget_usd": 0.05})).await;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    assert!(close(&patched.body["budget_usd"], 0.05));

    let refused = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    assert_eq!(refused.body["code"], "budget_exceeded");
    assert_eq!(refused.body["limit"], "story");
    assert!(refused.body["estimate_usd"].as_f64().unwrap() > 0.05, "{}", refused.body);
    assert!(close(&refused.body["remaining_usd"], 0.05), "{}", refused.body);
    let current = app.get(&format!("{API}/stories/{story}/"), "alice").await.body;
    assert_eq!(current["status"], "PLANNED");
    assert!(app.jobs_of(&story).await.is_empty());
    assert!(close(&usage(&app, "alice").await["reserved_usd"], 0.0));

    // One scene alone fits (a third of the story), the whole story does not.
    let scenes = app.results(&format!("{API}/scenes/?story={story}&ordering=order"), "alice").await;
    let scene = scenes[1]["id"].as_str().unwrap();
    let one = app.post(&format!("{API}/scenes/{scene}/generate/"), "alice", json!({})).await;
    assert_eq!(one.status, StatusCode::ACCEPTED, "{}", one.body);
    assert!(usage(&app, "alice").await["reserved_usd"].as_f64().unwrap() > 0.0);

    let raised = app.patch(&format!("{API}/stories/{story}/"), "alice", json!({"budget_usd": 1})).await;
    assert_eq!(raised.status, StatusCode::OK);
    let started = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);

    // Bad budgets are field errors.
    for bad in [json!(-1), json!("ten"), json!(2_000_000)] {
        let reply = app.post(&format!("{API}/stories/"), "alice", json!({"title": "x", "budget_usd": bad})).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.body["budget_usd"].is_array(), "{}", reply.body);
    }
}

#[tokio::test]
async fn nobody_sees_another_users_figures_and_only_admins_set_caps() {
    let app = TestApp::new().await;
    assert_eq!(usage(&app, "bob").await["user"], "bob");
    assert_eq!(app.get(&format!("{API}/usage/alice/"), "bob").await.status, StatusCode::NOT_FOUND);
    let put = |user: &'static str, body: Value| put_cap(&app, user, body);
    assert_eq!(put("bob", json!({"cap_usd": 100})).await.status, StatusCode::NOT_FOUND);
    assert_eq!(put("admin-ann", json!({"cap_usd": -1})).await.status, StatusCode::BAD_REQUEST);
    assert_eq!(put("admin-ann", json!({})).await.status, StatusCode::BAD_REQUEST);
    let set = put("admin-ann", json!({"cap_usd": 12.5})).await;
    assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    let seen = app.get(&format!("{API}/usage/alice/"), "admin-ann").await.body;
    assert!(close(&seen["cap_usd"], 12.5) && close(&seen["remaining_usd"], 12.5), "{seen}");
    let cleared = put("admin-ann", json!({"cap_usd": null})).await;
    assert_eq!(cleared.body["cap_usd"], Value::Null, "{}", cleared.body);
}
