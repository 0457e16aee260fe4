//! tar stream → directory.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::rc::Rc;

use rustix::fs::{
    AtFlags, FileType, Gid, Mode, OFlags, Timespec, Timestamps, Uid, XattrFlags, chmodat, chownat,
    fchmod, fchown, fsetxattr, futimens, linkat, lsetxattr, makedev, mkdirat, mknodat, openat,
    openat2, symlinkat, utimensat,
};
use rustix::io::Errno;
use std::os::unix::ffi::OsStrExt;
use tar::EntryType;

use super::beneath::{
    Beneath, DIR_FLAGS, RESOLVE, RelPath, clear_dir_except, file_type_at, remove_all_at,
};
use super::compression::{Limits, Violation, decompress_pipelined};
use super::{
    ArchiveError, Compression, NOBODY, OPAQUE_WHITEOUT, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX,
};
use crate::digest::Digest;

/// What to do with whiteout entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutMode {
    /// Store them in overlay form (0:0 char devices, opaque xattr): the
    /// target is a fresh directory that becomes an overlay lowerdir.
    Overlay,
    /// Delete what they name: the target is a tree the layer is applied on
    /// (flattening an image into one rootfs).
    Apply,
}

/// What an unpack saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackSummary {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    pub compression: Compression,
    pub entries: u64,
}

/// Unpacks the layer stream `raw` (gzip, zstd or plain tar, detected by
/// magic bytes) into the existing directory `target`. Owners, modes, mtimes,
/// xattrs, devices, hard links and symlinks are kept as the tar says (uids
/// are not shifted). Never writes outside `target`. Does not sync: a
/// caller that publishes the tree (as snapshots do) syncs it first.
pub fn unpack(
    raw: impl Read + Send,
    target: &Path,
    mode: WhiteoutMode,
    limits: Limits,
) -> crate::Result<UnpackSummary> {
    let root = Beneath::open(target)?;
    unpack_beneath(raw, root, mode, limits, None)
}

/// [`unpack`] into the directory open as `target` (`shown` in messages),
/// with owners shifted into the user namespace whose first host id is
/// `id_base` (ids past its 65536 become its `nobody`): files copied into a
/// container's root from outside.
pub fn unpack_into(
    raw: impl Read + Send,
    target: BorrowedFd<'_>,
    shown: &Path,
    mode: WhiteoutMode,
    limits: Limits,
    id_base: Option<u32>,
) -> crate::Result<UnpackSummary> {
    let root = Beneath::from_fd(target, shown)?;
    unpack_beneath(raw, root, mode, limits, id_base)
}

fn unpack_beneath(
    raw: impl Read + Send,
    root: Beneath,
    mode: WhiteoutMode,
    limits: Limits,
    id_base: Option<u32>,
) -> crate::Result<UnpackSummary> {
    std::thread::scope(|scope| {
        let (mut stream, compression, decoder) = decompress_pipelined(scope, raw, limits)
            .map_err(|e| ArchiveError::Corrupt(format!("reading compressed stream: {e}")))?;
        let violation = stream.violation();
        let limit_error = || {
            violation.get().map(|v| match v {
                Violation::Expanded(_) => ArchiveError::ExpandedTooLarge {
                    limit: limits.max_expanded,
                },
                Violation::Ratio {
                    expanded,
                    compressed,
                } => ArchiveError::RatioTooHigh {
                    expanded,
                    compressed,
                    limit: limits.max_ratio,
                },
            })
        };
        let corrupt = |e: io::Error| limit_error().unwrap_or(ArchiveError::Corrupt(e.to_string()));
        let mut state = State {
            root,
            id_base,
            mode,
            limits,
            dir_times: Vec::new(),
            written: HashSet::new(),
            buf: vec![0; 1 << 20],
            cached_parent: None,
        };
        let read = (|| -> crate::Result<u64> {
            let mut entries = 0u64;
            let mut archive = tar::Archive::new(&mut stream);
            for entry in archive.entries().map_err(corrupt)? {
                let mut entry = entry.map_err(corrupt)?;
                entries += 1;
                if entries > limits.max_entries {
                    return Err(ArchiveError::TooManyEntries {
                        limit: limits.max_entries,
                    }
                    .into());
                }
                state
                    .entry(&mut entry)
                    .map_err(|e| limit_error().unwrap_or(e))?;
            }
            // The diff id covers the whole stream, trailing blocks included.
            io::copy(&mut stream, &mut io::sink()).map_err(corrupt)?;
            Ok(entries)
        })();
        // Joined on every path, errors included: the scope alone waits only
        // for the decoder's closure, and its thread would still be exiting
        // (running thread-local destructors) after this function returned.
        // Dropping the stream first stops a decoder blocked on a full channel.
        drop(stream);
        let decoded = decoder.join();
        let entries = read?;
        let (diff_id, tar_size) = decoded.ok().flatten().ok_or_else(|| {
            ArchiveError::Corrupt("layer decoder stopped before the end of the stream".into())
        })?;
        state.finish()?;
        Ok(UnpackSummary {
            diff_id,
            tar_size,
            compression,
            entries,
        })
    })
}

