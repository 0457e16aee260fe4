//! The sandbox's root filesystem, built in two halves.
//!
//! Host half ([`build_overlay`], run by the create helper as host root):
//! each image layer is cloned with `open_tree(OPEN_TREE_CLONE)` and idmapped
//! with `mount_setattr(MOUNT_ATTR_IDMAP)` to the sandbox's user namespace,
//! so files owned by host uid 0 appear owned by root inside while the
//! shared layer directories are never chowned or written. The writable
//! layer ([`writable_layer`]) is a fresh ext4 filesystem of the disk limit's
//! size on a loop device (the only thing a sandbox can fill, on disk, gone
//! with the sandbox). Overlayfs is then
//! assembled with `fsopen`/`fsconfig` (`lowerdir+` per layer) into a
//! *detached* mount: nothing appears in the host's mount table, so a
//! crashed server leaves no mount behind.
//!
//! Why idmapped layers rather than alternatives: chowning a copy of each
//! layer per sandbox costs a full tree walk and disk per sandbox; mounting
//! overlay inside the user namespace without idmapping shows every layer
//! file as `nobody`. Idmapping costs two system calls per layer and keeps
//! one shared copy on disk: the whole overlay (tmpfs, two idmapped layers,
//! overlay mount) took 0.4–0.5 ms of a sandbox start, measured.
//!
//! Why ext4 on a loop device for the writable layer: memory and disk are
//! two limits. A tmpfs (the first design) is charged to the memory cgroup,
//! so filling it killed the whole sandbox at its memory limit long before
//! its disk limit; an ext4 of exactly the disk limit answers ENOSPC and
//! the sandbox lives on (its page cache is reclaimable, written back to
//! disk). Project quotas would need an xfs, or an ext4 made with the
//! `project` feature and mounted `prjquota`, which this host's filesystem
//! is not. The image is a sparse file under the runtime's disk directory,
//! unlinked as soon as the loop device holds it, on a device that detaches
//! itself when the sandbox's mount namespace goes: a crash leaves no mount,
//! device or file behind. Measured here: mke2fs of a 1 GiB image 10–20 ms
//! (656 KiB written), so it runs once per disk limit into a template that
//! each sandbox copies (its data extents only, well under 1 ms); loop
//! attach and mount 1–2 ms. The ext4 and its loop device are torn down in
//! the init's exit, which made start-run-exit of `true` about 30 ms slower
//! than on a tmpfs.
//!
//! Sandbox half ([`enter`], run by the sandbox's init in its new mount
//! namespace): attach that mount, add /proc, read-only /sys, a minimal /dev,
//! /etc/{hosts,hostname,resolv.conf} and the requested bind mounts, mask
//! /proc paths as Docker does, then `pivot_root` and detach the old root.

use std::fs;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::spec::{Limits, SandboxSpec};
use crate::sys;
use crate::syscall::{FsOption, Kernel, Syscall};

/// Files Docker hides under `/dev/null` or an empty read-only tmpfs.
const MASKED: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths Docker leaves visible but read-only.
const READONLY: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Device nodes bind-mounted from the host (a user namespace cannot mknod).
const DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "tty"];

