//! The library side, called from the (multi-threaded) server or CLI: it
//! never forks itself; it prepares the state directory and cgroups, spawns
//! the helper executable, and keeps the lifecycle records.
//!
//! Here are [`Runtime`], its configuration and what its jobs share; each
//! job has a file of its own: `create` (making and starting a sandbox, in
//! each way its init command can be launched), `lifecycle` (stopping,
//! signals, exits, adoption after a restart, removal), `exec` (commands
//! and terminals inside a running sandbox), `network` (sockets and bridges
//! in its network namespace), `layers` (writable layers on disk and views
//! of them) and `queries` (records, stats and activity).

mod create;
mod exec;
mod layers;
mod lifecycle;
mod network;
mod queries;

use std::collections::HashMap;
use std::fs;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command as StdCommand;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::cgroups::{self, Version};
use crate::error::{Error, Result};
use crate::paths::{Layout, check_id};
use crate::sealed::SealedExe;
use crate::spec::ExitStatus;
use crate::state::{State, Status, process_start_time};
use crate::userns::{Claim, UidPool};

pub use create::{Sandbox, Stdio3};
pub use exec::MAX_CAPTURE;
pub use lifecycle::AdoptReport;
pub use queries::SandboxInfo;

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of the tree drawn in [`crate::paths`]; created when missing.
    /// Put it on a tmpfs (e.g. under /run): records of running sandboxes
    /// must survive a server restart, not a reboot.
    pub state_dir: PathBuf,
    /// An executable that calls
    /// [`helper::main_if_requested`](crate::helper::main_if_requested)
    /// first thing (the server passes `std::env::current_exe()`).
    pub helper_exe: PathBuf,
    pub uid_pool: UidPool,
    /// Name of the cgroup directory (per hierarchy) that holds all sandboxes.
    pub cgroup_parent: String,
    /// Directory on a disk-backed filesystem (never a tmpfs, whose pages
    /// would count as memory again) where each sandbox's writable layer is
    /// made: a sparse ext4 image of the disk limit, unlinked as soon as
    /// its loop device holds it. It also keeps one empty template image
    /// (a few hundred KiB on disk) per disk limit in use. `<state_dir>/disk`
    /// unless set.
    pub disk_dir: PathBuf,
}

impl RuntimeConfig {
    pub fn new(state_dir: impl Into<PathBuf>, helper_exe: impl Into<PathBuf>) -> Self {
        let state_dir = state_dir.into();
        Self {
            disk_dir: state_dir.join("disk"),
            state_dir,
            helper_exe: helper_exe.into(),
            uid_pool: UidPool::default(),
            cgroup_parent: "layerlab".to_owned(),
        }
    }
}

/// Owner of the sandboxes under one state directory.
pub struct Runtime {
    config: RuntimeConfig,
    layout: Layout,
    cgroup_version: Version,
    /// The helper executable the sandboxes are entered through: a sealed
    /// copy, never the file at `config.helper_exe` (see `sealed`).
    helper: Arc<SealedExe>,
    /// Held (shared) for as long as this runtime lives: the directory is
    /// served; `sandbox gc` leaves its sandboxes alone.
    _lock: fs::File,
    /// Exit statuses of inits this process reaped (they are our children
    /// thanks to CLONE_PARENT); adopted sandboxes are not.
    exited: Arc<Exits>,
}

impl Runtime {
    pub fn new(config: RuntimeConfig) -> Result<Self> {
        Self::open(config, None)
    }

