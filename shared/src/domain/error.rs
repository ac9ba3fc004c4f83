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
    /// The body is not JSON at all.
    #[error("JSON parse error - {0}")]
    MalformedJson(String),
    /// The body is larger than the API accepts.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// The body is not sent as JSON.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
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
    /// The route exists, the method does not.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
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
    /// `If-Match` named a version that is no longer current.
    #[error("precondition failed: current version is {current_version}")]
    VersionMismatch { current_version: u64 },
    /// A pagination cursor this list did not issue (404, as DRF's `CursorPagination` answers).
    #[error("invalid cursor")]
    InvalidCursor,
    /// An `Idempotency-Key` was reused with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` has not finished yet.
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInProgress,
    /// A dependency (store, queue, secret source) failed; the cause is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
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

    /// An internal failure with its cause, for the log.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    /// A validation error on one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(FieldErrors::single(field, message))
    }
}

/// Results in the product's error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
