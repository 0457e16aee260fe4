//! Limits: pids, memory and disk, the cgroups they land in, and rlimits
//! that never come from the caller.

use std::process::Command;
use std::time::Duration;

use runtime::{ExecSpec, Runtime, SandboxSpec};

use super::{err, out, sh};
use crate::support::{self, Fixture};

pub(super) fn fork_bomb_hits_pids_limit() {
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

pub(super) fn memory_hog_is_killed_inside() {
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

pub(super) fn disk_fill_is_stopped() {
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
pub(super) fn disk_full_is_enospc_not_an_oom_kill() {
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

pub(super) fn limits_reach_the_cgroups() {
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

/// Resource limits inside are the runtime's own, never those of whoever
/// started the server: a caller with a low soft `nofile` and unlimited
/// core dumps creates a sandbox and execs into it. Where the host denies
/// raising hard limits (no CAP_SYS_RESOURCE), the caller's hard limit caps
/// ours but its soft limits still never reach the sandbox.
pub(super) fn rlimits_do_not_come_from_the_caller() {
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

pub(super) fn limits_main(args: &[String]) -> ! {
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
