//! `cargo bench -p host --bench engine`: a lab's Docker engine beside a real
//! dockerd, both measured in this run through the same client, Debian's
//! docker CLI 20.10.24 (`/usr/bin/docker` on the host and in the node).
//!
//! - `docker run --rm busybox true`: in a lab, the CLI in the node talking
//!   to the lab's engine; on the host, the CLI talking to a dockerd this
//!   bench starts. bash times every command where it runs
//!   (`$EPOCHREALTIME` around it), so both figures include the CLI's own
//!   start and nothing of the bench's plumbing.
//! - `docker pull nginx`: a lab pulls from the hub, layerlab's catalog;
//!   dockerd pulls the same image from Debian's `docker-registry` on
//!   loopback, where skopeo put it from the catalog's OCI layout export. The
//!   image is removed after every pull, on both sides.
//! - `docker run -d busybox sleep 3600` thirty times on each side, then
//!   `docker ps` and `docker images` with those 30 containers running.
//!   Both are mostly the CLI starting, so `docker --version` (no engine
//!   asked) is timed as their floor, and the same two API calls are timed
//!   by curl over one connection: the engines' own part.
//! - Memory: the growth of this process's RSS per idle lab (the labs'
//!   engines are tasks in this process, so the figure is an engine plus the
//!   host's own bookkeeping for its lab), dockerd and containerd's RSS at
//!   idle, and 30 labs each running a busybox container, all at once.
//!
//! The sides alternate in rounds so both see the same load from whatever
//! else runs on the machine. The dockerd has its own data root, exec root,
//! pidfile, socket, config file, bridge and cgroup parent under this run's
//! directories; it touches no iptables rule and no sysctl (`--iptables`,
//! `--ip-forward`, `--ip-masq` off: no container here needs a way out), and
//! it is stopped by its pid at the end, also after a panic (and gets
//! SIGTERM should this process die). Needs root, docker.io, docker-registry
//! and skopeo (`make bench` installs them) and fails, never skips, without.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use host::{EmbeddedConfig, EmbeddedHost, SandboxHost, SessionSpec};
use store::{Reference, Store};

/// The CLI both sides run.
const DOCKER: &str = "/usr/bin/docker";
const DOCKERD: &str = "/usr/sbin/dockerd";
const SKOPEO: &str = "/usr/bin/skopeo";
/// Timed commands per comparison.
const RUNS: usize = 20;
/// Each comparison alternates the sides this many times.
const ROUNDS: usize = 4;
/// Containers on each side while `docker ps` and `docker images` are timed.
const CONTAINERS: usize = 30;
/// Idle labs measured for memory, then each given a running container.
const LABS: usize = 30;
/// The most any one script (a loop of timed commands) may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);
/// Under this much memory per idle lab's engine.
const IDLE_TARGET_KIB: u64 = 5_000_000 / 1024;
const RUN_TARGET_RATIO: f64 = 3.0;
/// The sides, as every comparison prints them: where the CLI runs.
const NAMES: [&str; 2] = ["layerlab (in the lab)", "dockerd (on the host)"];

