//! Configuration, read once, in one place, into a typed struct. Every setting has a default that
//! works locally; the README's configuration table lists them.

use std::net::SocketAddr;
use std::path::PathBuf;

pub use crate::adapters::aws::AwsNames;

/// Which adapters back the ports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The local default: redb store and secrets in the data dir.
    Embedded,
    /// DynamoDB, SQS, S3 and Secrets Manager.
    Aws,
}

impl Backend {
    /// Parses `embedded` or `aws`.
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw {
            "embedded" => Ok(Backend::Embedded),
            "aws" => Ok(Backend::Aws),
            other => Err(format!("unknown backend {other:?} (expected embedded or aws)")),
        }
    }
}

/// The signing algorithm tokens must use, pinned here and never read from a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JwtAlgorithm {
    /// A shared secret.
    #[default]
    Hs256,
    /// RSA keys from a JWKS URL.
    Rs256,
    /// P-256 keys from a JWKS URL.
    Es256,
}

/// How bearer tokens are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthConfig {
    /// `JWT_ALGORITHM`: HS256 (default), RS256 or ES256.
    pub algorithm: JwtAlgorithm,
    /// `JWT_SECRET`: the HS256 secret; locally generated into the data dir when unset.
    pub secret: Option<String>,
    /// `JWT_JWKS_URL`: where RS256/ES256 keys are published (e.g. Cognito's).
    pub jwks_url: Option<String>,
    /// `JWT_ISSUER`: required `iss` when set.
    pub issuer: Option<String>,
    /// `JWT_AUDIENCE`: required `aud` when set.
    pub audience: Option<String>,
}

/// Everything a function or the local command reads from its environment.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `AIVIDEO_BACKEND`: `embedded` (default) or `aws`.
    pub backend: Backend,
    /// `AIVIDEO_DATA_DIR`: the embedded backend's folder (default `.aivideo`).
    pub data_dir: PathBuf,
    /// Token checking.
    pub auth: AuthConfig,
    /// `AIVIDEO_CURSOR_SECRET`: signs pagination cursors; defaults to one derived from the token
    /// secret (required with JWKS, where there is no shared secret).
    pub cursor_secret: Option<String>,
    /// `AIVIDEO_ADDR`: where a function binary listens when it runs outside Lambda.
    pub addr: SocketAddr,
    /// The optional LLM prompt writer.
    pub llm: Option<LlmConfig>,
    /// Names of the AWS resources (the `aws` backend).
    pub aws: AwsNames,
    /// Create missing AWS resources at start-up (`--create-resources`, for emulators and first runs).
    pub create_resources: bool,
    /// How the worker paces itself.
    pub worker: WorkerTuning,
    /// `AIVIDEO_<PROVIDER>_BASE_URL` (`RUNWAY`, `LUMA`, `VEO`, `REPLICATE`, `FAL`, `STABILITY_AI`):
    /// a provider's API elsewhere than its published address (a proxy, a regional endpoint).
    pub provider_base_urls: std::collections::BTreeMap<crate::domain::values::AiProvider, String>,
    /// Tests only, and never read from the environment: lets provider clients download results
    /// over plain http from loopback (the protocol fakes).
    pub allow_loopback_downloads: bool,
    /// `AIVIDEO_ALLOWED_HOSTS`: hosts requests may name besides the bind address, `localhost`,
    /// `127.0.0.1` and `[::1]` (comma list; `.example.com` for a domain and its subdomains, `*`
    /// for any), as Django's `ALLOWED_HOSTS`. On API Gateway its own domain is allowed.
    pub allowed_hosts: Vec<String>,
    /// `AIVIDEO_IDEMPOTENCY_CLAIM_SECONDS` (default 120): on DynamoDB, how long a keyed request's
    /// claim blocks retries of its key before a retry may take it over (its holder is then taken
    /// for dead). The template sets the API functions' timeout plus a margin: no invocation
    /// outlives its timeout, so an older claim has no live holder. (The embedded backend needs
    /// none: a restarted process owns its data dir alone and drops the dead one's claims.)
    pub idempotency_claim_seconds: u64,
    /// `AIVIDEO_CORS_ORIGINS` (comma list of exact origins such as `http://127.0.0.1:5173`) and
    /// `aivideo serve --cors-origin`: pages on these origins may call the API from a browser
    /// (SPEC §8.4). None by default. On AWS the template's `CorsAllowedOrigins` does this.
    pub cors_origins: Vec<String>,
    /// `AIVIDEO_MONTHLY_CAP_USD`: every user's monthly spending cap unless an admin set their own
    /// (SPEC §8.7); unset: no cap.
    pub monthly_cap_usd: Option<f64>,
    /// Webhook deliveries' pacing (SPEC §8.6).
    pub webhooks: WebhookTuning,
}

