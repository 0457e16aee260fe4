//! `cargo bench -p registry --bench push_pull`: layerlab's registry beside
//! Debian's `docker-registry` (distribution 2.8), measured in the same run.
//!
//! For each of nginx and debian from the test catalog (exported to OCI
//! layout directories first), skopeo pushes the image into a fresh
//! registry and pulls it back out; both servers get the same images, the
//! same client and a fresh storage directory per run. Printed per server:
//! push and pull throughput (MB of blobs per second, median of the runs),
//! blob GET throughput with curl writing to /dev/null (the server's side
//! of a pull without skopeo's digest checks and disk writes), the ratio
//! layerlab / distribution, and each server's peak RSS (VmHWM).
//!
//! layerlab's registry runs as a child process (this executable again,
//! with `REGISTRY_BENCH_SERVE` set), so its memory is measured apart from
//! the bench's own. Needs `skopeo`, `docker-registry` and the catalog in
//! /var/tmp/layerlab/test-data (built by `cargo test -p images`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use store::{Namespace, Reference, Store};

const CATALOG_STORE: &str = "/var/tmp/layerlab/test-data/store";
const DISTRIBUTION: &str = "/usr/bin/docker-registry";
const SERVE_ENV: &str = "REGISTRY_BENCH_SERVE";
const RUNS: usize = 3;

fn main() {
    if let Ok(root) = std::env::var(SERVE_ENV) {
        serve_child(Path::new(&root));
        return;
    }
    let catalog = Store::open(Path::new(CATALOG_STORE)).expect("open the test catalog");
    let hub = Namespace::new("hub").expect("hub");
    let scratch = tempfile::tempdir_in("/var/tmp").expect("scratch dir");
    println!("registry push/pull with skopeo, median of {RUNS} runs, fresh storage each run");
    println!(
        "{:<8} {:<14} {:>10} {:>11} {:>11} {:>11} {:>12}",
        "image", "server", "size MB", "push MB/s", "pull MB/s", "GET MB/s", "peak RSS MB"
    );
    for image in ["nginx", "debian"] {
        let layout = scratch.path().join(format!("{image}-layout"));
        catalog
            .export_oci_layout(&hub, &[Reference::parse(image).expect("name")], &layout)
            .unwrap_or_else(|e| {
                panic!("{image} is not in the test catalog ({e}); run `cargo test -p images`")
            });
        let bytes = blob_bytes(&layout);
        let ours = measure(Kind::Layerlab, &layout, bytes, scratch.path());
        let theirs = measure(Kind::Distribution, &layout, bytes, scratch.path());
        for (name, m) in [("layerlab", &ours), ("distribution", &theirs)] {
            println!(
                "{image:<8} {name:<14} {:>10.1} {:>11.1} {:>11.1} {:>11.1} {:>12.1}",
                bytes as f64 / 1e6,
                m.push_mbps,
                m.pull_mbps,
                m.get_mbps,
                m.peak_rss_kib as f64 / 1024.0
            );
        }
        println!(
            "{image:<8} {:<14} {:>10} {:>10.2}x {:>10.2}x {:>10.2}x {:>11.2}x",
            "ratio",
            "",
            ours.push_mbps / theirs.push_mbps,
            ours.pull_mbps / theirs.pull_mbps,
            ours.get_mbps / theirs.get_mbps,
            ours.peak_rss_kib as f64 / theirs.peak_rss_kib.max(1) as f64
        );
    }
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Layerlab,
    Distribution,
}

struct Measured {
    push_mbps: f64,
    pull_mbps: f64,
    get_mbps: f64,
    peak_rss_kib: u64,
}

