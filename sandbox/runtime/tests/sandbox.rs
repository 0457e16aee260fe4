//! Real-kernel tests of the runtime, run as root; they fail loudly when the
//! kernel refuses something, never skip. This binary is also the helper
//! executable (like the product binary it calls `main_if_requested` first),
//! hence `harness = false` and the small runner in `support`.
//!
//! Modules by theme, in the order of the spec: behaviour (hostname, ids,
//! layers, exec, PTY, exit codes, stop), isolation battery (run as root
//! inside; each line an attempted escape), limits, lifecycle and restart,
//! bad input.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::{BindMount, ErrorKind, ExecSpec, Runtime, SandboxSpec, WindowSize};
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

// ---- behaviour -------------------------------------------------------------

fn hostname_ids_and_layers() {
    let f = Fixture::new();
    let sb = f.rt.create(f.spec("ids")).expect("create");
    let o = sh(
        &f,
        "ids",
        "hostname; id -u; id -g; stat -c '%u:%g' /bin/busybox /etc/passwd; cat /etc/motd /etc/layer-top",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(
        out(&o),
        "node1\n0\n0\n0:0\n0:0\ntop\nlayer2",
        "stderr: {}",
        err(&o)
    );
    let o = sh(
        &f,
        "ids",
        "cat /proc/self/oom_score_adj; echo -1000 > /proc/$$/oom_score_adj; cat /proc/$$/oom_score_adj",
    );
    assert_eq!(
        out(&o),
        "500\n500",
        "sandbox processes must be the host's first OOM victims, never exempt: {}",
        err(&o)
    );
    // Outside, root of the sandbox is the pool's unprivileged uid.
    let uid = host_status_field(sb.init_pid, "Uid");
    assert_eq!(
        uid.split_whitespace().next(),
        Some(sb.uid_base.to_string().as_str())
    );
    assert!(
        sb.uid_base >= 65536,
        "sandbox root must not map to a low host uid"
    );
    // Files the sandbox creates belong to its range, not to host root.
    let o = sh(&f, "ids", "touch /newfile && stat -c %u /newfile");
    assert_eq!(out(&o), "0");
}

fn exec_joins_every_namespace_and_cgroup() {
    let f = Fixture::new();
    let sb = f.rt.create(f.spec("join")).expect("create");
    let names = ["user", "mnt", "pid", "net", "uts", "ipc", "cgroup"];
    let script = names
        .iter()
        .map(|n| format!("readlink /proc/self/ns/{n}"))
        .collect::<Vec<_>>()
        .join(";");
    let o = sh(&f, "join", &script);
    let inside: Vec<String> = out(&o).lines().map(str::to_owned).collect();
    let host: Vec<String> = names
        .iter()
        .map(|n| {
            std::fs::read_link(format!("/proc/{}/ns/{n}", sb.init_pid))
                .expect("host readlink")
                .display()
                .to_string()
        })
        .collect();
    assert_eq!(
        inside, host,
        "exec must join all namespaces of init, user namespace included"
    );
    let o = sh(
        &f,
        "join",
        "grep -E '^(Uid|Gid|NoNewPrivs|Seccomp|CapBnd|CapEff)' /proc/self/status; cat /proc/self/cgroup",
    );
    let s = out(&o);
    assert!(s.contains("Uid:\t0\t0\t0\t0"), "{s}");
    assert!(s.contains("NoNewPrivs:\t1"), "{s}");
    assert!(s.contains("Seccomp:\t2"), "{s}");
    // Docker's default set: chown dac_override fowner fsetid kill setgid setuid
    // setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap.
    assert!(s.contains("CapBnd:\t00000000a80425fb"), "{s}");
    for line in s
        .lines()
        .filter(|l| l.contains(":memory:") || l.contains(":pids:"))
    {
        assert!(
            line.ends_with(":/"),
            "exec'd process is outside the sandbox cgroup: {line}"
        );
    }
}

fn exit_codes_and_signals() {
    let f = Fixture::new();
    f.rt.create(f.spec("codes")).expect("create");
    assert_eq!(sh(&f, "codes", "exit 42").status.code, Some(42));
    let killed = sh(&f, "codes", "kill -9 $$").status;
    assert_eq!((killed.code, killed.signal), (None, Some(9)));
    let missing =
        f.rt.exec("codes", &ExecSpec::new(["no-such-command"]))
            .expect("exec");
    assert_eq!(missing.status.code, Some(127));
    // A signal to the exec helper reaches the command, and its death is mirrored.
    let mut child = spawn_exec(&f, "codes", &["sleep", "100"]);
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let st = child.wait().expect("wait");
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}");
    // run_once passes the code through and leaves nothing behind.
    let mut spec = f.spec("once");
    spec.network.bridge = None;
    let st = runtime::run_once(
        &f.config,
        spec,
        vec!["sh".into(), "-c".into(), "exit 7".into()],
        false,
    )
    .expect("run_once");
    assert_eq!(st.code, Some(7));
    assert!(
        f.rt.get("once").is_err(),
        "run_once left its sandbox behind"
    );
}

