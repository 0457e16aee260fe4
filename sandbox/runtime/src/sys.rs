//! Thin wrappers over the kernel calls that neither `libc` nor rustix wraps
//! for us: `mount_setattr`, `open_tree` of a descriptor, `openat2` with
//! `RESOLVE_IN_ROOT`, `setns` on a pidfd, `close_range`, a fork-like
//! `clone` with namespace flags and the loop device ioctls. (The mount
//! calls rustix does wrap are made through [`crate::syscall::Kernel`].)
//!
//! Every wrapper turns `-1`/`errno` into `std::io::Error` and returns owned
//! descriptors, so callers can use `?` and never leak a descriptor.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::Path;

pub const MOUNT_ATTR_RDONLY: u64 = 0x1;
pub const MOUNT_ATTR_NOSUID: u64 = 0x2;
pub const MOUNT_ATTR_NODEV: u64 = 0x4;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `struct mount_attr`, first published version (`MOUNT_ATTR_SIZE_VER0`).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn cvt(ret: libc::c_long) -> io::Result<libc::c_long> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

fn cvt_fd(ret: libc::c_long) -> io::Result<OwnedFd> {
    let fd = cvt(ret)? as RawFd;
    // SAFETY: the kernel just returned this descriptor to us and nobody else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub fn cstring(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in string"))
}

pub fn cpath(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "nul byte in path"))
}

/// A detached copy of the mount tree at the file `fd` refers to.
pub fn open_tree_clone_fd(fd: BorrowedFd<'_>) -> io::Result<OwnedFd> {
    use rustix::mount::OpenTreeFlags;
    let flags = OpenTreeFlags::OPEN_TREE_CLONE
        | OpenTreeFlags::AT_RECURSIVE
        | OpenTreeFlags::OPEN_TREE_CLOEXEC
        | OpenTreeFlags::AT_EMPTY_PATH;
    Ok(rustix::mount::open_tree(fd, c"", flags)?)
}

/// Opens `path` as an `O_PATH` descriptor with `root` as `/` for its
/// resolution: `..` and absolute symlinks stay inside `root`, and no
/// magic link (`/proc/*/root`) is followed out of it.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_IN_ROOT: u64 = 0x10;
    let p = cpath(path)?;
    let how = OpenHow {
        flags: (libc::O_PATH | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid descriptor, NUL-terminated path and a struct of the
    // size passed.
    cvt_fd(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })
}

/// Sets mount attributes on a detached or attached mount referred to by `fd`.
pub fn mount_setattr(
    fd: BorrowedFd<'_>,
    set: u64,
    clr: u64,
    userns: Option<BorrowedFd<'_>>,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clr,
        propagation: 0,
        userns_fd: userns.map(|f| f.as_raw_fd() as u64).unwrap_or(0),
    };
    let empty = c"";
    // SAFETY: attr is a valid struct mount_attr of the size we pass.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH as libc::c_uint,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
    .map(drop)
}

pub fn pidfd_open(pid: libc::pid_t) -> io::Result<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(pid)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "pid 0 has no pidfd"))?;
    Ok(rustix::process::pidfd_open(
        pid,
        rustix::process::PidfdFlags::empty(),
    )?)
}

/// Joins several namespaces of the process behind `pidfd` at once; the kernel
/// orders the joins (user namespace first) and applies them atomically.
pub fn setns_pidfd(pidfd: BorrowedFd<'_>, nstypes: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall.
    cvt(unsafe { libc::setns(pidfd.as_raw_fd(), nstypes) } as libc::c_long).map(drop)
}

/// Closes every descriptor from `first` upwards.
pub fn close_from(first: libc::c_uint) -> io::Result<()> {
    // SAFETY: plain syscall; descriptors above `first` are not owned by Rust
    // objects at the call sites (they run before any are opened or right
    // before exec).
    cvt(unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, 0) }).map(drop)
}

