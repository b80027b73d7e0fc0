//! One API error type: every failure becomes `{code, message, type}` JSON, its status and type looked up in one
//! table of codes ([`ErrorCode`]), as meilisearch does.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use waymark_engine::rules::{DefinitionError, DefinitionErrors};
use waymark_engine::Error as EngineError;
use waymark_model::ValidationError;

macro_rules! error_codes {
    ($($variant:ident => $code:literal, $status:ident, $kind:literal;)*) => {
        /// Every error code the API answers with: code → HTTP status → type.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ErrorCode {
            $($variant,)*
        }

        impl ErrorCode {
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            pub fn code(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)*
                }
            }

            pub fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)*
                }
            }

            /// `invalid_request`, `auth`, `rate_limit` or `internal`.
            pub fn kind(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $kind,)*
                }
            }

            /// The entry for a code that the engine or the model gives.
            pub fn of(code: &str) -> Option<ErrorCode> {
                ErrorCode::ALL.iter().copied().find(|entry| entry.code() == code)
            }
        }
    };
}

error_codes! {
    InvalidJson => "invalid_json", BAD_REQUEST, "invalid_request";
    InvalidQuery => "invalid_query", BAD_REQUEST, "invalid_request";
    InvalidPath => "invalid_path", BAD_REQUEST, "invalid_request";
    UnknownAnalysis => "unknown_analysis", NOT_FOUND, "invalid_request";
    NotFound => "not_found", NOT_FOUND, "invalid_request";
    MethodNotAllowed => "method_not_allowed", METHOD_NOT_ALLOWED, "invalid_request";
    UnreadableBody => "unreadable_body", BAD_REQUEST, "invalid_request";
    WrongType => "wrong_type", BAD_REQUEST, "invalid_request";
    UnknownType => "unknown_type", BAD_REQUEST, "invalid_request";
    MissingIdentifier => "missing_identifier", BAD_REQUEST, "invalid_request";
    MissingEventName => "missing_event_name", BAD_REQUEST, "invalid_request";
    MissingPreviousId => "missing_previous_id", BAD_REQUEST, "invalid_request";
    MissingGroupId => "missing_group_id", BAD_REQUEST, "invalid_request";
    InvalidTimestamp => "invalid_timestamp", BAD_REQUEST, "invalid_request";
    MissingBatch => "missing_batch", BAD_REQUEST, "invalid_request";
    EventTooLarge => "event_too_large", PAYLOAD_TOO_LARGE, "invalid_request";
    BatchTooLarge => "batch_too_large", PAYLOAD_TOO_LARGE, "invalid_request";
    InvalidImport => "invalid_import", BAD_REQUEST, "invalid_request";
    InvalidRules => "invalid_rules", UNPROCESSABLE_ENTITY, "invalid_request";
    InvalidBlueprint => "invalid_blueprint", UNPROCESSABLE_ENTITY, "invalid_request";
    InvalidCatalogue => "invalid_catalogue", UNPROCESSABLE_ENTITY, "invalid_request";
    InvalidFeedback => "invalid_feedback", BAD_REQUEST, "invalid_request";
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE, "invalid_request";
    MissingWriteKey => "missing_write_key", UNAUTHORIZED, "auth";
    InvalidWriteKey => "invalid_write_key", UNAUTHORIZED, "auth";
    InvalidAuthorization => "invalid_authorization", UNAUTHORIZED, "auth";
    MissingKey => "missing_key", UNAUTHORIZED, "auth";
    InvalidKey => "invalid_key", UNAUTHORIZED, "auth";
    RevokedKey => "revoked_key", UNAUTHORIZED, "auth";
    Forbidden => "forbidden", FORBIDDEN, "auth";
    RequestTimeout => "request_timeout", REQUEST_TIMEOUT, "invalid_request";
    RateLimited => "rate_limited", TOO_MANY_REQUESTS, "rate_limit";
    StoreUnavailable => "store_unavailable", SERVICE_UNAVAILABLE, "internal";
    StoreFull => "store_full", SERVICE_UNAVAILABLE, "internal";
    StoreReadOnly => "store_read_only", SERVICE_UNAVAILABLE, "internal";
    Internal => "internal", INTERNAL_SERVER_ERROR, "internal";
}

/// An HTTP error with a stable code and a message that says what to change.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    /// Every problem of a refused definition set, each naming its field (and line and column).
    pub errors: Vec<DefinitionError>,
    /// Seconds after which a retry may succeed (`Retry-After` on a 429 or 503).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(skip_serializing_if = "<[DefinitionError]>::is_empty")]
    errors: &'a [DefinitionError],
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// A refused definition set: 422 with every problem.
    pub fn invalid_rules(errors: DefinitionErrors) -> ApiError {
        ApiError::invalid_definitions(ErrorCode::InvalidRules, "definitions", errors)
    }

    /// Refused definitions (`what`: the definitions, the catalogue): `code` with every problem.
    pub fn invalid_definitions(code: ErrorCode, what: &str, errors: DefinitionErrors) -> ApiError {
        let message = format!(
            "the {what} {} {} problem{}; nothing was changed: {errors}",
            if what.ends_with('s') { "have" } else { "has" },
            errors.0.len(),
            if errors.0.len() == 1 { "" } else { "s" }
        );
        ApiError {
            errors: errors.0,
            ..ApiError::new(code, message)
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> ApiError {
        ApiError::new(
            ErrorCode::of(error.code()).unwrap_or(ErrorCode::InvalidJson),
            error.to_string(),
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        let error = match error {
            EngineError::Rules(errors) => return ApiError::invalid_rules(errors),
            EngineError::Catalogue(errors) => {
                return ApiError::invalid_definitions(
                    ErrorCode::InvalidCatalogue,
                    "catalogue",
                    errors,
                )
            }
            other => other,
        };
        let code = ErrorCode::of(error.code()).unwrap_or(if error.is_user_fault() {
            ErrorCode::InvalidQuery
        } else {
            ErrorCode::Internal
        });
        if matches!(code, ErrorCode::StoreFull | ErrorCode::StoreReadOnly) {
            // The store says what happened and that nothing was kept; clients retry after a pause.
            return ApiError {
                retry_after: Some(5),
                ..ApiError::new(code, error.to_string())
            };
        }
        if code == ErrorCode::StoreUnavailable {
            tracing::error!(error = %error, "store failure while serving a request");
            return ApiError::new(
                code,
                format!("the event store could not complete the request ({error}); nothing was acknowledged, retry later"),
            );
        }
        ApiError::new(code, error.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status().is_server_error() {
            tracing::error!(code = self.code.code(), message = %self.message, "request failed");
        }
        let body = Body {
            code: self.code.code(),
            message: &self.message,
            kind: self.code.kind(),
            errors: &self.errors,
        };
        let mut response = (self.status(), axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            crate::limits::retry_after(&mut response, seconds);
        }
        if self.status() == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme it wants.
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"waymark\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_the_engine_and_model_give_is_in_the_table() {
        for code in [
            "invalid_query",
            "invalid_json",
            "unknown_analysis",
            "not_found",
            "store_unavailable",
            "store_full",
            "store_read_only",
            "invalid_import",
            "invalid_rules",
            "invalid_catalogue",
        ] {
            assert!(ErrorCode::of(code).is_some(), "{code}");
        }
        let codes: std::collections::HashSet<&str> =
            ErrorCode::ALL.iter().map(|code| code.code()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len(), "codes are unique");
    }
}
