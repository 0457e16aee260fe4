//! Real sessions from the real `workstation` image, run as root; they fail
//! loudly when something is missing, never skip. This binary is also the
//! sandbox helper executable (it calls `main_if_requested` first, as the
//! product's binary does), hence `harness = false` and the small runner at
//! the bottom.

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use host::{
    EmbeddedConfig, EmbeddedHost, ErrorKind, Expired, Expiry, ExpiryReason, SandboxHost,
    SandboxSpec, SandboxState, Terminal, TerminalSize,
};
use store::{Reference, Store};

const STORE: &str = testkit::CATALOG_STORE;
const WAIT: Duration = Duration::from_secs(20);

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A host on its own state dir and cgroup parent; on drop it destroys
/// every session still recorded and removes what it made.
struct Fixture {
    host: EmbeddedHost,
    config: EmbeddedConfig,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("layerlab-host-")
            .tempdir_in("/dev/shm")
            .expect("temp dir");
        let mut config = EmbeddedConfig::new(
            STORE,
            dir.path(),
            std::env::current_exe().expect("current exe"),
        );
        config.cgroup_parent = format!(
            "layerlab-host-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        config.stop_grace = Duration::from_secs(1);
        let disk = testkit::disk_dir();
        config.disk_dir = disk.path().to_owned();
        let host = EmbeddedHost::new(config.clone()).expect("create embedded host");
        Self {
            host,
            config,
            _dirs: (dir, disk),
        }
    }

    fn create(&self, id: &str) -> host::SandboxInfo {
        self.host
            .create_sandbox(SandboxSpec::new(id))
            .unwrap_or_else(|e| panic!("create session {id}: {e}"))
    }

    fn sh(&self, id: &str, script: &str) -> host::ExecOutput {
        self.host
            .exec(
                id,
                &["bash".into(), "-c".into(), script.into()],
                Duration::from_secs(60),
            )
            .unwrap_or_else(|e| panic!("exec {script:?} in {id}: {e}"))
    }

    /// A second runtime on the host's state dir, to reach behind its back.
    fn runtime(&self) -> runtime::Runtime {
        let mut rc =
            runtime::RuntimeConfig::new(&self.config.runtime_state_dir, &self.config.helper_exe);
        rc.uid_pool = self.config.uid_pool;
        rc.disk_dir = self.config.disk_dir.clone();
        rc.cgroup_parent = self.config.cgroup_parent.clone();
        runtime::Runtime::new(rc).expect("runtime on the host's state dir")
    }

    /// A new session `id` and an 80x24 terminal on it, read on its own
    /// thread.
    fn terminal(
        &self,
        id: &str,
    ) -> (
        Screen,
        Box<dyn Write + Send>,
        host::Resizer,
        host::TerminalProcess,
    ) {
        self.create(id);
        let Terminal {
            reader,
            writer,
            resizer,
            process,
        } = self
            .host
            .open_terminal(id, TerminalSize { cols: 80, rows: 24 })
            .expect("open terminal");
        (Screen::start(reader), writer, resizer, process)
    }

    fn info(&self, id: &str) -> host::SandboxInfo {
        self.host
            .sandbox(id)
            .unwrap_or_else(|e| panic!("session {id} not found: {e}"))
    }

    /// Kills the node's init from the host and waits until the session
    /// shows as Exited.
    fn kill_init(&self, id: &str) {
        let pid = self
            .runtime()
            .get(id)
            .expect("sandbox of the session")
            .init_pid
            .expect("init pid");
        // SAFETY: plain syscall; the pid is the node's init, our child.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGKILL) },
            0,
            "kill the node's init"
        );
        let deadline = Instant::now() + WAIT;
        while self.info(id).state != SandboxState::Exited {
            assert!(
                Instant::now() < deadline,
                "session {id} never turned Exited"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn lease_of(&self, id: &str) -> String {
        let path = self
            .config
            .runtime_state_dir
            .join("host-sessions")
            .join(format!("{id}.json"));
        let rec: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).expect("read session record"))
                .expect("parse session record");
        rec["lease"].as_str().expect("lease in record").to_owned()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Ok(list) = self.host.sandboxes() {
            for s in list {
                let _ = self.host.destroy_sandbox(&s.id);
            }
        }
        testkit::remove_cgroup_parent(&self.config.cgroup_parent);
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_owned()
}

/// Output of a terminal, read on its own thread.
struct Screen {
    rx: mpsc::Receiver<Vec<u8>>,
    seen: String,
}

impl Screen {
    fn start(mut reader: Box<dyn Read + Send>) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 || tx.send(buf[..n].to_vec()).is_err() {
                    break;
                }
            }
        });
        Self {
            rx,
            seen: String::new(),
        }
    }

    /// Reads until `needle` appears after what earlier waits consumed.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(at) = self.seen.find(needle) {
                self.seen.drain(..at + needle.len());
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(b) => self.seen.push_str(&String::from_utf8_lossy(&b)),
                Err(_) => panic!(
                    "terminal never printed {needle:?} within {WAIT:?}; it printed: {:?}",
                    self.seen
                ),
            }
        }
    }
}

