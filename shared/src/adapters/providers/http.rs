//! How every provider client behaves on the wire: timeouts, retries with exponential backoff and
//! jitter on 429/5xx/timeouts honouring `Retry-After`, no retry on other 4xx, and errors turned
//! into the provider's own code and message. API keys come from the secret source on each call
//! (the source caches them) and never reach a log line.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};

use crate::domain::job::FailureCode;
use crate::ports::{ProviderError, SecretSource};

/// Timeouts and retries of one provider's API calls.
#[derive(Debug, Clone)]
pub struct WirePolicy {
    /// Connecting (TCP + TLS).
    pub connect_timeout: Duration,
    /// A whole API request (downloads have their own limit).
    pub request_timeout: Duration,
    /// Tries after the first one.
    pub retries: u32,
    /// The first backoff; doubled on every retry, with up to 50 % jitter.
    pub backoff: Duration,
    /// The longest wait between two tries, `Retry-After` included; a longer `Retry-After` ends the
    /// call with a retryable error, and the job's own backoff takes over.
    pub max_wait: Duration,
}

impl Default for WirePolicy {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            retries: 3,
            backoff: Duration::from_millis(500),
            max_wait: Duration::from_secs(20),
        }
    }
}

/// A response body with what the client needs of the response.
#[derive(Debug)]
pub struct Answer {
    /// The status (2xx: other statuses become errors before they get here).
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: bytes::Bytes,
}

impl Answer {
    /// The body as JSON of type `T`; a malformed answer is worth another try later.
    pub fn json<T: serde::de::DeserializeOwned>(&self, provider: &str) -> Result<T, ProviderError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ProviderError::retryable(format!("{provider} answered with malformed JSON ({e}) at status {}", self.status))
        })
    }
}

/// Turns a provider's error response into its code and message.
pub type ErrorParser = fn(StatusCode, &[u8]) -> (Option<String>, String);

/// One request to send (rebuilt for every try).
#[derive(Debug, Clone)]
pub struct Call {
    /// The method.
    pub method: Method,
    /// The full URL.
    pub url: String,
    /// Headers (the key header is added by the caller).
    pub headers: Vec<(String, String)>,
    /// The body and its content type.
    pub body: Option<(bytes::Bytes, String)>,
}

impl Call {
    /// A GET.
    pub fn get(url: impl Into<String>) -> Self {
        Self { method: Method::GET, url: url.into(), headers: Vec::new(), body: None }
    }

    /// A request with a JSON body.
    pub fn json(method: Method, url: impl Into<String>, body: &serde_json::Value) -> Self {
        let bytes = bytes::Bytes::from(serde_json::to_vec(body).unwrap_or_default());
        Self { method, url: url.into(), headers: Vec::new(), body: Some((bytes, "application/json".into())) }
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

/// A provider's HTTP client.
#[derive(Clone)]
pub struct Wire {
    /// The provider's name, for errors and logs.
    pub provider: &'static str,
    /// Built at the first call: the worker's cold start loads no TLS roots for providers that a
    /// batch does not use.
    client: Arc<std::sync::OnceLock<reqwest::Client>>,
    policy: WirePolicy,
    secrets: Arc<dyn SecretSource>,
    parse_error: ErrorParser,
    /// A 429 means the account's quota is spent (Runway's daily limit), not "slow down": it ends
    /// the attempt with `quota_exhausted` instead of being retried.
    too_many_is_quota: bool,
}

impl std::fmt::Debug for Wire {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is never printed; its name is.
        f.debug_struct("Wire").field("provider", &self.provider).field("policy", &self.policy).finish()
    }
}

/// Whether a status is worth another try.
fn retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT
}

/// `Retry-After` in seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().ok().or(Some(Duration::ZERO))
}

/// Exponential backoff with up to 50 % random jitter.
fn backoff(policy: &WirePolicy, retry: u32) -> Duration {
    let base = policy.backoff.saturating_mul(1u32 << retry.min(16));
    let mut byte = [0u8; 1];
    let jitter = if getrandom::fill(&mut byte).is_ok() { f64::from(byte[0]) / 255.0 * 0.5 } else { 0.25 };
    base.mul_f64(1.0 + jitter).min(policy.max_wait)
}

