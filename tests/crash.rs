//! Crashes as SPEC §8.2 has them, on the embedded backend: the real `aivideo serve` killed with
//! `kill -9` in the middle of a render resumes at once on restart (no waiting out leases or
//! visibility timeouts the dead process held), and work committed without its message is sent by
//! the sweep.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde_json::{Value, json};
use shared::ports::{Handled, JobStore, consume_once};
use support::{Server, TestApp, aivideo};

const API: &str = "/api/ai-video";

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn call(server: &Server, token: &str, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let response = client()
        .request(method, server.url(&format!("{API}{path}")))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A PLANNED story of three short scenes on `server`.
async fn planned_story(server: &Server, token: &str) -> String {
    let (status, story) = call(
        server,
        token,
        reqwest::Method::POST,
        "/stories/",
        json!({"title": "Crash", "duration_seconds": 6, "fps": 12, "resolution": "256x144"}),
    )
    .await;
    assert_eq!(status, 201, "{story}");
    let id = story["id"].as_str().unwrap().to_owned();
    let (status, body) =
        call(server, token, reqwest::Method::POST, &format!("/stories/{id}/scenes/bulk/"), json!({"scene_count": 3}))
            .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) =
        call(server, token, reqwest::Method::POST, &format!("/stories/{id}/transition/"), json!({"to": "PLANNED"}))
            .await;
    assert_eq!(status, 200, "{body}");
    id
}