fn main() {
    runtime::helper::main_if_requested();
    preflight();
    testkit::ensure_catalog();
    let work = tempfile::Builder::new()
        .prefix("engine-bench-")
        .tempdir_in("/var/tmp")
        .expect("a work directory under /var/tmp");
    let catalog = Store::open(Path::new(testkit::CATALOG_STORE)).expect("open the test catalog");
    let hub = images::hub();
    let name = |n: &str| Reference::parse(n).expect("a catalog name");

    // dockerd cannot reach Docker Hub here: busybox comes from the
    // catalog as a `docker save` archive, nginx through the registry.
    let busybox = work.path().join("busybox.tar");
    catalog
        .export_docker_save(
            &hub,
            &[name("busybox")],
            fs::File::create(&busybox).expect("create the busybox archive"),
        )
        .expect("export busybox from the catalog");
    let layout = work.path().join("nginx-layout");
    catalog
        .export_oci_layout(&hub, &[name("nginx")], &layout)
        .expect("export nginx from the catalog");
    let registry_root = work.path().join("registry");
    fs::create_dir(&registry_root).expect("create the registry's directory");
    let (registry, registry_addr) = testkit::start_distribution(&registry_root);
    let _registry = Reaped(registry);
    run_ok(Command::new(SKOPEO).args([
        "copy",
        "--dest-tls-verify=false",
        &format!("oci:{}", layout.display()),
        &format!("docker://{registry_addr}/nginx:latest"),
    ]));

    let dockerd = Dockerd::start(&work.path().join("dockerd"), &registry_addr);
    let dockerd_idle_kib = dockerd.rss_kib();
    dockerd.cli(&["load", "-i", &busybox.display().to_string()]);
    let labs = Labs::new();

    let memory = memory(&labs, dockerd_idle_kib);

    labs.create("bench");
    let lab = Side::Lab(&labs, "bench");
    let theirs = Side::Dockerd(&dockerd);
    lab.sh(&format!("{DOCKER} pull -q busybox >/dev/null"));
    for side in [&lab, &theirs] {
        // The first container of an engine pays for more than later ones.
        side.sh(&format!(
            "for i in 1 2; do {DOCKER} run --rm busybox true; done"
        ));
    }
    let sides = [&lab, &theirs];

    let cli = |command: String| move |side: &Side, n| side.time(&command, "", n);
    report(
        "docker --version: the CLI starting, no engine asked (the floor of every row below)",
        compare(sides, RUNS, cli(format!("{DOCKER} --version"))),
    );
    let run = report(
        "docker run --rm busybox true",
        compare(sides, RUNS, cli(format!("{DOCKER} run --rm busybox true"))),
    );

    let moved = blob_bytes(&layout);
    let pull = report(
        &format!(
            "docker pull nginx ({:.1} MB of blobs; dockerd fetches and unpacks them, a lab names what the shared store holds)",
            moved as f64 / 1e6
        ),
        compare(sides, RUNS, |side, n| {
            let image = match side {
                Side::Lab(..) => "nginx".to_owned(),
                Side::Dockerd(_) => format!("{registry_addr}/nginx:latest"),
            };
            side.time(
                &format!("{DOCKER} pull {image}"),
                &format!("{DOCKER} rmi {image} >/dev/null"),
                n,
            )
        }),
    );

    let detached = report(
        &format!("docker run -d busybox sleep 3600 ({CONTAINERS} containers on each side)"),
        compare(
            sides,
            CONTAINERS,
            cli(format!("{DOCKER} run -d busybox sleep 3600")),
        ),
    );
    for side in sides {
        let running = side.sh(&format!("{DOCKER} ps -q | wc -l"));
        assert_eq!(
            running.trim(),
            CONTAINERS.to_string(),
            "{}: containers running",
            side.name()
        );
    }
    let ps = report(
        &format!("docker ps with {CONTAINERS} containers running"),
        compare(sides, RUNS, cli(format!("{DOCKER} ps"))),
    );
    let images = report(
        &format!("docker images with {CONTAINERS} containers running"),
        compare(sides, RUNS, cli(format!("{DOCKER} images"))),
    );
    // The CLI's start dominates both; the engines' own part, by curl.
    for path in ["containers/json", "images/json"] {
        report(
            &format!(
                "GET /v1.41/{path}, {CONTAINERS} containers running: one curl, one connection, curl's clock"
            ),
            compare(sides, RUNS, |side, n| side.api_times(path, n)),
        );
    }
    for side in sides {
        side.sh(&format!("{DOCKER} rm -f $({DOCKER} ps -aq) >/dev/null"));
    }

    println!("\n== verdict ==");
    println!(
        "docker run --rm busybox true: layerlab {run:.1}x faster than dockerd by the median (target >= {RUN_TARGET_RATIO}x): {}",
        met(run >= RUN_TARGET_RATIO)
    );
    println!(
        "docker pull nginx {pull:.1}x, docker run -d {detached:.1}x, docker ps {ps:.1}x, docker images {images:.1}x faster"
    );
    println!(
        "idle lab: +{} KiB of this process's RSS after one `docker ps` (target < {IDLE_TARGET_KIB} KiB): {}",
        memory.idle_kib,
        met(memory.idle_kib < IDLE_TARGET_KIB)
    );
    println!(
        "{LABS} labs each running a busybox container at once on this {}-core machine: all running",
        std::thread::available_parallelism().map_or(1, usize::from)
    );
}

fn preflight() {
    let uid = fs::metadata("/proc/self").expect("read /proc/self").uid();
    assert_eq!(
        uid, 0,
        "the engine benchmark starts labs and a dockerd: run it as root"
    );
    for (path, package) in [
        (DOCKERD, "docker.io"),
        (DOCKER, "docker.io"),
        (testkit::DISTRIBUTION, "docker-registry"),
        (SKOPEO, "skopeo"),
    ] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install Debian's {package} (`make apt-bench apt-test`)"
        );
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

