//! In-process fakes of six AI video providers' REST APIs (Runway, Luma Dream Machine, Veo and
//! Gemini Omni on the Gemini API, Replicate, fal.ai's queue, Stability AI v2beta) on `127.0.0.1`,
//! for protocol tests of the provider clients. Each fake speaks its provider's paths, auth header,
//! status values and error bodies (see the protocol research), plays a [`Script`] (success,
//! failure, moderation, 429s, 500s, malformed JSON, slowness), serves one real mp4 made with
//! ffmpeg, and records every request it sees.

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::sync::OnceCell;

/// The only key the fakes accept; anything else is a 401 in the provider's error shape.
pub const API_KEY: &str = "test-key";
/// The `X-Runway-Version` every Runway request must carry.
pub const RUNWAY_VERSION: &str = "2024-11-06";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Provider {
    Runway,
    Luma,
    Veo,
    Replicate,
    Fal,
    Stability,
}

#[derive(Clone, Debug)]
pub enum Script {
    /// Pending/running polls, then success with an expiring media URL.
    Succeed,
    /// The provider's ordinary failure after polling.
    Fail,
    /// The provider's content-moderation refusal.
    Moderation,
    /// Runway: the moderation of what it rendered (`SAFETY.OUTPUT.*`); elsewhere as `Moderation`.
    ModeratedOutput,
    /// The first `times` submit requests answer 429 with `Retry-After`, then as `Succeed`.
    RateLimited { retry_after_secs: u64, times: usize },
    /// The first `times` submit requests answer 500 (provider error body), then as `Succeed`.
    ServerError { times: usize },
    /// Submit answers 200/201 with a truncated JSON body.
    MalformedJson,
    /// Every API response (not the `/media/` CDN route) is delayed by `delay`; otherwise `Succeed`.
    Slow { delay: Duration },
}

/// How the Gemini fake delivers a Gemini Omni video (Interactions API).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// As the create's `response_format.delivery` asks (`inline` when it says nothing), as the
    /// API does.
    AsRequested,
    /// Base64 `data` whatever was asked (an API that inlines anyway).
    Inline,
    /// A `uri` to the fake's Files API download whatever was asked.
    Uri,
}

/// One request as the fake saw it.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?` ("" when there is none).
    pub query: String,
    /// Lowercase names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

/// A running fake; the server stops when it is dropped.
pub struct Fake {
    state: Arc<Shared>,
    server: tokio::task::JoinHandle<()>,
}

impl Fake {
    pub async fn start(provider: Provider, script: Script) -> Fake {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("a loopback port");
        let base = format!("http://{}", listener.local_addr().expect("a local address"));
        let state = Arc::new(Shared {
            provider,
            script,
            base,
            submissions: AtomicUsize::new(0),
            gated: AtomicUsize::new(0),
            polls: AtomicUsize::new(0),
            downloads: AtomicUsize::new(0),
            pending: AtomicUsize::new(2),
            delivery: Mutex::new(Delivery::AsRequested),
            seen: Mutex::new(Vec::new()),
            tasks: Mutex::new(HashMap::new()),
            violations: Mutex::new(Vec::new()),
            answer_violations: Mutex::new(Vec::new()),
            answers_checked: AtomicUsize::new(0),
        });
        let app = Router::new().fallback(handle).layer(DefaultBodyLimit::max(64 << 20)).with_state(state.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Fake { state, server }
    }

    /// `http://127.0.0.1:PORT`, no trailing slash; API paths hang under it as under the real host.
    pub fn base_url(&self) -> String {
        self.state.base.clone()
    }

    /// Create requests that passed auth, accepted or refused (Stability: image-to-video POSTs).
    pub fn submissions(&self) -> usize {
        self.state.submissions.load(Ordering::SeqCst)
    }

    /// Status requests that passed auth.
    pub fn polls(&self) -> usize {
        self.state.polls.load(Ordering::SeqCst)
    }

    /// Videos served (mp4 bytes).
    pub fn downloads(&self) -> usize {
        self.state.downloads.load(Ordering::SeqCst)
    }

    /// Every request, in order of arrival.
    /// How many of the fake's answers were checked against the contract.
    pub fn answers_checked(&self) -> usize {
        self.state.answers_checked.load(Ordering::SeqCst)
    }

    /// The fake's answers that broke the provider's published contract.
    pub fn answer_violations(&self) -> Vec<String> {
        lock(&self.state.answer_violations).clone()
    }

    /// The requests that broke the provider's published contract (each was answered 400).
    pub fn violations(&self) -> Vec<String> {
        lock(&self.state.violations).clone()
    }

    pub fn requests(&self) -> Vec<Seen> {
        lock(&self.state.seen).clone()
    }

    /// Polls answered queued/running before the terminal state (default 2).
    pub fn set_pending_polls(&self, n: usize) {
        self.state.pending.store(n, Ordering::SeqCst);
    }

    /// How Gemini Omni videos are delivered (default: as the create asked).
    pub fn set_video_delivery(&self, delivery: Delivery) {
        *lock(&self.state.delivery) = delivery;
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.server.abort();
    }
}

// ---------------------------------------------------------------------------------------------
// Media, made once per process.

static MP4: OnceCell<Bytes> = OnceCell::const_new();
static PNG: OnceCell<Bytes> = OnceCell::const_new();

/// A 2 s, 320x240, 24 fps H.264 mp4.
pub async fn sample_mp4() -> Bytes {
    let args =
        ["-f", "lavfi", "-i", "testsrc=size=320x240:rate=24", "-t", "2", "-c:v", "libx264", "-pix_fmt", "yuv420p"];
    MP4.get_or_init(|| render(&args, ".mp4")).await.clone()
}

/// A 1344x768 blue PNG (Stability's 16:9 text-to-image size).
pub async fn sample_png() -> Bytes {
    PNG.get_or_init(|| render(&["-f", "lavfi", "-i", "color=c=blue:s=1344x768", "-frames:v", "1"], ".png"))
        .await
        .clone()
}

async fn render(args: &[&str], suffix: &str) -> Bytes {
    let file = tempfile::Builder::new().suffix(suffix).tempfile().expect("a temporary file");
    let status = tokio::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error"])
        .args(args)
        .arg("-y")
        .arg(file.path())
        .status()
        .await
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg failed to render the fakes' {suffix}");
    Bytes::from(tokio::fs::read(file.path()).await.expect("ffmpeg's output"))
}

// ---------------------------------------------------------------------------------------------
// Shared state and plumbing.

struct Shared {
    provider: Provider,
    script: Script,
    base: String,
    submissions: AtomicUsize,
    /// Create requests that reached the script's 429/500 gate.
    gated: AtomicUsize,
    polls: AtomicUsize,
    downloads: AtomicUsize,
    pending: AtomicUsize,
    /// Gemini Omni: inline or linked videos.
    delivery: Mutex<Delivery>,
    seen: Mutex<Vec<Seen>>,
    tasks: Mutex<HashMap<String, Task>>,
    /// Requests outside the provider's published contract (`tests/provider_contracts/`).
    violations: Mutex<Vec<String>>,
    /// The fake's own answers outside that contract (a fake bug: every test asserts none).
    answer_violations: Mutex<Vec<String>>,
    /// Answers checked against the contract's answer schemas.
    answers_checked: AtomicUsize,
}

#[derive(Clone)]
struct Task {
    /// The model (fal: the app `owner/name`, which status and result URLs use).
    model: String,
    input: Value,
    created_at: String,
    /// Polls answered so far.
    polls: usize,
    /// A terminal state has been answered.
    done: bool,
    cancelled: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Queued,
    Running,
    Finished,
}

/// How a task ends under the script.
#[derive(Clone, Copy, PartialEq, Eq)]
enum End {
    Success,
    Failure,
    Moderated,
}

enum Gate {
    Go,
    Limited(u64),
    Broken,
    Malformed,
}

struct Req {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Req {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn param(&self, name: &str) -> Option<&str> {
        self.query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    }
    fn json(&self) -> Option<serde_json::Map<String, Value>> {
        match serde_json::from_slice(&self.body) {
            Ok(Value::Object(map)) => Some(map),
            _ => None,
        }
    }
    fn bearer(&self) -> bool {
        self.header("authorization") == Some(format!("Bearer {API_KEY}").as_str())
    }
    fn segments(&self) -> Vec<&str> {
        self.path.trim_start_matches('/').split('/').collect()
    }
    fn wants_json(&self) -> bool {
        self.header("accept").is_some_and(|a| a.contains("application/json"))
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

fn timestamp() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `len` characters of `alphabet`, unique within the process.
fn random(alphabet: &[u8], len: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
    let mut x = nanos ^ COUNTER.fetch_add(1, Ordering::Relaxed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..len)
        .map(|_| {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            alphabet[((z ^ (z >> 31)) % alphabet.len() as u64) as usize] as char
        })
        .collect()
}

fn hex(len: usize) -> String {
    random(b"0123456789abcdef", len)
}

fn uuid() -> String {
    let h = hex(32);
    format!("{}-{}-4{}-a{}-{}", &h[0..8], &h[8..12], &h[13..16], &h[17..20], &h[20..32])
}

fn base64(data: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let n = (byte(0) << 16) | (byte(1) << 8) | byte(2);
        for i in 0..4 {
            out.push(if i <= chunk.len() { TABLE[((n >> (18 - 6 * i)) & 63) as usize] as char } else { '=' });
        }
    }
    out
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (status, Json(body.clone())).into_response()
}

fn video(bytes: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "video/mp4")], bytes).into_response()
}

