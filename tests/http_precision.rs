//! SPEC §8.1 through the real router: `If-Match` as RFC 9110 defines it, tokens that are not valid
//! yet, and hosts the operator did not allow.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::json;
use support::{API, Reply, SECRET, TestApp, token};
use tower::ServiceExt;

#[tokio::test]
async fn if_match_takes_any_entity_tag_list_and_only_garbage_is_400() {
    let app = TestApp::new().await;
    let id = app.create_story("alice", json!({"title": "Tagged"})).await;
    let path = format!("{API}/stories/{id}/");
    let patch = |tag: &'static str| {
        let path = path.clone();
        let app = &app;
        async move { app.send(Method::PATCH, &path, Some("alice"), Some(r#"{"title": "x"}"#), &[("if-match", tag)]).await }
    };
    for stale in ["\"stale-value\"", "W/\"1\"", "\"2\", \"7\"", "\"\""] {
        let reply = patch(stale).await;
        assert_eq!(reply.status, StatusCode::PRECONDITION_FAILED, "{stale}: {}", reply.body);
        assert_eq!(reply.body["code"], "precondition_failed");
        assert_eq!(reply.body["current_version"], 1);
    }
    for garbage in ["yesterday", "1", "\"1", "\"1\";"] {
        let reply = patch(garbage).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{garbage}: {}", reply.body);
        assert!(reply.body.get("If-Match").is_some());
    }
    assert_eq!(patch("W/\"9\", \"1\"").await.status, StatusCode::OK, "a list matches when its strong tag does");
    assert_eq!(patch("*").await.status, StatusCode::OK, "* matches any existing story");
    let reply = app.get(&path, "alice").await;
    assert_eq!(reply.body["version"], 3, "two writes landed, none of the refused ones");
}

#[tokio::test]
async fn a_token_not_valid_yet_is_refused_on_reads_and_writes() {
    let app = TestApp::new().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: serde_json::Value| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    };
    for claims in [
        json!({"sub": "alice", "exp": now + 7200, "nbf": now + 3600}),
        json!({"sub": "alice", "exp": now + 7200, "iat": now + 3600}),
    ] {
        let bearer = format!("Bearer {}", sign(claims.clone()));
        for (method, body) in [(Method::GET, None), (Method::POST, Some(r#"{"title": "Early"}"#))] {
            let reply =
                app.send(method.clone(), &format!("{API}/stories/"), None, body, &[("authorization", &bearer)]).await;
            assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{claims} {method}: {}", reply.body);
            assert_eq!(reply.body["code"], "authentication_failed");
        }
    }
    let listed = app.get(&format!("{API}/stories/"), "alice").await;
    assert_eq!(listed.body["results"].as_array().unwrap().len(), 0, "nothing was written");
}

/// A request as alice naming `host` (the test app's own requests name `testserver`).
async fn as_host(app: &TestApp, method: Method, path: &str, host: &str, body: Option<&str>) -> Reply {
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", host)
        .header("authorization", format!("Bearer {}", token("alice")))
        .header("content-type", "application/json")
        .body(Body::from(body.unwrap_or("").to_owned()))
        .unwrap();
    support::reply(app.router.clone().oneshot(request).await.unwrap()).await
}

#[tokio::test]
async fn a_host_the_operator_did_not_allow_is_400_and_never_appears_in_a_link() {
    let app = TestApp::new().await;
    for i in 0..3 {
        app.create_story("alice", json!({"title": format!("S{i}")})).await;
    }
    let evil = as_host(&app, Method::GET, &format!("{API}/stories/?page_size=1"), "evil.example", None).await;
    assert_eq!(evil.status, StatusCode::BAD_REQUEST, "{}", evil.body);
    assert_eq!(evil.body["code"], "disallowed_host");
    let write =
        as_host(&app, Method::POST, &format!("{API}/stories/"), "evil.example:80", Some(r#"{"title": "x"}"#)).await;
    assert_eq!(write.status, StatusCode::BAD_REQUEST);
    let local = as_host(&app, Method::GET, &format!("{API}/stories/?page_size=1"), "localhost:3000", None).await;
    assert_eq!(local.status, StatusCode::OK);
    assert!(local.body["next"].as_str().unwrap().starts_with("http://localhost:3000/api/ai-video/stories/"));
    let listed = app.get(&format!("{API}/stories/?page_size=100"), "alice").await;
    assert_eq!(listed.body["results"].as_array().unwrap().len(), 3, "the refused write wrote nothing");
}
