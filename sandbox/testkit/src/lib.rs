//! What layerlab's tests that create real sandboxes share; a
//! dev-dependency only, never part of the product.
//!
//! - [`run`]: the runner (libtest-mimic, so libtest's options work) of
//!   suites built with `harness = false`, which must have their own `main`
//!   because the test executable doubles as the sandbox helper
//!   (`runtime::helper::main_if_requested()` comes first); it skips them,
//!   saying so, when [`SKIP_ROOT`] is set.
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

/// The environment variable that skips the suites needing root
/// (namespaces, mounts, cgroups): set to anything but `0`, their tests are
/// listed as ignored and nothing is prepared. `make test` never sets it.
pub const SKIP_ROOT: &str = "LAYERLAB_SKIP_ROOT_TESTS";

/// Whether [`SKIP_ROOT`] asks to skip the tests that need root.
pub fn skipping_root_tests() -> bool {
    std::env::var_os(SKIP_ROOT).is_some_and(|v| !v.is_empty() && v != "0")
}

/// Runs a suite whose tests need root with libtest's command line
/// (`--list`, `--exact`, `--skip`, filters, `--test-threads`, so
/// cargo-nextest works too), `threads` at a time unless told otherwise,
/// and exits. `prepare` (e.g. building the shared catalog) runs first,
/// unless the tests are only listed or [`SKIP_ROOT`] skips them.
pub fn run(tests: &[Test], threads: usize, prepare: impl FnOnce()) -> ! {
    let mut args = libtest_mimic::Arguments::from_args();
    args.test_threads.get_or_insert(threads);
    let skip = skipping_root_tests();
    if skip {
        eprintln!("{SKIP_ROOT} is set: these tests need root and are skipped");
    } else if !args.list {
        prepare();
    }
    let trials = tests
        .iter()
        .map(|&(name, test)| {
            libtest_mimic::Trial::test(name, move || {
                test();
                Ok(())
            })
            .with_ignored_flag(skip)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
