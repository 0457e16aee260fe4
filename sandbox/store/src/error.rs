//! The crate error: one enum composed from each module's own error, and the
//! small set of kinds that callers map to wire codes (containerd's errdefs).

use std::io;
use std::path::PathBuf;

use crate::archive::ArchiveError;
use crate::content::ContentError;
use crate::digest::DigestError;
use crate::manifests::ManifestError;
use crate::names::NameError;
use crate::reference::ReferenceError;
use crate::snapshots::SnapshotError;
use crate::transfer::TransferError;

/// What kind of failure an [`Error`] is; the engine, registry and server
/// each translate kinds to their status codes in one place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The blob, name, snapshot or lease does not exist.
    NotFound,
    /// The object exists and the operation would replace it.
    AlreadyExists,
    /// The input (reference, digest, tar stream, manifest, archive) is malformed or hostile.
    InvalidArgument,
    /// The store is in a state that forbids the operation (e.g. deleting something in use).
    FailedPrecondition,
    /// The object is busy (a ref held by another writer); retrying later may work.
    Unavailable,
    /// Anything else: I/O failures of the host, bugs.
    Internal,
}

/// Every error the store returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Digest(#[from] DigestError),
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error(transparent)]
    Content(#[from] ContentError),
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error(transparent)]
    Name(#[from] NameError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    #[error(transparent)]
    Transfer(#[from] TransferError),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Digest(_) | Error::Reference(_) => ErrorKind::InvalidArgument,
            Error::Content(e) => e.kind(),
            Error::Manifest(e) => e.kind(),
            Error::Name(e) => e.kind(),
            Error::Archive(e) => e.kind(),
            Error::Snapshot(e) => e.kind(),
            Error::Transfer(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Internal,
        }
    }
}

/// Attaches the path and the step to an I/O error, so a message names what failed.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            what,
            path: path.into(),
            source,
        })
    }
}

impl<T> IoContext<T> for rustix::io::Result<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::Io {
            what,
            path: path.into(),
            source: e.into(),
        })
    }
}
