//! A container's files seen from outside its processes: what it changed
//! (`docker diff`), its whole tree (`docker export`), one path of it
//! (`docker cp` while it is stopped) and a layer of its changes (`docker
//! commit`), and a copy into it while it is stopped. They are read through
//! views of its kept writable layer that the runtime mounts for us (nothing
//! here mounts), beneath their roots and without following a symlink:
//! read-only views running or not, or a writable root while it is stopped.

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
    /// The image alone: read-only views have it, a writable root not.
    image: Option<File>,
    /// The container's root as it sees it; writable if `image` is `None`.
    merged: File,
    id_base: u32,
    _lease: Lease,
}

impl Files {
    pub(crate) fn new(views: runtime::LayerViews, id_base: u32, lease: Lease) -> Files {
        Files {
            upper: views.upper.into(),
            image: Some(views.image.into()),
            merged: views.merged.into(),
            id_base,
            _lease: lease,
        }
    }

    /// The views of a stopped container whose root is open for writing.
    pub(crate) fn writable(views: runtime::WritableViews, id_base: u32, lease: Lease) -> Files {
        Files {
            upper: views.upper.into(),
            image: None,
            merged: views.root.into(),
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
        let image = self.image.as_ref().ok_or_else(|| {
            Error::InvalidArgument("the changes of a container open for writing are unknown".into())
        })?;
        Ok(store::archive::changes(
            self.upper.as_fd(),
            image.as_fd(),
            &self.changed_only(Compression::None),
        )?)
    }

    /// A gzip layer of the changes in `store`, whiteouts included: the
    /// layer `docker commit` adds over `below`, the image's layers.
    pub fn commit_layer(&self, store: &Store, below: &[Layer]) -> Result<Layer> {
        Ok(store.create_layer_at(
            &self.upper,
            Path::new("<writable layer>"),
            &DiffOptions {
                fast: true,
                ..self.changed_only(Compression::Gzip)
            },
            below,
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

    /// Unpacks the tar `archive` into directory `dir` of a stopped
    /// container open for writing: `docker cp` into it. Owners become the
    /// lab's; nothing lands outside its root.
    pub fn copy_into(&self, dir: &str, archive: impl Read + Send) -> Result<()> {
        use std::os::fd::AsFd;
        let root = self.writable_root()?;
        let target =
            store::archive::dir_in_root(root, dir).map_err(|e| not_found_in_container(dir, e))?;
        store::archive::unpack_into(
            archive,
            target.as_fd(),
            Path::new(dir),
            store::archive::WhiteoutMode::Apply,
            store::Limits::default(),
            Some(self.id_base),
        )?;
        Ok(())
    }

    /// Creates `dir` and its missing parents in a stopped container open
    /// for writing, as root's with mode 0755 (what WORKDIR and COPY make).
    pub fn make_dirs(&self, dir: &str) -> Result<()> {
        let root = self.writable_root()?;
        let parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
        // The longest part that exists; a symlink in it is followed inside
        // the root, as `mkdir -p` in the container would.
        let existing = (0..=parts.len())
            .rev()
            .find(|&n| {
                n == 0
                    || store::archive::stat_beneath(root, &format!("/{}", parts[..n].join("/")))
                        .is_ok()
            })
            .unwrap_or_default();
        if existing == parts.len() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        let making = |e: std::io::Error| Error::InvalidArgument(format!("making {dir}: {e}"));
        let mut tar = tar::Builder::new(Vec::new());
        for n in existing + 1..=parts.len() {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(tar::EntryType::Directory);
            header.set_mode(0o755);
            header.set_uid(0);
            header.set_gid(0);
            header.set_size(0);
            header.set_mtime(now);
            tar.append_data(
                &mut header,
                format!("{}/", parts[existing..n].join("/")),
                std::io::empty(),
            )
            .map_err(making)?;
        }
        let bytes = tar.into_inner().map_err(making)?;
        self.copy_into(&format!("/{}", parts[..existing].join("/")), &bytes[..])
    }

    fn writable_root(&self) -> Result<&File> {
        match self.image {
            None => Ok(&self.merged),
            Some(_) => Err(Error::InvalidArgument(
                "a container's files are open read-only: nothing can be copied into them".into(),
            )),
        }
    }
}

/// Tops the image config `image` with `layer`, a container's changes, as
/// dockerd does: a layer that changes nothing (or none, for a container
/// never run nor written) is left out, and the newest history entry says
/// so (`empty_layer`). Whether the layer was added.
pub fn add_layer(image: &mut serde_json::Value, layer: Option<&Layer>) -> bool {
    let Some(layer) = layer.filter(|l| !store::manifests::is_empty_layer(&l.diff_id)) else {
        if let Some(step) = image["history"].as_array_mut().and_then(|h| h.last_mut()) {
            step["empty_layer"] = serde_json::Value::Bool(true);
        }
        return false;
    };
    let diff_id = serde_json::Value::String(layer.diff_id.to_string());
    match image["rootfs"]["diff_ids"].as_array_mut() {
        Some(ids) => ids.push(diff_id),
        None => image["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff_id]}),
    }
    true
}

fn not_found_in_container(path: &str, e: store::Error) -> Error {
    if e.kind() == store::ErrorKind::NotFound {
        Error::NoSuchPath(path.to_owned())
    } else {
        e.into()
    }
}