/// Builds the detached overlay for a sandbox whose user namespace is `userns`
/// and whose root maps to host id `root_uid`, over `lowerdirs` (topmost
/// first) and the writable layer `writable` (fresh, or kept from the
/// sandbox's last run).
///
/// Runs in the sandbox's mount namespace before its init uses it:
/// overlayfs takes private clones of its layers and accepts only layers
/// attached in the caller's namespace (detached `open_tree` clones are
/// refused with EINVAL on this kernel), so the writable layer is mounted on
/// `scratch` and each idmapped layer is attached inside it. Those
/// attachments vanish with the old root at `pivot_root`; the overlay keeps
/// its own clones.
pub fn build_overlay(
    sys: &dyn Syscall,
    lowerdirs: &[PathBuf],
    userns: &OwnedFd,
    root_uid: u32,
    scratch: &Path,
    writable: &OwnedFd,
) -> Result<OwnedFd> {
    sys.move_mount(writable.as_fd(), scratch)
        .map_err(Error::io("attach writable layer", scratch))?;
    let upper = scratch.join(UPPER);
    let work = scratch.join("work");
    for d in [&upper, &work] {
        // The upper root becomes the sandbox's `/`: owned by root inside.
        ensure_dir(sys, d, root_uid)?;
    }
    let layers = attach_layers(sys, lowerdirs, userns, scratch)?;
    let (upper, work) = (path_str(&upper)?, path_str(&work)?);
    overlay(
        sys,
        &layers,
        &[
            FsOption::String("upperdir", &upper),
            FsOption::String("workdir", &work),
        ],
        sys::MOUNT_ATTR_NODEV,
    )
}

/// The writable layer's own tree, in the directory its filesystem is
/// attached at.
const UPPER: &str = "upper";

/// The root of a stopped sandbox as it would start, open for writing, and
/// its writable layer's own tree (what a commit reads), from one mount.
pub struct WritableViews {
    pub root: OwnedFd,
    pub upper: OwnedFd,
}

/// [`WritableViews`] from the root [`build_overlay`] made over `scratch`.
pub fn writable_views(root: OwnedFd, scratch: &Path) -> Result<WritableViews> {
    let upper = scratch.join(UPPER);
    Ok(WritableViews {
        root,
        upper: fs::File::open(&upper)
            .map_err(Error::io("open", &upper))?
            .into(),
    })
}

/// Read-only views of a kept writable layer and the image under it, made
/// while the sandbox is stopped or running: what `docker diff`, `commit`,
/// `export` and `cp` read. Owners show as host ids of the sandbox's range,
/// image layers included (they are idmapped as in the sandbox).
pub struct LayerViews {
    /// The writable layer's own tree, overlay whiteouts included.
    pub upper: OwnedFd,
    /// The image's layers merged: what the sandbox started from.
    pub image: OwnedFd,
    /// The sandbox's root as it sees it, without its mounts.
    pub merged: OwnedFd,
}

/// Builds [`LayerViews`]; `writable` is the kept layer's filesystem, and
/// `scratch` a directory of a mount namespace private to the caller.
pub fn layer_views(
    sys: &dyn Syscall,
    lowerdirs: &[PathBuf],
    userns: &OwnedFd,
    root_uid: u32,
    scratch: &Path,
    writable: &OwnedFd,
) -> Result<LayerViews> {
    sys.move_mount(writable.as_fd(), scratch)
        .map_err(Error::io("attach writable layer", scratch))?;
    let upper = scratch.join(UPPER);
    ensure_dir(sys, &upper, root_uid)?;
    let empty = scratch.join("empty");
    ensure_dir(sys, &empty, root_uid)?;
    let open = |p: &Path| -> Result<OwnedFd> {
        Ok(fs::File::open(p).map_err(Error::io("open", p))?.into())
    };
    let layers = attach_layers(sys, lowerdirs, userns, scratch)?;
    let read_only = sys::MOUNT_ATTR_NODEV | sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID;
    let image = match layers.as_slice() {
        [] => open(&empty)?,
        [only] => open(only)?,
        _ => overlay(sys, &layers, &[], read_only)?,
    };
    let merged = match layers.as_slice() {
        [] => open(&upper)?,
        _ => overlay(
            sys,
            &[std::slice::from_ref(&upper), &layers].concat(),
            &[],
            read_only,
        )?,
    };
    Ok(LayerViews {
        upper: open(&upper)?,
        image,
        merged,
    })
}

