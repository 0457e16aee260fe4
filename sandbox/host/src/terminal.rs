//! A shell on a PTY inside a node. The PTY is made on the host with
//! portable-pty; the process started on it is the runtime's exec helper,
//! which joins the node and execs the shell, so the shell inherits the PTY
//! as its controlling terminal.

use std::ffi::OsString;
use std::io::{Read, Write};
use std::sync::Mutex;

use portable_pty::{Child, ChildKiller, CommandBuilder, MasterPty, PtySize, native_pty_system};

use crate::error::{Error, Result};

/// Terminal dimensions in character cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

impl TerminalSize {
    fn pty(self) -> PtySize {
        PtySize {
            rows: self.rows,
            cols: self.cols,
            pixel_width: 0,
            pixel_height: 0,
        }
    }
}

/// An open terminal, in parts that different threads own: bytes out of the
/// shell come from `reader` (EOF once every process on the PTY is gone),
/// bytes into it go to `writer`. Dropping the terminal hangs up the PTY,
/// which ends the shell.
pub struct Terminal {
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    pub resizer: Resizer,
    pub process: TerminalProcess,
}

/// Changes the size of the terminal (the shell gets SIGWINCH).
pub struct Resizer {
    master: Mutex<Box<dyn MasterPty + Send>>,
    id: String,
}

impl Resizer {
    pub fn resize(&self, size: TerminalSize) -> Result<()> {
        let master = self.master.lock().map_err(|_| self.err("lock poisoned"))?;
        master
            .resize(size.pty())
            .map_err(|e| self.err(&format!("resize: {e}")))
    }

    fn err(&self, message: &str) -> Error {
        Error::Terminal {
            id: self.id.clone(),
            message: message.to_owned(),
        }
    }
}

/// The process on the terminal: the shell, through the exec helper whose
/// exit code is the shell's.
pub struct TerminalProcess {
    child: Box<dyn Child + Send + Sync>,
    id: String,
}

impl TerminalProcess {
    /// Blocks until the shell ends; returns its exit code.
    pub fn wait(&mut self) -> Result<u32> {
        let status = self.child.wait().map_err(|e| Error::Terminal {
            id: self.id.clone(),
            message: format!("wait for the shell: {e}"),
        })?;
        Ok(status.exit_code())
    }

    /// The exit code if the shell has ended.
    pub fn try_wait(&mut self) -> Result<Option<u32>> {
        let status = self.child.try_wait().map_err(|e| Error::Terminal {
            id: self.id.clone(),
            message: format!("poll the shell: {e}"),
        })?;
        Ok(status.map(|s| s.exit_code()))
    }

    /// A handle that kills the shell from another thread while this one
    /// waits. Killing the helper kills the shell (it dies with its parent).
    pub fn killer(&self) -> Box<dyn ChildKiller + Send + Sync> {
        self.child.clone_killer()
    }

    pub fn kill(&mut self) -> Result<()> {
        self.child.kill().map_err(|e| Error::Terminal {
            id: self.id.clone(),
            message: format!("kill the shell: {e}"),
        })
    }
}

/// Starts `argv` (the exec helper's command line) on a new PTY.
pub(crate) fn spawn(id: &str, argv: Vec<OsString>, size: TerminalSize) -> Result<Terminal> {
    let err = |what: &str, e: &dyn std::fmt::Display| Error::Terminal {
        id: id.to_owned(),
        message: format!("{what}: {e}"),
    };
    if size.cols == 0 || size.rows == 0 {
        return Err(Error::InvalidSpec(format!(
            "terminal size {}x{} must be at least 1x1",
            size.cols, size.rows
        )));
    }
    let mut argv = argv.into_iter();
    let program = argv
        .next()
        .ok_or_else(|| err("start", &"the runtime gave an empty command"))?;
    let mut cmd = CommandBuilder::new(program);
    cmd.args(argv);
    // The helper passes the node's environment explicitly; ours must not leak.
    cmd.env_clear();
    let pair = native_pty_system()
        .openpty(size.pty())
        .map_err(|e| err("open a PTY", &e))?;
    let child = pair
        .slave
        .spawn_command(cmd)
        .map_err(|e| err("run the exec helper", &e))?;
    // Our copy of the slave side would keep the PTY open after the shell ends.
    drop(pair.slave);
    let reader = pair
        .master
        .try_clone_reader()
        .map_err(|e| err("read the PTY", &e))?;
    let writer = pair
        .master
        .take_writer()
        .map_err(|e| err("write the PTY", &e))?;
    Ok(Terminal {
        reader,
        writer,
        resizer: Resizer {
            master: Mutex::new(pair.master),
            id: id.to_owned(),
        },
        process: TerminalProcess {
            child,
            id: id.to_owned(),
        },
    })
}
