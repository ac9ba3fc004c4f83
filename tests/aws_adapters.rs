//! The AWS adapters against a real AWS API emulator (moto's server on loopback, made atomic for
//! DynamoDB): queues, media, secrets, resource creation, races, round trips per API operation, and
//! `aivideo serve --backend aws --create-resources`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use serde_json::{Value, json};
use shared::adapters::aws::{DynamoStore, S3Media, SecretsManagerSource, SqsQueue, create_resources};
use shared::domain::ids::{Actor, JobId, StoryId, UserId};
use shared::domain::job::{JobKind, JobPriority};
use shared::domain::state_machine::{Mover, StoryStatus};
use shared::domain::story::{NewStory, Story};
use shared::domain::values::Title;
use shared::ports::{JobMessage, JobQueue, ManualClock, MediaStore, MoveRequest, SecretSource, StoryStore};
use support::{aws_clients, fresh_aws_names};

#[tokio::test]
async fn secrets_are_read_once_and_refreshed_after_their_ttl() {
    let clients = aws_clients().await;
    let name = format!("secret-{}", ulid::Ulid::new());
    clients.secrets.create_secret().name(&name).secret_string("first").send().await.unwrap();
    let clock = Arc::new(ManualClock::new(Utc::now()));
    let cached = SecretsManagerSource::with_clock(clients.secrets.clone(), Duration::from_secs(3600), clock.clone());
    clients.calls.reset();
    assert_eq!(cached.secret(&name).await.unwrap(), "first");
    assert_eq!(cached.secret(&name).await.unwrap(), "first");
    assert_eq!(clients.calls.snapshot().get("secretsmanager.GetSecretValue"), Some(&1), "read once, not per request");
    clients.secrets.put_secret_value().secret_id(&name).secret_string("rotated").send().await.unwrap();
    clock.advance(Duration::from_secs(3599));
    assert_eq!(cached.secret(&name).await.unwrap(), "first", "within the TTL the cached value stands");
    clock.advance(Duration::from_secs(1));
    assert_eq!(cached.secret(&name).await.unwrap(), "rotated", "after the TTL it is read again");
    assert_eq!(clients.calls.snapshot().get("secretsmanager.GetSecretValue"), Some(&2), "once per TTL");
    let refreshing = SecretsManagerSource::new(clients.secrets.clone(), Duration::ZERO);
    assert_eq!(refreshing.secret(&name).await.unwrap(), "rotated");
    assert!(cached.secret("no-such-secret").await.is_err());
}

#[tokio::test]
async fn create_resources_makes_the_table_queues_with_a_dead_letter_queue_bucket_and_secret_once() {
    let clients = aws_clients().await;
    let names = fresh_aws_names();
    let first = create_resources(&clients, &names).await.unwrap();
    let again = create_resources(&clients, &names).await.unwrap();
    assert_eq!(first, again, "creating twice changes nothing");
    let table = clients.dynamodb.describe_table().table_name(&names.table).send().await.unwrap();
    let mut indexes: Vec<String> =
        table.table().unwrap().global_secondary_indexes().iter().map(|i| i.index_name().unwrap().to_owned()).collect();
    indexes.sort();
    assert_eq!(indexes, ["GSI1", "GSI2", "GSI3", "GSI4"], "{indexes:?}");
    let attributes = clients
        .sqs
        .get_queue_attributes()
        .queue_url(&first.normal)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .unwrap();
    let redrive =
        attributes.attributes().unwrap().get(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy).unwrap().clone();
    let redrive: Value = serde_json::from_str(&redrive).unwrap();
    assert!(redrive["deadLetterTargetArn"].as_str().unwrap().ends_with("-dlq"));
    assert_eq!(redrive["maxReceiveCount"].to_string().trim_matches('"'), "5");
    clients.s3.head_bucket().bucket(&names.bucket).send().await.unwrap();
    let secret = clients.secrets.get_secret_value().secret_id(&names.jwt_secret).send().await.unwrap();
    assert!(secret.secret_string().unwrap().len() >= 40);
}

