//! The worker Lambda's batch contract: every record handled on its own, and exactly the records
//! that failed reported back, so SQS retries them (and dead-letters the hopeless ones).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use serde_json::json;
use shared::adapters::embedded::MAX_RECEIVES;
use shared::ports::{Delivery, consume_once};
use support::{TestApp, previewing_story};

/// An 8 s, 12 fps, 256x144 story.
fn batch() -> serde_json::Value {
    json!({"title": "Batch", "duration_seconds": 8, "fps": 12, "resolution": "256x144"})
}

/// An SQS event as Lambda delivers it.
fn event(records: &[(String, String)]) -> SqsEvent {
    let records: Vec<_> = records
        .iter()
        .map(|(id, body)| {
            json!({"messageId": id, "receiptHandle": format!("handle-{id}"), "body": body,
                   "attributes": {"ApproximateReceiveCount": "1"}, "messageAttributes": {},
                   "eventSource": "aws:sqs", "awsRegion": "us-east-1"})
        })
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

fn story_of(delivery: &Delivery) -> String {
    serde_json::from_str::<serde_json::Value>(&delivery.body).unwrap()["story_id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_batch_of_ten_reports_exactly_its_poison_and_its_transient_failure() {
    let app = TestApp::with_backend("embedded", &[], |_| {}).await;
    let many = previewing_story(&app, "alice", batch(), 8).await;
    let other = previewing_story(&app, "alice", batch(), 3).await;
    let queued = app.inbox.receive_batch(20, Duration::from_secs(600)).await.unwrap();
    assert_eq!(queued.len(), 11, "8 + 3 scene jobs queued");
    let mut records: Vec<(String, String)> =
        queued.iter().filter(|d| story_of(d) == many).map(|d| (d.message_id.clone(), d.body.clone())).collect();
    let transient = queued.iter().find(|d| story_of(d) == other).unwrap();
    records.push((transient.message_id.clone(), transient.body.clone()));
    records.push(("poison-1".into(), "{not even json".into()));
    assert_eq!(records.len(), 10);

    // The other story's media folder cannot be written for now (a full or failing disk).
    let blocked = app.dir.path().join("media/clips").join(&other);
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, b"in the way").unwrap();

    let response = worker::handle_batch(&app.worker, event(&records)).await;
    let mut failed: Vec<_> = response.batch_item_failures.iter().map(|f| f.item_identifier.clone()).collect();
    failed.sort();
    let mut expected = vec![transient.message_id.clone(), "poison-1".to_owned()];
    expected.sort();
    assert_eq!(failed, expected);

    // The eight others are done, once each.
    let jobs = app.jobs_of(&many).await;
    let scenes: Vec<_> = jobs.iter().filter(|j| j["kind"] == "scene_preview").collect();
    assert_eq!(scenes.len(), 8);
    assert!(scenes.iter().all(|j| j["status"] == "succeeded" && j["attempts"] == 1), "{scenes:#?}");

    // SQS delivers the transient one again; the disk is fine now, and it goes through.
    std::fs::remove_file(&blocked).unwrap();
    let again = worker::handle_batch(&app.worker, event(&records[8..9])).await;
    assert!(again.batch_item_failures.is_empty());
    let jobs = app.jobs_of(&other).await;
    assert_eq!(jobs.iter().filter(|j| j["status"] == "succeeded").count(), 1);
}

#[tokio::test]
async fn the_in_process_consumer_dead_letters_poison_after_its_receive_limit() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(shared::adapters::embedded::EmbeddedStore::open(dir.path()).unwrap());
    store.enqueue_raw("not a job".into(), shared::domain::job::JobPriority::Normal, Duration::ZERO).await.unwrap();
    let app = TestApp::with_backend("embedded", &[], |_| {}).await;
    let worker = app.worker.clone();
    let started = Instant::now();
    let mut receives = 0;
    while store.dead_letters().await.unwrap().is_empty() {
        let failed = consume_once(store.as_ref(), 10, Duration::from_secs(1), |d| {
            let worker = worker.clone();
            async move { worker.handle(&d).await }
        })
        .await
        .unwrap();
        receives += failed.len();
        assert!(started.elapsed() < Duration::from_secs(30), "not dead-lettered after {receives} receives");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(receives, MAX_RECEIVES as usize);
    assert_eq!(store.dead_letters().await.unwrap(), vec!["not a job".to_owned()]);
}