/// A JSON answer cut off in the middle.
fn truncated(status: StatusCode) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], "{\"id\": \"3f9a1c0e-8b2d-4").into_response()
}

fn google_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        _ => "INTERNAL",
    }
}

fn stability_name(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "content_moderation",
        404 => "not_found",
        413 => "payload_too_large",
        429 => "rate_limit_exceeded",
        _ => "internal_error",
    }
}

async fn handle(State(s): State<Arc<Shared>>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let req = Req {
        method: method.as_str().to_owned(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        headers,
        body,
    };
    s.record(&req);
    let cdn = req.path.starts_with("/media/") && !matches!(s.provider, Provider::Veo | Provider::Stability);
    if let Script::Slow { delay } = s.script
        && !cdn
    {
        tokio::time::sleep(delay).await;
    }
    if cdn {
        return s.media(&req).await;
    }
    if !s.authorized(&req) {
        return s.error(StatusCode::UNAUTHORIZED, s.auth_message());
    }
    // Every request is checked against the provider's published contract before it is served:
    // one outside it is refused (a 400 in the provider's error shape) and recorded.
    let broken = contract::violations(s.provider, &req);
    if !broken.is_empty() {
        let what = broken.join("; ");
        lock(&s.violations).push(format!("{} {}: {what}", req.method, req.path));
        // Each provider's own status for a body it does not accept.
        let status =
            if s.provider == Provider::Replicate { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::BAD_REQUEST };
        return s.error(status, &format!("Request outside the published API: {what}"));
    }
    let answer = match s.provider {
        Provider::Runway => runway::route(&s, &req),
        Provider::Luma => luma::route(&s, &req),
        Provider::Veo => veo::route(&s, &req).await,
        Provider::Replicate => replicate::route(&s, &req),
        Provider::Fal => fal::route(&s, &req).await,
        Provider::Stability => stability::route(&s, &req).await,
    };
    // And every answer the contract describes is checked against it: a fake may only answer
    // with documents the provider's reference defines.
    let (parts, body) = answer.into_parts();
    let bytes = axum::body::to_bytes(body, usize::MAX).await.unwrap_or_default();
    let (checked, wrong) = contract::answer_violations(s.provider, &req, parts.status, &bytes);
    if checked {
        s.answers_checked.fetch_add(1, Ordering::SeqCst);
    }
    if !wrong.is_empty() {
        lock(&s.answer_violations).push(format!("{} {}: {}", req.method, req.path, wrong.join("; ")));
    }
    Response::from_parts(parts, axum::body::Body::from(bytes))
}

impl Shared {
    fn record(&self, req: &Req) {
        let headers = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        lock(&self.seen).push(Seen {
            method: req.method.clone(),
            path: req.path.clone(),
            query: req.query.clone(),
            headers,
            body: req.body.to_vec(),
        });
    }

    fn authorized(&self, req: &Req) -> bool {
        match self.provider {
            Provider::Veo => req.header("x-goog-api-key").or_else(|| req.param("key")) == Some(API_KEY),
            Provider::Fal => req.header("authorization") == Some(format!("Key {API_KEY}").as_str()),
            _ => req.bearer(),
        }
    }

    fn auth_message(&self) -> &'static str {
        match self.provider {
            Provider::Runway => "Invalid API secret.",
            Provider::Luma => "Invalid API key provided",
            Provider::Veo => "API key not valid. Please pass a valid API key.",
            Provider::Replicate => "You did not pass a valid authentication token",
            Provider::Fal => "Authentication is required to access this endpoint.",
            Provider::Stability => "authorization: invalid or missing API key",
        }
    }

    /// An error in the provider's shape.
    fn error(&self, status: StatusCode, message: &str) -> Response {
        let code = status.as_u16();
        let body = match self.provider {
            Provider::Runway => json!({"error": message}),
            Provider::Luma => json!({"detail": message}),
            Provider::Veo => json!({"error": {"code": code, "message": message, "status": google_status(status)}}),
            Provider::Replicate if code == 429 => json!({"detail": message}),
            Provider::Replicate => {
                let title = status.canonical_reason().unwrap_or("Error");
                let body = json!({"type": "about:blank", "title": title, "status": code, "detail": message});
                let content_type = [(header::CONTENT_TYPE, "application/problem+json")];
                return (status, content_type, body.to_string()).into_response();
            }
            Provider::Fal if code >= 500 => {
                let mut response = reply(status, &json!({"detail": message, "error_type": "internal_error"}));
                response.headers_mut().insert("x-fal-error-type", HeaderValue::from_static("internal_error"));
                return response;
            }
            Provider::Fal => json!({"detail": message}),
            Provider::Stability => json!({"id": hex(32), "name": stability_name(status), "errors": [message]}),
        };
        reply(status, &body)
    }

    fn not_found(&self) -> Response {
        self.error(StatusCode::NOT_FOUND, "Not found")
    }

    /// Counts a create request and decides what the script does with it.
    fn gate(&self) -> Gate {
        self.submissions.fetch_add(1, Ordering::SeqCst);
        let n = self.gated.fetch_add(1, Ordering::SeqCst);
        match self.script {
            Script::RateLimited { retry_after_secs, times } if n < times => Gate::Limited(retry_after_secs),
            Script::ServerError { times } if n < times => Gate::Broken,
            Script::MalformedJson => Gate::Malformed,
            _ => Gate::Go,
        }
    }

    /// The 429 or 500 a gate calls for.
    fn refusal(&self, gate: &Gate) -> Option<Response> {
        match gate {
            Gate::Limited(secs) => {
                let message = match self.provider {
                    Provider::Replicate => format!("Request was throttled. Expected available in {secs} second."),
                    Provider::Veo => "Resource has been exhausted (e.g. check quota).".to_owned(),
                    _ => "Too many requests: rate limit exceeded.".to_owned(),
                };
                let mut response = self.error(StatusCode::TOO_MANY_REQUESTS, &message);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*secs));
                Some(response)
            }
            Gate::Broken => {
                let message = match self.provider {
                    Provider::Fal => "Internal error",
                    Provider::Veo => "Internal error encountered.",
                    _ => "An unexpected server error occurred.",
                };
                Some(self.error(StatusCode::INTERNAL_SERVER_ERROR, message))
            }
            Gate::Go | Gate::Malformed => None,
        }
    }

    fn end(&self) -> End {
        match self.script {
            Script::Fail => End::Failure,
            Script::Moderation | Script::ModeratedOutput => End::Moderated,
            _ => End::Success,
        }
    }

    fn create(&self, id: &str, model: &str, input: Value) -> Task {
        let task =
            Task { model: model.to_owned(), input, created_at: timestamp(), polls: 0, done: false, cancelled: false };
        lock(&self.tasks).insert(id.to_owned(), task.clone());
        task
    }

    /// The next phase of task `id`, and the task as it was before this poll (`done` tells whether a
    /// terminal state was already answered). Does not count the poll.
    fn advance(&self, id: &str) -> Option<(Phase, Task)> {
        let pending = self.pending.load(Ordering::SeqCst);
        let mut tasks = lock(&self.tasks);
        let task = tasks.get_mut(id)?;
        let before = task.clone();
        let phase = if task.done || task.polls >= pending {
            task.done = true;
            Phase::Finished
        } else if task.polls == 0 {
            Phase::Queued
        } else {
            Phase::Running
        };
        task.polls += 1;
        Some((phase, before))
    }

    fn count_poll(&self) {
        self.polls.fetch_add(1, Ordering::SeqCst);
    }

    /// The expiring link to a task's video on the fake's CDN route.
    fn media_url(&self, id: &str) -> String {
        format!("{}/media/{id}.mp4?expires={}", self.base, now_secs() + 3600)
    }

    /// `GET /media/{task}.mp4?expires=…`: 403 once expired; Replicate's needs the bearer token.
    async fn media(&self, req: &Req) -> Response {
        if self.provider == Provider::Replicate && !req.bearer() {
            return self.error(StatusCode::UNAUTHORIZED, self.auth_message());
        }
        let id = req.path.strip_prefix("/media/").and_then(|p| p.strip_suffix(".mp4")).unwrap_or("");
        if req.method != "GET" || !lock(&self.tasks).contains_key(id) {
            return (StatusCode::NOT_FOUND, "Not Found").into_response();
        }
        let fresh = req.param("expires").and_then(|e| e.parse::<u64>().ok()).is_some_and(|e| e >= now_secs());
        if !fresh {
            return (StatusCode::FORBIDDEN, "Request has expired").into_response();
        }
        self.downloads.fetch_add(1, Ordering::SeqCst);
        video(sample_mp4().await)
    }
}

