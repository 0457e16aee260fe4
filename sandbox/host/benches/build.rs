//! `cargo bench -p host --bench build`: `docker build` with the classic
//! builder in a lab beside Debian's dockerd, both measured in this run
//! through the same client, Debian's docker CLI 20.10.24 (in the node and
//! on the host), bash timing each command where it runs.
//!
//! - A cold build of a five-instruction Dockerfile (FROM debian, RUN
//!   apt-get install, COPY, WORKDIR, CMD) with `--no-cache` on both sides.
//!   Neither side reaches the internet: the lab's engine serves the
//!   catalog's package repository inside the lab; dockerd's build runs on
//!   the host's network (`--network host`) with the same repository served
//!   on loopback by Python's http.server, so apt downloads the same files.
//! - A fully cached rebuild of it, and `docker version` on the same side:
//!   the rebuild's time minus the CLI's floor is the engine's share.
//! - 20 labs building one Dockerfile at once, against 20 times one lab's
//!   build of it: wall time, and the store's growth on disk.
//!
//! The sides alternate in rounds. Needs root, docker.io and python3
//! (`make bench` installs them) and fails, never skips, without.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use store::{Reference, Store};

const PYTHON: &str = "/usr/bin/python3";
/// Cold builds per side.
const COLD_RUNS: usize = 4;
/// Cached rebuilds (and `docker version`s) per side.
const CACHED_RUNS: usize = 20;
/// Labs building at once.
const CLASS: usize = 20;
const COLD_TARGET_RATIO: f64 = 2.0;
const CACHED_TARGET_RATIO: f64 = 5.0;

