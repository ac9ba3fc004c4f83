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