impl Wire {
    /// A client for `provider`, its keys read from `secrets`.
    pub fn new(
        provider: &'static str,
        policy: WirePolicy,
        secrets: Arc<dyn SecretSource>,
        parse_error: ErrorParser,
    ) -> Result<Self, ProviderError> {
        Ok(Self {
            provider,
            client: Arc::new(std::sync::OnceLock::new()),
            policy,
            secrets,
            parse_error,
            too_many_is_quota: false,
        })
    }

    /// This wire, for a provider whose 429 means a spent quota (see `too_many_is_quota`).
    pub fn too_many_means_quota(mut self) -> Self {
        self.too_many_is_quota = true;
        self
    }

    /// The HTTP client, built once, at the first call.
    fn client(&self) -> Result<&reqwest::Client, ProviderError> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let built = reqwest::Client::builder()
            .connect_timeout(self.policy.connect_timeout)
            .timeout(self.policy.request_timeout)
            // API calls never follow redirects: an answer elsewhere is not the provider's.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ProviderError::permanent("client", e.to_string()))?;
        Ok(self.client.get_or_init(|| built))
    }

    /// The API key in the secret `name`, from the secret source.
    pub async fn key_named(&self, name: &str) -> Result<String, ProviderError> {
        match self.secrets.secret(name).await {
            Ok(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
            _ => Err(ProviderError::permanent(
                "not_configured",
                format!("No API key for {}: set the secret {name}.", self.provider),
            )),
        }
    }

    /// Sends `call`, retrying what is worth retrying. `resend_safe` says whether the request may
    /// be sent again after it may have reached the provider without an answer (a GET may; a
    /// create that timed out is not resent, so it never runs twice — the job's next attempt
    /// decides).
    pub async fn send(&self, call: &Call, resend_safe: bool) -> Result<Answer, ProviderError> {
        let mut retry = 0;
        loop {
            let outcome = self.try_once(call).await;
            let (error, wait) = match outcome {
                Ok(answer) => return Ok(answer),
                Err(Attempt::Refused(error)) => return Err(error),
                Err(Attempt::Retryable { error, wait, reached }) => {
                    if reached && !resend_safe {
                        // A create that may have reached the provider (it timed out, or its answer
                        // was cut off): sent again, it could make a second, billed task.
                        return Err(ProviderError {
                            code: Some("ambiguous_submit".into()),
                            message: format!(
                                "{} The request may have reached it, so it was not sent again.",
                                error.message
                            ),
                            retryable: false,
                            failure: FailureCode::AmbiguousSubmit,
                        });
                    }
                    (error, wait)
                }
            };
            if retry >= self.policy.retries {
                return Err(error);
            }
            let wait = wait.unwrap_or_else(|| backoff(&self.policy, retry));
            if wait > self.policy.max_wait {
                return Err(error);
            }
            tracing::warn!(provider = self.provider, retry = retry + 1, ?wait, error = %error, "provider call failed; retrying");
            tokio::time::sleep(wait).await;
            retry += 1;
        }
    }

    async fn try_once(&self, call: &Call) -> Result<Answer, Attempt> {
        let mut request = self.client().map_err(Attempt::Refused)?.request(call.method.clone(), &call.url);
        for (name, value) in &call.headers {
            request = request.header(name, value);
        }
        if let Some((body, content_type)) = &call.body {
            request = request.header(reqwest::header::CONTENT_TYPE, content_type).body(body.clone());
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                // A failed connect never reached the provider; a timeout may have.
                let reached = !e.is_connect();
                let error =
                    ProviderError::retryable(format!("{} could not be reached: {}", self.provider, describe(e)));
                return Err(Attempt::Retryable { error, wait: None, reached });
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body,
            Err(e) => {
                let error = ProviderError::retryable(format!("{} answer was cut off: {}", self.provider, describe(e)));
                return Err(Attempt::Retryable { error, wait: None, reached: true });
            }
        };
        if status.is_success() {
            return Ok(Answer { status, headers, body });
        }
        let (code, message) = (self.parse_error)(status, &body);
        let code = code.unwrap_or_else(|| status.as_u16().to_string());
        let message = format!("{} answered {}: {message}", self.provider, status.as_u16());
        let failure = FailureCode::for_code(status.as_str());
        if status == StatusCode::TOO_MANY_REQUESTS && self.too_many_is_quota {
            let failure = FailureCode::QuotaExhausted;
            return Err(Attempt::Refused(ProviderError { code: Some(code), message, retryable: false, failure }));
        }
        if retryable_status(status) {
            let error = ProviderError { code: Some(code), message, retryable: true, failure };
            // An error answer means the request did not take (providers document 429 and 5xx as
            // safe to retry, and do not charge for them), so even a create may be sent again.
            return Err(Attempt::Retryable { error, wait: retry_after(&headers), reached: false });
        }
        Err(Attempt::Refused(ProviderError { code: Some(code), message, retryable: false, failure }))
    }
}