// ---- tests -----------------------------------------------------------------

fn terminal_runs_a_shell_resizes_and_exits_with_its_code() {
    let f = Fixture::new();
    let (mut screen, mut writer, resizer, mut process) = f.terminal("term");
    writer
        .write_all(b"echo hello-$((40+2))\n")
        .expect("type into terminal");
    screen.wait_for("hello-42");
    // The terminal's exec helper, a fork of which entered the node, runs
    // from the sealed copy of the binary, not from the host's file.
    let state_dir = f.config.runtime_state_dir.display().to_string();
    let helpers: Vec<String> = std::fs::read_dir("/proc")
        .expect("read /proc")
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                let c = String::from_utf8_lossy(&c);
                c.contains("__layerlab-runtime-exec") && c.contains(&state_dir)
            })
        })
        .filter_map(|e| std::fs::read_link(e.path().join("exe")).ok())
        .map(|exe| exe.display().to_string())
        .collect();
    assert!(!helpers.is_empty(), "no exec helper of the terminal found");
    for exe in &helpers {
        assert!(
            exe.starts_with("/memfd:layerlab-helper"),
            "the terminal's helper runs the host's binary file: {exe}"
        );
    }
    resizer
        .resize(TerminalSize {
            cols: 100,
            rows: 30,
        })
        .expect("resize");
    writer.write_all(b"stty size\n").expect("type stty");
    screen.wait_for("30 100");
    writer.write_all(b"hostname\n").expect("type hostname");
    screen.wait_for("node1");
    writer.write_all(b"exit 3\n").expect("type exit");
    let deadline = Instant::now() + WAIT;
    let code = loop {
        if let Some(code) = process.try_wait().expect("poll shell") {
            break code;
        }
        assert!(
            Instant::now() < deadline,
            "shell did not exit within {WAIT:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, 3, "terminal exit code");
}

/// The terminal is the node's own: its slave is in the node's devpts,
/// where `tty`, `script` and job control find it, owned as a login's is.
/// Each marker is computed by the shell, so the echoed input never
/// matches it.
fn terminal_comes_from_the_nodes_devpts() {
    let f = Fixture::new();
    let (mut screen, mut writer, resizer, mut process) = f.terminal("pts");
    let run = |writer: &mut Box<dyn Write + Send>, line: &str| {
        writer
            .write_all(format!("{line}\n").as_bytes())
            .expect("type into terminal")
    };
    run(&mut writer, "echo A$((1+1))$(tty)");
    screen.wait_for("A2/dev/pts/");
    // Made 0620 (the runtime's suite checks that); root's Debian .profile
    // then runs `mesg n`, as on any Debian login, hence no group write.
    run(
        &mut writer,
        "ls -l \"$(tty)\" | awk '{print \"B\" $1 \":\" $3 \":\" $4}'",
    );
    screen.wait_for("Bcrw-------:root:tty");
    run(
        &mut writer,
        "t=$(tty); ls /dev/pts | grep -qx \"${t#/dev/pts/}\" && echo C$((2+2))listed",
    );
    screen.wait_for("C4listed");
    resizer
        .resize(TerminalSize {
            cols: 132,
            rows: 43,
        })
        .expect("resize");
    run(&mut writer, "echo D$(stty size)");
    screen.wait_for("D43 132");
    run(
        &mut writer,
        "script -qc tty /dev/null | tr -d '\\r' | sed 's/^/E/'",
    );
    screen.wait_for("E/dev/pts/");
    // ^C reaches the foreground job through the node's line discipline.
    run(&mut writer, "sleep 60");
    std::thread::sleep(Duration::from_millis(300));
    let interrupted = Instant::now();
    writer.write_all(b"\x03").expect("type ^C");
    run(&mut writer, "echo F$((3+3))after");
    screen.wait_for("F6after");
    assert!(
        interrupted.elapsed() < Duration::from_secs(10),
        "^C did not stop sleep: {:?}",
        interrupted.elapsed()
    );
    assert!(
        resizer
            .resize(TerminalSize { cols: 0, rows: 0 })
            .is_err_and(|e| e.kind() == ErrorKind::InvalidArgument),
        "a 0x0 terminal was accepted"
    );
    run(&mut writer, "exit 0");
    assert_eq!(process.wait().expect("wait for the shell"), 0);
}

fn exec_captures_output_times_out_and_setup_ran() {
    let f = Fixture::new();
    let mut spec = SandboxSpec::new("exec");
    spec.setup = Some("echo prepared > /root/setup-done".into());
    f.host.create_sandbox(spec).expect("create with setup");
    let o = f.sh("exec", "echo out; echo err >&2; exit 5");
    assert_eq!(text(&o.stdout), "out");
    assert_eq!(text(&o.stderr), "err");
    assert_eq!(o.status.code, Some(5));
    let o = f.sh("exec", "cat /root/setup-done");
    assert_eq!(text(&o.stdout), "prepared", "setup script output file");

    let start = Instant::now();
    let e = f
        .host
        .exec(
            "exec",
            &["sleep".into(), "100".into()],
            Duration::from_millis(500),
        )
        .expect_err("a hanging exec must time out");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("ran longer than") && msg.contains("sleep 100"),
        "{msg}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "timeout took {:?}",
        start.elapsed()
    );

    // A failing setup script fails the creation and leaves nothing behind.
    let mut bad = SandboxSpec::new("badsetup");
    bad.setup = Some("echo broken >&2; exit 7".into());
    let e = f.host.create_sandbox(bad).expect_err("failing setup");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("exit code 7") && msg.contains("broken"),
        "{msg}"
    );
    let ids: Vec<String> = f
        .host
        .sandboxes()
        .expect("sessions")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, ["exec"], "failed creation left a session");
    let one = f.host.sandbox("exec").expect("one session");
    assert_eq!(
        (one.id.as_str(), one.state),
        ("exec", SandboxState::Running)
    );
    let absent = f
        .host
        .sandbox("badsetup")
        .expect_err("a failed creation is gone");
    assert_eq!(absent.kind(), ErrorKind::NotFound, "{absent}");
}

