//! Listings of scenes and prompts across all of a user's stories, paged with cursors in every
//! ordering: every item once, in order, none of another user's — on both backends (on DynamoDB
//! these pages read in proportion to the page, see the README's round-trip table).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::StatusCode;
use serde_json::{Value, json};
use support::{API, TestApp};

/// Follows `next` links from `first` to the end; the ids of every page, in order.
async fn walk(app: &TestApp, user: &str, first: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = Some(first.to_owned());
    let mut pages = 0;
    while let Some(path) = url {
        let reply = app.get(&path, user).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        ids.extend(support::ids(&reply.body["results"]));
        url = reply.body["next"].as_str().map(|next| next.trim_start_matches("http://testserver").to_owned());
        pages += 1;
        assert!(pages < 50, "paging does not end");
    }
    ids
}

#[tokio::test]
async fn scenes_and_prompts_of_all_stories_page_in_every_ordering_without_gaps_or_repeats() {
    let app = TestApp::new().await;
    let mut scenes: Vec<(String, u64, String)> = Vec::new(); // (story, order, id)
    let mut prompts: Vec<(String, u64, String)> = Vec::new();
    for title in ["One", "Two", "Three"] {
        let story = app.create_story("alice", json!({"title": title, "duration_seconds": 12})).await;
        let bulk = app.post(&format!("{API}/stories/{story}/scenes/bulk/"), "alice", json!({"scene_count": 4})).await;
        assert_eq!(bulk.status, StatusCode::CREATED, "{}", bulk.body);
        for scene in bulk.body["scenes"].as_array().unwrap() {
            let order = scene["order"].as_u64().unwrap();
            scenes.push((story.clone(), order, scene["id"].as_str().unwrap().to_owned()));
            for prompt in scene["prompts"].as_array().unwrap() {
                prompts.push((story.clone(), order, prompt["id"].as_str().unwrap().to_owned()));
            }
        }
    }
    // Another user's plan is never listed.
    let theirs = app.create_story("bob", json!({"title": "Bob's", "duration_seconds": 12})).await;
    app.post(&format!("{API}/stories/{theirs}/scenes/bulk/"), "bob", json!({"scene_count": 3})).await;
    // An empty story in between changes nothing.
    app.create_story("alice", json!({"title": "Empty"})).await;

    let by_order = |items: &[(String, u64, String)]| {
        let mut sorted = items.to_vec();
        sorted.sort();
        sorted.into_iter().map(|(_, _, id)| id).collect::<Vec<_>>()
    };
    let by_id = |items: &[(String, u64, String)]| {
        let mut ids: Vec<String> = items.iter().map(|(_, _, id)| id.clone()).collect();
        ids.sort();
        ids
    };
    let reversed = |mut ids: Vec<String>| {
        ids.reverse();
        ids
    };
    for (kind, items) in [("scenes", &scenes), ("prompts", &prompts)] {
        for (ordering, expected) in [
            ("order", by_order(items)),
            ("-order", reversed(by_order(items))),
            ("created_at", by_id(items)),
            ("-created_at", reversed(by_id(items))),
        ] {
            let listed = walk(&app, "alice", &format!("{API}/{kind}/?ordering={ordering}&page_size=5")).await;
            assert_eq!(listed, expected, "{kind} by {ordering}");
        }
    }
    let value: Value = app.get(&format!("{API}/scenes/?page_size=100"), "bob").await.body;
    assert_eq!(value["results"].as_array().unwrap().len(), 3, "bob sees only his own");
}