/// A detached overlay of `layers` (topmost first; two at least without
/// an upper layer) with the `extra` options, carrying `attrs`.
fn overlay(
    sys: &dyn Syscall,
    layers: &[PathBuf],
    extra: &[FsOption<'_>],
    attrs: u64,
) -> Result<OwnedFd> {
    let lowers = layers
        .iter()
        .map(|dir| path_str(dir))
        .collect::<Result<Vec<_>>>()?;
    let mut options: Vec<FsOption<'_>> = lowers
        .iter()
        .map(|dir| FsOption::String("lowerdir+", dir))
        .collect();
    options.extend_from_slice(extra);
    sys.fs_mount("overlay", &options, attrs)
        .map_err(Error::sys("create overlay mount"))
}

/// Each image layer cloned, idmapped to `userns` and attached at
/// `scratch/l<i>`; returns those paths, topmost first.
fn attach_layers(
    sys: &dyn Syscall,
    lowerdirs: &[PathBuf],
    userns: &OwnedFd,
    scratch: &Path,
) -> Result<Vec<PathBuf>> {
    lowerdirs
        .iter()
        .enumerate()
        .map(|(i, dir)| {
            let layer = sys
                .open_tree_clone(dir, false)
                .map_err(Error::io("clone layer mount", dir))?;
            sys.mount_setattr(
                layer.as_fd(),
                sys::MOUNT_ATTR_IDMAP | sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NODEV,
                0,
                Some(userns.as_fd()),
            )
            .map_err(Error::io("idmap layer", dir))?;
            let at = scratch.join(format!("l{i}"));
            match fs::create_dir(&at) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => {
                    return Err(Error::io("create", &at)(e));
                }
                _ => {}
            }
            sys.move_mount(layer.as_fd(), &at)
                .map_err(Error::io("attach layer", &at))?;
            Ok(at)
        })
        .collect()
}

