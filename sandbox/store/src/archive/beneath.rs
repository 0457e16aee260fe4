//! File operations confined beneath one directory, never following symlinks.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, mkdirat, openat2, statat, unlinkat,
};
use rustix::io::Errno;

use super::ArchiveError;

pub(crate) const RESOLVE: ResolveFlags = ResolveFlags::BENEATH
    .union(ResolveFlags::NO_SYMLINKS)
    .union(ResolveFlags::NO_MAGICLINKS);
pub(crate) const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::RDONLY)
    .union(OFlags::CLOEXEC)
    .union(OFlags::NOFOLLOW);

/// A normalized relative path: no empty, `.` or `..` components.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RelPath(Vec<String>);

impl RelPath {
    /// Normalizes a path from a tar header. `./a//b` becomes `a/b`; absolute
    /// paths, `..` and NUL bytes are refused. An empty result is the root.
    pub(crate) fn parse(raw: &[u8]) -> Result<RelPath, ArchiveError> {
        let shown = || String::from_utf8_lossy(raw).into_owned();
        let unsafe_path = |reason| ArchiveError::UnsafePath {
            path: shown(),
            reason,
        };
        let s = std::str::from_utf8(raw).map_err(|_| unsafe_path("not valid UTF-8"))?;
        if s.starts_with('/') {
            return Err(unsafe_path("absolute paths are not allowed"));
        }
        if s.contains('\0') {
            return Err(unsafe_path("NUL byte in path"));
        }
        let mut parts = Vec::new();
        for c in s.split('/') {
            match c {
                "" | "." => {}
                ".." => return Err(unsafe_path("'..' components are not allowed")),
                c => parts.push(c.to_owned()),
            }
        }
        Ok(RelPath(parts))
    }

    pub(crate) fn from_parts(parts: Vec<String>) -> RelPath {
        RelPath(parts)
    }

    pub(crate) fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn file_name(&self) -> Option<&str> {
        self.0.last().map(String::as_str)
    }

    pub(crate) fn parent(&self) -> RelPath {
        RelPath(self.0[..self.0.len().saturating_sub(1)].to_vec())
    }

    pub(crate) fn join(&self, name: &str) -> RelPath {
        let mut v = self.0.clone();
        v.push(name.to_owned());
        RelPath(v)
    }

    /// `.` for the root, as `openat2` wants.
    pub(crate) fn as_path(&self) -> PathBuf {
        if self.0.is_empty() {
            PathBuf::from(".")
        } else {
            self.0.iter().collect()
        }
    }

    pub(crate) fn display(&self) -> String {
        self.0.join("/")
    }
}

pub(crate) struct Beneath {
    root: OwnedFd,
    root_path: PathBuf,
}

fn io_err(what: &'static str, path: &Path, e: Errno) -> ArchiveError {
    ArchiveError::Io {
        what,
        path: path.to_owned(),
        source: e.into(),
    }
}

impl Beneath {
    pub(crate) fn open(root_path: &Path) -> Result<Beneath, ArchiveError> {
        let root = rustix::fs::open(root_path, DIR_FLAGS, Mode::empty())
            .map_err(|e| io_err("opening", root_path, e))?;
        Ok(Beneath {
            root,
            root_path: root_path.to_owned(),
        })
    }

    /// Beneath a directory already open; `shown` names it in messages.
    pub(crate) fn from_fd(root: BorrowedFd<'_>, shown: &Path) -> Result<Beneath, ArchiveError> {
        let root = root.try_clone_to_owned().map_err(|e| {
            io_err(
                "opening",
                shown,
                Errno::from_io_error(&e).unwrap_or(Errno::BADF),
            )
        })?;
        Ok(Beneath {
            root,
            root_path: shown.to_owned(),
        })
    }

