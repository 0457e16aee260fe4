//! Snapshots: unpacked layers on disk, in containerd's vocabulary.
//!
//! - A *committed* snapshot is one layer unpacked once, read-only, named by
//!   its chain id (so identical layer stacks are shared by every image and
//!   every namespace). Its `fs/` is an overlay lowerdir.
//! - An *active* snapshot, named by a caller-chosen *key*, is a writable
//!   layer (`fs/` = upperdir, `work/` = workdir) on top of a committed
//!   parent; a *view* is an active snapshot without upper layer.
//! - *prepare* creates an active snapshot, *commit* turns it into a
//!   committed one (and a layer blob), *remove* drops it.
//!
//! Importing a layer: unpack its blob into `snapshots/tmp/<random>/fs`,
//! check the diff id, then rename the directory to
//! `snapshots/committed/<chain id>`. A crash leaves only a tmp directory,
//! which GC removes; a racing unpack of the same chain loses the rename and
//! discards its copy.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::archive::{self, ArchiveError, DiffOptions, Limits, WhiteoutMode};
use crate::content::{ContentStore, Provider};
use crate::digest::Digest;
use crate::durable::{FileLock, sync_dir, unique_name, write_atomic};
pub use crate::error::SnapshotError;
use crate::error::{IoContext, Result};
use crate::layers;
use crate::layout::{self, Layout, is_safe_id};
use crate::manifests::{Layer, chain_ids};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CommittedInfo {
    pub(crate) parent: Option<Digest>,
    pub(crate) diff_id: Digest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct ActiveInfo {
    parent: Option<Digest>,
    view: bool,
}

/// The directories to mount an active snapshot with overlayfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mounts {
    pub key: String,
    /// Top-most layer first, as overlayfs's `lowerdir=` wants them. Empty
    /// for a snapshot without parent.
    pub lowerdirs: Vec<PathBuf>,
    /// `None` for a view.
    pub upperdir: Option<PathBuf>,
    pub workdir: Option<PathBuf>,
    /// The committed snapshot this one sits on.
    pub parent: Option<Digest>,
}

impl Mounts {
    /// `lowerdir=…,upperdir=…,workdir=…` for mount(2). Store paths contain
    /// no `:` or `,` as long as the store root has none.
    pub fn overlay_options(&self) -> String {
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let mut s = format!("lowerdir={}", lower.join(":"));
        if let (Some(u), Some(w)) = (&self.upperdir, &self.workdir) {
            s.push_str(&format!(
                ",upperdir={},workdir={}",
                u.display(),
                w.display()
            ));
        }
        s
    }
}

/// Snapshot operations; reached through [`crate::Store::snapshots`].
#[derive(Debug, Clone)]
pub struct Snapshots {
    layout: Layout,
    content: ContentStore,
    limits: Limits,
}

