//! AWS SDK errors in the product's words: what means "busy, come back shortly" (throttling,
//! a service unavailable, a timeout, a connection that failed) answers 503 with `Retry-After`;
//! anything else is an internal error. Either way the SDK error stays attached as the cause.

use aws_sdk_dynamodb::error::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::domain::error::Error;

/// Seconds a client is asked to wait after the store or a queue said it was busy.
pub const RETRY_AFTER_SECONDS: u64 = 1;

/// Error codes AWS services use for "too much, too fast" or "not now".
const TRANSIENT_CODES: &[&str] = &[
    "ThrottlingException",
    // A transaction's cancellation reason for a throttled item.
    "ThrottlingError",
    "Throttling",
    "ThrottledException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalServerError",
    "InternalFailure",
    "SlowDown",
    "RequestThrottled",
    "KMSThrottlingException",
];

/// Whether an error code means the call may well succeed if made again shortly.
pub fn is_transient_code(code: &str) -> bool {
    TRANSIENT_CODES.contains(&code)
}

/// `operation`'s failure as the product's error, keeping the SDK error as its cause.
pub fn aws_error<E, R>(operation: &str, e: SdkError<E, R>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let transient = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
        SdkError::ServiceError(service) => service.err().code().is_some_and(is_transient_code),
        SdkError::ResponseError(_) => true,
        _ => false,
    };
    let context = match e.code() {
        Some(code) => format!("{operation}: {code}"),
        None => operation.to_owned(),
    };
    if transient { Error::unavailable(RETRY_AFTER_SECONDS, context, e) } else { Error::internal_from(context, e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_and_unavailability_are_transient_and_refusals_are_not() {
        for code in ["ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded"] {
            assert!(is_transient_code(code), "{code}");
        }
        for code in ["ValidationException", "ResourceNotFoundException", "ConditionalCheckFailedException"] {
            assert!(!is_transient_code(code), "{code}");
        }
    }
}
