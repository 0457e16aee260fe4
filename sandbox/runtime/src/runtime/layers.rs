//! Writable layers on disk, and the layer helper's views of a kept one.

use std::fs;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};

use crate::error::{Error, Result};
use crate::helper;
use crate::paths::check_id;
use crate::state::{self, Status};

use super::{Runtime, pass_fds_from_3};

impl Runtime {
    /// The writable layer of a sandbox made with
    /// [`SandboxSpec::keep_writable_layer`](crate::SandboxSpec::keep_writable_layer),
    /// between and during its runs.
    pub(super) fn kept_layer(&self, id: &str) -> PathBuf {
        self.config.disk_dir.join(format!("{id}.kept.ext4"))
    }

    /// Deletes the kept writable layer of `id` (a removed container's), if
    /// any. Not while a sandbox of that id runs.
    pub fn remove_kept_layer(&self, id: &str) -> Result<()> {
        check_id(id)?;
        if self.load(id).is_ok_and(|st| self.alive(&st)) {
            return Err(Error::Running(id.to_owned()));
        }
        let path = self.kept_layer(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Ids of every kept writable layer, so an owner can delete those it no
    /// longer knows (after a crash between a removal's steps).
    pub fn kept_layers(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.config.disk_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".kept.ext4").map(str::to_owned)
            })
            .filter(|id| check_id(id).is_ok())
            .collect()
    }

    /// Read-only views of the kept writable layer of `id` (running or not;
    /// an empty one of `limits` is made if it never ran) and of
    /// `lowerdirs`, the image it starts from, mapped through the user
    /// namespace of `node`, the running sandbox it is a sibling of.
    pub fn open_layer(
        &self,
        id: &str,
        node: &str,
        lowerdirs: &[PathBuf],
        limits: &crate::spec::Limits,
    ) -> Result<crate::rootfs::LayerViews> {
        let mut views = self
            .run_layer_helper(id, node, lowerdirs, limits, false)?
            .into_iter();
        match (views.next(), views.next(), views.next()) {
            (Some(upper), Some(image), Some(merged)) => Ok(crate::rootfs::LayerViews {
                upper,
                image,
                merged,
            }),
            _ => Err(self.helper_error(id, "the layer helper sent too few views".into())),
        }
    }

    /// The root of `id` as it would start, writable: its kept layer (made
    /// as in [`Runtime::open_layer`]) over `lowerdirs`, and that layer's
    /// own tree. Only while no sandbox of that id runs. What is written
    /// must be owned by host ids of the node's range.
    pub fn open_layer_writable(
        &self,
        id: &str,
        node: &str,
        lowerdirs: &[PathBuf],
        limits: &crate::spec::Limits,
    ) -> Result<crate::rootfs::WritableViews> {
        if self.load(id).is_ok_and(|st| self.alive(&st)) {
            return Err(Error::Running(id.to_owned()));
        }
        let mut views = self
            .run_layer_helper(id, node, lowerdirs, limits, true)?
            .into_iter();
        match (views.next(), views.next()) {
            (Some(root), Some(upper)) => Ok(crate::rootfs::WritableViews { root, upper }),
            _ => Err(self.helper_error(id, "the layer helper sent too few views".into())),
        }
    }

    fn run_layer_helper(
        &self,
        id: &str,
        node: &str,
        lowerdirs: &[PathBuf],
        limits: &crate::spec::Limits,
        writable: bool,
    ) -> Result<Vec<OwnedFd>> {
        check_id(id)?;
        limits.validate()?;
        let st = self.load(node)?;
        if !self.alive(&st) {
            return Err(Error::NotRunning {
                id: node.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "a view of a sibling's files",
            });
        }
        let cfg = crate::process::layer::LayerConfig {
            image: self.kept_layer(id),
            limits: limits.clone(),
            lowerdirs: lowerdirs.to_vec(),
            node: crate::process::Sibling {
                init_pid: st.init_pid.unwrap_or_default(),
                init_start_time: st.init_start_time.unwrap_or_default(),
            },
            node_id: node.to_owned(),
            uid_base: st.uid_base,
            scratch: crate::paths::MOUNT_POINT.into(),
            writable,
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = self
            .layout
            .root()
            .join(format!("layer-{}-{n}.json", std::process::id()));
        state::write_json_atomic(&config, &cfg)?;
        let got = self.layer_helper_views(id, &config);
        let _ = fs::remove_file(&config);
        got
    }

    fn layer_helper_views(&self, id: &str, config: &std::path::Path) -> Result<Vec<OwnedFd>> {
        let (ours, theirs) = crate::process::channel::pair()?;
        let mut cmd = StdCommand::new(self.helper.path());
        cmd.arg(helper::LAYER)
            .arg(config)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.arg("3");
        pass_fds_from_3(&mut cmd, [&theirs]);
        let mut child = cmd
            .spawn()
            .map_err(Error::io("run helper", &self.config.helper_exe))?;
        drop(theirs);
        let mut views = Vec::new();
        let outcome = loop {
            match crate::process::channel::recv(&ours) {
                Ok(Some(crate::process::channel::Message::Rootfs(fd))) => views.push(fd),
                Ok(Some(crate::process::channel::Message::Ready)) => break Ok(views),
                Ok(Some(crate::process::channel::Message::Failed(m))) => {
                    break Err(self.helper_error(id, m));
                }
                Ok(Some(crate::process::channel::Message::Terminal(_))) => {
                    break Err(self.helper_error(id, "the layer helper sent a terminal".into()));
                }
                Ok(None) => break Err(self.helper_error(id, "the layer helper died".into())),
                Err(e) => break Err(e),
            }
        };
        let _ = child.wait();
        outcome
    }

    /// Exists only while a create is under way (or after it crashed).
    pub(super) fn disk_image(&self, id: &str) -> PathBuf {
        self.config.disk_dir.join(format!("{id}.img"))
    }
}
