//! The provider fakes (`tests/provider_fakes`) driven with a plain HTTP client: each provider's
//! protocol end to end (submit, poll, download), its moderation refusal, 429s with `Retry-After`,
//! 500s, ordinary failures, malformed answers, auth and validation errors, expiring media links
//! and slow answers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod provider_fakes;

use std::time::{Duration, Instant};

use provider_fakes::{API_KEY, Delivery, Fake, Provider, RUNWAY_VERSION, Script};
use reqwest::{Client, RequestBuilder, StatusCode};
use serde_json::{Value, json};

/// The providers whose video API is live (Stability's was retired: see the last test).
const ALL: [Provider; 5] = [Provider::Runway, Provider::Luma, Provider::Veo, Provider::Replicate, Provider::Fal];
const FAL_MODEL: &str = "fal-ai/kling-video/v2.5-turbo/pro/text-to-video";

/// How a run through a provider's protocol ended.
#[derive(Debug)]
enum Outcome {
    /// The video's bytes.
    Video(Vec<u8>),
    /// The terminal status (or, for fal, the result call's error) that said it failed.
    Failed(Value),
    /// A non-2xx answer to a create request (or to Stability's text-to-image call).
    Refused { status: StatusCode, retry_after: Option<String>, body: String },
    /// A create answer that is not JSON.
    Garbled(String),
}

/// A run: its outcome and the states the polls went through.
#[derive(Debug)]
struct Run {
    outcome: Outcome,
    states: Vec<String>,
}

/// `builder` with the provider's credentials under `key`.
fn authed(provider: Provider, builder: RequestBuilder, key: &str) -> RequestBuilder {
    match provider {
        Provider::Runway => builder.bearer_auth(key).header("X-Runway-Version", RUNWAY_VERSION),
        Provider::Veo => builder.header("x-goog-api-key", key),
        Provider::Fal => builder.header("Authorization", format!("Key {key}")),
        Provider::Luma | Provider::Replicate | Provider::Stability => builder.bearer_auth(key),
    }
}

