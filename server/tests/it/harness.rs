//! Starts real servers and runs the real CLI.

#[path = "../common/client.rs"]
mod client;
pub use client::*;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_layerlab");

pub struct Server {
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
    cgroup_parent: String,
}

static NEXT_SERVER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl Server {
    /// Starts `layerlab serve` on a free port and waits until it listens.
    ///
    /// Every server gets its own cgroup parent, so each test can remove
    /// what it made; uid ranges are claimed host-wide by the runtime.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Server {
        let cgroup_parent = format!(
            "layerlab-it-{}-{}",
            std::process::id(),
            NEXT_SERVER.fetch_add(1, std::sync::atomic::Ordering::SeqCst)
        );
        Server::launch(data_dir, extra, cgroup_parent)
    }

    /// Stops this server with SIGTERM and starts another on the same data
    /// directory and cgroup parent, as an operator's restart.
    pub fn restart(mut self, data_dir: &Path, extra: &[&str]) -> Server {
        let cgroup_parent = std::mem::take(&mut self.cgroup_parent);
        self.stop();
        Server::launch(data_dir, extra, cgroup_parent)
    }

    fn launch(data_dir: &Path, extra: &[&str], cgroup_parent: String) -> Server {
        let mut child = layerlab_on(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(["--cgroup-parent", &cgroup_parent])
            .args(extra)
            .env("LAYERLAB_LOG", "info")
            // Most tests' stores are empty and need no labs: building the
            // catalog there would run debootstrap for every one of them.
            // Tests that want the build pass --missing-images build.
            .env("LAYERLAB_MISSING_IMAGES", "fail")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn layerlab serve");
        let stderr = child.stderr.take().expect("stderr is piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(url) = line
                    .split("listening on ")
                    .nth(1)
                    .and_then(|rest| rest.split_whitespace().next())
                {
                    let _ = tx.send(url.to_string());
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let url = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(url) => url,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; its log:\n{}", log.lock().unwrap());
            }
        };
        Server {
            child,
            url,
            log,
            cgroup_parent,
        }
    }

    /// The cgroup (under each controller) holding this server's labs.
    pub fn cgroup_parent(&self) -> &str {
        &self.cgroup_parent
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Threads of the server process right now.
    pub fn threads(&self) -> u64 {
        self.status_field("Threads:")
    }

    /// The most memory the server process has used so far, in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        self.status_field("VmHWM:")
    }

    fn status_field(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read the server's /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|n| n.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no {field} line in {status}"))
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// The log once it holds `needle`: a thread copies the server's
    /// stderr, so a line written just before a response may not be read
    /// yet when the response arrives. Fails after 10 s, showing the log.
    pub fn log_once_it_says(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the log:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn stop(mut self) {
        let pid = self.child.id() as i32;
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for server") {
                assert!(
                    status.success(),
                    "server exited with {status} after SIGTERM; log:\n{}",
                    self.log()
                );
                return;
            }
            assert!(
                Instant::now() < deadline,
                "server ignored SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9: the server gets no chance to tidy up.
    pub fn crash(mut self) {
        self.child.kill().expect("kill -9 the server");
        self.child.wait().expect("reap the server");
    }
}

impl Site for Server {
    fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if self.cgroup_parent.is_empty() {
            return; // handed over by restart()
        }
        // Empty by now when the test stopped its labs; rmdir refuses otherwise.
        if let Ok(controllers) = std::fs::read_dir("/sys/fs/cgroup") {
            for controller in controllers.flatten() {
                let _ = std::fs::remove_dir(controller.path().join(&self.cgroup_parent));
            }
        }
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(&self.cgroup_parent));
    }
}

/// Runs the CLI with `args`, feeding `stdin`; with `--data-dir`, on that
/// directory's database.
pub fn cli(args: &[&str], stdin: &str) -> Output {
    let data_dir = args
        .iter()
        .position(|a| *a == "--data-dir")
        .and_then(|i| args.get(i + 1));
    let mut command = match data_dir {
        Some(dir) => layerlab_on(Path::new(dir)),
        None => Command::new(BIN),
    };
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn layerlab");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for layerlab")
}

/// The `layerlab` command for `data_dir`, told which database it uses.
pub fn layerlab_on(data_dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    if let Some(url) = crate::database::url_for(data_dir) {
        command.env("LAYERLAB_DATABASE_URL", url);
    }
    command
}

/// Adds an account through the CLI.
pub fn add_user(data_dir: &Path, name: &str, role: &str, password: &str) {
    let out = cli(
        &[
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
            data_dir.to_str().unwrap(),
        ],
        &format!("{password}\n"),
    );
    assert!(
        out.status.success(),
        "user add failed: {}",
        text(&out.stderr)
    );
}