// ---------------------------------------------------------------------------------------------

mod runway {
    use super::*;

    pub(super) fn route(s: &Shared, req: &Req) -> Response {
        if req.header("x-runway-version") != Some(RUNWAY_VERSION) {
            return s.error(StatusCode::BAD_REQUEST, "X-Runway-Version header is missing or invalid.");
        }
        match (req.method.as_str(), req.segments().as_slice()) {
            ("POST", ["v1", kind @ ("text_to_video" | "image_to_video")]) => create(s, req, kind),
            ("GET", ["v1", "tasks", id]) => poll(s, id),
            ("DELETE", ["v1", "tasks", id]) => match lock(&s.tasks).remove(*id) {
                Some(_) => StatusCode::NO_CONTENT.into_response(),
                None => s.error(StatusCode::NOT_FOUND, "Task not found."),
            },
            _ => s.not_found(),
        }
    }

    fn create(s: &Shared, req: &Req, kind: &str) -> Response {
        let gate = s.gate();
        if let Some(refused) = s.refusal(&gate) {
            return refused;
        }
        let Some(body) = req.json() else {
            return s.error(StatusCode::BAD_REQUEST, "Request body must be a JSON object.");
        };
        let text = |k: &str| body.get(k).and_then(Value::as_str).filter(|v| !v.is_empty());
        let missing = match kind {
            "text_to_video" if text("promptText").is_none() => Some("promptText"),
            "image_to_video" if body.get("promptImage").is_none() => Some("promptImage"),
            _ => ["model", "ratio"].into_iter().find(|k| text(k).is_none()),
        };
        if let Some(field) = missing {
            return s.error(StatusCode::BAD_REQUEST, &format!("Validation of body failed: {field}: Required"));
        }
        if body.get("duration").is_some_and(|d| !d.is_u64()) {
            return s.error(StatusCode::BAD_REQUEST, "Validation of body failed: duration: Expected an integer");
        }
        if let Gate::Malformed = gate {
            return truncated(StatusCode::OK);
        }
        let id = uuid();
        s.create(&id, text("model").unwrap_or(""), Value::Object(body.clone()));
        reply(StatusCode::OK, &json!({"id": id}))
    }

    fn poll(s: &Shared, id: &str) -> Response {
        s.count_poll();
        let Some((phase, task)) = s.advance(id) else {
            return s.error(StatusCode::NOT_FOUND, "Task not found.");
        };
        let mut body = json!({"id": id, "createdAt": task.created_at, "status": "PENDING"});
        match (phase, s.end()) {
            (Phase::Queued, _) => {}
            (Phase::Running, _) => {
                body["status"] = json!("RUNNING");
                body["progress"] = json!(0.5);
            }
            (Phase::Finished, End::Success) => {
                body["status"] = json!("SUCCEEDED");
                body["output"] = json!([s.media_url(id)]);
            }
            (Phase::Finished, End::Failure) => {
                body["status"] = json!("FAILED");
                body["failure"] = json!("An unexpected error occurred while generating the output.");
                body["failureCode"] = json!("INTERNAL.BAD_OUTPUT.CODE01");
            }
            (Phase::Finished, End::Moderated) => {
                body["status"] = json!("FAILED");
                if let Script::ModeratedOutput = s.script {
                    body["failure"] = json!("The generated video was flagged by our content moderation system.");
                    body["failureCode"] = json!("SAFETY.OUTPUT.VIDEO");
                } else {
                    body["failure"] = json!("Your prompt was flagged by our content moderation system.");
                    body["failureCode"] = json!("SAFETY.INPUT.TEXT");
                }
            }
        }
        reply(StatusCode::OK, &body)
    }
}

