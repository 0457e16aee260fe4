//! The on-disk layout of a runtime's state directory. Nothing else in the
//! crate formats these paths.
//!
//! ```text
//! <state_dir>/
//!   sandboxes/
//!     <id>/                 one per sandbox, created by `Runtime::create`
//!       config.json         the SandboxSpec and resolved settings handed to the helper
//!       state.json          lifecycle record (State): status, init pid + start time,
//!                           uid range, cgroup names; rewritten atomically
//!       helper-error        why the create helper failed (absent on success)
//!       activity            empty file; its mtime is the last activity
//!   lock                    held shared by every Runtime open on this directory
//!                           (`sandbox gc` treats a directory nobody holds as unserved)
//! ```
//!
//! Outside this tree, shared by every runtime on the host: uid range claims
//! (see `userns`), and [`MOUNT_POINT`], the empty directory each sandbox
//! attaches its rootfs to inside its own mount namespace only (so the host
//! never has a mount point to detach or remove). It is a fixed, neutral
//! path because the overlay's options name it in the sandbox's
//! `/proc/self/mountinfo`: a path under the state directory would show
//! the data directory's host path to the student.
//!
//! No mount, network namespace or veth of a sandbox appears on the host:
//! they live only in the sandbox's namespaces, so killing its processes
//! releases them. Host-side leftovers are exactly: this tree, the uid range
//! claim and the cgroup directories named in state.json.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct Layout {
    root: PathBuf,
}

impl Layout {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn sandboxes(&self) -> PathBuf {
        self.root.join("sandboxes")
    }

    /// The directory of sandbox `id`; `id` must have passed [`check_id`].
    pub fn sandbox(&self, id: &str) -> PathBuf {
        self.sandboxes().join(id)
    }

    pub fn config(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("config.json")
    }

    pub fn state(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("state.json")
    }

    pub fn helper_error(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("helper-error")
    }

    pub fn activity(&self, id: &str) -> PathBuf {
        self.sandbox(id).join("activity")
    }

    pub fn lock(&self) -> PathBuf {
        self.root.join("lock")
    }
}

/// Where every sandbox attaches its rootfs, in its own mount namespace.
pub const MOUNT_POINT: &str = "/run/layerlab/rootfs";

/// Sandbox ids become path components and cgroup names: keep them to a
/// small alphabet so no id can traverse or collide with our own files.
pub fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && !id.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId(id.to_owned()))
    }
}
