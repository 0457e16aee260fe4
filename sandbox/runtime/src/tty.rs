//! Terminals from a sandbox's own devpts.
//!
//! Every sandbox mounts a devpts instance of its own (`newinstance`, see
//! `rootfs.rs`), so a PTY its processes use must come from there: one made
//! from the host's `/dev/ptmx` has a slave whose path the sandbox cannot
//! resolve (`tty` says "not a tty", and `ttyname`, which `tmux`, `screen`,
//! `sudo` and `ssh` rely on, fails). So the PTY is made by a process that already stands in the
//! sandbox's mount namespace, after it took the user it runs as (the slave
//! belongs to that user; the mount's `gid=5,mode=0620` make it group tty,
//! `crw--w----`, as a login's terminal is):
//! - a command started by the exec helper (`process/exec.rs`): its fork in
//!   the sandbox opens the PTY, makes the slave its controlling terminal
//!   and stdio, and sends the master back to the caller over the
//!   [`channel`](crate::process::channel) socket the caller gave it as its
//!   stdin;
//! - a container's init command (`process/init.rs`): the sandbox's init
//!   opens it before starting the command, and the master travels to the
//!   create helper over the launch channel and from there to the caller.
//!
//! The caller keeps only the master ([`Pty`]): it reads, writes and
//! resizes it, which needs no namespace work of its own.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::process::channel::{self, Message};

/// How long a caller waits for the exec helper to hand back a terminal.
const HANDOVER_TIMEOUT: Duration = Duration::from_secs(30);

/// A terminal's size in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowSize {
    pub cols: u16,
    pub rows: u16,
}

impl WindowSize {
    pub(crate) fn validate(self) -> Result<Self> {
        if self.cols == 0 || self.rows == 0 {
            return Err(Error::InvalidSpec(format!(
                "terminal size {}x{} must be at least 1x1",
                self.cols, self.rows
            )));
        }
        Ok(self)
    }

    /// `COLSxROWS`, as the exec helper takes it.
    pub(crate) fn arg(self) -> String {
        format!("{}x{}", self.cols, self.rows)
    }

    pub(crate) fn parse(s: &str) -> Option<WindowSize> {
        let (cols, rows) = s.split_once('x')?;
        WindowSize {
            cols: cols.parse().ok()?,
            rows: rows.parse().ok()?,
        }
        .validate()
        .ok()
    }

    fn winsize(self) -> libc::winsize {
        libc::winsize {
            ws_row: self.rows,
            ws_col: self.cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        }
    }
}

/// The master side of a terminal made in a sandbox's devpts. Closing every
/// copy hangs the terminal up (its session gets SIGHUP).
#[derive(Debug)]
pub struct Pty {
    master: OwnedFd,
}

impl Pty {
    /// A terminal by its master (one made here, or taken back from a
    /// sandbox's init with [`crate::Runtime::take_back`]).
    pub fn new(master: OwnedFd) -> Pty {
        Pty { master }
    }

    /// Sets the window size; the terminal's foreground processes get
    /// SIGWINCH.
    pub fn resize(&self, size: WindowSize) -> Result<()> {
        set_size(self.master.as_fd(), size.validate()?)
    }

    /// Another descriptor of the same master (one per reader or writer).
    pub fn try_clone(&self) -> Result<Pty> {
        Ok(Pty {
            master: self
                .master
                .try_clone()
                .map_err(Error::sys("duplicate a terminal"))?,
        })
    }
}

impl AsFd for Pty {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }
}

impl From<Pty> for OwnedFd {
    fn from(pty: Pty) -> OwnedFd {
        pty.master
    }
}

impl From<Pty> for std::fs::File {
    fn from(pty: Pty) -> std::fs::File {
        pty.master.into()
    }
}

/// Where the exec helper started by [`crate::Runtime::terminal_command`]
/// sends the terminal it made.
#[derive(Debug)]
pub struct PtyReply {
    sock: OwnedFd,
    /// For messages: the helper executable and the sandbox.
    helper: PathBuf,
    id: String,
}

impl PtyReply {
    pub(crate) fn new(sock: OwnedFd, helper: &Path, id: &str) -> PtyReply {
        PtyReply {
            sock,
            helper: helper.to_owned(),
            id: id.to_owned(),
        }
    }