mod luma {
    use super::*;

    pub(super) fn route(s: &Shared, req: &Req) -> Response {
        match (req.method.as_str(), req.segments().as_slice()) {
            ("POST", ["dream-machine", "v1", "generations", "video"]) => create(s, req),
            ("GET", ["dream-machine", "v1", "generations", id]) => poll(s, id),
            _ => s.not_found(),
        }
    }

    fn generation(id: &str, task: &Task, state: &str) -> Value {
        json!({
            "id": id, "generation_type": "video", "state": state, "failure_reason": null,
            "created_at": task.created_at, "assets": null, "model": task.model, "request": task.input,
        })
    }

    fn create(s: &Shared, req: &Req) -> Response {
        let gate = s.gate();
        if let Some(refused) = s.refusal(&gate) {
            return refused;
        }
        let Some(body) = req.json() else {
            return s.error(StatusCode::BAD_REQUEST, "Request body must be a JSON object");
        };
        let prompt = body.get("prompt").and_then(Value::as_str).unwrap_or("");
        if prompt.is_empty() && body.get("keyframes").is_none() {
            return s.error(StatusCode::BAD_REQUEST, "Prompt is required");
        }
        if !prompt.is_empty() && prompt.chars().count() < 3 {
            return s.error(StatusCode::BAD_REQUEST, "Prompt is too short, minimum length is 3 characters");
        }
        if let Gate::Malformed = gate {
            return truncated(StatusCode::CREATED);
        }
        let id = uuid();
        let model = body.get("model").and_then(Value::as_str).unwrap_or("ray-2").to_owned();
        let task = s.create(&id, &model, Value::Object(body));
        reply(StatusCode::CREATED, &generation(&id, &task, "queued"))
    }

    fn poll(s: &Shared, id: &str) -> Response {
        s.count_poll();
        let Some((phase, task)) = s.advance(id) else {
            return s.error(StatusCode::NOT_FOUND, "Generation not found");
        };
        let body = match (phase, s.end()) {
            (Phase::Queued, _) => generation(id, &task, "queued"),
            (Phase::Running, _) => generation(id, &task, "dreaming"),
            (Phase::Finished, End::Success) => {
                let mut body = generation(id, &task, "completed");
                body["assets"] = json!({"video": s.media_url(id)});
                body
            }
            (Phase::Finished, end) => {
                let mut body = generation(id, &task, "failed");
                body["failure_reason"] =
                    json!(if end == End::Moderated { "Advanced prompt moderation failed" } else { "Job failed" });
                body
            }
        };
        reply(StatusCode::OK, &body)
    }
}

mod veo {
    use super::*;

    pub(super) async fn route(s: &Shared, req: &Req) -> Response {
        match (req.method.as_str(), req.segments().as_slice()) {
            ("POST", ["v1beta", "models", call]) => match call.rsplit_once(':') {
                Some((model, "predictLongRunning")) if !model.is_empty() => create(s, req, model),
                _ => s.not_found(),
            },
            ("GET", ["v1beta", "models", model, "operations", op]) => poll(s, model, op),
            // Gemini Omni: the Interactions API.
            ("POST", ["v1beta", "interactions"]) => interactions::create(s, req).await,
            ("GET", ["v1beta", "interactions", id]) => interactions::get(s, id).await,
            ("GET", ["v1beta", "files", file]) => match file.strip_suffix(":download") {
                Some(id) => download(s, req, id).await,
                None => s.not_found(),
            },
            _ => s.not_found(),
        }
    }

    fn create(s: &Shared, req: &Req, model: &str) -> Response {
        let gate = s.gate();
        if let Some(refused) = s.refusal(&gate) {
            return refused;
        }
        let invalid = |message: &str| s.error(StatusCode::BAD_REQUEST, message);
        let Some(body) = req.json() else {
            return invalid("Invalid JSON payload received.");
        };
        let instance = body.get("instances").and_then(Value::as_array).and_then(|i| i.first());
        let Some(instance) = instance else {
            return invalid("* instances: at least one instance is required");
        };
        let prompt = instance.get("prompt").and_then(Value::as_str).is_some_and(|p| !p.is_empty());
        if !prompt && instance.get("image").is_none() {
            return invalid("* instances[0].prompt: a prompt or an image is required");
        }
        let parameters = body.get("parameters").cloned().unwrap_or_else(|| json!({}));
        if parameters.get("aspectRatio").is_some_and(|a| a != "16:9" && a != "9:16") {
            return invalid("Unsupported aspect ratio. Supported values are 16:9 and 9:16.");
        }
        let seconds = parameters.get("durationSeconds").map(|d| d.as_u64().or_else(|| d.as_str()?.parse().ok()));
        if seconds.is_some_and(|d| !d.is_some_and(|d| (4..=8).contains(&d))) {
            return invalid("The number value for `durationSeconds` is out of bound.");
        }
        if let Gate::Malformed = gate {
            return truncated(StatusCode::OK);
        }
        let op = random(b"abcdefghijklmnopqrstuvwxyz0123456789", 12);
        s.create(&op, model, Value::Object(body));
        reply(StatusCode::OK, &json!({"name": format!("models/{model}/operations/{op}")}))
    }

    fn poll(s: &Shared, model: &str, op: &str) -> Response {
        s.count_poll();
        let found = s.advance(op).filter(|(_, task)| task.model == model);
        let Some((phase, _)) = found else {
            return s.error(StatusCode::NOT_FOUND, "Operation not found.");
        };
        let name = format!("models/{model}/operations/{op}");
        let response = |inner: Value| {
            json!({"@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse",
                   "generateVideoResponse": inner})
        };
        let body = match (phase, s.end()) {
            (Phase::Queued | Phase::Running, _) => json!({"name": name, "done": false}),
            (Phase::Finished, End::Success) => {
                let uri = format!("{}/v1beta/files/{op}:download?alt=media", s.base);
                json!({"name": name, "done": true,
                       "response": response(json!({"generatedSamples": [{"video": {"uri": uri}}]}))})
            }
            (Phase::Finished, End::Failure) => json!({"name": name, "done": true,
                "error": {"code": 13, "message": "Video generation failed due to an internal error.",
                          "status": "INTERNAL"}}),
            (Phase::Finished, End::Moderated) => json!({"name": name, "done": true,
                "response": response(json!({"raiMediaFilteredCount": 1, "raiMediaFilteredReasons":
                    ["We encountered an issue with the prompt. It may violate our usage guidelines."]}))}),
        };
        reply(StatusCode::OK, &body)
    }

    /// Gemini Omni through the Interactions API: a background create answers an `in_progress`
    /// interaction; polls answer `in_progress` until the script's end (after as many polls as
    /// the operations above), then `completed` with the timeline of steps (the input echoed, a
    /// thought, the model output with the video inline or as a link, per [`Delivery`]) or
    /// `failed` with the interaction's `errors` (ordinary failures) or the model output's
    /// google.rpc.Status (safety refusals). Errors are `{error: {code: string, message}}`.
    mod interactions {
        use super::*;

