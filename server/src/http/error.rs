//! The one place where failures become HTTP responses: JSON
//! `{"error": "…"}` for the API, an HTML page for browsers. Internal
//! failures answer with a generic message; the detail goes to the log.
//! A library error says what kind of failure it is ([`ErrorKind`]), and
//! [`status_for`] alone turns a kind into a status.

use std::fmt::Display;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use errdefs::{ErrorKind, Kind};

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

    /// A library error answered by its kind: its message when the kind
    /// tells the client something it can act on, the generic one for an
    /// internal failure. Failures on the server's side (5xx) are logged.
    pub fn of_kind(err: &(impl Kind + Display)) -> AppError {
        let kind = err.kind();
        if kind == ErrorKind::Internal {
            return AppError::internal(err);
        }
        let status = status_for(kind);
        AppError {
            status,
            message: err.to_string(),
            internal: status.is_server_error().then(|| err.to_string()),
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

/// The HTTP status of each kind of failure.
///
/// A resource the host has run out of (user-namespace ranges for nodes)
/// is a 503, as when every lab slot is taken: the server cannot serve
/// anyone until something is freed, which neither 429 (this client asks
/// too often) nor 507 (storage) says.
pub fn status_for(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists | ErrorKind::FailedPrecondition => StatusCode::CONFLICT,
        ErrorKind::InvalidArgument => StatusCode::BAD_REQUEST,
        ErrorKind::Unavailable | ErrorKind::ResourceExhausted => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<host::Error> for AppError {
    fn from(err: host::Error) -> AppError {
        AppError::of_kind(&err)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_errors_answer_by_their_kind() {
        let gone = AppError::from(host::Error::NotFound("lab-1".into()));
        assert_eq!(gone.status, StatusCode::NOT_FOUND);
        assert!(gone.message.contains("lab-1 not found"), "{}", gone.message);

        let full = AppError::from(host::Error::Runtime(runtime::Error::PoolExhausted {
            count: 4,
        }));
        assert_eq!(full.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(full.message.contains("no free user-namespace range"));

        let broken = AppError::from(host::Error::Record {
            path: "/var/lib/layerlab/sessions/lab-1.json".into(),
            message: "not JSON".into(),
        });
        assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!broken.message.contains("/var/lib"), "{}", broken.message);
    }
}