    /// `held`: the directory's lock file already locked (exclusively, by
    /// `gc`); otherwise it is taken shared, waiting while a gc runs.
    pub(crate) fn open(config: RuntimeConfig, held: Option<fs::File>) -> Result<Self> {
        config.uid_pool.validate()?;
        if config.cgroup_parent.is_empty()
            || check_id(&config.cgroup_parent.replace('/', "-")).is_err()
        {
            return Err(Error::InvalidSpec(format!(
                "cgroup parent {:?} is not a plain name",
                config.cgroup_parent
            )));
        }
        let mut config = config;
        let layout = Layout::new(&config.state_dir);
        for d in [
            layout.sandboxes(),
            crate::paths::MOUNT_POINT.into(),
            config.disk_dir.clone(),
        ] {
            fs::create_dir_all(&d).map_err(Error::io("create", &d))?;
        }
        // Uid range claims name their owner by this path, host-wide.
        config.state_dir =
            fs::canonicalize(&config.state_dir).map_err(Error::io("resolve", &config.state_dir))?;
        let layout = Layout::new(&config.state_dir);
        let lock = match held {
            Some(lock) => lock,
            None => {
                let lock = open_lock(&layout)?;
                // SAFETY: plain flock on a descriptor we own.
                crate::sys::check(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_SH) })
                    .map_err(Error::io("lock", layout.lock()))?;
                lock
            }
        };
        Ok(Self {
            _lock: lock,
            helper: SealedExe::of(&config.helper_exe)?,
            config,
            layout,
            cgroup_version: cgroups::detect(),
            exited: Arc::default(),
        })
    }

    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    fn helper_error(&self, id: &str, message: String) -> Error {
        Error::Helper {
            helper: self.config.helper_exe.clone(),
            id: id.to_owned(),
            message,
        }
    }

    /// A pidfd of a running sandbox's init, opened before the liveness
    /// check, so a recycled pid can never lead into another process's
    /// namespaces.
    fn live_pidfd(&self, id: &str, what: &'static str) -> Result<OwnedFd> {
        check_id(id)?;
        let st = self.load(id)?;
        let pidfd = st.init_pid.and_then(|pid| crate::sys::pidfd_open(pid).ok());
        pidfd
            .filter(|_| self.alive(&st))
            .ok_or_else(|| Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what,
            })
    }

    fn claim(&self, id: &str) -> Claim {
        Claim {
            state_dir: self.layout.root().to_owned(),
            id: id.to_owned(),
        }
    }

    fn load(&self, id: &str) -> Result<State> {
        let path = self.layout.state(id);
        if !path.exists() {
            return Err(Error::NotFound(id.to_owned()));
        }
        State::load(&path)
    }

    fn alive(&self, st: &State) -> bool {
        st.status == Status::Running
            && st
                .init_pid
                .zip(st.init_start_time)
                .is_some_and(|(p, t)| process_start_time(p) == Some(t))
    }
}

/// Exit statuses of the inits this process reaped, and a signal for
/// [`Runtime::wait_exit`].
#[derive(Default)]
struct Exits {
    map: Mutex<HashMap<String, ExitStatus>>,
    changed: std::sync::Condvar,
}

/// Makes `fds` the child's descriptors 3, 4, …, whatever their numbers
/// here: each is first copied above every target, so none overwrites
/// another before it is moved.
fn pass_fds_from_3<'a>(cmd: &mut StdCommand, fds: impl IntoIterator<Item = &'a OwnedFd>) {
    let mut raw: Vec<i32> = fds.into_iter().map(|f| f.as_raw_fd()).collect();
    let above = 3 + raw.len() as i32;
    // SAFETY: only fcntl/dup2/close between fork and exec (async-signal-safe),
    // writing in place into a vector allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            for fd in raw.iter_mut() {
                let copy = libc::fcntl(*fd, libc::F_DUPFD, above);
                if copy < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                *fd = copy;
            }
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as i32) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(*fd);
            }
            Ok(())
        });
    }
}

/// The state directory's lock file, created when missing.
pub(crate) fn open_lock(layout: &Layout) -> Result<fs::File> {
    let path = layout.lock();
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(Error::io("open", path))
}

/// Waits (up to `timeout`) until `fd` is readable; a pidfd is readable once
/// its process has exited.
fn wait_readable(fd: i32, timeout: Duration) {
    if fd < 0 {
        std::thread::sleep(timeout.min(Duration::from_millis(10)));
        return;
    }
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
}
