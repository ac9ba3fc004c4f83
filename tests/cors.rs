//! SPEC §8.4: browsers on an allowed origin may call the API; no other origin gets an
//! `Access-Control-Allow-*` header. Plus what a newcomer's browser meets first: the API's root and
//! the console.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::json;
use support::{Reply, TestApp};

const ALLOWED: &str = "http://127.0.0.1:5173";
const OTHER: &str = "http://127.0.0.1:5174";
const STORY: &str = "01JCZ5T8Y9E6K3W7QX4M2N1P0R";

async fn app_allowing(origins: &[&str]) -> TestApp {
    let origins: Vec<String> = origins.iter().map(|o| (*o).to_owned()).collect();
    TestApp::with(&[], move |c| c.cors_origins = origins).await
}

/// One path of each route group, the API's own documents, and a path that matches no route.
fn paths() -> Vec<String> {
    [
        "/api/ai-video/stories/".to_owned(),
        format!("/api/ai-video/stories/{STORY}/generate_preview/"),
        format!("/api/ai-video/scenes/{STORY}/"),
        "/api/ai-video/prompts/".to_owned(),
        format!("/api/ai-video/jobs/{STORY}/retry/"),
        "/api/ai-video/providers/".to_owned(),
        "/api/ai-video/openapi.json".to_owned(),
        "/api/ai-video/".to_owned(),
        "/api/ai-video/no-such-route/".to_owned(),
    ]
    .into()
}

async fn preflight(app: &TestApp, path: &str, origin: &str, method: &str) -> Reply {
    app.send(
        Method::OPTIONS,
        path,
        None,
        None,
        &[
            ("origin", origin),
            ("access-control-request-method", method),
            ("access-control-request-headers", "authorization, content-type, idempotency-key"),
        ],
    )
    .await
}

fn header<'a>(reply: &'a Reply, name: &str) -> Option<&'a str> {
    reply.headers.get(name).map(|v| v.to_str().unwrap())
}

fn cors_headers(reply: &Reply) -> Vec<String> {
    reply.headers.keys().map(|k| k.as_str().to_owned()).filter(|k| k.starts_with("access-control-")).collect()
}

#[tokio::test]
async fn an_allowed_origins_preflight_gets_204_with_exactly_the_listed_headers_on_every_route_group() {
    let app = app_allowing(&[ALLOWED, "https://app.example.com"]).await;
    for path in paths() {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let reply = preflight(&app, &path, ALLOWED, method).await;
            assert_eq!(reply.status, StatusCode::NO_CONTENT, "{method} {path}: {:?}", reply.body);
            assert_eq!(header(&reply, "access-control-allow-origin"), Some(ALLOWED), "{path}");
            assert_eq!(header(&reply, "access-control-allow-methods"), Some("GET, POST, PUT, PATCH, DELETE"));
            assert_eq!(
                header(&reply, "access-control-allow-headers"),
                Some("Authorization, Content-Type, If-Match, Idempotency-Key")
            );
            assert_eq!(header(&reply, "access-control-max-age"), Some("600"));
            assert_eq!(header(&reply, "vary"), Some("Origin"));
            assert_eq!(header(&reply, "access-control-allow-credentials"), None, "no credentials mode");
        }
    }
}

#[tokio::test]
async fn a_disallowed_origin_gets_no_access_control_header_at_all() {
    let app = app_allowing(&[ALLOWED]).await;
    for path in paths() {
        let reply = preflight(&app, &path, OTHER, "POST").await;
        assert_ne!(reply.status, StatusCode::NO_CONTENT, "{path}");
        assert!(cors_headers(&reply).is_empty(), "{path}: {:?}", reply.headers);
        let reply = app.send(Method::GET, &path, Some("ann"), None, &[("origin", OTHER)]).await;
        assert!(cors_headers(&reply).is_empty(), "{path}: {:?}", reply.headers);
    }
    // Origins are compared exactly: scheme, host and port.
    for near in ["https://127.0.0.1:5173", "http://localhost:5173", "http://127.0.0.1:51730", "http://127.0.0.1:5173/"]
    {
        let reply = preflight(&app, "/api/ai-video/stories/", near, "GET").await;
        assert!(cors_headers(&reply).is_empty(), "{near}");
    }
}

#[tokio::test]
async fn without_configured_origins_no_origin_is_allowed() {
    let app = TestApp::new().await;
    let reply = preflight(&app, "/api/ai-video/stories/", ALLOWED, "GET").await;
    assert!(cors_headers(&reply).is_empty());
    let reply = app.send(Method::GET, "/api/ai-video/stories/", Some("ann"), None, &[("origin", ALLOWED)]).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(cors_headers(&reply).is_empty());
}

