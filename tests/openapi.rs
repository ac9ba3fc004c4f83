//! The OpenAPI document served at `/api/ai-video/openapi.json` describes what the API really
//! answers: a story is taken from creation through a rendered preview (media links, jobs with
//! results, figures), with errors on the way, and every answer's status must be documented for its
//! operation, its body must validate against the documented schema (every object is closed, so a
//! field a view adds without its schema fails here), and documented headers must be present.
//! schemathesis (in the test command) fuzzes the requests; this walks the states it cannot reach.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API, Reply, TestApp};

struct Contract {
    document: Value,
}

impl Contract {
    async fn fetch(app: &TestApp) -> Contract {
        // No token: the description is public.
        let reply = app.send(Method::GET, &format!("{API}/openapi.json"), None, None, &[]).await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["openapi"], "3.1.0");
        Contract { document: reply.body }
    }

    /// Checks `reply` against operation `method template` of the document; returns the body.
    fn check(&self, method: &str, template: &str, reply: &Reply) -> Value {
        let path = format!("{API}{template}");
        let operation = &self.document["paths"][&path][method.to_lowercase()];
        assert!(operation.is_object(), "{method} {path} is not documented");
        let status = reply.status.as_u16().to_string();
        let response = &operation["responses"][&status];
        assert!(response.is_object(), "{method} {path} answered {status}, which it does not document: {}", reply.body);
        if let Some(headers) = response["headers"].as_object() {
            for (name, header) in headers {
                if header["required"] == true {
                    assert!(reply.headers.contains_key(name.as_str()), "{method} {path} {status}: no {name} header");
                }
            }
        }
        match response["content"]["application/json"]["schema"].as_object() {
            Some(schema) => {
                self.validate(&Value::Object(schema.clone()), &reply.body, &format!("{method} {path} {status}"))
            }
            None => assert!(reply.body.is_null(), "{method} {path} {status} has an undocumented body"),
        }
        reply.body.clone()
    }

    fn validate(&self, schema: &Value, instance: &Value, what: &str) {
        let mut root = schema.clone();
        root["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        root["components"] = self.document["components"].clone();
        let validator =
            jsonschema::validator_for(&root).unwrap_or_else(|e| panic!("{what}: the schema does not compile: {e}"));
        let errors: Vec<String> =
            validator.iter_errors(instance).map(|e| format!("{} at {}", e, e.instance_path())).collect();
        assert!(
            errors.is_empty(),
            "{what}: the answer does not match its schema:\n{}\n{instance:#}",
            errors.join("\n")
        );
    }
}