/// A directory owned by host id `owner`, unless it exists already (a kept
/// layer's, whose owner is the sandbox's business).
fn ensure_dir(sys: &dyn Syscall, dir: &Path, owner: u32) -> Result<()> {
    match fs::create_dir(dir) {
        Ok(()) => sys
            .chown(dir, owner, owner)
            .map_err(Error::io("chown", dir)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create", dir)(e)),
    }
}

/// The sandbox's writable layer, as a detached mount: an ext4 filesystem of
/// `limits.disk_bytes` bytes and `limits.disk_inodes` inodes in a sparse
/// file at `image`. A fresh layer's file is gone from the directory when
/// this returns; a `kept` one stays, and is taken up again if it exists.
///
/// The filesystem is a copy of a template made once per size and inode
/// count in the same directory: copying its few hundred KiB of data
/// extents costs well under a millisecond where running mke2fs cost
/// 10–20 ms per sandbox.
pub fn writable_layer(image: &Path, limits: &Limits, kept: bool) -> Result<OwnedFd> {
    if kept && image.exists() {
        return mount_kept(image);
    }
    let template = template(image, limits)?;
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(image)
        .map_err(Error::io("create writable layer", image))?;
    let made = (|| {
        sys::copy_data(&template, &file).map_err(Error::io("copy writable layer", image))?;
        file.set_len(limits.disk_bytes)
            .map_err(Error::io("size writable layer", image))?;
        let (dev, _held) =
            sys::loop_attach(&file).map_err(Error::io("attach loop device", image))?;
        mount_ext4(&dev)
    })();
    if !kept || made.is_err() {
        let _ = fs::remove_file(image);
    }
    made
}

/// A kept layer's filesystem, mounted again. While anything still holds
/// it (its running sandbox, or a view of it) it stays on the loop device
/// it has, and mounting that device again shares its one superblock: two
/// loop devices over one image would be two ext4 drivers writing the same
/// blocks.
fn mount_kept(image: &Path) -> Result<OwnedFd> {
    if let Some((dev, _held)) = sys::loop_device_of(image) {
        return mount_ext4(&dev);
    }
    let file = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .map_err(Error::io("open writable layer", image))?;
    let (dev, _held) = sys::loop_attach(&file).map_err(Error::io("attach loop device", image))?;
    mount_ext4(&dev)
}

fn mount_ext4(dev: &str) -> Result<OwnedFd> {
    // The inode tables stay unwritten until used (mke2fs marks them
    // uninitialised), instead of a kernel thread zeroing them all.
    let options = [
        FsOption::String("source", dev),
        FsOption::Flag("noinit_itable"),
    ];
    Kernel
        .fs_mount(
            "ext4",
            &options,
            sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
        )
        .map_err(Error::io("mount writable layer", dev))
}

/// The empty filesystem every writable layer of these limits starts as,
/// next to `image`; made on first use (through a rename, so concurrent
/// creators never see half of one).
fn template(image: &Path, limits: &Limits) -> Result<fs::File> {
    let dir = image.parent().unwrap_or(Path::new("."));
    let path = dir.join(format!(
        "template-{}-{}.ext4",
        limits.disk_bytes, limits.disk_inodes
    ));
    if !path.exists() {
        let tmp = dir.join(format!("template.{}.tmp", std::process::id()));
        let made = (|| {
            fs::File::create(&tmp)
                .and_then(|f| f.set_len(limits.disk_bytes))
                .map_err(Error::io("create", &tmp))?;
            mkfs(&tmp, limits.disk_inodes)?;
            fs::rename(&tmp, &path).map_err(Error::io("rename", &path))
        })();
        if made.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        made?;
    }
    fs::File::open(&path).map_err(Error::io("open", &path))
}

/// Debian's e2fsprogs; the helper runs with an empty environment, so
/// without a `PATH` to search.
const MKE2FS: [&str; 2] = ["/usr/sbin/mke2fs", "/sbin/mke2fs"];

fn mkfs(image: &Path, inodes: u64) -> Result<()> {
    let Some(mke2fs) = MKE2FS.into_iter().find(|p| Path::new(p).exists()) else {
        return Err(Error::InvalidSpec(
            "mke2fs is missing: install e2fsprogs (writable layers are ext4)".into(),
        ));
    };
    let out = std::process::Command::new(mke2fs)
        .args([
            "-q",
            "-F",
            "-t",
            "ext4",
            "-O",
            "^has_journal",
            "-m",
            "0",
            "-N",
        ])
        .arg(inodes.to_string())
        .args(["-E", "lazy_itable_init=1,nodiscard"])
        .arg(image)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(Error::io("run", mke2fs))?;
    if !out.status.success() {
        return Err(Error::Sys {
            what: "make the writable layer's filesystem",
            source: std::io::Error::other(format!(
                "{mke2fs} {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            )),
        });
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<String> {
    p.to_str()
        .map(str::to_owned)
        .ok_or_else(|| Error::InvalidSpec(format!("path {} is not UTF-8", p.display())))
}

/// Runs in the sandbox's init, still as host-uid 0 but already in its own
/// user and mount namespaces: attach the rootfs and make it the cwd. The
/// host path of the mount point is resolved now, before we become the
/// namespace's root (which cannot traverse the root-only state directory).
pub fn attach(sys: &dyn Syscall, overlay: &OwnedFd, mountpoint: &Path) -> Result<()> {
    // No `MS_REC | MS_PRIVATE` pass over the copied tree: a mount namespace
    // owned by a new user namespace gets the host's shared mounts as
    // slaves, which never propagate back, and everything that stays after
    // pivot_root is mounted fresh (private) by us.
    sys.move_mount(overlay.as_fd(), mountpoint)
        .map_err(Error::io("attach rootfs", mountpoint))?;
    std::env::set_current_dir(mountpoint).map_err(Error::io("enter rootfs", mountpoint))
}

/// Detached clones of the spec's bind-mount sources, made on the host side;
/// those `in_node` are looked up in the node whose init is `node_pid`.
pub fn clone_binds(
    sys: &dyn Syscall,
    spec: &SandboxSpec,
    node_pid: Option<i32>,
) -> Result<Vec<OwnedFd>> {
    spec.mounts
        .iter()
        .map(|m| {
            let fd = match (m.in_node, node_pid) {
                (true, Some(pid)) => clone_from_node(pid, &m.source)?,
                _ => sys
                    .open_tree_clone(&m.source, true)
                    .map_err(Error::io("clone bind mount", &m.source))?,
            };
            let mut set = sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV;
            if m.readonly {
                set |= sys::MOUNT_ATTR_RDONLY;
            }
            sys.mount_setattr(fd.as_fd(), set, 0, None)
                .map_err(Error::io("restrict bind mount", &m.source))?;
            Ok(fd)
        })
        .collect()
}

/// A detached clone of `path` as the node sees it: resolved with the
/// node's root as `/` (its symlinks cannot lead to a host path), cloned
/// from inside the node's mount namespace, which `open_tree` requires.
/// Runs in the single-threaded create helper, still host root.
fn clone_from_node(pid: i32, path: &Path) -> Result<OwnedFd> {
    let open = |p: String| -> Result<fs::File> { fs::File::open(&p).map_err(Error::io("open", p)) };
    let root = open(format!("/proc/{pid}/root"))?;
    let relative = match path.strip_prefix("/").unwrap_or(path) {
        p if p.as_os_str().is_empty() => Path::new("."),
        p => p,
    };
    let source = sys::open_in_root(root.as_fd(), relative).map_err(|e| {
        Error::InvalidSpec(format!(
            "{} cannot be mounted from the node: {e}",
            path.display()
        ))
    })?;
    let ours = open("/proc/self/ns/mnt".into())?;
    let node = open(format!("/proc/{pid}/ns/mnt"))?;
    let enter = |ns: &fs::File| {
        // SAFETY: plain syscall with a namespace descriptor; single-threaded.
        sys::check(unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(ns), libc::CLONE_NEWNS) })
            .map_err(Error::sys("switch mount namespace"))
    };
    enter(&node)?;
    let cloned = sys::open_tree_clone_fd(source.as_fd());
    enter(&ours)?;
    cloned.map_err(|e| {
        Error::InvalidSpec(format!(
            "{} cannot be mounted from the node: {e}",
            path.display()
        ))
    })
}

fn ensure_target(target: &Path, dir: bool) -> Result<()> {
    if let Some(parent) = target.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(parent)
            .map_err(Error::io("create", parent))?;
    }
    let r = if dir {
        fs::DirBuilder::new().mode(0o755).create(target)
    } else {
        fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(target)
            .map(drop)
    };
    match r {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io("create mount point", target)(e)),
    }
}

/// `path` (absolute, as the sandbox names it) under `root`.
fn at(root: &Path, path: &str) -> PathBuf {
    root.join(path.trim_start_matches('/'))
}

fn mnt(
    sys: &dyn Syscall,
    source: &str,
    target: &Path,
    fstype: &str,
    flags: libc::c_ulong,
    data: Option<&str>,
) -> Result<()> {
    ensure_target(target, true)?;
    sys.mount(source, target, Some(fstype), flags, data)
        .map_err(Error::io("mount", target))
}

/// Where the host's root waits while the sandbox's is populated.
const OLD_ROOT: &str = "/.layerlab-old-root";

/// How the sandbox's init names its rootfs: `rootfs` before `pivot_root`
/// (the attached rootfs is its cwd: `.`), `root` after it (`/`). Tests
/// name a temporary directory for both.
#[derive(Debug, Clone, Copy)]
pub struct Pivot<'a> {
    pub rootfs: &'a Path,
    pub root: &'a Path,
}

