//! Lifecycle: callers that die, many at once, list and stats, restart and
//! adoption, deadlines without an owner, gc.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runtime::{ExecSpec, Runtime, SandboxSpec};

use super::{err, out, sh, spawn_exec, wait_gone};
use crate::support::{self, Fixture};

/// `layerlab sandbox run` killed with SIGKILL takes its sandbox with it;
/// the records it leaves are then cleaned by `adopt_or_cleanup`.
pub(super) fn run_once_dies_with_its_caller() {
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

pub(super) fn run_sleep_main(args: &[String]) -> ! {
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
pub(super) fn parallel_lifecycles_do_not_interfere() {
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

pub(super) fn list_stats_touch() {
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
pub(super) fn restart_adopts_or_cleans_up() {
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

pub(super) fn owner_main(args: &[String]) -> ! {
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
pub(super) fn deadline_holds_without_an_owner() {
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
pub(super) fn gc_removes_what_no_server_will_stop() {
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
