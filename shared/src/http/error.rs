//! The one place where an error becomes an HTTP response. Every variant's status and
//! machine-readable `code` is decided here and nowhere else; 5xx bodies are generic and the cause
//! goes to the log.
//!
//! Two enums meet here: the domain's `Error` (what the product refuses or fails at) and
//! `ApiError`, which adds what only HTTP can get wrong (a body that is not JSON, a method the
//! route lacks, a cursor or idempotency key misused). Handlers answer `ApiError`; every domain
//! error converts into it.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::error::Error;

/// What a request can get wrong at the HTTP level, besides the domain's errors.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The product's own refusal or failure.
    #[error(transparent)]
    Domain(#[from] Error),
    /// The body is not JSON at all.
    #[error("JSON parse error - {0}")]
    MalformedJson(String),
    /// The body is larger than the API accepts.
    #[error("request body larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// The body is not sent as JSON.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// The route exists, the method does not.
    #[error("method {0} not allowed")]
    MethodNotAllowed(String),
    /// A pagination cursor this list did not issue (404, as DRF's `CursorPagination` answers).
    #[error("invalid cursor")]
    InvalidCursor,
    /// An `Idempotency-Key` was reused with a different request.
    #[error("idempotency key reused with a different request")]
    IdempotencyKeyReused,
    /// The first request with this `Idempotency-Key` has not finished yet.
    #[error("a request with this idempotency key is still in progress")]
    IdempotencyInProgress,
    /// The request names a host the operator did not allow (`AIVIDEO_ALLOWED_HOSTS`).
    #[error("disallowed host {0:?}")]
    DisallowedHost(String),
}

/// Results of handlers and extractors.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// The status and `code` of each error, as documented in the README's error table.
pub fn status_and_code(error: &ApiError) -> (StatusCode, &'static str) {
    match error {
        ApiError::Domain(error) => domain_status_and_code(error),
        ApiError::MalformedJson(_) => (StatusCode::BAD_REQUEST, "parse_error"),
        ApiError::InvalidCursor => (StatusCode::NOT_FOUND, "not_found"),
        ApiError::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ApiError::IdempotencyInProgress => (StatusCode::CONFLICT, "idempotency_in_progress"),
        ApiError::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        ApiError::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        ApiError::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        ApiError::DisallowedHost(_) => (StatusCode::BAD_REQUEST, "disallowed_host"),
    }
}

fn domain_status_and_code(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::Validation(_) => (StatusCode::BAD_REQUEST, "invalid"),
        Error::NotAuthenticated => (StatusCode::UNAUTHORIZED, "not_authenticated"),
        Error::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "authentication_failed"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_denied"),
        Error::NotFound => (StatusCode::NOT_FOUND, "not_found"),
        Error::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
        Error::Locked { .. } => (StatusCode::CONFLICT, "locked"),
        Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        Error::ProviderRetired { .. } => (StatusCode::CONFLICT, "provider_retired"),
        Error::UnchangedFlaggedInput { .. } => (StatusCode::CONFLICT, "unchanged_flagged_input"),
        Error::BudgetExceeded { .. } => (StatusCode::CONFLICT, "budget_exceeded"),
        Error::VersionMismatch { .. } => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
        Error::Unavailable { .. } => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
    }
}

/// Every `code` an error body can carry (the OpenAPI document lists them; a test checks each
/// variant's code is here).
pub const CODES: &[&str] = &[
    "invalid",
    "parse_error",
    "not_authenticated",
    "authentication_failed",
    "permission_denied",
    "not_found",
    "method_not_allowed",
    "invalid_transition",
    "locked",
    "conflict",
    "provider_retired",
    "unchanged_flagged_input",
    "budget_exceeded",
    "idempotency_in_progress",
    "precondition_failed",
    "payload_too_large",
    "unsupported_media_type",
    "idempotency_key_reused",
    "server_error",
    "unavailable",
    "disallowed_host",
];

/// The DRF-shaped body: field errors at the top level, or `detail`; always a `code`.
pub fn error_body(error: &ApiError) -> Value {
    let (_, code) = status_and_code(error);
    let mut body = Map::new();
    let detail = match error {
        ApiError::Domain(error) => return domain_body(error, code),
        ApiError::MalformedJson(why) => format!("JSON parse error - {why}"),
        ApiError::InvalidCursor => "Invalid cursor.".to_owned(),
        ApiError::MethodNotAllowed(method) => format!("Method \"{method}\" not allowed."),
        ApiError::IdempotencyInProgress => "A request with this Idempotency-Key is still being processed.".to_owned(),
        ApiError::PayloadTooLarge { limit } => format!("Request body is larger than {limit} bytes."),
        ApiError::UnsupportedMediaType(media) => format!("Unsupported media type \"{media}\" in request."),
        ApiError::IdempotencyKeyReused => {
            "This Idempotency-Key was used with a different request; use a new key.".to_owned()
        }
        ApiError::DisallowedHost(host) => {
            let shown: String = host.chars().filter(|c| !c.is_control()).take(255).collect();
            format!("Invalid HTTP_HOST header: '{shown}'. You may need to add it to AIVIDEO_ALLOWED_HOSTS.")
        }
    };
    body.insert("detail".into(), json!(detail));
    body.insert("code".into(), json!(code));
    Value::Object(body)
}

