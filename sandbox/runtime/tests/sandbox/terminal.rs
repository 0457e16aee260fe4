//! Terminals: a PTY of the sandbox's own devpts, and `run_once` on the
//! caller's terminal or in a session of its own.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::{ExecSpec, SandboxSpec, WindowSize};

use super::{openpty, read_until};
use crate::support::{self, Fixture};

/// A terminal comes from the sandbox's own devpts: the command sees
/// `/dev/pts/0`, a path it can open, owned by its root and group tty; the
/// caller holds only the master and resizes it.
pub(super) fn pty_and_resize() {
    let f = Fixture::new();
    f.rt.create(f.spec("pty")).expect("create");
    let (mut command, reply) =
        f.rt.terminal_command(
            "pty",
            &ExecSpec::new([
                "/bin/sh",
                "-c",
                "stty size; read line; stty size; [ -t 0 ] && echo on-a-terminal; \
                 tty; stat -c 'owner=%u:%g:%a' \"$(tty)\"; ls /dev/pts",
            ]),
            WindowSize { cols: 80, rows: 24 },
        )
        .expect("terminal command");
    let mut child = command.spawn().expect("spawn exec helper");
    drop(command);
    let pty = reply.receive(child.id()).expect("the sandbox's terminal");
    let mut master: std::fs::File = pty.try_clone().expect("clone").into();
    let mut seen = String::new();
    read_until(&mut master, &mut seen, "24 80");
    pty.resize(WindowSize {
        cols: 101,
        rows: 33,
    })
    .expect("resize");
    master.write_all(b"\n").expect("write pty");
    read_until(&mut master, &mut seen, "33 101");
    read_until(&mut master, &mut seen, "on-a-terminal");
    read_until(&mut master, &mut seen, "/dev/pts/0");
    read_until(&mut master, &mut seen, "owner=0:5:620");
    read_until(&mut master, &mut seen, "ptmx");
    assert!(!seen.contains("not a tty"), "{seen}");
    assert!(child.wait().expect("wait").success(), "{seen}");
    assert!(
        pty.resize(WindowSize { cols: 0, rows: 24 })
            .is_err_and(|e| e.to_string().contains("at least 1x1")),
        "a 0x24 terminal was accepted"
    );
}

/// A helper that cannot make a terminal says why, and the caller's
/// receive does not hang on it.
pub(super) fn terminal_in_a_stopped_sandbox_fails_clearly() {
    let f = Fixture::new();
    f.rt.create(f.spec("ptygone")).expect("create");
    let (mut command, reply) =
        f.rt.terminal_command(
            "ptygone",
            &ExecSpec::new(["/bin/sh"]),
            WindowSize { cols: 80, rows: 24 },
        )
        .expect("terminal command");
    f.rt.stop("ptygone", Duration::ZERO).expect("stop");
    let started = Instant::now();
    let mut child = command.spawn().expect("spawn exec helper");
    let err = reply
        .receive(child.id())
        .expect_err("a terminal from a stopped sandbox");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "receive took {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("failed for ptygone"), "{err}");
    assert_eq!(child.wait().expect("wait").code(), Some(125));
    drop(command);
}

/// `layerlab sandbox run -t`: the command gets the caller's terminal.
pub(super) fn run_once_with_a_terminal() {
    let f = Fixture::new();
    let (mut master, slave) = openpty(19, 77);
    let s = slave.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.arg("__run_tty").args(f.child_args());
    // SAFETY: dup2/setsid/ioctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::ioctl(s, libc::TIOCSCTTY, 0);
            for fd in 0..3 {
                libc::dup2(s, fd);
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().expect("spawn");
    drop(slave);
    let mut seen = String::new();
    read_until(&mut master, &mut seen, "19 77");
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(5), "exit code not passed through: {seen}");
}

/// `layerlab sandbox run` without -t, started from a terminal: the command
/// runs in a session of its own and cannot reach that terminal.
pub(super) fn run_once_without_a_terminal_gets_its_own_session() {
    let f = Fixture::new();
    let (mut master, slave) = openpty(24, 80);
    let s = slave.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().expect("exe"));
    cmd.arg("__run_notty")
        .args(f.child_args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // SAFETY: setsid/ioctl only, between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            libc::ioctl(s, libc::TIOCSCTTY, 0);
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn");
    drop(slave);
    let o = child.wait_with_output().expect("wait");
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    let mut p = libc::pollfd {
        fd: master.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let mut on_terminal = String::new();
    // SAFETY: one valid pollfd.
    if unsafe { libc::poll(&mut p, 1, 200) } > 0 {
        let mut buf = [0u8; 256];
        if let Ok(n) = master.read(&mut buf) {
            on_terminal = String::from_utf8_lossy(&buf[..n]).into_owned();
        }
    }
    assert!(
        !on_terminal.contains("pwned"),
        "the sandbox wrote on the caller's terminal: {on_terminal:?}"
    );
    assert!(
        report.contains("tty=") && !report.contains("tty=0") && report.contains("leader=yes"),
        "{report} {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `run_once` of `sh -c script` in a sandbox `id` of the fixture whose
/// [`Fixture::child_args`] are `args`; exits with its code.
pub(super) fn run_once_main(args: &[String], id: &str, script: &str, tty: bool) -> ! {
    let config = support::config_from_args(args);
    let argv = ["sh", "-c", script].map(String::from).to_vec();
    let st = runtime::run_once(&config, SandboxSpec::new(id, support::layers()), argv, tty)
        .expect("run_once");
    std::process::exit(st.shell_code())
}
