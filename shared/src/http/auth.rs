//! Bearer-token authentication (SPEC §6): HS256 with a shared secret, or RS256/ES256 with keys from
//! a JWKS URL (Cognito). The algorithm is pinned by configuration and never taken from the token;
//! `exp` and `sub` are always required, `iss`/`aud` are required and checked when configured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::RwLock;

use crate::config::{AuthConfig, JwtAlgorithm};
use crate::domain::error::{Error, Result};
use crate::domain::ids::UserId;
use crate::ports::{Clock, SystemClock};

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token's `sub`.
    pub user: UserId,
    /// Whether the token carries the `admin` role (`roles` or `cognito:groups`).
    pub is_admin: bool,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        parts.extensions.get::<Caller>().cloned().ok_or(Error::NotAuthenticated)
    }
}

/// The claims this API reads.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The user.
    pub sub: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not valid before (seconds since the epoch), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at (seconds since the epoch), when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Roles; `admin` grants admin rights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Cognito's groups, read like `roles`.
    #[serde(default, rename = "cognito:groups", skip_serializing_if = "Vec::is_empty")]
    pub cognito_groups: Vec<String>,
}

/// Signs a local HS256 token (for `aivideo token` and tests), valid for `ttl` from now.
pub fn issue_hs256_token(secret: &str, user: &str, admin: bool, ttl: Duration) -> Result<String> {
    issue_hs256_token_at(secret, user, admin, ttl, SystemClock.now())
}

/// Signs a local HS256 token valid for `ttl` from `now` (a test's clock).
pub fn issue_hs256_token_at(
    secret: &str,
    user: &str,
    admin: bool,
    ttl: Duration,
    now: DateTime<Utc>,
) -> Result<String> {
    let exp = u64::try_from(now.timestamp()).unwrap_or(0).saturating_add(ttl.as_secs());
    let claims = Claims {
        sub: user.to_owned(),
        exp,
        nbf: None,
        iat: Some(now.timestamp()),
        roles: if admin { vec!["admin".to_owned()] } else { Vec::new() },
        cognito_groups: Vec::new(),
    };
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(secret.as_bytes()))
        .map_err(Error::internal)
}

/// How long JWKS keys are trusted before they are fetched again.
const JWKS_TTL: Duration = Duration::from_secs(600);
/// An unknown `kid` triggers at most one refetch per this interval (a flood of bad kids must not
/// turn into a flood of requests to the key server).
const JWKS_MIN_REFRESH: Duration = Duration::from_secs(30);

struct JwksCache {
    url: String,
    client: reqwest::Client,
    clock: Arc<dyn Clock>,
    state: RwLock<JwksState>,
}

#[derive(Default)]
struct JwksState {
    keys: HashMap<String, Arc<DecodingKey>>,
    /// The only key, for a set of one whose tokens carry no `kid`.
    single: Option<Arc<DecodingKey>>,
    fetched: Option<DateTime<Utc>>,
}

impl JwksCache {
    /// How long ago `at` was on the cache's clock (a clock that went back counts as no time).
    fn since(&self, at: DateTime<Utc>) -> Duration {
        (self.clock.now() - at).to_std().unwrap_or(Duration::ZERO)
    }

    async fn key_for(&self, kid: Option<&str>) -> Result<Arc<DecodingKey>> {
        {
            let state = self.state.read().await;
            let fresh = state.fetched.is_some_and(|t| self.since(t) < JWKS_TTL);
            if fresh && let Some(key) = Self::pick(&state, kid) {
                return Ok(key);
            }
        }
        let mut state = self.state.write().await;
        let may_refresh = state.fetched.is_none_or(|t| self.since(t) >= JWKS_MIN_REFRESH);
        if may_refresh {
            match self.fetch().await {
                Ok(fresh) => *state = fresh,
                Err(e) => tracing::warn!(error = %e, "JWKS fetch failed; keeping the keys we have"),
            }
        }
        Self::pick(&state, kid).ok_or_else(|| Error::InvalidToken("no key matches the token's kid".into()))
    }

    fn pick(state: &JwksState, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        match kid {
            Some(kid) => state.keys.get(kid).cloned(),
            None => state.single.clone(),
        }
    }

