//! Every error the store returns: the crate error, composed from one enum
//! per module, and the kinds callers map to wire codes.
//!
//! The module errors live here rather than beside their modules so that
//! this module needs nothing of the crate but the digest and reference
//! vocabularies: every module may use [`Result`] and [`IoContext`] without
//! the error type reaching back into it. Each module re-exports its own
//! enum (`store::content::ContentError`).

use std::io;
use std::path::PathBuf;

pub use errdefs::ErrorKind;

use crate::digest::{Digest, DigestError};
use crate::reference::ReferenceError;

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
    Lease(#[from] LeaseError),
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
            Error::Lease(e) => e.kind(),
            Error::Transfer(e) => e.kind(),
            Error::Io { .. } => ErrorKind::Internal,
        }
    }
}

impl errdefs::Kind for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ContentError {
    #[error("blob {0} not found")]
    NotFound(Digest),
    #[error("ingest ref {0:?} not found")]
    IngestNotFound(String),
    #[error("ingest ref {0:?} is being written by another writer; retry when it finishes")]
    RefLocked(String),
    #[error("invalid ingest ref {0:?}: use 1 to 256 printable characters")]
    InvalidRef(String),
    #[error(
        "content digest mismatch: expected {expected}, got {actual}; the data is corrupt or the digest is wrong"
    )]
    DigestMismatch { expected: Digest, actual: Digest },
    #[error("content size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is {size} bytes, more than the {limit} bytes allowed here")]
    TooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
}

impl ContentError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            ContentError::NotFound(_) | ContentError::IngestNotFound(_) => ErrorKind::NotFound,
            ContentError::RefLocked(_) => ErrorKind::Unavailable,
            ContentError::InvalidRef(_)
            | ContentError::DigestMismatch { .. }
            | ContentError::SizeMismatch { .. }
            | ContentError::TooLarge { .. } => ErrorKind::InvalidArgument,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("invalid manifest {digest}: {reason}")]
    Invalid { digest: String, reason: String },
    #[error("invalid image config {digest}: {reason}")]
    InvalidConfig { digest: Digest, reason: String },
    #[error("unsupported media type {0:?}: expected an OCI or Docker schema2 manifest or index")]
    UnsupportedMediaType(String),
    #[error("image {digest} has {layers} layers but its config lists {diff_ids} diff ids")]
    LayerCountMismatch {
        digest: Digest,
        layers: usize,
        diff_ids: usize,
    },
    #[error("index {0} has no manifest for linux/{1}")]
    NoMatchingPlatform(Digest, &'static str),
}

impl ManifestError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            ManifestError::NoMatchingPlatform(..) => ErrorKind::NotFound,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NameError {
    #[error(
        "invalid namespace {0:?}: use lower-case letters, digits, '-', '_' and '.', at most 128 characters"
    )]
    InvalidNamespace(String),
    #[error("no image named {reference} in namespace {namespace}")]
    NotFound {
        namespace: String,
        reference: String,
    },
    #[error("reference {reference} pins digest {pinned} but was asked to name {digest}")]
    DigestConflict {
        reference: String,
        pinned: Digest,
        digest: Digest,
    },
    #[error("names of namespace {namespace} are corrupt ({source}); restore or delete the file")]
    Corrupt {
        namespace: String,
        #[source]
        source: serde_json::Error,
    },
}

impl NameError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            NameError::InvalidNamespace(_) | NameError::DigestConflict { .. } => {
                ErrorKind::InvalidArgument
            }
            NameError::NotFound { .. } => ErrorKind::NotFound,
            NameError::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {0} not found")]
    NotFound(String),
    #[error("active snapshot {0:?} already exists; remove it or pick another key")]
    AlreadyExists(String),
    #[error(
        "invalid snapshot key {0:?}: use lower-case letters, digits, '-', '_' and '.', at most 128 characters"
    )]
    InvalidKey(String),
    #[error("snapshot {0:?} is a view and has no writable layer to commit")]
    ViewNotCommittable(String),
    #[error("snapshot metadata {} is corrupt: {source}", path.display())]
    Corrupt {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl SnapshotError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            SnapshotError::NotFound(_) => ErrorKind::NotFound,
            SnapshotError::AlreadyExists(_) => ErrorKind::AlreadyExists,
            SnapshotError::InvalidKey(_) => ErrorKind::InvalidArgument,
            SnapshotError::ViewNotCommittable(_) => ErrorKind::FailedPrecondition,
            SnapshotError::Corrupt { .. } => ErrorKind::Internal,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    #[error("invalid archive: {0}")]
    Invalid(String),
    #[error("archive refers to {0}, which it does not contain")]
    Missing(String),
    #[error("archive file {name} is larger than {limit} bytes")]
    TooLarge { name: String, limit: u64 },
}

impl TransferError {
    pub(crate) fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidArgument
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("unsafe path {path:?} in layer: {reason}")]
    UnsafePath { path: String, reason: &'static str },
    #[error(
        "layer entry {path:?} would be written through a symlink or outside the layer; refusing it"
    )]
    ThroughSymlink { path: String },
    #[error("hard link {path:?} points to {target:?}, which is outside the layer or not yet in it")]
    HardlinkEscape { path: String, target: String },
    #[error("layer entry {path:?} is {size} bytes, more than the {limit} bytes allowed")]
    EntryTooLarge { path: String, size: u64, limit: u64 },
    #[error("layer expands to more than {limit} bytes; refusing it as a decompression bomb")]
    ExpandedTooLarge { limit: u64 },
    #[error(
        "layer expands {expanded} bytes from {compressed} compressed bytes (over {limit}:1); refusing it as a decompression bomb"
    )]
    RatioTooHigh {
        expanded: u64,
        compressed: u64,
        limit: u64,
    },
    #[error("layer has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("unsupported tar entry type {kind} for {path:?}")]
    UnsupportedEntry { path: String, kind: String },
    #[error("layer is not a valid tar stream: {0}")]
    Corrupt(String),
    #[error("layer diff id mismatch: expected {expected}, got {actual}")]
    DiffIdMismatch { expected: Digest, actual: Digest },
    #[error("no such file or directory: {0}")]
    NoSuchPath(String),
    #[error("{what} {}: {source}", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl ArchiveError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            ArchiveError::Io { .. } => ErrorKind::Internal,
            ArchiveError::NoSuchPath(_) => ErrorKind::NotFound,
            _ => ErrorKind::InvalidArgument,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error(
        "invalid lease id {0:?}: use lower-case letters, digits, '-', '_' and '.', at most 128 characters"
    )]
    InvalidId(String),
    #[error("lease {0} not found")]
    NotFound(String),
    #[error(
        "lease {0:?} is in use by another handle, in this process or another (a second registry on the same store and namespace?); stop that one first"
    )]
    InUse(String),
}

impl LeaseError {
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            LeaseError::InvalidId(_) => ErrorKind::InvalidArgument,
            LeaseError::NotFound(_) => ErrorKind::NotFound,
            LeaseError::InUse(_) => ErrorKind::Unavailable,
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
