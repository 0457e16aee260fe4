//! The isolation battery: run as root inside, each line an attempted
//! escape; and uid ranges that no two sandboxes share.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use runtime::ExecSpec;

use super::{err, host_status_field, out, probe_spec, sh, sh_as, spawn_exec};
use crate::support::Fixture;

pub(super) fn escapes_are_refused() {
    let f = Fixture::new();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("host listener");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("addr").port();
    let exe_before = std::fs::read(std::env::current_exe().expect("exe")).expect("read exe");
    f.rt.create(probe_spec(&f, "probe")).expect("create");
    let o =
        f.rt.exec(
            "probe",
            &ExecSpec::new(["/probe", "__probe", &port.to_string()]),
        )
        .expect("exec probe");
    let report = out(&o);
    assert!(o.status.success(), "probe failed: {} {}", report, err(&o));
    let results: BTreeMap<&str, &str> = report.lines().filter_map(|l| l.split_once(' ')).collect();
    assert_eq!(
        results.get("getpid"),
        Some(&"ok"),
        "probe did not run: {report}"
    );
    for name in [
        "mount",
        "umount",
        "pivot_root",
        "unshare_user",
        "unshare_mount",
        "clone_newuser",
        "clone3",
        "init_module",
        "finit_module",
        "delete_module",
        "reboot",
        "settimeofday",
        "clock_settime",
        "keyctl",
        "add_key",
        "bpf",
        "perf_event_open",
        "ptrace_init",
        "open_init_exe",
        "swapon",
        "write_proc_sys",
        "write_sys",
        "connect_host_loopback",
        "connect_outside",
        "socket_vsock",
        "sethostname",
        "io_uring_setup",
    ] {
        let r = results
            .get(name)
            .unwrap_or_else(|| panic!("probe skipped {name}: {report}"));
        assert_ne!(*r, "ok", "{name} succeeded inside the sandbox");
    }
    assert_eq!(
        results["clone3"],
        libc::ENOSYS.to_string(),
        "clone3 must fail with ENOSYS for libc fallback"
    );
    assert_eq!(
        results.get("tiocsti"),
        Some(&libc::EPERM.to_string().as_str()),
        "TIOCSTI is not refused by seccomp"
    );
    assert_eq!(
        results["connect_outside"],
        libc::ENETUNREACH.to_string(),
        "a route leads out"
    );
    assert!(
        listener.accept().is_err(),
        "the host loopback listener got a connection from the sandbox"
    );
    assert_eq!(
        exe_before,
        std::fs::read(std::env::current_exe().expect("exe")).expect("read exe"),
        "runtime binary changed"
    );
}

/// CVE-2019-5736's path: with `sh` and `bash` pointed at /proc/self/exe
/// inside, the exec helper's child runs the helper's own executable in the
/// node (grading and terminals both exec `sh`/`bash`). That must be a
/// sealed copy: no process visible inside can open the host's binary file,
/// and the copy cannot be written.
pub(super) fn host_binary_is_unreachable_from_inside() {
    use std::os::unix::fs::MetadataExt;
    let f = Fixture::new();
    let mut spec = probe_spec(&f, "exe");
    // The libraries the test binary needs inside, but not the binary itself.
    spec.mounts.retain(|m| m.target != "/probe");
    f.rt.create(spec).expect("create");
    let o = sh(
        &f,
        "exe",
        "mkdir -p /usr/local/bin && ln -s /proc/self/exe /usr/local/bin/sh && ln -s /proc/self/exe /usr/local/bin/bash",
    );
    assert!(o.status.success(), "{}", err(&o));
    let mut sleeper = spawn_exec(&f, "exe", &["/bin/sleep", "30"]);
    std::thread::sleep(Duration::from_millis(200));
    let exe = std::fs::metadata(std::env::current_exe().expect("exe")).expect("stat exe");
    let host = format!("{}:{}", exe.dev(), exe.ino());
    for shell in ["sh", "bash"] {
        let o =
            f.rt.exec("exe", &ExecSpec::new([shell, "__probe", "exe"]))
                .expect("exec");
        let report = out(&o);
        assert!(
            report.lines().any(|l| l.starts_with("self ")),
            "`{shell}` did not run the helper's executable: {report} {}",
            err(&o)
        );
        assert!(
            report.lines().count() >= 5,
            "init, the sleeper and the probe must be visible: {report}"
        );
        assert!(
            !report.contains(&host),
            "the host's binary ({host}) opens from inside: {report}"
        );
        assert!(
            !report.contains("write ok"),
            "the executable behind /proc/self/exe is writable: {report}"
        );
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

pub(super) fn cannot_see_host_or_other_sandboxes() {
    let f = Fixture::new();
    f.rt.create(f.spec("see-a")).expect("create a");
    let mut b = f.spec("see-b");
    b.init = Some(vec!["sleep".into(), "1000".into()]);
    f.rt.create(b).expect("create b");
    let o = sh(
        &f,
        "see-a",
        "ls /proc | grep -E '^[0-9]+$' | wc -l; tr -d '\\0' < /proc/1/cmdline; echo; ps -o comm | grep -c sleep",
    );
    let text = out(&o);
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    // pid 1 and the shell pipeline only.
    let n: usize = lines[0].parse().expect("count");
    assert!(n <= 6, "sandbox sees {n} processes: {}", out(&o));
    assert_eq!(
        lines[1], "layerlab-init",
        "pid 1 shows something else than our init"
    );
    assert_eq!(lines[2], "0", "sandbox a sees sandbox b's sleep");
    let o = sh(
        &f,
        "see-a",
        "ls /dev | sort | tr '\\n' ' '; echo; ls /sys/fs/cgroup | wc -l",
    );
    let text = out(&o);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines,
        [
            "fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero ",
            "0"
        ],
        "{text}"
    );
}

pub(super) fn setuid_gains_nothing_and_no_fd_leaks() {
    let f = Fixture::new();
    let sb = f.rt.create(f.spec("suid")).expect("create");
    let o = sh_as(&f, "suid", "/bin/busybox-suid id -u; id -u", 1000);
    assert_eq!(
        out(&o),
        "1000\n1000",
        "setuid root binary raised privileges: {}",
        err(&o)
    );
    // A host descriptor without CLOEXEC in the caller must not be inherited.
    // SAFETY: opening a file we own; closed below.
    let leaked = unsafe { libc::open(c"/etc/hostname".as_ptr(), libc::O_RDONLY) };
    assert!(leaked >= 0);
    let o = sh(
        &f,
        "suid",
        "ls /proc/self/fd | tr '\\n' ' '; echo; ls -l /proc/1/exe 2>&1; readlink /proc/self/cwd",
    );
    // SAFETY: closing what we opened.
    unsafe { libc::close(leaked) };
    let s = out(&o);
    let fds: Vec<&str> = s.lines().next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        fds,
        ["0", "1", "2", "3"],
        "unexpected descriptors (3 is ls's own directory): {s}"
    );
    assert!(
        s.contains("Permission denied"),
        "pid 1's exe link is readable: {s}"
    );
    assert!(s.ends_with('/'), "cwd is not inside the sandbox: {s}");
    // A user process as seen from the host: its uid is inside the range.
    let uid = host_status_field(sb.init_pid, "Uid");
    assert!(uid.split_whitespace().all(|u| u == sb.uid_base.to_string()));
}

