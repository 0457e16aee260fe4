//! The seam between layerlab's web tier and its sandboxes: the server asks a
//! [`SandboxHost`] for a student's node (`node1`), a terminal on it, and
//! commands run in it for setup and grading — and nothing else.
//!
//! # Principal types
//! - [`SandboxHost`]: the trait the server talks to. Every method blocks;
//!   from async code call it on a blocking thread.
//! - [`EmbeddedHost`] (from an [`EmbeddedConfig`]): the in-process
//!   implementation over the embedded `runtime` and the content `store`.
//! - [`SessionSpec`] in, [`SessionInfo`] out; [`SessionState`] tables what
//!   may be called when.
//! - [`Terminal`]: a login shell on a PTY inside the node, split into a
//!   blocking reader, a blocking writer, a [`Resizer`] and a
//!   [`TerminalProcess`] to wait for or kill.
//!
//! # Invariants
//! - The server never touches namespaces, cgroups, mounts or the store's
//!   layers itself; it only talks to this trait, so the same server can
//!   later drive remote hosts.
//! - A session holds a kept store lease on its image from before its
//!   sandbox exists until after it is gone, so GC never removes layers a
//!   node runs on. A per-session record on disk (image digest, lease id)
//!   lets a restarted host re-adopt live sessions and release the leases of
//!   dead ones.
//! - Session ids are the runtime's sandbox ids (1 to 64 of `a-z0-9-_`).
//!
//! # Example
//! ```no_run
//! use std::time::Duration;
//! use host::{EmbeddedConfig, EmbeddedHost, SandboxHost, SessionSpec, TerminalSize};
//!
//! // `main` called `runtime::helper::main_if_requested()` first thing.
//! let host = EmbeddedHost::new(EmbeddedConfig::new(
//!     "/var/lib/layerlab/store",
//!     "/run/layerlab/runtime",
//!     std::env::current_exe()?,
//! ))?;
//! let mut spec = SessionSpec::new("s-42");
//! spec.setup = Some("echo ready > /root/ready".into());
//! host.create_session(spec)?;
//! let term = host.open_terminal("s-42", TerminalSize { cols: 80, rows: 24 })?;
//! let out = host.exec("s-42", &["cat".into(), "/root/ready".into()], Duration::from_secs(10))?;
//! drop(term);
//! host.destroy_session("s-42")?;
//! # let _ = out;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod embedded;
mod error;
mod terminal;

use std::time::{Duration, SystemTime};

pub use embedded::{EmbeddedConfig, EmbeddedHost};
pub use error::{Error, ErrorKind, Result};
pub use runtime::{ExecOutput, ExitStatus};
pub use terminal::{Resizer, Terminal, TerminalProcess, TerminalSize};

/// Where a session is in its life, and what may be called on it (like
/// JupyterHub's `Spawner.poll`, [`SandboxHost::sessions`] reports it):
///
/// | state    | open_terminal | exec | destroy_session | meaning |
/// |----------|---------------|------|-----------------|---------|
/// | Starting | no            | no   | no (wait)       | `create_session` is still running in this process |
/// | Running  | yes           | yes  | yes             | the node is up |
/// | Exited   | no            | no   | yes             | the node ended on its own (or died with its host); destroy it to free its resources |
/// | (absent) | NotFound      | NotFound | NotFound    | never created, or destroyed |
///
/// Calls that are not allowed fail with [`ErrorKind::FailedPrecondition`]
/// (or [`ErrorKind::NotFound`] for an absent session).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Starting,
    Running,
    Exited,
}

/// Resources one node may use.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionLimits {
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU time as a number of CPUs (e.g. 0.5); `None` for no cap.
    pub cpus: Option<f64>,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            pids: 512,
            cpus: None,
        }
    }
}

/// What [`SandboxHost::create_session`] builds.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub id: String,
    /// A name in the hub namespace (`workstation` by default).
    pub image: String,
    pub hostname: String,
    pub limits: SessionLimits,
    /// A bash script run once, as root, after the node starts; a non-zero
    /// exit fails the creation (and removes the session).
    pub setup: Option<String>,
    pub setup_timeout: Duration,
}

impl SessionSpec {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            image: "workstation".to_owned(),
            hostname: "node1".to_owned(),
            limits: SessionLimits::default(),
            setup: None,
            setup_timeout: Duration::from_secs(120),
        }
    }
}

/// One session as the host sees it now.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub id: String,
    pub state: SessionState,
    /// The image name the session was created from.
    pub image: String,
    /// Its manifest digest at creation (`sha256:…`).
    pub image_digest: String,
    pub hostname: String,
    pub created: SystemTime,
    /// Last creation, exec or terminal opening.
    pub last_activity: Option<SystemTime>,
}

/// What the server needs from wherever sandboxes run.
pub trait SandboxHost: Send + Sync {
    /// Resolves the image, starts the node and runs the setup script; on
    /// any failure nothing is left behind. Fails with `AlreadyExists` when
    /// the id is taken (whatever its state).
    fn create_session(&self, spec: SessionSpec) -> Result<SessionInfo>;

    /// Stops the node (SIGTERM, SIGKILL after a grace period), removes its
    /// every trace and releases its image lease. Allowed while Running or
    /// Exited.
    fn destroy_session(&self, id: &str) -> Result<()>;

    /// A login shell (`bash -l`) as root on a new PTY inside the node.
    /// Running only.
    fn open_terminal(&self, id: &str, size: TerminalSize) -> Result<Terminal>;

    /// Runs `argv` as root in the node with the image's environment and
    /// captured output; kills it and fails with `Unavailable` after
    /// `timeout`. Running only.
    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput>;

    /// Every session this host knows, including those adopted after a
    /// restart, in id order.
    fn sessions(&self) -> Result<Vec<SessionInfo>>;
}
