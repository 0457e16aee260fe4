//! Content-addressed blobs, after containerd's content model.
//!
//! A blob's life: a writer is opened under a *ref* (a caller-chosen name for
//! one ingestion; only one writer may hold a ref at a time, and a ref whose
//! writer went away can be resumed). Bytes land in `ingest/`, hashed as they
//! arrive; nothing under `ingest/` is visible to readers. [`Writer::commit`]
//! checks the size and digest (the caller's expectations are checked, never
//! trusted), fsyncs, and renames the file into `blobs/`, where it is reachable
//! only by digest and never changes again. Two writers of the same content
//! under different refs are safe: both renames install identical bytes.
//!
//! The capabilities are split as in containerd: [`Provider`] reads,
//! [`Ingester`] starts writes, [`IngestManager`] lists and aborts writes in
//! flight, [`Manager`] gives info, walk and delete. [`ContentStore`] is the
//! local implementation.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::SystemTime;

use crate::digest::{Algorithm, Digest, Hashing};
use crate::durable::{FileLock, Writeback, sync_dir};
pub use crate::error::ContentError;
use crate::error::{ErrorKind, IoContext, Result};
use crate::layout::{self, Layout};

/// What is known about a committed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    pub digest: Digest,
    pub size: u64,
    /// When the blob was committed (its file's mtime); GC spares young blobs.
    pub committed_at: SystemTime,
}

/// What the caller claims about the bytes it is about to write. Each of
/// `digest` and `size` that is set is checked at commit (the size already
/// while writing).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expected {
    pub digest: Option<Digest>,
    pub size: Option<u64>,
    /// The algorithm the bytes are hashed in as they arrive: that of
    /// `digest` when one is set, else this, else sha256. A commit that
    /// expects another algorithm reads the bytes once more.
    pub algorithm: Option<Algorithm>,
}

impl Expected {
    pub fn digest(digest: Digest) -> Expected {
        Expected {
            digest: Some(digest),
            ..Expected::default()
        }
    }

    pub fn exact(digest: Digest, size: u64) -> Expected {
        Expected {
            digest: Some(digest),
            size: Some(size),
            ..Expected::default()
        }
    }

    /// A write whose digest is named only at commit, hashed in `algorithm`.
    pub fn hashed_in(algorithm: Algorithm) -> Expected {
        Expected {
            algorithm: Some(algorithm),
            ..Expected::default()
        }
    }

    fn hashing_algorithm(&self) -> Algorithm {
        self.digest
            .as_ref()
            .map(Digest::algorithm)
            .or(self.algorithm)
            .unwrap_or(Algorithm::Sha256)
    }
}

/// A write in flight, listed by [`IngestManager::ingests`].
#[derive(Debug, Clone)]
pub struct IngestStatus {
    pub ingest_ref: String,
    pub offset: u64,
}

/// Reads committed blobs by digest.
pub trait Provider {
    /// Opens the blob for reading; the file never changes while open.
    fn open(&self, digest: &Digest) -> Result<File>;

    /// Reads a whole blob, refusing those larger than `limit` bytes (manifests
    /// and configs are read this way, so a hostile size cannot exhaust memory).
    fn read_all(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let file = self.open(digest)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        if size > limit {
            return Err(ContentError::TooLarge {
                digest: digest.clone(),
                size,
                limit,
            }
            .into());
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .ctx("reading blob", digest.to_string())?;
        if bytes.len() as u64 > limit {
            return Err(ContentError::TooLarge {
                digest: digest.clone(),
                size: bytes.len() as u64,
                limit,
            }
            .into());
        }
        Ok(bytes)
    }
}

/// Starts writes.
pub trait Ingester {
    /// Opens (or resumes) the ingestion named `ingest_ref`. Fails with
    /// [`ErrorKind::Unavailable`] while another writer holds the ref.
    fn writer(&self, ingest_ref: &str, expected: Expected) -> Result<Writer>;
}

/// Lists and aborts writes in flight.
pub trait IngestManager {
    fn ingests(&self) -> Result<Vec<IngestStatus>>;
    /// Drops an ingestion that has no live writer.
    fn abort(&self, ingest_ref: &str) -> Result<()>;
}

/// Info, walk and delete for committed blobs.
pub trait Manager {
    fn info(&self, digest: &Digest) -> Result<Info>;
    /// Calls `f` for every committed blob, in digest order.
    fn walk(&self, f: &mut dyn FnMut(Info) -> Result<()>) -> Result<()>;
    fn delete(&self, digest: &Digest) -> Result<()>;
}

/// The local content store under `<root>/content`.
#[derive(Debug, Clone)]
pub struct ContentStore {
    layout: Layout,
}

impl ContentStore {
    pub(crate) fn new(layout: Layout) -> ContentStore {
        ContentStore { layout }
    }

    /// The path of a committed blob, for callers that hand it to another
    /// program; it must only be read.
    pub fn path(&self, digest: &Digest) -> Result<PathBuf> {
        let path = self.layout.blob(digest);
        if path.exists() {
            Ok(path)
        } else {
            Err(ContentError::NotFound(digest.clone()).into())
        }
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.layout.blob(digest).exists()
    }