        fn error(status: StatusCode, code: &str, message: &str) -> Response {
            reply(status, &json!({"error": {"code": code, "message": message}}))
        }

        fn invalid(message: &str) -> Response {
            error(StatusCode::BAD_REQUEST, "invalid_request", message)
        }

        /// `"6s"` → 6; what the API refuses (a number, no unit) → None.
        fn seconds(duration: &Value) -> Option<u64> {
            duration.as_str()?.strip_suffix('s')?.parse().ok()
        }

        pub(super) async fn create(s: &Shared, req: &Req) -> Response {
            let gate = s.gate();
            match gate {
                Gate::Limited(secs) => {
                    let mut response = error(
                        StatusCode::TOO_MANY_REQUESTS,
                        "resource_exhausted",
                        "Resource has been exhausted (e.g. check quota).",
                    );
                    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
                    return response;
                }
                Gate::Broken => {
                    return error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal error encountered.");
                }
                Gate::Go | Gate::Malformed => {}
            }
            let Some(body) = req.json() else {
                return invalid("Invalid JSON payload received.");
            };
            let model = body.get("model").and_then(Value::as_str).unwrap_or("").to_owned();
            if !model.starts_with("gemini-omni") {
                return invalid("This fake serves the Gemini Omni video models only.");
            }
            let input = match body.get("input") {
                Some(Value::String(text)) => !text.trim().is_empty(),
                Some(Value::Array(items)) => !items.is_empty(),
                Some(Value::Object(_)) => true,
                _ => false,
            };
            if !input {
                return invalid("* input: an input is required");
            }
            let format = body.get("response_format");
            if let Some(duration) = format.and_then(|f| f.get("duration"))
                && !seconds(duration).is_some_and(|d| (3..=10).contains(&d))
            {
                return invalid("Invalid input at 'response_format'.");
            }
            if let Gate::Malformed = gate {
                return truncated(StatusCode::OK);
            }
            let id = format!("v1_{}", random(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", 27));
            let background = body.get("background") == Some(&json!(true));
            let task = s.create(&id, &model, Value::Object(body));
            if !background {
                // Answered once done; a create answers the output steps only.
                if let Some(t) = lock(&s.tasks).get_mut(&id) {
                    t.done = true;
                }
                return reply(StatusCode::OK, &finished(s, &id, &task, false).await);
            }
            reply(StatusCode::OK, &head(&id, &task, "in_progress"))
        }

        pub(super) async fn get(s: &Shared, id: &str) -> Response {
            s.count_poll();
            let found = s.advance(id).filter(|(_, task)| task.model.starts_with("gemini-omni"));
            let Some((phase, task)) = found else {
                return error(StatusCode::NOT_FOUND, "not_found", "Interaction not found.");
            };
            match phase {
                Phase::Queued | Phase::Running => reply(StatusCode::OK, &head(id, &task, "in_progress")),
                Phase::Finished => reply(StatusCode::OK, &finished(s, id, &task, true).await),
            }
        }

        fn head(id: &str, task: &Task, status: &str) -> Value {
            json!({"id": id, "object": "interaction", "status": status, "model": task.model,
                   "created": task.created_at, "updated": timestamp()})
        }

        /// The terminal interaction under the script; `with_input` (a GET) starts the timeline
        /// with the input it echoes.
        async fn finished(s: &Shared, id: &str, task: &Task, with_input: bool) -> Value {
            let mut steps = Vec::new();
            if with_input {
                let text = task.input["input"].as_str().unwrap_or("");
                steps.push(json!({"type": "user_input", "content": [{"type": "text", "text": text}]}));
            }
            let mut body = head(id, task, "completed");
            match s.end() {
                End::Success => {
                    steps.push(json!({"type": "thought", "signature": base64(b"fake thought signature")}));
                    let asked = task.input.pointer("/response_format/delivery").and_then(Value::as_str);
                    let delivery = match *lock(&s.delivery) {
                        Delivery::AsRequested if asked == Some("uri") => Delivery::Uri,
                        Delivery::AsRequested => Delivery::Inline,
                        other => other,
                    };
                    let video = if delivery == Delivery::Uri {
                        let uri = format!("{}/v1beta/files/{id}:download?alt=media", s.base);
                        json!({"type": "video", "mime_type": "video/mp4", "uri": uri})
                    } else {
                        // The bytes travel in the answer: counted as a download.
                        s.downloads.fetch_add(1, Ordering::SeqCst);
                        json!({"type": "video", "mime_type": "video/mp4", "data": base64(&sample_mp4().await)})
                    };
                    steps.push(json!({"type": "model_output", "content": [video]}));
                    let seconds = task.input.pointer("/response_format/duration").and_then(seconds).unwrap_or(8);
                    body["usage"] = json!({"total_input_tokens": 12, "total_output_tokens": 5792 * seconds,
                        "output_tokens_by_modality": [{"modality": "video", "tokens": 5792 * seconds}]});
                }
                End::Failure => {
                    body["status"] = json!("failed");
                    body["errors"] =
                        json!([{"code": "internal", "message": "Video generation failed due to an internal error."}]);
                }
                End::Moderated => {
                    body["status"] = json!("failed");
                    steps.push(json!({"type": "model_output", "error": {"code": 3, "message":
                        "The video could not be generated: the prompt was blocked by our safety filters \
                         (Google's Responsible AI practices)."}}));
                }
            }
            body["steps"] = json!(steps);
            body
        }
    }

    async fn download(s: &Shared, req: &Req, id: &str) -> Response {
        if req.param("alt") != Some("media") {
            return s.error(StatusCode::BAD_REQUEST, "This fake serves files with alt=media only.");
        }
        let ready = lock(&s.tasks).get(id).is_some_and(|t| t.done) && s.end() == End::Success;
        if !ready {
            return s.error(StatusCode::NOT_FOUND, "File not found.");
        }
        s.downloads.fetch_add(1, Ordering::SeqCst);
        video(sample_mp4().await)
    }
}

mod replicate {
    use super::*;

    const MODERATED: &str =
        "The input or output was flagged as sensitive. Please try again with different inputs. (E005)";

    pub(super) fn route(s: &Shared, req: &Req) -> Response {
        match (req.method.as_str(), req.segments().as_slice()) {
            ("POST", ["v1", "models", owner, name, "predictions"]) => create(s, req, &format!("{owner}/{name}")),
            // Any model by its version (community models are served only here).
            ("POST", ["v1", "predictions"]) => match req.json().and_then(|b| b.get("version").cloned()) {
                Some(Value::String(version)) => create(s, req, &version),
                _ => s.error(StatusCode::UNPROCESSABLE_ENTITY, "- version: version is required"),
            },
            ("GET", ["v1", "predictions", id]) => poll(s, id),
            ("POST", ["v1", "predictions", id, "cancel"]) => cancel(s, id),
            _ => s.not_found(),
        }
    }

    fn prediction(s: &Shared, id: &str, task: &Task, status: &str) -> Value {
        let get = format!("{}/v1/predictions/{id}", s.base);
        json!({
            "id": id, "model": task.model, "version": "hidden", "input": task.input, "logs": "",
            "output": null, "data_removed": false, "error": null, "status": status,
            "created_at": task.created_at,
            "urls": {"get": get, "cancel": format!("{get}/cancel"), "web": format!("https://replicate.com/p/{id}")},
        })
    }