fn usage_counts_the_nodes_memory_and_processes() {
    let f = Fixture::new();
    f.create("usage");
    let before = f.host.usage("usage").expect("usage of a running node");
    assert!(before.pids >= 1 && before.memory_bytes > 0, "{before:?}");
    // Two sleepers and 64 MiB in the node's tmpfs, which its cgroup pays for.
    f.sh(
        "usage",
        "(sleep 60 >/dev/null 2>&1 &); (sleep 60 >/dev/null 2>&1 &); head -c 64M /dev/zero > /dev/shm/fill",
    );
    let after = f.host.usage("usage").expect("usage again");
    // The node's init and the two sleepers, at least.
    assert!(after.pids >= 3, "{before:?} then {after:?}");
    assert!(
        after.memory_bytes >= before.memory_bytes + (60 << 20),
        "{before:?} then {after:?}"
    );
    let absent = f.host.usage("nobody").expect_err("no such session");
    assert_eq!(absent.kind(), ErrorKind::NotFound, "{absent}");
}

fn sessions_cannot_see_each_other() {
    let f = Fixture::new();
    f.create("iso-a");
    f.create("iso-b");
    f.sh(
        "iso-a",
        "echo secret > /root/a-only; setsid sleep 300 </dev/null >/dev/null 2>&1 &",
    );
    let a = f.sh("iso-a", "cat /proc/[0-9]*/comm | grep -c '^sleep$'");
    assert_eq!(text(&a.stdout), "1", "session a sees its own sleep");
    let b = f.sh("iso-b", "cat /proc/[0-9]*/comm | grep -c '^sleep$'");
    assert_eq!(text(&b.stdout), "0", "session b sees a's process");
    let b = f.sh("iso-b", "ls /root/a-only 2>&1; echo rc=$?");
    assert!(
        text(&b.stdout).ends_with("rc=2"),
        "b sees a's file: {}",
        text(&b.stdout)
    );
    let b = f.sh("iso-b", "ps -e -o pid= | wc -l");
    let a = f.sh("iso-a", "ps -e -o pid= | wc -l");
    assert!(
        text(&a.stdout).parse::<u32>().expect("count")
            > text(&b.stdout).parse::<u32>().expect("count"),
        "a ({}) should see more processes than b ({})",
        text(&a.stdout),
        text(&b.stdout)
    );
}

