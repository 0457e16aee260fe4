//! One suite every [`SandboxHost`] must pass, the way containerd runs one
//! content-store suite against every store: the embedded host runs it on
//! the real kernel, [`crate::FakeHost`] in memory, and a remote host will
//! run it too. It checks the contract the server relies on — states, error
//! kinds, exec, terminals, activity and expiry — not how a host does it.
//!
//! The checks run one after another on the host given, which must hold no
//! other sandboxes meanwhile (expiry reaps every sandbox it may). They
//! panic with the name of the rule that failed.

use std::io::{Read, Write};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use crate::{
    ErrorKind, Expiry, ExpiryReason, SandboxHost, SandboxSpec, SandboxState, Terminal, TerminalSize,
};

const EXEC_TIMEOUT: Duration = Duration::from_secs(30);
/// A terminal answers within this, or the rule fails.
const TERMINAL_WAIT: Duration = Duration::from_secs(30);

/// Runs every rule against `host`, creating sandboxes from `image`
/// (ids starting `conformance-`), and leaves none behind when it passes.
pub fn conformance(host: &dyn SandboxHost, image: &str) {
    lifecycle(host, image);
    refusals(host, image);
    exec(host, image);
    terminal(host, image);
    activity_and_expiry(host, image);
}

fn spec(id: &str, image: &str) -> SandboxSpec {
    let mut spec = SandboxSpec::new(id);
    spec.image = image.to_owned();
    spec
}

fn kind_of<T: std::fmt::Debug>(rule: &str, result: crate::Result<T>) -> ErrorKind {
    match result {
        Ok(value) => panic!("{rule}: succeeded with {value:?}"),
        Err(e) => e.kind(),
    }
}

/// Create, list, find, destroy; an absent sandbox is NotFound everywhere.
fn lifecycle(host: &dyn SandboxHost, image: &str) {
    let id = "conformance-life";
    let created = host
        .create_sandbox(spec(id, image))
        .unwrap_or_else(|e| panic!("create a sandbox: {e}"));
    assert_eq!(created.state, SandboxState::Running, "a new sandbox runs");
    assert_eq!(created.image, image, "a sandbox names its image");
    assert_eq!(created.hostname, "node1", "the default host name");
    assert!(
        created.image_digest.starts_with("sha256:"),
        "the image digest: {}",
        created.image_digest
    );
    let listed: Vec<String> = host
        .sandboxes()
        .expect("list sandboxes")
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [id], "the list holds the new sandbox only");
    let found = host.sandbox(id).expect("find the sandbox");
    assert_eq!(
        (found.id.as_str(), found.state, found.created),
        (id, SandboxState::Running, created.created),
        "found as created"
    );
    host.usage(id).expect("usage of a running sandbox");
    let ports = host.listening_ports(id).expect("listening ports");
    assert!(
        ports.windows(2).all(|w| w[0] < w[1]),
        "ports ascend: {ports:?}"
    );
    assert_eq!(
        host.engine_containers(id)
            .expect("containers of a new node"),
        [],
        "a new node's engine has no containers"
    );
    host.destroy_sandbox(id).expect("destroy the sandbox");
    assert!(
        host.sandboxes().expect("list").is_empty(),
        "destroyed is gone"
    );

    let absent = "conformance-absent";
    let not_found = [
        (
            "sandbox",
            kind_of("sandbox of an absent id", host.sandbox(absent)),
        ),
        (
            "destroy",
            kind_of("destroy an absent id", host.destroy_sandbox(absent)),
        ),
        (
            "exec",
            kind_of(
                "exec in an absent id",
                host.exec(absent, &["true".into()], EXEC_TIMEOUT),
            ),
        ),
        ("touch", kind_of("touch an absent id", host.touch(absent))),
        (
            "usage",
            kind_of("usage of an absent id", host.usage(absent)),
        ),
        (
            "ports",
            kind_of("ports of an absent id", host.listening_ports(absent)),
        ),
        (
            "terminal",
            kind_of(
                "terminal in an absent id",
                host.open_terminal(absent, TerminalSize { cols: 80, rows: 24 })
                    .map(|_| ()),
            ),
        ),
    ];
    for (call, kind) in not_found {
        assert_eq!(kind, ErrorKind::NotFound, "{call} on an absent sandbox");
    }
}