impl Pivot<'static> {
    /// The init's own view: its cwd, which becomes `/`.
    pub fn in_place() -> Self {
        Pivot {
            rootfs: Path::new("."),
            root: Path::new("/"),
        }
    }
}

/// Runs in the sandbox's init as root of its user namespace, with the cwd at
/// the attached rootfs: pivots into it, populates it, then detaches the
/// host's root.
///
/// Population happens *after* `pivot_root`, with the old root parked at
/// [`OLD_ROOT`]: every path we create or mount on is then resolved with the
/// sandbox's rootfs as `/`, so a hostile image's symlinks (`etc -> /tmp`,
/// `var/run -> /../../..`) can only lead elsewhere inside the rootfs, never
/// to a host directory. Only the fixed device and bind sources are taken
/// from the parked host root. Keeping it mounted until then is also what
/// lets us mount proc and sysfs at all (the kernel wants a fully visible
/// instance of each in the namespace first).
pub fn pivot_and_populate(
    sys: &dyn Syscall,
    spec: &SandboxSpec,
    binds: &[OwnedFd],
    pivot: Pivot<'_>,
) -> Result<()> {
    let park = at(pivot.rootfs, OLD_ROOT);
    // An entry of that name in the image is replaced, not followed.
    match fs::symlink_metadata(&park) {
        Ok(m) if m.is_dir() => fs::remove_dir(&park).map_err(Error::io("remove", &park))?,
        Ok(_) => fs::remove_file(&park).map_err(Error::io("remove", &park))?,
        Err(_) => {}
    }
    fs::DirBuilder::new()
        .mode(0o700)
        .create(&park)
        .map_err(Error::io("create", &park))?;
    sys.pivot_root(pivot.rootfs, &park)
        .map_err(Error::sys("pivot_root"))?;
    populate(sys, spec, binds, pivot.root)?;
    let old_root = at(pivot.root, OLD_ROOT);
    sys.detach(&old_root)
        .map_err(Error::sys("detach old root"))?;
    fs::remove_dir(&old_root).map_err(Error::io("remove", &old_root))
}