#[tokio::test]
async fn jobs_go_to_the_queue_of_their_priority_as_ids_only_and_honour_delays() {
    let clients = aws_clients().await;
    let names = fresh_aws_names();
    let shared::adapters::aws::QueueUrls { high, normal, low } = create_resources(&clients, &names).await.unwrap();
    let queue = SqsQueue::new(clients.sqs.clone(), high.clone(), normal.clone(), low.clone());
    let message = JobMessage {
        job_id: JobId::from_ulid(ulid::Ulid::new()),
        story_id: StoryId::from_ulid(ulid::Ulid::new()),
        kind: JobKind::ScenePreview,
    };
    queue.enqueue(&message, JobPriority::High, Duration::ZERO).await.unwrap();
    let received = clients.sqs.receive_message().queue_url(&high).max_number_of_messages(10).send().await.unwrap();
    let bodies: Vec<&str> = received.messages().iter().map(|m| m.body().unwrap()).collect();
    assert_eq!(bodies.len(), 1);
    assert_eq!(serde_json::from_str::<JobMessage>(bodies[0]).unwrap(), message);
    let normal_now = clients.sqs.receive_message().queue_url(&normal).send().await.unwrap();
    assert!(normal_now.messages().is_empty(), "a high job is not on the normal queue");
    queue.enqueue(&message, JobPriority::Low, Duration::from_secs(2)).await.unwrap();
    let too_early = clients.sqs.receive_message().queue_url(&low).send().await.unwrap();
    assert!(too_early.messages().is_empty(), "a delayed message is invisible until its delay passes");
    // Time passes for this test's queues in moto, not by sleeping.
    support::advance_sqs_queues(&names.queue_prefix, Duration::from_secs(1)).await;
    let halfway = clients.sqs.receive_message().queue_url(&low).send().await.unwrap();
    assert!(halfway.messages().is_empty(), "still invisible halfway through its delay");
    support::advance_sqs_queues(&names.queue_prefix, Duration::from_secs(1)).await;
    let later = clients.sqs.receive_message().queue_url(&low).send().await.unwrap();
    assert_eq!(later.messages().len(), 1);
}

#[tokio::test]
async fn media_is_stored_under_server_keys_and_served_through_presigned_urls() {
    let clients = aws_clients().await;
    let names = fresh_aws_names();
    create_resources(&clients, &names).await.unwrap();
    // Links are signed at the media's clock's time (a whole second, as X-Amz-Date shows it).
    let start = chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap();
    let media = S3Media::with_clock(clients.s3.clone(), &names.bucket, Arc::new(ManualClock::new(start)));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("clip.mp4");
    std::fs::write(&file, b"not really a video, but bytes are bytes").unwrap();
    let size = media.put_file("stories/s1/preview.mp4", &file, "video/mp4").await.unwrap();
    assert_eq!(size, 39);
    let signed = media.signed_url("stories/s1/preview.mp4", Duration::from_secs(600)).await.unwrap();
    assert!(signed.url.contains("X-Amz-Expires=600"), "{}", signed.url);
    assert!(signed.url.contains(&format!("X-Amz-Date={}", start.format("%Y%m%dT%H%M%SZ"))), "{}", signed.url);
    assert_eq!(signed.expires_at, start + chrono::Duration::seconds(600));
    let body = reqwest::get(&signed.url).await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], b"not really a video, but bytes are bytes");
    let upload = media.upload_url("uploads/u1/image.png", "image/png", Duration::from_secs(60)).await.unwrap();
    assert_eq!(upload.expires_at, start + chrono::Duration::seconds(60));
    let put =
        reqwest::Client::new().put(&upload.url).header("content-type", "image/png").body("png").send().await.unwrap();
    assert!(put.status().is_success(), "{}", put.status());
    let stored = clients.s3.get_object().bucket(&names.bucket).key("uploads/u1/image.png").send().await.unwrap();
    assert_eq!(stored.body.collect().await.unwrap().into_bytes().as_ref(), b"png");
}

/// The race the store must win: 20 concurrent identical moves on DynamoDB — exactly one lands.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_moves_on_dynamodb_have_exactly_one_winner() {
    let clients = aws_clients().await;
    let names = fresh_aws_names();
    create_resources(&clients, &names).await.unwrap();
    let store = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &names.table));
    let owner = UserId::parse("alice").unwrap();
    for _round in 0..5 {
        let story = Story::create(
            StoryId::from_ulid(ulid::Ulid::new()),
            owner.clone(),
            NewStory::titled(Title::parse("r").unwrap()),
            Utc::now(),
        );
        store.create_story(&story).await.unwrap();
        clients.calls.reset();
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (store, owner, id) = (store.clone(), owner.clone(), story.id.clone());
            tasks.push(tokio::spawn(async move {
                store
                    .move_story(MoveRequest {
                        owner: owner.clone(),
                        story: id,
                        to: StoryStatus::Planning,
                        mover: Mover::User,
                        actor: Actor::User(owner),
                        reason: None,
                        expected_version: None,
                        at: Utc::now(),
                        request: None,
                    })
                    .await
            }));
        }
        let mut winners = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => winners += 1,
                Err(shared::Error::InvalidTransition { current_status, .. }) => {
                    assert_eq!(current_status, StoryStatus::Planning)
                }
                Err(other) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners, 1);
        // Each loser was answered from the item its failed condition returned: no second read.
        let reads = clients.calls.snapshot().get("dynamodb.GetItem").copied().unwrap_or(0);
        assert_eq!(reads, 20, "one read per request, none after a lost race");
        let page = store.transitions(&owner, &story.id, &Default::default()).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(store.story(&owner, &story.id).await.unwrap().version, 2);
    }
}