/// How webhook deliveries are paced.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WebhookTuning {
    /// `AIVIDEO_WEBHOOK_RETRY_SCALE` (default 1): multiplies the retry schedule (5 s, 5 min, 30 min,
    /// 2 h, 5 h, 10 h, 10 h); tests and staging shrink it.
    pub retry_scale: f64,
    /// How long a receiver has to answer (10 s, as the spec says; tests shorten it, no variable does).
    pub timeout_ms: u64,
    /// Tests only, never read from the environment: deliveries to plain-http loopback receivers.
    pub allow_loopback: bool,
}

impl Default for WebhookTuning {
    fn default() -> Self {
        Self { retry_scale: 1.0, timeout_ms: 10_000, allow_loopback: false }
    }
}

/// The worker's pacing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerTuning {
    /// `AIVIDEO_JOB_LEASE_SECONDS` (default 120): how long a claim holds a job before another
    /// worker may take it over.
    pub lease_seconds: u64,
    /// `AIVIDEO_PROVIDER_POLL_MS` (default 10000): the wait between two polls of a provider task.
    pub poll_ms: u64,
    /// `AIVIDEO_WORKER_VISIBILITY_SECONDS` (default 360): how long a received message stays
    /// hidden in the in-process consumer (as the queue's visibility timeout in the template).
    pub visibility_seconds: u64,
}

impl Default for WorkerTuning {
    fn default() -> Self {
        Self { lease_seconds: 120, poll_ms: 10_000, visibility_seconds: 360 }
    }
}

