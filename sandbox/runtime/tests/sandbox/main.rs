//! Real-kernel tests of the runtime, run as root; they fail loudly when the
//! kernel refuses something, never skip. This binary is also the helper
//! executable (like the product binary it calls `main_if_requested` first),
//! hence `harness = false` and the small runner in `support`.
//!
//! Modules by theme: `behaviour` (hostname, ids, layers, exec, exit codes,
//! stop), `terminal` (PTYs, `run_once` on a terminal or off it),
//! `isolation` (the battery run as root inside, each line an attempted
//! escape; uid ranges), `filesystem` (layers, mounts, symlinks), `limits`
//! (pids, memory, disk, cgroups, rlimits), `lifecycle` (callers that die,
//! restart and adoption, deadlines, gc) and `bad_input`. The helpers they
//! share are here, and so is the one table of tests, in the order of the
//! spec.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod behaviour;
mod filesystem;
mod isolation;
mod lifecycle;
mod limits;
mod terminal;

use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::{BindMount, ExecSpec, SandboxSpec};
use support::Fixture;

fn sh(f: &Fixture, id: &str, script: &str) -> runtime::ExecOutput {
    sh_as(f, id, script, 0)
}

fn sh_as(f: &Fixture, id: &str, script: &str, uid: u32) -> runtime::ExecOutput {
    let mut spec = ExecSpec::new(["/bin/sh", "-c", script]);
    spec.timeout = Some(Duration::from_secs(60));
    spec.uid = uid;
    spec.gid = uid;
    f.rt.exec(id, &spec)
        .unwrap_or_else(|e| panic!("exec {script:?} in {id}: {e}"))
}

fn out(o: &runtime::ExecOutput) -> String {
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

fn err(o: &runtime::ExecOutput) -> String {
    String::from_utf8_lossy(&o.stderr).trim().to_owned()
}

fn host_status_field(pid: i32, field: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read host /proc status");
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
        .trim()
        .to_owned()
}

fn probe_spec(f: &Fixture, id: &str) -> SandboxSpec {
    let mut spec = f.spec(id);
    let exe = std::env::current_exe().expect("current exe");
    spec.mounts = vec![
        BindMount {
            source: exe,
            target: "/probe".into(),
            readonly: true,
            in_node: false,
        },
        BindMount {
            source: "/usr/lib/x86_64-linux-gnu".into(),
            target: "/lib/x86_64-linux-gnu".into(),
            readonly: true,
            in_node: false,
        },
        BindMount {
            source: "/usr/lib64".into(),
            target: "/lib64".into(),
            readonly: true,
            in_node: false,
        },
    ];
    spec
}

/// Starts `argv` in sandbox `id` through the exec helper, as a terminal
/// does, and leaves it running.
fn spawn_exec(f: &Fixture, id: &str, argv: &[&str]) -> std::process::Child {
    let argv =
        f.rt.exec_command(id, &ExecSpec::new(argv.iter().copied()))
            .expect("argv");
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn the exec helper")
}

fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

fn wait_gone(pid: i32) {
    let t = Instant::now();
    while alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "pid {pid} did not die"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn openpty(rows: u16, cols: u16) -> (std::fs::File, OwnedFd) {
    let (mut m, mut s) = (0, 0);
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: valid out-parameters.
    let r = unsafe { libc::openpty(&mut m, &mut s, std::ptr::null_mut(), std::ptr::null(), &ws) };
    assert_eq!(r, 0, "openpty failed");
    // SAFETY: fresh descriptors.
    unsafe { (std::fs::File::from_raw_fd(m), OwnedFd::from_raw_fd(s)) }
}

fn read_until(master: &mut std::fs::File, seen: &mut String, want: &str) {
    let t = Instant::now();
    let mut buf = [0u8; 1024];
    while !seen.contains(want) {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "pty never showed {want:?}: {seen:?}"
        );
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 200) } <= 0 {
            continue;
        }
        match master.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => seen.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(seen.contains(want), "pty never showed {want:?}: {seen:?}");
}

