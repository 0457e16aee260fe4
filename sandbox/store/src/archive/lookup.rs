//! A path of an image looked up in its unpacked layers as overlayfs would
//! merge them, on the host and without mounting anything: what a build
//! asks before it decides it needs a container at all (does `WORKDIR
//! /srv` exist already?). Only what needs no symlink is answered; anything
//! else is left to a mounted view, which resolves symlinks inside the
//! image.

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::PathBuf;

use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use super::OVERLAY_OPAQUE_XATTR;

/// What `path` (absolute, inside the image) is in the merged view of
/// `layers` (their directories, topmost first): `None` if it does not
/// exist, `Some(true)` for a directory, `Some(false)` for anything else.
/// An error means it cannot be told here: a component is a symlink, or
/// not a directory, or the path has `..` in it.
pub fn kind_in_layers(layers: &[PathBuf], path: &str) -> io::Result<Option<bool>> {
    let unsupported = |why: &str| io::Error::new(io::ErrorKind::Unsupported, why.to_owned());
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Err(unsupported("the path has .. in it"));
    }
    // The directories of the path so far, in the layers that still show
    // them (an opaque directory, a whiteout or a file hides those below).
    let mut dirs: Vec<File> = layers
        .iter()
        .map(|layer| open_dir(File::open(layer)?.as_fd(), "."))
        .collect::<io::Result<_>>()?;
    for (i, name) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        let mut found = None;
        let mut next = Vec::new();
        for dir in &dirs {
            let stat = match rustix::fs::statat(dir, *name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(stat) => stat,
                Err(rustix::io::Errno::NOENT) => continue,
                Err(e) => return Err(e.into()),
            };
            let kind = FileType::from_raw_mode(stat.st_mode);
            let whiteout = kind == FileType::CharacterDevice && stat.st_rdev == 0;
            if whiteout && found.is_none() {
                return Ok(None);
            }
            if kind != FileType::Directory {
                // A lower non-directory under a directory is hidden by it.
                found.get_or_insert(kind);
                break;
            }
            found.get_or_insert(kind);
            let opened = open_dir(dir.as_fd(), name)?;
            let opaque = is_opaque(&opened);
            next.push(opened);
            if opaque {
                break;
            }
        }
        match found {
            None => return Ok(None),
            Some(FileType::Directory) => dirs = next,
            Some(FileType::Symlink) => return Err(unsupported("the path goes through a symlink")),
            Some(_) if last => return Ok(Some(false)),
            Some(_) => return Err(unsupported("a component of the path is not a directory")),
        }
    }
    Ok(Some(true))
}

fn open_dir(at: impl AsFd, name: &str) -> io::Result<File> {
    Ok(File::from(rustix::fs::openat(
        at,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?))
}

fn is_opaque(dir: &File) -> bool {
    let mut value = [0u8; 1];
    matches!(
        rustix::fs::fgetxattr(dir, OVERLAY_OPAQUE_XATTR, &mut value),
        Ok(1) if value[0] == b'y'
    )
}