fn check_key(key: &str) -> Result<()> {
    if is_safe_id(key) {
        Ok(())
    } else {
        Err(SnapshotError::InvalidKey(key.to_owned()).into())
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(b) => serde_json::from_slice(&b).map(Some).map_err(|source| {
            SnapshotError::Corrupt {
                path: path.to_owned(),
                source,
            }
            .into()
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).ctx("reading", path),
    }
}

impl Snapshots {
    pub(crate) fn new(layout: Layout, content: ContentStore, limits: Limits) -> Snapshots {
        Snapshots {
            layout,
            content,
            limits,
        }
    }

    pub(crate) fn committed_info(&self, chain_id: &Digest) -> Result<Option<CommittedInfo>> {
        read_json(&layout::snapshot_info(&self.layout.committed(chain_id)))
    }

    /// Whether the layer stack `chain_id` is unpacked.
    pub fn exists(&self, chain_id: &Digest) -> bool {
        layout::snapshot_info(&self.layout.committed(chain_id)).exists()
    }

    /// The lowerdirs of committed snapshot `chain_id`, top-most first.
    pub fn lowerdirs(&self, chain_id: &Digest) -> Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        let mut next = Some(chain_id.clone());
        while let Some(c) = next {
            let info = self
                .committed_info(&c)?
                .ok_or_else(|| SnapshotError::NotFound(c.to_string()))?;
            out.push(layout::snapshot_fs(&self.layout.committed(&c)));
            next = info.parent;
            if out.len() > 1000 {
                return Err(
                    SnapshotError::NotFound(format!("{chain_id} (parent chain loops)")).into(),
                );
            }
        }
        Ok(out)
    }

    /// Unpacks `layers` (bottom first) as needed; returns their chain ids.
    pub(crate) fn unpack_layers(&self, layers: &[Layer]) -> Result<Vec<Digest>> {
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chains = chain_ids(&diff_ids);
        for (i, layer) in layers.iter().enumerate() {
            if self.exists(&chains[i]) {
                continue;
            }
            let parent = i.checked_sub(1).map(|p| chains[p].clone());
            self.unpack_one(layer, parent, &chains[i])?;
        }
        Ok(chains)
    }

    fn unpack_one(&self, layer: &Layer, parent: Option<Digest>, chain_id: &Digest) -> Result<()> {
        let blob = self.content.open(&layer.digest)?;
        self.unpack_stream(
            io::BufReader::with_capacity(1 << 20, blob),
            parent,
            |diff_id| {
                if *diff_id != layer.diff_id {
                    return Err(ArchiveError::DiffIdMismatch {
                        expected: layer.diff_id.clone(),
                        actual: diff_id.clone(),
                    }
                    .into());
                }
                Ok(chain_id.clone())
            },
        )
    }

    /// Unpacks the layer `tar` (compressed or not) into a snapshot over
    /// `parent`, committed under the chain ID `name` gives for the diff ID
    /// the stream turned out to have (or not, if it fails).
    pub(crate) fn unpack_stream(
        &self,
        tar: impl io::Read + Send,
        parent: Option<Digest>,
        name: impl FnOnce(&Digest) -> Result<Digest>,
    ) -> Result<()> {
        let tmp = self.layout.snapshot_tmp().join(unique_name("unpack"));
        let fs_dir = layout::snapshot_fs(&tmp);
        fs::create_dir_all(&fs_dir).ctx("creating snapshot directory", &fs_dir)?;
        let result = (|| {
            let summary = archive::unpack(tar, &fs_dir, WhiteoutMode::Overlay, self.limits)?;
            let chain_id = name(&summary.diff_id)?;
            // The tree must be on disk before its name is: one syncfs is far
            // cheaper than an fsync per file.
            let fs_fd = fs::File::open(&fs_dir).ctx("opening snapshot", &fs_dir)?;
            rustix::fs::syncfs(&fs_fd).ctx("syncing snapshot", &fs_dir)?;
            let info = CommittedInfo {
                parent,
                diff_id: summary.diff_id,
            };
            let bytes = serde_json::to_vec(&info).map_err(|source| SnapshotError::Corrupt {
                path: tmp.clone(),
                source,
            })?;
            write_atomic(&self.layout.tmp(), &layout::snapshot_info(&tmp), &bytes)?;
            self.publish(&tmp, &chain_id)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&tmp);
        }
        result
    }

    /// Renames a finished snapshot directory into `committed/`.
    fn publish(&self, tmp: &Path, chain_id: &Digest) -> Result<()> {
        let target = self.layout.committed(chain_id);
        match fs::rename(tmp, &target) {
            Ok(()) => {
                sync_dir(&self.layout.committed_snapshots())?;
                tracing::debug!(chain_id = %chain_id, "snapshot committed");
                Ok(())
            }
            // Someone else unpacked the same chain first; theirs is as good.
            Err(e)
                if [rustix::io::Errno::NOTEMPTY, rustix::io::Errno::EXIST]
                    .iter()
                    .any(|x| e.raw_os_error() == Some(x.raw_os_error())) =>
            {
                fs::remove_dir_all(tmp).ctx("discarding duplicate snapshot", tmp)
            }
            Err(e) => Err(e).ctx("committing snapshot", target),
        }
    }

    fn mounts(&self, key: &str, info: &ActiveInfo) -> Result<Mounts> {
        let dir = self.layout.active(key);
        let lowerdirs = match &info.parent {
            Some(p) => self.lowerdirs(p)?,
            None => Vec::new(),
        };
        let (upperdir, workdir) = if info.view {
            (None, None)
        } else {
            (
                Some(layout::snapshot_fs(&dir)),
                Some(layout::snapshot_work(&dir)),
            )
        };
        Ok(Mounts {
            key: key.to_owned(),
            lowerdirs,
            upperdir,
            workdir,
            parent: info.parent.clone(),
        })
    }

    fn create_active(&self, key: &str, parent: Option<&Digest>, view: bool) -> Result<Mounts> {
        check_key(key)?;
        // Shared with GC's exclusive lock: the parent cannot be swept
        // between the check below and the new active snapshot that roots it.
        let _gc = FileLock::shared(&self.layout.lock())?;
        if let Some(p) = parent
            && !self.exists(p)
        {
            return Err(SnapshotError::NotFound(p.to_string()).into());
        }
        let dir = self.layout.active(key);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(SnapshotError::AlreadyExists(key.to_owned()).into());
            }
            Err(e) => return Err(e).ctx("creating active snapshot", dir),
        }
        let info = ActiveInfo {
            parent: parent.cloned(),
            view,
        };
        let result = (|| {
            if !view {
                fs::create_dir(layout::snapshot_fs(&dir)).ctx("creating upperdir", &dir)?;
                fs::create_dir(layout::snapshot_work(&dir)).ctx("creating workdir", &dir)?;
            }
            let bytes = serde_json::to_vec(&info).map_err(|source| SnapshotError::Corrupt {
                path: dir.clone(),
                source,
            })?;
            write_atomic(&self.layout.tmp(), &layout::snapshot_info(&dir), &bytes)?;
            self.mounts(key, &info)
        })();
        if result.is_err() {
            let _ = fs::remove_dir_all(&dir);
        }
        result
    }

    /// Creates active snapshot `key`: a writable layer on committed `parent`.
    pub fn prepare(&self, key: &str, parent: Option<&Digest>) -> Result<Mounts> {
        self.create_active(key, parent, false)
    }

    /// Creates a read-only view `key` of committed `parent`.
    pub fn view(&self, key: &str, parent: &Digest) -> Result<Mounts> {
        self.create_active(key, Some(parent), true)
    }

    /// The mounts of an existing active snapshot (e.g. after a restart).
    pub fn active(&self, key: &str) -> Result<Mounts> {
        check_key(key)?;
        let info: ActiveInfo = read_json(&layout::snapshot_info(&self.layout.active(key)))?
            .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
        self.mounts(key, &info)
    }

    /// Keys of all active snapshots.
    pub fn list_active(&self) -> Result<Vec<String>> {
        let dir = self.layout.active_snapshots();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir).ctx("listing active snapshots", &dir)? {
            let e = e.ctx("listing active snapshots", &dir)?;
            if let Some(name) = e.file_name().to_str().filter(|n| is_safe_id(n)) {
                out.push(name.to_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Turns active snapshot `key` into a committed one: its upperdir is
    /// diffed into a layer blob (returned) and then moved, as is, under
    /// its chain id. The overlay must be unmounted first. Nothing references
    /// the new layer yet: write and tag an image with it (or lease it)
    /// within GC's grace period.
    pub fn commit(&self, key: &str, options: &DiffOptions) -> Result<(Layer, Digest)> {
        check_key(key)?;
        let dir = self.layout.active(key);
        let info: ActiveInfo = read_json(&layout::snapshot_info(&dir))?
            .ok_or_else(|| SnapshotError::NotFound(key.to_owned()))?;
        if info.view {
            return Err(SnapshotError::ViewNotCommittable(key.to_owned()).into());
        }
        let upper = layout::snapshot_fs(&dir);
        let layer = layers::write_layer(&self.content, &upper, options)?;
        let chain_id = match &info.parent {
            Some(p) => Digest::of(format!("{p} {}", layer.diff_id).as_bytes()),
            None => layer.diff_id.clone(),
        };
        if !self.exists(&chain_id) {
            let tmp = self.layout.snapshot_tmp().join(unique_name("commit"));
            fs::create_dir(&tmp).ctx("creating snapshot directory", &tmp)?;
            fs::rename(&upper, layout::snapshot_fs(&tmp)).ctx("moving upperdir", &upper)?;
            let committed = CommittedInfo {
                parent: info.parent.clone(),
                diff_id: layer.diff_id.clone(),
            };
            let bytes =
                serde_json::to_vec(&committed).map_err(|source| SnapshotError::Corrupt {
                    path: tmp.clone(),
                    source,
                })?;
            write_atomic(&self.layout.tmp(), &layout::snapshot_info(&tmp), &bytes)?;
            self.publish(&tmp, &chain_id)?;
        }
        self.remove(key)?;
        Ok((layer, chain_id))
    }

    /// Drops active snapshot `key` and its writable layer.
    pub fn remove(&self, key: &str) -> Result<()> {
        check_key(key)?;
        let dir = self.layout.active(key);
        if !dir.exists() {
            return Err(SnapshotError::NotFound(key.to_owned()).into());
        }
        // Rename first so a crash mid-removal leaves no half snapshot under its key.
        let tmp = self.layout.snapshot_tmp().join(unique_name("remove"));
        fs::rename(&dir, &tmp).ctx("removing active snapshot", &dir)?;
        fs::remove_dir_all(&tmp).ctx("removing active snapshot", &tmp)
    }

    /// Parent chains of active snapshots: GC roots.
    pub(crate) fn active_parents(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for key in self.list_active()? {
            match read_json::<ActiveInfo>(&layout::snapshot_info(&self.layout.active(&key))) {
                Ok(Some(info)) => out.extend(info.parent),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }
}