fn multipart(fields: &[(&str, &str)], image: Option<&[u8]>) -> (String, Vec<u8>) {
    let boundary = "selftest-boundary-7d1f";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").bytes(),
        );
    }
    if let Some(bytes) = image {
        body.extend(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"frame.png\"\r\n\
                 Content-Type: image/png\r\n\r\n"
            )
            .bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{boundary}--\r\n").bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The start of a PNG of `width`x`height` (all the fake reads is the IHDR chunk).
fn png_head(width: u32, height: u32) -> Vec<u8> {
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    png.extend(width.to_be_bytes());
    png.extend(height.to_be_bytes());
    png.extend([8, 2, 0, 0, 0, 0, 0, 0, 0]);
    png
}

/// The create request of each provider, as its client would send it.
fn create(provider: Provider, client: &Client, base: &str, key: &str) -> RequestBuilder {
    let builder = match provider {
        Provider::Runway => client
            .post(format!("{base}/v1/text_to_video"))
            .json(&json!({"model": "gen4.5", "promptText": "A harbour at dawn", "ratio": "1280:720", "duration": 5})),
        Provider::Luma => client.post(format!("{base}/dream-machine/v1/generations/video")).json(
            &json!({"prompt": "A harbour at dawn", "model": "ray-2", "aspect_ratio": "16:9", "resolution": "720p",
                    "duration": "5s"}),
        ),
        Provider::Veo => client
            .post(format!("{base}/v1beta/models/veo-3.1-fast-generate-preview:predictLongRunning"))
            .json(&json!({"instances": [{"prompt": "A harbour at dawn"}],
                    "parameters": {"aspectRatio": "16:9", "durationSeconds": 4, "resolution": "720p"}})),
        Provider::Replicate => client
            .post(format!("{base}/v1/models/minimax/video-01/predictions"))
            .json(&json!({"input": {"prompt": "A harbour at dawn"}})),
        Provider::Fal => client
            .post(format!("{base}/{FAL_MODEL}"))
            .json(&json!({"prompt": "A harbour at dawn", "duration": "5", "aspect_ratio": "16:9"})),
        Provider::Stability => {
            let (content_type, body) = multipart(&[("seed", "0")], Some(&png_head(1024, 576)));
            client.post(format!("{base}/v2beta/image-to-video")).header("Content-Type", content_type).body(body)
        }
    };
    authed(provider, builder, key)
}

async fn json_of(response: reqwest::Response) -> Value {
    let text = response.text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// Drives `fake` like a client would: (Stability: text to image,) submit, poll until a terminal
/// state, then download.
async fn drive(provider: Provider, fake: &Fake) -> Run {
    let client = Client::new();
    let base = fake.base_url();
    let mut states = Vec::new();
    let get = |url: &str| authed(provider, client.get(url), API_KEY);

    if provider == Provider::Stability {
        let (content_type, body) = multipart(&[("prompt", "A harbour at dawn"), ("output_format", "png")], None);
        let image = authed(provider, client.post(format!("{base}/v2beta/stable-image/generate/core")), API_KEY)
            .header("Content-Type", content_type)
            .header("Accept", "image/*")
            .body(body)
            .send()
            .await
            .unwrap();
        if !image.status().is_success() {
            let status = image.status();
            return Run {
                outcome: Outcome::Refused { status, retry_after: None, body: image.text().await.unwrap() },
                states,
            };
        }
        assert_eq!(image.headers()["finish-reason"], "SUCCESS");
        let png = image.bytes().await.unwrap();
        assert_eq!(&png[12..16], b"IHDR");
        assert_eq!((&png[16..20], &png[20..24]), (&1344u32.to_be_bytes()[..], &768u32.to_be_bytes()[..]));
    }

    let answer = create(provider, &client, &base, API_KEY).send().await.unwrap();
    let status = answer.status();
    if !status.is_success() {
        let retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        return Run { outcome: Outcome::Refused { status, retry_after, body: answer.text().await.unwrap() }, states };
    }
    let expected = match provider {
        Provider::Luma | Provider::Replicate => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    assert_eq!(status, expected, "{provider:?}");
    let text = answer.text().await.unwrap();
    let Ok(created) = serde_json::from_str::<Value>(&text) else {
        return Run { outcome: Outcome::Garbled(text), states };
    };

    let str_at = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_str).unwrap().to_owned();
    let download_url = 'poll: {
        for _ in 0..20 {
            match provider {
                Provider::Runway => {
                    let task =
                        json_of(get(&format!("{base}/v1/tasks/{}", str_at(&created, "/id"))).send().await.unwrap())
                            .await;
                    states.push(str_at(&task, "/status"));
                    match task["status"].as_str().unwrap() {
                        "SUCCEEDED" => break 'poll str_at(&task, "/output/0"),
                        "FAILED" => return Run { outcome: Outcome::Failed(task), states },
                        _ => {}
                    }
                }
                Provider::Luma => {
                    let url = format!("{base}/dream-machine/v1/generations/{}", str_at(&created, "/id"));
                    let generation = json_of(get(&url).send().await.unwrap()).await;
                    states.push(str_at(&generation, "/state"));
                    match generation["state"].as_str().unwrap() {
                        "completed" => break 'poll str_at(&generation, "/assets/video"),
                        "failed" => return Run { outcome: Outcome::Failed(generation), states },
                        _ => {}
                    }
                }
                Provider::Veo => {
                    let url = format!("{base}/v1beta/{}", str_at(&created, "/name"));
                    let operation = json_of(get(&url).send().await.unwrap()).await;
                    if operation["done"] != true {
                        states.push("running".into());
                        continue;
                    }
                    states.push("done".into());
                    match operation.pointer("/response/generateVideoResponse/generatedSamples/0/video/uri") {
                        Some(uri) => break 'poll uri.as_str().unwrap().to_owned(),
                        None => return Run { outcome: Outcome::Failed(operation), states },
                    }
                }
                Provider::Replicate => {
                    let prediction = json_of(get(&str_at(&created, "/urls/get")).send().await.unwrap()).await;
                    states.push(str_at(&prediction, "/status"));
                    match prediction["status"].as_str().unwrap() {
                        "succeeded" => break 'poll str_at(&prediction, "/output"),
                        "failed" | "canceled" => return Run { outcome: Outcome::Failed(prediction), states },
                        _ => {}
                    }
                }
                Provider::Fal => {
                    let url = format!("{}?logs=1", str_at(&created, "/status_url"));
                    let status = json_of(get(&url).send().await.unwrap()).await;
                    states.push(str_at(&status, "/status"));
                    if status["status"] != "COMPLETED" {
                        continue;
                    }
                    let result = get(&str_at(&created, "/response_url")).send().await.unwrap();
                    if !result.status().is_success() {
                        let error_type =
                            result.headers().get("x-fal-error-type").map(|v| v.to_str().unwrap().to_owned());
                        let mut body = json_of(result).await;
                        body["x-fal-error-type"] = json!(error_type);
                        return Run { outcome: Outcome::Failed(body), states };
                    }
                    break 'poll str_at(&json_of(result).await, "/video/url");
                }
                Provider::Stability => {
                    let url = format!("{base}/v2beta/image-to-video/result/{}", str_at(&created, "/id"));
                    let answer = get(&url).header("Accept", "application/json").send().await.unwrap();
                    states.push(answer.status().as_u16().to_string());
                    match answer.status() {
                        StatusCode::ACCEPTED => assert_eq!(json_of(answer).await["status"], "in-progress"),
                        StatusCode::OK => {
                            assert_eq!(json_of(answer).await["finish_reason"], "SUCCESS");
                            break 'poll url;
                        }
                        _ => return Run { outcome: Outcome::Failed(json_of(answer).await), states },
                    }
                }
            }
        }
        panic!("{provider:?} never finished: {states:?}");
    };

    // Runway, Luma and fal links are public; Replicate's and Veo's need the key; Stability's is
    // its result call, asked for video bytes.
    let download = match provider {
        Provider::Runway | Provider::Luma | Provider::Fal => client.get(&download_url),
        Provider::Stability => get(&download_url).header("Accept", "video/*"),
        Provider::Veo | Provider::Replicate => get(&download_url),
    };
    let answer = download.send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::OK, "{provider:?} download of {download_url}");
    assert_eq!(answer.headers()["content-type"], "video/mp4");
    Run { outcome: Outcome::Video(answer.bytes().await.unwrap().to_vec()), states }
}

