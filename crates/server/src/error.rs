//! One API error type: every failure becomes `{code, message, type}` JSON with the right status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use waymark_model::ValidationError;
use waymark_store::StoreError;

/// An HTTP error with a stable code and a message that says what to change.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: &'a str,
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    fn kind(&self) -> &'static str {
        match self.status {
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => "auth",
            status if status.is_server_error() => "internal",
            _ => "invalid_request",
        }
    }
}

impl From<ValidationError> for ApiError {
    fn from(error: ValidationError) -> ApiError {
        let status = match error {
            ValidationError::EventTooLarge { .. } | ValidationError::BatchTooLarge { .. } => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, error.code(), error.to_string())
    }
}

impl From<waymark_engine::query::QueryError> for ApiError {
    fn from(error: waymark_engine::query::QueryError) -> ApiError {
        match error {
            waymark_engine::query::QueryError::Invalid(message) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_query", message)
            }
            waymark_engine::query::QueryError::Store(error) => error.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> ApiError {
        match error {
            StoreError::NotFound(message) => ApiError::not_found(message),
            other => {
                tracing::error!(error = %other, "store failure while serving a request");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    format!("the event store could not complete the request ({other}); nothing was acknowledged, retry later"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body = Body {
            code: self.code,
            message: &self.message,
            kind: self.kind(),
        };
        (self.status, axum::Json(body)).into_response()
    }
}
