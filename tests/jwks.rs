//! RS256 / ES256 tokens verified with keys fetched from a JWKS URL (as with Cognito), served by a
//! real HTTP server on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::routing::get;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use shared::config::{AuthConfig, JwtAlgorithm};
use shared::http::Authenticator;

const JWKS: &str = include_str!("fixtures/jwks.json");
const RSA_KEY: &[u8] = include_bytes!("fixtures/rsa-private.pem");
const EC_KEY: &[u8] = include_bytes!("fixtures/ec-private.pem");

async fn jwks_server() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let app = Router::new().route(
        "/.well-known/jwks.json",
        get(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { ([("content-type", "application/json")], JWKS) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/.well-known/jwks.json"), hits)
}

fn later() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() + 3600
}

fn sign(alg: Algorithm, kid: &str, claims: serde_json::Value) -> String {
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(RSA_KEY).unwrap(),
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_KEY).unwrap(),
        _ => unreachable!(),
    };
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, &claims, &key).unwrap()
}

fn config(algorithm: JwtAlgorithm, url: &str) -> AuthConfig {
    AuthConfig { algorithm, jwks_url: Some(url.to_owned()), ..AuthConfig::default() }
}

#[tokio::test]
async fn rs256_tokens_are_verified_with_the_published_key() {
    let (url, hits) = jwks_server().await;
    let auth = Authenticator::new(&config(JwtAlgorithm::Rs256, &url), None).unwrap();
    let token =
        sign(Algorithm::RS256, "rsa-test-key", json!({"sub": "alice", "exp": later(), "cognito:groups": ["admin"]}));
    let caller = auth.verify(&token).await.unwrap();
    assert_eq!(caller.user.as_str(), "alice");
    assert!(caller.is_admin);
    // Keys are cached: a second token does not fetch them again.
    auth.verify(&token).await.unwrap();
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn es256_tokens_are_verified_when_es256_is_pinned() {
    let (url, _) = jwks_server().await;
    let auth = Authenticator::new(&config(JwtAlgorithm::Es256, &url), None).unwrap();
    let token = sign(Algorithm::ES256, "ec-test-key", json!({"sub": "bob", "exp": later()}));
    assert_eq!(auth.verify(&token).await.unwrap().user.as_str(), "bob");
    // An RS256 token is refused: the configuration, not the token, picks the algorithm.
    let rsa = sign(Algorithm::RS256, "rsa-test-key", json!({"sub": "bob", "exp": later()}));
    assert!(auth.verify(&rsa).await.is_err());
}

#[tokio::test]
async fn an_unknown_kid_is_refused_and_refetches_are_rate_limited() {
    let (url, hits) = jwks_server().await;
    let auth = Authenticator::new(&config(JwtAlgorithm::Rs256, &url), None).unwrap();
    for _ in 0..5 {
        let token = sign(Algorithm::RS256, "who-knows", json!({"sub": "alice", "exp": later()}));
        assert!(auth.verify(&token).await.is_err());
    }
    assert_eq!(hits.load(Ordering::SeqCst), 1, "unknown kids must not flood the key server");
}

#[tokio::test]
async fn an_hs256_token_cannot_pose_as_rs256() {
    let (url, _) = jwks_server().await;
    let auth = Authenticator::new(&config(JwtAlgorithm::Rs256, &url), None).unwrap();
    // The classic confusion attack: HMAC-sign with the public key's bytes.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-test-key".into());
    let forged = jsonwebtoken::encode(
        &header,
        &json!({"sub": "mallory", "exp": later()}),
        &EncodingKey::from_secret(JWKS.as_bytes()),
    )
    .unwrap();
    assert!(auth.verify(&forged).await.is_err());
}

#[tokio::test]
async fn issuer_and_audience_are_enforced_with_jwks() {
    let (url, _) = jwks_server().await;
    let cfg = AuthConfig {
        issuer: Some("https://cognito-idp.example/pool".into()),
        audience: Some("web".into()),
        ..config(JwtAlgorithm::Rs256, &url)
    };
    let auth = Authenticator::new(&cfg, None).unwrap();
    let good = sign(
        Algorithm::RS256,
        "rsa-test-key",
        json!({"sub": "a", "exp": later(), "iss": "https://cognito-idp.example/pool", "aud": "web"}),
    );
    assert!(auth.verify(&good).await.is_ok());
    let missing = sign(Algorithm::RS256, "rsa-test-key", json!({"sub": "a", "exp": later()}));
    assert!(auth.verify(&missing).await.is_err());
    let wrong_aud = sign(
        Algorithm::RS256,
        "rsa-test-key",
        json!({"sub": "a", "exp": later(), "iss": "https://cognito-idp.example/pool", "aud": "other"}),
    );
    assert!(auth.verify(&wrong_aud).await.is_err());
}