/// Round trips to AWS per API operation, measured here and published in the README (the test
/// fails, printing the measured table, when they disagree).
#[tokio::test]
async fn round_trips_per_api_operation_match_the_readme() {
    let app = support::TestApp::with_backend("aws", &[], |_| {}).await;
    let calls = app.calls.clone().unwrap();
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut measure = |name: &str, calls: &shared::adapters::aws::CallCounter| {
        let snapshot = calls.snapshot();
        let total: u64 = snapshot.values().sum();
        let detail: Vec<String> =
            snapshot.iter().map(|(k, v)| format!("{v}× {}", k.trim_start_matches("dynamodb."))).collect();
        rows.push((name.to_owned(), format!("{total} ({})", detail.join(", "))));
        calls.reset();
    };
    calls.reset();
    let created =
        app.post("/api/ai-video/stories/", "alice", json!({"title": "Counted", "duration_seconds": 12})).await;
    let id = created.body["id"].as_str().unwrap().to_owned();
    measure("POST stories/", &calls);
    app.get(&format!("/api/ai-video/stories/{id}/"), "alice").await;
    measure("GET stories/{id}/", &calls);
    app.get("/api/ai-video/stories/", "alice").await;
    measure("GET stories/", &calls);
    app.patch(&format!("/api/ai-video/stories/{id}/"), "alice", json!({"title": "Renamed"})).await;
    measure("PATCH stories/{id}/", &calls);
    let bulk = app.post(&format!("/api/ai-video/stories/{id}/scenes/bulk/"), "alice", json!({})).await;
    assert_eq!(bulk.status, StatusCode::CREATED);
    measure("POST stories/{id}/scenes/bulk/ (12 scenes + 12 prompts)", &calls);
    app.get(&format!("/api/ai-video/scenes/?story={id}"), "alice").await;
    measure("GET scenes/?story={id}", &calls);
    let scene = bulk.body["scenes"][0]["id"].as_str().unwrap().to_owned();
    app.get(&format!("/api/ai-video/scenes/{scene}/"), "alice").await;
    measure("GET scenes/{id}/", &calls);
    app.patch(&format!("/api/ai-video/scenes/{scene}/"), "alice", json!({"title": "Opening"})).await;
    measure("PATCH scenes/{id}/", &calls);
    app.post(&format!("/api/ai-video/scenes/{scene}/reorder/"), "alice", json!({"order": 3})).await;
    measure("POST scenes/{id}/reorder/", &calls);
    app.post(&format!("/api/ai-video/stories/{id}/generate-prompts/"), "alice", json!({})).await;
    measure("POST stories/{id}/generate-prompts/", &calls);
    // Back to the first prompt of scene 1 (generate-prompts selected a new one).
    let prompt = bulk.body["scenes"][1]["prompts"][0]["id"].as_str().unwrap().to_owned();
    let selected = app.post(&format!("/api/ai-video/prompts/{prompt}/select/"), "alice", json!({})).await;
    assert_eq!(selected.body["version"], 3, "selected, unselected by generate-prompts, selected again");
    measure("POST prompts/{id}/select/", &calls);
    app.post(&format!("/api/ai-video/stories/{id}/lock/"), "alice", json!({})).await;
    measure("POST stories/{id}/lock/", &calls);
    app.post(&format!("/api/ai-video/stories/{id}/unlock/"), "alice", json!({})).await;
    measure("POST stories/{id}/unlock/", &calls);
    let planned = app.post(&format!("/api/ai-video/stories/{id}/transition/"), "alice", json!({"to": "PLANNED"})).await;
    assert_eq!(planned.status, StatusCode::OK, "{}", planned.body);
    measure("POST stories/{id}/transition/ (PLANNING → PLANNED, checks the plan)", &calls);
    app.post(&format!("/api/ai-video/stories/{id}/transition/"), "alice", json!({"to": "PLANNING"})).await;
    measure("POST stories/{id}/transition/ (other moves)", &calls);
    app.get(&format!("/api/ai-video/stories/{id}/transitions/"), "alice").await;
    measure("GET stories/{id}/transitions/", &calls);
    app.send(
        Method::POST,
        "/api/ai-video/stories/",
        Some("alice"),
        Some(r#"{"title": "Once"}"#),
        &[("idempotency-key", "k")],
    )
    .await;
    measure("POST stories/ with Idempotency-Key (first)", &calls);
    app.send(
        Method::POST,
        "/api/ai-video/stories/",
        Some("alice"),
        Some(r#"{"title": "Once"}"#),
        &[("idempotency-key", "k")],
    )
    .await;
    measure("POST stories/ with Idempotency-Key (replay)", &calls);
    // More stories of the same owner: a listing without a story filter reads in proportion to
    // its page, not to the owner's stories.
    for i in 0..6 {
        app.post("/api/ai-video/stories/", "alice", json!({"title": format!("Other {i}")})).await;
    }
    calls.reset();
    let page = app.get("/api/ai-video/scenes/?ordering=created_at&page_size=5", "alice").await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 5, "{}", page.body);
    measure("GET scenes/?ordering=created_at&page_size=5 (of 8 stories)", &calls);
    let page = app.get("/api/ai-video/scenes/?page_size=5", "alice").await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 5, "{}", page.body);
    measure("GET scenes/?page_size=5 (by story and order, of 8 stories)", &calls);
    let page = app.get("/api/ai-video/prompts/?page_size=5", "alice").await;
    assert_eq!(page.body["results"].as_array().unwrap().len(), 5, "{}", page.body);
    measure("GET prompts/?page_size=5 (of 8 stories)", &calls);
    app.send(Method::DELETE, &format!("/api/ai-video/stories/{id}/"), Some("alice"), None, &[]).await;
    measure("DELETE stories/{id}/", &calls);

    let mut table = String::from("| API operation | DynamoDB calls |\n|---|---|\n");
    for (name, count) in &rows {
        table.push_str(&format!("| `{name}` | {count} |\n"));
    }
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("<!-- round-trips:start -->\n").map(|i| i + "<!-- round-trips:start -->\n".len());
    let end = readme.find("<!-- round-trips:end -->");
    let published = match (start, end) {
        (Some(s), Some(e)) => &readme[s..e],
        _ => "",
    };
    assert_eq!(published, table, "the README's round-trip table is not what was measured; measured:\n{table}");
}