#[tokio::test]
async fn a_story_from_creation_to_preview_answers_as_the_document_says() {
    let app = TestApp::with_quick_worker().await;
    let c = Contract::fetch(&app).await;
    let send = |method: Method, path: String, user: Option<&'static str>, body: Option<Value>| {
        let app = &app;
        async move { app.send(method, &path, user, body.map(|b| b.to_string()).as_deref(), &[]).await }
    };

    // Stories.
    let story = json!({"title": "Lighthouse", "description": "A keeper and a storm.", "duration_seconds": 6,
                       "fps": 24, "resolution": "640x360", "ai_provider": "local", "project": 7});
    let created = send(Method::POST, format!("{API}/stories/"), Some("alice"), Some(story)).await;
    let id = c.check("POST", "/stories/", &created)["id"].as_str().unwrap().to_owned();
    c.check("GET", "/stories/", &app.get(&format!("{API}/stories/?ordering=created_at&page_size=1"), "alice").await);
    c.check("GET", "/stories/{id}/", &app.get(&format!("{API}/stories/{id}/"), "alice").await);
    let patched = app.patch(&format!("{API}/stories/{id}/"), "alice", json!({"style_preset": "noir"})).await;
    c.check("PATCH", "/stories/{id}/", &patched);
    let put = json!({"title": "Lighthouse", "duration_seconds": 6, "fps": 24, "resolution": "640x360"});
    c.check(
        "PUT",
        "/stories/{id}/",
        &send(Method::PUT, format!("{API}/stories/{id}/"), Some("alice"), Some(put)).await,
    );

    // Errors, each in the error schema and documented for its operation.
    let invalid = send(Method::POST, format!("{API}/stories/"), Some("alice"), Some(json!({"fps": 0}))).await;
    assert_eq!(invalid.status, StatusCode::BAD_REQUEST);
    c.check("POST", "/stories/", &invalid);
    let broken = app.send(Method::POST, &format!("{API}/stories/"), Some("alice"), Some("{"), &[]).await;
    assert_eq!(c.check("POST", "/stories/", &broken)["code"], "parse_error");
    let anonymous = app.send(Method::GET, &format!("{API}/stories/{id}/"), None, None, &[]).await;
    assert_eq!(c.check("GET", "/stories/{id}/", &anonymous)["code"], "not_authenticated");
    c.check("GET", "/stories/{id}/", &app.get(&format!("{API}/stories/{id}/"), "bob").await);
    let stale = app
        .send(Method::PATCH, &format!("{API}/stories/{id}/"), Some("alice"), Some("{}"), &[("if-match", "\"1\"")])
        .await;
    assert_eq!(c.check("PATCH", "/stories/{id}/", &stale)["code"], "precondition_failed");
    let cursor = app.get(&format!("{API}/stories/?cursor=nope"), "alice").await;
    assert_eq!(c.check("GET", "/stories/", &cursor)["code"], "not_found");
    let refused = app.transition(&id, "alice", "COMPLETED").await;
    assert_eq!(c.check("POST", "/stories/{id}/transition/", &refused)["code"], "invalid_transition");

    // Planning.
    let bulk = app.post(&format!("{API}/stories/{id}/scenes/bulk/"), "alice", json!({"scene_count": 3})).await;
    let plan = c.check("POST", "/stories/{id}/scenes/bulk/", &bulk);
    let scene = plan["scenes"][1]["id"].as_str().unwrap().to_owned();
    let prompt = plan["scenes"][1]["prompts"][0]["id"].as_str().unwrap().to_owned();
    let generated = app.post(&format!("{API}/stories/{id}/generate-prompts/"), "alice", json!({})).await;
    c.check("POST", "/stories/{id}/generate-prompts/", &generated);
    c.check("GET", "/scenes/", &app.get(&format!("{API}/scenes/?story={id}&ordering=-order"), "alice").await);
    c.check("GET", "/scenes/{id}/", &app.get(&format!("{API}/scenes/{scene}/"), "alice").await);
    c.check(
        "PATCH",
        "/scenes/{id}/",
        &app.patch(&format!("{API}/scenes/{scene}/"), "alice", json!({"title": "Storm"})).await,
    );
    let reorder = app.post(&format!("{API}/scenes/{scene}/reorder/"), "alice", json!({"order": 1})).await;
    c.check("POST", "/scenes/{id}/reorder/", &reorder);
    c.check("GET", "/prompts/", &app.get(&format!("{API}/prompts/?scene={scene}&is_selected=false"), "alice").await);
    c.check("GET", "/prompts/{id}/", &app.get(&format!("{API}/prompts/{prompt}/"), "alice").await);
    let extra = app
        .post(
            &format!("{API}/prompts/"),
            "alice",
            json!({"scene": scene, "text": "Waves", "prompt_type": "narration", "parameters": {"seed": 3}}),
        )
        .await;
    let extra = c.check("POST", "/prompts/", &extra)["id"].as_str().unwrap().to_owned();
    c.check(
        "POST",
        "/prompts/{id}/select/",
        &app.post(&format!("{API}/prompts/{extra}/select/"), "alice", json!({})).await,
    );
    let planned = app.transition(&id, "alice", "PLANNED").await;
    c.check("POST", "/stories/{id}/transition/", &planned);
    c.check("POST", "/stories/{id}/lock/", &app.post(&format!("{API}/stories/{id}/lock/"), "alice", json!({})).await);
    let locked_edit = app.patch(&format!("{API}/scenes/{scene}/"), "alice", json!({"title": "No"})).await;
    assert_eq!(c.check("PATCH", "/scenes/{id}/", &locked_edit)["code"], "locked");
    c.check(
        "POST",
        "/stories/{id}/unlock/",
        &app.post(&format!("{API}/stories/{id}/unlock/"), "alice", json!({})).await,
    );
    c.check(
        "GET",
        "/stories/{id}/transitions/",
        &app.get(&format!("{API}/stories/{id}/transitions/?ordering=-at"), "alice").await,
    );
    c.check(
        "GET",
        "/stories/{id}/cost_estimate/",
        &app.get(&format!("{API}/stories/{id}/cost_estimate/"), "alice").await,
    );

    // Rendering: jobs, media links, figures.
    let preview = app.post(&format!("{API}/stories/{id}/generate_preview/"), "alice", json!({"quality": "low"})).await;
    let accepted = c.check("POST", "/stories/{id}/generate_preview/", &preview);
    let job = accepted["jobs"][0]["id"].as_str().unwrap().to_owned();
    app.work_until(&app.worker, 1, &id, "PREVIEW_READY").await;
    let story = c.check("GET", "/stories/{id}/", &app.get(&format!("{API}/stories/{id}/"), "alice").await);
    assert!(story["preview"]["url"].is_string(), "the preview has a link: {story}");
    let jobs = c.check("GET", "/jobs/", &app.get(&format!("{API}/jobs/?story={id}&status=succeeded"), "alice").await);
    assert!(jobs["results"].as_array().unwrap().iter().any(|j| j["result"]["url"].is_string()), "{jobs}");
    c.check(
        "GET",
        "/stories/{id}/jobs/",
        &app.get(&format!("{API}/stories/{id}/jobs/?kind=preview_compose"), "alice").await,
    );
    c.check("GET", "/jobs/{id}/", &app.get(&format!("{API}/jobs/{job}/"), "alice").await);
    let retry_done = app.post(&format!("{API}/jobs/{job}/retry/"), "alice", json!({})).await;
    c.check("POST", "/jobs/{id}/retry/", &retry_done);
    let cancel_done = app.post(&format!("{API}/jobs/{job}/cancel/"), "alice", json!({})).await;
    c.check("POST", "/jobs/{id}/cancel/", &cancel_done);
    c.check("GET", "/jobs/statistics/", &app.get(&format!("{API}/jobs/statistics/"), "alice").await);
    c.check("GET", "/stories/statistics/", &app.get(&format!("{API}/stories/statistics/"), "alice").await);
    let test = app.post(&format!("{API}/prompts/{prompt}/test/"), "alice", json!({"priority": "high"})).await;
    c.check("POST", "/prompts/{id}/test/", &test);
    let generate = app.post(&format!("{API}/scenes/{scene}/generate/"), "alice", json!({})).await;
    c.check("POST", "/scenes/{id}/generate/", &generate);
    let final_render =
        app.post(&format!("{API}/stories/{id}/render_final/"), "alice", json!({"output_format": "webm"})).await;
    c.check("POST", "/stories/{id}/render_final/", &final_render);

    // Deletes.
    let other = app.create_story("alice", json!({"title": "Short-lived"})).await;
    c.check(
        "DELETE",
        "/stories/{id}/",
        &send(Method::DELETE, format!("{API}/stories/{other}/"), Some("alice"), None).await,
    );
    c.check(
        "DELETE",
        "/stories/{id}/",
        &send(Method::DELETE, format!("{API}/stories/{other}/"), Some("alice"), None).await,
    );

    // Providers: users see prices, admins the secret names too; writes are the admins'.
    c.check("GET", "/providers/", &app.get(&format!("{API}/providers/"), "alice").await);
    c.check("GET", "/providers/", &app.get(&format!("{API}/providers/"), "admin-ann").await);
    c.check("GET", "/providers/{provider}/", &app.get(&format!("{API}/providers/runway/"), "admin-ann").await);
    let forbidden = app.post(&format!("{API}/providers/runway/disable/"), "alice", json!({})).await;
    assert_eq!(c.check("POST", "/providers/{provider}/disable/", &forbidden)["code"], "permission_denied");
    c.check(
        "POST",
        "/providers/{provider}/disable/",
        &app.post(&format!("{API}/providers/runway/disable/"), "admin-ann", json!({})).await,
    );
    c.check(
        "POST",
        "/providers/{provider}/enable/",
        &app.post(&format!("{API}/providers/runway/enable/"), "admin-ann", json!({})).await,
    );
    let patch = app.patch(&format!("{API}/providers/runway/"), "admin-ann", json!({"rate_limit_per_minute": 30})).await;
    c.check("PATCH", "/providers/{provider}/", &patch);
}

