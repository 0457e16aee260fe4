//! What a container changed: its overlay upper layer compared with the
//! image under it, as `docker diff` lists it.
//!
//! The rules are Docker's for overlay: a name in the upper layer that the
//! image lacks is added; one the image has is modified when its type,
//! mode or owner differ (or, for a non-directory, its size, mtime or
//! device); a whiteout of a name the image has is a deletion, and so is
//! every name of the image under an opaque directory that the upper layer
//! lacks. Adding or deleting a name also marks its directory modified,
//! listed just before it. Both trees are read beneath their roots without
//! following any symlink, so a layer that changes while read (a running
//! container's) cannot lead the walk elsewhere.

use std::collections::HashSet;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Stat, statat};
use rustix::io::Errno;

use super::ArchiveError;
use super::beneath::{Beneath, RelPath, list_dir};
use super::diff::DiffOptions;
use crate::error::Result;

/// Docker's numbers for the kinds (`Kind` in the API's JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    Modified = 0,
    Added = 1,
    Deleted = 2,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Absolute inside the container: `/etc/new`.
    pub path: String,
    pub kind: ChangeKind,
}

/// The changes of the upper layer open as `upper` over the merged image
/// open as `image`, in path order. `options` maps owners (`id_base`) and
/// leaves out the paths the runtime itself writes (`exclude`).
pub fn changes(
    upper: BorrowedFd<'_>,
    image: BorrowedFd<'_>,
    options: &DiffOptions,
) -> Result<Vec<Change>> {
    let walk = Walk {
        upper: Beneath::from_fd(upper, Path::new("<writable layer>"))?,
        image: Beneath::from_fd(image, Path::new("<image>"))?,
        options,
        out: Vec::new(),
        listed: HashSet::new(),
    };
    walk.run()
}

struct Walk<'a> {
    upper: Beneath,
    image: Beneath,
    options: &'a DiffOptions,
    out: Vec<Change>,
    /// Directories already listed, so a parent is marked once.
    listed: HashSet<RelPath>,
}

impl Walk<'_> {
    fn run(mut self) -> Result<Vec<Change>> {
        let root = RelPath::from_parts(Vec::new());
        let fd = self
            .upper
            .dir(&root, false)?
            .ok_or_else(|| self.gone(&root))?;
        self.dir(fd.as_fd(), &root)?;
        Ok(self.out)
    }

    fn gone(&self, rel: &RelPath) -> ArchiveError {
        ArchiveError::Io {
            what: "reading",
            path: self.upper.path_of(rel),
            source: std::io::Error::other("it changed while being read"),
        }
    }

    fn io(&self, rel: &RelPath, e: Errno) -> ArchiveError {
        ArchiveError::Io {
            what: "reading",
            path: self.upper.path_of(rel),
            source: e.into(),
        }
    }

    fn dir(&mut self, fd: BorrowedFd<'_>, rel: &RelPath) -> Result<()> {
        let names = list_dir(fd).map_err(|e| self.io(rel, e))?;
        if !rel.is_root() && is_opaque(fd) {
            let below = self.image.dir(rel, false).ok().flatten();
            let hidden = below
                .map(|d| list_dir(d.as_fd()).unwrap_or_default())
                .unwrap_or_default();
            for name in hidden.iter().filter(|n| !names.contains(n)) {
                self.push(&rel.join(name), ChangeKind::Deleted);
            }
        }
        for name in &names {
            let child = rel.join(name);
            if self.options.exclude.contains(&child.display()) {
                continue;
            }
            let st = match statat(fd, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => st,
                Err(Errno::NOENT) => continue,
                Err(e) => return Err(self.io(&child, e).into()),
            };
            let kind = FileType::from_raw_mode(st.st_mode);
            let below = self.image_stat(&child);
            if kind == FileType::CharacterDevice && st.st_rdev == 0 {
                if below.is_some() {
                    self.push(&child, ChangeKind::Deleted);
                }
                continue;
            }
            match &below {
                None => self.push(&child, ChangeKind::Added),
                Some(old) if self.differs(&st, old) => self.push(&child, ChangeKind::Modified),
                Some(_) => {}
            }
            if kind == FileType::Directory {
                let sub = self
                    .upper
                    .dir(&child, false)?
                    .ok_or_else(|| self.gone(&child))?;
                self.dir(sub.as_fd(), &child)?;
            }
        }
        Ok(())
    }

    fn push(&mut self, rel: &RelPath, kind: ChangeKind) {
        let parent = rel.parent();
        if kind != ChangeKind::Modified && !parent.is_root() && self.listed.insert(parent.clone()) {
            self.out.push(Change {
                path: format!("/{}", parent.display()),
                kind: ChangeKind::Modified,
            });
        }
        self.listed.insert(rel.clone());
        self.out.push(Change {
            path: format!("/{}", rel.display()),
            kind,
        });
    }

    /// `rel` in the image, if it is there (a path through a symlink is not).
    fn image_stat(&self, rel: &RelPath) -> Option<Stat> {
        let parent = self.image.dir(&rel.parent(), false).ok().flatten()?;
        statat(
            parent.as_fd(),
            rel.file_name().unwrap_or("."),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .ok()
    }

    fn differs(&self, new: &Stat, old: &Stat) -> bool {
        let owner = |st: &Stat| (self.options.owner(st.st_uid), self.options.owner(st.st_gid));
        if new.st_mode != old.st_mode || owner(new) != owner(old) {
            return true;
        }
        FileType::from_raw_mode(new.st_mode) != FileType::Directory
            && (new.st_size != old.st_size
                || new.st_mtime != old.st_mtime
                || new.st_mtime_nsec != old.st_mtime_nsec
                || new.st_rdev != old.st_rdev)
    }
}

/// Whether overlayfs marked this directory as hiding the layers under it,
/// in either of its xattr namespaces.
fn is_opaque(dir: BorrowedFd<'_>) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| {
            let mut buf = [0u8; 4];
            matches!(rustix::fs::fgetxattr(dir, *name, &mut buf[..]), Ok(1) if buf[0] == b'y')
        })
}