fn populate(sys: &dyn Syscall, spec: &SandboxSpec, binds: &[OwnedFd], root: &Path) -> Result<()> {
    let nosuid_nodev_noexec = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    mnt(
        sys,
        "proc",
        &at(root, "/proc"),
        "proc",
        nosuid_nodev_noexec,
        None,
    )?;
    mnt(
        sys,
        "sysfs",
        &at(root, "/sys"),
        "sysfs",
        nosuid_nodev_noexec | libc::MS_RDONLY,
        None,
    )?;
    mnt(
        sys,
        "tmpfs",
        &at(root, "/dev"),
        "tmpfs",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("mode=755,size=65536k"),
    )?;
    for d in DEVICES {
        let target = at(root, &format!("/dev/{d}"));
        fs::File::create(&target).map_err(Error::io("create device mount point", &target))?;
        let source = at(root, &format!("{OLD_ROOT}/dev/{d}"));
        sys.mount(&path_str(&source)?, &target, None, libc::MS_BIND, None)
            .map_err(Error::io("bind device", &target))?;
    }
    mnt(
        sys,
        "devpts",
        &at(root, "/dev/pts"),
        "devpts",
        libc::MS_NOSUID | libc::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )?;
    mnt(
        sys,
        "shm",
        &at(root, "/dev/shm"),
        "tmpfs",
        nosuid_nodev_noexec,
        Some("mode=1777,size=65536k"),
    )?;
    mnt(
        sys,
        "mqueue",
        &at(root, "/dev/mqueue"),
        "mqueue",
        nosuid_nodev_noexec,
        None,
    )?;
    for (link, to) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        let link = at(root, link);
        symlink(to, &link).map_err(Error::io("create symlink", &link))?;
    }
    write_etc(spec, root)?;
    mask_proc(sys, root)?;
    for (fd, m) in binds.iter().zip(&spec.mounts) {
        let target = at(root, &m.target);
        // Asked of the clone itself: the source's host path means nothing here.
        ensure_target(&target, is_dir(fd))?;
        sys.move_mount(fd.as_fd(), &target)
            .map_err(Error::io("attach bind mount", &target))?;
    }
    for (path, to) in &spec.links {
        let link = at(root, path);
        if let Some(parent) = link.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(parent)
                .map_err(Error::io("create", parent))?;
        }
        match fs::symlink_metadata(&link) {
            Ok(m) if m.is_dir() => fs::remove_dir_all(&link).map_err(Error::io("remove", &link))?,
            Ok(_) => fs::remove_file(&link).map_err(Error::io("remove", &link))?,
            Err(_) => {}
        }
        symlink(to, &link).map_err(Error::io("create symlink", &link))?;
    }
    Ok(())
}

