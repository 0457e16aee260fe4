//! The exec helper: joins a running sandbox completely — cgroups, then the
//! user namespace and every other namespace of its init in one
//! `setns(pidfd, …)` — and runs a command there, inheriting the stdio it
//! was given, or with `--tty` on a terminal of the sandbox's own devpts
//! whose master goes back to the caller over the socket that is then its
//! stdin (see `tty.rs`). It stays outside as the command's parent, forwards
//! signals to it and mirrors its exit code or terminating signal.
//!
//! Host descriptors never reach the sandbox: everything above stdio is
//! closed at start (CVE-2024-21626 leaked a cwd descriptor) and again right
//! before `execve`; the cwd is re-chosen inside after `setns`. The helper is
//! non-dumpable before it enters, so nothing inside can open its
//! `/proc/PID/exe` while it is visible there, and it runs from a sealed
//! memfd copy of the binary (`sealed.rs`), so a command that resolves to
//! `/proc/self/exe` inside runs that copy, never the host's file
//! (CVE-2019-5736).

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;

use super::channel::{self, Message};
use super::{
    Command, block_all_signals, decode, fail, set_dumpable, set_ids, unblock_all_signals,
    wait_signal,
};
use crate::error::{Error, Result};
use crate::paths::{Layout, check_id};
use crate::seccomp::Profile;
use crate::state::{State, process_start_time};
use crate::tty::{self, WindowSize};
use crate::{caps, cgroups, sys};

pub(crate) struct Args {
    pub state_dir: PathBuf,
    pub id: String,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub env: BTreeMap<String, String>,
    pub argv: Vec<String>,
    /// Run on a new terminal of this size; stdin is the reply socket.
    pub tty: Option<WindowSize>,
}

impl Args {
    /// `--state-dir DIR [--cwd D] [--uid N] [--gid N] [--env K=V]... [--tty COLSxROWS] ID -- CMD...`
    pub fn parse(mut args: impl Iterator<Item = String>) -> Result<Self> {
        let bad = |m: &str| Error::InvalidSpec(format!("exec helper arguments: {m}"));
        let mut a = Args {
            state_dir: PathBuf::new(),
            id: String::new(),
            cwd: "/".into(),
            uid: 0,
            gid: 0,
            env: BTreeMap::new(),
            argv: Vec::new(),
            tty: None,
        };
        while let Some(arg) = args.next() {
            let mut value = || args.next().ok_or_else(|| bad("option without a value"));
            match arg.as_str() {
                "--state-dir" => a.state_dir = value()?.into(),
                "--cwd" => a.cwd = value()?,
                "--uid" => a.uid = value()?.parse().map_err(|_| bad("bad uid"))?,
                "--gid" => a.gid = value()?.parse().map_err(|_| bad("bad gid"))?,
                "--tty" => {
                    a.tty = Some(
                        WindowSize::parse(&value()?)
                            .ok_or_else(|| bad("--tty needs COLSxROWS, each 1 to 65535"))?,
                    )
                }
                "--env" => {
                    let kv = value()?;
                    let (k, v) = kv
                        .split_once('=')
                        .ok_or_else(|| bad("--env needs KEY=VALUE"))?;
                    a.env.insert(k.to_owned(), v.to_owned());
                }
                "--" => {
                    a.argv = args.by_ref().collect();
                    break;
                }
                id if a.id.is_empty() && !id.starts_with('-') => a.id = id.to_owned(),
                other => return Err(bad(&format!("unexpected {other:?}"))),
            }
        }
        check_id(&a.id)?;
        if a.state_dir.as_os_str().is_empty() || a.argv.is_empty() {
            return Err(bad(
                "--state-dir, an id and a command after -- are required",
            ));
        }
        let spec = crate::spec::ExecSpec {
            argv: a.argv.clone(),
            env: a.env.clone(),
            cwd: a.cwd.clone(),
            uid: a.uid,
            gid: a.gid,
            timeout: None,
        };
        spec.validate()?;
        Ok(a)
    }
}

pub(crate) fn main(args: impl Iterator<Item = String>) -> i32 {
    // Whatever the spawner left open (servers, test harnesses) must not
    // survive into the sandbox.
    let _ = sys::close_from(3);
    let args = match Args::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("layerlab: exec: {e}");
            return 125;
        }
    };
    let tty = args.tty.is_some();
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            if tty {
                // Our stderr is nobody's terminal: the caller reads this.
                let _ = channel::send(reply_socket(), &Message::Failed(e.to_string()));
            }
            eprintln!("layerlab: exec: {e}");
            125
        }
    }
}