#[tokio::test]
async fn a_render_killed_mid_way_is_ready_within_60_s_of_the_restart_and_done_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap().to_owned();
    let token = String::from_utf8(aivideo(&["token", "--user", "alice", "--data-dir", &data], &[]).stdout).unwrap();
    let token = token.trim().to_owned();
    // Polls come quickly, so the render is mid-way when the process dies.
    let env = [("AIVIDEO_PROVIDER_POLL_MS", "200")];
    let mut server = Server::start(dir.path(), &env);
    let id = planned_story(&server, &token).await;
    let (status, body) =
        call(&server, &token, reqwest::Method::POST, &format!("/stories/{id}/generate_preview/"), json!({})).await;
    assert_eq!(status, 202, "{body}");
    tokio::time::sleep(Duration::from_millis(250)).await;
    let (_, before) = call(&server, &token, reqwest::Method::GET, &format!("/stories/{id}/jobs/"), Value::Null).await;
    server.kill9();
    let unfinished =
        before["results"].as_array().map_or(0, |jobs| jobs.iter().filter(|j| j["status"] != "succeeded").count());
    // What the dead process left: usually messages in flight and a job under lease.
    eprintln!("killed with {unfinished} of 4 jobs unfinished");

    let server = Server::start(dir.path(), &env);
    let restarted = Instant::now();
    let story = loop {
        let (_, story) = call(&server, &token, reqwest::Method::GET, &format!("/stories/{id}/"), Value::Null).await;
        if story["status"] != "PREVIEWING" {
            break story;
        }
        assert!(restarted.elapsed() < Duration::from_secs(60), "still PREVIEWING 60 s after the restart");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(story["status"], "PREVIEW_READY", "{story}");
    eprintln!("PREVIEW_READY {:?} after the restart", restarted.elapsed());
    // Exactly once: one move per status, one clip per scene job, every scene job succeeded once.
    let (_, history) =
        call(&server, &token, reqwest::Method::GET, &format!("/stories/{id}/transitions/?page_size=100"), Value::Null)
            .await;
    let moves: Vec<(String, String)> = history["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["from"].as_str().unwrap_or("").to_owned(), t["to"].as_str().unwrap_or("").to_owned()))
        .collect();
    let ready = moves.iter().filter(|(_, to)| to == "PREVIEW_READY").count();
    let previewing = moves.iter().filter(|(_, to)| to == "PREVIEWING").count();
    assert_eq!((previewing, ready), (1, 1), "{history}");
    let (_, jobs) =
        call(&server, &token, reqwest::Method::GET, &format!("/stories/{id}/jobs/?page_size=100"), Value::Null).await;
    let jobs = jobs["results"].as_array().unwrap().clone();
    assert_eq!(jobs.len(), 4, "three scene jobs and the compose job");
    assert!(jobs.iter().all(|j| j["status"] == "succeeded"), "{jobs:?}");
    let clips = std::fs::read_dir(dir.path().join("media/clips").join(&id)).unwrap().count();
    assert_eq!(clips, 3, "one media object per clip");
}

#[tokio::test]
async fn work_committed_without_its_message_is_sent_by_the_sweep() {
    let app = TestApp::with(&[], |c| {
        c.worker.poll_ms = 50;
    })
    .await;
    let id = app
        .create_story("alice", json!({"title": "Lost", "duration_seconds": 6, "fps": 12, "resolution": "128x128"}))
        .await;
    let bulk = app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({"scene_count": 3})).await;
    assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.body);
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    let started = app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    // The messages go missing (as if the process died between the commit and the send).
    let lost = app.inbox.receive_batch(10, Duration::from_secs(600)).await.unwrap();
    assert_eq!(lost.len(), 3);
    for delivery in &lost {
        app.inbox.settle(delivery, Handled::Done).await.unwrap();
    }
    assert!(app.inbox.receive_batch(10, Duration::from_secs(600)).await.unwrap().is_empty());
    let recovery = app.recovery.clone().expect("the embedded backend sweeps");
    let swept = recovery.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(swept.jobs_resent, 3, "{swept:?}");
    assert_eq!(recovery.sweep(Duration::ZERO).await.unwrap().jobs_resent, 0, "a second sweep sends nothing more");
    // The worker, as `aivideo serve` runs it, finishes the render from the resent messages.
    let started = Instant::now();
    loop {
        let worker = app.worker.clone();
        consume_once(app.inbox.as_ref(), 10, Duration::from_secs(2), |d| {
            let worker = worker.clone();
            async move { worker.handle(&d).await }
        })
        .await
        .unwrap();
        let story = app.get(&format!("{API}/stories/{id}/"), "alice").await.body;
        if story["status"] == "PREVIEW_READY" {
            break;
        }
        assert_eq!(story["status"], "PREVIEWING", "{}", story["failure_reason"]);
        assert!(started.elapsed() < Duration::from_secs(60), "the render did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_story_left_rendering_with_its_render_finished_is_failed_by_the_sweep_with_a_reason() {
    let app = TestApp::new().await;
    let id = app
        .create_story("alice", json!({"title": "Stuck", "duration_seconds": 6, "fps": 12, "resolution": "128x128"}))
        .await;
    app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({"scene_count": 3})).await;
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, StatusCode::OK);
    let started = app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(started.status, StatusCode::ACCEPTED, "{}", started.body);
    // Every job of the render ends without the story moving (what no code path should do: the
    // sweep is the net under it).
    let recovery = app.recovery.clone().expect("the embedded backend sweeps");
    let story_id = shared::domain::ids::StoryId::parse(&id).unwrap();
    let jobs = recovery.store().story_jobs(&story_id).await.unwrap();
    let now = chrono::Utc::now();
    let ended: Vec<_> = jobs.iter().map(|j| j.cancelled(now).unwrap()).collect();
    recovery.store().commit_jobs(ended, None).await.unwrap();
    assert_eq!(recovery.sweep(Duration::ZERO).await.unwrap().stories_failed, 1);
    let story = app.get(&format!("{API}/stories/{id}/"), "alice").await.body;
    assert_eq!(story["status"], "FAILED");
    assert!(story["failure_reason"].as_str().unwrap().contains("The render stopped without finishing"), "{story}");
    assert_eq!(recovery.sweep(Duration::ZERO).await.unwrap().stories_failed, 0, "once");
}