/// `clone` without a new stack: the child continues from this call like
/// after `fork`, in the new namespaces given by `flags`.
///
/// # Safety
/// Only call from a single-threaded process: the child must not depend on
/// locks held by other threads.
pub unsafe fn clone_fork(flags: libc::c_ulong) -> io::Result<libc::pid_t> {
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone,
            flags | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    cvt(ret).map(|p| p as libc::pid_t)
}

pub fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// An `O_PATH` descriptor: names a file without opening it for I/O (works
/// on write-only files such as /proc/sysrq-trigger).
pub fn open_path(path: &Path) -> io::Result<OwnedFd> {
    let p = cpath(path)?;
    // SAFETY: valid C string.
    let fd = check(unsafe { libc::open(p.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LOOP_GET_STATUS64: libc::c_ulong = 0x4C05;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    device: u64,
    inode: u64,
    rdevice: u64,
    offset: u64,
    sizelimit: u64,
    number: u32,
    encrypt_type: u32,
    encrypt_key_size: u32,
    flags: u32,
    file_name: [u8; 64],
    crypt_name: [u8; 64],
    encrypt_key: [u8; 32],
    init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// The loop device `image` is attached to, if any, opened (so it cannot
/// detach itself meanwhile) and checked by device and inode number: the
/// name in sysfs alone could be a device reused for another file since.
pub fn loop_device_of(image: &Path) -> Option<(String, OwnedFd)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(image).ok()?;
    let wanted = image.to_str()?;
    for entry in std::fs::read_dir("/sys/block").ok()?.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str().filter(|n| n.starts_with("loop")) else {
            continue;
        };
        let backing = std::fs::read_to_string(entry.path().join("loop/backing_file"));
        if backing.ok().as_deref().map(str::trim_end) != Some(wanted) {
            continue;
        }
        let path = format!("/dev/{name}");
        let Ok(dev) = std::fs::File::open(&path) else {
            continue;
        };
        // SAFETY: LoopInfo64 is plain data; the ioctl fills it.
        let mut info: LoopInfo64 = unsafe { std::mem::zeroed() };
        // SAFETY: the ioctl writes a loop_info64 of this layout.
        let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_GET_STATUS64 as _, &mut info) };
        if r == 0 && info.inode == meta.ino() && info.device == meta.dev() {
            return Some((path, dev.into()));
        }
    }
    None
}

/// Puts `backing` on a free loop device that detaches itself once its last
/// user is gone (`LO_FLAGS_AUTOCLEAR`), with direct I/O where the backing
/// filesystem allows it, so its pages are not cached twice. Returns the
/// device's path and an open descriptor, which must stay open until the
/// device is mounted (closing the last user of an unmounted autoclear
/// device detaches it).
pub fn loop_attach(backing: &std::fs::File) -> io::Result<(String, OwnedFd)> {
    let control = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/loop-control")?;
    // LOOP_CTL_GET_FREE names the same first free device to everyone who
    // asks before it is configured: a class of labs starting at once would
    // all race for one device, all but one retry, and past 64 at once some
    // would run out of tries. Our attachers take turns on the control
    // device's lock (released when `control` closes); the retries remain
    // for other programs attaching meanwhile.
    // SAFETY: plain flock on a descriptor we own.
    check(unsafe { libc::flock(control.as_raw_fd(), libc::LOCK_EX) })?;
    for _ in 0..64 {
        // SAFETY: plain ioctl on the control device.
        let n = cvt(unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) } as _)?;
        let path = format!("/dev/loop{n}");
        let open = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
        };
        let dev: OwnedFd = match open() {
            Ok(f) => f,
            // A /dev that is not devtmpfs (a container's) lacks the nodes of
            // devices added after it was populated.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let p = cstring(&path)?;
                // SAFETY: valid C string; loop devices are block major 7.
                let made = unsafe {
                    libc::mknod(
                        p.as_ptr(),
                        libc::S_IFBLK | 0o660,
                        libc::makedev(7, n as u32),
                    )
                };
                if made < 0 && io::Error::last_os_error().kind() != io::ErrorKind::AlreadyExists {
                    return Err(io::Error::last_os_error());
                }
                open()?
            }
            Err(e) => return Err(e),
        }
        .into();
        for flags in [LO_FLAGS_AUTOCLEAR | LO_FLAGS_DIRECT_IO, LO_FLAGS_AUTOCLEAR] {
            // SAFETY: LoopConfig is plain data; all-zero is a valid value.
            let mut config: LoopConfig = unsafe { std::mem::zeroed() };
            config.fd = backing.as_raw_fd() as u32;
            config.info.flags = flags;
            // SAFETY: the ioctl reads a loop_config of this layout.
            let r = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE as _, &config) };
            if r == 0 {
                return Ok((path, dev));
            }
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // Direct I/O refused by the backing filesystem: buffered then.
                Some(libc::EINVAL) if flags & LO_FLAGS_DIRECT_IO != 0 => continue,
                // Another process took this device between the two calls.
                Some(libc::EBUSY) => break,
                _ => return Err(e),
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::ResourceBusy,
        "no free loop device after 64 tries",
    ))
}

