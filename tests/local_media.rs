//! Media on the embedded backend: stored under server keys, downloaded through signed, expiring
//! links served by the media route — refused when tampered with, expired or escaping the folder.
//! Links expire on the media's clock: the tests move a `ManualClock` instead of sleeping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use shared::adapters::embedded::LocalMedia;
use shared::ports::{ManualClock, MediaStore};
use tower::ServiceExt;

async fn fetch(router: &axum::Router, url: &str) -> (StatusCode, Vec<u8>, String) {
    let path = url.trim_start_matches("http://127.0.0.1:3000");
    let response = router.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
    let status = response.status();
    let kind = response.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    (status, response.into_body().collect().await.unwrap().to_bytes().to_vec(), kind)
}

fn start() -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000, 0).unwrap()
}

#[tokio::test]
async fn a_signed_link_downloads_the_file_until_it_expires() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(start()));
    let media = Arc::new(LocalMedia::with_clock(dir.path(), "http://127.0.0.1:3000", "secret", clock.clone()).unwrap());
    let router = media.clone().router();
    let file = dir.path().join("upload.mp4");
    std::fs::write(&file, b"video bytes").unwrap();
    assert_eq!(media.put_file("stories/s1/final.mp4", &file, "video/mp4").await.unwrap(), 11);
    let link = media.signed_url("stories/s1/final.mp4", Duration::from_secs(600)).await.unwrap();
    assert!(link.url.starts_with("http://127.0.0.1:3000/api/ai-video/media/stories/s1/final.mp4?expires="));
    assert_eq!(link.expires_at, start() + chrono::Duration::seconds(600), "signed on the media's clock");
    let (status, body, kind) = fetch(&router, &link.url).await;
    assert_eq!((status, body.as_slice(), kind.as_str()), (StatusCode::OK, &b"video bytes"[..], "video/mp4"));

    // Tampered: another key with the same signature, a changed expiry, a changed signature.
    let other = link.url.replace("final.mp4", "preview.mp4");
    assert_eq!(fetch(&router, &other).await.0, StatusCode::FORBIDDEN);
    let later = link.url.replace("expires=", "expires=9");
    assert_eq!(fetch(&router, &later).await.0, StatusCode::FORBIDDEN);
    // Flip the signature's last hex digit to a different one (always a change, never the same link).
    let last = if link.url.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &link.url[..link.url.len() - 1]);
    assert_eq!(fetch(&router, &forged).await.0, StatusCode::FORBIDDEN);
    let unsigned = link.url.split('?').next().unwrap().to_owned();
    assert_eq!(fetch(&router, &unsigned).await.0, StatusCode::FORBIDDEN);
    // Signed by another secret.
    let stranger = LocalMedia::with_clock(dir.path(), "http://127.0.0.1:3000", "other", clock.clone()).unwrap();
    let foreign = stranger.signed_url("stories/s1/final.mp4", Duration::from_secs(600)).await.unwrap();
    assert_eq!(fetch(&router, &foreign.url).await.0, StatusCode::FORBIDDEN);
    // Expired: a link works through the second it expires in, and not after.
    let short = media.signed_url("stories/s1/final.mp4", Duration::from_secs(1)).await.unwrap();
    assert_eq!(fetch(&router, &short.url).await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(1));
    assert_eq!(fetch(&router, &short.url).await.0, StatusCode::OK, "until its expiry");
    clock.advance(Duration::from_secs(1));
    assert_eq!(fetch(&router, &short.url).await.0, StatusCode::FORBIDDEN, "after its expiry");
    // The 600 s link likewise, on the same clock.
    assert_eq!(fetch(&router, &link.url).await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(598));
    assert_eq!(fetch(&router, &link.url).await.0, StatusCode::OK, "at its expiry");
    clock.advance(Duration::from_secs(1));
    assert_eq!(fetch(&router, &link.url).await.0, StatusCode::FORBIDDEN, "a second later");
}

#[tokio::test]
async fn keys_outside_the_media_folder_are_refused_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aivideo.redb"), b"secret data").unwrap();
    let media = Arc::new(LocalMedia::new(dir.path(), "http://127.0.0.1:3000", "secret").unwrap());
    let file = dir.path().join("x");
    std::fs::write(&file, b"x").unwrap();
    assert!(media.put_file("../escape.mp4", &file, "video/mp4").await.is_err());
    assert!(media.signed_url("../aivideo.redb", Duration::from_secs(60)).await.is_err());
    let router = media.clone().router();
    for path in [
        "/api/ai-video/media/../aivideo.redb?expires=9999999999&signature=00",
        "/api/ai-video/media/%2e%2e/aivideo.redb?expires=9999999999&signature=00",
    ] {
        let status = fetch(&router, path).await.0;
        assert!(status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND, "{path}: {status}");
    }
    // A signed link to a key that was never stored is simply not found.
    let missing = media.signed_url("stories/none.mp4", Duration::from_secs(60)).await.unwrap();
    assert_eq!(fetch(&router, &missing.url).await.0, StatusCode::NOT_FOUND);
}
