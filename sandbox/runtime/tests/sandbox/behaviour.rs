//! What a node is and does: hostname, ids and layers, exec into every
//! namespace, exit codes and signals, timeouts, stop.

use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};

use runtime::{ErrorKind, ExecSpec};

use super::{alive, err, host_status_field, out, sh, spawn_exec};
use crate::support::Fixture;

pub(super) fn hostname_ids_and_layers() {
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

pub(super) fn exec_joins_every_namespace_and_cgroup() {
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

pub(super) fn exit_codes_and_signals() {
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

pub(super) fn exec_timeout_kills_the_command() {
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

pub(super) fn init_ignores_signals_from_inside() {
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

pub(super) fn stop_with_grace() {
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
