//! What layerlab's tests that create real sandboxes share; a
//! dev-dependency only, never part of the product.
//!
//! - [`run`]: the runner of suites built with `harness = false`, which must
//!   have their own `main` because the test executable doubles as the
//!   sandbox helper (`runtime::helper::main_if_requested()` comes first).
//!
//! - [`disk_dir`]: a directory on disk for a runtime's writable layers
//!   (the suites keep state directories on /dev/shm, where they may not
//!   be).
//! - [`ensure_catalog`] (feature `catalog`): the image catalog the suites
//!   share, in [`CATALOG_STORE`].
//! - [`start_distribution`]: Debian's `docker-registry` (distribution 2.8)
//!   on a loopback port, the registry the benchmarks compare with.
//! - [`http`] (feature `http`): a keep-alive client that holds a request's
//!   body back until the server has answered, for early answers.
//!
//! Sandboxes of the suites take their uid ranges from the runtime's
//! host-wide allocator, like every server, so no suite needs a uid region
//! of its own.

#[cfg(feature = "http")]
pub mod http;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A fresh directory on disk for one runtime's writable layers, removed
/// when dropped.
pub fn disk_dir() -> tempfile::TempDir {
    std::fs::create_dir_all("/var/tmp/layerlab").expect("create /var/tmp/layerlab");
    tempfile::Builder::new()
        .prefix("disk-")
        .tempdir_in("/var/tmp/layerlab")
        .expect("create a disk directory for writable layers")
}

/// The store holding the catalog every suite shares.
#[cfg(feature = "catalog")]
pub const CATALOG_STORE: &str = "/var/tmp/layerlab/test-data/store";

/// The package repository (and its key) of the shared catalog.
#[cfg(feature = "catalog")]
pub const CATALOG_PACKAGES: &str = "/var/tmp/layerlab/test-data/packages";

/// Builds the shared catalog when it has no `workstation` yet, or when its
/// package repository was not made for its Debian image. Only then: the
/// server's tests keep it current with the real layerlab binary, and this
/// suite's own executable (the stand-in put in its place) only fills a
/// catalog that lacks something.
#[cfg(feature = "catalog")]
pub fn ensure_catalog() {
    let store =
        store::Store::open(std::path::Path::new(CATALOG_STORE)).expect("open the test store");
    let mirror = images::packages::Mirror::new(std::path::Path::new(CATALOG_PACKAGES));
    let resolve = |name: &str| {
        let reference = store::Reference::parse(name).expect("parse reference");
        store.resolve(&images::hub(), &reference).ok()
    };
    let current = resolve("workstation").is_some()
        && resolve(images::recipes::DEBIAN).is_some_and(|debian| mirror.is_current(&debian));
    if !current {
        let layerlab = std::env::current_exe().expect("the test's own executable");
        let cache = std::path::Path::new("/var/tmp/layerlab/test-data/cache/images");
        images::build_catalog(&store, cache, &layerlab, &mirror, |_| {})
            .expect("build the image catalog into the test store");
    }
}

/// Removes a test runtime's cgroup parent directories once its sandboxes
/// are gone (the runtime leaves the parent, which servers share).
pub fn remove_cgroup_parent(parent: &str) {
    for controller in ["memory", "pids", "cpu", "cpuacct", ""] {
        let _ = std::fs::remove_dir(
            std::path::Path::new("/sys/fs/cgroup")
                .join(controller)
                .join(parent),
        );
    }
}

/// Debian's registry server.
pub const DISTRIBUTION: &str = "/usr/bin/docker-registry";

/// Starts Debian's `docker-registry` on a free loopback port with its
/// config and storage under `root`, and returns it once it accepts
/// connections, with its `127.0.0.1:PORT`. The caller kills the child.
pub fn start_distribution(root: &Path) -> (Child, String) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = root.join("config.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            root.join("data").display()
        ),
    )
    .expect("write the docker-registry config");
    let mut child = Command::new(DISTRIBUTION)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("docker-registry (apt-get install -y docker-registry, or `make apt-bench`)");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(&addr).is_err() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("docker-registry did not accept connections on {addr} within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    (child, addr)
}

/// A named test of a `harness = false` suite.
pub type Test = (&'static str, fn());

/// Runs the `tests` whose names contain one of the command line's
/// non-option arguments (all without any) on `threads` threads, prints
/// cargo's summary line and exits, non-zero if any failed.
pub fn run(tests: &[Test], threads: usize) -> ! {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let selected: Vec<&Test> = tests
        .iter()
        .filter(|(name, _)| filters.is_empty() || filters.iter().any(|f| name.contains(f.as_str())))
        .collect();
    println!("\nrunning {} tests", selected.len());
    let queue = Mutex::new(selected.into_iter());
    let failed = Mutex::new(Vec::new());
    let passed = Mutex::new(0usize);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                loop {
                    let next = queue.lock().expect("test queue").next();
                    let Some((name, test)) = next else { break };
                    let start = Instant::now();
                    let ok = std::panic::catch_unwind(test).is_ok();
                    println!(
                        "test {name} ... {} ({:.2?})",
                        if ok { "ok" } else { "FAILED" },
                        start.elapsed()
                    );
                    if ok {
                        *passed.lock().expect("passed") += 1;
                    } else {
                        failed.lock().expect("failed").push(*name);
                    }
                }
            });
        }
    });
    let failed = failed.into_inner().expect("failed");
    let passed = passed.into_inner().expect("passed");
    if !failed.is_empty() {
        println!("\nfailures:\n    {}", failed.join("\n    "));
    }
    println!(
        "\ntest result: {}. {passed} passed; {} failed; 0 ignored; 0 measured; 0 filtered out\n",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    std::process::exit(if failed.is_empty() { 0 } else { 1 })
}
