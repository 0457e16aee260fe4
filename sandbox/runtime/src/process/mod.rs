//! The processes of the launch sequence, one file each, and what they share.
//!
//! ```text
//!  caller (server / CLI, any number of threads)
//!    │ spawns `<helper> __layerlab-runtime-create <config.json>`
//!    ▼
//!  create helper (create.rs, host root, single-threaded)
//!    │ joins the sandbox cgroups, then clone(CLONE_PARENT | all namespaces)
//!    ├──────────────► sandbox init (init.rs, pid 1 inside, child of the caller)
//!    │  uid/gid maps,   ◄── channel.rs: Rootfs(fd) ──── waits
//!    │  idmapped        ──► Ready / Failed(reason)
//!    │  overlay         │ attach rootfs, pivot_root, hostname, network,
//!    │                  │ caps, no_new_privs, seccomp
//!    ▼ writes state.json, exits 0        │ runs the init command, reaps orphans
//!
//!  `<helper> __layerlab-runtime-exec … ID -- CMD` (exec.rs, host root)
//!    joins the cgroups, setns(pidfd, user|mnt|pid|uts|ipc|net|cgroup),
//!    forks CMD inside (uid set, caps, with `--tty` a terminal of the
//!    sandbox's devpts whose master goes to the caller, seccomp, fds
//!    closed), forwards signals, mirrors CMD's exit code or signal
//! ```
//!
//! `<helper>` is never the helper executable's file but its sealed memfd
//! copy (`sealed.rs`), so whatever a sandbox does with `/proc/self/exe`
//! while a helper's fork is on its way in leads to that copy only.
//!
//! `CLONE_PARENT` makes the sandbox init a child of the caller rather than
//! of the short-lived create helper, so there is one process per idle
//! sandbox and the caller can reap it (this machine's pid 1 does not reap
//! orphans).

pub(crate) mod channel;
pub(crate) mod create;
pub(crate) mod exec;
pub(crate) mod init;
pub(crate) mod layer;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::spec::{DEFAULT_PATH, SandboxSpec};

/// What the caller hands the create helper in `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct HelperConfig {
    pub spec: SandboxSpec,
    /// Set when the sandbox joins a running one's user namespace.
    #[serde(default)]
    pub sibling: Option<Sibling>,
    pub uid_base: u32,
    pub cgroups: Vec<PathBuf>,
    /// Empty directory the overlay is attached to inside the sandbox's mount namespace.
    pub rootfs: PathBuf,
    /// Where the writable layer's image is made (and unlinked at once).
    pub disk_image: PathBuf,
    pub state: PathBuf,
    pub error: PathBuf,
    /// Keep the caller's stdio for the init command (`run_once`); otherwise
    /// the sandbox gets its own /dev/null.
    pub foreground: bool,
    /// The init command runs on the caller's terminal (`run_once` with a
    /// tty) and stays in its session; any other gets a session of its own.
    pub terminal: bool,
    /// The init command's stdio came from the caller (the helper's own):
    /// keep it, or replace it with a terminal init makes.
    #[serde(default)]
    pub attached: Option<Attached>,
}

/// See [`HelperConfig::attached`].
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Attached {
    /// Put the init command on a new terminal of the sandbox's devpts,
    /// this big, whose master goes back to the caller.
    pub terminal: Option<crate::tty::WindowSize>,
    /// How many of the caller's descriptors the helper got from
    /// [`HELD_FD`] on, for init to keep (see [`crate::Stdio3::held`]).
    #[serde(default)]
    pub held: usize,
}

/// Where the descriptors a sandbox's init holds for its caller start, in
/// the create helper (as passed) and in init (as kept): the caller's
/// streams' other ends, or a copy of the terminal's master. A caller that
/// restarted takes them back with `pidfd_getfd` ([`crate::Runtime::take_back`]).
pub(crate) const HELD_FD: i32 = 4;

/// Init's descriptor of the file it writes its exit code to (beside the
/// sandbox's state, [`EXIT_CODE_FILE`]), so a caller that is not its parent
/// (one that restarted) still learns how its command ended.
pub(crate) const EXIT_FD: i32 = 3;
pub(crate) const EXIT_CODE_FILE: &str = "exit-code";