    /// Waits for the terminal of the helper running as `helper_pid` (the
    /// spawned command, our child and not yet reaped). Fails with the
    /// helper's own message when it could not make one, or when it exited
    /// without a word.
    pub fn receive(self, helper_pid: u32) -> Result<Pty> {
        let failed = |message: String| Error::Helper {
            helper: self.helper.clone(),
            id: self.id.clone(),
            message,
        };
        // The helper's end may still be open in the caller's copy of the
        // command; its exit, not an end of file, tells that it is gone.
        let pidfd = crate::sys::pidfd_open(helper_pid as libc::pid_t)
            .map_err(Error::sys("watch the exec helper"))?;
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let timeout = HANDOVER_TIMEOUT.as_millis() as libc::c_int;
        loop {
            // SAFETY: two valid pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout) };
            if n > 0 {
                break;
            }
            if n == 0 {
                return Err(failed(format!(
                    "the exec helper made no terminal within {}s",
                    HANDOVER_TIMEOUT.as_secs()
                )));
            }
            let e = std::io::Error::last_os_error();
            if e.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::sys("wait for the exec helper")(e));
            }
        }
        if fds[0].revents & libc::POLLIN == 0 {
            return Err(failed(
                "the exec helper exited before making a terminal".into(),
            ));
        }
        match channel::recv(&self.sock)? {
            Some(Message::Terminal(master)) => Ok(Pty::new(master)),
            Some(Message::Failed(m)) => Err(failed(m)),
            _ => Err(failed(
                "the exec helper exited before making a terminal".into(),
            )),
        }
    }
}

/// Opens a new terminal in the devpts of the current mount namespace
/// (`/dev/ptmx` is `pts/ptmx` in every sandbox) as the current user:
/// (master, slave), both close-on-exec, the slave sized `size`. The
/// slave comes from the master itself (`TIOCGPTPEER`), so no path lookup
/// under `/dev/pts` can be raced into another file; its path inside is
/// `/dev/pts/N` all the same.
pub(crate) fn open(size: WindowSize) -> Result<(OwnedFd, OwnedFd)> {
    let flags = libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC;
    // SAFETY: plain syscalls on a valid C string and descriptors we own.
    unsafe {
        let master = crate::sys::check(libc::open(c"/dev/ptmx".as_ptr(), flags))
            .map_err(Error::sys("open the sandbox's /dev/ptmx"))?;
        let master = OwnedFd::from_raw_fd(master);
        let unlock: libc::c_int = 0;
        crate::sys::check(libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock))
            .map_err(Error::sys("unlock a terminal"))?;
        let slave = crate::sys::check(libc::ioctl(master.as_raw_fd(), libc::TIOCGPTPEER, flags))
            .map_err(Error::sys("open a terminal's slave"))?;
        let slave = OwnedFd::from_raw_fd(slave);
        set_size(master.as_fd(), size)?;
        Ok((master, slave))
    }
}

fn set_size(fd: BorrowedFd<'_>, size: WindowSize) -> Result<()> {
    let ws = size.winsize();
    // SAFETY: TIOCSWINSZ with a valid winsize on a valid descriptor.
    crate::sys::check(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) })
        .map_err(Error::sys("resize a terminal"))
        .map(drop)
}

/// Makes `slave` the controlling terminal of a new session led by the
/// calling process (a fork about to exec its command).
pub(crate) fn take_as_controlling(slave: &OwnedFd) -> Result<()> {
    // SAFETY: plain syscalls on a descriptor we own.
    unsafe {
        crate::sys::check(libc::setsid()).map_err(Error::sys("start a session"))?;
        crate::sys::check(libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0))
            .map_err(Error::sys("take a controlling terminal"))?;
    }
    Ok(())
}

/// Puts `slave` on descriptors 0, 1 and 2.
pub(crate) fn as_stdio(slave: &OwnedFd) -> Result<()> {
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        crate::sys::check(unsafe { libc::dup2(slave.as_raw_fd(), fd) })
            .map_err(Error::sys("make a terminal the standard streams"))?;
    }
    Ok(())
}
