//! Webhook deliveries over HTTP (SPEC §8.6). A target is a user's say-so, so it gets the download
//! policy: https, public addresses only, checked on every attempt and connected to the address
//! checked (DNS rebinding), redirects never followed, an answer within the timeout.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::adapters::public_address::{Refusal, resolve_public};
use crate::domain::webhooks::{AttemptResult, DELIVERY_TIMEOUT, MAX_URL_LENGTH, excerpt};
use crate::ports::WebhookSender;

/// Checks a webhook URL's form (its addresses are checked by `vet`): absolute, `https` (or
/// `http` when `allow_http` — loopback test receivers), a host, no credentials, not too long.
fn check_url_form(raw: &str, allow_http: bool) -> Result<reqwest::Url, String> {
    if raw.len() > MAX_URL_LENGTH {
        return Err(format!("Ensure this field has no more than {MAX_URL_LENGTH} characters."));
    }
    let url = reqwest::Url::parse(raw).map_err(|_| "Enter a valid URL.".to_owned())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        _ => return Err("Only https URLs are allowed.".into()),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("Enter a valid URL.".into());
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("URLs with credentials are not allowed.".into());
    }
    if url.fragment().is_some() {
        return Err("URLs with a fragment are not allowed.".into());
    }
    Ok(url)
}

/// Sends deliveries with reqwest (rustls).
#[derive(Debug, Clone)]
pub struct HttpWebhookSender {
    /// How long a receiver has to answer (10 s; tests shorten it).
    pub timeout: Duration,
    /// Tests only, never read from the environment: plain http to loopback receivers.
    pub allow_loopback_http: bool,
}

impl Default for HttpWebhookSender {
    fn default() -> Self {
        Self { timeout: DELIVERY_TIMEOUT, allow_loopback_http: false }
    }
}

impl HttpWebhookSender {
    /// The URL, and the checked address to connect to.
    async fn vet(&self, raw: &str) -> Result<(reqwest::Url, std::net::SocketAddr), String> {
        let url = check_url_form(raw, self.allow_loopback_http)?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let port = url.port_or_known_default().unwrap_or(443);
        let address = resolve_public(&host, port, self.allow_loopback_http).await.map_err(|r| match r {
            Refusal::Unresolved(m) | Refusal::Forbidden(m) => m,
        })?;
        if url.scheme() == "http" && !address.ip().is_loopback() {
            return Err("Only https URLs are allowed.".into());
        }
        Ok((url, address))
    }
}

#[async_trait]
impl WebhookSender for HttpWebhookSender {
    async fn check(&self, url: &str) -> Result<(), String> {
        self.vet(url).await.map(|_| ())
    }

    async fn send(&self, url: &str, headers: &[(String, String)], body: &str) -> AttemptResult {
        let started = Instant::now();
        let elapsed = |started: Instant| u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let (url, address) = match self.vet(url).await {
            Ok(checked) => checked,
            Err(reason) => {
                return AttemptResult { error: Some(format!("Refused: {reason}")), ..AttemptResult::default() };
            }
        };
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout)
            .timeout(self.timeout)
            .user_agent(concat!("aivideo-webhooks/", env!("CARGO_PKG_VERSION")));
        if host.parse::<IpAddr>().is_err() && !host.starts_with('[') {
            // Connect to the address just checked, not to whatever a second lookup says.
            builder = builder.resolve(&host, address);
        }
        let client = match builder.build() {
            Ok(client) => client,
            Err(e) => return AttemptResult { error: Some(e.to_string()), ..AttemptResult::default() },
        };
        let mut request = client.post(url).header("content-type", "application/json").body(body.to_owned());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("No answer within {} ms.", self.timeout.as_millis())
                } else if e.is_connect() {
                    "Could not connect.".to_owned()
                } else {
                    format!("The request failed: {}", e.without_url())
                };
                return AttemptResult { duration_ms: elapsed(started), error: Some(error), ..AttemptResult::default() };
            }
        };
        let status = response.status();
        // The answer's start only, read under the same deadline.
        let text = tokio::time::timeout(self.timeout.saturating_sub(started.elapsed()), async {
            let mut response = response;
            let mut kept = Vec::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                kept.extend_from_slice(&chunk);
                if kept.len() >= crate::domain::webhooks::RESPONSE_EXCERPT_BYTES {
                    break;
                }
            }
            kept
        })
        .await
        .unwrap_or_default();
        let error = status.is_redirection().then(|| "Redirects are not followed.".to_owned());
        AttemptResult {
            status_code: Some(status.as_u16()),
            duration_ms: elapsed(started),
            response_excerpt: excerpt(&String::from_utf8_lossy(&text)),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_with_a_host_and_no_credentials() {
        assert!(check_url_form("https://example.com/h?x=1", false).is_ok());
        for bad in
            ["http://example.com/", "ftp://x/", "https://u:p@example.com/", "not a url", "https://", "https://e.com/#f"]
        {
            assert!(check_url_form(bad, false).is_err(), "{bad}");
        }
        assert!(check_url_form("http://127.0.0.1:9/", true).is_ok());
    }
}
