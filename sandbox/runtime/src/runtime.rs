//! The library side, called from the (multi-threaded) server or CLI: it
//! never forks itself; it prepares the state directory and cgroups, spawns
//! the helper executable, and keeps the lifecycle records.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command as StdCommand, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use tracing::{debug, warn};

use crate::cgroups::{self, Stats, Version};
use crate::error::{Error, Result};
use crate::helper;
use crate::paths::{Layout, check_id};
use crate::process::HelperConfig;
use crate::sealed::SealedExe;
use crate::spec::{ExecOutput, ExecSpec, ExitStatus, SandboxSpec};
use crate::state::{self, State, Status, now_unix_ms, process_start_time};
use crate::tty::{Pty, PtyReply, WindowSize};
use crate::userns::{self, Claim, UidPool};

/// How long `exec` keeps reading output after its command exited, for
/// background processes that still hold the pipes.
const PIPE_DRAIN: Duration = Duration::from_millis(200);

/// How long killed processes may take to leave their cgroups.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Root of the tree drawn in [`crate::paths`]; created when missing.
    /// Put it on a tmpfs (e.g. under /run): records of running sandboxes
    /// must survive a server restart, not a reboot.
    pub state_dir: PathBuf,
    /// An executable that calls [`helper::main_if_requested`] first thing
    /// (the server passes `std::env::current_exe()`).
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

/// A sandbox that `create` made ready.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    /// Host pid of its init (pid 1 inside).
    pub init_pid: i32,
    /// Host uid (and gid) that root inside maps to.
    pub uid_base: u32,
}

/// One row of [`Runtime::list`].
#[derive(Debug, Clone)]
pub struct SandboxInfo {
    pub id: String,
    pub status: Status,
    pub init_pid: Option<i32>,
    pub uid_base: u32,
    pub created_unix_ms: u64,
    /// Last `create`, `exec`, `exec_command` or `touch`.
    pub last_activity: Option<SystemTime>,
}

/// What [`Runtime::adopt_or_cleanup`] found.
#[derive(Debug, Clone, Default)]
pub struct AdoptReport {
    pub adopted: Vec<String>,
    pub cleaned: Vec<String>,
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

    /// Creates and starts a sandbox; returns once its init is ready for exec
    /// (status Running). On failure nothing is left behind. Fails with
    /// `AlreadyExists` if `spec.id` has a record, whatever its status.
    pub fn create(&self, spec: SandboxSpec) -> Result<Sandbox> {
        Ok(self.create_with(spec, Launch::Detached)?.0)
    }

    /// Like [`Runtime::create`], with the init command's stdin, stdout and
    /// stderr given by the caller (pipes): a container whose streams the
    /// caller serves. The sandbox does not die with the caller.
    pub fn create_attached(&self, spec: SandboxSpec, stdio: Stdio3) -> Result<Sandbox> {
        Ok(self.create_with(spec, Launch::Attached(stdio))?.0)
    }

    /// Like [`Runtime::create_attached`], with the init command on a new
    /// terminal of the sandbox's own devpts, `size` big: its controlling
    /// terminal and stdio (`/dev/pts/0` inside). Returns the terminal's
    /// master, which the caller reads, writes and resizes.
    pub fn create_on_terminal(
        &self,
        spec: SandboxSpec,
        size: WindowSize,
    ) -> Result<(Sandbox, Pty)> {
        let (sb, master) = self.create_with(spec, Launch::Terminal(size.validate()?))?;
        let master = master.ok_or_else(|| {
            self.helper_error(&sb.id, "the sandbox started without its terminal".into())
        });
        match master {
            Ok(master) => Ok((sb, Pty::new(master))),
            Err(e) => {
                let _ = self.stop(&sb.id, Duration::ZERO);
                Err(e)
            }
        }
    }

    fn create_with(&self, spec: SandboxSpec, launch: Launch) -> Result<(Sandbox, Option<OwnedFd>)> {
        let (sb, master) = self.create_inner(spec, launch)?;
        // A status reaped from an earlier sandbox of the same id is stale.
        if let Ok(mut m) = self.exited.map.lock() {
            m.remove(&sb.id);
        }
        self.reap_in_background(&sb);
        Ok((sb, master))
    }

