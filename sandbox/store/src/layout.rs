//! The one place that maps store objects to paths. Nothing else in the crate
//! formats a path under the store root, so traversal checks live here: every
//! component that comes from a caller is a [`Digest`] (an algorithm of a
//! closed set and hex only) or an id
//! checked by [`is_safe_id`].
//!
//! ```text
//! <root>/
//! ├── lock                          flock: shared by writers, exclusive by gc
//! ├── tmp/                          staging for files published by rename
//! ├── content/
//! │   ├── blobs/<algorithm>/<hex>   committed blob, mode 0444, never rewritten
//! │   │                             (sha256/ and sha512/)
//! │   └── ingest/<sha256(ref)>/     one write in flight under a ref
//! │       ├── ref                   the ref as the caller gave it
//! │       ├── lock                  flock held by the ref's single writer
//! │       └── data                  bytes received so far (resumable)
//! ├── names/
//! │   ├── <namespace>.json          {reference: {digest, media_type}} for one namespace
//! │   └── <namespace>.lock          flock serialising updates of that file
//! ├── snapshots/
//! │   ├── committed/<chain hex>/    one layer, unpacked once, shared by everyone
//! │   │   ├── fs/                   the layer tree in overlay form (a lowerdir)
//! │   │   └── info.json             parent chain id and diff id
//! │   ├── active/<key>/             a writable snapshot on top of a committed one
//! │   │   ├── fs/                   overlay upperdir
//! │   │   ├── work/                 overlay workdir
//! │   │   └── info.json             parent chain id
//! │   └── tmp/<random>/             unpack in progress, invisible until renamed
//! └── leases/<id>.json              snapshots and blobs a running lab holds
//! ```
//!
//! A change to this tree changes the drawing in the same commit.

use std::path::{Path, PathBuf};

use crate::digest::{Algorithm, Digest};

/// Ids that become a single path component: namespaces, snapshot keys,
/// lease ids. Lower-case letters, digits, `-`, `_` and `.`, starting with a
/// letter or digit, at most 128 bytes.
pub(crate) fn is_safe_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id.as_bytes()[0].is_ascii_alphanumeric()
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    root: PathBuf,
}

impl Layout {
    pub(crate) fn new(root: &Path) -> Layout {
        Layout {
            root: root.to_owned(),
        }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Directories created by `Store::open`.
    pub(crate) fn dirs(&self) -> [PathBuf; 12] {
        [
            self.tmp(),
            self.root.join("content"),
            self.root.join("content/blobs"),
            self.blobs(Algorithm::Sha256),
            self.blobs(Algorithm::Sha512),
            self.ingests(),
            self.names(),
            self.root.join("snapshots"),
            self.committed_snapshots(),
            self.active_snapshots(),
            self.snapshot_tmp(),
            self.leases(),
        ]
    }

    pub(crate) fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }

    pub(crate) fn tmp(&self) -> PathBuf {
        self.root.join("tmp")
    }

    pub(crate) fn blobs(&self, algorithm: Algorithm) -> PathBuf {
        self.root.join("content/blobs").join(algorithm.name())
    }

    pub(crate) fn blob(&self, digest: &Digest) -> PathBuf {
        self.blobs(digest.algorithm()).join(digest.hex())
    }

    pub(crate) fn ingests(&self) -> PathBuf {
        self.root.join("content/ingest")
    }

    /// Refs are free-form strings, so the directory is named by their hash.
    pub(crate) fn ingest(&self, ingest_ref: &str) -> PathBuf {
        self.ingests().join(Digest::of(ingest_ref.as_bytes()).hex())
    }

    pub(crate) fn names(&self) -> PathBuf {
        self.root.join("names")
    }

    /// `namespace` must have passed [`is_safe_id`] (the `Namespace` type guarantees it).
    pub(crate) fn namespace_file(&self, namespace: &str) -> PathBuf {
        debug_assert!(is_safe_id(namespace));
        self.names().join(format!("{namespace}.json"))
    }

    pub(crate) fn namespace_lock(&self, namespace: &str) -> PathBuf {
        debug_assert!(is_safe_id(namespace));
        self.names().join(format!("{namespace}.lock"))
    }

    pub(crate) fn committed_snapshots(&self) -> PathBuf {
        self.root.join("snapshots/committed")
    }

    pub(crate) fn committed(&self, chain_id: &Digest) -> PathBuf {
        self.committed_snapshots().join(chain_id.hex())
    }

    pub(crate) fn active_snapshots(&self) -> PathBuf {
        self.root.join("snapshots/active")
    }

    /// `key` must have passed [`is_safe_id`].
    pub(crate) fn active(&self, key: &str) -> PathBuf {
        debug_assert!(is_safe_id(key));
        self.active_snapshots().join(key)
    }

    pub(crate) fn snapshot_tmp(&self) -> PathBuf {
        self.root.join("snapshots/tmp")
    }

    pub(crate) fn leases(&self) -> PathBuf {
        self.root.join("leases")
    }

    /// `id` must have passed [`is_safe_id`].
    pub(crate) fn lease(&self, id: &str) -> PathBuf {
        debug_assert!(is_safe_id(id));
        self.leases().join(format!("{id}.json"))
    }

    /// The lock a named lease's owner holds; `id` as for [`Layout::lease`].
    pub(crate) fn lease_lock(&self, id: &str) -> PathBuf {
        debug_assert!(is_safe_id(id));
        self.leases().join(format!("{id}.lock"))
    }
}

/// Paths inside one snapshot directory (committed or active).
pub(crate) fn snapshot_fs(dir: &Path) -> PathBuf {
    dir.join("fs")
}

pub(crate) fn snapshot_work(dir: &Path) -> PathBuf {
    dir.join("work")
}

pub(crate) fn snapshot_info(dir: &Path) -> PathBuf {
    dir.join("info.json")
}

pub(crate) fn ingest_data(dir: &Path) -> PathBuf {
    dir.join("data")
}

pub(crate) fn ingest_lock(dir: &Path) -> PathBuf {
    dir.join("lock")
}

pub(crate) fn ingest_ref(dir: &Path) -> PathBuf {
    dir.join("ref")
}