fn restarted_host_adopts_and_destroy_releases_everything() {
    let f = Fixture::new();
    let info = f.create("adopt");
    assert_eq!(info.state, SandboxState::Running);
    assert!(
        info.image_digest.starts_with("sha256:"),
        "{}",
        info.image_digest
    );
    let lease = f.lease_of("adopt");
    let store = Store::open(Path::new(STORE)).expect("open store");
    assert!(
        store.leases().expect("leases").contains(&lease),
        "lease held while running"
    );

    let again = EmbeddedHost::new(f.config.clone()).expect("second host on the same dirs");
    let list = again.sandboxes().expect("sessions after restart");
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(
        (list[0].id.as_str(), list[0].state),
        ("adopt", SandboxState::Running)
    );
    let o = again
        .exec("adopt", &["hostname".into()], Duration::from_secs(30))
        .expect("exec in adopted session");
    assert_eq!(text(&o.stdout), "node1");
    assert!(
        store.leases().expect("leases").contains(&lease),
        "lease kept across restart"
    );

    again.destroy_sandbox("adopt").expect("destroy");
    assert!(
        again.sandboxes().expect("sessions").is_empty(),
        "destroyed session still listed"
    );
    assert!(
        f.host.sandboxes().expect("sessions").is_empty(),
        "first host still lists it"
    );
    assert!(
        !store.leases().expect("leases").contains(&lease),
        "lease not released"
    );
    let e = f
        .host
        .exec("adopt", &["true".into()], Duration::from_secs(5))
        .expect_err("exec on a destroyed session");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

fn dead_session_is_exited_and_a_restart_releases_its_lease() {
    let f = Fixture::new();
    f.create("dies");
    let lease = f.lease_of("dies");
    f.kill_init("dies");
    let e = f
        .host
        .exec("dies", &["true".into()], Duration::from_secs(5))
        .expect_err("exec on an exited session");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    assert!(e.to_string().contains("destroy it"), "{e}");

    let again = EmbeddedHost::new(f.config.clone()).expect("second host on the same dirs");
    assert!(
        again.sandboxes().expect("sessions").is_empty(),
        "dead session adopted"
    );
    let store = Store::open(Path::new(STORE)).expect("open store");
    assert!(
        !store.leases().expect("leases").contains(&lease),
        "dead session's lease kept"
    );
}

fn an_id_taken_by_another_sandbox_is_refused_and_left_alone() {
    let f = Fixture::new();
    let store = Store::open(Path::new(STORE)).expect("open store");
    let digest = store
        .resolve(
            &images::hub(),
            &Reference::parse("workstation").expect("reference"),
        )
        .expect("resolve workstation");
    let unpacked = store.unpack(&digest).expect("unpack workstation");
    let rt = f.runtime();
    rt.create(runtime::SandboxSpec::new(
        "taken",
        unpacked.lowerdirs.clone(),
    ))
    .expect("create a foreign sandbox");
    let e = f
        .host
        .create_sandbox(SandboxSpec::new("taken"))
        .expect_err("id of a foreign sandbox");
    let alive = rt.get("taken").map(|s| s.status);
    rt.stop("taken", Duration::ZERO)
        .expect("stop the foreign sandbox");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    assert_eq!(
        alive.ok(),
        Some(runtime::Status::Running),
        "foreign sandbox was stopped"
    );
    assert!(f.host.sandboxes().expect("sessions").is_empty());
}

fn bad_input_is_refused_clearly() {
    let f = Fixture::new();
    let mut spec = SandboxSpec::new("img");
    spec.image = "no-such-image".into();
    let e = f.host.create_sandbox(spec).expect_err("unknown image");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("layerlab images build"), "{e}");

    let mut spec = SandboxSpec::new("img2");
    spec.image = "Not A Name!".into();
    let e = f
        .host
        .create_sandbox(spec)
        .expect_err("malformed image name");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");

    for id in ["", "Bad", "../x", "-x", &"a".repeat(65)] {
        let e = f
            .host
            .create_sandbox(SandboxSpec::new(id))
            .expect_err("invalid id");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?}: {e}");
        assert!(e.to_string().contains("invalid session id"), "{e}");
        let e = f
            .host
            .exec(id, &["true".into()], Duration::from_secs(1))
            .expect_err("exec with invalid id");
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{id:?}: {e}");
    }

    let e = f
        .host
        .exec("never", &["true".into()], Duration::from_secs(1))
        .expect_err("exec on an unknown session");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("not found"), "{e}");
    let e = f
        .host
        .destroy_sandbox("never")
        .expect_err("destroy unknown");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");

    f.create("dup");
    let e = f
        .host
        .create_sandbox(SandboxSpec::new("dup"))
        .expect_err("duplicate id");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists, "{e}");
    let e = f
        .host
        .exec("dup", &[], Duration::from_secs(1))
        .expect_err("empty command");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    f.host.destroy_sandbox("dup").expect("destroy");
    let e = f
        .host
        .exec("dup", &["true".into()], Duration::from_secs(1))
        .expect_err("exec on destroyed session");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(f.host.sandboxes().expect("sessions").is_empty());
}