fn measure(kind: Kind, layout: &Path, bytes: u64, scratch: &Path) -> Measured {
    let mut pushes = Vec::new();
    let mut pulls = Vec::new();
    let mut gets = Vec::new();
    let mut peak = 0;
    for run in 0..RUNS {
        let root = tempfile::tempdir_in(scratch).expect("registry root");
        let server = Server::start(kind, root.path());
        let dest = format!("docker://{}/bench/image:{run}", server.addr);
        let started = Instant::now();
        skopeo(&[
            "copy",
            "--dest-tls-verify=false",
            &format!("oci:{}", layout.display()),
            &dest,
        ]);
        pushes.push(started.elapsed());
        let out = root.path().join("pulled");
        let started = Instant::now();
        skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &dest,
            &format!("oci:{}:{run}", out.display()),
        ]);
        pulls.push(started.elapsed());
        // One curl for all blobs, each written to /dev/null.
        let mut args = vec!["-sf".to_owned()];
        for d in blob_digests(layout) {
            args.push("-o".into());
            args.push("/dev/null".into());
            args.push(format!("http://{}/v2/bench/image/blobs/{d}", server.addr));
        }
        let started = Instant::now();
        let out = Command::new("curl").args(&args).output().expect("curl");
        assert!(
            out.status.success(),
            "curl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        gets.push(started.elapsed());
        peak = peak.max(server.peak_rss_kib());
    }
    let mbps = |d: Duration| bytes as f64 / 1e6 / d.as_secs_f64();
    Measured {
        push_mbps: mbps(median(pushes)),
        pull_mbps: mbps(median(pulls)),
        get_mbps: mbps(median(gets)),
        peak_rss_kib: peak,
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// Total size of the blobs of an OCI layout: what a push or pull moves.
fn blob_bytes(layout: &Path) -> u64 {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .expect("layout blobs")
        .map(|e| e.expect("entry").metadata().expect("metadata").len())
        .sum()
}

/// `sha256:<hex>` of every blob in an OCI layout.
fn blob_digests(layout: &Path) -> Vec<String> {
    std::fs::read_dir(layout.join("blobs/sha256"))
        .expect("layout blobs")
        .map(|e| format!("sha256:{}", e.expect("entry").file_name().to_string_lossy()))
        .collect()
}

fn skopeo(args: &[&str]) {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("skopeo (apt-get install -y skopeo)");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A registry process; stopped when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(kind: Kind, root: &Path) -> Server {
        match kind {
            Kind::Layerlab => {
                let mut child = Command::new(std::env::current_exe().expect("own executable"))
                    .env(SERVE_ENV, root)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("start layerlab's registry");
                let mut line = String::new();
                BufReader::new(child.stdout.take().expect("stdout"))
                    .read_line(&mut line)
                    .expect("registry address");
                Server {
                    child,
                    addr: line.trim().to_owned(),
                }
            }
            Kind::Distribution => {
                let port = std::net::TcpListener::bind("127.0.0.1:0")
                    .and_then(|l| l.local_addr())
                    .expect("free port")
                    .port();
                let addr = format!("127.0.0.1:{port}");
                let config: PathBuf = root.join("config.yml");
                std::fs::write(
                    &config,
                    format!(
                        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
                        root.join("data").display()
                    ),
                )
                .expect("write config");
                let child = Command::new(DISTRIBUTION)
                    .arg("serve")
                    .arg(&config)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("docker-registry (apt-get install -y docker-registry)");
                let deadline = Instant::now() + Duration::from_secs(20);
                while std::net::TcpStream::connect(&addr).is_err() {
                    assert!(Instant::now() < deadline, "docker-registry did not start");
                    std::thread::sleep(Duration::from_millis(20));
                }
                Server { child, addr }
            }
        }
    }

    fn peak_rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmHWM:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Child mode: serve a registry over `root`, print its address, stop when
/// standard input closes (the parent dropped or died).
fn serve_child(root: &Path) {
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let store = Store::open(root).expect("store");
        let registry = registry::Registry::open(registry::Config::new(
            store,
            Namespace::new("registry").expect("namespace"),
        ))
        .expect("registry");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", listener.local_addr().expect("addr"));
        let stdin_closed = async {
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            })
            .await;
        };
        registry::serve(listener, registry.router(), stdin_closed)
            .await
            .expect("serve");
    });
}
