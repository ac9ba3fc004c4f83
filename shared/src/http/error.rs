//! The one place where an `Error` becomes an HTTP response. Every variant's status and
//! machine-readable `code` is decided here and nowhere else; 5xx bodies are generic and the cause
//! goes to the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::domain::error::Error;

/// The status and `code` of each error, as documented in the README's error table.
pub fn status_and_code(error: &Error) -> (StatusCode, &'static str) {
    match error {
        Error::Validation(_) => (StatusCode::BAD_REQUEST, "invalid"),
        Error::MalformedJson(_) => (StatusCode::BAD_REQUEST, "parse_error"),
        Error::NotAuthenticated => (StatusCode::UNAUTHORIZED, "not_authenticated"),
        Error::InvalidToken(_) => (StatusCode::UNAUTHORIZED, "authentication_failed"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_denied"),
        Error::NotFound | Error::InvalidCursor => (StatusCode::NOT_FOUND, "not_found"),
        Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        Error::InvalidTransition { .. } => (StatusCode::CONFLICT, "invalid_transition"),
        Error::Locked { .. } => (StatusCode::CONFLICT, "locked"),
        Error::Conflict { .. } => (StatusCode::CONFLICT, "conflict"),
        Error::IdempotencyInProgress => (StatusCode::CONFLICT, "idempotency_in_progress"),
        Error::VersionMismatch { .. } => (StatusCode::PRECONDITION_FAILED, "precondition_failed"),
        Error::PayloadTooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        Error::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        Error::IdempotencyKeyReused => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "server_error"),
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
    "idempotency_in_progress",
    "precondition_failed",
    "payload_too_large",
    "unsupported_media_type",
    "idempotency_key_reused",
    "server_error",
];

/// The DRF-shaped body: field errors at the top level, or `detail`; always a `code`.
pub fn error_body(error: &Error) -> Value {
    let (_, code) = status_and_code(error);
    let mut body = Map::new();
    match error {
        Error::Validation(fields) => {
            for (field, messages) in &fields.0 {
                body.insert(field.clone(), json!(messages));
            }
        }
        Error::MalformedJson(why) => {
            body.insert("detail".into(), json!(format!("JSON parse error - {why}")));
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
        Error::InvalidCursor => {
            body.insert("detail".into(), json!("Invalid cursor."));
        }
        Error::MethodNotAllowed(method) => {
            body.insert("detail".into(), json!(format!("Method \"{method}\" not allowed.")));
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
        Error::IdempotencyInProgress => {
            body.insert("detail".into(), json!("A request with this Idempotency-Key is still being processed."));
        }
        Error::VersionMismatch { current_version } => {
            body.insert("detail".into(), json!("The object has changed since the version named in If-Match."));
            body.insert("current_version".into(), json!(current_version));
        }
        Error::PayloadTooLarge { limit } => {
            body.insert("detail".into(), json!(format!("Request body is larger than {limit} bytes.")));
        }
        Error::UnsupportedMediaType(media) => {
            body.insert("detail".into(), json!(format!("Unsupported media type \"{media}\" in request.")));
        }
        Error::IdempotencyKeyReused => {
            body.insert(
                "detail".into(),
                json!("This Idempotency-Key was used with a different request; use a new key."),
            );
        }
        Error::Internal(_) => {
            body.insert("detail".into(), json!("A server error occurred."));
        }
    }
    body.insert("code".into(), json!(code));
    Value::Object(body)
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, _) = status_and_code(&self);
        if status.is_server_error() {
            tracing::error!(error = %self, "request failed");
        }
        let mut response = (status, axum::Json(error_body(&self))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::error::FieldErrors;
    use crate::domain::state_machine::StoryStatus;

    #[test]
    fn validation_errors_name_the_field_and_carry_a_code() {
        let body = error_body(&Error::Validation(FieldErrors::single("title", "This field is required.")));
        assert_eq!(body, json!({"title": ["This field is required."], "code": "invalid"}));
    }

    #[test]
    fn conflicts_report_the_current_status() {
        let body = error_body(&Error::InvalidTransition { detail: "no".into(), current_status: StoryStatus::Draft });
        assert_eq!(body["current_status"], "DRAFT");
        assert_eq!(body["code"], "invalid_transition");
    }

    #[test]
    fn internal_errors_never_show_their_cause() {
        let body = error_body(&Error::internal("disk on fire at /secret/path"));
        assert_eq!(body, json!({"detail": "A server error occurred.", "code": "server_error"}));
    }
}
