//! Test harness: the real router in-process on a fresh embedded store, and helpers to start the
//! real `aivideo` binary.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use shared::config::{AuthConfig, Config};
use tower::ServiceExt;

pub const SECRET: &str = "test-secret-for-the-suite";

pub struct TestApp {
    pub router: Router,
    /// What the API's handlers reach.
    pub state: shared::http::AppState,
    /// The worker, as `aivideo serve` runs it.
    pub worker: std::sync::Arc<shared::services::Worker>,
    /// The consuming side of the job queue.
    pub inbox: std::sync::Arc<dyn shared::ports::JobInbox>,
    /// On the embedded backend: the restart recovery and the sweep.
    pub recovery: Option<std::sync::Arc<shared::adapters::embedded::EmbeddedQueue>>,
    /// The sweep against the store (the worker's scheduled event on AWS).
    pub sweeper: shared::services::Sweeper,
    pub dir: tempfile::TempDir,
    /// AWS calls made by this app (on the `aws` backend).
    pub calls: Option<shared::adapters::aws::CallCounter>,
}

/// Which backend the API tests run on: `AIVIDEO_TEST_BACKEND=aws` runs them on the AWS adapters
/// against moto's server; anything else (the default) on the embedded store.
pub fn backend() -> &'static str {
    static BACKEND: OnceLock<&'static str> = OnceLock::new();
    BACKEND.get_or_init(|| match std::env::var("AIVIDEO_TEST_BACKEND").as_deref() {
        Ok("aws") => "aws",
        _ => "embedded",
    })
}

struct Moto {
    endpoint: String,
    // Held open for the life of the test process: moto exits when it closes.
    _stdin: Mutex<std::process::ChildStdin>,
}

/// moto's server (atomic for DynamoDB, see tests/aws/moto_server.py), started once per test binary.
pub fn moto_endpoint() -> String {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let python =
            std::env::var("AIVIDEO_MOTO_PYTHON").map(PathBuf::from).unwrap_or_else(|_| root.join(".venv/bin/python"));
        let mut child = Command::new(&python)
            .arg(root.join("tests/aws/moto_server.py"))
            .args(["0", "--exit-with-parent"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start moto with {} ({e}); run ./scripts/install-test-deps", python.display())
            });
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| panic!("moto did not print its port: {line:?}"));
        let stdin = child.stdin.take().unwrap();
        std::mem::forget(child);
        Moto { endpoint: format!("http://127.0.0.1:{port}"), _stdin: Mutex::new(stdin) }
    })
    .endpoint
    .clone()
}

