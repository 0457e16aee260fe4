//! The crate's error type. One enum for the crate: its modules fail in the
//! same few ways (a session in the wrong state, a runtime or store failure)
//! and callers branch only on [`ErrorKind`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The outcomes callers map to status codes: the kinds every library
/// reports (`errdefs`), so a runtime's or store's kind passes through as is.
pub use errdefs::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "invalid session id {0:?}: use 1 to 64 characters from a-z, 0-9, '-' and '_', not starting with '-'"
    )]
    InvalidId(String),
    #[error("invalid session spec: {0}")]
    InvalidSpec(String),
    #[error(
        "image {image:?} is not in the store: build the catalog with `layerlab images build` or fix the image name"
    )]
    UnknownImage { image: String },
    #[error("session {0} not found: it was never created or has been destroyed; create a new one")]
    NotFound(String),
    #[error("session {0} already exists: destroy it first or choose another id")]
    AlreadyExists(String),
    #[error("session {id} is {state}: {what} needs a running session; {advice}")]
    WrongState {
        id: String,
        state: &'static str,
        what: &'static str,
        advice: &'static str,
    },
    #[error(
        "command {command:?} in session {id} ran longer than {timeout:?} and was killed: give it a longer timeout or make it finish"
    )]
    Timeout {
        id: String,
        command: String,
        timeout: Duration,
    },
    #[error(
        "setup script of session {id} failed ({status}): fix the script; its output ends with: {output}"
    )]
    SetupFailed {
        id: String,
        status: String,
        output: String,
    },
    #[error("cannot start a terminal in session {id}: {message}")]
    Terminal { id: String, message: String },
    #[error("session record {path}: {message}; remove the file if the session is gone")]
    Record { path: PathBuf, message: String },
    #[error(transparent)]
    Http(HttpError),
    #[error(transparent)]
    Runtime(runtime::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("the lab's docker engine: {0}")]
    Engine(#[from] engine::Error),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidId(_) | Error::InvalidSpec(_) => ErrorKind::InvalidArgument,
            Error::UnknownImage { .. } | Error::NotFound(_) => ErrorKind::NotFound,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::WrongState { .. } | Error::SetupFailed { .. } => ErrorKind::FailedPrecondition,
            Error::Timeout { .. } => ErrorKind::Unavailable,
            Error::Terminal { .. } | Error::Record { .. } | Error::Engine(_) => ErrorKind::Internal,
            Error::Http(HttpError::Invalid(_)) => ErrorKind::InvalidArgument,
            Error::Http(_) => ErrorKind::Unavailable,
            Error::Runtime(e) => e.kind(),
            Error::Store(e) => e.kind(),
        }
    }
}

impl errdefs::Kind for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}

/// Runtime errors about a sandbox id become session errors, so callers see
/// one vocabulary whatever layer noticed.
impl From<runtime::Error> for Error {
    fn from(e: runtime::Error) -> Self {
        match e {
            runtime::Error::InvalidId(id) => Error::InvalidId(id),
            runtime::Error::InvalidSpec(m) => Error::InvalidSpec(m),
            runtime::Error::NotFound(id) => Error::NotFound(id),
            runtime::Error::AlreadyExists(id) => Error::AlreadyExists(id),
            runtime::Error::NotRunning { id, what, .. } => Error::WrongState {
                id,
                state: "exited",
                what,
                advice: "destroy it and create a new one",
            },
            e => Error::Runtime(e),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a request into a node failed; the messages are shown to students.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("cannot resolve {host:?} inside the node: {reason}")]
    Resolve { host: String, reason: String },
    #[error("nothing answered at {addr} inside the node: {source}")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("no complete answer from {host}:{port} within {timeout:?}")]
    Timeout {
        host: String,
        port: u16,
        timeout: Duration,
    },
    #[error("{host}:{port} did not answer with valid HTTP: {reason}")]
    Protocol {
        host: String,
        port: u16,
        reason: String,
    },
}

impl From<HttpError> for Error {
    fn from(e: HttpError) -> Self {
        Error::Http(e)
    }
}