    fn create(s: &Shared, req: &Req, model: &str) -> Response {
        let gate = s.gate();
        if let Some(refused) = s.refusal(&gate) {
            return refused;
        }
        let invalid = |detail: &str| s.error(StatusCode::UNPROCESSABLE_ENTITY, detail);
        let Some(body) = req.json() else {
            return invalid("The request body is not a JSON object.");
        };
        // `version` only where the route takes one (/v1/predictions), never on /v1/models/….
        let by_version = req.segments().len() == 2;
        let allowed: &[&str] = if by_version {
            &["version", "input", "webhook", "webhook_events_filter", "stream"]
        } else {
            &["input", "webhook", "webhook_events_filter", "stream"]
        };
        if let Some(extra) = body.keys().find(|k| !allowed.contains(&k.as_str())) {
            return invalid(&format!("Additional property {extra} is not allowed"));
        }
        let Some(input) = body.get("input").filter(|i| i.is_object()) else {
            return invalid("- input: input is required");
        };
        if let Gate::Malformed = gate {
            return truncated(StatusCode::CREATED);
        }
        let id = random(b"abcdefghijklmnopqrstuvwxyz0123456789", 26);
        let task = s.create(&id, model, input.clone());
        reply(StatusCode::CREATED, &prediction(s, &id, &task, "starting"))
    }

    fn poll(s: &Shared, id: &str) -> Response {
        s.count_poll();
        let Some((phase, task)) = s.advance(id) else {
            return s.error(StatusCode::NOT_FOUND, "Not found.");
        };
        reply(StatusCode::OK, &state(s, id, &task, phase))
    }

    fn state(s: &Shared, id: &str, task: &Task, phase: Phase) -> Value {
        let started = "Using seed: 42\n";
        let half = format!("{started} 50%|█████     | 5/10 [00:05<00:05,  1.00it/s]\n");
        if task.cancelled {
            let mut body = prediction(s, id, task, "canceled");
            body["logs"] = json!(started);
            return body;
        }
        let mut body = match (phase, s.end()) {
            (Phase::Queued, _) => return prediction(s, id, task, "starting"),
            (Phase::Running, _) => {
                let mut body = prediction(s, id, task, "processing");
                body["logs"] = json!(half);
                body
            }
            (Phase::Finished, End::Success) => {
                let mut body = prediction(s, id, task, "succeeded");
                body["output"] = json!(s.media_url(id));
                body["logs"] = json!(format!("{half}100%|██████████| 10/10 [00:10<00:00,  1.00it/s]\n"));
                body
            }
            (Phase::Finished, end) => {
                let mut body = prediction(s, id, task, "failed");
                body["error"] = json!(if end == End::Moderated { MODERATED } else { "CUDA out of memory" });
                body["logs"] = json!(half);
                body
            }
        };
        body["started_at"] = json!(task.created_at);
        if phase == Phase::Finished {
            body["completed_at"] = json!(timestamp());
            body["metrics"] = json!({"predict_time": 10.2, "total_time": 11.5});
        }
        body
    }

    fn cancel(s: &Shared, id: &str) -> Response {
        let task = {
            let mut tasks = lock(&s.tasks);
            let Some(task) = tasks.get_mut(id) else {
                return s.error(StatusCode::NOT_FOUND, "Not found.");
            };
            if !task.done {
                task.cancelled = true;
                task.done = true;
            }
            task.clone()
        };
        reply(StatusCode::OK, &state(s, id, &task, Phase::Finished))
    }
}

mod fal {
    use super::*;

    pub(super) async fn route(s: &Shared, req: &Req) -> Response {
        let segments = req.segments();
        if segments.len() >= 4 && segments[2] == "requests" {
            let app = format!("{}/{}", segments[0], segments[1]);
            let id = segments[3];
            return match (req.method.as_str(), &segments[4..]) {
                ("GET", []) => result(s, &app, id).await,
                ("GET", ["status"]) => status(s, req, &app, id),
                ("PUT", ["cancel"]) => cancel(s, &app, id),
                _ => s.not_found(),
            };
        }
        if req.method == "POST" && segments.len() >= 2 && segments.iter().all(|p| !p.is_empty()) {
            return create(s, req, &format!("{}/{}", segments[0], segments[1]));
        }
        s.not_found()
    }

    fn urls(s: &Shared, app: &str, id: &str, status: &str) -> Value {
        let response_url = format!("{}/{app}/requests/{id}", s.base);
        json!({
            "status": status, "request_id": id, "status_url": format!("{response_url}/status"),
            "cancel_url": format!("{response_url}/cancel"), "response_url": response_url,
        })
    }

    fn create(s: &Shared, req: &Req, app: &str) -> Response {
        let gate = s.gate();
        if let Some(refused) = s.refusal(&gate) {
            return refused;
        }
        let Some(body) = req.json() else {
            let detail = json!([{"loc": ["body"], "msg": "Input should be a valid dictionary", "type": "dict_type"}]);
            return reply(StatusCode::UNPROCESSABLE_ENTITY, &json!({"detail": detail}));
        };
        if !body.contains_key("prompt") && !body.contains_key("image_url") {
            let detail = json!([{"loc": ["body", "prompt"], "msg": "Field required", "type": "missing"}]);
            return reply(StatusCode::UNPROCESSABLE_ENTITY, &json!({"detail": detail}));
        }
        if let Gate::Malformed = gate {
            return truncated(StatusCode::OK);
        }
        let id = uuid();
        s.create(&id, app, Value::Object(body));
        let mut body = urls(s, app, &id, "IN_QUEUE");
        body["queue_position"] = json!(0);
        reply(StatusCode::OK, &body)
    }

    /// The task, if it exists under this app.
    fn task(s: &Shared, app: &str, id: &str) -> Option<Task> {
        lock(&s.tasks).get(id).filter(|t| t.model == app).cloned()
    }

    fn status(s: &Shared, req: &Req, app: &str, id: &str) -> Response {
        s.count_poll();
        if task(s, app, id).is_none() {
            return s.error(StatusCode::NOT_FOUND, "Request not found");
        }
        let Some((phase, _)) = s.advance(id) else {
            return s.error(StatusCode::NOT_FOUND, "Request not found");
        };
        let logs = req.param("logs") == Some("1");
        let log =
            |message: &str| json!({"message": message, "level": "INFO", "source": "user", "timestamp": timestamp()});
        let mut body = match phase {
            Phase::Queued => {
                let mut body = urls(s, app, id, "IN_QUEUE");
                body["queue_position"] = json!(0);
                return reply(StatusCode::OK, &body);
            }
            Phase::Running => urls(s, app, id, "IN_PROGRESS"),
            Phase::Finished => {
                let mut body = urls(s, app, id, "COMPLETED");
                body["metrics"] = json!({"inference_time": 10.2});
                body
            }
        };
        body["logs"] = if logs { json!([log("Generating video: 50%")]) } else { Value::Null };
        reply(StatusCode::OK, &body)
    }