/// The running sandbox a sibling joins, by its init; the start time guards
/// against a recycled pid.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(crate) struct Sibling {
    pub init_pid: i32,
    pub init_start_time: u64,
}

impl Sibling {
    /// The running sandbox's namespace of `kind` (`user`, `net`, …); check
    /// [`Sibling::check_alive`] after opening it.
    pub fn namespace(self, kind: &str) -> Result<std::os::fd::OwnedFd> {
        let path = format!("/proc/{}/ns/{kind}", self.init_pid);
        Ok(std::fs::File::open(&path)
            .map_err(Error::io("open", &path))?
            .into())
    }

    /// Called after opening its namespaces: the descriptors then name those
    /// of the process that had this start time, never a recycled pid's.
    pub fn check_alive(self, id: &str) -> Result<()> {
        if crate::state::process_start_time(self.init_pid) != Some(self.init_start_time) {
            return Err(Error::NotRunning {
                id: id.to_owned(),
                status: "exited".into(),
                what: "a sibling sandbox",
            });
        }
        Ok(())
    }
}

/// Gives this (single-threaded) helper a mount namespace of its own whose
/// mounts never propagate to the host's; it goes when the helper exits.
pub(crate) fn private_mount_namespace() -> Result<()> {
    // SAFETY: plain syscall; helpers are single-threaded.
    crate::sys::check(unsafe { libc::unshare(libc::CLONE_NEWNS) })
        .map_err(Error::sys("unshare mount namespace"))?;
    rustix::mount::mount_change(
        "/",
        rustix::mount::MountPropagationFlags::PRIVATE | rustix::mount::MountPropagationFlags::REC,
    )
    .map_err(|e| Error::io("make mounts private", "/")(e.into()))
}

/// A command ready to `execve`, prepared before forking so the child only
/// makes system calls.
pub(crate) struct Command {
    path: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
    cwd: CString,
    display: String,
    /// Ids to take just before `execve`: uid, gid, supplementary groups.
    user: Option<crate::spec::User>,
}

impl Command {
    /// `argv[0]` is looked up later, inside the sandbox, in the `PATH` of
    /// `env` — never in the helper's own environment, which must not leak
    /// into the sandbox. `defaults` fill variables `env` does not set.
    pub fn new(
        argv: &[String],
        env: &BTreeMap<String, String>,
        cwd: &str,
        defaults: &[(&str, &str)],
    ) -> Result<Self> {
        let mut env = env.clone();
        env.entry("PATH".into())
            .or_insert_with(|| DEFAULT_PATH.to_owned());
        for (k, v) in defaults {
            env.entry((*k).to_owned())
                .or_insert_with(|| (*v).to_owned());
        }
        let cs =
            |s: &str| CString::new(s).map_err(|_| Error::InvalidSpec("NUL byte in command".into()));
        let first = argv
            .first()
            .ok_or_else(|| Error::InvalidSpec("command is empty".into()))?;
        Ok(Self {
            path: cs(first)?,
            argv: argv.iter().map(|a| cs(a)).collect::<Result<_>>()?,
            envp: env
                .iter()
                .map(|(k, v)| cs(&format!("{k}={v}")))
                .collect::<Result<_>>()?,
            cwd: cs(cwd)?,
            display: first.clone(),
            user: None,
        })
    }

    /// Runs the command as `user` rather than as its caller.
    pub fn run_as(mut self, user: Option<crate::spec::User>) -> Self {
        self.user = user;
        self
    }

    /// What the command is called, for messages.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Resolves `argv[0]` against `PATH` in the current (sandbox) root.
    pub(crate) fn resolve(&mut self) -> bool {
        if self.path.as_bytes().contains(&b'/') {
            return true;
        }
        let path_var = self
            .envp
            .iter()
            .find_map(|e| e.as_bytes().strip_prefix(b"PATH="))
            .map(|p| p.to_vec())
            .unwrap_or_default();
        for dir in path_var.split(|&b| b == b':').filter(|d| !d.is_empty()) {
            let cand = Path::new(std::ffi::OsStr::from_bytes(dir))
                .join(std::ffi::OsStr::from_bytes(self.path.as_bytes()));
            if let Ok(c) = CString::new(cand.as_os_str().as_bytes()) {
                // SAFETY: valid C string.
                if unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0 {
                    self.path = c;
                    return true;
                }
            }
        }
        false
    }

