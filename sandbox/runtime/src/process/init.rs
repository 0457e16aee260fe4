//! The sandbox's init: finishes the sandbox from inside its namespaces, then
//! stays as pid 1 — starts the init command, forwards stop signals, reaps
//! orphans, and exits with the command's status (128 + signal when it was
//! killed), which tears the whole pid namespace down.

use std::os::fd::OwnedFd;

use super::channel::{self, Message};
use super::{
    Command, HelperConfig, block_all_signals, decode, set_dumpable, set_ids, unblock_all_signals,
    wait_signal,
};
use crate::error::{Error, Result};
use crate::seccomp::Profile;
use crate::syscall::Kernel;
use crate::{caps, net, rootfs, sys, tty};

/// How a helper failure says that the init command does not exist.
pub(crate) const NOT_FOUND_PREFIX: &str = "exec: ";

/// Entry of the cloned child; never returns.
pub(crate) fn sandbox_main(
    cfg: &HelperConfig,
    sock: OwnedFd,
    binds: Vec<OwnedFd>,
    profile: Profile,
    mut main: Option<Command>,
    exit_file: std::fs::File,
) -> ! {
    block_all_signals();
    hide_helper_arguments();
    let terminal = match setup(cfg, &sock, binds, &profile) {
        Ok(terminal) => terminal,
        Err(e) => {
            let _ = channel::send(&sock, &Message::Failed(e.to_string()));
            // SAFETY: leaving the child without running the helper's destructors.
            unsafe { libc::_exit(1) };
        }
    };
    // A container whose command does not exist fails to start, as
    // Docker's do, rather than starting and exiting 127.
    if cfg.attached.is_some()
        && let Some(cmd) = main.as_mut()
        && !cmd.resolve()
    {
        let message = format!(
            "{NOT_FOUND_PREFIX}{:?}: executable file not found in $PATH",
            cmd.display()
        );
        let _ = channel::send(&sock, &Message::Failed(message));
        // SAFETY: as above.
        unsafe { libc::_exit(1) };
    }
    let sent = terminal
        .as_ref()
        .map(|master| {
            master
                .try_clone()
                .map_err(Error::sys("keep the terminal"))
                .and_then(|copy| channel::send(&sock, &Message::Terminal(copy)))
        })
        .unwrap_or(Ok(()))
        .and_then(|()| channel::send(&sock, &Message::Ready));
    if sent.is_err() {
        // SAFETY: as above.
        unsafe { libc::_exit(1) };
    }
    drop(sock);
    // SAFETY: plain syscall; descriptor 3 was the helper's, not ours.
    unsafe {
        libc::dup3(
            std::os::fd::AsRawFd::as_raw_fd(&exit_file),
            super::EXIT_FD,
            libc::O_CLOEXEC,
        )
    };
    drop(exit_file);
    let held = keep_held(cfg, terminal);
    // Nothing else from the host stays open in pid 1 beyond stdio.
    let _ = sys::close_from((super::HELD_FD as usize + held) as libc::c_uint);
    let deadline = cfg
        .spec
        .deadline_unix_ms
        .map(|ms| std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms));
    let tty = cfg.attached.is_some_and(|a| a.terminal.is_some());
    let code = supervise(main, cfg.terminal, tty, deadline);
    let text = format!("{code}\n");
    // SAFETY: writing our own buffer to our own descriptor, then leaving.
    unsafe {
        libc::write(super::EXIT_FD, text.as_ptr().cast(), text.len());
        libc::_exit(code)
    }
}