#[test]
fn every_error_code_is_in_the_document() {
    use shared::Error;
    use shared::domain::state_machine::StoryStatus;
    use shared::http::error::ApiError;
    let document = shared::http::openapi::document(false);
    let codes = &document["components"]["schemas"]["Error"]["properties"]["code"]["enum"];
    let errors: Vec<ApiError> = vec![
        Error::field("title", "x").into(),
        ApiError::MalformedJson("x".into()),
        Error::NotAuthenticated.into(),
        Error::InvalidToken("x".into()).into(),
        Error::Forbidden("x".into()).into(),
        Error::NotFound.into(),
        ApiError::InvalidCursor,
        ApiError::MethodNotAllowed("x".into()),
        Error::InvalidTransition { detail: "x".into(), current_status: StoryStatus::Draft }.into(),
        Error::Locked { detail: "x".into(), current_status: StoryStatus::Draft }.into(),
        Error::Conflict { detail: "x".into(), current_status: None }.into(),
        ApiError::IdempotencyInProgress,
        Error::VersionMismatch { current_version: 1 }.into(),
        ApiError::PayloadTooLarge { limit: 1 },
        ApiError::UnsupportedMediaType("x".into()),
        ApiError::IdempotencyKeyReused,
        Error::internal("x").into(),
        Error::unavailable(1, "x", std::io::Error::other("busy")).into(),
    ];
    for error in errors {
        let (_, code) = shared::http::error::status_and_code(&error);
        assert!(codes.as_array().unwrap().contains(&json!(code)), "{code} is not in the document");
    }
}

#[test]
fn the_llm_writer_is_offered_only_where_one_is_configured() {
    let writers = |llm| {
        shared::http::openapi::document(llm)["components"]["schemas"]["GeneratePrompts"]["properties"]["writer"]["enum"]
            .clone()
    };
    assert_eq!(writers(false), json!(["template"]));
    assert_eq!(writers(true), json!(["template", "llm"]));
}

#[test]
fn request_and_response_schemas_do_not_share_a_name() {
    let document = shared::http::openapi::document(true);
    let schemas = document["components"]["schemas"].as_object().unwrap();
    let responses = shared::http::views::schemas();
    for name in responses.keys() {
        assert_eq!(&schemas[name], &responses[name], "{name} is both a request and a response schema");
    }
}
