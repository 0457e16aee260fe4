//! The seam between layerlab's web tier and its sandboxes: the server asks a
//! [`SandboxHost`] for a student's node (`node1`), a terminal on it, and
//! commands run in it for setup and grading — and nothing else.
//!
//! # Principal types
//! - [`SandboxHost`]: the trait the server talks to. Every method blocks;
//!   from async code call it on a blocking thread.
//! - [`EmbeddedHost`] (from an [`EmbeddedConfig`]): the in-process
//!   implementation over the embedded `runtime` and the content `store`.
//! - `FakeHost` (feature `testing`): the same contract in memory, for
//!   tests of the server that need no root; `conformance` (same feature)
//!   is the one suite both hosts pass, and any future host must.
//! - The trait speaks only this crate's types (plus the engine's plain
//!   facts and std's `TcpStream`): [`ExecOutput`]/[`ExitStatus`],
//!   [`TerminalSize`], and terminals as byte streams with [`Resizer`],
//!   [`TerminalProcess`] and [`Killer`] over the small traits [`Resize`],
//!   [`Shell`] and [`Kill`] each host implements.
//! - [`SandboxSpec`] in, [`SandboxInfo`] out; [`SandboxState`] tables what
//!   may be called when.
//! - [`Expiry`] (idle timeout, maximum lifetime): what
//!   [`SandboxHost::expire`] enforces; [`SandboxInfo::expires_at`] says
//!   when a sandbox will be reaped, [`Expired`] what was and why.
//! - [`HttpRequest`] in, [`HttpResponse`] out of [`SandboxHost::http`]:
//!   HTTP into the node's network for the grader; [`ImageFacts`] and
//!   [`ContainerFacts`] out of [`SandboxHost::engine_image`] and
//!   [`SandboxHost::engine_containers`]: the node's Docker engine as the
//!   grader reads it.
//! - [`Usage`] out of [`SandboxHost::usage`]: a node's memory and pids
//!   in use, from its cgroups, for the server's metrics and admin page.
//! - [`Terminal`]: a login shell (on the embedded host, on a PTY of the
//!   node's own devpts, so `tty` in it names `/dev/pts/N`), split into a blocking reader, a
//!   blocking writer, a [`Resizer`] and a [`TerminalProcess`] to wait for
//!   or kill (from another thread with its [`Killer`]).
//!
//! # Invariants
//! - The server never touches namespaces, cgroups, mounts or the store's
//!   layers itself; it only talks to this trait, so the same server can
//!   later drive remote hosts.
//! - A sandbox holds a kept store lease on its image from before its
//!   runtime sandbox exists until after it is gone, so GC never removes layers a
//!   node runs on. A per-sandbox record on disk (image digest, lease id)
//!   lets a restarted host re-adopt live sandboxes and release the leases of
//!   dead ones.
//! - A sandbox's last activity has one source of truth, the runtime's
//!   activity stamp (set by creation, exec, terminal opening and
//!   [`SandboxHost::touch`]); it lives in the runtime's state directory, so
//!   idle deadlines survive a host restart.
//! - Sandbox ids are the runtime's sandbox ids (1 to 64 of `a-z0-9-_`).
//!
//! # Example
//! ```no_run
//! use std::time::{Duration, SystemTime};
//! use host::{EmbeddedConfig, EmbeddedHost, Expiry, SandboxHost, SandboxSpec, TerminalSize};
//!
//! // `main` called `runtime::helper::main_if_requested()` first thing.
//! let host = EmbeddedHost::new(EmbeddedConfig::new(
//!     "/var/lib/layerlab/store",
//!     "/run/layerlab/runtime",
//!     std::env::current_exe()?,
//! ))?;
//! let mut spec = SandboxSpec::new("s-42");
//! spec.setup = Some("echo ready > /root/ready".into());
//! host.create_sandbox(spec)?;
//! let term = host.open_terminal("s-42", TerminalSize { cols: 80, rows: 24 })?;
//! let out = host.exec("s-42", &["cat".into(), "/root/ready".into()], Duration::from_secs(10))?;
//! host.touch("s-42")?; // on every keystroke batch from the browser
//! drop(term);
//! // Periodically: reap idle, too old and dead sandboxes.
//! let policy = Expiry {
//!     idle: Duration::from_secs(30 * 60),
//!     max_lifetime: Duration::from_secs(4 * 3600),
//! };
//! for gone in host.expire(&policy, SystemTime::now())? {
//!     println!("{} ended: {:?}", gone.id, gone.reason);
//! }
//! host.destroy_sandbox("s-42")?;
//! # let _ = out;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[cfg(feature = "testing")]
mod conformance;
mod embedded;
mod error;
mod exec;
#[cfg(feature = "testing")]
mod fake;
mod http;
mod pty;
mod terminal;

use std::time::{Duration, SystemTime};

