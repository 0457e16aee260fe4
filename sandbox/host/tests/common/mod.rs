//! What the suites that drive the real Docker CLI share: labs on an
//! embedded host of their own, and Debian's dockerd as the oracle. Each
//! test binary uses part of it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use host::{EmbeddedConfig, EmbeddedHost, SandboxHost, SandboxSpec};
use store::{Reference, Store};

pub const STORE: &str = testkit::CATALOG_STORE;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A host on its own state dir and cgroup parent, destroying its labs on
/// drop.
pub struct Labs {
    pub host: Option<EmbeddedHost>,
    pub config: EmbeddedConfig,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// What a command printed and how it ended.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Labs {
    /// Labs served the shared catalog's package repository.
    pub fn new() -> Labs {
        let mirror = images::packages::Mirror::new(testkit::CATALOG_PACKAGES.as_ref());
        Labs::with_packages(mirror.repository())
    }

    /// Labs served the package repository in `packages`.
    pub fn with_packages(packages: std::path::PathBuf) -> Labs {
        let dir = tempfile::Builder::new()
            .prefix("layerlab-docker-")
            .tempdir_in("/dev/shm")
            .expect("temp dir");
        let mut config =
            EmbeddedConfig::new(STORE, dir.path(), std::env::current_exe().expect("exe"));
        config.cgroup_parent = format!(
            "layerlab-docker-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        config.stop_grace = Duration::from_secs(1);
        config.packages_dir = Some(packages);
        let disk = testkit::disk_dir();
        config.disk_dir = disk.path().to_owned();
        let host = EmbeddedHost::new(config.clone()).expect("create embedded host");
        Labs {
            host: Some(host),
            config,
            _dirs: (dir, disk),
        }
    }

    pub fn host(&self) -> &EmbeddedHost {
        self.host.as_ref().expect("host")
    }

    /// A new lab, named after the test.
    pub fn lab(&self, name: &str) -> String {
        let id = format!("{name}-{}", NEXT.fetch_add(1, Ordering::SeqCst));
        self.host()
            .create_sandbox(SandboxSpec::new(&id))
            .unwrap_or_else(|e| panic!("create lab {id}: {e}"));
        id
    }

    /// Runs a bash script in the lab's node, as a student would type it.
    pub fn sh(&self, lab: &str, script: &str) -> Run {
        let out = self
            .host()
            .exec(
                lab,
                &["bash".into(), "-c".into(), script.into()],
                Duration::from_secs(120),
            )
            .unwrap_or_else(|e| panic!("exec {script:?} in {lab}: {e}"));
        Run {
            code: out.status.shell_code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Like [`Labs::sh`], and the script must succeed.
    pub fn ok(&self, lab: &str, script: &str) -> String {
        let run = self.sh(lab, script);
        assert_eq!(
            run.code, 0,
            "{script:?} failed with {}:\nstdout: {}\nstderr: {}",
            run.code, run.stdout, run.stderr
        );
        run.stdout
    }

    /// Like [`Labs::sh`], and the script must fail with `code`, saying
    /// `message` on stderr.
    pub fn fails(&self, lab: &str, script: &str, code: i32, message: &str) {
        let run = self.sh(lab, script);
        assert_eq!(
            run.code, code,
            "{script:?} should exit {code}:\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
        assert!(
            run.stderr.contains(message),
            "{script:?} should say {message:?}, said:\n{}",
            run.stderr
        );
    }

    /// Drops the host (labs keep running) and opens a new one on the same
    /// state, as a restarted server does.
    pub fn restart(&mut self) {
        drop(self.host.take());
        self.host = Some(EmbeddedHost::new(self.config.clone()).expect("reopen the host"));
    }
}

impl Drop for Labs {
    fn drop(&mut self) {
        if let Some(host) = &self.host
            && let Ok(sessions) = host.sandboxes()
        {
            for s in sessions {
                let _ = host.destroy_sandbox(&s.id);
            }
        }
        drop(self.host.take());
        testkit::remove_cgroup_parent(&self.config.cgroup_parent);
    }
}

/// The image ID of a hub image, read from the store, not the engine.
pub fn hub_image_id(name: &str) -> String {
    let store = Store::open(STORE.as_ref()).expect("store");
    let digest = store
        .resolve(&images::hub(), &Reference::parse(name).expect("reference"))
        .expect("catalog image");
    store
        .image(&digest)
        .expect("image")
        .config_digest
        .to_string()
}

/// Debian's dockerd on a socket, data root and exec root of its own, with
/// no bridge and no iptables rules (it leaves the host's network alone);
/// stopped by pid on drop.
pub struct Dockerd {
    pub dir: tempfile::TempDir,
    child: std::process::Child,
}

impl Dockerd {
    pub fn start() -> Dockerd {
        std::fs::create_dir_all("/var/tmp/layerlab").expect("create /var/tmp/layerlab");
        let dir = tempfile::Builder::new()
            .prefix("layerlab-dockerd-")
            .tempdir_in("/var/tmp/layerlab")
            .expect("dockerd dir");
        let p = |s: &str| dir.path().join(s).display().to_string();
        let log = std::fs::File::create(dir.path().join("log")).expect("dockerd log");
        let child = std::process::Command::new("/usr/sbin/dockerd")
            .args(["-H", &format!("unix://{}", p("docker.sock"))])
            .args(["--data-root", &p("data"), "--exec-root", &p("exec")])
            .args([
                "--pidfile",
                &p("pid"),
                "--bridge",
                "none",
                "--iptables=false",
            ])
            .args(["--ip-masq=false", "--storage-driver", "overlay2"])
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("Debian's dockerd (docker.io) must be installed: make test installs it");
        let d = Dockerd { dir, child };
        for _ in 0..300 {
            if d.run("docker version >/dev/null 2>&1").code == 0 {
                return d;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let log = std::fs::read_to_string(d.dir.path().join("log")).unwrap_or_default();
        panic!("dockerd did not answer within 30 s:\n{log}");
    }

    /// Runs a bash script with Debian's CLI pointed at this dockerd.
    pub fn run(&self, script: &str) -> Run {
        let out = std::process::Command::new("bash")
            .args(["-c", script])
            .env("PATH", "/usr/bin:/bin:/usr/sbin:/sbin")
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.path().join("docker.sock").display()),
            )
            .env("DOCKER_CONFIG", self.dir.path().join("cli"))
            .current_dir(self.dir.path())
            .output()
            .expect("run bash");
        Run {
            code: out.status.code().unwrap_or(255),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.run("docker rm -f $(docker ps -aq) >/dev/null 2>&1");
        // SAFETY: plain syscall on our child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

/// Output with what legitimately differs between two engines masked:
/// IDs, times, and durations.
pub fn normalized(text: &str) -> String {
    let ids = regex::Regex::new(r"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b").expect("regex");
    let ago = regex::Regex::new(
        r"(Less than a second|About a minute|About an hour|\d+ (seconds|minutes|hours))",
    )
    .expect("regex");
    let text = ids.replace_all(text, "<id>");
    ago.replace_all(&text, "<time>").into_owned()
}

/// Runs each `(in the lab, on dockerd)` pair of scripts on both sides
/// through the same CLI: exit codes, output and messages must match once
/// IDs and times are masked.
pub fn assert_same_as_dockerd(labs: &Labs, lab: &str, dockerd: &Dockerd, steps: &[(&str, &str)]) {
    let shape = |r: &Run| {
        format!(
            "exit {}\nstdout:\n{}\nstderr:\n{}",
            r.code,
            normalized(&r.stdout),
            normalized(&r.stderr)
        )
    };
    let mut differences = Vec::new();
    for &(ours_script, theirs_script) in steps {
        let ours = shape(&labs.sh(lab, ours_script));
        let theirs = shape(&dockerd.run(theirs_script));
        if ours != theirs {
            differences.push(format!(
                "$ {ours_script}\n--- layerlab\n{ours}\n--- dockerd\n{theirs}"
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "{} of {} steps differ from dockerd:\n\n{}",
        differences.len(),
        steps.len(),
        differences.join("\n\n")
    );
}
