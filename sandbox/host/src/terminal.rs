//! A terminal as the seam hands it out: byte streams and three small
//! handles, each a trait object so that every host (the embedded one's
//! PTYs, the fake's in-memory pipe, a remote host's stream) supplies its
//! own.

use std::io::{Read, Write};
use std::sync::Arc;

use crate::error::{Error, Result};

/// Terminal dimensions in character cells, 1 to 65535 each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

impl TerminalSize {
    /// The size, or `InvalidSpec` when a dimension is zero.
    pub fn checked(self) -> Result<Self> {
        if self.cols == 0 || self.rows == 0 {
            return Err(Error::InvalidSpec(format!(
                "terminal size {}x{} must be at least 1x1",
                self.cols, self.rows
            )));
        }
        Ok(self)
    }
}

/// An open terminal, in parts that different threads own: bytes out of the
/// shell come from `reader` (EOF once every process on the terminal is
/// gone), bytes into it go to `writer`. Dropping the terminal hangs it up,
/// which ends the shell.
pub struct Terminal {
    pub reader: Box<dyn Read + Send>,
    pub writer: Box<dyn Write + Send>,
    pub resizer: Resizer,
    pub process: TerminalProcess,
}

/// What a host implements to change a terminal's size.
pub trait Resize: Send + Sync {
    /// Sets the size (the shell gets SIGWINCH); `size` is already checked.
    fn resize(&self, size: TerminalSize) -> Result<()>;
}

/// What a host implements for the shell on a terminal.
pub trait Shell: Send {
    /// Blocks until the shell ends; its exit code (128 + N when signal N
    /// ended it).
    fn wait(&mut self) -> Result<u32>;
    /// The exit code if the shell has ended.
    fn try_wait(&mut self) -> Result<Option<u32>>;
    /// A handle that ends the shell from any thread.
    fn killer(&self) -> Killer;
}

/// What a host implements to end a shell from another thread.
pub trait Kill: Send + Sync {
    /// Ends the shell; fails only when it cannot be signalled.
    fn kill(&self) -> Result<()>;
}

/// Changes the size of the terminal.
pub struct Resizer(Box<dyn Resize>);

impl Resizer {
    pub fn new(resize: impl Resize + 'static) -> Self {
        Self(Box::new(resize))
    }

    pub fn resize(&self, size: TerminalSize) -> Result<()> {
        self.0.resize(size.checked()?)
    }
}

/// The process on the terminal: the login shell.
pub struct TerminalProcess(Box<dyn Shell>);

impl TerminalProcess {
    pub fn new(shell: impl Shell + 'static) -> Self {
        Self(Box::new(shell))
    }

    /// Blocks until the shell ends; returns its exit code.
    pub fn wait(&mut self) -> Result<u32> {
        self.0.wait()
    }

    /// The exit code if the shell has ended.
    pub fn try_wait(&mut self) -> Result<Option<u32>> {
        self.0.try_wait()
    }

    /// A handle that kills the shell from another thread while this one
    /// waits.
    pub fn killer(&self) -> Killer {
        self.0.killer()
    }

    pub fn kill(&mut self) -> Result<()> {
        self.killer().kill()
    }
}

/// Kills a terminal's shell; clones share it.
#[derive(Clone)]
pub struct Killer(Arc<dyn Kill>);

impl Killer {
    pub fn new(kill: impl Kill + 'static) -> Self {
        Self(Arc::new(kill))
    }

    pub fn kill(&self) -> Result<()> {
        self.0.kill()
    }
}