fn is_dir(fd: &OwnedFd) -> bool {
    // SAFETY: stat is plain data filled by fstat on a valid descriptor.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstat(std::os::fd::AsRawFd::as_raw_fd(fd), &mut st) == 0
            && st.st_mode & libc::S_IFMT == libc::S_IFDIR
    }
}

fn write_etc(spec: &SandboxSpec, root: &Path) -> Result<()> {
    let etc = at(root, "/etc");
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&etc)
        .map_err(Error::io("create", &etc))?;
    let hosts = crate::spec::hosts_file(&spec.hostname, &spec.hosts);
    // No outside resolver is reachable; an empty search list keeps lookups
    // local and fast instead of timing out.
    let files = [
        ("/etc/hostname", format!("{}\n", spec.hostname)),
        ("/etc/hosts", hosts),
        (
            "/etc/resolv.conf",
            "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n".to_owned(),
        ),
    ];
    for (path, content) in files {
        let path = at(root, path);
        // A symlink in the image must not redirect our write elsewhere.
        let _ = fs::remove_file(&path);
        fs::write(&path, content).map_err(Error::io("write", &path))?;
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
            .map_err(Error::io("chmod", &path))?;
    }
    Ok(())
}

fn mask_proc(sys: &dyn Syscall, root: &Path) -> Result<()> {
    for p in MASKED {
        let path = at(root, p);
        let Ok(meta) = fs::symlink_metadata(&path) else {
            continue;
        };
        let r = if meta.is_dir() {
            sys.mount(
                "tmpfs",
                &path,
                Some("tmpfs"),
                libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
                Some("size=0"),
            )
        } else {
            let null = at(root, "/dev/null");
            sys.mount(&path_str(&null)?, &path, None, libc::MS_BIND, None)
        };
        r.map_err(Error::io("mask", &path))?;
    }
    for p in READONLY {
        let path = at(root, p);
        if fs::symlink_metadata(&path).is_err() {
            continue;
        }
        sys.mount(
            &path_str(&path)?,
            &path,
            None,
            libc::MS_BIND | libc::MS_REC,
            None,
        )
        .map_err(Error::io("bind", &path))?;
        let fd = sys.open_path(&path).map_err(Error::io("open", &path))?;
        sys.mount_setattr(
            fd.as_fd(),
            sys::MOUNT_ATTR_RDONLY | sys::MOUNT_ATTR_NOSUID | sys::MOUNT_ATTR_NODEV,
            0,
            None,
        )
        .map_err(Error::io("make read-only", &path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::BindMount;
    use crate::syscall::Recorder;

    fn null() -> OwnedFd {
        fs::File::open("/dev/null").expect("/dev/null").into()
    }

    #[test]
    fn the_overlay_idmaps_each_layer_and_stacks_them_on_the_writable_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let lowers = [dir.path().join("layer-top"), dir.path().join("layer-base")];
        let scratch = dir.path().join("scratch");
        fs::create_dir(&scratch).expect("scratch");
        let sys = Recorder::default();
        build_overlay(&sys, &lowers, &null(), 100_000, &scratch, &null()).expect("plan");
        assert_eq!(
            sys.calls(dir.path()),
            [
                "attach /scratch",
                "chown /scratch/upper 100000:100000",
                "chown /scratch/work 100000:100000",
                "clone /layer-top",
                "setattr +ro|nodev|idmap -- to userns",
                "attach /scratch/l0",
                "clone /layer-base",
                "setattr +ro|nodev|idmap -- to userns",
                "attach /scratch/l1",
                "fsmount overlay lowerdir+=/scratch/l0,lowerdir+=/scratch/l1,\
                 upperdir=/scratch/upper,workdir=/scratch/work +nodev",
            ]
        );
    }

    #[test]
    fn the_root_is_pivoted_populated_masked_and_the_host_root_detached() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        // What the kernel's proc shows there: a masked file and directory,
        // and a path made read-only.
        fs::create_dir_all(root.join("proc/scsi")).expect("proc/scsi");
        fs::create_dir_all(root.join("proc/sys")).expect("proc/sys");
        fs::File::create(root.join("proc/kcore")).expect("proc/kcore");
        let mut spec = SandboxSpec::new("plan", Vec::new());
        spec.mounts.push(BindMount {
            source: PathBuf::from("/var/lib/something"),
            target: "/run/engine.sock".into(),
            readonly: false,
            in_node: false,
        });
        spec.links
            .push(("/var/run/docker.sock".into(), "/run/engine.sock".into()));
        let sys = Recorder::default();
        pivot_and_populate(&sys, &spec, &[null()], Pivot { rootfs: root, root }).expect("plan");
        let devices = DEVICES
            .iter()
            .map(|d| format!("mount /.layerlab-old-root/dev/{d} /dev/{d} - bind -"));
        let expected: Vec<String> = [
            "pivot_root / /.layerlab-old-root",
            "mount proc /proc proc nosuid|nodev|noexec -",
            "mount sysfs /sys sysfs ro|nosuid|nodev|noexec -",
            "mount tmpfs /dev tmpfs nosuid|noexec mode=755,size=65536k",
        ]
        .map(String::from)
        .into_iter()
        .chain(devices)
        .chain(
            [
                "mount devpts /dev/pts devpts nosuid|noexec newinstance,ptmxmode=0666,mode=0620,gid=5",
                "mount shm /dev/shm tmpfs nosuid|nodev|noexec mode=1777,size=65536k",
                "mount mqueue /dev/mqueue mqueue nosuid|nodev|noexec -",
                "mount /dev/null /proc/kcore - bind -",
                "mount tmpfs /proc/scsi tmpfs ro|nosuid|nodev|noexec size=0",
                "mount /proc/sys /proc/sys - bind|rec -",
                "open /proc/sys",
                "setattr +ro|nosuid|nodev --",
                "attach /run/engine.sock",
                "detach /.layerlab-old-root",
            ]
            .map(String::from),
        )
        .collect();
        assert_eq!(sys.calls(root), expected);
        assert_eq!(
            fs::read_to_string(root.join("etc/hostname")).expect("hostname"),
            "node1\n"
        );
        assert_eq!(
            fs::read_link(root.join("var/run/docker.sock")).expect("link"),
            Path::new("/run/engine.sock")
        );
        assert_eq!(
            fs::read_link(root.join("dev/ptmx")).expect("ptmx"),
            Path::new("pts/ptmx")
        );
        assert!(
            !root.join(".layerlab-old-root").exists(),
            "the park is gone"
        );
    }

    #[test]
    fn an_image_entry_where_the_host_root_is_parked_is_replaced_not_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let outside = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        symlink(outside.path(), root.join(".layerlab-old-root")).expect("hostile link");
        let sys = Recorder::default();
        pivot_and_populate(
            &sys,
            &SandboxSpec::new("plan", Vec::new()),
            &[],
            Pivot { rootfs: root, root },
        )
        .expect("plan");
        assert_eq!(sys.calls(root)[0], "pivot_root / /.layerlab-old-root");
        assert!(outside.path().exists(), "the link's target was left alone");
        assert_eq!(fs::read_dir(outside.path()).expect("read").count(), 0);
    }
}