/// The README's walkthrough on `aivideo serve --backend aws --create-resources` against moto.
#[tokio::test]
async fn serve_on_the_aws_backend_creates_its_resources_and_serves_the_api() {
    let names = fresh_aws_names();
    let dir = tempfile::tempdir().unwrap();
    let endpoint = support::moto_endpoint();
    let env = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("AWS_REGION", "us-east-1"),
        ("AIVIDEO_TABLE", names.table.as_str()),
        ("AIVIDEO_QUEUE_PREFIX", names.queue_prefix.as_str()),
        ("AIVIDEO_BUCKET", names.bucket.as_str()),
        ("AIVIDEO_JWT_SECRET_NAME", names.jwt_secret.as_str()),
    ];
    let server = support::Server::start_with(dir.path(), &["--backend", "aws", "--create-resources"], &env);
    // The server signs nothing itself: its token secret lives in Secrets Manager.
    let clients = aws_clients().await;
    let secret = clients.secrets.get_secret_value().secret_id(&names.jwt_secret).send().await.unwrap();
    let token = shared::http::auth::issue_hs256_token(
        secret.secret_string().unwrap(),
        "alice",
        false,
        Duration::from_secs(600),
    )
    .unwrap();
    let http = reqwest::Client::new();
    let created: Value = http
        .post(server.url("/api/ai-video/stories/"))
        .bearer_auth(&token)
        .json(&json!({"title": "On DynamoDB", "duration_seconds": 6}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let bulk = http
        .post(server.url(&format!("/api/ai-video/stories/{id}/scenes/bulk/")))
        .bearer_auth(&token)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(bulk.status().as_u16(), 201);
    let planned = http
        .post(server.url(&format!("/api/ai-video/stories/{id}/transition/")))
        .bearer_auth(&token)
        .json(&json!({"to": "PLANNED"}))
        .send()
        .await
        .unwrap();
    assert_eq!(planned.status().as_u16(), 200);
    // It really is in DynamoDB.
    let item = clients
        .dynamodb
        .get_item()
        .table_name(&names.table)
        .key("PK", aws_sdk_dynamodb::types::AttributeValue::S(format!("STORY#{id}")))
        .key("SK", aws_sdk_dynamodb::types::AttributeValue::S("STORY".into()))
        .send()
        .await
        .unwrap();
    assert_eq!(item.item().unwrap()["status"].as_s().unwrap(), "PLANNED");
}

/// Without `--create-resources`, a missing table is one clear line at start-up, not a 500 later.
#[test]
fn serve_on_aws_without_its_table_says_so_in_one_line() {
    let names = fresh_aws_names();
    let endpoint = support::moto_endpoint();
    let dir = tempfile::tempdir().unwrap();
    let out = support::aivideo(
        &["serve", "--addr", "127.0.0.1:0", "--backend", "aws", "--data-dir", dir.path().to_str().unwrap()],
        &[
            ("AWS_ENDPOINT_URL", endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "test"),
            ("AWS_SECRET_ACCESS_KEY", "test"),
            ("AWS_REGION", "us-east-1"),
            ("AIVIDEO_TABLE", names.table.as_str()),
            ("RUST_LOG", "off"),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&names.table) && err.contains("--create-resources"), "{err}");
}

/// A DynamoDB endpoint on loopback that answers every call as a throttled table does (HTTP 400,
/// `ThrottlingException` in DynamoDB's JSON error shape), counting the calls it saw.
async fn throttling_dynamodb() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = calls.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else { return };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 64 * 1024];
                let mut read = Vec::new();
                loop {
                    let Ok(n) = socket.read(&mut buffer).await else { return };
                    if n == 0 {
                        return;
                    }
                    read.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&read).to_string();
                    let Some(head_end) = text.find("\r\n\r\n") else { continue };
                    let length = text[..head_end]
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_owned())
                        })
                        .and_then(|v| v.parse::<usize>().ok())
                        .unwrap_or(0);
                    if read.len() < head_end + 4 + length {
                        continue;
                    }
                    read.drain(..head_end + 4 + length);
                    seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let body = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;
                    let answer = format!(
                        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (endpoint, calls)
}