/// Bad ids, taken ids, unknown images and failing setup scripts are
/// refused with their kinds, and leave nothing behind.
fn refusals(host: &dyn SandboxHost, image: &str) {
    for bad in ["", "Upper", "a/b", "-lead", &"x".repeat(65)] {
        assert_eq!(
            kind_of("an invalid id", host.create_sandbox(spec(bad, image))),
            ErrorKind::InvalidArgument,
            "id {bad:?}"
        );
    }
    assert_eq!(
        kind_of(
            "an unknown image",
            host.create_sandbox(spec("conformance-noimage", "no-such-image-anywhere"))
        ),
        ErrorKind::NotFound,
        "an unknown image"
    );
    let mut failing = spec("conformance-setup", image);
    failing.setup = Some("exit 3".into());
    assert_eq!(
        kind_of("a failing setup", host.create_sandbox(failing)),
        ErrorKind::FailedPrecondition,
        "a setup script exiting 3"
    );
    let id = "conformance-taken";
    host.create_sandbox(spec(id, image)).expect("create");
    assert_eq!(
        kind_of("a taken id", host.create_sandbox(spec(id, image))),
        ErrorKind::AlreadyExists,
        "a taken id"
    );
    host.destroy_sandbox(id).expect("destroy");
    assert!(
        host.sandboxes().expect("list").is_empty(),
        "refused creations leave nothing"
    );
}

/// Commands: output, exit codes, the setup script's effect, timeouts,
/// empty commands.
fn exec(host: &dyn SandboxHost, image: &str) {
    let id = "conformance-exec";
    let mut with_setup = spec(id, image);
    with_setup.setup = Some("touch /root/ready".into());
    host.create_sandbox(with_setup).expect("create with setup");
    let run = |argv: &[&str], timeout| {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        host.exec(id, &argv, timeout)
    };
    let out = run(&["echo", "conformance", "ok"], EXEC_TIMEOUT).expect("echo");
    assert_eq!(
        (out.status.code, out.stdout.as_slice()),
        (Some(0), b"conformance ok\n".as_slice()),
        "echo's status and output"
    );
    assert!(out.status.success());
    let out = run(&["sh", "-c", "exit 7"], EXEC_TIMEOUT).expect("sh -c");
    assert_eq!(out.status.code, Some(7), "sh -c 'exit 7'");
    assert_eq!(out.status.shell_code(), 7);
    let out = run(&["false"], EXEC_TIMEOUT).expect("false");
    assert_eq!(out.status.code, Some(1), "false");
    let out = run(&["test", "-f", "/root/ready"], EXEC_TIMEOUT).expect("test");
    assert_eq!(out.status.code, Some(0), "the setup script ran before");
    assert_eq!(
        kind_of(
            "a command longer than its timeout",
            run(&["sleep", "30"], Duration::from_millis(300))
        ),
        ErrorKind::Unavailable,
        "a timeout"
    );
    assert_eq!(
        kind_of("an empty command", run(&[], EXEC_TIMEOUT)),
        ErrorKind::InvalidArgument,
        "an empty command"
    );
    host.destroy_sandbox(id).expect("destroy");
}

/// A terminal echoes, runs what is typed, resizes, ends with its shell's
/// code, and a killer ends it from another thread.
fn terminal(host: &dyn SandboxHost, image: &str) {
    let id = "conformance-term";
    host.create_sandbox(spec(id, image)).expect("create");
    let size = TerminalSize { cols: 80, rows: 24 };
    let Terminal {
        reader,
        mut writer,
        resizer,
        mut process,
    } = host.open_terminal(id, size).expect("open a terminal");
    let screen = Screen::start(reader);
    writer.write_all(b"echo conformance-typed\r").expect("type");
    // Typed (echoed) once, printed once.
    screen.wait_for("conformance-typed", 2);
    resizer
        .resize(TerminalSize {
            cols: 120,
            rows: 40,
        })
        .expect("resize");
    assert_eq!(
        kind_of(
            "a zero size",
            resizer.resize(TerminalSize { cols: 0, rows: 5 })
        ),
        ErrorKind::InvalidArgument,
        "resizing to 0x5"
    );
    assert_eq!(process.try_wait().expect("poll"), None, "the shell runs");
    writer.write_all(b"exit 5\r").expect("type exit");
    assert_eq!(process.wait().expect("wait"), 5, "the shell's exit code");
    screen.wait_for_end();

    let Terminal {
        reader,
        mut process,
        ..
    } = host.open_terminal(id, size).expect("a second terminal");
    let screen = Screen::start(reader);
    let killer = process.killer();
    std::thread::spawn(move || killer.kill())
        .join()
        .expect("kill")
        .expect("kill");
    assert_eq!(process.wait().expect("wait"), 128 + 9, "killed by SIGKILL");
    screen.wait_for_end();
    assert_eq!(
        kind_of(
            "a zero-sized terminal",
            host.open_terminal(id, TerminalSize { cols: 0, rows: 0 })
                .map(|_| ())
        ),
        ErrorKind::InvalidArgument,
        "opening a 0x0 terminal"
    );
    host.destroy_sandbox(id).expect("destroy");
}