/// Returns the master of the init command's terminal, when it has one.
fn setup(
    cfg: &HelperConfig,
    sock: &OwnedFd,
    binds: Vec<OwnedFd>,
    profile: &Profile,
) -> Result<Option<OwnedFd>> {
    if cfg.foreground {
        // `run_once`: our parent (CLONE_PARENT) is the caller; if it is
        // killed, the sandbox goes with it instead of running on unowned.
        // SAFETY: plain prctl.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
    }
    let overlay = match channel::recv(sock)? {
        Some(Message::Rootfs(fd)) => fd,
        _ => {
            return Err(Error::sys("wait for rootfs")(std::io::Error::from(
                std::io::ErrorKind::UnexpectedEof,
            )));
        }
    };
    // Still host uid 0 here: the host path of the mount point is resolved
    // now, before we become the namespace's root.
    rootfs::attach(&Kernel, &overlay, &cfg.rootfs)?;
    drop(overlay);
    set_ids(0, 0, &[])?;
    if cfg.foreground {
        // `run_once`: our parent (CLONE_PARENT) is the caller; if it is
        // killed, the sandbox goes with it instead of running on unowned.
        // Set after the id change, which would clear it.
        // SAFETY: plain prctl.
        unsafe {
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            )
        };
    }
    rootfs::pivot_and_populate(&Kernel, &cfg.spec, &binds, rootfs::Pivot::in_place())?;
    drop(binds);
    let host = sys::cstring(&cfg.spec.hostname).map_err(Error::sys("hostname"))?;
    // SAFETY: valid buffer and length.
    sys::check(unsafe { libc::sethostname(host.as_ptr(), cfg.spec.hostname.len()) })
        .map_err(Error::sys("sethostname"))?;
    net::setup(cfg.spec.network.bridge.as_ref())?;
    // Made here, as the sandbox's root, in its own devpts: the command
    // gets /dev/pts/0 as on Docker, owned by root inside.
    let terminal = match cfg.attached.and_then(|a| a.terminal) {
        Some(size) => {
            let (master, slave) = tty::open(size)?;
            tty::as_stdio(&slave)?;
            Some(master)
        }
        None => None,
    };
    if !cfg.foreground && cfg.attached.is_none() {
        // SAFETY: /dev/null is the sandbox's own (bind of the host device).
        unsafe {
            let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
            if null < 0 {
                return Err(Error::sys("open /dev/null")(std::io::Error::last_os_error()));
            }
            for fd in 0..3 {
                libc::dup2(null, fd);
            }
            if null > 2 {
                libc::close(null);
            }
        }
    }
    caps::restrict_to_default()?;
    // Non-dumpable: nothing in the sandbox may ptrace pid 1 or open its
    // /proc/1/exe (CVE-2019-5736 targets exactly that link).
    set_dumpable(false);
    profile.apply()?;
    Ok(terminal)
}

/// Keeps the descriptors init holds for its caller at `HELD_FD` on, closed
/// on exec (the init command must not inherit them); returns how many.
/// They keep a container's streams open while its caller restarts.
fn keep_held(cfg: &HelperConfig, terminal: Option<std::os::fd::OwnedFd>) -> usize {
    use std::os::fd::AsRawFd;
    let held = match (terminal, cfg.attached) {
        (Some(master), _) => {
            let raw = master.as_raw_fd();
            if raw != super::HELD_FD {
                // SAFETY: plain syscall; HELD_FD is free (sock and the
                // helper's descriptors are gone or about to be closed).
                unsafe { libc::dup3(raw, super::HELD_FD, libc::O_CLOEXEC) };
            } else {
                std::mem::forget(master);
            }
            1
        }
        (None, Some(a)) => a.held,
        (None, None) => 0,
    };
    for fd in super::HELD_FD..super::HELD_FD + held as i32 {
        // SAFETY: plain fcntl on our own descriptor.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    held
}

/// We are a fork of the create helper, whose command line names host
/// paths (binary, state directory). Overwrite it in place so the sandbox's
/// `/proc/1/cmdline` and `comm` say only `layerlab-init`.
fn hide_helper_arguments() {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
        return;
    };
    // `rest` starts at field 3; arg_start and arg_end are fields 48 and 49.
    let fields: Vec<&str> = rest.split(' ').collect();
    let (Some(start), Some(end)) = (
        fields.get(45).and_then(|f| f.parse::<usize>().ok()),
        fields.get(46).and_then(|f| f.parse::<usize>().ok()),
    ) else {
        return;
    };
    let name = b"layerlab-init";
    if end <= start || end - start <= name.len() {
        return;
    }
    // SAFETY: [arg_start, arg_end) is our own argument area on our stack,
    // mapped writable; nothing reads it after start-up (std copied argv).
    unsafe {
        let p = start as *mut u8;
        std::ptr::write_bytes(p, 0, end - start);
        std::ptr::copy_nonoverlapping(name.as_ptr(), p, name.len());
        libc::prctl(
            libc::PR_SET_NAME,
            c"layerlab-init".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        );
    }
}