/// An OpenAI-compatible chat-completions endpoint that writes prompts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LlmConfig {
    /// `AIVIDEO_LLM_BASE_URL`, e.g. `https://api.openai.com/v1`; the writer is off when unset.
    pub base_url: String,
    /// `AIVIDEO_LLM_MODEL` (default `gpt-4o-mini`).
    pub model: String,
    /// `AIVIDEO_LLM_API_KEY_SECRET`: name of the secret holding the API key (default `LLM_API_KEY`).
    pub api_key_secret: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            backend: Backend::Embedded,
            data_dir: PathBuf::from(".aivideo"),
            auth: AuthConfig::default(),
            cursor_secret: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 3000)),
            llm: None,
            aws: AwsNames::default(),
            create_resources: false,
            idempotency_claim_seconds: 120,
            worker: WorkerTuning::default(),
            provider_base_urls: std::collections::BTreeMap::new(),
            allow_loopback_downloads: false,
            allowed_hosts: Vec::new(),
            cors_origins: Vec::new(),
            monthly_cap_usd: None,
            webhooks: WebhookTuning::default(),
        }
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, String> {
        Self::from_lookup(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// Reads settings through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut config = Config::default();
        if let Some(raw) = lookup("AIVIDEO_BACKEND") {
            config.backend = Backend::parse(&raw).map_err(|e| format!("AIVIDEO_BACKEND: {e}"))?;
        }
        if let Some(dir) = lookup("AIVIDEO_DATA_DIR") {
            config.data_dir = PathBuf::from(dir);
        }
        if let Some(addr) = lookup("AIVIDEO_ADDR") {
            config.addr =
                addr.parse().map_err(|_| format!("AIVIDEO_ADDR: {addr:?} is not an address like 127.0.0.1:3000"))?;
        }
        config.auth.algorithm = match lookup("JWT_ALGORITHM").as_deref() {
            None | Some("HS256") => JwtAlgorithm::Hs256,
            Some("RS256") => JwtAlgorithm::Rs256,
            Some("ES256") => JwtAlgorithm::Es256,
            Some(other) => {
                return Err(format!("JWT_ALGORITHM: {other:?} is not one of HS256, RS256, ES256"));
            }
        };
        config.auth.secret = lookup("JWT_SECRET");
        config.auth.jwks_url = lookup("JWT_JWKS_URL");
        config.auth.issuer = lookup("JWT_ISSUER");
        config.auth.audience = lookup("JWT_AUDIENCE");
        config.cursor_secret = lookup("AIVIDEO_CURSOR_SECRET");
        let number = |name: &str, default: u64, min: u64| -> Result<u64, String> {
            match lookup(name) {
                None => Ok(default),
                Some(raw) => raw
                    .parse::<u64>()
                    .ok()
                    .filter(|v| *v >= min)
                    .ok_or_else(|| format!("{name}: {raw:?} is not a whole number of at least {min}")),
            }
        };
        config.idempotency_claim_seconds = number("AIVIDEO_IDEMPOTENCY_CLAIM_SECONDS", 120, 1)?;
        config.worker = WorkerTuning {
            lease_seconds: number("AIVIDEO_JOB_LEASE_SECONDS", 120, 1)?,
            poll_ms: number("AIVIDEO_PROVIDER_POLL_MS", 10_000, 10)?,
            visibility_seconds: number("AIVIDEO_WORKER_VISIBILITY_SECONDS", 360, 1)?,
        };
        let defaults = AwsNames::default();
        config.aws = AwsNames {
            table: lookup("AIVIDEO_TABLE").unwrap_or(defaults.table),
            queue_prefix: lookup("AIVIDEO_QUEUE_PREFIX").unwrap_or(defaults.queue_prefix),
            bucket: lookup("AIVIDEO_BUCKET").unwrap_or(defaults.bucket),
            jwt_secret: lookup("AIVIDEO_JWT_SECRET_NAME").unwrap_or(defaults.jwt_secret),
            queue_urls: match (
                lookup("AIVIDEO_QUEUE_URL_HIGH"),
                lookup("AIVIDEO_QUEUE_URL_NORMAL"),
                lookup("AIVIDEO_QUEUE_URL_LOW"),
            ) {
                (Some(high), Some(normal), Some(low)) => Some(crate::adapters::aws::QueueUrls { high, normal, low }),
                (None, None, None) => None,
                _ => {
                    return Err(
                        "AIVIDEO_QUEUE_URL_HIGH, AIVIDEO_QUEUE_URL_NORMAL and AIVIDEO_QUEUE_URL_LOW go together: set all three or none"
                            .into(),
                    );
                }
            },
            webhook_queue_url: lookup("AIVIDEO_WEBHOOK_QUEUE_URL"),
        };
        if let Some(raw) = lookup("AIVIDEO_WEBHOOK_RETRY_SCALE") {
            config.webhooks.retry_scale =
                raw.parse::<f64>().ok().filter(|s| s.is_finite() && *s > 0.0 && *s <= 10.0).ok_or_else(|| {
                    format!("AIVIDEO_WEBHOOK_RETRY_SCALE: {raw:?} is not a factor greater than 0 and at most 10")
                })?;
        }
        config.allowed_hosts = lookup("AIVIDEO_ALLOWED_HOSTS")
            .map(|raw| raw.split(',').map(str::trim).filter(|h| !h.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default();
        if let Some(raw) = lookup("AIVIDEO_MONTHLY_CAP_USD") {
            let cap = raw.parse::<f64>().ok().filter(|c| c.is_finite() && *c >= 0.0).ok_or_else(|| {
                format!("AIVIDEO_MONTHLY_CAP_USD: {raw:?} is not an amount of US dollars (a number ≥ 0)")
            })?;
            config.monthly_cap_usd = Some(cap);
        }
        if let Some(raw) = lookup("AIVIDEO_CORS_ORIGINS") {
            for origin in raw.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                config.add_cors_origin(origin).map_err(|e| format!("AIVIDEO_CORS_ORIGINS: {e}"))?;
            }
        }
        config.llm = lookup("AIVIDEO_LLM_BASE_URL").map(|base_url| LlmConfig {
            base_url,
            model: lookup("AIVIDEO_LLM_MODEL").unwrap_or_else(|| "gpt-4o-mini".to_owned()),
            api_key_secret: lookup("AIVIDEO_LLM_API_KEY_SECRET").unwrap_or_else(|| "LLM_API_KEY".to_owned()),
        });
        for provider in crate::domain::values::AiProvider::ALL {
            let name = format!("AIVIDEO_{}_BASE_URL", provider.as_str().to_ascii_uppercase());
            if let Some(url) = lookup(&name) {
                let parsed = reqwest::Url::parse(&url).map_err(|_| format!("{name}: {url:?} is not a URL"))?;
                let loopback = matches!(parsed.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
                if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
                    return Err(format!("{name}: provider APIs are reached over https (plain http on loopback only)"));
                }
                config.provider_base_urls.insert(*provider, url);
            }
        }
        config.check()?;
        Ok(config)
    }

    /// Allows browsers on `origin` to call the API; refuses what is not an origin as browsers send
    /// it (a trailing slash, a path, upper case), which would silently match nothing.
    pub fn add_cors_origin(&mut self, origin: &str) -> Result<(), String> {
        let origin = crate::http::cors::parse_origin(origin).ok_or_else(|| {
            format!("{origin:?} is not an origin like https://app.example.com or http://127.0.0.1:5173 (scheme, lower-case host and port only)")
        })?;
        if !self.cors_origins.contains(&origin) {
            self.cors_origins.push(origin);
        }
        Ok(())
    }

    /// Refuses contradictory settings at start-up rather than at the first request.
    pub fn check(&self) -> Result<(), String> {
        match (self.auth.algorithm, &self.auth.jwks_url) {
            (JwtAlgorithm::Hs256, Some(_)) => {
                return Err(
                    "JWT_JWKS_URL is set but JWT_ALGORITHM is HS256; set JWT_ALGORITHM to RS256 or ES256".into()
                );
            }
            (JwtAlgorithm::Rs256 | JwtAlgorithm::Es256, None) => {
                return Err("JWT_ALGORITHM RS256/ES256 needs JWT_JWKS_URL".into());
            }
            (JwtAlgorithm::Rs256 | JwtAlgorithm::Es256, Some(url)) => {
                let loopback =
                    ["http://127.0.0.1", "http://localhost", "http://[::1]"].iter().any(|p| url.starts_with(p));
                if !url.starts_with("https://") && !loopback {
                    return Err("JWT_JWKS_URL must be https (plain http only on loopback)".into());
                }
                if self.cursor_secret.is_none() {
                    return Err(
                        "AIVIDEO_CURSOR_SECRET is required with JWKS (there is no shared secret to derive it from)"
                            .into(),
                    );
                }
            }
            (JwtAlgorithm::Hs256, None) => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(pairs: &[(&str, &str)]) -> Result<Config, String> {
        let map: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_work_locally() {
        let config = from(&[]).unwrap();
        assert_eq!(config.backend, Backend::Embedded);
        assert_eq!(config.data_dir, PathBuf::from(".aivideo"));
        assert_eq!(config.auth.algorithm, JwtAlgorithm::Hs256);
    }

    #[test]
    fn queue_urls_passed_by_the_template_spare_the_lookups() {
        let config = from(&[
            ("AIVIDEO_QUEUE_URL_HIGH", "https://sqs/h"),
            ("AIVIDEO_QUEUE_URL_NORMAL", "https://sqs/n"),
            ("AIVIDEO_QUEUE_URL_LOW", "https://sqs/l"),
        ])
        .unwrap();
        let urls = config.aws.queue_urls.unwrap();
        assert_eq!(
            (urls.high.as_str(), urls.normal.as_str(), urls.low.as_str()),
            ("https://sqs/h", "https://sqs/n", "https://sqs/l")
        );
    }

    #[test]
    fn contradictory_token_settings_are_refused_at_start_up() {
        assert!(from(&[("JWT_JWKS_URL", "https://x/jwks.json")]).is_err());
        assert!(from(&[("JWT_ALGORITHM", "RS256")]).is_err());
        assert!(from(&[("JWT_ALGORITHM", "none")]).is_err());
        assert!(
            from(&[
                ("JWT_ALGORITHM", "RS256"),
                ("JWT_JWKS_URL", "http://example.com/jwks"),
                ("AIVIDEO_CURSOR_SECRET", "c")
            ])
            .is_err()
        );
        assert!(
            from(&[
                ("JWT_ALGORITHM", "RS256"),
                ("JWT_JWKS_URL", "https://example.com/jwks"),
                ("AIVIDEO_CURSOR_SECRET", "c")
            ])
            .is_ok()
        );
        assert!(from(&[("AIVIDEO_BACKEND", "postgres")]).is_err());
        assert!(from(&[("AIVIDEO_QUEUE_URL_HIGH", "http://q/h")]).is_err());
        assert!(from(&[("AIVIDEO_ADDR", "nowhere")]).is_err());
    }
}
