//! The `aivideo` command as tools outside the repo use it: `serve`, `token`, `JWT_SECRET`, its
//! one-line errors, and durability across a `kill -9`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::{Server, aivideo, cli_token, client};

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// Creates a story on `server` with `token`: the status and the answer.
async fn create_story(server: &Server, token: &str) -> (u16, Value) {
    server.call(token, reqwest::Method::POST, "/stories/", json!({"title": "Durable"})).await
}

#[tokio::test]
async fn a_token_from_aivideo_token_is_accepted_by_aivideo_serve() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let token = cli_token(dir.path(), "alice");
    let (status, story) = create_story(&server, &token).await;
    assert_eq!(status, 201);
    assert_eq!(story["owner"], "alice");
    // The generated secret is kept in the data dir, so the same token works after a restart.
    assert!(dir.path().join("secrets/JWT_SECRET").exists());
}

#[tokio::test]
async fn with_jwt_secret_the_server_accepts_hs256_tokens_signed_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[("JWT_SECRET", "shared-by-the-team")]);
    let admin = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "carol", "exp": 4102444800u64, "roles": ["admin"]}),
        &jsonwebtoken::EncodingKey::from_secret(b"shared-by-the-team"),
    )
    .unwrap();
    assert_eq!(create_story(&server, &admin).await.0, 201);
    let out = aivideo(&["token", "--user", "dave", "--admin"], &[("JWT_SECRET", "shared-by-the-team")]);
    assert_eq!(create_story(&server, &stdout(&out)).await.0, 201);
    // A token signed with the data dir's own secret is not accepted when JWT_SECRET rules.
    let other = cli_token(dir.path(), "eve");
    assert_eq!(server.call(&other, reqwest::Method::GET, "/stories/", Value::Null).await.0, 401);
}

#[test]
fn a_bad_flag_is_one_line_and_a_non_zero_exit() {
    for args in [
        vec!["serve", "--port", "80"],
        vec!["serve", "--addr", "nowhere"],
        vec!["serve", "--backend", "mongo"],
        vec!["token"],
        vec!["frobnicate"],
    ] {
        let out = aivideo(&args, &[]);
        assert!(!out.status.success(), "{args:?}");
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("aivideo: error: "), "{err}");
    }
}

#[test]
fn each_command_prints_its_own_help() {
    for (args, says) in [
        (vec!["serve", "--help"], "--cors-origin ORIGIN"),
        (vec!["token", "--help"], "--ttl-hours N"),
        (vec!["help", "openapi"], "OpenAPI 3.1 document"),
        (vec!["--help"], "aivideo help [serve|token|openapi]"),
    ] {
        let out = aivideo(&args, &[]);
        assert!(out.status.success(), "{args:?}");
        assert!(stdout(&out).contains(says), "{args:?}: {}", stdout(&out));
    }
    let usage = stdout(&aivideo(&["--help"], &[]));
    assert_ne!(stdout(&aivideo(&["serve", "--help"], &[])), usage, "serve --help is not the general usage");
    // `aivideo openapi` prints the document the server serves.
    let document: serde_json::Value = serde_json::from_str(&stdout(&aivideo(&["openapi"], &[]))).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/api/ai-video/events/"].is_object());
}

#[test]
fn a_taken_port_is_one_line_and_a_non_zero_exit() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let out = aivideo(&["serve", "--addr", &addr, "--data-dir", dir.path().to_str().unwrap()], &[("RUST_LOG", "off")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&addr) && err.contains("in use"), "{err}");
}

#[test]
fn an_unwritable_data_dir_is_one_line_and_a_non_zero_exit() {
    // A path below a regular file can never be created, even by root.
    let file = tempfile::NamedTempFile::new().unwrap();
    let bad = file.path().join("data");
    let out = aivideo(&["serve", "--addr", "127.0.0.1:0", "--data-dir", bad.to_str().unwrap()], &[("RUST_LOG", "off")]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("data dir"), "{err}");
}

#[test]
fn a_data_dir_in_use_by_another_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Server::start(dir.path(), &[]);
    let out = aivideo(
        &["serve", "--addr", "127.0.0.1:0", "--data-dir", dir.path().to_str().unwrap()],
        &[("RUST_LOG", "off")],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("in use by another aivideo process"), "{}", stderr(&out));
}

/// kill -9 right after a 201, restart: the story is there, with its history.
#[tokio::test]
async fn a_story_acknowledged_with_201_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let token = cli_token(dir.path(), "alice");
    let mut server = Server::start(dir.path(), &[]);
    let (status, story) = create_story(&server, &token).await;
    assert_eq!(status, 201);
    let id = story["id"].as_str().unwrap().to_owned();
    let (status, _) = server
        .call(&token, reqwest::Method::POST, &format!("/stories/{id}/transition/"), json!({"to": "PLANNING"}))
        .await;
    assert_eq!(status, 200);
    server.kill9();

    let server = Server::start(dir.path(), &[]);
    let (status, again) = server.call(&token, reqwest::Method::GET, &format!("/stories/{id}/"), Value::Null).await;
    assert_eq!(status, 200);
    assert_eq!(again["status"], "PLANNING");
    assert_eq!(again["version"], 2);
    let (_, history) =
        server.call(&token, reqwest::Method::GET, &format!("/stories/{id}/transitions/"), Value::Null).await;
    assert_eq!(history["results"].as_array().unwrap().len(), 1);
}

/// Each Lambda binary also runs outside Lambda, on the embedded backend, configured by its
/// environment alone — so `sam local invoke` needs no account and cold starts can be measured.
#[tokio::test]
async fn every_lambda_binary_serves_its_routes_on_the_embedded_backend() {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_aivideo")).parent().unwrap().to_path_buf();
    for (function, path) in [
        ("stories", "/api/ai-video/stories/"),
        ("scenes", "/api/ai-video/scenes/"),
        ("prompts", "/api/ai-video/prompts/"),
    ] {
        let binary = bin_dir.join(function);
        assert!(
            binary.exists(),
            "{} is missing: build the Lambda binaries first (cargo build --workspace --bins, as ./scripts/test does)",
            binary.display()
        );
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let mut child = std::process::Command::new(&binary)
            .env("AIVIDEO_BACKEND", "embedded")
            .env("AIVIDEO_DATA_DIR", dir.path())
            .env("JWT_SECRET", "lambda-secret")
            .env("AIVIDEO_ADDR", format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let token =
            shared::http::auth::issue_hs256_token("lambda-secret", "alice", false, Duration::from_secs(60)).unwrap();
        let url = format!("http://127.0.0.1:{port}{path}");
        let mut status = None;
        for _ in 0..200 {
            if let Ok(reply) = client().get(&url).bearer_auth(&token).send().await {
                status = Some(reply.status().as_u16());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(status, Some(200), "{function}");
        assert!(dir.path().join("aivideo.redb").exists(), "{function} keeps its data in AIVIDEO_DATA_DIR");
    }
}