fn domain_body(error: &Error, code: &str) -> Value {
    let mut body = Map::new();
    match error {
        Error::Validation(fields) => {
            for (field, messages) in &fields.0 {
                body.insert(field.clone(), json!(messages));
            }
        }
        Error::NotAuthenticated => {
            body.insert("detail".into(), json!("Authentication credentials were not provided."));
        }
        Error::InvalidToken(why) => {
            body.insert("detail".into(), json!(format!("Given token not valid: {why}")));
        }
        Error::Forbidden(why) => {
            body.insert("detail".into(), json!(why));
        }
        Error::NotFound => {
            body.insert("detail".into(), json!("Not found."));
        }
        Error::InvalidTransition { detail, current_status } | Error::Locked { detail, current_status } => {
            body.insert("detail".into(), json!(detail));
            body.insert("current_status".into(), json!(current_status));
        }
        Error::Conflict { detail, current_status } => {
            body.insert("detail".into(), json!(detail));
            if let Some(status) = current_status {
                body.insert("current_status".into(), json!(status));
            }
        }
        Error::ProviderRetired { detail, alternative } => {
            body.insert("detail".into(), json!(detail));
            body.insert("alternative".into(), json!(alternative));
        }
        Error::UnchangedFlaggedInput { detail } => {
            body.insert("detail".into(), json!(detail));
        }
        Error::BudgetExceeded { limit, estimate_usd, remaining_usd } => {
            let what = match limit {
                crate::domain::usage::LimitKind::Story => "the story's budget",
                crate::domain::usage::LimitKind::Monthly => "your monthly spending cap",
            };
            body.insert(
                "detail".into(),
                json!(format!(
                    "Starting this would reserve ${estimate_usd} and pass {what} (${remaining_usd} left). Nothing was started."
                )),
            );
            body.insert("limit".into(), json!(limit.as_str()));
            body.insert("estimate_usd".into(), json!(estimate_usd));
            body.insert("remaining_usd".into(), json!(remaining_usd));
        }
        Error::VersionMismatch { current_version } => {
            body.insert("detail".into(), json!("The object has changed since the version named in If-Match."));
            body.insert("current_version".into(), json!(current_version));
        }
        Error::Internal(_) => {
            body.insert("detail".into(), json!("A server error occurred."));
        }
        Error::Unavailable { .. } => {
            body.insert("detail".into(), json!("The service is busy right now; try again shortly."));
        }
    }
    body.insert("code".into(), json!(code));
    Value::Object(body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, _) = status_and_code(&self);
        if status.is_server_error() {
            // The whole cause chain, never shown to the client.
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, axum::Json(error_body(&self))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let ApiError::Domain(Error::Unavailable { retry_after_seconds, .. }) = &self
            && let Ok(value) = HeaderValue::from_str(&retry_after_seconds.to_string())
        {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        response
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        ApiError::Domain(self).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::FieldErrors;
    use crate::domain::state_machine::StoryStatus;

    #[test]
    fn validation_errors_name_the_field_and_carry_a_code() {
        let body = error_body(&Error::Validation(FieldErrors::single("title", "This field is required.")).into());
        assert_eq!(body, json!({"title": ["This field is required."], "code": "invalid"}));
    }

    #[test]
    fn conflicts_report_the_current_status() {
        let body =
            error_body(&Error::InvalidTransition { detail: "no".into(), current_status: StoryStatus::Draft }.into());
        assert_eq!(body["current_status"], "DRAFT");
        assert_eq!(body["code"], "invalid_transition");
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let body = error_body(&Error::internal("disk on fire at /secret/path").into());
        assert_eq!(body, json!({"detail": "A server error occurred.", "code": "server_error"}));
    }

    #[derive(Debug, thiserror::Error)]
    #[error("ThrottlingException: rate of requests exceeds the allowed throughput")]
    struct Throttled;

    #[test]
    fn a_dependency_out_of_reach_answers_503_with_retry_after_and_hides_the_cause() {
        let response = Error::unavailable(2, "dynamodb: UpdateItem", Throttled).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let body = error_body(&Error::unavailable(2, "dynamodb: UpdateItem", Throttled).into());
        assert_eq!(body["code"], "unavailable");
        assert!(!body.to_string().contains("Throttling"));
    }
}
