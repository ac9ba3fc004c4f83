//! Provider results are downloaded as if their URLs were hostile: the SSRF corpus below is
//! refused entirely (literal and encoded private addresses, IPv6-mapped ones, other schemes,
//! other hosts, redirects to private addresses, oversized bodies, wrong types), and an allowed
//! download arrives whole. Only loopback is ever contacted.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use shared::adapters::providers::DownloadPolicy;
use shared::adapters::providers::download::download;

/// Bytes that look like an MP4 file (an `ftyp` box).
const VIDEO: &[u8] = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom-and-some-frames";

/// (path, the `x-api-key` header it was sent) per request.
type Requests = Arc<Mutex<Vec<(String, Option<String>)>>>;

#[derive(Clone, Default)]
struct Seen {
    keys: Requests,
}

async fn server() -> (String, Seen) {
    let seen = Seen::default();
    let record = |path: &'static str| {
        move |State(seen): State<Seen>, headers: HeaderMap| async move {
            let key = headers.get("x-api-key").map(|v| v.to_str().unwrap().to_owned());
            seen.keys.lock().unwrap().push((path.to_owned(), key));
        }
    };
    let app = Router::new()
        .route(
            "/video.mp4",
            get(move |s: State<Seen>, h: HeaderMap| async move {
                record("/video.mp4")(s, h).await;
                ([(header::CONTENT_TYPE, "video/mp4")], VIDEO).into_response()
            }),
        )
        .route("/page.html", get(|| async { ([(header::CONTENT_TYPE, "text/html")], "<html>").into_response() }))
        .route("/untyped", get(|| async { Response::new(Body::from(VIDEO)) }))
        .route(
            "/huge-declared",
            get(|| async { ([(header::CONTENT_TYPE, "video/mp4")], vec![0u8; 4096]).into_response() }),
        )
        .route(
            "/huge-streamed",
            get(|| async {
                let chunks = futures_stream(64, 1024);
                ([(header::CONTENT_TYPE, "video/mp4")], Body::from_stream(chunks)).into_response()
            }),
        )
        .route("/to-private", get(|| async { redirect("http://10.0.0.7/video.mp4") }))
        .route("/to-metadata", get(|| async { redirect("https://169.254.169.254/latest/meta-data/") }))
        .route("/to-mapped", get(|| async { redirect("https://[::ffff:192.168.0.1]/video.mp4") }))
        .route("/to-file", get(|| async { redirect("file:///etc/passwd") }))
        .route("/loop", get(|| async { redirect("/loop") }))
        .route("/gone", get(|| async { StatusCode::FORBIDDEN }))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://127.0.0.1:{port}"), seen)
}

fn redirect(to: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, to.to_owned())]).into_response()
}

/// `n` chunks of `size` bytes, with no length announced.
fn futures_stream(
    n: usize,
    size: usize,
) -> impl tokio_stream_like::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static {
    tokio_stream_like::iter((0..n).map(move |_| Ok(bytes::Bytes::from(vec![0u8; size]))))
}

/// A minimal stream over an iterator (so the test needs no stream crate of its own).
mod tokio_stream_like {
    pub use futures_core::Stream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    pub struct Iter<I>(I);

    pub fn iter<I: Iterator>(items: I) -> Iter<I> {
        Iter(items)
    }

