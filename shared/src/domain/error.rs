//! The one error enum of the product. Its mapping to HTTP lives in `http::error` (one file), so a
//! variant's status code and machine-readable `code` are decided in exactly one place.

use std::collections::BTreeMap;

use crate::domain::state_machine::StoryStatus;

/// Field name → messages, as Django REST Framework reports validation errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single error on one field.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Records one more message for `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.entry(field.to_owned()).or_default().push(message.into());
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `Ok(())` when empty, the validation error otherwise.
    pub fn into_result(self) -> Result<(), Error> {
        if self.is_empty() { Ok(()) } else { Err(Error::Validation(self)) }
    }
}

/// Everything that can go wrong, in the product's words.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request's content is invalid; the fields are named.
    #[error("invalid input: {0:?}")]
    Validation(FieldErrors),
    /// No credentials were sent.
    #[error("authentication credentials were not provided")]
    NotAuthenticated,
    /// The credentials were sent but are not valid (bad signature, expired, wrong issuer…).
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// Authenticated, but this caller may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The object does not exist, or belongs to someone else: the two are never told apart.
    #[error("not found")]
    NotFound,
    /// A move the state machine refuses (not in the table, reserved for another mover, or its
    /// precondition does not hold). Nothing was changed.
    #[error("invalid transition: {detail}")]
    InvalidTransition { detail: String, current_status: StoryStatus },
    /// The story is locked (or rendering) and its plan cannot change.
    #[error("story is locked: {detail}")]
    Locked { detail: String, current_status: StoryStatus },
    /// Any other state conflict (already exists, not allowed in this status…).
    #[error("conflict: {detail}")]
    Conflict { detail: String, current_status: Option<StoryStatus> },
    /// The story's provider (or its configured model) was retired by the provider: no paid call
    /// is made that cannot finish the clip. `alternative` names what renders instead.
    #[error("provider retired: {detail}")]
    ProviderRetired { detail: String, alternative: String },
    /// Starting this paid work would pass the story's budget or the owner's monthly cap
    /// (SPEC §8.7). Nothing was written, queued or called.
    #[error("budget exceeded ({}): estimate {estimate_usd}, remaining {remaining_usd}", limit.as_str())]
    BudgetExceeded {
        /// Which limit.
        limit: crate::domain::usage::LimitKind,
        /// What the start would reserve.
        estimate_usd: f64,
        /// What the limit leaves.
        remaining_usd: f64,
    },
    /// A job its provider refused for its input (moderation) is retried with the same prompt.
    #[error("unchanged flagged input: {detail}")]
    UnchangedFlaggedInput { detail: String },
    /// `If-Match` named a version that is no longer current.
    #[error("precondition failed: current version is {current_version}")]
    VersionMismatch { current_version: u64 },
    /// A dependency (store, queue, secret source) failed; the cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(#[source] Cause),
    /// A dependency is overloaded or out of reach for now (DynamoDB throttling, a service
    /// unavailable, a timeout): the client may try again after `retry_after_seconds`.
    #[error("unavailable (retry after {retry_after_seconds} s): {cause}")]
    Unavailable {
        /// When trying again makes sense.
        retry_after_seconds: u64,
        /// What was out of reach, for the log.
        #[source]
        cause: Cause,
    },
}

/// What an internal failure was doing, and the error that caused it, kept for the log.
#[derive(Debug)]
pub struct Cause {
    context: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Cause {
    /// A failure described in words only.
    pub fn new(context: impl Into<String>) -> Self {
        Self { context: context.into(), source: None }
    }

    /// A failure with the error that caused it.
    pub fn with_source(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self { context: context.into(), source: Some(Box::new(source)) }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The whole chain in one line: the log is where it is read.
        f.write_str(&self.context)?;
        let mut next = self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static));
        while let Some(e) = next {
            write!(f, ": {e}")?;
            next = e.source();
        }
        Ok(())
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    /// Names field errors after their item's position in a list (`1.duration_seconds`), as
    /// `bulk_create/` reports them; other errors and single items are unchanged.
    pub fn at_position(self, position: Option<usize>) -> Self {
        match (self, position) {
            (Error::Validation(errors), Some(i)) => {
                let mut renamed = FieldErrors::new();
                for (name, messages) in errors.0 {
                    for m in messages {
                        renamed.add(&format!("{i}.{name}"), m);
                    }
                }
                Error::Validation(renamed)
            }
            (other, _) => other,
        }
    }

    /// An internal failure described in words, for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(Cause::new(cause.to_string()))
    }

    /// An internal failure of `context`, keeping the error that caused it.
    pub fn internal_from(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Error::Internal(Cause::with_source(context, source))
    }

    /// A dependency out of reach for now; the client is told to come back after `retry_after_seconds`.
    pub fn unavailable(
        retry_after_seconds: u64,
        context: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Unavailable { retry_after_seconds, cause: Cause::with_source(context, source) }
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(FieldErrors::single(field, message))
    }
}

/// Results in the product's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("connection reset")]
    struct Reset;

    #[test]
    fn internal_errors_keep_their_cause_for_the_log() {
        let error = Error::internal_from("dynamodb: PutItem", Reset);
        assert_eq!(error.to_string(), "internal error: dynamodb: PutItem: connection reset");
        let source = std::error::Error::source(&error).unwrap();
        assert_eq!(std::error::Error::source(source).unwrap().to_string(), "connection reset");
    }
}
