//! The privileged calls that assemble a sandbox's root filesystem, behind
//! one trait (as youki's `syscall` module): [`Kernel`] makes them, and the
//! recording implementation of the tests writes each down instead, so the
//! mount plan (idmapped lowers, the overlay, /proc and /dev, masked paths,
//! `pivot_root`) is checked in order without root.
//!
//! [`Kernel`] uses rustix where it wraps the call (the new mount API's
//! `open_tree`, `move_mount`, `fsopen`/`fsconfig`/`fsmount`, classic
//! `mount`, `umount2` and `pivot_root`). rustix has no `mount_setattr`
//! (idmapping and read-only attributes) and no `RESOLVE_*` `O_PATH` open
//! of a mount for it, so those two stay in [`crate::sys`].

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::mount::{
    FsMountFlags, FsOpenFlags, MountAttrFlags, MountFlags, MoveMountFlags, OpenTreeFlags,
    UnmountFlags,
};

use crate::sys;

/// A setting of a filesystem context (`fsconfig`).
#[derive(Debug, Clone, Copy)]
pub enum FsOption<'a> {
    /// `FSCONFIG_SET_STRING key=value` (`lowerdir+`, `upperdir`, `source`…).
    String(&'a str, &'a str),
    /// `FSCONFIG_SET_FLAG key`.
    Flag(&'a str),
}

/// The calls a root filesystem is built with. Paths are as the caller
/// names them; descriptors are owned by the caller.
pub trait Syscall {
    /// `mount(2)`: a filesystem of `fstype` from `source` on `target`, or
    /// with `MS_BIND` (and `MS_REC`) a bind mount of `source`.
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()>;

    /// A detached copy of the mount at `path` (`open_tree(OPEN_TREE_CLONE)`,
    /// with `AT_RECURSIVE` when `recursive`).
    fn open_tree_clone(&self, path: &Path, recursive: bool) -> io::Result<OwnedFd>;

    /// An `O_PATH` descriptor of `path`, to set mount attributes through.
    fn open_path(&self, path: &Path) -> io::Result<OwnedFd>;

