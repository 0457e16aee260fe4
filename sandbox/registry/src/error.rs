//! The wire errors of the distribution spec, declared once as a table, and
//! the crate error that every handler returns.
//!
//! A response body is always `{"errors":[{"code","message","detail"}]}`.
//! Store failures are translated by kind in [`Error::into_response`];
//! internal ones answer with a generic message and are logged with their
//! detail, so no host path reaches a client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use errdefs::ErrorKind;
use serde::Serialize;

/// The error codes of the OCI distribution spec (plus distribution's
/// `UNKNOWN` for internal failures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// The blob is not in this registry (`BLOB_UNKNOWN`, 404).
    BlobUnknown,
    /// The upload cannot go on (`BLOB_UPLOAD_INVALID`, 400).
    BlobUploadInvalid,
    /// No such upload (`BLOB_UPLOAD_UNKNOWN`, 404).
    BlobUploadUnknown,
    /// A digest is malformed or does not match the bytes (`DIGEST_INVALID`, 400).
    DigestInvalid,
    /// A manifest references a blob or manifest not here (`MANIFEST_BLOB_UNKNOWN`, 400).
    ManifestBlobUnknown,
    /// A manifest does not parse or is too large (`MANIFEST_INVALID`).
    ManifestInvalid,
    /// No such manifest (`MANIFEST_UNKNOWN`, 404).
    ManifestUnknown,
    /// The repository name breaks the spec's pattern (`NAME_INVALID`, 400).
    NameInvalid,
    /// No such repository or endpoint (`NAME_UNKNOWN`, 404).
    NameUnknown,
    /// A length or page size is wrong (`SIZE_INVALID`, 400).
    SizeInvalid,
    /// Credentials are missing or wrong (`UNAUTHORIZED`, 401).
    Unauthorized,
    /// Access is refused (`DENIED`, 403).
    Denied,
    /// The operation is not offered here, e.g. writes to the hub (`UNSUPPORTED`, 405).
    Unsupported,
    /// An upload chunk that does not continue where the upload stands, or
    /// a blob range outside the blob.
    RangeInvalid,
    /// An internal failure (`UNKNOWN`, 500); the detail goes to the log only.
    Unknown,
}

impl Code {
    /// The code string, HTTP status and default message of each code.
    fn row(self) -> (&'static str, StatusCode, &'static str) {
        use Code::*;
        match self {
            BlobUnknown => (
                "BLOB_UNKNOWN",
                StatusCode::NOT_FOUND,
                "blob unknown to registry",
            ),
            BlobUploadInvalid => (
                "BLOB_UPLOAD_INVALID",
                StatusCode::BAD_REQUEST,
                "blob upload invalid",
            ),
            BlobUploadUnknown => (
                "BLOB_UPLOAD_UNKNOWN",
                StatusCode::NOT_FOUND,
                "blob upload unknown to registry",
            ),
            DigestInvalid => (
                "DIGEST_INVALID",
                StatusCode::BAD_REQUEST,
                "provided digest did not match uploaded content",
            ),
            ManifestBlobUnknown => (
                "MANIFEST_BLOB_UNKNOWN",
                StatusCode::BAD_REQUEST,
                "manifest references a manifest or blob unknown to registry",
            ),
            ManifestInvalid => (
                "MANIFEST_INVALID",
                StatusCode::BAD_REQUEST,
                "manifest invalid",
            ),
            ManifestUnknown => (
                "MANIFEST_UNKNOWN",
                StatusCode::NOT_FOUND,
                "manifest unknown to registry",
            ),
            NameInvalid => (
                "NAME_INVALID",
                StatusCode::BAD_REQUEST,
                "invalid repository name",
            ),
            NameUnknown => (
                "NAME_UNKNOWN",
                StatusCode::NOT_FOUND,
                "repository name not known to registry",
            ),
            SizeInvalid => (
                "SIZE_INVALID",
                StatusCode::BAD_REQUEST,
                "provided length did not match content length",
            ),
            Unauthorized => (
                "UNAUTHORIZED",
                StatusCode::UNAUTHORIZED,
                "authentication required",
            ),
            Denied => (
                "DENIED",
                StatusCode::FORBIDDEN,
                "requested access to the resource is denied",
            ),
            Unsupported => (
                "UNSUPPORTED",
                StatusCode::METHOD_NOT_ALLOWED,
                "the operation is unsupported",
            ),
            RangeInvalid => (
                "BLOB_UPLOAD_INVALID",
                StatusCode::RANGE_NOT_SATISFIABLE,
                "requested range is not satisfiable",
            ),
            Unknown => (
                "UNKNOWN",
                StatusCode::INTERNAL_SERVER_ERROR,
                "unknown error; see the registry's log",
            ),
        }
    }