fn exec_timeout_kills_the_command() {
    let f = Fixture::new();
    f.rt.create(f.spec("slow")).expect("create");
    let mut spec = ExecSpec::new(["sleep", "100"]);
    spec.timeout = Some(Duration::from_millis(300));
    let t = Instant::now();
    let e = f.rt.exec("slow", &spec).expect_err("timeout");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(t.elapsed() < Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let o = sh(&f, "slow", "ps -o comm | grep -c sleep");
        if out(&o) == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the timed-out command still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A terminal comes from the sandbox's own devpts: the command sees
/// `/dev/pts/0`, a path it can open, owned by its root and group tty; the
/// caller holds only the master and resizes it.
fn pty_and_resize() {
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
fn terminal_in_a_stopped_sandbox_fails_clearly() {
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

fn init_ignores_signals_from_inside() {
    let f = Fixture::new();
    f.rt.create(f.spec("kill1")).expect("create");
    let o = sh(
        &f,
        "kill1",
        "kill -TERM 1; kill -INT 1; kill -9 1; sleep 0.3; echo alive",
    );
    assert_eq!(out(&o), "alive", "{}", err(&o));
    assert_eq!(
        f.rt.get("kill1").expect("get").status,
        runtime::Status::Running
    );
}

fn stop_with_grace() {
    let f = Fixture::new();
    let mut spec = f.spec("grace");
    spec.init = Some(vec![
        "sh".into(),
        "-c".into(),
        "trap 'exit 3' TERM; while true; do sleep 0.05; done".into(),
    ]);
    let sb = f.rt.create(spec).expect("create");
    let t = Instant::now();
    f.rt.stop("grace", Duration::from_secs(10)).expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "init that honours SIGTERM was not stopped promptly"
    );
    assert!(std::fs::metadata(format!("/proc/{}", sb.init_pid)).is_err() || !alive(sb.init_pid));
    // An init that ignores SIGTERM is killed once the grace period ends.
    let mut spec = f.spec("stubborn");
    spec.init = Some(vec![
        "sh".into(),
        "-c".into(),
        "trap '' TERM; touch /trapped; while true; do sleep 0.05; done".into(),
    ]);
    f.rt.create(spec).expect("create");
    // SIGTERM must not arrive before the trap is set.
    sh(
        &f,
        "stubborn",
        "while [ ! -e /trapped ]; do sleep 0.01; done",
    );
    let t = Instant::now();
    f.rt.stop("stubborn", Duration::from_millis(500))
        .expect("stop");
    assert!(t.elapsed() >= Duration::from_millis(450));
    assert!(f.rt.list().expect("list").is_empty());
}

// ---- isolation battery -----------------------------------------------------

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

fn escapes_are_refused() {
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
fn host_binary_is_unreachable_from_inside() {
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

/// The engine's unix socket, bind-mounted at /var/run/docker.sock, answers
/// from inside.
fn unix_socket_bind_mount_reaches_the_host() {
    let f = Fixture::new();
    let dir = tempfile::Builder::new()
        .prefix("layerlab-sock-")
        .tempdir_in("/dev/shm")
        .expect("dir");
    let path = dir.path().join("engine.sock");
    let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
    // Root inside maps to an unprivileged host uid: the socket must let it write.
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
        .expect("chmod");
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).expect("read");
        s.write_all(b"pong").expect("write");
        buf
    });
    let mut spec = probe_spec(&f, "sock");
    spec.mounts.push(BindMount {
        source: path.clone(),
        target: "/var/run/docker.sock".into(),
        readonly: false,
        in_node: false,
    });
    f.rt.create(spec).expect("create");
    let o =
        f.rt.exec(
            "sock",
            &ExecSpec::new(["/probe", "__probe", "unix", "/var/run/docker.sock"]),
        )
        .expect("exec");
    assert_eq!(out(&o), "reply pong", "{}", err(&o));
    assert_eq!(&server.join().expect("server thread"), b"ping");
}

fn cannot_see_host_or_other_sandboxes() {
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

fn writes_never_reach_the_shared_layers() {
    let f = Fixture::new();
    let before = support::layers_digest();
    f.rt.create(f.spec("writer")).expect("create");
    let o = sh(
        &f,
        "writer",
        "echo evil > /bin/busybox.new && echo evil >> /etc/motd && rm /etc/layer-top && chmod 777 /etc/passwd \
         && chown 5:5 /etc/group && mv /bin/ls /bin/ls2 && rm -rf /root && cat /etc/motd",
    );
    assert!(o.status.success(), "{}", err(&o));
    assert_eq!(out(&o), "top\nevil");
    assert_eq!(
        before,
        support::layers_digest(),
        "a shared layer changed on the host"
    );
    let proc_sys = sh(
        &f,
        "writer",
        "echo 1 > /proc/sys/kernel/panic; echo x > /sys/kernel/uevent_helper; cat /proc/kcore | wc -c",
    );
    assert!(
        err(&proc_sys).matches("Read-only file system").count() >= 2,
        "{}",
        err(&proc_sys)
    );
    assert_eq!(out(&proc_sys), "0", "/proc/kcore is not masked");
}

/// A hostile image's symlinks must resolve inside the sandbox while we
/// populate it (bind targets, /etc files), never on the host.
fn image_symlinks_cannot_redirect_setup_to_the_host() {
    let f = Fixture::new();
    let escape = tempfile::Builder::new()
        .prefix("layerlab-escape-")
        .tempdir_in("/tmp")
        .expect("escape dir");
    std::fs::set_permissions(
        escape.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .expect("chmod");
    let layer = tempfile::Builder::new()
        .prefix("layerlab-hostile-")
        .tempdir_in("/var/tmp")
        .expect("layer");
    let up = "../".repeat(12);
    std::fs::create_dir_all(layer.path().join("var")).expect("mkdir");
    std::fs::create_dir_all(layer.path().join("realetc")).expect("mkdir");
    std::os::unix::fs::symlink(
        format!("/{up}{}", escape.path().display()),
        layer.path().join("var/run"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink("/realetc", layer.path().join("etc")).expect("symlink");
    let hostile = |id: &str| {
        let mut spec = f.spec(id);
        spec.lowerdirs.insert(0, layer.path().to_owned());
        spec
    };
    // /etc is a symlink: our /etc files land where it points, inside.
    f.rt.create(hostile("hostile-etc"))
        .expect("create with a symlinked /etc");
    let o = sh(&f, "hostile-etc", "cat /realetc/hostname");
    assert_eq!(out(&o), "node1", "{}", err(&o));
    // A bind target behind a symlink to a host path: refused or contained.
    let mut spec = hostile("hostile-run");
    spec.mounts = vec![BindMount {
        source: "/etc/hostname".into(),
        target: "/var/run/engine.sock".into(),
        readonly: true,
        in_node: false,
    }];
    let created = f.rt.create(spec);
    let host_entries: Vec<_> = std::fs::read_dir(escape.path())
        .expect("read escape dir")
        .flatten()
        .collect();
    assert!(
        host_entries.is_empty(),
        "sandbox setup wrote into a host directory: {host_entries:?}"
    );
    if let Err(e) = created {
        assert!(
            e.to_string().contains("/var/run"),
            "unexpected failure: {e}"
        );
    }
}

fn setuid_gains_nothing_and_no_fd_leaks() {
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

/// The node's mount table names no host path of the data directory: not
/// the state directory, not the writable layers' directory, not the
/// image layers.
fn mountinfo_shows_no_host_paths() {
    let f = Fixture::new();
    f.rt.create(f.spec("mounts")).expect("create");
    let o = sh(&f, "mounts", "cat /proc/self/mountinfo");
    let table = out(&o);
    assert!(table.contains(" / "), "{table} {}", err(&o));
    let state = f.rt.layout().root().display().to_string();
    let disk = f.disk.path().display().to_string();
    for host in [state.as_str(), disk.as_str(), support::ROOTFS] {
        assert!(!table.contains(host), "{host} shows inside:\n{table}");
    }
}

fn network_loopback_and_bridge_only() {
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

// ---- limits ----------------------------------------------------------------

fn fork_bomb_hits_pids_limit() {
    let f = Fixture::new();
    let mut spec = f.spec("bomb");
    spec.limits.pids = 32;
    f.rt.create(spec).expect("create");
    let o = sh(
        &f,
        "bomb",
        "i=0; while [ $i -lt 200 ]; do sleep 30 >/dev/null 2>&1 & i=$((i+1)); done; echo unreachable",
    );
    assert!(
        !o.status.success() && err(&o).contains("can't fork"),
        "{:?} {}",
        o.status,
        err(&o)
    );
    let stats = f.rt.stats("bomb").expect("stats");
    assert!(
        (20..=32).contains(&stats.pids),
        "pids limit not reached or exceeded: {stats:?}"
    );
    // The host is fine and the sandbox can be stopped despite the bomb.
    f.rt.stop("bomb", Duration::ZERO).expect("stop");
}

fn memory_hog_is_killed_inside() {
    let f = Fixture::new();
    let mut spec = f.spec("hog");
    spec.limits.memory_bytes = 48 << 20;
    f.rt.create(spec).expect("create");
    let o = sh(&f, "hog", "dd if=/dev/zero of=/dev/null bs=200M count=1");
    assert_eq!(
        o.status.shell_code(),
        137,
        "hog was not OOM-killed: {:?} {}",
        o.status,
        err(&o)
    );
    // The sandbox itself survives its hog.
    assert_eq!(out(&sh(&f, "hog", "echo alive")), "alive");
    assert!(f.rt.stats("hog").expect("stats").memory_bytes <= 48 << 20);
}

fn disk_fill_is_stopped() {
    let f = Fixture::new();
    let mut spec = f.spec("disk");
    spec.limits.disk_bytes = 16 << 20;
    spec.limits.disk_inodes = 300;
    f.rt.create(spec).expect("create");
    let o = sh(
        &f,
        "disk",
        "dd if=/dev/zero of=/fill bs=1M count=64; df -k / | tail -1",
    );
    assert!(
        !o.status.success() || err(&o).contains("No space"),
        "{}",
        err(&o)
    );
    assert!(err(&o).contains("No space left"), "{}", err(&o));
    let files = sh(
        &f,
        "disk",
        "rm /fill; i=0; while touch /f$i 2>/dev/null; do i=$((i+1)); done; echo $i",
    );
    let n: u64 = out(&files).parse().unwrap_or(u64::MAX);
    assert!(n < 300, "inode limit not enforced: {n}");
}

/// Memory and disk are two limits: writing past the disk limit, with a
/// memory limit far below it, answers ENOSPC and the writer, the sandbox
/// and its memory limit all hold.
fn disk_full_is_enospc_not_an_oom_kill() {
    let f = Fixture::new();
    let mut spec = f.spec("fill");
    spec.limits.memory_bytes = 64 << 20;
    spec.limits.disk_bytes = 256 << 20;
    f.rt.create(spec).expect("create");
    let o = sh(
        &f,
        "fill",
        "dd if=/dev/zero of=/fill bs=1M count=400; echo dd=$?; du -m /fill",
    );
    assert!(
        err(&o).contains("No space left on device"),
        "{:?} {} {}",
        o.status,
        out(&o),
        err(&o)
    );
    let report = out(&o);
    assert!(report.contains("dd=1"), "the writer was killed: {report}");
    let written: u64 = report
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        (200..=256).contains(&written),
        "the disk limit did not hold: {written} MiB written"
    );
    assert_eq!(out(&sh(&f, "fill", "echo alive")), "alive");
    assert!(f.rt.stats("fill").expect("stats").memory_bytes <= 64 << 20);
}

// ---- lifecycle -------------------------------------------------------------

fn limits_reach_the_cgroups() {
    let f = Fixture::new();
    let mut spec = f.spec("caps");
    spec.limits.memory_bytes = 96 << 20;
    spec.limits.memory_swap_bytes = Some(128 << 20);
    spec.limits.pids = 77;
    spec.limits.cpu_weight = 50;
    spec.limits.cpus = Some(0.5);
    f.rt.create(spec).expect("create");
    let read = |c: &str, file: &str| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{c}/{}/caps/{file}",
            f.cgroup_parent
        ))
        .unwrap_or_else(|e| panic!("read {c}/{file}: {e}"))
        .trim()
        .to_owned()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
        assert_eq!(
            read("memory", "memory.memsw.limit_in_bytes"),
            (128u64 << 20).to_string()
        );
    }
    assert_eq!(read("pids", "pids.max"), "77");
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    // The sandbox's own processes are in them, seen from the host.
    let procs = read("pids", "cgroup.procs");
    let init = f.rt.get("caps").expect("get").init_pid.expect("pid");
    assert!(
        procs.lines().any(|p| p == init.to_string()),
        "init {init} not in {procs}"
    );
}

/// `layerlab sandbox run -t`: the command gets the caller's terminal.
fn run_once_with_a_terminal() {
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
fn run_once_without_a_terminal_gets_its_own_session() {
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
fn run_once_main(args: &[String], id: &str, script: &str, tty: bool) -> ! {
    let config = support::config_from_args(args);
    let argv = ["sh", "-c", script].map(String::from).to_vec();
    let st = runtime::run_once(&config, SandboxSpec::new(id, support::layers()), argv, tty)
        .expect("run_once");
    std::process::exit(st.shell_code())
}

/// `layerlab sandbox run` killed with SIGKILL takes its sandbox with it;
/// the records it leaves are then cleaned by `adopt_or_cleanup`.
fn run_once_dies_with_its_caller() {
    let f = Fixture::new();
    let mut caller = Command::new(std::env::current_exe().expect("exe"))
        .arg("__run_sleep")
        .args(f.child_args())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn");
    let t = Instant::now();
    let init = loop {
        if let Some(pid) = f.rt.get("orphan").ok().and_then(|s| s.init_pid) {
            break pid;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "run_once never started"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    caller.kill().expect("kill -9 the caller");
    caller.wait().expect("reap caller");
    wait_gone(init);
    let report = f.reopen().adopt_or_cleanup().expect("cleanup");
    assert_eq!(report.cleaned, ["orphan"]);
    assert!(f.rt.list().expect("list").is_empty());
}

fn run_sleep_main(args: &[String]) -> ! {
    let config = support::config_from_args(args);
    let argv = ["sleep", "1000"].map(String::from).to_vec();
    let _ = runtime::run_once(
        &config,
        SandboxSpec::new("orphan", support::layers()),
        argv,
        false,
    );
    std::process::exit(0)
}

/// The server creates, uses and stops sandboxes from many threads at once.
fn parallel_lifecycles_do_not_interfere() {
    let f = Fixture::new();
    let bases = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for i in 0..8 {
            let (f, bases) = (&f, &bases);
            s.spawn(move || {
                let id = format!("par{i}");
                let mut spec = f.spec(&id);
                spec.hostname = format!("host{i}");
                let sb = f.rt.create(spec).expect("parallel create");
                bases.lock().expect("lock").push(sb.uid_base);
                let o = sh(f, &id, "hostname; echo $$ > /mine; cat /mine | wc -l");
                assert_eq!(out(&o), format!("host{i}\n1"), "{}", err(&o));
                f.rt.stop(&id, Duration::ZERO).expect("parallel stop");
            });
        }
    });
    let mut bases = bases.into_inner().expect("bases");
    bases.sort();
    bases.dedup();
    assert_eq!(bases.len(), 8, "two live sandboxes shared a uid range");
    assert!(f.rt.list().expect("list").is_empty());
}

fn list_stats_touch() {
    let f = Fixture::new();
    f.rt.create(f.spec("l1")).expect("create");
    let before =
        f.rt.get("l1")
            .expect("get")
            .last_activity
            .expect("activity");
    std::thread::sleep(Duration::from_millis(20));
    f.rt.touch("l1").expect("touch");
    let after =
        f.rt.get("l1")
            .expect("get")
            .last_activity
            .expect("activity");
    assert!(after > before);
    let list = f.rt.list().expect("list");
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].status, runtime::Status::Running);
    let stats = f.rt.stats("l1").expect("stats");
    assert!(stats.pids >= 1 && stats.memory_bytes > 0, "{stats:?}");
}

/// The owner of a sandbox is kill -9'd; a new runtime on the same state
/// directory adopts the live sandbox, and cleans up one whose init died.
fn restart_adopts_or_cleans_up() {
    let f = Fixture::new();
    owner_killed(&f, f.dir.path());

    // Another runtime directory's sandbox under the same cgroup parent.
    let foreign: Vec<PathBuf> = ["memory", "pids", "cpu"]
        .iter()
        .map(|c| PathBuf::from(format!("/sys/fs/cgroup/{c}/{}/foreign", f.cgroup_parent)))
        .collect();
    for dir in &foreign {
        std::fs::create_dir(dir).expect("create a foreign cgroup");
    }

    let rt = f.reopen();
    let mut report = rt.adopt_or_cleanup().expect("adopt");
    for dir in &foreign {
        assert!(
            dir.exists(),
            "{} belongs to someone else but was removed",
            dir.display()
        );
        std::fs::remove_dir(dir).expect("remove the foreign cgroup");
    }
    report.adopted.sort();
    assert_eq!(report.adopted, ["kept", "lost"]);
    let o = rt
        .exec("kept", &ExecSpec::new(["hostname"]))
        .expect("exec after restart");
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "node1");

    // Now the init of "lost" dies behind our back: leftovers must go.
    let lost = rt.get("lost").expect("get");
    let cgroups = std::fs::read_to_string(rt.layout().state("lost")).expect("state");
    // SAFETY: killing the sandbox init we created.
    unsafe { libc::kill(lost.init_pid.expect("pid"), libc::SIGKILL) };
    wait_gone(lost.init_pid.expect("pid"));
    let report = f.reopen().adopt_or_cleanup().expect("cleanup");
    assert_eq!(report.adopted, ["kept"]);
    assert_eq!(report.cleaned, ["lost"]);
    assert!(!rt.layout().sandbox("lost").exists());
    assert!(cgroups.contains("lost"));
    for c in ["memory", "pids", "cpu"] {
        assert!(
            !PathBuf::from(format!("/sys/fs/cgroup/{c}/{}/lost", f.cgroup_parent)).exists(),
            "cgroup {c} of a dead sandbox is left"
        );
    }
    assert_eq!(
        rt.claimed_ranges().len(),
        1,
        "uid range of the dead sandbox not released"
    );
    rt.stop("kept", Duration::ZERO).expect("stop");
    assert!(rt.claimed_ranges().is_empty());
}

/// A child process creates the sandboxes "kept" and "lost" in
/// `state_dir` (with `f`'s cgroup parent and disk directory) and is
/// kill -9'd once they run.
fn owner_killed(f: &Fixture, state_dir: &std::path::Path) {
    let mut owner = Command::new(std::env::current_exe().expect("exe"))
        .arg("__owner")
        .arg(state_dir)
        .args(&f.child_args()[1..])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn owner");
    let mut line = [0u8; 6];
    owner
        .stdout
        .as_mut()
        .expect("stdout")
        .read_exact(&mut line)
        .expect("owner ready");
    assert_eq!(&line, b"ready\n");
    owner.kill().expect("kill -9 owner");
    owner.wait().expect("reap owner");
}

fn owner_main(args: &[String]) -> ! {
    let config = support::config_from_args(args);
    let rt = Runtime::new(config).expect("runtime");
    for id in ["kept", "lost"] {
        rt.create(SandboxSpec::new(id, support::layers()))
            .expect("create");
    }
    println!("ready");
    loop {
        std::thread::sleep(Duration::from_secs(60));
    }
}

/// A sandbox's deadline holds with nobody left to enforce it but its own
/// init: its shells are stopped and it ends.
fn deadline_holds_without_an_owner() {
    let f = Fixture::new();
    let mut spec = f.spec("doomed");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    spec.deadline_unix_ms = Some(now + 1500);
    let sb = f.rt.create(spec).expect("create");
    let mut shell = spawn_exec(&f, "doomed", &["sleep", "1000"]);
    let t = Instant::now();
    wait_gone(sb.init_pid);
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "the sandbox outlived its deadline by {:?}",
        t.elapsed()
    );
    assert_eq!(
        f.rt.get("doomed").expect("get").status,
        runtime::Status::Exited
    );
    let st = shell.wait().expect("wait for the shell");
    assert_eq!(st.signal(), Some(libc::SIGTERM), "{st:?}");
}

/// `sandbox gc`: the sandboxes of a state directory nobody serves any more
/// (its owner was kill -9'd) are found and removed; those of a served
/// directory stay.
fn gc_removes_what_no_server_will_stop() {
    let f = Fixture::new();
    f.rt.create(f.spec("served")).expect("create");
    let gone = tempfile::Builder::new()
        .prefix("layerlab-rt-")
        .tempdir_in("/dev/shm")
        .expect("temp dir");
    owner_killed(&f, gone.path());
    let dirs = [gone.path().to_owned(), f.dir.path().to_owned()];
    let exe = std::env::current_exe().expect("exe");
    let listed = runtime::gc(&exe, Some(&dirs), true).expect("gc --dry-run");
    let mut ids: Vec<(String, runtime::OrphanReason)> =
        listed.iter().map(|o| (o.id.clone(), o.reason)).collect();
    ids.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        ids,
        [
            ("kept".to_owned(), runtime::OrphanReason::NoServer),
            ("lost".to_owned(), runtime::OrphanReason::NoServer)
        ]
    );
    let removed = runtime::gc(&exe, Some(&dirs), false).expect("gc");
    assert_eq!(removed.len(), 2);
    let left = runtime::claims()
        .into_iter()
        .filter(|(_, c)| c.state_dir == gone.path())
        .count();
    assert_eq!(left, 0, "the orphans' uid ranges are still claimed");
    for c in ["memory", "pids", "cpu"] {
        for id in ["kept", "lost"] {
            let dir = format!("/sys/fs/cgroup/{c}/{}/{id}", f.cgroup_parent);
            assert!(!std::path::Path::new(&dir).exists(), "{dir} is left");
        }
    }
    assert_eq!(
        f.rt.get("served").expect("get").status,
        runtime::Status::Running,
        "gc stopped a sandbox whose directory is served"
    );
}

/// Resource limits inside are the runtime's own, never those of whoever
/// started the server: a caller with a low soft `nofile` and unlimited
/// core dumps creates a sandbox and execs into it. Where the host denies
/// raising hard limits (no CAP_SYS_RESOURCE), the caller's hard limit caps
/// ours but its soft limits still never reach the sandbox.
fn rlimits_do_not_come_from_the_caller() {
    let f = Fixture::new();
    let o = Command::new(std::env::current_exe().expect("exe"))
        .arg("__limits")
        .args(f.child_args())
        .output()
        .expect("run the caller");
    let report = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{report} {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut hard = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscall with a valid out-parameter.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut hard) },
        0
    );
    let nofile = hard.rlim_max.min(1 << 20).to_string();
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(
        lines.get(..3),
        Some(&[nofile.as_str(), nofile.as_str(), "0"][..]),
        "exec'd shell: nofile soft, hard, core: {report}"
    );
    for (name, value) in [
        ("Max open files", &nofile),
        ("Max core file size", &"0".to_owned()),
    ] {
        let line = report
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} in init's limits: {report}"));
        let fields: Vec<&str> = line[name.len()..].split_whitespace().collect();
        assert_eq!(
            fields.get(..2),
            Some(&[value.as_str(), value.as_str()][..]),
            "init: {line}"
        );
    }
}

