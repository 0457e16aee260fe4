//! What the engine and build benchmarks share: labs on an embedded host
//! of their own, Debian's dockerd apart from anything else on the host,
//! and timing both sides in alternating rounds. Each bench uses part.
#![allow(dead_code)]

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host::{EmbeddedConfig, EmbeddedHost, SandboxHost, SandboxSpec};

/// The CLI both sides run.
pub const DOCKER: &str = "/usr/bin/docker";
pub const DOCKERD: &str = "/usr/sbin/dockerd";
/// Each comparison alternates the sides this many times.
pub const ROUNDS: usize = 4;
/// The most any one script (a loop of timed commands) may take.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(1800);
/// The sides, as every comparison prints them: where the CLI runs.
pub const NAMES: [&str; 2] = ["layerlab (in the lab)", "dockerd (on the host)"];

/// Root, and Debian's docker.io and every other `(path, package)` the
/// bench needs; fails (never skips) without.
pub fn preflight(also: &[(&str, &str)]) {
    let uid = fs::metadata("/proc/self").expect("read /proc/self").uid();
    assert_eq!(
        uid, 0,
        "the benchmark starts labs and a dockerd: run it as root"
    );
    for &(path, package) in [(DOCKERD, "docker.io"), (DOCKER, "docker.io")]
        .iter()
        .chain(also)
    {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install Debian's {package} (`make apt-bench apt-test`)"
        );
    }
}

pub fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Runs a command that must succeed and returns its standard output.
pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Kills and reaps a child process when dropped.
pub struct Reaped(pub Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the CLI runs and the engine it talks to.
pub enum Side<'a> {
    /// In the node of this lab, against the lab's engine.
    Lab(&'a Labs, &'a str),
    /// On the host, against the bench's dockerd.
    Dockerd(&'a Dockerd),
}

impl Side<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            Side::Lab(..) => NAMES[0],
            Side::Dockerd(_) => NAMES[1],
        }
    }

    /// The engine's socket where this side's CLI runs.
    pub fn socket(&self) -> String {
        match self {
            Side::Lab(..) => "/var/run/docker.sock".to_owned(),
            Side::Dockerd(dockerd) => dockerd.dir.join("docker.sock").display().to_string(),
        }
    }

    /// Runs a bash script where this side's CLI runs; it must succeed.
    pub fn sh(&self, script: &str) -> String {
        match self {
            Side::Lab(labs, id) => labs.sh(id, script),
            Side::Dockerd(dockerd) => dockerd.sh(script),
        }
    }

    /// Runs `command` `n` times, each timed by bash, with `after` (untimed)
    /// after each run.
    pub fn time(&self, command: &str, after: &str, n: usize) -> Vec<Duration> {
        let after = if after.is_empty() { ":" } else { after };
        // $EPOCHREALTIME without its dot (a dot in the C locale) counts
        // microseconds, and reading it starts no process.
        let script = format!(
            "export LC_ALL=C\n\
             for i in $(seq {n}); do\n\
               s=${{EPOCHREALTIME/./}}\n\
               {command} >/dev/null || exit $?\n\
               e=${{EPOCHREALTIME/./}}\n\
               echo $((e - s))\n\
               {after} || exit $?\n\
             done\n"
        );
        self.parse_times(&self.sh(&script), n, 1e-6, command)
    }

    /// Times `GET /v1.41/{path}` `n` times, sent by one curl over one
    /// connection to the engine and timed by curl: the engine's answer
    /// with no client starting.
    pub fn api_times(&self, path: &str, n: usize) -> Vec<Duration> {
        let requests = format!(" -o /dev/null http://docker/v1.41/{path}").repeat(n);
        let out = self.sh(&format!(
            "curl -sf --unix-socket {} -w '%{{time_total}}\\n'{requests}",
            self.socket()
        ));
        self.parse_times(&out, n, 1.0, &format!("GET {path}"))
    }

    /// `n` times printed one a line, each a number of `unit` seconds.
    pub fn parse_times(&self, out: &str, n: usize, unit: f64, what: &str) -> Vec<Duration> {
        let times: Vec<Duration> = out
            .lines()
            .map(|l| match l.trim().parse::<f64>() {
                Ok(t) => Duration::from_secs_f64(t * unit),
                Err(_) => panic!("{}: {what}: not a time: {l:?}", self.name()),
            })
            .collect();
        assert_eq!(times.len(), n, "{}: times of {what}", self.name());
        times
    }
}

/// Measures each side in [`ROUNDS`] alternating rounds, `runs` times in
/// all per side; `measure` takes `n` measurements on one side.
pub fn compare(
    sides: [&Side; 2],
    runs: usize,
    measure: impl Fn(&Side, usize) -> Vec<Duration>,
) -> [Vec<Duration>; 2] {
    let mut times = [Vec::new(), Vec::new()];
    for round in 0..ROUNDS {
        let n = runs / ROUNDS + usize::from(round < runs % ROUNDS);
        for (side, times) in sides.iter().zip(&mut times) {
            times.extend(measure(side, n));
        }
    }
    times
}

pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints both sides' median and p90; returns how many times faster the
/// lab's median is.
pub fn report(title: &str, [mut ours, mut theirs]: [Vec<Duration>; 2]) -> f64 {
    println!("\n== {title} ==");
    for (name, v) in NAMES.iter().zip([&mut ours, &mut theirs]) {
        v.sort();
        println!(
            "{name:<24} median {:>9.2} ms   p90 {:>9.2} ms   (n={})",
            ms(percentile(v, 0.5)),
            ms(percentile(v, 0.9)),
            v.len()
        );
    }
    let ratio = percentile(&theirs, 0.5).as_secs_f64() / percentile(&ours, 0.5).as_secs_f64();
    println!(
        "{:<24} {ratio:.2}x (dockerd's median / layerlab's)",
        "ratio"
    );
    ratio
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A `kB` field of a /proc file such as `status` or `meminfo`.
pub fn proc_kib(path: &str, field: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no {field} in {path}"))
}

/// Removes the cgroup directory `name` from every hierarchy, waiting up
/// to 5 s for the last processes that left it to be gone.
pub fn remove_cgroup(name: &str) {
    let root = Path::new("/sys/fs/cgroup");
    let mut dirs: Vec<PathBuf> = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|controller| controller.path().join(name))
        .chain([root.join(name)])
        .filter(|d| d.is_dir())
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !dirs.is_empty() && Instant::now() < deadline {
        dirs.retain(|d| fs::remove_dir(d).is_err() && d.is_dir());
        if !dirs.is_empty() {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    for d in dirs {
        eprintln!("cgroup {} is still there", d.display());
    }
}

/// Labs on an [`EmbeddedHost`] of their own (state on /dev/shm, writable
/// layers on disk, a cgroup parent of their own); destroyed on drop.
pub struct Labs {
    host: EmbeddedHost,
    cgroup: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Labs {
    pub fn new() -> Labs {
        let state = tempfile::Builder::new()
            .prefix("layerlab-bench-")
            .tempdir_in("/dev/shm")
            .expect("a state directory on /dev/shm");
        let disk = testkit::disk_dir();
        let mut config = EmbeddedConfig::new(
            testkit::CATALOG_STORE,
            state.path(),
            std::env::current_exe().expect("own executable"),
        );
        let cgroup = format!("layerlab-bench-{}", std::process::id());
        config.cgroup_parent = cgroup.clone();
        config.disk_dir = disk.path().to_owned();
        config.stop_grace = Duration::from_secs(1);
        config.packages_dir =
            Some(images::packages::Mirror::new(Path::new(testkit::CATALOG_PACKAGES)).repository());
        Labs {
            host: EmbeddedHost::new(config).expect("create the embedded host"),
            cgroup,
            _dirs: (state, disk),
        }
    }

    pub fn create(&self, id: &str) {
        self.host
            .create_sandbox(SandboxSpec::new(id))
            .unwrap_or_else(|e| panic!("create lab {id}: {e}"));
    }

    pub fn destroy(&self, id: &str) {
        self.host
            .destroy_sandbox(id)
            .unwrap_or_else(|e| panic!("destroy lab {id}: {e}"));
    }

    /// Runs a bash script in the lab's node; it must succeed.
    pub fn sh(&self, id: &str, script: &str) -> String {
        let argv = ["bash".to_owned(), "-c".to_owned(), script.to_owned()];
        let out = self
            .host
            .exec(id, &argv, SCRIPT_TIMEOUT)
            .unwrap_or_else(|e| panic!("exec in lab {id}: {e}"));
        assert_eq!(
            out.status.shell_code(),
            0,
            "{script:?} in lab {id} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Memory charged to every lab's cgroup (nodes and their containers,
    /// page cache included), cgroup v1 or v2.
    pub fn charged_kib(&self) -> u64 {
        [
            format!(
                "/sys/fs/cgroup/memory/{}/memory.usage_in_bytes",
                self.cgroup
            ),
            format!("/sys/fs/cgroup/{}/memory.current", self.cgroup),
        ]
        .iter()
        .find_map(|p| fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())
        .map_or(0, |b| b / 1024)
    }
}

impl Drop for Labs {
    fn drop(&mut self) {
        if let Ok(sessions) = self.host.sandboxes() {
            for s in sessions {
                if let Err(e) = self.host.destroy_sandbox(&s.id) {
                    eprintln!("cannot destroy lab {}: {e}", s.id);
                }
            }
        }
        remove_cgroup(&self.cgroup);
    }
}

/// Debian's dockerd, apart from anything else on the host: its own
/// directories, socket, bridge and cgroup parent. Its containers are
/// removed and it is stopped by its pid when dropped.
pub struct Dockerd {
    child: Child,
    dir: PathBuf,
    socket: String,
    cgroup: String,
    /// Dropped after dockerd stopped.
    _bridge: Bridge,
}

impl Dockerd {
    pub fn start(dir: &Path, insecure_registry: &str) -> Dockerd {
        fs::create_dir_all(dir).expect("create dockerd's directory");
        let id = std::process::id();
        // Interface names have at most 15 bytes.
        let bridge = Bridge::create(
            &format!("llbench{}", id % 100_000),
            &format!("10.213.{}.1/24", id % 250 + 1),
        );
        let socket = format!("unix://{}", dir.join("docker.sock").display());
        let cgroup = format!("layerlab-engine-bench-dockerd-{id}");
        let config = dir.join("daemon.json");
        fs::write(&config, "{}\n").expect("write dockerd's config");
        let log = fs::File::create(dir.join("dockerd.log")).expect("create dockerd's log");
        let mut command = Command::new(DOCKERD);
        command
            .arg("--config-file")
            .arg(&config)
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("--exec-root")
            .arg(dir.join("exec"))
            .arg("--pidfile")
            .arg(dir.join("dockerd.pid"))
            .args(["--host", &socket, "--bridge", &bridge.0])
            .args(["--iptables=false", "--ip-forward=false", "--ip-masq=false"])
            .args(["--cgroup-parent", &cgroup])
            .args(["--insecure-registry", insecure_registry])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dockerd's log"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe and touches no memory of the
        // parent; it runs in the child between fork and exec.
        unsafe {
            command.pre_exec(|| {
                // The bench's main thread spawns it: when the bench dies,
                // so does dockerd, taking its containerd along.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut dockerd = Dockerd {
            child: command
                .spawn()
                .expect("start dockerd (apt-get install -y docker.io)"),
            dir: dir.to_owned(),
            socket,
            cgroup,
            _bridge: bridge,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let version = dockerd
                .command(DOCKER)
                .args(["version", "--format", "{{.Server.Version}}"])
                .stdin(Stdio::null())
                .output()
                .expect("run the docker CLI");
            if version.status.success() {
                break;
            }
            let exited = dockerd.child.try_wait().expect("dockerd's status");
            if exited.is_some() || Instant::now() >= deadline {
                panic!(
                    "dockerd did not answer ({exited:?}); its log:\n{}",
                    fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        dockerd
    }

    /// `program` with this dockerd as the CLI's engine; the CLI keeps its
    /// settings here, not in ~/.docker.
    pub fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DOCKER_HOST", &self.socket)
            .env("DOCKER_CONFIG", self.dir.join("cli"));
        cmd
    }

    pub fn cli(&self, args: &[&str]) -> String {
        run_ok(self.command(DOCKER).args(args))
    }

    /// Runs a bash script on the host against this dockerd, bounded by
    /// [`SCRIPT_TIMEOUT`]; it must succeed.
    pub fn sh(&self, script: &str) -> String {
        run_ok(
            self.command("timeout")
                .arg(SCRIPT_TIMEOUT.as_secs().to_string())
                .args(["bash", "-c", script]),
        )
    }

    /// The pid dockerd wrote, else the one it was started with.
    pub fn pid(&self) -> u32 {
        fs::read_to_string(self.dir.join("dockerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(self.child.id())
    }

    /// RSS of dockerd and its children (its containerd).
    pub fn rss_kib(&self) -> u64 {
        let pid = self.pid();
        let children: Vec<u32> = fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|task| fs::read_to_string(task.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect();
        std::iter::once(pid)
            .chain(children)
            .map(|p| proc_kib(&format!("/proc/{p}/status"), "VmRSS:"))
            .sum()
    }

    /// Mount points under dockerd's directory, deepest first.
    pub fn mounts(&self) -> Vec<String> {
        let prefix = self.dir.display().to_string();
        let mut mounts: Vec<String> = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&prefix))
            .map(str::to_owned)
            .collect();
        mounts.sort_by_key(|m| std::cmp::Reverse(m.len()));
        mounts
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Containers first, so that stopping has nothing left to wait for.
        let _ = self
            .command("timeout")
            .args(["120", "bash", "-c"])
            .arg(format!(
                "ids=$({DOCKER} ps -aq); [ -z \"$ids\" ] || {DOCKER} rm -f $ids"
            ))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let pid = self.pid();
        let _ = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        if matches!(self.child.try_wait(), Ok(None)) {
            eprintln!("dockerd ({pid}) did not stop within 30 s of SIGTERM; killing it");
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // What a clean stop unmounts itself; after a kill, this does.
        for mount in self.mounts() {
            let _ = Command::new("umount").args(["-l", &mount]).status();
        }
        remove_cgroup(&self.cgroup);
    }
}

/// A bridge of the bench's own, with an address dockerd takes its
/// containers' subnet from; deleted when dropped.
pub struct Bridge(pub String);

impl Bridge {
    pub fn create(name: &str, address: &str) -> Bridge {
        run_ok(Command::new("ip").args(["link", "add", "name", name, "type", "bridge"]));
        let bridge = Bridge(name.to_owned());
        run_ok(Command::new("ip").args(["addr", "add", address, "dev", name]));
        run_ok(Command::new("ip").args(["link", "set", name, "up"]));
        bridge
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.0]).status();
    }
}
