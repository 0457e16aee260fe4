//! Making writes survive a crash: publish by rename after fsync, fsync the
//! directory that gained the name, and advisory locks between writers.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{FlockOperation, flock};

use crate::error::{IoContext, Result};

/// A name no other thread or process of this host will pick: pid, a
/// process-wide counter and the clock.
pub(crate) fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .ctx("syncing directory", dir)
}

/// Writes `bytes` to `dest` so that a reader (or a crash) sees either the old
/// file or the whole new one. `tmp_dir` must be on the same filesystem.
pub(crate) fn write_atomic(tmp_dir: &Path, dest: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = tmp_dir.join(unique_name("write"));
    let result = (|| {
        let mut f = File::create(&tmp).ctx("creating", &tmp)?;
        f.write_all(bytes).ctx("writing", &tmp)?;
        f.sync_all().ctx("syncing", &tmp)?;
        std::fs::rename(&tmp, dest).ctx("renaming into place", dest)?;
        if let Some(parent) = dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// An flock on a lock file, released on drop. Each lock opens its own file
/// description, so locks taken by two threads of one process contend like
/// locks of two processes.
#[derive(Debug)]
pub(crate) struct FileLock {
    _file: File,
}

impl FileLock {
    fn open(path: &Path) -> Result<File> {
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .ctx("opening lock file", path)
    }

    pub(crate) fn shared(path: &Path) -> Result<FileLock> {
        let file = Self::open(path)?;
        flock(&file, FlockOperation::LockShared).ctx("locking (shared)", path)?;
        Ok(FileLock { _file: file })
    }

    pub(crate) fn exclusive(path: &Path) -> Result<FileLock> {
        let file = Self::open(path)?;
        flock(&file, FlockOperation::LockExclusive).ctx("locking", path)?;
        Ok(FileLock { _file: file })
    }

    /// `Ok(None)` when another holder has it.
    pub(crate) fn try_exclusive(path: &Path) -> Result<Option<FileLock>> {
        let file = Self::open(path)?;
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(Some(FileLock { _file: file })),
            Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
            Err(e) => Err(e).ctx("locking", path),
        }
    }
}