    /// The sandbox, and the master of its init command's terminal for a
    /// [`Launch::Terminal`].
    fn create_inner(
        &self,
        spec: SandboxSpec,
        launch: Launch,
    ) -> Result<(Sandbox, Option<OwnedFd>)> {
        spec.validate()?;
        for d in &spec.lowerdirs {
            if !d.is_dir() {
                return Err(Error::InvalidSpec(format!(
                    "lower layer {} is not a directory",
                    d.display()
                )));
            }
        }
        for m in spec.mounts.iter().filter(|m| !m.in_node) {
            if !m.source.exists() {
                return Err(Error::InvalidSpec(format!(
                    "bind mount source {} does not exist",
                    m.source.display()
                )));
            }
        }
        if crate::sys::is_tmpfs(&self.config.disk_dir) {
            return Err(Error::InvalidSpec(format!(
                "the writable layers' directory {} is on a tmpfs, where a full disk would use memory: choose a directory on disk",
                self.config.disk_dir.display()
            )));
        }
        let id = spec.id.clone();
        let dir = self.layout.sandbox(&id);
        match fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::AlreadyExists(id));
            }
            Err(e) => return Err(Error::io("create", &dir)(e)),
        }
        let started = Instant::now();
        let mut claimed = None;
        let r = (|| {
            let (s, uid_base, cgroup_dirs, sibling) = match &spec.sibling_of {
                // The node's slot is recorded but never released for us:
                // a release checks that the slot's owner is the releaser.
                Some(node) => {
                    let ns = self.load(node)?;
                    if !self.alive(&ns) {
                        return Err(Error::NotRunning {
                            id: node.clone(),
                            status: Status::Exited.as_str().into(),
                            what: "a sibling sandbox",
                        });
                    }
                    let dirs = ns.cgroups.iter().map(|d| d.join(&id)).collect();
                    let sibling = crate::process::Sibling {
                        init_pid: ns.init_pid.unwrap_or_default(),
                        init_start_time: ns.init_start_time.unwrap_or_default(),
                    };
                    (ns.uid_slot, ns.uid_base, dirs, Some(sibling))
                }
                None => {
                    let s = self.config.uid_pool.allocate(&self.claim(&id))?;
                    let uid_base = self.config.uid_pool.base(s);
                    claimed = Some(uid_base);
                    let dirs = cgroups::dirs(self.cgroup_version, &self.config.cgroup_parent, &id);
                    (s, uid_base, dirs, None)
                }
            };
            if let Launch::Attached(stdio) = &launch {
                give_streams(stdio, uid_base)?;
            }
            let st = State {
                id: id.clone(),
                status: Status::Creating,
                init_pid: None,
                init_start_time: None,
                uid_slot: s,
                uid_base,
                cgroups: cgroup_dirs.clone(),
                created_unix_ms: now_unix_ms(),
                sibling_of: spec.sibling_of.clone(),
                held: 0,
            };
            st.save(&self.layout.state(&id))?;
            cgroups::create(self.cgroup_version, &cgroup_dirs, &spec.limits)?;
            let rootfs = crate::paths::MOUNT_POINT.into();
            fs::write(self.layout.activity(&id), b"")
                .map_err(Error::io("create", self.layout.activity(&id)))?;
            let disk_image = if spec.keep_writable_layer {
                self.kept_layer(&id)
            } else {
                self.disk_image(&id)
            };
            let cfg = HelperConfig {
                spec,
                sibling,
                uid_base,
                cgroups: cgroup_dirs,
                rootfs,
                disk_image,
                state: self.layout.state(&id),
                error: self.layout.helper_error(&id),
                foreground: matches!(launch, Launch::Foreground { .. }),
                terminal: matches!(launch, Launch::Foreground { terminal: true }),
                attached: match &launch {
                    Launch::Attached(stdio) => Some(crate::process::Attached {
                        terminal: None,
                        held: stdio.held.len(),
                    }),
                    Launch::Terminal(size) => Some(crate::process::Attached {
                        terminal: Some(*size),
                        held: 0,
                    }),
                    _ => None,
                },
            };
            state::write_json_atomic(&self.layout.config(&id), &cfg)?;
            let master = self.run_create_helper(&id, launch)?;
            let st = State::load(&self.layout.state(&id))?;
            let init_pid = st.init_pid.ok_or_else(|| {
                self.helper_error(&id, "helper exited without an init pid".into())
            })?;
            let sb = Sandbox {
                id: id.clone(),
                init_pid,
                uid_base,
            };
            Ok((sb, master))
        })();
        match r {
            Ok((sb, master)) => {
                debug!(id = %sb.id, pid = sb.init_pid, elapsed = ?started.elapsed(), "sandbox ready");
                Ok((sb, master))
            }
            Err(failure) => {
                warn!(id = %id, error = %failure, "sandbox create failed; removing its leftovers");
                match self.destroy(&id, claimed) {
                    Ok(()) => Err(failure),
                    Err(cleanup) => Err(Error::WithCleanup {
                        failure: Box::new(failure),
                        cleanup: Box::new(cleanup),
                    }),
                }
            }
        }
    }

    fn helper_error(&self, id: &str, message: String) -> Error {
        Error::Helper {
            helper: self.config.helper_exe.clone(),
            id: id.to_owned(),
            message,
        }
    }

    /// Runs the create helper and returns once it reports the sandbox
    /// ready (its exit is reaped in the background, off the start-up path),
    /// with the master of the init command's terminal for a
    /// [`Launch::Terminal`].
    ///
    /// The ready byte comes over a pipe: the helper's stdout for detached
    /// sandboxes (the sandbox itself gets /dev/null), or descriptor 3 for
    /// the others, whose stdio is the caller's. For a terminal, descriptor 3
    /// is a socket and the master itself is the ready signal. Only
    /// descriptor 3 needs `pre_exec` (and so a real fork of the caller).
    fn run_create_helper(&self, id: &str, launch: Launch) -> Result<Option<OwnedFd>> {
        let mut cmd = StdCommand::new(self.helper.path());
        cmd.arg(helper::CREATE)
            .arg(self.layout.config(id))
            .env_clear();
        let detached = matches!(launch, Launch::Detached);
        let terminal = matches!(launch, Launch::Terminal(_));
        let mut held = Vec::new();
        if let Launch::Attached(stdio) = launch {
            // Never the caller's terminal or process group.
            cmd.process_group(0)
                .stdin(Stdio::from(stdio.stdin))
                .stdout(Stdio::from(stdio.stdout))
                .stderr(Stdio::from(stdio.stderr));
            held = stdio.held;
        } else if terminal {
            cmd.process_group(0)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        }
        if !detached {
            let (r, w) = if terminal {
                crate::process::channel::pair()?
            } else {
                let (r, w) = pipe().map_err(Error::sys("create ready pipe"))?;
                (r.into(), w)
            };
            cmd.arg("3");
            pass_fds_from_3(&mut cmd, std::iter::once(&w).chain(&held));
            let child = cmd
                .spawn()
                .map_err(Error::io("run helper", &self.config.helper_exe))?;
            drop(w);
            if !terminal {
                let ready = ready_byte(r.into());
                return self.await_ready(id, child, ready).map(|()| None);
            }
            let master = match crate::process::channel::recv(&r) {
                Ok(Some(crate::process::channel::Message::Terminal(master))) => Some(master),
                _ => None,
            };
            self.await_ready(id, child, master.is_some())?;
            return Ok(master);
        }
        // Its own process group: a terminal the caller may have must never
        // deliver ^C to a sandbox.
        cmd.arg("1")
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd
            .spawn()
            .map_err(Error::io("run helper", &self.config.helper_exe))?;
        let ready = child
            .stdout
            .take()
            .is_some_and(|o| ready_byte(OwnedFd::from(o).into()));
        self.await_ready(id, child, ready).map(|()| None)
    }

    /// Reaps the helper in the background once it reported `ready`;
    /// otherwise waits for it and returns its error.
    fn await_ready(&self, id: &str, mut child: std::process::Child, ready: bool) -> Result<()> {
        if ready {
            std::thread::Builder::new()
                .stack_size(64 * 1024)
                .spawn(move || child.wait())
                .map_err(|e| Error::sys("start helper reaper")(e))?;
            return Ok(());
        }
        let status = child
            .wait()
            .map_err(Error::io("wait for helper", &self.config.helper_exe))?;
        let msg = fs::read_to_string(self.layout.helper_error(id))
            .unwrap_or_else(|_| format!("helper exited with {status}"));
        if msg.starts_with(crate::process::init::NOT_FOUND_PREFIX) {
            return Err(Error::CommandNotFound(msg));
        }
        Err(self.helper_error(id, msg))
    }

    /// The init is our child: reap it so it never lingers as a zombie, and
    /// keep its status for `list`.
    fn reap_in_background(&self, sb: &Sandbox) {
        let exited = Arc::clone(&self.exited);
        let (id, pid) = (sb.id.clone(), sb.init_pid);
        let spawned = std::thread::Builder::new()
            .name(format!("reap-{id}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let status = wait_child(pid);
                debug!(id = %id, pid, ?status, "sandbox init exited");
                if let Ok(mut m) = exited.map.lock() {
                    m.insert(id, status);
                    exited.changed.notify_all();
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot start reaper thread; the sandbox init will stay a zombie after exit");
        }
    }

    /// Records how the init of `id` ends without reaping it (it outlived
    /// the `Runtime` that started it): once its pidfd says it is gone,
    /// from the exit code it wrote beside its state.
    fn watch_foreign_exit(&self, id: &str, pidfd: OwnedFd) {
        let exited = Arc::clone(&self.exited);
        let path = self.layout.sandbox(id).join(crate::process::EXIT_CODE_FILE);
        let id = id.to_owned();
        let spawned = std::thread::Builder::new()
            .name(format!("watch-{id}"))
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut p = libc::pollfd {
                    fd: pidfd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                };
                // SAFETY: one valid pollfd; retried when a signal interrupts it.
                while unsafe { libc::poll(&mut p, 1, -1) } < 0
                    && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
                {
                }
                let code = fs::read_to_string(&path)
                    .ok()
                    .and_then(|t| t.trim().parse::<i32>().ok());
                let status = ExitStatus { code, signal: None };
                debug!(id = %id, ?status, "an adopted sandbox's init exited");
                if let Ok(mut m) = exited.map.lock() {
                    m.insert(id, status);
                    exited.changed.notify_all();
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "cannot watch an adopted sandbox; its exit code will be lost");
        }
    }

    /// Runs a command in a running sandbox with captured output; kills it
    /// after `spec.timeout`. Only in status Running (`NotRunning` otherwise).
    pub fn exec(&self, id: &str, spec: &ExecSpec) -> Result<ExecOutput> {
        let argv = self.exec_command(id, spec)?;
        let mut child = StdCommand::new(&argv[0])
            .args(&argv[1..])
            .env_clear()
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(Error::io("run helper", &self.config.helper_exe))?;
        // Background processes of the command may keep the pipes open
        // forever: collect into shared buffers and stop waiting for EOF a
        // moment after the helper exits.
        let out = Pump::start(
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let err = Pump::start(
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        );
        let deadline = spec.timeout.map(|t| Instant::now() + t);
        let pidfd = crate::sys::pidfd_open(child.id() as i32).ok();
        let pidfd_raw = pidfd.as_ref().map_or(-1, |f| f.as_raw_fd());
        let mut timed_out = false;
        let status = loop {
            match child
                .try_wait()
                .map_err(Error::sys("wait for exec helper"))?
            {
                Some(s) => break s,
                None if deadline.is_some_and(|d| Instant::now() >= d) => {
                    // The command dies with its helper (PR_SET_PDEATHSIG).
                    let _ = child.kill();
                    timed_out = true;
                    break child.wait().map_err(Error::sys("wait for exec helper"))?;
                }
                None => wait_readable(pidfd_raw, Duration::from_millis(50)),
            }
        };
        let drain_until = Instant::now() + PIPE_DRAIN;
        let stdout = out.finish(drain_until);
        let stderr = err.finish(drain_until);
        if timed_out {
            debug!(id, argv = ?spec.argv, "exec timed out; killed");
            return Err(Error::Timeout(spec.timeout.unwrap_or_default()));
        }
        Ok(ExecOutput {
            status: status.into(),
            stdout,
            stderr,
        })
    }

    /// The command line that runs `spec` inside sandbox `id` with whatever
    /// stdio it is started with: `[helper, "__layerlab-runtime-exec", …,
    /// id, "--", argv…]`, where `helper` is the sealed copy of the helper
    /// executable as a `/proc/<our pid>/fd/<n>` path, valid while this
    /// process lives. `spec.timeout` does not apply (the caller owns the
    /// process). For a terminal use [`Runtime::terminal_command`]: one made
    /// by the caller would not be the sandbox's.
    pub fn exec_command(&self, id: &str, spec: &ExecSpec) -> Result<Vec<OsString>> {
        self.exec_argv(id, spec, None)
    }

    /// `spec` ready to run inside sandbox `id` on a new terminal of the
    /// sandbox's own devpts, `size` big, as the command's controlling
    /// terminal and stdio (the slave belongs to `spec.uid`, group tty, mode
    /// 0620). Spawn the command (with std or tokio), drop it, then
    /// [`PtyReply::receive`] the terminal's master. The helper's exit
    /// status mirrors the command's; killing the helper kills the command.
    /// Running only; `spec.timeout` does not apply.
    pub fn terminal_command(
        &self,
        id: &str,
        spec: &ExecSpec,
        size: WindowSize,
    ) -> Result<(StdCommand, PtyReply)> {
        let argv = self.exec_argv(id, spec, Some(size.validate()?))?;
        let (ours, theirs) = crate::process::channel::pair()?;
        let mut cmd = StdCommand::new(&argv[0]);
        cmd.args(&argv[1..])
            .env_clear()
            .process_group(0)
            .stdin(Stdio::from(theirs))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Ok((cmd, PtyReply::new(ours, &self.config.helper_exe, id)))
    }

    fn exec_argv(
        &self,
        id: &str,
        spec: &ExecSpec,
        tty: Option<WindowSize>,
    ) -> Result<Vec<OsString>> {
        check_id(id)?;
        spec.validate()?;
        let st = self.load(id)?;
        if !self.alive(&st) {
            return Err(Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "exec",
            });
        }
        let _ = self.touch(id);
        let mut v: Vec<OsString> = vec![
            self.helper.path().into(),
            helper::EXEC.into(),
            "--state-dir".into(),
            self.layout.root().into(),
            "--cwd".into(),
            spec.cwd.clone().into(),
            "--uid".into(),
            spec.uid.to_string().into(),
            "--gid".into(),
            spec.gid.to_string().into(),
        ];
        for (k, val) in &spec.env {
            v.push("--env".into());
            v.push(format!("{k}={val}").into());
        }
        if let Some(size) = tty {
            v.push("--tty".into());
            v.push(size.arg().into());
        }
        v.push(id.into());
        v.push("--".into());
        v.extend(spec.argv.iter().map(OsString::from));
        Ok(v)
    }

    /// A TCP connection to `addr` made inside the sandbox's network
    /// namespace: `127.0.0.1` is the sandbox's own loopback, never the
    /// host's. Running only. The caller gets a plain socket and speaks
    /// whatever protocol it likes over it.
    pub fn connect_tcp(
        &self,
        id: &str,
        addr: std::net::SocketAddr,
        timeout: Duration,
    ) -> Result<std::net::TcpStream> {
        let pidfd = self.live_pidfd(id, "a connection")?;
        debug!(id, %addr, "connecting inside the sandbox's network");
        crate::net::connect_in(pidfd.as_fd(), addr, timeout).map_err(|source| Error::Connect {
            id: id.to_owned(),
            addr,
            source,
        })
    }

    /// The TCP ports something listens on inside the sandbox's network
    /// namespace on every address or on loopback (what
    /// [`Runtime::connect_tcp`] to `127.0.0.1` reaches), ascending. Read
    /// from the kernel's tables of its init (`/proc/<pid>/net/tcp{,6}`),
    /// so nothing runs in the sandbox and its idle clock does not move.
    /// Running only.
    pub fn listening_tcp_ports(&self, id: &str) -> Result<Vec<u16>> {
        check_id(id)?;
        let st = self.load(id)?;
        let pid = st
            .init_pid
            .filter(|_| self.alive(&st))
            .ok_or_else(|| Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "a list of its ports",
            })?;
        let mut ports = Vec::new();
        for table in ["tcp", "tcp6"] {
            let path = format!("/proc/{pid}/net/{table}");
            match std::fs::read_to_string(&path) {
                Ok(text) => ports.extend(crate::net::listening_ports(&text)),
                // A kernel without IPv6 has no tcp6 table.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io("reading the port table", path)(e)),
            }
        }
        ports.sort_unstable();
        ports.dedup();
        Ok(ports)
    }

    /// A TCP listener bound to `addr` inside the sandbox's network
    /// namespace: a port published on a node. Running only.
    pub fn listen_tcp(
        &self,
        id: &str,
        addr: std::net::SocketAddr,
    ) -> Result<std::net::TcpListener> {
        let pidfd = self.live_pidfd(id, "a listener")?;
        debug!(id, %addr, "listening inside the sandbox's network");
        crate::net::listen_in(pidfd.as_fd(), addr).map_err(|source| Error::Listen {
            id: id.to_owned(),
            addr,
            source,
        })
    }

    /// A UDP socket bound to `addr` inside the sandbox's network namespace.
    /// Running only.
    pub fn bind_udp(&self, id: &str, addr: std::net::SocketAddr) -> Result<std::net::UdpSocket> {
        let pidfd = self.live_pidfd(id, "a UDP socket")?;
        crate::net::bind_udp_in(pidfd.as_fd(), addr).map_err(|source| Error::Listen {
            id: id.to_owned(),
            addr,
            source,
        })
    }

    /// Adds `bridge` to the sandbox's network (a user-defined network of
    /// its siblings). Running only.
    pub fn add_bridge(&self, id: &str, bridge: &crate::spec::Bridge) -> Result<()> {
        let pidfd = self.live_pidfd(id, "a new bridge")?;
        crate::net::bridge_in(pidfd.as_fd(), Some(bridge), &bridge.name)
    }

    /// Removes bridge `name` from the sandbox's network. Running only.
    pub fn remove_bridge(&self, id: &str, name: &str) -> Result<()> {
        let pidfd = self.live_pidfd(id, "a bridge's removal")?;
        crate::net::bridge_in(pidfd.as_fd(), None, name)
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

    /// SIGTERM to the init (forwarded to its command, or to every process
    /// when idle), SIGKILL to whatever is left after `grace`, then releases
    /// everything: cgroups, state directory, uid range. Works in every
    /// status, including on leftovers of a crashed create.
    pub fn stop(&self, id: &str, grace: Duration) -> Result<()> {
        check_id(id)?;
        let st = self.load(id)?;
        debug!(id, ?grace, "stopping sandbox");
        if let Some(pidfd) = self.signal_init(&st, libc::SIGTERM) {
            wait_readable(pidfd.as_raw_fd(), grace);
        }
        self.destroy(id, Some(st.uid_base))
    }

    /// The descriptors the init of running sandbox `id` holds for its caller
    /// ([`Stdio3::held`], or its terminal's master), copied into this
    /// process: how a restarted caller finds a container's streams again.
    pub fn take_back(&self, id: &str) -> Result<Vec<OwnedFd>> {
        let pidfd = self.live_pidfd(id, "taking its streams back")?;
        let st = self.load(id)?;
        // Whoever reaps the init now (its parent is gone, or is another
        // `Runtime` of this process), this one learns how it ended.
        self.watch_foreign_exit(id, pidfd.try_clone().map_err(Error::sys("copy a pidfd"))?);
        (0..st.held as i32)
            .map(|i| {
                // SAFETY: plain syscall on a pidfd we own.
                let fd = unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_getfd,
                        pidfd.as_raw_fd(),
                        crate::process::HELD_FD + i,
                        0,
                    )
                };
                if fd < 0 {
                    return Err(Error::sys("take a sandbox's stream back")(
                        std::io::Error::last_os_error(),
                    ));
                }
                // SAFETY: a fresh descriptor the kernel just gave us.
                Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
            })
            .collect()
    }

    /// Sends `signal` to the sandbox's init, which passes it on to its
    /// command (a container's main process). Running only.
    pub fn signal(&self, id: &str, signal: i32) -> Result<()> {
        check_id(id)?;
        let st = self.load(id)?;
        match self.signal_init(&st, signal) {
            Some(_) => Ok(()),
            None => Err(Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "a signal",
            }),
        }
    }

    /// Signals a live init through a pidfd opened before the liveness
    /// check, so a pid recycled in between never receives it.
    fn signal_init(&self, st: &State, signal: i32) -> Option<OwnedFd> {
        let pidfd = st
            .init_pid
            .and_then(|pid| crate::sys::pidfd_open(pid).ok())?;
        if !self.alive(st) {
            return None;
        }
        // SAFETY: plain syscall on a pidfd we own.
        unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                pidfd.as_raw_fd(),
                signal,
                0usize,
                0,
            )
        };
        Some(pidfd)
    }

    /// The writable layer of a sandbox made with
    /// [`SandboxSpec::keep_writable_layer`], between and during its runs.
    fn kept_layer(&self, id: &str) -> PathBuf {
        self.config.disk_dir.join(format!("{id}.kept.ext4"))
    }

    /// Deletes the kept writable layer of `id` (a removed container's), if
    /// any. Not while a sandbox of that id runs.
    pub fn remove_kept_layer(&self, id: &str) -> Result<()> {
        check_id(id)?;
        if self.load(id).is_ok_and(|st| self.alive(&st)) {
            return Err(Error::Running(id.to_owned()));
        }
        let path = self.kept_layer(id);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(Error::io("remove", &path)(e))
            }
            _ => Ok(()),
        }
    }

    /// Ids of every kept writable layer, so an owner can delete those it no
    /// longer knows (after a crash between a removal's steps).
    pub fn kept_layers(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.config.disk_dir) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".kept.ext4").map(str::to_owned)
            })
            .filter(|id| check_id(id).is_ok())
            .collect()
    }

    /// Read-only views of the kept writable layer of `id` (running or not;
    /// an empty one of `limits` is made if it never ran) and of
    /// `lowerdirs`, the image it starts from, mapped through the user
    /// namespace of `node`, the running sandbox it is a sibling of.
    pub fn open_layer(
        &self,
        id: &str,
        node: &str,
        lowerdirs: &[PathBuf],
        limits: &crate::spec::Limits,
    ) -> Result<crate::rootfs::LayerViews> {
        let mut views = self
            .run_layer_helper(id, node, lowerdirs, limits, false)?
            .into_iter();
        match (views.next(), views.next(), views.next()) {
            (Some(upper), Some(image), Some(merged)) => Ok(crate::rootfs::LayerViews {
                upper,
                image,
                merged,
            }),
            _ => Err(self.helper_error(id, "the layer helper sent too few views".into())),
        }
    }

    /// The root of `id` as it would start, writable: its kept layer (made
    /// as in [`Runtime::open_layer`]) over `lowerdirs`, and that layer's
    /// own tree. Only while no sandbox of that id runs. What is written
    /// must be owned by host ids of the node's range.
    pub fn open_layer_writable(
        &self,
        id: &str,
        node: &str,
        lowerdirs: &[PathBuf],
        limits: &crate::spec::Limits,
    ) -> Result<crate::rootfs::WritableViews> {
        if self.load(id).is_ok_and(|st| self.alive(&st)) {
            return Err(Error::Running(id.to_owned()));
        }
        let mut views = self
            .run_layer_helper(id, node, lowerdirs, limits, true)?
            .into_iter();
        match (views.next(), views.next()) {
            (Some(root), Some(upper)) => Ok(crate::rootfs::WritableViews { root, upper }),
            _ => Err(self.helper_error(id, "the layer helper sent too few views".into())),
        }
    }

    fn run_layer_helper(
        &self,
        id: &str,
        node: &str,
        lowerdirs: &[PathBuf],
        limits: &crate::spec::Limits,
        writable: bool,
    ) -> Result<Vec<OwnedFd>> {
        check_id(id)?;
        limits.validate()?;
        let st = self.load(node)?;
        if !self.alive(&st) {
            return Err(Error::NotRunning {
                id: node.to_owned(),
                status: Status::Exited.as_str().into(),
                what: "a view of a sibling's files",
            });
        }
        let cfg = crate::process::layer::LayerConfig {
            image: self.kept_layer(id),
            limits: limits.clone(),
            lowerdirs: lowerdirs.to_vec(),
            node: crate::process::Sibling {
                init_pid: st.init_pid.unwrap_or_default(),
                init_start_time: st.init_start_time.unwrap_or_default(),
            },
            node_id: node.to_owned(),
            uid_base: st.uid_base,
            scratch: crate::paths::MOUNT_POINT.into(),
            writable,
        };
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let config = self
            .layout
            .root()
            .join(format!("layer-{}-{n}.json", std::process::id()));
        state::write_json_atomic(&config, &cfg)?;
        let got = self.layer_helper_views(id, &config);
        let _ = fs::remove_file(&config);
        got
    }

    fn layer_helper_views(&self, id: &str, config: &std::path::Path) -> Result<Vec<OwnedFd>> {
        let (ours, theirs) = crate::process::channel::pair()?;
        let mut cmd = StdCommand::new(self.helper.path());
        cmd.arg(helper::LAYER)
            .arg(config)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.arg("3");
        pass_fds_from_3(&mut cmd, [&theirs]);
        let mut child = cmd
            .spawn()
            .map_err(Error::io("run helper", &self.config.helper_exe))?;
        drop(theirs);
        let mut views = Vec::new();
        let outcome = loop {
            match crate::process::channel::recv(&ours) {
                Ok(Some(crate::process::channel::Message::Rootfs(fd))) => views.push(fd),
                Ok(Some(crate::process::channel::Message::Ready)) => break Ok(views),
                Ok(Some(crate::process::channel::Message::Failed(m))) => {
                    break Err(self.helper_error(id, m));
                }
                Ok(Some(crate::process::channel::Message::Terminal(_))) => {
                    break Err(self.helper_error(id, "the layer helper sent a terminal".into()));
                }
                Ok(None) => break Err(self.helper_error(id, "the layer helper died".into())),
                Err(e) => break Err(e),
            }
        };
        let _ = child.wait();
        outcome
    }

    /// Exists only while a create is under way (or after it crashed).
    fn disk_image(&self, id: &str) -> PathBuf {
        self.config.disk_dir.join(format!("{id}.img"))
    }

    fn claim(&self, id: &str) -> Claim {
        Claim {
            state_dir: self.layout.root().to_owned(),
            id: id.to_owned(),
        }
    }

    /// The uid ranges this state directory's sandboxes hold on the host:
    /// first host id and sandbox id.
    pub fn claimed_ranges(&self) -> Vec<(u32, String)> {
        userns::claims()
            .into_iter()
            .filter(|(_, c)| c.state_dir == self.layout.root())
            .map(|(base, c)| (base, c.id))
            .collect()
    }

    /// Kills what is left and removes every host-side trace of `id`, after
    /// that of its siblings (whose cgroups live inside its own), releasing
    /// its uid range (starting at `uid_base`) last.
    fn destroy(&self, id: &str, uid_base: Option<u32>) -> Result<()> {
        for sibling in self.siblings_of(id) {
            self.destroy(&sibling, None)?;
        }
        let dirs = match State::load(&self.layout.state(id)) {
            Ok(st) => st.cgroups,
            Err(_) => cgroups::dirs(self.cgroup_version, &self.config.cgroup_parent, id),
        };
        cgroups::destroy(&dirs, KILL_TIMEOUT)?;
        let dir = self.layout.sandbox(id);
        match fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &dir)(e)),
        }
        let image = self.disk_image(id);
        match fs::remove_file(&image) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io("remove", &image)(e)),
        }
        if let Some(base) = uid_base {
            userns::release(base, &self.claim(id))?;
        }
        if let Ok(mut m) = self.exited.map.lock() {
            m.remove(id);
        }
        Ok(())
    }

    /// Sandboxes created as siblings of `id`.
    fn siblings_of(&self, id: &str) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.layout.sandboxes()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_owned))
            .filter(|other| other != id && check_id(other).is_ok())
            .filter(|other| {
                State::load(&self.layout.state(other))
                    .is_ok_and(|st| st.sibling_of.as_deref() == Some(id))
            })
            .collect()
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

    fn info(&self, st: State) -> SandboxInfo {
        let status = match st.status {
            Status::Running if !self.alive(&st) => Status::Exited,
            s => s,
        };
        SandboxInfo {
            last_activity: self.last_activity(&st.id),
            id: st.id,
            status,
            init_pid: st.init_pid,
            uid_base: st.uid_base,
            created_unix_ms: st.created_unix_ms,
        }
    }

    pub fn get(&self, id: &str) -> Result<SandboxInfo> {
        check_id(id)?;
        Ok(self.info(self.load(id)?))
    }

    /// Every sandbox with a state record, in id order.
    pub fn list(&self) -> Result<Vec<SandboxInfo>> {
        let dir = self.layout.sandboxes();
        let mut out = Vec::new();
        for e in fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .flatten()
        {
            let Some(id) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_id(&id).is_err() {
                continue;
            }
            if let Ok(st) = State::load(&self.layout.state(&id)) {
                out.push(self.info(st));
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Exit status of an init this process reaped (`None` while running,
    /// for adopted sandboxes, or once stopped).
    pub fn exit_status(&self, id: &str) -> Option<ExitStatus> {
        self.exited.map.lock().ok()?.get(id).copied()
    }

    /// Waits up to `timeout` for the init of `id`, our child, to be reaped,
    /// and returns its status; `None` if it still runs then (or is not ours).
    pub fn wait_exit(&self, id: &str, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        let mut map = self.exited.map.lock().ok()?;
        loop {
            if let Some(status) = map.get(id) {
                return Some(*status);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            map = self.exited.changed.wait_timeout(map, left).ok()?.0;
        }
    }

    pub fn stats(&self, id: &str) -> Result<Stats> {
        let st = self.running_state(id, "stats")?;
        cgroups::stats(self.cgroup_version, &st.cgroups)
    }

    /// Host pids of the sandbox's processes (its init included). Running
    /// only.
    pub fn processes(&self, id: &str) -> Result<Vec<i32>> {
        let st = self.running_state(id, "a process list")?;
        Ok(cgroups::procs(&st.cgroups))
    }

    /// The record of a running sandbox; `NotRunning` names `what` needed it.
    fn running_state(&self, id: &str, what: &'static str) -> Result<State> {
        check_id(id)?;
        let st = self.load(id)?;
        if !self.alive(&st) {
            return Err(Error::NotRunning {
                id: id.to_owned(),
                status: Status::Exited.as_str().into(),
                what,
            });
        }
        Ok(st)
    }

    /// Records activity now (terminal input, a grading run); the owner
    /// compares [`SandboxInfo::last_activity`] with its idle timeout.
    pub fn touch(&self, id: &str) -> Result<()> {
        check_id(id)?;
        let path = self.layout.activity(id);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(Error::io("open", &path))?;
        f.set_modified(SystemTime::now())
            .map_err(Error::io("touch", &path))
    }

    pub fn last_activity(&self, id: &str) -> Option<SystemTime> {
        fs::metadata(self.layout.activity(id))
            .and_then(|m| m.modified())
            .ok()
    }

    /// Run once at start: keeps sandboxes whose init still runs, removes
    /// every trace of the others (processes, cgroups, state, uid ranges),
    /// including uid ranges this directory claimed without a state record.
    ///
    /// Cgroups under the parent without a state record here are left
    /// alone: a sandbox's state is saved before its cgroup is created and
    /// removed after it is destroyed, so such a cgroup belongs to another
    /// runtime directory sharing the parent (a second server, or
    /// `layerlab sandbox run` with another data directory).
    pub fn adopt_or_cleanup(&self) -> Result<AdoptReport> {
        let mut report = AdoptReport::default();
        let dir = self.layout.sandboxes();
        for e in fs::read_dir(&dir)
            .map_err(Error::io("read", &dir))?
            .flatten()
        {
            let Some(id) = e.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if check_id(&id).is_err() {
                continue;
            }
            match State::load(&self.layout.state(&id)) {
                Ok(st) if self.alive(&st) => report.adopted.push(id),
                Ok(st) => {
                    self.destroy(&id, Some(st.uid_base))?;
                    report.cleaned.push(id);
                }
                Err(_) => {
                    self.destroy(&id, None)?;
                    report.cleaned.push(id);
                }
            }
        }
        tracing::info!(adopted = ?report.adopted, cleaned = ?report.cleaned, "sandboxes found at start-up");
        // Ranges claimed by a create that crashed before its first record.
        for (base, id) in self.claimed_ranges() {
            if !self.layout.sandbox(&id).exists() {
                userns::release(base, &self.claim(&id))?;
            }
        }
        Ok(report)
    }

    /// Creates a fresh sandbox whose init runs `argv` with the caller's
    /// stdio, waits for it, destroys the sandbox and returns the status.
    /// See [`crate::run_once`].
    pub(crate) fn run_foreground(&self, spec: SandboxSpec, terminal: bool) -> Result<ExitStatus> {
        let id = spec.id.clone();
        let (sb, _) = self.create_inner(spec, Launch::Foreground { terminal })?;
        // The terminal's ^C and ^\ reach the sandboxed command (directly on
        // a terminal, through its init otherwise); we must outlive it to
        // clean up.
        let old = ignore_interactive_signals();
        let status = wait_child(sb.init_pid);
        restore_signals(old);
        self.stop(&id, Duration::ZERO)?;
        // Init exits with the command's code, or 128 + the signal that killed it.
        Ok(status)
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

/// The init command's streams for [`Runtime::create_attached`].
#[derive(Debug)]
pub struct Stdio3 {
    pub stdin: OwnedFd,
    pub stdout: OwnedFd,
    pub stderr: OwnedFd,
    /// Descriptors the sandbox's init keeps open for the caller (the other
    /// ends of these streams), so they outlive a caller that restarts,
    /// which takes them back with [`Runtime::take_back`].
    pub held: Vec<OwnedFd>,
}

/// Makes the caller's pipes belong to the sandbox's root: a process
/// reopening its own stdio (`/dev/stderr` is `/proc/self/fd/2`) is checked
/// against the stream's owner, and host root means nothing inside.
/// Anything else (a file, /dev/null) is left as it is: its owner is not
/// ours to change.
fn give_streams(stdio: &Stdio3, uid_base: u32) -> Result<()> {
    for fd in [&stdio.stdin, &stdio.stdout, &stdio.stderr] {
        // SAFETY: stat is plain data filled by fstat on a valid descriptor.
        let st = unsafe {
            let mut st: libc::stat = std::mem::zeroed();
            crate::sys::check(libc::fstat(fd.as_raw_fd(), &mut st))
                .map_err(Error::sys("stat a stream"))?;
            st
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFIFO {
            // SAFETY: plain syscall on a descriptor we were given.
            crate::sys::check(unsafe { libc::fchown(fd.as_raw_fd(), uid_base, uid_base) })
                .map_err(Error::sys("hand a stream to the sandbox"))?;
        }
    }
    Ok(())
}

/// Whose stdio the init command gets, and whether it dies with the caller.
enum Launch {
    /// /dev/null; lives on its own (nodes).
    Detached,
    /// The caller's stdio, on its `terminal` or not; dies with the
    /// caller (`run_once`).
    Foreground { terminal: bool },
    /// Streams the caller serves; lives on its own (containers).
    Attached(Stdio3),
    /// A terminal of the sandbox's own that init makes, this big; lives
    /// on its own (containers with a TTY).
    Terminal(WindowSize),
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

/// Whether the create helper wrote its ready byte on `r`.
fn ready_byte(mut r: fs::File) -> bool {
    let mut byte = [0u8; 1];
    matches!(r.read(&mut byte), Ok(1)) && byte[0] == b'R'
}

fn pipe() -> std::io::Result<(fs::File, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array.
    crate::sys::check(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) })?;
    // SAFETY: fresh descriptors.
    Ok(unsafe { (fs::File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
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

/// Reads a pipe on its own thread into a shared buffer.
/// Bytes of each of stdout and stderr that [`Runtime::exec`] keeps.
pub const MAX_CAPTURE: usize = 4 << 20;

struct Pump {
    buf: Arc<Mutex<Vec<u8>>>,
    done: std::sync::mpsc::Receiver<()>,
}

impl Pump {
    fn start(r: Option<Box<dyn Read + Send>>) -> Self {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let (tx, done) = std::sync::mpsc::channel();
        let b = Arc::clone(&buf);
        std::thread::spawn(move || {
            if let Some(mut r) = r {
                let mut chunk = [0u8; 8192];
                while let Ok(n) = r.read(&mut chunk) {
                    if n == 0 {
                        break;
                    }
                    // Keep reading past the cap so the command never
                    // blocks on a full pipe, but keep no more: output is
                    // whatever the sandbox wants it to be.
                    if let Ok(mut v) = b.lock() {
                        let room = MAX_CAPTURE.saturating_sub(v.len());
                        v.extend_from_slice(&chunk[..n.min(room)]);
                    }
                }
            }
            let _ = tx.send(());
        });
        Self { buf, done }
    }

    fn finish(self, until: Instant) -> Vec<u8> {
        let _ = self
            .done
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        self.buf.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

fn wait_child(pid: i32) -> ExitStatus {
    let mut status = 0;
    loop {
        // SAFETY: plain syscall on our own child.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            let (code, signal) = crate::process::decode(status);
            return ExitStatus { code, signal };
        }
        if r < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return ExitStatus {
                code: None,
                signal: None,
            };
        }
    }
}

type Saved = [(libc::c_int, libc::sighandler_t); 2];

fn ignore_interactive_signals() -> Saved {
    // SAFETY: swapping dispositions of two signals.
    unsafe {
        [
            (libc::SIGINT, libc::signal(libc::SIGINT, libc::SIG_IGN)),
            (libc::SIGQUIT, libc::signal(libc::SIGQUIT, libc::SIG_IGN)),
        ]
    }
}

fn restore_signals(saved: Saved) {
    for (sig, h) in saved {
        // SAFETY: restoring what we saved.
        unsafe { libc::signal(sig, h) };
    }
}
