//! One tracing setup for every binary: JSON lines in Lambda (CloudWatch), compact text locally,
//! silent in tests unless `TEST_LOG` is set.

use tracing_subscriber::EnvFilter;

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, with the span's fields (request id, user…).
    Json,
    /// Human-readable.
    Text,
}

/// Installs the global subscriber once; later calls do nothing. `RUST_LOG` filters (default
/// `info`); `AIVIDEO_LOG=json|text` overrides the format.
pub fn init(default_format: LogFormat) {
    let format = match std::env::var("AIVIDEO_LOG").as_deref() {
        Ok("json") => LogFormat::Json,
        Ok("text") => LogFormat::Text,
        _ => default_format,
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(true).with_span_list(false).try_init(),
        LogFormat::Text => builder.compact().with_target(false).try_init(),
    };
    // A second init (tests, or two functions in one process) keeps the first subscriber.
    drop(result);
}

/// The format for a process: JSON inside Lambda, text elsewhere.
pub fn default_format() -> LogFormat {
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() { LogFormat::Json } else { LogFormat::Text }
}
