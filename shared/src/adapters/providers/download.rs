//! Safe downloads of provider results. A result URL comes from a third party, so it is treated as
//! hostile: https only, the provider's own hosts only, every address the name resolves to checked
//! (private, loopback, link-local, metadata, shared and reserved ranges refused, IPv4-mapped IPv6
//! included) and the connection pinned to the checked address so a second lookup cannot swap it
//! (DNS rebinding). Redirects are followed by hand, a few at most, each hop checked the same way.
//! The body is streamed to a file under a size cap, and only video (or plain binary) is accepted.

use std::net::{IpAddr, SocketAddr};

use crate::adapters::public_address::Refusal;
use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::ports::ProviderError;

/// What a download may do.
#[derive(Debug, Clone)]
pub struct DownloadPolicy {
    /// Host names allowed, as exact names or as parent domains (`cdn-luma.com` allows
    /// `storage.cdn-luma.com`).
    pub hosts: Vec<String>,
    /// Largest body accepted.
    pub max_bytes: u64,
    /// Redirects followed at most.
    pub max_redirects: usize,
    /// Connecting.
    pub connect_timeout: Duration,
    /// The whole download.
    pub timeout: Duration,
    /// Tests only: plain http to loopback addresses. Never set in production configuration.
    pub allow_loopback_http: bool,
}

impl DownloadPolicy {
    /// Downloads from `hosts`, 512 MiB at most.
    pub fn for_hosts(hosts: &[&str]) -> Self {
        Self {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            max_bytes: 512 * 1024 * 1024,
            max_redirects: 3,
            connect_timeout: Duration::from_secs(5),
            timeout: Duration::from_secs(300),
            allow_loopback_http: false,
        }
    }
}

fn refused(message: impl Into<String>) -> ProviderError {
    ProviderError::permanent("unsafe_download", message)
}

pub use crate::adapters::public_address::forbidden_ip;

fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    allowed.iter().any(|a| {
        let a = a.trim_start_matches('.').to_ascii_lowercase();
        host == a || host.ends_with(&format!(".{a}"))
    })
}

/// Checks one URL against the policy and resolves it to the address to connect to.
async fn vet(url: &reqwest::Url, policy: &DownloadPolicy) -> Result<SocketAddr, ProviderError> {
    let host = url.host_str().ok_or_else(|| refused("The result URL has no host."))?;
    let plain_http = url.scheme() == "http";
    if url.scheme() != "https" && !(plain_http && policy.allow_loopback_http) {
        return Err(refused(format!("Only https downloads are allowed, not {}.", url.scheme())));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refused("Result URLs with credentials are refused."));
    }
    if !host_allowed(host, &policy.hosts) {
        return Err(refused(format!("{host} is not one of the provider's hosts.")));
    }
    let port = url.port_or_known_default().unwrap_or(443);
    let address = crate::adapters::public_address::resolve_public(host, port, policy.allow_loopback_http)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Unresolved(m) => ProviderError::retryable(m),
            Refusal::Forbidden(m) => refused(m),
        })?;
    if plain_http && !address.ip().is_loopback() {
        return Err(refused("Plain http is allowed for loopback test servers only."));
    }
    Ok(address)
}

fn acceptable_type(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let ct = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    ct.starts_with("video/") || ct == "application/octet-stream" || ct == "binary/octet-stream"
}

/// Downloads `url` to `dest` under `policy`. `headers` (an API key, for providers whose result
/// URLs need one) are sent to the first URL's host only, never to a host a redirect leads to.
pub async fn download(
    url: &str,
    dest: &Path,
    policy: &DownloadPolicy,
    headers: &[(String, String)],
) -> Result<u64, ProviderError> {
    let mut url = reqwest::Url::parse(url).map_err(|_| refused("The result URL is not a URL."))?;
    let first_host = url.host_str().map(str::to_owned);
    let deadline = tokio::time::Instant::now() + policy.timeout;
    for _hop in 0..=policy.max_redirects {
        let address = vet(&url, policy).await?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.timeout);
        if host.parse::<IpAddr>().is_err() && !host.starts_with('[') {
            // Connect to the address that was checked, not to whatever a second lookup says.
            builder = builder.resolve(&host, address);
        }
        let client = builder.build().map_err(|e| refused(e.to_string()))?;
        let mut request = client.get(url.clone());
        if url.host_str().map(str::to_owned) == first_host {
            for (name, value) in headers {
                request = request.header(name, value);
            }
        }
        let mut response = tokio::time::timeout_at(deadline, request.send())
            .await
            .map_err(|_| ProviderError::retryable("The download timed out."))?
            .map_err(|e| ProviderError::retryable(format!("The download failed: {}", e.without_url())))?;
        let status = response.status();
        if status.is_redirection() {
            let location = response
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .ok_or_else(|| refused("A redirect without a location."))?;
            url = url.join(location).map_err(|_| refused("A redirect to something that is not a URL."))?;
            continue;
        }
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Err(ProviderError::retryable(format!("The download answered {status}.")));
        }
        if !status.is_success() {
            // Expired or withdrawn result URLs: polling again yields fresh ones.
            return Err(ProviderError::retryable(format!("The download answered {status}.")));
        }
        let content_type = response.headers().get(reqwest::header::CONTENT_TYPE).and_then(|c| c.to_str().ok());
        if !acceptable_type(content_type) {
            return Err(refused(format!(
                "The result is {}, not a video.",
                content_type.unwrap_or("of no stated type")
            )));
        }
        if response.content_length().is_some_and(|len| len > policy.max_bytes) {
            return Err(refused(format!("The result is larger than {} bytes.", policy.max_bytes)));
        }
        let mut file = tokio::fs::File::create(dest).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        let mut written: u64 = 0;
        loop {
            let chunk = tokio::time::timeout_at(deadline, response.chunk())
                .await
                .map_err(|_| ProviderError::retryable("The download timed out."))?
                .map_err(|e| ProviderError::retryable(format!("The download was cut off: {}", e.without_url())))?;
            let Some(chunk) = chunk else { break };
            written += chunk.len() as u64;
            if written > policy.max_bytes {
                drop(file);
                let _ = tokio::fs::remove_file(dest).await;
                return Err(refused(format!("The result is larger than {} bytes.", policy.max_bytes)));
            }
            file.write_all(&chunk).await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        }
        file.flush().await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        file.sync_all().await.map_err(|e| ProviderError::retryable(e.to_string()))?;
        return Ok(written);
    }
    Err(refused(format!("More than {} redirects.", policy.max_redirects)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_allowed() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "127.0.0.1",
            "127.1.2.3",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fd00:ec2::254",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:127.0.0.1",
            "64:ff9b::a00:1",
            "::a00:1",
        ] {
            assert!(forbidden_ip(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(!forbidden_ip(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[test]
    fn hosts_match_exactly_or_as_parent_domains() {
        let allowed = vec!["cdn-luma.com".to_owned()];
        assert!(host_allowed("storage.cdn-luma.com", &allowed));
        assert!(host_allowed("cdn-luma.com", &allowed));
        assert!(host_allowed("CDN-LUMA.COM.", &allowed));
        assert!(!host_allowed("evilcdn-luma.com", &allowed));
        assert!(!host_allowed("cdn-luma.com.evil.net", &allowed));
    }

    #[test]
    fn only_video_or_binary_is_accepted() {
        assert!(acceptable_type(Some("video/mp4")));
        assert!(acceptable_type(Some("application/octet-stream; charset=binary")));
        assert!(!acceptable_type(Some("text/html")));
        assert!(!acceptable_type(None));
    }
}
