//! `generate-prompts` with the LLM writer, against a local server that speaks the OpenAI-compatible
//! chat-completions protocol: success, API errors with their bodies, 429 with `Retry-After`,
//! malformed answers. Whatever the LLM does, the story gets prompts; the answer says who wrote them.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use shared::config::LlmConfig;
use support::TestApp;

const KEY: &str = "test-llm-key";

#[derive(Clone, Default)]
struct Seen {
    calls: Arc<AtomicUsize>,
    last: Arc<std::sync::Mutex<Option<Value>>>,
}

fn api_error(status: StatusCode, message: &str, kind: &str, code: Value) -> Response {
    (status, Json(json!({"error": {"message": message, "type": kind, "param": null, "code": code}}))).into_response()
}

fn completion(content: &str) -> Response {
    Json(json!({
        "id": "chatcmpl-test", "object": "chat.completion", "created": 1, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
    }))
    .into_response()
}

/// Writes one prompt per scene order found in the request, as a real model asked for JSON would.
fn good_content(request: &Value) -> String {
    let user: Value = serde_json::from_str(request["messages"][1]["content"].as_str().unwrap()).unwrap();
    let prompts: Vec<Value> = user["scenes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| json!({"order": s["order"], "text": format!("LLM prompt for scene {} of {}", s["order"], user["story"]["title"].as_str().unwrap())}))
        .collect();
    json!({"prompts": prompts}).to_string()
}

async fn chat(State(seen): State<Seen>, headers: HeaderMap, Json(request): Json<Value>) -> Response {
    let call = seen.calls.fetch_add(1, Ordering::SeqCst);
    *seen.last.lock().unwrap() = Some(request.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bearer {KEY}")) {
        return api_error(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided",
            "invalid_request_error",
            json!("invalid_api_key"),
        );
    }
    match request["model"].as_str().unwrap_or("") {
        "good" => completion(&good_content(&request)),
        "server-error" => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The server had an error while processing your request",
            "server_error",
            Value::Null,
        ),
        "rate-limited" if call == 0 => {
            let mut r = api_error(
                StatusCode::TOO_MANY_REQUESTS,
                "Rate limit reached",
                "requests",
                json!("rate_limit_exceeded"),
            );
            r.headers_mut().insert("retry-after", "1".parse().unwrap());
            r
        }
        "rate-limited" => completion(&good_content(&request)),
        "garbage" => completion("Sure! Here are some prompts: ..."),
        "missing" => completion(r#"{"prompts": [{"order": 0, "text": "only one"}]}"#),
        "not-a-completion" => (StatusCode::OK, "{\"hello\":").into_response(),
        other => api_error(
            StatusCode::NOT_FOUND,
            &format!("The model `{other}` does not exist"),
            "invalid_request_error",
            json!("model_not_found"),
        ),
    }
}

async fn llm_server() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new().route("/v1/chat/completions", post(chat)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/v1"), seen)
}

async fn app_with_llm(base_url: &str, model: &str, key: &str) -> TestApp {
    // A fresh secret name per app: on the aws backend, Secrets Manager is shared by the tests.
    let secret = format!("TEST_LLM_KEY_{}", ulid::Ulid::new());
    let llm = LlmConfig { base_url: base_url.to_owned(), model: model.to_owned(), api_key_secret: secret.clone() };
    TestApp::with(&[(&secret, key)], move |config| config.llm = Some(llm)).await
}

async fn generate(app: &TestApp, body: Value) -> (Value, String) {
    let story = app.create_story("alice", json!({"title": "Fox", "duration_seconds": 10})).await;
    let bulk =
        app.post(&format!("/api/ai-video/stories/{story}/scenes/bulk/"), "alice", json!({"scene_count": 4})).await;
    assert_eq!(bulk.status, StatusCode::CREATED);
    let reply = app.post(&format!("/api/ai-video/stories/{story}/generate-prompts/"), "alice", body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    (reply.body, story)
}

#[tokio::test]
async fn the_llm_writes_the_prompts_when_configured() {
    let (url, seen) = llm_server().await;
    let app = app_with_llm(&url, "good", KEY).await;
    let (body, story) = generate(&app, json!({})).await;
    assert_eq!(body["writer"], "llm");
    assert_eq!(body["llm_error"], Value::Null);
    let prompts = body["prompts"].as_array().unwrap();
    assert_eq!(prompts.len(), 4);
    assert_eq!(prompts[2]["text"], "LLM prompt for scene 2 of Fox");
    assert!(prompts.iter().all(|p| p["is_selected"] == true));
    // The request follows the protocol.
    let request = seen.last.lock().unwrap().clone().unwrap();
    assert_eq!(request["model"], "good");
    assert_eq!(request["messages"][0]["role"], "system");
    assert_eq!(request["messages"][1]["role"], "user");
    assert_eq!(request["response_format"]["type"], "json_object");
    let selected = app.get(&format!("/api/ai-video/prompts/?story={story}&is_selected=true"), "alice").await;
    assert!(
        selected.body["results"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["text"].as_str().unwrap().starts_with("LLM prompt"))
    );
    // The template can still be asked for by name.
    let (template, _) = generate(&app, json!({"writer": "template"})).await;
    assert_eq!(template["writer"], "template");
}

#[tokio::test]
async fn when_the_llm_fails_the_template_prompts_stand_and_the_answer_says_why() {
    let (url, _) = llm_server().await;
    for (model, key, expected) in [
        ("server-error", KEY, "500"),
        ("garbage", KEY, "not the JSON asked for"),
        ("missing", KEY, "no prompt for the scene at order 1"),
        ("not-a-completion", KEY, "not a chat completion"),
        ("no-such-model", KEY, "does not exist"),
        ("good", "wrong-key", "Incorrect API key provided"),
    ] {
        let app = app_with_llm(&url, model, key).await;
        let (body, _) = generate(&app, json!({})).await;
        assert_eq!(body["writer"], "template", "{model}");
        let error = body["llm_error"].as_str().unwrap_or_default();
        assert!(error.contains(expected), "{model}: {error}");
        let prompts = body["prompts"].as_array().unwrap();
        assert_eq!(prompts.len(), 4, "{model}");
        assert!(prompts[0]["text"].as_str().unwrap().starts_with("Opening scene"), "{model}");
    }
}

#[tokio::test]
async fn a_429_is_retried_once_after_retry_after() {
    let (url, seen) = llm_server().await;
    let app = app_with_llm(&url, "rate-limited", KEY).await;
    let (body, _) = generate(&app, json!({})).await;
    assert_eq!(body["writer"], "llm", "{}", body);
    assert_eq!(seen.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_unreachable_llm_falls_back_to_the_template() {
    // A port nobody listens on (bound, then closed).
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let app = app_with_llm(&format!("http://127.0.0.1:{port}/v1"), "good", KEY).await;
    let (body, _) = generate(&app, json!({})).await;
    assert_eq!(body["writer"], "template");
    assert!(body["llm_error"].as_str().unwrap().contains("could not reach"), "{}", body);
}
