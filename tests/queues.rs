//! The work queue on both backends (the embedded one in the data dir, SQS on moto), consumed as the
//! Lambda event source mapping does: high priority first; delays honoured; every message settled
//! on its own; a batch of 10 with one poison and one transient message reports exactly those two;
//! a message that always fails is dead-lettered; nothing acknowledged is lost.
//!
//! Nothing here sleeps: the embedded queue runs on a `ManualClock` the tests move, and the SQS
//! queues' time is moved forward in moto (`support::advance_sqs_queues`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use shared::adapters::aws::{SqsQueue, create_resources};
use shared::adapters::embedded::EmbeddedStore;
use shared::domain::ids::{JobId, StoryId};
use shared::domain::job::{JobKind, JobPriority};
use shared::ports::{Clock, Handled, JobInbox, JobMessage, JobQueue, ManualClock, consume_once};

/// One backend's queue: where to put, where to take, how to send a raw body, where dead letters
/// go, and how to let time pass for it.
struct Backend {
    name: &'static str,
    queue: Arc<dyn JobQueue>,
    inbox: Arc<dyn JobInbox>,
    send_raw: Box<dyn Fn(String) -> futures_like::BoxFuture + Send + Sync>,
    dead: Box<dyn Fn() -> futures_like::BoxFutureVec + Send + Sync>,
    /// Moves this queue's time forward (instead of sleeping).
    advance: Box<dyn Fn(Duration) -> futures_like::BoxFuture + Send + Sync>,
    _dir: tempfile::TempDir,
}

mod futures_like {
    pub type BoxFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    pub type BoxFutureVec = std::pin::Pin<Box<dyn std::future::Future<Output = Vec<String>> + Send>>;
}

async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    let store = EmbeddedStore::open(dir.path()).unwrap();
    let queue = Arc::new(store.queue(clock.clone() as Arc<dyn Clock>));
    let (raw_queue, dead_queue) = (queue.clone(), queue.clone());
    let embedded = Backend {
        name: "embedded",
        queue: queue.clone(),
        inbox: queue,
        send_raw: Box::new(move |body| {
            let q = raw_queue.clone();
            Box::pin(async move { q.enqueue_raw(body, JobPriority::Normal, Duration::ZERO).await.unwrap() })
        }),
        dead: Box::new(move || {
            let q = dead_queue.clone();
            Box::pin(async move { q.dead_letters().await.unwrap() })
        }),
        advance: Box::new(move |by| {
            clock.advance(by);
            Box::pin(async {})
        }),
        _dir: dir,
    };
    let clients = support::aws_clients().await;
    let names = support::fresh_aws_names();
    let shared::adapters::aws::QueueUrls { high, normal, low } = create_resources(&clients, &names).await.unwrap();
    let sqs = Arc::new(SqsQueue::new(clients.sqs.clone(), high, normal.clone(), low));
    let (raw_client, dead_client) = (clients.sqs.clone(), clients.sqs.clone());
    let dlq_name = format!("{}-dlq", names.queue_prefix);
    let prefix = names.queue_prefix.clone();
    let aws = Backend {
        name: "sqs",
        queue: sqs.clone(),
        inbox: sqs,
        send_raw: Box::new(move |body| {
            let (c, url) = (raw_client.clone(), normal.clone());
            Box::pin(async move {
                c.send_message().queue_url(url).message_body(body).send().await.unwrap();
            })
        }),
        dead: Box::new(move || {
            let (c, name) = (dead_client.clone(), dlq_name.clone());
            Box::pin(async move {
                let url = c.get_queue_url().queue_name(name).send().await.unwrap().queue_url().unwrap().to_owned();
                let out = c.receive_message().queue_url(url).max_number_of_messages(10).send().await.unwrap();
                out.messages().iter().filter_map(|m| m.body().map(str::to_owned)).collect()
            })
        }),
        advance: Box::new(move |by| {
            let prefix = prefix.clone();
            Box::pin(async move { support::advance_sqs_queues(&prefix, by).await })
        }),
        _dir: tempfile::tempdir().unwrap(),
    };
    vec![embedded, aws]
}

fn message(kind: JobKind) -> JobMessage {
    JobMessage { job_id: JobId::from_ulid(ulid::Ulid::new()), story_id: StoryId::from_ulid(ulid::Ulid::new()), kind }
}