const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How long after its deadline's SIGTERM a sandbox is SIGKILLed.
const DEADLINE_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// The init loop: returns the exit code for pid 1. The init command gets a
/// session of its own unless it runs on the caller's `terminal`: a session
/// shared with the caller would let it open the caller's controlling
/// terminal as /dev/tty. With `tty` its stdin, the slave of the terminal
/// init made, becomes its controlling terminal. At `deadline` it stops the
/// sandbox as a stop from the host would, and kills what is left
/// [`DEADLINE_GRACE`] later.
fn supervise(
    main: Option<Command>,
    terminal: bool,
    tty: bool,
    deadline: Option<std::time::SystemTime>,
) -> i32 {
    let main_pid = match main {
        Some(cmd) => {
            // SAFETY: pid 1 is single-threaded.
            match unsafe { libc::fork() } {
                0 => {
                    unblock_all_signals();
                    if !terminal {
                        // SAFETY: plain syscall.
                        unsafe { libc::setsid() };
                    }
                    if tty {
                        // SAFETY: plain ioctl on our stdin, a PTY slave.
                        unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
                    }
                    cmd.exec()
                }
                -1 => return 126,
                pid => Some(pid),
            }
        }
        None => None,
    };
    let mut stopping = false;
    loop {
        let now = std::time::SystemTime::now();
        if let Some(d) = deadline.filter(|d| now >= *d) {
            if now >= d + DEADLINE_GRACE {
                // SAFETY: plain syscall; -1 is every process in our pid namespace but us.
                unsafe { libc::kill(-1, libc::SIGKILL) };
                return 128 + libc::SIGKILL;
            }
            if !stopping {
                stopping = true;
                // SAFETY: as above; the init command, if any, is among them.
                unsafe { libc::kill(-1, libc::SIGTERM) };
            }
        }
        let until_deadline = deadline.map(|d| {
            let at = if stopping { d + DEADLINE_GRACE } else { d };
            at.duration_since(now).unwrap_or_default()
        });
        // While stopping without an init command, the remaining processes
        // (exec'd shells are children of their host-side helpers, not ours)
        // are polled: we end once none is left.
        let poll = stopping.then_some(STOP_POLL);
        let timeout = match (poll, until_deadline) {
            (Some(p), Some(d)) => Some(p.min(d)),
            (p, d) => p.or(d),
        };
        let Some(signal) = wait_signal(timeout) else {
            // SAFETY: plain syscall; signal 0 only checks for existence.
            if stopping && main_pid.is_none() && unsafe { libc::kill(-1, 0) } < 0 {
                return 0;
            }
            continue;
        };
        let sig = signal.signo;
        match sig {
            libc::SIGCHLD => loop {
                let mut status = 0;
                // SAFETY: plain syscall.
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid == 0 {
                    break;
                }
                if pid < 0 {
                    break;
                }
                if Some(pid) == main_pid {
                    return match decode(status) {
                        (Some(c), _) => c,
                        (None, Some(s)) => 128 + s,
                        _ => 255,
                    };
                }
            },
            // Terminal-generated signals (^C, ^\, window size) already reached
            // a command on the terminal; forwarding would double them. One
            // in its own session gets them only through us.
            _ if signal.code == libc::SI_KERNEL && terminal => {}
            // Only the host stops a sandbox: `kill 1` from a student's shell
            // must not end their node.
            _ if signal.sender != 0 => {}
            _ => match main_pid {
                // SAFETY: plain syscall.
                Some(pid) => unsafe {
                    libc::kill(pid, sig);
                },
                None if matches!(sig, libc::SIGTERM | libc::SIGINT | libc::SIGHUP) => {
                    stopping = true;
                    // SAFETY: plain syscall; -1 is every process in our pid namespace but us.
                    if unsafe { libc::kill(-1, libc::SIGTERM) } < 0 {
                        return 0;
                    }
                }
                None => {}
            },
        }
    }
}