    async fn fetch(&self) -> Result<JwksState> {
        let set: JwkSet = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(Error::internal)?
            .json()
            .await
            .map_err(Error::internal)?;
        let mut state = JwksState { fetched: Some(self.clock.now()), ..JwksState::default() };
        for jwk in &set.keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let key = Arc::new(key);
            if let Some(kid) = &jwk.common.key_id {
                state.keys.insert(kid.clone(), key.clone());
            }
            if set.keys.len() == 1 {
                state.single = Some(key);
            }
        }
        Ok(state)
    }
}

enum Keys {
    Shared(DecodingKey),
    Jwks(JwksCache),
}

/// Verifies bearer tokens as configured. Built once per cold start.
pub struct Authenticator {
    keys: Keys,
    validation: Validation,
    /// What `exp` is checked against (and what the JWKS cache ages by).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `config` on the system clock; `hs256_secret` is required for HS256.
    pub fn new(config: &AuthConfig, hs256_secret: Option<&str>) -> Result<Self> {
        Self::with_clock(config, hs256_secret, Arc::new(SystemClock))
    }

    /// Like `new`, with tokens' `exp` checked against `clock`.
    pub fn with_clock(config: &AuthConfig, hs256_secret: Option<&str>, clock: Arc<dyn Clock>) -> Result<Self> {
        let algorithm = match config.algorithm {
            JwtAlgorithm::Hs256 => Algorithm::HS256,
            JwtAlgorithm::Rs256 => Algorithm::RS256,
            JwtAlgorithm::Es256 => Algorithm::ES256,
        };
        let mut validation = Validation::new(algorithm);
        validation.leeway = 30;
        // `exp` is required below, and checked in `verify` against our clock, not the library's.
        validation.validate_exp = false;
        let mut required = vec!["exp", "sub"];
        match &config.issuer {
            Some(issuer) => {
                validation.set_issuer(&[issuer]);
                required.push("iss");
            }
            None => validation.iss = None,
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        let keys = match config.algorithm {
            JwtAlgorithm::Hs256 => {
                let secret = hs256_secret
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| Error::internal("HS256 needs a token secret (JWT_SECRET or the secret source)"))?;
                Keys::Shared(DecodingKey::from_secret(secret.as_bytes()))
            }
            JwtAlgorithm::Rs256 | JwtAlgorithm::Es256 => {
                let url = config.jwks_url.clone().ok_or_else(|| Error::internal("RS256/ES256 need JWT_JWKS_URL"))?;
                let client = reqwest::Client::builder()
                    .connect_timeout(Duration::from_secs(3))
                    .timeout(Duration::from_secs(5))
                    .redirect(reqwest::redirect::Policy::none())
                    .build()
                    .map_err(Error::internal)?;
                Keys::Jwks(JwksCache { url, client, clock: clock.clone(), state: RwLock::new(JwksState::default()) })
            }
        };
        Ok(Self { keys, validation, clock })
    }

    /// Verifies `token` and returns its caller.
    pub async fn verify(&self, token: &str) -> Result<Caller> {
        let header = jsonwebtoken::decode_header(token).map_err(describe)?;
        // Refused before any key is looked up: the token does not choose the algorithm.
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(Error::InvalidToken("unexpected signing algorithm".into()));
        }
        let data = match &self.keys {
            Keys::Shared(key) => jsonwebtoken::decode::<Claims>(token, key, &self.validation),
            Keys::Jwks(cache) => {
                let key = cache.key_for(header.kid.as_deref()).await?;
                jsonwebtoken::decode::<Claims>(token, &key, &self.validation)
            }
        }
        .map_err(describe)?;
        let claims = data.claims;
        // Expired once `exp` is more than the leeway behind now (as the library would say).
        let now = i128::from(self.clock.now().timestamp());
        let leeway = i128::from(self.validation.leeway);
        if i128::from(claims.exp) < now - leeway {
            return Err(describe(ErrorKind::ExpiredSignature.into()));
        }
        // Not valid yet, or issued in the future (beyond the same leeway as `exp`): a token
        // minted ahead of time, or by a clock that runs fast, is refused (SPEC §8.1).
        if claims.nbf.is_some_and(|nbf| i128::from(nbf) > now + leeway) {
            return Err(describe(ErrorKind::ImmatureSignature.into()));
        }
        if claims.iat.is_some_and(|iat| i128::from(iat) > now + leeway) {
            return Err(Error::InvalidToken("token is issued in the future".into()));
        }
        let user = UserId::parse(&claims.sub)
            .ok_or_else(|| Error::InvalidToken("the sub claim is not a valid user id".into()))?;
        let is_admin = claims.roles.iter().chain(&claims.cognito_groups).any(|r| r == "admin");
        Ok(Caller { user, is_admin })
    }

    /// Authenticates a request's `Authorization` header.
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Caller> {
        let value = headers.get(header::AUTHORIZATION).ok_or(Error::NotAuthenticated)?;
        let text = value.to_str().map_err(|_| Error::InvalidToken("malformed Authorization header".into()))?;
        let (scheme, token) = text.trim().split_once(' ').unwrap_or((text, ""));
        if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
            return Err(Error::InvalidToken("expected \"Authorization: Bearer <token>\"".into()));
        }
        self.verify(token.trim()).await
    }
}