/// AWS clients pointed at moto (loopback only, dummy credentials).
pub async fn aws_clients() -> shared::adapters::aws::AwsClients {
    let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(moto_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    shared::adapters::aws::AwsClients::from_config(&sdk)
}

/// Fresh resource names, so every test has its own table, queues, bucket and secret.
pub fn fresh_aws_names() -> shared::adapters::aws::AwsNames {
    let tag = ulid::Ulid::new().to_string().to_lowercase();
    shared::adapters::aws::AwsNames {
        table: format!("t-{tag}"),
        queue_prefix: format!("q-{tag}"),
        bucket: format!("b-{tag}"),
        jwt_secret: format!("s-{tag}"),
        queue_urls: None,
        webhook_queue_url: None,
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
}

impl Reply {
    pub fn etag(&self) -> String {
        self.headers.get("etag").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
    }
}

/// A token for `user`; users whose name starts with `admin` carry the `admin` role.
pub fn token(user: &str) -> String {
    shared::http::auth::issue_hs256_token(SECRET, user, user.starts_with("admin"), Duration::from_secs(3600)).unwrap()
}

impl TestApp {
    pub async fn new() -> Self {
        Self::with(&[], |_| {}).await
    }

    /// An app on the test backend with `secrets` in its secret source and `adjust` applied to its
    /// configuration.
    pub async fn with(secrets: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> Self {
        Self::with_backend(backend(), secrets, adjust).await
    }

    /// Like `with`, on a named backend (`embedded` or `aws`) whatever the environment says.
    pub async fn with_backend(backend: &str, secrets: &[(&str, &str)], adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = config_on(dir.path());
        adjust(&mut config);
        if backend == "aws" {
            let clients = aws_clients().await;
            for (name, value) in secrets {
                clients.secrets.create_secret().name(*name).secret_string(*value).send().await.unwrap();
            }
            config.backend = shared::config::Backend::Aws;
            config.aws = fresh_aws_names();
            config.create_resources = true;
            let calls = clients.calls.clone();
            let local = shared::runtime::build_local_on_aws(&config, clients).await.unwrap();
            return Self::of(local, &config, dir, Some(calls));
        }
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        for (name, value) in secrets {
            std::fs::write(dir.path().join("secrets").join(name), value).unwrap();
        }
        let local = shared::runtime::build_local(&config).await.unwrap();
        Self::of(local, &config, dir, None)
    }

    fn of(
        local: shared::runtime::Local,
        config: &Config,
        dir: tempfile::TempDir,
        calls: Option<shared::adapters::aws::CallCounter>,
    ) -> Self {
        Self {
            router: aivideo::app(&local, config),
            state: local.api,
            worker: local.jobs.worker,
            inbox: local.jobs.inbox,
            recovery: local.jobs.recovery,
            sweeper: local.jobs.sweeper,
            dir,
            calls,
        }
    }

    /// The whole API on `data_dir`, with `adjust` applied to the configuration.
    pub async fn router_for(data_dir: &Path, adjust: impl FnOnce(&mut Config)) -> Router {
        let mut config = config_on(data_dir);
        adjust(&mut config);
        aivideo::app(&shared::runtime::build_local(&config).await.unwrap(), &config)
    }

    /// Sends a request as `user` (None: no token) with a JSON body and extra headers.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        user: Option<&str>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Reply {
        let mut request = Request::builder().method(method).uri(path).header("host", "testserver");
        if let Some(user) = user {
            request = request.header("authorization", format!("Bearer {}", token(user)));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let request = request.body(Body::from(body.unwrap_or("").to_owned())).unwrap();
        reply(self.router.clone().oneshot(request).await.unwrap()).await
    }

    pub async fn get(&self, path: &str, user: &str) -> Reply {
        self.send(Method::GET, path, Some(user), None, &[]).await
    }

    pub async fn post(&self, path: &str, user: &str, body: Value) -> Reply {
        self.send(Method::POST, path, Some(user), Some(&body.to_string()), &[]).await
    }

    pub async fn patch(&self, path: &str, user: &str, body: Value) -> Reply {
        self.send(Method::PATCH, path, Some(user), Some(&body.to_string()), &[]).await
    }

    pub async fn create_story(&self, user: &str, body: Value) -> String {
        let reply = self.post("/api/ai-video/stories/", user, body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
        reply.body["id"].as_str().unwrap().to_owned()
    }

    pub async fn transition(&self, id: &str, user: &str, to: &str) -> Reply {
        self.post(&format!("/api/ai-video/stories/{id}/transition/"), user, serde_json::json!({"to": to})).await
    }
}

pub async fn reply(response: axum::response::Response) -> Reply {
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    Reply { status, headers, body }
}

/// The real binary, started with `serve` on an OS-chosen port.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Server {
    pub fn start(data_dir: &Path, envs: &[(&str, &str)]) -> Server {
        Self::start_with(data_dir, &[], envs)
    }

    /// `serve` with extra flags.
    pub fn start_with(data_dir: &Path, flags: &[&str], envs: &[(&str, &str)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_aivideo"));
        command
            .args(["serve", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(flags)
            .env_remove("JWT_SECRET")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in envs {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut lines = BufReader::new(stderr).lines();
        let base = loop {
            let line = lines.next().expect("server exited before listening").unwrap();
            if let Some(rest) = line.strip_prefix("aivideo: listening on ") {
                break rest.split_whitespace().next().unwrap().trim_end_matches("/api/ai-video/").to_owned();
            }
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn kill9(&mut self) {
        // Child::kill sends SIGKILL: no shutdown code runs, as in a crash.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn aivideo(args: &[&str], envs: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_aivideo"));
    command.args(args).env_remove("JWT_SECRET");
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// Lets `by` pass for the SQS queues in moto whose names start with `queue_prefix` (one test's
/// queues, e.g. `AwsNames::queue_prefix`): their messages' delays and visibility timeouts end `by`
/// earlier, as if that much time had gone by (tests/aws/moto_server.py). Other tests' queues in
/// the same moto keep the real time. Used instead of sleeping.
pub async fn advance_sqs_queues(queue_prefix: &str, by: Duration) {
    let body = serde_json::json!({"queue_prefix": queue_prefix, "seconds": by.as_secs_f64()});
    let response = reqwest::Client::new()
        .post(format!("{}/aivideo-test/sqs/advance", moto_endpoint()))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(status.is_success(), "moto could not move the queues' time: {status} {}", response.text().await.unwrap());
}

// Helpers the test files share: one definition each.

/// Every route's prefix, as the tests write paths (`{API}/stories/`).
pub const API: &str = shared::http::API_PREFIX;

/// The settings for an app on `data_dir`: the suite's token secret and the host the in-process
/// requests name (`testserver`, as Django's test client does).
fn config_on(data_dir: &Path) -> Config {
    Config {
        data_dir: data_dir.to_path_buf(),
        auth: AuthConfig { secret: Some(SECRET.to_owned()), ..AuthConfig::default() },
        allowed_hosts: vec!["testserver".to_owned()],
        ..Config::default()
    }
}

/// An HTTP client for a running server (each request gives up after 30 s).
pub fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

/// A token for `user` from `aivideo token --data-dir <data_dir>` (signed with the data dir's own
/// secret, which `aivideo serve` on that dir accepts); the command must succeed.
pub fn cli_token(data_dir: &Path, user: &str) -> String {
    let out = aivideo(&["token", "--user", user, "--data-dir", data_dir.to_str().unwrap()], &[]);
    assert!(out.status.success(), "aivideo token failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Server {
    /// Sends `method` to `path` (under [`API`]) with `body` as JSON and `token` as the bearer: the
    /// status and the JSON answer (`Null` when the answer is not JSON).
    pub async fn call(&self, token: &str, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
        let request = client().request(method, self.url(&format!("{API}{path}"))).bearer_auth(token).json(&body);
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

/// What the story helpers below talk to: the in-process router, where `caller` is the user a
/// token is issued for, or a running `aivideo serve`, where `caller` is the bearer token itself.
#[allow(async_fn_in_trait)]
pub trait Api {
    /// POSTs `body` as JSON to `path` (under [`API`]) as `caller`: the status and the answer.
    async fn post_as(&self, caller: &str, path: &str, body: Value) -> (StatusCode, Value);
}

impl Api for TestApp {
    async fn post_as(&self, user: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let reply = self.post(&format!("{API}{path}"), user, body).await;
        (reply.status, reply.body)
    }
}

impl Api for Server {
    async fn post_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let (status, body) = self.call(token, reqwest::Method::POST, path, body).await;
        (StatusCode::from_u16(status).unwrap(), body)
    }
}

/// Creates a story from `story` as `caller` and plans it with `scenes/bulk/` sent `bulk`; both must
/// answer 201. The story's id and the bulk answer (the story, now PLANNING, and its scenes, each
/// with its prompts).
pub async fn planning_story(api: &impl Api, caller: &str, story: Value, bulk: Value) -> (String, Value) {
    let (status, created) = api.post_as(caller, "/stories/", story).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let (status, plan) = api.post_as(caller, &format!("/stories/{id}/scenes/bulk/"), bulk).await;
    assert_eq!(status, StatusCode::CREATED, "{plan}");
    (id, plan)
}

/// A story created from `story` as `caller`, planned with `scenes` scenes by `scenes/bulk/` and
/// moved to PLANNED (each step must succeed): its id.
pub async fn planned_story(api: &impl Api, caller: &str, story: Value, scenes: u32) -> String {
    let (id, _) = planning_story(api, caller, story, serde_json::json!({"scene_count": scenes})).await;
    let (status, moved) =
        api.post_as(caller, &format!("/stories/{id}/transition/"), serde_json::json!({"to": "PLANNED"})).await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    id
}

/// A [`planned_story`] whose preview is started (`generate_preview/` must answer 202): PREVIEWING,
/// its jobs queued. Its id.
pub async fn previewing_story(api: &impl Api, caller: &str, story: Value, scenes: u32) -> String {
    let id = planned_story(api, caller, story, scenes).await;
    let (status, started) =
        api.post_as(caller, &format!("/stories/{id}/generate_preview/"), serde_json::json!({})).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    id
}

/// The `id` of every object of a JSON array, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list.as_array().unwrap().iter().map(|x| x["id"].as_str().unwrap().to_owned()).collect()
}

/// Polls `futures` to completion concurrently; their outputs in order (no extra dependency for
/// `join_all`).
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(Box::pin).map(Some).collect();
    let mut results: Vec<Option<F::Output>> = (0..pending.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (i, slot) in pending.iter_mut().enumerate() {
            if let Some(future) = slot {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => {
                        results[i] = Some(out);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all { std::task::Poll::Ready(()) } else { std::task::Poll::Pending }
    })
    .await;
    results.into_iter().map(Option::unwrap).collect()
}

/// Runs every future as its own task (in parallel on a multi-thread runtime) and waits for all:
/// their outputs in order. Panics if one of them panicked.
pub async fn spawn_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    join_all(tasks.into_iter()).await.into_iter().map(Result::unwrap).collect()
}

/// How long the worker loops below wait for a story before failing the test.
const WORK_LIMIT: Duration = Duration::from_secs(120);

impl TestApp {
    /// An app on the test backend whose worker polls providers every 100 ms and leases jobs for
    /// 3 s (the render tests' settings).
    pub async fn with_quick_worker() -> Self {
        Self::with(&[], |c| {
            c.worker.poll_ms = 100;
            c.worker.lease_seconds = 3;
        })
        .await
    }

    /// GETs `path` as `user`, which must answer 200: the page's `results`.
    pub async fn results(&self, path: &str, user: &str) -> Vec<Value> {
        let reply = self.get(path, user).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
        reply.body["results"].as_array().unwrap().clone()
    }

    /// The story's jobs (up to 100), read as `alice`.
    pub async fn jobs_of(&self, story: &str) -> Vec<Value> {
        self.results(&format!("{API}/stories/{story}/jobs/?page_size=100"), "alice").await
    }

    /// One round of `worker` over the app's queue: up to ten deliveries (hidden from other
    /// consumers for 5 s), each handled by `copies` runs at once and settled with the first
    /// failure among them, if any.
    pub async fn work_round(&self, worker: &shared::services::Worker, copies: usize) {
        use shared::ports::Handled;
        let handler = |delivery: shared::ports::Delivery| async move {
            let outcomes = join_all((0..copies).map(|_| worker.handle(&delivery))).await;
            outcomes.into_iter().find(|o| matches!(o, Handled::Failed { .. })).unwrap_or(Handled::Done)
        };
        shared::ports::consume_once(self.inbox.as_ref(), 10, Duration::from_secs(5), handler).await.unwrap();
    }

    /// Runs `worker` over the app's queue (`copies` runs per delivery, see [`Self::work_round`])
    /// until `alice`'s story is `status`: the story then. Panics if the story fails on the way
    /// (unless `status` is FAILED) or is not there within two minutes.
    pub async fn work_until(
        &self,
        worker: &shared::services::Worker,
        copies: usize,
        story: &str,
        status: &str,
    ) -> Value {
        self.work_on(worker, copies, story, |current| {
            assert!(
                status == "FAILED" || current["status"] != "FAILED",
                "the story failed while waiting for {status}: {}",
                current["failure_reason"]
            );
            current["status"] == status
        })
        .await
    }

    /// Runs `worker` over the app's queue until `alice`'s story is no longer `status`, whatever it
    /// becomes: the story then. Panics if that takes more than two minutes.
    pub async fn work_while(&self, worker: &shared::services::Worker, story: &str, status: &str) -> Value {
        self.work_on(worker, 1, story, |current| current["status"] != status).await
    }

    async fn work_on(
        &self,
        worker: &shared::services::Worker,
        copies: usize,
        story: &str,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let started = std::time::Instant::now();
        loop {
            self.work_round(worker, copies).await;
            let current = self.get(&format!("{API}/stories/{story}/"), "alice").await.body;
            if done(&current) {
                return current;
            }
            assert!(started.elapsed() < WORK_LIMIT, "story {story} still {} after {WORK_LIMIT:?}", current["status"]);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