const POLICY: Expiry = Expiry {
    idle: Duration::from_secs(10 * 60),
    max_lifetime: Duration::from_secs(8 * 3600),
};

fn leased(lease: &str) -> bool {
    Store::open(Path::new(STORE))
        .expect("open store")
        .leases()
        .expect("leases")
        .iter()
        .any(|l| l == lease)
}

fn ids(f: &Fixture) -> Vec<String> {
    f.host
        .sandboxes()
        .expect("sessions")
        .into_iter()
        .map(|s| s.id)
        .collect()
}

fn idle_session_expires_and_releases_its_lease() {
    let f = Fixture::new();
    f.create("idle");
    let lease = f.lease_of("idle");
    let now = SystemTime::now();
    let info = f.info("idle");
    let last = info.last_activity.expect("creation records activity");
    assert!(last <= now, "last activity {last:?} after now {now:?}");
    assert!(
        f.host.expire(&POLICY, now).expect("expire now").is_empty(),
        "a fresh session expired"
    );
    assert_eq!(ids(&f), ["idle"], "fresh session gone");

    let gone = f
        .host
        .expire(&POLICY, now + POLICY.idle + Duration::from_secs(1))
        .expect("expire after the idle timeout");
    assert_eq!(
        gone,
        [Expired {
            id: "idle".into(),
            reason: ExpiryReason::Idle
        }]
    );
    assert!(ids(&f).is_empty(), "expired session still listed");
    assert!(!leased(&lease), "expired session's lease kept");
    let e = f.host.touch("idle").expect_err("touch an expired session");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
}