    /// Changes to the working directory and replaces the process image;
    /// returns only by exiting with the shell's codes (126/127).
    pub fn exec(mut self) -> ! {
        if let Some(u) = &self.user
            && let Err(e) = set_ids(u.uid, u.gid, &u.groups)
        {
            fail(
                &format!("{}: cannot become user {}: {e}", self.display, u.uid),
                126,
            );
        }
        // SAFETY: valid C string.
        if unsafe { libc::chdir(self.cwd.as_ptr()) } != 0 {
            // SAFETY: "/" always exists inside the sandbox.
            unsafe { libc::chdir(c"/".as_ptr()) };
        }
        // Rust's runtime ignores SIGPIPE in the helper; dispositions set to
        // ignore would survive execve, so the command starts from defaults.
        for sig in 1..libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                // SAFETY: resetting a disposition to default.
                unsafe { libc::signal(sig, libc::SIG_DFL) };
            }
        }
        if !self.resolve() {
            fail(&format!("{}: command not found", self.display), 127);
        }
        let mut argv: Vec<*const libc::c_char> = self.argv.iter().map(|a| a.as_ptr()).collect();
        argv.push(std::ptr::null());
        let mut envp: Vec<*const libc::c_char> = self.envp.iter().map(|a| a.as_ptr()).collect();
        envp.push(std::ptr::null());
        // SAFETY: NULL-terminated arrays of valid C strings.
        unsafe { libc::execve(self.path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let e = std::io::Error::last_os_error();
        let code = if e.kind() == std::io::ErrorKind::NotFound {
            127
        } else {
            126
        };
        fail(&format!("{}: {e}", self.display), code)
    }
}

/// Reports on stderr and exits without running destructors or atexit
/// handlers (we are a forked child).
pub(crate) fn fail(msg: &str, code: i32) -> ! {
    let line = format!("layerlab: {msg}\n");
    // SAFETY: writing a valid buffer to fd 2.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::_exit(code)
    }
}

/// Blocks every signal and returns the previous mask.
pub(crate) fn block_all_signals() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigfillset/sigprocmask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_BLOCK, &all, &mut old);
        old
    }
}

pub(crate) fn unblock_all_signals() {
    // SAFETY: as above.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_UNBLOCK, &all, std::ptr::null_mut());
    }
}

/// A signal taken with `sigwaitinfo`.
pub(crate) struct Signal {
    pub signo: i32,
    pub code: i32,
    /// Sender's pid as seen from our pid namespace: 0 when the sender is
    /// outside it (the host) or the kernel.
    pub sender: i32,
}

/// Waits for the next signal among those blocked, or `None` when `timeout`
/// passed first.
pub(crate) fn wait_signal(timeout: Option<std::time::Duration>) -> Option<Signal> {
    // SAFETY: plain data out-parameters.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        let mut info: libc::siginfo_t = std::mem::zeroed();
        loop {
            let s = match timeout {
                None => libc::sigwaitinfo(&all, &mut info),
                Some(t) => {
                    let ts = libc::timespec {
                        tv_sec: t.as_secs() as libc::time_t,
                        tv_nsec: t.subsec_nanos().into(),
                    };
                    libc::sigtimedwait(&all, &mut info, &ts)
                }
            };
            if s > 0 {
                return Some(Signal {
                    signo: s,
                    code: info.si_code,
                    sender: info.si_pid(),
                });
            }
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN) {
                return None;
            }
        }
    }
}

/// Wait-status of a child turned into (code, signal).
pub(crate) fn decode(status: libc::c_int) -> (Option<i32>, Option<i32>) {
    if libc::WIFEXITED(status) {
        (Some(libc::WEXITSTATUS(status)), None)
    } else if libc::WIFSIGNALED(status) {
        (None, Some(libc::WTERMSIG(status)))
    } else {
        (None, None)
    }
}

/// Becomes `uid`/`gid` with supplementary `groups` (inside the user
/// namespace); a uid other than 0 drops every capability.
pub(crate) fn set_ids(uid: u32, gid: u32, groups: &[u32]) -> Result<()> {
    let groups: Vec<libc::gid_t> = groups.to_vec();
    // SAFETY: plain syscalls; the group list outlives the call.
    unsafe {
        crate::sys::check(libc::setgroups(groups.len(), groups.as_ptr()))
            .map_err(Error::sys("setgroups"))?;
        crate::sys::check(libc::setresgid(gid, gid, gid)).map_err(Error::sys("setresgid"))?;
        crate::sys::check(libc::setresuid(uid, uid, uid)).map_err(Error::sys("setresuid"))?;
    }
    Ok(())
}

