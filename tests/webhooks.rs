//! Webhooks (SPEC §8.6) on the test backend (`AIVIDEO_TEST_BACKEND=aws`: DynamoDB and SQS on
//! moto). Every delivery is checked by a receiver on loopback that verifies its signature with
//! the `standardwebhooks` package (tests/webhooks/receiver.py), not with our code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use support::{API, Server, TestApp, cli_token, join_all, planned_story};

/// The receiver process, stopped when dropped (its stdin closes).
struct Receiver {
    base: String,
    child: std::process::Child,
}

impl Receiver {
    fn start() -> Self {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut child = Command::new(root.join(".venv/bin/python"))
            .arg(root.join("tests/webhooks/receiver.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python with standardwebhooks: run ./scripts/install-test-deps");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("the receiver printed {line:?}"));
        Self { base: format!("http://127.0.0.1:{port}"), child }
    }

    /// Sets up a receiver at `path` for `secret`.
    async fn configure(&self, path: &str, secret: &str, answers: &[u16], hang: bool) {
        let reply = support::client()
            .post(format!("{}/_config", self.base))
            .json(&json!({"path": path, "secret": secret, "answers": answers, "hang": hang}))
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success());
    }

    /// What reached `path`, in order.
    async fn log(&self, path: &str) -> Vec<Value> {
        let reply = support::client().get(format!("{}/_log?path={path}", self.base)).send().await.unwrap();
        reply.json::<Vec<Value>>().await.unwrap()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An app whose webhooks may reach loopback receivers, retry 10 000× faster than the schedule and
/// wait `timeout_ms` for an answer.
async fn app_with(timeout_ms: u64) -> TestApp {
    TestApp::with(&[], |c| {
        c.worker.poll_ms = 100;
        c.worker.lease_seconds = 3;
        c.webhooks.allow_loopback = true;
        c.webhooks.retry_scale = 0.0001;
        c.webhooks.timeout_ms = timeout_ms;
    })
    .await
}

/// Registers an endpoint for `user` at the receiver's `path`; its creation answer.
async fn register(app: &TestApp, user: &str, receiver: &Receiver, path: &str, body: Value) -> Value {
    let mut body = body;
    body["url"] = json!(format!("{}{path}", receiver.base));
    let created = app.post(&format!("{API}/webhooks/"), user, body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    created.body
}

/// Runs the dispatcher (three rounds at once: fan-outs and attempts race) until `done` says so.
async fn deliver_until<F, Fut>(app: &TestApp, what: &str, done: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        join_all((0..3).map(|_| app.state.webhooks.run_once())).await.into_iter().for_each(|r| {
            r.unwrap();
        });
        if done().await {
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "still waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn lighthouse() -> Value {
    json!({"title": "Lighthouse", "duration_seconds": 6, "fps": 24, "resolution": "640x360", "ai_provider": "local"})
}

async fn events_of(app: &TestApp, user: &str) -> Vec<Value> {
    let mut path = format!("{API}/events/?page_size=100");
    let mut all = Vec::new();
    loop {
        let reply = app.get(&path, user).await;
        assert_eq!(reply.status, StatusCode::OK);
        all.extend(reply.body["results"].as_array().unwrap().iter().cloned());
        match reply.body["next"].as_str() {
            Some(next) => path = next.trim_start_matches("http://testserver").to_owned(),
            None => return all,
        }
    }
}

async fn log_of(app: &TestApp, user: &str, webhook: &str) -> Vec<Value> {
    app.results(&format!("{API}/webhooks/{webhook}/deliveries/?page_size=100"), user).await
}

#[tokio::test]
async fn every_event_of_a_render_reaches_the_endpoint_once_signed_so_standard_webhooks_verifies_it() {
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    let created = register(&app, "alice", &receiver, "/all", json!({"description": "everything"})).await;
    let secret = created["secret"].as_str().unwrap();
    assert!(secret.starts_with("whsec_") && secret.len() >= 6 + 32, "{secret}");
    receiver.configure("/all", secret, &[200], false).await;
    let id = created["id"].as_str().unwrap();
    // The secret is shown once.
    let read = app.get(&format!("{API}/webhooks/{id}/"), "alice").await;
    assert_eq!(read.status, StatusCode::OK);
    assert!(read.body.get("secret").is_none(), "{}", read.body);
    assert_eq!(read.body["event_types"], json!([]));
    assert_eq!(read.body["is_active"], true);
    // One that takes finished renders only.
    let only = register(&app, "alice", &receiver, "/finished", json!({"event_types": ["render.finished"]})).await;
    receiver.configure("/finished", only["secret"].as_str().unwrap(), &[204], false).await;

    let story = planned_story(&app, "alice", lighthouse(), 3).await;
    let preview = app.post(&format!("{API}/stories/{story}/generate_preview/"), "alice", json!({})).await;
    assert_eq!(preview.status, StatusCode::ACCEPTED);
    app.work_until(&app.worker, 2, &story, "PREVIEW_READY").await;

    let events = events_of(&app, "alice").await;
    assert!(events.len() > 10, "a render makes many events: {}", events.len());
    let expected: BTreeSet<String> = events.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect();
    deliver_until(&app, "every event at /all", || async {
        receiver.log("/all").await.len() >= expected.len()
            && receiver.log("/finished").await.len() == 1
            && log_of(&app, "alice", id).await.len() >= expected.len()
    })
    .await;

    let received = receiver.log("/all").await;
    assert!(received.iter().all(|r| r["verified"] == true), "every signature verifies: {received:?}");
    let ids: Vec<String> = received.iter().map(|r| r["webhook_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(ids.len(), expected.len(), "each event once, with three dispatchers racing: {ids:?}");
    assert_eq!(ids.iter().cloned().collect::<BTreeSet<_>>(), expected);
    // The body is the event as the feed shows it.
    let by_id: BTreeMap<&str, &Value> = events.iter().map(|e| (e["id"].as_str().unwrap(), e)).collect();
    for r in &received {
        let body: Value = serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
        assert_eq!(&&body, by_id.get(r["webhook_id"].as_str().unwrap()).unwrap());
        let sent_at: i64 = r["timestamp"].as_str().unwrap().parse().unwrap();
        assert!((chrono::Utc::now().timestamp() - sent_at).abs() < 120);
    }
    let finished = receiver.log("/finished").await;
    let body: Value = serde_json::from_str(finished[0]["body"].as_str().unwrap()).unwrap();
    assert_eq!((body["type"].as_str(), body["data"]["stage"].as_str()), (Some("render.finished"), Some("preview")));
    assert_eq!(finished[0]["verified"], true);

    // The log: one successful attempt per event, newest first.
    let log = log_of(&app, "alice", id).await;
    assert_eq!(log.len(), expected.len());
    assert!(log.iter().all(|a| a["status_code"] == 200 && a["attempt"] == 1 && a["error"].is_null()));
    let times: Vec<&str> = log.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] > w[1]), "newest first");
    let read = app.get(&format!("{API}/webhooks/{id}/"), "alice").await;
    assert_eq!(read.body["consecutive_failures"], 0);
}

#[tokio::test]
async fn a_receiver_answering_500_then_200_gets_the_event_twice_with_the_same_webhook_id() {
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    let created = register(&app, "alice", &receiver, "/flaky", json!({})).await;
    let id = created["id"].as_str().unwrap();
    receiver.configure("/flaky", created["secret"].as_str().unwrap(), &[500, 200], false).await;

    let ping = app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
    assert_eq!(ping.status, StatusCode::ACCEPTED, "{}", ping.body);
    assert_eq!(ping.body["event"]["type"], "webhook.ping");
    deliver_until(&app, "the retry", || async { receiver.log("/flaky").await.len() >= 2 }).await;

    let received = receiver.log("/flaky").await;
    assert_eq!(received.len(), 2);
    assert_eq!(received[0]["webhook_id"], received[1]["webhook_id"], "a retry keeps the webhook-id");
    assert_eq!(received[0]["webhook_id"], ping.body["event"]["id"]);
    assert_eq!((received[0]["status"].as_u64(), received[1]["status"].as_u64()), (Some(500), Some(200)));
    assert!(received.iter().all(|r| r["verified"] == true));
    let log = log_of(&app, "alice", id).await;
    let attempts: Vec<(u64, u64)> =
        log.iter().map(|a| (a["attempt"].as_u64().unwrap(), a["status_code"].as_u64().unwrap())).collect();
    assert_eq!(attempts, [(2, 200), (1, 500)]);
    assert!(log[1]["response_excerpt"].as_str().unwrap().contains("received"));
    // A ping is delivered, never listed in the feed.
    assert!(events_of(&app, "alice").await.iter().all(|e| e["type"] != "webhook.ping"));

    // Redelivery: the same event again, same webhook-id, a third log entry.
    let first = log[1]["id"].as_str().unwrap();
    let again = app.post(&format!("{API}/webhooks/{id}/deliveries/{first}/redeliver/"), "alice", json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "{}", again.body);
    deliver_until(&app, "the redelivery", || async { receiver.log("/flaky").await.len() >= 3 }).await;
    let received = receiver.log("/flaky").await;
    assert_eq!(received[2]["webhook_id"], received[0]["webhook_id"]);
    assert_eq!(log_of(&app, "alice", id).await[0]["attempt"], 3);
    let missing = app
        .post(&format!("{API}/webhooks/{id}/deliveries/01ARZ3NDEKTSV4RRFFQ69G5FAV/redeliver/"), "alice", json!({}))
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_redirect_is_not_followed_and_counts_as_a_failed_attempt() {
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    let created = register(&app, "alice", &receiver, "/moved", json!({})).await;
    let id = created["id"].as_str().unwrap();
    receiver.configure("/moved", created["secret"].as_str().unwrap(), &[307, 200], false).await;
    app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
    deliver_until(&app, "the retry after the redirect", || async { log_of(&app, "alice", id).await.len() >= 2 }).await;
    let log = log_of(&app, "alice", id).await;
    assert_eq!(
        (log[1]["status_code"].as_u64(), log[1]["error"].as_str()),
        (Some(307), Some("Redirects are not followed."))
    );
    assert_eq!((log[0]["status_code"].as_u64(), log[0]["error"].is_null()), (Some(200), true));
    assert_eq!(receiver.log("/moved").await.len(), 2, "both attempts reached the receiver, nothing else did");
}

#[tokio::test]
async fn a_receiver_that_never_answers_is_retried_on_the_schedule_and_disabled_after_20_failures() {
    let app = app_with(300).await;
    let receiver = Receiver::start();
    let created = register(&app, "alice", &receiver, "/silent", json!({})).await;
    let id = created["id"].as_str().unwrap();
    receiver.configure("/silent", created["secret"].as_str().unwrap(), &[200], true).await;
    // Three events: 8 attempts each at most (the first and 7 retries); the 20th failure disables.
    for _ in 0..3 {
        let ping = app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
        assert_eq!(ping.status, StatusCode::ACCEPTED);
    }
    deliver_until(&app, "the endpoint to be disabled", || async {
        app.get(&format!("{API}/webhooks/{id}/"), "alice").await.body["is_active"] == false
    })
    .await;

    let read = app.get(&format!("{API}/webhooks/{id}/"), "alice").await.body;
    assert_eq!(read["consecutive_failures"], 20);
    assert_eq!(read["disabled_reason"], "Disabled after 20 consecutive failed deliveries.");
    // Attempts under way when the 20th failure disabled it (of the other two events) finish and
    // are logged; none starts after it.
    let log = log_of(&app, "alice", id).await;
    assert!((20..=22).contains(&log.len()), "{} attempts", log.len());
    for _ in 0..5 {
        app.state.webhooks.run_once().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(log_of(&app, "alice", id).await.len(), log.len(), "no attempt after the endpoint was disabled");
    assert!(log.iter().all(|a| a["status_code"].is_null() && a["error"].as_str().unwrap().contains("No answer")));
    // Each event's attempts come one after the other, on the (scaled) schedule.
    let mut per_event: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for a in log.iter().rev() {
        per_event.entry(a["event"].as_str().unwrap().to_owned()).or_default().push(a["attempt"].as_u64().unwrap());
    }
    assert_eq!(per_event.len(), 3);
    for attempts in per_event.values() {
        assert_eq!(attempts, &(1..=attempts.len() as u64).collect::<Vec<_>>());
        assert!(attempts.len() <= 8);
    }
    assert_eq!(receiver.log("/silent").await.len(), log.len(), "every attempt reached the receiver");
    let disabled: Vec<Value> =
        events_of(&app, "alice").await.into_iter().filter(|e| e["type"] == "webhook.disabled").collect();
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0]["data"]["webhook"], id);

    // Disabled: no ping; switched on again, it starts from zero failures.
    let ping = app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
    assert_eq!(ping.status, StatusCode::CONFLICT);
    let on = app.patch(&format!("{API}/webhooks/{id}/"), "alice", json!({"is_active": true})).await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!((on.body["consecutive_failures"].as_u64(), on.body["disabled_reason"].is_null()), (Some(0), true));
}

#[tokio::test]
async fn private_and_metadata_addresses_are_refused_at_creation_and_at_every_delivery() {
    // The production policy: no loopback.
    let strict = TestApp::new().await;
    for url in [
        "https://169.254.169.254/latest/meta-data/",
        "https://10.0.0.7/hook",
        "https://192.168.1.1/hook",
        "https://100.64.0.1/hook",
        "https://[::1]/hook",
        "https://[fd00:ec2::254]/hook",
        "https://127.0.0.1:8443/hook",
        "https://localhost/hook",
        "http://203.0.113.9/hook",
        "https://user:pw@example.com/hook",
        "ftp://example.com/hook",
    ] {
        let refused = strict.post(&format!("{API}/webhooks/"), "alice", json!({"url": url})).await;
        assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{url}: {}", refused.body);
        assert!(refused.body["url"].is_array(), "{url}: {}", refused.body);
    }
    assert!(strict.results(&format!("{API}/webhooks/"), "alice").await.is_empty(), "nothing written");

    // An endpoint accepted once (here: by the loopback test setting) is checked again at each
    // attempt: a dispatcher under the production policy refuses to connect.
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    let https = receiver.base.replace("http://", "https://");
    let created = app.post(&format!("{API}/webhooks/"), "alice", json!({"url": format!("{https}/a")})).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let id = created.body["id"].as_str().unwrap();
    receiver.configure("/a", created.body["secret"].as_str().unwrap(), &[200], false).await;
    let production =
        app.state.webhooks.with_sender(Arc::new(shared::adapters::webhook_sender::HttpWebhookSender::default()));
    app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
    let started = Instant::now();
    while log_of(&app, "alice", id).await.is_empty() {
        production.run_once().await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = log_of(&app, "alice", id).await;
    let error = log[0]["error"].as_str().unwrap();
    assert!(error.contains("127.0.0.1") && error.contains("not a public address"), "{error}");
    assert!(receiver.log("/a").await.is_empty(), "nothing reached the receiver");
}

#[tokio::test]
async fn another_user_never_sees_a_webhook_or_its_deliveries() {
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    let created = register(&app, "alice", &receiver, "/mine", json!({})).await;
    let id = created["id"].as_str().unwrap();
    receiver.configure("/mine", created["secret"].as_str().unwrap(), &[200], false).await;
    app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
    deliver_until(&app, "the ping", || async { !log_of(&app, "alice", id).await.is_empty() }).await;
    let attempt = log_of(&app, "alice", id).await[0]["id"].as_str().unwrap().to_owned();

    assert!(app.results(&format!("{API}/webhooks/"), "bob").await.is_empty());
    let base = format!("{API}/webhooks/{id}");
    for (method, path, body) in [
        (Method::GET, format!("{base}/"), None),
        (Method::PATCH, format!("{base}/"), Some(r#"{"description": "mine now"}"#)),
        (Method::PATCH, format!("{base}/"), Some(r#"{"url": 7}"#)),
        (Method::DELETE, format!("{base}/"), None),
        (Method::GET, format!("{base}/deliveries/"), None),
        (Method::POST, format!("{base}/deliveries/{attempt}/redeliver/"), Some("{}")),
        (Method::POST, format!("{base}/ping/"), Some("{}")),
    ] {
        let reply = app.send(method.clone(), &path, Some("bob"), body, &[]).await;
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{method} {path}: {}", reply.body);
    }
    assert!(events_of(&app, "bob").await.is_empty());
    // Still alice's, unchanged.
    let read = app.get(&format!("{base}/"), "alice").await;
    assert_eq!((read.status, read.body["description"].as_str()), (StatusCode::OK, Some("")));
    let gone = app.send(Method::DELETE, &format!("{base}/"), Some("alice"), None, &[]).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("{base}/deliveries/"), "alice").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn bad_webhook_input_is_refused_with_the_field_named_and_nothing_written() {
    let app = app_with(2000).await;
    for (body, field) in [
        (json!({}), "url"),
        (json!({"url": 7}), "url"),
        (json!({"url": ""}), "url"),
        (json!({"url": "https://example.com/", "event_types": ["story.moved"]}), "event_types"),
        (json!({"url": "https://example.com/", "event_types": "render.finished"}), "event_types"),
        (json!({"url": "https://example.com/", "event_types": ["webhook.ping"]}), "event_types"),
        (json!({"url": "https://example.com/", "description": "x".repeat(501)}), "description"),
        (json!({"url": "https://example.com/", "is_active": "yes"}), "is_active"),
        (json!({"url": format!("https://example.com/{}", "a".repeat(2100))}), "url"),
    ] {
        let reply = app.post(&format!("{API}/webhooks/"), "alice", body.clone()).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}: {}", reply.body);
        assert!(reply.body[field].is_array(), "{body}: {}", reply.body);
    }
    let not_json = app.send(Method::POST, &format!("{API}/webhooks/"), Some("alice"), Some("[1]"), &[]).await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    assert!(app.results(&format!("{API}/webhooks/"), "alice").await.is_empty());
    assert_eq!(app.get(&format!("{API}/webhooks/nope/"), "alice").await.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_webhooks_lambda_fans_out_on_its_stream_event_and_delivers_on_its_queue_event() {
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    // The events' user (events/dispatcher-*.json).
    let created = register(&app, "demo-user", &receiver, "/lambda", json!({})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    receiver.configure("/lambda", created["secret"].as_str().unwrap(), &[200], false).await;
    planned_story(&app, "demo-user", lighthouse(), 3).await;
    let events = events_of(&app, "demo-user").await;
    assert!(!events.is_empty());

    let read = |name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(format!("events/{name}.json")).unwrap()).unwrap()
    };
    // A new item in demo-user's event partition: their endpoints get their deliveries.
    let answer = webhooks::handle_event(&app.state.webhooks, read("dispatcher-stream")).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    // The queue's record names one delivery: the first event's.
    let first = events[0]["id"].as_str().unwrap();
    let queue = std::fs::read_to_string("events/dispatcher-queue.json")
        .unwrap()
        .replace("WEBHOOK_ID", &id)
        .replace("EVENT_ID", first);
    let answer = webhooks::handle_event(&app.state.webhooks, serde_json::from_str(&queue).unwrap()).await;
    assert_eq!(answer, json!({"batchItemFailures": []}));
    let received = receiver.log("/lambda").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!((received[0]["webhook_id"].as_str(), received[0]["verified"].as_bool()), (Some(first), Some(true)));
    // Delivered: the same record again (SQS delivers at least once) sends nothing.
    webhooks::handle_event(&app.state.webhooks, serde_json::from_str(&queue).unwrap()).await;
    assert_eq!(receiver.log("/lambda").await.len(), 1);
    // The scheduled fan-out finds nothing new to add.
    let answer = webhooks::handle_event(&app.state.webhooks, read("dispatcher-schedule")).await;
    assert_eq!(answer, json!({"sent": 0}));
}

/// `aivideo serve` killed at `point` (AIVIDEO_CRASH_AT) while delivering one event, then
/// restarted: what the receiver got, and the endpoint's log.
async fn crash_while_delivering(point: &str) -> (Vec<Value>, Vec<Value>) {
    crash_while_delivering_on(point, false).await
}

/// The same on `moto` (DynamoDB and the webhook queue on SQS) or the embedded backend. The
/// delivery must arrive within `limit` of the restart.
async fn crash_while_delivering_on(point: &str, moto: bool) -> (Vec<Value>, Vec<Value>) {
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--webhooks-to-loopback"];
    let mut envs: Vec<(String, String)> = Vec::new();
    let token = if moto {
        let names = support::fresh_aws_names();
        let clients = support::aws_clients().await;
        clients.secrets.create_secret().name(&names.jwt_secret).secret_string(support::SECRET).send().await.unwrap();
        flags.extend(["--backend", "aws", "--create-resources"]);
        for (k, v) in [
            ("AWS_ENDPOINT_URL", support::moto_endpoint()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_EC2_METADATA_DISABLED", "true".into()),
            ("AIVIDEO_TABLE", names.table),
            ("AIVIDEO_QUEUE_PREFIX", names.queue_prefix),
            ("AIVIDEO_BUCKET", names.bucket),
            ("AIVIDEO_JWT_SECRET_NAME", names.jwt_secret),
        ] {
            envs.push((k.to_owned(), v));
        }
        support::token("alice")
    } else {
        cli_token(dir.path(), "alice")
    };
    let start = |envs: &[(String, String)]| {
        let pairs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        Server::start_with(dir.path(), &flags, &pairs)
    };
    let receiver = Receiver::start();
    let mut crashing = envs.clone();
    crashing.push(("AIVIDEO_CRASH_AT".to_owned(), point.to_owned()));
    let mut server = start(&crashing);
    let (status, created) = server
        .call(&token, reqwest::Method::POST, "/webhooks/", json!({"url": format!("{}/crash", receiver.base)}))
        .await;
    assert_eq!(status, 201, "{created}");
    receiver.configure("/crash", created["secret"].as_str().unwrap(), &[200], false).await;
    let webhook = created["id"].as_str().unwrap().to_owned();
    // One change, one event: the story's first move.
    let (_, story) = server.call(&token, reqwest::Method::POST, "/stories/", lighthouse()).await;
    let path = format!("/stories/{}/transition/", story["id"].as_str().unwrap());
    let (status, moved) = server.call(&token, reqwest::Method::POST, &path, json!({"to": "PLANNING"})).await;
    assert_eq!(status, 200, "{moved}");
    let started = Instant::now();
    while server.child.try_wait().unwrap().is_none() {
        assert!(started.elapsed() < Duration::from_secs(30), "the server did not reach {point}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let server = start(&envs);
    let log_path = format!("/webhooks/{webhook}/deliveries/");
    let started = Instant::now();
    loop {
        let (_, log) = server.call(&token, reqwest::Method::GET, &log_path, Value::Null).await;
        if !log["results"].as_array().unwrap().is_empty() {
            break;
        }
        // At once: no lease or message of the dead process to wait out.
        assert!(started.elapsed() < Duration::from_secs(8), "not delivered within 8 s of the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Anything a second, mistaken attempt would send comes within a few rounds.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (_, log) = server.call(&token, reqwest::Method::GET, &log_path, Value::Null).await;
    (receiver.log("/crash").await, log["results"].as_array().unwrap().clone())
}

#[tokio::test]
async fn killed_after_adding_deliveries_the_restarted_server_delivers_each_event_once() {
    let (received, log) = crash_while_delivering("webhook.fanned_out").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["verified"], true);
    assert_eq!(log.len(), 1, "{log:?}");
}

#[tokio::test]
async fn killed_after_adding_deliveries_on_dynamodb_the_restart_sends_their_messages_at_once() {
    // The deliveries are in the table, their SQS messages were never sent: the next fan-out
    // finds them past the cursor the dead one did not move, and sends them.
    let (received, log) = crash_while_delivering_on("webhook.fanned_out", true).await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0]["verified"], true);
    assert_eq!(log.len(), 1, "{log:?}");
}

#[tokio::test]
async fn killed_after_claiming_a_delivery_the_restarted_server_makes_it_at_once_and_once() {
    let (received, log) = crash_while_delivering("webhook.claimed").await;
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!((log.len(), log[0]["attempt"].as_u64(), log[0]["status_code"].as_u64()), (1, Some(1), Some(200)));
}

#[tokio::test]
async fn killed_after_sending_before_recording_the_event_comes_again_with_the_same_webhook_id() {
    // The receiver answered, the server died before writing it down: Standard Webhooks is
    // at-least-once, and the webhook-id is what a receiver deduplicates on.
    let (received, log) = crash_while_delivering("webhook.sent").await;
    assert_eq!(received.len(), 2, "{received:?}");
    assert_eq!(received[0]["webhook_id"], received[1]["webhook_id"]);
    assert!(received.iter().all(|r| r["verified"] == true));
    assert_eq!((log.len(), log[0]["status_code"].as_u64()), (1, Some(200)));
}

#[tokio::test]
async fn the_delivery_log_is_forgotten_with_the_events_it_delivered_and_a_delivery_under_way_is_not_restarted() {
    let app = app_with(2000).await;
    let receiver = Receiver::start();
    let created = register(&app, "alice", &receiver, "/old", json!({})).await;
    let id = created["id"].as_str().unwrap();
    receiver.configure("/old", created["secret"].as_str().unwrap(), &[200], false).await;
    app.post(&format!("{API}/webhooks/{id}/ping/"), "alice", json!({})).await;
    deliver_until(&app, "the ping", || async { !log_of(&app, "alice", id).await.is_empty() }).await;
    if support::backend() == "embedded" {
        // The sweep's horizon passes the log's entries: gone, as the events are.
        let later = chrono::Utc::now() + chrono::Duration::days(1);
        shared::ports::EventStore::forget_events_before(app.state.events.as_ref(), later).await.unwrap();
        assert!(log_of(&app, "alice", id).await.is_empty());
    }
    // (On DynamoDB the items carry `expires_at` for the table's TTL, as the events do.)

    // A delivery held by an attempt under way: redelivery waits (409), so the attempt can record.
    let hanging = register(&app, "alice", &receiver, "/slow", json!({})).await;
    let slow = hanging["id"].as_str().unwrap().to_owned();
    receiver.configure("/slow", hanging["secret"].as_str().unwrap(), &[200], false).await;
    app.post(&format!("{API}/webhooks/{slow}/ping/"), "alice", json!({})).await;
    deliver_until(&app, "the first ping", || async { !log_of(&app, "alice", &slow).await.is_empty() }).await;
    let entry = log_of(&app, "alice", &slow).await[0]["id"].as_str().unwrap().to_owned();
    receiver.configure("/slow", hanging["secret"].as_str().unwrap(), &[200], true).await;
    let again = app.post(&format!("{API}/webhooks/{slow}/deliveries/{entry}/redeliver/"), "alice", json!({})).await;
    assert_eq!(again.status, StatusCode::ACCEPTED);
    let webhooks = app.state.webhooks.clone();
    let under_way = tokio::spawn(async move { webhooks.run_once().await });
    let started = Instant::now();
    while receiver.log("/slow").await.len() < 2 {
        assert!(started.elapsed() < Duration::from_secs(20), "the redelivery was not attempted");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let refused = app.post(&format!("{API}/webhooks/{slow}/deliveries/{entry}/redeliver/"), "alice", json!({})).await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.body);
    under_way.await.unwrap().unwrap();
    let log = log_of(&app, "alice", &slow).await;
    assert_eq!(log.len(), 2, "the attempt under way recorded itself: {log:?}");
    assert!(log[0]["error"].as_str().unwrap().contains("No answer"));
}
