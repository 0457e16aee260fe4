//! The one place engine errors become HTTP answers: Docker's
//! `{"message": …}` body with the status its kind calls for.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{Error, ErrorKind};

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "page not found")
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

/// Kinds to statuses, as moby's `httpstatus.FromError` does. Before adding
/// a kind, check whether an existing one says it.
fn status(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
        ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> ApiError {
        let kind = e.kind();
        let message = if kind == ErrorKind::Internal {
            tracing::error!(error = %e, "engine request failed");
            "the lab's engine failed; try again, and ask your instructor if it persists".to_owned()
        } else {
            e.to_string()
        };
        ApiError::new(status(kind), message)
    }
}

impl From<runtime::Error> for ApiError {
    fn from(e: runtime::Error) -> ApiError {
        Error::from(e).into()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status == StatusCode::NOT_MODIFIED {
            return self.status.into_response();
        }
        (
            self.status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

pub type ApiResult<T = Response> = std::result::Result<T, ApiError>;