    /// Writes a whole blob from `reader` under a fresh ref and commits it.
    /// If `expected.digest` is already stored the reader is not consumed.
    pub fn write(&self, reader: impl Read, expected: Expected) -> Result<Info> {
        if let Some(digest) = &expected.digest
            && let Ok(info) = self.info(digest)
        {
            if let Some(size) = expected.size
                && size != info.size
            {
                return Err(ContentError::SizeMismatch {
                    digest: digest.to_string(),
                    expected: size,
                    actual: info.size,
                }
                .into());
            }
            return Ok(info);
        }
        let ingest_ref = crate::durable::unique_name("write");
        let mut writer = self.writer(&ingest_ref, expected)?;
        let result = copy_into(reader, &mut writer).and_then(|()| writer.commit());
        if result.is_err() {
            let _ = self.abort(&ingest_ref);
        }
        result
    }

    pub fn write_bytes(&self, bytes: &[u8]) -> Result<Info> {
        self.write(bytes, Expected::digest(Digest::of(bytes)))
    }
}

fn copy_into(mut reader: impl Read, writer: &mut Writer) -> Result<()> {
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).ctx("reading blob source for ingest", &writer.ingest_ref),
        };
        writer.write_checked(&buf[..n])?;
    }
}

impl Provider for ContentStore {
    fn open(&self, digest: &Digest) -> Result<File> {
        let path = self.layout.blob(digest);
        match File::open(&path) {
            Ok(f) => Ok(f),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()).into())
            }
            Err(e) => Err(e).ctx("opening blob", path),
        }
    }
}

fn check_ref(ingest_ref: &str) -> Result<()> {
    if ingest_ref.is_empty() || ingest_ref.len() > 256 || ingest_ref.chars().any(char::is_control) {
        return Err(ContentError::InvalidRef(ingest_ref.to_owned()).into());
    }
    Ok(())
}

impl Ingester for ContentStore {
    fn writer(&self, ingest_ref: &str, expected: Expected) -> Result<Writer> {
        check_ref(ingest_ref)?;
        let dir = self.layout.ingest(ingest_ref);
        match fs::create_dir(&dir) {
            Ok(()) => {
                fs::write(layout::ingest_ref(&dir), ingest_ref).ctx("writing ingest ref", &dir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).ctx("creating ingest directory", dir),
        }
        let Some(lock) = FileLock::try_exclusive(&layout::ingest_lock(&dir))? else {
            return Err(ContentError::RefLocked(ingest_ref.to_owned()).into());
        };
        let data = layout::ingest_data(&dir);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .append(true)
            .open(&data)
            .ctx("opening ingest data", &data)?;
        let writeback = Writeback::new(&file);
        // Resume: what an earlier writer left is part of the blob, so hash it again.
        let mut resumed = Hashing::new_in(expected.hashing_algorithm(), file);
        let existing = File::open(&data).ctx("re-reading ingest data", &data)?;
        resumed
            .absorb(existing)
            .ctx("re-reading ingest data", &data)?;
        Ok(Writer {
            layout: self.layout.clone(),
            ingest_ref: ingest_ref.to_owned(),
            dir,
            file: resumed,
            writeback,
            expected,
            _lock: lock,
        })
    }
}

impl IngestManager for ContentStore {
    fn ingests(&self) -> Result<Vec<IngestStatus>> {
        let mut out = Vec::new();
        let dir = self.layout.ingests();
        for entry in fs::read_dir(&dir).ctx("listing ingests", &dir)? {
            let path = entry.ctx("listing ingests", &dir)?.path();
            let Ok(ingest_ref) = fs::read_to_string(layout::ingest_ref(&path)) else {
                continue;
            };
            let offset = fs::metadata(layout::ingest_data(&path))
                .map(|m| m.len())
                .unwrap_or(0);
            out.push(IngestStatus { ingest_ref, offset });
        }
        out.sort_by(|a, b| a.ingest_ref.cmp(&b.ingest_ref));
        Ok(out)
    }

    fn abort(&self, ingest_ref: &str) -> Result<()> {
        check_ref(ingest_ref)?;
        let dir = self.layout.ingest(ingest_ref);
        if !dir.exists() {
            return Err(ContentError::IngestNotFound(ingest_ref.to_owned()).into());
        }
        // An abort racing a live writer would pull the file from under it.
        let Some(_lock) = FileLock::try_exclusive(&layout::ingest_lock(&dir))? else {
            return Err(ContentError::RefLocked(ingest_ref.to_owned()).into());
        };
        fs::remove_dir_all(&dir).ctx("removing ingest", dir)
    }
}

impl Manager for ContentStore {
    fn info(&self, digest: &Digest) -> Result<Info> {
        let path = self.layout.blob(digest);
        match fs::symlink_metadata(&path) {
            Ok(m) => Ok(Info {
                digest: digest.clone(),
                size: m.len(),
                committed_at: m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()).into())
            }
            Err(e) => Err(e).ctx("reading blob info", path),
        }
    }

