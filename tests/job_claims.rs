//! Job claims, on both backends (the store of `AIVIDEO_TEST_BACKEND`, and DynamoDB on moto in every
//! run): of concurrent claims of one job — duplicate deliveries — exactly one wins; a worker that
//! died is replaced after its lease; a finished job is never claimed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use chrono::{Duration, Utc};
use shared::adapters::aws::{DynamoStore, create_resources};
use shared::adapters::embedded::EmbeddedStore;
use shared::domain::ids::{JobId, StoryId, UserId};
use shared::domain::job::{Job, JobKind, JobPriority, JobRefusal, JobStatus};
use shared::domain::values::AiProvider;
use shared::ports::JobStore;

async fn stores() -> Vec<(&'static str, Arc<dyn JobStore>, tempfile::TempDir)> {
    let dir = tempfile::tempdir().unwrap();
    let embedded: Arc<dyn JobStore> = Arc::new(EmbeddedStore::open(dir.path()).unwrap());
    let clients = support::aws_clients().await;
    let names = support::fresh_aws_names();
    create_resources(&clients, &names).await.unwrap();
    let dynamo: Arc<dyn JobStore> = Arc::new(DynamoStore::new(clients.dynamodb.clone(), &names.table));
    vec![("embedded", embedded, dir), ("dynamodb", dynamo, tempfile::tempdir().unwrap())]
}

fn job() -> Job {
    Job::queued(
        JobId::from_ulid(ulid::Ulid::new()),
        UserId::parse("alice").unwrap(),
        StoryId::from_ulid(ulid::Ulid::new()),
        None,
        JobKind::ScenePreview,
        JobPriority::Normal,
        AiProvider::Local,
        Utc::now(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_twenty_concurrent_claims_exactly_one_wins() {
    for (backend, store, _dir) in stores().await {
        for _round in 0..5 {
            let job = job();
            store.create_job(&job).await.unwrap();
            let now = Utc::now();
            let mut tasks = Vec::new();
            for _ in 0..20 {
                let (store, job) = (store.clone(), job.clone());
                tasks.push(tokio::spawn(async move {
                    store.claim_job(&job.story, &job.id, now, Duration::seconds(60)).await.unwrap()
                }));
            }
            let mut winners = 0;
            for task in tasks {
                match task.await.unwrap() {
                    Ok(claimed) => {
                        winners += 1;
                        assert_eq!((claimed.status, claimed.attempts), (JobStatus::Running, 1));
                    }
                    Err(JobRefusal::Leased { .. }) => {}
                    Err(other) => panic!("{backend}: unexpected {other:?}"),
                }
            }
            assert_eq!(winners, 1, "{backend}");
            let stored = store.story_job(&job.story, &job.id).await.unwrap();
            assert_eq!((stored.status, stored.attempts, stored.version), (JobStatus::Running, 1, 2), "{backend}");
        }
    }
}

#[tokio::test]
async fn a_dead_workers_job_is_claimed_again_after_its_lease_and_a_finished_one_never() {
    for (backend, store, _dir) in stores().await {
        let job = job();
        store.create_job(&job).await.unwrap();
        let now = Utc::now();
        store.claim_job(&job.story, &job.id, now, Duration::seconds(30)).await.unwrap().unwrap();
        let early =
            store.claim_job(&job.story, &job.id, now + Duration::seconds(29), Duration::seconds(30)).await.unwrap();
        assert!(matches!(early, Err(JobRefusal::Leased { .. })), "{backend}");
        let later =
            store.claim_job(&job.story, &job.id, now + Duration::seconds(31), Duration::seconds(30)).await.unwrap();
        assert!(later.is_ok(), "{backend}: the lease ran out, so another worker takes over");
        let finished = shared::domain::job::Job { status: JobStatus::Succeeded, ..self::job() };
        store.create_job(&finished).await.unwrap();
        let refused = store.claim_job(&finished.story, &finished.id, now, Duration::seconds(30)).await.unwrap();
        assert_eq!(refused, Err(JobRefusal::Finished(JobStatus::Succeeded)), "{backend}");
        assert!(
            store.claim_job(&job.story, &JobId::from_ulid(ulid::Ulid::new()), now, Duration::seconds(1)).await.is_err()
        );
    }
}