fn touch_moves_the_idle_deadline_and_survives_a_restart() {
    let f = Fixture::new();
    f.create("touched");
    // Age the activity stamp by an hour instead of waiting.
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(f.runtime().layout().activity("touched"))
        .and_then(|file| file.set_modified(hour_ago))
        .expect("age the activity stamp");
    let before = f.info("touched");
    assert_eq!(before.last_activity, Some(hour_ago), "aged stamp not seen");
    let old_deadline = hour_ago + POLICY.idle;
    assert_eq!(before.expires_at(&POLICY), Some(old_deadline));
    let probe = old_deadline + Duration::from_secs(1);
    assert_eq!(
        before.expiry_reason(&POLICY, probe),
        Some(ExpiryReason::Idle),
        "untouched session must be due at the old deadline"
    );

    f.host.touch("touched").expect("touch");
    let after = f.info("touched");
    let touched = after.last_activity.expect("activity after touch");
    assert!(
        touched > hour_ago + Duration::from_secs(3000),
        "touch did not move the activity: {touched:?}"
    );
    assert_eq!(after.expires_at(&POLICY), Some(touched + POLICY.idle));
    assert!(
        f.host.expire(&POLICY, probe).expect("expire").is_empty(),
        "touched session expired at its old deadline"
    );
    assert_eq!(ids(&f), ["touched"]);

    let again = EmbeddedHost::new(f.config.clone()).expect("second host on the same dirs");
    let listed = again.sandboxes().expect("sessions after restart");
    assert_eq!(
        listed.first().and_then(|s| s.last_activity),
        Some(touched),
        "activity lost across a restart"
    );

    let e = f.host.touch("never").expect_err("touch an unknown session");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    let e = f.host.touch("../x").expect_err("touch an invalid id");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

fn lifetime_expiry_hits_a_recently_touched_session() {
    let f = Fixture::new();
    let created = f.create("old").created;
    f.host.touch("old").expect("touch");
    let policy = Expiry {
        idle: Duration::from_secs(3600),
        max_lifetime: Duration::from_secs(60),
    };
    let info = f.info("old");
    let lifetime_end = created + policy.max_lifetime;
    assert_eq!(
        info.expires_at(&policy),
        Some(lifetime_end),
        "the lifetime deadline is the earlier one"
    );
    let idle_end = info.last_activity.expect("activity") + POLICY.idle;
    assert_eq!(
        info.expires_at(&POLICY),
        Some(idle_end),
        "the idle deadline is the earlier one"
    );
    assert!(
        f.host
            .expire(&policy, lifetime_end - Duration::from_secs(1))
            .expect("expire before the lifetime")
            .is_empty(),
        "expired before its lifetime"
    );
    let gone = f
        .host
        .expire(&policy, lifetime_end + Duration::from_secs(1))
        .expect("expire after the lifetime");
    assert_eq!(
        gone,
        [Expired {
            id: "old".into(),
            reason: ExpiryReason::Lifetime
        }]
    );
    assert!(ids(&f).is_empty(), "session past its lifetime still listed");
}

fn exited_session_is_reaped() {
    let f = Fixture::new();
    f.create("reaped");
    f.create("alive");
    let lease = f.lease_of("reaped");
    f.kill_init("reaped");
    let e = f.host.touch("reaped").expect_err("touch an exited session");
    assert_eq!(e.kind(), ErrorKind::FailedPrecondition, "{e}");
    let gone = f
        .host
        .expire(&POLICY, SystemTime::now())
        .expect("expire now");
    assert_eq!(
        gone,
        [Expired {
            id: "reaped".into(),
            reason: ExpiryReason::Exited
        }]
    );
    assert_eq!(ids(&f), ["alive"], "only the exited session goes");
    assert!(!leased(&lease), "exited session's lease kept");
}

// ---- runner ----------------------------------------------------------------

use testkit::Test;

const TESTS: &[Test] = &[
    (
        "terminal_runs_a_shell_resizes_and_exits_with_its_code",
        terminal_runs_a_shell_resizes_and_exits_with_its_code,
    ),
    (
        "terminal_comes_from_the_nodes_devpts",
        terminal_comes_from_the_nodes_devpts,
    ),
    (
        "exec_captures_output_times_out_and_setup_ran",
        exec_captures_output_times_out_and_setup_ran,
    ),
    (
        "sessions_cannot_see_each_other",
        sessions_cannot_see_each_other,
    ),
    (
        "restarted_host_adopts_and_destroy_releases_everything",
        restarted_host_adopts_and_destroy_releases_everything,
    ),
    (
        "dead_session_is_exited_and_a_restart_releases_its_lease",
        dead_session_is_exited_and_a_restart_releases_its_lease,
    ),
    ("bad_input_is_refused_clearly", bad_input_is_refused_clearly),
    (
        "usage_counts_the_nodes_memory_and_processes",
        usage_counts_the_nodes_memory_and_processes,
    ),
    (
        "an_id_taken_by_another_sandbox_is_refused_and_left_alone",
        an_id_taken_by_another_sandbox_is_refused_and_left_alone,
    ),
    (
        "idle_session_expires_and_releases_its_lease",
        idle_session_expires_and_releases_its_lease,
    ),
    (
        "touch_moves_the_idle_deadline_and_survives_a_restart",
        touch_moves_the_idle_deadline_and_survives_a_restart,
    ),
    (
        "lifetime_expiry_hits_a_recently_touched_session",
        lifetime_expiry_hits_a_recently_touched_session,
    ),
    ("exited_session_is_reaped", exited_session_is_reaped),
    ("the_embedded_host_conforms", the_embedded_host_conforms),
];

/// The suite every host passes (the fake runs it in `fake.rs`), on a host
/// of its own: it expects no other sandboxes.
fn the_embedded_host_conforms() {
    let f = Fixture::new();
    host::conformance(&f.host, "workstation");
}

fn main() {
    runtime::helper::main_if_requested();
    testkit::run(TESTS, 3, testkit::ensure_catalog)
}