fn limits_main(args: &[String]) -> ! {
    // Soft limits only: raising a hard one may be denied (no CAP_SYS_RESOURCE).
    for (resource, soft) in [
        (libc::RLIMIT_NOFILE, 256),
        (libc::RLIMIT_CORE, libc::RLIM_INFINITY),
    ] {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: plain syscalls with a valid rlimit.
        unsafe {
            assert_eq!(libc::getrlimit(resource, &mut lim), 0);
            lim.rlim_cur = soft.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(resource, &lim), 0);
        }
    }
    let rt = Runtime::new(support::config_from_args(args)).expect("runtime");
    rt.create(SandboxSpec::new("limits", support::layers()))
        .expect("create");
    let mut spec = ExecSpec::new([
        "/bin/sh",
        "-c",
        "ulimit -n; ulimit -Hn; ulimit -c; cat /proc/1/limits",
    ]);
    spec.timeout = Some(Duration::from_secs(30));
    let o = rt.exec("limits", &spec).expect("exec");
    rt.stop("limits", Duration::ZERO).expect("stop");
    print!("{}", String::from_utf8_lossy(&o.stdout));
    std::process::exit(0)
}

fn uid_ranges_are_disjoint() {
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
fn uid_ranges_are_unique_on_the_host() {
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

// ---- bad input -------------------------------------------------------------

fn bad_input_is_rejected() {
    let f = Fixture::new();
    for id in ["", "../x", "A", "a/b", "-x", &"x".repeat(65)] {
        let e = f.rt.create(f.spec(id)).expect_err(id);
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?}: {e}");
    }
    let mut s = f.spec("bad");
    s.hostname = "no spaces".into();
    assert_eq!(
        f.rt.create(s).expect_err("hostname").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.lowerdirs = vec!["relative".into()];
    assert_eq!(
        f.rt.create(s).expect_err("relative").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.lowerdirs = vec!["/nonexistent/layer".into()];
    assert_eq!(
        f.rt.create(s).expect_err("missing").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.mounts = vec![BindMount {
        source: "/etc".into(),
        target: "/../etc".into(),
        readonly: true,
        in_node: false,
    }];
    assert_eq!(
        f.rt.create(s).expect_err("traversal").kind(),
        ErrorKind::InvalidArgument
    );
    let mut s = f.spec("bad");
    s.limits.memory_bytes = 1;
    assert_eq!(
        f.rt.create(s).expect_err("limits").kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        f.rt.exec("nope", &ExecSpec::new(["true"]))
            .expect_err("missing")
            .kind(),
        ErrorKind::NotFound
    );
    f.rt.create(f.spec("twice")).expect("create");
    assert_eq!(
        f.rt.create(f.spec("twice")).expect_err("twice").kind(),
        ErrorKind::AlreadyExists
    );
    let mut e = ExecSpec::new(["true"]);
    e.env.insert("A=B".into(), "x".into());
    assert_eq!(
        f.rt.exec("twice", &e).expect_err("env").kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        f.rt.exec("twice", &ExecSpec::new(Vec::<String>::new()))
            .expect_err("empty")
            .kind(),
        ErrorKind::InvalidArgument
    );
    // Failed creates leave nothing behind.
    assert_eq!(f.rt.list().expect("list").len(), 1);
    assert_eq!(f.rt.claimed_ranges().len(), 1);
}

// ---- helpers ---------------------------------------------------------------

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
        Some("__owner") => owner_main(&args[2..]),
        Some("__run_tty") => run_once_main(
            &args[2..],
            "tty",
            "stty size; [ -t 0 ] || exit 9; exit 5",
            true,
        ),
        Some("__run_notty") => run_once_main(
            &args[2..],
            "notty",
            "echo pwned > /dev/tty; echo tty=$?; [ \"$(cut -d' ' -f6 /proc/$$/stat)\" = $$ ] && echo leader=yes",
            false,
        ),
        Some("__run_sleep") => run_sleep_main(&args[2..]),
        Some("__limits") => limits_main(&args[2..]),
        _ => {}
    }
    support::run(&[
        ("hostname_ids_and_layers", hostname_ids_and_layers),
        (
            "exec_joins_every_namespace_and_cgroup",
            exec_joins_every_namespace_and_cgroup,
        ),
        ("exit_codes_and_signals", exit_codes_and_signals),
        ("pty_and_resize", pty_and_resize),
        (
            "terminal_in_a_stopped_sandbox_fails_clearly",
            terminal_in_a_stopped_sandbox_fails_clearly,
        ),
        (
            "exec_timeout_kills_the_command",
            exec_timeout_kills_the_command,
        ),
        ("stop_with_grace", stop_with_grace),
        (
            "init_ignores_signals_from_inside",
            init_ignores_signals_from_inside,
        ),
        ("escapes_are_refused", escapes_are_refused),
        (
            "host_binary_is_unreachable_from_inside",
            host_binary_is_unreachable_from_inside,
        ),
        (
            "unix_socket_bind_mount_reaches_the_host",
            unix_socket_bind_mount_reaches_the_host,
        ),
        (
            "cannot_see_host_or_other_sandboxes",
            cannot_see_host_or_other_sandboxes,
        ),
        (
            "writes_never_reach_the_shared_layers",
            writes_never_reach_the_shared_layers,
        ),
        (
            "setuid_gains_nothing_and_no_fd_leaks",
            setuid_gains_nothing_and_no_fd_leaks,
        ),
        (
            "image_symlinks_cannot_redirect_setup_to_the_host",
            image_symlinks_cannot_redirect_setup_to_the_host,
        ),
        (
            "mountinfo_shows_no_host_paths",
            mountinfo_shows_no_host_paths,
        ),
        (
            "network_loopback_and_bridge_only",
            network_loopback_and_bridge_only,
        ),
        ("fork_bomb_hits_pids_limit", fork_bomb_hits_pids_limit),
        ("memory_hog_is_killed_inside", memory_hog_is_killed_inside),
        ("disk_fill_is_stopped", disk_fill_is_stopped),
        (
            "disk_full_is_enospc_not_an_oom_kill",
            disk_full_is_enospc_not_an_oom_kill,
        ),
        ("list_stats_touch", list_stats_touch),
        (
            "parallel_lifecycles_do_not_interfere",
            parallel_lifecycles_do_not_interfere,
        ),
        (
            "run_once_dies_with_its_caller",
            run_once_dies_with_its_caller,
        ),
        ("limits_reach_the_cgroups", limits_reach_the_cgroups),
        ("run_once_with_a_terminal", run_once_with_a_terminal),
        (
            "run_once_without_a_terminal_gets_its_own_session",
            run_once_without_a_terminal_gets_its_own_session,
        ),
        ("restart_adopts_or_cleans_up", restart_adopts_or_cleans_up),
        ("uid_ranges_are_disjoint", uid_ranges_are_disjoint),
        (
            "rlimits_do_not_come_from_the_caller",
            rlimits_do_not_come_from_the_caller,
        ),
        (
            "deadline_holds_without_an_owner",
            deadline_holds_without_an_owner,
        ),
        (
            "gc_removes_what_no_server_will_stop",
            gc_removes_what_no_server_will_stop,
        ),
        (
            "uid_ranges_are_unique_on_the_host",
            uid_ranges_are_unique_on_the_host,
        ),
        ("bad_input_is_rejected", bad_input_is_rejected),
    ]);
}