    /// Sets (`set`) and clears (`clear`) `MOUNT_ATTR_*` on the mount `fd`;
    /// with `userns`, idmaps it to that user namespace.
    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        set: u64,
        clear: u64,
        userns: Option<BorrowedFd<'_>>,
    ) -> io::Result<()>;

    /// Attaches the detached mount `fd` on `target`.
    fn move_mount(&self, fd: BorrowedFd<'_>, target: &Path) -> io::Result<()>;

    /// A new, detached mount of a `fstype` filesystem configured with
    /// `options`, carrying the `MOUNT_ATTR_*` `attrs`.
    fn fs_mount(&self, fstype: &str, options: &[FsOption<'_>], attrs: u64) -> io::Result<OwnedFd>;

    /// Gives `path` to `uid`:`gid`.
    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()>;

    /// Makes `new_root` the root and parks the old one at `put_old`.
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;

    /// Detaches the mount at `target` (`umount2(MNT_DETACH)`).
    fn detach(&self, target: &Path) -> io::Result<()>;
}

/// The real calls.
pub struct Kernel;

impl Syscall for Kernel {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        let data = data.map(sys::cstring).transpose()?;
        let flags = MountFlags::from_bits_retain(flags as _);
        match fstype {
            Some(fstype) => rustix::mount::mount(source, target, fstype, flags, data.as_deref()),
            // A bind mount has no filesystem type.
            None => rustix::mount::mount(source, target, c"", flags, data.as_deref()),
        }
        .map_err(io::Error::from)
    }

    fn open_tree_clone(&self, path: &Path, recursive: bool) -> io::Result<OwnedFd> {
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if recursive {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        Ok(rustix::mount::open_tree(rustix::fs::CWD, path, flags)?)
    }

    fn open_path(&self, path: &Path) -> io::Result<OwnedFd> {
        sys::open_path(path)
    }

    fn mount_setattr(
        &self,
        fd: BorrowedFd<'_>,
        set: u64,
        clear: u64,
        userns: Option<BorrowedFd<'_>>,
    ) -> io::Result<()> {
        sys::mount_setattr(fd, set, clear, userns)
    }

    fn move_mount(&self, fd: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        Ok(rustix::mount::move_mount(
            fd,
            c"",
            rustix::fs::CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )?)
    }

    fn fs_mount(&self, fstype: &str, options: &[FsOption<'_>], attrs: u64) -> io::Result<OwnedFd> {
        let context = rustix::mount::fsopen(fstype, FsOpenFlags::FSOPEN_CLOEXEC)?;
        for option in options {
            match *option {
                FsOption::String(key, value) => {
                    rustix::mount::fsconfig_set_string(&context, key, value)?
                }
                FsOption::Flag(key) => rustix::mount::fsconfig_set_flag(&context, key)?,
            }
        }
        rustix::mount::fsconfig_create(&context)?;
        Ok(rustix::mount::fsmount(
            &context,
            FsMountFlags::FSMOUNT_CLOEXEC,
            MountAttrFlags::from_bits_retain(attrs as _),
        )?)
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        Ok(rustix::process::pivot_root(new_root, put_old)?)
    }

    fn detach(&self, target: &Path) -> io::Result<()> {
        Ok(rustix::mount::unmount(target, UnmountFlags::DETACH)?)
    }
}

/// Writes every call down, in order, as one line each, and makes none; its
/// descriptors are `/dev/null`.
#[cfg(test)]
#[derive(Default)]
pub struct Recorder {
    calls: std::sync::Mutex<Vec<String>>,
}

#[cfg(test)]
impl Recorder {
    /// The calls so far, with paths under `root` written as from `root`.
    pub fn calls(&self, root: &Path) -> Vec<String> {
        let root = root.display().to_string();
        self.calls
            .lock()
            .expect("calls")
            .iter()
            .map(|c| c.replace(&format!("{root}/"), "/").replace(&root, "/"))
            .collect()
    }

    fn note(&self, call: String) {
        self.calls.lock().expect("calls").push(call);
    }

    fn fd() -> io::Result<OwnedFd> {
        Ok(std::fs::File::open("/dev/null")?.into())
    }
}

#[cfg(test)]
impl Syscall for Recorder {
    fn mount(
        &self,
        source: &str,
        target: &Path,
        fstype: Option<&str>,
        flags: libc::c_ulong,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.note(format!(
            "mount {source} {} {} {} {}",
            target.display(),
            fstype.unwrap_or("-"),
            ms_flags(flags),
            data.unwrap_or("-")
        ));
        Ok(())
    }

    fn open_tree_clone(&self, path: &Path, recursive: bool) -> io::Result<OwnedFd> {
        let how = if recursive { " recursive" } else { "" };
        self.note(format!("clone {}{how}", path.display()));
        Recorder::fd()
    }

    fn open_path(&self, path: &Path) -> io::Result<OwnedFd> {
        self.note(format!("open {}", path.display()));
        Recorder::fd()
    }

    fn mount_setattr(
        &self,
        _fd: BorrowedFd<'_>,
        set: u64,
        clear: u64,
        userns: Option<BorrowedFd<'_>>,
    ) -> io::Result<()> {
        let idmap = if userns.is_some() { " to userns" } else { "" };
        self.note(format!("setattr +{} -{}{idmap}", attrs(set), attrs(clear)));
        Ok(())
    }

    fn move_mount(&self, _fd: BorrowedFd<'_>, target: &Path) -> io::Result<()> {
        self.note(format!("attach {}", target.display()));
        Ok(())
    }

    fn fs_mount(
        &self,
        fstype: &str,
        options: &[FsOption<'_>],
        attrs_set: u64,
    ) -> io::Result<OwnedFd> {
        let options: Vec<String> = options
            .iter()
            .map(|o| match o {
                FsOption::String(key, value) => format!("{key}={value}"),
                FsOption::Flag(key) => (*key).to_owned(),
            })
            .collect();
        self.note(format!(
            "fsmount {fstype} {} +{}",
            options.join(","),
            attrs(attrs_set)
        ));
        Recorder::fd()
    }

    fn chown(&self, path: &Path, uid: u32, gid: u32) -> io::Result<()> {
        self.note(format!("chown {} {uid}:{gid}", path.display()));
        Ok(())
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.note(format!(
            "pivot_root {} {}",
            new_root.display(),
            put_old.display()
        ));
        Ok(())
    }

    fn detach(&self, target: &Path) -> io::Result<()> {
        self.note(format!("detach {}", target.display()));
        Ok(())
    }
}

/// The names of the bits of `bits` found in `names`, `|`-joined, or `-`.
#[cfg(test)]
fn named(bits: u64, names: &[(u64, &str)]) -> String {
    let set: Vec<&str> = names
        .iter()
        .filter(|(bit, _)| bits & bit != 0)
        .map(|(_, name)| *name)
        .collect();
    if set.is_empty() {
        "-".into()
    } else {
        set.join("|")
    }
}

#[cfg(test)]
fn ms_flags(flags: libc::c_ulong) -> String {
    let names = [
        (libc::MS_RDONLY, "ro"),
        (libc::MS_NOSUID, "nosuid"),
        (libc::MS_NODEV, "nodev"),
        (libc::MS_NOEXEC, "noexec"),
        (libc::MS_BIND, "bind"),
        (libc::MS_REC, "rec"),
    ];
    // `c_ulong` is `u64` on the 64-bit Linux this runtime runs on.
    named(flags, &names)
}

#[cfg(test)]
fn attrs(bits: u64) -> String {
    named(
        bits,
        &[
            (sys::MOUNT_ATTR_RDONLY, "ro"),
            (sys::MOUNT_ATTR_NOSUID, "nosuid"),
            (sys::MOUNT_ATTR_NODEV, "nodev"),
            (sys::MOUNT_ATTR_IDMAP, "idmap"),
        ],
    )
}