    async fn result(s: &Shared, app: &str, id: &str) -> Response {
        let Some(task) = task(s, app, id) else {
            return s.error(StatusCode::NOT_FOUND, "Request not found");
        };
        if !task.done {
            return s.error(StatusCode::BAD_REQUEST, "Request is still in progress");
        }
        match s.end() {
            End::Success => {
                let size = sample_mp4().await.len();
                let file = json!({"url": s.media_url(id), "content_type": "video/mp4", "file_name": "out.mp4",
                                  "file_size": size});
                reply(StatusCode::OK, &json!({"video": file}))
            }
            End::Failure => s.error(StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
            End::Moderated => {
                let detail = json!([{"loc": ["body", "prompt"], "type": "content_policy_violation",
                    "msg": "The content could not be processed because it contained material flagged by a content checker."}]);
                let mut response = reply(StatusCode::UNPROCESSABLE_ENTITY, &json!({"detail": detail}));
                response.headers_mut().insert("x-fal-retryable", HeaderValue::from_static("false"));
                response
            }
        }
    }

    fn cancel(s: &Shared, app: &str, id: &str) -> Response {
        match task(s, app, id) {
            None => s.error(StatusCode::NOT_FOUND, "Request not found"),
            Some(task) if task.done => reply(StatusCode::BAD_REQUEST, &json!({"status": "ALREADY_COMPLETED"})),
            Some(_) => reply(StatusCode::ACCEPTED, &json!({"status": "CANCELLATION_REQUESTED"})),
        }
    }
}

mod stability {
    use super::*;

    const SIZES: [(u32, u32); 3] = [(1024, 576), (576, 1024), (768, 768)];
    const MODERATED: &str = "Your request was flagged by our content moderation system, as a result your request \
                             was denied and you were not charged.";

    pub(super) async fn route(s: &Shared, req: &Req) -> Response {
        match (req.method.as_str(), req.segments().as_slice()) {
            ("POST", ["v2beta", "stable-image", "generate", "core"]) => text_to_image(s, req).await,
            ("POST", ["v2beta", "image-to-video"]) => image_to_video(s, req),
            ("GET", ["v2beta", "image-to-video", "result", id]) => result(s, req, id).await,
            _ => s.not_found(),
        }
    }

    /// The form's parts as (name, content), or None when the body is not multipart/form-data.
    fn form(req: &Req) -> Option<Vec<(String, Vec<u8>)>> {
        let content_type = req.header("content-type")?;
        if !content_type.to_ascii_lowercase().starts_with("multipart/form-data") {
            return None;
        }
        let boundary = content_type.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?.trim_matches('"');
        let delimiter = format!("\r\n--{boundary}");
        let find = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).position(|w| w == needle);
        // A CRLF in front makes the first delimiter look like every other one.
        let body = [b"\r\n".as_slice(), &req.body].concat();
        let mut rest = &body[find(&body, delimiter.as_bytes())? + delimiter.len()..];
        let mut parts = Vec::new();
        // Each part: CRLF, headers, a blank line, the content, the next delimiter; "--" ends the form.
        while let Some(part) = rest.strip_prefix(b"\r\n") {
            let head_end = find(part, b"\r\n\r\n")?;
            let head = String::from_utf8_lossy(&part[..head_end]).into_owned();
            let content = &part[head_end + 4..];
            let end = find(content, delimiter.as_bytes())?;
            let name = head.split(';').find_map(|p| p.trim().strip_prefix("name="))?.trim_matches('"').to_owned();
            parts.push((name, content[..end].to_vec()));
            rest = &content[end + delimiter.len()..];
        }
        Some(parts)
    }

    fn part<'a>(parts: &'a [(String, Vec<u8>)], name: &str) -> Option<&'a [u8]> {
        parts.iter().find(|(n, _)| n == name).map(|(_, content)| content.as_slice())
    }

    fn bad_request(s: &Shared, message: &str) -> Response {
        s.error(StatusCode::BAD_REQUEST, message)
    }

    async fn text_to_image(s: &Shared, req: &Req) -> Response {
        let Some(parts) = form(req) else {
            return bad_request(s, "content-type: must be multipart/form-data");
        };
        if part(&parts, "prompt").is_none_or(<[u8]>::is_empty) {
            return bad_request(s, "prompt: is required");
        }
        if s.end() == End::Moderated {
            return s.error(StatusCode::FORBIDDEN, MODERATED);
        }
        let png = sample_png().await;
        if req.wants_json() {
            return reply(StatusCode::OK, &json!({"image": base64(&png), "finish_reason": "SUCCESS", "seed": 42}));
        }
        ([(header::CONTENT_TYPE, "image/png"), (header::HeaderName::from_static("finish-reason"), "SUCCESS")], png)
            .into_response()
            .with_seed()
    }

    fn image_to_video(s: &Shared, req: &Req) -> Response {
        let gate = s.gate();
        if let Some(refused) = s.refusal(&gate) {
            return refused;
        }
        let Some(parts) = form(req) else {
            return bad_request(s, "content-type: must be multipart/form-data");
        };
        let Some(image) = part(&parts, "image") else {
            return bad_request(s, "image: is required");
        };
        if image.starts_with(b"\x89PNG\r\n\x1a\n") && image.len() >= 24 && &image[12..16] == b"IHDR" {
            let be = |at: usize| u32::from_be_bytes([image[at], image[at + 1], image[at + 2], image[at + 3]]);
            let (width, height) = (be(16), be(20));
            if !SIZES.contains(&(width, height)) {
                let message = format!("image: dimensions must be 1024x576, 576x1024 or 768x768 (got {width}x{height})");
                return bad_request(s, &message);
            }
        } else if !image.starts_with(&[0xFF, 0xD8]) {
            return bad_request(s, "image: must be a PNG or JPEG");
        }
        if s.end() == End::Moderated {
            return s.error(StatusCode::FORBIDDEN, MODERATED);
        }
        if let Gate::Malformed = gate {
            return truncated(StatusCode::OK);
        }
        let id = hex(64);
        s.create(&id, "stable-video-diffusion", Value::Null);
        reply(StatusCode::OK, &json!({"id": id}))
    }

    /// 202 while rendering, then the video: bytes (a download) or, with `Accept: application/json`,
    /// base64 JSON. Every result GET is a poll except a byte fetch after the end was already answered.
    async fn result(s: &Shared, req: &Req, id: &str) -> Response {
        let Some((phase, before)) = s.advance(id) else {
            s.count_poll();
            return s.error(StatusCode::NOT_FOUND, "No generation found for the provided ID");
        };
        let bytes = !req.wants_json();
        if !(before.done && bytes) {
            s.count_poll();
        }
        match (phase, s.end()) {
            (Phase::Queued | Phase::Running, _) => {
                reply(StatusCode::ACCEPTED, &json!({"id": id, "status": "in-progress"}))
            }
            (Phase::Finished, End::Failure) => {
                s.error(StatusCode::INTERNAL_SERVER_ERROR, "An unexpected server error occurred, please try again.")
            }
            (Phase::Finished, _) if bytes => {
                s.downloads.fetch_add(1, Ordering::SeqCst);
                let mut response = video(sample_mp4().await);
                response.headers_mut().insert("finish-reason", HeaderValue::from_static("SUCCESS"));
                response.with_seed()
            }
            (Phase::Finished, _) => {
                let mp4 = sample_mp4().await;
                reply(StatusCode::OK, &json!({"video": base64(&mp4), "finish_reason": "SUCCESS", "seed": 42}))
            }
        }
    }

