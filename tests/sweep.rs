//! The sweep against the store (the worker's scheduled event on AWS; SPEC §8.2), on both
//! backends: a render whose messages were lost is sent again and finishes; work that has not
//! waited long enough is left alone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use serde_json::json;
use shared::ports::Handled;
use support::{TestApp, previewing_story};

#[tokio::test]
async fn a_render_whose_messages_were_lost_is_resent_by_the_sweep_and_finishes() {
    let app = TestApp::with_quick_worker().await;
    let story = json!({"title": "Lost", "duration_seconds": 6, "fps": 12, "resolution": "128x128"});
    let id = previewing_story(&app, "alice", story, 3).await;
    // The messages go missing (as if the enqueue after the commit never happened).
    let lost = app.inbox.receive_batch(10, Duration::from_secs(600)).await.unwrap();
    assert_eq!(lost.len(), 3);
    for delivery in &lost {
        app.inbox.settle(delivery, Handled::Done).await.unwrap();
    }
    let patient = app.sweeper.sweep(Duration::from_secs(600)).await.unwrap();
    assert_eq!(patient.jobs_resent, 0, "work committed a moment ago is left to its request");
    let swept = app.sweeper.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(swept.jobs_resent, 3, "{swept:?}");
    let done = app.work_until(&app.worker, 1, &id, "PREVIEW_READY").await;
    assert_eq!(done["status"], "PREVIEW_READY");
    let after = app.sweeper.sweep(Duration::ZERO).await.unwrap();
    assert_eq!(after.jobs_resent, 0, "nothing under way any more");
}

/// A job between two polls, or waiting out a retry's backoff, has its next message coming: the
/// sweep leaves it alone (on SQS it cannot see that message, so a resend would start a second
/// chain of polls, and another every minute), and resends it only once that message is overdue.
#[tokio::test]
async fn a_job_waiting_for_its_next_poll_is_not_resent_until_that_poll_is_overdue() {
    use shared::ports::{Clock, ManualClock, SystemClock};
    use std::sync::Arc;
    // Polls a minute apart.
    let app = TestApp::with(&[], |c| {
        c.worker.poll_ms = 60_000;
        c.worker.lease_seconds = 3;
    })
    .await;
    let story = json!({"title": "Tide", "duration_seconds": 6, "fps": 12, "resolution": "128x128"});
    let (id, _) = support::planning_story(&app, "alice", story, json!({"scene_count": 3})).await;
    // Every scene renders for ten minutes.
    for prompt in app.results(&format!("{}/prompts/?story={id}", support::API), "alice").await {
        let slow = json!({"parameters": {"simulate": "slow", "simulate_seconds": 600}});
        let path = format!("{}/prompts/{}/", support::API, prompt["id"].as_str().unwrap());
        assert_eq!(app.patch(&path, "alice", slow).await.status, 200);
    }
    assert_eq!(app.transition(&id, "alice", "PLANNED").await.status, 200);
    let started = app.post(&format!("{}/stories/{id}/generate_preview/", support::API), "alice", json!({})).await;
    assert_eq!(started.status, 202);
    // The worker submits and polls once: the provider is rendering, the next poll is a minute off.
    let delivery = app.inbox.receive_batch(1, Duration::from_secs(30)).await.unwrap().remove(0);
    let outcome = app.worker.handle(&delivery).await;
    app.inbox.settle(&delivery, outcome).await.unwrap();
    let job = app.jobs_of(&id).await.into_iter().find(|j| j["status"] == "waiting_provider");
    assert!(job.is_some(), "the slow scene's job waits for its provider");
    // The other two scene jobs' messages go missing: they are the ones the sweep must resend.
    let lost = app.inbox.receive_batch(10, Duration::from_secs(600)).await.unwrap();
    for delivery in &lost {
        app.inbox.settle(delivery, Handled::Done).await.unwrap();
    }
    let at = |seconds| Arc::new(ManualClock::new(SystemClock.now() + chrono::Duration::seconds(seconds)));
    // Half a minute on, the job has had no worker for 30 s, but its poll is not due yet.
    let sweep = app.sweeper.clone().with_clock(at(30)).sweep(Duration::ZERO).await.unwrap();
    assert_eq!(sweep.jobs_resent, 2, "the two queued jobs, not the one whose next poll is on its way");
    // Its poll is overdue by more than the patience: the message is taken for lost and resent.
    let sweep = app.sweeper.clone().with_clock(at(75)).sweep(Duration::from_secs(10)).await.unwrap();
    assert_eq!(sweep.jobs_resent, 3, "an overdue poll is resent too");
}
