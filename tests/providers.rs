//! Each AI provider's real client, driven by the real worker against a local server that speaks
//! the provider's protocol (`tests/provider_fakes`): a preview renders through every provider;
//! moderation refusals fail the story at once; ordinary failures, 429s with `Retry-After`, 500s
//! and malformed answers are retried; a missing key says which secret to set; slow answers time
//! out. Only loopback is contacted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod provider_fakes;
mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use provider_fakes::{API_KEY, Delivery, Fake, Provider, Script};
use serde_json::{Value, json};
use shared::adapters::providers::{ProviderSettings, RunwayProvider, WirePolicy};
use shared::domain::values::AiProvider;
use shared::ports::SecretSource;
use support::{API, TestApp, planned_story, previewing_story};

/// The providers that still render (Stability AI retired its video API: see
/// `stability_ai_is_refused_at_render_start_with_the_alternative_and_nothing_is_called`).
const ALL: [Provider; 5] = [Provider::Runway, Provider::Luma, Provider::Veo, Provider::Replicate, Provider::Fal];

/// The product's name of a fake's provider, and the secret its key is read from.
fn names(provider: Provider) -> (AiProvider, &'static str) {
    match provider {
        Provider::Runway => (AiProvider::Runway, "RUNWAY_API_KEY"),
        Provider::Luma => (AiProvider::Luma, "LUMA_API_KEY"),
        Provider::Veo => (AiProvider::Veo, "GEMINI_API_KEY"),
        Provider::Replicate => (AiProvider::Replicate, "REPLICATE_API_TOKEN"),
        Provider::Fal => (AiProvider::Fal, "FAL_KEY"),
        Provider::Stability => (AiProvider::StabilityAi, "STABILITY_API_KEY"),
    }
}

/// An app whose `provider` client talks to `fake`, with the fake's key in the secrets (or not).
async fn app_for(provider: Provider, fake: &Fake, with_key: bool) -> TestApp {
    let (name, secret) = names(provider);
    let secrets: Vec<(&str, &str)> = if with_key { vec![(secret, API_KEY)] } else { vec![] };
    let base = fake.base_url();
    let app = TestApp::with_backend("embedded", &secrets, |c| {
        c.worker.poll_ms = 50;
        c.worker.lease_seconds = 5;
        c.provider_base_urls.insert(name, base);
        c.allow_loopback_downloads = true;
    })
    .await;
    // Replicate is off in the seed (no model, no published per-second price); an admin switches
    // it on with a model.
    let model = if provider == Provider::Replicate { json!({"model": "minimax/video-01"}) } else { json!({}) };
    let mut patch = model;
    patch["enabled"] = json!(true);
    let reply = app.patch(&format!("{API}/providers/{name}/"), "admin-ann", patch).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    app
}

/// A 5 s, 12 fps, 256x144 story on `provider`.
fn harbour(provider: AiProvider) -> Value {
    json!({"title": "Harbour", "duration_seconds": 5, "fps": 12, "resolution": "256x144", "ai_provider": provider})
}

/// A fake `provider` following `script`, an app whose client talks to it (with its key), and a
/// three-scene story on it whose preview is run until it leaves PREVIEWING: the fake, the app,
/// the story's id and the story then.
async fn preview_through(provider: Provider, script: Script) -> (Fake, TestApp, String, Value) {
    preview_with(provider, script, None, Delivery::AsRequested).await
}

/// As `preview_through`, with the provider's model set to `model` by an admin first, and Gemini
/// Omni videos delivered as `delivery`.
async fn preview_with(
    provider: Provider,
    script: Script,
    model: Option<&str>,
    delivery: Delivery,
) -> (Fake, TestApp, String, Value) {
    let succeeds = matches!(script, Script::Succeed);
    let fake = Fake::start(provider, script).await;
    fake.set_video_delivery(delivery);
    let app = app_for(provider, &fake, true).await;
    if let Some(model) = model {
        let name = names(provider).0;
        let set = app.patch(&format!("{API}/providers/{name}/"), "admin-ann", json!({"model": model})).await;
        assert_eq!(set.status, StatusCode::OK, "{}", set.body);
    }
    let story = previewing_story(&app, "alice", harbour(names(provider).0), 3).await;
    let done = app.work_while(&app.worker, &story, "PREVIEWING").await;
    // Whatever the script, the client never sent anything the provider's contract does not allow.
    assert!(fake.violations().is_empty(), "{provider:?}: {:?}", fake.violations());
    // …and the fake answered only with documents the provider's reference defines.
    assert!(fake.answer_violations().is_empty(), "{provider:?}: {:?}", fake.answer_violations());
    if succeeds {
        // Its creates and polls, at least: the check is not vacuous.
        assert!(fake.answers_checked() >= 6, "{provider:?}: {} answers checked", fake.answers_checked());
    }
    (fake, app, story, done)
}