fn is_mp4(bytes: &[u8]) -> bool {
    bytes.len() > 1000 && &bytes[4..8] == b"ftyp"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_provider_renders_a_clip_through_its_protocol() {
    for provider in ALL {
        let fake = Fake::start(provider, Script::Succeed).await;
        let run = drive(provider, &fake).await;
        let Outcome::Video(bytes) = &run.outcome else { panic!("{provider:?}: {run:?}") };
        assert!(is_mp4(bytes), "{provider:?}");
        let expected: &[&str] = match provider {
            Provider::Runway => &["PENDING", "RUNNING", "SUCCEEDED"],
            Provider::Luma => &["queued", "dreaming", "completed"],
            Provider::Veo => &["running", "running", "done"],
            Provider::Replicate => &["starting", "processing", "succeeded"],
            Provider::Fal => &["IN_QUEUE", "IN_PROGRESS", "COMPLETED"],
            Provider::Stability => &["202", "202", "200"],
        };
        assert_eq!(run.states, expected, "{provider:?}");
        assert_eq!((fake.submissions(), fake.polls(), fake.downloads()), (1, 3, 1), "{provider:?}");
        let seen = fake.requests();
        assert!(seen.iter().all(|r| r.headers.keys().all(|k| *k == k.to_ascii_lowercase())));
        let create = seen.iter().find(|r| r.method == "POST" && !r.path.contains("stable-image")).unwrap();
        assert!(!create.body.is_empty(), "{provider:?}");
    }
}

#[tokio::test]
async fn polls_follow_the_pending_count_and_progress_is_reported() {
    let fake = Fake::start(Provider::Runway, Script::Succeed).await;
    fake.set_pending_polls(0);
    assert_eq!(drive(Provider::Runway, &fake).await.states, ["SUCCEEDED"]);
    fake.set_pending_polls(4);
    assert_eq!(drive(Provider::Runway, &fake).await.states, ["PENDING", "RUNNING", "RUNNING", "RUNNING", "SUCCEEDED"]);
    let task_gets = fake.requests().iter().filter(|r| r.method == "GET" && r.path.starts_with("/v1/tasks/")).count();
    assert_eq!((fake.polls(), task_gets, fake.downloads()), (6, 6, 2));

    // Progress as each provider reports it: Runway's fraction, Replicate's tqdm logs, fal's logs.
    let fake = Fake::start(Provider::Runway, Script::Succeed).await;
    let client = Client::new();
    let answer = create(Provider::Runway, &client, &fake.base_url(), API_KEY).send().await.unwrap();
    let url = format!("{}/v1/tasks/{}", fake.base_url(), json_of(answer).await["id"].as_str().unwrap());
    let first = json_of(authed(Provider::Runway, client.get(&url), API_KEY).send().await.unwrap()).await;
    assert!(first["createdAt"].is_string() && first["id"].is_string());
    let second = json_of(authed(Provider::Runway, client.get(&url), API_KEY).send().await.unwrap()).await;
    assert_eq!((second["status"].as_str(), second["progress"].as_f64()), (Some("RUNNING"), Some(0.5)));
    let delete = authed(Provider::Runway, client.delete(&url), API_KEY).send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(authed(Provider::Runway, client.get(&url), API_KEY).send().await.unwrap().status(), 404);

    let fake = Fake::start(Provider::Replicate, Script::Succeed).await;
    let created = json_of(create(Provider::Replicate, &client, &fake.base_url(), API_KEY).send().await.unwrap()).await;
    assert_eq!((created["status"].as_str(), created["version"].as_str()), (Some("starting"), Some("hidden")));
    assert_eq!(created["urls"]["web"], format!("https://replicate.com/p/{}", created["id"].as_str().unwrap()));
    let get = |url: &str| authed(Provider::Replicate, client.get(url), API_KEY).send();
    get(created["urls"]["get"].as_str().unwrap()).await.unwrap();
    let processing = json_of(get(created["urls"]["get"].as_str().unwrap()).await.unwrap()).await;
    assert!(processing["logs"].as_str().unwrap().contains(" 50%|█████     | 5/10"), "{processing}");
    let cancel = authed(Provider::Replicate, client.post(created["urls"]["cancel"].as_str().unwrap()), API_KEY);
    let cancelled = cancel.send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(json_of(cancelled).await["status"], "canceled");

    let fake = Fake::start(Provider::Fal, Script::Succeed).await;
    let created = json_of(create(Provider::Fal, &client, &fake.base_url(), API_KEY).send().await.unwrap()).await;
    assert_eq!((created["status"].as_str(), created["queue_position"].as_u64()), (Some("IN_QUEUE"), Some(0)));
    let app_base = format!("{}/fal-ai/kling-video/requests/", fake.base_url());
    assert!(created["status_url"].as_str().unwrap().starts_with(&app_base), "subpath dropped: {created}");
    let status = |logs: &str| {
        authed(Provider::Fal, client.get(format!("{}{logs}", created["status_url"].as_str().unwrap())), API_KEY).send()
    };
    status("").await.unwrap();
    let in_progress = json_of(status("?logs=1").await.unwrap()).await;
    assert_eq!(in_progress["status"], "IN_PROGRESS");
    assert!(in_progress["logs"][0]["message"].is_string(), "{in_progress}");
    let cancel = authed(Provider::Fal, client.put(created["cancel_url"].as_str().unwrap()), API_KEY);
    let cancelled = cancel.send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    assert_eq!(json_of(cancelled).await["status"], "CANCELLATION_REQUESTED");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn moderation_is_refused_in_each_provider_s_own_way() {
    for provider in ALL {
        let fake = Fake::start(provider, Script::Moderation).await;
        let run = drive(provider, &fake).await;
        match (provider, &run.outcome) {
            (Provider::Runway, Outcome::Failed(task)) => {
                assert_eq!(
                    (task["status"].as_str(), task["failureCode"].as_str()),
                    (Some("FAILED"), Some("SAFETY.INPUT.TEXT"))
                );
            }
            (Provider::Luma, Outcome::Failed(generation)) => {
                assert_eq!(generation["failure_reason"], "Advanced prompt moderation failed");
            }
            (Provider::Veo, Outcome::Failed(operation)) => {
                let response = &operation["response"]["generateVideoResponse"];
                assert_eq!(response["raiMediaFilteredCount"], 1);
                assert!(response["raiMediaFilteredReasons"][0].is_string() && response["generatedSamples"].is_null());
            }
            (Provider::Replicate, Outcome::Failed(prediction)) => {
                assert_eq!(prediction["status"], "failed");
                assert!(prediction["error"].as_str().unwrap().ends_with("(E005)"));
            }
            (Provider::Fal, Outcome::Failed(result)) => {
                assert_eq!(result["detail"][0]["type"], "content_policy_violation");
                assert_eq!(result["detail"][0]["loc"], json!(["body", "prompt"]));
            }
            (Provider::Stability, Outcome::Refused { status, body, .. }) => {
                assert_eq!(*status, StatusCode::FORBIDDEN);
                let body: Value = serde_json::from_str(body).unwrap();
                assert_eq!(body["name"], "content_moderation");
                assert!(body["id"].is_string() && body["errors"][0].as_str().unwrap().contains("not charged"));
            }
            _ => panic!("{provider:?}: {run:?}"),
        }
        assert!(fake.downloads() == 0, "{provider:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rate_limits_answer_429_with_retry_after_and_server_errors_500_then_succeed() {
    for provider in ALL {
        for script in [Script::RateLimited { retry_after_secs: 3, times: 2 }, Script::ServerError { times: 2 }] {
            let fake = Fake::start(provider, script.clone()).await;
            for _ in 0..2 {
                let run = drive(provider, &fake).await;
                let Outcome::Refused { status, retry_after, body } = run.outcome else {
                    panic!("{provider:?}: {run:?}")
                };
                let body: Value = serde_json::from_str(&body).unwrap();
                if let Script::RateLimited { .. } = script {
                    assert_eq!((status, retry_after.as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("3")));
                } else {
                    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{provider:?}");
                }
                let shaped = match provider {
                    Provider::Runway => body["error"].is_string(),
                    Provider::Luma | Provider::Fal => body["detail"].is_string(),
                    Provider::Veo => body["error"]["code"] == status.as_u16() && body["error"]["status"].is_string(),
                    Provider::Replicate => body["detail"].is_string(),
                    Provider::Stability => body["name"].is_string() && body["errors"].is_array(),
                };
                assert!(shaped, "{provider:?}: {body}");
            }
            let run = drive(provider, &fake).await;
            assert!(matches!(&run.outcome, Outcome::Video(b) if is_mp4(b)), "{provider:?} {script:?}");
            assert_eq!(fake.submissions(), 3, "{provider:?} {script:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ordinary_failures_and_malformed_answers() {
    for provider in ALL {
        let fake = Fake::start(provider, Script::Fail).await;
        let run = drive(provider, &fake).await;
        let failed = match (provider, &run.outcome) {
            (Provider::Runway, Outcome::Failed(t)) => t["failureCode"] == "INTERNAL.BAD_OUTPUT.CODE01",
            (Provider::Luma, Outcome::Failed(g)) => g["state"] == "failed" && g["failure_reason"] == "Job failed",
            (Provider::Veo, Outcome::Failed(o)) => o["error"]["code"] == 13 && o["error"]["status"] == "INTERNAL",
            (Provider::Replicate, Outcome::Failed(p)) => p["error"] == "CUDA out of memory",
            (Provider::Fal, Outcome::Failed(r)) => {
                r["error_type"] == "internal_error" && r["x-fal-error-type"] == "internal_error"
            }
            (Provider::Stability, Outcome::Failed(e)) => e["name"] == "internal_error",
            _ => false,
        };
        assert!(failed, "{provider:?}: {run:?}");

        let fake = Fake::start(provider, Script::MalformedJson).await;
        let run = drive(provider, &fake).await;
        assert!(matches!(&run.outcome, Outcome::Garbled(text) if text.starts_with('{')), "{provider:?}: {run:?}");
        assert_eq!(fake.submissions(), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wrong_keys_and_bad_requests_are_refused_in_the_provider_s_shape() {
    let client = Client::new();
    for provider in ALL {
        let fake = Fake::start(provider, Script::Succeed).await;
        let answer = create(provider, &client, &fake.base_url(), "wrong-key").send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNAUTHORIZED, "{provider:?}");
        let body = json_of(answer).await;
        let shaped = match provider {
            Provider::Runway => body["error"].is_string(),
            Provider::Luma | Provider::Fal => body["detail"].is_string(),
            Provider::Veo => body["error"]["status"] == "UNAUTHENTICATED",
            Provider::Replicate => body["status"] == 401 && body["title"].is_string() && body["detail"].is_string(),
            Provider::Stability => body["name"] == "unauthorized",
        };
        assert!(shaped, "{provider:?}: {body}");
        let missing =
            authed(provider, client.get(format!("{}/nowhere", fake.base_url())), API_KEY).send().await.unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND, "{provider:?}");
        assert_eq!(fake.submissions(), 0, "{provider:?}");
    }

    let fake = Fake::start(Provider::Runway, Script::Succeed).await;
    let base = fake.base_url();
    let unversioned = client.get(format!("{base}/v1/tasks/x")).bearer_auth(API_KEY).send().await.unwrap();
    assert_eq!(unversioned.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(unversioned).await["error"].is_string());
    let no_prompt = authed(Provider::Runway, client.post(format!("{base}/v1/text_to_video")), API_KEY)
        .json(&json!({"model": "gen4.5", "ratio": "1280:720", "duration": 5}));
    let answer = no_prompt.send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(json_of(answer).await["error"].as_str().unwrap().contains("promptText"));

    let fake = Fake::start(Provider::Replicate, Script::Succeed).await;
    let url = format!("{}/v1/models/minimax/video-01/predictions", fake.base_url());
    for body in [json!({"version": "abc", "input": {"prompt": "x"}}), json!({"prompt": "x"})] {
        let answer = authed(Provider::Replicate, client.post(&url), API_KEY).json(&body).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(answer.headers()["content-type"], "application/problem+json");
        assert_eq!(json_of(answer).await["status"], 422);
    }

    // Stability's image-to-video API was retired on 2025-07-24: whatever is sent to it is
    // outside the contract, refused and recorded.
    let fake = Fake::start(Provider::Stability, Script::Succeed).await;
    let url = format!("{}/v2beta/image-to-video", fake.base_url());
    let (content_type, body) = multipart(&[("seed", "0")], Some(&png_head(1344, 768)));
    let answer = authed(Provider::Stability, client.post(&url), API_KEY)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(fake.violations()[0].contains("retired on 2025-07-24"), "{:?}", fake.violations());
    assert_eq!(fake.submissions(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn media_links_expire_and_need_the_right_key() {
    let client = Client::new();
    let fake = Fake::start(Provider::Runway, Script::Succeed).await;
    fake.set_pending_polls(0);
    drive(Provider::Runway, &fake).await;
    let output = fake.requests().iter().find(|r| r.path.starts_with("/media/")).unwrap().clone();
    assert!(output.query.starts_with("expires="), "{output:?}");
    let expired = format!("{}{}?expires=1", fake.base_url(), output.path);
    assert_eq!(client.get(&expired).send().await.unwrap().status(), StatusCode::FORBIDDEN);
    let fresh = format!("{}{}?{}", fake.base_url(), output.path, output.query);
    assert_eq!(client.get(&fresh).send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(fake.downloads(), 2);

    let fake = Fake::start(Provider::Replicate, Script::Succeed).await;
    drive(Provider::Replicate, &fake).await;
    let media = fake.requests().into_iter().find(|r| r.path.starts_with("/media/")).unwrap();
    let url = format!("{}{}?{}", fake.base_url(), media.path, media.query);
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);

    let fake = Fake::start(Provider::Veo, Script::Succeed).await;
    drive(Provider::Veo, &fake).await;
    let file = fake.requests().into_iter().find(|r| r.path.starts_with("/v1beta/files/")).unwrap();
    assert!(file.path.ends_with(":download") && file.query == "alt=media", "{file:?}");
    let url = format!("{}{}?{}", fake.base_url(), file.path, file.query);
    assert_eq!(client.get(&url).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    assert_eq!(fake.downloads(), 1);
}

#[tokio::test]
async fn slow_scripts_delay_every_api_answer() {
    let fake = Fake::start(Provider::Luma, Script::Slow { delay: Duration::from_millis(300) }).await;
    fake.set_pending_polls(0);
    let started = Instant::now();
    let run = drive(Provider::Luma, &fake).await;
    assert!(matches!(&run.outcome, Outcome::Video(b) if is_mp4(b)));
    // The create and the poll are delayed; the media link is not.
    let elapsed = started.elapsed();
    assert!(elapsed >= Duration::from_millis(600) && elapsed < Duration::from_secs(5), "{elapsed:?}");
}

/// A Gemini Omni create (the Interactions API), as the `veo` client sends it, with `extra` fields
/// merged into the body.
fn omni_create(client: &Client, base: &str, key: &str, extra: Value) -> RequestBuilder {
    let mut body = json!({"model": "gemini-omni-flash-preview", "input": "A harbour at dawn", "background": true,
        "store": true, "response_format": {"type": "video", "aspect_ratio": "16:9", "duration": "4s"}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    authed(Provider::Veo, client.post(format!("{base}/v1beta/interactions")), key).json(&body)
}

/// Creates an interaction and polls it until it is no longer in progress: the statuses seen and
/// the last answer.
async fn drive_omni(fake: &Fake, extra: Value) -> (Vec<String>, Value) {
    let client = Client::new();
    let created = omni_create(&client, &fake.base_url(), API_KEY, extra).send().await.unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let created = json_of(created).await;
    assert_eq!((created["object"].as_str(), created["status"].as_str()), (Some("interaction"), Some("in_progress")));
    let id = created["id"].as_str().unwrap();
    assert!(id.starts_with("v1_"), "{created}");
    let mut states = Vec::new();
    for _ in 0..20 {
        let url = format!("{}/v1beta/interactions/{id}", fake.base_url());
        let interaction = json_of(authed(Provider::Veo, client.get(url), API_KEY).send().await.unwrap()).await;
        states.push(interaction["status"].as_str().unwrap().to_owned());
        if interaction["status"] != "in_progress" {
            // Every answer (the create's and each poll's) was one the contract describes.
            assert!(fake.answer_violations().is_empty(), "{:?}", fake.answer_violations());
            assert!(fake.answers_checked() > states.len(), "{} answers checked", fake.answers_checked());
            return (states, interaction);
        }
    }
    panic!("never finished: {states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gemini_omni_speaks_the_interactions_api() {
    let client = Client::new();
    // As asked: a link to the Files API (which needs the key), after as many polls as Veo's
    // operations take.
    let fake = Fake::start(Provider::Veo, Script::Succeed).await;
    let (states, done) = drive_omni(
        &fake,
        json!({"response_format":
        {"type": "video", "aspect_ratio": "9:16", "duration": "10s", "delivery": "uri"}}),
    )
    .await;
    assert_eq!(states, ["in_progress", "in_progress", "completed"]);
    let steps = done["steps"].as_array().unwrap();
    let kinds: Vec<&str> = steps.iter().map(|s| s["type"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["user_input", "thought", "model_output"], "{done}");
    assert_eq!(steps[0]["content"][0]["text"], "A harbour at dawn");
    let video = &steps[2]["content"][0];
    assert_eq!((video["type"].as_str(), video["mime_type"].as_str()), (Some("video"), Some("video/mp4")));
    let uri = video["uri"].as_str().unwrap();
    assert!(video["data"].is_null() && uri.ends_with(":download?alt=media"), "{video}");
    assert_eq!(client.get(uri).send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let file = authed(Provider::Veo, client.get(uri), API_KEY).send().await.unwrap();
    assert_eq!(file.headers()["content-type"], "video/mp4");
    assert!(is_mp4(&file.bytes().await.unwrap()));
    assert_eq!(done["usage"]["total_output_tokens"], 5792 * 10);
    assert_eq!((fake.submissions(), fake.polls(), fake.downloads()), (1, 3, 1));

    // The answer schema is not vacuous: what the API does not answer breaks it.
    let contract = provider_fakes::contract::document(Provider::Veo);
    let schema = jsonschema::validator_for(&contract["operations"]["get_interaction"]["answer"]["body"]).unwrap();
    assert!(schema.is_valid(&done));
    let mutate = |change: &dyn Fn(&mut Value)| {
        let mut answer = done.clone();
        change(&mut answer);
        answer
    };
    for wrong in [
        mutate(&|a| a["status"] = json!("done")),
        mutate(&|a| a["steps"][2]["content"][0]["url"] = json!(uri)),
        mutate(&|a| a["steps"][2]["type"] = json!("output")),
        mutate(&|a| a["steps"][2]["content"][0]["type"] = json!("movie")),
        mutate(&|a| a["errors"] = json!([{"code": 13, "message": "internal"}])),
    ] {
        assert!(!schema.is_valid(&wrong), "{wrong}");
    }

    // Not asked (or told to inline anyway): the video is base64 in the answer.
    for (delivery, extra) in [
        (Delivery::AsRequested, json!({})),
        (Delivery::Inline, json!({"response_format": {"type": "video", "delivery": "uri"}})),
    ] {
        let fake = Fake::start(Provider::Veo, Script::Succeed).await;
        fake.set_video_delivery(delivery);
        let (_, done) = drive_omni(&fake, extra).await;
        let video = &done["steps"][2]["content"][0];
        assert!(video["uri"].is_null(), "{delivery:?}: {video}");
        let data = video["data"].as_str().unwrap();
        assert!(data.len() > 1000 && data.len() % 4 == 0, "{delivery:?}");
        assert_eq!(fake.downloads(), 1, "{delivery:?}");
    }
    // Told to link whatever was asked.
    let fake = Fake::start(Provider::Veo, Script::Succeed).await;
    fake.set_video_delivery(Delivery::Uri);
    let (_, done) = drive_omni(&fake, json!({})).await;
    assert!(done["steps"][2]["content"][0]["uri"].is_string(), "{done}");

    // Not in the background: the create answers once done, with the output steps only.
    let fake = Fake::start(Provider::Veo, Script::Succeed).await;
    let answer = omni_create(&client, &fake.base_url(), API_KEY, json!({"background": false})).send().await.unwrap();
    let done = json_of(answer).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["steps"][0]["type"], "thought", "no user_input step in a create's answer: {done}");
    assert!(fake.violations().is_empty() && fake.answer_violations().is_empty());
    assert!(fake.answers_checked() >= 1);

    // Unknown interactions are 404s in the Interactions error shape.
    let url = format!("{}/v1beta/interactions/v1_nothing", fake.base_url());
    let missing = authed(Provider::Veo, client.get(url), API_KEY).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(missing).await["error"]["code"], "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gemini_omni_refuses_fails_throttles_and_breaks_in_its_own_shapes() {
    let client = Client::new();
    // A safety refusal: the model output's google.rpc.Status.
    let fake = Fake::start(Provider::Veo, Script::Moderation).await;
    let (_, done) = drive_omni(&fake, json!({})).await;
    assert_eq!(done["status"], "failed");
    let error = &done["steps"].as_array().unwrap().last().unwrap()["error"];
    assert_eq!(error["code"], 3);
    assert!(error["message"].as_str().unwrap().contains("safety filters"), "{done}");
    assert_eq!(fake.downloads(), 0);

    // An ordinary failure: the interaction's errors, with string codes.
    let fake = Fake::start(Provider::Veo, Script::Fail).await;
    let (_, done) = drive_omni(&fake, json!({})).await;
    assert_eq!((done["status"].as_str(), done["errors"][0]["code"].as_str()), (Some("failed"), Some("internal")));

    // 429s with Retry-After and 500s, then the create goes through.
    for script in [Script::RateLimited { retry_after_secs: 3, times: 2 }, Script::ServerError { times: 2 }] {
        let fake = Fake::start(Provider::Veo, script.clone()).await;
        for _ in 0..2 {
            let answer = omni_create(&client, &fake.base_url(), API_KEY, json!({})).send().await.unwrap();
            let retry_after = answer.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let status = answer.status();
            let body = json_of(answer).await;
            assert!(body["error"]["code"].is_string() && body["error"]["message"].is_string(), "{body}");
            if let Script::RateLimited { .. } = script {
                assert_eq!((status, retry_after.as_deref()), (StatusCode::TOO_MANY_REQUESTS, Some("3")));
            } else {
                assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
        let (states, _) = drive_omni(&fake, json!({})).await;
        assert_eq!(states.last().map(String::as_str), Some("completed"), "{script:?}");
        assert_eq!(fake.submissions(), 3);
    }

    // A cut-off answer.
    let fake = Fake::start(Provider::Veo, Script::MalformedJson).await;
    let answer = omni_create(&client, &fake.base_url(), API_KEY, json!({})).send().await.unwrap();
    assert!(serde_json::from_str::<Value>(&answer.text().await.unwrap()).is_err());

    // Requests outside the contract are refused (400) and recorded: a duration without its unit
    // (js-genai #1808), a resolution the preview does not offer, a field the API does not have.
    for extra in [
        json!({"response_format": {"type": "video", "duration": 6}}),
        json!({"response_format": {"type": "video", "resolution": "1080p"}}),
        json!({"response_format": {"type": "video", "duration": "12s"}}),
        json!({"negative_prompt": "blur"}),
        json!({"model": "veo-3.1-fast-generate-preview"}),
    ] {
        let fake = Fake::start(Provider::Veo, Script::Succeed).await;
        let answer = omni_create(&client, &fake.base_url(), API_KEY, extra.clone()).send().await.unwrap();
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "{extra}");
        assert_eq!(fake.violations().len(), 1, "{extra}: {:?}", fake.violations());
        assert_eq!(fake.submissions(), 0, "{extra}");
    }
    // A wrong key never gets that far.
    let fake = Fake::start(Provider::Veo, Script::Succeed).await;
    let answer = omni_create(&client, &fake.base_url(), "wrong-key", json!({})).send().await.unwrap();
    assert_eq!(answer.status(), StatusCode::UNAUTHORIZED);
}