    trait WithSeed {
        fn with_seed(self) -> Response;
    }

    impl WithSeed for Response {
        fn with_seed(mut self) -> Response {
            self.headers_mut().insert("seed", HeaderValue::from_static("42"));
            self
        }
    }
}

/// The providers' published contracts (`tests/provider_contracts/<provider>.json`, written from
/// each provider's API reference and official SDK types, sources and date in each file), applied
/// to the requests the fakes receive.
pub mod contract {
    use super::{Provider, Req};
    use serde_json::Value;

    /// The contract document of `provider`.
    pub fn document(provider: Provider) -> Value {
        let text = match provider {
            Provider::Runway => include_str!("../provider_contracts/runway.json"),
            Provider::Luma => include_str!("../provider_contracts/luma.json"),
            Provider::Veo => include_str!("../provider_contracts/veo.json"),
            Provider::Replicate => include_str!("../provider_contracts/replicate.json"),
            Provider::Fal => include_str!("../provider_contracts/fal.json"),
            Provider::Stability => include_str!("../provider_contracts/stability.json"),
        };
        serde_json::from_str(text).expect("a contract file is JSON")
    }

    /// The contract's operation a request is, and the model whose schema applies (if the
    /// contract has one per model).
    fn operation(provider: Provider, req: &Req) -> Option<(&'static str, Option<String>)> {
        let segments: Vec<&str> = req.path.trim_start_matches('/').split('/').collect();
        let body_model = || {
            serde_json::from_slice::<Value>(&req.body).ok().and_then(|b| b.get("model")?.as_str().map(str::to_owned))
        };
        let op = match (provider, req.method.as_str(), segments.as_slice()) {
            (Provider::Runway, "POST", ["v1", "text_to_video"]) => ("create_text_to_video", body_model()),
            (Provider::Runway, "POST", ["v1", "image_to_video"]) => ("create_image_to_video", body_model()),
            (Provider::Luma, "POST", ["dream-machine", "v1", "generations", "video"]) => {
                ("create_video_generation", None)
            }
            (Provider::Veo, "POST", ["v1beta", "models", m]) if m.ends_with(":predictLongRunning") => {
                ("predict_long_running", None)
            }
            (Provider::Replicate, "POST", ["v1", "models", _, _, "predictions"]) => ("create_model_prediction", None),
            (Provider::Replicate, "POST", ["v1", "predictions"]) => ("create_version_prediction", None),
            (Provider::Fal, "POST", _) => ("submit", Some(segments.join("/"))),
            (Provider::Stability, "POST", ["v2beta", "image-to-video"]) => ("create_image_to_video", None),
            (Provider::Runway, "GET", ["v1", "tasks", _]) => ("get_task", None),
            (Provider::Luma, "GET", ["dream-machine", "v1", "generations", _]) => ("get_generation", None),
            (Provider::Veo, "GET", ["v1beta", "models", _, "operations", _]) => ("get_operation", None),
            (Provider::Veo, "POST", ["v1beta", "interactions"]) => ("create_interaction", body_model()),
            (Provider::Veo, "GET", ["v1beta", "interactions", _]) => ("get_interaction", None),
            (Provider::Replicate, "GET", ["v1", "predictions", _]) => ("get_prediction", None),
            (Provider::Fal, "GET", [.., "requests", _, "status"]) => ("get_status", None),
            (Provider::Fal, "GET", [.., "requests", _]) => ("get_result", None),
            _ => return None,
        };
        Some(op)
    }

    /// Whether a fake's answer to `req` was one the contract describes (the operation's success
    /// status), and what is wrong with it under the contract's schema.
    pub(super) fn answer_violations(
        provider: Provider,
        req: &Req,
        status: axum::http::StatusCode,
        body: &[u8],
    ) -> (bool, Vec<String>) {
        let Some((name, _)) = operation(provider, req) else {
            return (false, Vec::new());
        };
        let doc = document(provider);
        let answer = &doc["operations"][name]["answer"];
        let (Some(expected), Some(schema)) = (answer["status"].as_u64(), answer.get("body")) else {
            return (false, Vec::new());
        };
        if u64::from(status.as_u16()) != expected {
            return (false, Vec::new());
        }
        let Ok(body) = serde_json::from_slice::<Value>(body) else {
            // A truncated answer is a script of its own (malformed JSON), not a contract answer.
            return (false, Vec::new());
        };
        let wrong = match jsonschema::validator_for(schema) {
            Ok(validator) => {
                validator.iter_errors(&body).map(|e| format!("{name} answer: {} at {}", e, e.instance_path())).collect()
            }
            Err(e) => vec![format!("the contract's answer schema for {name} does not compile: {e}")],
        };
        (true, wrong)
    }

    /// What is wrong with `req` under `provider`'s contract: nothing for a request it allows.
    pub(super) fn violations(provider: Provider, req: &Req) -> Vec<String> {
        let doc = document(provider);
        let mut wrong = Vec::new();
        if let Some(headers) = doc["required_headers"].as_object() {
            for (name, value) in headers {
                let sent = req.header(name);
                if let Some(expected) = value.as_str()
                    && sent != Some(expected)
                {
                    wrong.push(format!("header {name} must be {expected:?}, was {sent:?}"));
                }
            }
        }
        let Some((name, model)) = operation(provider, req) else {
            return wrong;
        };
        let op = &doc["operations"][name];
        if let Some(retired) = op["retired"].as_str() {
            wrong.push(format!("{name} was retired on {retired}"));
            return wrong;
        }
        let Some(schema) = op.get("body") else {
            return wrong;
        };
        let body: Value = match serde_json::from_slice(&req.body) {
            Ok(body) => body,
            Err(e) => {
                wrong.push(format!("the body is not JSON: {e}"));
                return wrong;
            }
        };
        let mut schemas = vec![schema.clone()];
        if let Some(per_model) = model.as_deref().and_then(|m| op["per_model"].get(m)) {
            schemas.push(per_model.clone());
        } else if provider == Provider::Fal && model.is_some() && op["per_model"].is_object() {
            // An endpoint the contract does not list: only its default model's input is known.
            schemas.truncate(1);
        }
        for schema in schemas {
            match jsonschema::validator_for(&schema) {
                Ok(validator) => {
                    wrong.extend(validator.iter_errors(&body).map(|e| format!("{} at {}", e, e.instance_path())));
                }
                Err(e) => wrong.push(format!("the contract's schema for {name} does not compile: {e}")),
            }
        }
        // Limits a JSON Schema cannot say: Runway counts the prompt in UTF-16 code units.
        if provider == Provider::Runway
            && let (Some(prompt), Some(model)) = (body["promptText"].as_str(), model.as_deref())
            && let Some(max) = doc["limits"]["promptText_utf16_max"][model].as_u64()
            && prompt.encode_utf16().count() as u64 > max
        {
            wrong.push(format!("promptText is {} UTF-16 code units, over {max}", prompt.encode_utf16().count()));
        }
        wrong
    }
}