/// Whether `path` lives on a tmpfs.
pub fn is_tmpfs(path: &Path) -> bool {
    const TMPFS_MAGIC: libc::c_long = 0x0102_1994;
    let Ok(p) = cpath(path) else { return false };
    // SAFETY: statfs is plain data filled by the kernel for a valid path.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(p.as_ptr(), &mut st) == 0 && st.f_type as libc::c_long == TMPFS_MAGIC
    }
}

/// Copies the data extents of `src` into `dst` at the same offsets,
/// leaving its holes unwritten: a sparse image stays sparse.
pub fn copy_data(src: &std::fs::File, dst: &std::fs::File) -> io::Result<()> {
    let mut offset: libc::off_t = 0;
    loop {
        // SAFETY: plain lseek on a descriptor we borrow.
        let data = unsafe { libc::lseek(src.as_raw_fd(), offset, libc::SEEK_DATA) };
        if data < 0 {
            let e = io::Error::last_os_error();
            // ENXIO: no data past `offset`.
            return if e.raw_os_error() == Some(libc::ENXIO) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(src.as_raw_fd(), data, libc::SEEK_HOLE) };
        if hole < 0 {
            return Err(io::Error::last_os_error());
        }
        let (mut from, mut to) = (data, data);
        while from < hole {
            // SAFETY: valid descriptors and offsets owned by this frame.
            let n = unsafe {
                libc::copy_file_range(
                    src.as_raw_fd(),
                    &mut from,
                    dst.as_raw_fd(),
                    &mut to,
                    (hole - from) as usize,
                    0,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            if n == 0 {
                return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
            }
        }
        offset = hole;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// More attaches at once than one attach has tries: each must get a
    /// device of its own (root and a kernel with loop devices).
    #[test]
    #[cfg_attr(
        skip_root_tests,
        ignore = "attaches loop devices, which needs root: LAYERLAB_SKIP_ROOT_TESTS is set"
    )]
    fn a_class_of_attaches_at_once_all_get_a_device() {
        let dir = tempfile::tempdir_in("/var/tmp").expect("a temporary directory");
        let together = std::sync::Barrier::new(100);
        let attached: Vec<(String, OwnedFd)> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..100)
                .map(|i| {
                    let image = dir.path().join(format!("{i}.img"));
                    let together = &together;
                    s.spawn(move || {
                        let file = std::fs::OpenOptions::new()
                            .read(true)
                            .write(true)
                            .create_new(true)
                            .open(&image)
                            .expect("create an image");
                        file.set_len(1 << 20).expect("size the image");
                        together.wait();
                        // Held until every thread has its device; the
                        // last close detaches it.
                        loop_attach(&file).expect("attach a loop device")
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        let devices: std::collections::HashSet<&str> =
            attached.iter().map(|(dev, _)| dev.as_str()).collect();
        assert_eq!(devices.len(), 100, "two images on one device");
    }
}