fn describe(e: jsonwebtoken::errors::Error) -> Error {
    let why = match e.kind() {
        ErrorKind::ExpiredSignature => "token has expired".to_owned(),
        ErrorKind::InvalidSignature => "signature is invalid".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => "unexpected signing algorithm".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::MissingRequiredClaim(claim) => format!("the {claim} claim is required"),
        ErrorKind::ImmatureSignature => "token is not valid yet".to_owned(),
        _ => "token is malformed".to_owned(),
    };
    Error::InvalidToken(why)
}

/// Middleware: authenticates every request of the routes it wraps and hands the `Caller` on.
pub async fn require_caller(State(auth): State<Arc<Authenticator>>, mut request: Request, next: Next) -> Response {
    match auth.authenticate(request.headers()).await {
        Ok(caller) => {
            tracing::Span::current().record("user", caller.user.as_str());
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hs(secret: &str) -> Authenticator {
        Authenticator::new(&AuthConfig::default(), Some(secret)).unwrap()
    }

    fn sign(claims: &serde_json::Value, alg: Algorithm, secret: &str) -> String {
        jsonwebtoken::encode(&Header::new(alg), claims, &EncodingKey::from_secret(secret.as_bytes())).unwrap()
    }

    fn later() -> i64 {
        chrono::Utc::now().timestamp() + 3600
    }

    #[tokio::test]
    async fn a_token_signed_with_the_secret_is_accepted() {
        let token = issue_hs256_token("s3cret", "alice", true, Duration::from_secs(60)).unwrap();
        let caller = hs("s3cret").verify(&token).await.unwrap();
        assert_eq!(caller.user.as_str(), "alice");
        assert!(caller.is_admin);
    }

    #[tokio::test]
    async fn a_token_without_exp_is_refused() {
        let token = sign(&serde_json::json!({"sub": "alice"}), Algorithm::HS256, "s3cret");
        assert!(matches!(hs("s3cret").verify(&token).await, Err(Error::InvalidToken(_))));
    }

    #[tokio::test]
    async fn an_expired_token_is_refused() {
        let past = chrono::Utc::now().timestamp() - 3600;
        let token = sign(&serde_json::json!({"sub": "alice", "exp": past}), Algorithm::HS256, "s3cret");
        let err = hs("s3cret").verify(&token).await.unwrap_err();
        assert_eq!(err.to_string(), "invalid token: token has expired");
    }

    #[tokio::test]
    async fn exp_is_checked_against_the_authenticators_clock_with_its_leeway() {
        let start = chrono::DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = Arc::new(crate::ports::ManualClock::new(start));
        let auth = Authenticator::with_clock(&AuthConfig::default(), Some("s3cret"), clock.clone()).unwrap();
        let token = issue_hs256_token_at("s3cret", "alice", false, Duration::from_secs(60), start).unwrap();
        assert!(auth.verify(&token).await.is_ok(), "long expired by the wall clock, valid by ours");
        clock.advance(Duration::from_secs(90));
        assert!(auth.verify(&token).await.is_ok(), "exactly at exp + leeway: still valid");
        clock.advance(Duration::from_secs(1));
        let err = auth.verify(&token).await.unwrap_err();
        assert_eq!(err.to_string(), "invalid token: token has expired");
    }

    #[tokio::test]
    async fn a_token_not_valid_yet_or_issued_in_the_future_is_refused_beyond_the_leeway() {
        let now = chrono::Utc::now().timestamp();
        let auth = hs("s3cret");
        let with = |claim: &str, at: i64| {
            sign(&serde_json::json!({"sub": "alice", "exp": later(), claim: at}), Algorithm::HS256, "s3cret")
        };
        let err = auth.verify(&with("nbf", now + 3600)).await.unwrap_err();
        assert_eq!(err.to_string(), "invalid token: token is not valid yet");
        let err = auth.verify(&with("iat", now + 3600)).await.unwrap_err();
        assert_eq!(err.to_string(), "invalid token: token is issued in the future");
        // Within the leeway, and in the past, both are fine.
        assert!(auth.verify(&with("nbf", now + 10)).await.is_ok());
        assert!(auth.verify(&with("iat", now + 10)).await.is_ok());
        assert!(auth.verify(&with("nbf", now - 3600)).await.is_ok());
        assert!(auth.verify(&with("iat", now - 3600)).await.is_ok());
        // Not a number: refused, never skipped.
        let token = sign(&serde_json::json!({"sub": "alice", "exp": later(), "nbf": "1"}), Algorithm::HS256, "s3cret");
        assert!(auth.verify(&token).await.is_err());
    }

    #[tokio::test]
    async fn exp_as_a_string_is_not_skipped() {
        let token = sign(&serde_json::json!({"sub": "alice", "exp": "1"}), Algorithm::HS256, "s3cret");
        assert!(hs("s3cret").verify(&token).await.is_err());
    }

    #[tokio::test]
    async fn the_algorithm_is_pinned_by_configuration() {
        let token = sign(&serde_json::json!({"sub": "alice", "exp": later()}), Algorithm::HS512, "s3cret");
        assert!(hs("s3cret").verify(&token).await.is_err());
        // alg "none": a header and claims with an empty signature.
        let none = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.";
        assert!(hs("s3cret").verify(none).await.is_err());
    }

    #[tokio::test]
    async fn another_secret_is_refused() {
        let token = issue_hs256_token("other", "alice", false, Duration::from_secs(60)).unwrap();
        assert!(hs("s3cret").verify(&token).await.is_err());
    }

    #[tokio::test]
    async fn issuer_and_audience_are_required_when_configured() {
        let config =
            AuthConfig { issuer: Some("https://issuer".into()), audience: Some("app".into()), ..AuthConfig::default() };
        let auth = Authenticator::new(&config, Some("s3cret")).unwrap();
        let without = sign(&serde_json::json!({"sub": "a", "exp": later()}), Algorithm::HS256, "s3cret");
        assert!(auth.verify(&without).await.is_err());
        let wrong = sign(
            &serde_json::json!({"sub": "a", "exp": later(), "iss": "https://evil", "aud": "app"}),
            Algorithm::HS256,
            "s3cret",
        );
        assert!(auth.verify(&wrong).await.is_err());
        let right = sign(
            &serde_json::json!({"sub": "a", "exp": later(), "iss": "https://issuer", "aud": "app"}),
            Algorithm::HS256,
            "s3cret",
        );
        assert!(auth.verify(&right).await.is_ok());
    }

    #[tokio::test]
    async fn cognito_groups_grant_admin() {
        let token =
            sign(&serde_json::json!({"sub": "a", "exp": later(), "cognito:groups": ["admin"]}), Algorithm::HS256, "k");
        assert!(hs("k").verify(&token).await.unwrap().is_admin);
    }

    #[tokio::test]
    async fn the_authorization_header_must_be_a_bearer_token() {
        let auth = hs("k");
        let mut headers = HeaderMap::new();
        assert!(matches!(auth.authenticate(&headers).await, Err(Error::NotAuthenticated)));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert!(matches!(auth.authenticate(&headers).await, Err(Error::InvalidToken(_))));
        headers.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert!(matches!(auth.authenticate(&headers).await, Err(Error::InvalidToken(_))));
    }
}
