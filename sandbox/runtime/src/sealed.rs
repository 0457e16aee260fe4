//! The helper executable as a sealed in-memory copy, so no process that
//! ever enters a sandbox runs the host's binary file (CVE-2019-5736).
//!
//! Both helpers fork into a sandbox; until their child calls `execve`, its
//! `/proc/PID/exe` is the helper's binary, and a node that points
//! `/usr/local/bin/sh` at `/proc/self/exe` makes that child exec the
//! helper's binary itself, inside, where the node may open its
//! `/proc/PID/exe`. runc's answer, and ours: the helpers are started from a
//! `memfd` holding a copy of the binary, sealed against every change
//! (`F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE`). What a node
//! can reach is then that copy, which nothing can write, and never an inode
//! of the host's filesystem.
//!
//! The copy is made once per process and helper path, and kept: every
//! helper is started as `/proc/<caller pid>/fd/<n>`, a path that still
//! works when a spawner closes inherited descriptors before `execve`,
//! because it names the caller's descriptor table, not the child's. What it costs, measured here (2 cores, busy with builds):
//! copying and sealing takes 11–41 ms for the 22 MB stripped binary the
//! images carry and 90–190 ms for the 124 MB debug build, once per process
//! (not per exec); the copy stays resident as shared memory for the
//! process's life; a binary started from it came up in 8–10 ms against
//! 6–9 ms from disk (`layerlab --version`, medians, within the noise).

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// A sealed copy of an executable, alive as long as this process.
#[derive(Debug)]
pub(crate) struct SealedExe {
    fd: OwnedFd,
}

impl SealedExe {
    /// The path that executes the copy from this process or any child of it.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!(
            "/proc/{}/fd/{}",
            std::process::id(),
            self.fd.as_raw_fd()
        ))
    }

    /// The sealed copy of `exe`, made on first use in this process.
    pub fn of(exe: &Path) -> Result<Arc<SealedExe>> {
        static COPIES: Mutex<Vec<(PathBuf, Arc<SealedExe>)>> = Mutex::new(Vec::new());
        let mut copies = COPIES.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, copy)) = copies.iter().find(|(p, _)| p == exe) {
            return Ok(Arc::clone(copy));
        }
        let copy = Arc::new(Self::copy(exe)?);
        copies.push((exe.to_owned(), Arc::clone(&copy)));
        Ok(copy)
    }

    fn copy(exe: &Path) -> Result<SealedExe> {
        let started = std::time::Instant::now();
        let fd = memfd().map_err(Error::sys("create memfd for the helper"))?;
        let mut dst = File::from(fd);
        let mut src = File::open(exe).map_err(Error::io("open helper", exe))?;
        std::io::copy(&mut src, &mut dst).map_err(Error::io("copy helper", exe))?;
        let seals =
            libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
        // SAFETY: plain fcntl on a descriptor we own.
        crate::sys::check(unsafe { libc::fcntl(dst.as_raw_fd(), libc::F_ADD_SEALS, seals) })
            .map_err(Error::sys("seal the helper copy"))?;
        tracing::debug!(exe = %exe.display(), elapsed = ?started.elapsed(), "helper copied into a sealed memfd");
        Ok(SealedExe { fd: dst.into() })
    }
}

/// `MFD_EXEC` keeps the copy executable where `vm.memfd_noexec` would make
/// new memfds non-executable; kernels before 6.3 do not know the flag.
fn memfd() -> std::io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x10;
    let base = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    for flags in [base | MFD_EXEC, base] {
        // SAFETY: valid C string and flags.
        let fd = unsafe { libc::memfd_create(c"layerlab-helper".as_ptr(), flags) };
        if fd >= 0 {
            // SAFETY: a fresh descriptor nobody else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINVAL) {
            return Err(e);
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::EINVAL))
}
