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

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use store::{Reference, Store};

const SKOPEO: &str = "/usr/bin/skopeo";
/// Timed commands per comparison.
const RUNS: usize = 20;
/// Containers on each side while `docker ps` and `docker images` are timed.
const CONTAINERS: usize = 30;
/// Idle labs measured for memory, then each given a running container.
const LABS: usize = 30;
/// Under this much memory per idle lab's engine.
const IDLE_TARGET_KIB: u64 = 5_000_000 / 1024;
const RUN_TARGET_RATIO: f64 = 3.0;

fn main() {
    runtime::helper::main_if_requested();
    preflight(&[
        (testkit::DISTRIBUTION, "docker-registry"),
        (SKOPEO, "skopeo"),
    ]);
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

/// Total size of an OCI layout's blobs: what a pull of it moves.
fn blob_bytes(layout: &Path) -> u64 {
    fs::read_dir(layout.join("blobs/sha256"))
        .expect("the layout's blobs")
        .map(|e| e.expect("a blob").metadata().expect("its metadata").len())
        .sum()
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
