//! CloudWatch Embedded Metric Format: one JSON line on stdout per finished job, which CloudWatch
//! Logs turns into metrics (jobs by outcome, processing time, cost) with no API call and no
//! extra latency. Written only inside Lambda (or with `AIVIDEO_METRICS=emf`), so tests and local
//! runs keep a clean stdout; the line itself is built by a pure function and tested.

use std::io::Write;

use serde_json::json;

use crate::domain::job::Job;

/// The metric namespace.
pub const NAMESPACE: &str = "aivideo";

/// Whether metric lines are written (in Lambda, or when asked for).
fn enabled() -> bool {
    std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some() || std::env::var("AIVIDEO_METRICS").is_ok_and(|v| v == "emf")
}

/// The EMF line for `job`, finished with `outcome` (`succeeded` or `failed`) at `now_ms`.
pub fn job_finished_line(job: &Job, outcome: &str, now_ms: i64) -> String {
    let seconds = match (job.started_at, job.finished_at) {
        (Some(start), Some(end)) => (end - start).num_milliseconds() as f64 / 1000.0,
        _ => 0.0,
    };
    json!({
        "_aws": {
            "Timestamp": now_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["provider", "kind", "outcome"], ["outcome"]],
                "Metrics": [
                    {"Name": "JobsFinished", "Unit": "Count"},
                    {"Name": "ProcessingSeconds", "Unit": "Seconds"},
                    {"Name": "CostUsd", "Unit": "None"},
                    {"Name": "Attempts", "Unit": "Count"}
                ]
            }]
        },
        "provider": job.provider,
        "kind": job.kind,
        "outcome": outcome,
        "JobsFinished": 1,
        "ProcessingSeconds": seconds,
        "CostUsd": job.cost_usd,
        "Attempts": job.attempts,
        "job_id": job.id,
        "story_id": job.story,
    })
    .to_string()
}

/// Records a finished job.
pub fn job_finished(job: &Job, outcome: &str) {
    if !enabled() {
        return;
    }
    let line = job_finished_line(job, outcome, chrono::Utc::now().timestamp_millis());
    // One write of a whole line: EMF lines must not interleave with log lines.
    let mut out = std::io::stdout().lock();
    if out.write_all(format!("{line}\n").as_bytes()).and_then(|()| out.flush()).is_err() {
        tracing::warn!("could not write a metric line");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ids::{JobId, StoryId, UserId};
    use crate::domain::job::{JobKind, JobPriority};
    use crate::domain::values::AiProvider;

    #[test]
    fn a_finished_job_is_one_emf_line_with_its_dimensions_and_figures() {
        let start = chrono::Utc::now();
        let mut job = Job::queued(
            JobId::parse("01JCZ5T8Y9E6K3W7QX4M2N1P3V").unwrap(),
            UserId::parse("alice").unwrap(),
            StoryId::parse("01JCZ5T8Y9E6K3W7QX4M2N1P0R").unwrap(),
            None,
            JobKind::ScenePreview,
            JobPriority::Normal,
            AiProvider::Runway,
            start,
        );
        job.started_at = Some(start);
        job.finished_at = Some(start + chrono::Duration::milliseconds(2500));
        job.cost_usd = 0.6;
        job.attempts = 2;
        let line = job_finished_line(&job, "succeeded", 1_700_000_000_000);
        assert!(!line.contains('\n'));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000i64);
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Namespace"], "aivideo");
        // Every dimension and metric named in the directive is present in the line.
        for name in ["provider", "kind", "outcome", "JobsFinished", "ProcessingSeconds", "CostUsd", "Attempts"] {
            assert!(v.get(name).is_some(), "{name}");
        }
        assert_eq!((v["provider"].as_str(), v["kind"].as_str()), (Some("runway"), Some("scene_preview")));
        assert_eq!(v["ProcessingSeconds"], 2.5);
        assert_eq!(v["CostUsd"], 0.6);
    }
}