struct State {
    root: Beneath,
    id_base: Option<u32>,
    mode: WhiteoutMode,
    limits: Limits,
    /// Directory mtimes are set last: creating children changes them.
    dir_times: Vec<(RelPath, u64)>,
    /// Paths this layer wrote, which an opaque marker later in the same
    /// layer must not delete (Apply mode).
    written: HashSet<RelPath>,
    buf: Vec<u8>,
    /// The last parent directory opened: layers list a directory's files
    /// together, so most entries reuse it instead of resolving the path
    /// again. Dropped whenever anything is removed, so it can never point
    /// into a directory that a later entry replaced.
    cached_parent: Option<(RelPath, Rc<OwnedFd>)>,
}

struct Meta {
    uid: u32,
    gid: u32,
    mode: u32,
    mtime: u64,
    xattrs: Vec<(String, Vec<u8>)>,
}

fn io_at(
    what: &'static str,
    root: &Beneath,
    rel: &RelPath,
    e: impl Into<io::Error>,
) -> ArchiveError {
    ArchiveError::Io {
        what,
        path: root.path_of(rel),
        source: e.into(),
    }
}

impl State {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), ArchiveError> {
        let path = RelPath::parse(&entry.path_bytes())?;
        let xattrs = xattrs_of(entry)?;
        let header = entry.header();
        let kind = header.entry_type();
        let device = (
            header.device_major().ok().flatten().unwrap_or(0),
            header.device_minor().ok().flatten().unwrap_or(0),
        );
        let owner = |id: u64| match self.id_base {
            None => id as u32,
            Some(base) => base + id.min(u64::from(NOBODY)) as u32,
        };
        let meta = Meta {
            uid: owner(
                header
                    .uid()
                    .map_err(|e| ArchiveError::Corrupt(e.to_string()))?,
            ),
            gid: owner(
                header
                    .gid()
                    .map_err(|e| ArchiveError::Corrupt(e.to_string()))?,
            ),
            mode: header
                .mode()
                .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
                & 0o7777,
            mtime: header.mtime().unwrap_or(0),
            xattrs,
        };
        if path.is_root() {
            if kind == EntryType::Directory {
                self.apply_meta(self.root.root(), &path, &meta, true)?;
                self.dir_times.push((path, meta.mtime));
            }
            return Ok(());
        }
        let name = path.file_name().unwrap_or_default().to_owned();
        let parent_rel = path.parent();

        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(&parent_rel, &name, hidden);
        }

        let parent = self.parent_dir(&parent_rel)?;
        let parent = parent.as_fd();
        if self.mode == WhiteoutMode::Apply {
            self.written.insert(path.clone());
        }

        match kind {
            EntryType::Directory => {
                match mkdirat(parent, name.as_str(), Mode::from_raw_mode(0o700)) {
                    Ok(()) => {}
                    // An existing directory is kept (and gets this entry's metadata).
                    Err(Errno::EXIST)
                        if file_type_at(parent, &name).ok().flatten()
                            == Some(FileType::Directory) => {}
                    Err(Errno::EXIST) => {
                        self.remove(parent, &name, &path)?;
                        mkdirat(parent, name.as_str(), Mode::from_raw_mode(0o700))
                            .map_err(|e| io_at("creating directory", &self.root, &path, e))?;
                    }
                    Err(e) => return Err(io_at("creating directory", &self.root, &path, e)),
                }
                let dir = openat2(parent, name.as_str(), DIR_FLAGS, Mode::empty(), RESOLVE)
                    .map_err(|_| ArchiveError::ThroughSymlink {
                        path: path.display(),
                    })?;
                self.apply_meta(dir.as_fd(), &path, &meta, true)?;
                self.dir_times.push((path.clone(), meta.mtime));
            }
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let size = entry.size();
                if size > self.limits.max_entry_size {
                    return Err(ArchiveError::EntryTooLarge {
                        path: path.display(),
                        size,
                        limit: self.limits.max_entry_size,
                    });
                }
                let fd = self.create(parent, &name, &path, "creating file", || {
                    openat(
                        parent,
                        name.as_str(),
                        OFlags::WRONLY
                            | OFlags::CREATE
                            | OFlags::EXCL
                            | OFlags::NOFOLLOW
                            | OFlags::CLOEXEC,
                        Mode::from_raw_mode(0o600),
                    )
                })?;
                let mut file = File::from(fd);
                self.copy_data(entry, &mut file, &path)?;
                self.apply_meta(file.as_fd(), &path, &meta, false)?;
            }
            EntryType::Symlink => {
                let target = entry.link_name_bytes().ok_or_else(|| {
                    ArchiveError::Corrupt(format!("symlink {} has no target", path.display()))
                })?;
                // The target is stored verbatim: it is only ever resolved
                // inside the container's root, never by the store.
                if target.is_empty() {
                    return Err(ArchiveError::Corrupt(format!(
                        "symlink {} has an empty target",
                        path.display()
                    )));
                }
                let target = std::ffi::OsStr::from_bytes(&target);
                self.create(parent, &name, &path, "creating symlink", || {
                    symlinkat(target, parent, name.as_str())
                })?;
                self.apply_meta_at(parent, &name, &path, &meta, true)?;
            }
            EntryType::Link => {
                let raw = entry.link_name_bytes().ok_or_else(|| {
                    ArchiveError::Corrupt(format!("hard link {} has no target", path.display()))
                })?;
                let escape = || ArchiveError::HardlinkEscape {
                    path: path.display(),
                    target: String::from_utf8_lossy(&raw).into_owned(),
                };
                let target = RelPath::parse(&raw).map_err(|_| escape())?;
                if target == path {
                    return Err(escape());
                }
                let tname = target.file_name().ok_or_else(escape)?.to_owned();
                let tdir = self
                    .root
                    .dir(&target.parent(), false)
                    .map_err(|_| escape())?
                    .ok_or_else(escape)?;
                match file_type_at(tdir.as_fd(), &tname) {
                    Ok(Some(t)) if t != FileType::Directory => {}
                    _ => return Err(escape()),
                }
                self.create(parent, &name, &path, "creating hard link", || {
                    linkat(
                        tdir.as_fd(),
                        tname.as_str(),
                        parent,
                        name.as_str(),
                        AtFlags::empty(),
                    )
                })?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ftype = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                self.create(parent, &name, &path, "creating device node", || {
                    mknodat(
                        parent,
                        name.as_str(),
                        ftype,
                        Mode::from_raw_mode(0o600),
                        makedev(device.0, device.1),
                    )
                })?;
                self.apply_meta_at(parent, &name, &path, &meta, false)?;
            }
            other => {
                return Err(ArchiveError::UnsupportedEntry {
                    path: path.display(),
                    kind: format!("{other:?}"),
                });
            }
        }
        Ok(())
    }

    fn parent_dir(&mut self, rel: &RelPath) -> Result<Rc<OwnedFd>, ArchiveError> {
        if let Some((cached, fd)) = &self.cached_parent
            && cached == rel
        {
            return Ok(fd.clone());
        }
        let fd =
            Rc::new(
                self.root
                    .dir(rel, true)?
                    .ok_or_else(|| ArchiveError::ThroughSymlink {
                        path: rel.display(),
                    })?,
            );
        self.cached_parent = Some((rel.clone(), fd.clone()));
        Ok(fd)
    }

    /// Removes `name` (and anything below it) from `parent`.
    fn remove(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &str,
        path: &RelPath,
    ) -> Result<(), ArchiveError> {
        self.cached_parent = None;
        remove_all_at(parent, name).map_err(|e| io_at("replacing", &self.root, path, e))
    }

    /// Runs `make`, which creates `name` in `parent`; if the name is taken
    /// (a later tar entry replaces an earlier one), removes it and retries.
    fn create<T>(
        &mut self,
        parent: BorrowedFd<'_>,
        name: &str,
        path: &RelPath,
        what: &'static str,
        make: impl Fn() -> rustix::io::Result<T>,
    ) -> Result<T, ArchiveError> {
        match make() {
            Err(Errno::EXIST) => {
                self.remove(parent, name, path)?;
                make().map_err(|e| io_at(what, &self.root, path, e))
            }
            r => r.map_err(|e| io_at(what, &self.root, path, e)),
        }
    }

    fn whiteout(
        &mut self,
        parent_rel: &RelPath,
        name: &str,
        hidden: &str,
    ) -> Result<(), ArchiveError> {
        let parent = self.parent_dir(parent_rel)?;
        let parent = parent.as_fd();
        let path = parent_rel.join(name);
        if name == OPAQUE_WHITEOUT {
            match self.mode {
                WhiteoutMode::Overlay => {
                    fsetxattr(parent, OVERLAY_OPAQUE_XATTR, b"y", XattrFlags::empty())
                        .map_err(|e| io_at("marking opaque", &self.root, parent_rel, e))?;
                }
                WhiteoutMode::Apply => {
                    self.cached_parent = None;
                    let written = &self.written;
                    clear_dir_except(parent, &|n| written.contains(&parent_rel.join(n))).map_err(
                        |e| io_at("clearing opaque directory", &self.root, parent_rel, e),
                    )?;
                }
            }
            return Ok(());
        }
        if hidden.starts_with(WHITEOUT_PREFIX) {
            // Other `.wh..wh.` names are aufs bookkeeping (hard link dirs), not files.
            tracing::debug!(path = %path.display(), "skipping aufs metadata entry");
            return Ok(());
        }
        if hidden.is_empty() || hidden == "." || hidden == ".." {
            return Err(ArchiveError::UnsafePath {
                path: path.display(),
                reason: "whiteout names nothing",
            });
        }
        self.remove(parent, hidden, &path)?;
        if self.mode == WhiteoutMode::Overlay {
            mknodat(
                parent,
                hidden,
                FileType::CharacterDevice,
                Mode::empty(),
                makedev(0, 0),
            )
            .map_err(|e| io_at("creating whiteout", &self.root, &path, e))?;
        }
        Ok(())
    }

    fn copy_data<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        file: &mut File,
        path: &RelPath,
    ) -> Result<(), ArchiveError> {
        let mut total = 0u64;
        loop {
            let n = match entry.read(&mut self.buf) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(ArchiveError::Corrupt(format!(
                        "reading {}: {e}",
                        path.display()
                    )));
                }
            };
            total += n as u64;
            if total > self.limits.max_entry_size {
                return Err(ArchiveError::EntryTooLarge {
                    path: path.display(),
                    size: total,
                    limit: self.limits.max_entry_size,
                });
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| io_at("writing", &self.root, path, e))?;
        }
    }

    /// Owner, then mode (chown clears set-id bits), xattrs, mtime, on an open fd.
    fn apply_meta(
        &self,
        fd: BorrowedFd<'_>,
        path: &RelPath,
        meta: &Meta,
        is_dir: bool,
    ) -> Result<(), ArchiveError> {
        fchown(
            fd,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
        )
        .map_err(|e| io_at("chown", &self.root, path, e))?;
        fchmod(fd, Mode::from_raw_mode(meta.mode))
            .map_err(|e| io_at("chmod", &self.root, path, e))?;
        for (k, v) in &meta.xattrs {
            fsetxattr(fd, k.as_str(), v, XattrFlags::empty())
                .map_err(|e| io_at("setting xattr", &self.root, path, e))?;
        }
        if !is_dir {
            futimens(fd, &times(meta.mtime))
                .map_err(|e| io_at("setting mtime", &self.root, path, e))?;
        }
        Ok(())
    }

    /// The same for nodes that cannot be opened for writing (symlinks, devices).
    fn apply_meta_at(
        &self,
        parent: BorrowedFd<'_>,
        name: &str,
        path: &RelPath,
        meta: &Meta,
        symlink: bool,
    ) -> Result<(), ArchiveError> {
        chownat(
            parent,
            name,
            Some(Uid::from_raw(meta.uid)),
            Some(Gid::from_raw(meta.gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| io_at("chown", &self.root, path, e))?;
        if !symlink {
            chmodat(
                parent,
                name,
                Mode::from_raw_mode(meta.mode),
                AtFlags::empty(),
            )
            .map_err(|e| io_at("chmod", &self.root, path, e))?;
        }
        if !meta.xattrs.is_empty() {
            // No fd-based call sets an xattr on a symlink itself; name it
            // through the parent's fd so no path component is re-resolved.
            let proc_path = format!(
                "/proc/self/fd/{}/{name}",
                std::os::fd::AsRawFd::as_raw_fd(&parent)
            );
            for (k, v) in &meta.xattrs {
                lsetxattr(proc_path.as_str(), k.as_str(), v, XattrFlags::empty())
                    .map_err(|e| io_at("setting xattr", &self.root, path, e))?;
            }
        }
        utimensat(parent, name, &times(meta.mtime), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_at("setting mtime", &self.root, path, e))?;
        Ok(())
    }

    fn finish(&mut self) -> Result<(), ArchiveError> {
        for (path, mtime) in self.dir_times.iter().rev() {
            let fd = match self.root.dir(path, false) {
                Ok(Some(fd)) => fd,
                // Removed later by a whiteout in Apply mode.
                Ok(None) => continue,
                Err(e) => return Err(e),
            };
            futimens(&fd, &times(*mtime))
                .map_err(|e| io_at("setting mtime", &self.root, path, e))?;
        }
        Ok(())
    }
}

fn times(mtime: u64) -> Timestamps {
    let t = Timespec {
        tv_sec: mtime.min(i64::MAX as u64) as i64,
        tv_nsec: 0,
    };
    Timestamps {
        last_access: t,
        last_modification: t,
    }
}

/// xattrs from PAX `SCHILY.xattr.*` records. Overlay's own `trusted.overlay.*`
/// attributes are dropped: in a layer they could redirect lookups into other
/// layers, and whiteouts already say what they legitimately could.
fn xattrs_of<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(String, Vec<u8>)>, ArchiveError> {
    let mut out = Vec::new();
    let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| ArchiveError::Corrupt(e.to_string()))?
    else {
        return Ok(out);
    };
    for ext in exts {
        let ext = ext.map_err(|e| ArchiveError::Corrupt(e.to_string()))?;
        let Ok(key) = ext.key() else { continue };
        if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
            if name.starts_with("trusted.overlay.") {
                continue;
            }
            out.push((name.to_owned(), ext.value_bytes().to_vec()));
        }
    }
    Ok(out)
}