pub use self::http::{HttpError, HttpRequest, HttpResponse};
#[cfg(feature = "testing")]
pub use conformance::conformance;
pub use embedded::{EmbeddedConfig, EmbeddedHost};
pub use engine::facts::{ContainerFacts, ImageFacts, MountFacts, Origin, Published};
pub use error::{Error, ErrorKind, Result};
pub use exec::{ExecOutput, ExitStatus};
#[cfg(feature = "testing")]
pub use fake::{Clock, FakeHost};
pub use terminal::{Kill, Killer, Resize, Resizer, Shell, Terminal, TerminalProcess, TerminalSize};

/// Where a sandbox is in its life, and what may be called on it (like
/// JupyterHub's `Spawner.poll`, [`SandboxHost::sandboxes`] reports it):
///
/// | state    | open_terminal | exec, http | touch | destroy_sandbox | expire destroys it |
/// |----------|---------------|------|-------|-----------------|--------------------|
/// | Starting | no            | no   | no    | no (wait)       | never |
/// | Running  | yes           | yes  | yes   | yes             | once [`SandboxInfo::expires_at`] has passed |
/// | Exited   | no            | no   | no    | yes             | always |
/// | (absent) | NotFound      | NotFound | NotFound | NotFound | — |
///
/// Meanings: Starting — `create_sandbox` is still running in this process;
/// Running — the node is up; Exited — the node ended on its own (or died
/// with its host), destroy it (or let `expire` do so) to free its
/// resources; absent — never created, or destroyed.
///
/// Calls that are not allowed fail with [`ErrorKind::FailedPrecondition`]
/// (or [`ErrorKind::NotFound`] for an absent sandbox).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxState {
    Starting,
    Running,
    Exited,
}

/// Resources one node may use.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxLimits {
    pub memory_bytes: u64,
    pub pids: u64,
    /// CPU time as a number of CPUs (e.g. 0.5); `None` for no cap. One CPU
    /// by default, so no node takes every core of its host.
    pub cpus: Option<f64>,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 << 20,
            pids: 512,
            cpus: Some(1.0),
        }
    }
}

/// What [`SandboxHost::create_sandbox`] builds.
#[derive(Debug, Clone)]
pub struct SandboxSpec {
    pub id: String,
    /// A name in the hub namespace (`workstation` by default).
    pub image: String,
    pub hostname: String,
    pub limits: SandboxLimits,
    /// A bash script run once, as root, after the node starts; a non-zero
    /// exit fails the creation (and removes the sandbox).
    pub setup: Option<String>,
    pub setup_timeout: Duration,
    /// The node ends this long after it starts, even when no server runs
    /// any more to reap it (its init enforces it); `None` for no limit.
    pub max_lifetime: Option<Duration>,
}

impl SandboxSpec {
    pub fn new(id: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            image: "workstation".to_owned(),
            hostname: "node1".to_owned(),
            limits: SandboxLimits::default(),
            setup: None,
            setup_timeout: Duration::from_secs(120),
            max_lifetime: None,
        }
    }
}

/// One sandbox as the host sees it now.
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub id: String,
    pub state: SandboxState,
    /// The image name the sandbox was created from.
    pub image: String,
    /// Its manifest digest at creation (`sha256:…`).
    pub image_digest: String,
    pub hostname: String,
    pub created: SystemTime,
    /// Last creation, exec, terminal opening or [`SandboxHost::touch`].
    pub last_activity: Option<SystemTime>,
}

impl SandboxInfo {
    /// When `policy` lets this sandbox be reaped: the earlier of its idle
    /// deadline (last activity, or creation if none, plus `policy.idle`)
    /// and its lifetime deadline (creation plus `policy.max_lifetime`).
    /// `None` when both lie beyond what [`SystemTime`] can hold, i.e.
    /// never. An Exited sandbox is reaped whatever this says.
    pub fn expires_at(&self, policy: &Expiry) -> Option<SystemTime> {
        self.next_expiry(policy).map(|(at, _)| at)
    }

    /// Why `policy` reaps this sandbox at `now`, if it does. When both
    /// deadlines have passed, the one that passed first is the reason.
    pub fn expiry_reason(&self, policy: &Expiry, now: SystemTime) -> Option<ExpiryReason> {
        match self.state {
            SandboxState::Starting => None,
            // The node's init ends it at its lifetime by itself.
            SandboxState::Exited
                if self
                    .created
                    .checked_add(policy.max_lifetime)
                    .is_some_and(|at| now >= at) =>
            {
                Some(ExpiryReason::Lifetime)
            }
            SandboxState::Exited => Some(ExpiryReason::Exited),
            SandboxState::Running => self
                .next_expiry(policy)
                .filter(|(at, _)| now >= *at)
                .map(|(_, reason)| reason),
        }
    }

    /// [`SandboxInfo::expires_at`] with what ends the sandbox then; a tie
    /// counts as the lifetime, the limit no activity can move.
    pub fn next_expiry(&self, policy: &Expiry) -> Option<(SystemTime, ExpiryReason)> {
        let idle = self
            .last_activity
            .unwrap_or(self.created)
            .checked_add(policy.idle)
            .map(|t| (t, ExpiryReason::Idle));
        let lifetime = self
            .created
            .checked_add(policy.max_lifetime)
            .map(|t| (t, ExpiryReason::Lifetime));
        match (idle, lifetime) {
            (Some(i), Some(l)) => Some(if i.0 < l.0 { i } else { l }),
            (i, l) => i.or(l),
        }
    }
}