    fn walk(&self, f: &mut dyn FnMut(Info) -> Result<()>) -> Result<()> {
        let mut digests = Vec::new();
        for algorithm in Algorithm::ALL {
            let dir = self.layout.blobs(algorithm);
            for entry in fs::read_dir(&dir).ctx("listing blobs", &dir)? {
                let entry = entry.ctx("listing blobs", &dir)?;
                // Anything that is not a digest-named file was not put there by us; skip it.
                if let Some(d) = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| Digest::new(algorithm, n).ok())
                {
                    digests.push(d);
                }
            }
        }
        digests.sort();
        for d in digests {
            match self.info(&d) {
                Ok(info) => f(info)?,
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn delete(&self, digest: &Digest) -> Result<()> {
        let path = self.layout.blob(digest);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(ContentError::NotFound(digest.clone()).into())
            }
            Err(e) => Err(e).ctx("deleting blob", path),
        }
    }
}

/// One ingestion in flight; holds its ref's lock until dropped or committed.
/// Dropping without commit keeps the bytes so a later writer can resume.
#[derive(Debug)]
pub struct Writer {
    layout: Layout,
    ingest_ref: String,
    dir: PathBuf,
    file: Hashing<File>,
    writeback: Writeback,
    expected: Expected,
    _lock: FileLock,
}

impl Writer {
    /// Bytes written so far, including those of a resumed ingestion.
    pub fn offset(&self) -> u64 {
        self.file.count()
    }

    /// Digest of the bytes written so far, in the algorithm they are
    /// hashed in as they arrive (see [`Expected::algorithm`]).
    pub fn digest(&self) -> Digest {
        self.file.digest()
    }

    /// The digest in `algorithm` of the bytes written so far: the running
    /// hash when it is in that algorithm, else the bytes read once more.
    fn digest_in(&self, algorithm: Algorithm) -> Result<Digest> {
        if algorithm == self.file.algorithm() {
            return Ok(self.file.digest());
        }
        let data = layout::ingest_data(&self.dir);
        let mut hashing = Hashing::new_in(algorithm, io::sink());
        let file = File::open(&data).ctx("re-reading ingest data", &data)?;
        hashing.absorb(file).ctx("re-reading ingest data", &data)?;
        Ok(hashing.digest())
    }

    pub fn ingest_ref(&self) -> &str {
        &self.ingest_ref
    }

    fn write_checked(&mut self, buf: &[u8]) -> Result<()> {
        if let Some(size) = self.expected.size {
            let after = self.file.count() + buf.len() as u64;
            if after > size {
                return Err(ContentError::SizeMismatch {
                    digest: self
                        .expected
                        .digest
                        .as_ref()
                        .map_or_else(|| self.ingest_ref.clone(), ToString::to_string),
                    expected: size,
                    actual: after,
                }
                .into());
            }
        }
        self.file
            .write_all(buf)
            .and_then(|()| self.writeback.wrote(buf.len()))
            .ctx("writing ingest data", &self.dir)
    }

    /// [`Writer::commit`] expecting `digest`, named only now (a registry
    /// upload's final `PUT`).
    pub fn commit_as(mut self, digest: Digest) -> Result<Info> {
        self.expected.digest = Some(digest);
        self.commit()
    }

    /// Checks size and digest, then publishes the blob. On a mismatch the
    /// ingestion is discarded: its bytes can never become the expected blob.
    pub fn commit(self) -> Result<Info> {
        let algorithm = self.expected.hashing_algorithm();
        let actual = self.digest_in(algorithm)?;
        let size = self.file.count();
        let mismatch = match (&self.expected.digest, self.expected.size) {
            (_, Some(expected)) if expected != size => Some(ContentError::SizeMismatch {
                digest: self
                    .expected
                    .digest
                    .as_ref()
                    .map_or_else(|| actual.to_string(), ToString::to_string),
                expected,
                actual: size,
            }),
            (Some(expected), _) if *expected != actual => Some(ContentError::DigestMismatch {
                expected: expected.clone(),
                actual: actual.clone(),
            }),
            _ => None,
        };
        if let Some(err) = mismatch {
            let _ = fs::remove_dir_all(&self.dir);
            return Err(err.into());
        }
        let Writer {
            layout,
            dir,
            file,
            writeback,
            ..
        } = self;
        let (file, _, _) = file.into_inner();
        let data = layout::ingest_data(&dir);
        writeback
            .finish()
            .and_then(|()| file.sync_all())
            .ctx("syncing ingest data", &data)?;
        file.set_permissions(fs::Permissions::from_mode(0o444))
            .ctx("making blob read-only", &data)?;
        let target = layout.blob(&actual);
        // Renaming over an existing blob is safe: same digest, same bytes.
        fs::rename(&data, &target).ctx("committing blob", &target)?;
        sync_dir(&layout.blobs(actual.algorithm()))?;
        let _ = fs::remove_dir_all(&dir);
        tracing::debug!(digest = %actual, size, "blob committed");
        let committed_at = fs::metadata(&target)
            .and_then(|m| m.modified())
            .unwrap_or_else(|_| SystemTime::now());
        Ok(Info {
            digest: actual,
            size,
            committed_at,
        })
    }
}

impl Write for Writer {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_checked(buf)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}
