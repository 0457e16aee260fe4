//! The one place where failures become HTTP responses: JSON
//! `{"error": "…"}` for the API, an HTML page for browsers. Internal
//! failures answer with a generic message; the detail goes to the log.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::db::DbError;
use crate::templates;

#[derive(Debug)]
pub struct AppError {
    pub status: StatusCode,
    /// What the client is told.
    pub message: String,
    /// What only the log sees.
    internal: Option<String>,
}

impl AppError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
            internal: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::NOT_FOUND, message)
    }

    pub fn unauthorized() -> AppError {
        AppError::new(
            StatusCode::UNAUTHORIZED,
            "log in first (session cookie or Authorization: Bearer token)",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> AppError {
        AppError::new(StatusCode::FORBIDDEN, message)
    }

    pub fn internal(detail: impl std::fmt::Display) -> AppError {
        AppError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: "something went wrong on the server; try again, and tell your instructor if it persists".into(),
            internal: Some(detail.to_string()),
        }
    }

    /// Counts the error by kind and logs what only the log may see;
    /// every error response passes here once.
    fn report(&self) {
        crate::metrics::error_response(self.status);
        if let Some(detail) = &self.internal {
            tracing::error!(status = %self.status, error = %detail, "request failed");
        }
    }
}

impl From<DbError> for AppError {
    fn from(err: DbError) -> AppError {
        match err {
            DbError::NameTaken(_) => AppError::new(StatusCode::CONFLICT, err.to_string()),
            DbError::NoSuchUser(_) | DbError::SetupUsed => AppError::not_found(err.to_string()),
            other => AppError::internal(other),
        }
    }
}

impl From<crate::auth::password::HasherError> for AppError {
    fn from(err: crate::auth::password::HasherError) -> AppError {
        use crate::auth::password::HasherError;
        match err {
            HasherError::Busy => AppError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()),
            HasherError::Gone => AppError::internal(err),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(err: tokio::task::JoinError) -> AppError {
        AppError::internal(err)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        self.report();
        (
            self.status,
            axum::Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// An [`AppError`] shown to a browser as a page.
#[derive(Debug)]
pub struct PageError(pub AppError);

impl<E: Into<AppError>> From<E> for PageError {
    fn from(err: E) -> PageError {
        PageError(err.into())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        self.0.report();
        let page = templates::ErrorPage {
            page: templates::PageContext::bare(),
            status: self.0.status.as_u16(),
            reason: self.0.status.canonical_reason().unwrap_or("Error"),
            message: &self.0.message,
        };
        (self.0.status, templates::render(&page)).into_response()
    }
}
