//! The layer helper: host root, single-threaded, short-lived. Mounts a
//! sandbox's kept writable layer and the image under it in a mount
//! namespace of its own and sends the caller descriptors of the views (as
//! `Rootfs` messages on the channel, then `Ready`). The views outlive the
//! helper and its namespace while the caller holds them, and appear in no
//! mount table.
//!
//! ```text
//!  caller ── `<helper> __layerlab-runtime-layer <config.json> 3` ──► helper
//!         ◄── Rootfs(upper), Rootfs(image), Rootfs(merged), Ready ──   (read)
//!         ◄── Rootfs(merged, writable), Rootfs(upper), Ready ──        (write)
//!         ◄── Failed(reason) ──                                        (either)
//! ```

use std::fs;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Sibling;
use super::channel::{self, Message};
use crate::error::{Error, Result};
use crate::rootfs;
use crate::syscall::Kernel;

/// What the caller hands the layer helper in `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerConfig {
    /// The kept writable layer's file.
    pub image: PathBuf,
    /// The image layers under it, topmost first.
    pub lowerdirs: Vec<PathBuf>,
    /// The running sandbox whose user namespace maps the layers (the node
    /// of a container), and its id for messages.
    pub node: Sibling,
    pub node_id: String,
    pub uid_base: u32,
    /// Its size and inode count, should it have to be made (the sandbox
    /// never ran).
    pub limits: crate::spec::Limits,
    /// An empty directory to mount on inside the helper's namespace.
    pub scratch: PathBuf,
    /// A writable merged view and the upper tree instead of the three
    /// read-only views; only for a sandbox that is not running (overlayfs
    /// refuses an upper layer in use, which keeps two writers apart).
    pub writable: bool,
}

pub(crate) fn main(config: &Path, channel_fd: i32) -> i32 {
    // SAFETY: the caller passed this descriptor for us to own.
    let sock = unsafe { OwnedFd::from_raw_fd(channel_fd) };
    let sent = match run(config, &sock) {
        Ok(()) => channel::send(&sock, &Message::Ready),
        Err(e) => channel::send(&sock, &Message::Failed(e.to_string())),
    };
    i32::from(sent.is_err())
}

fn run(config: &Path, sock: &OwnedFd) -> Result<()> {
    let bytes = fs::read(config).map_err(Error::io("read", config))?;
    let cfg: LayerConfig = serde_json::from_slice(&bytes).map_err(|source| Error::State {
        path: config.to_owned(),
        source,
    })?;
    let userns = cfg.node.namespace("user")?;
    cfg.node.check_alive(&cfg.node_id)?;
    super::private_mount_namespace()?;
    let layer = rootfs::writable_layer(&cfg.image, &cfg.limits, true)?;
    if cfg.writable {
        let merged = rootfs::build_overlay(
            &Kernel,
            &cfg.lowerdirs,
            &userns,
            cfg.uid_base,
            &cfg.scratch,
            &layer,
        )?;
        let views = rootfs::writable_views(merged, &cfg.scratch)?;
        for view in [views.root, views.upper] {
            channel::send(sock, &Message::Rootfs(view))?;
        }
        return Ok(());
    }
    let views = rootfs::layer_views(
        &Kernel,
        &cfg.lowerdirs,
        &userns,
        cfg.uid_base,
        &cfg.scratch,
        &layer,
    )?;
    for view in [views.upper, views.image, views.merged] {
        channel::send(sock, &Message::Rootfs(view))?;
    }
    Ok(())
}