#[tokio::test]
async fn a_throttled_table_answers_503_with_retry_after_not_500() {
    let (endpoint, calls) = throttling_dynamodb().await;
    let credentials = aws_sdk_dynamodb::config::Credentials::new("test", "test", None, None, "tests");
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(&endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(credentials)
        .load()
        .await;
    let store = DynamoStore::new(aws_sdk_dynamodb::Client::new(&sdk), "throttled");
    let owner = UserId::parse("alice").unwrap();
    let error = store.story(&owner, &StoryId::from_ulid(ulid::Ulid::new())).await.unwrap_err();
    assert!(matches!(error, shared::Error::Unavailable { .. }), "{error:?}");
    assert!(error.to_string().contains("ThrottlingException"), "the cause is kept for the log: {error}");
    assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    let response = axum::response::IntoResponse::into_response(error);
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(response.headers().contains_key("retry-after"));
    let body = support::reply(response).await.body;
    assert_eq!(body["code"], "unavailable");
}

#[tokio::test]
async fn an_api_function_starts_with_one_aws_call_and_the_worker_with_none() {
    // What `aivideo serve --create-resources` (or the template) made.
    let clients = aws_clients().await;
    let names = fresh_aws_names();
    let urls = create_resources(&clients, &names).await.unwrap();
    let config = shared::config::Config {
        backend: shared::config::Backend::Aws,
        aws: shared::adapters::aws::AwsNames { queue_urls: Some(urls), ..names },
        ..shared::config::Config::default()
    };
    // An API function's cold start as the template configures it: the queue URLs from the
    // environment, no table check; the token secret is the one call.
    let clients = aws_clients().await;
    let calls = clients.calls.clone();
    let backend = shared::runtime::open_aws_backend(&config, clients, shared::runtime::Role::Api).await.unwrap();
    shared::runtime::api(&config, &backend).unwrap();
    assert_eq!(calls.snapshot(), [("secretsmanager.GetSecretValue".to_owned(), 1)].into_iter().collect());
    // The worker needs no token secret: no call at all.
    let clients = aws_clients().await;
    let calls = clients.calls.clone();
    let backend = shared::runtime::open_aws_backend(&config, clients, shared::runtime::Role::Worker).await.unwrap();
    shared::runtime::worker(&config, &backend, shared::adapters::ffmpeg::Ffmpeg::configured()).unwrap();
    assert_eq!(calls.total(), 0, "{:?}", calls.snapshot());
}
