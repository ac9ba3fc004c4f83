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
        let mut config = Config {
            data_dir: dir.path().to_path_buf(),
            auth: AuthConfig { secret: Some(SECRET.to_owned()), ..AuthConfig::default() },
            // The host the in-process requests name (as Django's test client does).
            allowed_hosts: vec!["testserver".to_owned()],
            ..Config::default()
        };
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
            return Self::of(local, dir, Some(calls));
        }
        std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
        for (name, value) in secrets {
            std::fs::write(dir.path().join("secrets").join(name), value).unwrap();
        }
        let local = shared::runtime::build_local(&config).await.unwrap();
        Self::of(local, dir, None)
    }

    fn of(
        local: shared::runtime::Local,
        dir: tempfile::TempDir,
        calls: Option<shared::adapters::aws::CallCounter>,
    ) -> Self {
        Self {
            router: aivideo::app(&local),
            state: local.api,
            worker: local.jobs.worker,
            inbox: local.jobs.inbox,
            recovery: local.jobs.recovery,
            dir,
            calls,
        }
    }

    /// The whole API on `data_dir`, with `adjust` applied to the configuration.
    pub async fn router_for(data_dir: &Path, adjust: impl FnOnce(&mut Config)) -> Router {
        let mut config = Config {
            data_dir: data_dir.to_path_buf(),
            auth: AuthConfig { secret: Some(SECRET.to_owned()), ..AuthConfig::default() },
            // The host the in-process requests name (as Django's test client does).
            allowed_hosts: vec!["testserver".to_owned()],
            ..Config::default()
        };
        adjust(&mut config);
        aivideo::app(&shared::runtime::build_local(&config).await.unwrap())
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