    /// The code string of the spec, e.g. `BLOB_UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The HTTP status it answers with.
    pub fn status(self) -> StatusCode {
        self.row().1
    }

    /// The generic message of the error body.
    pub fn message(self) -> &'static str {
        self.row().2
    }
}

/// Every error a registry handler or constructor returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A protocol error with its spec code and a detail for the client.
    #[error("{}: {detail}", code.message())]
    Protocol {
        /// The spec's code.
        code: Code,
        /// What exactly was wrong, for the client.
        detail: String,
    },
    /// The body was too large for what it carries (manifests).
    #[error("manifest is {size} bytes or more, more than the {limit} bytes allowed")]
    TooLarge {
        /// Bytes received (or declared) so far.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
    /// A store failure, answered by its kind.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// The registry cannot be opened as configured; says what to change.
    #[error("{0}")]
    Config(String),
    /// The hub's upstream failed or sent something it should not have.
    #[error("{0}")]
    Upstream(String),
    /// The htpasswd file cannot be read.
    #[error("cannot read htpasswd file {path}: {source}; check the path and its permissions")]
    HtpasswdRead {
        /// The file.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A line of the htpasswd file is not a bcrypt entry.
    #[error("htpasswd line {line} is not `user:bcrypt-hash`; create entries with `htpasswd -B`")]
    HtpasswdFormat {
        /// 1-based line number.
        line: usize,
    },
    /// Writing an upload's bytes to the store failed.
    #[error("cannot write upload data: {0}")]
    Ingest(#[source] std::io::Error),
    /// A blocking task panicked or was cancelled.
    #[error("background task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The client's body broke off or could not be read.
    #[error("cannot read the request body: {0}")]
    Body(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn protocol(code: Code, detail: impl Into<String>) -> Error {
        Error::Protocol {
            code,
            detail: detail.into(),
        }
    }

    /// The wire code this error answers with.
    pub fn code(&self) -> Code {
        match self {
            Error::Protocol { code, .. } => *code,
            Error::TooLarge { .. } => Code::ManifestInvalid,
            Error::Store(e) => match e.kind() {
                ErrorKind::NotFound => Code::BlobUnknown,
                ErrorKind::InvalidArgument => Code::DigestInvalid,
                ErrorKind::Unavailable => Code::BlobUploadInvalid,
                _ => Code::Unknown,
            },
            Error::Body(_) => Code::BlobUploadInvalid,
            Error::HtpasswdRead { .. }
            | Error::HtpasswdFormat { .. }
            | Error::Config(_)
            | Error::Upstream(_)
            | Error::Task(_)
            | Error::Ingest(_) => Code::Unknown,
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    errors: [Entry<'a>; 1],
}

#[derive(Serialize)]
struct Entry<'a> {
    code: &'a str,
    message: &'a str,
    detail: String,
}

/// The spec's error body for `code` with `detail`.
pub(crate) fn error_response(code: Code, detail: String) -> Response {
    let body = Body {
        errors: [Entry {
            code: code.as_str(),
            message: code.message(),
            detail,
        }],
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = (code.status(), bytes).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let code = self.code();
        let status = match &self {
            Error::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Upstream(_) => StatusCode::BAD_GATEWAY,
            _ => code.status(),
        };
        let detail = if code == Code::Unknown && !matches!(self, Error::Upstream(_)) {
            tracing::error!(error = %self, "registry request failed");
            String::new()
        } else {
            tracing::debug!(error = %self, "registry request refused");
            match &self {
                Error::Protocol { detail, .. } => detail.clone(),
                other => other.to_string(),
            }
        };
        let mut response = error_response(code, detail);
        *response.status_mut() = status;
        response
    }
}