/// Makes process `pid` (and what it forks) a preferred victim when the
/// whole machine runs out of memory, so the server and the rest of the host
/// outlive sandboxes. Going below 0 needs CAP_SYS_RESOURCE on the host, so
/// nothing inside can exempt itself.
pub(crate) fn sacrifice_first(pid: i32) -> Result<()> {
    let path = format!("/proc/{pid}/oom_score_adj");
    std::fs::write(&path, "500").map_err(Error::io("write", path))
}

const UNLIMITED: u64 = libc::RLIM_INFINITY;

/// Every resource limit a sandboxed process starts with, whoever started
/// the server: soft and hard. Docker's containers inherit dockerd's, which
/// under systemd are the kernel's defaults plus `LimitNOFILE=infinity`
/// (1048576 here); we pin those, with one change: core dumps are off (the
/// host's `core_pattern` is not the sandbox's business).
const RLIMITS: [(libc::__rlimit_resource_t, u64, u64); 16] = [
    (libc::RLIMIT_CPU, UNLIMITED, UNLIMITED),
    (libc::RLIMIT_FSIZE, UNLIMITED, UNLIMITED),
    (libc::RLIMIT_DATA, UNLIMITED, UNLIMITED),
    (libc::RLIMIT_STACK, 8 << 20, UNLIMITED),
    (libc::RLIMIT_CORE, 0, 0),
    (libc::RLIMIT_RSS, UNLIMITED, UNLIMITED),
    // The pids cgroup is the limit; this one counts per host uid.
    (libc::RLIMIT_NPROC, UNLIMITED, UNLIMITED),
    (libc::RLIMIT_NOFILE, 1 << 20, 1 << 20),
    (libc::RLIMIT_MEMLOCK, 8 << 20, 8 << 20),
    (libc::RLIMIT_AS, UNLIMITED, UNLIMITED),
    (libc::RLIMIT_LOCKS, UNLIMITED, UNLIMITED),
    // Counted per host uid, so per sandbox; about the kernel's default
    // for a machine of 16 GiB.
    (libc::RLIMIT_SIGPENDING, 65_536, 65_536),
    (libc::RLIMIT_MSGQUEUE, 819_200, 819_200),
    (libc::RLIMIT_NICE, 0, 0),
    (libc::RLIMIT_RTPRIO, 0, 0),
    (libc::RLIMIT_RTTIME, UNLIMITED, UNLIMITED),
];

/// Sets [`RLIMITS`] on this (helper) process, for what it forks into a
/// sandbox. Raising a hard limit needs CAP_SYS_RESOURCE on the host; a
/// helper without it (a container that drops it) keeps the caller's hard
/// limit where that is lower, so the caller's soft limits never reach a
/// sandbox and its hard limits only ever lower ours.
pub(crate) fn set_rlimits() -> Result<()> {
    // Above fs.nr_open the kernel refuses a nofile limit.
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20);
    for (resource, mut soft, mut hard) in RLIMITS {
        if resource == libc::RLIMIT_NOFILE {
            (soft, hard) = (soft.min(nr_open), hard.min(nr_open));
        }
        let mut lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        // SAFETY: plain syscalls with a valid rlimit.
        unsafe {
            if libc::setrlimit(resource, &lim) == 0 {
                continue;
            }
            let mut cur: libc::rlimit = std::mem::zeroed();
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM)
                || libc::getrlimit(resource, &mut cur) != 0
            {
                return Err(Error::sys("set resource limits")(
                    std::io::Error::last_os_error(),
                ));
            }
            lim.rlim_max = hard.min(cur.rlim_max);
            lim.rlim_cur = soft.min(lim.rlim_max);
            crate::sys::check(libc::setrlimit(resource, &lim))
                .map_err(Error::sys("set resource limits"))?;
        }
    }
    Ok(())
}

pub(crate) fn set_dumpable(on: bool) {
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, libc::c_ulong::from(on), 0, 0, 0) };
}
