//! The Stories API as SPEC §4–§6 describe it, through the real router on a real embedded store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::TestApp;

const STORIES: &str = "/api/ai-video/stories/";

fn story_path(id: &str, suffix: &str) -> String {
    format!("{STORIES}{id}/{suffix}")
}

#[tokio::test]
async fn creating_a_story_answers_201_with_defaults_location_and_etag() {
    let app = TestApp::new().await;
    let reply = app.post(STORIES, "alice", json!({"title": "  Launch film ", "project": 7})).await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let s = &reply.body;
    assert_eq!(s["title"], "Launch film");
    assert_eq!(s["status"], "DRAFT");
    assert_eq!(s["owner"], "alice");
    assert_eq!(s["project"], 7);
    assert_eq!(s["version"], 1);
    assert_eq!(s["is_locked"], false);
    assert_eq!(
        (s["duration_seconds"].clone(), s["fps"].clone(), s["resolution"].clone()),
        (json!(60), json!(24), json!("1920x1080"))
    );
    assert_eq!((s["ai_provider"].clone(), s["style_preset"].clone()), (json!("local"), json!("cinematic")));
    assert_eq!(s["preview"], Value::Null);
    assert_eq!(s["final"], Value::Null);
    assert_eq!(reply.etag(), "\"1\"");
    let id = s["id"].as_str().unwrap();
    assert_eq!(reply.headers["location"], format!("/api/ai-video/stories/{id}/").as_str());
}