/// With `--tty`, stdin is the socket the terminal goes back on.
fn reply_socket() -> BorrowedFd<'static> {
    // SAFETY: descriptor 0 stays open for the helper's whole life.
    unsafe { BorrowedFd::borrow_raw(0) }
}

const ALL_NAMESPACES: libc::c_int = libc::CLONE_NEWUSER
    | libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWCGROUP;

fn run(a: Args) -> Result<i32> {
    let layout = Layout::new(&a.state_dir);
    let st = State::load(&layout.state(&a.id))?;
    let not_running = || Error::NotRunning {
        id: a.id.clone(),
        status: st.status.as_str().into(),
        what: "exec",
    };
    let (Some(pid), Some(start)) = (st.init_pid, st.init_start_time) else {
        return Err(not_running());
    };
    if !st.status.can_exec() {
        return Err(not_running());
    }
    let profile = Profile::build()?;
    let mut defaults = vec![("HOME", "/root")];
    // SAFETY: plain syscall.
    if a.tty.is_some() || unsafe { libc::isatty(0) } == 1 {
        defaults.push(("TERM", "xterm-256color"));
    }
    let cmd = Command::new(&a.argv, &a.env, &a.cwd, &defaults)?;
    set_dumpable(false);
    super::set_rlimits()?;
    super::sacrifice_first(std::process::id() as i32)?;
    let pidfd = sys::pidfd_open(pid).map_err(|_| not_running())?;
    // Checked after opening the pidfd: from here on the pid cannot be recycled under us.
    if process_start_time(pid) != Some(start) {
        return Err(not_running());
    }
    cgroups::join_self(cgroups::detect(), &st.cgroups)?;
    sys::setns_pidfd(pidfd.as_fd(), ALL_NAMESPACES)
        .map_err(Error::sys("join sandbox namespaces"))?;
    drop(pidfd);
    let parent = std::process::id() as i32;
    block_all_signals();
    // SAFETY: the exec helper is single-threaded.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::sys("fork into sandbox")(
            std::io::Error::last_os_error(),
        ));
    }
    if child == 0 {
        enter(cmd, &a, &profile, parent)
    }
    if a.tty.is_some() {
        // The command answers the caller; our copy of the reply socket
        // must not outlive its answer.
        // SAFETY: nothing of ours uses descriptor 0 from here on.
        unsafe { libc::close(0) };
    }
    Ok(forward_and_wait(child))
}

/// The command's side: last steps inside the sandbox, then exec.
fn enter(cmd: Command, a: &Args, profile: &Profile, parent: i32) -> ! {
    let r = (|| {
        caps::restrict_to_default()?;
        set_ids(a.uid, a.gid, &[])?;
        // After the id change (which clears it): die with our helper.
        // SAFETY: plain prctl/getppid.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            // Our parent is outside our pid namespace: getppid() is 0 while it lives.
            if libc::getppid() != 0 && libc::getppid() != parent {
                libc::_exit(125);
            }
        }
        if let Some(size) = a.tty {
            // As the command's user, so the terminal is theirs.
            let (master, slave) = tty::open(size)?;
            tty::take_as_controlling(&slave)?;
            channel::send(reply_socket(), &Message::Terminal(master))?;
            // Replaces the reply socket too: nothing in the sandbox keeps it.
            tty::as_stdio(&slave)?;
        }
        sys::close_from(3).map_err(Error::sys("close descriptors"))?;
        unblock_all_signals();
        profile.apply()
    })();
    if let Err(e) = r {
        if a.tty.is_some() {
            let _ = channel::send(reply_socket(), &Message::Failed(format!("exec: {e}")));
        }
        fail(&format!("exec: {e}"), 125);
    }
    cmd.exec()
}

fn forward_and_wait(child: i32) -> i32 {
    loop {
        let Some(super::Signal { signo: sig, .. }) = wait_signal(None) else {
            continue;
        };
        if sig != libc::SIGCHLD {
            // SAFETY: plain syscall.
            unsafe { libc::kill(child, sig) };
            continue;
        }
        let mut status = 0;
        // SAFETY: plain syscall.
        let r = unsafe { libc::waitpid(child, &mut status, libc::WNOHANG) };
        if r != child {
            continue;
        }
        return match decode(status) {
            (Some(c), _) => c,
            (None, Some(s)) => {
                // Die of the same signal so our waiter sees it.
                // SAFETY: resetting a handler and raising; we exit right after.
                unsafe {
                    libc::signal(s, libc::SIG_DFL);
                    unblock_all_signals();
                    libc::kill(libc::getpid(), s);
                }
                128 + s
            }
            _ => 255,
        };
    }
}
