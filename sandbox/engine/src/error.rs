//! The engine's errors. Each has a [`ErrorKind`]; `api::error` alone turns
//! kinds into HTTP statuses, so the core never thinks in status codes.

/// What kind of failure, in the store's shared vocabulary plus Docker's
/// two of its own (a name conflict, and "nothing to do").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    InvalidArgument,
    /// Docker's 409: the name is taken, the image is in use, …
    Conflict,
    /// Docker's 304 with no body.
    NotModified,
    /// The engine itself failed (disk, store corruption); the detail is
    /// logged, the client gets a generic message.
    Internal,
    /// A feature Docker has and this engine does not serve (yet).
    NotImplemented,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("lab {0} has no running engine")]
    NoEngine(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("Could not find the file {0} in container")]
    NoSuchPath(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error("nothing to do")]
    NotModified,
    #[error("the lab's runtime: {0}")]
    Runtime(#[from] runtime::Error),
    #[error("invalid reference format: {0}")]
    InvalidReference(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotImplemented(String),
    #[error(
        "pull access denied for {0}, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
    )]
    PullDenied(String),
    #[error("manifest for {0} not found: manifest unknown: manifest unknown")]
    ManifestUnknown(String),
    #[error("image store: {0}")]
    Store(#[from] store::Error),
    #[error("engine state at {path}: {source}")]
    State {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("a blocking task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::NoEngine(_)
            | Error::NoSuchImage(_)
            | Error::NoSuchContainer(_)
            | Error::NoSuchExec(_)
            | Error::NoSuchPath(_)
            | Error::NoSuchVolume(_)
            | Error::NoSuchNetwork(_)
            | Error::PullDenied(_)
            | Error::ManifestUnknown(_) => ErrorKind::NotFound,
            Error::NotModified => ErrorKind::NotModified,
            Error::Runtime(e) => match e.kind() {
                runtime::ErrorKind::NotFound => ErrorKind::NotFound,
                runtime::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                runtime::ErrorKind::FailedPrecondition => ErrorKind::Conflict,
                _ => ErrorKind::Internal,
            },
            Error::InvalidReference(_) | Error::InvalidArgument(_) => ErrorKind::InvalidArgument,
            Error::Conflict(_) => ErrorKind::Conflict,
            Error::NotImplemented(_) => ErrorKind::NotImplemented,
            Error::Store(e) => match e.kind() {
                store::ErrorKind::NotFound => ErrorKind::NotFound,
                store::ErrorKind::InvalidArgument => ErrorKind::InvalidArgument,
                _ => ErrorKind::Internal,
            },
            Error::State { .. } | Error::Join(_) => ErrorKind::Internal,
        }
    }

    pub(crate) fn state(
        path: impl Into<std::path::PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::State { path, source }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