enum Attempt {
    Refused(ProviderError),
    Retryable { error: ProviderError, wait: Option<Duration>, reached: bool },
}

/// A reqwest error without its URL (URLs may carry signed tokens).
fn describe(e: reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        e.without_url().to_string()
    }
}

/// A text field of a JSON error body, as the usual shapes put it: `{"error": "..."}`,
/// `{"error": {"message": ...}}`, `{"detail": "..."}`, `{"detail": [{"msg": ...}]}`, `{"errors": [...]}`.
pub fn error_text(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    if let Some(e) = value.get("error") {
        return text(e).or_else(|| e.get("message").and_then(text));
    }
    if let Some(d) = value.get("detail") {
        return text(d).or_else(|| d.get(0).and_then(|first| first.get("msg")).and_then(text));
    }
    if let Some(list) = value.get("errors").and_then(|e| e.as_array()) {
        return Some(list.iter().filter_map(text).collect::<Vec<_>>().join("; "));
    }
    value.get("message").and_then(text)
}

/// The body as text when it is not JSON, shortened.
pub fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text: String = text.chars().take(300).collect();
    if text.trim().is_empty() { "(no body)".into() } else { text }
}

/// A `multipart/form-data` body of text fields and at most one file (Stability's API takes no
/// JSON). Returns the body and its content type.
pub fn multipart(fields: &[(&str, String)], file: Option<(&str, &str, &str, &[u8])>) -> (bytes::Bytes, String) {
    let boundary = format!("aivideo-{}", ulid::Ulid::new());
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(value.as_bytes());
        body.extend_from_slice(b"\r\n");
    }
    if let Some((name, filename, content_type, bytes)) = file {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: {content_type}\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (bytes::Bytes::from(body), format!("multipart/form-data; boundary={boundary}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::ZERO), "a date in the past means now");
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_and_is_capped() {
        let policy =
            WirePolicy { backoff: Duration::from_millis(100), max_wait: Duration::from_secs(1), ..Default::default() };
        for retry in 0..3 {
            let wait = backoff(&policy, retry);
            let base = Duration::from_millis(100 * (1 << retry));
            assert!(wait >= base && wait <= base.mul_f64(1.5), "{retry}: {wait:?}");
        }
        assert_eq!(backoff(&policy, 10), Duration::from_secs(1));
    }

    #[test]
    fn error_texts_of_every_shape() {
        assert_eq!(error_text(br#"{"error":"bad ratio"}"#).as_deref(), Some("bad ratio"));
        assert_eq!(error_text(br#"{"error":{"code":429,"message":"quota"}}"#).as_deref(), Some("quota"));
        assert_eq!(error_text(br#"{"detail":"throttled"}"#).as_deref(), Some("throttled"));
        assert_eq!(error_text(br#"{"detail":[{"msg":"flagged","type":"x"}]}"#).as_deref(), Some("flagged"));
        assert_eq!(error_text(br#"{"name":"n","errors":["a","b"]}"#).as_deref(), Some("a; b"));
        assert_eq!(error_text(b"<html>"), None);
    }
}
