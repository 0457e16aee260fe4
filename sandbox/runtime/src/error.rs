//! The crate's error type, reporting the kinds of failure (`errdefs`) that
//! callers map to status codes.
//!
//! One enum for the whole crate rather than one per module: every module
//! here fails the same way — a kernel or file operation (what, path,
//! source) — and callers branch only on [`ErrorKind`]; per-module enums
//! would be the same three variants copied eight times. Failures inside the
//! helper processes cross the process boundary as text and come back as
//! [`Error::Helper`].

use std::io;
use std::path::PathBuf;

pub use errdefs::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid sandbox id {0:?}: use 1 to 64 characters from a-z, 0-9, '-' and '_'")]
    InvalidId(String),
    #[error("invalid sandbox spec: {0}")]
    InvalidSpec(String),
    #[error("sandbox {0} not found")]
    NotFound(String),
    #[error("sandbox {0} already exists")]
    AlreadyExists(String),
    #[error("sandbox {0} is running: its writable layer can change only while it is stopped")]
    Running(String),

    #[error("sandbox {id} is {status}: {what} needs a running sandbox")]
    NotRunning {
        id: String,
        status: String,
        what: &'static str,
    },
    #[error(
        "no free user-namespace range left in the pool of {count}: stop sandboxes or enlarge the pool"
    )]
    PoolExhausted { count: u32 },
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what}: {source}")]
    Sys {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("corrupt state file {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("sandbox helper {helper} failed for {id}: {message}")]
    Helper {
        helper: PathBuf,
        id: String,
        message: String,
    },
    /// The init command of an attached sandbox is not in its image.
    #[error("{0}")]
    CommandNotFound(String),
    #[error("command timed out after {0:?} and was killed")]
    Timeout(std::time::Duration),
    #[error("cannot connect to {addr} inside sandbox {id}: {source}")]
    Connect {
        id: String,
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot listen on {addr} inside sandbox {id}: {source}")]
    Listen {
        id: String,
        addr: std::net::SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{failure}; cleaning up afterwards also failed: {cleanup}")]
    WithCleanup {
        failure: Box<Error>,
        cleanup: Box<Error>,
    },
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::InvalidId(_) | Error::InvalidSpec(_) => ErrorKind::InvalidArgument,
            Error::NotFound(_) => ErrorKind::NotFound,
            Error::Running(_) => ErrorKind::FailedPrecondition,
            Error::AlreadyExists(_) => ErrorKind::AlreadyExists,
            Error::NotRunning { .. } => ErrorKind::FailedPrecondition,
            Error::Listen { .. } => ErrorKind::AlreadyExists,
            Error::PoolExhausted { .. } => ErrorKind::ResourceExhausted,
            Error::Timeout(_) | Error::Connect { .. } => ErrorKind::Unavailable,
            Error::WithCleanup { failure, .. } => failure.kind(),
            Error::CommandNotFound(_) => ErrorKind::InvalidArgument,
            Error::Io { .. } | Error::Sys { .. } | Error::State { .. } | Error::Helper { .. } => {
                ErrorKind::Internal
            }
        }
    }

    pub(crate) fn io(
        what: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { what, path, source }
    }

    pub(crate) fn sys(what: &'static str) -> impl FnOnce(io::Error) -> Error {
        move |source| Error::Sys { what, source }
    }
}

impl errdefs::Kind for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