/// The JSON (or form) a fake was sent when a task was created.
fn submitted_bodies(fake: &Fake) -> Vec<String> {
    fake.requests()
        .into_iter()
        .filter(|r| r.method == "POST" && !r.path.ends_with("/cancel") && !r.path.contains("stable-image"))
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_preview_renders_through_each_provider() {
    let runs = ALL.map(|provider| {
        tokio::spawn(async move {
            let (fake, app, story, done) = preview_through(provider, Script::Succeed).await;
            let (name, _) = names(provider);
            assert_eq!(done["status"], "PREVIEW_READY", "{provider:?}: {}", done["failure_reason"]);

            // One task per scene, polled until done, each result fetched once.
            assert_eq!(fake.submissions(), 3, "{provider:?}");
            assert!(fake.polls() >= 3, "{provider:?}: {} polls", fake.polls());
            assert_eq!(fake.downloads(), 3, "{provider:?}");
            let jobs = app.jobs_of(&story).await;
            let clips: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == "scene_preview").collect();
            assert!(clips.iter().all(|j| j["status"] == "succeeded" && j["attempts"] == 1), "{provider:?}: {clips:#?}");
            assert!(clips.iter().all(|j| !j["provider_task_id"].as_str().unwrap_or("").is_empty()));
            // Cost: what the provider rendered (the fakes' clip is 2 s, whatever the scene's
            // length) at the provider's low-quality price (previews are low).
            let price = app.get(&format!("{API}/providers/{name}/"), "alice").await.body["price_per_second_usd"]["low"]
                .as_f64()
                .unwrap();
            let cost: f64 = clips.iter().map(|j| j["cost_usd"].as_f64().unwrap()).sum();
            assert!((cost - 3.0 * 2.0 * price).abs() < 1e-3, "{provider:?}: {cost} vs {}", 6.0 * price);

            // The preview is the story's length exactly, whatever length the provider rendered.
            let preview = &done["preview"];
            assert!((preview["duration_seconds"].as_f64().unwrap() - 5.0).abs() <= 1.0 / 12.0 + 1e-6, "{preview}");
            // The prompt went out under the provider's own field names.
            let bodies = submitted_bodies(&fake);
            let field = match provider {
                Provider::Runway => "\"promptText\"",
                // The default model, Gemini Omni Flash, speaks the Interactions API.
                Provider::Veo => "\"input\"",
                Provider::Replicate => "\"input\"",
                Provider::Stability => "name=\"image\"",
                Provider::Luma | Provider::Fal => "\"prompt\"",
            };
            assert!(bodies.iter().all(|b| b.contains(field)), "{provider:?}: {bodies:?}");
            if provider == Provider::Veo {
                let paths: Vec<String> =
                    fake.requests().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect();
                assert!(paths.iter().all(|p| !p.contains(":predictLongRunning")), "{paths:?}");
                assert_eq!(paths.iter().filter(|p| *p == "POST /v1beta/interactions").count(), 3, "{paths:?}");
                // Asked for links (small polls); each video fetched from the Files API once.
                assert_eq!(paths.iter().filter(|p| p.starts_with("GET /v1beta/files/")).count(), 3, "{paths:?}");
                let tasks: Vec<&str> = clips.iter().filter_map(|j| j["provider_task_id"].as_str()).collect();
                assert!(tasks.iter().all(|t| t.starts_with("interactions/v1_")), "{tasks:?}");
            }
            // The key went in the provider's header, and nowhere in the job's view.
            let auth: Vec<String> = fake
                .requests()
                .iter()
                .filter_map(|r| r.headers.get("authorization").or(r.headers.get("x-goog-api-key")).cloned())
                .collect();
            assert!(!auth.is_empty() && auth.iter().all(|a| a.ends_with(API_KEY)), "{provider:?}: {auth:?}");
            assert!(!jobs.iter().any(|j| j.to_string().contains(API_KEY)));
        })
    });
    for run in runs {
        run.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderation_refusals_fail_the_story_at_once_with_the_provider_s_code() {
    let runs = ALL.map(|provider| {
        tokio::spawn(async move {
            let (fake, app, story, done) = preview_through(provider, Script::Moderation).await;
            assert_eq!(done["status"], "FAILED", "{provider:?}");
            let jobs = app.jobs_of(&story).await;
            let job = jobs.iter().find(|j| j["kind"] == "scene_preview" && j["status"] == "failed").unwrap();
            assert_eq!(job["attempts"], 1, "{provider:?}: a refusal is not retried");
            assert!(jobs.iter().all(|j| j["attempts"].as_u64().unwrap_or(0) <= 1), "{provider:?}: {jobs:#?}");
            let error = job["error"].as_str().unwrap();
            let code = match provider {
                Provider::Runway => "SAFETY.INPUT.TEXT",
                Provider::Fal => "content_policy_violation",
                _ => "content_moderation",
            };
            assert!(error.starts_with(code), "{provider:?}: {error}");
            assert_eq!(job["failure_code"], "safety_input", "{provider:?}: {job}");
            assert!(
                done["failure_reason"].as_str().unwrap().contains(code),
                "{provider:?}: {}",
                done["failure_reason"]
            );
            // One task per scene at most: nothing is sent twice.
            assert!(fake.submissions() <= 3, "{provider:?}");
        })
    });
    for run in runs {
        run.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_and_server_errors_are_retried_and_the_render_completes() {
    let scripts = [Script::RateLimited { retry_after_secs: 1, times: 2 }, Script::ServerError { times: 2 }];
    let mut runs = Vec::new();
    for provider in ALL {
        for script in scripts.clone() {
            runs.push(tokio::spawn(async move {
                let (fake, app, story, done) = preview_through(provider, script.clone()).await;
                if provider == Provider::Runway && matches!(script, Script::RateLimited { .. }) {
                    // Runway's 429 means the day's quota is spent (over-concurrency is a THROTTLED
                    // task): retrying only burns time, so the attempt ends at once.
                    assert_eq!(done["status"], "FAILED", "{done}");
                    let jobs = app.jobs_of(&story).await;
                    let job = jobs.iter().find(|j| j["status"] == "failed").unwrap();
                    assert_eq!(
                        (job["failure_code"].as_str(), job["attempts"].as_u64()),
                        (Some("quota_exhausted"), Some(1))
                    );
                    assert!(fake.submissions() <= 3, "one create per scene at most, none retried");
                    return;
                }
                assert_eq!(done["status"], "PREVIEW_READY", "{provider:?} {script:?}: {}", done["failure_reason"]);
                // Two refused creates and one accepted per scene, all within the first attempts.
                assert_eq!(fake.submissions(), 5, "{provider:?} {script:?}");
                let jobs = app.jobs_of(&story).await;
                assert!(
                    jobs.iter().filter(|j| j["kind"] == "scene_preview").all(|j| j["attempts"] == 1),
                    "{provider:?} {script:?}: {jobs:#?}"
                );
            }));
        }
    }
    for run in runs {
        run.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordinary_failures_and_malformed_answers_are_retried_up_to_max_attempts() {
    let mut runs = Vec::new();
    for provider in ALL {
        for script in [Script::Fail, Script::MalformedJson] {
            runs.push(tokio::spawn(async move {
                let (fake, app, story, done) = preview_through(provider, script.clone()).await;
                assert_eq!(done["status"], "FAILED", "{provider:?} {script:?}");
                // The job that ran out of attempts took the render down with it.
                let jobs = app.jobs_of(&story).await;
                let job = jobs.iter().find(|j| j["kind"] == "scene_preview" && j["status"] == "failed").unwrap();
                assert_eq!(job["attempts"], 3, "{provider:?} {script:?}: {job}");
                assert!(fake.submissions() >= 3, "{provider:?} {script:?}: one task per attempt");
                assert!(done["failure_reason"].as_str().unwrap().contains("could not be rendered"), "{done}");
                let expected = if let Script::MalformedJson = script { "provider_error" } else { "provider_error" };
                assert_eq!(job["failure_code"], expected, "{provider:?} {script:?}: {job}");
                if let Script::MalformedJson = script {
                    assert!(job["error"].as_str().unwrap().contains("malformed"), "{provider:?}: {}", job["error"]);
                }
            }));
        }
    }
    for run in runs {
        run.await.unwrap();
    }
}

#[tokio::test]
async fn a_provider_without_its_key_says_which_secret_to_set() {
    let fake = Fake::start(Provider::Runway, Script::Succeed).await;
    let app = app_for(Provider::Runway, &fake, false).await;
    let story = previewing_story(&app, "alice", harbour(AiProvider::Runway), 3).await;
    let done = app.work_while(&app.worker, &story, "PREVIEWING").await;
    assert_eq!(done["status"], "FAILED");
    let reason = done["failure_reason"].as_str().unwrap();
    assert!(reason.contains("RUNWAY_API_KEY"), "{reason}");
    assert_eq!(fake.requests().len(), 0, "nothing sent without a key");
}

/// A secret source holding the fakes' key.
struct Key;

#[async_trait::async_trait]
impl SecretSource for Key {
    async fn secret(&self, _: &str) -> shared::domain::error::Result<String> {
        Ok(API_KEY.to_owned())
    }
}

#[tokio::test]
async fn slow_answers_are_waited_for_within_the_timeout_and_abandoned_after_it() {
    let fake = Fake::start(Provider::Runway, Script::Slow { delay: Duration::from_millis(1500) }).await;
    let mut settings = ProviderSettings::published(AiProvider::Runway, Some(&fake.base_url())).unwrap();
    settings.download.allow_loopback_http = true;
    settings.wire = WirePolicy { request_timeout: Duration::from_millis(300), retries: 1, ..WirePolicy::default() };
    let impatient = RunwayProvider::new(settings.clone(), Arc::new(Key)).unwrap();
    let app = app_for(Provider::Runway, &fake, true).await;
    let story = previewing_story(&app, "alice", harbour(AiProvider::Runway), 3).await;
    let worker = app.worker.as_ref().clone().with_provider(AiProvider::Runway, Arc::new(impatient));
    let delivery = app.inbox.receive_batch(1, Duration::from_secs(30)).await.unwrap().remove(0);
    let started = Instant::now();
    let outcome = worker.handle(&delivery).await;
    app.inbox.settle(&delivery, outcome).await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(3), "the worker never hangs on a provider");
    let jobs = app.jobs_of(&story).await;
    let job = jobs.iter().find(|j| j["kind"] == "scene_preview" && j["attempts"] == 1).unwrap();
    // The create reached Runway (its answer was late): sent again it could make a second, billed
    // task, so the attempt ends with `ambiguous_submit` and the render with it; the owner decides.
    assert_eq!(
        (job["status"].as_str(), job["failure_code"].as_str()),
        (Some("failed"), Some("ambiguous_submit")),
        "{job}"
    );
    assert!(job["error"].as_str().unwrap().contains("timed out"), "{job}");
    // (The fake counts a create once it has answered it; this one's answer came too late.)
    assert!(fake.submissions() <= 1, "a create that timed out is not sent again");
    assert_eq!(app.get(&format!("{API}/stories/{story}/"), "alice").await.body["status"], "FAILED");

    // A patient client gets its answers.
    settings.wire = WirePolicy { request_timeout: Duration::from_secs(10), ..WirePolicy::default() };
    let patient = RunwayProvider::new(settings, Arc::new(Key)).unwrap();
    let worker = app.worker.as_ref().clone().with_provider(AiProvider::Runway, Arc::new(patient));
    let story = previewing_story(&app, "alice", harbour(AiProvider::Runway), 3).await;
    let done = app.work_while(&worker, &story, "PREVIEWING").await;
    assert_eq!(done["status"], "PREVIEW_READY", "{}", done["failure_reason"]);
}

#[tokio::test]
async fn switching_a_story_s_provider_switches_the_client_that_renders_it() {
    let runway = Fake::start(Provider::Runway, Script::Succeed).await;
    let luma = Fake::start(Provider::Luma, Script::Succeed).await;
    let (runway_base, luma_base) = (runway.base_url(), luma.base_url());
    let app = TestApp::with_backend("embedded", &[("RUNWAY_API_KEY", API_KEY), ("LUMA_API_KEY", API_KEY)], |c| {
        c.worker.poll_ms = 50;
        c.provider_base_urls.insert(AiProvider::Runway, runway_base);
        c.provider_base_urls.insert(AiProvider::Luma, luma_base);
        c.allow_loopback_downloads = true;
    })
    .await;
    let story = planned_story(&app, "alice", harbour(AiProvider::Runway), 3).await;
    let before = app.get(&format!("{API}/stories/{story}/cost_estimate/"), "alice").await.body;
    let reply = app.patch(&format!("{API}/stories/{story}/"), "alice", json!({"ai_provider": "luma"})).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    let after = app.get(&format!("{API}/stories/{story}/cost_estimate/"), "alice").await.body;
    assert_ne!(before["total_usd"], after["total_usd"], "the estimate follows the provider");
    assert_eq!(after["provider"], "luma");

    app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    let done = app.work_while(&app.worker, &story, "PREVIEWING").await;
    assert_eq!(done["status"], "PREVIEW_READY", "{}", done["failure_reason"]);
    assert_eq!((luma.submissions(), runway.submissions()), (3, 0), "Luma rendered it, Runway saw nothing");
    assert!(app.jobs_of(&story).await.iter().all(|j| j["provider"] == "luma"));
}

#[tokio::test]
async fn stability_ai_is_refused_at_render_start_with_the_alternative_and_nothing_is_called() {
    let fake = Fake::start(Provider::Stability, Script::Succeed).await;
    let base = fake.base_url();
    let app = TestApp::with_backend("embedded", &[("STABILITY_API_KEY", API_KEY)], |c| {
        c.provider_base_urls.insert(AiProvider::StabilityAi, base);
        c.allow_loopback_downloads = true;
    })
    .await;
    // An admin cannot switch it on: its video API is gone.
    let on = app.patch(&format!("{API}/providers/stability_ai/"), "admin-ann", json!({"enabled": true})).await;
    assert_eq!((on.status, on.body["code"].as_str()), (StatusCode::CONFLICT, Some("provider_retired")), "{}", on.body);
    assert!(on.body["detail"].as_str().unwrap().contains("2025-07-24"), "{}", on.body);
    // A story may still name it (the original guide does); its render is refused at the start.
    let story = planned_story(&app, "alice", harbour(AiProvider::StabilityAi), 3).await;
    let refused = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!((refused.status, refused.body["code"].as_str()), (StatusCode::CONFLICT, Some("provider_retired")));
    assert!(refused.body["alternative"].as_str().unwrap().contains("fal"), "{}", refused.body);
    assert_eq!(app.get(&format!("{API}/stories/{story}/"), "alice").await.body["status"], "PLANNED", "nothing written");
    assert!(app.jobs_of(&story).await.is_empty(), "nothing queued");
    assert_eq!(fake.requests().len(), 0, "no call to a provider that cannot finish the clip");
}

/// `body` with its top-level field `from` renamed `to`.
fn renamed(body: &Value, from: &str, to: &str) -> Value {
    let mut b = body.clone();
    let value = b.as_object_mut().unwrap().remove(from).unwrap_or_else(|| panic!("no {from} in {body}"));
    b[to] = value;
    b
}

/// `body` with the field at `pointer` set to `value`.
fn set(body: &Value, pointer: &str, value: Value) -> Value {
    let mut b = body.clone();
    *b.pointer_mut(pointer).unwrap_or_else(|| panic!("no {pointer} in {body}")) = value;
    b
}

/// The first create request a client sent `fake`, and its JSON body.
fn first_create(fake: &Fake) -> (provider_fakes::Seen, Value) {
    let create = fake
        .requests()
        .into_iter()
        .find(|r| r.method == "POST" && !r.path.starts_with("/media/"))
        .expect("the client created a task");
    let body = serde_json::from_slice(&create.body).unwrap();
    (create, body)
}

/// `create` (a client's real create request) sent again to a fresh fake with each of
/// `mutations` as its body: each is refused and recorded as the one violation, nothing created.
async fn refused_by_the_contract(provider: Provider, create: &provider_fakes::Seen, mutations: Vec<(&str, Value)>) {
    for (what, mutated) in mutations {
        let checker = Fake::start(provider, Script::Succeed).await;
        let mut request = support::client()
            .post(format!("{}{}", checker.base_url(), create.path))
            .body(serde_json::to_vec(&mutated).unwrap());
        for (name, value) in &create.headers {
            if !matches!(name.as_str(), "host" | "content-length") {
                request = request.header(name, value);
            }
        }
        let answer = request.send().await.unwrap();
        assert!(answer.status().is_client_error(), "{provider:?} {what}: {}", answer.status());
        assert_eq!(checker.violations().len(), 1, "{provider:?} {what}: {mutated}");
        assert_eq!(checker.submissions(), 0, "{provider:?} {what}: nothing created");
    }
}

/// The contract catches what a client bug would send: each provider's real create request, as
/// its client sent it in a render, is sent again with one field mutated — a renamed field, an
/// out-of-range duration — and the fake refuses it and records the violation (which fails every
/// render test above, since they assert no violation).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_mutated_field_of_a_clients_request_breaks_the_providers_contract() {
    for provider in ALL {
        let (fake, _app, _story, done) = preview_through(provider, Script::Succeed).await;
        assert_eq!(done["status"], "PREVIEW_READY", "{provider:?}");
        let (create, body) = first_create(&fake);
        let b = &body;
        let mutations: Vec<(&str, Value)> = match provider {
            Provider::Runway => {
                vec![
                    ("renamed promptText", renamed(b, "promptText", "prompt")),
                    ("duration 11", set(b, "/duration", json!(11))),
                ]
            }
            Provider::Luma => {
                vec![
                    ("renamed prompt", renamed(b, "prompt", "text")),
                    ("duration 12s", set(b, "/duration", json!("12s"))),
                ]
            }
            // The default model (Gemini Omni Flash): the Interactions API's create.
            Provider::Veo => vec![
                ("renamed input", renamed(b, "input", "prompt")),
                ("duration 11s", set(b, "/response_format/duration", json!("11s"))),
                ("duration 6 without its unit", set(b, "/response_format/duration", json!(6))),
                ("aspect ratio 1:1", set(b, "/response_format/aspect_ratio", json!("1:1"))),
            ],
            Provider::Replicate => vec![("renamed input", renamed(b, "input", "inputs"))],
            Provider::Fal => {
                vec![("renamed prompt", renamed(b, "prompt", "text")), ("duration 7", set(b, "/duration", json!("7")))]
            }
            Provider::Stability => unreachable!("not rendering"),
        };
        refused_by_the_contract(provider, &create, mutations).await;
    }
}

/// The default `veo` model is Gemini Omni Flash (Interactions API); a Veo 3.1 model an admin
/// configures still renders through `predictLongRunning`, under the same contract checks, and
/// its safety refusal is still a moderation refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_configured_veo_model_still_renders_through_predict_long_running() {
    let model = "veo-3.1-fast-generate-preview";
    let (fake, app, story, done) = preview_with(Provider::Veo, Script::Succeed, Some(model), Delivery::Uri).await;
    assert_eq!(done["status"], "PREVIEW_READY", "{}", done["failure_reason"]);
    let paths: Vec<String> = fake.requests().into_iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    let create = format!("POST /v1beta/models/{model}:predictLongRunning");
    assert_eq!(paths.iter().filter(|p| **p == create).count(), 3, "{paths:?}");
    assert!(paths.iter().all(|p| !p.contains("/interactions")), "{paths:?}");
    assert_eq!(fake.downloads(), 3);
    let jobs = app.jobs_of(&story).await;
    let clips: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == "scene_preview").collect();
    let operations = format!("models/{model}/operations/");
    assert!(clips.iter().all(|j| j["provider_task_id"].as_str().unwrap().starts_with(&operations)), "{clips:#?}");
    assert!(submitted_bodies(&fake).iter().all(|b| b.contains("\"instances\"")));

    let (create, body) = first_create(&fake);
    let mutations = vec![
        ("renamed instances", renamed(&body, "instances", "instance")),
        ("durationSeconds 5", set(&body, "/parameters/durationSeconds", json!(5))),
    ];
    refused_by_the_contract(Provider::Veo, &create, mutations).await;

    let (_fake, app, story, done) = preview_with(Provider::Veo, Script::Moderation, Some(model), Delivery::Uri).await;
    assert_eq!(done["status"], "FAILED");
    let jobs = app.jobs_of(&story).await;
    let job = jobs.iter().find(|j| j["kind"] == "scene_preview" && j["status"] == "failed").unwrap();
    assert!(job["error"].as_str().unwrap().starts_with("content_moderation: Veo held the video back"), "{job}");
    assert_eq!((job["failure_code"].as_str(), job["attempts"].as_u64()), (Some("safety_input"), Some(1)));
}

/// Gemini Omni can answer the video inline (base64) whatever was asked: the poll records the
/// interaction as the output, and the fetch reads it again and decodes the video to the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gemini_omni_videos_answered_inline_are_decoded_from_the_interaction() {
    let (fake, app, story, done) = preview_with(Provider::Veo, Script::Succeed, None, Delivery::Inline).await;
    assert_eq!(done["status"], "PREVIEW_READY", "{}", done["failure_reason"]);
    let requests = fake.requests();
    assert!(requests.iter().all(|r| !r.path.starts_with("/v1beta/files/")), "no file was linked");
    // Each clip's video travelled twice: in the poll that saw it done, and in the fetch.
    assert_eq!(fake.downloads(), 6);
    let jobs = app.jobs_of(&story).await;
    let clips: Vec<&Value> = jobs.iter().filter(|j| j["kind"] == "scene_preview").collect();
    assert!(clips.iter().all(|j| j["status"] == "succeeded" && j["attempts"] == 1), "{clips:#?}");
    assert!(clips.iter().all(|j| j["provider_task_id"].as_str().unwrap().starts_with("interactions/v1_")));
    // The fake's 2 s clip at Gemini Omni Flash's $0.10 per second.
    let cost: f64 = clips.iter().map(|j| j["cost_usd"].as_f64().unwrap()).sum();
    assert!((cost - 3.0 * 2.0 * 0.10).abs() < 1e-3, "{cost}");
    // The key went in the header on every call, never in a URL.
    assert!(requests.iter().all(|r| r.headers.get("x-goog-api-key").map(String::as_str) == Some(API_KEY)));
    assert!(requests.iter().all(|r| !r.query.contains(API_KEY)));
}

/// Each job failure code a provider's answer can cause (SPEC §8.3), produced by a fake speaking
/// that provider's vocabulary. (`safety_input`, `provider_error` and `ambiguous_submit` come from
/// the tests above; `timeout`, `cancelled` from `tests/render.rs`; `provider_retired` is refused
/// before any job exists.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_failure_code_a_provider_can_cause_comes_from_its_own_answers() {
    async fn failed_job(provider: Provider, script: Script, model: Option<&str>) -> (Fake, Value) {
        let fake = Fake::start(provider, script).await;
        let app = app_for(provider, &fake, true).await;
        let name = names(provider).0;
        if let Some(model) = model {
            let set = app.patch(&format!("{API}/providers/{name}/"), "admin-ann", json!({"model": model})).await;
            assert_eq!(set.status, StatusCode::OK, "{}", set.body);
        }
        let story = previewing_story(&app, "alice", harbour(name), 3).await;
        let done = app.work_while(&app.worker, &story, "PREVIEWING").await;
        assert_eq!(done["status"], "FAILED", "{provider:?}: {done}");
        let jobs = app.jobs_of(&story).await;
        let job = jobs.into_iter().find(|j| j["kind"] == "scene_preview" && j["status"] == "failed").unwrap();
        (fake, job)
    }
    let output = tokio::spawn(failed_job(Provider::Runway, Script::ModeratedOutput, None));
    // Runway's `gen4_turbo` renders from an image only: a text-to-video request is one the API
    // refuses (the fake, by its contract).
    let invalid = tokio::spawn(failed_job(Provider::Runway, Script::Succeed, Some("gen4_turbo")));
    // Luma keeps answering 429: after the wire's retries and every attempt, `rate_limited`.
    let limited =
        tokio::spawn(failed_job(Provider::Luma, Script::RateLimited { retry_after_secs: 0, times: 1000 }, None));

    let (_, job) = output.await.unwrap();
    assert_eq!(job["failure_code"], "safety_output", "{job}");
    assert_eq!(job["attempts"], 1, "a refusal of the output is not retried either");
    let (fake, job) = invalid.await.unwrap();
    assert_eq!(job["failure_code"], "invalid_request", "{job}");
    assert!(!fake.violations().is_empty(), "the fake refused it by the contract");
    let (_, job) = limited.await.unwrap();
    assert_eq!((job["failure_code"].as_str(), job["attempts"].as_u64()), (Some("rate_limited"), Some(3)), "{job}");

    // No key: `not_configured`, naming the secret.
    let fake = Fake::start(Provider::Runway, Script::Succeed).await;
    let app = app_for(Provider::Runway, &fake, false).await;
    let story = previewing_story(&app, "alice", harbour(AiProvider::Runway), 3).await;
    app.work_while(&app.worker, &story, "PREVIEWING").await;
    let jobs = app.jobs_of(&story).await;
    let job = jobs.iter().find(|j| j["status"] == "failed").unwrap();
    assert_eq!(job["failure_code"], "not_configured", "{job}");
}