/// The answers themselves, success and error alike, carry the origin and the headers a page reads
/// (a page that cannot read `ETag` cannot send `If-Match`).
#[tokio::test]
async fn answers_to_an_allowed_origin_expose_etag_location_replay_and_retry_after() {
    let app = app_allowing(&[ALLOWED]).await;
    let origin = [("origin", ALLOWED)];
    let body = json!({"title": "A fox", "description": "in the snow"}).to_string();
    let keyed = [("origin", ALLOWED), ("idempotency-key", "cors-create-1")];
    let created = app.send(Method::POST, "/api/ai-video/stories/", Some("ann"), Some(&body), &keyed).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.body["id"].as_str().unwrap().to_owned();
    let replayed = app.send(Method::POST, "/api/ai-video/stories/", Some("ann"), Some(&body), &keyed).await;
    assert_eq!(header(&replayed, "idempotent-replayed"), Some("true"));
    let read = app.send(Method::GET, &format!("/api/ai-video/stories/{id}/"), Some("ann"), None, &origin).await;
    let unauthenticated = app.send(Method::GET, "/api/ai-video/jobs/", None, None, &origin).await;
    assert_eq!(unauthenticated.status, StatusCode::UNAUTHORIZED);
    let missing = app.send(Method::GET, &format!("/api/ai-video/scenes/{STORY}/"), Some("ann"), None, &origin).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for reply in [&created, &replayed, &read, &unauthenticated, &missing] {
        assert_eq!(header(reply, "access-control-allow-origin"), Some(ALLOWED), "{reply:?}");
        assert_eq!(
            header(reply, "access-control-expose-headers"),
            Some("ETag, Location, Idempotent-Replayed, Retry-After"),
            "{reply:?}"
        );
        assert_eq!(header(reply, "vary"), Some("Origin"));
    }
}

#[tokio::test]
async fn the_api_root_lists_its_route_groups_like_drfs_router() {
    let app = TestApp::new().await;
    for path in ["/api/ai-video/", "/api/ai-video"] {
        let reply = app.send(Method::GET, path, None, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        assert_eq!(
            reply.body,
            json!({
                "stories": "http://testserver/api/ai-video/stories/",
                "scenes": "http://testserver/api/ai-video/scenes/",
                "prompts": "http://testserver/api/ai-video/prompts/",
                "jobs": "http://testserver/api/ai-video/jobs/",
                "providers": "http://testserver/api/ai-video/providers/",
                "usage": "http://testserver/api/ai-video/usage/",
                "events": "http://testserver/api/ai-video/events/",
                "openapi": "http://testserver/api/ai-video/openapi.json",
            })
        );
    }
}

#[tokio::test]
async fn the_console_is_served_at_the_root_with_its_own_files_only() {
    let app = TestApp::new().await;
    let root = app.send(Method::GET, "/", None, None, &[]).await;
    assert!(root.status.is_redirection());
    assert_eq!(header(&root, "location"), Some("/console/"));
    let page = app.send(Method::GET, "/console/", None, None, &[]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(header(&page, "content-type"), Some("text/html; charset=utf-8"));
    assert!(header(&page, "content-security-policy").unwrap().contains("script-src 'self'"));
    for (file, kind) in [("app.js", "text/javascript"), ("api.js", "text/javascript"), ("style.css", "text/css")] {
        let reply = app.send(Method::GET, &format!("/console/{file}"), None, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK, "{file}");
        assert!(header(&reply, "content-type").unwrap().starts_with(kind), "{file}");
    }
    for other in ["/console/../Cargo.toml", "/console/api.d.ts", "/console/%2e%2e%2fCargo.toml", "/console/x.html"] {
        let reply = app.send(Method::GET, other, None, None, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{other}");
    }
}

/// On the embedded backend at a loopback address, the console can get a token for a user name; the
/// API accepts it. Bad names are field errors.
#[tokio::test]
async fn the_console_gets_a_local_token_the_api_accepts() {
    let app = TestApp::with_backend("embedded", &[], |_| {}).await;
    let reply = app.send(Method::POST, "/console/token", None, Some(r#"{"user": "alice"}"#), &[]).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let token = reply.body["token"].as_str().unwrap().to_owned();
    let bearer = format!("Bearer {token}");
    let listed = app.send(Method::GET, "/api/ai-video/stories/", None, None, &[("authorization", &bearer)]).await;
    assert_eq!(listed.status, StatusCode::OK, "{:?}", listed.body);
    for bad in [r#"{"user": ""}"#, r#"{"user": "system"}"#, r#"{"name": "x"}"#, "not json", r#"{"user": 5}"#] {
        let reply = app.send(Method::POST, "/console/token", None, Some(bad), &[]).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(reply.body["user"].is_array(), "{bad}: {:?}", reply.body);
    }
}

#[tokio::test]
async fn the_console_offers_no_local_tokens_beyond_loopback() {
    let app = TestApp::with_backend("embedded", &[], |c| c.addr = "0.0.0.0:3000".parse().unwrap()).await;
    let reply = app.send(Method::POST, "/console/token", None, Some(r#"{"user": "alice"}"#), &[]).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
}