fn main() {
    runtime::helper::main_if_requested();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("__probe") => support::probe::main(&args[2..]),
        Some("__owner") => lifecycle::owner_main(&args[2..]),
        Some("__run_tty") => terminal::run_once_main(
            &args[2..],
            "tty",
            "stty size; [ -t 0 ] || exit 9; exit 5",
            true,
        ),
        Some("__run_notty") => terminal::run_once_main(
            &args[2..],
            "notty",
            "echo pwned > /dev/tty; echo tty=$?; [ \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$ ] && echo leader=yes",
            false,
        ),
        Some("__run_sleep") => lifecycle::run_sleep_main(&args[2..]),
        Some("__limits") => limits::limits_main(&args[2..]),
        _ => {}
    }
    support::run(&[
        (
            "hostname_ids_and_layers",
            behaviour::hostname_ids_and_layers,
        ),
        (
            "exec_joins_every_namespace_and_cgroup",
            behaviour::exec_joins_every_namespace_and_cgroup,
        ),
        ("exit_codes_and_signals", behaviour::exit_codes_and_signals),
        ("pty_and_resize", terminal::pty_and_resize),
        (
            "terminal_in_a_stopped_sandbox_fails_clearly",
            terminal::terminal_in_a_stopped_sandbox_fails_clearly,
        ),
        (
            "exec_timeout_kills_the_command",
            behaviour::exec_timeout_kills_the_command,
        ),
        ("stop_with_grace", behaviour::stop_with_grace),
        (
            "init_ignores_signals_from_inside",
            behaviour::init_ignores_signals_from_inside,
        ),
        ("escapes_are_refused", isolation::escapes_are_refused),
        (
            "host_binary_is_unreachable_from_inside",
            isolation::host_binary_is_unreachable_from_inside,
        ),
        (
            "unix_socket_bind_mount_reaches_the_host",
            filesystem::unix_socket_bind_mount_reaches_the_host,
        ),
        (
            "cannot_see_host_or_other_sandboxes",
            isolation::cannot_see_host_or_other_sandboxes,
        ),
        (
            "writes_never_reach_the_shared_layers",
            filesystem::writes_never_reach_the_shared_layers,
        ),
        (
            "setuid_gains_nothing_and_no_fd_leaks",
            isolation::setuid_gains_nothing_and_no_fd_leaks,
        ),
        (
            "image_symlinks_cannot_redirect_setup_to_the_host",
            filesystem::image_symlinks_cannot_redirect_setup_to_the_host,
        ),
        (
            "mountinfo_shows_no_host_paths",
            filesystem::mountinfo_shows_no_host_paths,
        ),
        (
            "network_loopback_and_bridge_only",
            isolation::network_loopback_and_bridge_only,
        ),
        (
            "fork_bomb_hits_pids_limit",
            limits::fork_bomb_hits_pids_limit,
        ),
        (
            "memory_hog_is_killed_inside",
            limits::memory_hog_is_killed_inside,
        ),
        ("disk_fill_is_stopped", limits::disk_fill_is_stopped),
        (
            "disk_full_is_enospc_not_an_oom_kill",
            limits::disk_full_is_enospc_not_an_oom_kill,
        ),
        ("list_stats_touch", lifecycle::list_stats_touch),
        (
            "parallel_lifecycles_do_not_interfere",
            lifecycle::parallel_lifecycles_do_not_interfere,
        ),
        (
            "run_once_dies_with_its_caller",
            lifecycle::run_once_dies_with_its_caller,
        ),
        ("limits_reach_the_cgroups", limits::limits_reach_the_cgroups),
        (
            "run_once_with_a_terminal",
            terminal::run_once_with_a_terminal,
        ),
        (
            "run_once_without_a_terminal_gets_its_own_session",
            terminal::run_once_without_a_terminal_gets_its_own_session,
        ),
        (
            "restart_adopts_or_cleans_up",
            lifecycle::restart_adopts_or_cleans_up,
        ),
        (
            "uid_ranges_are_disjoint",
            isolation::uid_ranges_are_disjoint,
        ),
        (
            "rlimits_do_not_come_from_the_caller",
            limits::rlimits_do_not_come_from_the_caller,
        ),
        (
            "deadline_holds_without_an_owner",
            lifecycle::deadline_holds_without_an_owner,
        ),
        (
            "gc_removes_what_no_server_will_stop",
            lifecycle::gc_removes_what_no_server_will_stop,
        ),
        (
            "uid_ranges_are_unique_on_the_host",
            isolation::uid_ranges_are_unique_on_the_host,
        ),
        ("bad_input_is_rejected", bad_input::bad_input_is_rejected),
    ]);
}