    impl<I: Iterator + Unpin> Stream for Iter<I> {
        type Item = I::Item;
        fn poll_next(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<I::Item>> {
            Poll::Ready(self.0.next())
        }
    }
}

/// The production policy, except that the test server's loopback address is let through.
fn test_policy(max_bytes: u64) -> DownloadPolicy {
    let mut policy = DownloadPolicy::for_hosts(&["127.0.0.1", "localhost"]);
    policy.allow_loopback_http = true;
    policy.max_bytes = max_bytes;
    policy
}

#[tokio::test]
async fn an_allowed_download_arrives_whole_and_keys_stay_with_the_first_host() {
    let (base, seen) = server().await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("clip.mp4");
    let headers = [("x-api-key".to_owned(), "secret".to_owned())];
    let written = download(&format!("{base}/video.mp4"), &dest, &test_policy(1 << 20), &headers).await.unwrap();
    assert_eq!(written, VIDEO.len() as u64);
    assert_eq!(std::fs::read(&dest).unwrap(), VIDEO);
    assert_eq!(seen.keys.lock().unwrap().clone(), vec![("/video.mp4".to_owned(), Some("secret".to_owned()))]);
    // Untyped binary (application/octet-stream is not sent here: no type at all) is refused.
    let refused = download(&format!("{base}/untyped"), &dest, &test_policy(1 << 20), &[]).await.unwrap_err();
    assert_eq!(refused.code.as_deref(), Some("unsafe_download"));
}

#[tokio::test]
async fn the_ssrf_corpus_is_refused_entirely() {
    let (base, _) = server().await;
    let port = base.rsplit(':').next().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.mp4");

    // The production policy: https only, the provider's hosts only, public addresses only. Every
    // host below is on the allow-list, so the address and scheme checks are what refuse them.
    let hosts = [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "localhost",
        "0x7f000001",
        "2130706433",
        "017700000001",
        "127.1",
        "0.0.0.0",
        "[::1]",
        "[::ffff:10.0.0.1]",
        "[::ffff:a9fe:a9fe]",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "100.100.100.200",
        "192.168.1.1",
        "172.31.255.255",
    ];
    let mut strict = DownloadPolicy::for_hosts(&hosts);
    // The encoded forms are normalised to dotted quads by the URL parser; allow those names too.
    strict.hosts.extend(["127.0.0.1".to_owned(), "10.0.0.1".to_owned(), "0.0.0.0".to_owned()]);
    let corpus = [
        format!("https://127.0.0.1:{port}/video.mp4"),
        "https://10.0.0.1/video.mp4".to_owned(),
        "https://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        format!("https://localhost:{port}/video.mp4"),
        "https://0x7f000001/video.mp4".to_owned(),
        "https://2130706433/video.mp4".to_owned(),
        "https://017700000001/video.mp4".to_owned(),
        "https://127.1/video.mp4".to_owned(),
        "https://0.0.0.0/video.mp4".to_owned(),
        "https://[::1]/video.mp4".to_owned(),
        "https://[::ffff:10.0.0.1]/video.mp4".to_owned(),
        "https://[::ffff:a9fe:a9fe]/latest/meta-data/".to_owned(),
        "https://[fd00:ec2::254]/latest/meta-data/".to_owned(),
        "https://[fe80::1]/video.mp4".to_owned(),
        "https://100.100.100.200/latest/meta-data/".to_owned(),
        "https://192.168.1.1/video.mp4".to_owned(),
        "https://172.31.255.255/video.mp4".to_owned(),
        // Not https, not a URL, not the provider's host, or carrying credentials.
        format!("{base}/video.mp4"),
        "http://10.0.0.1/video.mp4".to_owned(),
        "file:///etc/passwd".to_owned(),
        "ftp://10.0.0.1/video.mp4".to_owned(),
        "gopher://127.0.0.1:6379/_INFO".to_owned(),
        "https://attacker.example/video.mp4".to_owned(),
        "https://127.0.0.1.attacker.example/video.mp4".to_owned(),
        "https://user:pw@10.0.0.1/video.mp4".to_owned(),
        "not a url".to_owned(),
        "//10.0.0.1/video.mp4".to_owned(),
    ];
    for url in &corpus {
        let error = download(url, &dest, &strict, &[]).await.expect_err(url);
        assert_eq!(error.code.as_deref(), Some("unsafe_download"), "{url}: {error}");
        assert!(!error.retryable, "{url}: a refusal is permanent");
        assert!(!dest.exists(), "{url}: nothing written");
    }

    // With the test server let through: what it leads to is checked at every hop.
    for path in ["/to-private", "/to-metadata", "/to-mapped", "/to-file", "/loop", "/page.html", "/huge-declared"] {
        let error = download(&format!("{base}{path}"), &dest, &test_policy(1024), &[]).await.expect_err(path);
        assert_eq!(error.code.as_deref(), Some("unsafe_download"), "{path}: {error}");
        assert!(!dest.exists(), "{path}: nothing written");
    }
    // A body with no declared length is cut off at the cap, and the partial file removed.
    let error = download(&format!("{base}/huge-streamed"), &dest, &test_policy(8 * 1024), &[]).await.unwrap_err();
    assert_eq!(error.code.as_deref(), Some("unsafe_download"), "{error}");
    assert!(!dest.exists(), "the partial file is removed");
    // An expired link is worth polling again for a fresh one, not a refusal.
    let error = download(&format!("{base}/gone"), &dest, &test_policy(1024), &[]).await.unwrap_err();
    assert!(error.retryable, "{error}");
}