const DOCKERFILE: &str = "FROM debian
RUN apt-get update && apt-get install -y figlet
COPY banner.txt /srv/
WORKDIR /srv
CMD [\"figlet\", \"-f\", \"small\", \"hi\"]
";

fn main() {
    runtime::helper::main_if_requested();
    preflight(&[(PYTHON, "python3")]);
    testkit::ensure_catalog();
    let work = tempfile::Builder::new()
        .prefix("build-bench-")
        .tempdir_in("/var/tmp")
        .expect("a work directory under /var/tmp");
    let catalog = Store::open(Path::new(testkit::CATALOG_STORE)).expect("open the test catalog");
    let debian = work.path().join("debian.tar");
    catalog
        .export_docker_save(
            &images::hub(),
            &[Reference::parse("debian").expect("a catalog name")],
            fs::File::create(&debian).expect("create the debian archive"),
        )
        .expect("export debian from the catalog");

    // The labs' package repository, for dockerd's builds on loopback.
    let served = work.path().join("served");
    fs::create_dir(&served).expect("create the served directory");
    let mirror = images::packages::Mirror::new(Path::new(testkit::CATALOG_PACKAGES));
    std::os::unix::fs::symlink(
        mirror.repository(),
        served.join(images::packages::URL_PATH.trim_start_matches('/')),
    )
    .expect("link the repository");
    let _server = Reaped(
        Command::new(PYTHON)
            .args(["-m", "http.server", &images::packages::PORT.to_string()])
            .args(["--bind", "127.0.0.1", "--directory"])
            .arg(&served)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start python3's http.server"),
    );

    let dockerd = Dockerd::start(&work.path().join("dockerd"), "127.0.0.1:1");
    dockerd.cli(&["load", "-q", "-i", &debian.display().to_string()]);
    let labs = Labs::new();
    labs.create("build");
    let lab = Side::Lab(&labs, "build");
    let theirs = Side::Dockerd(&dockerd);
    let sides = [&lab, &theirs];

    // The same context on both sides.
    let host_context = work.path().join("context");
    let context_script = |dir: &str| {
        format!(
            "set -e; rm -rf {dir}; mkdir -p {dir}; cd {dir}\n\
             cat > Dockerfile <<'LAYERLAB_EOF'\n{DOCKERFILE}LAYERLAB_EOF\n\
             echo 'built in a lab' > banner.txt\n"
        )
    };
    lab.sh(&context_script("/context"));
    theirs.sh(&context_script(&host_context.display().to_string()));
    let build = |side: &Side, flags: &str| match side {
        Side::Lab(..) => format!("cd /context && {DOCKER} build {flags} -q -t bench ."),
        Side::Dockerd(_) => format!(
            "cd {} && DOCKER_BUILDKIT=0 {DOCKER} build {flags} -q --network host --add-host {}:127.0.0.1 -t bench .",
            host_context.display(),
            images::packages::HOST
        ),
    };
    // Both sides once, so first-use costs (the image pulled or loaded,
    // page cache) are out of the figures.
    for side in sides {
        side.sh(&build(side, ""));
        let ran = side.sh(&format!("{DOCKER} run --rm bench"));
        assert!(
            ran.contains("| |"),
            "{}: the built image runs figlet:\n{ran}",
            side.name()
        );
    }

    let cold = report(
        "docker build --no-cache: FROM debian, RUN apt-get install figlet, COPY, WORKDIR, CMD",
        compare(sides, COLD_RUNS, |side, n| {
            side.time(&build(side, "--no-cache"), "", n)
        }),
    );
    let version = compare(sides, CACHED_RUNS, |side, n| {
        side.time(&format!("{DOCKER} version"), "", n)
    });
    let cached = compare(sides, CACHED_RUNS, |side, n| {
        side.time(&build(side, ""), "", n)
    });
    let floors = medians(&version);
    let rebuilds = medians(&cached);
    report("docker version: the CLI's floor", version);
    report("docker build, every step cached", cached);
    println!(
        "\n== the engine's share of a cached rebuild (rebuild median - docker version median) =="
    );
    let share = |i: usize| (rebuilds[i] - floors[i]).max(0.01);
    for (i, name) in NAMES.iter().enumerate() {
        println!(
            "{name:<24} {:>8.2} ms  (rebuild {:.2} ms - docker version {:.2} ms)",
            share(i),
            rebuilds[i],
            floors[i]
        );
    }
    let cached_ratio = share(1) / share(0);
    println!(
        "{:<24} {cached_ratio:.2}x (dockerd's share / layerlab's)",
        "ratio"
    );

    let class = class(&labs);
    drop(labs);

    println!("\n== verdict ==");
    println!(
        "cold build: layerlab {cold:.1}x faster than dockerd by the median (target >= {COLD_TARGET_RATIO}x): {}",
        met(cold >= COLD_TARGET_RATIO)
    );
    println!(
        "cached rebuild: the engine's share {:.2} ms vs dockerd's {:.2} ms, {cached_ratio:.1}x smaller (target >= {CACHED_TARGET_RATIO}x): {}",
        share(0),
        share(1),
        met(cached_ratio >= CACHED_TARGET_RATIO)
    );
    println!(
        "{CLASS} labs building at once: {:.1} s and {:.1} MB on disk; 20 x one build: {:.1} s and {:.1} MB",
        class.together.as_secs_f64(),
        class.together_bytes as f64 / 1e6,
        CLASS as f64 * class.one.as_secs_f64(),
        CLASS as f64 * class.one_bytes as f64 / 1e6
    );
}

/// Each side's median, in milliseconds.
fn medians(times: &[Vec<Duration>; 2]) -> [f64; 2] {
    times.clone().map(|mut t| {
        t.sort();
        ms(percentile(&t, 0.5))
    })
}

struct Class {
    one: Duration,
    one_bytes: u64,
    together: Duration,
    together_bytes: u64,
}

/// One lab's build of a Dockerfile no build has seen, then [`CLASS`] labs
/// building another such Dockerfile at once: time, and the store's growth.
fn class(labs: &Labs) -> Class {
    let store = Path::new(testkit::CATALOG_STORE);
    let nonce = |tag: &str| {
        format!(
            "{tag}-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        )
    };
    let prepare = |id: &str, nonce: &str| {
        labs.sh(
            id,
            &format!(
                "set -e; rm -rf /class; mkdir -p /class; cd /class\n\
                 cat > Dockerfile <<'LAYERLAB_EOF'\n{}LAYERLAB_EOF\n\
                 echo 'built by a class' > banner.txt\n",
                DOCKERFILE.replacen("\n", &format!("\nLABEL class=\"{nonce}\"\n"), 1)
            ),
        );
    };
    let build = format!("cd /class && {DOCKER} build -q -t class .");

    println!("\n== {CLASS} labs building one Dockerfile at once, against one lab's build ==");
    labs.create("alone");
    prepare("alone", &nonce("alone"));
    let before = du_bytes(store);
    let started = Instant::now();
    labs.sh("alone", &build);
    let one = started.elapsed();
    let one_bytes = du_bytes(store).saturating_sub(before);
    labs.destroy("alone");
    println!(
        "one lab:       {:>8.2} s, the store grew {:>8.1} MB",
        one.as_secs_f64(),
        one_bytes as f64 / 1e6
    );

    let ids: Vec<String> = (0..CLASS).map(|i| format!("class{i}")).collect();
    let shared = nonce("class");
    for id in &ids {
        labs.create(id);
        prepare(id, &shared);
    }
    let before = du_bytes(store);
    let started = Instant::now();
    std::thread::scope(|s| {
        for id in &ids {
            s.spawn(|| labs.sh(id, &build));
        }
    });
    let together = started.elapsed();
    let together_bytes = du_bytes(store).saturating_sub(before);
    let images: Vec<String> = ids
        .iter()
        .map(|id| {
            labs.sh(
                id,
                &format!("{DOCKER} image inspect -f '{{{{.Id}}}}' class"),
            )
        })
        .collect();
    assert!(
        images.windows(2).all(|w| w[0] == w[1]),
        "the labs built different images: {images:?}"
    );
    println!(
        "{CLASS} labs:      {:>8.2} s, the store grew {:>8.1} MB (one image for all: {})",
        together.as_secs_f64(),
        together_bytes as f64 / 1e6,
        images[0].trim()
    );
    for id in &ids {
        labs.destroy(id);
    }
    Class {
        one,
        one_bytes,
        together,
        together_bytes,
    }
}

/// Bytes under `dir` as `du` counts them (hard links once).
fn du_bytes(dir: &Path) -> u64 {
    let out = Command::new("du")
        .args(["-sb"])
        .arg(dir)
        .output()
        .expect("run du");
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}
