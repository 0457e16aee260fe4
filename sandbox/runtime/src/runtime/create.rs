//! Making and starting a sandbox: from its spec to a ready init, in each
//! way the init command can be launched.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command as StdCommand, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::cgroups;
use crate::error::{Error, Result};
use crate::helper;
use crate::process::HelperConfig;
use crate::spec::{ExitStatus, SandboxSpec};
use crate::state::{self, State, Status, now_unix_ms};
use crate::tty::{Pty, WindowSize};

use super::{Runtime, pass_fds_from_3};

/// A sandbox that `create` made ready.
#[derive(Debug, Clone)]
pub struct Sandbox {
    pub id: String,
    /// Host pid of its init (pid 1 inside).
    pub init_pid: i32,
    /// Host uid (and gid) that root inside maps to.
    pub uid_base: u32,
}

impl Runtime {
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
