//! A container's files seen from outside its processes: what it changed
//! (`docker diff`), its whole tree (`docker export`), one path of it
//! (`docker cp` while it is stopped) and a layer of its changes (`docker
//! commit`), and a copy into it while it is stopped. They are read through views of its kept writable layer that
//! the runtime mounts for us (nothing here mounts), beneath their roots and
//! without following a symlink, running or not.

use std::fs::File;
use std::io::{Read, Write};
use std::path::Path;

use store::archive::{Change, DiffOptions};
use store::{Compression, Layer, Lease, Store};

use crate::error::{Error, Result};

/// Files the runtime writes into every container at each start: never the
/// container's own changes.
const RUNTIME_FILES: [&str; 3] = ["etc/hostname", "etc/hosts", "etc/resolv.conf"];
/// Mount points whose contents in the writable layer are the runtime's
/// scaffolding (the container's writes land in the filesystems over them).
const MOUNT_POINTS: [&str; 3] = ["dev", "proc", "sys"];

/// Open views of one container's files, and the lease that keeps its
/// image's layers while they are read.
pub struct Files {
    upper: File,
    image: File,
    merged: File,
    id_base: u32,
    _lease: Lease,
}

impl Files {
    pub(crate) fn new(views: runtime::LayerViews, id_base: u32, lease: Lease) -> Files {
        Files {
            upper: views.upper.into(),
            image: views.image.into(),
            merged: views.merged.into(),
            id_base,
            _lease: lease,
        }
    }

    fn options(&self, compression: Compression, exclude: &[&str]) -> DiffOptions {
        DiffOptions {
            compression,
            id_base: Some(self.id_base),
            exclude: exclude.iter().map(|s| (*s).to_owned()).collect(),
            ..DiffOptions::default()
        }
    }

    fn changed_only(&self, compression: Compression) -> DiffOptions {
        self.options(
            compression,
            &[&RUNTIME_FILES[..], &MOUNT_POINTS[..]].concat(),
        )
    }

    /// `docker diff`.
    pub fn changes(&self) -> Result<Vec<Change>> {
        use std::os::fd::AsFd;
        Ok(store::archive::changes(
            self.upper.as_fd(),
            self.image.as_fd(),
            &self.changed_only(Compression::None),
        )?)
    }

    /// A gzip layer of the changes in `store`, whiteouts included: the
    /// layer `docker commit` adds.
    pub fn commit_layer(&self, store: &Store) -> Result<Layer> {
        Ok(store.create_layer_at(
            &self.upper,
            Path::new("<writable layer>"),
            &DiffOptions {
                fast: true,
                ..self.changed_only(Compression::Gzip)
            },
        )?)
    }

    /// A small text file of the container (`/etc/passwd`), empty if absent.
    pub fn read_text(&self, path: &str) -> Result<String> {
        const LIMIT: u64 = 1 << 20;
        let bytes = store::archive::read_in_root(&self.merged, path, LIMIT)?;
        Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
    }

    /// `docker export`: the container's whole tree as a tar.
    pub fn export(&self, out: impl Write) -> Result<()> {
        store::archive::write_tar_at(
            &self.merged,
            Path::new("/"),
            &self.options(Compression::None, &RUNTIME_FILES),
            out,
        )?;
        Ok(())
    }

    /// One path of the container as a tar whose top entry is its last
    /// component (`docker cp CONTAINER:PATH`), and its metadata for the
    /// `X-Docker-Container-Path-Stat` header.
    pub fn path_stat(&self, path: &str) -> Result<store::archive::PathStat> {
        store::archive::stat_beneath(&self.merged, path)
            .map_err(|e| not_found_in_container(path, e))
    }

    pub fn copy_out(&self, path: &str, out: impl Write) -> Result<()> {
        store::archive::write_tar_of(
            &self.merged,
            path,
            &self.options(Compression::None, &[]),
            out,
        )
        .map_err(|e| not_found_in_container(path, e))?;
        Ok(())
    }
}

/// Unpacks the tar `archive` into directory `dir` of a stopped container's
/// root, open writable as `root`: `docker cp` into it. Owners become the
/// lab's (`id_base` is its first host id); nothing lands outside `root`.
pub fn copy_into(root: &File, dir: &str, archive: impl Read + Send, id_base: u32) -> Result<()> {
    use std::os::fd::AsFd;
    let target =
        store::archive::dir_in_root(root, dir).map_err(|e| not_found_in_container(dir, e))?;
    store::archive::unpack_into(
        archive,
        target.as_fd(),
        Path::new(dir),
        store::archive::WhiteoutMode::Apply,
        store::Limits::default(),
        Some(id_base),
    )?;
    Ok(())
}

fn not_found_in_container(path: &str, e: store::Error) -> Error {
    if e.kind() == store::ErrorKind::NotFound {
        Error::NoSuchPath(path.to_owned())
    } else {
        e.into()
    }
}