    pub(crate) fn root(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    fn resolve_error(&self, rel: &RelPath, e: Errno) -> ArchiveError {
        match e {
            Errno::LOOP | Errno::XDEV | Errno::NOTDIR => ArchiveError::ThroughSymlink {
                path: rel.display(),
            },
            e => io_err("opening", &self.root_path.join(rel.as_path()), e),
        }
    }

    /// Opens directory `rel`. With `create`, missing components are made
    /// (mode 0755, owned by the caller) as tar does for implied parents.
    /// Returns `Ok(None)` for a missing directory without `create`.
    pub(crate) fn dir(&self, rel: &RelPath, create: bool) -> Result<Option<OwnedFd>, ArchiveError> {
        match openat2(&self.root, rel.as_path(), DIR_FLAGS, Mode::empty(), RESOLVE) {
            Ok(fd) => return Ok(Some(fd)),
            Err(Errno::NOENT) if create => {}
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(self.resolve_error(rel, e)),
        }
        // Slow path: walk and create one component at a time.
        let mut cur: Option<OwnedFd> = None;
        for part in &rel.0 {
            let base = cur.as_ref().map_or(self.root.as_fd(), |f| f.as_fd());
            match mkdirat(base, part.as_str(), Mode::from_raw_mode(0o755)) {
                Ok(()) | Err(Errno::EXIST) => {}
                Err(e) => {
                    return Err(io_err(
                        "creating directory",
                        &self.root_path.join(rel.as_path()),
                        e,
                    ));
                }
            }
            let next = openat2(base, part.as_str(), DIR_FLAGS, Mode::empty(), RESOLVE)
                .map_err(|e| self.resolve_error(rel, e))?;
            cur = Some(next);
        }
        match cur {
            Some(fd) => Ok(Some(fd)),
            None => Ok(Some(
                openat2(&self.root, ".", DIR_FLAGS, Mode::empty(), RESOLVE)
                    .map_err(|e| self.resolve_error(rel, e))?,
            )),
        }
    }

    /// Opens regular file `rel` for reading; symlinks anywhere on the way,
    /// the last component included, are refused.
    pub(crate) fn open_file(&self, rel: &RelPath) -> Result<Option<std::fs::File>, ArchiveError> {
        // NONBLOCK: opening a FIFO planted in a hostile layout must not hang.
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK;
        match openat2(&self.root, rel.as_path(), flags, Mode::empty(), RESOLVE) {
            Ok(fd) => {
                let st = rustix::fs::fstat(&fd)
                    .map_err(|e| io_err("inspecting", &self.path_of(rel), e))?;
                if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
                    return Err(ArchiveError::UnsafePath {
                        path: rel.display(),
                        reason: "not a regular file",
                    });
                }
                Ok(Some(fd.into()))
            }
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(self.resolve_error(rel, e)),
        }
    }

    pub(crate) fn path_of(&self, rel: &RelPath) -> PathBuf {
        self.root_path.join(rel.as_path())
    }
}

/// The type of `name` in `dir`, not following a symlink; `None` if absent.
pub(crate) fn file_type_at(
    dir: BorrowedFd<'_>,
    name: &str,
) -> rustix::io::Result<Option<FileType>> {
    match statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(Errno::NOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes `name` in `dir` and, for a directory, everything below it,
/// without ever following a symlink.
pub(crate) fn remove_all_at(dir: BorrowedFd<'_>, name: &str) -> rustix::io::Result<()> {
    match file_type_at(dir, name)? {
        None => Ok(()),
        Some(FileType::Directory) => {
            let sub = openat2(dir, name, DIR_FLAGS, Mode::empty(), RESOLVE)?;
            clear_dir(sub.as_fd())?;
            unlinkat(dir, name, AtFlags::REMOVEDIR)
        }
        Some(_) => unlinkat(dir, name, AtFlags::empty()),
    }
}

/// Removes everything inside `dir` (not `dir` itself); `keep` spares names.
pub(crate) fn clear_dir_except(
    dir: BorrowedFd<'_>,
    keep: &dyn Fn(&str) -> bool,
) -> rustix::io::Result<()> {
    let names = list_dir(dir)?;
    for name in names {
        if !keep(&name) {
            remove_all_at(dir, &name)?;
        }
    }
    Ok(())
}

fn clear_dir(dir: BorrowedFd<'_>) -> rustix::io::Result<()> {
    clear_dir_except(dir, &|_| false)
}

/// Entry names of `dir` without `.` and `..`, sorted bytewise.
pub(crate) fn list_dir(dir: BorrowedFd<'_>) -> rustix::io::Result<Vec<String>> {
    let mut names = Vec::new();
    let fd = openat2(dir, ".", DIR_FLAGS, Mode::empty(), RESOLVE)?;
    for entry in Dir::read_from(&fd)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(String::from_utf8_lossy(name).into_owned());
        }
    }
    names.sort();
    Ok(names)
}
