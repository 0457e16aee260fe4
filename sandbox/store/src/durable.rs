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

/// Flushes a file that is being appended to while the appending goes on,
/// so the fsync that publishes it finds little left to write: a blob
/// pushed at network speed is mostly on disk by the time its last byte
/// arrives, instead of waiting for the whole file at commit.
///
/// Every [`Writeback::EVERY`] bytes a short-lived thread runs `fdatasync`
/// on a duplicate of the descriptor (`sync_file_range` would start the
/// writeback without a thread, but neither rustix nor nix wraps it and the
/// store keeps to safe code). A duplicate shares the file description, so
/// a write error reported to the background sync is not reported again to
/// the final fsync: [`Writeback::finish`] returns it instead.
#[derive(Debug)]
pub(crate) struct Writeback {
    file: Option<File>,
    since_last: u64,
    in_flight: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl Writeback {
    const EVERY: u64 = 4 << 20;

    /// Without a duplicate descriptor the file is still synced at commit;
    /// only the overlap is lost.
    pub(crate) fn new(file: &File) -> Writeback {
        Writeback {
            file: file.try_clone().ok(),
            since_last: 0,
            in_flight: None,
        }
    }

    /// Notes `n` more bytes appended; starts a background sync when enough
    /// piled up and none is running. Fails with the error of a finished
    /// background sync.
    pub(crate) fn wrote(&mut self, n: usize) -> std::io::Result<()> {
        self.since_last += n as u64;
        if self.since_last < Self::EVERY {
            return Ok(());
        }
        if let Some(running) = &self.in_flight {
            if !running.is_finished() {
                return Ok(());
            }
            self.join()?;
        }
        let Some(file) = self.file.as_ref().and_then(|f| f.try_clone().ok()) else {
            return Ok(());
        };
        self.since_last = 0;
        self.in_flight = std::thread::Builder::new()
            .name("writeback".into())
            .spawn(move || file.sync_data())
            .ok();
        Ok(())
    }

    fn join(&mut self) -> std::io::Result<()> {
        match self.in_flight.take().map(|t| t.join()) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(std::io::Error::other("the background sync thread panicked")),
        }
    }

    /// Waits for the background sync, if one runs, and returns its error.
    pub(crate) fn finish(mut self) -> std::io::Result<()> {
        self.join()
    }
}