#[tokio::test]
async fn read_only_fields_sent_by_a_client_are_never_stored() {
    let app = TestApp::new().await;
    let body = json!({
        "title": "T", "id": "01J00000000000000000000000", "owner": "mallory", "status": "COMPLETED",
        "is_locked": true, "version": 99, "failure_reason": "x", "preview": {"url": "http://evil"},
        "created_at": "2000-01-01T00:00:00Z"
    });
    let reply = app.post(STORIES, "alice", body.clone()).await;
    let id = reply.body["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "01J00000000000000000000000");
    assert_eq!(reply.body["owner"], "alice");
    assert_eq!(reply.body["status"], "DRAFT");
    assert_eq!(reply.body["version"], 1);
    let patched = app.patch(&story_path(&id, ""), "alice", body).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!(patched.body["status"], "DRAFT");
    assert_eq!(patched.body["is_locked"], false);
    assert_eq!(patched.body["owner"], "alice");
    assert_eq!(patched.body["preview"], Value::Null);
}

#[tokio::test]
async fn another_users_story_is_not_found_on_every_route() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "Mine"})).await;
    let routes: Vec<(Method, String, Option<&str>)> = vec![
        (Method::GET, story_path(&id, ""), None),
        (Method::PUT, story_path(&id, ""), Some(r#"{"title":"x"}"#)),
        (Method::PATCH, story_path(&id, ""), Some(r#"{"title":"x"}"#)),
        (Method::DELETE, story_path(&id, ""), None),
        (Method::POST, story_path(&id, "lock/"), Some("{}")),
        (Method::POST, story_path(&id, "unlock/"), Some("{}")),
        (Method::POST, story_path(&id, "transition/"), Some(r#"{"to":"PLANNING"}"#)),
        (Method::GET, story_path(&id, "transitions/"), None),
    ];
    for (method, path, body) in routes {
        let reply = app.send(method.clone(), &path, Some("bob"), body, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(reply.body, json!({"detail": "Not found.", "code": "not_found"}));
    }
    let list = app.get(STORIES, "bob").await;
    assert_eq!(list.body["results"], json!([]));
    // Alice's story is untouched.
    let mine = app.get(&story_path(&id, ""), "alice").await;
    assert_eq!((mine.body["title"].clone(), mine.body["version"].clone()), (json!("Mine"), json!(1)));
}

#[tokio::test]
async fn a_malformed_id_is_simply_not_found() {
    let app = TestApp::new().await;
    for id in ["nope", "..", "01J%00", "' OR 1=1 --", &"9".repeat(300)] {
        let path = format!("{STORIES}{}/", urlencode(id));
        let reply = app.get(&path, "alice").await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{id}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

#[tokio::test]
async fn routes_answer_with_and_without_the_trailing_slash() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    assert_eq!(app.get("/api/ai-video/stories", "alice").await.status, StatusCode::OK);
    assert_eq!(app.get(&format!("{STORIES}{id}"), "alice").await.status, StatusCode::OK);
    assert_eq!(app.get("/api/ai-video/stories/statistics", "alice").await.status, StatusCode::OK);
}

#[tokio::test]
async fn the_list_shows_only_my_stories_newest_first() {
    let app = TestApp::new().await;
    let first = app.create_story("alice", json!({"title": "one"})).await;
    let second = app.create_story("alice", json!({"title": "two"})).await;
    app.create_story("bob", json!({"title": "bob's"})).await;
    let list = app.get(STORIES, "alice").await;
    assert_eq!(support::ids(&list.body["results"]), vec![second.clone(), first.clone()]);
    assert_eq!(list.body["next"], Value::Null);
    assert_eq!(list.body["previous"], Value::Null);
    let oldest_first = app.get(&format!("{STORIES}?ordering=created_at"), "alice").await;
    assert_eq!(oldest_first.body["results"][0]["id"], first.as_str());
}

#[tokio::test]
async fn the_list_filters_by_status_project_and_provider() {
    let app = TestApp::new().await;
    let a = app.create_story("alice", json!({"title": "a", "project": 1, "ai_provider": "runway"})).await;
    let b = app.create_story("alice", json!({"title": "b", "project": 2})).await;
    app.transition(&b, "alice", "PLANNING").await;
    let only = |reply: support::Reply| support::ids(&reply.body["results"]);
    assert_eq!(only(app.get(&format!("{STORIES}?status=PLANNING"), "alice").await), vec![b.clone()]);
    assert_eq!(only(app.get(&format!("{STORIES}?project=1"), "alice").await), vec![a.clone()]);
    assert_eq!(only(app.get(&format!("{STORIES}?ai_provider=runway"), "alice").await), vec![a.clone()]);
    assert!(only(app.get(&format!("{STORIES}?status=DRAFT&project=2"), "alice").await).is_empty());
    let bad =
        app.get(&format!("{STORIES}?status=LOST&project=x&ai_provider=sora&ordering=title&page_size=0"), "alice").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    for field in ["status", "project", "ai_provider", "ordering", "page_size"] {
        assert!(bad.body.get(field).is_some(), "{field} should be named: {}", bad.body);
    }
    assert_eq!(bad.body["code"], "invalid");
}

#[tokio::test]
async fn cursor_pagination_walks_forward_and_back() {
    let app = TestApp::new().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(app.create_story("alice", json!({"title": format!("s{i}")})).await);
    }
    ids.reverse(); // newest first
    let mut seen = Vec::new();
    let mut url = format!("{STORIES}?page_size=2");
    let mut pages = Vec::new();
    loop {
        let page = app.get(&url, "alice").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for s in page.body["results"].as_array().unwrap() {
            seen.push(s["id"].as_str().unwrap().to_owned());
        }
        pages.push(page.body.clone());
        match page.body["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("http://testserver/api/ai-video/stories/?"), "{next}");
                url = next.trim_start_matches("http://testserver").to_owned();
            }
            None => break,
        }
    }
    assert_eq!(seen, ids);
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0]["previous"], Value::Null);
    // Back from the last page to the middle one.
    let previous = pages[2]["previous"].as_str().unwrap().trim_start_matches("http://testserver").to_owned();
    let back = app.get(&previous, "alice").await;
    assert_eq!(back.body["results"], pages[1]["results"]);
    // Page size is capped at 100, as DRF's max_page_size does.
    assert_eq!(app.get(&format!("{STORIES}?page_size=1000"), "alice").await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_cursor_is_bound_to_its_user_and_cannot_be_forged() {
    let app = TestApp::new().await;
    for i in 0..3 {
        app.create_story("alice", json!({"title": format!("s{i}")})).await;
    }
    let page = app.get(&format!("{STORIES}?page_size=1"), "alice").await;
    let next = page.body["next"].as_str().unwrap().trim_start_matches("http://testserver").to_owned();
    // A cursor this list did not issue is 404 "Invalid cursor.", as DRF's CursorPagination answers.
    let stolen = app.get(&next, "bob").await;
    assert_eq!(stolen.status, StatusCode::NOT_FOUND);
    assert_eq!(stolen.body["detail"], "Invalid cursor.");
    let cursor = next.split("cursor=").nth(1).unwrap();
    let forged = format!("{STORIES}?page_size=1&cursor=A{cursor}");
    assert_eq!(app.get(&forged, "alice").await.status, StatusCode::NOT_FOUND);
    let other_order = format!("{next}&ordering=created_at");
    assert_eq!(app.get(&other_order, "alice").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&format!("{STORIES}?cursor=garbage"), "alice").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn patch_and_put_edit_writable_fields_and_bump_the_version() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T", "project": 3})).await;
    let patched =
        app.patch(&story_path(&id, ""), "alice", json!({"fps": 30, "resolution": "1280x720", "project": null})).await;
    assert_eq!(patched.status, StatusCode::OK);
    assert_eq!((patched.body["fps"].clone(), patched.body["resolution"].clone()), (json!(30), json!("1280x720")));
    assert_eq!(patched.body["project"], Value::Null);
    assert_eq!(patched.body["version"], 2);
    assert_eq!(patched.etag(), "\"2\"");
    let put = app.send(Method::PUT, &story_path(&id, ""), Some("alice"), Some(r#"{"fps": 25}"#), &[]).await;
    assert_eq!(put.status, StatusCode::BAD_REQUEST);
    assert_eq!(put.body["title"], json!(["This field is required."]));
    let put =
        app.send(Method::PUT, &story_path(&id, ""), Some("alice"), Some(r#"{"title": "New", "fps": 25}"#), &[]).await;
    assert_eq!(put.status, StatusCode::OK);
    assert_eq!(
        (put.body["title"].clone(), put.body["fps"].clone(), put.body["version"].clone()),
        (json!("New"), json!(25), json!(3))
    );
    // An empty PATCH writes nothing.
    let same = app.patch(&story_path(&id, ""), "alice", json!({})).await;
    assert_eq!(same.body["version"], 3);
}

#[tokio::test]
async fn if_match_with_a_stale_version_is_412_and_changes_nothing() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    app.patch(&story_path(&id, ""), "alice", json!({"title": "v2"})).await;
    let stale = app
        .send(Method::PATCH, &story_path(&id, ""), Some("alice"), Some(r#"{"title":"lost"}"#), &[("if-match", "\"1\"")])
        .await;
    assert_eq!(stale.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(stale.body["code"], "precondition_failed");
    assert_eq!(stale.body["current_version"], 2);
    let stale_move = app
        .send(
            Method::POST,
            &story_path(&id, "transition/"),
            Some("alice"),
            Some(r#"{"to":"PLANNING"}"#),
            &[("if-match", "\"1\"")],
        )
        .await;
    assert_eq!(stale_move.status, StatusCode::PRECONDITION_FAILED);
    let stale_delete =
        app.send(Method::DELETE, &story_path(&id, ""), Some("alice"), None, &[("if-match", "\"1\"")]).await;
    assert_eq!(stale_delete.status, StatusCode::PRECONDITION_FAILED);
    let now = app.get(&story_path(&id, ""), "alice").await;
    assert_eq!((now.body["title"].clone(), now.body["status"].clone()), (json!("v2"), json!("DRAFT")));
    let fresh = app
        .send(
            Method::PATCH,
            &story_path(&id, ""),
            Some("alice"),
            Some(r#"{"title":"v3"}"#),
            &[("if-match", &now.etag())],
        )
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let garbage =
        app.send(Method::PATCH, &story_path(&id, ""), Some("alice"), Some("{}"), &[("if-match", "yesterday")]).await;
    assert_eq!(garbage.status, StatusCode::BAD_REQUEST);
    assert!(garbage.body.get("If-Match").is_some());
}

#[tokio::test]
async fn deleting_a_story_answers_204_and_forgets_it_and_its_history() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    app.transition(&id, "alice", "PLANNING").await;
    let deleted = app.send(Method::DELETE, &story_path(&id, ""), Some("alice"), None, &[]).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&story_path(&id, ""), "alice").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(&story_path(&id, "transitions/"), "alice").await.status, StatusCode::NOT_FOUND);
    assert_eq!(app.get(STORIES, "alice").await.body["results"], json!([]));
}

#[tokio::test]
async fn a_transition_moves_the_story_and_appends_one_history_record() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    let moved = app.post(&story_path(&id, "transition/"), "alice", json!({"to": "PLANNING", "reason": "start"})).await;
    assert_eq!(moved.status, StatusCode::OK);
    assert_eq!((moved.body["status"].clone(), moved.body["version"].clone()), (json!("PLANNING"), json!(2)));
    assert_eq!(moved.etag(), "\"2\"");
    let history = app.get(&story_path(&id, "transitions/"), "alice").await;
    let records = history.body["results"].as_array().unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0]["from"], "DRAFT");
    assert_eq!(records[0]["to"], "PLANNING");
    assert_eq!(records[0]["actor"], "alice");
    assert_eq!(records[0]["reason"], "start");
    assert_eq!(records[0]["story"], id.as_str());
}

#[tokio::test]
async fn a_move_not_in_the_table_is_409_with_the_current_status_and_changes_nothing() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    let refused = app.transition(&id, "alice", "COMPLETED").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert_eq!(refused.body["code"], "invalid_transition");
    assert_eq!(refused.body["current_status"], "DRAFT");
    let story = app.get(&story_path(&id, ""), "alice").await;
    assert_eq!(story.body["version"], 1);
    assert_eq!(app.get(&story_path(&id, "transitions/"), "alice").await.body["results"], json!([]));
}

#[tokio::test]
async fn moves_reserved_for_the_render_endpoints_and_the_worker_are_refused_to_users() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    app.transition(&id, "alice", "PLANNING").await;
    for to in ["PREVIEWING", "PREVIEW_READY", "FINALIZING", "COMPLETED"] {
        let refused = app.transition(&id, "alice", to).await;
        assert_eq!(refused.status, StatusCode::CONFLICT, "{to}");
    }
}

#[tokio::test]
async fn planning_to_planned_is_refused_until_the_plan_is_complete() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    app.transition(&id, "alice", "PLANNING").await;
    let refused = app.transition(&id, "alice", "PLANNED").await;
    assert_eq!(refused.status, StatusCode::CONFLICT);
    assert!(refused.body["detail"].as_str().unwrap().contains("no scenes"), "{}", refused.body);
    assert_eq!(refused.body["current_status"], "PLANNING");
}

#[tokio::test]
async fn failing_a_story_needs_a_reason_and_recovering_unlocks_it() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    app.transition(&id, "alice", "PLANNING").await;
    assert_eq!(app.post(&story_path(&id, "lock/"), "alice", json!({})).await.body["is_locked"], true);
    let no_reason = app.transition(&id, "alice", "FAILED").await;
    assert_eq!(no_reason.status, StatusCode::BAD_REQUEST);
    assert!(no_reason.body.get("reason").is_some());
    let failed =
        app.post(&story_path(&id, "transition/"), "alice", json!({"to": "FAILED", "reason": "bad idea"})).await;
    assert_eq!(failed.status, StatusCode::OK);
    assert_eq!(failed.body["failure_reason"], "bad idea");
    assert_eq!(failed.body["is_locked"], true);
    let recovered = app.transition(&id, "alice", "PLANNING").await;
    assert_eq!(recovered.body["status"], "PLANNING");
    assert_eq!(recovered.body["is_locked"], false);
    assert_eq!(recovered.body["failure_reason"], Value::Null);
}

#[tokio::test]
async fn lock_and_unlock_follow_the_lock_rules() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    let in_draft = app.post(&story_path(&id, "lock/"), "alice", json!({})).await;
    assert_eq!(in_draft.status, StatusCode::CONFLICT);
    assert_eq!(in_draft.body["current_status"], "DRAFT");
    app.transition(&id, "alice", "PLANNING").await;
    let locked = app.post(&story_path(&id, "lock/"), "alice", json!({})).await;
    assert_eq!(locked.status, StatusCode::OK);
    assert_eq!(locked.body["is_locked"], true);
    assert!(locked.body["locked_at"].is_string());
    let again = app.post(&story_path(&id, "lock/"), "alice", json!({})).await;
    assert_eq!(again.body["version"], locked.body["version"], "locking twice writes nothing");
    let edit = app.patch(&story_path(&id, ""), "alice", json!({"title": "changed"})).await;
    assert_eq!(edit.status, StatusCode::CONFLICT);
    assert_eq!(edit.body["code"], "locked");
    let unlocked = app.post(&story_path(&id, "unlock/"), "alice", json!({})).await;
    assert_eq!(unlocked.body["is_locked"], false);
    assert_eq!(unlocked.body["locked_at"], Value::Null);
    assert_eq!(app.patch(&story_path(&id, ""), "alice", json!({"title": "changed"})).await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_archived_story_is_read_only_and_final() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    assert_eq!(app.transition(&id, "alice", "ARCHIVED").await.status, StatusCode::OK);
    assert_eq!(app.patch(&story_path(&id, ""), "alice", json!({"title": "x"})).await.status, StatusCode::CONFLICT);
    for to in ["DRAFT", "PLANNING", "FAILED"] {
        assert_eq!(app.transition(&id, "alice", to).await.status, StatusCode::CONFLICT, "{to}");
    }
}

#[tokio::test]
async fn statistics_count_my_stories_only() {
    let app = TestApp::new().await;
    let a = app.create_story("alice", json!({"title": "a", "duration_seconds": 10})).await;
    app.create_story("alice", json!({"title": "b", "duration_seconds": 20, "ai_provider": "luma"})).await;
    app.create_story("bob", json!({"title": "c"})).await;
    app.transition(&a, "alice", "PLANNING").await;
    let stats = app.get("/api/ai-video/stories/statistics/", "alice").await;
    assert_eq!(stats.status, StatusCode::OK);
    assert_eq!(stats.body["total_stories"], 2);
    assert_eq!(stats.body["by_status"]["DRAFT"], 1);
    assert_eq!(stats.body["by_status"]["PLANNING"], 1);
    assert_eq!(stats.body["by_status"]["COMPLETED"], 0);
    assert_eq!(stats.body["by_provider"], json!({"local": 1, "luma": 1}));
    assert_eq!(stats.body["planned_seconds"], 30);
}

#[tokio::test]
async fn the_same_idempotency_key_and_body_replays_the_first_response() {
    let app = TestApp::new().await;
    let body = r#"{"title": "once"}"#;
    let first = app.send(Method::POST, STORIES, Some("alice"), Some(body), &[("idempotency-key", "k-1")]).await;
    let second = app.send(Method::POST, STORIES, Some("alice"), Some(body), &[("idempotency-key", "k-1")]).await;
    assert_eq!(first.status, StatusCode::CREATED);
    assert_eq!(second.status, StatusCode::CREATED);
    assert_eq!(first.body, second.body);
    assert_eq!(second.headers["idempotent-replayed"], "true");
    assert_eq!(second.etag(), first.etag());
    assert_eq!(app.get(STORIES, "alice").await.body["results"].as_array().unwrap().len(), 1);
    let other_body = app
        .send(Method::POST, STORIES, Some("alice"), Some(r#"{"title": "twice"}"#), &[("idempotency-key", "k-1")])
        .await;
    assert_eq!(other_body.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(other_body.body["code"], "idempotency_key_reused");
    // Keys are scoped per user: Bob's k-1 is his own.
    let bob = app.send(Method::POST, STORIES, Some("bob"), Some(body), &[("idempotency-key", "k-1")]).await;
    assert_eq!(bob.status, StatusCode::CREATED);
    assert_ne!(bob.body["id"], first.body["id"]);
}

#[tokio::test]
async fn a_replayed_transition_does_not_move_twice() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "T"})).await;
    let path = story_path(&id, "transition/");
    let body = r#"{"to": "PLANNING"}"#;
    let first = app.send(Method::POST, &path, Some("alice"), Some(body), &[("idempotency-key", "move-1")]).await;
    let again = app.send(Method::POST, &path, Some("alice"), Some(body), &[("idempotency-key", "move-1")]).await;
    assert_eq!((first.status, again.status), (StatusCode::OK, StatusCode::OK));
    assert_eq!(again.body["version"], 2);
    let history = app.get(&story_path(&id, "transitions/"), "alice").await;
    assert_eq!(history.body["results"].as_array().unwrap().len(), 1);
    let bad_key = app.send(Method::POST, &path, Some("alice"), Some(body), &[("idempotency-key", "has space")]).await;
    assert_eq!(bad_key.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let app = TestApp::new().await;
    let none = app.send(Method::GET, STORIES, None, None, &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.body["code"], "not_authenticated");
    let expired =
        shared::http::auth::issue_hs256_token(support::SECRET, "alice", false, std::time::Duration::ZERO).unwrap();
    // An expiry in the past beyond the leeway.
    let past = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &json!({"sub": "alice", "exp": chrono_now() - 3600}),
        &jsonwebtoken::EncodingKey::from_secret(support::SECRET.as_bytes()),
    )
    .unwrap();
    let forged = support::token("alice").replace('.', ".x");
    for bad in [format!("Bearer {past}"), format!("Bearer {forged}"), "Bearer".to_owned(), format!("Token {expired}")] {
        let reply = app.send(Method::GET, STORIES, None, None, &[("authorization", &bad)]).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{bad}");
        assert_eq!(reply.body["code"], "authentication_failed");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
    }
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test]
async fn broken_bodies_get_clear_errors_and_write_nothing() {
    let app = TestApp::new().await;
    let parse = app.send(Method::POST, STORIES, Some("alice"), Some(r#"{"title": "#), &[]).await;
    assert_eq!(parse.status, StatusCode::BAD_REQUEST);
    assert_eq!(parse.body["code"], "parse_error");
    assert!(parse.body["detail"].as_str().unwrap().starts_with("JSON parse error - "));
    let list = app.send(Method::POST, STORIES, Some("alice"), Some(r#"[{"title": "x"}]"#), &[]).await;
    assert_eq!(list.status, StatusCode::BAD_REQUEST);
    assert!(list.body.get("non_field_errors").is_some());
    let huge = format!(r#"{{"title": "x", "description": "{}"}}"#, "a".repeat(1024 * 1024 + 1));
    let too_large = app.send(Method::POST, STORIES, Some("alice"), Some(&huge), &[]).await;
    assert_eq!(too_large.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(too_large.body["code"], "payload_too_large");
    let form = app.send(Method::POST, STORIES, Some("alice"), None, &[("content-type", "text/plain")]).await;
    assert_eq!(form.status, StatusCode::BAD_REQUEST, "an empty body is {{}}: title required");
    let typed = axum::http::Request::builder()
        .method(Method::POST)
        .uri(STORIES)
        .header("authorization", format!("Bearer {}", support::token("alice")))
        .header("content-type", "text/plain")
        .body(axum::body::Body::from("title=x"))
        .unwrap();
    let reply = support::reply(tower::ServiceExt::oneshot(app.router.clone(), typed).await.unwrap()).await;
    assert_eq!(reply.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.get(STORIES, "alice").await.body["results"], json!([]));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_in_the_error_format() {
    let app = TestApp::new().await;
    let missing = app.get("/api/ai-video/nothing/", "alice").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.body["code"], "not_found");
    let wrong = app.send(Method::DELETE, STORIES, Some("alice"), None, &[]).await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.body["code"], "method_not_allowed");
}

/// Every writable field, wrong in every way we could think of: each answer is a 400 naming that
/// field, and nothing is written.
#[tokio::test]
async fn every_field_wrong_in_every_way_is_a_400_naming_it() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "keep"})).await;
    let corpus: Vec<(&str, Vec<Value>)> = vec![
        (
            "title",
            vec![
                json!(null),
                json!(""),
                json!("   "),
                json!(5),
                json!(true),
                json!([]),
                json!({}),
                json!("x".repeat(201)),
                json!("bell\u{7}"),
            ],
        ),
        ("description", vec![json!(null), json!(1), json!(["a"]), json!("d".repeat(5001))]),
        (
            "duration_seconds",
            vec![
                json!(null),
                json!(4),
                json!(601),
                json!(-10),
                json!(0),
                json!(10.5),
                json!("ten"),
                json!(""),
                json!(true),
                json!([10]),
                json!(1e20),
                json!("99999999999999999999"),
            ],
        ),
        ("fps", vec![json!(null), json!(0), json!(61), json!(-1), json!(23.976), json!("fast"), json!({})]),
        (
            "resolution",
            vec![
                json!(null),
                json!("1920"),
                json!("1921x1080"),
                json!("1920x1081"),
                json!("100x100"),
                json!("4000x2000"),
                json!("axb"),
                json!(1920),
                json!("1920 x 1080"),
                json!(""),
            ],
        ),
        ("ai_provider", vec![json!(null), json!("sora"), json!("RUNWAY"), json!(""), json!(1), json!(["local"])]),
        ("style_preset", vec![json!(null), json!(""), json!("s".repeat(51)), json!(3)]),
        ("project", vec![json!(0), json!(-3), json!("abc"), json!(1.5), json!([1]), json!(true)]),
    ];
    for (field, values) in corpus {
        for value in values {
            let mut body = json!({"title": "valid"});
            body[field] = value.clone();
            let created = app.post(STORIES, "alice", body.clone()).await;
            assert_eq!(created.status, StatusCode::BAD_REQUEST, "POST {field}={value}");
            assert!(created.body.get(field).is_some(), "POST {field}={value}: {}", created.body);
            assert_eq!(created.body["code"], "invalid");
            let mut patch = json!({});
            patch[field] = value.clone();
            let patched = app.patch(&story_path(&id, ""), "alice", patch).await;
            if field == "project" && value.is_null() {
                continue;
            }
            assert_eq!(patched.status, StatusCode::BAD_REQUEST, "PATCH {field}={value}");
            assert!(patched.body.get(field).is_some(), "PATCH {field}={value}: {}", patched.body);
        }
    }
    let list = app.get(STORIES, "alice").await;
    assert_eq!(list.body["results"].as_array().unwrap().len(), 1, "no bad request created a story");
    assert_eq!(list.body["results"][0]["version"], 1, "no bad request changed the story");
    for body in [
        json!({"to": null}),
        json!({"to": 3}),
        json!({"to": "planning"}),
        json!({"to": "PLANNING", "reason": 5}),
        json!({"to": "FAILED", "reason": "r".repeat(1001)}),
    ] {
        let reply = app.post(&story_path(&id, "transition/"), "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
}