/// Touch moves the idle deadline; expire reaps by the policy with its
/// reason and leaves the rest.
fn activity_and_expiry(host: &dyn SandboxHost, image: &str) {
    let (idle, young) = ("conformance-idle", "conformance-young");
    host.create_sandbox(spec(idle, image)).expect("create");
    let before = host.sandbox(idle).expect("info").last_activity;
    std::thread::sleep(Duration::from_millis(20));
    host.touch(idle).expect("touch");
    let after = host.sandbox(idle).expect("info").last_activity;
    assert!(
        after.is_some() && after >= before,
        "touch moves the activity stamp: {before:?} -> {after:?}"
    );
    let policy = Expiry {
        idle: Duration::from_secs(600),
        max_lifetime: Duration::from_secs(3600),
    };
    assert!(
        host.expire(&policy, SystemTime::now())
            .expect("expire")
            .is_empty(),
        "nothing is due yet"
    );
    // A gap between the two sandboxes' last activity, wider than any
    // host's timestamp granularity.
    std::thread::sleep(Duration::from_millis(200));
    host.create_sandbox(spec(young, image)).expect("create");
    let young_activity = host
        .sandbox(young)
        .expect("info")
        .last_activity
        .expect("a new sandbox has activity");
    let gap = young_activity
        .duration_since(after.expect("activity"))
        .expect("the younger sandbox's activity comes later");
    // At `now`, half the gap of idleness has passed `idle`'s deadline and
    // not `young`'s.
    let now = young_activity;
    let policy = Expiry {
        idle: gap / 2,
        max_lifetime: Duration::from_secs(3600),
    };
    let expired = host.expire(&policy, now).expect("expire");
    assert_eq!(
        expired
            .iter()
            .map(|e| (e.id.as_str(), e.reason))
            .collect::<Vec<_>>(),
        [(idle, ExpiryReason::Idle)],
        "only the idle sandbox is reaped, for idleness"
    );
    assert_eq!(
        kind_of("an expired sandbox", host.sandbox(idle)),
        ErrorKind::NotFound
    );
    host.destroy_sandbox(young).expect("destroy");
}

/// Collects a terminal's output on a thread of its own.
struct Screen {
    chunks: mpsc::Receiver<Option<Vec<u8>>>,
    seen: std::cell::RefCell<Vec<u8>>,
}

impl Screen {
    fn start(mut reader: Box<dyn Read + Send>) -> Screen {
        let (tx, chunks) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        let _ = tx.send(None);
                        return;
                    }
                    Ok(n) => {
                        if tx.send(Some(buf[..n].to_vec())).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        Screen {
            chunks,
            seen: Default::default(),
        }
    }

    fn wait_for(&self, text: &str, times: usize) {
        let deadline = std::time::Instant::now() + TERMINAL_WAIT;
        loop {
            let seen = String::from_utf8_lossy(&self.seen.borrow())
                .matches(text)
                .count();
            if seen >= times {
                return;
            }
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(Some(chunk)) => self.seen.borrow_mut().extend(chunk),
                _ => panic!(
                    "the terminal did not show {text:?} {times} times; it showed {:?}",
                    String::from_utf8_lossy(&self.seen.borrow())
                ),
            }
        }
    }

    /// The reader reaches EOF once the shell is gone.
    fn wait_for_end(&self) {
        let deadline = std::time::Instant::now() + TERMINAL_WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.chunks.recv_timeout(left) {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(_) => panic!("the terminal's output did not end with its shell"),
            }
        }
    }
}