/// Runs a command that must succeed and returns its standard output.
fn run_ok(cmd: &mut Command) -> String {
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
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where the CLI runs and the engine it talks to.
enum Side<'a> {
    /// In the node of this lab, against the lab's engine.
    Lab(&'a Labs, &'a str),
    /// On the host, against the bench's dockerd.
    Dockerd(&'a Dockerd),
}

impl Side<'_> {
    fn name(&self) -> &'static str {
        match self {
            Side::Lab(..) => NAMES[0],
            Side::Dockerd(_) => NAMES[1],
        }
    }

    /// The engine's socket where this side's CLI runs.
    fn socket(&self) -> String {
        match self {
            Side::Lab(..) => "/var/run/docker.sock".to_owned(),
            Side::Dockerd(dockerd) => dockerd.dir.join("docker.sock").display().to_string(),
        }
    }

    /// Runs a bash script where this side's CLI runs; it must succeed.
    fn sh(&self, script: &str) -> String {
        match self {
            Side::Lab(labs, id) => labs.sh(id, script),
            Side::Dockerd(dockerd) => dockerd.sh(script),
        }
    }

    /// Runs `command` `n` times, each timed by bash, with `after` (untimed)
    /// after each run.
    fn time(&self, command: &str, after: &str, n: usize) -> Vec<Duration> {
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
    fn api_times(&self, path: &str, n: usize) -> Vec<Duration> {
        let requests = format!(" -o /dev/null http://docker/v1.41/{path}").repeat(n);
        let out = self.sh(&format!(
            "curl -sf --unix-socket {} -w '%{{time_total}}\\n'{requests}",
            self.socket()
        ));
        self.parse_times(&out, n, 1.0, &format!("GET {path}"))
    }

    /// `n` times printed one a line, each a number of `unit` seconds.
    fn parse_times(&self, out: &str, n: usize, unit: f64, what: &str) -> Vec<Duration> {
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
fn compare(
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Prints both sides' median and p90; returns how many times faster the
/// lab's median is.
fn report(title: &str, [mut ours, mut theirs]: [Vec<Duration>; 2]) -> f64 {
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

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Total size of an OCI layout's blobs: what a pull of it moves.
fn blob_bytes(layout: &Path) -> u64 {
    fs::read_dir(layout.join("blobs/sha256"))
        .expect("the layout's blobs")
        .map(|e| e.expect("a blob").metadata().expect("its metadata").len())
        .sum()
}

/// A `kB` field of a /proc file such as `status` or `meminfo`.
fn proc_kib(path: &str, field: &str) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or_else(|| panic!("no {field} in {path}"))
}

fn own_rss_kib() -> u64 {
    proc_kib("/proc/self/status", "VmRSS:")
}

fn mem_available_kib() -> u64 {
    proc_kib("/proc/meminfo", "MemAvailable:")
}

/// Lets exited helpers, freed memory and background work settle before a
/// memory reading.
fn settle() {
    std::thread::sleep(Duration::from_millis(500));
}

/// Removes the cgroup directory `name` from every hierarchy, waiting up
/// to 5 s for the last processes that left it to be gone.
fn remove_cgroup(name: &str) {
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
struct Labs {
    host: EmbeddedHost,
    cgroup: String,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Labs {
    fn new() -> Labs {
        let state = tempfile::Builder::new()
            .prefix("layerlab-engine-bench-")
            .tempdir_in("/dev/shm")
            .expect("a state directory on /dev/shm");
        let disk = testkit::disk_dir();
        let mut config = EmbeddedConfig::new(
            testkit::CATALOG_STORE,
            state.path(),
            std::env::current_exe().expect("own executable"),
        );
        let cgroup = format!("layerlab-engine-bench-{}", std::process::id());
        config.cgroup_parent = cgroup.clone();
        config.disk_dir = disk.path().to_owned();
        config.stop_grace = Duration::from_secs(1);
        Labs {
            host: EmbeddedHost::new(config).expect("create the embedded host"),
            cgroup,
            _dirs: (state, disk),
        }
    }

    fn create(&self, id: &str) {
        self.host
            .create_session(SessionSpec::new(id))
            .unwrap_or_else(|e| panic!("create lab {id}: {e}"));
    }

    fn destroy(&self, id: &str) {
        self.host
            .destroy_session(id)
            .unwrap_or_else(|e| panic!("destroy lab {id}: {e}"));
    }

    /// Runs a bash script in the lab's node; it must succeed.
    fn sh(&self, id: &str, script: &str) -> String {
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
    fn charged_kib(&self) -> u64 {
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
        if let Ok(sessions) = self.host.sessions() {
            for s in sessions {
                if let Err(e) = self.host.destroy_session(&s.id) {
                    eprintln!("cannot destroy lab {}: {e}", s.id);
                }
            }
        }
        remove_cgroup(&self.cgroup);
    }
}

struct Memory {
    /// This process's RSS growth per idle lab that answered one request.
    idle_kib: u64,
}

/// Idle labs' cost to this process, then [`LABS`] labs each running a
/// container at once.
fn memory(labs: &Labs, dockerd_idle_kib: u64) -> Memory {
    println!("\n== memory: {LABS} labs ==");
    // The first lab starts what every later one shares (the engines'
    // runtime, its threads, the store's caches).
    labs.create("warm");
    labs.sh("warm", &format!("{DOCKER} ps >/dev/null"));
    settle();
    let (rss, available, charged) = (own_rss_kib(), mem_available_kib(), labs.charged_kib());
    let ids: Vec<String> = (0..LABS).map(|i| format!("idle-{i}")).collect();
    let started = Instant::now();
    for id in &ids {
        labs.create(id);
    }
    let start_all = started.elapsed();
    settle();
    let per_lab = |now: u64, before: u64| now.saturating_sub(before) / LABS as u64;
    let started_kib = per_lab(own_rss_kib(), rss);
    for id in &ids {
        labs.sh(id, &format!("{DOCKER} ps >/dev/null"));
    }
    settle();
    let idle_kib = per_lab(own_rss_kib(), rss);
    println!(
        "{LABS} labs started in {:.2} s ({:.0} ms each)",
        start_all.as_secs_f64(),
        ms(start_all) / LABS as f64
    );
    println!(
        "this process's RSS (the engines and the host's bookkeeping) per idle lab: +{started_kib} KiB started, +{idle_kib} KiB after one `docker ps`"
    );
    println!(
        "dockerd + its containerd at idle, for comparison (one daemon per lab in a Docker-in-Docker design): {:.1} MiB",
        dockerd_idle_kib as f64 / 1024.0
    );

    let started = Instant::now();
    for id in &ids {
        // Pulls busybox from the hub first, as Docker does.
        labs.sh(
            id,
            &format!("{DOCKER} run -d busybox sleep 3600 >/dev/null 2>&1"),
        );
    }
    let run_all = started.elapsed();
    for id in &ids {
        assert_eq!(
            labs.sh(id, &format!("{DOCKER} ps -q | wc -l")).trim(),
            "1",
            "lab {id}: its busybox container should be running"
        );
    }
    settle();
    println!(
        "{LABS} labs each running `busybox sleep 3600`, all {LABS} containers running: started in {:.2} s (pull and run, {:.0} ms each)",
        run_all.as_secs_f64(),
        ms(run_all) / LABS as f64
    );
    let dropped = (available as f64 - mem_available_kib() as f64) / 1024.0;
    println!(
        "  MemAvailable dropped by {dropped:.1} MiB for the {LABS} labs and their containers ({:.1} MiB a lab; other work on the machine moves this)",
        dropped / LABS as f64
    );
    let charge = labs.charged_kib().saturating_sub(charged) as f64 / 1024.0;
    println!(
        "  charged to the labs' cgroups: +{charge:.1} MiB ({:.1} MiB a lab, page cache included)",
        charge / LABS as f64
    );
    println!(
        "  this process's RSS per lab with its container running: +{} KiB",
        per_lab(own_rss_kib(), rss)
    );
    let started = Instant::now();
    for id in ids.iter().map(String::as_str).chain(["warm"]) {
        labs.destroy(id);
    }
    println!(
        "  all {} labs destroyed in {:.2} s",
        LABS + 1,
        started.elapsed().as_secs_f64()
    );
    Memory { idle_kib }
}

/// Debian's dockerd, apart from anything else on the host: its own
/// directories, socket, bridge and cgroup parent. Its containers are
/// removed and it is stopped by its pid when dropped.
struct Dockerd {
    child: Child,
    dir: PathBuf,
    socket: String,
    cgroup: String,
    /// Dropped after dockerd stopped.
    _bridge: Bridge,
}

impl Dockerd {
    fn start(dir: &Path, insecure_registry: &str) -> Dockerd {
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
    fn command(&self, program: &str) -> Command {
        let mut cmd = Command::new(program);
        cmd.env("DOCKER_HOST", &self.socket)
            .env("DOCKER_CONFIG", self.dir.join("cli"));
        cmd
    }

    fn cli(&self, args: &[&str]) -> String {
        run_ok(self.command(DOCKER).args(args))
    }

    /// Runs a bash script on the host against this dockerd, bounded by
    /// [`SCRIPT_TIMEOUT`]; it must succeed.
    fn sh(&self, script: &str) -> String {
        run_ok(
            self.command("timeout")
                .arg(SCRIPT_TIMEOUT.as_secs().to_string())
                .args(["bash", "-c", script]),
        )
    }

    /// The pid dockerd wrote, else the one it was started with.
    fn pid(&self) -> u32 {
        fs::read_to_string(self.dir.join("dockerd.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or(self.child.id())
    }

    /// RSS of dockerd and its children (its containerd).
    fn rss_kib(&self) -> u64 {
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
    fn mounts(&self) -> Vec<String> {
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
struct Bridge(String);

impl Bridge {
    fn create(name: &str, address: &str) -> Bridge {
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
