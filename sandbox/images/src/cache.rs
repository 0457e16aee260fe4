//! The build cache: which layer each recipe step produced, keyed by what
//! the step is and what it was built on.
//!
//! ```text
//! CACHE_DIR/
//!   lock                 held (flock) for a whole build, so two processes
//!                        never build the same catalog at once
//!   steps/<key>.json     one StepRecord per layer built
//!   debs/                .deb files kept for debootstrap and apt-get
//!   work/                scratch trees of the build in progress
//! ```
//!
//! A key is `sha256(KEY_VERSION, parent state, step JSON)`, where the parent
//! state is itself a hash over the parent image's manifest digest and every
//! earlier step's output: a changed step, a changed earlier step or a
//! rebuilt parent all change the key. A record is a claim, not proof: the
//! builder checks that the store still holds the blob before using it.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use store::Digest;

/// Bumped when the meaning of a step changes without its JSON changing
/// (e.g. how the builder cleans a debootstrap tree), to rebuild everything.
const KEY_VERSION: &str = "layerlab-images/2";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cannot {what} {}: {source}; check that the cache directory is writable", path.display())]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot hash recipe step: {0}")]
    Serialize(#[from] serde_json::Error),
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError {
    let path = path.to_owned();
    move |source| CacheError::Io { what, path, source }
}

/// What a built layer step left behind, enough to reuse it without
/// rebuilding: the layer's blob and the history entry it needs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StepRecord {
    /// Digest of the compressed layer blob in the store.
    pub digest: Digest,
    /// Digest of the uncompressed tar (`rootfs.diff_ids`).
    pub diff_id: Digest,
    /// Size of the compressed blob, for the manifest.
    pub size: u64,
    /// The layer's media type (its compression).
    pub media_type: String,
    /// When the layer was built (RFC 3339); reused so a cache hit yields
    /// byte-identical configs and therefore the same digests.
    pub created: String,
}

/// The cache directory of one catalog, opened for a build.
#[derive(Debug)]
pub struct Cache {
    root: PathBuf,
    /// The open lock file; the flock lives as long as this handle.
    _lock: File,
}

impl Cache {
    /// Opens `root` (creating it) and waits for the build lock.
    pub fn lock(root: &Path) -> Result<Cache, CacheError> {
        for dir in [
            root.to_owned(),
            root.join("steps"),
            root.join("debs"),
            root.join("work"),
        ] {
            fs::create_dir_all(&dir).map_err(io_err("create", &dir))?;
        }
        let path = root.join("lock");
        let lock = flock(&path).map_err(io_err("lock", &path))?;
        // Holding the lock, anything in work/ was left by a build that died;
        // its mounts died with its private mount namespace.
        let work = root.join("work");
        for entry in fs::read_dir(&work).map_err(io_err("list", &work))? {
            let stale = entry.map_err(io_err("list", &work))?.path();
            tracing::info!(path = %stale.display(), "removing scratch left by an interrupted build");
            fs::remove_dir_all(&stale).map_err(io_err("remove", &stale))?;
        }
        Ok(Cache {
            root: root.to_owned(),
            _lock: lock,
        })
    }

    /// Where downloaded packages are kept between builds.
    pub fn debs(&self) -> PathBuf {
        self.root.join("debs")
    }

    /// A fresh scratch directory for one step, removed when dropped.
    pub fn scratch(&self) -> Result<tempfile::TempDir, CacheError> {
        let work = self.root.join("work");
        tempfile::Builder::new()
            .prefix("step-")
            .tempdir_in(&work)
            .map_err(io_err("create a scratch directory in", &work))
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.root.join("steps").join(format!("{key}.json"))
    }

    /// The record for `key`, if one was written and still parses (a record
    /// that does not parse is treated as absent and rebuilt).
    pub fn get(&self, key: &str) -> Option<StepRecord> {
        let bytes = fs::read(self.record_path(key)).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(key, error = %e, "ignoring unreadable cache record");
                None
            }
        }
    }

    /// Stores `record` under `key`, atomically so a crash never leaves half
    /// a record.
    pub fn put(&self, key: &str, record: &StepRecord) -> Result<(), CacheError> {
        let path = self.record_path(key);
        let dir = self.root.join("steps");
        let mut tmp = tempfile::NamedTempFile::new_in(&dir).map_err(io_err("write to", &dir))?;
        tmp.write_all(&serde_json::to_vec_pretty(record)?)
            .map_err(io_err("write", &path))?;
        tmp.persist(&path).map_err(|e| CacheError::Io {
            what: "write",
            path: path.clone(),
            source: e.error,
        })?;
        Ok(())
    }
}

/// Opens (creating) the lock file `path` and waits for its exclusive
/// flock, which lives as long as the returned handle.
pub(crate) fn flock(path: &Path) -> io::Result<File> {
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    lock.lock()?;
    Ok(lock)
}

/// The cache key of a step applied on `state`. `extra` carries what the
/// step's JSON does not show, such as the hash of a host file's contents.
pub fn step_key(state: &str, step_json: &[u8], extra: &[u8]) -> String {
    let mut h = Sha256::new();
    for part in [KEY_VERSION.as_bytes(), state.as_bytes(), step_json, extra] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

/// The state after a step: the previous state chained with what the step
/// produced (a layer digest, or the JSON of a configuration change).
pub fn chain(state: &str, output: &[u8]) -> String {
    step_key(state, output, b"")
}