/// How long sandboxes may live: [`SandboxHost::expire`] destroys a sandbox
/// idle for `idle` or older than `max_lifetime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub idle: Duration,
    pub max_lifetime: Duration,
}

/// Why [`SandboxHost::expire`] destroyed a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpiryReason {
    /// No activity for the policy's `idle`.
    Idle,
    /// Created longer than the policy's `max_lifetime` ago.
    Lifetime,
    /// Its node had already ended.
    Exited,
}

/// One sandbox [`SandboxHost::expire`] destroyed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired {
    pub id: String,
    pub reason: ExpiryReason,
}

/// What the server needs from wherever sandboxes run.
pub trait SandboxHost: Send + Sync {
    /// Resolves the image, starts the node and runs the setup script; on
    /// any failure nothing is left behind. Fails with `AlreadyExists` when
    /// the id is taken (whatever its state).
    fn create_sandbox(&self, spec: SandboxSpec) -> Result<SandboxInfo>;

    /// Stops the node (SIGTERM, SIGKILL after a grace period), removes its
    /// every trace and releases its image lease. Allowed while Running or
    /// Exited.
    fn destroy_sandbox(&self, id: &str) -> Result<()>;

    /// A login shell (`bash -l`) as root on a new PTY inside the node.
    /// Running only.
    fn open_terminal(&self, id: &str, size: TerminalSize) -> Result<Terminal>;

    /// Runs `argv` as root in the node with the image's environment and
    /// captured output; kills it and fails with `Unavailable` after
    /// `timeout`. Running only.
    fn exec(&self, id: &str, argv: &[String], timeout: Duration) -> Result<ExecOutput>;

    /// Sends one HTTP/1.1 request to a server in the node's network and
    /// returns its answer (DESIGN.md's `registry_get`, for any request):
    /// the host name is resolved and the connection made inside the node,
    /// so only what the node itself reaches is reachable. The whole
    /// exchange is bounded by `request.timeout` and the body by
    /// `request.max_body`. Fails with `Unavailable` (an [`Error::Http`]
    /// saying why) when nothing answers in time. Running only.
    fn http(&self, id: &str, request: &HttpRequest) -> Result<HttpResponse>;

    /// The TCP ports something listens on in the node, on every address
    /// or on loopback (its own servers and the ports its containers
    /// publish; not the lab's package repository), ascending. Nothing runs
    /// in the node for it. Running only.
    fn listening_ports(&self, id: &str) -> Result<Vec<u16>>;

    /// A TCP connection to `port` on the node's loopback, made inside its
    /// network namespace, so only what the node itself reaches is
    /// reachable (the port preview). Fails with `Unavailable` when nothing
    /// answers within `timeout`. Running only.
    fn connect(&self, id: &str, port: u16, timeout: Duration) -> Result<std::net::TcpStream>;

    /// The image `name` (or ID) of the node's Docker engine, as `docker
    /// image inspect` in the node would find it; `None` when it has none
    /// by that name. Running only.
    fn engine_image(&self, id: &str, name: &str) -> Result<Option<ImageFacts>>;

    /// Every container of the node's Docker engine (`docker ps -a`),
    /// newest first. Running only.
    fn engine_containers(&self, id: &str) -> Result<Vec<ContainerFacts>>;

    /// Records activity now (the server calls it on terminal input), which
    /// moves the sandbox's idle deadline. Running only.
    fn touch(&self, id: &str) -> Result<()>;

    /// Destroys every sandbox that `policy` reaps at `now` (see
    /// [`SandboxInfo::expiry_reason`]; Starting sandboxes are left alone)
    /// and returns them in id order. A sandbox that fails to be destroyed
    /// is logged and left listed, so the next call retries it; it is not
    /// in the result. `now` is a parameter so callers (and tests) decide
    /// the clock.
    fn expire(&self, policy: &Expiry, now: SystemTime) -> Result<Vec<Expired>>;

    /// Every sandbox this host knows, including those adopted after a
    /// restart, in id order.
    fn sandboxes(&self) -> Result<Vec<SandboxInfo>>;

    /// One sandbox, as [`SandboxHost::sandboxes`] would list it; `NotFound`
    /// when absent.
    fn sandbox(&self, id: &str) -> Result<SandboxInfo>;

    /// What the node and its containers use now, read from its cgroups
    /// (nothing runs in the node for it). Running only.
    fn usage(&self, id: &str) -> Result<Usage>;
}

/// A sandbox's resources in use at one moment, as [`SandboxHost::usage`]
/// reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Memory charged to the node's cgroup, its containers' included (the
    /// same figure its memory limit is enforced on, page cache counted).
    pub memory_bytes: u64,
    /// Processes and threads in the node and its containers.
    pub pids: u64,
}

/// Sandbox ids are the runtime's: 1 to 64 of `a-z0-9-_`, not starting
/// with `-`, on every host.
pub(crate) fn check_id(id: &str) -> Result<()> {
    runtime::paths::check_id(id).map_err(|_| Error::InvalidId(id.to_owned()))
}