pub(super) fn network_loopback_and_bridge_only() {
    let f = Fixture::new();
    f.rt.create(f.spec("net")).expect("create");
    let o = sh(
        &f,
        "net",
        "ip -o -4 addr | awk '{print $2, $4}'; ip route | grep -c default; ls /sys/class/net | tr '\\n' ' '",
    );
    let s = out(&o);
    assert!(s.contains("lo 127.0.0.1/8"), "{s}");
    assert!(s.contains("br0 10.88.0.1/16"), "{s}");
    assert!(s.contains("\n0\n"), "a default route exists: {s}");
    assert!(s.ends_with("br0 lo"), "unexpected interfaces: {s}");
}

pub(super) fn uid_ranges_are_disjoint() {
    let f = Fixture::new();
    let a = f.rt.create(f.spec("ra")).expect("a");
    let b = f.rt.create(f.spec("rb")).expect("b");
    assert_ne!(a.uid_base, b.uid_base);
    assert!(a.uid_base.abs_diff(b.uid_base) >= 65536);
    f.rt.stop("ra", Duration::ZERO).expect("stop");
    assert_eq!(
        f.rt.claimed_ranges(),
        [(b.uid_base, "rb".to_owned())],
        "a stopped sandbox's range is still claimed"
    );
}

/// Two installations on one host (different state directories, the same
/// pool) never hand out the same host uids, and a range whose owner lost
/// its record but still has processes is not reused.
pub(super) fn uid_ranges_are_unique_on_the_host() {
    // Three ranges in a region of the uid space no other test uses: full
    // once host-c runs, so host-d can only get a range by taking one over.
    let pool = runtime::UidPool {
        first: 13 << 28,
        count: 3,
    };
    let a = Fixture::with_pool(pool);
    let b = Fixture::with_pool(pool);
    let sa = a.rt.create(a.spec("host-a")).expect("create in a");
    let sb = b.rt.create(b.spec("host-b")).expect("create in b");
    assert_ne!(
        sa.uid_base, sb.uid_base,
        "two state directories mapped root to the same host uid"
    );
    // a's data directory is wiped while its sandbox runs on.
    std::fs::remove_dir_all(a.rt.layout().sandbox("host-a")).expect("remove a's record");
    let sc = b.rt.create(b.spec("host-c")).expect("create in b");
    assert!(
        ![sa.uid_base, sb.uid_base].contains(&sc.uid_base),
        "the range of a sandbox that still runs was handed out again"
    );
    // Once nothing of it lives, its range is taken over.
    // SAFETY: killing the sandbox init we created (our child).
    unsafe { libc::kill(sa.init_pid, libc::SIGKILL) };
    let t = Instant::now();
    // Reaped, not only dead: a zombie still shows the range's uid.
    while std::path::Path::new(&format!("/proc/{}", sa.init_pid)).exists() {
        assert!(t.elapsed() < Duration::from_secs(10), "init was not reaped");
        std::thread::sleep(Duration::from_millis(5));
    }
    let sd = b.rt.create(b.spec("host-d")).expect("create in b");
    assert_eq!(
        sd.uid_base, sa.uid_base,
        "the range of a dead owner was not taken over"
    );
    for c in ["memory", "pids", "cpu"] {
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/{}/host-a", a.cgroup_parent));
    }
}