#[tokio::test]
async fn high_priority_work_is_taken_first_and_delays_are_honoured() {
    for backend in backends().await {
        let name = backend.name;
        backend.queue.enqueue(&message(JobKind::FinalCompose), JobPriority::Low, Duration::ZERO).await.unwrap();
        backend.queue.enqueue(&message(JobKind::SceneFinal), JobPriority::Normal, Duration::ZERO).await.unwrap();
        backend.queue.enqueue(&message(JobKind::ScenePreview), JobPriority::High, Duration::ZERO).await.unwrap();
        let first = backend.inbox.receive_batch(1, Duration::from_secs(30)).await.unwrap();
        assert!(first[0].body.contains("scene_preview"), "{name}: {}", first[0].body);
        backend.inbox.settle(&first[0], Handled::Done).await.unwrap();
        let rest = backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap();
        let kinds: Vec<bool> = rest.iter().map(|d| d.body.contains("scene_final")).collect();
        assert_eq!(kinds, vec![true, false], "{name}: normal before low");
        for d in &rest {
            backend.inbox.settle(d, Handled::Done).await.unwrap();
        }
        backend
            .queue
            .enqueue(&message(JobKind::ScenePreview), JobPriority::Normal, Duration::from_secs(2))
            .await
            .unwrap();
        assert!(backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap().is_empty(), "{name}: delayed");
        (backend.advance)(Duration::from_secs(1)).await;
        assert!(
            backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap().is_empty(),
            "{name}: still delayed halfway through its delay"
        );
        (backend.advance)(Duration::from_secs(1)).await;
        let later = backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(later.len(), 1, "{name}: visible once its delay has passed");
        assert_eq!(later[0].receive_count, 1, "{name}");
    }
}

#[tokio::test]
async fn a_batch_reports_exactly_its_failures_and_poison_ends_in_the_dead_letters() {
    for backend in backends().await {
        let name = backend.name;
        for _ in 0..8 {
            backend.queue.enqueue(&message(JobKind::ScenePreview), JobPriority::Normal, Duration::ZERO).await.unwrap();
        }
        let transient = message(JobKind::ScenePreview);
        backend.queue.enqueue(&transient, JobPriority::Normal, Duration::ZERO).await.unwrap();
        (backend.send_raw)("{not json".to_owned()).await;
        let transient_id = transient.job_id.to_string();
        let handled = std::sync::Mutex::new(0);
        let failed = consume_once(backend.inbox.as_ref(), 10, Duration::from_secs(30), |delivery| {
            let outcome = match serde_json::from_str::<JobMessage>(&delivery.body) {
                Err(_) => Handled::Failed { retry_after: Duration::ZERO },
                Ok(m) if m.job_id.to_string() == transient_id => Handled::Failed { retry_after: Duration::ZERO },
                Ok(_) => {
                    *handled.lock().unwrap() += 1;
                    Handled::Done
                }
            };
            async move { outcome }
        })
        .await
        .unwrap();
        assert_eq!(failed.len(), 2, "{name}: exactly the poison and the transient message are reported");
        assert_eq!(*handled.lock().unwrap(), 8, "{name}: the other 8 were handled once");
        // The transient one succeeds next time; the poison one fails until it is dead-lettered.
        for _ in 0..8 {
            consume_once(backend.inbox.as_ref(), 10, Duration::from_secs(30), |delivery| {
                let ok = serde_json::from_str::<JobMessage>(&delivery.body).is_ok();
                async move { if ok { Handled::Done } else { Handled::Failed { retry_after: Duration::ZERO } } }
            })
            .await
            .unwrap();
        }
        assert_eq!((backend.dead)().await, vec!["{not json".to_owned()], "{name}: only the poison message is dead");
        assert!(
            backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap().is_empty(),
            "{name}: nothing left"
        );
    }
}

#[tokio::test]
async fn an_unsettled_message_comes_back_after_its_visibility_timeout() {
    for backend in backends().await {
        backend.queue.enqueue(&message(JobKind::ScenePreview), JobPriority::Normal, Duration::ZERO).await.unwrap();
        let first = backend.inbox.receive_batch(10, Duration::from_secs(1)).await.unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            backend.inbox.receive_batch(10, Duration::from_secs(1)).await.unwrap().is_empty(),
            "{}: hidden",
            backend.name
        );
        (backend.advance)(Duration::from_millis(500)).await;
        assert!(
            backend.inbox.receive_batch(10, Duration::from_secs(1)).await.unwrap().is_empty(),
            "{}: hidden until its visibility timeout ends",
            backend.name
        );
        (backend.advance)(Duration::from_millis(1000)).await;
        let again = backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap();
        assert_eq!(again.len(), 1, "{}: a worker that died mid-message does not lose it", backend.name);
        assert_eq!(again[0].receive_count, 2, "{}", backend.name);
        // The new receipt deletes it: gone for good, not just hidden for another 30 s.
        backend.inbox.settle(&again[0], Handled::Done).await.unwrap();
        (backend.advance)(Duration::from_secs(31)).await;
        assert!(
            backend.inbox.receive_batch(10, Duration::from_secs(30)).await.unwrap().is_empty(),
            "{}: settled means deleted",
            backend.name
        );
    }
}

#[tokio::test]
async fn the_embedded_queue_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap()));
    {
        let store = EmbeddedStore::open(dir.path()).unwrap();
        let queue = store.queue(clock.clone());
        queue.enqueue(&message(JobKind::PreviewCompose), JobPriority::High, Duration::ZERO).await.unwrap();
    }
    let reopened = EmbeddedStore::open(dir.path()).unwrap().queue(clock);
    let batch = reopened.receive_batch(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(batch.len(), 1);
    assert!(batch[0].body.contains("preview_compose"));
}
