//! The embedded host's terminals. A terminal is the node's own: the
//! runtime's exec helper joins the node, and its fork there opens a PTY in
//! the node's devpts, takes the slave as the shell's controlling terminal
//! and hands the master back (see the runtime's `tty` module). So `tty`
//! in the node prints `/dev/pts/N`, a path the node can open, and the
//! host keeps only the master.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;

use runtime::{ExecSpec, Pty, Runtime, WindowSize};

use crate::error::{Error, Result};
use crate::terminal::{
    Kill, Killer, Resize, Resizer, Shell, Terminal, TerminalProcess, TerminalSize,
};

struct PtyResizer {
    pty: Pty,
    id: String,
}

impl Resize for PtyResizer {
    fn resize(&self, size: TerminalSize) -> Result<()> {
        let size = WindowSize {
            cols: size.cols,
            rows: size.rows,
        };
        self.pty.resize(size).map_err(|e| match e {
            runtime::Error::InvalidSpec(m) => Error::InvalidSpec(m),
            e => Error::Terminal {
                id: self.id.clone(),
                message: e.to_string(),
            },
        })
    }
}

/// The shell, through the exec helper whose exit code is the shell's
/// (128 + N when signal N ended it).
struct HelperShell {
    child: std::process::Child,
    killer: PidfdKiller,
}

impl Shell for HelperShell {
    fn wait(&mut self) -> Result<u32> {
        let status = self
            .child
            .wait()
            .map_err(|e| self.killer.err("wait for the shell", &e))?;
        Ok(code(status))
    }

    fn try_wait(&mut self) -> Result<Option<u32>> {
        let status = self
            .child
            .try_wait()
            .map_err(|e| self.killer.err("poll the shell", &e))?;
        Ok(status.map(code))
    }

    /// Killing the helper kills the shell (it dies with its parent).
    fn killer(&self) -> Killer {
        Killer::new(self.killer.clone())
    }
}

fn code(status: std::process::ExitStatus) -> u32 {
    runtime::ExitStatus::from(status).shell_code() as u32
}

/// Kills a terminal's helper through a pidfd, so a pid reused after the
/// waiter reaped it is never hit.
#[derive(Clone)]
struct PidfdKiller {
    pidfd: Arc<OwnedFd>,
    id: String,
}

impl Kill for PidfdKiller {
    fn kill(&self) -> Result<()> {
        // SAFETY: plain syscall on a pidfd we own.
        let r = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.pidfd.as_raw_fd(),
                libc::SIGKILL,
                0usize,
                0,
            )
        };
        if r < 0 {
            return Err(self.err("kill the shell", &std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

impl PidfdKiller {
    fn err(&self, what: &str, e: &dyn std::fmt::Display) -> Error {
        Error::Terminal {
            id: self.id.clone(),
            message: format!("{what}: {e}"),
        }
    }
}

/// Starts `spec` in sandbox `id` on a new terminal of its own.
pub(crate) fn spawn(
    rt: &Runtime,
    id: &str,
    spec: &ExecSpec,
    size: TerminalSize,
) -> Result<Terminal> {
    let err = |what: &str, e: &dyn std::fmt::Display| Error::Terminal {
        id: id.to_owned(),
        message: format!("{what}: {e}"),
    };
    let size = size.checked()?;
    let size = WindowSize {
        cols: size.cols,
        rows: size.rows,
    };
    let (mut command, reply) = rt.terminal_command(id, spec, size)?;
    let mut child = command
        .spawn()
        .map_err(|e| err("run the exec helper", &e))?;
    // Our copy of the helper's end of the reply socket goes with it.
    drop(command);
    let opened = (|| {
        // SAFETY: plain syscall; the helper is our child, not yet reaped.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id(), 0) };
        if pidfd < 0 {
            return Err(err(
                "watch the exec helper",
                &std::io::Error::last_os_error(),
            ));
        }
        // SAFETY: a fresh descriptor we own.
        let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
        let pty = reply
            .receive(child.id())
            .map_err(|e| err("open a terminal in the node", &e))?;
        let file = || -> Result<std::fs::File> {
            Ok(pty
                .try_clone()
                .map_err(|e| err("duplicate the terminal", &e))?
                .into())
        };
        let (reader, writer) = (file()?, file()?);
        Ok((pty, pidfd, reader, writer))
    })();
    let (pty, pidfd, reader, writer) = match opened {
        Ok(opened) => opened,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    Ok(Terminal {
        reader: Box::new(reader),
        writer: Box::new(writer),
        resizer: Resizer::new(PtyResizer {
            pty,
            id: id.to_owned(),
        }),
        process: TerminalProcess::new(HelperShell {
            child,
            killer: PidfdKiller {
                pidfd: Arc::new(pidfd),
                id: id.to_owned(),
            },
        }),
    })
}
